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
//!
//! **Counters.** Beside the versions, a causal value holds a [`PnCounter`]: `INCR` on a
//! replicated store cannot be "read 5, write 6" — two replicas would both write 6 and one
//! increment would be lost (see the tests below) — so each replica counts its own increments
//! and decrements in its own entry, and merging takes each entry's maximum: every increment
//! is counted once, wherever it was made, whatever order replicas hear of them in.

use std::collections::{BTreeMap, BTreeSet};

use lattices::set_union::SetUnionBTreeSet;
use lattices::{DomPair, Merge};
use serde::{Deserialize, Serialize};

use super::VectorClock;

/// A causally versioned value: siblings (`Some(v)`, or `None` for a delete) under one clock,
/// and a counter (see the module docs).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de> + Ord"))]
pub struct CausalValue<T> {
    register: DomPair<VectorClock, SetUnionBTreeSet<Option<T>>>,
    counter: PnCounter,
}

/// Equal when the clocks, the versions and the counters are (what anti-entropy's
/// fingerprints hash).
impl<T: PartialEq> PartialEq for CausalValue<T> {
    fn eq(&self, other: &Self) -> bool {
        self.clock() == other.clock()
            && self.versions() == other.versions()
            && self.counter == other.counter
    }
}

impl<T: Eq> Eq for CausalValue<T> {}

impl<T: Ord> CausalValue<T> {
    /// The versions `versions` under the clock `clock`.
    pub fn new(clock: VectorClock, versions: BTreeSet<Option<T>>) -> Self {
        Self {
            register: DomPair::new(clock, SetUnionBTreeSet::new(versions)),
            counter: PnCounter::default(),
        }
    }

    /// No versions, and `counter`: what an increment writes (it merges into the key's
    /// versions without touching them).
    pub fn counting(counter: PnCounter) -> Self {
        Self {
            counter,
            ..Self::new(VectorClock::new(), BTreeSet::new())
        }
    }
}

impl<T> CausalValue<T> {
    /// The causal history of the versions.
    pub fn clock(&self) -> &VectorClock {
        self.register.as_reveal_ref().0
    }

    /// Every version: `Some(value)` for a write, `None` for a delete.
    pub fn versions(&self) -> &BTreeSet<Option<T>> {
        self.register.as_reveal_ref().1.as_reveal_ref()
    }

    /// The key's counter.
    pub fn counter(&self) -> &PnCounter {
        &self.counter
    }
}

impl<T: Ord> Merge<CausalValue<T>> for CausalValue<T> {
    fn merge(&mut self, other: CausalValue<T>) -> bool {
        let versions = self.register.merge(other.register);
        let counts = self.counter.merge(other.counter);
        versions || counts
    }
}

/// What one replica counted: increments and decrements, each only ever growing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Counts {
    /// The sum of this replica's increments.
    pub up: u64,
    /// The sum of this replica's decrements.
    pub down: u64,
}

impl Counts {
    fn join(self, other: Counts) -> Counts {
        Counts {
            up: self.up.max(other.up),
            down: self.down.max(other.down),
        }
    }
}

/// A PN-counter that DEL can reset: each replica's own [`Counts`], and the counts a delete
/// had seen (`reset`), both merged entry by entry with `max`. Its value is what was counted
/// since the reset; an increment the delete had not seen survives it (add wins).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PnCounter {
    counts: BTreeMap<String, Counts>,
    reset: BTreeMap<String, Counts>,
}

impl PnCounter {
    /// The counter's value, or `None` when it counts nothing (never counted, or every count
    /// reset); an error when it does not fit in an `i64`.
    pub fn value(&self) -> Option<Result<i64, ()>> {
        let mut total: i128 = 0;
        let mut live = false;
        for (node, counts) in &self.counts {
            let reset = self.reset.get(node).copied().unwrap_or_default();
            let (up, down) = (
                counts.up - reset.up.min(counts.up),
                counts.down - reset.down.min(counts.down),
            );
            live |= up > 0 || down > 0;
            total += i128::from(up) - i128::from(down);
        }
        live.then(|| i64::try_from(total).map_err(|_| ()))
    }

