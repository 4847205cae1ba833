//! Values a store keeps per key, each a *lattice*: merging two replicas' copies in any order,
//! any number of times, gives the same result. That is what lets replicas exchange state by
//! gossip without coordination.
//!
//! - [`lww`]: last-writer-wins, ordered by a `(timestamp, writer)` stamp.
//! - [`vector_clock`]: the causal history of a value.
//! - [`causal`]: a vector clock dominating a set of sibling values.

pub mod causal;
pub mod lww;
pub mod vector_clock;

pub use causal::CausalValue;
pub use lww::{LwwValue, Stamp};
pub use vector_clock::VectorClock;
