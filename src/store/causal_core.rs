//! `CausalKVSCore`: the lattice store over causal values, with writes stamped by the replica.
//!
//! This is to causal consistency what [`crate::store::kvs_core`] is to last-writer-wins: the same
//! [`LatticeStore`], over a different lattice, plus the stamping a server does for clients who
//! send plain values. Each key holds a [`CausalValue`]: a vector clock dominating a set of
//! siblings. A replica stamps a client's write with the clock it holds for that key, advanced
//! at its own entry, so
//!
//! - a plain `SET` supersedes every version *this replica* has seen of the key;
//! - writes accepted concurrently at *different* replicas have concurrent clocks, and merging
//!   them (gossip) keeps both as siblings; `GET` then answers all of them;
//! - `SETCTX key context value` writes a successor of exactly the versions in `context` (what
//!   the client read with `GETCTX`): the read-modify-write that resolves siblings, as Riak's
//!   vclock does.
//!
//! **The cost of plain vector clocks.** If this replica accepted another write to the key
//! after the client's `GETCTX`, no clock can say "after the context, concurrent with that
//! write": the replica's own entry has moved past the context. Rather than lose either write,
//! the core keeps *all* the versions it holds plus the new one, under a clock that dominates
//! them. Nothing is lost, but a version the client meant to replace can come back as a
//! sibling. Dotted version vectors (Preguiça et al., 2012) fix exactly this; they are a good
//! exercise.
//!
//! [`CausalStore`] is the state machine, plain Rust with no I/O; [`CausalKVSCore::serve`] runs
//! it as a Hydro dataflow.

use std::collections::BTreeSet;

use hydro_lang::live_collections::stream::TotalOrder;
use hydro_lang::location::Location;
use hydro_lang::prelude::*;
use lattices::Merge;

use crate::protocol::{Context, KVSOperation, KVSRequest, KVSResult, Key};
use crate::store::lattice_core::LatticeStore;
use crate::store::seam::{
    Applied, AppliedAll, StorageInput, StorageOutput, apply_atomically, split_applied,
};
use crate::values::VectorClock;
use crate::values::causal::{CausalValue, PnCounter, causal_delete, causal_write, siblings};

/// The vector clock entry of storage member `member` in its `incarnation`: `r0`, `r1`, …, and
/// `r0.1`, `r0.2`, … once member 0 was restarted. A restarted replica remembers nothing of the
/// counts its earlier incarnation issued (no disk yet), so it counts in an entry of its own:
/// its writes can never be mistaken for the old ones, nor its counter increments be hidden
/// under the old process's larger count.
pub fn replica_node(member: u32, incarnation: u32) -> String {
    if incarnation == 0 {
        format!("r{member}")
    } else {
        format!("r{member}.{incarnation}")
    }
}

/// The causal state machine of one replica (see the module docs).
#[derive(Clone, Debug)]
pub struct CausalStore<V> {
    store: LatticeStore<CausalValue<V>>,
    /// This replica's entry in every clock it stamps.
    node: String,
    /// The highest count this replica has stamped at its entry, on any key. Each write takes
    /// a count above it, so no count is ever issued twice — not even for a key whose
    /// tombstone was collected, which leaves the key no clock to advance. (Advancing the
    /// key's own clock would stamp `{r0:1}` again after `{r0:2}` was collected; a peer still
    /// holding that tombstone would then wipe the acknowledged write everywhere — Riak's bug
    /// kv679, which dots that are never reused fix.)
    issued: u64,
}

impl<V: Clone + Ord + std::hash::Hash> CausalStore<V> {
    /// An empty store at storage member `member`, in its `incarnation` (see
    /// [`replica_node`]).
    pub fn new(member: u32, incarnation: u32) -> Self {
        Self {
            store: LatticeStore::default(),
            node: replica_node(member, incarnation),
            issued: 0,
        }
    }

    /// The version this replica holds of `key`: its clock and siblings, tombstones included.
    pub fn get(&self, key: &Key) -> Option<&CausalValue<V>> {
        self.store.get(key)
    }

    /// The clock this replica holds for `key` (empty if it holds no version).
    fn clock_of(&self, key: &Key) -> VectorClock {
        self.store
            .get(key)
            .map(|v| v.clock().clone())
            .unwrap_or_default()
    }

