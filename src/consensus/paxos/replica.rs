//! The replica role of Multi-Paxos as a state machine, apart from the dataflow that carries
//! its messages (see [`super::flow::replica_log`]): decided slots in, requests to apply out in
//! slot order; progress reports to the proposers; and the two halves of a state transfer
//! ([`super::transfer`]) — a snapshot read for a replica that fell behind, and one installed
//! when this replica is behind.
//!
//! The store itself is not here: it is the storage core the router serves, downstream. So a
//! snapshot is read, and restored, by *requests* to that core ([`KVSOperation::Snapshot`],
//! [`KVSOperation::Restore`]), placed in the stream of requests this state machine emits at
//! the exact point of the log the log's own image describes. That is what makes the two
//! halves one consistent state.
//!
//! **On disk** (`--data-dir`, see [`crate::durability`]). The replica's journal is its log of
//! decided slots, not its store's changes: the store is a function of the slots applied in
//! order, so each slot that changes this log is appended as it arrives ([`ReplicaState::step`]),
//! and the steps that follow it leave only once it is written. At start
//! ([`ReplicaState::open`]) the snapshot and the slots after it are replayed through the same
//! state machine, and the requests that replay produces are applied to the (empty) store
//! before anything else. A snapshot is the log's image, the slots buffered, and the store's
//! state at that point: the store is read by a request in the stream, like a state transfer's
//! ([`DISK`]), while the log goes on, so the journal keeps the records appended after the
//! point it was asked at ([`crate::durability::snapshot_at`]). A snapshot installed from
//! another replica is written as this replica's own at once.

use bytes::Bytes;

use super::log::{LogImage, ReplicaLog};
use super::transfer::{Incoming, Part, Snapshot, TRANSFER_CLIENT};
use super::{Entry, Ordered, Slot};
use crate::durability::{Mark, Replayed};
use crate::protocol::{KVSOperation, KVSRequest, KVSResponse, KVSResult};

/// The destination of a snapshot this replica reads for its own disk, not for a peer.
pub const DISK: u32 = u32::MAX;

/// What a snapshot request for [`DISK`] carries through the store: the log's side of the
/// snapshot, and where the journal stood when it was asked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskAsk {
    /// The log's image at the point the store is read.
    pub log: LogImage<Ordered<Bytes>>,
    /// The decided slots buffered there, waiting for an earlier one.
    pub early: Vec<(Slot, Entry<Ordered<Bytes>>)>,
    /// The journal's point at that moment: what was logged after it stays.
    pub mark: Mark,
}

/// A replica's snapshot on its disk: its log, the slots it buffered, and its store, at one
/// point of the log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskImage {
    /// The log's image.
    pub log: LogImage<Ordered<Bytes>>,
    /// The decided slots buffered, waiting for an earlier one.
    pub early: Vec<(Slot, Entry<Ordered<Bytes>>)>,
    /// The store's state ([`KVSOperation::Snapshot`]'s image).
    pub store: Bytes,
}

/// The request id of a restore: it is answered among the replica's own requests only.
pub const RESTORE_REQUEST: u64 = u64::MAX;

/// What happens to a replica.
#[derive(Clone, Debug)]
pub enum ReplicaEvent {
    /// A proposer decided this slot.
    Decided(Slot, Entry<Ordered<Bytes>>),
    /// Time to tell the proposers how far this replica has applied.
    Report,
    /// The leader asks this replica to send its state to the replica named, which fell
    /// behind the log.
    SendSnapshot(u32),
    /// A part of a snapshot, from the replica named.
    Part(u32, Part),
}

/// What a replica asks of its process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReplicaStep {
    /// Apply this request to the store (in log order, each request once; also the
    /// replica's own requests that read or replace the store's state).
    Apply(KVSRequest<Bytes>),
    /// Tell every proposer that every slot below this one is applied here.
    Progress(Slot),
    /// Request `.1` of client `.0` was decided again after it was applied: answer it again
    /// from the reply cache ([`super::replies`]).
    AnswerAgain(u64, u64),
}

/// One replica's state: its log, the snapshots arriving, and how many it sent.
#[derive(Clone, Debug, Default)]
pub struct ReplicaState {
    /// The decided log, as this replica applies it.
    pub log: ReplicaLog<Ordered<Bytes>>,
    /// Snapshots on their way here.
    pub incoming: Incoming,
    /// Snapshots this replica was asked for: numbers them.
    pub sent: u64,
    /// Whether this replica keeps its log on disk.
    logging: bool,
    /// What replaying the disk asks of the store, not yet handed out.
    replayed: Vec<ReplicaStep>,
    /// The journal generation a snapshot for [`DISK`] was last asked in: one at a time.
    disk_asked: Option<u64>,
}

