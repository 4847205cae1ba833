//! The Redis-protocol front: a TCP server that runs *inside* the proxy's Hydro process.
//!
//! Hydro's many-client external port loses the first reply to a freshly connected client, so
//! the front is our own tokio code, attached to the dataflow as a Hydro *sidecar*: [`start`]
//! returns a stream the dataflow reads requests from and a sink it writes responses to.
//!
//! **The dataflow drives the connections.** Each connection is a future that reads the
//! client's bytes into its [`Connection`] (the protocol logic, kept apart from this I/O),
//! which decodes RESP, plans each command and numbers its operations; the requests go into a
//! queue the [`RequestStream`] hands to the dataflow. Those futures are polled by the stream
//! itself, inside the dataflow's run, and the [`ReplySink`] files each result in its
//! connection ([`crate::edge::reply_queue`] matches it by request id: in a sharded store
//! replies overtake each other) and writes the completed replies to the socket at once. So a
//! request read at the start of a run is answered by the end of the same run, with no task
//! switch and no channel between: the per-request work is what Redis does (read, execute,
//! write), plus the dataflow's stages. (A task per connection, talking to the dataflow over
//! channels, cost an extra pass of tokio's scheduler, with its `epoll_wait`, per round trip;
//! the README's measurements say how much.) A connection's future wakes only
//! when its socket has bytes, its socket takes bytes it could not take before, its timer
//! fires, or the sink needs it (replies left unwritten, a closing reply, room again for
//! commands).
//!
//! A command's slot is queued *before* its operations enter the dataflow, so a result can never
//! arrive for a slot the connection does not know yet — the race that lost replies on Hydro's
//! own port.
//!
//! **What is bounded, and how** (the settings are in [`FrontConfig`]):
//! - commands in flight per connection ([`crate::edge::connection::MAX_IN_FLIGHT`]): past it the connection stops
//!   reading until replies drain — TCP backpressure reaches the client;
//! - unsent replies per connection (`client_output_limit`): a client that leaves more unread is
//!   disconnected, with a log line, as Redis's `client-output-buffer-limit` does;
//! - a command's buffered arguments ([`crate::edge::resp::MAX_COMMAND`]);
//! - connections (`max_clients`): the next one is told `-ERR max number of clients reached`;
//! - time: a request whose result does not come back within `request_timeout` is answered
//!   with an error and the connection goes on.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io::IoSlice;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use bytes::Bytes;
use futures::task::AtomicWaker;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio::task::Unconstrained;

pub use crate::edge::config::FrontConfig;
use crate::edge::connection::{Action, Connection, INPUT_CAPACITY, OverLimit};
use crate::edge::outbox::{MAX_SLICES, Outbox};
use crate::edge::stats::{SAMPLE_EVERY, Stats};
use crate::protocol::{ClientId, KVSRequest, KVSResponse, KVSResult};

/// The requests the front sends into the dataflow.
pub type FrontRequest = KVSRequest<Bytes>;
/// The responses the dataflow sends back to the front.
pub type FrontResponse = KVSResponse<Bytes>;

/// Responses the sink holds before it delivers them even without a flush.
const MAX_HELD_RESPONSES: usize = 4096;

/// Spare room in a connection's input buffer before each read (a pipeline of 16 short
/// commands is under 1 KiB; the buffer starts at `INPUT_CAPACITY`).
const MIN_READ: usize = INPUT_CAPACITY / 4;

/// What the accepting task and the statistics sampler share with the connections.
struct Shared {
    config: FrontConfig,
    stats: Stats,
}

/// What the connections, the request stream and the reply sink share: all of it lives on the
/// proxy's one dataflow thread, so plain cells, no locks.
#[derive(Default)]
struct Front {
    /// Requests planned and not yet handed to the dataflow, in arrival order.
    requests: RefCell<VecDeque<FrontRequest>>,
    /// Each open connection, by client id: where [`ReplySink`] delivers results.
    open: RefCell<HashMap<ClientId, Rc<Client>>>,
}

/// One open connection, as its future and the reply sink share it.
struct Client {
    state: RefCell<Connection>,
    /// The socket's sending side: the sink writes replies as soon as they are ready, the
    /// connection's future when the socket could not take them at once.
    writer: OwnedWriteHalf,
    /// Wakes the connection's future when the sink needs it (see [`settle`]).
    bell: Bell,
    /// Whether the future, when it last went to sleep, was waiting for the client's bytes;
    /// when it was not (too many commands in flight), the sink wakes it once there is room.
    listening: Cell<bool>,
}