    /// `clock` advanced at this replica's entry to a count never issued before (see
    /// [`Self::issued`](CausalStore)), or an error once that entry is exhausted.
    fn advanced(&mut self, mut clock: VectorClock) -> Result<VectorClock, KVSResult<V>> {
        let Some(next) = clock.get(&self.node).max(self.issued).checked_add(1) else {
            return Err(KVSResult::Error(
                "write refused: this replica's entry of the key's vector clock is exhausted".into(),
            ));
        };
        clock.raise(&self.node, next);
        self.issued = next;
        Ok(clock)
    }

    /// The keys with a live version here (not only a tombstone), or a counter that counts.
    fn live_keys(&self) -> impl Iterator<Item = &Key> {
        self.store
            .entries()
            .filter(|(_, v)| {
                v.versions().iter().any(Option::is_some) || v.counter().value().is_some()
            })
            .map(|(k, _)| k)
    }

    /// The live values of `key`.
    fn live(&self, key: &Key) -> Vec<V> {
        self.store.get(key).map(siblings).unwrap_or_default()
    }

    /// `key`'s counter as this replica has it: `None` when it counts nothing.
    fn counter(&self, key: &Key) -> Option<&PnCounter> {
        self.store
            .get(key)
            .map(CausalValue::counter)
            .filter(|c| c.value().is_some())
    }

    /// Applies one input with all its effects: a transaction's operations one after another
    /// (see [`apply_atomically`]), and FLUSHDB as a delete of every key this replica holds a
    /// live version of — a tombstone each, gossiped like any delete. So a flush empties what
    /// this replica has seen; a write it had not seen is concurrent with the flush and
    /// survives it, as it would survive a DEL.
    pub fn apply_all(
        &mut self,
        input: StorageInput<V, CausalValue<V>>,
    ) -> AppliedAll<V, CausalValue<V>> {
        let request = match input {
            StorageInput::Request(request) if matches!(request.op, KVSOperation::Flush(_)) => {
                request
            }
            other => return apply_atomically(other, |input| self.apply(input)),
        };
        let at = request.at;
        let (_, reply_to) = request.into_parts();
        let keys: Vec<Key> = self.live_keys().cloned().collect();
        let mut out = AppliedAll::new();
        let mut result = KVSResult::Ok;
        for key in keys {
            let (response, effect) = self.apply(StorageInput::Request(KVSRequest {
                at,
                client: reply_to.client,
                request: reply_to.request,
                op: KVSOperation::Delete(key),
            }));
            if let Some(KVSResult::Error(e)) = response.map(|r| r.result) {
                result = KVSResult::Error(e);
            }
            if effect.is_some() {
                out.push((None, effect));
            }
        }
        out.push((Some(reply_to.respond(result)), None));
        out
    }

