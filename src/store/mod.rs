//! Storage: the state machines that hold the keys, and the seam every core shares.
//!
//! - [`seam`]: what a core consumes (`StorageInput`) and produces (a reply and an `Effect`
//!   for replication), and `apply_atomically`, which applies a transaction as one step.
//! - [`refusals`]: the errors a store answers when an operation would break a guarantee it
//!   cannot keep.
//! - [`lattice_core`]: `LatticeKVSCore`, a store whose values are lattices, merged on every
//!   write — the map every other core is built on.
//! - [`kvs_core`] (file `core.rs`): `KVSCore`, last writer wins, with expiry and counters.
//! - [`causal_core`]: `CausalKVSCore`, the lattice store over causal values, stamped by the
//!   replica (vector clocks, siblings).
//! - [`durable`]: a single copy's LWW store kept on disk — its changes logged, its state
//!   snapshotted — through the process's journal ([`crate::durability`]).
//! - [`keyspace`]: Redis glob patterns and the hash order `SCAN` walks keys in.
//!
//! Each core is plain Rust with no I/O, run as a Hydro dataflow by its `serve`. This folder
//! may import [`crate::protocol`], [`crate::values`], [`crate::membership`] (ids),
//! [`crate::hashing`] and [`crate::durability`], nothing above them.

pub mod causal_core;
pub mod durable;
pub mod keyspace;
// The file is `core.rs`, as in the book; the module is `kvs_core`, because a module named
// `core` would shadow the `core` crate in code that glob-imports this one.
#[path = "core.rs"]
pub mod kvs_core;
pub mod lattice_core;
pub mod refusals;
pub mod seam;
