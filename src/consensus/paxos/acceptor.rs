//! The acceptor: the protocol's memory (see [`crate::consensus::paxos`]).
//!
//! **An acceptor never breaks a promise.** Paxos is safe only if an acceptor, having promised
//! ballot *b*, accepts nothing lower — also after a crash. An acceptor restarted without its
//! memory could complete a quorum that a promise it forgot forbade, and two leaders could then
//! choose different values for one slot. So:
//!
//! - **With a data directory** (`--data-dir`), every change to its memory — a promise, an
//!   accepted value, slots forgotten below the checkpoint ([`AcceptorChange`]) — is logged
//!   while the message is handled, and the answer leaves only once the record is written
//!   (synced, under `--fsync always`: see [`crate::durability`]). A restarted acceptor
//!   ([`Acceptor::open`]) replays its snapshot and log and votes again. Its log is compacted
//!   into a snapshot of its memory ([`Acceptor::image`]), which the checkpoint keeps small.
//! - **Without one**, a restarted acceptor ([`Acceptor::in_incarnation`] with an incarnation
//!   above 0) answers nothing: it is alive, shown as `voting=no` in `INFO members`, and counts
//!   toward no quorum. The store keeps working while a majority of acceptors still remember.
//!   So does one whose data directory is empty although it has run before (its files were
//!   lost): an empty memory is safe only at the very first start.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{Ballot, Entry, FromAcceptor, MAX_PROMISE_BYTES, Slot, ToAcceptor};

/// One acceptor's state: its promise, and what it accepted for each slot it still keeps.
#[derive(Clone, Debug)]
pub struct Acceptor<C> {
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Entry<C>)>,
    checkpoint: Slot,
    /// False for an acceptor that may have forgotten promises (see the module docs).
    votes: bool,
    /// The changes since the last [`Acceptor::take_changes`], when they are logged.
    changes: Option<Vec<AcceptorChange<C>>>,
}

/// One change to an acceptor's memory, as its log records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AcceptorChange<C> {
    /// It promised this ballot.
    Promised(Ballot),
    /// It accepted this value for this slot, under this ballot (a promise of it too).
    Accepted(Slot, Ballot, Entry<C>),
    /// It forgot every slot below this one (the checkpoint).
    Forgot(Slot),
}

/// An acceptor's whole memory, as its snapshot holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AcceptorImage<C> {
    /// The promise.
    pub promised: Ballot,
    /// Every slot below this one is forgotten.
    pub checkpoint: Slot,
    /// What it accepted for each slot it keeps, in slot order.
    pub accepted: Vec<(Slot, Ballot, Entry<C>)>,
}

impl<C> Default for Acceptor<C> {
    fn default() -> Self {
        Self {
            promised: Ballot::default(),
            accepted: BTreeMap::new(),
            checkpoint: 0,
            votes: true,
            changes: None,
        }
    }
}

impl<C: Clone + Serialize> Acceptor<C> {
    /// An acceptor that has promised and accepted nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// The acceptor of a process in `incarnation`: one that has promised and accepted
    /// nothing at the deployment's start (0); one that does not vote after a restart.
    pub fn in_incarnation(incarnation: u32) -> Self {
        Self {
            votes: incarnation == 0,
            ..Self::default()
        }
    }

    /// The acceptor of this process in `incarnation`, from its data directory if it has one
    /// (see the module docs): there, every change it makes is logged by [`Acceptor::serve`].
    /// `restarted` says the deployment itself started again from its directory, so an empty
    /// memory means lost files even at incarnation 0. Its standing in `INFO members` says
    /// whether it votes. A directory that cannot be read ends the process, saying why.
    pub fn open(incarnation: u32, restarted: bool) -> Self
    where
        C: DeserializeOwned,
    {
        let mut acceptor = Self::new();
        let recovered = crate::durability::open(crate::durability::Owner::Log, |item| {
            match item {
                crate::durability::Replayed::Snapshot(image) => acceptor.restore(
                    bincode::deserialize(image)
                        .map_err(|e| format!("the snapshot cannot be read: {e}"))?,
                ),
                crate::durability::Replayed::Record(record) => acceptor.replay(
                    bincode::deserialize(record)
                        .map_err(|e| format!("a record cannot be read: {e}"))?,
                ),
            }
            Ok(())
        });
        acceptor.votes = may_vote(recovered.as_ref(), incarnation, restarted);
        let acceptor = match recovered {
            None => Self::in_incarnation(incarnation),
            Some(_) => {
                if !acceptor.votes {
                    eprintln!(
                        "kvs-zoo: this acceptor ran before but its data directory is empty: \
                         it will not vote (its promises are lost)"
                    );
                }
                acceptor.keep_changes();
                acceptor
            }
        };
        crate::membership::liveness::set_standing(if acceptor.votes {
            crate::membership::liveness::Standing::Full
        } else {
            crate::membership::liveness::Standing::NotVoting
        });
        acceptor
    }