/// A one-shot wake-up call from the sink to a connection's future.
#[derive(Default)]
struct Bell {
    rung: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

// Free functions, not methods: in Hydro's staged copy of this crate (what the store's process
// is built from) methods of these two private types went missing.

/// Rings `bell`: wakes the connection's future if it is waiting for it.
fn ring(bell: &Bell) {
    bell.rung.set(true);
    if let Some(waker) = bell.waker.borrow_mut().take() {
        waker.wake();
    }
}

/// Resolves once `bell` has rung (since it was last heard).
fn heard(bell: &Bell) -> impl Future<Output = ()> + '_ {
    std::future::poll_fn(|cx| {
        if bell.rung.replace(false) {
            return Poll::Ready(());
        }
        let mut waker = bell.waker.borrow_mut();
        if !waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            *waker = Some(cx.waker().clone());
        }
        Poll::Pending
    })
}

/// After results were filed in `client`: moves ready replies to the outbox and writes what
/// the socket takes now. Rings the connection's future when it has something to do that it
/// is not waiting for — replies the socket did not take, the end of the connection, room
/// again for more commands, a client over its output limit, a broken socket.
fn settle(client: &Client, limit: usize) {
    let mut state = client.state.borrow_mut();
    let needs_future = match state.prepare_output(limit) {
        Err(OverLimit { .. }) => true,
        Ok(()) => {
            write_now(&client.writer, state.outbox()).is_err()
                || !state.outbox().is_empty()
                || state.finished()
                || (state.wants_input() && !client.listening.get())
        }
    };
    drop(state);
    if needs_future {
        ring(&client.bell);
    }
}

