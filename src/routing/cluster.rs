//! [`ClusterRouter`]: the sharded, sticky router ([`super::sticky`]) as a Hydro dataflow, from
//! the proxy to a storage cluster and back.
//!
//! The cluster's [`Layout`] (how many shards, how many replicas each) reaches the router as a
//! singleton: deployed, every process reads it from its environment ([`Layout::current`]),
//! so changing `--shards` rebuilds nothing; a sim test writes it in its own code.
//!
//! ```text
//!   proxy:   requests ─┐
//!            joins ────┤                                   ┌─▶ Send(member, request) ──▶ replicas
//!            heartbeats┼─▶ scan(StickyRouter::step) ───────┼─▶ Reply(error) ───────────▶ front
//!            ticks ────┤                                   └─▶ View(member) ───────────▶ INFO
//!            responses ┘ (each also goes on to the front)
//!   replica: every HEARTBEAT_EVERY: its pid and gossip count ──▶ proxy
//! ```
//!
//! Messages between the proxy and the replicas travel over the router's [`Transport`]: our
//! own transport when deployed, Hydro's channels in the simulator (see [`crate::net`]).
//!
//! The router's state machine sees one stream of events, merged in the order the proxy's
//! dataflow receives them. Heartbeats and detector ticks come from timers, which Hydro's
//! simulator does not run: sim tests feed those events in directly.

use std::time::Duration;

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::location::MembershipEvent;
use hydro_lang::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::membership::Beat;
use crate::membership::Layout;
use crate::net::Transport;
use crate::net::channel;
use crate::net::links::{from_proxy, to_proxy};
use crate::protocol::{KVSRequest, KVSResponse};
use crate::routing::sticky::RouterEvent;
use crate::server::{Proxy, Router};

/// How often each replica tells the proxy it is alive.
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
/// How often the proxy's failure detector ticks.
pub const DETECT_EVERY: Duration = Duration::from_millis(100);
/// Silent ticks after which a replica is suspected: one second without a heartbeat. Long
/// enough that a replica busy on a loaded 2-core machine is not taken for dead (being wrong
/// costs its clients their session guarantees), short enough that clients barely notice a
/// real crash.
pub const SUSPECT_AFTER_TICKS: u64 = 10;

/// Heartbeats (member, what it said) and detector ticks, given to the router instead of its
/// timers: Hydro's simulator runs no timers, so sim tests drive failure detection this way.
pub type GivenLiveness<'a> = (
    Stream<(u32, Beat), Process<'a, Proxy>, Unbounded, NoOrder>,
    Stream<(), Process<'a, Proxy>, Unbounded, NoOrder>,
);

/// Routes each request to its key's shard and each connection to one live member of that
/// shard (see [`super::sticky`]).
pub struct ClusterRouter<'a, C> {
    proxy: Process<'a, Proxy>,
    replicas: Cluster<'a, C>,
    /// How `replicas` is cut into shards, as the proxy knows it.
    layout: Singleton<Layout, Process<'a, Proxy>, Bounded>,
    /// The replicas' role in the topology (`replica`, …): how `INFO` and the transport name
    /// them.
    role: &'static str,
    transport: Transport,
    /// Heartbeats and ticks given by a test; `None` runs the timers.
    given: Option<GivenLiveness<'a>>,
}

impl<'a, C> ClusterRouter<'a, C> {
    /// A router from `proxy` to the members of `replicas`, whose role in the topology is
    /// `role`, cut into shards as `layout` says, sending over `transport`.
    pub fn new(
        proxy: &Process<'a, Proxy>,
        replicas: &Cluster<'a, C>,
        role: &'static str,
        layout: Singleton<Layout, Process<'a, Proxy>, Bounded>,
        transport: Transport,
    ) -> Self {
        Self {
            proxy: proxy.clone(),
            replicas: replicas.clone(),
            layout,
            role,
            transport,
            given: None,
        }
    }

    /// The same router, with its failure detector driven by `heartbeats` and `ticks` instead
    /// of timers (see [`GivenLiveness`]).
    pub fn with_liveness(self, given: GivenLiveness<'a>) -> Self {
        Self {
            given: Some(given),
            ..self
        }
    }

