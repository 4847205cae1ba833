//! What replication needs to know of a stored value: a fingerprint that is equal exactly
//! when the values are, and whether the value is a tombstone.
//!
//! Anti-entropy (see [`crate::replication::gossip::anti_entropy`]) sums fingerprints per
//! bucket to find where two replicas differ; gossip collects a tombstone once every replica
//! holds it. The trait lives beside the values, below both the cores that keep it and the
//! gossip that reads it.

use std::hash::Hash;

use crate::hashing::stable_hash_of;
use crate::values::{CausalValue, LwwValue};

/// The domain tag of a pair's fingerprint, so that it is independent of the key's
/// anti-entropy bucket although both use one hasher (buckets use tag 0).
const FINGERPRINT_TAG: u8 = 1;

/// The fingerprint of a (key, value) pair: a 64-bit stable hash of both.
pub fn fingerprint<K: Hash + ?Sized, V: Hash + ?Sized>(key: &K, value: &V) -> u64 {
    stable_hash_of(&(FINGERPRINT_TAG, key, value))
}

/// What replication needs to know of a stored value: its fingerprint, and whether it is a
/// tombstone (a deleted key, which gossip collects once every replica holds it). `Hash`
/// would do for the fingerprint, but the lattice crate's pair and set types do not implement
/// it; each value type says here which of its parts decide equality, and hashes those.
pub trait Fingerprint {
    /// The fingerprint of `key` holding this value (see [`fingerprint`]).
    fn fingerprint(&self, key: &[u8]) -> u64;

    /// True when the value says only that the key was deleted.
    fn is_tombstone(&self) -> bool;
}

impl<V: Hash> Fingerprint for LwwValue<V> {
    fn fingerprint(&self, key: &[u8]) -> u64 {
        fingerprint(key, self)
    }

    fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }
}

impl<V: Hash> Fingerprint for CausalValue<V> {
    fn fingerprint(&self, key: &[u8]) -> u64 {
        fingerprint(key, &(self.clock(), self.versions(), self.counter()))
    }

    /// Only deletes, and a counter that counts nothing (never used, or reset by the delete).
    fn is_tombstone(&self) -> bool {
        self.versions().iter().all(Option::is_none) && self.counter().value().is_none()
    }
}