/// Writes as much of `outbox` as the socket takes now, without waiting.
fn write_now(writer: &OwnedWriteHalf, outbox: &mut Outbox) -> std::io::Result<()> {
    while !outbox.is_empty() {
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = outbox.fill(&mut slices);
        match writer.try_write_vectored(&slices[..n]) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => outbox.advance(n),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Starts the front with the settings in this process's environment ([`FrontConfig::to_env`]);
/// returns the request stream and the response sink the dataflow is wired to. Called once,
/// inside the proxy process.
///
/// If the settings are missing or the address cannot be bound, the process exits with a
/// message: without its front a proxy can do nothing useful.
pub fn start() -> (RequestStream, ReplySink) {
    let config = FrontConfig::from_env().unwrap_or_else(|e| {
        eprintln!("kvs-zoo: front settings: {e}");
        std::process::exit(2);
    });
    let listener = std::net::TcpListener::bind(&config.bind)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .and_then(tokio::net::TcpListener::from_std)
        .unwrap_or_else(|e| {
            eprintln!("kvs-zoo: cannot listen on {}: {e}", config.bind);
            std::process::exit(2);
        });
    let shared = Arc::new(Shared {
        config,
        stats: Stats::new(),
    });

    let sampled = shared.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            every.tick().await;
            sampled.stats.sample(Instant::now());
        }
    });

    // Accepting is its own task: connections arrive rarely, and a refused one is answered
    // without the dataflow. Admitted sockets go to the request stream, which runs them.
    let (admitted, accepted) = unbounded_channel();
    let accepting = shared.clone();
    tokio::spawn(async move {
        // Client ids are unique for the life of the process, so a late response for a
        // closed connection can never reach a new one — and across runs of a deployment,
        // since stores that keep their state on disk remember clients' requests: a new
        // client taking an old one's id would find its requests "applied already".
        let next_id = AtomicU64::new(first_client_id(std::time::SystemTime::now()));
        loop {
            match listener.accept().await {
                Ok((socket, _)) if accepting.stats.admit(accepting.config.max_clients) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    if admitted.send((id, socket)).is_err() {
                        return;
                    }
                }
                Ok((socket, _)) => {
                    tokio::spawn(refuse(socket));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    eprintln!("kvs-zoo: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    let front = Rc::new(Front::default());
    (
        RequestStream {
            front: front.clone(),
            shared: shared.clone(),
            accepted,
            connections: Connections::default(),
        },
        ReplySink {
            front,
            shared,
            held: Vec::new(),
        },
    )
}

/// Tells a client past `max_clients` why it is turned away, as Redis does.
async fn refuse(mut socket: TcpStream) {
    let _ = socket
        .write_all(b"-ERR max number of clients reached\r\n")
        .await;
    let _ = socket.shutdown().await;
}

/// A connection's future, as the request stream runs it.
type ConnectionFuture = Unconstrained<Pin<Box<dyn Future<Output = ()>>>>;

/// The connections' futures, and which of them were woken: a minimal executor that runs
/// inside the dataflow's run. (`FuturesUnordered` would do, except that it asks to be polled
/// again whenever it has polled as many futures as it holds — with one client, on every
/// request — and each such request costs the dataflow another run.)
#[derive(Default)]
struct Connections {
    /// The futures by slot, with their wakers; `None` marks a free slot.
    slots: Vec<Option<(ConnectionFuture, Arc<SlotWaker>, Waker)>>,
    /// Slots whose connection has ended, to be given to the next one.
    free: Vec<usize>,
    woken: Arc<Woken>,
}

/// Which slots were woken since the request stream last ran them, and the stream's own waker.
/// (Locks and atomics because a `Waker` must be shareable across threads; only the dataflow's
/// thread ever wakes these, so the lock never waits.)
#[derive(Default)]
struct Woken {
    slots: Mutex<Vec<usize>>,
    /// The waker of the dataflow run that last polled the request stream.
    stream: AtomicWaker,
}

/// One slot's waker: queues the slot (once until it runs) and wakes the request stream.
struct SlotWaker {
    slot: usize,
    queued: AtomicBool,
    woken: Arc<Woken>,
}

impl Wake for SlotWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.queued.swap(true, Ordering::AcqRel) {
            self.woken
                .slots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(self.slot);
            self.woken.stream.wake();
        }
    }
}

impl Connections {
    /// Adds a connection; it runs at the next [`Connections::run_woken`].
    fn add(&mut self, future: ConnectionFuture) {
        let slot = self.free.pop().unwrap_or(self.slots.len());
        let waker = Arc::new(SlotWaker {
            slot,
            queued: AtomicBool::new(false),
            woken: self.woken.clone(),
        });
        waker.wake_by_ref();
        let entry = Some((future, waker.clone(), Waker::from(waker)));
        match self.slots.get_mut(slot) {
            Some(free) => *free = entry,
            None => self.slots.push(entry),
        }
    }

    /// Polls every connection woken since the last call (and those they wake meanwhile, a
    /// few rounds at most: the rest wait for the next call, which the wake asks for).
    fn run_woken(&mut self, cx: &mut Context<'_>) {
        self.woken.stream.register(cx.waker());
        for _ in 0..4 {
            let woken =
                std::mem::take(&mut *self.woken.slots.lock().unwrap_or_else(|e| e.into_inner()));
            if woken.is_empty() {
                return;
            }
            for slot in woken {
                let Some(Some((future, slot_waker, waker))) = self.slots.get_mut(slot) else {
                    continue;
                };
                // The slot may be woken again from here on: it is polled now.
                slot_waker.queued.store(false, Ordering::Release);
                if Pin::new(future)
                    .poll(&mut Context::from_waker(waker))
                    .is_ready()
                {
                    self.slots[slot] = None;
                    self.free.push(slot);
                }
            }
        }
    }
}

/// The stream of requests from every connection, in arrival order. Polling it runs the
/// connections: each one that has bytes reads and plans them, and their requests come out.
pub struct RequestStream {
    front: Rc<Front>,
    shared: Arc<Shared>,
    accepted: UnboundedReceiver<(ClientId, TcpStream)>,
    connections: Connections,
}

impl futures::Stream for RequestStream {
    type Item = FrontRequest;

    // Inlined so the dataflow's loop takes each request straight from the queue (a request
    // is 128 bytes, and every copy of it through a return slot shows in profiles); only the
    // refill, once per batch, is a call.
    #[inline]
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrontRequest>> {
        if let Some(request) = self.front.requests.borrow_mut().pop_front() {
            return Poll::Ready(Some(request));
        }
        self.refill(cx);
        match self.front.requests.borrow_mut().pop_front() {
            Some(request) => Poll::Ready(Some(request)),
            None => Poll::Pending,
        }
    }
}

impl RequestStream {
    /// Admits new connections and runs the woken ones, which read and plan: their requests
    /// join the queue.
    #[inline(never)]
    fn refill(&mut self, cx: &mut Context<'_>) {
        while let Poll::Ready(Some((id, socket))) = self.accepted.poll_recv(cx) {
            let future = connection(id, socket, self.shared.clone(), self.front.clone());
            // Tokio's cooperative budget is per task, and every connection runs inside the
            // dataflow's: a connection is bounded by its in-flight cap instead.
            let future: Pin<Box<dyn Future<Output = ()>>> = Box::pin(future);
            self.connections.add(tokio::task::unconstrained(future));
        }
        self.connections.run_woken(cx);
    }
}

/// Delivers each response to its connection and writes the replies it completes. The
/// dataflow flushes its sink at the end of every run, so responses are held until then and
/// delivered one run per connection: each connection's replies leave in one write.
/// Responses for connections that have closed are dropped: nobody is left to read them.
pub struct ReplySink {
    front: Rc<Front>,
    shared: Arc<Shared>,
    held: Vec<FrontResponse>,
}

impl ReplySink {
    fn deliver_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let limit = self.shared.config.client_output_limit;
        let open = self.front.open.borrow();
        // A connection's requests enter the dataflow together, so its responses come out
        // side by side: each run of one connection's responses is delivered, then written.
        // (A connection may get several runs; the order of results does not matter, their
        // ids do.)
        let mut held = self.held.drain(..).peekable();
        while let Some(first) = held.next() {
            let client = open.get(&first.client);
            let mut state = client.map(|c| c.state.borrow_mut());
            let mut file = |response: FrontResponse| {
                if let Some(state) = &mut state {
                    state.deliver(response.request, response.result);
                }
            };
            let id = first.client;
            file(first);
            while let Some(next) = held.next_if(|r| r.client == id) {
                file(next);
            }
            drop(state);
            if let Some(client) = client {
                settle(client, limit);
            }
        }
    }
}

impl futures::Sink<FrontResponse> for ReplySink {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(mut self: Pin<&mut Self>, resp: FrontResponse) -> Result<(), Self::Error> {
        self.held.push(resp);
        if self.held.len() >= MAX_HELD_RESPONSES {
            self.deliver_held();
        }
        Ok(())
    }

    fn poll_flush(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.deliver_held();
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_flush(cx)
    }
}

/// A connection's registration: dropping it (however the future ends) unregisters the
/// connection and counts it gone.
struct Registered {
    id: ClientId,
    front: Rc<Front>,
    shared: Arc<Shared>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.front.open.borrow_mut().remove(&self.id);
        self.shared.stats.disconnected();
    }
}

