//! The Redis-protocol front: a TCP server that runs *inside* the proxy's Hydro process.
//!
//! Hydro's many-client external port loses the first reply to a freshly connected client (see
//! `HYDRO_NOTES.md`), so the front is our own tokio code, attached to the dataflow as a Hydro
//! *sidecar*: [`start`] returns a stream the dataflow reads requests from and a sink it writes
//! responses to. Each connection is one task that
//!
//! - decodes RESP ([`crate::resp`]), plans each command ([`crate::commands`]) and numbers its
//!   operations with consecutive request ids;
//! - keeps one *slot* per command, in arrival order ([`crate::reply_queue`]), fills slots as
//!   results come back (matched by request id: in a sharded store replies overtake each
//!   other), and writes every completed slot at the head of the queue. That is how pipelined
//!   commands are answered in order.
//!
//! A command's slot is queued *before* its operations enter the dataflow, so a result can never
//! arrive for a slot the connection does not know yet — the race that lost replies on Hydro's
//! own port. One task per connection, rather than a reader and a writer, saves a task wake-up
//! and a channel message per request.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::commands::{Limits, Plan, plan};
use crate::protocol::{ClientId, KVSRequest, KVSResponse, KVSResult, RequestId};
use crate::reply_queue::{ReplyQueue, Slot};
use crate::resp::{Reply, RespDecoder};

/// The requests the front sends into the dataflow.
pub type FrontRequest = KVSRequest<Bytes>;
/// The responses the dataflow sends back to the front.
pub type FrontResponse = KVSResponse<Bytes>;

/// Where and how the front listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FrontConfig {
    /// `host:port` to listen on; `127.0.0.1` unless the user asks otherwise.
    pub bind: String,
    /// Longest key or value accepted, in bytes.
    pub max_value_bytes: usize,
}

/// Environment variable carrying [`FrontConfig::bind`] to the proxy process.
pub const BIND_VAR: &str = "KVS_ZOO_BIND";
/// Environment variable carrying [`FrontConfig::max_value_bytes`] to the proxy process.
pub const MAX_VALUE_VAR: &str = "KVS_ZOO_MAX_VALUE_BYTES";

impl FrontConfig {
    /// Listens on 127.0.0.1:`port` with the default 1 MiB value limit.
    pub fn localhost(port: u16) -> Self {
        Self {
            bind: format!("127.0.0.1:{port}"),
            max_value_bytes: crate::commands::DEFAULT_MAX_VALUE_BYTES,
        }
    }

