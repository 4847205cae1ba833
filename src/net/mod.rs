//! How a deployment's processes reach each other: Hydro's network channels, or our own
//! transport, which survives its peers' crashes and heals when they come back.
//!
//! Hydro's deployed network channels panic the *sender* when a peer dies: every sink error
//! reaches a `panic!` in the generated code, and a cluster's demultiplexed sink shares one
//! error path, so `kill -9` of one replica takes down the proxy and every other replica with
//! it (hydro-project/hydro#3130, open as of 0.17.0-alpha.6). That is the failure a replicated
//! store exists to survive. So the replicated architectures send between processes with
//! [`Transport::Zoo`]: a small transport of our own ([`transport`]) that drops messages to a
//! dead peer, goes on, and dials the peer again until it is back. Hydro's simulator runs only Hydro's channels, so sim tests use
//! [`Transport::Hydro`]; everything else in the dataflow is the same code.
//!
//! A process finds its peers in its environment: [`AddressBook::from_env`] reads
//! `KVS_ZOO_PEERS` (every process's `role/member=address`) and `KVS_ZOO_SELF` (its own
//! `role/member`), which the deployment sets from its topology (see `crate::deploy`).
//!
//! This folder may import [`crate::server`] (the proxy's location type) and what is below it.

pub mod links;
pub mod transport;

use std::fmt;
use std::pin::Pin;
use std::str::FromStr;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TrySendError;

/// Which network carries messages between a deployment's processes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// Hydro's own channels: what the simulator runs.
    Hydro,
    /// Hydro's channels, where a message between cluster members may be delayed forever —
    /// lost — and messages overtake each other: the simulator's lossy network, for tests of
    /// safety only (`.test_safety_only()`; nothing can be promised to arrive). Links with
    /// the proxy stay reliable.
    HydroLossy,
    /// Our transport ([`transport`]): what deployments run.
    Zoo,
}

/// The environment variable listing every process's address.
pub const ENV_PEERS: &str = "KVS_ZOO_PEERS";
/// The environment variable naming this process.
pub const ENV_SELF: &str = "KVS_ZOO_SELF";

/// Channels of [`Transport::Zoo`]: one per kind of message, so each has one type.
pub mod channel {
    /// Client requests, proxy to replica.
    pub const REQUESTS: u8 = 1;
    /// Responses, replica to proxy.
    pub const RESPONSES: u8 = 2;
    /// Heartbeats, replica to proxy (liveness beats of the linearizable store's replicas
    /// too).
    pub const HEARTBEATS: u8 = 3;
    /// Gossip, replica to replica.
    pub const GOSSIP: u8 = 4;
    /// Requests to be ordered: proxy to proposer (Multi-Paxos).
    pub const ORDER: u8 = 5;
    /// Prepare and accept, proposer to acceptor.
    pub const TO_ACCEPTOR: u8 = 6;
    /// Promise and accepted, acceptor to proposer.
    pub const FROM_ACCEPTOR: u8 = 7;
    /// The leader's heartbeats, to proposers and to the proxy.
    pub const LEADER: u8 = 8;
    /// Decided slots, proposer to replica.
    pub const DECIDED: u8 = 9;
    /// A replica's progress through the log, to proposers.
    pub const APPLIED: u8 = 10;
    /// Proposers' liveness beats, to the proxy.
    pub const PROPOSER_BEATS: u8 = 11;
    /// Acceptors' liveness beats, to the proxy.
    pub const ACCEPTOR_BEATS: u8 = 12;
    /// Requests forwarded by a follower proposer to the leader (Multi-Paxos): a channel of
    /// its own, because proposers already read [`ORDER`] from the proxy.
    pub const FORWARD: u8 = 13;
    /// The leader's request that a replica send its state to one that fell behind the log
    /// (Multi-Paxos state transfer), proposer to replica.
    pub const SNAPSHOT_ASK: u8 = 14;
    /// A snapshot's parts, replica to replica.
    pub const SNAPSHOT: u8 = 15;
}

/// A process of the deployment: its role and its member id in that role.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peer {
    /// `proxy`, `replica`, …
    pub role: String,
    /// 0 for the proxy; the member id in a cluster.
    pub member: u32,
}

impl Peer {
    /// Member `member` of `role`.
    pub fn new(role: &str, member: u32) -> Self {
        Self {
            role: role.to_string(),
            member,
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.role, self.member)
    }
}

impl FromStr for Peer {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (role, member) = text
            .split_once('/')
            .ok_or_else(|| format!("'{text}' is not role/member"))?;
        let member = member
            .parse()
            .map_err(|_| format!("'{text}': '{member}' is not a member id"))?;
        if role.is_empty() {
            return Err(format!("'{text}' has no role"));
        }
        Ok(Peer::new(role, member))
    }
}

