//! Routers: how the proxy decides which storage member serves each request.
//!
//! - [`ring`]: consistent hashing — which shard holds a key, and which members make up a
//!   shard (cut as the [`Layout`](crate::membership::Layout) of a storage cluster says);
//! - [`sticky`]: the routing decisions, kept apart from the dataflow so they can be tested
//!   alone — each request goes to its key's shard and, inside the shard, each connection
//!   sticks to one live member (rendezvous hashing); members are watched by heartbeats, and
//!   requests stranded at a member that died are re-sent or answered;
//! - [`cluster`]: that router as a Hydro dataflow, from the proxy to a storage cluster and back.
//!   The replicated store uses it with one shard of N replicas, the sharded store with S
//!   shards of one member, the sharded + replicated store with S shards of R.
//!
//! - [`local`]: Local's router, which keeps the store in the proxy itself.
//!
//! This folder may import [`crate::server`] (the `Router` trait), [`crate::net`] and
//! everything below them; not the edge, replication or consensus.

pub mod cluster;
pub mod local;
pub mod ring;
pub mod sticky;
