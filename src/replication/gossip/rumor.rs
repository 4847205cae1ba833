//! Rumor mongering: which keys a replica is still actively gossiping.
//!
//! This is the "complex epidemic" of Demers et al., *Epidemic algorithms for
//! replicated database maintenance* (PODC 1987), section 1.4. The idea: when
//! a replica learns something new (a local write, or a gossip message that
//! changed a key) it gets excited about it and tells random peers. Each time
//! it does, it may lose a little interest. Once it has lost interest the
//! rumor is *retired* and no longer sent. In epidemic terms a site is
//! *susceptible* (has not heard), *infective* (hot, spreading) or *removed*
//! (heard, no longer spreading).
//!
//! Two knobs decide when interest is lost:
//!
//! * [`Feedback`] — does every contact count, or only the ones where the peer
//!   told us "I already had that"? Feedback wastes fewer rumors on peers that
//!   still need them, at the cost of a reply bit.
//! * [`LossOfInterest`] — after exactly `k` contacts that count (a counter),
//!   or with probability `1/k` at each one (a coin, which needs no per-rumor
//!   state beyond "hot").
//!
//! Rumor mongering is cheap but **may die out before reaching everyone**:
//! the paper's *residue*, the fraction of sites that never hear a rumor,
//! falls exponentially with `k` but is never zero. That is why a real system
//! pairs it with anti-entropy (see [`crate::replication::gossip::anti_entropy`]), which is
//! slow but always converges.
//!
//! This store holds only *keys*, never values: the value lives in the
//! replica's own store and is looked up when a message is built. Keeping the
//! two apart means the rumor logic can be tested (and simulated, see
//! [`crate::testing::demers`]) without any values at all, and that a key
//! which is hot always gossips its *latest* value.

use std::collections::HashMap;
use std::hash::Hash;

use super::rng::Rng;

/// Which contacts count against a rumor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// A contact counts only when the peer answers that it already had the
    /// rumor: the sender learns the rumor is getting stale.
    Feedback,
    /// Every contact counts, whatever the peer knew. No reply needed.
    Blind,
}

/// How a sender loses interest in a rumor once contacts count against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossOfInterest {
    /// Retire the rumor after `k` contacts that count *in a row*: a contact
    /// that does not count (under feedback, a peer that needed the rumor)
    /// resets the count and so restores full interest. Under blind
    /// feedback every contact counts, so this is exactly `k` contacts.
    ///
    /// Why reset: a rumor that is still reaching new sites is not stale.
    /// It is also what reproduces the paper's Table 1; counting
    /// cumulatively leaves up to 1.7 times its residue (see
    /// [`crate::testing::demers`]).
    Counter,
    /// Retire the rumor with probability `1/k` at each contact that counts
    /// (on average after `k` of them).
    Coin,
}

/// The parameters of rumor mongering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RumorConfig {
    /// Which contacts count against a rumor.
    pub feedback: Feedback,
    /// How counted contacts retire a rumor.
    pub loss: LossOfInterest,
    /// The counter limit, or the `1/k` coin. `0` behaves like `1`.
    pub k: u32,
    /// How many distinct random peers a replica pushes its hot rumors to
    /// each round.
    pub fanout: usize,
}

impl Default for RumorConfig {
    /// Feedback + counter with `k = 2` and `fanout = 3`.
    ///
    /// Why these, for a cluster of 3–9 replicas:
    ///
    /// * **Feedback + counter** is the paper's best variant (its Table 1):
    ///   for a given `k` it leaves the smallest residue, and a counter
    ///   bounds the traffic a rumor can cause.
    /// * **A larger fanout than the paper's 1**, because small clusters
    ///   want few rounds, not few messages: with `fanout = 3` a write
    ///   reaches all of a 3- or 4-replica cluster in one round (it is a
    ///   broadcast there) and the last of 9 replicas in about 2.6 rounds on
    ///   average, against 5.2 with `fanout = 1`.
    /// * **`k = 2`**: in a small cluster "the peer already had it" comes
    ///   quickly, so `k = 1` retires rumors early (1.2% of 9 replicas miss a
    ///   write); `k = 2` brings that to 0.3% (0.07% at 5 replicas, none at 3)
    ///   for about 4.6 pushes per replica per write, and larger `k` mostly
    ///   adds redundant pushes. Anti-entropy repairs the rest.
    ///
    /// The figures come from [`crate::testing::demers::average`] with this
    /// configuration, 100,000 runs per cluster size. `fanout = 2, k = 3`
    /// leaves a similar residue (0.2% at 9) but is slower (3.4 rounds) and
    /// costs more (5.4 pushes).
    fn default() -> Self {
        RumorConfig {
            feedback: Feedback::Feedback,
            loss: LossOfInterest::Counter,
            k: 2,
            fanout: 3,
        }
    }
}

