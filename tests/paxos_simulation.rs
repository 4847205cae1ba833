//! The three roles together over a simulated network that reorders, loses and delays
//! messages, with proposers and a replica crashing, an acceptor restarted without its memory, elections driven by random
//! timeouts, and clients that retry: the protocol's safety and liveness checked over many
//! seeded runs, without Hydro (the dataflow that carries these messages is tested apart).
//!
//! (An integration test rather than a module of `src/paxos`: Hydro compiles a staged copy of
//! the library, test modules included, into every simulated and deployed process, and that
//! copy keeps no `impl` blocks of private types such as this file's `World`.)

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use kvs_zoo::consensus::paxos::acceptor::{Acceptor, AcceptorChange, AcceptorImage};
use kvs_zoo::consensus::paxos::log::{LogImage, ReplicaLog};
use kvs_zoo::consensus::paxos::proposer::{Event, Output, Proposer, Settings};
use kvs_zoo::consensus::paxos::{Entry, Ordered, Slot, ToAcceptor};
use kvs_zoo::protocol::{KVSOperation, KVSRequest};
use kvs_zoo::replication::gossip::rng::Rng;

type Command = Ordered<Bytes>;

/// A message in flight, by its destination.
enum Message {
    Proposer(u32, Event<Command>),
    Acceptor {
        to: u32,
        from: u32,
        message: ToAcceptor<Command>,
    },
    Replica(u32, Slot, Entry<Command>),
    /// The leader asks replica `from` to send its state to replica `to`.
    Ask {
        from: u32,
        to: u32,
    },
    /// A snapshot on its way to replica `to`: the sender's log, and what its store holds
    /// (here, the requests it applied).
    Snapshot {
        to: u32,
        log: LogImage<Command>,
        applied: Vec<(u64, u64)>,
    },
}

/// An acceptor's files: its last snapshot, and every change it logged after it.
#[derive(Default)]
struct Disk {
    snapshot: Option<AcceptorImage<Command>>,
    log: Vec<AcceptorChange<Command>>,
}

/// An acceptor that logs its changes.
fn logging_acceptor() -> Acceptor<Command> {
    let mut acceptor = Acceptor::new();
    acceptor.keep_changes();
    acceptor
}

/// A live replica: its log, and the requests it applied, in order.
type Replica = (ReplicaLog<Command>, Vec<(u64, u64)>);

struct World {
    settings: Settings,
    rng: Rng,
    proposers: Vec<Option<Proposer<Command>>>,
    acceptors: Vec<Option<Acceptor<Command>>>,
    /// What each acceptor logged, as its data directory would hold it: the last snapshot of
    /// its memory and the changes since.
    disks: Vec<Disk>,
    replicas: Vec<Option<Replica>>,
    /// Each replica's incarnation: grows when it is restarted.
    incarnations: Vec<u32>,
    network: Vec<Message>,
    /// The first value seen decided for each slot: every later one must equal it.
    decided: BTreeMap<Slot, Entry<Command>>,
    /// Requests sent and not yet applied by any live replica, by (client, request).
    unanswered: BTreeSet<(u64, u64)>,
    submitted: u64,
    retries: u64,
    /// Replicas that fell behind the checkpoint (taken for dead while only slow) and were
    /// sent a snapshot.
    behind: BTreeSet<usize>,
    /// Probability of losing a message, 1 in this many (0: none).
    loss: u32,
}

impl World {
    fn new(seed: u64) -> Self {
        let settings = Settings {
            window: 3,
            max_batch: 4,
            ..Settings::tolerating(1)
        };
        Self {
            settings,
            rng: Rng::new(seed),
            proposers: (0..3).map(|p| Some(Proposer::new(p, settings))).collect(),
            acceptors: (0..3).map(|_| Some(logging_acceptor())).collect(),
            disks: (0..3).map(|_| Disk::default()).collect(),
            replicas: (0..3).map(|_| Some((ReplicaLog::new(), vec![]))).collect(),
            incarnations: vec![0; 3],
            network: vec![],
            decided: BTreeMap::new(),
            unanswered: BTreeSet::new(),
            submitted: 0,
            retries: 0,
            behind: BTreeSet::new(),
            loss: 50,
        }
    }

