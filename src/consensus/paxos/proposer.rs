//! The proposer: leader election, recovery, and the ordering of clients' requests (see
//! [`crate::consensus::paxos`]).
//!
//! A proposer is in one of three roles:
//!
//! - **Follower.** It knows the leader from its heartbeats and forwards requests to it; a
//!   request that arrives while no leader is known waits here (nothing is dropped) and is
//!   forwarded as soon as one is.
//! - **Candidate.** Its election timeouts passed with no heartbeat: it chose a ballot above
//!   every ballot it has seen and asked the acceptors to promise it (phase 1).
//! - **Leader.** A majority promised. From their promises it recovered every slot that may
//!   have been decided, re-proposed those values (the value accepted under the highest
//!   ballot — Paxos's rule, which is what keeps a decided value decided) and filled the holes
//!   with no-ops; then it proposes requests, batched, with a bounded window of slots in
//!   flight, and sends heartbeats.
//!
//! **Who stands first.** After the leader goes quiet, its successor in id order starts an
//! election after one election timeout, the next after two, and so on: in the common case
//! one candidate, no duelling ballots. A candidate whose election does not finish within a
//! timeout (its acceptors are slow or dead, or a higher ballot appeared) tries again with a
//! higher ballot.
//!
//! **Replicas' progress.** Replicas report the slot they will apply next. The proposer
//! re-sends decided entries to a replica that reports no progress while entries it lacks
//! are decided (a message lost to a dead connection), and takes the lowest progress among
//! replicas it heard from recently as the *checkpoint*: acceptors and this proposer forget
//! the slots below it, so the log's memory stays bounded. A replica silent for
//! [`Settings::replica_silence`] election timeouts is taken for dead and no longer holds the
//! checkpoint back. If it was only slow, or was
//! restarted with nothing, the slots it lacks are forgotten: the leader asks the replica
//! furthest ahead to send it a snapshot ([`Output::Transfer`]), and asks again every
//! [`TRANSFER_RETRY_REPORTS`] reports while it is still behind (the snapshot, or the replica
//! sending it, may be lost).

use std::collections::{BTreeMap, HashSet, VecDeque};

use serde::Serialize;

use super::{Ballot, Command, Entry, FromAcceptor, Slot, ToAcceptor, quorum};

/// The sizes and limits a proposer works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Proposers in the deployment (ids 0..proposers).
    pub proposers: u32,
    /// Acceptors in the deployment: a majority of them decides.
    pub acceptors: u32,
    /// Replicas in the deployment (ids 0..replicas): the checkpoint waits for each until it
    /// is taken for dead.
    pub replicas: u32,
    /// Slots the leader may have proposed and not yet seen decided. Requests that arrive
    /// while the window is full wait and go out together in the next slot: the busier the
    /// store, the bigger the batches.
    pub window: usize,
    /// Requests in one slot, at most.
    pub max_batch: usize,
    /// Bytes of requests (as encoded) in one slot, at most — unless one request alone is
    /// bigger, which then has a slot to itself. A slot travels in one message to each
    /// acceptor and replica, and a message must stay well under what the transport carries.
    pub max_batch_bytes: usize,
    /// Election timeouts without a report after which a replica is taken for dead.
    pub replica_silence: u32,
}

impl Settings {
    /// The settings for `f` tolerated failures: 2f + 1 proposers and acceptors, f + 1
    /// replicas at least (the defaults run 2f + 1, so that a replica's death leaves more than
    /// one copy).
    pub fn tolerating(f: u32) -> Self {
        Self {
            proposers: 2 * f + 1,
            acceptors: 2 * f + 1,
            replicas: 2 * f + 1,
            window: 8,
            max_batch: 1024,
            max_batch_bytes: DEFAULT_MAX_BATCH_BYTES,
            replica_silence: 3,
        }
    }
}

/// The longest a leader waits, in heartbeat timeouts, before it sends an unanswered accept
/// again (the wait doubles from 2 with each re-send); and in a replica's reports, before it
/// sends decided slots to a replica that makes no progress again (doubling from 1).
pub const MAX_RESEND_TIMEOUTS: u32 = 20;

/// The most bytes of decided slots sent again to a replica at once (at least one slot).
pub const MAX_RESEND_BYTES: u64 = 32 * 1024 * 1024;

/// How many reports of a replica still behind the checkpoint the leader waits for before it
/// asks for a snapshot again (5 s at the deployment's report rate): long enough for a large
/// store to travel, short enough that a lost snapshot is soon replaced.
pub const TRANSFER_RETRY_REPORTS: u32 = 50;

/// The default bound on a slot's requests: 16 MiB, so that a slot — a batch of requests of up
/// to 1 MiB values each, or one transaction the edge allowed — stays far below the transport's
/// frame limit.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What happens to a proposer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event<C> {
    /// A client's request, from the proxy or forwarded by another proposer.
    Request(C),
    /// An acceptor's answer.
    Acceptor(u32, FromAcceptor<C>),
    /// The leader of `Ballot` is alive.
    Heartbeat(Ballot),
    /// An election timeout passed (a timer, or a test).
    ElectionTimeout,
    /// Time for the leader to send heartbeats and re-send what was not answered.
    HeartbeatTimeout,
    /// A replica will apply slot `next` next.
    Applied {
        /// The replica.
        replica: u32,
        /// Every slot below this is applied there.
        next: Slot,
        /// Which start of the replica reports ([`crate::membership::incarnation()`]): a
        /// restarted replica has applied nothing, whatever its earlier process had.
        incarnation: u32,
    },
}

