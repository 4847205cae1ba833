//! `KVSServer<V, Storage, Router, Replication>`: the one composition every architecture is built from.
//!
//! ```text
//!   clients ──RESP──▶ front ──▶ Router::route ─────▶ Replication::wire( Storage ) ──┐
//!   (proxy process)      ▲       (picks the member,   (the core, plus gossip         │
//!                        │        fixes the order)      between replicas)            │
//!                        └────── responses, and the router's own answers ◀───────────┘
//!                                for requests a dead member held (the failure path)
//! ```
//!
//! - **Router** decides which storage member serves a request and in what order members see
//!   requests. Local: the proxy *is* the store. Sharded: a consistent-hash ring. Linearizable:
//!   the route runs through Multi-Paxos, so the *ordering stage* is a router whose output is
//!   the decided log, in slot order.
//! - **Storage** is a core: [`KVSCore`](crate::KVSCore) (LWW),
//!   [`LatticeKVSCore`](crate::LatticeKVSCore) (merging values clients stamp) or
//!   [`CausalKVSCore`](crate::CausalKVSCore) (vector clocks the replica stamps).
//! - **Replication** wraps the storage: it sees every change the core made and feeds peers'
//!   values back into *the same* core, so every write that reaches a replica reaches the state
//!   that serves its reads. [`NoReplication`] is the single-copy case: its core only answers
//!   ([`StorageAt::answers`]), since nobody would read its changes.
//!
//! The traits are in [`plugins`]; the plug-ins themselves in [`crate::routing`],
//! [`crate::replication`] and [`crate::consensus`].
//!
//! This folder may import [`crate::store`] and what is below it: it names the plug-ins'
//! traits, never a plug-in.
//!
//! [`KVSServer::serve`] is the only place these stages are wired together. Storage members
//! know who they are ([`Member`]): a replica stamps its writes with its own id.

pub mod plugins;

use std::marker::PhantomData;

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::prelude::*;

use crate::protocol::{KVSRequest, KVSResponse};
pub use crate::server::plugins::{
    Member, NoReplication, Proxy, Replication, Router, Storage, StorageAt,
};

/// An architecture: values `V` kept by `S` at the members `R` routes to, kept in step by `Rep`.
pub struct KVSServer<V, S, R, Rep = NoReplication> {
    router: R,
    replication: Rep,
    _types: PhantomData<fn() -> (V, S)>,
}

impl<V, S, R> KVSServer<V, S, R, NoReplication> {
    /// A single-copy server behind `router`.
    pub fn new(router: R) -> Self {
        Self::with_replication(router, NoReplication)
    }
}

impl<V, S, R, Rep> KVSServer<V, S, R, Rep> {
    /// A server behind `router` whose members are kept in step by `replication`.
    pub fn with_replication(router: R, replication: Rep) -> Self {
        Self {
            router,
            replication,
            _types: PhantomData,
        }
    }

    /// Wires route → replication(storage) → reply: requests at the proxy in, responses at the
    /// proxy out.
    pub fn serve<'a>(
        self,
        requests: Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder>
    where
        V: 'a,
        S: Storage<V>,
        S::Stored: 'a,
        R: Router<'a, V>,
        Rep: Replication<'a, V, S, R::Storage>,
    {
        let Self {
            router,
            replication,
            ..
        } = self;
        let storage = StorageAt::new(router.storage().member_id());
        router.route(requests, |at_storage| replication.wire(at_storage, storage))
    }
}