/// The hot rumors of one replica: the keys it is still gossiping, each with
/// the number of contacts that have counted against it so far.
#[derive(Debug, Clone)]
pub struct RumorStore<K> {
    /// The parameters every rumor of this store follows.
    config: RumorConfig,
    /// Hot keys and how many contacts have counted against each.
    hot: HashMap<K, u32, foldhash::fast::RandomState>,
}

impl<K: Eq + Hash> RumorStore<K> {
    /// Creates an empty store: no rumor is hot yet.
    pub fn new(config: RumorConfig) -> Self {
        RumorStore {
            config,
            hot: HashMap::default(),
        }
    }

    /// The parameters this store was created with.
    pub fn config(&self) -> &RumorConfig {
        &self.config
    }

    /// Records that `key` changed here (a local write, or a gossip message
    /// whose merge changed the value), making it a hot rumor.
    ///
    /// If `key` is already hot its counter is **reset to zero**. The change
    /// is news the peers have not heard yet, even if they heard an older
    /// value of the same key, so it deserves a full spread of its own rather
    /// than the tail end of the old rumor's interest. Do not call this when a
    /// gossip message left the value unchanged: that is the "peer already
    /// had it" case, reported to the sender as feedback instead.
    pub fn heard(&mut self, key: K) {
        self.hot.insert(key, 0);
    }

    /// Drops `key`'s rumor, hot or not (its key was collected).
    pub fn forget(&mut self, key: &K) {
        self.hot.remove(key);
    }

    /// Whether `key` is currently a hot rumor.
    pub fn is_hot(&self, key: &K) -> bool {
        self.hot.contains_key(key)
    }

    /// How many contacts have counted against `key` so far, or `None` if it
    /// is not hot. Useful for tests and for debugging output; with
    /// [`LossOfInterest::Coin`] it stays `0`, since a coin keeps no count.
    pub fn counted(&self, key: &K) -> Option<u32> {
        self.hot.get(key).copied()
    }

    /// The number of hot rumors.
    pub fn len(&self) -> usize {
        self.hot.len()
    }

    /// Whether there is no hot rumor, i.e. nothing to gossip this round.
    pub fn is_empty(&self) -> bool {
        self.hot.is_empty()
    }

    /// The hot keys, in no particular order.
    ///
    /// This borrows the store, so a replica collects what it needs first
    /// (typically `hot_keys().cloned().collect::<Vec<_>>()`, paired with
    /// current values from its value store) and then reports each contact
    /// with [`RumorStore::contacted`], which needs `&mut self`. An iterator
    /// rather than a `Vec` lets callers that only count or filter avoid the
    /// allocation.
    pub fn hot_keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.hot.keys()
    }

    /// Applies loss of interest for one contact: this replica sent `key` to
    /// a peer, and `peer_already_had` says whether the peer already knew it
    /// (which feedback needs; blind ignores it). In a replica, "already had"
    /// means the peer's merge of the value changed nothing.
    ///
    /// Returns whether the rumor is still hot afterwards. A key that was not
    /// hot stays not hot and `false` is returned; `rng` is only consulted by
    /// [`LossOfInterest::Coin`] on a contact that counts.
    pub fn contacted(&mut self, key: &K, peer_already_had: bool, rng: &mut Rng) -> bool {
        let config = self.config;
        let Some(count) = self.hot.get_mut(key) else {
            return false;
        };
        if !counts_against(config.feedback, peer_already_had) {
            // News to the peer: full interest again (a no-op for a coin).
            *count = 0;
            return true;
        }
        let retire = match config.loss {
            LossOfInterest::Counter => {
                *count += 1;
                *count >= config.k.max(1)
            }
            LossOfInterest::Coin => rng.chance(config.k),
        };
        if retire {
            self.hot.remove(key);
        }
        !retire
    }
}