    fn request(&self, client: u64, request: u64) -> Command {
        let open = || {
            self.unanswered
                .iter()
                .filter(move |(c, _)| *c == client)
                .map(|(_, r)| *r)
        };
        let answered_below = open().min().unwrap_or(request);
        // The client's previous request, if still unanswered: the proxy's rule.
        let after = open().filter(|r| *r < request).max();
        Ordered {
            request: KVSRequest {
                at: 0,
                client,
                request,
                op: KVSOperation::Put(Bytes::from_static(b"k"), Bytes::from(request.to_string())),
            },
            answered_below,
            after,
        }
    }

    /// A new request from one of three clients, to a random proposer.
    fn submit(&mut self) {
        let client = self.submitted % 3;
        let request = self.submitted / 3;
        self.submitted += 1;
        self.unanswered.insert((client, request));
        let to = self.rng.below(3) as u32;
        let command = self.request(client, request);
        self.network
            .push(Message::Proposer(to, Event::Request(command)));
    }

    /// Clients re-send what was not answered, each time to the next proposer in turn (the
    /// proxy's retry: some proposer it tries is alive).
    fn retry(&mut self) {
        self.retries += 1;
        let unanswered: Vec<_> = self.unanswered.iter().copied().collect();
        for (client, request) in unanswered {
            let to = ((client + self.retries) % 3) as u32;
            let command = self.request(client, request);
            self.network
                .push(Message::Proposer(to, Event::Request(command)));
        }
    }

    fn at_proposer(&mut self, p: u32, event: Event<Command>) {
        let Some(proposer) = self.proposers[p as usize].as_mut() else {
            return;
        };
        for output in proposer.handle(event) {
            match output {
                Output::ToAcceptors(message) => {
                    for to in 0..3 {
                        self.network.push(Message::Acceptor {
                            to,
                            from: p,
                            message: message.clone(),
                        });
                    }
                }
                Output::ToAcceptor(to, message) => self.network.push(Message::Acceptor {
                    to,
                    from: p,
                    message,
                }),
                Output::Heartbeat(ballot) => {
                    for to in (0..3).filter(|q| *q != p) {
                        self.network
                            .push(Message::Proposer(to, Event::Heartbeat(ballot)));
                    }
                }
                Output::Forward(to, command) => self
                    .network
                    .push(Message::Proposer(to, Event::Request(command))),
                Output::Decided(slot, entry) => {
                    self.check_agreement(slot, &entry);
                    for to in 0..3 {
                        self.network.push(Message::Replica(to, slot, entry.clone()));
                    }
                }
                Output::Resend(to, slot, entry) => {
                    self.check_agreement(slot, &entry);
                    self.network.push(Message::Replica(to, slot, entry));
                }
                Output::Transfer { from, to, .. } => {
                    self.behind.insert(to as usize);
                    self.network.push(Message::Ask { from, to });
                }
            }
        }
    }

    fn check_agreement(&mut self, slot: Slot, entry: &Entry<Command>) {
        let first = self.decided.entry(slot).or_insert_with(|| entry.clone());
        assert_eq!(first, entry, "two values decided for slot {slot}");
    }

