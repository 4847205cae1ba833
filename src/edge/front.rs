//! The Redis-protocol front: a TCP server that runs *inside* the proxy's Hydro process.
//!
//! Hydro's many-client external port loses the first reply to a freshly connected client, so
//! the front is our own tokio code, attached to the dataflow as a Hydro *sidecar*: [`start`]
//! returns a stream the dataflow reads requests from and a sink it writes responses to. Each
//! connection is one task that
//!
//! - reads the client's bytes into its [`Connection`] (the protocol logic, kept apart from this
//!   I/O), which decodes RESP, plans each command and numbers its operations; the task sends
//!   them into the dataflow;
//! - hands results back to the connection as they arrive (matched by request id: in a sharded
//!   store replies overtake each other), which keeps one *slot* per command in arrival order
//!   ([`crate::edge::reply_queue`]) and moves completed replies into its [`Outbox`];
//! - writes the outbox to the socket in bounded chunks, and answers requests whose deadline
//!   passed.
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

use std::collections::HashMap;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

pub use crate::edge::config::FrontConfig;
use crate::edge::connection::{Action, Connection, OverLimit};
use crate::edge::outbox::{MAX_SLICES, Outbox};
use crate::edge::stats::{SAMPLE_EVERY, Stats};
use crate::protocol::{ClientId, KVSRequest, KVSResponse, KVSResult, RequestId};

/// The requests the front sends into the dataflow.
pub type FrontRequest = KVSRequest<Bytes>;
/// The responses the dataflow sends back to the front.
pub type FrontResponse = KVSResponse<Bytes>;

/// Results for one connection, delivered together.
type ResultBatch = Vec<(RequestId, KVSResult<Bytes>)>;

/// Each connection's result channel, by client id: where [`ReplySink`] delivers responses.
type Registry = Arc<Mutex<HashMap<ClientId, UnboundedSender<ResultBatch>>>>;

/// Responses the sink holds before it delivers them even without a flush.
const MAX_HELD_RESPONSES: usize = 4096;

/// What every connection task shares.
struct Shared {
    config: FrontConfig,
    stats: Stats,
    registry: Registry,
    /// Requests travel to the dataflow in batches, one per read from a connection: one
    /// channel operation for a pipeline of commands instead of one per command.
    to_flow: UnboundedSender<Vec<FrontRequest>>,
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
    let registry: Registry = Arc::default();
    let (to_flow, from_front) = unbounded_channel();
    let shared = Arc::new(Shared {
        config,
        stats: Stats::new(),
        registry: registry.clone(),
        to_flow,
    });