    /// The settings as environment variables for the proxy process.
    ///
    /// They travel by environment rather than being compiled into the process's code, so
    /// serving on another port reuses the already-built process instead of rebuilding it.
    pub fn to_env(&self) -> [(&'static str, String); 2] {
        [
            (BIND_VAR, self.bind.clone()),
            (MAX_VALUE_VAR, self.max_value_bytes.to_string()),
        ]
    }

    /// Reads the settings [`FrontConfig::to_env`] wrote.
    pub fn from_env() -> Result<Self, String> {
        let var = |name| std::env::var(name).map_err(|_| format!("{name} is not set"));
        let max = var(MAX_VALUE_VAR)?;
        Ok(Self {
            bind: var(BIND_VAR)?,
            max_value_bytes: max
                .parse()
                .map_err(|_| format!("{MAX_VALUE_VAR}={max} is not a number of bytes"))?,
        })
    }
}

/// Each connection's writer, by client id: where [`ReplySink`] delivers responses.
type Registry = Arc<Mutex<HashMap<ClientId, UnboundedSender<(RequestId, KVSResult<Bytes>)>>>>;

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
    let bind = config.bind.as_str();
    let listener = match std::net::TcpListener::bind(bind) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kvs-zoo: cannot listen on {bind}: {e}");
            std::process::exit(2);
        }
    };
    listener
        .set_nonblocking(true)
        .expect("a bound listener can be made non-blocking");
    let listener =
        tokio::net::TcpListener::from_std(listener).expect("the front starts inside tokio");
    let limits = Limits {
        max_value_bytes: config.max_value_bytes,
    };
    let registry: Registry = Arc::default();
    let (to_flow, from_front) = unbounded_channel();

    let accept_registry = registry.clone();
    tokio::spawn(async move {
        // Client ids are unique for the life of the process, so a late response for a
        // closed connection can never reach a new one.
        let next_id = AtomicU64::new(1);
        loop {
            match listener.accept().await {
                Ok((socket, _)) => {
                    let id = next_id.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(connection(
                        id,
                        socket,
                        to_flow.clone(),
                        accept_registry.clone(),
                        limits,
                    ));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                Err(e) => {
                    eprintln!("kvs-zoo: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    });
    (RequestStream(from_front), ReplySink(registry))
}

/// The stream of requests from every connection, in arrival order.
pub struct RequestStream(UnboundedReceiver<FrontRequest>);

impl futures::Stream for RequestStream {
    type Item = FrontRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<FrontRequest>> {
        self.0.poll_recv(cx)
    }
}

/// Delivers each response to its connection's writer. Responses for connections that have
/// closed are dropped: nobody is left to read them.
pub struct ReplySink(Registry);

impl futures::Sink<FrontResponse> for ReplySink {
    type Error = std::convert::Infallible;

    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, resp: FrontResponse) -> Result<(), Self::Error> {
        let writers = self.0.lock().expect("registry lock is never poisoned");
        if let Some(writer) = writers.get(&resp.client) {
            let _ = writer.send((resp.request, resp.result));
        }
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
}

async fn connection(
    id: ClientId,
    socket: TcpStream,
    to_flow: UnboundedSender<FrontRequest>,
    registry: Registry,
    limits: Limits,
) {
    // Replies are small and latency matters more than packet count.
    let _ = socket.set_nodelay(true);
    let (mut rd, mut wr) = socket.into_split();
    let (results_tx, mut results) = unbounded_channel();
    registry
        .lock()
        .expect("registry lock is never poisoned")
        .insert(id, results_tx);

    let mut decoder = RespDecoder::new(limits.max_value_bytes);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut out = BytesMut::with_capacity(16 * 1024);
    let mut queue = ReplyQueue::default();
    let mut next_request: RequestId = 0;
    // False once the client is done sending (end of input, QUIT, or a protocol error).
    let mut reading = true;
    loop {
        // Plan every complete command in the buffer. A command's slot is queued before its
        // operations enter the dataflow, so no result can arrive for an unknown slot.
        while reading {
            let slot = match decoder.decode(&mut buf) {
                Ok(None) => break,
                Err(e) => Slot::ready(Some(Reply::err(e)), true),
                Ok(Some(cmd)) => match plan(cmd, limits, id) {
                    Plan::Reply(r) => Slot::ready(Some(r), false),
                    Plan::ReplyAndClose(r) => Slot::ready(Some(r), true),
                    Plan::Store(ops, kind) => {
                        let first = next_request;
                        next_request += ops.len() as u64;
                        let slot = Slot::pending(first, ops.len(), kind);
                        for (request, op) in (first..).zip(ops) {
                            // The dataflow is gone only when the process is shutting down.
                            if to_flow
                                .send(KVSRequest {
                                    client: id,
                                    request,
                                    op,
                                })
                                .is_err()
                            {
                                return;
                            }
                        }
                        slot
                    }
                },
            };
            reading = !slot.closes();
            queue.expect(slot);
        }
        // Write every reply that is ready, in order, in one write.
        let closing = queue.drain_ready(&mut out);
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                break;
            }
            out.clear();
        }
        if closing {
            break;
        }
        tokio::select! {
            read = rd.read_buf(&mut buf), if reading => {
                if !matches!(read, Ok(n) if n > 0) {
                    // End of input (or a broken socket): answer what was asked, then close.
                    queue.expect(Slot::ready(None, true));
                    reading = false;
                }
            }
            Some((request, result)) = results.recv() => {
                queue.deliver(request, result);
                // Take every result already waiting, so one write carries many replies.
                while let Ok((request, result)) = results.try_recv() {
                    queue.deliver(request, result);
                }
            }
        }
    }
    registry
        .lock()
        .expect("registry lock is never poisoned")
        .remove(&id);
    let _ = wr.shutdown().await;
}
