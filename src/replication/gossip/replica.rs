//! One replica's gossip, as a state machine: rumor mongering with feedback, and anti-entropy
//! as the backstop. No values live here — only keys and fingerprints. Values are read from
//! the storage core when a message is sent and merged into it when one arrives, so the lattice
//! store stays the one place that holds them.
//!
//! ```text
//!   storage core ──Changed / Heard / Read──▶ Gossip::step ──Send(peer, message)──▶ peers
//!        ▲                                     │   ▲
//!        └────── Merge / Rumor / Read ◀────────┘   └── messages from peers, ticks, joins
//! ```
//!
//! Every gossip tick a replica pushes its hot keys ([`RumorStore`]) to `fanout` random peers;
//! each peer merges what it got and answers, key by key, whether it already had it — Demers'
//! feedback — and the sender loses interest as its [`RumorConfig`] says. Every anti-entropy
//! tick a replica sends one random peer its digest ([`DigestIndex`]); the two then swap
//! `(key, fingerprint)` lists for the buckets that differ and repair exactly the keys that
//! differ (see [`crate::replication::gossip::anti_entropy`] for the exchange).
//!
//! **Deletes** are tombstones that win over the versions they saw. Every anti-entropy tick a
//! replica also tells each peer which tombstones it holds ([`GossipMessage::Holding`]); once
//! every peer has said so, the tombstone is collected (see `Gossip::collect` for why no older
//! value can then come back).
//!
//! **Rejoining.** A replica restarted with an empty store ([`Gossip::new`] with an
//! incarnation above 0) asks each peer for everything it holds ([`GossipMessage::SyncRequest`]);
//! the peer reads every key it has, sends the values in runs of at most [`MAX_VALUES_BYTES`]
//! and then says how many runs it sent ([`GossipMessage::SyncDone`]). Messages between two
//! replicas arrive in order or not at all, so when the replica has merged that many runs of
//! that request, it holds everything the peer held when it answered. Once it has done so with
//! every peer that answers (a peer silent for [`SYNC_GIVE_UP_ROUNDS`] anti-entropy rounds is
//! taken for dead and skipped; its writes come later, by gossip), it stops rejoining: its
//! heartbeats say so ([`crate::membership::Standing`]), and only then does the router send it
//! clients again. That is how it knows it has caught up.
//!
//! [`Gossip::step`] is driven by the replica's dataflow (see [`crate::replication::gossip::flow`]) and by
//! the unit tests below alike.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::protocol::Key;
use crate::replication::gossip::anti_entropy::{
    BUCKETS, Digest, DigestIndex, differing_buckets, keys_to_send,
};
use crate::replication::gossip::rng::Rng;
use crate::replication::gossip::rumor::{RumorConfig, RumorStore};
pub use crate::store::seam::ReadFor;

/// What a replica's gossip sends: values, which go straight into the receiving replica's
/// storage core; requests to read values for sending, which a replica sends *itself* (its
/// gossip holds no values, its core does); and bookkeeping for the receiver's [`Gossip`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMessage<S> {
    /// Keys and their current values: rumors (answered with feedback) or anti-entropy
    /// repairs (merged, no feedback).
    Values(ReadFor, Vec<(Key, S)>),
    /// Read these keys from the core and send their values to replica `to`.
    Read(u32, ReadFor, Vec<Key>),
    /// Drop this key from the core if it still holds exactly this tombstone (fingerprint).
    Collect(Key, u64),
    /// Feedback and anti-entropy bookkeeping.
    Gossip(GossipMessage),
}

/// Gossip bookkeeping between replicas: keys and fingerprints, never values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMessage {
    /// For each key of a rumor push: whether the receiver already had it, and the
    /// fingerprint of the version it now holds. The fingerprint ties the answer to one
    /// version: feedback about a version the sender has since replaced (it arrives late, after
    /// a new write) must not retire the new version's rumor.
    Feedback(Vec<(Key, bool, u64)>),
    /// Anti-entropy, first step: the sender's digest.
    Digest(Digest),
    /// Anti-entropy, second step: the buckets that differ, and the answerer's `(key,
    /// fingerprint)` pairs in them.
    Buckets(Vec<usize>, Vec<(Key, u64)>),
    /// Anti-entropy, third step: the initiator's pairs in those buckets, so the answerer can
    /// send what the initiator lacks.
    Keys(Vec<usize>, Vec<(Key, u64)>),
    /// The tombstones the sender holds, by fingerprint: its acknowledgement, sent after it
    /// got them, that it holds them.
    Holding(Vec<(Key, u64)>),
    /// From a rejoining replica: send me everything you hold (request `id`).
    SyncRequest(u64),
    /// Answer to [`GossipMessage::SyncRequest`] `.0`: all of it went, in `.1` runs of values.
    SyncDone(u64, u64),
}

/// A key's new version, as the gossip sees it: a fingerprint, and whether it is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The fingerprint of the key's new value.
    pub print: u64,
    /// The value only says the key was deleted.
    pub tombstone: bool,
}

/// What the storage core tells the gossip (its replication effects), and what else drives it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GossipEvent<S> {
    /// This replica joined, or learned of a peer (cluster membership).
    Joined(u32),
    /// A key's value changed here.
    Changed(Key, Version),
    /// A rumor from peer `from` was merged: whether this replica already had it, and the
    /// fingerprint of the key's new value if the merge changed it.
    Heard {
        /// The peer that pushed the rumor.
        from: u32,
        /// The key.
        key: Key,
        /// The merge changed nothing: the peer's feedback is "I had it".
        had_it: bool,
        /// The key's new version, when the merge changed it.
        changed: Option<Version>,
    },
    /// Values the core read, to be sent to `to`.
    Read {
        /// The peer the values go to.
        to: u32,
        /// What they are for.
        why: ReadFor,
        /// The keys and their current values.
        values: Vec<(Key, S)>,
    },
    /// Bookkeeping from peer `from`.
    Message(u32, GossipMessage),
    /// A run of values for sync request `.1` arrived from peer `.0` (the values went to the
    /// core).
    SyncRun(u32, u64),
    /// Time to push rumors (and to send pending feedback).
    GossipTick,
    /// Time to start an anti-entropy exchange.
    AntiEntropyTick,
}

