//! Causal values: a vector clock *dominating* a set of siblings.
//!
//! A causal value is lattices' `DomPair<VectorClock, SetUnion<..>>`, which merges like this:
//! if one clock happened after the other, its value set replaces the older one (the newer
//! write saw the older and overwrote it); if the clocks are concurrent, the clocks merge and
//! the sets union, keeping both writes as *siblings* for the application to reconcile. A
//! delete is a tombstone (`None`) written with its own clock, so it merges like any other
//! write and can itself be a sibling.
//!
//! [`CausalValue`] wraps the `DomPair` in a type of our own: the code Hydro generates for
//! each process names every type by the path it is defined at, and `DomPair`'s module is
//! private to the lattices crate.

use std::collections::BTreeSet;

use lattices::set_union::SetUnionBTreeSet;
use lattices::{DomPair, Merge};
use serde::{Deserialize, Serialize};

use super::VectorClock;

/// A causally versioned value: siblings (`Some(v)`, or `None` for a delete) under one clock.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct CausalValue<T>(DomPair<VectorClock, SetUnionBTreeSet<Option<T>>>);

/// Equal when the clocks and the versions are (what anti-entropy's fingerprints hash).
impl<T: PartialEq> PartialEq for CausalValue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.clock() == other.clock() && self.versions() == other.versions()
    }
}

impl<T: Eq> Eq for CausalValue<T> {}

impl<T: Ord> CausalValue<T> {
    /// The versions `versions` under the clock `clock`.
    pub fn new(clock: VectorClock, versions: BTreeSet<Option<T>>) -> Self {
        Self(DomPair::new(clock, SetUnionBTreeSet::new(versions)))
    }
}

impl<T> CausalValue<T> {
    /// The causal history of the versions.
    pub fn clock(&self) -> &VectorClock {
        self.0.as_reveal_ref().0
    }

    /// Every version: `Some(value)` for a write, `None` for a delete.
    pub fn versions(&self) -> &BTreeSet<Option<T>> {
        self.0.as_reveal_ref().1.as_reveal_ref()
    }
}

impl<T: Ord> Merge<CausalValue<T>> for CausalValue<T> {
    fn merge(&mut self, other: CausalValue<T>) -> bool {
        self.0.merge(other.0)
    }
}

/// A write of `value` with causal history `clock`.
pub fn causal_write<T: Ord>(clock: VectorClock, value: T) -> CausalValue<T> {
    CausalValue::new(clock, BTreeSet::from([Some(value)]))
}

/// A delete with causal history `clock`.
pub fn causal_delete<T: Ord>(clock: VectorClock) -> CausalValue<T> {
    CausalValue::new(clock, BTreeSet::from([None]))
}

/// The live siblings of a causal value, in a stable order; empty when only deletes remain.
pub fn siblings<T: Clone>(value: &CausalValue<T>) -> Vec<T> {
    value.versions().iter().flatten().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::{self as laws, merged};
    use proptest::prelude::*;

    /// Values whose clocks may carry zero entries (as a peer's may), which must not make two
    /// equal versions look different.
    fn value() -> impl Strategy<Value = CausalValue<u8>> {
        (
            proptest::collection::btree_map(prop_oneof!["a", "b"], 0u64..3, 0..3),
            proptest::option::of(0u8..3),
        )
            .prop_map(|(m, v)| {
                let clock = VectorClock::from_entries(m.iter().map(|(n, c)| (n.as_str(), *c)));
                match v {
                    Some(v) => causal_write(clock, v),
                    None => causal_delete(clock),
                }
            })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in value(), b in value()) {
            laws::commutative(a, b)?;
        }

        #[test]
        fn merge_is_idempotent(a in value(), b in value()) {
            laws::idempotent(a, b)?;
        }
    }

    /// DomPair is associative only over values a causal system can produce: every write ticks
    /// its writer's own entry, so a write that saw both `a` and `b` has a clock *above* their
    /// merge (`{a:2, b:1}`, not `{a:1, b:1}`). Build such histories and check associativity.
    #[test]
    fn merge_is_associative_over_causal_histories() {
        let a = causal_write(VectorClock::new().tick("a"), 1u8);
        let b = causal_write(VectorClock::new().tick("b"), 2);
        let ab = causal_write(VectorClock::new().tick("a").tick("b").tick("a"), 3);
        let d = causal_delete(VectorClock::new().tick("a").tick("a").tick("a").tick("b"));
        let all = [a, b, ab, d];
        for x in &all {
            for y in &all {
                for z in &all {
                    laws::associative(x.clone(), y.clone(), z.clone()).unwrap();
                }
            }
        }
    }

    #[test]
    fn concurrent_writes_become_siblings() {
        let alice = causal_write(VectorClock::new().tick("alice"), "a".to_string());
        let bob = causal_write(VectorClock::new().tick("bob"), "b".to_string());
        let both = merged(alice, bob);
        assert_eq!(siblings(&both), vec!["a".to_string(), "b".to_string()]);

        // A write that saw both siblings replaces them.
        let resolved_clock = both.clock().clone().tick("alice");
        let resolved = causal_write(resolved_clock, "ab".to_string());
        assert_eq!(siblings(&merged(both, resolved)), vec!["ab".to_string()]);
    }

    #[test]
    fn a_delete_is_a_tombstone_that_merges_like_a_write() {
        let put = causal_write(VectorClock::new().tick("a"), 5u8);
        let del = causal_delete(VectorClock::new().tick("a").tick("a"));
        assert!(siblings(&merged(put.clone(), del.clone())).is_empty());
        assert!(siblings(&merged(del.clone(), put.clone())).is_empty());
        // A delete concurrent with a write leaves the write as the only live sibling.
        let concurrent = causal_write(VectorClock::new().tick("b"), 7u8);
        assert_eq!(siblings(&merged(del, concurrent)), vec![7]);
    }
}
