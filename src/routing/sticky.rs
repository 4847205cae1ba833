//! Sharded, sticky routing over members that may die: the proxy's half of every clustered
//! store.
//!
//! **Which shard.** A request goes to the shard its key lives on ([`Shards::locate`], a
//! consistent-hash ring). An unsharded store (the replicated one) is a single shard holding
//! every key; a sharded store without replicas has one member per shard.
//!
//! **Which member of the shard.** Every connection's requests to a shard go to one of its
//! members, so a client reads its own writes and sees
//! them in the order it made them (session guarantees) — while that replica lives. Which
//! replica is *rendezvous hashing* (highest random weight): a client goes to the shard's live
//! member whose `hash(client, member)` is greatest. That needs no per-client state at the proxy, it
//! spreads connections evenly, and when a replica dies only *its* clients move (every other
//! client's highest weight is unchanged).
//!
//! **Failure detection.** HydroDeploy never reports a member as gone, so replicas send
//! heartbeats and the proxy counts detector ticks: a replica not heard from for
//! `timeout_ticks` ticks is suspected dead and gets no more requests. A heartbeat from a
//! suspected replica brings it back (it was slow, not dead). The ticks are inputs, not a
//! clock the router reads, so tests (and Hydro's simulator, which does not simulate timers)
//! drive time by hand.
//!
//! **Nothing in flight is stranded, nothing is applied twice.** The router remembers each
//! request until its response comes back. When a member is suspected, its unanswered requests
//! are settled: a suspected member may only be slow, and apply them after all, so only the
//! requests that may safely be applied twice ([`KVSOperation::is_idempotent`](crate::protocol::KVSOperation::is_idempotent): reads, and
//! writes of a given value — a `SET` applied twice leaves the value it wrote, the second copy
//! merely a later version) are sent again, to the member each client now maps to in that
//! shard. The others (`INCR`, …) are answered with an error saying their outcome is unknown —
//! they may or may not have been applied, as Jepsen calls such operations *indeterminate* —
//! rather than counted twice. With no live member left in the shard, requests are answered
//! with an error (`CLUSTERDOWN`), and the other shards go on serving. If the suspected replica
//! answers after all, the client's connection keeps the first answer and drops the second
//! (see [`crate::edge::reply_queue`]).
//!
//! This is plain Rust with no I/O: [`StickyRouter`] is stepped by the dataflow (see
//! `crate::architectures::replicated`) and by the unit tests below alike.

use std::collections::{BTreeMap, HashMap};

use crate::hashing::mix;
use crate::membership::Layout;
use crate::membership::{Beat, Liveness, MemberId, MemberView, ShardId};
use crate::protocol::{ClientId, KVSRequest, KVSResponse, KVSResult, RequestId};
use crate::routing::ring::Shards;

/// Mixed into every rendezvous weight (any constant will do; it must only never change).
const WEIGHT_SEED: u64 = 0x6b76_732d_7a6f_6f21;

/// What the router asks the dataflow to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed<V> {
    /// Send the request to replica `member`.
    Send(MemberId, KVSRequest<V>),
    /// Answer the client directly (its request could not be served).
    Reply(KVSResponse<V>),
    /// How the router now sees replica `member` (for `INFO`): sent when it changes.
    View(MemberId, MemberView),
}

/// Everything the router reacts to, in the order the proxy received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouterEvent<V> {
    /// A replica joined the deployment.
    Joined(MemberId),
    /// A heartbeat from a replica.
    Heartbeat(MemberId, Beat),
    /// A tick of the failure detector.
    Tick,
    /// A client's request.
    Request(KVSRequest<V>),
    /// A replica's response.
    Response(KVSResponse<V>),
}

/// The answer to a request that may not be applied twice, held by a member that stopped
/// answering: it may have been applied, or not.
pub const OUTCOME_UNKNOWN: &str = "the member serving this request stopped answering: it may \
     or may not have been applied, and it is not sent again, so that it is never applied \
     twice (read the key to see)";

/// The sticky router's state (see the module docs).
#[derive(Debug)]
pub struct StickyRouter<V> {
    members: Liveness<MemberId>,
    shards: Shards,
    in_flight: HashMap<(ClientId, RequestId), (MemberId, KVSRequest<V>)>,
}

impl<V: Clone> StickyRouter<V> {
    /// A router over a storage cluster cut into shards as `layout` says, that suspects a
    /// member after `timeout_ticks` silent detector ticks.
    pub fn new(timeout_ticks: u64, layout: Layout) -> Self {
        Self {
            members: Liveness::new(timeout_ticks),
            shards: Shards::new(layout),
            in_flight: HashMap::new(),
        }
    }