/// A message for replica `.0` (this replica itself for [`PeerMessage::Read`]).
pub type Outgoing<S> = (u32, PeerMessage<S>);

/// Most bytes of keys and values one [`PeerMessage::Values`] carries: values read for one peer
/// (an anti-entropy repair of many large keys, a round of hot rumors) go as several messages,
/// each well under the transport's frame limit ([`crate::net::transport::MAX_FRAME`]), so
/// none is ever too big to arrive. A single value larger than this goes alone.
pub const MAX_VALUES_BYTES: u64 = 16 * 1024 * 1024;

/// `values` cut into runs of at most [`MAX_VALUES_BYTES`] (encoded), in their order.
pub fn split_values<S: Serialize>(values: Vec<(Key, S)>) -> Vec<Vec<(Key, S)>> {
    runs_within(values, |pair| {
        bincode::serialized_size(pair).unwrap_or(MAX_VALUES_BYTES)
    })
}

/// `items` cut into runs whose `size`s add up to at most [`MAX_VALUES_BYTES`], in their
/// order (an item larger than that goes alone); no run is empty.
pub fn runs_within<T>(items: Vec<T>, size: impl Fn(&T) -> u64) -> Vec<Vec<T>> {
    let mut runs = vec![];
    let mut run = vec![];
    let mut bytes = 0u64;
    for item in items {
        let item_bytes = size(&item);
        if !run.is_empty() && bytes.saturating_add(item_bytes) > MAX_VALUES_BYTES {
            runs.push(std::mem::take(&mut run));
            bytes = 0;
        }
        bytes = bytes.saturating_add(item_bytes);
        run.push(item);
    }
    if !run.is_empty() {
        runs.push(run);
    }
    runs
}

/// Some anti-entropy buckets, with the `(key, fingerprint)` pairs a replica holds in them.
pub type BucketGroup = (Vec<usize>, Vec<(Key, u64)>);

/// The encoded size of a `(key, fingerprint)` pair, as the gossip's key lists carry them.
fn pair_bytes(key: &Key) -> u64 {
    key.len() as u64 + 16
}

/// Buckets with their `(key, fingerprint)` pairs, grouped so that each group's pairs stay
/// within [`MAX_VALUES_BYTES`]: one anti-entropy message per group ([`GossipMessage::Buckets`],
/// [`GossipMessage::Keys`]). Each group is whole buckets, so each message is complete for the
/// buckets it names — a receiver compares them without waiting for the others. (A single
/// bucket over the bound goes alone: 64 buckets, so that takes tens of millions of keys.)
pub fn group_buckets(per_bucket: Vec<(usize, Vec<(Key, u64)>)>) -> Vec<BucketGroup> {
    let mut groups: Vec<BucketGroup> = vec![];
    let mut bytes = 0;
    for (bucket, pairs) in per_bucket {
        let size: u64 = pairs.iter().map(|(key, _)| pair_bytes(key)).sum();
        match groups.last_mut() {
            Some((buckets, group)) if bytes + size <= MAX_VALUES_BYTES => {
                buckets.push(bucket);
                group.extend(pairs);
                bytes += size;
            }
            _ => {
                groups.push((vec![bucket], pairs));
                bytes = size;
            }
        }
    }
    groups
}

/// `pairs` cut into lists of at most [`MAX_VALUES_BYTES`], in their order (a list of
/// tombstones held: each pair stands alone).
pub fn split_pairs(pairs: Vec<(Key, u64)>) -> Vec<Vec<(Key, u64)>> {
    runs_within(pairs, |(key, _)| pair_bytes(key))
}

/// Anti-entropy rounds without a word from a peer after which a replica takes it for away
/// (dead, paused, cut off) and stops pushing rumors, digests and tombstone lists to it; every
/// this many rounds it still sends each such peer its digest, so one that comes back — or
/// sits across a partition that healed — is heard from again. A live peer is heard from
/// often (its own digests, rumors, feedback, answers); one taken for away by mistake loses
/// nothing, since its own exchanges with this replica go both ways.
pub const QUIET_ROUNDS: u32 = 10;

/// Anti-entropy rounds a replica keeps acknowledging a tombstone it collected, for peers that
/// have not collected it yet (about ten seconds with the default one-second interval).
pub const REMEMBER_COLLECTED_ROUNDS: u32 = 10;

/// Anti-entropy rounds a rejoining replica waits for a peer's answer to its sync request
/// before it asks again; after this many unanswered requests in a row the peer is taken for
/// dead and no longer waited for.
pub const SYNC_RETRY_ROUNDS: u32 = 3;
/// Anti-entropy rounds without an answer after which a rejoining replica stops waiting for a
/// peer (see the module docs).
pub const SYNC_GIVE_UP_ROUNDS: u32 = 3 * SYNC_RETRY_ROUNDS;

/// A rejoining replica's progress with one peer.
#[derive(Clone, Copy, Debug, Default)]
struct PeerSync {
    /// The request asked of it last.
    id: u64,
    /// Runs of values of that request merged so far.
    runs: u64,
    /// How many runs it said it sent (once its `SyncDone` came).
    expected: Option<u64>,
    /// Anti-entropy rounds since the request was sent.
    waited: u32,
    /// Anti-entropy rounds since the peer last answered anything of ours.
    silent: u32,
}

