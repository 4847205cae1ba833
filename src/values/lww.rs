//! Last-writer-wins values.
//!
//! A naive LWW register lets "the incoming value win", which is not a lattice: two replicas that
//! receive the same writes in different orders end up different. Here every write carries a
//! [`Stamp`] `(time, writer)`, and merge keeps the greater `(stamp, value)` pair. Because that is
//! a *total* order, merge is a max: associative, commutative and idempotent. (The value takes
//! part in the order only to break the tie of two different writes with the same stamp, which a
//! correct stamping never produces, but a lattice must be defined for every input.)

use lattices::{IsBot, IsTop, LatticeFrom, LatticeOrd, Merge};
use serde::{Deserialize, Serialize};

/// When and by whom a write was made: a Lamport time and the writer's id as tie-breaker.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Stamp {
    /// Lamport time: greater than every stamp the writer had seen.
    pub time: u64,
    /// The writer's id, so two writers at the same time are still ordered.
    pub writer: u64,
}

/// A last-writer-wins register. `value == None` is a tombstone: a delete is a write like any
/// other and wins or loses against concurrent writes by its stamp.
///
/// The derived `Ord` compares `stamp` first, then the value: the total order that merge follows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LwwValue<V> {
    /// The stamp of the write that produced this value.
    pub stamp: Stamp,
    /// The value written, or `None` for a delete.
    pub value: Option<V>,
}

impl<V> LwwValue<V> {
    /// A write of `value` at `stamp`.
    pub fn write(stamp: Stamp, value: V) -> Self {
        Self {
            stamp,
            value: Some(value),
        }
    }

    /// A delete at `stamp`.
    pub fn tombstone(stamp: Stamp) -> Self {
        Self { stamp, value: None }
    }

    /// The live value, or `None` if the last write was a delete.
    pub fn live(&self) -> Option<&V> {
        self.value.as_ref()
    }
}

impl<V: Ord> Merge<LwwValue<V>> for LwwValue<V> {
    fn merge(&mut self, other: LwwValue<V>) -> bool {
        if other > *self {
            *self = other;
            true
        } else {
            false
        }
    }
}

impl<V> LatticeFrom<LwwValue<V>> for LwwValue<V> {
    fn lattice_from(other: LwwValue<V>) -> Self {
        other
    }
}

impl<V: Ord> LatticeOrd for LwwValue<V> {}

impl<V> IsBot for LwwValue<V> {
    /// No value is below every other: even the zero stamp's tombstone is above nothing else,
    /// but values at the zero stamp still compare by content, so we report none as bottom.
    fn is_bot(&self) -> bool {
        false
    }
}

impl<V> IsTop for LwwValue<V> {
    fn is_top(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values::tests::{self as laws, merged};
    use proptest::prelude::*;

    /// Small stamps that collide often, and stamps at the very top of the range.
    fn lww() -> impl Strategy<Value = LwwValue<u8>> {
        let time = prop_oneof![0u64..4, Just(u64::MAX - 1), Just(u64::MAX)];
        let writer = prop_oneof![0u64..3, Just(u64::MAX)];
        (time, writer, proptest::option::of(0u8..3)).prop_map(|(time, writer, value)| LwwValue {
            stamp: Stamp { time, writer },
            value,
        })
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in lww(), b in lww()) {
            laws::commutative(a, b)?;
        }

        #[test]
        fn merge_is_associative(a in lww(), b in lww(), c in lww()) {
            laws::associative(a, b, c)?;
        }

        #[test]
        fn merge_is_idempotent(a in lww(), b in lww()) {
            laws::idempotent(a, b)?;
        }

        #[test]
        fn merge_reports_change_exactly_when_the_value_changes(a in lww(), b in lww()) {
            let mut m = a.clone();
            let changed = m.merge(b);
            prop_assert_eq!(changed, m != a);
        }
    }

    #[test]
    fn the_later_stamp_wins_whatever_the_arrival_order() {
        let old = LwwValue::write(Stamp { time: 1, writer: 9 }, 1);
        let new = LwwValue::write(Stamp { time: 2, writer: 0 }, 2);
        assert_eq!(merged(old.clone(), new.clone()).live(), Some(&2));
        assert_eq!(merged(new, old).live(), Some(&2));
    }

    #[test]
    fn a_tombstone_merges_like_a_write() {
        let put = LwwValue::write(Stamp { time: 1, writer: 0 }, 5);
        let del = LwwValue::tombstone(Stamp { time: 2, writer: 0 });
        assert_eq!(merged(put.clone(), del.clone()).live(), None);
        assert_eq!(merged(del.clone(), put.clone()).live(), None);
        // A write after the delete resurrects the key.
        let again = LwwValue::write(Stamp { time: 3, writer: 1 }, 6);
        assert_eq!(merged(del, again).live(), Some(&6));
    }

    #[test]
    fn lattices_own_law_checks_pass() {
        let items: Vec<LwwValue<u8>> = (0..3)
            .flat_map(|t| {
                [None, Some(1), Some(2)].map(move |v| LwwValue {
                    stamp: Stamp { time: t, writer: 0 },
                    value: v,
                })
            })
            .collect();
        lattices::test::check_lattice_properties(&items);
    }
}
