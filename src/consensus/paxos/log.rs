//! A replica's view of the decided log (see [`crate::consensus::paxos`]).
//!
//! **Each request once, each connection in order.** A client's retry may be decided twice,
//! in two slots: the log applies it once, remembering per client which requests it applied
//! (and forgetting those the client says are answered). And a connection's requests are
//! applied in the order the connection sent them: a leader change can decide them in another
//! order (the old leader's slot for `SET k a` lost, its slot for the pipelined `SET k b`
//! kept, `SET k a` retried later), so a request that names the one before it
//! ([`Command::after`]) waits here until that one is applied — or answered without it
//! (given up): what the replicas apply never ends with `a`. Every replica holds and releases
//! the same requests at the same points of the log, so they stay identical.

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
    /// Per client, which of its requests were applied, and which wait for an earlier one.
    sessions: HashMap<u64, Session<C>>,
    /// Requests decided again after they were applied, as (client, request), since
    /// [`ReplicaLog::take_again`] was last called.
    again: Vec<(u64, u64)>,
}

/// What the log remembers of one client's requests.
///
/// (Public, as the log's snapshot carries it: Hydro's staged copy of this crate keeps no
/// `impl` of a private type, derived ones included.)
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session<C> {
    /// Requests below this are answered and never sent again.
    pub answered_below: u64,
    /// Requests at or above `answered_below` that were applied.
    pub applied: BTreeSet<u64>,
    /// Requests decided before the request they follow was applied, by that request's id.
    pub held: BTreeMap<u64, C>,
}

impl<C> Default for Session<C> {
    fn default() -> Self {
        Self {
            answered_below: 0,
            applied: BTreeSet::new(),
            held: BTreeMap::new(),
        }
    }
}

impl<C: Command> Session<C> {
    /// The client says every request below `answered_below` is answered: forget them, and
    /// return the held requests whose predecessor is among them (it was answered without
    /// being applied here: given up), which wait no more.
    fn answered(&mut self, answered_below: u64) -> Vec<C> {
        if answered_below <= self.answered_below {
            return Vec::new();
        }
        self.answered_below = answered_below;
        self.applied = self.applied.split_off(&answered_below);
        let waiting = self.held.split_off(&answered_below);
        std::mem::replace(&mut self.held, waiting)
            .into_values()
            .collect()
    }

    /// Applies `command` (into `ready`) unless it was applied before (then it goes into
    /// `again`), or holds it until the request it follows is applied; applying one releases
    /// the request that followed it.
    fn admit(&mut self, command: C, ready: &mut Vec<C>, again: &mut Vec<(u64, u64)>) {
        if let Some(before) = command.after()
            && before >= self.answered_below
            && !self.applied.contains(&before)
        {
            // A retry of a held request is held once.
            self.held.entry(before).or_insert(command);
            return;
        }
        let mut next = Some(command);
        while let Some(command) = next.take() {
            let request = command.request();
            if request < self.answered_below {
                return; // answered: the client waits for it no more
            }
            if !self.applied.insert(request) {
                // Applied before: a retry decided twice. Its answer may have been lost.
                again.push((command.client(), request));
                return;
            }
            ready.push(command);
            next = self.held.remove(&request);
        }
    }
}

/// A replica's log as another replica installs it ([`ReplicaLog::install`]): how far it is
/// applied, and which requests were applied, so that a request decided again after the
/// snapshot (a client's retry) is still applied once. It goes with the store's state at the
/// same point of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogImage<C> {
    /// Every slot below this is applied in the store the image goes with.
    pub next: Slot,
    /// Per client, which of its requests were applied and which are held (sorted by
    /// client, so that two replicas' images of one log are equal).
    pub sessions: Vec<(u64, Session<C>)>,
}

