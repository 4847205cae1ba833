//! Membership: who the deployment's members are and which of them are alive.
//!
//! - [`view`]: the members as the proxy sees them (beats, states, the leader), shared by the
//!   routers, Paxos and `INFO`.
//!
//! It may import [`crate::protocol`] only.

pub mod view;
