//! `LatticeKVSCore`: a store whose values are lattices, merged on every write.
//!
//! A PUT does not overwrite: it *merges* the written value into the stored one (see
//! [`crate::values`]). Because merge is associative, commutative and idempotent, a replica can
//! apply its clients' writes and its peers' gossip in any interleaving and still converge. The
//! core therefore also reports, for every write that changed a key, the key and its new
//! value: the stream a replication stage gossips to peers.
//!
//! [`LatticeStore`] is the state machine, plain Rust with no I/O (tested on its own);
//! [`LatticeKVSCore::serve`] runs it as a Hydro dataflow.

use std::collections::HashMap;

use hydro_lang::live_collections::stream::TotalOrder;
use hydro_lang::location::Location;
use hydro_lang::prelude::*;
use lattices::Merge;
use smallvec::SmallVec;

use crate::protocol::{KVSOperation, KVSRequest, KVSResponse, KVSResult, Key};
use crate::values::Fingerprint;

/// What a storage core consumes: a client's request, or what replication brings or needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageInput<V, S> {
    /// A client's request, answered with a response.
    Request(KVSRequest<V>),
    /// A peer's value for a key, merged silently.
    Merge(Key, S),
    /// A peer's value pushed as a rumor: merged silently, and reported as
    /// [`Effect::Heard`] so replication can tell the peer whether this member already had it
    /// (Demers' feedback).
    Rumor {
        /// The peer that pushed it.
        from: u32,
        /// The key.
        key: Key,
        /// The peer's value.
        value: S,
    },
    /// Drop `key` if it still holds exactly the tombstone whose fingerprint is `print`: every
    /// replica is known to hold that tombstone, so no older value can come back (see
    /// `crate::replication::gossip::replica`). A newer version written meanwhile is kept.
    Collect {
        /// The deleted key.
        key: Key,
        /// The tombstone's fingerprint.
        print: u64,
    },
    /// Read the current values of `keys`, to send to peer `to`: replication keeps keys, and
    /// reads values from the store only when it sends them.
    Read {
        /// The peer the values go to.
        to: u32,
        /// What they are for (passed back in [`Effect::Read`]).
        why: ReadFor,
        /// The keys to read; keys the store does not hold are left out.
        keys: Vec<Key>,
    },
}

/// What a replication read is for; the core only passes it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReadFor {
    /// To push hot keys to a peer as rumors.
    Rumor,
    /// To repair the differences anti-entropy found with a peer.
    Repair,
}

/// What replication learns from the core: the stream [`Replication`](crate::server::Replication)
/// wires back to the peers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect<S> {
    /// A key's value changed, by a client's write or a peer's value.
    Changed(Key, S),
    /// A peer's rumor was merged; `changed` is the key's new value, or `None` when this member
    /// already had it.
    Heard {
        /// The peer that pushed the rumor.
        from: u32,
        /// The key.
        key: Key,
        /// The new value, if the merge changed the key.
        changed: Option<S>,
    },
    /// Values read for peer `to`.
    Read {
        /// The peer the values go to.
        to: u32,
        /// What they are for.
        why: ReadFor,
        /// Each key read, with its value.
        values: Vec<(Key, S)>,
    },
}

/// What a storage core produces: responses to client requests, and the [`Effect`]s
/// replication acts on.
pub type StorageOutput<V, S, L> = (
    Stream<KVSResponse<V>, L, Unbounded, TotalOrder>,
    Stream<Effect<S>, L, Unbounded, TotalOrder>,
);

/// What one input produced: the reply (client requests only) and its effect, if any.
pub type Applied<V, S> = (Option<KVSResponse<V>>, Option<Effect<S>>);

/// The per-key lattice map at the heart of every store.
///
/// Keys are hashed with foldhash, seeded per process: several times faster than std's SipHash
/// on short keys (hashing was a few percent of a GET's whole cost), and still seeded, so
/// clients cannot choose keys that all collide.
#[derive(Clone, Debug)]
pub struct LatticeStore<S> {
    map: HashMap<Key, S, foldhash::fast::RandomState>,
}

