//! The plug-in traits every architecture is composed of, and the locations they run at.
//!
//! - [`Router`]: carries requests from the proxy to the storage members, in the order they
//!   must apply them, and every answer back (the failure path included).
//! - [`Storage`]: a core — a state machine over [`StorageInput`] — with the [`Member`] it runs
//!   at, handed over as a [`StorageAt`].
//! - [`Replication`]: wraps the storage, seeing every change the core made and feeding peers'
//!   values back into it; [`NoReplication`] is the single-copy case.
//!
//! [`KVSServer`](crate::server::KVSServer) wires one of each together.

use std::marker::PhantomData;

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::location::Location;
use hydro_lang::location::cluster::CLUSTER_SELF_ID;
use hydro_lang::prelude::*;

use crate::protocol::{KVSRequest, KVSResponse};
use crate::store::causal_core::CausalKVSCore;
use crate::store::kvs_core::KVSCore;
use crate::store::lattice_core::LatticeKVSCore;
use crate::store::seam::{StorageInput, StorageOutput};
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
            requests.map(q!(|r| crate::store::seam::StorageInput::Request(r))),
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

/// The storage core `S`, ready to run at each member of `L`: what [`KVSServer::serve`](crate::server::KVSServer::serve) hands
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
