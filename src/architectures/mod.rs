//! The five architectures, each a short composition of [`KVSServer`](crate::server::KVSServer)
//! plug-ins.
//!
//! - [`local`]: one process, last writer wins.
//! - [`replicated`]: N replicas, gossip, causal values (siblings).
//! - [`sharded`]: S shards on a consistent-hash ring.
//! - [`sharded_replicated`]: S shards of R gossiping replicas.
//! - [`linearizable`]: every operation ordered by Multi-Paxos.
//!
//! This folder may import every folder below it in the crate's map; nothing imports it but
//! the `kvs-zoo` binary, the examples and the tests.

pub mod linearizable;
pub mod local;
pub mod replicated;
pub mod sharded;
pub mod sharded_replicated;