impl<S> Default for LatticeStore<S> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

impl<S: Merge<S> + Clone + Fingerprint> LatticeStore<S> {
    /// Merges `value` into `key`; returns the key's new value if it changed.
    pub fn merge(&mut self, key: Key, value: S) -> Option<(Key, S)> {
        match self.map.get_mut(&key) {
            Some(current) => current.merge(value).then(|| (key, current.clone())),
            None => {
                self.map.insert(key.clone(), value.clone());
                Some((key, value))
            }
        }
    }

    /// Every key and its stored value, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&Key, &S)> {
        self.map.iter()
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.map.clear();
    }

    /// The stored value of `key`.
    pub fn get(&self, key: &Key) -> Option<&S> {
        self.map.get(key)
    }

    /// Merges `value` into `key`, copying nothing out: for a store whose changes nobody
    /// reads.
    pub fn merge_quietly(&mut self, key: Key, value: S) {
        match self.map.get_mut(&key) {
            Some(current) => {
                current.merge(value);
            }
            None => {
                self.map.insert(key, value);
            }
        }
    }

    /// Merges `value` into `key` and reports the change, if any, as an effect.
    pub fn merge_changed(&mut self, key: Key, value: S) -> Option<Effect<S>> {
        self.merge(key, value).map(|(k, v)| Effect::Changed(k, v))
    }

    /// Applies what replication brings or asks for: a peer's value, a rumor, or a read. The
    /// cores answer every replication input this one way, whatever their client semantics.
    /// `None` for client requests, which each core answers itself.
    pub fn replicate<V>(
        &mut self,
        input: StorageInput<V, S>,
    ) -> Result<Option<Effect<S>>, KVSRequest<V>> {
        match input {
            StorageInput::Request(req) => Err(req),
            StorageInput::Merge(key, value) => Ok(self.merge_changed(key, value)),
            StorageInput::Rumor { from, key, value } => {
                let changed = self.merge(key.clone(), value).map(|(_, v)| v);
                Ok(Some(Effect::Heard { from, key, changed }))
            }
            StorageInput::Collect { key, print } => {
                let collectable = self
                    .map
                    .get(&key)
                    .is_some_and(|v| v.is_tombstone() && v.fingerprint(&key) == print);
                if collectable {
                    self.map.remove(&key);
                }
                Ok(None)
            }
            StorageInput::Read { to, why, keys } => {
                let values = keys
                    .into_iter()
                    .filter_map(|k| self.map.get(&k).cloned().map(|v| (k, v)))
                    .collect();
                Ok(Some(Effect::Read { to, why, values }))
            }
        }
    }

    /// Applies one input of a lattice-valued store: PUT merges, GET reads, and a peer's value
    /// merges without a reply. DELETE is refused: a lattice store deletes by merging a
    /// tombstone *value* (for example [`crate::values::causal::causal_delete`]), which only the
    /// client can build because only it knows the causal context it deletes.
    pub fn apply(&mut self, input: StorageInput<S, S>) -> Applied<S, S> {
        match self.replicate(input) {
            Ok(effect) => (None, effect),
            Err(req) => {
                // Taken apart so the key and value move into the map rather than being copied.
                let (op, reply_to) = req.into_parts();
                match op {
                    KVSOperation::Get(key) | KVSOperation::GetAt(_, key) => {
                        let result = self
                            .get(&key)
                            .map_or(KVSResult::NotFound, |v| KVSResult::Value(v.clone()));
                        (Some(reply_to.respond(result)), None)
                    }
                    KVSOperation::Put(key, value) | KVSOperation::PutAt(_, key, value) => {
                        let changed = self.merge_changed(key, value);
                        (Some(reply_to.respond(KVSResult::Ok)), changed)
                    }
                    KVSOperation::Delete(_) => (
                        Some(reply_to.respond(KVSResult::Error(
                            "a lattice store deletes by writing a tombstone value".into(),
                        ))),
                        None,
                    ),
                    KVSOperation::GetVersioned(_) | KVSOperation::PutVersioned(..) => {
                        (Some(reply_to.respond(not_causal())), None)
                    }
                    KVSOperation::Transaction(_) => {
                        (Some(reply_to.respond(transaction_at_core())), None)
                    }
                    KVSOperation::Add(..)
                    | KVSOperation::Append(..)
                    | KVSOperation::PutIf(..)
                    | KVSOperation::Cas(..) => (Some(reply_to.respond(needs_one_copy())), None),
                    KVSOperation::Flush(_) => {
                        (Some(reply_to.respond(flush_needs_one_copy())), None)
                    }
                    KVSOperation::PutExpiring(..)
                    | KVSOperation::ExpireAt(..)
                    | KVSOperation::Persist(_)
                    | KVSOperation::Ttl(_) => {
                        (Some(reply_to.respond(expiry_needs_one_copy())), None)
                    }
                    KVSOperation::Watch(_)
                    | KVSOperation::Unwatch(_)
                    | KVSOperation::Unchanged(_) => {
                        (Some(reply_to.respond(watch_needs_one_copy())), None)
                    }
                    KVSOperation::Count(_) => {
                        let count = self.map.len() as i64;
                        (Some(reply_to.respond(KVSResult::Integer(count))), None)
                    }
                    KVSOperation::Scan {
                        from,
                        count,
                        pattern,
                        ..
                    } => {
                        let result = crate::store::keyspace::scan_result(
                            self.map.keys(),
                            from,
                            count,
                            pattern.as_deref(),
                        );
                        (Some(reply_to.respond(result)), None)
                    }
                }
            }
        }
    }
}

