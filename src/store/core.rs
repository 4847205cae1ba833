//! `KVSCore`: the last-writer-wins storage core.
//!
//! Clients write plain values; the core stamps each write with a Lamport time and this
//! writer's id, making it an [`LwwValue`], and merges it into a [`LatticeStore`]. So LWW is
//! not a second kind of store: it is the lattice store over a lattice whose merge keeps the
//! latest stamp. A DELETE is a tombstone write, stamped and merged like any other, which is
//! what lets a delete replicate (and lose to a later write) instead of vanishing.
//!
//! **Expiry.** A key may carry a deadline (`SET … EX`, `EXPIRE`). The store's time is the
//! greatest [`KVSRequest::at`](crate::protocol::KVSRequest::at) it has applied — the edge's
//! clock, carried by each request — never the clock of the process it runs in: replicas that
//! apply one log in one order then agree on which keys have expired at every point of it.
//! Before each request, every key whose deadline has come is removed (a tombstone, as DEL
//! writes), so no operation, SCAN and DBSIZE included, sees an expired key.
//!
//! [`LwwStore`] is the state machine, plain Rust with no I/O; [`KVSCore::serve`] runs it as a
//! Hydro dataflow.

use hydro_lang::live_collections::stream::TotalOrder;
use hydro_lang::location::Location;
use hydro_lang::prelude::*;

use crate::store::durable::Change;
use crate::store::lattice_core::LatticeStore;
use crate::store::seam::{Applied, Effect, StorageInput, StorageOutput, split_applied};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::{
    ClientId, Expiry, KVSOperation, KVSRequest, KVSResponse, KVSResult, Key, Presence,
};
use crate::values::{LwwValue, Stamp};

/// What the string commands (INCR, APPEND) need of a client value: its bytes, and a value
/// made of bytes.
pub trait StringValue: Sized {
    /// The value's bytes.
    fn bytes(&self) -> &[u8];
    /// A value holding `bytes`.
    fn from_bytes(bytes: Vec<u8>) -> Self;
}

impl StringValue for bytes::Bytes {
    fn bytes(&self) -> &[u8] {
        self
    }

    fn from_bytes(bytes: Vec<u8>) -> Self {
        bytes::Bytes::from(bytes)
    }
}

/// The most watches (`WATCH`) a store keeps, over all clients.
pub const MAX_WATCHES: usize = 100_000;

/// The longest value APPEND may build: Redis's `proto-max-bulk-len` (512 MiB).
pub const MAX_STRING_BYTES: usize = 512 * 1024 * 1024;

/// An [`LwwStore`]'s whole state, as [`KVSOperation::Snapshot`] reads it and
/// [`KVSOperation::Restore`] puts it back: how a replica of the linearizable store that
/// fell behind the log takes over another's state (see [`crate::consensus::paxos::transfer`]).
/// Everything an operation's answer can depend on is here — values with their stamps
/// (tombstones too), the clock, the store's time, deadlines and watches — so the replica
/// that restores it answers every later operation of the log as the one that read it.
/// Sorted, so two replicas at one point of the log read equal images.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoreImage {
    /// The Lamport clock.
    pub clock: u64,
    /// The store's time (ms since the epoch).
    pub now: u64,
    /// Every key, with its stamp and its value (`None`: a tombstone).
    pub values: Vec<(Key, Stamp, Option<bytes::Bytes>)>,
    /// Every deadline.
    pub deadlines: Vec<(Key, u64)>,
    /// Every watch: the client, the key, the version watched.
    pub watches: Vec<(ClientId, Key, Option<u64>)>,
}

/// The LWW state machine: a lattice map of [`LwwValue`]s plus a Lamport clock.
#[derive(Clone, Debug)]
pub struct LwwStore<V> {
    store: LatticeStore<LwwValue<V>>,
    /// Greatest Lamport time seen, in local writes or merged peer values.
    clock: u64,
    writer: u64,
    /// The store's time: the greatest `at` of the requests applied (ms since the epoch).
    now: u64,
    /// Each expiring key's deadline…
    deadlines: HashMap<Key, u64>,
    /// …and the same, in deadline order, so the keys due are found without a scan.
    due: BTreeSet<(u64, Key)>,
    /// `WATCH`: per client and key, the key's version when the client watched it, or `None`
    /// once something changed every key at once (`FLUSHDB`). Ordered, not hashed: which
    /// watch is evicted past [`MAX_WATCHES`] must be the same at every replica applying the
    /// same log, and a `HashMap`'s order differs from process to process.
    watches: BTreeMap<(ClientId, Key), Option<u64>>,
    /// Whether writes are reported as [`Effect::Changed`](crate::store::seam::Effect): a
    /// store that is not replicated copies out no changes, since nobody would read them.
    reports_changes: bool,
    /// Every change to the state since the last [`LwwStore::take_changes`], when the store
    /// keeps a log on disk (see [`crate::store::durable`]); `None` when it keeps none, so
    /// a store in memory copies nothing.
    changes: Option<Vec<Change>>,
}

impl<V: Clone + Ord + std::hash::Hash + StringValue> LwwStore<V> {
    /// An empty store whose writes are stamped with `writer` as tie-breaker.
    pub fn new(writer: u64) -> Self {
        Self {
            store: LatticeStore::default(),
            clock: 0,
            writer,
            now: 0,
            deadlines: HashMap::new(),
            due: BTreeSet::new(),
            watches: BTreeMap::new(),
            reports_changes: true,
            changes: None,
        }
    }

    /// From now on, keeps every change to the state for [`LwwStore::take_changes`].
    pub fn keep_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The changes kept since the last call (none unless [`LwwStore::keep_changes`]).
    pub fn take_changes(&mut self) -> Vec<Change> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Applies a change that [`LwwStore::take_changes`] once returned: how a store is rebuilt
    /// from its log. The clock moves past every stamp replayed, so later writes win.
    pub fn replay(&mut self, change: Change) {
        match change {
            Change::Value { key, stamp, value } => {
                self.clock = self.clock.max(stamp.time);
                let value = LwwValue {
                    stamp,
                    value: value.map(|v| V::from_bytes(v.to_vec())),
                };
                self.store.merge_quietly(key, value);
            }
            Change::Deadline { key, at } => self.set_deadline(&key, at),
            Change::Flush => self.flush(),
        }
    }