    /// Applies one input: reads answer the key's siblings; writes are stamped and merged; a
    /// peer's value merges without a reply.
    pub fn apply(&mut self, input: StorageInput<V, CausalValue<V>>) -> Applied<V, CausalValue<V>> {
        let req = match self.store.replicate(input) {
            Ok(effect) => return (None, effect),
            Err(req) => req,
        };
        let (op, reply_to) = req.into_parts();
        let (result, changed) = match op {
            KVSOperation::Get(key) | KVSOperation::GetAt(_, key) => {
                let mut values = self.live(&key);
                let result = match (self.counter(&key).and_then(PnCounter::value), values.len()) {
                    (Some(_), 1..) => KVSResult::Error(
                        "the key has a value (SET) and a counter (INCR), written concurrently \
                         at two replicas: DEL it to start again"
                            .into(),
                    ),
                    (Some(Ok(n)), _) => KVSResult::Integer(n),
                    (Some(Err(())), _) => overflow(),
                    (None, 0) => KVSResult::NotFound,
                    (None, 1) => KVSResult::Value(values.remove(0)),
                    (None, _) => KVSResult::Siblings(values),
                };
                (result, None)
            }
            // A counter: this replica counts in its own entry, so no increment made anywhere
            // is lost when the entries merge.
            KVSOperation::Add(key, delta) => {
                if !self.live(&key).is_empty() {
                    return (
                        Some(
                            reply_to.respond(KVSResult::Error(
                                "the key holds a value written by SET: on a replicated store a \
                             counter is a key only INCR/DECR write (DEL it first)"
                                    .into(),
                            )),
                        ),
                        None,
                    );
                }
                let counter = self.store.get(&key).map(CausalValue::counter);
                let counted = counter
                    .cloned()
                    .unwrap_or_default()
                    .add(&self.node, delta)
                    .filter(|c| c.value().is_none_or(|v| v.is_ok()));
                match counted {
                    Some(counted) => {
                        let n = counted.value().and_then(Result::ok).unwrap_or(0);
                        let changed = self
                            .store
                            .merge_changed(key, CausalValue::counting(counted));
                        (KVSResult::Integer(n), changed)
                    }
                    None => (overflow(), None),
                }
            }
            KVSOperation::GetVersioned(key) => {
                let context = Context::from(self.clock_of(&key).to_string());
                (KVSResult::Versioned(context, self.live(&key)), None)
            }
            KVSOperation::Put(key, _)
            | KVSOperation::PutAt(_, key, _)
            | KVSOperation::PutVersioned(key, _, _)
                if self.counter(&key).is_some() =>
            {
                (
                    KVSResult::Error(
                        "the key is a counter (INCR/DECR): on a replicated store only INCR and \
                         DECR change it; DEL it first to SET it"
                            .into(),
                    ),
                    None,
                )
            }
            KVSOperation::Put(key, value) | KVSOperation::PutAt(_, key, value) => {
                match self.advanced(self.clock_of(&key)) {
                    Ok(clock) => (
                        KVSResult::Ok,
                        self.store.merge_changed(key, causal_write(clock, value)),
                    ),
                    Err(refused) => (refused, None),
                }
            }
            KVSOperation::Delete(key) => {
                let counter = self.counter(&key).map(PnCounter::reset);
                let mut deleted = if self.live(&key).is_empty() {
                    // Nothing live to delete: a tombstone would change no reader's view.
                    None
                } else {
                    match self.advanced(self.clock_of(&key)) {
                        Ok(clock) => Some(causal_delete(clock)),
                        Err(refused) => return (Some(reply_to.respond(refused)), None),
                    }
                };
                // A counter is reset: what it counted no longer counts (an increment made
                // elsewhere that this replica had not seen yet survives).
                if let Some(reset) = counter {
                    let reset = CausalValue::counting(reset);
                    match &mut deleted {
                        Some(tombstone) => {
                            tombstone.merge(reset);
                        }
                        None => deleted = Some(reset),
                    }
                }
                match deleted {
                    Some(deleted) => (KVSResult::Ok, self.store.merge_changed(key, deleted)),
                    None => (KVSResult::NotFound, None),
                }
            }
            KVSOperation::PutVersioned(key, context, value) => {
                match self.successor(&key, &context, value) {
                    Ok(version) => (KVSResult::Ok, self.store.merge_changed(key, version)),
                    Err(refused) => (refused, None),
                }
            }
            KVSOperation::Transaction(_) => (crate::store::refusals::transaction_at_core(), None),
            KVSOperation::Snapshot(_) | KVSOperation::Restore(_) => {
                (crate::store::refusals::no_state_transfer(), None)
            }
            KVSOperation::Append(..) | KVSOperation::PutIf(..) | KVSOperation::Cas(..) => {
                (crate::store::refusals::needs_one_copy(), None)
            }
            // One input, one effect: a flush changes many keys, so `apply_all` takes it.
            KVSOperation::Flush(_) => (
                KVSResult::Error("FLUSHDB is applied by CausalStore::apply_all".into()),
                None,
            ),
            KVSOperation::PutExpiring(..)
            | KVSOperation::ExpireAt(..)
            | KVSOperation::Persist(_)
            | KVSOperation::Ttl(_) => (crate::store::refusals::expiry_needs_one_copy(), None),
            KVSOperation::Watch(_) | KVSOperation::Unwatch(_) | KVSOperation::Unchanged(_) => {
                (crate::store::refusals::watch_needs_one_copy(), None)
            }
            // This replica's view: keys with a live version here.
            KVSOperation::Count(_) => {
                let live = self.live_keys().count() as i64;
                (KVSResult::Integer(live), None)
            }
            KVSOperation::Scan {
                from,
                count,
                pattern,
                ..
            } => {
                let result = crate::store::keyspace::scan_result(
                    self.live_keys(),
                    from,
                    count,
                    pattern.as_deref(),
                );
                (result, None)
            }
        };
        (Some(reply_to.respond(result)), changed)
    }