    /// [`Acceptor::handle`], with every change the message made appended to this process's
    /// log (the answers must leave only after [`crate::durability::settle`]); compacts the log
    /// into a snapshot once it has grown past its bound.
    pub fn serve(&mut self, message: ToAcceptor<C>) -> Vec<FromAcceptor<C>> {
        let answers = self.handle(message);
        if self.changes.is_some() {
            for change in self.take_changes() {
                match bincode::serialize(&change) {
                    Ok(record) => crate::durability::append(&record),
                    // An answer whose change is not logged must not leave.
                    Err(e) => crate::durability::fail(&format!("a change cannot be encoded: {e}")),
                }
            }
            if crate::durability::snapshot_due() {
                match bincode::serialize(&self.image()) {
                    Ok(image) => crate::durability::snapshot(&image),
                    Err(e) => eprintln!("kvs-zoo: no snapshot: {e}"),
                }
            }
        }
        answers
    }

    /// Whether this acceptor votes (see the module docs).
    pub fn votes(&self) -> bool {
        self.votes
    }

    /// Answers one message of a proposer: an accept with one message, a prepare with a
    /// promise in one or more parts ([`promise_parts`]); an acceptor that does not vote
    /// answers nothing.
    pub fn handle(&mut self, message: ToAcceptor<C>) -> Vec<FromAcceptor<C>> {
        if !self.votes {
            return Vec::new();
        }
        match message {
            ToAcceptor::Prepare(ballot) => {
                // Promising is monotonic: a lower ballot gets the current promise back, which
                // tells its proposer to give up.
                if ballot > self.promised {
                    self.promised = ballot;
                    self.record(|| AcceptorChange::Promised(ballot));
                }
                promise_parts(
                    self.promised,
                    self.checkpoint,
                    &self.accepted,
                    MAX_PROMISE_BYTES,
                )
            }
            ToAcceptor::Accept {
                ballot,
                slot,
                entry,
                checkpoint,
            } => {
                // Accepting under a ballot is also promising it: a higher ballot's accept
                // comes from a leader that already won a majority's promises.
                if ballot >= self.promised {
                    if slot >= self.checkpoint {
                        self.record(|| AcceptorChange::Accepted(slot, ballot, entry.clone()));
                        self.accepted.insert(slot, (ballot, entry));
                    } else if ballot > self.promised {
                        self.record(|| AcceptorChange::Promised(ballot));
                    }
                    self.promised = ballot;
                }
                self.forget_below(checkpoint);
                vec![FromAcceptor::Accepted {
                    ballot,
                    promised: self.promised,
                    slot,
                }]
            }
        }
    }

    /// Drops every slot below `checkpoint`: all live replicas have applied them, so no leader
    /// will need to recover them.
    fn forget_below(&mut self, checkpoint: Slot) {
        if checkpoint > self.checkpoint {
            self.record(|| AcceptorChange::Forgot(checkpoint));
            self.checkpoint = checkpoint;
            self.accepted = self.accepted.split_off(&checkpoint);
        }
    }

    /// Keeps `change` for the log, if changes are logged (built only then: an accepted
    /// value is copied for its record).
    fn record(&mut self, change: impl FnOnce() -> AcceptorChange<C>) {
        if let Some(changes) = &mut self.changes {
            changes.push(change());
        }
    }