    /// Forgets every watch: a store restarted from disk has no connections left to watch.
    pub fn forget_watches(&mut self) {
        self.watches.clear();
    }

    /// Removes every key (tombstones too) and every deadline.
    fn flush(&mut self) {
        self.store.clear();
        self.deadlines.clear();
        self.due.clear();
        // Every key is a missing key again, version 0: a watch taken when its key was
        // missing would match again, though the key was written and flushed since.
        // As in Redis, a flush touches every watched key.
        for watched in self.watches.values_mut() {
            *watched = None;
        }
        if let Some(changes) = &mut self.changes {
            changes.push(Change::Flush);
        }
    }

    /// A single copy's store ([`KVSCore::answer`]): it reports no changes, and since no
    /// peer's value is ever merged into it, the writer that breaks ties between stamps is
    /// never consulted (every write is stamped as writer 0).
    pub fn single_copy() -> Self {
        Self {
            reports_changes: false,
            ..Self::new(0)
        }
    }

    /// Merges a write of this store's own into `key`; reports the change if changes are
    /// reported.
    fn commit(&mut self, key: Key, value: LwwValue<V>) -> Option<Effect<LwwValue<V>>> {
        if let Some(changes) = &mut self.changes {
            changes.push(Change::Value {
                key: key.clone(),
                stamp: value.stamp,
                value: value
                    .live()
                    .map(|v| bytes::Bytes::copy_from_slice(v.bytes())),
            });
        }
        if self.reports_changes {
            self.store.merge_changed(key, value)
        } else {
            self.store.merge_quietly(key, value);
            None
        }
    }

    /// Answers one client request (a transaction as a whole): what a single copy does.
    pub fn answer(&mut self, request: KVSRequest<V>) -> KVSResponse<V> {
        crate::store::seam::answer_atomically(request, |input| self.apply(input))
    }

    /// `key`'s version: the Lamport time of the write (or delete, or expiry) that made its
    /// current value; 0 if it was never written. Every change stamps a later time.
    fn version(&self, key: &Key) -> u64 {
        self.store.get(key).map_or(0, |v| v.stamp.time)
    }

    /// The store's whole state, encoded ([`StoreImage`]).
    pub fn image(&self) -> Result<bytes::Bytes, String> {
        let mut values: Vec<(Key, Stamp, Option<bytes::Bytes>)> = self
            .store
            .entries()
            .map(|(key, v)| {
                let value = v.live().map(|v| bytes::Bytes::copy_from_slice(v.bytes()));
                (key.clone(), v.stamp, value)
            })
            .collect();
        values.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut deadlines: Vec<(Key, u64)> = self
            .deadlines
            .iter()
            .map(|(k, d)| (k.clone(), *d))
            .collect();
        deadlines.sort_unstable();
        let image = StoreImage {
            clock: self.clock,
            now: self.now,
            values,
            deadlines,
            watches: self
                .watches
                .iter()
                .map(|((client, key), version)| (*client, key.clone(), *version))
                .collect(),
        };
        bincode::serialize(&image)
            .map(bytes::Bytes::from)
            .map_err(|e| format!("the store's state could not be encoded: {e}"))
    }

    /// Replaces the whole state by `image` (what [`Self::image`] encoded); the store stays
    /// as it was if the image cannot be read. This store's writer id is kept: it stamps its
    /// own writes.
    pub fn restore(&mut self, image: &[u8]) -> Result<(), String> {
        let image: StoreImage = bincode::deserialize(image)
            .map_err(|e| format!("a snapshot of the store could not be read: {e}"))?;
        self.store.clear();
        for (key, stamp, value) in image.values {
            let value = LwwValue {
                stamp,
                value: value.map(|v| V::from_bytes(v.to_vec())),
            };
            self.store.merge_quietly(key, value);
        }
        self.clock = image.clock;
        self.now = image.now;
        self.due = image
            .deadlines
            .iter()
            .map(|(k, d)| (*d, k.clone()))
            .collect();
        self.deadlines = image.deadlines.into_iter().collect();
        self.watches = image
            .watches
            .into_iter()
            .map(|(client, key, version)| ((client, key), version))
            .collect();
        Ok(())
    }

    /// How many watches the store holds, over all clients.
    pub fn watching(&self) -> usize {
        self.watches.len()
    }

    /// Moves the store's time to `at` (never back) and removes every key whose deadline has
    /// come.
    fn advance(&mut self, at: u64) {
        self.now = self.now.max(at);
        while let Some((deadline, key)) = self.due.first().cloned() {
            if deadline > self.now {
                break;
            }
            self.due.pop_first();
            self.deadlines.remove(&key);
            if let Some(changes) = &mut self.changes {
                changes.push(Change::Deadline {
                    key: key.clone(),
                    at: None,
                });
            }
            self.remove(key);
        }
    }

    /// Writes a tombstone over `key`'s live value, if it has one. (No stamp left: the value
    /// stays — see `next_stamp` — which only a peer stamped at `u64::MAX` can cause.)
    fn remove(&mut self, key: Key) {
        if self.live(&key).is_some()
            && let Some(stamp) = self.next_stamp()
        {
            self.commit(key, LwwValue::tombstone(stamp));
        }
    }

    /// Gives `key` a deadline (`Some`) or none.
    fn set_deadline(&mut self, key: &Key, deadline: Option<u64>) {
        // Every SET clears a deadline: with none anywhere, that costs no lookup.
        if deadline.is_none() && self.deadlines.is_empty() {
            return;
        }
        let old = self.deadlines.remove(key);
        if let Some(old) = old {
            self.due.remove(&(old, key.clone()));
        }
        if let Some(deadline) = deadline {
            self.deadlines.insert(key.clone(), deadline);
            self.due.insert((deadline, key.clone()));
        }
        if old != deadline
            && let Some(changes) = &mut self.changes
        {
            changes.push(Change::Deadline {
                key: key.clone(),
                at: deadline,
            });
        }
    }

    /// How many keys have a deadline.
    pub fn expiring(&self) -> usize {
        self.deadlines.len()
    }

    /// The next stamp: later than everything this store has seen, so a client that reads a
    /// value and then writes always overwrites what it read. `None` once the clock has reached
    /// `u64::MAX` (only a peer's value stamped at the very top can take it there): no stamp
    /// would then be later than what the store holds, so the write must be refused rather
    /// than silently lose to the value it meant to replace.
    fn next_stamp(&mut self) -> Option<Stamp> {
        self.clock = self.clock.checked_add(1)?;
        Some(Stamp {
            time: self.clock,
            writer: self.writer,
        })
    }