    fn deliver(&mut self, message: Message) {
        match message {
            Message::Proposer(p, event) => self.at_proposer(p, event),
            Message::Acceptor { to, from, message } => {
                if let Some(acceptor) = self.acceptors[to as usize].as_mut() {
                    // A restarted acceptor answers nothing (it does not vote).
                    let replies = acceptor.handle(message);
                    // Its changes reach its disk before its answers leave; now and then the
                    // log is compacted into a snapshot.
                    let disk = &mut self.disks[to as usize];
                    disk.log.extend(acceptor.take_changes());
                    if disk.log.len() > 300 {
                        disk.snapshot = Some(acceptor.image());
                        disk.log.clear();
                    }
                    for reply in replies {
                        self.network
                            .push(Message::Proposer(from, Event::Acceptor(to, reply)));
                    }
                }
            }
            Message::Ask { from, to } => {
                if let Some((log, applied)) = &self.replicas[from as usize] {
                    let snapshot = Message::Snapshot {
                        to,
                        log: log.image(),
                        applied: applied.clone(),
                    };
                    self.network.push(snapshot);
                }
            }
            Message::Snapshot { to, log, applied } => {
                if let Some((own_log, own_applied)) = self.replicas[to as usize].as_mut()
                    && let Some(ready) = own_log.install(log)
                {
                    *own_applied = applied;
                    for command in ready {
                        let id = (command.request.client, command.request.request);
                        own_applied.push(id);
                        self.unanswered.remove(&id);
                    }
                }
            }
            Message::Replica(r, slot, entry) => {
                if let Some((log, applied)) = self.replicas[r as usize].as_mut() {
                    for command in log.decided(slot, entry) {
                        let id = (command.request.client, command.request.request);
                        applied.push(id);
                        self.unanswered.remove(&id);
                    }
                }
            }
        }
    }

    /// Delivers one message picked at random (messages overtake each other), or loses it.
    fn deliver_one(&mut self) {
        if self.network.is_empty() {
            return;
        }
        let i = self.rng.below(self.network.len());
        let message = self.network.swap_remove(i);
        if self.loss > 0 && self.rng.chance(self.loss) {
            return;
        }
        self.deliver(message);
    }

    fn report_progress(&mut self, r: usize) {
        let Some((log, _)) = &self.replicas[r] else {
            return;
        };
        let next = log.next();
        for p in 0..3 {
            self.network.push(Message::Proposer(
                p,
                Event::Applied {
                    replica: r as u32,
                    next,
                    incarnation: self.incarnations[r],
                },
            ));
        }
    }

    fn leader(&self) -> Option<usize> {
        self.proposers
            .iter()
            .position(|p| p.as_ref().is_some_and(|p| p.is_leader()))
    }

    /// One calm round: every timer fires at every live member and the network drains.
    fn calm_round(&mut self) {
        for p in 0..3 {
            self.at_proposer(p, Event::ElectionTimeout);
        }
        for _ in 0..2 {
            for p in 0..3 {
                self.at_proposer(p, Event::HeartbeatTimeout);
            }
            for r in 0..3 {
                self.report_progress(r);
            }
            while !self.network.is_empty() {
                self.deliver_one();
            }
        }
    }
}

