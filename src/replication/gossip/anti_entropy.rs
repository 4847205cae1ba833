//! Anti-entropy: the backstop that makes replicas converge for certain.
//!
//! Rumor mongering (see [`crate::replication::gossip::rumor`]) is fast and cheap but can
//! die out before every replica has heard a rumor. Anti-entropy is the
//! "simple epidemic" of Demers et al.: now and then a replica compares its
//! *whole* store with a random peer's and they repair every difference.
//! Since every pair eventually talks, every difference is eventually
//! repaired, whatever rumor mongering missed.
//!
//! Comparing whole stores naively would ship every key on every exchange.
//! Instead each replica keeps a two-level digest beside its store:
//!
//! * every key falls in one of [`BUCKETS`] buckets, chosen by a hash of the
//!   key;
//! * every (key, value) pair has a 64-bit *fingerprint*;
//! * a bucket's digest is the wrapping sum of its pairs' fingerprints.
//!
//! A sum (unlike, say, a hash of a sorted list) can be kept up to date in
//! O(1) per write: subtract the old fingerprint, add the new one. When two
//! replicas agree, their digests are equal and an exchange costs one
//! message of `BUCKETS` numbers.
//!
//! # The exchange
//!
//! 1. A sends B its [`Digest`].
//! 2. B computes [`differing_buckets`] and answers with those bucket ids and
//!    its own `(key, fingerprint)` list for them ([`DigestIndex::keys_in`]).
//!    If there are none, the replicas agree and the exchange is over.
//! 3. A lists its own keys in those buckets, sends the values of
//!    [`keys_to_send`]`(mine, theirs)`, plus its `(key, fingerprint)` list so
//!    that B can do the same.
//! 4. B sends the values of `keys_to_send(B's list, A's list)`.
//!
//! Both sides merge what they receive with the store's lattice merge. A
//! merge is idempotent and order-insensitive, so sending a value the other
//! side already dominates is harmless: it only costs bandwidth. That is why
//! the protocol never needs to decide *who is newer*, only *who differs*.
//!
//! # Hash stability
//!
//! Bucket ids and fingerprints are compared *across processes*, so they must
//! not use a per-process random seed (as `HashMap` does). They use
//! [`crate::hashing::stable_hash_of`] (foldhash with a fixed seed, fed through
//! [`std::hash::Hash`]). Caveats a learner should know:
//!
//! * The `Hash` impl of keys and values must agree with their `Eq`: equal
//!   values must hash equally (the usual `Hash` contract), or two replicas
//!   holding equal values will keep seeing a difference.
//! * foldhash promises the same output for the same seed only within one
//!   version of foldhash on one kind of platform (it reads bytes in native
//!   endianness), and `std`'s `Hash` impls are not promised stable across
//!   Rust releases (nor is `usize` the same width everywhere). Run one build
//!   across the cluster. A mismatch never loses data: every bucket then
//!   looks different and the exchange degrades to shipping everything.
//! * Two different stores could in principle have equal bucket sums (a
//!   chance around 2^-64 per bucket per exchange); the difference is then
//!   missed until either side writes to that bucket again.

use std::collections::HashMap;
use std::hash::Hash;

use crate::hashing::stable_hash_of;

/// The number of digest buckets. More buckets make a disagreement cheaper
/// to locate (fewer keys listed per differing bucket) but make every digest
/// message longer.
pub const BUCKETS: usize = 64;

/// The domain tag of a key's bucket hash, so that it is independent of the pair's
/// fingerprint although both use one hasher ([`crate::values::fingerprint`] uses tag 1).
const BUCKET_TAG: u8 = 0;

/// The bucket `key` belongs to, in `0..BUCKETS`.
pub fn bucket_of<K: Hash + ?Sized>(key: &K) -> usize {
    (stable_hash_of(&(BUCKET_TAG, key)) % BUCKETS as u64) as usize
}

/// A replica's summary of its whole store: one sum of fingerprints per
/// bucket.
///
/// A `Vec` rather than `[u64; BUCKETS]` so that serde can derive it (serde
/// implements arrays only up to 32 elements).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Digest {
    /// `sums[b]` is the wrapping sum of the fingerprints of bucket `b`.
    pub sums: Vec<u64>,
}