impl<C> Default for ReplicaLog<C> {
    fn default() -> Self {
        Self {
            next: 0,
            early: BTreeMap::new(),
            sessions: HashMap::new(),
            again: Vec::new(),
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
                for command in batch {
                    self.offer(command, &mut ready);
                }
            }
        }
        ready
    }

    /// This log as another replica installs it, at the point where it is now: what goes with
    /// a snapshot of the store taken at the same point.
    pub fn image(&self) -> LogImage<C>
    where
        C: Clone,
    {
        let mut sessions: Vec<(u64, Session<C>)> = self
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
    pub fn install(&mut self, image: LogImage<C>) -> Option<Vec<C>> {
        if image.next <= self.next {
            return None;
        }
        self.next = image.next;
        self.sessions = image.sessions.into_iter().collect();
        self.early = self.early.split_off(&self.next);
        Some(self.drain())
    }

    /// A decided request, in log order: applied (into `ready`) once, after the request of
    /// its client it follows (see the module docs).
    fn offer(&mut self, command: C, ready: &mut Vec<C>) {
        let session = self.sessions.entry(command.client()).or_default();
        for released in session.answered(command.answered_below()) {
            session.admit(released, ready, &mut self.again);
        }
        session.admit(command, ready, &mut self.again);
    }

    /// The requests decided again after they were applied here, since the last call, as
    /// (client, request): the replica answers them again from its reply cache
    /// ([`super::replies`]), never by applying them again.
    pub fn take_again(&mut self) -> Vec<(u64, u64)> {
        std::mem::take(&mut self.again)
    }

    /// The slot this replica applies next (every slot below it is applied).
    pub fn next(&self) -> Slot {
        self.next
    }

    /// Whether slot `slot`'s decision would change this log: it is neither applied nor
    /// buffered yet (a replica logs only these, see [`super::replica`]).
    pub fn wants(&self, slot: Slot) -> bool {
        slot >= self.next && !self.early.contains_key(&slot)
    }

    /// The decided slots buffered at or above `slot`, in order.
    pub fn early_from(&self, slot: Slot) -> Vec<(Slot, Entry<C>)>
    where
        C: Clone,
    {
        self.early
            .range(slot..)
            .map(|(slot, entry)| (*slot, entry.clone()))
            .collect()
    }

    /// Decided slots waiting for an earlier one.
    pub fn waiting(&self) -> usize {
        self.early.len()
    }

    /// Requests remembered as applied, over all clients: bounded by the requests each client
    /// has in flight.
    pub fn remembered(&self) -> usize {
        self.sessions
            .values()
            .map(|s| s.applied.len() + s.held.len())
            .sum()
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
            after: None,
        }
    }

    /// `put`, sent while `after` (the client's previous request) was unanswered.
    fn put_after(client: u64, request: u64, after: u64) -> Ordered<Bytes> {
        Ordered {
            after: Some(after),
            ..put(client, request, after)
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
        assert_eq!(log.take_again(), vec![(1, 5)], "to be answered again");
        assert!(log.take_again().is_empty());
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

    /// A leader change decided a connection's second request before its first: the second
    /// waits, and both are applied in the order the connection sent them.
    #[test]
    fn a_connections_requests_are_applied_in_the_order_it_sent_them() {
        let mut log = ReplicaLog::new();
        assert!(
            log.decided(0, Entry::Batch(vec![put_after(1, 1, 0), put(2, 0, 0)]))
                .iter()
                .all(|c| c.request.client == 2),
            "request 1 waits for request 0"
        );
        assert_eq!(log.remembered(), 2, "one applied, one held");
        assert_eq!(
            ids(log.decided(1, Entry::Batch(vec![put(1, 0, 0)]))),
            vec![(1, 0), (1, 1)]
        );
        // The held request's retry, decided again: applied once.
        assert!(
            log.decided(2, Entry::Batch(vec![put_after(1, 1, 0)]))
                .is_empty()
        );
    }

    /// A request whose predecessor never comes (the proxy gave it up, answering the client
    /// with an error) is released when the client says that one is answered.
    #[test]
    fn a_request_waits_no_more_once_the_one_before_it_is_answered() {
        let mut log = ReplicaLog::new();
        assert!(
            log.decided(0, Entry::Batch(vec![put_after(1, 5, 4)]))
                .is_empty()
        );
        // Its retry says request 4 is answered: 5 goes, once.
        let retry = Ordered {
            answered_below: 5,
            ..put_after(1, 5, 4)
        };
        assert_eq!(ids(log.decided(1, Entry::Batch(vec![retry]))), vec![(1, 5)]);
        assert_eq!(log.remembered(), 1);
    }

    /// Held requests travel with the log's image: the replica that installs it applies them
    /// when their predecessor comes, as the replica it came from does.
    #[test]
    fn held_requests_travel_with_the_image() {
        let mut source = ReplicaLog::new();
        source.decided(0, Entry::Batch(vec![put_after(1, 1, 0)]));
        let mut behind = ReplicaLog::new();
        behind.install(source.image()).expect("ahead");
        for log in [&mut source, &mut behind] {
            assert_eq!(
                ids(log.decided(1, Entry::Batch(vec![put(1, 0, 0)]))),
                vec![(1, 0), (1, 1)]
            );
        }
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
        let image = LogImage::<Ordered<Bytes>> {
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
