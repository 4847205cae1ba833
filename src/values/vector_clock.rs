//! Vector clocks: one counter per node, merged by pointwise max.
//!
//! Clock `a` happened before `b` when every entry of `a` is ≤ the same entry of `b` and they
//! differ; when neither is ≤ the other the writes are *concurrent*, and a causal store keeps
//! both (see [`super::causal`]). That partial order is what `PartialOrd` implements here.
//!
//! A node that is absent counts as 0, so `{a: 0}` and `{}` are the same clock. Equality and
//! hashing must agree with that (a store that hashed `{a: 0}` apart from `{}` would keep two
//! copies of one version), so they are written by hand to ignore zero entries, and `merge`
//! never inserts one. Clocks that arrive from peers may still carry zeros; they compare, hash
//! and merge as if the zeros were absent.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};

use lattices::{IsBot, IsTop, LatticeFrom, LatticeOrd, Merge};
use serde::{Deserialize, Serialize};

/// A vector clock: for each node id, how many of its events are in this history.
/// Nodes not present count as 0.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VectorClock(BTreeMap<String, u64>);

impl VectorClock {
    /// The empty clock (no events).
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock with the given counts, as a peer may send it: a zero count means the same as
    /// an absent node.
    pub fn from_entries<'n>(entries: impl IntoIterator<Item = (&'n str, u64)>) -> Self {
        Self(
            entries
                .into_iter()
                .map(|(n, c)| (n.to_owned(), c))
                .collect(),
        )
    }

    /// Records one more event by `node` and returns the clock, for building clocks fluently
    /// (at `u64::MAX` the count stays where it is; see [`VectorClock::increment`]).
    pub fn tick(mut self, node: &str) -> Self {
        self.increment(node);
        self
    }

    /// Records one more event by `node`. Returns false, changing nothing, when `node`'s count
    /// is already `u64::MAX`: a clock that a peer pushed to the limit cannot be advanced, and
    /// the caller must refuse the write rather than stamp it with a clock that does not
    /// dominate what it saw.
    pub fn increment(&mut self, node: &str) -> bool {
        let count = self.0.entry(node.to_owned()).or_insert(0);
        match count.checked_add(1) {
            Some(next) => {
                *count = next;
                true
            }
            None => false,
        }
    }

    /// Raises `node`'s count to `count` (a lower `count` changes nothing: a clock only grows).
    pub fn raise(&mut self, node: &str, count: u64) {
        let entry = self.0.entry(node.to_owned()).or_insert(0);
        *entry = (*entry).max(count);
    }

    /// How many of `node`'s events this clock has seen.
    pub fn get(&self, node: &str) -> u64 {
        self.0.get(node).copied().unwrap_or(0)
    }

    /// The nodes with a non-zero count, and their counts, in node order.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0
            .iter()
            .filter(|&(_, &n)| n > 0)
            .map(|(node, &n)| (node.as_str(), n))
    }

    /// True when neither clock happened before the other and they are not equal.
    pub fn concurrent_with(&self, other: &Self) -> bool {
        self.partial_cmp(other).is_none()
    }
}

/// As text: `node:count` entries, comma-separated, in node order, zeros left out (`r0:2,r1:1`;
/// the empty clock is the empty string). This is the causal context clients see and hand back.
impl std::fmt::Display for VectorClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (node, count)) in self.entries().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{node}:{count}")?;
        }
        Ok(())
    }
}

/// Parses what [`Display`](std::fmt::Display) writes.
impl std::str::FromStr for VectorClock {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut clock = VectorClock::new();
        for entry in text.split(',').filter(|e| !e.is_empty()) {
            let (node, count) = entry
                .rsplit_once(':')
                .ok_or_else(|| format!("'{entry}' is not node:count"))?;
            let count: u64 = count
                .parse()
                .map_err(|_| format!("'{count}' is not a count"))?;
            if node.is_empty() || clock.0.insert(node.to_owned(), count).is_some() {
                return Err(format!("'{entry}': empty or repeated node"));
            }
        }
        Ok(clock)
    }
}

impl PartialEq for VectorClock {
    fn eq(&self, other: &Self) -> bool {
        self.entries().eq(other.entries())
    }
}

impl Eq for VectorClock {}

impl Hash for VectorClock {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for (node, count) in self.entries() {
            node.hash(state);
            count.hash(state);
        }
    }
}

impl Merge<VectorClock> for VectorClock {
    fn merge(&mut self, other: VectorClock) -> bool {
        let mut changed = false;
        for (node, count) in other.0 {
            // A zero entry adds nothing; inserting it would only make the map differ.
            if count > self.get(&node) {
                self.0.insert(node, count);
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

    /// Clocks built from events, plus raw entries that a peer could send: zero counts, and
    /// counts at the very top of the range.
    fn clock() -> impl Strategy<Value = VectorClock> {
        let count = prop_oneof![Just(0u64), 1u64..4, Just(u64::MAX - 1), Just(u64::MAX)];
        proptest::collection::btree_map(prop_oneof!["a", "b", "c"], count, 0..4).prop_map(
            |entries| VectorClock::from_entries(entries.iter().map(|(n, c)| (n.as_str(), *c))),
        )
    }

    /// A hash with fixed keys, so two calls on equal clocks must agree.
    fn hash_of(clock: &VectorClock) -> u64 {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        BuildHasherDefault::<DefaultHasher>::default().hash_one(clock)
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

        #[test]
        fn equality_agrees_with_the_partial_order(a in clock(), b in clock()) {
            prop_assert_eq!(a == b, a.partial_cmp(&b) == Some(Ordering::Equal));
        }

        #[test]
        fn equal_clocks_hash_alike(a in clock(), b in clock()) {
            if a == b {
                prop_assert_eq!(hash_of(&a), hash_of(&b));
            }
            // Every clock equals itself with its zero entries dropped.
            let trimmed = VectorClock::from_entries(a.entries());
            prop_assert_eq!(hash_of(&a), hash_of(&trimmed));
            prop_assert_eq!(a, trimmed);
        }

        #[test]
        fn merge_reports_change_exactly_when_the_clock_changes(a in clock(), b in clock()) {
            let mut m = a.clone();
            let changed = m.merge(b);
            prop_assert_eq!(changed, m != a);
        }
    }

    proptest! {
        #[test]
        fn text_form_round_trips(a in clock()) {
            prop_assert_eq!(a.to_string().parse::<VectorClock>(), Ok(a));
        }
    }

    #[test]
    fn text_form_is_readable_and_malformed_text_is_refused() {
        let clock = VectorClock::new().tick("r1").tick("r0").tick("r1");
        assert_eq!(clock.to_string(), "r0:1,r1:2");
        assert_eq!("".parse::<VectorClock>(), Ok(VectorClock::new()));
        for bad in ["r0", "r0:x", ":1", "r0:1,r0:2", "r0:-1"] {
            assert!(bad.parse::<VectorClock>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn a_zero_entry_is_the_same_clock_as_no_entry() {
        let zero = VectorClock::from_entries([("a", 0)]);
        assert_eq!(zero, VectorClock::new());
        assert_eq!(hash_of(&zero), hash_of(&VectorClock::new()));
        let mut m = VectorClock::new();
        assert!(!m.merge(zero));
        assert_eq!(m.0.len(), 0, "merge inserted a zero entry");
    }

    #[test]
    fn an_exhausted_entry_refuses_to_advance() {
        let mut top = VectorClock::from_entries([("a", u64::MAX)]);
        assert!(!top.increment("a"));
        assert_eq!(top.get("a"), u64::MAX);
        assert!(top.increment("b"));
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