/// One replica's gossip state (see the module docs).
#[derive(Debug)]
pub struct Gossip {
    me: u32,
    peers: BTreeSet<u32>,
    rumors: RumorStore<Key>,
    digest: DigestIndex<Key>,
    /// Feedback owed to each peer, sent with the next gossip tick.
    feedback: BTreeMap<u32, Vec<(Key, bool, u64)>>,
    /// Tombstones held here, by fingerprint, with the peers known to hold them too.
    tombstones: HashMap<Key, (u64, BTreeSet<u32>)>,
    /// Tombstones collected here, with the anti-entropy rounds left to remember them. While
    /// remembered, a collected tombstone is still acknowledged to peers (they may not have
    /// collected it yet, and wait for every replica's word), and one that comes back from a
    /// peer is collected again at once.
    collected: HashMap<Key, (u64, u32)>,
    /// While rejoining after a restart: the peers not yet caught up with (see the module
    /// docs); `None` once caught up, or for a replica that was never restarted.
    rejoining: Option<BTreeMap<u32, PeerSync>>,
    /// The id of the last sync request sent.
    sync_ids: u64,
    /// Anti-entropy rounds since the rejoin began.
    rejoin_rounds: u32,
    /// Per peer, anti-entropy rounds since it was last heard from (see [`QUIET_ROUNDS`]).
    heard: BTreeMap<u32, u32>,
    /// Anti-entropy rounds so far.
    rounds: u64,
    rng: Rng,
}

impl Gossip {
    /// The gossip of replica `me`, with rumor mongering set by `config`.
    pub fn new(me: u32, config: RumorConfig) -> Self {
        Self {
            me,
            peers: BTreeSet::new(),
            rumors: RumorStore::new(config),
            digest: DigestIndex::new(),
            feedback: BTreeMap::new(),
            tombstones: HashMap::new(),
            collected: HashMap::new(),
            rejoining: None,
            sync_ids: 0,
            rejoin_rounds: 0,
            heard: BTreeMap::new(),
            rounds: 0,
            // Seeded by the member id: each replica picks different peers, and a run is
            // reproducible (which Hydro's simulator needs).
            rng: Rng::new(0x676f_7373_6970 ^ u64::from(me)),
        }
    }

    /// The gossip of replica `me` in its `incarnation`: a restarted one (above 0) starts
    /// empty, and rejoins (see the module docs) before it takes clients.
    pub fn in_incarnation(me: u32, config: RumorConfig, incarnation: u32) -> Self {
        let mut gossip = Self::new(me, config);
        if incarnation > 0 {
            gossip.rejoining = Some(BTreeMap::new());
            crate::membership::set_standing(crate::membership::Standing::Rejoining);
        }
        gossip
    }

    /// Whether this replica is still catching up after a restart.
    pub fn is_rejoining(&self) -> bool {
        self.rejoining.is_some()
    }

    /// Reacts to one event.
    pub fn step<S: Serialize>(&mut self, event: GossipEvent<S>) -> Vec<Outgoing<S>> {
        match event {
            GossipEvent::Joined(member) => {
                if member != self.me {
                    self.peers.insert(member);
                    self.heard.insert(member, 0);
                    if let Some(waiting) = &mut self.rejoining {
                        waiting.entry(member).or_default();
                    }
                }
                vec![]
            }
            GossipEvent::SyncRun(from, id) => {
                self.heard_from(from);
                if let Some(peer) = self.syncing_with(from, id) {
                    peer.runs += 1;
                }
                self.check_caught_up();
                vec![]
            }
            GossipEvent::Changed(key, version) => self.changed(key, version),
            GossipEvent::Heard {
                from,
                key,
                had_it,
                changed,
            } => {
                self.heard_from(from);
                let print = changed
                    .map(|v| v.print)
                    .or_else(|| self.digest.fingerprint(&key));
                if let Some(print) = print {
                    self.feedback
                        .entry(from)
                        .or_default()
                        .push((key.clone(), had_it, print));
                }
                match changed {
                    Some(version) => self.changed(key, version),
                    None => vec![],
                }
            }
            GossipEvent::Read { to, why, values } => {
                let runs = split_values(values);
                let count = runs.len() as u64;
                let mut out: Vec<Outgoing<S>> = runs
                    .into_iter()
                    .map(|run| (to, PeerMessage::Values(why, run)))
                    .collect();
                // A sync's values are followed by how many runs they were: the rejoining
                // peer then knows when it has all of them.
                if let ReadFor::Sync(id) = why {
                    out.push((to, PeerMessage::Gossip(GossipMessage::SyncDone(id, count))));
                }
                out
            }
            GossipEvent::Message(from, message) => {
                self.heard_from(from);
                self.received(from, message)
            }
            GossipEvent::GossipTick => self.push_rumors(),
            GossipEvent::AntiEntropyTick => self.start_anti_entropy(),
        }
    }

    /// A key changed here: it is news (a hot rumor), and the digest must say so. A tombstone
    /// this replica already collected is collected again instead.
    fn changed<S>(&mut self, key: Key, version: Version) -> Vec<Outgoing<S>> {
        if version.tombstone && self.collected.get(&key).map(|c| c.0) == Some(version.print) {
            return vec![(self.me, PeerMessage::Collect(key, version.print))];
        }
        self.collected.remove(&key);
        if version.tombstone {
            self.tombstones
                .insert(key.clone(), (version.print, BTreeSet::new()));
        } else {
            self.tombstones.remove(&key);
        }
        self.digest.set(&key, version.print);
        self.rumors.heard(key);
        vec![]
    }

    /// Collects every tombstone that every peer is known to hold: out of the digest and the
    /// rumors here, and out of the core (a message to itself).
    ///
    /// Why this is safe: a peer's [`GossipMessage::Holding`] is sent after it got the
    /// tombstone, and each peer's messages to this replica arrive in the order it sent them,
    /// or not at all (the transport drops, never reorders, also across a re-dial: see
    /// [`crate::net::transport`]). So every message a peer sent *before* it held the
    /// tombstone — any that could carry the older value — has already arrived here or never
    /// will, and a peer that holds the tombstone can never send the older value again.
    /// Nothing can bring the key back but a new write. (A replica that is down acknowledges
    /// nothing, so its peers keep their tombstones until it is back or removed. One that is
    /// restarted comes back empty — no disk yet — so it holds no older value to bring back,
    /// however long it was away: the rule Cassandra needs `gc_grace_seconds` for is moot
    /// until replicas keep data across a restart.)
    fn collect<S>(&mut self) -> Vec<Outgoing<S>> {
        let peers = &self.peers;
        let stable: Vec<(Key, u64)> = self
            .tombstones
            .iter()
            .filter(|(_, (_, acked))| !peers.is_empty() && peers.is_subset(acked))
            .map(|(key, (print, _))| (key.clone(), *print))
            .collect();
        stable
            .into_iter()
            .map(|(key, print)| {
                self.tombstones.remove(&key);
                self.digest.remove(&key);
                self.rumors.forget(&key);
                self.collected
                    .insert(key.clone(), (print, REMEMBER_COLLECTED_ROUNDS));
                (self.me, PeerMessage::Collect(key, print))
            })
            .collect()
    }