async fn connection(id: ClientId, socket: TcpStream, shared: Arc<Shared>, front: Rc<Front>) {
    let config = &shared.config;
    // How the log names this client: its id and address.
    let who = format!(
        "{id} ({})",
        socket
            .peer_addr()
            .map_or_else(|_| "?".into(), |a| a.to_string())
    );
    // Replies are small and latency matters more than packet count.
    let _ = socket.set_nodelay(true);
    let (mut rd, writer) = socket.into_split();
    let client = Rc::new(Client {
        state: RefCell::new(Connection::new(
            id,
            &config.commands,
            config.request_timeout,
        )),
        writer,
        bell: Bell::default(),
        listening: Cell::new(false),
    });
    front.open.borrow_mut().insert(id, client.clone());
    let registered = Registered {
        id,
        front: front.clone(),
        shared: shared.clone(),
    };

    // One timer per connection, armed at the oldest waiting request's deadline. It is not
    // re-armed each time the head changes (that would touch the timer wheel on every
    // batch): when it fires, expired requests are answered and it is armed again.
    let timer = tokio::time::sleep(config.request_timeout);
    tokio::pin!(timer);
    let mut armed = false;
    while let Some(Turn {
        wants_input,
        writing,
        deadline,
    }) = turn(&client, &front, &shared, &who)
    {
        if !armed && let Some(deadline) = deadline {
            timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            armed = true;
        }

        // The input buffer is borrowed only while a read is waited for; the sink, which runs
        // between this future's turns, never touches it.
        let mut input = std::mem::take(client.state.borrow_mut().input());
        // Room for a whole pipelined batch. The buffer's planned bytes are split off as they
        // are decoded, so its spare room shrinks with every read; without this a read would
        // stop at the end of the allocation and split a batch in two (3% more reads at
        // `-P 16`). Once the planned bytes are dropped, `reserve` takes their room back in
        // place.
        input.reserve(MIN_READ);
        let mut ended = false;
        let mut broken = false;
        tokio::select! {
            biased;
            () = heard(&client.bell) => {}
            read = rd.read_buf(&mut input), if wants_input => {
                ended = !matches!(read, Ok(n) if n > 0);
            }
            written = client.writer.writable(), if writing => broken = written.is_err(),
            () = &mut timer, if armed => {
                armed = false;
                client.state.borrow_mut().expire(Instant::now());
            }
        }
        let mut state = client.state.borrow_mut();
        *state.input() = input;
        if ended {
            state.end_of_input();
        }
        drop(state);
        if broken {
            break;
        }
    }
    let goodbye = client
        .state
        .borrow_mut()
        .goodbye(crate::edge::commands::unix_ms());
    front.requests.borrow_mut().extend(goodbye);
    drop(registered);
    // Dropping the last handle to the sending side closes it (a `DEBUG SLEEP` still pending
    // holds one until it ends).
}

