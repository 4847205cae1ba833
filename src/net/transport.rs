//! The transport itself: one endpoint per process, a listener for what peers send it, and
//! one outbound connection per peer it sends to.
//!
//! **Fail-stop, for real.** A connection that fails after it was established marks its
//! peer gone: what is queued for it and whatever is sent to it later is dropped, and one
//! line says so. The sender goes on. (A first connection is retried for a while: peers of a
//! deployment start at about the same time, and one may not be listening yet.)
//!
//! **Bounded.** Each peer's queue holds at most [`MAX_QUEUED`] messages; past that, messages
//! to that peer are dropped, so a stalled peer costs memory up to a bound, not without end.
//! Replicated stores tolerate a lost message (gossip repeats, the router re-sends or the
//! front's timeout answers); what they cannot tolerate is a sender that dies or freezes.
//!
//! On the wire: a connection opens with a hello frame naming the sender (`role/member`);
//! every frame after it is `[u32 length][u8 channel][bincode payload]`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{Sender, channel, error::TrySendError};

use super::{AddressBook, Peer};

/// Most messages queued for one peer before further ones are dropped.
pub const MAX_QUEUED: usize = 100_000;
/// How long a first connection to a peer is retried.
const CONNECT_FOR: Duration = Duration::from_secs(60);
/// Longest frame accepted from a peer (a peer that sends more is cut off).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// Hands one channel's payloads, as they arrive, to whoever reads that channel.
type Deliver = Box<dyn Fn(u32, Bytes) + Send + Sync>;

/// This process's endpoint.
struct Endpoint {
    me: Peer,
    book: AddressBook,
    /// Readers, by channel.
    channels: Mutex<HashMap<u8, Arc<Deliver>>>,
    /// Outbound queues, by peer; created on first send.
    outbound: Mutex<HashMap<Peer, Outbound>>,
}

struct Outbound {
    queue: Sender<Bytes>,
    gone: Arc<AtomicBool>,
}

static ENDPOINT: OnceLock<Arc<Endpoint>> = OnceLock::new();

/// Messages queued for other processes so far, by channel (a replica reports its gossip
/// count in its heartbeats).
static SENT: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// How many messages this process has sent other processes on `channel` (messages to
/// itself, such as a replica's reads of its own core, are not counted).
pub fn sent(channel: u8) -> u64 {
    SENT[usize::from(channel)].load(Ordering::Relaxed)
}

/// This process's endpoint, started on first use from the address book in its environment.
/// A process without one (a misconfigured deployment) exits with a message: it could reach
/// no peer.
fn endpoint() -> &'static Arc<Endpoint> {
    ENDPOINT.get_or_init(|| {
        let (me, book) = AddressBook::from_env().unwrap_or_else(|e| {
            eprintln!("kvs-zoo: transport: {e}");
            std::process::exit(2);
        });
        let Some(addr) = book.address(&me).map(str::to_owned) else {
            eprintln!("kvs-zoo: transport: no address for {me} in the address book");
            std::process::exit(2);
        };
        let endpoint = Arc::new(Endpoint {
            me,
            book,
            channels: Mutex::default(),
            outbound: Mutex::default(),
        });
        let listening = endpoint.clone();
        tokio::spawn(async move {
            let listener = match TcpListener::bind(&addr).await {
                Ok(listener) => listener,
                Err(e) => {
                    eprintln!("kvs-zoo: transport: cannot listen on {addr}: {e}");
                    std::process::exit(2);
                }
            };
            loop {
                if let Ok((socket, _)) = listener.accept().await {
                    let _ = socket.set_nodelay(true);
                    tokio::spawn(receive(socket, listening.clone()));
                }
            }
        });
        endpoint
    })
}

/// Starts this process's endpoint and registers `deliver` for `channel`'s payloads.
pub fn listen(channel: u8, deliver: impl Fn(u32, Bytes) + Send + Sync + 'static) {
    let endpoint = endpoint();
    let mut channels = endpoint.channels.lock().unwrap_or_else(|e| e.into_inner());
    channels.insert(channel, Arc::new(Box::new(deliver)));
}

/// Queues `payload` for `channel` at peer `to`; dropped if the peer is gone or its queue is
/// full.
pub fn send(to: &Peer, channel: u8, payload: &[u8]) {
    let endpoint = endpoint();
    let mut frame = BytesMut::with_capacity(5 + payload.len());
    frame.put_u32(u32::try_from(payload.len() + 1).unwrap_or(u32::MAX));
    frame.put_u8(channel);
    frame.put_slice(payload);
    let mut outbound = endpoint.outbound.lock().unwrap_or_else(|e| e.into_inner());
    let queue = outbound
        .entry(to.clone())
        .or_insert_with(|| connect(endpoint, to.clone()));
    if queue.gone.load(Ordering::Relaxed) {
        return;
    }
    if *to != endpoint.me {
        SENT[usize::from(channel)].fetch_add(1, Ordering::Relaxed);
    }
    if let Err(TrySendError::Full(_)) = queue.queue.try_send(frame.freeze()) {
        eprintln!("kvs-zoo: transport: {to} is not keeping up; dropping a message to it");
    }
}

/// Starts the outbound connection to `to`.
fn connect(endpoint: &Endpoint, to: Peer) -> Outbound {
    let (queue, mut pending) = channel::<Bytes>(MAX_QUEUED);
    let gone = Arc::new(AtomicBool::new(false));
    let outbound = Outbound {
        queue,
        gone: gone.clone(),
    };
    let address = endpoint.book.address(&to).map(str::to_owned);
    let hello = endpoint.me.to_string();
    tokio::spawn(async move {
        let fail = |why: String| {
            gone.store(true, Ordering::Relaxed);
            eprintln!("kvs-zoo: transport: {to} is gone ({why}); dropping messages to it");
        };
        let Some(address) = address else {
            return fail("no address in the address book".into());
        };
        let deadline = Instant::now() + CONNECT_FOR;
        let mut socket = loop {
            match TcpStream::connect(&address).await {
                Ok(socket) => break socket,
                Err(e) if Instant::now() > deadline => return fail(format!("connect: {e}")),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let _ = socket.set_nodelay(true);
        let mut first = BytesMut::new();
        first.put_u32(u32::try_from(hello.len()).unwrap_or(0));
        first.put_slice(hello.as_bytes());
        if let Err(e) = socket.write_all(&first).await {
            return fail(format!("hello: {e}"));
        }
        // Write everything queued at once: one system call for a burst of messages.
        let mut batch = Vec::with_capacity(64);
        let mut buf = BytesMut::new();
        while pending.recv_many(&mut batch, 1024).await > 0 {
            for frame in batch.drain(..) {
                buf.put_slice(&frame);
            }
            if let Err(e) = socket.write_all(&buf).await {
                // Dropping `pending` here discards what is queued; later sends see `gone`.
                return fail(format!("write: {e}"));
            }
            buf.clear();
        }
    });
    outbound
}

/// Reads one peer's connection: its hello, then frames, handed to their channels' readers.
async fn receive(mut socket: TcpStream, endpoint: Arc<Endpoint>) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut from: Option<u32> = None;
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
                    let hello = String::from_utf8_lossy(&frame).into_owned();
                    match hello.parse::<Peer>() {
                        Ok(peer) => from = Some(peer.member),
                        Err(_) => return,
                    }
                }
                Some(member) if !frame.is_empty() => {
                    let channel = frame.get_u8();
                    let deliver = {
                        let channels = endpoint.channels.lock().unwrap_or_else(|e| e.into_inner());
                        channels.get(&channel).cloned()
                    };
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