    /// The keys holding a value (not a tombstone).
    fn live_keys(&self) -> impl Iterator<Item = &Key> {
        self.store
            .entries()
            .filter(|(_, v)| v.live().is_some())
            .map(|(k, _)| k)
    }

    fn live(&self, key: &Key) -> Option<&V> {
        self.store.get(key).and_then(LwwValue::live)
    }

    /// Applies one input: GET reads, PUT and DELETE stamp and merge, a peer's value merges.
    pub fn apply(&mut self, input: StorageInput<V, LwwValue<V>>) -> Applied<V, LwwValue<V>> {
        // A peer's value moves the Lamport clock past its stamp, so the next local write wins
        // over it.
        if let StorageInput::Merge(_, value) | StorageInput::Rumor { value, .. } = &input {
            self.clock = self.clock.max(value.stamp.time);
        }
        let req = match self.store.replicate(input) {
            Ok(effect) => return (None, effect),
            Err(req) => req,
        };
        self.advance(req.at);
        // Taken apart so the key and value move into the store rather than being copied.
        let (op, reply_to) = req.into_parts();
        match op {
            KVSOperation::Get(key) | KVSOperation::GetAt(_, key) => {
                let result = self
                    .live(&key)
                    .map_or(KVSResult::NotFound, |v| KVSResult::Value(v.clone()));
                (Some(reply_to.respond(result)), None)
            }
            KVSOperation::Put(key, value) | KVSOperation::PutAt(_, key, value) => {
                self.set_deadline(&key, None);
                self.write(reply_to, key, value, KVSResult::Ok)
            }
            KVSOperation::Delete(key) => {
                if self.live(&key).is_none() {
                    // Nothing live to delete: writing a tombstone would change no reader's view.
                    return (Some(reply_to.respond(KVSResult::NotFound)), None);
                }
                let Some(stamp) = self.next_stamp() else {
                    return (Some(reply_to.respond(clock_exhausted())), None);
                };
                self.set_deadline(&key, None);
                let changed = self.commit(key, LwwValue::tombstone(stamp));
                (Some(reply_to.respond(KVSResult::Ok)), changed)
            }
            KVSOperation::GetVersioned(_) | KVSOperation::PutVersioned(..) => (
                Some(reply_to.respond(crate::store::refusals::not_causal())),
                None,
            ),
            KVSOperation::Transaction(_) => (
                Some(reply_to.respond(crate::store::refusals::transaction_at_core())),
                None,
            ),
            // Read, compute and write in one step of this one store: nothing can come
            // between the read and the write, so no concurrent update is lost.
            KVSOperation::Add(key, delta) => {
                let current = match self.live(&key).map(|v| parse_integer(v.bytes())) {
                    None => 0,
                    Some(Some(n)) => n,
                    Some(None) => return (Some(reply_to.respond(not_an_integer())), None),
                };
                let Some(sum) = current.checked_add(delta) else {
                    return (
                        Some(reply_to.respond(KVSResult::Error(
                            "increment or decrement would overflow".into(),
                        ))),
                        None,
                    );
                };
                let value = V::from_bytes(sum.to_string().into_bytes());
                self.write(reply_to, key, value, KVSResult::Integer(sum))
            }
            KVSOperation::Append(key, more) => {
                let mut bytes = self
                    .live(&key)
                    .map_or_else(Vec::new, |v| v.bytes().to_vec());
                if bytes.len().saturating_add(more.bytes().len()) > MAX_STRING_BYTES {
                    return (
                        Some(reply_to.respond(KVSResult::Error(
                            "string exceeds maximum allowed size (proto-max-bulk-len)".into(),
                        ))),
                        None,
                    );
                }
                bytes.extend_from_slice(more.bytes());
                let len = bytes.len() as i64;
                self.write(reply_to, key, V::from_bytes(bytes), KVSResult::Integer(len))
            }
            KVSOperation::Count(_) => {
                let count = self.live_keys().count() as i64;
                (Some(reply_to.respond(KVSResult::Integer(count))), None)
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
                (Some(reply_to.respond(result)), None)
            }
            // Every key goes at once, tombstones too: no architecture replicates this core, so
            // there is nobody to tell (a replicated LWW store would write a tombstone per key).
            KVSOperation::Flush(_) => {
                self.flush();
                (Some(reply_to.respond(KVSResult::Ok)), None)
            }
            KVSOperation::Cas(key, expected, new) => {
                let matches = self
                    .live(&key)
                    .is_some_and(|held| held.bytes() == expected.bytes());
                if !matches {
                    return (Some(reply_to.respond(KVSResult::Integer(0))), None);
                }
                self.set_deadline(&key, None);
                self.write(reply_to, key, new, KVSResult::Integer(1))
            }
            KVSOperation::PutIf(key, value, presence) => {
                let present = self.live(&key).is_some();
                if present != (presence == Presence::Present) {
                    return (Some(reply_to.respond(KVSResult::NotFound)), None);
                }
                self.set_deadline(&key, None);
                self.write(reply_to, key, value, KVSResult::Ok)
            }
            KVSOperation::PutExpiring(key, value, presence, expiry) => {
                let present = self.live(&key).is_some();
                if presence.is_some_and(|p| present != (p == Presence::Present)) {
                    return (Some(reply_to.respond(KVSResult::NotFound)), None);
                }
                let deadline = match expiry {
                    Expiry::At(deadline) => Some(deadline),
                    Expiry::Keep => self.deadlines.get(&key).copied(),
                };
                self.set_deadline(&key, deadline);
                let written = self.write(reply_to, key.clone(), value, KVSResult::Ok);
                // A deadline already passed (EXAT in the past): written, and gone at once.
                if deadline.is_some_and(|d| d <= self.now) {
                    self.advance(self.now);
                }
                written
            }
            KVSOperation::ExpireAt(key, deadline) => {
                if self.live(&key).is_none() {
                    return (Some(reply_to.respond(KVSResult::Integer(0))), None);
                }
                self.set_deadline(&key, Some(deadline));
                self.advance(self.now);
                (Some(reply_to.respond(KVSResult::Integer(1))), None)
            }
            KVSOperation::Persist(key) => {
                let had = self.live(&key).is_some() && self.deadlines.contains_key(&key);
                self.set_deadline(&key, None);
                (
                    Some(reply_to.respond(KVSResult::Integer(i64::from(had)))),
                    None,
                )
            }
            KVSOperation::Watch(key) => {
                // Connections that close while watching never say UNWATCH: past the bound,
                // any watch may be forgotten, and a forgotten watch fails its check — the
                // transaction is refused and the client retries, never run over a change.
                // The first watch in order goes: the oldest connection's (client ids grow).
                if self.watches.len() >= MAX_WATCHES {
                    self.watches.pop_first();
                }
                let version = self.version(&key);
                self.watches.insert((reply_to.client, key), Some(version));
                (Some(reply_to.respond(KVSResult::Ok)), None)
            }
            KVSOperation::Unwatch(key) => {
                self.watches.remove(&(reply_to.client, key));
                (Some(reply_to.respond(KVSResult::Ok)), None)
            }
            KVSOperation::Unchanged(key) => {
                let version = self.version(&key);
                let result = match self.watches.remove(&(reply_to.client, key)) {
                    Some(Some(watched)) if watched == version => KVSResult::Ok,
                    _ => KVSResult::NotFound,
                };
                (Some(reply_to.respond(result)), None)
            }
            KVSOperation::Snapshot(log) => {
                let result = match self.image() {
                    Ok(image) => KVSResult::Snapshot(log, image),
                    Err(e) => KVSResult::Error(e),
                };
                (Some(reply_to.respond(result)), None)
            }
            KVSOperation::Restore(image) => {
                let result = match self.restore(&image) {
                    Ok(()) => KVSResult::Ok,
                    Err(e) => KVSResult::Error(e),
                };
                (Some(reply_to.respond(result)), None)
            }
            KVSOperation::Ttl(key) => {
                let ttl = match (self.live(&key), self.deadlines.get(&key)) {
                    (None, _) => -2,
                    (Some(_), None) => -1,
                    (Some(_), Some(&deadline)) => {
                        i64::try_from(deadline.saturating_sub(self.now)).unwrap_or(i64::MAX)
                    }
                };
                (Some(reply_to.respond(KVSResult::Integer(ttl))), None)
            }
        }
    }

