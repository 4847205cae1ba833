//! The transport itself: one endpoint per process, a listener for what peers send it, and
//! one outbound link per peer it sends to.
//!
//! **Links heal.** A link whose connection fails (the peer crashed, was restarted, or a
//! network cut reset it) is dialled again, with backoff from [`BACKOFF_MIN`] doubling to
//! [`BACKOFF_MAX`], for as long as the process runs — at once when the peer itself connects
//! to us (a restarted peer dials its peers as it starts); so is a link whose peer stops
//! reading for [`WRITE_STALL`] (a cut that drops packets never resets anything: only a timeout
//! notices it). The peer never sends on a connection we dialled, so reading from it notices
//! the peer's end closing at once, before a message is written into a dead connection.
//!
//! **Lossy, never reordered.** While a link is down its messages wait in its queue, up to a
//! bound, for [`LINGER`] (long enough for a restarted peer to come back); past either they
//! are dropped and counted ([`Endpoint::dropped`]), as are the messages a failed write took
//! with it, so a peer that stays dead costs its senders nothing. Every protocol above tolerates a lost message (gossip repeats,
//! Paxos retries, the router re-sends or the front's timeout answers); what none tolerates is
//! a sender that dies or freezes, or one peer's messages overtaking each other (a client's
//! pipelined `SET k a`, `SET k b` must not end with `a`). So a receiver delivers only from
//! the newest connection of each peer: once a peer dials again, whatever its older
//! connection still carries is dropped, never delivered after the newer one's.
//!
//! **Incarnations.** A connection opens with a hello naming the sender and its incarnation
//! (`role/member#incarnation`, the number of times that member was restarted). A receiver
//! keeps the highest incarnation it heard from each peer and refuses a connection from an
//! older one: a restarted member is told from the process it replaced.
//!
//! **Bounded.** Each link's queue holds at most [`MAX_QUEUED`] messages and
//! [`MAX_QUEUED_BYTES`] bytes (a stalled or dead peer costs memory up to a bound). No frame
//! is larger than [`MAX_FRAME`]: a larger message is dropped, with a line that says so, at
//! the sender; a receiver that reads a larger length stops reading that connection (the
//! sender then dials again). Upstream, batches are split by bytes well under the limit.
//!
//! On the wire: after the hello, every frame is `[u32 length][u8 channel][bincode payload]`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::sync::mpsc::{Receiver, Sender, channel};

use super::{AddressBook, Peer};

/// Most messages queued for one peer before further ones are dropped.
pub const MAX_QUEUED: usize = 100_000;
/// Most bytes queued for one peer before further messages are dropped.
pub const MAX_QUEUED_BYTES: usize = 256 * 1024 * 1024;
/// How long messages to a peer whose connection was lost wait for it to be back; past this,
/// what is queued for it is dropped, and so is every message to it until it is back.
pub const LINGER: Duration = Duration::from_secs(5);

/// What an endpoint keeps for a peer it cannot reach (see the module docs).
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Most bytes queued for one peer ([`MAX_QUEUED_BYTES`]).
    pub queued_bytes: usize,
    /// How long messages to a lost peer wait ([`LINGER`]).
    pub linger: Duration,
}

impl Default for Bounds {
    fn default() -> Self {
        Self {
            queued_bytes: MAX_QUEUED_BYTES,
            linger: LINGER,
        }
    }
}
/// How long a link that never connected stays quiet about it: the deployment's processes
/// start at about the same time, and a peer may not listen yet.
const QUIET_AT_START: Duration = Duration::from_secs(60);
/// The first pause before dialling a lost peer again.
pub const BACKOFF_MIN: Duration = Duration::from_millis(50);
/// The longest pause between two dials of a lost peer.
pub const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long one dial may take before it counts as failed (a cut drops the SYN silently).
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a write may wait on a peer that reads nothing before the link counts as lost.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
/// Longest frame (channel byte and payload) sent or accepted.
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Hands one channel's payloads, as they arrive, to whoever reads that channel.
type Deliver = Box<dyn Fn(u32, Bytes) + Send + Sync>;