/// One input's outputs: a single `(reply, effect)` for most inputs, several for a
/// transaction (inline for one, so the common case allocates nothing).
pub type AppliedAll<V, S> = SmallVec<[Applied<V, S>; 1]>;

/// Applies `input` with `apply`. A transaction's operations are applied one after another,
/// nothing in between — a core's dataflow calls this for each input in turn, so no other
/// input can come between them: that is what makes the transaction atomic. Their effects
/// come out one by one, and their results together, as one response. A transaction inside
/// a transaction (a compound command such as GETDEL queued after MULTI) is applied in place.
pub fn apply_atomically<V, S>(
    input: StorageInput<V, S>,
    mut apply: impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
) -> AppliedAll<V, S> {
    let request = match input {
        StorageInput::Request(request) if matches!(request.op, KVSOperation::Transaction(_)) => {
            request
        }
        other => return smallvec::smallvec![apply(other)],
    };
    let at = request.at;
    let (op, reply_to) = request.into_parts();
    let KVSOperation::Transaction(ops) = op else {
        unreachable!("matched as a transaction above")
    };
    let mut out = AppliedAll::new();
    let result = run_transaction(ops, reply_to, at, &mut apply, &mut out);
    out.push((Some(reply_to.respond(result)), None));
    out
}

/// Answers one client `request` with `apply` — a transaction's operations one after another,
/// as [`apply_atomically`] does — and drops every effect: how a core whose changes nobody
/// reads (a single copy, see [`crate::server::Storage::answer`]) runs.
pub fn answer_atomically<V, S>(
    request: KVSRequest<V>,
    mut apply: impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
) -> KVSResponse<V> {
    let reply_to = crate::protocol::ReplyTo {
        client: request.client,
        request: request.request,
    };
    if !matches!(request.op, KVSOperation::Transaction(_)) {
        let (response, _) = apply(StorageInput::Request(request));
        // Every core answers every request it applies; if one ever did not, the client is
        // told so rather than given an `OK` nothing earned.
        return response.unwrap_or_else(|| {
            reply_to.respond(KVSResult::Error("the store gave no answer".into()))
        });
    }
    let at = request.at;
    let (op, _) = request.into_parts();
    let KVSOperation::Transaction(ops) = op else {
        unreachable!("matched as a transaction above")
    };
    let result = run_transaction(ops, reply_to, at, &mut apply, &mut AppliedAll::new());
    reply_to.respond(result)
}

