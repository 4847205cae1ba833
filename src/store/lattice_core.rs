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

use crate::protocol::{KVSOperation, KVSRequest, KVSResult, Key};
use crate::store::refusals::{
    expiry_needs_one_copy, flush_needs_one_copy, needs_one_copy, not_causal, transaction_at_core,
    watch_needs_one_copy,
};
use crate::store::seam::{Applied, Effect, StorageInput, StorageOutput, split_applied};
use crate::values::Fingerprint;

/// The per-key lattice map at the heart of every store.
///
/// Keys are hashed with foldhash, seeded per process: faster than std's SipHash on short keys
/// (hashing is on every request's path), and still seeded, so clients cannot choose keys that
/// all collide.
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
                    KVSOperation::Snapshot(_) | KVSOperation::Restore(_) => (
                        Some(reply_to.respond(crate::store::refusals::no_state_transfer())),
                        None,
                    ),
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
                    |store, input| Some(crate::store::seam::apply_atomically(input, |input| {
                        store.apply(input)
                    }))
                ),
            )
            .flatten_ordered();
        split_applied(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::seam::ReadFor;
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
    use crate::protocol::KVSResponse;
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