/// One process's end of the transport: it listens for its peers and keeps a link to each
/// peer it sends to. A deployed process has one ([`listen`], [`send`]); tests make several.
pub struct Endpoint {
    me: Peer,
    incarnation: u32,
    book: AddressBook,
    /// Readers, by channel.
    channels: Mutex<HashMap<u8, Arc<Deliver>>>,
    /// Outbound links, by peer; each made on first send.
    links: Mutex<HashMap<Peer, Arc<Link>>>,
    /// Each peer's highest incarnation heard, and its newest connection.
    heard: Mutex<HashMap<Peer, Heard>>,
    /// Messages queued for other processes, by channel.
    sent: [AtomicU64; 256],
    /// Messages dropped: a peer's queue full, lost with a failed write, or too large
    /// (shared with the link tasks, which count what a lost connection took).
    dropped: Arc<AtomicU64>,
    /// What it keeps for a peer it cannot reach ([`Bounds::default`], smaller in tests).
    bounds: Bounds,
}

/// What a receiver knows of one peer.
struct Heard {
    incarnation: u32,
    /// The number of the peer's newest connection. Delivery holds this lock and checks it,
    /// so an older connection's frame is never delivered after a newer one's.
    newest: Arc<Mutex<u64>>,
}

/// The sending side of one link.
struct Link {
    queue: Sender<Bytes>,
    /// Bytes in `queue`.
    bytes: AtomicUsize,
    /// Whether the link is connected (for the lines that say when it is lost and back).
    connected: AtomicBool,
    /// Whether a full queue was already reported in this stall (one line, not one per
    /// message).
    full_reported: AtomicBool,
    /// Wakes the link's task from its backoff: the peer just connected to us.
    wake: Notify,
    /// When the link was created: the origin of `lost_at`.
    created: Instant,
    /// Milliseconds after `created` at which its connection was lost, or [`CONNECTED`].
    lost_at: AtomicU64,
}

/// `Link::lost_at` of a link that is connected (or has not connected yet).
const CONNECTED: u64 = u64::MAX;

// Free functions, not methods: Hydro's staged copy of this crate keeps no `impl` of a private
// type.

/// Whether `link` was lost longer than `linger` ago and is still down.
fn gone(link: &Link, linger: Duration) -> bool {
    let lost_at = link.lost_at.load(Ordering::Relaxed);
    lost_at != CONNECTED
        && link.created.elapsed().as_millis() as u64
            > lost_at.saturating_add(linger.as_millis() as u64)
}

/// Records that `link` was lost now.
fn mark_lost(link: &Link) {
    let now = link.created.elapsed().as_millis() as u64;
    let _ = link
        .lost_at
        .compare_exchange(CONNECTED, now, Ordering::Relaxed, Ordering::Relaxed);
}

impl Endpoint {
    /// Starts an endpoint for `me` (in its `incarnation`), listening where `book` says `me`
    /// listens. Must be called within a tokio runtime.
    pub async fn start(
        me: Peer,
        incarnation: u32,
        book: AddressBook,
    ) -> Result<Arc<Endpoint>, String> {
        Self::start_bounded(me, incarnation, book, Bounds::default()).await
    }

    /// [`Self::start`], keeping what `bounds` say for a peer it cannot reach.
    pub async fn start_bounded(
        me: Peer,
        incarnation: u32,
        book: AddressBook,
        bounds: Bounds,
    ) -> Result<Arc<Endpoint>, String> {
        let Some(addr) = book.address(&me).map(str::to_owned) else {
            return Err(format!("no address for {me} in the address book"));
        };
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
        Ok(Self::over(me, incarnation, book, listener, bounds))
    }

    /// The endpoint of `me` (in its `incarnation`) over an already bound `listener`, keeping
    /// what `bounds` say for a peer it cannot reach.
    pub fn over(
        me: Peer,
        incarnation: u32,
        book: AddressBook,
        listener: TcpListener,
        bounds: Bounds,
    ) -> Arc<Self> {
        let endpoint = Arc::new(Endpoint {
            bounds,
            me,
            incarnation,
            book,
            channels: Mutex::default(),
            links: Mutex::default(),
            heard: Mutex::default(),
            sent: [const { AtomicU64::new(0) }; 256],
            dropped: Arc::default(),
        });
        let listening = endpoint.clone();
        tokio::spawn(async move {
            loop {
                if let Ok((socket, _)) = listener.accept().await {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(listening.clone().receive(socket));
                }
            }
        });
        endpoint
    }