    /// Reacts to one event: what to send, whom to answer, and which replicas' status
    /// changed. (A response is not passed on here: the dataflow forwards every response to
    /// the front itself, and this only stops tracking its request.)
    pub fn step(&mut self, event: RouterEvent<V>) -> Vec<Routed<V>> {
        // Requests and responses (the hot path) change no replica's status.
        let membership = match event {
            RouterEvent::Request(request) => return vec![self.request(request)],
            RouterEvent::Response(response) => {
                self.response(&response);
                return vec![];
            }
            membership => membership,
        };
        let view = |member: MemberId, view: MemberView| Routed::View(member, view);
        match membership {
            RouterEvent::Joined(member) => {
                let joined = self.members.joined(member);
                joined.map(|v| view(member, v)).into_iter().collect()
            }
            RouterEvent::Heartbeat(member, beat) => {
                let changed = self.members.heartbeat(member, beat);
                changed.map(|v| view(member, v)).into_iter().collect()
            }
            _ => {
                let suspected = self.members.tick();
                let mut out = self.reroute(&suspected);
                out.extend(suspected.into_iter().map(|(m, v)| view(m, v)));
                out
            }
        }
    }

    /// A replica joined the deployment. It is live until it falls silent.
    pub fn joined(&mut self, member: MemberId) {
        self.members.joined(member);
    }

    /// A heartbeat from `member`: it is alive.
    pub fn heartbeat(&mut self, member: MemberId, beat: Beat) {
        self.members.heartbeat(member, beat);
    }

    /// One detector tick: replicas silent for too long are suspected, and their requests
    /// still in flight are re-routed (or answered with an error if no replica is left).
    pub fn tick(&mut self) -> Vec<Routed<V>> {
        let suspected = self.members.tick();
        self.reroute(&suspected)
    }

    /// Re-routes the requests in flight at the `suspected` members.
    fn reroute(&mut self, suspected: &[(MemberId, MemberView)]) -> Vec<Routed<V>> {
        if suspected.is_empty() {
            return vec![];
        }
        let newly_dead: Vec<MemberId> = suspected.iter().map(|&(member, _)| member).collect();
        let stranded: Vec<KVSRequest<V>> = {
            let keys: Vec<_> = self
                .in_flight
                .iter()
                .filter(|(_, (member, _))| newly_dead.contains(member))
                .map(|(&k, _)| k)
                .collect();
            let mut requests: Vec<_> = keys
                .into_iter()
                .filter_map(|k| self.in_flight.remove(&k).map(|(_, r)| r))
                .collect();
            // Re-sent in request order, so a client's retried requests keep their order.
            requests.sort_by_key(|r| (r.client, r.request));
            requests
        };
        stranded
            .into_iter()
            .map(|r| {
                if r.op.is_idempotent() {
                    self.request(r)
                } else {
                    Routed::Reply(KVSResponse {
                        client: r.client,
                        request: r.request,
                        result: KVSResult::Error(OUTCOME_UNKNOWN.into()),
                    })
                }
            })
            .collect()
    }

    /// Routes a client's request to a live member of its key's shard, or answers it with an
    /// error when that shard has none.
    pub fn request(&mut self, request: KVSRequest<V>) -> Routed<V> {
        let error = |message: String| {
            Routed::Reply(KVSResponse {
                client: request.client,
                request: request.request,
                result: KVSResult::Error(message),
            })
        };
        // A request that names its member (REPLICAGET, REPLICASET) goes there or nowhere; one
        // that names its shard (the keyspace commands) to the client's member of that shard.
        let shard = request
            .op
            .shard()
            .unwrap_or_else(|| self.shards.locate(request.op.key()).shard);
        let target = match request.op.member() {
            Some(member) if self.members.is_alive(&member) => member,
            Some(member) => return error(format!("replica {member} is not alive")),
            None => match self.member_in_shard(request.client, shard) {
                Ok(member) => member,
                Err(_) if self.shards.layout().shards == 1 => {
                    return error("no replica is alive to serve the request (CLUSTERDOWN)".into());
                }
                Err(shard) => {
                    return error(format!(
                        "shard {shard} is down: none of its members is alive (CLUSTERDOWN)"
                    ));
                }
            },
        };
        self.in_flight
            .insert((request.client, request.request), (target, request.clone()));
        Routed::Send(target, request)
    }

