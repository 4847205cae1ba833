//! The acceptor: the protocol's memory (see [`crate::consensus::paxos`]).
//!
//! **A restarted acceptor does not vote.** Paxos is safe only if an acceptor never breaks a
//! promise: having promised ballot *b*, it accepts nothing lower. An acceptor that crashed and
//! came back without a disk has forgotten its promises, so a vote from it could complete a
//! quorum that a promise it forgot forbade — two leaders could then choose different values
//! for one slot. Until acceptors log their promises (the durability work), a restarted one
//! ([`Acceptor::in_incarnation`] with an incarnation above 0) answers nothing: it is alive,
//! shown as `voting=no` in `INFO members`, and counts toward no quorum. The store keeps
//! working while a majority of acceptors still remember.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Ballot, Entry, FromAcceptor, MAX_PROMISE_BYTES, Slot, ToAcceptor};

/// One acceptor's state: its promise, and what it accepted for each slot it still keeps.
#[derive(Clone, Debug)]
pub struct Acceptor<C> {
    promised: Ballot,
    accepted: BTreeMap<Slot, (Ballot, Entry<C>)>,
    checkpoint: Slot,
    /// False for an acceptor that may have forgotten promises (see the module docs).
    votes: bool,
}

impl<C> Default for Acceptor<C> {
    fn default() -> Self {
        Self {
            promised: Ballot::default(),
            accepted: BTreeMap::new(),
            checkpoint: 0,
            votes: true,
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
                self.promised = self.promised.max(ballot);
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
                    self.promised = ballot;
                    if slot >= self.checkpoint {
                        self.accepted.insert(slot, (ballot, entry));
                    }
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
            self.checkpoint = checkpoint;
            self.accepted = self.accepted.split_off(&checkpoint);
        }
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
