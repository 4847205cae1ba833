//! Multi-Paxos: the protocol that orders every operation of the linearizable store.
//!
//! Three roles, each a plain state machine here, apart from the dataflow that carries their
//! messages (as etcd's raft keeps its logic apart from I/O), so each can be tested alone:
//!
//! - [`acceptor::Acceptor`]: the memory of the protocol. It promises not to listen to older
//!   ballots (phase 1) and accepts values for slots (phase 2). A value accepted by a majority
//!   of acceptors is *decided*: no later ballot can decide another value for that slot.
//! - [`proposer::Proposer`]: one of them leads. It wins a ballot with a majority of promises,
//!   learns from them what may have been decided before it, fills the holes with no-ops, and
//!   then proposes clients' requests, batched, slot after slot. The others follow its
//!   heartbeats, forward requests to it, and elect a new leader when the heartbeats stop.
//! - [`log::ReplicaLog`]: a replica's view of the decided log. It hands decided entries to the
//!   store in slot order, whatever order they arrive in, and drops a request it has already
//!   applied (a client's retry may be decided twice, in two slots). [`replica::ReplicaState`]
//!   wraps it with state transfer ([`transfer`]): a replica that fell behind the forgotten
//!   part of the log (restarted empty, or taken for dead while slow) installs a snapshot of
//!   another replica's store and log, and goes on from there; [`replies::ReplyCache`] answers
//!   a retry of a request it applied with the first answer again.
//!
//! ```text
//!  proxy ──request──▶ proposer (leader) ──Prepare/Accept──▶ acceptors
//!    ▲                  │  ▲ heartbeats ▲                      │
//!    │                  │  └─ followers ─┘ ◀──Promise/Accepted─┘
//!    │                  └──Decided(slot, entry)──▶ replicas ──(in slot order)──▶ KVSCore
//!    └─────────────────────────── responses ◀──────────────────┘
//! ```
//!
//! Safety (one value per slot) rests on two facts the acceptor and the proposer keep: an
//! acceptor never accepts below its promise, and a new leader re-proposes, for every slot,
//! the value accepted under the highest ballot among a majority's promises. Liveness needs a
//! leader that stays up long enough; elections are started by timeouts that arrive as events
//! ([`proposer::Event::ElectionTimeout`]), so tests drive them by hand.

pub mod acceptor;
pub mod client;
pub mod flow;
pub mod log;
pub mod proposer;
pub mod replica;
pub mod replies;
pub mod roles;
pub mod transfer;

use serde::{Deserialize, Serialize};

use crate::protocol::{KVSRequest, RequestId};

/// A position in the log.
pub type Slot = u64;

/// A ballot: a round number, and the proposer that owns it. Ballots are ordered by round,
/// then by proposer, so two proposers never share one.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// Grows with every election.
    pub round: u64,
    /// The proposer that leads under this ballot.
    pub proposer: u32,
}

/// What a slot of the log holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry<C> {
    /// Nothing: a hole a new leader filled, so that the slots after it can be applied.
    Noop,
    /// Clients' requests, applied in this order.
    Batch(Vec<C>),
}

/// The most bytes of accepted slots (as encoded) in one part of a promise — unless one slot
/// alone is bigger, which then has a part to itself: far below the transport's frame limit.
pub const MAX_PROMISE_BYTES: u64 = 32 * 1024 * 1024;

/// How many of `n` members make a majority.
pub fn quorum(n: u32) -> usize {
    n as usize / 2 + 1
}

/// What the log needs to know of a request to apply it exactly once.
pub trait Command {
    /// Who sent it (a connection of the proxy).
    fn client(&self) -> u64;
    /// Its number among that client's requests.
    fn request(&self) -> u64;
    /// Every request of the client numbered below this has been answered, and will never be
    /// sent again: the log may forget that it applied them.
    fn answered_below(&self) -> u64;
    /// The client's request sent just before this one, if it was not answered yet when this
    /// one was sent: the log applies this one only after it (see [`log::ReplicaLog`]).
    fn after(&self) -> Option<u64>;
}

/// A bare number as a command: request `n` of client 0, following none. The protocol's unit
/// tests order numbers, so that what a test decides reads at a glance. (Here, not in a test
/// module: Hydro's staged copy of this crate keeps no `impl` of a test module, and its sim
/// builds use the test helpers that need this one.)
impl Command for u32 {
    fn client(&self) -> u64 {
        0
    }
    fn request(&self) -> u64 {
        u64::from(*self)
    }
    fn answered_below(&self) -> u64 {
        0
    }
    fn after(&self) -> Option<u64> {
        None
    }
}

/// A client's request as the log orders it: the request, and how far its client's earlier
/// requests are answered (so replicas can forget them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ordered<V> {
    /// The request.
    pub request: KVSRequest<V>,
    /// Every request of this client numbered below this is answered.
    pub answered_below: RequestId,
    /// The client's previous request, still unanswered when this one was sent: a
    /// connection's commands run in the order it sent them, even when a leader change
    /// decides them in another order.
    pub after: Option<RequestId>,
}

impl<V> Command for Ordered<V> {
    fn client(&self) -> u64 {
        self.request.client
    }
    fn request(&self) -> u64 {
        self.request.request
    }
    fn answered_below(&self) -> u64 {
        self.answered_below
    }
    fn after(&self) -> Option<u64> {
        self.after
    }
}

/// Messages a proposer sends to every acceptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToAcceptor<C> {
    /// Phase 1a: promise to ignore ballots below this one, and tell what you accepted.
    Prepare(Ballot),
    /// Phase 2a: accept `entry` for `slot` under `ballot`.
    Accept {
        /// The proposer's ballot.
        ballot: Ballot,
        /// The slot.
        slot: Slot,
        /// The value proposed.
        entry: Entry<C>,
        /// Every live replica has applied the slots below this: they may be forgotten.
        checkpoint: Slot,
    },
}

/// An acceptor's answer to a proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FromAcceptor<C> {
    /// Phase 1b. If `promised` is the ballot prepared, a promise; if it is higher, a refusal
    /// that tells the proposer how far it is behind.
    ///
    /// What an acceptor accepted since the checkpoint can be larger than one message may be
    /// (slots of up to 16 MiB each, for as long as a slow replica holds the checkpoint back),
    /// so a promise travels in `parts` messages, each with some of the slots; the proposer
    /// counts it once all have arrived ([`MAX_PROMISE_BYTES`]).
    Promise {
        /// The acceptor's promise after the prepare.
        promised: Ballot,
        /// Some of the slots at or above `checkpoint` the acceptor accepted a value for, with
        /// the ballot each was accepted under (in slot order across the parts).
        accepted: Vec<(Slot, Ballot, Entry<C>)>,
        /// The acceptor forgot the slots below this (every replica had applied them).
        checkpoint: Slot,
        /// This part's place among the promise's parts, from 0.
        part: u32,
        /// How many parts the promise has.
        parts: u32,
    },
    /// Phase 2b, the answer to the accept of `ballot` for `slot`. If `promised` is `ballot`,
    /// the slot is accepted; if higher, refused.
    ///
    /// The reply names the ballot it answers because messages reorder: an accept delayed from
    /// an older ballot, refused by an acceptor that has since promised the proposer's *newer*
    /// ballot, is answered with that newer promise — which, without `ballot`, reads exactly
    /// like a vote under the newer ballot, for a value the acceptor never accepted.
    Accepted {
        /// The ballot of the accept answered.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
        /// The slot.
        slot: Slot,
    },
}