/// What a proposer sends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output<C> {
    /// To every acceptor.
    ToAcceptors(ToAcceptor<C>),
    /// To one acceptor (an accept sent again to one that has not answered it).
    ToAcceptor(u32, ToAcceptor<C>),
    /// A heartbeat, to every other proposer and to the proxy.
    Heartbeat(Ballot),
    /// A request, to the leader proposer.
    Forward(u32, C),
    /// A decided slot, to every replica.
    Decided(Slot, Entry<C>),
    /// A decided slot, again, to one replica that lacks it.
    Resend(u32, Slot, Entry<C>),
    /// A replica reported progress below the checkpoint: the slots it lacks are forgotten,
    /// it can no longer catch up from the log (it was restarted with nothing, or taken for
    /// dead after a long silence and was only slow). Replica `from`, the one furthest ahead,
    /// is asked to send it a snapshot of its state.
    Transfer {
        /// The replica asked to send its snapshot.
        from: u32,
        /// The replica behind.
        to: u32,
        /// The checkpoint it is behind.
        checkpoint: Slot,
    },
}

/// A slot the leader proposed and has not seen decided.
#[derive(Clone, Debug)]
struct InFlight<C> {
    entry: Entry<C>,
    /// Acceptors that accepted it under the current ballot.
    accepted_by: Vec<u32>,
    /// Heartbeat timeouts since it was (re)sent.
    age: u32,
    /// How many times it was sent again.
    resent: u32,
}

#[derive(Clone, Debug)]
enum Role<C> {
    Follower { leader: Option<u32> },
    Candidate { promises: BTreeMap<u32, Promise<C>> },
    Leader,
}

/// What one acceptor promised: what it accepted at or above its checkpoint, as far as its
/// parts have arrived.
#[derive(Clone, Debug)]
struct Promise<C> {
    accepted: Vec<(Slot, Ballot, Entry<C>)>,
    checkpoint: Slot,
    /// The part expected next.
    next_part: u32,
    /// How many parts the promise has: complete once `next_part` reaches it.
    parts: u32,
}

/// What the proposer knows of one replica.
#[derive(Clone, Copy, Debug)]
struct Progress {
    next: Slot,
    /// Election timeouts since its last report.
    silent: u32,
    /// Whether it reported at all.
    reported: bool,
    /// Reports still behind the checkpoint before a snapshot is asked for again (0: ask at
    /// the next one).
    transfer_wait: u32,
    /// The replica's incarnation this progress is of.
    incarnation: u32,
    /// Reports in a row without progress since decided slots were last sent to it again.
    stuck: u32,
    /// How many times decided slots were sent to it again since it last made progress.
    resent: u32,
}

/// One proposer's state (see the module docs).
#[derive(Clone, Debug)]
pub struct Proposer<C> {
    me: u32,
    settings: Settings,
    /// The highest ballot seen: this proposer's own while it is a candidate or the leader.
    ballot: Ballot,
    role: Role<C>,
    /// Whether the leader was heard from since the last election timeout.
    heard: bool,
    /// Election timeouts in a row with no word from the leader.
    missed: u32,
    /// The last leader heard from: its successor stands first.
    last_leader: Option<u32>,
    /// Requests not yet proposed (leader) or forwarded (no leader known).
    pending: VecDeque<C>,
    /// The (client, request) ids of the requests waiting here or in a slot this proposer
    /// proposed and has not seen decided: a retry of one of them is on its way already, and
    /// is dropped rather than put in the log a second time.
    queued: HashSet<(u64, u64)>,
    next_slot: Slot,
    in_flight: BTreeMap<Slot, InFlight<C>>,
    /// Decided slots at or above the checkpoint, for replicas that lack them.
    decided: BTreeMap<Slot, Entry<C>>,
    replicas: BTreeMap<u32, Progress>,
    checkpoint: Slot,
}

impl<C: Clone + Serialize + Command> Proposer<C> {
    /// Proposer `me`, a follower that knows no leader yet.
    pub fn new(me: u32, settings: Settings) -> Self {
        Self {
            me,
            settings,
            ballot: Ballot::default(),
            role: Role::Follower { leader: None },
            heard: false,
            missed: 0,
            last_leader: None,
            pending: VecDeque::new(),
            queued: HashSet::new(),
            next_slot: 0,
            in_flight: BTreeMap::new(),
            decided: BTreeMap::new(),
            // Every replica starts at slot 0 and, until it reports, is as fresh as if it had
            // just reported: one that never reports is taken for dead like any other.
            replicas: (0..settings.replicas)
                .map(|r| {
                    let fresh = Progress {
                        next: 0,
                        silent: 0,
                        reported: false,
                        transfer_wait: 0,
                        incarnation: 0,
                        stuck: 0,
                        resent: 0,
                    };
                    (r, fresh)
                })
                .collect(),
            checkpoint: 0,
        }
    }

    /// The leader this proposer knows of (itself, if it leads), and its ballot.
    pub fn leader(&self) -> Option<(u32, Ballot)> {
        match self.role {
            Role::Leader => Some((self.me, self.ballot)),
            Role::Follower {
                leader: Some(leader),
            } => Some((leader, self.ballot)),
            _ => None,
        }
    }

    /// Whether this proposer leads.
    pub fn is_leader(&self) -> bool {
        matches!(self.role, Role::Leader)
    }

    /// Decided slots kept for replicas that may lack them.
    pub fn kept(&self) -> usize {
        self.decided.len()
    }