/// What a connection waits for after a turn.
struct Turn {
    /// The client's bytes (it is not past its in-flight cap, and has not finished).
    wants_input: bool,
    /// The socket to take more replies.
    writing: bool,
    /// When its oldest waiting request times out, if one is waiting.
    deadline: Option<Instant>,
}

/// One turn of a connection: plans the commands read (if any), moves ready replies to the
/// outbox and writes what the socket takes. `None` once the connection is to close: its last
/// reply is written, its socket broke, or it passed the output limit (logged here).
fn turn(client: &Rc<Client>, front: &Front, shared: &Shared, who: &str) -> Option<Turn> {
    let config = &shared.config;
    let mut state = client.state.borrow_mut();
    // Most turns write replies or wait; only a turn with input plans, and only it needs the
    // time.
    if state.has_input() {
        let mut requests = front.requests.borrow_mut();
        let planned = state.plan_input(
            &config.commands,
            Instant::now(),
            |sections| shared.stats.info(config, sections),
            |action| match action {
                Action::Send(request) => requests.push_back(request),
                Action::DeliverLater(request, delay) => {
                    // A stand-in for a slow store: the result is filed late, as the store's
                    // would be.
                    let late = client.clone();
                    let limit = config.client_output_limit;
                    tokio::task::spawn_local(async move {
                        tokio::time::sleep(delay).await;
                        late.state.borrow_mut().deliver(request, KVSResult::Ok);
                        settle(&late, limit);
                    });
                }
            },
        );
        shared.stats.commands(planned);
    }
    if let Err(OverLimit { unsent }) = state.prepare_output(config.client_output_limit) {
        eprintln!(
            "kvs-zoo: closing client {who}: {unsent} bytes of unread replies passed the \
             client output limit ({} bytes)",
            config.client_output_limit
        );
        return None;
    }
    if write_now(&client.writer, state.outbox()).is_err() || state.finished() {
        return None;
    }
    let wants_input = state.wants_input();
    client.listening.set(wants_input);
    Some(Turn {
        wants_input,
        writing: !state.outbox().is_empty(),
        deadline: state.next_deadline(),
    })
}