    /// A member's response: the request is no longer in flight.
    pub fn response(&mut self, response: &KVSResponse<V>) {
        self.in_flight.remove(&(response.client, response.request));
    }

    /// The member `client`'s requests for `key` go to: of the live members of the key's
    /// shard, the one with the highest rendezvous weight. `Err(shard)` when none of the
    /// shard's members is alive.
    pub fn member_for(&self, client: ClientId, key: &[u8]) -> Result<MemberId, ShardId> {
        self.member_in_shard(client, self.shards.locate(key).shard)
    }

    /// The member `client`'s requests to `shard` go to (see [`Self::member_for`]); `Err(shard)`
    /// when none of its members is alive and serving (a rejoining one is not).
    pub fn member_in_shard(&self, client: ClientId, shard: ShardId) -> Result<MemberId, ShardId> {
        self.members
            .members()
            .range(self.shards.layout().members_of(shard))
            .filter(|(_, view)| view.serving())
            .max_by_key(|&(&member, _)| weight(client, member))
            .map(|(&member, _)| member)
            .ok_or(shard)
    }

    /// Every replica the router has heard of, by member id.
    pub fn members(&self) -> &BTreeMap<MemberId, MemberView> {
        self.members.members()
    }

    /// Requests sent to a replica and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// The rendezvous weight of `member` for `client`: a hash of both, written out here (the
/// SplitMix64 finalizer) so it is the same in every process and every build. A fast hasher
/// made for hash tables is not enough: over consecutive client ids it gave one replica of
/// three 25% of the clients.
pub fn weight(client: ClientId, member: MemberId) -> u64 {
    mix(client ^ mix(u64::from(member.0) ^ WEIGHT_SEED))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::KVSOperation;
    use bytes::Bytes;

    fn get(client: ClientId, request: RequestId) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client,
            request,
            op: KVSOperation::Get(Bytes::from_static(b"k")),
        }
    }

    fn beat(pid: u32) -> Beat {
        Beat {
            pid,
            ..Beat::default()
        }
    }

    fn router(members: u32) -> StickyRouter<Bytes> {
        let mut r = StickyRouter::new(3, Layout::unsharded(members));
        for m in 0..members {
            r.joined(MemberId(m));
        }
        r
    }

    fn sent_to(routed: &Routed<Bytes>) -> Option<u32> {
        match routed {
            Routed::Send(m, _) => Some(m.0),
            Routed::Reply(_) | Routed::View(..) => None,
        }
    }

    #[test]
    fn step_reports_each_change_of_a_replicas_status_once() {
        let mut r: StickyRouter<Bytes> = StickyRouter::new(1, Layout::unsharded(1));
        let views = |out: Vec<Routed<Bytes>>| -> Vec<(u32, bool, u32)> {
            out.into_iter()
                .filter_map(|o| match o {
                    Routed::View(m, v) => Some((m.0, v.alive, v.beat.pid)),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(
            views(r.step(RouterEvent::Joined(MemberId(0)))),
            vec![(0, true, 0)]
        );
        assert_eq!(
            views(r.step(RouterEvent::Heartbeat(MemberId(0), beat(42)))),
            vec![(0, true, 42)]
        );
        assert_eq!(
            views(r.step(RouterEvent::Heartbeat(MemberId(0), beat(42)))),
            vec![]
        );
        assert_eq!(views(r.step(RouterEvent::Tick)), vec![]);
        assert_eq!(views(r.step(RouterEvent::Tick)), vec![(0, false, 42)]);
        assert_eq!(views(r.step(RouterEvent::Tick)), vec![]);
    }

    #[test]
    fn a_clients_requests_all_go_to_one_replica() {
        let mut r = router(3);
        let first = sent_to(&r.request(get(7, 0)));
        for request in 1..20 {
            assert_eq!(sent_to(&r.request(get(7, request))), first);
        }
    }

    #[test]
    fn connections_are_spread_over_the_replicas() {
        let r = router(3);
        let mut per_member = [0usize; 3];
        for client in 0..3000 {
            per_member[r.member_for(client, b"k").unwrap().0 as usize] += 1;
        }
        for count in per_member {
            assert!((800..1200).contains(&count), "{per_member:?}");
        }
    }

    #[test]
    fn a_silent_replica_is_suspected_after_the_timeout_and_only_its_clients_move() {
        let mut r = router(3);
        let before: Vec<_> = (0..300).map(|c| r.member_for(c, b"k").unwrap().0).collect();
        for _ in 0..3 {
            r.heartbeat(MemberId(0), beat(10));
            r.heartbeat(MemberId(2), beat(12));
            r.tick();
        }
        assert!(
            r.members()[&MemberId(1)].alive,
            "three silent ticks are within the timeout"
        );
        r.heartbeat(MemberId(0), beat(10));
        r.heartbeat(MemberId(2), beat(12));
        r.tick();
        assert!(!r.members()[&MemberId(1)].alive);
        for (client, was) in before.into_iter().enumerate() {
            let now = r.member_for(client as u64, b"k").unwrap().0;
            assert_ne!(now, 1);
            if was != 1 {
                assert_eq!(now, was, "client {client} moved though its replica lives");
            }
        }
    }

    #[test]
    fn requests_in_flight_to_a_dead_replica_are_resent_in_order_to_a_live_one() {
        let mut r = router(2);
        let client = (0..)
            .find(|&c| r.member_for(c, b"k").ok() == Some(MemberId(0)))
            .unwrap();
        r.request(get(client, 0));
        r.request(get(client, 1));
        r.request(get(client, 2));
        r.response(&KVSResponse {
            client,
            request: 1,
            result: KVSResult::NotFound,
        });
        let mut resent = vec![];
        for _ in 0..4 {
            r.heartbeat(MemberId(1), beat(0));
            resent.extend(r.tick());
        }
        let want: Vec<_> = [0, 2]
            .into_iter()
            .map(|request| Routed::Send(MemberId(1), get(client, request)))
            .collect();
        assert_eq!(resent, want);
        assert_eq!(r.in_flight(), 2, "the resent requests are in flight again");
    }

    /// An `INCR` held by a replica that falls silent is not sent to another: the silent one
    /// may only be slow and apply it too. It is answered as indeterminate; a `GET` held with
    /// it is re-sent.
    #[test]
    fn a_stranded_increment_is_answered_as_unknown_not_sent_again() {
        let mut r = router(2);
        let client = (0..)
            .find(|&c| r.member_for(c, b"k").ok() == Some(MemberId(0)))
            .unwrap();
        let incr = KVSRequest {
            at: 0,
            client,
            request: 0,
            op: KVSOperation::Add(Bytes::from_static(b"k"), 1),
        };
        assert_eq!(sent_to(&r.request(incr)), Some(0));
        assert_eq!(sent_to(&r.request(get(client, 1))), Some(0));
        let mut settled = vec![];
        for _ in 0..4 {
            r.heartbeat(MemberId(1), beat(0));
            settled.extend(r.tick());
        }
        assert_eq!(
            settled,
            vec![
                Routed::Reply(KVSResponse {
                    client,
                    request: 0,
                    result: KVSResult::Error(OUTCOME_UNKNOWN.into()),
                }),
                Routed::Send(MemberId(1), get(client, 1)),
            ]
        );
    }

    #[test]
    fn with_no_replica_alive_requests_are_answered_with_an_error() {
        let mut r = router(1);
        r.request(get(1, 0));
        let stranded: Vec<_> = (0..4).flat_map(|_| r.tick()).collect();
        assert!(
            matches!(&stranded[..], [Routed::Reply(KVSResponse { client: 1, request: 0, result: KVSResult::Error(e) })] if e.contains("no replica"))
        );
        assert!(matches!(r.request(get(1, 1)), Routed::Reply(_)));
        assert_eq!(r.in_flight(), 0);
    }

    #[test]
    fn a_request_naming_its_replica_goes_there_or_is_refused() {
        let mut r = router(3);
        let at = |member, client| KVSRequest {
            at: 0,
            client,
            request: 0,
            op: KVSOperation::<Bytes>::GetAt(MemberId(member), Bytes::from_static(b"k")),
        };
        for client in 0..20 {
            assert_eq!(sent_to(&r.request(at(2, client))), Some(2));
        }
        assert!(matches!(
            r.request(at(7, 1)),
            Routed::Reply(KVSResponse { result: KVSResult::Error(e), .. }) if e.contains("replica 7")
        ));
    }

    #[test]
    fn a_suspected_replica_that_speaks_again_is_routed_to_again() {
        let mut r = router(1);
        for _ in 0..4 {
            r.tick();
        }
        assert_eq!(r.member_for(5, b"k").ok(), None);
        r.heartbeat(MemberId(0), beat(99));
        assert_eq!(r.member_for(5, b"k").ok(), Some(MemberId(0)));
        assert_eq!(r.members()[&MemberId(0)].beat.pid, 99);
    }

    /// A router over `layout`, every member joined.
    fn sharded(layout: Layout) -> StickyRouter<Bytes> {
        let mut r = StickyRouter::new(3, layout);
        for m in 0..layout.members() {
            r.joined(MemberId(m));
        }
        r
    }

    fn put(client: ClientId, request: RequestId, key: &str) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client,
            request,
            op: KVSOperation::Put(Bytes::from(key.to_owned()), Bytes::from_static(b"v")),
        }
    }

    #[test]
    fn each_request_goes_to_a_member_of_its_keys_shard() {
        let layout = Layout::sharded(3, 2);
        let shards = Shards::new(layout);
        let mut r = sharded(layout);
        let mut shards_seen = std::collections::BTreeSet::new();
        for i in 0..200 {
            let key = format!("key:{i}");
            let member = sent_to(&r.request(put(i % 7, i, &key))).expect("sent");
            let place = shards.locate(key.as_bytes());
            assert!(
                place.members.contains(&MemberId(member)),
                "{key}: {member} {place:?}"
            );
            shards_seen.insert(place.shard);
        }
        assert_eq!(shards_seen.len(), 3, "200 keys fall on every shard");
    }

    #[test]
    fn a_dead_shard_fails_only_its_own_keys_and_its_requests_in_flight() {
        let layout = Layout::sharded(3, 1);
        let shards = Shards::new(layout);
        let mut r = sharded(layout);
        let keys: Vec<String> = (0..60).map(|i| format!("key:{i}")).collect();
        let on = |shard: u32| -> Vec<String> {
            keys.iter()
                .filter(|k| shards.locate(k.as_bytes()).shard == ShardId(shard))
                .cloned()
                .collect()
        };
        let dead = 1;
        // One request to the doomed shard is in flight when it dies.
        let in_flight = on(dead)[0].clone();
        assert_eq!(sent_to(&r.request(put(9, 0, &in_flight))), Some(dead));
        for _ in 0..4 {
            r.heartbeat(MemberId(0), beat(10));
            r.heartbeat(MemberId(2), beat(12));
            let out = r.step(RouterEvent::Tick);
            if let Some(Routed::Reply(response)) =
                out.iter().find(|o| matches!(o, Routed::Reply(_)))
            {
                assert_eq!(response.request, 0);
                let KVSResult::Error(e) = &response.result else {
                    panic!("{response:?}")
                };
                assert!(e.contains("shard 1 is down"), "{e}");
            }
        }
        assert_eq!(r.in_flight(), 0, "the stranded request was answered");
        for (i, key) in on(dead).into_iter().enumerate() {
            let routed = r.request(put(1, i as u64 + 1, &key));
            assert!(
                matches!(&routed, Routed::Reply(KVSResponse { result: KVSResult::Error(e), .. }) if e.contains("CLUSTERDOWN")),
                "{routed:?}"
            );
        }
        for key in on(0).into_iter().chain(on(2)) {
            let shard = shards.locate(key.as_bytes()).shard;
            assert_eq!(sent_to(&r.request(put(1, 99, &key))), Some(shard.0));
        }
    }

    #[test]
    fn a_dead_replica_hands_its_clients_to_a_live_replica_of_the_same_shard() {
        let layout = Layout::sharded(2, 3);
        let shards = Shards::new(layout);
        let mut r = sharded(layout);
        let key = "color";
        let place = shards.locate(key.as_bytes());
        let client = (0..)
            .find(|&c| r.member_for(c, key.as_bytes()) == Ok(place.members.start))
            .unwrap();
        for _ in 0..4 {
            for m in layout
                .members_of(ShardId(0))
                .into_iter()
                .chain(layout.members_of(ShardId(1)))
            {
                if m != place.members.start {
                    r.heartbeat(m, beat(m.0));
                }
            }
            r.step(RouterEvent::Tick);
        }
        let now = r.member_for(client, key.as_bytes()).unwrap();
        assert!(
            place.members.contains(&now) && now != place.members.start,
            "{now}"
        );
    }

    #[test]
    fn a_request_naming_a_shard_goes_to_a_member_of_that_shard() {
        let layout = Layout::sharded(3, 2);
        let mut r = sharded(layout);
        for shard in 0..3 {
            let request = KVSRequest {
                at: 0,
                client: 5,
                request: u64::from(shard),
                op: KVSOperation::Count(ShardId(shard)),
            };
            let member = sent_to(&r.request(request)).expect("sent");
            assert!(
                layout
                    .members_of(ShardId(shard))
                    .contains(&MemberId(member)),
                "{shard}: {member}"
            );
        }
    }
}