    /// The checkpoint: every live replica has applied the slots below it.
    pub fn checkpoint(&self) -> Slot {
        self.checkpoint
    }

    /// Handles one event; returns the messages to send, in order.
    pub fn handle(&mut self, event: Event<C>) -> Vec<Output<C>> {
        let mut out = Vec::new();
        match event {
            Event::Request(request) => match self.role {
                Role::Follower {
                    leader: Some(leader),
                } => out.push(Output::Forward(leader, request)),
                // The proxy retries what it has not heard answered for a while; one already
                // waiting here or in flight is not lost, only slow: a second copy in the log
                // would only add to the load that made it slow.
                _ if !self.queued.insert((request.client(), request.request())) => {}
                Role::Leader => {
                    self.pending.push_back(request);
                    self.propose_pending(&mut out);
                }
                _ => self.pending.push_back(request),
            },
            Event::Acceptor(
                from,
                FromAcceptor::Promise {
                    promised,
                    accepted,
                    checkpoint,
                    part,
                    parts,
                },
            ) => {
                if promised > self.ballot {
                    self.ballot = promised;
                    self.step_down(None, &mut out);
                } else if promised == self.ballot
                    && let Role::Candidate { promises } = &mut self.role
                {
                    // Parts of one acceptor's promise arrive in order or not at all (one
                    // link): a part that does not follow leaves the promise incomplete, and
                    // an election that gets no majority is tried again.
                    if part == 0 {
                        promises.insert(
                            from,
                            Promise {
                                accepted: Vec::new(),
                                checkpoint,
                                next_part: 0,
                                parts,
                            },
                        );
                    }
                    if let Some(promise) = promises.get_mut(&from)
                        && promise.next_part == part
                        && promise.parts == parts
                    {
                        promise.accepted.extend(accepted);
                        promise.next_part += 1;
                    }
                    let complete = promises.values().filter(|p| p.next_part == p.parts).count();
                    if complete >= quorum(self.settings.acceptors) {
                        self.lead(&mut out);
                    }
                }
            }
            Event::Acceptor(
                from,
                FromAcceptor::Accepted {
                    ballot,
                    promised,
                    slot,
                },
            ) => {
                if promised > self.ballot {
                    self.ballot = promised;
                    self.step_down(None, &mut out);
                } else if ballot == self.ballot && promised == self.ballot && self.is_leader() {
                    // Only a reply to an accept of *this* ballot is a vote (see
                    // `FromAcceptor::Accepted`).
                    self.accepted(from, slot, &mut out);
                }
            }
            Event::Heartbeat(ballot) => {
                if ballot > self.ballot || (ballot == self.ballot && ballot.proposer != self.me) {
                    self.ballot = ballot;
                    self.last_leader = Some(ballot.proposer);
                    self.step_down(Some(ballot.proposer), &mut out);
                    self.heard = true;
                }
            }
            Event::ElectionTimeout => {
                self.age_replicas();
                match self.role {
                    Role::Leader => {}
                    Role::Candidate { .. } => self.stand(&mut out),
                    Role::Follower { .. } if std::mem::take(&mut self.heard) => {
                        self.missed = 0;
                    }
                    Role::Follower { .. } => {
                        self.missed += 1;
                        if self.missed > self.rank() {
                            self.stand(&mut out);
                        }
                    }
                }
            }
            Event::HeartbeatTimeout => {
                if self.is_leader() {
                    out.push(Output::Heartbeat(self.ballot));
                    self.resend_old_accepts(&mut out);
                }
            }
            Event::Applied {
                replica,
                next,
                incarnation,
            } => self.applied(replica, next, incarnation, &mut out),
        }
        out
    }

    /// How many election timeouts this follower waits before standing: 0 for the last
    /// leader's successor, 1 for the next, …
    fn rank(&self) -> u32 {
        let n = self.settings.proposers;
        match self.last_leader {
            Some(leader) => (self.me + n - leader - 1) % n,
            None => self.me,
        }
    }

    /// Starts an election with a ballot above every ballot seen.
    fn stand(&mut self, out: &mut Vec<Output<C>>) {
        self.requeue_in_flight();
        self.ballot = Ballot {
            round: self.ballot.round + 1,
            proposer: self.me,
        };
        self.role = Role::Candidate {
            promises: BTreeMap::new(),
        };
        self.missed = 0;
        out.push(Output::ToAcceptors(ToAcceptor::Prepare(self.ballot)));
    }

    /// A majority promised: recover, fill holes, and start proposing.
    fn lead(&mut self, out: &mut Vec<Output<C>>) {
        let Role::Candidate { mut promises } = std::mem::replace(&mut self.role, Role::Leader)
        else {
            return;
        };
        // Only whole promises: a majority of them is what recovery needs.
        promises.retain(|_, p| p.next_part == p.parts);
        // Slots below the highest checkpoint were applied by every live replica: nothing
        // there needs recovering.
        let start = promises
            .values()
            .map(|p| p.checkpoint)
            .chain([self.checkpoint])
            .max()
            .unwrap_or(0);
        self.forget_below(start);
        let mut recovered: BTreeMap<Slot, (Ballot, Entry<C>)> = BTreeMap::new();
        for (slot, ballot, entry) in promises.into_values().flat_map(|p| p.accepted) {
            if slot < start {
                continue;
            }
            match recovered.get(&slot) {
                Some((seen, _)) if *seen >= ballot => {}
                _ => {
                    recovered.insert(slot, (ballot, entry));
                }
            }
        }
        let end = recovered
            .last_key_value()
            .map_or(start, |(slot, _)| slot + 1)
            .max(start);
        // Every slot up to the last one any promise mentions is proposed again: a recovered
        // value may have been decided and must stay so, and a hole becomes a no-op so that
        // the slots after it can be applied.
        self.in_flight.clear();
        for slot in start..end {
            let entry = recovered
                .remove(&slot)
                .map_or(Entry::Noop, |(_, entry)| entry);
            self.propose(slot, entry, out);
        }
        self.next_slot = end;
        self.last_leader = Some(self.me);
        self.missed = 0;
        out.push(Output::Heartbeat(self.ballot));
        self.propose_pending(out);
    }