    /// Stamps and merges a client's write of `value`, answering `answer`.
    fn write(
        &mut self,
        reply_to: crate::protocol::ReplyTo,
        key: Key,
        value: V,
        answer: KVSResult<V>,
    ) -> Applied<V, LwwValue<V>> {
        let Some(stamp) = self.next_stamp() else {
            return (Some(reply_to.respond(clock_exhausted())), None);
        };
        let changed = self.commit(key, LwwValue::write(stamp, value));
        (Some(reply_to.respond(answer)), changed)
    }
}

/// A value as Redis reads an integer: optional `-`, digits, no spaces, within `i64`.
fn parse_integer(bytes: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(bytes).ok()?;
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // "-0" and leading zeros are not how Redis writes integers; it refuses them too.
    if (digits.len() > 1 && digits.starts_with('0')) || text == "-0" {
        return None;
    }
    text.parse().ok()
}

/// Redis's answer to INCR of a value that is not an integer.
fn not_an_integer<V>() -> KVSResult<V> {
    KVSResult::Error("value is not an integer or out of range".into())
}

/// The answer to a write once the Lamport clock cannot advance (see `LwwStore::next_stamp`).
fn clock_exhausted<V>() -> KVSResult<V> {
    KVSResult::Error("write refused: the store's Lamport clock is exhausted".into())
}

/// The last-writer-wins storage core (see the module docs).
pub struct KVSCore;

impl KVSCore {
    /// Runs an [`LwwStore`] at each member of `L`, stamping as that member (`member`), over
    /// `inputs`; returns the responses to client requests and the `(key, new value)` stream of
    /// every change.
    pub fn serve<'a, L, V>(
        inputs: Stream<StorageInput<V, LwwValue<V>>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, LwwValue<V>, L>
    where
        L: Location<'a>,
        V: Clone + Ord + std::hash::Hash + StringValue + 'a,
    {
        // The member id is a singleton crossed with every input, and the store is built on the
        // first one: a scan's initial state cannot read a live collection.
        let applied = inputs
            .cross_singleton(member)
            .scan(
                q!(|| None),
                q!(|store, (input, member)| {
                    let store = store.get_or_insert_with(|| {
                        crate::store::kvs_core::LwwStore::new(u64::from(member))
                    });
                    Some(crate::store::seam::apply_atomically(input, |input| {
                        store.apply(input)
                    }))
                }),
            )
            .flatten_ordered();
        split_applied(applied)
    }

