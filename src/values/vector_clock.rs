//! Vector clocks: one counter per node, merged by pointwise max.
//!
//! Clock `a` happened before `b` when every entry of `a` is ≤ the same entry of `b` and they
//! differ; when neither is ≤ the other the writes are *concurrent*, and a causal store keeps
//! both (see [`super::causal`]). That partial order is what `PartialOrd` implements here.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use lattices::{IsBot, IsTop, LatticeFrom, LatticeOrd, Merge};
use serde::{Deserialize, Serialize};

/// A vector clock: for each node id, how many of its events are in this history.
/// Nodes not present count as 0.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct VectorClock(BTreeMap<String, u64>);

impl VectorClock {
    /// The empty clock (no events).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one more event by `node` and returns the clock, for building clocks fluently.
    pub fn tick(mut self, node: &str) -> Self {
        self.increment(node);
        self
    }

    /// Records one more event by `node`.
    pub fn increment(&mut self, node: &str) {
        *self.0.entry(node.to_owned()).or_insert(0) += 1;
    }

    /// How many of `node`'s events this clock has seen.
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// True when neither clock happened before the other and they are not equal.
    pub fn concurrent_with(&self, other: &Self) -> bool {
        self.partial_cmp(other).is_none()
    }
}

impl Merge<VectorClock> for VectorClock {
    fn merge(&mut self, other: VectorClock) -> bool {
        let mut changed = false;
        for (node, count) in other.0 {
            let mine = self.0.entry(node).or_insert(0);
            if count > *mine {
                *mine = count;
                changed = true;
            }
        }
        changed
    }
}

impl LatticeFrom<VectorClock> for VectorClock {
    fn lattice_from(other: VectorClock) -> Self {
        other
    }
}

impl PartialOrd for VectorClock {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        let nodes = self.0.keys().chain(other.0.keys());
        let (mut less, mut greater) = (false, false);
        for node in nodes {
            match self.get(node).cmp(&other.get(node)) {
                Ordering::Less => less = true,
                Ordering::Greater => greater = true,
                Ordering::Equal => {}
            }
        }
        match (less, greater) {
            (false, false) => Some(Ordering::Equal),
            (true, false) => Some(Ordering::Less),
            (false, true) => Some(Ordering::Greater),
            (true, true) => None,
        }
    }
}

impl LatticeOrd for VectorClock {}

impl IsBot for VectorClock {
    fn is_bot(&self) -> bool {
        self.0.values().all(|&c| c == 0)
    }
}

impl IsTop for VectorClock {
    fn is_top(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::{self as laws, merged};
    use proptest::prelude::*;

    fn clock() -> impl Strategy<Value = VectorClock> {
        proptest::collection::vec(prop_oneof!["a", "b", "c"], 0..6).prop_map(|events| {
            let mut clock = VectorClock::new();
            for node in events {
                clock.increment(&node);
            }
            clock
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in clock(), b in clock()) {
            laws::commutative(a, b)?;
        }

        #[test]
        fn merge_is_associative(a in clock(), b in clock(), c in clock()) {
            laws::associative(a, b, c)?;
        }

        #[test]
        fn merge_is_idempotent(a in clock(), b in clock()) {
            laws::idempotent(a, b)?;
        }

        #[test]
        fn merge_is_the_least_upper_bound(a in clock(), b in clock()) {
            let m = merged(a.clone(), b.clone());
            prop_assert!(a <= m && b <= m);
        }
    }

    #[test]
    fn happened_before_and_concurrency() {
        let a1 = VectorClock::new().tick("a");
        let a2 = a1.clone().tick("a");
        let b1 = VectorClock::new().tick("b");
        assert!(a1 < a2);
        assert!(a1.concurrent_with(&b1));
        assert!(!a1.concurrent_with(&a2));
        let both = merged(a2.clone(), b1.clone());
        assert!(a2 < both && b1 < both);
        assert_eq!(both.get("a"), 2);
        assert_eq!(both.get("z"), 0);
    }
}