impl ReplicaState {
    /// A replica that has applied nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// This process's replica, from its data directory if it has one (see the module docs):
    /// the log rebuilt from its snapshot and records, and the requests that rebuild the store,
    /// which the first [`ReplicaState::step`] hands out before its own. A directory that
    /// cannot be read ends the process, saying why.
    pub fn open() -> Self {
        let mut state = Self::new();
        let mut replayed = Vec::new();
        let recovered = crate::durability::open(crate::durability::Owner::Log, |item| {
            match item {
                Replayed::Snapshot(image) => {
                    let image: DiskImage = bincode::deserialize(image)
                        .map_err(|e| format!("the snapshot cannot be read: {e}"))?;
                    replayed.extend(state.restore(image));
                }
                Replayed::Record(record) => {
                    let (slot, entry): (Slot, Entry<Ordered<Bytes>>) = bincode::deserialize(record)
                        .map_err(|e| format!("a record cannot be read: {e}"))?;
                    replayed.extend(state.step(ReplicaEvent::Decided(slot, entry)));
                }
            }
            Ok(())
        });
        state.logging = recovered.is_some();
        // Only what rebuilds the store: the answers of the run that logged them went out.
        state.replayed = replayed
            .into_iter()
            .filter(|step| matches!(step, ReplicaStep::Apply(_)))
            .collect();
        state
    }

    /// Takes over `image`, read from this replica's disk into a log with nothing applied:
    /// the store's state first, then what the buffered slots make ready after it.
    fn restore(&mut self, image: DiskImage) -> Vec<ReplicaStep> {
        let mut ready: Vec<KVSRequest<Bytes>> = self
            .log
            .install(image.log)
            .unwrap_or_default()
            .into_iter()
            .map(|ordered| ordered.request)
            .collect();
        for (slot, entry) in image.early {
            ready.extend(
                self.log
                    .decided(slot, entry)
                    .into_iter()
                    .map(|ordered| ordered.request),
            );
        }
        restore_then(image.store, ready)
    }

    /// One event; what the process must do, in order (after what replaying the disk asked,
    /// the first time).
    pub fn step(&mut self, event: ReplicaEvent) -> Vec<ReplicaStep> {
        let mut steps = std::mem::take(&mut self.replayed);
        steps.extend(self.handle(event));
        if self.logging
            && crate::durability::snapshot_due()
            && let Some(mark) = crate::durability::mark()
            && self.disk_asked != Some(mark.generation)
        {
            self.disk_asked = Some(mark.generation);
            steps.extend(self.ask_store(DISK, &self.disk_ask(mark)));
        }
        steps
    }

    /// The log's side of a snapshot for this replica's disk, at `mark`.
    fn disk_ask(&self, mark: Mark) -> DiskAsk {
        DiskAsk {
            log: self.log.image(),
            early: self.log.early_from(self.log.next()),
            mark,
        }
    }

    /// A request that reads the store for replica `to` (or [`DISK`]), carrying `log`.
    fn ask_store(&mut self, to: u32, log: &impl serde::Serialize) -> Option<ReplicaStep> {
        self.sent += 1;
        let log = match bincode::serialize(log) {
            Ok(log) => Bytes::from(log),
            Err(e) => {
                eprintln!("kvs-zoo: the log's image could not be encoded: {e}");
                return None;
            }
        };
        Some(ReplicaStep::Apply(KVSRequest {
            client: TRANSFER_CLIENT,
            request: snapshot_request(self.sent, to),
            op: KVSOperation::Snapshot(log),
            at: 0,
        }))
    }

