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
//! - **Storage** is a core: [`KVSCore`] (LWW),
//!   [`LatticeKVSCore`] (merging values clients stamp) or
//!   [`CausalKVSCore`] (vector clocks the replica stamps).
//! - **Replication** wraps the storage: it sees every change the core made and feeds peers'
//!   values back into *the same* core, so every write that reaches a replica reaches the state
//!   that serves its reads. [`NoReplication`] is the single-copy case: its core only answers
//!   ([`StorageAt::answers`]), since nobody would read its changes.
//!
//! [`KVSServer::serve`] is the only place these stages are wired together. Storage members
//! know who they are ([`Member`]): a replica stamps its writes with its own id.

use std::marker::PhantomData;

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::location::Location;
use hydro_lang::location::cluster::CLUSTER_SELF_ID;
use hydro_lang::prelude::*;

use crate::protocol::{KVSRequest, KVSResponse};
use crate::store::causal_core::CausalKVSCore;
use crate::store::kvs_core::KVSCore;
use crate::store::lattice_core::{LatticeKVSCore, StorageInput, StorageOutput};
use crate::values::{CausalValue, LwwValue};

/// Tag type of the process that runs the RESP front and receives every client request.
pub struct Proxy;

/// A location whose members know who they are: storage stamps writes with its member id
/// (a Lamport stamp's tie-breaker, a vector clock's entry), and replication tells peers apart.
pub trait Member<'a>: Location<'a> {
    /// This member's id, as a singleton to cross with a stream: 0 on a process, the
    /// member's raw id (0, 1, …) in a cluster.
    fn member_id(&self) -> Singleton<u32, Self, Bounded>;
}

impl<'a, P> Member<'a> for Process<'a, P> {
    fn member_id(&self) -> Singleton<u32, Self, Bounded> {
        self.singleton(q!(0u32))
    }
}

impl<'a, C: 'a> Member<'a> for Cluster<'a, C> {
    fn member_id(&self) -> Singleton<u32, Self, Bounded> {
        self.singleton(q!(CLUSTER_SELF_ID.get_raw_id()))
    }
}

/// A storage core that clients' values of type `V` are stored in.
pub trait Storage<V> {
    /// What the core keeps per key, and what replicas exchange.
    type Stored: Clone;