/// One seeded run: chaos (losses, reordering, crashes of the leader and of another proposer,
/// a replica and an acceptor restarted without their memory, another acceptor restarted from
/// its disk — snapshot and log —, random timeouts, retries), then
/// calm until every request is answered. Checked throughout: one value per slot. Checked at
/// the end: every request applied, once, in the same order at every replica — those that
/// fell behind the log (the restarted one, slow ones taken for dead) caught up from another
/// replica's snapshot; the acceptors' memory bounded. Returns whether the restarted replica
/// caught up from a snapshot, and whether another replica fell behind.
fn run(seed: u64) -> (bool, bool) {
    let mut world = World::new(seed);
    let crash_at: BTreeSet<u32> = [1_500, 3_000, 3_800, 4_500, 5_200, 6_000]
        .into_iter()
        .collect();
    let mut crashed_replica = 0;
    let mut forgetful = 0;
    for step in 0..8_000u32 {
        if crash_at.contains(&step) {
            match step {
                // The leader proposer, if there is one, else proposer 0.
                1_500 => {
                    let leader = world.leader().unwrap_or(0);
                    world.proposers[leader] = None;
                }
                // An acceptor crashes and is restarted at once, without a disk: it has
                // forgotten its promises, so it must not vote.
                3_000 => {
                    forgetful = world.rng.below(3);
                    world.acceptors[forgetful] = Some(Acceptor::in_incarnation(1));
                }
                // Another acceptor crashes and restarts from its disk: it votes again, and it
                // must, since with the forgetful one silent every quorum needs it. Had it
                // forgotten a promise, two values could be decided for a slot.
                3_800 => {
                    let a = (forgetful + 1 + world.rng.below(2)) % 3;
                    let disk = &world.disks[a];
                    let mut restarted = logging_acceptor();
                    if let Some(image) = &disk.snapshot {
                        restarted.restore(image.clone());
                    }
                    for change in &disk.log {
                        restarted.replay(change.clone());
                    }
                    world.acceptors[a] = Some(restarted);
                }
                4_500 => {
                    crashed_replica = world.rng.below(3);
                    world.replicas[crashed_replica] = None;
                }
                // It restarts with nothing: only a snapshot can bring it up, since the log
                // went on without it and its start was forgotten.
                5_200 => {
                    world.replicas[crashed_replica] = Some((ReplicaLog::new(), vec![]));
                    world.incarnations[crashed_replica] += 1;
                }
                // A second proposer: one is left, and it must take over.
                _ => {
                    if let Some(leader) = world.leader() {
                        world.proposers[leader] = None;
                    } else if let Some(p) = world.proposers.iter().position(Option::is_some)
                        && world.proposers.iter().flatten().count() > 1
                    {
                        world.proposers[p] = None;
                    }
                }
            }
        }
        // Timers fire at random, at rates in the deployment's proportions: a replica reports
        // and a leader beats several times per election timeout.
        match world.rng.below(100) {
            0..60 => world.deliver_one(),
            60..62 => {
                let p = world.rng.below(3) as u32;
                world.at_proposer(p, Event::ElectionTimeout);
            }
            62..76 => {
                let p = world.rng.below(3) as u32;
                world.at_proposer(p, Event::HeartbeatTimeout);
            }
            76..85 => {
                let r = world.rng.below(3);
                world.report_progress(r);
            }
            85..97 => {
                if world.submitted < 300 {
                    world.submit();
                }
            }
            _ => {
                if world.rng.chance(10) {
                    world.retry();
                }
            }
        }
    }
    // Calm: no losses, and clients retry after each round until answered.
    world.loss = 0;
    for _ in 0..40 {
        if world.unanswered.is_empty() {
            break;
        }
        world.calm_round();
        world.retry();
    }
    world.calm_round();
    assert!(
        world.unanswered.is_empty(),
        "seed {seed}: {} requests never answered",
        world.unanswered.len()
    );
    let live: Vec<(usize, &Vec<(u64, u64)>)> = (0..3)
        .filter_map(|r| Some((r, &world.replicas[r].as_ref()?.1)))
        .collect();
    let (_, reference) = *live
        .iter()
        .max_by_key(|(_, applied)| applied.len())
        .expect("a live replica");
    assert_eq!(
        reference.len() as u64,
        world.submitted,
        "seed {seed}: no live replica applied everything"
    );
    for (r, applied) in &live {
        let distinct: BTreeSet<_> = applied.iter().collect();
        assert_eq!(
            distinct.len(),
            applied.len(),
            "seed {seed}: a request applied twice"
        );
        // Every replica applied the same order, all of it.
        assert_eq!(*applied, reference, "seed {seed}: replica {r}");
        // Each client's requests in the order it sent them, whatever order leader changes
        // decided them in (clients here never give a request up).
        for client in 0..3 {
            let sent: Vec<u64> = applied
                .iter()
                .filter(|(c, _)| *c == client)
                .map(|(_, r)| *r)
                .collect();
            assert!(
                sent.windows(2).all(|w| w[0] < w[1]),
                "seed {seed}: client {client}'s requests out of order at replica {r}"
            );
        }
    }
    // A few calm rounds later, one more request carries the final checkpoint to the
    // acceptors: they keep only the slots some replica may still need.
    for _ in 0..world.settings.replica_silence {
        world.calm_round();
    }
    world.submit();
    for _ in 0..5 {
        world.calm_round();
        world.retry();
    }
    assert!(world.unanswered.is_empty(), "seed {seed}: the last request");
    for acceptor in world.acceptors.iter().flatten() {
        assert!(
            acceptor.kept() <= 2 * world.settings.window,
            "seed {seed}: an acceptor keeps {} slots",
            acceptor.kept()
        );
    }
    let restarted_from_snapshot = world.behind.remove(&crashed_replica);
    (restarted_from_snapshot, !world.behind.is_empty())
}

