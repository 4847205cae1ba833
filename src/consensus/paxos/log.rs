//! A replica's view of the decided log (see [`crate::consensus::paxos`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::{Command, Entry, Slot};

/// How many decided slots a replica buffers ahead of the slot it applies next. Past that, the
/// lowest buffered slot is dropped, so the newest are kept: a replica that far behind is
/// either missing a slot the leader will send again (it re-sends from where the replica
/// reports it is, and the dropped ones come again after), or waits for a snapshot of another
/// replica (restarted, or behind the checkpoint: see [`ReplicaLog::install`]), which the
/// newest slots continue. Either way it must not buffer the log without end while it waits.
pub const MAX_EARLY: usize = 10_000;

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
///
/// (Public, as the log's snapshot carries it: Hydro's staged copy of this crate keeps no
/// `impl` of a private type, derived ones included.)
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// Requests below this are answered and never sent again.
    pub answered_below: u64,
    /// Requests at or above `answered_below` that were applied.
    pub applied: BTreeSet<u64>,
}

/// A replica's log as another replica installs it ([`ReplicaLog::install`]): how far it is
/// applied, and which requests were applied, so that a request decided again after the
/// snapshot (a client's retry) is still applied once. It goes with the store's state at the
/// same point of the log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogImage {
    /// Every slot below this is applied in the store the image goes with.
    pub next: Slot,
    /// Per client, which of its requests were applied (sorted by client, so that two
    /// replicas' images of one log are equal).
    pub sessions: Vec<(u64, Session)>,
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
        self.early.insert(slot, entry);
        let ready = self.drain();
        if self.early.len() > MAX_EARLY {
            self.early.pop_first(); // the oldest goes (see `MAX_EARLY`)
        }
        ready
    }

    /// Applies the buffered slots that follow `next` without a hole.
    fn drain(&mut self) -> Vec<C> {
        let mut ready = Vec::new();
        while let Some(entry) = self.early.remove(&self.next) {
            self.next += 1;
            if let Entry::Batch(batch) = entry {
                ready.extend(batch.into_iter().filter(|c| self.first_time(c)));
            }
        }
        ready
    }

    /// This log as another replica installs it, at the point where it is now: what goes with
    /// a snapshot of the store taken at the same point.
    pub fn image(&self) -> LogImage {
        let mut sessions: Vec<(u64, Session)> = self
            .sessions
            .iter()
            .map(|(client, session)| (*client, session.clone()))
            .collect();
        sessions.sort_unstable_by_key(|(client, _)| *client);
        LogImage {
            next: self.next,
            sessions,
        }
    }

    /// Takes over another replica's log at `image` — the store has just been replaced by the
    /// state that goes with it — if it is ahead of this one; a snapshot that is not (a late
    /// one, or one asked twice) changes nothing and returns `None`. Returns the requests of
    /// the buffered slots that now follow without a hole, to apply after the store's state.
    ///
    /// This is how a replica catches up once the slots it lacks are forgotten (restarted
    /// empty, or behind the checkpoint): the slots decided while the snapshot travelled are
    /// buffered here meanwhile, and the leader re-sends any it lacks after.
    pub fn install(&mut self, image: LogImage) -> Option<Vec<C>> {
        if image.next <= self.next {
            return None;
        }
        self.next = image.next;
        self.sessions = image.sessions.into_iter().collect();
        self.early = self.early.split_off(&self.next);
        Some(self.drain())
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
        for slot in 1..MAX_EARLY as Slot + 500 {
            assert!(log.decided(slot, Entry::Noop).is_empty());
        }
        assert_eq!(log.waiting(), MAX_EARLY);
        // The newest are kept: a snapshot at slot 600 continues from them.
        let image = LogImage {
            next: 600,
            sessions: Vec::new(),
        };
        assert!(log.install(image).expect("ahead").is_empty());
        assert_eq!(log.next(), MAX_EARLY as Slot + 500);
        assert_eq!(log.waiting(), 0);
    }

    /// A replica that installs another's image applies what follows it, and still applies a
    /// request decided again after the snapshot only once.
    #[test]
    fn an_installed_image_continues_the_log_and_remembers_what_was_applied() {
        let mut source = ReplicaLog::new();
        source.decided(0, Entry::Batch(vec![put(1, 0, 0), put(1, 1, 0)]));
        let mut behind = ReplicaLog::new();
        // Slot 2 arrives while the snapshot travels; slot 1 was decided before it.
        assert!(
            behind
                .decided(2, Entry::Batch(vec![put(2, 0, 0)]))
                .is_empty()
        );
        source.decided(1, Entry::Batch(vec![put(1, 2, 0)]));
        let image = source.image();
        assert_eq!(image.next, 2);
        assert_eq!(
            ids(behind.install(image.clone()).expect("ahead")),
            vec![(2, 0)]
        );
        assert_eq!(behind.next(), 3);
        // A retry of a request applied before the snapshot, decided again: applied once.
        assert!(
            behind
                .decided(3, Entry::Batch(vec![put(1, 1, 0)]))
                .is_empty()
        );
        // The same image again, or an older one, changes nothing.
        assert!(behind.install(image).is_none());
        assert_eq!(behind.next(), 4);
    }

    #[test]
    fn images_of_one_log_are_equal() {
        let (mut a, mut b) = (ReplicaLog::new(), ReplicaLog::new());
        for log in [&mut a, &mut b] {
            log.decided(0, Entry::Batch((0..50).map(|c| put(c, 0, 0)).collect()));
        }
        assert_eq!(a.image(), b.image());
    }
}