    /// The version a `SETCTX key context value` writes (see the module docs).
    fn successor(
        &mut self,
        key: &Key,
        context: &Context,
        value: V,
    ) -> Result<CausalValue<V>, KVSResult<V>> {
        let seen: VectorClock = std::str::from_utf8(context)
            .ok()
            .and_then(|text| text.parse().ok())
            .ok_or_else(|| {
                KVSResult::Error(
                    "invalid causal context: pass back what GETCTX answered (e.g. r0:2,r1:1)"
                        .into(),
                )
            })?;
        let held = self.clock_of(key);
        if seen.get(&self.node) >= held.get(&self.node) {
            // This replica wrote nothing the client did not see: advancing the context at our
            // entry supersedes what the client read and stays concurrent with whatever other
            // replicas wrote meanwhile (those become siblings when gossip brings them).
            return Ok(causal_write(self.advanced(seen)?, value));
        }
        // This replica took a write the client did not see. Keep every version it holds, plus
        // the new one, under a clock that dominates them all: nothing is lost.
        let mut clock = held;
        clock.merge(seen);
        let clock = self.advanced(clock)?;
        let mut versions: BTreeSet<Option<V>> = self
            .store
            .get(key)
            .map(|v| v.versions().clone())
            .unwrap_or_default();
        versions.insert(Some(value));
        Ok(CausalValue::new(clock, versions))
    }
}

/// Redis's answer when a counter would leave the range of a 64-bit integer.
fn overflow<V>() -> KVSResult<V> {
    KVSResult::Error("increment or decrement would overflow".into())
}

/// The causal storage core (see the module docs).
pub struct CausalKVSCore;