    /// Registers `deliver` for `channel`'s payloads, each with its sender's member id.
    pub fn listen(&self, channel: u8, deliver: impl Fn(u32, Bytes) + Send + Sync + 'static) {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        channels.insert(channel, Arc::new(Box::new(deliver)));
    }

    /// Queues `payload` for `channel` at peer `to`; dropped (and counted) if the link's queue
    /// is full, or the frame would be larger than [`MAX_FRAME`].
    pub fn send(&self, to: &Peer, channel: u8, payload: &[u8]) {
        if payload.len() + 1 > MAX_FRAME {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "kvs-zoo: transport: a {}-byte message on channel {channel} to {to} is over the \
                 {MAX_FRAME}-byte frame limit; dropped",
                payload.len()
            );
            return;
        }
        let link = {
            let mut links = self.links.lock().unwrap_or_else(|e| e.into_inner());
            links
                .entry(to.clone())
                .or_insert_with(|| self.dial(to.clone()))
                .clone()
        };
        let mut frame = BytesMut::with_capacity(5 + payload.len());
        // Checked against MAX_FRAME above, so it fits in a u32.
        frame.put_u32((payload.len() + 1) as u32);
        frame.put_u8(channel);
        frame.put_slice(payload);
        let size = frame.len();
        let fits = link.bytes.load(Ordering::Relaxed) + size <= self.bounds.queued_bytes;
        let queued =
            fits && !gone(&link, self.bounds.linger) && link.queue.try_send(frame.freeze()).is_ok();
        if queued {
            link.bytes.fetch_add(size, Ordering::Relaxed);
            if *to != self.me {
                self.sent[usize::from(channel)].fetch_add(1, Ordering::Relaxed);
            }
            link.full_reported.store(false, Ordering::Relaxed);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if !link.full_reported.swap(true, Ordering::Relaxed) {
                eprintln!(
                    "kvs-zoo: transport: {to} is not keeping up (its queue is full); dropping \
                     messages to it"
                );
            }
        }
    }

    /// How many messages this endpoint has queued for other processes on `channel`
    /// (messages to itself, such as a replica's reads of its own core, are not counted).
    pub fn sent(&self, channel: u8) -> u64 {
        self.sent[usize::from(channel)].load(Ordering::Relaxed)
    }

    /// How many messages this endpoint has dropped: to peers whose queue was full, lost with
    /// a failed write, or too large to send.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Starts the link to `to`: a task that dials it, sends the hello, then writes what is
    /// queued, and dials again whenever the connection is lost.
    fn dial(&self, to: Peer) -> Arc<Link> {
        let (queue, pending) = channel::<Bytes>(MAX_QUEUED);
        let link = Arc::new(Link {
            queue,
            bytes: AtomicUsize::new(0),
            connected: AtomicBool::new(false),
            full_reported: AtomicBool::new(false),
            wake: Notify::new(),
            created: Instant::now(),
            lost_at: AtomicU64::new(CONNECTED),
        });
        let hello = format!("{}#{}", self.me, self.incarnation);
        match self.book.address(&to).map(str::to_owned) {
            Some(address) => {
                tokio::spawn(run_link(
                    to,
                    address,
                    hello,
                    link.clone(),
                    pending,
                    self.dropped.clone(),
                    self.bounds.linger,
                ));
            }
            // Nothing will ever read the queue: every send to this peer is dropped once
            // it is full.
            None => eprintln!("kvs-zoo: transport: no address for {to}; dropping messages to it"),
        }
        link
    }
}