/// Per-bucket fingerprints of a store, kept up to date beside it.
///
/// Call [`DigestIndex::set`] on every change of the store, with the new
/// value's fingerprint. The index then answers [`DigestIndex::digest`]
/// in O(`BUCKETS`) and [`DigestIndex::keys_in`] in time proportional to the
/// keys of the buckets asked for.
#[derive(Debug, Clone)]
pub struct DigestIndex<K> {
    /// `sums[b]` is the wrapping sum of the fingerprints in `keys[b]`.
    sums: [u64; BUCKETS],
    /// For each bucket, its keys and their current fingerprints.
    keys: Vec<HashMap<K, u64, foldhash::fast::RandomState>>,
}

impl<K: Clone + Eq + Hash> Default for DigestIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash> DigestIndex<K> {
    /// An index of an empty store: every bucket sum is zero.
    pub fn new() -> Self {
        DigestIndex {
            sums: [0; BUCKETS],
            keys: (0..BUCKETS).map(|_| HashMap::default()).collect(),
        }
    }

    /// Records that `key` now has the fingerprint `print` (see [`fingerprint`](crate::values::fingerprint::fingerprint)), adjusting its
    /// bucket's sum: the old fingerprint, which the index remembers, is subtracted, the new
    /// one added. Call it on every change of the store.
    pub fn set(&mut self, key: &K, print: u64) {
        let bucket = bucket_of(key);
        let previous = self.keys[bucket].insert(key.clone(), print);
        let sum = &mut self.sums[bucket];
        *sum = sum.wrapping_add(print);
        if let Some(previous) = previous {
            *sum = sum.wrapping_sub(previous);
        }
    }

    /// Forgets `key` (its tombstone was collected), taking its fingerprint out of its bucket.
    pub fn remove(&mut self, key: &K) {
        let bucket = bucket_of(key);
        if let Some(print) = self.keys[bucket].remove(key) {
            self.sums[bucket] = self.sums[bucket].wrapping_sub(print);
        }
    }

    /// The fingerprint recorded for `key`, if any.
    pub fn fingerprint(&self, key: &K) -> Option<u64> {
        self.keys[bucket_of(key)].get(key).copied()
    }

    /// The current digest, to send to a peer.
    pub fn digest(&self) -> Digest {
        Digest {
            sums: self.sums.to_vec(),
        }
    }

    /// The keys of the given buckets with their fingerprints, in no
    /// particular order. Bucket ids outside `0..BUCKETS` (from a confused
    /// peer) are ignored, and a bucket asked for twice is listed once.
    pub fn keys_in(&self, buckets: &[usize]) -> Vec<(K, u64)> {
        let mut wanted = [false; BUCKETS];
        for &bucket in buckets {
            if let Some(flag) = wanted.get_mut(bucket) {
                *flag = true;
            }
        }
        self.keys
            .iter()
            .zip(wanted)
            .filter(|(_, wanted)| *wanted)
            .flat_map(|(keys, _)| keys.iter().map(|(key, print)| (key.clone(), *print)))
            .collect()
    }
}

/// The buckets whose sums differ between two digests, in increasing order.
///
/// A bucket missing from one digest (a peer with a different [`BUCKETS`],
/// or a truncated message) counts as differing: asking about too many
/// buckets only costs bandwidth, asking about too few could hide a
/// difference.
pub fn differing_buckets(mine: &Digest, theirs: &Digest) -> Vec<usize> {
    let len = mine.sums.len().max(theirs.sums.len());
    (0..len)
        .filter(|&b| mine.sums.get(b) != theirs.sums.get(b))
        .collect()
}