impl CausalKVSCore {
    /// Runs a [`CausalStore`] at each member of `L`, stamping as that member, over `inputs`;
    /// returns the responses to client requests and the `(key, new value)` stream of every
    /// change.
    pub fn serve<'a, L, V>(
        inputs: Stream<StorageInput<V, CausalValue<V>>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, CausalValue<V>, L>
    where
        L: Location<'a>,
        V: Clone + Ord + std::hash::Hash + 'a,
    {
        // The member id is a singleton crossed with every input, and the store is built on the
        // first one: a scan's initial state cannot read a live collection.
        let applied = inputs
            .cross_singleton(member)
            .scan(
                q!(|| None),
                q!(|store, (input, member)| {
                    let store = store.get_or_insert_with(|| {
                        crate::store::causal_core::CausalStore::new(
                            member,
                            crate::membership::incarnation(),
                        )
                    });
                    Some(store.apply_all(input))
                }),
            )
            .flatten_ordered();
        split_applied(applied)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::ShardId;
    use crate::protocol::{KVSRequest, KVSResponse};

    type Input = StorageInput<&'static str, CausalValue<&'static str>>;

    fn req(op: KVSOperation<&'static str>) -> Input {
        StorageInput::Request(KVSRequest {
            at: 0,
            client: 1,
            request: 0,
            op,
        })
    }

    fn k() -> Key {
        Key::from_static(b"k")
    }

    fn result(store: &mut CausalStore<&'static str>, input: Input) -> KVSResult<&'static str> {
        let (reply, _): (Option<KVSResponse<_>>, _) = store.apply(input);
        reply.expect("a request is answered").result
    }

    /// Replica `from`'s current version of `k`, as gossip would carry it.
    fn version(from: &CausalStore<&'static str>) -> CausalValue<&'static str> {
        from.get(&k()).expect("the replica holds k").clone()
    }

    /// Replicas `a` and `b` hear each other's version of `k`, as gossip would bring it.
    fn exchange(a: &mut CausalStore<&'static str>, b: &mut CausalStore<&'static str>) {
        let (va, vb) = (version(a), version(b));
        a.apply(StorageInput::Merge(k(), vb));
        b.apply(StorageInput::Merge(k(), va));
    }

    fn context(store: &mut CausalStore<&'static str>) -> Context {
        match result(store, req(KVSOperation::GetVersioned(k()))) {
            KVSResult::Versioned(context, _) => context,
            other => panic!("GETCTX answered {other:?}"),
        }
    }

    #[test]
    fn writes_are_stamped_with_the_replicas_own_entry() {
        let mut r2 = CausalStore::new(2, 0);
        result(&mut r2, req(KVSOperation::Put(k(), "a")));
        result(&mut r2, req(KVSOperation::Put(k(), "b")));
        assert_eq!(
            version(&r2).clock(),
            &VectorClock::new().tick("r2").tick("r2")
        );
        assert_eq!(
            result(&mut r2, req(KVSOperation::Get(k()))),
            KVSResult::Value("b")
        );
    }

    #[test]
    fn concurrent_writes_at_two_replicas_become_siblings_and_a_later_write_supersedes_them() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        result(&mut r0, req(KVSOperation::Put(k(), "a1")));
        result(&mut r1, req(KVSOperation::Put(k(), "a2")));
        exchange(&mut r0, &mut r1);
        for r in [&mut r0, &mut r1] {
            assert_eq!(
                result(r, req(KVSOperation::Get(k()))),
                KVSResult::Siblings(vec!["a1", "a2"])
            );
        }
        // A plain SET at r0 has seen both, so it replaces both — at r1 too, once gossiped.
        result(&mut r0, req(KVSOperation::Put(k(), "a3")));
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        assert_eq!(
            result(&mut r1, req(KVSOperation::Get(k()))),
            KVSResult::Value("a3")
        );
    }

    #[test]
    fn a_write_with_a_context_resolves_exactly_the_siblings_it_read() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        result(&mut r0, req(KVSOperation::Put(k(), "x")));
        result(&mut r1, req(KVSOperation::Put(k(), "y")));
        r0.apply(StorageInput::Merge(k(), version(&r1)));
        let seen = context(&mut r0);
        assert_eq!(&seen[..], b"r0:1,r1:1");
        // Meanwhile r1 takes another write the client has not seen.
        result(&mut r1, req(KVSOperation::Put(k(), "z")));
        result(&mut r0, req(KVSOperation::PutVersioned(k(), seen, "xy")));
        r0.apply(StorageInput::Merge(k(), version(&r1)));
        // "xy" replaced x and y, which the client read; z is concurrent with it and stays.
        assert_eq!(
            result(&mut r0, req(KVSOperation::Get(k()))),
            KVSResult::Siblings(vec!["xy", "z"])
        );
    }

    #[test]
    fn a_stale_context_at_the_same_replica_loses_no_write() {
        let mut r0 = CausalStore::new(0, 0);
        result(&mut r0, req(KVSOperation::Put(k(), "v1")));
        let seen = context(&mut r0);
        result(&mut r0, req(KVSOperation::Put(k(), "v2")));
        result(&mut r0, req(KVSOperation::PutVersioned(k(), seen, "mine")));
        assert_eq!(
            result(&mut r0, req(KVSOperation::Get(k()))),
            KVSResult::Siblings(vec!["mine", "v2"])
        );
    }

    #[test]
    fn a_malformed_context_is_refused() {
        let mut r0 = CausalStore::new(0, 0);
        let bad = Context::from_static(b"r0:many");
        assert!(matches!(
            result(&mut r0, req(KVSOperation::PutVersioned(k(), bad, "v"))),
            KVSResult::Error(e) if e.contains("invalid causal context")
        ));
    }

    #[test]
    fn a_delete_is_a_tombstone_that_an_older_value_cannot_undo() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        result(&mut r0, req(KVSOperation::Put(k(), "old")));
        let old = version(&r0);
        r1.apply(StorageInput::Merge(k(), old.clone()));
        assert_eq!(
            result(&mut r1, req(KVSOperation::Delete(k()))),
            KVSResult::Ok
        );
        r0.apply(StorageInput::Merge(k(), version(&r1)));
        // A late, duplicated message carrying the old value changes nothing anywhere.
        for r in [&mut r0, &mut r1] {
            assert_eq!(r.apply(StorageInput::Merge(k(), old.clone())).1, None);
            assert_eq!(result(r, req(KVSOperation::Get(k()))), KVSResult::NotFound);
        }
        assert_eq!(
            result(&mut r0, req(KVSOperation::Delete(k()))),
            KVSResult::NotFound
        );
    }