    /// Applies `inputs` in order at each member of `L`; `member` is that member's id, which
    /// stamps its writes. Returns the responses and every change the core made.
    fn serve<'a, L: Location<'a>>(
        inputs: Stream<StorageInput<V, Self::Stored>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, Self::Stored, L>
    where
        V: 'a,
        Self::Stored: 'a;

    /// Applies client `requests` in order at each member of `L` and returns only the
    /// responses: the core of a single copy, whose changes nobody reads. A core may do this
    /// with less work per request than [`Storage::serve`] (no change is copied out just to
    /// be dropped); by default it is `serve` with the changes dropped.
    fn answer<'a, L: Location<'a>>(
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder>
    where
        V: 'a,
        Self::Stored: 'a,
    {
        let (responses, _changes) = Self::serve(
            requests.map(q!(|r| crate::store::lattice_core::StorageInput::Request(r))),
            member,
        );
        responses
    }
}

impl<V: Clone + Ord + std::hash::Hash + crate::store::kvs_core::StringValue> Storage<V>
    for KVSCore
{
    type Stored = LwwValue<V>;

    fn serve<'a, L: Location<'a>>(
        inputs: Stream<StorageInput<V, LwwValue<V>>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, LwwValue<V>, L>
    where
        V: 'a,
    {
        KVSCore::serve(inputs, member)
    }

    fn answer<'a, L: Location<'a>>(
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
        _member: Singleton<u32, L, Bounded>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder>
    where
        V: 'a,
    {
        KVSCore::answer(requests)
    }
}

impl<V: lattices::Merge<V> + Clone + crate::values::Fingerprint> Storage<V> for LatticeKVSCore {
    type Stored = V;

    fn serve<'a, L: Location<'a>>(
        inputs: Stream<StorageInput<V, V>, L, Unbounded, TotalOrder>,
        _member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, V, L>
    where
        V: 'a,
    {
        // Clients send lattice values already stamped: the member stamps nothing.
        LatticeKVSCore::serve(inputs)
    }
}

impl<V: Clone + Ord + std::hash::Hash> Storage<V> for CausalKVSCore {
    type Stored = CausalValue<V>;

    fn serve<'a, L: Location<'a>>(
        inputs: Stream<StorageInput<V, CausalValue<V>>, L, Unbounded, TotalOrder>,
        member: Singleton<u32, L, Bounded>,
    ) -> StorageOutput<V, CausalValue<V>, L>
    where
        V: 'a,
    {
        CausalKVSCore::serve(inputs, member)
    }
}

/// Carries requests from the proxy to the storage members and every request's answer back.
pub trait Router<'a, V> {
    /// Where the storage core runs: the proxy itself, or a cluster of members.
    type Storage: Member<'a>;

    /// The location storage runs at.
    fn storage(&self) -> &Self::Storage;

    /// Delivers each request to the member that serves it, in the order members must apply
    /// them; runs `serve` (replication around storage) there; and returns every request's
    /// response at the proxy. Responses may arrive in any order: the front matches each to its
    /// request by id.
    ///
    /// The router owns the path back as well as the path out, because it is also the
    /// *failure path*: a router that sees a member die answers (or re-routes) the requests
    /// it had sent there, so the front's request timeout is the last resort, not the
    /// mechanism.
    ///
    /// Routing consumes the router: a router is wired into one dataflow, once, and what it
    /// was given to wire (a test's heartbeats, timers) is moved into that dataflow.
    fn route(
        self,
        requests: Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<V>, Self::Storage, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<V>, Self::Storage, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder>;
}

/// Routes to the proxy process itself: the Local architecture's single node.
pub struct LocalRouter<'a> {
    proxy: Process<'a, Proxy>,
}

impl<'a> LocalRouter<'a> {
    /// A router whose storage runs on `proxy`.
    pub fn new(proxy: &Process<'a, Proxy>) -> Self {
        Self {
            proxy: proxy.clone(),
        }
    }
}

impl<'a, V> Router<'a, V> for LocalRouter<'a> {
    type Storage = Process<'a, Proxy>;

    fn storage(&self) -> &Process<'a, Proxy> {
        &self.proxy
    }

    fn route(
        self,
        requests: Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder> {
        // The store is here: nothing travels, nothing can be lost on the way.
        serve(requests).weaken_ordering()
    }
}

/// The storage core `S`, ready to run at each member of `L`: what [`KVSServer::serve`] hands
/// its [`Replication`], which picks how the core runs — with its changes, which replicas pass
/// on to their peers, or answering only, as a single copy needs.
pub struct StorageAt<'a, V, S, L: Location<'a>> {
    member: Singleton<u32, L, Bounded>,
    _types: PhantomData<fn() -> (V, S)>,
    _location: PhantomData<&'a ()>,
}

impl<'a, V: 'a, S: Storage<V>, L: Location<'a>> StorageAt<'a, V, S, L>
where
    S::Stored: 'a,
{
    /// The core `S` at each member of `L`, whose id is `member`.
    pub fn new(member: Singleton<u32, L, Bounded>) -> Self {
        Self {
            member,
            _types: PhantomData,
            _location: PhantomData,
        }
    }

    /// Runs the core over `inputs` (requests, and peers' values): responses and every change.
    pub fn with_changes(
        self,
        inputs: Stream<StorageInput<V, S::Stored>, L, Unbounded, TotalOrder>,
    ) -> StorageOutput<V, S::Stored, L> {
        S::serve(inputs, self.member)
    }

    /// Runs the core over client `requests` alone: responses only.
    pub fn answers(
        self,
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder> {
        S::answer(requests, self.member)
    }
}

/// Wraps a storage core with whatever keeps replicas' copies in step.
pub trait Replication<'a, V, S: Storage<V>, L: Location<'a>> {
    /// Feeds `requests` (and, for replicated stores, peers' values) through `storage`,
    /// and returns the responses to the requests. Wiring consumes the replication, as
    /// routing consumes the router.
    fn wire(
        self,
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
        storage: StorageAt<'a, V, S, L>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder>;
}

/// A single copy: requests go straight into the core, which reports no changes (nobody
/// would read them).
pub struct NoReplication;

impl<'a, V: 'a, S: Storage<V>, L: Location<'a>> Replication<'a, V, S, L> for NoReplication
where
    S::Stored: 'a,
{
    fn wire(
        self,
        requests: Stream<KVSRequest<V>, L, Unbounded, TotalOrder>,
        storage: StorageAt<'a, V, S, L>,
    ) -> Stream<KVSResponse<V>, L, Unbounded, TotalOrder> {
        storage.answers(requests)
    }
}

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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use hydro_lang::prelude::*;

    use super::*;
    use crate::protocol::{KVSOperation, KVSResult};

    fn req(client: u64, request: u64, op: KVSOperation<Bytes>) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client,
            request,
            op,
        }
    }

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    /// The Local composition, run by Hydro's simulator: each reply goes to the client and
    /// request that asked, and reads see the latest write in arrival order.
    #[test]
    fn local_composition_answers_each_request_by_id() {
        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let (requests_in, requests) = proxy.sim_input();
        let server = KVSServer::<Bytes, KVSCore, _>::new(LocalRouter::new(&proxy));
        let responses = server.serve(requests).sim_output();

        flow.sim().exhaustive(async || {
            requests_in.send(req(1, 0, KVSOperation::Put(b("k"), b("v1"))));
            requests_in.send(req(2, 0, KVSOperation::Get(b("k"))));
            requests_in.send(req(1, 1, KVSOperation::Delete(b("k"))));
            requests_in.send(req(2, 1, KVSOperation::Get(b("k"))));
            requests_in.send(req(2, 2, KVSOperation::Delete(b("k"))));
            responses
                .assert_yields_only_unordered([
                    KVSResponse {
                        client: 1,
                        request: 0,
                        result: KVSResult::Ok,
                    },
                    KVSResponse {
                        client: 2,
                        request: 0,
                        result: KVSResult::Value(b("v1")),
                    },
                    KVSResponse {
                        client: 1,
                        request: 1,
                        result: KVSResult::Ok,
                    },
                    KVSResponse {
                        client: 2,
                        request: 1,
                        result: KVSResult::NotFound,
                    },
                    KVSResponse {
                        client: 2,
                        request: 2,
                        result: KVSResult::NotFound,
                    },
                ])
                .await;
        });
    }
}