    fn handle(&mut self, event: ReplicaEvent) -> Vec<ReplicaStep> {
        match event {
            ReplicaEvent::Decided(slot, entry) => {
                if self.logging && self.log.wants(slot) {
                    match bincode::serialize(&(slot, &entry)) {
                        Ok(record) => crate::durability::append(&record),
                        // A slot applied but not logged would be missing after a restart.
                        Err(e) => {
                            crate::durability::fail(&format!("a slot cannot be encoded: {e}"))
                        }
                    }
                }
                let mut steps: Vec<ReplicaStep> = self
                    .log
                    .decided(slot, entry)
                    .into_iter()
                    .map(|ordered| ReplicaStep::Apply(ordered.request))
                    .collect();
                steps.extend(
                    self.log
                        .take_again()
                        .into_iter()
                        .map(|(client, request)| ReplicaStep::AnswerAgain(client, request)),
                );
                steps
            }
            ReplicaEvent::Report => vec![ReplicaStep::Progress(self.log.next())],
            ReplicaEvent::SendSnapshot(to) => {
                let image = self.log.image();
                self.ask_store(to, &image).into_iter().collect()
            }
            ReplicaEvent::Part(from, part) => match self.incoming.add(from, part) {
                Ok(Some(snapshot)) => self.install(from, snapshot),
                Ok(None) => Vec::new(),
                Err(e) => {
                    eprintln!("kvs-zoo: {e}");
                    Vec::new()
                }
            },
        }
    }

    /// Installs `snapshot` from replica `from` if it is ahead of this replica: the store's
    /// state first, then what the buffered slots make ready after it.
    fn install(&mut self, from: u32, snapshot: Snapshot) -> Vec<ReplicaStep> {
        let image: LogImage<Ordered<Bytes>> = match bincode::deserialize(&snapshot.log) {
            Ok(image) => image,
            Err(e) => {
                eprintln!("kvs-zoo: the log's image from replica {from} could not be read: {e}");
                return Vec::new();
            }
        };
        let slot = image.next;
        let early = self.log.early_from(slot);
        let Some(ready) = self.log.install(image.clone()) else {
            return Vec::new(); // not ahead of this replica: late, or sent twice
        };
        if self.logging {
            // The slots logged so far are below the snapshot or among the buffered ones: it
            // replaces them all, as this replica's own.
            let own = DiskImage {
                log: image,
                early,
                store: snapshot.store.clone(),
            };
            match bincode::serialize(&own) {
                Ok(own) => crate::durability::snapshot(&own),
                Err(e) => crate::durability::fail(&format!("a snapshot cannot be encoded: {e}")),
            }
        }
        eprintln!(
            "kvs-zoo: installed a snapshot from replica {from}: the store at slot {slot} ({} \
             bytes); {} buffered requests follow",
            snapshot.store.len(),
            ready.len()
        );
        restore_then(
            snapshot.store,
            ready.into_iter().map(|ordered| ordered.request),
        )
    }
}

/// The steps that replace the store's state with `store`, then apply `ready` after it.
fn restore_then(
    store: Bytes,
    ready: impl IntoIterator<Item = KVSRequest<Bytes>>,
) -> Vec<ReplicaStep> {
    let restore = KVSRequest {
        client: TRANSFER_CLIENT,
        request: RESTORE_REQUEST,
        op: KVSOperation::Restore(store),
        at: 0,
    };
    std::iter::once(restore)
        .chain(ready)
        .map(ReplicaStep::Apply)
        .collect()
}

/// The request id of this replica's `sent`-th snapshot, for replica `to`: its answer says
/// where it goes ([`snapshot_destination`]).
fn snapshot_request(sent: u64, to: u32) -> u64 {
    (sent << 32) | u64::from(to)
}

/// Where the store's answer to a replica's own request goes: a snapshot, to the replica
/// behind, with its id — or, for [`DISK`], into this replica's journal, here; anything else
/// (a restore's answer) nowhere — a failed restore is said on stderr.
pub fn snapshot_destination(response: KVSResponse<Bytes>) -> Option<(u32, u64, Snapshot)> {
    match response.result {
        KVSResult::Snapshot(log, store) => {
            let to = (response.request & u64::from(u32::MAX)) as u32;
            if to == DISK {
                keep_on_disk(&log, store);
                return None;
            }
            Some((to, response.request, Snapshot { log, store }))
        }
        KVSResult::Error(e) => {
            eprintln!("kvs-zoo: a state transfer failed: {e}");
            None
        }
        _ => None,
    }
}