    #[test]
    fn an_exhausted_entry_refuses_the_write() {
        let mut r0 = CausalStore::new(0, 0);
        let top = causal_write(VectorClock::from_entries([("r0", u64::MAX)]), "top");
        r0.apply(StorageInput::Merge(k(), top));
        assert!(matches!(
            result(&mut r0, req(KVSOperation::Put(k(), "v"))),
            KVSResult::Error(_)
        ));
        assert_eq!(
            result(&mut r0, req(KVSOperation::Get(k()))),
            KVSResult::Value("top")
        );
    }

    /// INCR, APPEND, SET NX/XX and CAS on a replicated store would lose concurrent updates: they
    /// are refused with an error that says why.
    #[test]
    fn read_modify_write_commands_are_refused_with_the_reason() {
        assert_refused(
            [
                KVSOperation::Append(k(), "x"),
                KVSOperation::PutIf(k(), "x", crate::protocol::Presence::Absent),
                KVSOperation::Cas(k(), "x", "y"),
            ],
            "one write would be lost",
        );
    }

    /// Each of `ops`, at a fresh replica, answers an error that says `why`.
    fn assert_refused(ops: impl IntoIterator<Item = KVSOperation<&'static str>>, why: &str) {
        let mut r0 = CausalStore::new(0, 0);
        for op in ops {
            let answer = result(&mut r0, req(op.clone()));
            assert!(
                matches!(&answer, KVSResult::Error(e) if e.contains(why)),
                "{op:?}: {answer:?}"
            );
        }
    }