/// The life of one link: dial, hello, write; on loss, say so once, and dial again with
/// backoff (cut short when the peer connects to us).
async fn run_link(
    to: Peer,
    address: String,
    hello: String,
    link: Arc<Link>,
    mut pending: Receiver<Bytes>,
    dropped: Arc<AtomicU64>,
    linger: Duration,
) {
    let started = Instant::now();
    let mut backoff = BACKOFF_MIN;
    let mut reported = false;
    loop {
        let socket = match dial_once(&address, &hello).await {
            Ok(socket) => socket,
            Err(e) => {
                let quiet = started.elapsed() < QUIET_AT_START && !reported;
                if !quiet && !std::mem::replace(&mut reported, true) {
                    eprintln!(
                        "kvs-zoo: transport: {to} is unreachable ({e}); its messages wait (up \
                         to a bound) while it is dialled again"
                    );
                }
                // Lost for longer than `linger`: what waited for it is dropped (and so is what
                // is sent to it from now on, see `Endpoint::send`).
                if gone(&link, linger) {
                    let (lost, bytes) = discard(&mut pending);
                    link.bytes.fetch_sub(bytes, Ordering::Relaxed);
                    dropped.fetch_add(lost, Ordering::Relaxed);
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = link.wake.notified() => {}
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        if std::mem::replace(&mut reported, false) {
            eprintln!("kvs-zoo: transport: {to} is reachable again");
        }
        link.connected.store(true, Ordering::Relaxed);
        link.lost_at.store(CONNECTED, Ordering::Relaxed);
        backoff = BACKOFF_MIN;
        match write_queued(socket, &mut pending, &link.bytes).await {
            Ok(()) => return, // every sender is gone: the endpoint itself was dropped
            Err((e, lost)) => {
                link.connected.store(false, Ordering::Relaxed);
                mark_lost(&link);
                dropped.fetch_add(lost, Ordering::Relaxed);
                reported = true;
                eprintln!(
                    "kvs-zoo: transport: the link to {to} was lost ({e}; {lost} messages with \
                     it); dialling again"
                );
            }
        }
    }
}

/// Connects to `address` and sends the hello.
async fn dial_once(address: &str, hello: &str) -> Result<TcpStream, String> {
    let mut socket = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(address)).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(e)) => return Err(format!("connect: {e}")),
        Err(_) => return Err("connect: timed out".into()),
    };
    let _ = socket.set_nodelay(true);
    let mut first = BytesMut::new();
    first.put_u32(u32::try_from(hello.len()).unwrap_or(0));
    first.put_slice(hello.as_bytes());
    socket
        .write_all(&first)
        .await
        .map_err(|e| format!("hello: {e}"))?;
    Ok(socket)
}

/// Writes what is queued, a burst at a time (one system call for many messages), until the
/// queue closes (`Ok`) or the connection is lost (`Err`, with how many messages were lost
/// with it): a write fails or stalls, or the peer closes its end. The peer never sends on
/// this connection, so anything read from it is its end closing: watching for that notices
/// a crashed peer at once, before a message is written into a connection that is already
/// dead (the first write after a peer's crash succeeds, locally, and is lost).
async fn write_queued(
    socket: TcpStream,
    pending: &mut Receiver<Bytes>,
    queued_bytes: &AtomicUsize,
) -> Result<(), (String, u64)> {
    let (mut reader, mut writer) = socket.into_split();
    let mut batch = Vec::with_capacity(64);
    let mut buf = BytesMut::new();
    let mut probe = [0u8; 64];
    loop {
        tokio::select! {
            received = pending.recv_many(&mut batch, 1024) => {
                if received == 0 {
                    return Ok(());
                }
                let messages = batch.len() as u64;
                for frame in batch.drain(..) {
                    buf.put_slice(&frame);
                }
                queued_bytes.fetch_sub(buf.len(), Ordering::Relaxed);
                match tokio::time::timeout(WRITE_STALL, writer.write_all(&buf)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err((format!("write: {e}"), messages)),
                    Err(_) => {
                        return Err((
                            format!("write: no progress for {}s", WRITE_STALL.as_secs()),
                            messages,
                        ));
                    }
                }
                buf.clear();
            }
            read = reader.read(&mut probe) => match read {
                Ok(0) => return Err(("closed by the peer".into(), 0)),
                Err(e) => return Err((format!("read: {e}"), 0)),
                Ok(_) => {}
            },
        }
    }
}

/// Empties `pending` without waiting: how many messages it held, and their bytes.
fn discard(pending: &mut Receiver<Bytes>) -> (u64, usize) {
    let (mut messages, mut bytes) = (0, 0);
    while let Ok(frame) = pending.try_recv() {
        messages += 1;
        bytes += frame.len();
    }
    (messages, bytes)
}

/// Parses a hello: `role/member#incarnation`.
fn parse_hello(hello: &[u8]) -> Option<(Peer, u32)> {
    let text = std::str::from_utf8(hello).ok()?;
    let (peer, incarnation) = text.split_once('#')?;
    Some((peer.parse().ok()?, incarnation.parse().ok()?))
}

