//! The crate's stable hashes: the same output in every process, so that members can compare
//! what they compute.
//!
//! `std`'s `DefaultHasher` and a `HashMap`'s seeds make no such promise (the seed is random per
//! process), so where a hash crosses a process boundary — which shard holds a key, where a
//! `SCAN` cursor points, which replica a client sticks to, a replica's anti-entropy digest —
//! it comes from here.
//!
//! - [`stable_hash`] hashes a key's *bytes* with an algorithm written out below (FNV-1a, then
//!   [`mix`]), pinned by tests: it never changes, across builds, Rust releases or platforms,
//!   because a key's shard must not.
//! - [`stable_hash_of`] hashes any [`Hash`] value (a tuple, a vector clock) with foldhash
//!   under a fixed seed. It is stable within one build on one kind of platform only (foldhash
//!   reads native-endian words, and `std`'s `Hash` impls may change between Rust releases):
//!   enough for anti-entropy, where a mismatch between builds costs bandwidth, never data.
//!
//! This module imports nothing from the crate.

use std::hash::{BuildHasher, Hash};

use foldhash::fast::FixedState;

/// The stable 64-bit hash of `bytes`: FNV-1a, then SplitMix64's finalizer ([`mix`]) to spread
/// FNV's weak low bits over the whole word.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = bytes.iter().fold(FNV_OFFSET, |h, &byte| {
        (h ^ u64::from(byte)).wrapping_mul(FNV_PRIME)
    });
    mix(fnv)
}

/// SplitMix64's finalizer: a bijection on `u64` whose every output bit depends on every
/// input bit.
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fixed seed of [`stable_hash_of`]. Changing it changes every anti-entropy bucket and
/// fingerprint, so all replicas must share it.
const STABLE_SEED: u64 = 0x4B56_535F_5A4F_4F21; // "KVS_ZOO!"

/// Hashes `value` with foldhash under a fixed seed: the same in every process running the
/// same build (see the module docs for why only that).
pub fn stable_hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    FixedState::with_seed(STABLE_SEED).hash_one(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key's shard must never move: these values are part of the on-the-wire contract.
    #[test]
    fn the_byte_hash_is_pinned() {
        assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(stable_hash(b"a"), 0x02c0_bdbf_4814_20f8);
        assert_eq!(stable_hash(b"color"), 0x92f7_c219_53b8_07d0);
    }

    #[test]
    fn the_value_hash_depends_only_on_the_value() {
        assert_eq!(stable_hash_of(&("a", 1u32)), stable_hash_of(&("a", 1u32)));
        assert_ne!(stable_hash_of(&("a", 1u32)), stable_hash_of(&("a", 2u32)));
    }
}
