//! Routers: how the proxy decides which storage member serves each request.
//!
//! - [`sticky`]: each connection sticks to one live replica (rendezvous hashing), replicas are
//!   watched by heartbeats, and requests stranded at a replica that died are re-sent or
//!   answered — the replicated store's router, kept apart from its dataflow so it can be tested
//!   alone; [`replicas`]: that router as a Hydro dataflow from the proxy to a replica cluster.
//!
//! Local's router, which keeps the store in the proxy itself, is
//! [`crate::server::LocalRouter`].

pub mod replicas;
pub mod sticky;