impl Endpoint {
    /// Reads one peer's connection: its hello, then frames, handed to their channels'
    /// readers. (A method, not a free function: Hydro's staged copy of this crate reaches
    /// the endpoint's private parts only through its methods.)
    async fn receive(self: Arc<Self>, mut socket: TcpStream) {
        let endpoint = self;
        let mut buf = BytesMut::with_capacity(64 * 1024);
        // After the hello: the peer's member id, this connection's number, and the peer's
        // newest connection number (see `Heard`).
        let mut from: Option<(u32, u64, Arc<Mutex<u64>>)> = None;
        loop {
            // Everything whole in the buffer first.
            while buf.len() >= 4 {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len > MAX_FRAME {
                    return;
                }
                if buf.len() < 4 + len {
                    buf.reserve(4 + len - buf.len());
                    break;
                }
                buf.advance(4);
                let mut frame = buf.split_to(len).freeze();
                match from {
                    None => {
                        let Some((peer, incarnation)) = parse_hello(&frame) else {
                            return;
                        };
                        let Some((number, newest)) = endpoint.admit(&peer, incarnation) else {
                            return;
                        };
                        from = Some((peer.member, number, newest));
                    }
                    Some((member, number, ref newest)) if !frame.is_empty() => {
                        let channel = frame.get_u8();
                        let deliver = {
                            let channels =
                                endpoint.channels.lock().unwrap_or_else(|e| e.into_inner());
                            channels.get(&channel).cloned()
                        };
                        // Delivered only while this is the peer's newest connection, and under
                        // its lock: never after a frame of a newer one.
                        let current = newest.lock().unwrap_or_else(|e| e.into_inner());
                        if *current != number {
                            return;
                        }
                        if let Some(deliver) = deliver {
                            deliver(member, frame);
                        }
                    }
                    Some(_) => {}
                }
            }
            match socket.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Admits a connection from `peer` in `incarnation`, as the peer's newest: returns its
    /// number and the peer's newest-connection lock. Refused (`None`) if a later incarnation
    /// of the peer was already heard from (the connection is from a process that was
    /// replaced). The link to the peer, if down, dials again at once: the peer is back.
    fn admit(&self, peer: &Peer, incarnation: u32) -> Option<(u64, Arc<Mutex<u64>>)> {
        let admitted = {
            let mut heard = self.heard.lock().unwrap_or_else(|e| e.into_inner());
            let known = heard.entry(peer.clone()).or_insert_with(|| Heard {
                incarnation,
                newest: Arc::default(),
            });
            if incarnation < known.incarnation {
                eprintln!(
                    "kvs-zoo: transport: refusing {peer} incarnation {incarnation}: incarnation \
                     {} replaced it",
                    known.incarnation
                );
                return None;
            }
            if incarnation > known.incarnation {
                eprintln!("kvs-zoo: transport: {peer} restarted (incarnation {incarnation})");
                known.incarnation = incarnation;
            }
            let mut newest = known.newest.lock().unwrap_or_else(|e| e.into_inner());
            *newest += 1;
            (*newest, known.newest.clone())
        };
        let link = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(peer)
            .cloned();
        if let Some(link) = link
            && !link.connected.load(Ordering::Relaxed)
        {
            link.wake.notify_one();
        }
        Some(admitted)
    }
}

/// This process's endpoint.
static ENDPOINT: OnceLock<Arc<Endpoint>> = OnceLock::new();

/// This process's endpoint, started on first use from the address book and incarnation in
/// its environment. A process without them (a misconfigured deployment) exits with a
/// message: it could reach no peer.
fn endpoint() -> &'static Arc<Endpoint> {
    ENDPOINT.get_or_init(|| {
        let fail = |e: String| -> ! {
            eprintln!("kvs-zoo: transport: {e}");
            std::process::exit(2);
        };
        let (me, book) = AddressBook::from_env().unwrap_or_else(|e| fail(e));
        let Some(addr) = book.address(&me).map(str::to_owned) else {
            fail(format!("no address for {me} in the address book"));
        };
        // Bound here, synchronously, so that the endpoint exists before the first message is
        // read or sent; the accept loop runs on the process's runtime.
        let listener = std::net::TcpListener::bind(&addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .and_then(TcpListener::from_std)
            .unwrap_or_else(|e| fail(format!("cannot listen on {addr}: {e}")));
        Endpoint::over(
            me,
            crate::membership::incarnation(),
            book,
            listener,
            Bounds::default(),
        )
    })
}

/// Registers `deliver` for `channel`'s payloads at this process's endpoint.
pub fn listen(channel: u8, deliver: impl Fn(u32, Bytes) + Send + Sync + 'static) {
    endpoint().listen(channel, deliver);
}

/// Queues `payload` for `channel` at peer `to` from this process's endpoint (see
/// [`Endpoint::send`]).
pub fn send(to: &Peer, channel: u8, payload: &[u8]) {
    endpoint().send(to, channel, payload);
}

/// How many messages this process has sent other processes on `channel` (0 before its
/// endpoint starts).
pub fn sent(channel: u8) -> u64 {
    ENDPOINT.get().map_or(0, |e| e.sent(channel))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    /// A book with two peers on free ports.
    fn book() -> (AddressBook, Peer, Peer) {
        let a = Peer::new("proxy", 0);
        let b = Peer::new("replica", 1);
        let mut book = AddressBook::default();
        for peer in [&a, &b] {
            let port = crate::deploy::free_port().unwrap();
            book.insert(peer.clone(), format!("127.0.0.1:{port}"));
        }
        (book, a, b)
    }

    /// Reads one length-prefixed frame from `socket`.
    async fn read_frame(socket: &mut TcpStream) -> Vec<u8> {
        let len = socket.read_u32().await.unwrap() as usize;
        let mut body = vec![0; len];
        socket.read_exact(&mut body).await.unwrap();
        body
    }

    /// Reads a hello from `socket`.
    async fn read_hello(socket: &mut TcpStream) -> String {
        String::from_utf8(read_frame(socket).await).unwrap()
    }

    /// Reads one message's payload (after its channel byte) from `socket`.
    async fn read_payload(socket: &mut TcpStream) -> Vec<u8> {
        read_frame(socket).await[1..].to_vec()
    }

    /// The first incarnation of `b` listens at its address, reads one message from `sender`,
    /// then crashes (its socket and listener close). Returns `b`'s address.
    async fn b_reads_one_message_then_crashes(
        sender: &Endpoint,
        book: &AddressBook,
        b: &Peer,
    ) -> String {
        let b_addr = book.address(b).unwrap().to_string();
        let listener = TcpListener::bind(&b_addr).await.unwrap();
        sender.send(b, 9, b"one");
        let (mut socket, _) = listener.accept().await.unwrap();
        assert_eq!(read_hello(&mut socket).await, "proxy/0#0");
        assert_eq!(read_payload(&mut socket).await, b"one");
        b_addr
    }

    #[tokio::test]
    async fn a_lost_link_is_dialled_again_and_delivers_in_order_what_waited() {
        let (book, a, b) = book();
        let sender = Endpoint::start(a.clone(), 0, book.clone()).await.unwrap();
        let b_addr = b_reads_one_message_then_crashes(&sender, &book, &b).await;

        // While b is gone, messages wait in the link's queue.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..100u8 {
            sender.send(&b, 9, &[i]);
        }

        // b comes back on its address: the link dials it again and delivers, in order.
        let listener = TcpListener::bind(&b_addr).await.unwrap();
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("the link dialled again within its longest backoff")
            .unwrap();
        assert_eq!(read_hello(&mut socket).await, "proxy/0#0");
        for i in 0..100u8 {
            assert_eq!(read_payload(&mut socket).await, [i]);
        }
        assert_eq!(sender.dropped(), 0);
    }

    #[tokio::test]
    async fn messages_to_an_unreachable_peer_wait_up_to_a_bound_then_are_dropped_and_counted() {
        let (book, a, b) = book();
        // Nobody listens at b's address.
        let bounds = Bounds {
            queued_bytes: 1000,
            ..Bounds::default()
        };
        let sender = Endpoint::start_bounded(a, 0, book, bounds).await.unwrap();
        for _ in 0..100 {
            sender.send(&b, 9, &[0; 95]);
        }
        // Ten 100-byte frames fit in 1000 bytes; the other ninety are dropped.
        assert_eq!(sender.dropped(), 90);
    }

    #[tokio::test]
    async fn only_a_peers_newest_connection_is_delivered() {
        let (book, a, _) = book();
        let receiver = Endpoint::start(a.clone(), 0, book.clone()).await.unwrap();
        let (tx, mut rx) = unbounded_channel();
        receiver.listen(4, move |from, payload| {
            let _ = tx.send((from, payload));
        });
        let addr = book.address(&a).unwrap().to_string();
        let mut older = raw_send(&addr, "replica/1#0", 4, b"first").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap().unwrap().1, Bytes::from_static(b"first"));
        let _newer = raw_send(&addr, "replica/1#0", 4, b"second").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(got.unwrap().unwrap().1, Bytes::from_static(b"second"));
        // What the older connection still carries is never delivered after the newer's.
        let mut out = BytesMut::new();
        out.put_u32(6);
        out.put_u8(4);
        out.put_slice(b"stale");
        older.write_all(&out).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            rx.try_recv().is_err(),
            "an older connection's frame was delivered"
        );
    }

    /// Sends a raw hello and one frame on `channel` to `addr`.
    async fn raw_send(addr: &str, hello: &str, channel: u8, payload: &[u8]) -> TcpStream {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        let mut out = BytesMut::new();
        out.put_u32(hello.len() as u32);
        out.put_slice(hello.as_bytes());
        out.put_u32(payload.len() as u32 + 1);
        out.put_u8(channel);
        out.put_slice(payload);
        socket.write_all(&out).await.unwrap();
        socket
    }

    #[tokio::test]
    async fn a_connection_from_a_replaced_incarnation_is_refused() {
        let (book, a, _) = book();
        let receiver = Endpoint::start(a.clone(), 0, book.clone()).await.unwrap();
        let (tx, mut rx) = unbounded_channel();
        receiver.listen(4, move |from, payload| {
            let _ = tx.send((from, payload));
        });
        let addr = book.address(&a).unwrap().to_string();

        let _new = raw_send(&addr, "replica/1#2", 4, b"from the restarted one").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            got.unwrap().unwrap(),
            (1, Bytes::from_static(b"from the restarted one"))
        );

        let mut old = raw_send(&addr, "replica/1#1", 4, b"from the replaced one").await;
        let mut byte = [0u8; 1];
        let closed = tokio::time::timeout(Duration::from_secs(5), old.read(&mut byte)).await;
        assert!(
            matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
            "the old incarnation was not cut off"
        );
        assert!(
            rx.try_recv().is_err(),
            "a replaced incarnation's message was delivered"
        );

        let _same = raw_send(&addr, "replica/1#2", 4, b"a second connection").await;
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
        assert_eq!(
            got.unwrap().unwrap().1,
            Bytes::from_static(b"a second connection")
        );
    }

    #[test]
    fn hellos_name_a_peer_and_its_incarnation() {
        assert_eq!(
            parse_hello(b"acceptor/2#5"),
            Some((Peer::new("acceptor", 2), 5))
        );
        assert_eq!(parse_hello(b"acceptor/2"), None);
        assert_eq!(parse_hello(b"acceptor/2#x"), None);
    }

    #[tokio::test]
    async fn messages_to_a_peer_lost_longer_than_the_linger_are_dropped_until_it_is_back() {
        let (book, a, b) = book();
        let bounds = Bounds {
            linger: Duration::from_millis(200),
            ..Bounds::default()
        };
        let sender = Endpoint::start_bounded(a, 0, book.clone(), bounds)
            .await
            .unwrap();
        let b_addr = b_reads_one_message_then_crashes(&sender, &book, &b).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Within the linger, messages wait; past it, they are dropped, and so are new ones.
        for i in 0..10u8 {
            sender.send(&b, 9, &[i]);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sender.dropped(), 10, "what waited past the linger");
        sender.send(&b, 9, b"late");
        assert_eq!(sender.dropped(), 11, "sent while the peer is gone");
        // It comes back: the link dials it, and messages flow again.
        let listener = TcpListener::bind(&b_addr).await.unwrap();
        let (mut socket, _) = tokio::time::timeout(Duration::from_secs(5), listener.accept())
            .await
            .expect("dialled again")
            .unwrap();
        assert_eq!(read_hello(&mut socket).await, "proxy/0#0");
        tokio::time::sleep(Duration::from_millis(100)).await;
        sender.send(&b, 9, b"back");
        assert_eq!(read_payload(&mut socket).await, b"back");
    }
}