    /// From now on, keeps every change to the memory for [`Acceptor::take_changes`].
    pub fn keep_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The changes kept since the last call (none unless [`Acceptor::keep_changes`]).
    pub fn take_changes(&mut self) -> Vec<AcceptorChange<C>> {
        self.changes
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Applies a change that [`Acceptor::take_changes`] once returned: how the memory is
    /// rebuilt from the log.
    pub fn replay(&mut self, change: AcceptorChange<C>) {
        match change {
            AcceptorChange::Promised(ballot) => self.promised = self.promised.max(ballot),
            AcceptorChange::Accepted(slot, ballot, entry) => {
                self.promised = self.promised.max(ballot);
                if slot >= self.checkpoint {
                    self.accepted.insert(slot, (ballot, entry));
                }
            }
            AcceptorChange::Forgot(checkpoint) => {
                if checkpoint > self.checkpoint {
                    self.checkpoint = checkpoint;
                    self.accepted = self.accepted.split_off(&checkpoint);
                }
            }
        }
    }

    /// The whole memory, for a snapshot.
    pub fn image(&self) -> AcceptorImage<C> {
        AcceptorImage {
            promised: self.promised,
            checkpoint: self.checkpoint,
            accepted: self
                .accepted
                .iter()
                .map(|(slot, (ballot, entry))| (*slot, *ballot, entry.clone()))
                .collect(),
        }
    }

    /// Replaces the memory with `image`'s.
    pub fn restore(&mut self, image: AcceptorImage<C>) {
        self.promised = image.promised;
        self.checkpoint = image.checkpoint;
        self.accepted = image
            .accepted
            .into_iter()
            .map(|(slot, ballot, entry)| (slot, (ballot, entry)))
            .collect();
    }

    /// How many slots the acceptor keeps: bounded by the distance between the checkpoint and
    /// the newest slot.
    pub fn kept(&self) -> usize {
        self.accepted.len()
    }

    /// The ballot the acceptor has promised.
    pub fn promised(&self) -> Ballot {
        self.promised
    }
}

/// Whether an acceptor may vote (see the module docs): one with its memory from disk
/// (`recovered`: what its journal held, `None` without a data directory) — unless it ran
/// before and its files are empty — or one at the deployment's very first start.
pub fn may_vote(
    recovered: Option<&crate::durability::Recovery>,
    incarnation: u32,
    restarted: bool,
) -> bool {
    let first_start = incarnation == 0 && !restarted;
    match recovered {
        None => incarnation == 0,
        Some(r) => first_start || r.generation > 0 || r.records > 0 || r.snapshot_bytes > 0,
    }
}

/// A promise of `promised` with the slots `accepted` holds, in parts of at most `max_bytes`
/// of entries each (a larger entry has a part to itself); always at least one part.
pub fn promise_parts<C: Clone + Serialize>(
    promised: Ballot,
    checkpoint: Slot,
    accepted: &BTreeMap<Slot, (Ballot, Entry<C>)>,
    max_bytes: u64,
) -> Vec<FromAcceptor<C>> {
    let mut groups: Vec<Vec<(Slot, Ballot, Entry<C>)>> = vec![Vec::new()];
    let mut bytes = 0u64;
    for (slot, (ballot, entry)) in accepted {
        let size = bincode::serialized_size(entry).unwrap_or(max_bytes);
        if bytes.saturating_add(size) > max_bytes && groups.last().is_some_and(|g| !g.is_empty()) {
            groups.push(Vec::new());
            bytes = 0;
        }
        bytes = bytes.saturating_add(size);
        if let Some(group) = groups.last_mut() {
            group.push((*slot, *ballot, entry.clone()));
        }
    }
    let parts = u32::try_from(groups.len()).unwrap_or(u32::MAX);
    groups
        .into_iter()
        .zip(0..parts)
        .map(|(accepted, part)| FromAcceptor::Promise {
            promised,
            accepted,
            checkpoint,
            part,
            parts,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one answer `message` gets.
    fn answer(a: &mut Acceptor<u32>, message: ToAcceptor<u32>) -> FromAcceptor<u32> {
        let mut answers = a.handle(message);
        assert_eq!(answers.len(), 1, "{answers:?}");
        answers.pop().unwrap()
    }

    fn ballot(round: u64, proposer: u32) -> Ballot {
        Ballot { round, proposer }
    }

    fn accept(b: Ballot, slot: Slot, value: u32, checkpoint: Slot) -> ToAcceptor<u32> {
        ToAcceptor::Accept {
            ballot: b,
            slot,
            entry: Entry::Batch(vec![value]),
            checkpoint,
        }
    }

    #[test]
    fn a_promise_reports_what_was_accepted() {
        let mut a = Acceptor::new();
        answer(&mut a, accept(ballot(1, 0), 0, 10, 0));
        let FromAcceptor::Promise {
            promised, accepted, ..
        } = answer(&mut a, ToAcceptor::Prepare(ballot(2, 1)))
        else {
            panic!("a promise")
        };
        assert_eq!(promised, ballot(2, 1));
        assert_eq!(accepted, vec![(0, ballot(1, 0), Entry::Batch(vec![10]))]);
    }

    #[test]
    fn an_older_ballot_is_refused_after_a_promise() {
        let mut a = Acceptor::new();
        answer(&mut a, ToAcceptor::Prepare(ballot(3, 2)));
        // The old leader's accept is refused, and nothing is stored.
        assert_eq!(
            answer(&mut a, accept(ballot(2, 0), 5, 1, 0)),
            FromAcceptor::Accepted {
                ballot: ballot(2, 0),
                promised: ballot(3, 2),
                slot: 5
            }
        );
        assert_eq!(a.kept(), 0);
        // An older prepare gets the newer promise back.
        let FromAcceptor::Promise { promised, .. } =
            answer(&mut a, ToAcceptor::Prepare(ballot(1, 1)))
        else {
            panic!("a promise")
        };
        assert_eq!(promised, ballot(3, 2));
    }

    #[test]
    fn a_later_accept_replaces_the_value_of_its_slot() {
        let mut a = Acceptor::new();
        answer(&mut a, accept(ballot(1, 0), 0, 10, 0));
        answer(&mut a, accept(ballot(2, 1), 0, 20, 0));
        let FromAcceptor::Promise { accepted, .. } =
            answer(&mut a, ToAcceptor::Prepare(ballot(3, 0)))
        else {
            panic!("a promise")
        };
        assert_eq!(accepted, vec![(0, ballot(2, 1), Entry::Batch(vec![20]))]);
    }

    #[test]
    fn slots_below_the_checkpoint_are_forgotten() {
        let mut a = Acceptor::new();
        for slot in 0..100 {
            answer(
                &mut a,
                accept(ballot(1, 0), slot, slot as u32, slot.saturating_sub(10)),
            );
        }
        // The last accept said every replica applied the slots below 89.
        assert_eq!(a.kept(), 11);
        let FromAcceptor::Promise {
            accepted,
            checkpoint,
            ..
        } = answer(&mut a, ToAcceptor::Prepare(ballot(2, 0)))
        else {
            panic!("a promise")
        };
        assert_eq!(checkpoint, 89);
        assert_eq!(accepted.first().map(|a| a.0), Some(89));
        // A late accept for a forgotten slot is not stored again.
        answer(&mut a, accept(ballot(2, 0), 3, 0, 0));
        assert_eq!(a.kept(), 11);
    }

    /// A restarted acceptor may have promised a ballot it no longer remembers: it answers
    /// neither a prepare nor an accept, so it can complete no quorum.
    #[test]
    fn a_restarted_acceptor_does_not_vote() {
        let mut fresh = Acceptor::<u32>::in_incarnation(0);
        assert!(fresh.votes());
        assert!(!fresh.handle(ToAcceptor::Prepare(ballot(1, 0))).is_empty());
        let mut restarted = Acceptor::<u32>::in_incarnation(1);
        assert!(!restarted.votes());
        assert_eq!(restarted.handle(ToAcceptor::Prepare(ballot(1, 0))), vec![]);
        assert_eq!(restarted.handle(accept(ballot(1, 0), 0, 7, 0)), vec![]);
        assert_eq!(restarted.kept(), 0, "nothing was accepted");
    }

    /// An acceptor rebuilt from the changes another logged holds the same memory, so it
    /// answers every later message alike: what makes a restarted acceptor safe to vote.
    #[test]
    fn replaying_the_logged_changes_rebuilds_the_acceptor() {
        let mut rng = crate::replication::gossip::rng::Rng::new(7);
        for run in 0..50 {
            let mut original = Acceptor::<u32>::new();
            original.keep_changes();
            let mut log = Vec::new();
            let mut snapshot: Option<Vec<u8>> = None;
            for i in 0..200u64 {
                let b = ballot(rng.below(6) as u64, rng.below(3) as u32);
                let message = if rng.below(4) == 0 {
                    ToAcceptor::Prepare(b)
                } else {
                    let slot = rng.below(40) as u64;
                    accept(b, slot, i as u32, rng.below(20) as u64)
                };
                original.handle(message);
                for change in original.take_changes() {
                    log.push(bincode::serialize(&change).unwrap());
                }
                // Now and then the log is compacted into a snapshot of the memory.
                if rng.below(50) == 0 {
                    snapshot = Some(bincode::serialize(&original.image()).unwrap());
                    log.clear();
                }
            }
            let mut rebuilt = Acceptor::<u32>::new();
            if let Some(image) = &snapshot {
                rebuilt.restore(bincode::deserialize(image).unwrap());
            }
            for record in &log {
                rebuilt.replay(bincode::deserialize(record).unwrap());
            }
            assert_eq!(rebuilt.image(), original.image(), "run {run}");
            let probe = ToAcceptor::Prepare(ballot(3, 1));
            assert_eq!(rebuilt.handle(probe.clone()), original.handle(probe));
        }
    }

    /// Nothing is kept for the log unless asked, and a promise no higher than the current
    /// one changes nothing to log.
    #[test]
    fn only_changes_are_logged() {
        let mut a = Acceptor::<u32>::new();
        a.handle(ToAcceptor::Prepare(ballot(1, 0)));
        assert_eq!(a.take_changes(), vec![]);
        a.keep_changes();
        a.handle(ToAcceptor::Prepare(ballot(2, 0)));
        a.handle(ToAcceptor::Prepare(ballot(1, 0)));
        a.handle(accept(ballot(2, 0), 4, 9, 3));
        assert_eq!(
            a.take_changes(),
            vec![
                AcceptorChange::Promised(ballot(2, 0)),
                AcceptorChange::Accepted(4, ballot(2, 0), Entry::Batch(vec![9])),
                AcceptorChange::Forgot(3),
            ]
        );
    }

    /// Who votes: with no disk, only at incarnation 0; with one, whoever read a memory back,
    /// and an empty memory only at the deployment's very first start.
    #[test]
    fn an_acceptor_votes_once_it_has_its_memory_back() {
        use crate::durability::Recovery;
        let empty = Recovery::default();
        let remembered = Recovery {
            records: 3,
            ..Recovery::default()
        };
        assert!(may_vote(None, 0, false));
        assert!(!may_vote(None, 1, false));
        assert!(may_vote(Some(&empty), 0, false), "the first start");
        assert!(
            may_vote(Some(&remembered), 2, false),
            "restarted from its log"
        );
        assert!(
            may_vote(Some(&remembered), 0, true),
            "the deployment served again"
        );
        assert!(
            !may_vote(Some(&empty), 1, false),
            "restarted, its files lost"
        );
        assert!(
            !may_vote(Some(&empty), 0, true),
            "served again, its files lost"
        );
    }

    /// A promise of more than fits one message travels in parts, each within the bound (a
    /// larger slot alone in its part), which together hold every slot in order.
    #[test]
    fn a_large_promise_travels_in_parts() {
        let big = |n: usize| Entry::Batch(vec![7u32; n]);
        let accepted: BTreeMap<Slot, (Ballot, Entry<u32>)> = [
            (3, (ballot(1, 0), big(100))),
            (4, (ballot(1, 0), big(100))),
            (5, (ballot(2, 0), big(1_000))),
            (6, (ballot(2, 0), big(10))),
        ]
        .into_iter()
        .collect();
        let parts = promise_parts(ballot(3, 1), 3, &accepted, 1_000);
        let mut slots = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let FromAcceptor::Promise {
                promised,
                accepted,
                checkpoint,
                part,
                parts: count,
            } = part
            else {
                panic!("a promise")
            };
            assert_eq!(
                (*promised, *checkpoint, *part, *count),
                (ballot(3, 1), 3, i as u32, 3)
            );
            slots.extend(accepted.iter().map(|(slot, ..)| *slot));
        }
        assert_eq!(slots, vec![3, 4, 5, 6]);
        // Nothing accepted: still one part, so the proposer hears the promise.
        assert_eq!(
            promise_parts::<u32>(ballot(1, 0), 0, &BTreeMap::new(), 1_000).len(),
            1
        );
    }
}
