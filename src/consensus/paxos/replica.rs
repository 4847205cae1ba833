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

use bytes::Bytes;

use super::log::{LogImage, ReplicaLog};
use super::transfer::{Incoming, Part, Snapshot, TRANSFER_CLIENT};
use super::{Entry, Ordered, Slot};
use crate::protocol::{KVSOperation, KVSRequest, KVSResponse, KVSResult};

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
}

impl ReplicaState {
    /// A replica that has applied nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// One event; what the process must do, in order.
    pub fn step(&mut self, event: ReplicaEvent) -> Vec<ReplicaStep> {
        match event {
            ReplicaEvent::Decided(slot, entry) => {
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
                self.sent += 1;
                let log = match bincode::serialize(&self.log.image()) {
                    Ok(log) => Bytes::from(log),
                    Err(e) => {
                        eprintln!("kvs-zoo: the log's image could not be encoded: {e}");
                        return Vec::new();
                    }
                };
                vec![ReplicaStep::Apply(KVSRequest {
                    client: TRANSFER_CLIENT,
                    request: snapshot_request(self.sent, to),
                    op: KVSOperation::Snapshot(log),
                    at: 0,
                })]
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
        let Some(ready) = self.log.install(image) else {
            return Vec::new(); // not ahead of this replica: late, or sent twice
        };
        eprintln!(
            "kvs-zoo: installed a snapshot from replica {from}: the store at slot {slot} ({} \
             bytes); {} buffered requests follow",
            snapshot.store.len(),
            ready.len()
        );
        let restore = KVSRequest {
            client: TRANSFER_CLIENT,
            request: RESTORE_REQUEST,
            op: KVSOperation::Restore(snapshot.store),
            at: 0,
        };
        std::iter::once(restore)
            .chain(ready.into_iter().map(|ordered| ordered.request))
            .map(ReplicaStep::Apply)
            .collect()
    }
}

/// The request id of this replica's `sent`-th snapshot, for replica `to`: its answer says
/// where it goes ([`snapshot_destination`]).
fn snapshot_request(sent: u64, to: u32) -> u64 {
    (sent << 32) | u64::from(to)
}

/// Where the store's answer to a replica's own request goes: a snapshot, to the replica
/// behind, with its id; anything else (a restore's answer) nowhere — a failed restore is
/// said on stderr.
pub fn snapshot_destination(response: KVSResponse<Bytes>) -> Option<(u32, u64, Snapshot)> {
    match response.result {
        KVSResult::Snapshot(log, store) => {
            let to = (response.request & u64::from(u32::MAX)) as u32;
            Some((to, response.request, Snapshot { log, store }))
        }
        KVSResult::Error(e) => {
            eprintln!("kvs-zoo: a state transfer failed: {e}");
            None
        }
        _ => None,
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
