//! A tiny deterministic pseudo-random number generator.
//!
//! Gossip is randomised: every round a replica picks random peers, and the
//! "coin" flavour of loss of interest flips a coin. We want two things from
//! the randomness:
//!
//! * **Reproducibility.** A simulation run with seed 42 must print the same
//!   numbers today and tomorrow, and a failing test must fail the same way
//!   every time. So the generator is seeded explicitly and never reads the
//!   clock or the OS entropy pool.
//! * **No dependency.** The algorithm is SplitMix64 (Steele, Lea and Flood,
//!   "Fast splittable pseudorandom number generators", 2014): a 64-bit
//!   counter pushed through a strong mixing function. It is ten lines long,
//!   passes BigCrush, and is plenty for choosing peers. It is *not*
//!   cryptographically secure, which gossip does not need.
//!
//! On top of the raw 64-bit output we build the three things gossip asks
//! for: a uniform integer below `n` ([`Rng::below`]), a biased coin
//! ([`Rng::chance`]) and a uniform sample of distinct peers
//! ([`Rng::pick_peers`]).

/// The SplitMix64 increment: the odd constant nearest to 2^64 / φ.
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A small, seedable, deterministic pseudo-random number generator
/// (SplitMix64).
///
/// The same seed always yields the same sequence, on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    /// The counter that SplitMix64 advances by [`GOLDEN_GAMMA`] per output.
    state: u64,
}

impl Rng {
    /// Creates a generator whose whole future output is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// Returns the next 64 uniformly distributed random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Returns an integer uniformly distributed in `0..n`.
    ///
    /// Uses Lemire's multiply-shift ("Fast random integer generation in an
    /// interval", 2019): the high 64 bits of a 128-bit product map a random
    /// `u64` onto `0..n`, and the rare draws that would make some results
    /// more likely than others are rejected, so the result is exactly
    /// uniform.
    ///
    /// `0..0` is empty, so there is no right answer for `n == 0`; rather than
    /// panic, this returns `0` and callers are expected not to ask.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let n = n as u64;
        let mut product = u128::from(self.next_u64()) * u128::from(n);
        // The low half tells whether this draw falls in the biased sliver.
        if (product as u64) < n {
            // 2^64 mod n, computed without 128-bit division.
            let threshold = n.wrapping_neg() % n;
            while (product as u64) < threshold {
                product = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        // The high half is < n, which came from a usize, so it fits.
        (product >> 64) as usize
    }

    /// Returns `true` with probability `1 / one_in`.
    ///
    /// `chance(1)` is always true (so is `chance(0)`, which we read as
    /// "certain" rather than divide by zero); `chance(4)` is true a quarter
    /// of the time.
    pub fn chance(&mut self, one_in: u32) -> bool {
        if one_in <= 1 {
            return true;
        }
        self.below(one_in as usize) == 0
    }

    /// Picks up to `fanout` distinct peers uniformly from `0..n`, never
    /// `me`.
    ///
    /// If fewer than `fanout` other sites exist, all of them are returned.
    /// Every subset of the right size is equally likely; the order within
    /// the returned `Vec` is not itself random, so callers that care about
    /// order should not rely on it.
    ///
    /// This is Robert Floyd's sampling algorithm: it draws exactly one
    /// random number per chosen peer and never loops on collisions. Its
    /// `contains` check is linear in `fanout`, which is fine because gossip
    /// fanouts are tiny (1–3).
    pub fn pick_peers(&mut self, me: usize, n: usize, fanout: usize) -> Vec<usize> {
        // Candidates are 0..n minus `me`, renumbered densely as 0..others.
        let others = if me < n { n - 1 } else { n };
        let want = fanout.min(others);
        let mut picked: Vec<usize> = Vec::with_capacity(want);
        for upper in (others - want)..others {
            let candidate = self.below(upper + 1);
            let choice = if picked.contains(&candidate) {
                upper
            } else {
                candidate
            };
            picked.push(choice);
        }
        // Map the dense numbering back to site ids, skipping over `me`.
        picked
            .into_iter()
            .map(|i| if me < n && i >= me { i + 1 } else { i })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = Rng::new(8);
        assert_ne!(xs[0], c.next_u64());
    }

    #[test]
    fn below_is_in_range_and_roughly_uniform() {
        let mut rng = Rng::new(1);
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            let x = rng.below(6);
            assert!(x < 6);
            counts[x] += 1;
        }
        for c in counts {
            // Expected 10_000 each; 5 standard deviations is about 450.
            assert!((9_500..10_500).contains(&c), "counts {counts:?}");
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.below(1), 0);
    }

    #[test]
    fn chance_matches_its_probability() {
        let mut rng = Rng::new(2);
        let hits = (0..40_000).filter(|_| rng.chance(4)).count();
        assert!((9_500..10_500).contains(&hits), "hits {hits}");
        assert!(rng.chance(1));
        assert!(rng.chance(0));
    }

    #[test]
    fn pick_peers_are_distinct_and_exclude_me() {
        let mut rng = Rng::new(3);
        for _ in 0..1_000 {
            let peers = rng.pick_peers(2, 5, 3);
            assert_eq!(peers.len(), 3);
            assert!(!peers.contains(&2));
            assert!(peers.iter().all(|&p| p < 5));
            let mut sorted = peers.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 3);
        }
    }

    #[test]
    fn pick_peers_with_too_few_sites_returns_them_all() {
        let mut rng = Rng::new(4);
        let mut peers = rng.pick_peers(1, 3, 10);
        peers.sort_unstable();
        assert_eq!(peers, vec![0, 2]);
        assert!(rng.pick_peers(0, 1, 3).is_empty());
        assert!(rng.pick_peers(0, 0, 3).is_empty());
        // `me` outside 0..n excludes nothing.
        let mut peers = rng.pick_peers(9, 3, 10);
        peers.sort_unstable();
        assert_eq!(peers, vec![0, 1, 2]);
    }

    #[test]
    fn pick_peers_is_uniform_over_peers() {
        let mut rng = Rng::new(5);
        let mut counts = [0u32; 5];
        for _ in 0..40_000 {
            for p in rng.pick_peers(0, 5, 2) {
                counts[p] += 1;
            }
        }
        assert_eq!(counts[0], 0);
        // Each of the 4 peers is in half of the samples: 20_000 expected.
        for &c in &counts[1..] {
            assert!((19_400..20_600).contains(&c), "counts {counts:?}");
        }
    }
}
