//! Membership: who the deployment's members are, how a storage cluster is cut into shards,
//! and which members are alive — one view that the routers, Paxos and `INFO` share.
//!
//! - [`mod@incarnation`]: which start of a member a process is (restarts count up).
//! - [`ids`]: [`MemberId`] and [`ShardId`], so a member and a shard are never confused.
//! - [`layout`]: which members make up each shard of a storage cluster ([`Layout`]).
//! - [`liveness`]: the failure detector (heartbeats, ticks, suspicion) every router runs.
//! - [`view`]: the members and the leader as the proxy last saw them, published by the
//!   routers' dataflows and read by `INFO`.
//!
//! It imports nothing from the crate: everything else may import it.

pub mod ids;
pub mod incarnation;
pub mod layout;
pub mod liveness;
pub mod view;

pub use ids::{MemberId, MemberRange, ShardId};
pub use incarnation::incarnation;
pub use layout::Layout;
pub use liveness::{Beat, Liveness, MemberView, Standing, set_standing, standing};