    let sampled = shared.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        loop {
            every.tick().await;
            sampled.stats.sample(Instant::now());
        }
    });

    tokio::spawn(async move {
        // Client ids are unique for the life of the process, so a late response for a
        // closed connection can never reach a new one.
        let next_id = AtomicU64::new(1);
        loop {
            match listener.accept().await {
                Ok((socket, _)) if shared.stats.admit(shared.config.max_clients) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(id, socket, shared.clone()));
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
    (
        RequestStream {
            batches: from_front,
            current: Vec::new().into_iter(),
        },
        ReplySink {
            registry,
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

/// The stream of requests from every connection, in arrival order.
pub struct RequestStream {
    batches: UnboundedReceiver<Vec<FrontRequest>>,
    /// The rest of the batch being handed out.
    current: std::vec::IntoIter<FrontRequest>,
}

impl futures::Stream for RequestStream {
    type Item = FrontRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrontRequest>> {
        loop {
            if let Some(request) = self.current.next() {
                return Poll::Ready(Some(request));
            }
            match self.batches.poll_recv(cx) {
                Poll::Ready(Some(batch)) => self.current = batch.into_iter(),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Delivers each response to its connection's task. The dataflow flushes its sink at the end
/// of every run, so responses are held until then and delivered one batch per connection:
/// one lock, and one channel operation per connection, instead of one per response.
/// Responses for connections that have closed are dropped: nobody is left to read them.
pub struct ReplySink {
    registry: Registry,
    held: Vec<FrontResponse>,
}

impl ReplySink {
    fn deliver_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let writers = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // A connection's requests enter the dataflow together, so its responses come out
        // side by side: each run of one connection's responses is one batch. (A connection
        // may get several batches; the order of results does not matter, their ids do.)
        let mut held = self.held.drain(..).peekable();
        while let Some(first) = held.next() {
            let client = first.client;
            // Sized for a typical pipeline, so a batch is one allocation, not several.
            let mut batch = Vec::with_capacity(16);
            batch.push((first.request, first.result));
            while let Some(next) = held.next_if(|r| r.client == client) {
                batch.push((next.request, next.result));
            }
            if let Some(writer) = writers.get(&client) {
                let _ = writer.send(batch);
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

/// A connection's registration: dropping it (however the task ends) unregisters the
/// connection and counts it gone.
struct Registered {
    id: ClientId,
    shared: Arc<Shared>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared
            .registry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
        self.shared.stats.disconnected();
    }
}

async fn connection(id: ClientId, socket: TcpStream, shared: Arc<Shared>) {
    let (results_tx, mut results) = unbounded_channel();
    shared
        .registry
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, results_tx.clone());
    let registered = Registered { id, shared };
    let shared = &registered.shared;
    let config = &shared.config;
    let peer = socket
        .peer_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    // Replies are small and latency matters more than packet count.
    let _ = socket.set_nodelay(true);
    let (mut rd, mut wr) = socket.into_split();

    let mut conn = Connection::new(id, &config.commands, config.request_timeout);
    // One timer per connection, armed at the oldest waiting request's deadline. It is not
    // re-armed each time the head changes (that would touch the timer wheel on every
    // batch): when it fires, expired requests are answered and it is armed again.
    let timer = tokio::time::sleep(config.request_timeout);
    tokio::pin!(timer);
    let mut armed = false;
    let mut last_batch = 16;
    loop {
        let mut batch = Vec::new();
        // Most turns of this loop deliver results or write replies; only a turn with input
        // plans, and only it needs the time.
        let planned = if !conn.has_input() {
            0
        } else {
            conn.plan_input(
                &config.commands,
                Instant::now(),
                |sections| shared.stats.info(config, sections),
                |action| match action {
                    Action::Send(request) => {
                        // Sized like the last batch, so sending a pipeline is one allocation.
                        if batch.capacity() == 0 {
                            batch.reserve(last_batch);
                        }
                        batch.push(request);
                    }
                    Action::DeliverLater(request, delay) => {
                        // A stand-in for a slow store: the result comes back through the same
                        // channel as the store's, just late.
                        let late = results_tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = late.send(vec![(request, KVSResult::Ok)]);
                        });
                    }
                },
            )
        };
        shared.stats.commands(planned);
        if !batch.is_empty() {
            last_batch = batch.len();
        }
        // The dataflow is gone only when the process is shutting down.
        if !batch.is_empty() && shared.to_flow.send(batch).is_err() {
            return;
        }
        if let Err(OverLimit { unsent }) = conn.prepare_output(config.client_output_limit) {
            eprintln!(
                "kvs-zoo: closing client {id} ({peer}): {unsent} bytes of unread replies \
                 passed the client output limit ({} bytes)",
                config.client_output_limit
            );
            break;
        }
        if conn.finished() {
            break;
        }
        if !armed && let Some(deadline) = conn.next_deadline() {
            timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            armed = true;
        }

        let wants_input = conn.wants_input();
        let (input, outbox) = conn.buffers();
        let writing = !outbox.is_empty();
        tokio::select! {
            written = write_some(&mut wr, outbox), if writing => match written {
                Ok(n) if n > 0 => conn.outbox().advance(n),
                _ => break,
            },
            read = rd.read_buf(input), if wants_input => {
                if !matches!(read, Ok(n) if n > 0) {
                    conn.end_of_input();
                }
            }
            Some(batch) = results.recv() => {
                for (request, result) in batch {
                    conn.deliver(request, result);
                }
                // Take every result already waiting, so one write carries many replies.
                while let Ok(batch) = results.try_recv() {
                    for (request, result) in batch {
                        conn.deliver(request, result);
                    }
                }
            }
            () = &mut timer, if armed => {
                armed = false;
                conn.expire(Instant::now());
            }
        }
    }
    let goodbye = conn.goodbye(crate::edge::commands::unix_ms());
    if !goodbye.is_empty() {
        let _ = shared.to_flow.send(goodbye);
    }
    let _ = wr.shutdown().await;
}

/// Writes as much of `outbox` as the socket takes now, in one system call.
async fn write_some(wr: &mut OwnedWriteHalf, outbox: &mut Outbox) -> std::io::Result<usize> {
    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
    let n = outbox.fill(&mut slices);
    wr.write_vectored(&slices[..n]).await
}
