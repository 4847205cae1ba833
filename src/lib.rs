//! # KVS Zoo
//!
//! Key-value stores, one per distributed architecture, built on the Hydro dataflow framework
//! and served over the Redis protocol. A map of the crate:
//!
//! - [`protocol`]: the typed requests and responses every stage passes along.
//! - [`values`]: lattice values — last-writer-wins, vector clocks, causal siblings.
//! - [`lattice_core`] and [`kvs_core`] (file `core.rs`): the storage cores, `LatticeKVSCore` (merges values) and
//!   `KVSCore` (last writer wins), each a pure state machine run as a Hydro dataflow;
//!   [`causal_core`]: `CausalKVSCore`, the lattice store over causal values with writes
//!   stamped by the replica (vector clocks, siblings).
//! - [`keyspace`]: Redis glob patterns and the hash order `SCAN` walks keys in.
//! - [`linearizability`]: a Wing–Gong–Lowe checker for histories recorded against a store,
//!   key by key.
//! - [`server`]: `KVSServer<V, Storage, Router, Replication>`, the one composition of route →
//!   storage → replication that every architecture is built from.
//! - [`edge`]: the Redis-protocol edge — RESP parsing, the command table, AUTH, per-connection
//!   reply ordering and request deadlines, bounded output, `INFO` counters, and the TCP server
//!   that feeds the dataflow from inside the proxy process.
//! - [`routers`]: how the proxy picks a member for each request — a consistent-hash ring
//!   ([`routers::ring`]) and sticky routing inside a shard over members watched by
//!   heartbeats ([`routers::sticky`]).
//! - [`gossip`]: Demers-style gossip — rumor mongering, anti-entropy, their simulation, and
//!   the gossip `Replication` that wires them around a replica's core.
//! - [`paxos`]: Multi-Paxos for the linearizable store — acceptor, proposer (elections,
//!   recovery, batching, checkpoints), the replica's log and the proxy's client, each a state
//!   machine tested alone and together over a simulated faulty network, and their dataflows
//!   ([`paxos::flow`]: the `PaxosRouter` ordering stage, also run by Hydro's simulator).
//! - [`net`]: how processes reach each other — Hydro's channels, or our fail-stop transport
//!   that survives a dead peer; [`net::links`] makes each edge of a dataflow one call over
//!   either.
//! - [`local`]: the Local architecture; [`replicated`]: N replicas, gossip, causal values;
//!   [`sharded`]: S shards on a consistent-hash ring; [`sharded_replicated`]: S shards of R
//!   gossiping replicas; [`linearizable`]: every operation ordered by Multi-Paxos.
//! - [`demo`]: deploying an architecture with hydro_deploy (`run_kvs_demo`, `serve`, `build`);
//!   [`progress`] tells what a deployment is compiling while it does; [`console`] keeps
//!   hydro_deploy's build chatter off the terminal unless `--verbose`; [`examples_support`]
//!   has demo helpers.

#![warn(missing_docs)]

#[cfg(stageleft_runtime)]
hydro_lang::setup!();

// Optimized builds (the deployed processes, the `kvs-zoo` driver) allocate with mimalloc, as
// Redis allocates with jemalloc: a request's life is a handful of short allocations, and the
// system allocator spent a tenth of the server's CPU on them. Debug builds keep the system
// allocator, because Hydro links their processes dynamically. (`cfg(stageleft_runtime)` keeps
// the allocator out of the staged copy of this crate that Hydro compiles into each process:
// a program may have only one.)
#[cfg(stageleft_runtime)]
mod allocator {
    #[cfg(not(debug_assertions))]
    #[global_allocator]
    static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
}

pub mod architectures;
pub mod capabilities;
pub mod consensus;
pub mod deploy;
pub mod edge;
pub mod hashing;
pub mod membership;
pub mod net;
pub mod protocol;
pub mod replication;
pub mod routing;
pub mod server;
pub mod store;
#[doc(hidden)]
pub mod testing;
pub mod values;

pub use crate::deploy::{Hosts, KVSDemo, run_kvs_demo};
pub use crate::server::KVSServer;
pub use crate::store::causal_core::CausalKVSCore;
pub use crate::store::kvs_core::KVSCore;
pub use crate::store::lattice_core::LatticeKVSCore;
pub use crate::values::VectorClock;