    /// Sends an accept for `slot` under the current ballot and waits for a majority.
    fn propose(&mut self, slot: Slot, entry: Entry<C>, out: &mut Vec<Output<C>>) {
        out.push(Output::ToAcceptors(ToAcceptor::Accept {
            ballot: self.ballot,
            slot,
            entry: entry.clone(),
            checkpoint: self.checkpoint,
        }));
        self.in_flight.insert(
            slot,
            InFlight {
                entry,
                accepted_by: Vec::new(),
                age: 0,
                resent: 0,
            },
        );
    }

    /// Proposes waiting requests, a batch per slot, while the window has room.
    fn propose_pending(&mut self, out: &mut Vec<Output<C>>) {
        while self.in_flight.len() < self.settings.window && !self.pending.is_empty() {
            // As many as fit the batch's bounds, and always at least one.
            let (mut take, mut bytes) = (0, 0usize);
            for request in self.pending.iter().take(self.settings.max_batch) {
                let weight = bincode::serialized_size(request)
                    .map_or(usize::MAX, |w| usize::try_from(w).unwrap_or(usize::MAX));
                if take > 0 && bytes.saturating_add(weight) > self.settings.max_batch_bytes {
                    break;
                }
                bytes = bytes.saturating_add(weight);
                take += 1;
            }
            let batch: Vec<C> = self.pending.drain(..take).collect();
            let slot = self.next_slot;
            self.next_slot += 1;
            self.propose(slot, Entry::Batch(batch), out);
        }
    }

    fn accepted(&mut self, from: u32, slot: Slot, out: &mut Vec<Output<C>>) {
        let Some(in_flight) = self.in_flight.get_mut(&slot) else {
            return; // decided already, or from an older leadership
        };
        if !in_flight.accepted_by.contains(&from) {
            in_flight.accepted_by.push(from);
        }
        if in_flight.accepted_by.len() >= quorum(self.settings.acceptors)
            && let Some(done) = self.in_flight.remove(&slot)
        {
            if let Entry::Batch(batch) = &done.entry {
                for request in batch {
                    self.queued.remove(&(request.client(), request.request()));
                }
            }
            self.decided.insert(slot, done.entry.clone());
            out.push(Output::Decided(slot, done.entry));
            self.propose_pending(out);
        }
    }

    /// An accept unanswered for two heartbeat timeouts is sent again, to the acceptors that
    /// have not accepted it: a message to an acceptor may have been lost with its connection.
    /// Each further re-send waits twice as long, up to [`MAX_RESEND_TIMEOUTS`]: an accept
    /// that is only slow (a large slot on a busy link) must not be sent again and again,
    /// since every copy queues behind the first and the link would never catch up.
    fn resend_old_accepts(&mut self, out: &mut Vec<Output<C>>) {
        let acceptors = self.settings.acceptors;
        for (slot, in_flight) in &mut self.in_flight {
            in_flight.age += 1;
            let wait = (2u32 << in_flight.resent.min(8)).min(MAX_RESEND_TIMEOUTS);
            if in_flight.age < wait {
                continue;
            }
            in_flight.age = 0;
            in_flight.resent += 1;
            for acceptor in (0..acceptors).filter(|a| !in_flight.accepted_by.contains(a)) {
                out.push(Output::ToAcceptor(
                    acceptor,
                    ToAcceptor::Accept {
                        ballot: self.ballot,
                        slot: *slot,
                        entry: in_flight.entry.clone(),
                        checkpoint: self.checkpoint,
                    },
                ));
            }
        }
    }

    /// Becomes a follower of `leader` (or of no one known). Requests this proposer held
    /// go to the leader: those it proposed and may not see decided too (a replica drops a
    /// request applied twice).
    fn step_down(&mut self, leader: Option<u32>, out: &mut Vec<Output<C>>) {
        self.requeue_in_flight();
        self.role = Role::Follower { leader };
        self.missed = 0;
        if let Some(leader) = leader.filter(|l| *l != self.me) {
            out.extend(self.pending.drain(..).map(|r| Output::Forward(leader, r)));
        }
        // Only what still waits here is queued here.
        self.queued = self
            .pending
            .iter()
            .map(|r| (r.client(), r.request()))
            .collect();
    }

    /// Puts the requests of every slot in flight back at the head of the queue.
    fn requeue_in_flight(&mut self) {
        let in_flight = std::mem::take(&mut self.in_flight);
        for (_, slot) in in_flight.into_iter().rev() {
            if let Entry::Batch(batch) = slot.entry {
                for request in batch.into_iter().rev() {
                    self.pending.push_front(request);
                }
            }
        }
    }

