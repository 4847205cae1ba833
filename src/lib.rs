//! # KVS Zoo
//!
//! Key-value stores, one per distributed architecture, built on the Hydro dataflow framework
//! and served over the Redis protocol. A map of the crate, from the top down; a module may
//! import only from modules below it (`farm-studio look` counts the arrows that do not).
//!
//! - [`architectures`]: the five stores — `local.rs`, `replicated.rs`, `sharded.rs`,
//!   `sharded_replicated.rs`, `linearizable.rs` (the book's file names) — each a short
//!   composition of plug-ins, and the registry that lists them ([`architectures::registry`]):
//!   `kvs-zoo serve`, `--help`, `INFO` and the README's command matrix read it.
//! - [`testing`] (beside the map, for tests and examples only): the linearizability
//!   checker, the Demers simulation, example helpers.
//! - [`deploy`]: deploying an architecture with hydro_deploy — its [`Topology`](deploy::Topology)
//!   and [`KVSDemo`], the [`Hosts`] it runs on, `serve`, `build`, [`run_kvs_demo`]; the
//!   supervisor that restarts a member that dies; build progress and the console.
//! - [`edge`]: the Redis-protocol edge in the proxy — RESP, the command table
//!   (`edge/commands/`), sessions, reply order and deadlines, bounded output, `INFO`.
//! - The plug-ins, side by side: [`routing`] (which member serves a request: Local's identity,
//!   the consistent-hash ring, sticky routing over live members), [`replication`] (Demers
//!   gossip: rumor mongering and anti-entropy) and [`consensus`] (Multi-Paxos, the
//!   linearizable store's ordering stage).
//! - [`net`]: how processes reach each other — Hydro's channels, or our own transport, whose
//!   links dial again when a peer comes back.
//! - [`server`]: [`KVSServer`]`<V, Storage, Router, Replication>`, the one composition every
//!   architecture is built from, and the plug-in traits ([`server::plugins`]).
//! - [`store`]: the storage cores, each a pure state machine run as a dataflow —
//!   `lattice_core.rs` ([`LatticeKVSCore`]), `core.rs` ([`KVSCore`], last writer wins),
//!   `causal_core.rs` ([`CausalKVSCore`]) — the seam they share, their refusals, the keyspace.
//! - [`values`]: lattice values — last-writer-wins, vector clocks, causal siblings — and
//!   what replication reads of them (fingerprints).
//! - [`protocol`] (`protocol.rs`): the typed requests and responses every stage passes along.
//! - At the bottom, importing nothing from the crate: [`membership`] (member and shard ids,
//!   the shard layout, the one liveness view), [`hashing`] (the stable hashes),
//!   [`capabilities`] (what a store can honestly do, as data) and [`durability`] (a member's
//!   write-ahead log and snapshots on disk, as bytes).

#![warn(missing_docs)]

#[cfg(stageleft_runtime)]
hydro_lang::setup!();

// Optimized builds (the deployed processes, the `kvs-zoo` driver) allocate with mimalloc, as
// Redis allocates with jemalloc: a request's life is a handful of short allocations, and the
// system allocator's share of the server's CPU on them showed in profiles. Debug builds keep the system
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
pub mod durability;
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