    /// This counter after `node` adds `delta` (negative: a decrement); `None` when its
    /// entry would overflow.
    pub fn add(&self, node: &str, delta: i64) -> Option<PnCounter> {
        let mut next = self.clone();
        let counts = next.counts.entry(node.to_string()).or_default();
        if delta >= 0 {
            counts.up = counts.up.checked_add(delta.unsigned_abs())?;
        } else {
            counts.down = counts.down.checked_add(delta.unsigned_abs())?;
        }
        Some(next)
    }

    /// This counter reset: what it counted so far no longer counts.
    pub fn reset(&self) -> PnCounter {
        PnCounter {
            counts: self.counts.clone(),
            reset: self.counts.clone(),
        }
    }

    fn merge(&mut self, other: PnCounter) -> bool {
        let before = self.clone();
        for (map, theirs) in [
            (&mut self.counts, other.counts),
            (&mut self.reset, other.reset),
        ] {
            for (node, counts) in theirs {
                let mine = map.entry(node).or_default();
                *mine = mine.join(counts);
            }
        }
        *self != before
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
            proptest::collection::vec((prop_oneof!["a", "b"], -3i64..4), 0..4),
            proptest::bool::ANY,
        )
            .prop_map(|(m, v, adds, reset)| {
                let clock = VectorClock::from_entries(m.iter().map(|(n, c)| (n.as_str(), *c)));
                let mut value = match v {
                    Some(v) => causal_write(clock, v),
                    None => causal_delete(clock),
                };
                let mut counter = PnCounter::default();
                for (node, delta) in adds {
                    counter = counter.add(&node, delta).expect("small counts");
                }
                if reset {
                    counter = counter.reset();
                }
                value.merge(CausalValue::counting(counter));
                value
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

    /// What the book wants shown: INCR as read-modify-write of a last-writer-wins value
    /// loses an increment when two replicas do it at once — both read 5, both write 6 — and
    /// the merge keeps one of the sixes; as a PN-counter, each replica counts its own
    /// increment and the merge keeps both: 7.
    #[test]
    fn concurrent_increments_lose_one_as_lww_and_none_as_a_counter() {
        use crate::values::{LwwValue, Stamp};
        let five = LwwValue::write(Stamp { time: 1, writer: 0 }, 5i64);
        let read = *five.live().expect("5");
        let at_r0 = LwwValue::write(Stamp { time: 2, writer: 0 }, read + 1);
        let at_r1 = LwwValue::write(Stamp { time: 2, writer: 1 }, read + 1);
        assert_eq!(merged(at_r0, at_r1).live(), Some(&6), "one increment lost");

        let base = PnCounter::default().add("r0", 5).unwrap();
        let at_r0 = base.add("r0", 1).unwrap();
        let at_r1 = base.add("r1", 1).unwrap();
        let both = merged(
            CausalValue::<u8>::counting(at_r0),
            CausalValue::counting(at_r1),
        );
        assert_eq!(both.counter().value(), Some(Ok(7)), "no increment lost");
    }

    /// DEL resets what the deleting replica had seen counted; an increment made elsewhere
    /// meanwhile survives the reset (add wins), and nothing else does.
    #[test]
    fn a_reset_counter_keeps_only_increments_it_had_not_seen() {
        let seen = PnCounter::default()
            .add("r0", 3)
            .unwrap()
            .add("r1", -1)
            .unwrap();
        let deleted = seen.reset();
        assert_eq!(deleted.value(), None, "a reset counter counts nothing");
        let meanwhile = seen.add("r1", 5).unwrap();
        let both = merged(
            CausalValue::<u8>::counting(deleted),
            CausalValue::counting(meanwhile),
        );
        assert_eq!(both.counter().value(), Some(Ok(5)));
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