#[test]
fn one_value_per_slot_and_every_request_applied_once_despite_crashes_and_losses() {
    let runs = 40;
    let outcomes: Vec<(bool, bool)> = (0..runs).map(run).collect();
    let from_snapshot = outcomes.iter().filter(|(restarted, _)| *restarted).count();
    let fell_behind = outcomes.iter().filter(|(_, slow)| *slow).count();
    println!(
        "{runs} runs; in {from_snapshot} the restarted replica caught up from a snapshot; in \
         {fell_behind} a slow replica was taken for dead, fell behind and caught up too"
    );
    // A replica restarted 700 steps after its crash finds the start of the log forgotten in
    // most runs: the transfer must have been exercised, not only allowed.
    assert!(
        from_snapshot * 2 > runs as usize,
        "too few snapshots to check anything"
    );
}

/// A long run without faults — 30,000 requests from three clients, 300 at a time, the timers
/// firing between batches — printing how much of the log each role keeps as it grows: the
/// acceptors and the leader forget the slots every replica has applied, and replicas forget
/// the requests their clients have been answered for, so what they keep stays bounded by a
/// batch's worth however long the log gets.
#[test]
fn memory_stays_bounded_over_a_long_run() {
    let mut world = World::new(99);
    world.loss = 0;
    let (mut acceptors_peak, mut proposers_peak, mut replicas_peak) = (0, 0, 0);
    for batch in 1..=100 {
        for _ in 0..300 {
            world.submit();
        }
        while !world.unanswered.is_empty() {
            world.calm_round();
            world.retry();
        }
        world.calm_round();
        let acceptors = world.acceptors.iter().flatten().map(|a| a.kept()).max();
        let proposers = world.proposers.iter().flatten().map(|p| p.kept()).max();
        let replicas = world
            .replicas
            .iter()
            .flatten()
            .map(|(log, _)| log.remembered())
            .max();
        let (acceptors, proposers, replicas) = (
            acceptors.unwrap_or(0),
            proposers.unwrap_or(0),
            replicas.unwrap_or(0),
        );
        acceptors_peak = acceptors_peak.max(acceptors);
        proposers_peak = proposers_peak.max(proposers);
        replicas_peak = replicas_peak.max(replicas);
        if batch % 10 == 0 {
            println!(
                "{:>6} requests, log {:>5} slots: acceptors keep {acceptors:>3} slots, the \
                 leader {proposers:>3}, replicas remember {replicas:>3} requests",
                world.submitted,
                world.decided.len()
            );
        }
    }
    assert_eq!(world.submitted, 30_000);
    // A batch of 300 requests fills at most 300 slots; nothing keeps more than two batches.
    assert!(
        acceptors_peak <= 600,
        "acceptors kept {acceptors_peak} slots"
    );
    assert!(
        proposers_peak <= 600,
        "the leader kept {proposers_peak} slots"
    );
    assert!(
        replicas_peak <= 600,
        "replicas remembered {replicas_peak} requests"
    );
    assert!(world.decided.len() > 5 * 600, "the log outgrew every bound");
}