    /// The failure detector's inputs at the proxy: replicas joining, their heartbeats, and
    /// the detector's ticks.
    fn liveness<V>(&mut self) -> Stream<RouterEvent<V>, Process<'a, Proxy>, Unbounded, NoOrder>
    where
        C: 'a,
        V: 'a,
    {
        let joined = self
            .proxy
            .source_cluster_membership_stream(
                &self.replicas,
                nondet!(
                    /// HydroDeploy reports every member as joined once, at start; a member
                    /// that joins late only starts being routed to late.
                ),
            )
            .entries()
            .filter_map(q!(|(member, event)| match event {
                MembershipEvent::Joined => Some(crate::routing::sticky::RouterEvent::Joined(
                    crate::membership::ids::MemberId(member.get_raw_id())
                )),
                // Never reported by HydroDeploy; heartbeats are what tell.
                MembershipEvent::Left => None,
            }));
        let (heartbeats, ticks) = match self.given.take() {
            Some(given) => given,
            None => (
                self.timed_heartbeats(),
                self.proxy
                    .source_interval(q!(crate::routing::cluster::DETECT_EVERY))
                    .weaken_ordering(),
            ),
        };
        let heartbeats = heartbeats.map(q!(|(member, beat)| {
            crate::routing::sticky::RouterEvent::Heartbeat(
                crate::membership::ids::MemberId(member),
                beat,
            )
        }));
        let ticks = ticks.map(q!(|_| crate::routing::sticky::RouterEvent::Tick));
        joined.merge_unordered(heartbeats).merge_unordered(ticks)
    }

    /// Every replica's heartbeat, every [`HEARTBEAT_EVERY`], as the proxy receives them.
    fn timed_heartbeats(&self) -> Stream<(u32, Beat), Process<'a, Proxy>, Unbounded, NoOrder>
    where
        C: 'a,
    {
        let beats = self
            .replicas
            .source_interval(q!(crate::routing::cluster::HEARTBEAT_EVERY))
            .map(q!(|_| crate::membership::liveness::Beat::now(
                crate::net::transport::sent(crate::net::channel::GOSSIP)
            )));
        to_proxy(beats, &self.proxy, channel::HEARTBEATS, self.transport)
    }
}

impl<'a, C: 'a, V> Router<'a, V> for ClusterRouter<'a, C>
where
    V: Clone + Serialize + DeserializeOwned + Send + 'static,
{
    type Storage = Cluster<'a, C>;

    fn storage(&self) -> &Cluster<'a, C> {
        &self.replicas
    }

    fn route(
        mut self,
        requests: Stream<KVSRequest<V>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<V>, Cluster<'a, C>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<V>, Cluster<'a, C>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder> {
        // Responses come back from the replicas *after* the router sent their requests: a
        // cycle, closed at the end of this function.
        let (responses_later, responses_seen) =
            self.proxy
                .forward_ref::<Stream<KVSResponse<V>, Process<'a, Proxy>, Unbounded, NoOrder>>();
        let events = requests
            .map(q!(|r| crate::routing::sticky::RouterEvent::Request(r)))
            .merge_unordered(self.liveness())
            .merge_unordered(
                responses_seen.map(q!(|r| crate::routing::sticky::RouterEvent::Response(r))),
            )
            .assume_ordering::<TotalOrder>(nondet!(
                /// The router acts on events in the order the proxy received them. Another
                /// interleaving can change which replica a request goes to (a tick that
                /// suspects a replica just before or just after it) but never loses one: a
                /// request sent to a replica that is then suspected is re-sent.
            ));
        // The router is built on the first event, once the layout is known; the layout is a
        // few numbers, so carrying it beside every event costs nothing worth avoiding.
        let routed = events
            .cross_singleton(self.layout.clone())
            .scan(
                q!(|| None),
                q!(|router, (event, layout)| {
                    let router = router.get_or_insert_with(|| {
                        crate::routing::sticky::StickyRouter::new(
                            crate::routing::cluster::SUSPECT_AFTER_TICKS,
                            layout,
                        )
                    });
                    Some(router.step(event))
                }),
            )
            .flatten_ordered();

        let role = self.role;
        routed.clone().for_each(q!(move |routed| {
            if let crate::routing::sticky::Routed::View(member, view) = routed {
                crate::membership::view::publish(role, member.0, view.alive, view.beat);
            }
        }));
        let answered_here = routed.clone().filter_map(q!(|routed| match routed {
            crate::routing::sticky::Routed::Reply(response) => Some(response),
            _ => None,
        }));
        let sends = routed.filter_map(q!(|routed| match routed {
            // The transport addresses a cluster member by its raw index.
            crate::routing::sticky::Routed::Send(member, request) => Some((member.0, request)),
            _ => None,
        }));
        let at_replicas = from_proxy(
            sends,
            &self.replicas,
            role,
            channel::REQUESTS,
            self.transport,
        );
        let responses = to_proxy(
            serve(at_replicas),
            &self.proxy,
            channel::RESPONSES,
            self.transport,
        )
        .map(q!(|(_replica, response)| response));
        responses_later.complete(responses.clone());
        responses.merge_unordered(answered_here)
    }
}

