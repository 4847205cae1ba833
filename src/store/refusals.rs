//! The stores' refusals: the errors a store answers with when an operation would break a
//! guarantee it cannot keep, each saying why.
//!
//! They name the property a store lacks, not the stores that have it: which architectures
//! keep one copy of each key is the registry's to say (`kvs-zoo serve --help` lists them).

use crate::protocol::KVSResult;

/// Where a refused client is sent for a store that can do what it asked.
const ONE_COPY_STORES: &str =
    "Use a store that keeps one copy of each key (kvs-zoo serve --help lists them)";

/// A replicated store's answer to APPEND, conditional SET and CAS (and the lattice core's
/// to INCR): each reads a value and writes what it computed, and on a store whose replicas
/// accept writes independently that loses updates.
pub fn needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(format!(
        "APPEND, SETNX, SET NX/XX and CAS read a value and write what they computed: on a \
         replicated store two replicas would both read the same value and both write, and one \
         write would be lost (INCR and DECR are counters there, which lose nothing). \
         {ONE_COPY_STORES}"
    ))
}

/// A replicated store's answer to expiry (`SET … EX`, `EXPIRE`, `TTL`, `PERSIST`).
pub fn expiry_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(format!(
        "expiry needs one clock per key: replicas that accept writes independently would each \
         expire a key at their own time, and a write gossiped from one replica could bring an \
         expired value back at another. {ONE_COPY_STORES}"
    ))
}

/// A replicated store's answer to WATCH.
pub fn watch_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(format!(
        "WATCH needs one copy of each key: a replica cannot tell whether another replica \
         changed a watched key meanwhile (MULTI/EXEC still applies its commands atomically at \
         your replica). {ONE_COPY_STORES}"
    ))
}

/// The lattice core's answer to FLUSHDB: its values are the clients' own lattices, with no
/// tombstone to write over them, and emptying one replica is not emptying the store.
pub fn flush_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(
        "FLUSHDB on a lattice store would need a tombstone for every key, and the values here \
         are clients' own lattices, which have none; emptying one replica is not emptying the \
         store. Use a store with deletes (every architecture kvs-zoo serves has them)"
            .into(),
    )
}

/// A core's answer to a snapshot or a restore ([`KVSOperation::Snapshot`](crate::protocol::KVSOperation::Snapshot)): only the
/// linearizable store's replicas transfer state (a replicated store's replica catches up by
/// anti-entropy instead).
pub fn no_state_transfer<V>() -> KVSResult<V> {
    KVSResult::Error("this core transfers no state: replicas catch up by anti-entropy".into())
}

/// A core's answer to a transaction given to it directly: cores run through
/// [`apply_atomically`](crate::store::seam::apply_atomically), which takes transactions
/// apart, so none ever sees one.
pub fn transaction_at_core<V>() -> KVSResult<V> {
    KVSResult::Error("a transaction must be applied through apply_atomically".into())
}

/// The answer of a store without causal contexts to `GETCTX` and `SETCTX`.
pub fn not_causal<V>() -> KVSResult<V> {
    KVSResult::Error(
        "causal contexts need a store with causal values (kvs-zoo serve --help lists them); \
         this one keeps one version per key"
            .into(),
    )
}