    fn applied(&mut self, replica: u32, next: Slot, incarnation: u32, out: &mut Vec<Output<C>>) {
        let (leading, checkpoint) = (self.is_leader(), self.checkpoint);
        let Some(progress) = self.replicas.get_mut(&replica) else {
            return; // not a replica of this deployment
        };
        if incarnation < progress.incarnation {
            return; // a late report of a process that was replaced
        }
        if incarnation > progress.incarnation {
            // A restarted replica starts over: its earlier progress is not its own.
            *progress = Progress {
                next,
                silent: 0,
                reported: false,
                transfer_wait: 0,
                incarnation,
                stuck: 0,
                resent: 0,
            };
        }
        // Reports can arrive out of order: only the furthest one counts.
        let stuck = next <= progress.next && progress.reported;
        if next > progress.next {
            progress.stuck = 0;
            progress.resent = 0;
        }
        progress.next = progress.next.max(next);
        progress.silent = 0;
        progress.reported = true;
        if progress.next < checkpoint {
            // The slots it lacks are forgotten: another replica's snapshot must bring it up.
            if leading && progress.transfer_wait == 0 {
                progress.transfer_wait = TRANSFER_RETRY_REPORTS;
                if let Some(from) = self.furthest_ahead(replica) {
                    out.push(Output::Transfer {
                        from,
                        to: replica,
                        checkpoint,
                    });
                }
            } else {
                progress.transfer_wait = progress.transfer_wait.saturating_sub(1);
            }
        } else if stuck && leading && self.decided.range(next..).next().is_some() {
            // No progress since its last report while this leader holds decided slots it
            // lacks: the decision messages were lost, or it is only slow (large slots).
            // Send them again — a bounded number, of bounded bytes, and each time after
            // twice as many reports, since copies sent to a replica that is only slow queue
            // behind what it has not read yet.
            progress.stuck += 1;
            if progress.stuck >= (1u32 << progress.resent.min(8)).min(MAX_RESEND_TIMEOUTS) {
                progress.stuck = 0;
                progress.resent += 1;
                let mut bytes = 0u64;
                for (slot, entry) in self.decided.range(next..).take(self.settings.window * 4) {
                    let size = bincode::serialized_size(entry).unwrap_or(u64::MAX);
                    if bytes > 0 && bytes.saturating_add(size) > MAX_RESEND_BYTES {
                        break;
                    }
                    bytes = bytes.saturating_add(size);
                    out.push(Output::Resend(replica, *slot, entry.clone()));
                }
            }
        }
        self.advance_checkpoint();
    }

    /// The live replica (other than `behind`) that has applied the most: the one to send
    /// `behind` a snapshot. None if no live replica is at the checkpoint.
    fn furthest_ahead(&self, behind: u32) -> Option<u32> {
        self.replicas
            .iter()
            .filter(|(r, p)| {
                **r != behind
                    && p.reported
                    && p.silent < self.settings.replica_silence
                    && p.next >= self.checkpoint
            })
            .max_by_key(|(r, p)| (p.next, std::cmp::Reverse(**r)))
            .map(|(r, _)| *r)
    }

    fn age_replicas(&mut self) {
        for progress in self.replicas.values_mut() {
            progress.silent = progress.silent.saturating_add(1);
        }
        self.advance_checkpoint();
    }

    /// The lowest progress among replicas heard from recently; never moves back.
    fn advance_checkpoint(&mut self) {
        let live = self
            .replicas
            .values()
            // A replica below the checkpoint cannot hold back what is already forgotten.
            .filter(|p| p.silent < self.settings.replica_silence && p.next >= self.checkpoint)
            .map(|p| p.next)
            .min();
        if let Some(lowest) = live {
            self.forget_below(lowest);
        }
    }

    fn forget_below(&mut self, checkpoint: Slot) {
        if checkpoint > self.checkpoint {
            self.checkpoint = checkpoint;
            self.decided = self.decided.split_off(&checkpoint);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            window: 2,
            ..Settings::tolerating(1)
        }
    }

    fn promise(promised: Ballot, accepted: Vec<(Slot, Ballot, Entry<u32>)>) -> FromAcceptor<u32> {
        FromAcceptor::Promise {
            promised,
            accepted,
            checkpoint: 0,
            part: 0,
            parts: 1,
        }
    }

    fn b(round: u64, proposer: u32) -> Ballot {
        Ballot { round, proposer }
    }

    /// Proposer 0 elected with empty promises from acceptors 0 and 1.
    fn elected() -> Proposer<u32> {
        let mut p = Proposer::new(0, settings());
        let out = p.handle(Event::ElectionTimeout);
        assert_eq!(out, vec![Output::ToAcceptors(ToAcceptor::Prepare(b(1, 0)))]);
        assert!(
            p.handle(Event::Acceptor(0, promise(b(1, 0), vec![])))
                .is_empty()
        );
        let out = p.handle(Event::Acceptor(1, promise(b(1, 0), vec![])));
        assert_eq!(out, vec![Output::Heartbeat(b(1, 0))]);
        assert!(p.is_leader());
        p
    }

    /// Acceptors 0 and 1, a majority of three, accept `slot` under the ballot of
    /// [`elected`]'s leader.
    fn accepted_by_a_majority(p: &mut Proposer<u32>, slot: Slot) {
        for acceptor in [0, 1] {
            p.handle(Event::Acceptor(
                acceptor,
                FromAcceptor::Accepted {
                    ballot: b(1, 0),
                    promised: b(1, 0),
                    slot,
                },
            ));
        }
    }

