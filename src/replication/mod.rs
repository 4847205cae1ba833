//! Replication plug-ins: what keeps the copies of a key in step.
//!
//! - [`gossip`]: Demers-style epidemic replication — rumor mongering and anti-entropy —
//!   wired around a replica's storage core.
//!
//! (Single-copy stores use [`NoReplication`](crate::server::NoReplication); the
//! linearizable store replicates by consensus, see [`crate::consensus`].) This folder may
//! import the server's plug-in traits, [`crate::net`], [`crate::membership`] and everything
//! below them; not routing, consensus or the edge.

pub mod gossip;