    /// This replica's `(key, fingerprint)` pairs in `buckets`, grouped by
    /// [`group_buckets`].
    fn pairs_grouped(&self, buckets: &[usize]) -> Vec<BucketGroup> {
        group_buckets(
            buckets
                .iter()
                .map(|&bucket| (bucket, self.digest.keys_in(&[bucket])))
                .collect(),
        )
    }

    fn received<S>(&mut self, from: u32, message: GossipMessage) -> Vec<Outgoing<S>> {
        let send = |message| (from, PeerMessage::Gossip(message));
        match message {
            GossipMessage::Feedback(answers) => {
                for (key, had_it, print) in answers {
                    // Only feedback about the version this replica holds now counts.
                    if self.digest.fingerprint(&key) == Some(print) {
                        self.rumors.contacted(&key, had_it, &mut self.rng);
                    }
                }
                vec![]
            }
            GossipMessage::Digest(theirs) => {
                let differ = differing_buckets(&self.digest.digest(), &theirs);
                if differ.is_empty() {
                    return vec![];
                }
                self.pairs_grouped(&differ)
                    .into_iter()
                    .map(|(buckets, mine)| send(GossipMessage::Buckets(buckets, mine)))
                    .collect()
            }
            GossipMessage::Buckets(differ, theirs) => {
                let mine = self.digest.keys_in(&differ);
                let keys = keys_to_send(&mine, &theirs);
                // Ours in those buckets, as theirs came: grouped, since this replica may hold
                // far more of them than the peer (which may have just restarted, empty).
                let mut actions: Vec<Outgoing<S>> = self
                    .pairs_grouped(&differ)
                    .into_iter()
                    .map(|(buckets, mine)| send(GossipMessage::Keys(buckets, mine)))
                    .collect();
                if !keys.is_empty() {
                    actions.push(self.read(from, ReadFor::Repair, keys));
                }
                actions
            }
            GossipMessage::Holding(held) => {
                for (key, print) in held {
                    if let Some((mine, acked)) = self.tombstones.get_mut(&key)
                        && *mine == print
                    {
                        acked.insert(from);
                    }
                }
                self.collect()
            }
            GossipMessage::SyncRequest(id) => {
                let everything: Vec<Key> = self
                    .digest
                    .keys_in(&(0..BUCKETS).collect::<Vec<_>>())
                    .into_iter()
                    .map(|(key, _)| key)
                    .collect();
                vec![self.read(from, ReadFor::Sync(id), everything)]
            }
            GossipMessage::SyncDone(id, runs) => {
                if let Some(peer) = self.syncing_with(from, id) {
                    peer.expected = Some(runs);
                }
                self.check_caught_up();
                vec![]
            }
            GossipMessage::Keys(differ, theirs) => {
                let mine = self.digest.keys_in(&differ);
                let keys = keys_to_send(&mine, &theirs);
                if keys.is_empty() {
                    return vec![];
                }
                vec![self.read(from, ReadFor::Repair, keys)]
            }
        }
    }

    /// A gossip tick: owed feedback goes out, and every hot key goes to `fanout` random
    /// peers (one read per peer, for all the keys it gets).
    fn push_rumors<S>(&mut self) -> Vec<Outgoing<S>> {
        let mut actions: Vec<Outgoing<S>> = std::mem::take(&mut self.feedback)
            .into_iter()
            .map(|(peer, answers)| (peer, PeerMessage::Gossip(GossipMessage::Feedback(answers))))
            .collect();
        let peers = self.active_peers();
        if peers.is_empty() {
            return actions;
        }
        let fanout = self.rumors.config().fanout;
        let mut per_peer: BTreeMap<u32, Vec<Key>> = BTreeMap::new();
        let hot: Vec<Key> = self.rumors.hot_keys().cloned().collect();
        for key in hot {
            // `peers.len()` as "me": every listed peer is a candidate (self is not listed).
            for i in self.rng.pick_peers(peers.len(), peers.len(), fanout) {
                if let Some(&peer) = peers.get(i) {
                    per_peer.entry(peer).or_default().push(key.clone());
                }
            }
        }
        for (to, keys) in per_peer {
            actions.push(self.read(to, ReadFor::Rumor, keys));
        }
        actions
    }

    /// An anti-entropy tick: send one random peer this replica's digest, and every peer the
    /// tombstones held here (so each can tell when every replica holds one).
    fn start_anti_entropy<S>(&mut self) -> Vec<Outgoing<S>> {
        self.rounds += 1;
        for rounds in self.heard.values_mut() {
            *rounds = rounds.saturating_add(1);
        }
        let mut syncs = self.ask_to_sync();
        let mut out = self.exchange_digests();
        out.append(&mut syncs);
        out
    }

