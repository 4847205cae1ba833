//! Demers-style gossip: the logic, with no I/O, no networking and no clocks, and
//! its dataflow.
//!
//! Replicas of an eventually consistent store spread writes to each other
//! with two complementary epidemics, after Demers et al., *Epidemic
//! algorithms for replicated database maintenance* (PODC 1987):
//!
//! * [`rumor`] — **rumor mongering**: a freshly changed key is "hot" and
//!   pushed to random peers until the replica loses interest. Fast and
//!   cheap, but may miss a few replicas.
//! * [`anti_entropy`] — **anti-entropy**: replicas periodically compare
//!   compact digests of their whole stores and repair every difference.
//!   Slower, but guarantees convergence.
//! * [`rng`] — the small seeded random number generator they all share, so
//!   that runs are reproducible.
//! * [`replica`] — one replica's gossip as a state machine: which rumors to
//!   push, which feedback to send, how an anti-entropy exchange proceeds.
//! * [`flow`] — that state machine wired into a replica's Hydro dataflow
//!   beside its storage core: the gossip [`Replication`](crate::server::Replication).
//!
//! (A simulation that runs [`rumor`]'s code on 1000 sites and compares the results with the
//! paper's tables is in [`crate::testing::demers`].)
//!
//! Everything but [`flow`] is deterministic given a seed and does no I/O,
//! which is what makes it testable; the dataflow supplies the network and
//! the timers.

pub mod anti_entropy;
pub mod flow;
pub mod replica;
pub mod rng;
pub mod rumor;

/// Tag type of a cluster of gossiping replicas (the replicated store's storage cluster).
pub struct Replica;