    /// Runs a single-copy store at each member of `L` over client `requests`; returns the
    /// responses. Nothing is copied out for replication. The store is kept on disk when the
    /// process has a data directory ([`crate::store::durable::LoggedStore`]): the answers of
    /// each batch leave once the batch's changes are in the log ([`crate::durability::settle`]).
    pub fn answer<'a, L, V>(
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder>
    where
        L: Location<'a>,
        V: Clone + Ord + std::hash::Hash + StringValue + 'a,
    {
        let tick = requests.location().tick();
        requests
            .scan(
                q!(|| crate::store::durable::LoggedStore::open()),
                q!(|store, request| Some(store.answer(request))),
            )
            .batch(
                &tick,
                nondet!(
                    /// Where a batch ends decides only how many answers share one write of
                    /// the log (and one fsync): each answer still leaves after the records of
                    /// every change applied before it are written.
                ),
            )
            .collect_vec()
            .flat_map_ordered(q!(|answers| crate::durability::settle(answers)))
            .all_ticks()
            .assert_has_consistency_of::<L>(manual_proof!(
                /// Batching and unbatching one member's answers, in order, at that member
                /// changes nothing a peer could see differently.
            ))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::membership::ShardId;
    use crate::protocol::KVSRequest;
    use crate::store::seam::Effect;

    fn req(request: u64, op: KVSOperation<Bytes>) -> StorageInput<Bytes, LwwValue<Bytes>> {
        StorageInput::Request(KVSRequest {
            at: 0,
            client: 9,
            request,
            op,
        })
    }

    /// A value: the number as text.
    fn n(number: u32) -> Bytes {
        Bytes::from(number.to_string())
    }

    fn k() -> Key {
        Key::from_static(b"k")
    }

    fn result(
        store: &mut LwwStore<Bytes>,
        input: StorageInput<Bytes, LwwValue<Bytes>>,
    ) -> KVSResult<Bytes> {
        store.apply(input).0.unwrap().result
    }

    /// A request carrying the edge's time `at`.
    fn at(at: u64, op: KVSOperation<Bytes>) -> StorageInput<Bytes, LwwValue<Bytes>> {
        StorageInput::Request(KVSRequest {
            at,
            client: 9,
            request: 0,
            op,
        })
    }

    fn expiring(value: u32, deadline: u64) -> KVSOperation<Bytes> {
        KVSOperation::PutExpiring(k(), n(value), None, Expiry::At(deadline))
    }

    /// A store restored from another's snapshot answers every later operation as that one
    /// does: values, tombstones, stamps, deadlines, the store's time and watches all travel.
    #[test]
    fn a_restored_store_answers_as_the_one_it_was_read_from() {
        let key = |name: &'static str| Key::from_static(name.as_bytes());
        let mut source = LwwStore::<Bytes>::single_copy();
        for op in [
            KVSOperation::Put(key("a"), n(1)),
            KVSOperation::Put(key("gone"), n(2)),
            KVSOperation::Delete(key("gone")),
            KVSOperation::PutExpiring(key("ttl"), n(3), None, Expiry::At(5_000)),
            KVSOperation::Watch(key("a")),
        ] {
            result(&mut source, at(1_000, op));
        }
        let KVSResult::Snapshot(log, image) = result(
            &mut source,
            req(0, KVSOperation::Snapshot(Bytes::from_static(b"log"))),
        ) else {
            panic!("a snapshot");
        };
        assert_eq!(
            log,
            Bytes::from_static(b"log"),
            "the log's part comes back as sent"
        );
        let mut restored = LwwStore::<Bytes>::single_copy();
        result(&mut restored, req(0, KVSOperation::Put(key("stale"), n(9))));
        assert_eq!(
            result(&mut restored, req(1, KVSOperation::Restore(image.clone()))),
            KVSResult::Ok
        );
        for op in [
            KVSOperation::Get(key("stale")),
            KVSOperation::Get(key("a")),
            KVSOperation::Ttl(key("ttl")),
            KVSOperation::Unchanged(key("a")),
            KVSOperation::Add(key("gone"), 1),
            KVSOperation::Count(ShardId(0)),
        ] {
            assert_eq!(
                result(&mut restored, at(2_000, op.clone())),
                result(&mut source, at(2_000, op.clone())),
                "{op:?}"
            );
        }
        // The deadline passes at both.
        let get = || at(6_000, KVSOperation::Get(key("ttl")));
        assert_eq!(result(&mut restored, get()), KVSResult::NotFound);
        assert_eq!(result(&mut source, get()), KVSResult::NotFound);
        // Both stamped the same writes the same way: their images are equal again.
        assert_eq!(restored.image(), source.image());
    }

    #[test]
    fn a_snapshot_that_cannot_be_read_leaves_the_store_as_it_was() {
        let mut s = LwwStore::<Bytes>::single_copy();
        result(&mut s, req(0, KVSOperation::Put(k(), n(1))));
        let garbage = KVSOperation::Restore(Bytes::from_static(b"\xff\xff\xff"));
        assert!(matches!(
            result(&mut s, req(1, garbage)),
            KVSResult::Error(_)
        ));
        assert_eq!(
            result(&mut s, req(2, KVSOperation::Get(k()))),
            KVSResult::Value(n(1))
        );
    }

    /// A single copy answers exactly as a store that reports its changes, transactions
    /// included; it just reports none.
    #[test]
    fn a_single_copy_answers_as_a_reporting_store_does() {
        let ops = [
            KVSOperation::Put(k(), n(1)),
            KVSOperation::Get(k()),
            KVSOperation::Add(k(), 4),
            KVSOperation::Transaction(vec![
                KVSOperation::Append(k(), n(0)),
                KVSOperation::Get(k()),
                KVSOperation::Delete(k()),
            ]),
            KVSOperation::Get(k()),
            KVSOperation::Delete(k()),
            KVSOperation::Put(Key::from_static(b"other"), n(7)),
            KVSOperation::Count(ShardId(0)),
        ];
        let mut reporting = LwwStore::new(0);
        let mut single = LwwStore::single_copy();
        for (request, op) in (0..).zip(ops) {
            let request = KVSRequest {
                at: 0,
                client: 9,
                request,
                op,
            };
            let reported =
                crate::store::seam::apply_atomically(StorageInput::Request(request.clone()), |i| {
                    reporting.apply(i)
                });
            let answer = reported.into_iter().find_map(|(reply, _)| reply);
            assert_eq!(Some(single.answer(request)), answer);
        }
        assert_eq!(single.live_keys().count(), 1);
    }

    /// The store's time is the requests' time: a key is there until its deadline and gone
    /// from the first request at or after it.
    #[test]
    fn a_key_expires_at_its_deadline_by_the_requests_clock() {
        let mut s = LwwStore::new(0);
        assert_eq!(result(&mut s, at(500, expiring(1, 1000))), KVSResult::Ok);
        assert_eq!(
            result(&mut s, at(600, KVSOperation::Ttl(k()))),
            KVSResult::Integer(400)
        );
        assert_eq!(
            result(&mut s, at(999, KVSOperation::Get(k()))),
            KVSResult::Value(n(1))
        );
        assert_eq!(
            result(&mut s, at(1000, KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
        assert_eq!(
            result(&mut s, at(1000, KVSOperation::Ttl(k()))),
            KVSResult::Integer(-2)
        );
        assert_eq!(s.expiring(), 0, "an expired key's deadline is forgotten");
    }

    /// Time never goes back: a request from a slower clock (or carrying none) is judged at
    /// the greatest time the store has seen.
    #[test]
    fn the_stores_time_never_goes_back() {
        let mut s = LwwStore::new(0);
        result(&mut s, at(0, KVSOperation::Put(k(), n(1))));
        assert_eq!(
            result(&mut s, at(2000, KVSOperation::Ttl(k()))),
            KVSResult::Integer(-1)
        );
        // A deadline before the store's time removes the key at once.
        assert_eq!(
            result(&mut s, at(0, KVSOperation::ExpireAt(k(), 1500))),
            KVSResult::Integer(1)
        );
        assert_eq!(
            result(&mut s, at(0, KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
        // So does writing with one (EXAT in the past).
        assert_eq!(result(&mut s, at(0, expiring(2, 1900))), KVSResult::Ok);
        assert_eq!(
            result(&mut s, at(0, KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
    }

    /// As in Redis: SET, CAS and SET NX/XX clear a deadline; INCR and APPEND keep it;
    /// PERSIST removes it; EXPIRE of a missing key does nothing.
    #[test]
    fn writes_clear_a_deadline_and_counters_keep_it() {
        let mut s = LwwStore::new(0);
        let ttl = |s: &mut LwwStore<Bytes>| result(s, at(10, KVSOperation::Ttl(k())));
        result(&mut s, at(0, expiring(1, 1000)));
        assert_eq!(
            result(&mut s, at(10, KVSOperation::Add(k(), 1))),
            KVSResult::Integer(2)
        );
        assert_eq!(ttl(&mut s), KVSResult::Integer(990));
        result(&mut s, at(10, KVSOperation::Append(k(), n(0))));
        assert_eq!(ttl(&mut s), KVSResult::Integer(990));
        result(&mut s, at(10, KVSOperation::Put(k(), n(5))));
        assert_eq!(ttl(&mut s), KVSResult::Integer(-1));
        let expire = KVSOperation::ExpireAt(k(), 1000);
        assert_eq!(
            result(&mut s, at(10, expire.clone())),
            KVSResult::Integer(1)
        );
        result(&mut s, at(10, KVSOperation::Cas(k(), n(5), n(6))));
        assert_eq!(ttl(&mut s), KVSResult::Integer(-1));
        result(&mut s, at(10, expire.clone()));
        assert_eq!(
            result(&mut s, at(10, KVSOperation::Persist(k()))),
            KVSResult::Integer(1)
        );
        assert_eq!(
            result(&mut s, at(10, KVSOperation::Persist(k()))),
            KVSResult::Integer(0)
        );
        assert_eq!(ttl(&mut s), KVSResult::Integer(-1));
        let missing = KVSOperation::ExpireAt(Key::from_static(b"nothing"), 1000);
        assert_eq!(result(&mut s, at(10, missing)), KVSResult::Integer(0));
        assert_eq!(s.expiring(), 0);
    }

    /// KEEPTTL keeps the old deadline; a condition that fails changes nothing.
    #[test]
    fn keepttl_keeps_the_deadline_and_a_failed_condition_changes_nothing() {
        let mut s = LwwStore::new(0);
        result(&mut s, at(0, expiring(1, 1000)));
        let keep = KVSOperation::PutExpiring(k(), n(2), None, Expiry::Keep);
        assert_eq!(result(&mut s, at(0, keep)), KVSResult::Ok);
        let absent = KVSOperation::PutExpiring(k(), n(3), Some(Presence::Absent), Expiry::At(5000));
        assert_eq!(result(&mut s, at(0, absent)), KVSResult::NotFound);
        assert_eq!(
            result(&mut s, at(0, KVSOperation::Ttl(k()))),
            KVSResult::Integer(1000)
        );
        assert_eq!(
            result(&mut s, at(0, KVSOperation::Get(k()))),
            KVSResult::Value(n(2))
        );
    }

    /// DBSIZE and SCAN count only keys that have not expired.
    #[test]
    fn the_keyspace_never_shows_an_expired_key() {
        let mut s = LwwStore::new(0);
        result(&mut s, at(0, expiring(1, 1000)));
        result(
            &mut s,
            at(0, KVSOperation::Put(Key::from_static(b"stays"), n(2))),
        );
        assert_eq!(
            result(&mut s, at(999, KVSOperation::Count(ShardId(0)))),
            KVSResult::Integer(2)
        );
        assert_eq!(
            result(&mut s, at(1000, KVSOperation::Count(ShardId(0)))),
            KVSResult::Integer(1)
        );
        let scan = KVSOperation::Scan {
            shard: ShardId(0),
            from: 0,
            count: 10,
            pattern: None,
        };
        assert_eq!(
            result(&mut s, at(1000, scan)),
            KVSResult::Scanned(None, vec![Key::from_static(b"stays")])
        );
    }

    fn apply_all(
        s: &mut LwwStore<Bytes>,
        input: StorageInput<Bytes, LwwValue<Bytes>>,
    ) -> KVSResult<Bytes> {
        let mut applied = crate::store::seam::apply_atomically(input, |i| s.apply(i));
        applied
            .pop()
            .and_then(|(reply, _)| reply)
            .expect("answered")
            .result
    }

    /// WATCH and the check EXEC starts with: unchanged passes, and any change — a write, a
    /// delete, an expiry, by anyone — fails it; every check ends its watch.
    #[test]
    fn a_watched_key_passes_its_check_until_it_changes() {
        let mut s = LwwStore::new(0);
        let watch = || req(0, KVSOperation::Watch(k()));
        let check = || req(0, KVSOperation::Unchanged(k()));
        result(&mut s, watch());
        assert_eq!(result(&mut s, check()), KVSResult::Ok);
        assert_eq!(
            result(&mut s, check()),
            KVSResult::NotFound,
            "the check ended it"
        );
        for change in [
            KVSOperation::Put(k(), n(1)),
            KVSOperation::Delete(k()),
            KVSOperation::PutExpiring(k(), n(2), None, Expiry::At(0)),
        ] {
            result(&mut s, watch());
            result(&mut s, req(0, change));
            assert_eq!(result(&mut s, check()), KVSResult::NotFound);
        }
        result(&mut s, watch());
        result(&mut s, req(0, KVSOperation::Unwatch(k())));
        assert_eq!(result(&mut s, check()), KVSResult::NotFound);
        assert_eq!(s.watching(), 0);
    }

    /// A request from `client`.
    fn from(client: u64, op: KVSOperation<Bytes>) -> StorageInput<Bytes, LwwValue<Bytes>> {
        StorageInput::Request(KVSRequest {
            at: 0,
            client,
            request: 0,
            op,
        })
    }

    /// FLUSHDB changes every key, so it fails every watch: even a watch on a key that was
    /// missing then, written since and flushed away again (missing both times).
    #[test]
    fn a_flush_fails_every_watch() {
        let mut s = LwwStore::new(0);
        result(&mut s, req(0, KVSOperation::Watch(k())));
        result(&mut s, req(1, KVSOperation::Put(k(), n(1))));
        result(&mut s, req(2, KVSOperation::Flush(ShardId(0))));
        assert_eq!(
            result(&mut s, req(3, KVSOperation::Unchanged(k()))),
            KVSResult::NotFound
        );
    }

    /// Replicas of the linearizable store apply one log: past the bound, they must forget
    /// the same watch, or one replica runs a transaction another refuses.
    #[test]
    fn replicas_evict_the_same_watch() {
        let mut replicas = [LwwStore::<Bytes>::new(0), LwwStore::<Bytes>::new(1)];
        for replica in &mut replicas {
            for client in 0..=MAX_WATCHES as u64 {
                let key = Key::from(format!("k{}", client % 1000));
                result(replica, from(client, KVSOperation::Watch(key)));
            }
            assert_eq!(replica.watching(), MAX_WATCHES);
        }
        let [a, b] = &replicas;
        assert!(
            a.watches == b.watches,
            "the replicas forgot different watches"
        );
        // The oldest connection's watch went.
        assert_eq!(
            result(
                &mut replicas[0],
                from(0, KVSOperation::Unchanged(Key::from("k0")))
            ),
            KVSResult::NotFound
        );
    }

    /// A transaction whose guard fails runs none of its operations and answers `Aborted`;
    /// with every guard passing it runs.
    #[test]
    fn a_transaction_over_a_changed_watched_key_does_not_run() {
        let mut s = LwwStore::new(0);
        let other = Key::from_static(b"other");
        let transaction = || {
            req(
                1,
                KVSOperation::Transaction(vec![
                    KVSOperation::Unchanged(k()),
                    KVSOperation::Put(other.clone(), n(7)),
                ]),
            )
        };
        result(&mut s, req(0, KVSOperation::Watch(k())));
        result(&mut s, req(0, KVSOperation::Put(k(), n(1))));
        assert_eq!(apply_all(&mut s, transaction()), KVSResult::Aborted);
        assert_eq!(
            result(&mut s, req(2, KVSOperation::Get(other.clone()))),
            KVSResult::NotFound
        );
        result(&mut s, req(0, KVSOperation::Watch(k())));
        assert_eq!(
            apply_all(&mut s, transaction()),
            KVSResult::Transaction(vec![KVSResult::Ok, KVSResult::Ok])
        );
        assert_eq!(
            result(&mut s, req(2, KVSOperation::Get(other))),
            KVSResult::Value(n(7))
        );
    }

    #[test]
    fn the_last_write_wins_and_delete_removes() {
        let mut s = LwwStore::new(0);
        assert_eq!(
            result(&mut s, req(0, KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
        assert_eq!(
            result(&mut s, req(1, KVSOperation::Put(k(), n(1)))),
            KVSResult::Ok
        );
        assert_eq!(
            result(&mut s, req(2, KVSOperation::Put(k(), n(2)))),
            KVSResult::Ok
        );
        assert_eq!(
            result(&mut s, req(3, KVSOperation::Get(k()))),
            KVSResult::Value(n(2))
        );
        assert_eq!(
            result(&mut s, req(4, KVSOperation::Delete(k()))),
            KVSResult::Ok
        );
        assert_eq!(
            result(&mut s, req(5, KVSOperation::Delete(k()))),
            KVSResult::NotFound
        );
        assert_eq!(
            result(&mut s, req(6, KVSOperation::Get(k()))),
            KVSResult::NotFound
        );
    }

    #[test]
    fn deletes_are_tombstones_that_replicate() {
        let mut s = LwwStore::new(0);
        s.apply(req(0, KVSOperation::Put(k(), n(1))));
        let (_, change) = s.apply(req(1, KVSOperation::Delete(k())));
        let Some(Effect::Changed(key, tombstone)) = change else {
            panic!("a delete of a live key is a change to gossip: {change:?}");
        };
        assert_eq!((key, tombstone.live()), (k(), None));
    }

    #[test]
    fn a_peers_later_write_wins_and_advances_the_clock() {
        let mut s = LwwStore::new(0);
        s.apply(req(0, KVSOperation::Put(k(), n(1))));
        let remote = LwwValue::write(
            Stamp {
                time: 10,
                writer: 1,
            },
            n(7),
        );
        let (reply, change) = s.apply(StorageInput::Merge(k(), remote));
        assert!(reply.is_none() && change.is_some());
        assert_eq!(
            result(&mut s, req(1, KVSOperation::Get(k()))),
            KVSResult::Value(n(7))
        );
        // The next local write is stamped after the peer's, so it wins.
        let (_, change) = s.apply(req(2, KVSOperation::Put(k(), n(8))));
        let Some(Effect::Changed(_, written)) = change else {
            panic!("a write is a change: {change:?}");
        };
        assert_eq!(
            written.stamp,
            Stamp {
                time: 11,
                writer: 0
            }
        );
        // A stale peer value changes nothing.
        let stale = LwwValue::write(Stamp { time: 3, writer: 5 }, n(0));
        assert_eq!(s.apply(StorageInput::Merge(k(), stale)), (None, None));
    }

    /// A peer's value stamped at `u64::MAX` leaves no later stamp: writes are refused with an
    /// error instead of overflowing the clock (a panic) or silently losing to that value.
    #[test]
    fn a_write_after_the_last_possible_stamp_is_refused() {
        let mut s = LwwStore::new(0);
        let top = Stamp {
            time: u64::MAX,
            writer: 1,
        };
        s.apply(StorageInput::Merge(k(), LwwValue::write(top, n(7))));
        assert!(matches!(
            result(&mut s, req(0, KVSOperation::Put(k(), n(8)))),
            KVSResult::Error(_)
        ));
        assert!(matches!(
            result(&mut s, req(1, KVSOperation::Delete(k()))),
            KVSResult::Error(_)
        ));
        assert_eq!(
            result(&mut s, req(2, KVSOperation::Get(k()))),
            KVSResult::Value(n(7))
        );
    }

    #[test]
    fn a_transaction_applies_its_operations_in_order_and_answers_them_together() {
        let mut s = LwwStore::new(0);
        let transaction = req(
            7,
            KVSOperation::Transaction(vec![
                KVSOperation::Put(k(), n(1)),
                KVSOperation::Get(k()),
                KVSOperation::Delete(k()),
                KVSOperation::Get(k()),
            ]),
        );
        let out = crate::store::seam::apply_atomically(transaction, |i| s.apply(i));
        // Two changes (the write, the tombstone), then the one response.
        assert_eq!(out.len(), 3);
        assert!(out[..2].iter().all(|(r, e)| r.is_none() && e.is_some()));
        let response = out[2].0.clone().expect("the transaction is answered");
        assert_eq!(response.request, 7);
        assert_eq!(
            response.result,
            KVSResult::Transaction(vec![
                KVSResult::Ok,
                KVSResult::Value(n(1)),
                KVSResult::Ok,
                KVSResult::NotFound
            ])
        );
        // A compound command queued in a transaction (GETDEL after MULTI) runs in place.
        let nested = req(
            9,
            KVSOperation::Transaction(vec![
                KVSOperation::Put(k(), n(2)),
                KVSOperation::Transaction(vec![KVSOperation::Get(k()), KVSOperation::Delete(k())]),
            ]),
        );
        let out = crate::store::seam::apply_atomically(nested, |i| s.apply(i));
        assert_eq!(
            out.last().and_then(|(r, _)| r.clone()).map(|r| r.result),
            Some(KVSResult::Transaction(vec![
                KVSResult::Ok,
                KVSResult::Transaction(vec![KVSResult::Value(n(2)), KVSResult::Ok]),
            ]))
        );
        // Anything else is applied as it is.
        let out =
            crate::store::seam::apply_atomically(req(8, KVSOperation::Get(k())), |i| s.apply(i));
        assert_eq!(out.len(), 1);
    }

    fn text(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn run(store: &mut LwwStore<Bytes>, op: KVSOperation<Bytes>) -> KVSResult<Bytes> {
        let input = StorageInput::Request(KVSRequest {
            at: 0,
            client: 1,
            request: 0,
            op,
        });
        store.apply(input).0.expect("answered").result
    }

    #[test]
    fn incr_reads_adds_and_writes_in_one_step() {
        let mut s = LwwStore::<Bytes>::new(0);
        let key = || text("n");
        assert_eq!(
            run(&mut s, KVSOperation::Add(key(), 1)),
            KVSResult::Integer(1)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Add(key(), 10)),
            KVSResult::Integer(11)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Add(key(), -12)),
            KVSResult::Integer(-1)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Get(key())),
            KVSResult::Value(text("-1"))
        );
        for bad in ["abc", "1.5", " 1", "007", "-0", "", "99999999999999999999"] {
            run(&mut s, KVSOperation::Put(key(), text(bad)));
            assert_eq!(
                run(&mut s, KVSOperation::Add(key(), 1)),
                KVSResult::Error("value is not an integer or out of range".into()),
                "{bad:?}"
            );
        }
        run(
            &mut s,
            KVSOperation::Put(key(), text(&i64::MAX.to_string())),
        );
        assert!(matches!(
            run(&mut s, KVSOperation::Add(key(), 1)),
            KVSResult::Error(e) if e.contains("overflow")
        ));
    }

    #[test]
    fn append_and_conditional_writes() {
        let mut s = LwwStore::<Bytes>::new(0);
        let key = || text("k");
        assert_eq!(
            run(&mut s, KVSOperation::Append(key(), text("ab"))),
            KVSResult::Integer(2)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Append(key(), text("cd"))),
            KVSResult::Integer(4)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Get(key())),
            KVSResult::Value(text("abcd"))
        );
        let put_if = |v: &str, p| KVSOperation::PutIf(key(), text(v), p);
        // NX: not over a present key; XX: only over one.
        assert_eq!(
            run(&mut s, put_if("x", Presence::Absent)),
            KVSResult::NotFound
        );
        assert_eq!(run(&mut s, put_if("y", Presence::Present)), KVSResult::Ok);
        run(&mut s, KVSOperation::Delete(key()));
        assert_eq!(
            run(&mut s, put_if("z", Presence::Present)),
            KVSResult::NotFound
        );
        assert_eq!(run(&mut s, put_if("w", Presence::Absent)), KVSResult::Ok);
        assert_eq!(
            run(&mut s, KVSOperation::Get(key())),
            KVSResult::Value(text("w"))
        );
    }

    #[test]
    fn cas_swaps_only_the_expected_value() {
        let mut s = LwwStore::<Bytes>::new(0);
        let cas = |e: &str, n: &str| KVSOperation::Cas(text("k"), text(e), text(n));
        // A missing key never matches, not even an empty expected value.
        assert_eq!(run(&mut s, cas("", "a")), KVSResult::Integer(0));
        assert_eq!(
            run(&mut s, KVSOperation::Get(text("k"))),
            KVSResult::NotFound
        );
        run(&mut s, KVSOperation::Put(text("k"), text("a")));
        assert_eq!(run(&mut s, cas("b", "c")), KVSResult::Integer(0));
        assert_eq!(run(&mut s, cas("a", "c")), KVSResult::Integer(1));
        assert_eq!(run(&mut s, cas("a", "d")), KVSResult::Integer(0));
        assert_eq!(
            run(&mut s, KVSOperation::Get(text("k"))),
            KVSResult::Value(text("c"))
        );
    }

    #[test]
    fn the_keyspace_counts_scans_and_flushes_live_keys() {
        let mut s = LwwStore::<Bytes>::new(0);
        for key in ["a1", "a2", "b1", "gone"] {
            run(&mut s, KVSOperation::Put(text(key), text("v")));
        }
        run(&mut s, KVSOperation::Delete(text("gone")));
        assert_eq!(
            run(&mut s, KVSOperation::Count(ShardId(0))),
            KVSResult::Integer(3)
        );
        let scan = |s: &mut LwwStore<Bytes>, pattern: Option<&str>| {
            run(
                s,
                KVSOperation::Scan {
                    shard: ShardId(0),
                    from: 0,
                    count: u32::MAX,
                    pattern: pattern.map(text),
                },
            )
        };
        let KVSResult::Scanned(None, mut keys) = scan(&mut s, Some("a*")) else {
            panic!("a whole scan ends the shard");
        };
        keys.sort();
        assert_eq!(keys, [text("a1"), text("a2")]);
        assert_eq!(run(&mut s, KVSOperation::Flush(ShardId(0))), KVSResult::Ok);
        assert_eq!(
            run(&mut s, KVSOperation::Count(ShardId(0))),
            KVSResult::Integer(0)
        );
        assert_eq!(
            run(&mut s, KVSOperation::Get(text("a1"))),
            KVSResult::NotFound
        );
    }
}