    /// While rejoining: asks each peer not yet caught up with for everything it holds (again,
    /// if its last request went unanswered for [`SYNC_RETRY_ROUNDS`]); stops waiting for a
    /// peer silent for [`SYNC_GIVE_UP_ROUNDS`].
    fn ask_to_sync<S>(&mut self) -> Vec<Outgoing<S>> {
        let Some(waiting) = &mut self.rejoining else {
            return vec![];
        };
        self.rejoin_rounds += 1;
        let mut out = vec![];
        for (&peer, sync) in waiting.iter_mut() {
            sync.waited += 1;
            sync.silent += 1;
            if sync.id == 0 || sync.waited > SYNC_RETRY_ROUNDS {
                self.sync_ids += 1;
                *sync = PeerSync {
                    id: self.sync_ids,
                    silent: sync.silent,
                    ..PeerSync::default()
                };
                out.push((
                    peer,
                    PeerMessage::Gossip(GossipMessage::SyncRequest(self.sync_ids)),
                ));
            }
        }
        waiting.retain(|_, sync| sync.silent <= SYNC_GIVE_UP_ROUNDS);
        self.check_caught_up();
        out
    }

    /// The sync with `from`, if `id` is the request this replica is waiting on from it.
    fn syncing_with(&mut self, from: u32, id: u64) -> Option<&mut PeerSync> {
        let peer = self.rejoining.as_mut()?.get_mut(&from)?;
        peer.silent = 0;
        (peer.id == id).then_some(peer)
    }

    /// Ends the rejoin once no peer is left to catch up with. A replica that has heard of no
    /// peer yet waits [`SYNC_RETRY_ROUNDS`] rounds for them to be announced before it takes
    /// itself for the only one.
    fn check_caught_up(&mut self) {
        let Some(waiting) = &mut self.rejoining else {
            return;
        };
        waiting.retain(|_, sync| sync.expected != Some(sync.runs));
        let alone_so_far = self.peers.is_empty() && self.rejoin_rounds <= SYNC_RETRY_ROUNDS;
        if waiting.is_empty() && !alone_so_far {
            self.rejoining = None;
            crate::membership::set_standing(crate::membership::Standing::Full);
            eprintln!(
                "kvs-zoo: replica {} caught up with its peers; it takes clients again",
                self.me
            );
        }
    }

    /// An anti-entropy round's own messages (see [`Self::start_anti_entropy`]).
    fn exchange_digests<S>(&mut self) -> Vec<Outgoing<S>> {
        // Peers heard from lately; if none is, every peer (this replica may be the one that
        // was away).
        let mut peers = self.active_peers();
        if peers.is_empty() {
            peers = self.peers.iter().copied().collect();
        }
        let Some(&peer) = peers.get(self.rng.below(peers.len().max(1))) else {
            return vec![];
        };
        let digest = self.digest.digest();
        let mut out = vec![(
            peer,
            PeerMessage::Gossip(GossipMessage::Digest(digest.clone())),
        )];
        // Now and then, a digest to each peer taken for away: one that is back answers.
        if self.rounds.is_multiple_of(u64::from(QUIET_ROUNDS)) {
            for quiet in self.peers.iter().filter(|p| !peers.contains(p)) {
                out.push((
                    *quiet,
                    PeerMessage::Gossip(GossipMessage::Digest(digest.clone())),
                ));
            }
        }
        let held: Vec<(Key, u64)> = self
            .tombstones
            .iter()
            .map(|(key, (print, _))| (key.clone(), *print))
            .chain(
                self.collected
                    .iter()
                    .map(|(key, (print, _))| (key.clone(), *print)),
            )
            .collect();
        for held in split_pairs(held) {
            for &to in &peers {
                out.push((
                    to,
                    PeerMessage::Gossip(GossipMessage::Holding(held.clone())),
                ));
            }
        }
        // Forget collected tombstones after a while: by then every live peer has collected
        // them too.
        self.collected.retain(|_, (_, rounds)| {
            *rounds = rounds.saturating_sub(1);
            *rounds > 0
        });
        out
    }

    /// Peer `from` said something: it is not away.
    fn heard_from(&mut self, from: u32) {
        if let Some(rounds) = self.heard.get_mut(&from) {
            *rounds = 0;
        }
    }

    /// The peers heard from in the last [`QUIET_ROUNDS`] anti-entropy rounds.
    fn active_peers(&self) -> Vec<u32> {
        self.peers
            .iter()
            .copied()
            .filter(|p| self.heard.get(p).is_some_and(|r| *r < QUIET_ROUNDS))
            .collect()
    }

    /// A request to this replica's own core: read `keys`, and send their values to `to`.
    fn read<S>(&self, to: u32, why: ReadFor, keys: Vec<Key>) -> Outgoing<S> {
        (self.me, PeerMessage::Read(to, why, keys))
    }

    /// How many keys are hot rumors here.
    pub fn hot_rumors(&self) -> usize {
        self.rumors.len()
    }
}

#[cfg(test)]
mod split_tests {
    use super::*;

    fn pairs(n: usize, key_bytes: usize, tag: u8) -> Vec<(Key, u64)> {
        (0..n)
            .map(|i| {
                let mut key = vec![tag; key_bytes];
                key[..8].copy_from_slice(&(i as u64).to_be_bytes());
                (Key::from(key), i as u64)
            })
            .collect()
    }

