//! Code for tests and examples, not part of the stores: the crate's tests and examples reach
//! it here, and the library's documentation leaves it out.
//!
//! - [`linearizability`]: a Wing–Gong–Lowe checker for histories recorded against a store.
//! - [`demers`]: a simulation that runs the gossip rumor code on many sites, reproducing the
//!   tables of Demers et al.
//! - [`examples_support`]: helpers the examples share.
//!
//! It may import anything in the crate; nothing in the crate imports it.

pub mod demers;
pub mod examples_support;
pub mod linearizability;