    fn accepts(out: &[Output<u32>]) -> Vec<(Slot, Entry<u32>)> {
        out.iter()
            .filter_map(|o| match o {
                Output::ToAcceptors(ToAcceptor::Accept { slot, entry, .. }) => {
                    Some((*slot, entry.clone()))
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_request_is_decided_by_a_majority() {
        let mut p = elected();
        let out = p.handle(Event::Request(7));
        assert_eq!(accepts(&out), vec![(0, Entry::Batch(vec![7]))]);
        let ok = |promised| FromAcceptor::Accepted {
            ballot: promised,
            promised,
            slot: 0,
        };
        assert!(p.handle(Event::Acceptor(2, ok(b(1, 0)))).is_empty());
        // The same acceptor twice is not a majority.
        assert!(p.handle(Event::Acceptor(2, ok(b(1, 0)))).is_empty());
        assert_eq!(
            p.handle(Event::Acceptor(0, ok(b(1, 0)))),
            vec![Output::Decided(0, Entry::Batch(vec![7]))]
        );
    }

    /// An accept delayed from an older ballot, refused by acceptors that now promise the
    /// leader's own ballot, is answered with that promise: not a vote for the new ballot.
    #[test]
    fn a_refusal_of_an_older_ballots_accept_is_not_a_vote() {
        let mut p = elected();
        let out = p.handle(Event::Request(7));
        assert_eq!(accepts(&out), vec![(0, Entry::Batch(vec![7]))]);
        let refusal = FromAcceptor::Accepted {
            ballot: b(0, 0),
            promised: b(1, 0),
            slot: 0,
        };
        for acceptor in 0..3 {
            assert!(
                p.handle(Event::Acceptor(acceptor, refusal.clone()))
                    .is_empty(),
                "acceptor {acceptor}'s refusal counted as a vote"
            );
        }
        assert!(p.is_leader(), "a refusal of an older ballot deposes no one");
    }

    #[test]
    fn requests_wait_for_the_window_and_then_go_out_together() {
        let mut p = elected();
        p.handle(Event::Request(1));
        p.handle(Event::Request(2));
        // Window of 2 slots: the next requests wait ...
        assert!(p.handle(Event::Request(3)).is_empty());
        assert!(p.handle(Event::Request(4)).is_empty());
        for acceptor in [0, 1] {
            let out = p.handle(Event::Acceptor(
                acceptor,
                FromAcceptor::Accepted {
                    ballot: b(1, 0),
                    promised: b(1, 0),
                    slot: 0,
                },
            ));
            if acceptor == 1 {
                // ... and go out in one slot when slot 0 is decided.
                assert_eq!(accepts(&out), vec![(2, Entry::Batch(vec![3, 4]))]);
            }
        }
    }

    /// A slot holds no more request bytes than the bound (a `u32` request is 4 bytes), so no
    /// message to acceptors and replicas grows past what the transport carries.
    #[test]
    fn a_batch_stays_within_its_byte_bound() {
        let mut p = Proposer::new(
            0,
            Settings {
                max_batch_bytes: 8,
                ..settings()
            },
        );
        p.handle(Event::ElectionTimeout);
        p.handle(Event::Acceptor(0, promise(b(1, 0), vec![])));
        p.handle(Event::Acceptor(1, promise(b(1, 0), vec![])));
        assert!(p.is_leader());
        // Two slots in flight fill the window; five requests wait.
        p.handle(Event::Request(1));
        p.handle(Event::Request(2));
        for request in 3..8 {
            assert!(p.handle(Event::Request(request)).is_empty());
        }
        let decide = |p: &mut Proposer<u32>, slot| {
            let mut out = vec![];
            for acceptor in [0, 1] {
                out.extend(p.handle(Event::Acceptor(
                    acceptor,
                    FromAcceptor::Accepted {
                        ballot: b(1, 0),
                        promised: b(1, 0),
                        slot,
                    },
                )));
            }
            accepts(&out)
        };
        assert_eq!(decide(&mut p, 0), vec![(2, Entry::Batch(vec![3, 4]))]);
        assert_eq!(decide(&mut p, 1), vec![(3, Entry::Batch(vec![5, 6]))]);
        assert_eq!(decide(&mut p, 2), vec![(4, Entry::Batch(vec![7]))]);
    }

    #[test]
    fn a_new_leader_recovers_the_highest_ballot_value_and_fills_holes() {
        let mut p = Proposer::new(1, Settings::tolerating(1));
        // It heard leader 0, which then went quiet: as 0's successor it stands first.
        p.handle(Event::Heartbeat(b(1, 0)));
        assert!(p.handle(Event::ElectionTimeout).is_empty());
        assert_eq!(
            p.handle(Event::ElectionTimeout),
            vec![Output::ToAcceptors(ToAcceptor::Prepare(b(2, 1)))]
        );
        // Acceptor 0 accepted slot 0 under ballot 1 and slot 2; acceptor 2 accepted another
        // value for slot 0 under an older ballot. Slot 1 is a hole.
        p.handle(Event::Acceptor(
            0,
            promise(
                b(2, 1),
                vec![
                    (0, b(1, 0), Entry::Batch(vec![10])),
                    (2, b(1, 0), Entry::Batch(vec![30])),
                ],
            ),
        ));
        let out = p.handle(Event::Acceptor(
            2,
            promise(b(2, 1), vec![(0, b(0, 2), Entry::Batch(vec![99]))]),
        ));
        assert_eq!(
            accepts(&out),
            vec![
                (0, Entry::Batch(vec![10])),
                (1, Entry::Noop),
                (2, Entry::Batch(vec![30]))
            ]
        );
        // New requests go after the recovered slots.
        assert_eq!(
            accepts(&p.handle(Event::Request(5))),
            vec![(3, Entry::Batch(vec![5]))]
        );
    }

    /// An unanswered accept is sent again only to the acceptors that have not accepted it,
    /// each time after twice as long (a slow link must not be flooded with copies).
    #[test]
    fn an_unanswered_accept_is_sent_again_to_the_silent_acceptors_ever_less_often() {
        let mut p = elected();
        p.handle(Event::Request(1));
        p.handle(Event::Acceptor(
            0,
            FromAcceptor::Accepted {
                ballot: b(1, 0),
                promised: b(1, 0),
                slot: 0,
            },
        ));
        let mut resent_at = Vec::new();
        for timeout in 1..=40 {
            let out = p.handle(Event::HeartbeatTimeout);
            let to: Vec<u32> = out
                .iter()
                .filter_map(|o| match o {
                    Output::ToAcceptor(a, ToAcceptor::Accept { slot: 0, .. }) => Some(*a),
                    _ => None,
                })
                .collect();
            if !to.is_empty() {
                assert_eq!(to, vec![1, 2], "not to acceptor 0, which accepted");
                resent_at.push(timeout);
            }
        }
        assert_eq!(resent_at, vec![2, 6, 14, 30]);
    }

    /// A retry of a request the leader holds (waiting, or in a slot not yet decided) is not
    /// put in the log again; once it is decided, a retry is (replicas apply it once).
    #[test]
    fn a_retry_of_a_request_in_flight_is_not_proposed_again() {
        let mut p = elected();
        assert_eq!(
            accepts(&p.handle(Event::Request(1))),
            vec![(0, Entry::Batch(vec![1]))]
        );
        assert!(p.handle(Event::Request(1)).is_empty(), "in flight: dropped");
        accepted_by_a_majority(&mut p, 0);
        assert_eq!(
            accepts(&p.handle(Event::Request(1))),
            vec![(1, Entry::Batch(vec![1]))]
        );
    }

    /// A promise in parts counts once every part is in, and what its later parts hold is
    /// recovered; one whose parts do not follow (one was lost) never counts.
    #[test]
    fn a_promise_in_parts_counts_once_whole() {
        let mut p = Proposer::new(0, settings());
        p.handle(Event::ElectionTimeout);
        let part = |accepted, part, parts| FromAcceptor::Promise {
            promised: b(1, 0),
            accepted,
            checkpoint: 0,
            part,
            parts,
        };
        // Acceptor 1 lost its second part: its third does not complete it.
        p.handle(Event::Acceptor(1, part(vec![], 0, 3)));
        p.handle(Event::Acceptor(1, part(vec![], 2, 3)));
        // Acceptor 0's first part alone is not a promise.
        assert!(
            p.handle(Event::Acceptor(
                0,
                part(vec![(0, b(0, 2), Entry::Batch(vec![10]))], 0, 2)
            ))
            .is_empty()
        );
        assert!(!p.is_leader());
        // Acceptor 2, whole, and acceptor 0's second part: a majority of whole promises.
        p.handle(Event::Acceptor(2, part(vec![], 0, 1)));
        assert!(
            !p.is_leader(),
            "acceptor 0 is not whole yet, acceptor 1 never will be"
        );
        let out = p.handle(Event::Acceptor(
            0,
            part(vec![(1, b(0, 2), Entry::Batch(vec![20]))], 1, 2),
        ));
        assert!(p.is_leader());
        assert_eq!(
            accepts(&out),
            vec![(0, Entry::Batch(vec![10])), (1, Entry::Batch(vec![20]))]
        );
    }

    #[test]
    fn requests_without_a_leader_wait_and_are_forwarded_once_one_is_known() {
        let mut p = Proposer::new(2, settings());
        assert!(p.handle(Event::Request(1)).is_empty());
        assert!(p.handle(Event::Request(2)).is_empty());
        assert_eq!(
            p.handle(Event::Heartbeat(b(1, 0))),
            vec![Output::Forward(0, 1), Output::Forward(0, 2)]
        );
        assert_eq!(p.handle(Event::Request(3)), vec![Output::Forward(0, 3)]);
    }

    #[test]
    fn a_leader_that_meets_a_higher_ballot_steps_down_and_hands_over_its_requests() {
        let mut p = elected();
        p.handle(Event::Request(1));
        // An acceptor promised a higher ballot: the accept is refused.
        let out = p.handle(Event::Acceptor(
            0,
            FromAcceptor::Accepted {
                ballot: b(1, 0),
                promised: b(2, 1),
                slot: 0,
            },
        ));
        assert!(out.is_empty());
        assert!(!p.is_leader());
        // The request it had proposed goes to the new leader once it is heard from.
        assert_eq!(
            p.handle(Event::Heartbeat(b(2, 1))),
            vec![Output::Forward(1, 1)]
        );
    }

    #[test]
    fn the_leaders_successor_stands_first() {
        let mut p1 = Proposer::<u32>::new(1, settings());
        let mut p2 = Proposer::<u32>::new(2, settings());
        for p in [&mut p1, &mut p2] {
            p.handle(Event::Heartbeat(b(1, 0)));
        }
        // The timeout right after a heartbeat only marks the period.
        assert!(p1.handle(Event::ElectionTimeout).is_empty());
        assert!(p2.handle(Event::ElectionTimeout).is_empty());
        assert!(!p1.handle(Event::ElectionTimeout).is_empty());
        assert!(p2.handle(Event::ElectionTimeout).is_empty());
        // If proposer 1 is dead too, proposer 2 stands one timeout later.
        assert!(!p2.handle(Event::ElectionTimeout).is_empty());
    }

    #[test]
    fn a_heartbeat_holds_elections_off() {
        let mut p = Proposer::<u32>::new(1, settings());
        p.handle(Event::Heartbeat(b(1, 0)));
        for _ in 0..5 {
            assert!(p.handle(Event::ElectionTimeout).is_empty());
            p.handle(Event::Heartbeat(b(1, 0)));
        }
        assert_eq!(p.leader(), Some((0, b(1, 0))));
    }

    #[test]
    fn the_checkpoint_follows_the_slowest_live_replica() {
        let mut p = elected();
        for slot in 0..6u64 {
            p.handle(Event::Request(slot as u32));
            accepted_by_a_majority(&mut p, slot);
        }
        assert_eq!(p.kept(), 6);
        p.handle(Event::Applied {
            replica: 0,
            next: 6,
            incarnation: 0,
        });
        p.handle(Event::Applied {
            replica: 1,
            next: 4,
            incarnation: 0,
        });
        // Replica 2 has not reported: it holds everything back.
        assert_eq!((p.checkpoint(), p.kept()), (0, 6));
        p.handle(Event::Applied {
            replica: 2,
            next: 6,
            incarnation: 0,
        });
        assert_eq!((p.checkpoint(), p.kept()), (4, 2));
        // Replica 1 goes silent: after `replica_silence` timeouts it no longer holds the
        // checkpoint back.
        for _ in 0..settings().replica_silence {
            p.handle(Event::ElectionTimeout);
            p.handle(Event::Applied {
                replica: 0,
                next: 6,
                incarnation: 0,
            });
            p.handle(Event::Applied {
                replica: 2,
                next: 6,
                incarnation: 0,
            });
        }
        assert_eq!((p.checkpoint(), p.kept()), (6, 0));
        // Replica 1 was only slow: it can no longer catch up from the log, and replica 0
        // (as far ahead as any) is asked to send it a snapshot.
        assert_eq!(
            p.handle(Event::Applied {
                replica: 1,
                next: 4,
                incarnation: 0,
            }),
            vec![Output::Transfer {
                from: 0,
                to: 1,
                checkpoint: 6
            }]
        );
        // The checkpoint travels with the next accept.
        let out = p.handle(Event::Request(9));
        assert!(matches!(
            out.as_slice(),
            [Output::ToAcceptors(ToAcceptor::Accept {
                checkpoint: 6,
                ..
            })]
        ));
    }

    #[test]
    fn a_replica_that_reports_no_progress_gets_the_decided_slots_again() {
        let mut p = elected();
        p.handle(Event::Request(1));
        accepted_by_a_majority(&mut p, 0);
        // First report: maybe the decision is on its way.
        assert!(
            p.handle(Event::Applied {
                replica: 2,
                next: 0,
                incarnation: 0,
            })
            .is_empty()
        );
        // Still nothing: send it again.
        assert_eq!(
            p.handle(Event::Applied {
                replica: 2,
                next: 0,
                incarnation: 0,
            }),
            vec![Output::Resend(2, 0, Entry::Batch(vec![1]))]
        );
    }

    /// A replica restarted without its state reports slot 0 again: it is a new start, not a
    /// late report. It does not hold the checkpoint back (the log would grow without end),
    /// and the replica furthest ahead is asked for a snapshot of its state.
    #[test]
    fn a_restarted_replica_starts_over_and_does_not_hold_the_checkpoint_back() {
        let mut p = elected();
        for slot in 0..4u64 {
            p.handle(Event::Request(slot as u32));
            accepted_by_a_majority(&mut p, slot);
        }
        for (replica, next) in [(0, 4), (1, 5), (2, 4)] {
            p.handle(Event::Applied {
                replica,
                next,
                incarnation: 0,
            });
        }
        assert_eq!(p.checkpoint(), 4);
        let restarted = p.handle(Event::Applied {
            replica: 2,
            next: 0,
            incarnation: 1,
        });
        assert_eq!(
            restarted,
            vec![Output::Transfer {
                from: 1,
                to: 2,
                checkpoint: 4
            }]
        );
        // Still behind (the snapshot is on its way, or lost): asked again only after
        // `TRANSFER_RETRY_REPORTS` more reports.
        let mut report = || {
            p.handle(Event::Applied {
                replica: 2,
                next: 0,
                incarnation: 1,
            })
        };
        let quiet = (0..TRANSFER_RETRY_REPORTS).all(|_| report().is_empty());
        assert!(quiet, "asked again too soon");
        assert!(matches!(
            report().as_slice(),
            [Output::Transfer { to: 2, .. }]
        ));
        // The others go on; the checkpoint follows them, not the restarted replica.
        p.handle(Event::Request(9));
        accepted_by_a_majority(&mut p, 4);
        for replica in 0..2 {
            p.handle(Event::Applied {
                replica,
                next: 5,
                incarnation: 0,
            });
        }
        assert_eq!(p.checkpoint(), 5);
        // A late report of the replaced process changes nothing.
        assert!(
            p.handle(Event::Applied {
                replica: 2,
                next: 4,
                incarnation: 0,
            })
            .is_empty()
        );
    }
}