    /// Buckets of keys go in groups of whole buckets within the bound; together the groups
    /// hold every bucket and every pair, once, in order.
    #[test]
    fn anti_entropy_key_lists_are_grouped_by_whole_buckets_within_the_bound() {
        // 6 buckets of 3 MiB of keys each (1,024 keys of 3 KiB): 5 fit in 16 MiB.
        let per_bucket: Vec<(usize, Vec<(Key, u64)>)> = (0..6)
            .map(|b| (b, pairs(1_024, 3 * 1_024 - 16, b as u8)))
            .collect();
        let all: Vec<(Key, u64)> = per_bucket.iter().flat_map(|(_, p)| p.clone()).collect();
        let groups = group_buckets(per_bucket);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].0, vec![0, 1, 2, 3, 4]);
        assert_eq!(groups[1].0, vec![5]);
        for (_, group) in &groups {
            let bytes: u64 = group.iter().map(|(k, _)| pair_bytes(k)).sum();
            assert!(bytes <= MAX_VALUES_BYTES, "{bytes}");
        }
        let joined: Vec<(Key, u64)> = groups.into_iter().flat_map(|(_, p)| p).collect();
        assert_eq!(joined, all);
        // Buckets where this replica holds nothing still go, in one message.
        let empty = group_buckets(vec![(3, vec![]), (9, vec![])]);
        assert_eq!(empty, vec![(vec![3, 9], vec![])]);
    }

    #[test]
    fn a_long_list_of_tombstones_held_goes_in_parts_within_the_bound() {
        let held = pairs(12_000, 2_048, 1);
        let lists = split_pairs(held.clone());
        assert_eq!(lists.len(), 2);
        assert!(
            lists
                .iter()
                .all(|l| { l.iter().map(|(k, _)| pair_bytes(k)).sum::<u64>() <= MAX_VALUES_BYTES })
        );
        assert_eq!(lists.concat(), held);
        assert!(split_pairs(vec![]).is_empty());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::replication::gossip::rumor::{Feedback, LossOfInterest};
    use bytes::Bytes;

    /// Three replicas wired by hand: a map per replica stands in for its storage core (a
    /// `u64` value per key, merged by max, fingerprinted by itself), and messages are
    /// delivered at once. Tests drive ticks and inspect the maps.
    struct Cluster {
        gossip: Vec<Gossip>,
        stores: Vec<HashMap<Key, u64>>,
        sent: usize,
        /// Of those, messages carrying values.
        values_sent: usize,
        /// Replicas that are down: messages to them are lost.
        down: BTreeSet<usize>,
        /// Messages sent to replicas that were down (and lost).
        to_down: usize,
    }

    fn config(k: u32) -> RumorConfig {
        RumorConfig {
            feedback: Feedback::Feedback,
            loss: LossOfInterest::Counter,
            k,
            fanout: 1,
        }
    }

    fn cluster(n: u32, config: RumorConfig) -> Cluster {
        let mut c = Cluster {
            gossip: (0..n).map(|me| Gossip::new(me, config)).collect(),
            stores: (0..n).map(|_| HashMap::new()).collect(),
            sent: 0,
            values_sent: 0,
            down: BTreeSet::new(),
            to_down: 0,
        };
        for me in 0..n as usize {
            for member in 0..n {
                let out = c.gossip[me].step::<u64>(GossipEvent::Joined(member));
                assert!(out.is_empty());
            }
        }
        c
    }

    /// Test values are numbers, merged by max; 0 stands for a tombstone.
    fn version(value: u64) -> Version {
        Version {
            print: value,
            tombstone: value == 0,
        }
    }

    fn key(k: &str) -> Key {
        Key::from(k.to_string())
    }

    impl Cluster {
        /// A client writes `value` to `k` at replica `at`.
        fn write(&mut self, at: usize, k: &str, value: u64) {
            self.stores[at].insert(key(k), value);
            self.deliver(at, GossipEvent::Changed(key(k), version(value)));
        }

        /// Feeds `event` to replica `at`, and everything it causes, until quiet.
        fn deliver(&mut self, at: usize, event: GossipEvent<u64>) {
            let mut queue = vec![(at, event)];
            while let Some((at, event)) = queue.pop() {
                for (to, message) in self.gossip[at].step(event) {
                    let to = to as usize;
                    if self.down.contains(&to) {
                        self.to_down += 1;
                        continue;
                    }
                    match message {
                        PeerMessage::Gossip(message) => {
                            self.sent += 1;
                            queue.push((to, GossipEvent::Message(at as u32, message)));
                        }
                        PeerMessage::Values(why, values) => {
                            self.sent += 1;
                            self.values_sent += 1;
                            for (key, value) in values {
                                queue.extend(self.merge(to, at as u32, why, key, value));
                            }
                            if let ReadFor::Sync(id) = why {
                                queue.push((to, GossipEvent::SyncRun(at as u32, id)));
                            }
                        }
                        PeerMessage::Collect(key, print) => {
                            assert_eq!(to, at, "collection is the replica's own business");
                            if self.stores[at].get(&key) == Some(&print) && print == 0 {
                                self.stores[at].remove(&key);
                            }
                        }
                        PeerMessage::Read(peer, why, keys) => {
                            assert_eq!(to, at, "reads go to the replica's own core");
                            let values = keys
                                .into_iter()
                                .filter_map(|k| self.stores[at].get(&k).map(|v| (k, *v)))
                                .collect();
                            queue.push((
                                at,
                                GossipEvent::Read {
                                    to: peer,
                                    why,
                                    values,
                                },
                            ));
                        }
                    }
                }
            }
        }

        /// What replica `at`'s core does with a value from `from`: merge by max, and report
        /// what the real core reports (see `crate::store::seam::Effect`).
        fn merge(
            &mut self,
            at: usize,
            from: u32,
            why: ReadFor,
            key: Key,
            value: u64,
        ) -> Option<(usize, GossipEvent<u64>)> {
            let old = self.stores[at].get(&key).copied();
            let changed = old.is_none_or(|old| value > old);
            if changed {
                self.stores[at].insert(key.clone(), value);
            }
            let print = changed.then_some(value);
            let event = match why {
                ReadFor::Rumor => GossipEvent::Heard {
                    from,
                    key,
                    had_it: !changed,
                    changed: print.map(version),
                },
                ReadFor::Repair | ReadFor::Sync(_) => GossipEvent::Changed(key, version(print?)),
            };
            Some((at, event))
        }

        fn tick(&mut self, event: fn() -> GossipEvent<u64>) {
            for at in 0..self.gossip.len() {
                if !self.down.contains(&at) {
                    self.deliver(at, event());
                }
            }
        }

        fn agree_on(&self, k: &str) -> bool {
            let k = key(k);
            self.stores
                .iter()
                .all(|s| s.get(&k) == self.stores[0].get(&k))
        }
    }

    #[test]
    fn a_rumor_reaches_every_replica_and_then_dies_down() {
        let mut c = cluster(3, config(2));
        c.write(0, "a", 7);
        for _ in 0..20 {
            c.tick(|| GossipEvent::GossipTick);
        }
        assert!(c.agree_on("a"), "{:?}", c.stores);
        assert!(
            c.gossip.iter().all(|g| g.hot_rumors() == 0),
            "rumors never retired"
        );
        // Quiet now: ticks send nothing.
        let before = c.sent;
        c.tick(|| GossipEvent::GossipTick);
        assert_eq!(c.sent, before);
    }

    #[test]
    fn feedback_retires_a_rumor_after_k_peers_already_had_it() {
        let mut c = cluster(2, config(2));
        c.stores[1].insert(key("a"), 7);
        c.gossip[1].step::<u64>(GossipEvent::Changed(key("a"), version(7)));
        c.write(0, "a", 7);
        // Replica 1 already holds it: each push is answered "had it" at the next tick.
        c.tick(|| GossipEvent::GossipTick);
        assert_eq!(
            c.gossip[0].hot_rumors(),
            1,
            "one 'had it' is fewer than k = 2"
        );
        c.tick(|| GossipEvent::GossipTick);
        c.tick(|| GossipEvent::GossipTick);
        assert_eq!(c.gossip[0].hot_rumors(), 0);
    }

    #[test]
    fn anti_entropy_repairs_what_rumors_missed_in_both_directions() {
        // k = 1 and no gossip ticks: the rumors never travel, only anti-entropy does.
        let mut c = cluster(2, config(1));
        c.write(0, "only-at-0", 1);
        c.write(1, "only-at-1", 2);
        c.write(0, "both", 3);
        c.write(1, "both", 4);
        c.deliver(0, GossipEvent::AntiEntropyTick);
        for k in ["only-at-0", "only-at-1", "both"] {
            assert!(c.agree_on(k), "{k}: {:?}", c.stores);
        }
        assert_eq!(c.stores[0][&key("both")], 4);
        // Once they agree, an exchange is one digest and nothing else.
        let before = c.sent;
        c.deliver(1, GossipEvent::AntiEntropyTick);
        assert_eq!(c.sent, before + 1);
    }

    #[test]
    fn late_feedback_about_an_older_version_does_not_retire_a_new_rumor() {
        let mut g = Gossip::new(0, config(1));
        g.step::<u64>(GossipEvent::Joined(1));
        g.step::<u64>(GossipEvent::Changed(key("a"), version(1)));
        // The peer answers "had it" about version 1 after version 2 was written here.
        g.step::<u64>(GossipEvent::Changed(key("a"), version(2)));
        let stale = GossipMessage::Feedback(vec![(key("a"), true, 1)]);
        g.step::<u64>(GossipEvent::Message(1, stale));
        assert_eq!(g.hot_rumors(), 1, "stale feedback retired the new rumor");
        let current = GossipMessage::Feedback(vec![(key("a"), true, 2)]);
        g.step::<u64>(GossipEvent::Message(1, current));
        assert_eq!(g.hot_rumors(), 0);
    }

    #[test]
    fn a_tombstone_every_replica_holds_is_collected_everywhere_and_stays_collected() {
        let mut c = cluster(3, config(2));
        c.write(0, "gone", 0);
        for _ in 0..3 {
            c.tick(|| GossipEvent::GossipTick);
        }
        assert!(c.stores.iter().all(|s| s.get(&key("gone")) == Some(&0)));
        // One anti-entropy tick: every replica tells every peer which tombstones it holds.
        c.tick(|| GossipEvent::AntiEntropyTick);
        assert!(
            c.stores.iter().all(|s| !s.contains_key(&key("gone"))),
            "{:?}",
            c.stores
        );
        // A copy of the tombstone still on its way is collected again on arrival.
        c.stores[2].insert(key("gone"), 0);
        c.deliver(2, GossipEvent::Changed(key("gone"), version(0)));
        assert!(!c.stores[2].contains_key(&key("gone")));
        // And the digests agree again: an exchange repairs nothing.
        let before = c.values_sent;
        c.deliver(1, GossipEvent::AntiEntropyTick);
        assert_eq!(c.values_sent, before);
    }

    #[test]
    fn a_tombstone_is_kept_while_a_replica_has_not_acknowledged_it() {
        let mut c = cluster(3, config(2));
        // Replica 2 never hears of the delete: no rumors, and its acknowledgements never come.
        c.stores[0].insert(key("gone"), 0);
        c.deliver(0, GossipEvent::Changed(key("gone"), version(0)));
        c.stores[1].insert(key("gone"), 0);
        c.deliver(1, GossipEvent::Changed(key("gone"), version(0)));
        let holding = GossipMessage::Holding(vec![(key("gone"), 0)]);
        c.deliver(0, GossipEvent::Message(1, holding));
        assert_eq!(c.stores[0].get(&key("gone")), Some(&0));
    }

    #[test]
    fn a_replica_alone_sends_nothing() {
        let mut g = Gossip::new(0, config(1));
        g.step::<u64>(GossipEvent::Joined(0));
        g.step::<u64>(GossipEvent::Changed(key("a"), version(1)));
        assert!(g.step::<u64>(GossipEvent::GossipTick).is_empty());
        assert!(g.step::<u64>(GossipEvent::AntiEntropyTick).is_empty());
    }

    /// A repair of many large values goes as several messages, none over the bound, with
    /// every value once and in order; a value over the bound alone goes alone.
    #[test]
    fn values_for_a_peer_are_split_by_bytes() {
        let mib = |n: usize| Bytes::from(vec![7u8; n * 1024 * 1024]);
        let values: Vec<(Key, Bytes)> = (0..5)
            .map(|i| (Key::from(format!("k{i}")), mib(7)))
            .chain([(Key::from_static(b"huge"), mib(20))])
            .collect();
        let runs = split_values(values.clone());
        let sizes: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 1, 1]);
        for run in &runs {
            let bytes = bincode::serialized_size(run).unwrap();
            assert!(run.len() == 1 || bytes <= MAX_VALUES_BYTES, "{bytes}");
        }
        assert_eq!(runs.concat(), values);
        assert!(split_values::<Bytes>(vec![]).is_empty());
    }

    /// Replica 1 restarts empty (incarnation 1) while replica 2 is down: it rejoins — asks its
    /// peers for everything, and stops rejoining once it holds all that replica 0 held — and
    /// gives up waiting for replica 2 only after `SYNC_GIVE_UP_ROUNDS` silent rounds.
    #[test]
    fn a_restarted_replica_rejoins_once_it_holds_what_its_live_peers_hold() {
        let mut c = cluster(3, config(2));
        for i in 0..20u64 {
            c.write(0, &format!("k{i}"), i + 1);
        }
        c.gossip[1] = Gossip::in_incarnation(1, config(2), 1);
        c.stores[1].clear();
        for member in 0..3 {
            assert!(
                c.gossip[1]
                    .step::<u64>(GossipEvent::Joined(member))
                    .is_empty()
            );
        }
        c.down.insert(2);
        assert!(c.gossip[1].is_rejoining());
        c.deliver(1, GossipEvent::AntiEntropyTick);
        // Replica 0 answered in full; replica 2 cannot: still rejoining.
        assert_eq!(c.stores[1], c.stores[0]);
        assert!(c.gossip[1].is_rejoining());
        for _ in 0..SYNC_GIVE_UP_ROUNDS - 1 {
            c.deliver(1, GossipEvent::AntiEntropyTick);
            assert!(c.gossip[1].is_rejoining(), "gave up on replica 2 too soon");
        }
        c.deliver(1, GossipEvent::AntiEntropyTick);
        assert!(!c.gossip[1].is_rejoining(), "never gave up on replica 2");
        crate::membership::set_standing(crate::membership::Standing::Full);
    }

    /// A sync's values are not enough alone: the rejoining replica waits for the count of
    /// runs, so a lost run (or a lost count) keeps it rejoining until a request is answered
    /// whole.
    #[test]
    fn a_rejoining_replica_waits_for_every_run_of_a_sync() {
        let mut g = Gossip::in_incarnation(1, config(2), 1);
        assert!(g.step::<u64>(GossipEvent::Joined(0)).is_empty());
        let asked = g.step::<u64>(GossipEvent::AntiEntropyTick);
        let id = asked
            .iter()
            .find_map(|(to, m)| match m {
                PeerMessage::Gossip(GossipMessage::SyncRequest(id)) if *to == 0 => Some(*id),
                _ => None,
            })
            .expect("a sync request to replica 0");
        g.step::<u64>(GossipEvent::SyncRun(0, id));
        g.step::<u64>(GossipEvent::Message(0, GossipMessage::SyncDone(id, 2)));
        assert!(g.is_rejoining(), "one run of two");
        g.step::<u64>(GossipEvent::SyncRun(0, id + 7));
        assert!(g.is_rejoining(), "a run of another request does not count");
        g.step::<u64>(GossipEvent::SyncRun(0, id));
        assert!(!g.is_rejoining());
        crate::membership::set_standing(crate::membership::Standing::Full);
    }

    /// Peers are announced as the replica starts; an anti-entropy round that comes first must
    /// not find "no peer left to catch up with". A replica that truly has no peer (one replica
    /// per shard) stops rejoining after `SYNC_RETRY_ROUNDS` rounds.
    #[test]
    fn a_rejoining_replica_does_not_take_an_unannounced_peer_set_for_none() {
        let mut g = Gossip::in_incarnation(1, config(2), 1);
        assert!(g.step::<u64>(GossipEvent::AntiEntropyTick).is_empty());
        assert!(
            g.is_rejoining(),
            "caught up before its peers were announced"
        );
        assert!(g.step::<u64>(GossipEvent::Joined(0)).is_empty());
        let asked = g.step::<u64>(GossipEvent::AntiEntropyTick);
        assert!(
            asked.iter().any(|(to, m)| *to == 0
                && matches!(m, PeerMessage::Gossip(GossipMessage::SyncRequest(_)))),
            "{asked:?}"
        );
        let mut alone = Gossip::in_incarnation(1, config(2), 1);
        for _ in 0..SYNC_RETRY_ROUNDS {
            alone.step::<u64>(GossipEvent::AntiEntropyTick);
            assert!(alone.is_rejoining());
        }
        alone.step::<u64>(GossipEvent::AntiEntropyTick);
        assert!(
            !alone.is_rejoining(),
            "a replica with no peer never stopped rejoining"
        );
        crate::membership::set_standing(crate::membership::Standing::Full);
    }

    /// A peer that has said nothing for `QUIET_ROUNDS` rounds is taken for away: rumors,
    /// digests and tombstone lists stop going to it but for one digest every `QUIET_ROUNDS`
    /// rounds, and once it speaks again it gets everything it missed.
    #[test]
    fn gossip_to_a_long_silent_peer_stops_but_for_a_probe_and_resumes_when_it_speaks() {
        let mut c = cluster(3, config(2));
        c.down.insert(2);
        // A tombstone, so that tombstone lists go out every round too.
        c.write(0, "gone", 0);
        for _ in 0..QUIET_ROUNDS {
            c.tick(|| GossipEvent::AntiEntropyTick);
            c.tick(|| GossipEvent::GossipTick);
        }
        // Away now: over the next rounds, only the probes reach it.
        c.to_down = 0;
        for _ in 0..2 * QUIET_ROUNDS {
            c.write(1, "busy", 1 + c.sent as u64);
            c.tick(|| GossipEvent::AntiEntropyTick);
            c.tick(|| GossipEvent::GossipTick);
        }
        assert_eq!(
            c.to_down, 4,
            "one digest every QUIET_ROUNDS rounds, from each of the two live replicas"
        );
        // It comes back and speaks: it is sent to again, and catches up.
        c.down.remove(&2);
        for _ in 0..QUIET_ROUNDS {
            c.tick(|| GossipEvent::AntiEntropyTick);
            c.tick(|| GossipEvent::GossipTick);
        }
        assert!(c.agree_on("busy"), "the returned replica caught up");
    }
}