/// The keys whose values I should send: those in `mine` whose fingerprint
/// differs from the one in `theirs`, or that are missing from `theirs`.
///
/// This is one direction only; the other side calls it with the arguments
/// swapped to find what it should send back. Keys are returned in the order
/// of `mine`.
pub fn keys_to_send<K: Clone + Eq + Hash>(mine: &[(K, u64)], theirs: &[(K, u64)]) -> Vec<K> {
    let theirs: HashMap<&K, u64, foldhash::fast::RandomState> =
        theirs.iter().map(|(key, print)| (key, *print)).collect();
    mine.iter()
        .filter(|(key, print)| theirs.get(key) != Some(print))
        .map(|(key, _)| key.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::fingerprint::fingerprint;
    use proptest::prelude::*;

    /// The index of a whole store, built in one go.
    fn build<'a, K: Clone + Eq + Hash + 'a, V: Hash + 'a>(
        entries: impl IntoIterator<Item = (&'a K, &'a V)>,
    ) -> DigestIndex<K> {
        let mut index = DigestIndex::new();
        for (key, value) in entries {
            index.set(key, fingerprint(key, value));
        }
        index
    }

    fn index_of(entries: &[(String, u32)]) -> DigestIndex<String> {
        build(entries.iter().map(|(k, v)| (k, v)))
    }

    fn sample() -> Vec<(String, u32)> {
        (0..200).map(|i| (format!("key{i}"), i)).collect()
    }

    #[test]
    fn hashes_are_stable_within_a_build() {
        // Same input, same answer; different inputs, (almost surely)
        // different answers.
        assert_eq!(fingerprint("a", &1u32), fingerprint("a", &1u32));
        assert_ne!(fingerprint("a", &1u32), fingerprint("a", &2u32));
        assert_eq!(bucket_of("a"), bucket_of("a"));
        assert!(bucket_of("a") < BUCKETS);
    }

    #[test]
    fn agreeing_indexes_have_equal_digests() {
        let mut entries = sample();
        let a = index_of(&entries);
        entries.reverse(); // insertion order must not matter
        let b = index_of(&entries);
        assert_eq!(a.digest(), b.digest());
        assert!(differing_buckets(&a.digest(), &b.digest()).is_empty());
        assert_eq!(a.digest().sums.len(), BUCKETS);
    }

    #[test]
    fn one_changed_key_yields_its_bucket_and_only_that_key() {
        let entries = sample();
        let mut a = index_of(&entries);
        let b = index_of(&entries);
        let changed = "key17".to_string();
        a.set(&changed, fingerprint(&changed, &1_000u32));

        let buckets = differing_buckets(&a.digest(), &b.digest());
        assert_eq!(buckets, vec![bucket_of(&changed)]);

        let mine = a.keys_in(&buckets);
        let theirs = b.keys_in(&buckets);
        assert_eq!(keys_to_send(&mine, &theirs), vec![changed.clone()]);
        assert_eq!(keys_to_send(&theirs, &mine), vec![changed]);
    }

    #[test]
    fn a_key_the_peer_lacks_is_sent_one_way_only() {
        let entries = sample();
        let mut a = index_of(&entries);
        let b = index_of(&entries);
        let new_key = "fresh".to_string();
        a.set(&new_key, fingerprint(&new_key, &5u32));

        let buckets = differing_buckets(&a.digest(), &b.digest());
        assert_eq!(buckets, vec![bucket_of(&new_key)]);
        let mine = a.keys_in(&buckets);
        let theirs = b.keys_in(&buckets);
        assert_eq!(keys_to_send(&mine, &theirs), vec![new_key]);
        assert!(keys_to_send(&theirs, &mine).is_empty());
    }

    #[test]
    fn keys_in_ignores_bad_and_repeated_bucket_ids() {
        let index = index_of(&sample());
        let b = bucket_of("key3");
        let once = index.keys_in(&[b]);
        assert!(once.iter().any(|(k, _)| k == "key3"));
        assert_eq!(
            index.keys_in(&[b, b, BUCKETS, usize::MAX]).len(),
            once.len()
        );
        let all: Vec<usize> = (0..BUCKETS).collect();
        assert_eq!(index.keys_in(&all).len(), 200);
    }

    #[test]
    fn digests_of_different_lengths_differ_in_the_missing_buckets() {
        let short = Digest { sums: vec![0; 2] };
        let long = Digest { sums: vec![0; 4] };
        assert_eq!(differing_buckets(&short, &long), vec![2, 3]);
        assert_eq!(differing_buckets(&long, &short), vec![2, 3]);
    }

    proptest! {
        /// Applying writes one by one through `set` gives the same index
        /// as building it from the final store.
        #[test]
        fn incremental_update_equals_rebuild(
            writes in proptest::collection::vec((0u8..40, any::<u16>()), 0..200)
        ) {
            let mut store: HashMap<u8, u16> = HashMap::new();
            let mut incremental = DigestIndex::new();
            for (key, value) in writes {
                store.insert(key, value);
                incremental.set(&key, fingerprint(&key, &value));
            }
            let rebuilt = build(store.iter());
            prop_assert_eq!(incremental.digest(), rebuilt.digest());
            let all: Vec<usize> = (0..BUCKETS).collect();
            let mut a = incremental.keys_in(&all);
            let mut b = rebuilt.keys_in(&all);
            a.sort_unstable();
            b.sort_unstable();
            prop_assert_eq!(a, b);
        }
    }
}