/// Applies a transaction's `ops` in order, pushing their effects to `out`; returns their
/// results.
fn run_transaction<V, S>(
    ops: Vec<KVSOperation<V>>,
    reply_to: crate::protocol::ReplyTo,
    at: u64,
    apply: &mut impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
    out: &mut AppliedAll<V, S>,
) -> KVSResult<V> {
    let mut results = Vec::with_capacity(ops.len());
    // A transaction after WATCH starts with its guards: each checks (and ends) one watch.
    // All of them run, so every watch ends; if any key changed, nothing else runs.
    let guards = ops
        .iter()
        .take_while(|op| matches!(op, KVSOperation::Unchanged(_)))
        .count();
    let mut ops = ops.into_iter();
    let mut changed = false;
    for op in ops.by_ref().take(guards) {
        let (response, _) = apply(StorageInput::Request(KVSRequest {
            at,
            client: reply_to.client,
            request: reply_to.request,
            op,
        }));
        match response.map(|r| r.result) {
            Some(KVSResult::Ok) => results.push(KVSResult::Ok),
            Some(KVSResult::Error(e)) => return KVSResult::Error(e),
            _ => changed = true,
        }
    }
    if changed {
        return KVSResult::Aborted;
    }
    for op in ops {
        let result = match op {
            KVSOperation::Transaction(inner) => run_transaction(inner, reply_to, at, apply, out),
            op => {
                let (response, effect) = apply(StorageInput::Request(KVSRequest {
                    at,
                    client: reply_to.client,
                    request: reply_to.request,
                    op,
                }));
                if effect.is_some() {
                    out.push((None, effect));
                }
                response.map_or(KVSResult::Ok, |r| r.result)
            }
        };
        results.push(result);
    }
    KVSResult::Transaction(results)
}

/// A replicated store's answer to APPEND, conditional SET and CAS (and the lattice core's
/// to INCR): each reads a value and writes what it computed, and on a store whose replicas
/// accept writes independently that loses updates.
pub fn needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(
        "APPEND, SETNX, SET NX/XX and CAS read a value and write what they computed: on a \
         replicated store two replicas would both read the same value and both write, and one \
         write would be lost (INCR and DECR are counters there, which lose nothing). Use \
         local, sharded or linearizable"
            .into(),
    )
}

/// A replicated store's answer to expiry (`SET … EX`, `EXPIRE`, `TTL`, `PERSIST`).
pub fn expiry_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(
        "expiry needs one clock per key: replicas that accept writes independently would each \
         expire a key at their own time, and a write gossiped from one replica could bring an \
         expired value back at another. Use local, sharded or linearizable"
            .into(),
    )
}

/// A replicated store's answer to WATCH.
pub fn watch_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(
        "WATCH needs one copy of each key: a replica cannot tell whether another replica \
         changed a watched key meanwhile (MULTI/EXEC still applies its commands atomically at \
         your replica). Use local, sharded or linearizable"
            .into(),
    )
}

/// The lattice core's answer to FLUSHDB: its values are the clients' own lattices, with no
/// tombstone to write over them, and emptying one replica is not emptying the store.
pub fn flush_needs_one_copy<V>() -> KVSResult<V> {
    KVSResult::Error(
        "FLUSHDB on a lattice store would need a tombstone for every key, and the values here \
         are clients' own lattices, which have none; emptying one replica is not emptying the \
         store. Use a store with deletes (local, sharded, replicated, linearizable)"
            .into(),
    )
}

/// A core's answer to a transaction given to it directly: cores run through
/// [`apply_atomically`], which takes transactions apart, so none ever sees one.
pub fn transaction_at_core<V>() -> KVSResult<V> {
    KVSResult::Error("a transaction must be applied through apply_atomically".into())
}

