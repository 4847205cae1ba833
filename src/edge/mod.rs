//! The Redis-protocol edge: everything between a client's socket and the dataflow's typed
//! requests. Every architecture's proxy runs it, so it is hardened once, here.
//!
//! - [`resp`]: RESP parsing (incremental, bounded) and reply encoding.
//! - [`commands`]: the command table — what each command means, AUTH, and how results
//!   become one reply; [`auth`] keeps the password as a digest.
//! - [`connection`]: one connection's protocol logic without its I/O — what each byte a
//!   client sends leads to; a property test drives it with arbitrary byte streams.
//! - [`reply_queue`]: per-connection reply order, O(1) result matching, request deadlines.
//! - [`outbox`]: unsent replies, written in bounded chunks without copying large values.
//! - [`stats`]: the counters behind `INFO` (its `# Members` and `# Paxos` sections come from
//!   [`crate::membership::view`]).
//! - [`config`]: the front's settings and how they reach the proxy process.
//! - [`front`]: the TCP server itself, a sidecar inside the proxy's Hydro process.
//! - [`client`]: a minimal RESP client for the demo driver.
//!
//! All but `front` and `client` are pure code without I/O, tested on their own. The edge may
//! import the routing ring (`KEYSHARD`, `SCAN` across shards), [`crate::membership`],
//! [`crate::store`]'s keyspace and refusals, and what is below them; no architecture, and
//! nothing of deployment.

pub mod auth;
pub mod client;
pub mod commands;
pub mod config;
pub mod connection;
pub mod front;
pub mod outbox;
pub mod reply_queue;
pub mod resp;
pub mod stats;