/// Writes the snapshot the store answered for [`DISK`] — `ask`, the [`DiskAsk`] it carried,
/// and the store's state — as this replica's own, keeping what was logged since it was asked.
fn keep_on_disk(ask: &[u8], store: Bytes) {
    let ask: DiskAsk = match bincode::deserialize(ask) {
        Ok(ask) => ask,
        Err(e) => {
            eprintln!("kvs-zoo: no snapshot: its log's image cannot be read: {e}");
            return;
        }
    };
    let image = DiskImage {
        log: ask.log,
        early: ask.early,
        store,
    };
    match bincode::serialize(&image) {
        Ok(image) => crate::durability::snapshot_at(&image, ask.mark),
        Err(e) => eprintln!("kvs-zoo: no snapshot: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consensus::paxos::transfer::{PART_BYTES, split};
    use crate::store::kvs_core::LwwStore;

    fn put(client: u64, request: u64, value: &'static str) -> Ordered<Bytes> {
        Ordered {
            request: KVSRequest {
                at: 0,
                client,
                request,
                op: KVSOperation::Put(
                    Bytes::from_static(b"k"),
                    Bytes::from_static(value.as_bytes()),
                ),
            },
            answered_below: 0,
            after: None,
        }
    }

    /// A replica and its store, as the dataflow runs them: every `Apply` goes to the store,
    /// and the store's answers to the replica's own requests come back out. (Free functions
    /// below, not methods: Hydro's staged copy of this crate keeps no `impl` of a private
    /// type.)
    struct Member {
        state: ReplicaState,
        store: LwwStore<Bytes>,
        answered: Vec<(u64, u64)>,
    }

    fn member() -> Member {
        Member {
            state: ReplicaState::new(),
            store: LwwStore::single_copy(),
            answered: Vec::new(),
        }
    }

    /// Runs `event` at `member`; returns the snapshots it sent, by destination.
    fn run(member: &mut Member, event: ReplicaEvent) -> Vec<(u32, u64, Snapshot)> {
        let mut sent = Vec::new();
        for step in member.state.step(event) {
            if let ReplicaStep::Apply(request) = step {
                let response = member.store.answer(request);
                if response.client == TRANSFER_CLIENT {
                    sent.extend(snapshot_destination(response));
                } else {
                    member.answered.push((response.client, response.request));
                }
            }
        }
        sent
    }

    fn get(member: &mut Member) -> KVSResult<Bytes> {
        member
            .store
            .answer(KVSRequest {
                at: 0,
                client: 1,
                request: 0,
                op: KVSOperation::Get(Bytes::from_static(b"k")),
            })
            .result
    }

    /// A replica that has applied nothing catches up from another's snapshot, taken while
    /// the log went on: its store holds what the other's held at that slot, then it applies
    /// the slots it buffered meanwhile, and a request decided again later is applied once.
    #[test]
    fn a_replica_behind_catches_up_from_another_replicas_snapshot() {
        let (mut ahead, mut behind) = (member(), member());
        run(
            &mut ahead,
            ReplicaEvent::Decided(0, Entry::Batch(vec![put(7, 0, "a")])),
        );
        run(
            &mut ahead,
            ReplicaEvent::Decided(1, Entry::Batch(vec![put(7, 1, "b")])),
        );
        // Slot 2 reaches both; the replica behind can only buffer it.
        for member in [&mut ahead, &mut behind] {
            run(
                member,
                ReplicaEvent::Decided(2, Entry::Batch(vec![put(8, 0, "c")])),
            );
        }
        assert_eq!(behind.state.log.next(), 0);
        // The leader asks `ahead` (at slot 3) for a snapshot for replica 1.
        let sent = run(&mut ahead, ReplicaEvent::SendSnapshot(1));
        let [(to, id, snapshot)] = sent.as_slice() else {
            panic!("one snapshot: {sent:?}");
        };
        assert_eq!(*to, 1);
        // Slot 3 is decided while the snapshot travels.
        for member in [&mut ahead, &mut behind] {
            run(
                member,
                ReplicaEvent::Decided(3, Entry::Batch(vec![put(8, 1, "d")])),
            );
        }
        for part in split(*id, snapshot, PART_BYTES).unwrap() {
            run(&mut behind, ReplicaEvent::Part(0, part));
        }
        assert_eq!(behind.state.log.next(), 4);
        assert_eq!(get(&mut behind), get(&mut ahead));
        assert_eq!(get(&mut behind), KVSResult::Value(Bytes::from_static(b"d")));
        assert_eq!(
            behind.answered,
            vec![(8, 1)],
            "only what followed the snapshot"
        );
        // A retry of (7, 1), decided again: applied once, here as there.
        for member in [&mut ahead, &mut behind] {
            run(
                member,
                ReplicaEvent::Decided(4, Entry::Batch(vec![put(7, 1, "b")])),
            );
            assert_eq!(member.state.log.next(), 5);
        }
        assert_eq!(get(&mut behind), get(&mut ahead));
        assert_eq!(
            behind.store.image(),
            ahead.store.image(),
            "the same state at the same slot"
        );
        // The same snapshot again (the leader asked twice) changes nothing.
        for part in split(*id, snapshot, PART_BYTES).unwrap() {
            run(&mut behind, ReplicaEvent::Part(0, part));
        }
        assert_eq!(behind.state.log.next(), 5);
        assert_eq!(get(&mut behind), KVSResult::Value(Bytes::from_static(b"d")));
    }

    /// A retry decided after its request was applied is not applied again: the replica asks
    /// for its first answer again, which the reply cache gives.
    #[test]
    fn a_retry_of_an_applied_request_is_answered_again_not_applied_again() {
        let mut state = ReplicaState::new();
        let mut cache = crate::consensus::paxos::replies::ReplyCache::new();
        let mut store = LwwStore::<Bytes>::single_copy();
        let incr = |slot| {
            ReplicaEvent::Decided(
                slot,
                Entry::Batch(vec![Ordered {
                    request: KVSRequest {
                        at: 0,
                        client: 4,
                        request: 9,
                        op: KVSOperation::Add(Bytes::from_static(b"n"), 1),
                    },
                    answered_below: 9,
                    after: None,
                }]),
            )
        };
        let mut answers = Vec::new();
        for slot in [0, 1] {
            for step in state.step(incr(slot)) {
                let answer = match step {
                    ReplicaStep::Apply(request) => {
                        crate::consensus::paxos::replies::Answer::Fresh(store.answer(request))
                    }
                    ReplicaStep::AnswerAgain(client, request) => {
                        crate::consensus::paxos::replies::Answer::Again(client, request)
                    }
                    ReplicaStep::Progress(_) => continue,
                };
                answers.extend(cache.answer(answer));
            }
        }
        let results: Vec<_> = answers.iter().map(|a| (a.request, &a.result)).collect();
        assert_eq!(
            results,
            vec![(9, &KVSResult::Integer(1)), (9, &KVSResult::Integer(1))],
            "answered twice, counted once"
        );
    }

    /// A replica rebuilt from its disk — a snapshot read from its store at one point, with a
    /// slot buffered there, then the slots logged after it — holds the same log and store as
    /// the replica that wrote it, and a request decided again after is applied once by both.
    #[test]
    fn a_replica_rebuilt_from_its_disk_equals_the_one_that_wrote_it() {
        let mut live = member();
        for (slot, value) in [(0, "a"), (1, "b"), (3, "d")] {
            run(
                &mut live,
                ReplicaEvent::Decided(slot, Entry::Batch(vec![put(7, slot, value)])),
            );
        }
        // The snapshot is asked now (slot 3 buffered, waiting for 2) and read by the store.
        let mark = Mark {
            generation: 0,
            offset: 0,
        };
        let ask = live.state.disk_ask(mark);
        assert_eq!(ask.early.len(), 1);
        let Some(ReplicaStep::Apply(request)) = live.state.ask_store(DISK, &ask) else {
            panic!("a request to the store")
        };
        let KVSResult::Snapshot(carried, store) = live.store.answer(request).result else {
            panic!("a snapshot")
        };
        assert_eq!(bincode::deserialize::<DiskAsk>(&carried).unwrap(), ask);
        let image = DiskImage {
            log: ask.log,
            early: ask.early,
            store,
        };
        // What was logged after the snapshot: slot 2, then a retry of (7, 1) decided again.
        let after = [
            (2, Entry::Batch(vec![put(7, 2, "c")])),
            (4, Entry::Batch(vec![put(7, 1, "b")])),
        ];
        let mut rebuilt = member();
        for step in rebuilt.state.restore(image) {
            if let ReplicaStep::Apply(request) = step {
                rebuilt.store.answer(request);
            }
        }
        for m in [&mut live, &mut rebuilt] {
            for (slot, entry) in after.clone() {
                run(m, ReplicaEvent::Decided(slot, entry));
            }
        }
        assert_eq!(rebuilt.state.log.next(), 5);
        assert_eq!(rebuilt.state.log.image(), live.state.log.image());
        assert_eq!(rebuilt.store.image(), live.store.image());
        assert_eq!(
            get(&mut rebuilt),
            KVSResult::Value(Bytes::from_static(b"d"))
        );
    }

    #[test]
    fn a_report_says_how_far_the_replica_has_applied() {
        let mut m = member();
        run(&mut m, ReplicaEvent::Decided(0, Entry::Noop));
        assert_eq!(
            m.state.step(ReplicaEvent::Report),
            vec![ReplicaStep::Progress(1)]
        );
    }
}
