//! Consensus: agreeing on one order of operations among members that may fail.
//!
//! - [`paxos`]: Multi-Paxos — acceptor, proposer, the replica's log (with state transfer and
//!   a reply cache) and the proxy's client, each a state machine tested alone, and their
//!   dataflow, the `PaxosRouter` ordering stage.
//!
//! This folder may import the server's plug-in traits, [`crate::net`], [`crate::membership`]
//! and everything below them; not routing, replication or the edge.

pub mod paxos;