/// The first client id of a front started at `now`: its milliseconds since the epoch, times
/// 1024. Two runs' ids never meet unless a run accepts more than 1024 connections per
/// millisecond between their starts; ids stay below 2^53, so `CLIENT ID` reads exactly in
/// every client library (JavaScript's numbers included), until the year 2248.
pub fn first_client_id(now: std::time::SystemTime) -> u64 {
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    millis.min((1 << 43) - 1).saturating_mul(1024).max(1)
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::future::Future;
    use std::pin::Pin;
    use std::rc::Rc;
    use std::task::{Context, Poll, Waker};

    use super::{ConnectionFuture, Connections};

    /// A connection stand-in: counts its polls, keeps its waker for the test, and ends once
    /// `done` is set.
    fn counted(
        polls: Rc<Cell<usize>>,
        waker: Rc<Cell<Option<Waker>>>,
        done: Rc<Cell<bool>>,
    ) -> ConnectionFuture {
        let future: Pin<Box<dyn Future<Output = ()>>> = Box::pin(std::future::poll_fn(move |cx| {
            polls.set(polls.get() + 1);
            waker.set(Some(cx.waker().clone()));
            if done.get() {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        }));
        tokio::task::unconstrained(future)
    }

    /// Each run's client ids start past every id an earlier run could have given.
    #[test]
    fn client_ids_of_a_later_run_start_past_an_earlier_runs() {
        use std::time::{Duration, UNIX_EPOCH};
        let start = UNIX_EPOCH + Duration::from_secs(1_796_000_000);
        let first = super::first_client_id(start);
        let later = super::first_client_id(start + Duration::from_millis(1));
        assert_eq!(
            later - first,
            1024,
            "a millisecond apart: room for 1024 connections"
        );
        assert_eq!(super::first_client_id(UNIX_EPOCH), 1);
        let far = UNIX_EPOCH + Duration::from_secs(100_000_000_000);
        assert!(super::first_client_id(far) < 1 << 53);
    }

    #[test]
    fn only_woken_connections_run_and_each_once_per_wake() {
        let mut connections = Connections::default();
        let mut cx = Context::from_waker(Waker::noop());
        let (a, b) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let (wa, wb) = (Rc::new(Cell::new(None)), Rc::new(Cell::new(None)));
        let never = Rc::new(Cell::new(false));
        connections.add(counted(a.clone(), wa.clone(), never.clone()));
        connections.add(counted(b.clone(), wb.clone(), never.clone()));
        connections.run_woken(&mut cx);
        assert_eq!((a.get(), b.get()), (1, 1), "a new connection runs at once");
        connections.run_woken(&mut cx);
        assert_eq!((a.get(), b.get()), (1, 1), "nothing woke them");
        let waker = wa.take().unwrap();
        waker.wake_by_ref();
        waker.wake_by_ref();
        connections.run_woken(&mut cx);
        assert_eq!(
            (a.get(), b.get()),
            (2, 1),
            "two wakes before a run are one poll"
        );
    }

    #[test]
    fn an_ended_connection_leaves_and_its_slot_is_reused() {
        let mut connections = Connections::default();
        let mut cx = Context::from_waker(Waker::noop());
        let polls = Rc::new(Cell::new(0));
        let waker = Rc::new(Cell::new(None));
        let done = Rc::new(Cell::new(true));
        connections.add(counted(polls.clone(), waker.clone(), done));
        connections.run_woken(&mut cx);
        assert_eq!(polls.get(), 1);
        assert!(connections.slots.iter().all(Option::is_none));
        // A late wake of the ended connection runs nothing.
        waker.take().unwrap().wake();
        connections.run_woken(&mut cx);
        assert_eq!(polls.get(), 1);
        let next = Rc::new(Cell::new(0));
        connections.add(counted(
            next.clone(),
            waker.clone(),
            Rc::new(Cell::new(false)),
        ));
        assert_eq!(connections.slots.len(), 1, "the free slot is taken again");
        connections.run_woken(&mut cx);
        assert_eq!((polls.get(), next.get()), (1, 1));
    }

    #[test]
    fn a_wake_tells_the_request_stream() {
        struct Count(std::sync::Mutex<usize>);
        impl std::task::Wake for Count {
            fn wake(self: std::sync::Arc<Self>) {
                *self.0.lock().unwrap() += 1;
            }
        }
        let count = std::sync::Arc::new(Count(std::sync::Mutex::new(0)));
        let stream_waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&stream_waker);
        let mut connections = Connections::default();
        let polls = Rc::new(Cell::new(0));
        let waker = Rc::new(Cell::new(None));
        connections.add(counted(
            polls.clone(),
            waker.clone(),
            Rc::new(Cell::new(false)),
        ));
        connections.run_woken(&mut cx);
        let before = *count.0.lock().unwrap();
        waker.take().unwrap().wake();
        assert_eq!(
            *count.0.lock().unwrap(),
            before + 1,
            "the stream is asked to run"
        );
        connections.run_woken(&mut cx);
        assert_eq!(polls.get(), 2);
    }
}