    /// INCR at two replicas at once: each counts in its own entry, and once they hear of
    /// each other both answer the sum — no increment lost.
    #[test]
    fn increments_at_two_replicas_are_all_counted() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        assert_eq!(
            result(&mut r0, req(KVSOperation::Add(k(), 5))),
            KVSResult::Integer(5)
        );
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        assert_eq!(
            result(&mut r0, req(KVSOperation::Add(k(), 1))),
            KVSResult::Integer(6)
        );
        assert_eq!(
            result(&mut r1, req(KVSOperation::Add(k(), 1))),
            KVSResult::Integer(6)
        );
        exchange(&mut r0, &mut r1);
        for r in [&mut r0, &mut r1] {
            assert_eq!(
                result(r, req(KVSOperation::Get(k()))),
                KVSResult::Integer(7)
            );
        }
    }

    /// Collects `k`'s tombstone at `store`, as gossip does once every replica holds it.
    fn collect(store: &mut CausalStore<&'static str>) {
        use crate::values::fingerprint::Fingerprint;
        let print = version(store).fingerprint(&k());
        store.apply(StorageInput::Collect { key: k(), print });
        assert!(store.get(&k()).is_none(), "the tombstone was collected");
    }

    /// kv679: r0 deletes k; r0 collects the tombstone while r1 still holds it (a copy on its
    /// way, or r1 had not collected yet); r0 then takes a new write to k. Were it stamped by
    /// the key's clock ({r0:1} again, since the key has none left), r1's tombstone {r0:2}
    /// would dominate it and wipe the acknowledged write at both replicas.
    #[test]
    fn a_write_after_a_collected_tombstone_survives_the_tombstone() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        result(&mut r0, req(KVSOperation::Put(k(), "old")));
        result(&mut r0, req(KVSOperation::Delete(k())));
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        collect(&mut r0);
        assert_eq!(
            result(&mut r0, req(KVSOperation::Put(k(), "new"))),
            KVSResult::Ok
        );
        exchange(&mut r0, &mut r1);
        for r in [&mut r0, &mut r1] {
            assert_eq!(
                result(r, req(KVSOperation::Get(k()))),
                KVSResult::Value("new")
            );
        }
    }

    /// A restarted replica remembers nothing, yet its writes and increments are never hidden
    /// under what its earlier incarnation issued: it stamps and counts in an entry of its own.
    #[test]
    fn a_restarted_replica_never_reuses_what_its_earlier_incarnation_issued() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        let counter = Key::from_static(b"c");
        let incr = |store: &mut CausalStore<&'static str>, by| {
            result(store, req(KVSOperation::Add(Key::from_static(b"c"), by)))
        };
        for _ in 0..3 {
            result(&mut r0, req(KVSOperation::Put(k(), "before")));
        }
        incr(&mut r0, 10);
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        r1.apply(StorageInput::Merge(
            counter.clone(),
            r0.get(&counter).unwrap().clone(),
        ));
        // r0 dies and comes back empty, as incarnation 1.
        let mut r0 = CausalStore::new(0, 1);
        assert_eq!(
            result(&mut r0, req(KVSOperation::Put(k(), "after"))),
            KVSResult::Ok
        );
        assert_eq!(incr(&mut r0, 1), KVSResult::Integer(1));
        exchange(&mut r0, &mut r1);
        r0.apply(StorageInput::Merge(
            counter.clone(),
            r1.get(&counter).unwrap().clone(),
        ));
        // The new write is concurrent with the old one (neither saw the other): siblings,
        // nothing lost; the counter has both incarnations' increments.
        assert_eq!(
            result(&mut r0, req(KVSOperation::Get(k()))),
            KVSResult::Siblings(vec!["after", "before"])
        );
        assert_eq!(incr(&mut r0, 0), KVSResult::Integer(11));
    }

    /// Counters and values do not mix on one key: SET of a counter and INCR of a value are
    /// refused with the reason; DEL resets a counter, and the key then counts from 0.
    #[test]
    fn a_counter_takes_only_incr_and_del() {
        let mut r0 = CausalStore::new(0, 0);
        result(&mut r0, req(KVSOperation::Add(k(), 2)));
        assert!(matches!(
            result(&mut r0, req(KVSOperation::Put(k(), "x"))),
            KVSResult::Error(e) if e.contains("the key is a counter")
        ));
        assert_eq!(
            result(&mut r0, req(KVSOperation::Delete(k()))),
            KVSResult::Ok
        );
        assert_eq!(
            result(&mut r0, req(KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
        assert_eq!(
            result(&mut r0, req(KVSOperation::Add(k(), 1))),
            KVSResult::Integer(1)
        );
        let value = Key::from_static(b"value");
        result(&mut r0, req(KVSOperation::Put(value.clone(), "x")));
        assert!(matches!(
            result(&mut r0, req(KVSOperation::Add(value, 1))),
            KVSResult::Error(e) if e.contains("holds a value written by SET")
        ));
    }

    #[test]
    fn expiry_is_refused_with_the_reason() {
        assert_refused(
            [
                KVSOperation::PutExpiring(k(), "x", None, crate::protocol::Expiry::At(5)),
                KVSOperation::ExpireAt(k(), 5),
                KVSOperation::Persist(k()),
                KVSOperation::Ttl(k()),
            ],
            "expiry needs one clock",
        );
    }

    #[test]
    fn watch_is_refused_with_the_reason() {
        assert_refused(
            [
                KVSOperation::Watch(k()),
                KVSOperation::Unwatch(k()),
                KVSOperation::Unchanged(k()),
            ],
            "WATCH needs one copy",
        );
    }

    /// FLUSHDB deletes what this replica holds, a tombstone per key that gossip carries to
    /// the others; a write the replica had not seen is concurrent with it and survives.
    #[test]
    fn a_flush_deletes_every_key_this_replica_holds_and_spares_writes_it_had_not_seen() {
        let (mut r0, mut r1) = (CausalStore::new(0, 0), CausalStore::new(1, 0));
        let other = Key::from_static(b"other");
        result(&mut r0, req(KVSOperation::Put(k(), "a")));
        result(&mut r0, req(KVSOperation::Put(other.clone(), "b")));
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        // r1 writes k again before it hears of the flush.
        result(&mut r1, req(KVSOperation::Put(k(), "later")));
        let applied = r0.apply_all(req(KVSOperation::Flush(ShardId(0))));
        let (reply, effects): (Vec<_>, Vec<_>) =
            applied.into_iter().partition(|(r, _)| r.is_some());
        assert_eq!(reply.len(), 1);
        assert_eq!(
            reply[0].0.as_ref().map(|r| r.result.clone()),
            Some(KVSResult::Ok)
        );
        assert_eq!(effects.len(), 2, "one tombstone per key, for gossip");
        for key in [k(), other] {
            assert_eq!(
                result(&mut r0, req(KVSOperation::Get(key))),
                KVSResult::NotFound
            );
        }
        // Gossip: r1's later write is concurrent with the flush's tombstone and survives it.
        r1.apply(StorageInput::Merge(k(), version(&r0)));
        assert_eq!(
            result(&mut r1, req(KVSOperation::Get(k()))),
            KVSResult::Value("later")
        );
    }
}
