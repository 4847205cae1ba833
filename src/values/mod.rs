//! Values a store keeps per key, each a *lattice*: merging two replicas' copies in any order,
//! any number of times, gives the same result. That is what lets replicas exchange state by
//! gossip without coordination.
//!
//! - [`lww`]: last-writer-wins, ordered by a `(timestamp, writer)` stamp.
//! - [`vector_clock`]: the causal history of a value.
//! - [`causal`]: a vector clock dominating a set of sibling values.
//! - [`fingerprint`]: what replication reads of a value (its fingerprint, tombstones).
//!
//! This folder may import [`crate::protocol`] and [`crate::hashing`] only.

pub mod causal;
pub mod fingerprint;
pub mod lww;
pub mod vector_clock;

pub use causal::CausalValue;
pub use fingerprint::Fingerprint;
pub use lww::{LwwValue, Stamp};
pub use vector_clock::VectorClock;

/// The lattice laws, written once for every value type's property tests (`use … tests as
/// laws`). Two quirks of Hydro's staging (which copies test modules into the generated crate)
/// shape it: only test modules named `tests` are copied, and `pub` functions are re-exported
/// from the built crate, where test-only code does not exist, so these are `pub(crate)`.
#[cfg(test)]
pub mod tests {
    use lattices::Merge;
    use proptest::prelude::*;

    /// `a ⊔ b`.
    pub(crate) fn merged<T: Merge<T>>(mut a: T, b: T) -> T {
        a.merge(b);
        a
    }

    /// `a ⊔ b = b ⊔ a`.
    pub(crate) fn commutative<T>(a: T, b: T) -> Result<(), TestCaseError>
    where
        T: Merge<T> + Clone + PartialEq + std::fmt::Debug,
    {
        prop_assert_eq!(merged(a.clone(), b.clone()), merged(b, a));
        Ok(())
    }

    /// `(a ⊔ b) ⊔ c = a ⊔ (b ⊔ c)`.
    pub(crate) fn associative<T>(a: T, b: T, c: T) -> Result<(), TestCaseError>
    where
        T: Merge<T> + Clone + PartialEq + std::fmt::Debug,
    {
        prop_assert_eq!(
            merged(merged(a.clone(), b.clone()), c.clone()),
            merged(a, merged(b, c))
        );
        Ok(())
    }

    /// `(a ⊔ b) ⊔ b = a ⊔ b`: delivering the same value twice changes nothing.
    pub(crate) fn idempotent<T>(a: T, b: T) -> Result<(), TestCaseError>
    where
        T: Merge<T> + Clone + PartialEq + std::fmt::Debug,
    {
        let once = merged(a, b.clone());
        prop_assert_eq!(merged(once.clone(), b), once);
        Ok(())
    }
}