/// The answer of a store without causal contexts to `GETCTX` and `SETCTX`.
pub fn not_causal<V>() -> KVSResult<V> {
    KVSResult::Error(
        "causal contexts need a causal store (kvs-zoo serve replicated); this one keeps one version per key"
            .into(),
    )
}

/// The lattice-merging storage core (see the module docs).
pub struct LatticeKVSCore;

impl LatticeKVSCore {
    /// Runs a [`LatticeStore`] over `inputs`, returning the responses to client requests and
    /// the stream of `(key, new value)` for every input that changed a key.
    ///
    /// The inputs must be totally ordered: the store is a sequential state machine. (Merges
    /// commute, so for them the order only matters for which intermediate values are reported.)
    pub fn serve<'a, L, S>(
        inputs: Stream<StorageInput<S, S>, L, Unbounded, TotalOrder>,
    ) -> StorageOutput<S, S, L>
    where
        L: Location<'a>,
        S: Merge<S> + Clone + Fingerprint + 'a,
    {
        let applied = inputs
            .scan(
                q!(|| crate::store::lattice_core::LatticeStore::default()),
                q!(
                    |store, input| Some(crate::store::lattice_core::apply_atomically(
                        input,
                        |input| { store.apply(input) }
                    ))
                ),
            )
            .flatten_ordered();
        split_applied(applied)
    }
}

/// One input's outputs as an iterator: its reply (`Ok`), then its effect (`Err`).
///
/// A named type rather than an iterator chain because Hydro writes out the types of the
/// staged code, and the standard library's iterator adapters live in private modules.
pub struct Outputs<V, S>(pub Option<KVSResponse<V>>, pub Option<Effect<S>>);

impl<V, S> Iterator for Outputs<V, S> {
    type Item = Result<KVSResponse<V>, Effect<S>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.take() {
            Some(reply) => Some(Ok(reply)),
            None => self.1.take().map(Err),
        }
    }
}