/// Whether one contact counts against a rumor under `feedback`.
fn counts_against(feedback: Feedback, peer_already_had: bool) -> bool {
    match feedback {
        Feedback::Feedback => peer_already_had,
        Feedback::Blind => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(feedback: Feedback, loss: LossOfInterest, k: u32) -> RumorConfig {
        RumorConfig {
            feedback,
            loss,
            k,
            fanout: 1,
        }
    }

    /// Counts the contacts (all with `peer_already_had`) until retirement.
    fn contacts_until_retired(store: &mut RumorStore<&'static str>, rng: &mut Rng) -> u32 {
        store.heard("x");
        let mut contacts = 1;
        while store.contacted(&"x", true, rng) {
            contacts += 1;
        }
        contacts
    }

    #[test]
    fn counter_retires_after_exactly_k_counted_contacts() {
        let mut rng = Rng::new(0);
        for k in 1..=5 {
            let mut store = RumorStore::new(config(Feedback::Feedback, LossOfInterest::Counter, k));
            assert_eq!(contacts_until_retired(&mut store, &mut rng), k);
            assert!(!store.is_hot(&"x"));
            assert!(store.is_empty());
        }
    }

    #[test]
    fn counter_with_k_zero_behaves_like_one() {
        let mut rng = Rng::new(0);
        let mut store = RumorStore::new(config(Feedback::Blind, LossOfInterest::Counter, 0));
        assert_eq!(contacts_until_retired(&mut store, &mut rng), 1);
    }

    #[test]
    fn coin_retires_after_k_contacts_on_average() {
        let mut rng = Rng::new(42);
        for k in [1, 2, 4] {
            let mut store = RumorStore::new(config(Feedback::Feedback, LossOfInterest::Coin, k));
            let trials = 20_000;
            let total: u32 = (0..trials)
                .map(|_| contacts_until_retired(&mut store, &mut rng))
                .sum();
            let mean = f64::from(total) / f64::from(trials);
            // Geometric with mean k, standard deviation sqrt(k(k-1)); the
            // standard error of the mean is below 0.03 here.
            assert!((mean - f64::from(k)).abs() < 0.1, "k {k}: mean {mean}");
        }
    }

    #[test]
    fn feedback_ignores_contacts_with_peers_that_needed_the_rumor() {
        let mut rng = Rng::new(1);
        let mut store = RumorStore::new(config(Feedback::Feedback, LossOfInterest::Counter, 1));
        store.heard("x");
        for _ in 0..10 {
            assert!(store.contacted(&"x", false, &mut rng));
        }
        assert_eq!(store.counted(&"x"), Some(0));
        assert!(!store.contacted(&"x", true, &mut rng));
    }

    #[test]
    fn a_contact_that_does_not_count_resets_the_counter() {
        let mut rng = Rng::new(1);
        let mut store = RumorStore::new(config(Feedback::Feedback, LossOfInterest::Counter, 2));
        store.heard("x");
        assert!(store.contacted(&"x", true, &mut rng));
        assert_eq!(store.counted(&"x"), Some(1));
        assert!(store.contacted(&"x", false, &mut rng));
        assert_eq!(store.counted(&"x"), Some(0));
        assert!(store.contacted(&"x", true, &mut rng));
        assert!(!store.contacted(&"x", true, &mut rng));
    }

    #[test]
    fn blind_counts_every_contact() {
        let mut rng = Rng::new(1);
        let mut store = RumorStore::new(config(Feedback::Blind, LossOfInterest::Counter, 2));
        store.heard("x");
        assert!(store.contacted(&"x", false, &mut rng));
        assert_eq!(store.counted(&"x"), Some(1));
        assert!(!store.contacted(&"x", false, &mut rng));
        assert!(!store.is_hot(&"x"));
    }

    #[test]
    fn heard_resets_the_counter_of_a_hot_key() {
        let mut rng = Rng::new(1);
        let mut store = RumorStore::new(config(Feedback::Feedback, LossOfInterest::Counter, 3));
        store.heard("x");
        assert!(store.contacted(&"x", true, &mut rng));
        assert!(store.contacted(&"x", true, &mut rng));
        assert_eq!(store.counted(&"x"), Some(2));
        store.heard("x");
        assert_eq!(store.counted(&"x"), Some(0));
        assert_eq!(store.len(), 1);
        // A full k = 3 counted contacts are needed again.
        assert!(store.contacted(&"x", true, &mut rng));
        assert!(store.contacted(&"x", true, &mut rng));
        assert!(!store.contacted(&"x", true, &mut rng));
    }

    #[test]
    fn contacting_a_key_that_is_not_hot_is_a_no_op() {
        let mut rng = Rng::new(1);
        let mut store: RumorStore<&str> = RumorStore::new(RumorConfig::default());
        assert!(!store.contacted(&"nope", true, &mut rng));
        assert!(store.is_empty());
    }

    #[test]
    fn hot_keys_lists_each_hot_key_once() {
        let mut store = RumorStore::new(RumorConfig::default());
        store.heard("a");
        store.heard("b");
        store.heard("a");
        let mut keys: Vec<&str> = store.hot_keys().copied().collect();
        keys.sort_unstable();
        assert_eq!(keys, vec!["a", "b"]);
        assert_eq!(store.config(), &RumorConfig::default());
    }
}