/// Where every process of a deployment listens.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressBook {
    entries: Vec<(Peer, String)>,
}

impl AddressBook {
    /// Adds `peer`, listening at `address`.
    pub fn insert(&mut self, peer: Peer, address: String) {
        self.entries.push((peer, address));
    }

    /// Where `peer` listens.
    pub fn address(&self, peer: &Peer) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _)| p == peer)
            .map(|(_, a)| a.as_str())
    }

    /// The book as the value of [`ENV_PEERS`]: `role/member=address`, comma-separated.
    pub fn to_env(&self) -> String {
        let entries: Vec<String> = self
            .entries
            .iter()
            .map(|(peer, address)| format!("{peer}={address}"))
            .collect();
        entries.join(",")
    }

    /// Parses what [`Self::to_env`] wrote.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut book = AddressBook::default();
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            let (peer, address) = entry
                .split_once('=')
                .ok_or_else(|| format!("'{entry}' is not role/member=address"))?;
            book.insert(peer.parse()?, address.to_string());
        }
        Ok(book)
    }

    /// This process's name and the deployment's address book, from its environment.
    pub fn from_env() -> Result<(Peer, AddressBook), String> {
        let me = std::env::var(ENV_SELF)
            .map_err(|_| format!("{ENV_SELF} is not set"))?
            .parse()?;
        let book = AddressBook::parse(
            &std::env::var(ENV_PEERS).map_err(|_| format!("{ENV_PEERS} is not set"))?,
        )?;
        Ok((me, book))
    }
}

/// Sends `message` on `channel` to member `member` of `role`, over [`Transport::Zoo`].
/// Dropped, never an error, if that process is gone (see [`transport`]).
pub fn send_to<T: Serialize>(role: &str, member: u32, channel: u8, message: &T) {
    match bincode::serialize(message) {
        Ok(payload) => transport::send(&Peer::new(role, member), channel, &payload),
        Err(e) => eprintln!("kvs-zoo: transport: cannot encode a message: {e}"),
    }
}

/// The messages of type `T` arriving on `channel` over [`Transport::Zoo`], each with the
/// sender's member id, in the order each sender sent them.
///
/// Bounded like the sending side: past [`transport::MAX_QUEUED`] messages not yet read by the
/// dataflow, further ones are dropped (with one line per backlog), as a lost message would be.
pub fn inbox<T: DeserializeOwned + Send + 'static>(channel: u8) -> Inbox<T> {
    let (deliver, arrived) = tokio::sync::mpsc::channel(transport::MAX_QUEUED);
    let reported = std::sync::atomic::AtomicBool::new(false);
    transport::listen(
        channel,
        move |from, payload: Bytes| match bincode::deserialize::<T>(&payload) {
            Ok(message) => match deliver.try_send((from, message)) {
                Ok(()) => reported.store(false, std::sync::atomic::Ordering::Relaxed),
                Err(TrySendError::Full(_)) => {
                    if !reported.swap(true, std::sync::atomic::Ordering::Relaxed) {
                        eprintln!(
                            "kvs-zoo: transport: {} messages on channel {channel} are waiting to \
                             be read; dropping more",
                            transport::MAX_QUEUED
                        );
                    }
                }
                Err(TrySendError::Closed(_)) => {}
            },
            Err(e) => eprintln!(
                "kvs-zoo: transport: a message on channel {channel} from member {from} does not decode: {e}"
            ),
        },
    );
    Inbox { arrived }
}

/// A stream of `(sender's member id, message)` (see [`inbox`]).
pub struct Inbox<T> {
    arrived: Receiver<(u32, T)>,
}

// The receiver is a handle to a shared queue: moving it never moves a `T`.
impl<T> Unpin for Inbox<T> {}

impl<T> futures::Stream for Inbox<T> {
    type Item = (u32, T);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().arrived.poll_recv(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_book_travels_through_the_environment() {
        let mut book = AddressBook::default();
        book.insert(Peer::new("proxy", 0), "127.0.0.1:7000".into());
        book.insert(Peer::new("replica", 2), "127.0.0.1:7003".into());
        let parsed = AddressBook::parse(&book.to_env()).unwrap();
        assert_eq!(parsed, book);
        assert_eq!(
            parsed.address(&Peer::new("replica", 2)),
            Some("127.0.0.1:7003")
        );
        assert_eq!(parsed.address(&Peer::new("replica", 1)), None);
        for bad in ["proxy", "proxy/x=1", "/0=a", "proxy/0"] {
            assert!(AddressBook::parse(bad).is_err(), "{bad}");
        }
    }
}
