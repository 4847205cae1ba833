//! A replica's view of the decided log (see [`crate::consensus::paxos`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{Command, Entry, Slot};

/// How far ahead of the slot it applies next a replica buffers decided slots. A slot further
/// ahead is dropped: a replica that far behind is either missing a slot the leader will send
/// again (it re-sends from where the replica reports it is, and the dropped ones come again
/// after), or can never catch up from the log (restarted, or behind the checkpoint) and must
/// not buffer the log without end while it waits.
pub const MAX_EARLY: Slot = 10_000;

/// The decided log as one replica sees it: the slots it has applied, the decided slots that
/// arrived early, and which requests it applied.
#[derive(Clone, Debug)]
pub struct ReplicaLog<C> {
    /// The slot to apply next: every slot below it is applied.
    next: Slot,
    /// Decided slots above `next`, waiting for the ones before them.
    early: BTreeMap<Slot, Entry<C>>,
    /// Per client, which of its requests were applied.
    sessions: HashMap<u64, Session>,
}

/// What the log remembers of one client's requests.
#[derive(Clone, Debug, Default)]
struct Session {
    /// Requests below this are answered and never sent again.
    answered_below: u64,
    /// Requests at or above `answered_below` that were applied.
    applied: BTreeSet<u64>,
}

impl<C> Default for ReplicaLog<C> {
    fn default() -> Self {
        Self {
            next: 0,
            early: BTreeMap::new(),
            sessions: HashMap::new(),
        }
    }
}

impl<C: Command> ReplicaLog<C> {
    /// A log with nothing applied.
    pub fn new() -> Self {
        Self::default()
    }

    /// Slot `slot` was decided to hold `entry`. Returns the requests that can now be applied,
    /// in log order: those of this slot and of the early slots it unblocks, without the
    /// requests applied before (a client's retry decided a second time).
    pub fn decided(&mut self, slot: Slot, entry: Entry<C>) -> Vec<C> {
        if slot < self.next {
            return Vec::new(); // applied already: a re-sent decision
        }
        if slot >= self.next.saturating_add(MAX_EARLY) {
            return Vec::new(); // too far ahead to buffer (see `MAX_EARLY`)
        }
        self.early.insert(slot, entry);
        let mut ready = Vec::new();
        while let Some(entry) = self.early.remove(&self.next) {
            self.next += 1;
            if let Entry::Batch(batch) = entry {
                ready.extend(batch.into_iter().filter(|c| self.first_time(c)));
            }
        }
        ready
    }

    /// Records `command` as applied; false if it was applied before.
    fn first_time(&mut self, command: &C) -> bool {
        let session = self.sessions.entry(command.client()).or_default();
        if command.answered_below() > session.answered_below {
            session.answered_below = command.answered_below();
            session.applied = session.applied.split_off(&session.answered_below);
        }
        command.request() >= session.answered_below && session.applied.insert(command.request())
    }

    /// The slot this replica applies next (every slot below it is applied).
    pub fn next(&self) -> Slot {
        self.next
    }

    /// Decided slots waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.early.len()
    }

    /// Requests remembered as applied, over all clients: bounded by the requests each client
    /// has in flight.
    pub fn remembered(&self) -> usize {
        self.sessions.values().map(|s| s.applied.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::consensus::paxos::Ordered;
    use crate::protocol::{KVSOperation, KVSRequest};

    fn put(client: u64, request: u64, answered_below: u64) -> Ordered<Bytes> {
        Ordered {
            request: KVSRequest {
                at: 0,
                client,
                request,
                op: KVSOperation::Put(Bytes::from_static(b"k"), Bytes::from(request.to_string())),
            },
            answered_below,
        }
    }

    fn ids(ready: Vec<Ordered<Bytes>>) -> Vec<(u64, u64)> {
        ready
            .iter()
            .map(|c| (c.request.client, c.request.request))
            .collect()
    }

    #[test]
    fn slots_are_applied_in_order_whatever_order_they_arrive_in() {
        let mut log = ReplicaLog::new();
        assert!(log.decided(2, Entry::Batch(vec![put(1, 2, 0)])).is_empty());
        assert!(log.decided(1, Entry::Noop).is_empty());
        assert_eq!(log.waiting(), 2);
        assert_eq!(
            ids(log.decided(0, Entry::Batch(vec![put(1, 0, 0), put(2, 0, 0)]))),
            vec![(1, 0), (2, 0), (1, 2)]
        );
        assert_eq!((log.next(), log.waiting()), (3, 0));
    }

    #[test]
    fn a_request_decided_twice_is_applied_once() {
        let mut log = ReplicaLog::new();
        assert_eq!(
            ids(log.decided(0, Entry::Batch(vec![put(1, 5, 0)]))),
            vec![(1, 5)]
        );
        // The client retried (its answer was late): the retry was decided in another slot.
        assert!(log.decided(1, Entry::Batch(vec![put(1, 5, 0)])).is_empty());
        // A re-sent decision of an applied slot changes nothing.
        assert!(log.decided(0, Entry::Batch(vec![put(1, 6, 0)])).is_empty());
    }

    #[test]
    fn answered_requests_are_forgotten() {
        let mut log = ReplicaLog::new();
        let batch = (0..100).map(|r| put(1, r, 0)).collect();
        log.decided(0, Entry::Batch(batch));
        assert_eq!(log.remembered(), 100);
        // The client says everything below 100 is answered.
        assert_eq!(
            ids(log.decided(1, Entry::Batch(vec![put(1, 100, 100)]))),
            vec![(1, 100)]
        );
        assert_eq!(log.remembered(), 1);
        // An old request can no longer be applied.
        assert!(
            log.decided(2, Entry::Batch(vec![put(1, 3, 100)]))
                .is_empty()
        );
    }

    /// A replica stuck behind a slot it will never get (restarted, or behind the checkpoint)
    /// buffers at most `MAX_EARLY` decided slots, however long the log goes on.
    #[test]
    fn a_stuck_replica_buffers_a_bounded_number_of_slots() {
        let mut log = ReplicaLog::<Ordered<Bytes>>::new();
        for slot in 1..MAX_EARLY + 500 {
            assert!(log.decided(slot, Entry::Noop).is_empty());
        }
        assert_eq!(log.waiting() as u64, MAX_EARLY - 1);
    }
}