#[cfg(test)]
mod sim_tests {
    use bytes::Bytes;
    use hydro_lang::location::cluster::CLUSTER_SELF_ID;
    use hydro_lang::prelude::*;
    use hydro_lang::sim::quiesce;

    use super::*;
    use crate::membership::MemberId;
    use crate::protocol::{KVSOperation, KVSResult};
    use crate::routing::sticky::StickyRouter;

    /// The router's dataflow, with its failure detector driven by hand: a client's requests
    /// go to one replica while it sends heartbeats; once it falls silent for longer than the
    /// timeout, the same client's next request goes to the replica that still beats.
    #[test]
    fn a_silent_replica_loses_its_clients_to_a_live_one() {
        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let replicas = flow.cluster::<()>();
        let (requests_in, requests) = proxy.sim_input();
        let (beats_in, beats) = proxy.sim_input();
        let (ticks_in, ticks) = proxy.sim_input();
        let layout = proxy.singleton(q!(crate::membership::layout::Layout::unsharded(2)));
        let router = ClusterRouter::new(&proxy, &replicas, "replica", layout, Transport::Hydro)
            .with_liveness((beats, ticks));
        // Each replica answers with its own member id.
        let responses = router
            .route(requests, |at_replica| {
                at_replica.map(q!(move |request: KVSRequest<Bytes>| {
                    let me = CLUSTER_SELF_ID.get_raw_id();
                    request
                        .into_parts()
                        .1
                        .respond(KVSResult::Value(Bytes::from(me.to_string())))
                }))
            })
            .map(q!(|response| response.result))
            .assume_ordering::<TotalOrder>(nondet!(
                /// The test has one request in flight at a time.
            ))
            .sim_output();

        // A client whose replica, while both live, is replica 1.
        let mut both =
            StickyRouter::<Bytes>::new(1, crate::membership::layout::Layout::unsharded(2));
        both.joined(MemberId(0));
        both.joined(MemberId(1));
        let client = (0..)
            .find(|&c| both.member_for(c, b"k") == Ok(MemberId(1)))
            .unwrap();
        let get = move |request| KVSRequest {
            at: 0,
            client,
            request,
            op: KVSOperation::Get(Bytes::from_static(b"k")),
        };
        let beat = Beat {
            pid: 1,
            ..Beat::default()
        };

        flow.sim().with_cluster_size(&replicas, 2).fuzz(async || {
            beats_in.send_many_unordered([(0, beat), (1, beat)]);
            quiesce().await;
            requests_in.send(get(0));
            assert_eq!(
                responses.next().await,
                KVSResult::Value(Bytes::from_static(b"1"))
            );
            // Replica 1 falls silent; replica 0 keeps beating through the timeout.
            for _ in 0..=SUSPECT_AFTER_TICKS {
                quiesce().await;
                beats_in.send_many_unordered([(0, beat)]);
                quiesce().await;
                ticks_in.send_many_unordered([()]);
            }
            quiesce().await;
            requests_in.send(get(1));
            assert_eq!(
                responses.next().await,
                KVSResult::Value(Bytes::from_static(b"0"))
            );
        });
    }
}