/// Splits a core's `(reply, effect)` stream into the reply stream and the effect stream.
pub fn split_applied<'a, L, V, S>(
    applied: Stream<Applied<V, S>, L, Unbounded, TotalOrder>,
) -> StorageOutput<V, S, L>
where
    L: Location<'a>,
    V: 'a,
    S: 'a,
{
    // Each input yields a reply, an effect, or both. Flatten them into one stream (`Ok` is a
    // reply, `Err` an effect) and partition it: unlike cloning the stream and filtering each
    // copy, no value is copied on the way.
    let (responses, effects) = applied
        .flat_map_ordered(q!(|(reply, effect)| crate::store::lattice_core::Outputs(
            reply, effect
        )))
        .partition(q!(|out| out.is_ok()));
    (
        responses.filter_map(q!(|out| out.ok())),
        effects.filter_map(q!(|out| out.err())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::{LwwValue, Stamp};

    fn put(
        request: u64,
        key: &'static str,
        time: u64,
        v: u8,
    ) -> StorageInput<LwwValue<u8>, LwwValue<u8>> {
        StorageInput::Request(KVSRequest {
            at: 0,
            client: 1,
            request,
            op: KVSOperation::Put(
                Key::from_static(key.as_bytes()),
                LwwValue::write(Stamp { time, writer: 0 }, v),
            ),
        })
    }

    #[test]
    fn puts_merge_and_report_changes_only_when_the_value_moves() {
        let mut store = LatticeStore::default();
        let (reply, changed) = store.apply(put(0, "k", 2, 20));
        assert_eq!(reply.unwrap().result, KVSResult::Ok);
        assert!(changed.is_some());
        // An older write is acknowledged (it was merged) but changes nothing.
        let (reply, changed) = store.apply(put(1, "k", 1, 10));
        assert_eq!(reply.unwrap().result, KVSResult::Ok);
        assert!(changed.is_none());
        let get = StorageInput::Request(KVSRequest {
            at: 0,
            client: 1,
            request: 2,
            op: KVSOperation::Get(Key::from_static(b"k")),
        });
        let (reply, _) = store.apply(get);
        assert_eq!(
            reply.unwrap().result,
            KVSResult::Value(LwwValue::write(Stamp { time: 2, writer: 0 }, 20))
        );
    }

    #[test]
    fn peer_merges_are_silent_but_reported_as_changes() {
        let mut store = LatticeStore::default();
        let (reply, changed) = store.apply(StorageInput::Merge(
            Key::from_static(b"k"),
            LwwValue::write(Stamp { time: 1, writer: 3 }, 1u8),
        ));
        assert!(reply.is_none());
        assert!(changed.is_some());
    }

    #[test]
    fn a_rumor_is_heard_with_feedback_and_a_read_returns_held_values() {
        let mut store = LatticeStore::default();
        let k = Key::from_static(b"k");
        let v = LwwValue::write(Stamp { time: 1, writer: 3 }, 1u8);
        let rumor = || StorageInput::<LwwValue<u8>, _>::Rumor {
            from: 2,
            key: k.clone(),
            value: v.clone(),
        };
        assert_eq!(
            store.apply(rumor()).1,
            Some(Effect::Heard {
                from: 2,
                key: k.clone(),
                changed: Some(v.clone())
            })
        );
        // The second time, the store already had it: that is the feedback.
        assert_eq!(
            store.apply(rumor()).1,
            Some(Effect::Heard {
                from: 2,
                key: k.clone(),
                changed: None
            })
        );
        let read = StorageInput::Read {
            to: 1,
            why: ReadFor::Repair,
            keys: vec![k.clone(), Key::from_static(b"absent")],
        };
        assert_eq!(
            store.apply(read).1,
            Some(Effect::Read {
                to: 1,
                why: ReadFor::Repair,
                values: vec![(k, v)]
            })
        );
    }

    #[test]
    fn deletes_must_be_tombstone_values() {
        let mut store: LatticeStore<LwwValue<u8>> = LatticeStore::default();
        let del = StorageInput::Request(KVSRequest {
            at: 0,
            client: 1,
            request: 0,
            op: KVSOperation::Delete(Key::from_static(b"k")),
        });
        assert!(matches!(
            store.apply(del).0.unwrap().result,
            KVSResult::Error(_)
        ));
    }
}

#[cfg(test)]
mod sim_tests {
    use super::*;
    use crate::values::{LwwValue, Stamp};

    fn lww(time: u64, v: u8) -> LwwValue<u8> {
        LwwValue::write(Stamp { time, writer: 0 }, v)
    }

    /// The lattice core as a Hydro dataflow: client PUTs and peer merges reach the same map,
    /// and only the inputs that move a key's value appear on the change stream.
    #[test]
    fn changes_stream_reports_only_moves() {
        let mut flow = FlowBuilder::new();
        let node = flow.process::<()>();
        let (inputs_in, inputs) = node.sim_input();
        let (responses, changes) = LatticeKVSCore::serve(inputs);
        let (responses, changes) = (responses.sim_output(), changes.sim_output());
        let k = || Key::from_static(b"k");

        flow.sim().exhaustive(async || {
            inputs_in.send(StorageInput::Merge(k(), lww(5, 50)));
            inputs_in.send(StorageInput::Request(KVSRequest {
                at: 0,
                client: 1,
                request: 0,
                op: KVSOperation::Put(k(), lww(3, 30)),
            }));
            inputs_in.send(StorageInput::Request(KVSRequest {
                at: 0,
                client: 1,
                request: 1,
                op: KVSOperation::Get(k()),
            }));
            inputs_in.send(StorageInput::Merge(k(), lww(7, 70)));
            responses
                .assert_yields_only([
                    KVSResponse {
                        client: 1,
                        request: 0,
                        result: KVSResult::Ok,
                    },
                    KVSResponse {
                        client: 1,
                        request: 1,
                        result: KVSResult::Value(lww(5, 50)),
                    },
                ])
                .await;
            changes
                .assert_yields_only([
                    Effect::Changed(k(), lww(5, 50)),
                    Effect::Changed(k(), lww(7, 70)),
                ])
                .await;
        });
    }
}
