//! The proxy's side of Multi-Paxos (see [`crate::consensus::paxos`]): where to send each request, when
//! to send it again, and which of the replicas' answers to keep.
//!
//! - A request goes to the proposer the proxy believes leads (the last heartbeat with the
//!   highest ballot says who); a follower forwards it, so a wrong guess costs a hop, not the
//!   request.
//! - A request unanswered for [`RETRY_TICKS`] ticks is sent again, each time to the next
//!   proposer in turn, and each time after twice as long (up to [`MAX_RETRY_TICKS`]):
//!   whichever proposers are dead, some try reaches a live one, which forwards it to the
//!   leader or holds it until a leader is elected. A retry may be decided twice; replicas
//!   apply it once ([`super::log::ReplicaLog`]) and answer it again from their reply cache.
//! - Every replica applies every request and answers it: the first answer goes to the
//!   client, the others are dropped. So the store answers while one replica lives.
//! - Each request carries how far its client's requests are answered
//!   ([`super::Ordered::answered_below`]), so replicas can forget the older ones, and which
//!   of its client's requests it must follow ([`super::Ordered::after`]), so replicas apply a
//!   connection's requests in the order it sent them.
//! - A request given up after [`GIVE_UP_TICKS`] ticks is forgotten here (the front has long
//!   answered it with a timeout error); if a copy is still decided later, replicas drop it
//!   unless it was applied before, and either way nobody waits for it.

use std::collections::{BTreeSet, HashMap};

use super::{Ballot, Ordered};
use crate::membership::{Beat, Liveness};
use crate::protocol::{ClientId, KVSRequest, KVSResponse, RequestId};

/// Ticks (of the proxy's timer, every 100 ms deployed) before a request is sent again the
/// first time; each later retry waits twice as long, up to [`MAX_RETRY_TICKS`].
pub const RETRY_TICKS: u32 = 5;
/// The longest wait between two sends of a request. A request that is only slow (a large
/// value, a loaded store) must not be sent again every half second: each copy adds to the
/// load that made it slow.
pub const MAX_RETRY_TICKS: u32 = 20;
/// Ticks before a request is given up.
pub const GIVE_UP_TICKS: u32 = 600;
/// Ticks without a beat after which a member is shown as suspected (in `INFO members`).
pub const SUSPECT_AFTER_TICKS: u32 = 10;

/// What happens at the proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent<V> {
    /// A client's request, from the front.
    Request(KVSRequest<V>),
    /// A replica's answer.
    Response(KVSResponse<V>),
    /// A proposer's heartbeat: the leader of this ballot is alive.
    Heartbeat(Ballot),
    /// A member of `role` says it lives (every process of the deployment does).
    Beat(&'static str, u32, Beat),
    /// The retry timer.
    Tick,
}

/// What the proxy does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAction<V> {
    /// Send this to proposer `.0`.
    Send(u32, Ordered<V>),
    /// Answer the client.
    Reply(KVSResponse<V>),
    /// The leader and ballot the proxy now believes in (for `INFO`).
    Leader(u32, Ballot),
    /// Member `.1` of role `.0` is now seen alive (or not), its last beat `.3` (for `INFO`).
    View(&'static str, u32, bool, Beat),
}

#[derive(Clone, Debug)]
struct Outstanding<V> {
    request: KVSRequest<V>,
    /// Ticks since it was last sent.
    waited: u32,
    /// Ticks since it was first sent.
    age: u32,
    attempts: u32,
}

/// The proxy's state (see the module docs).
#[derive(Clone, Debug)]
pub struct PaxosClient<V> {
    proposers: u32,
    leader: Option<(u32, Ballot)>,
    outstanding: HashMap<(ClientId, RequestId), Outstanding<V>>,
    /// Per client, its requests not yet answered.
    open: HashMap<ClientId, BTreeSet<RequestId>>,
    /// Every member's liveness, by role and member id (for `INFO members`).
    members: Liveness<(&'static str, u32)>,
}

impl<V: Clone> PaxosClient<V> {
    /// A proxy in front of `proposers` proposers, knowing no leader yet.
    pub fn new(proposers: u32) -> Self {
        Self {
            proposers: proposers.max(1),
            leader: None,
            outstanding: HashMap::new(),
            open: HashMap::new(),
            // Suspected at the SUSPECT_AFTER_TICKS-th silent tick.
            members: Liveness::new(u64::from(SUSPECT_AFTER_TICKS) - 1),
        }
    }

    /// The leader the proxy believes in, and its ballot.
    pub fn leader(&self) -> Option<(u32, Ballot)> {
        self.leader
    }

    /// Requests sent and not answered.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }

    /// Handles one event.
    pub fn handle(&mut self, event: ClientEvent<V>) -> Vec<ClientAction<V>> {
        match event {
            ClientEvent::Request(request) => {
                let id = (request.client, request.request);
                self.open.entry(id.0).or_default().insert(id.1);
                let send = self.send(&request, 0);
                self.outstanding.insert(
                    id,
                    Outstanding {
                        request,
                        waited: 0,
                        age: 0,
                        attempts: 0,
                    },
                );
                vec![send]
            }
            ClientEvent::Response(response) => {
                let id = (response.client, response.request);
                if self.outstanding.remove(&id).is_none() {
                    return vec![]; // another replica answered first
                }
                self.close(id);
                vec![ClientAction::Reply(response)]
            }
            ClientEvent::Heartbeat(ballot) => match self.leader {
                Some((_, known)) if known >= ballot => vec![],
                _ => {
                    self.leader = Some((ballot.proposer, ballot));
                    vec![ClientAction::Leader(ballot.proposer, ballot)]
                }
            },
            ClientEvent::Beat(role, member, beat) => {
                match self.members.heartbeat((role, member), beat) {
                    Some(_) => vec![ClientAction::View(role, member, true, beat)],
                    None => vec![],
                }
            }
            ClientEvent::Tick => {
                let mut actions = self.tick();
                for ((role, member), view) in self.members.tick() {
                    actions.push(ClientAction::View(role, member, false, view.beat));
                }
                actions
            }
        }
    }

    fn tick(&mut self) -> Vec<ClientAction<V>> {
        let mut given_up = Vec::new();
        let mut retry = Vec::new();
        for (id, o) in &mut self.outstanding {
            o.age += 1;
            o.waited += 1;
            if o.age >= GIVE_UP_TICKS {
                given_up.push(*id);
            } else if o.waited >= (RETRY_TICKS << o.attempts.min(4)).min(MAX_RETRY_TICKS) {
                o.waited = 0;
                o.attempts += 1;
                retry.push((o.request.clone(), o.attempts));
            }
        }
        for id in given_up {
            self.outstanding.remove(&id);
            self.close(id);
        }
        // Oldest first, so a retried pipeline keeps its order as far as it can.
        retry.sort_by_key(|(r, _)| (r.client, r.request));
        retry
            .into_iter()
            .map(|(request, attempt)| self.send(&request, attempt))
            .collect()
    }

    /// `request` as attempt `attempt` sends it: to the believed leader first, then to each
    /// next proposer in turn.
    fn send(&self, request: &KVSRequest<V>, attempt: u32) -> ClientAction<V> {
        let first = self.leader.map_or(0, |(leader, _)| leader);
        let to = (first + attempt) % self.proposers;
        let open = self.open.get(&request.client);
        let answered_below = open
            .and_then(|open| open.first().copied())
            .unwrap_or(request.request);
        // The client's request before this one, if it still waits for its answer: replicas
        // apply this one after it, so a connection's commands run in the order it sent them.
        let after = open.and_then(|open| open.range(..request.request).next_back().copied());
        ClientAction::Send(
            to,
            Ordered {
                request: request.clone(),
                answered_below,
                after,
            },
        )
    }

    fn close(&mut self, (client, request): (ClientId, RequestId)) {
        if let Some(open) = self.open.get_mut(&client) {
            open.remove(&request);
            if open.is_empty() {
                self.open.remove(&client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::protocol::{KVSOperation, KVSResult};

    fn get(client: u64, request: u64) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client,
            request,
            op: KVSOperation::Get(Bytes::from_static(b"k")),
        }
    }

    fn answer(client: u64, request: u64) -> KVSResponse<Bytes> {
        KVSResponse {
            client,
            request,
            result: KVSResult::NotFound,
        }
    }

    fn sent_to(actions: &[ClientAction<Bytes>]) -> Vec<(u32, u64, u64)> {
        actions
            .iter()
            .filter_map(|a| match a {
                ClientAction::Send(to, o) => Some((*to, o.request.request, o.answered_below)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn requests_go_to_the_leader_the_heartbeats_name() {
        let mut c = PaxosClient::new(3);
        assert_eq!(
            sent_to(&c.handle(ClientEvent::Request(get(1, 0)))),
            vec![(0, 0, 0)]
        );
        let ballot = Ballot {
            round: 4,
            proposer: 2,
        };
        assert_eq!(
            c.handle(ClientEvent::Heartbeat(ballot)),
            vec![ClientAction::Leader(2, ballot)]
        );
        // An older leader's heartbeat changes nothing.
        let old = Ballot {
            round: 3,
            proposer: 1,
        };
        assert!(c.handle(ClientEvent::Heartbeat(old)).is_empty());
        // The client's request 0 is still open: request 1 says so.
        assert_eq!(
            sent_to(&c.handle(ClientEvent::Request(get(1, 1)))),
            vec![(2, 1, 0)]
        );
    }

    #[test]
    fn the_first_answer_goes_to_the_client_and_the_others_are_dropped() {
        let mut c = PaxosClient::new(3);
        c.handle(ClientEvent::Request(get(1, 0)));
        assert_eq!(
            c.handle(ClientEvent::Response(answer(1, 0))),
            vec![ClientAction::Reply(answer(1, 0))]
        );
        assert!(c.handle(ClientEvent::Response(answer(1, 0))).is_empty());
        assert_eq!(c.outstanding(), 0);
        // Everything below 1 is answered now.
        assert_eq!(
            sent_to(&c.handle(ClientEvent::Request(get(1, 1)))),
            vec![(0, 1, 1)]
        );
    }

    #[test]
    fn an_unanswered_request_is_retried_at_each_proposer_in_turn() {
        let mut c = PaxosClient::new(3);
        c.handle(ClientEvent::Request(get(1, 0)));
        let mut targets = vec![];
        let mut at = vec![];
        for tick in 1..=80 {
            for (to, ..) in sent_to(&c.handle(ClientEvent::Tick)) {
                targets.push(to);
                at.push(tick);
            }
        }
        assert_eq!(targets, vec![1, 2, 0, 1, 2]);
        // Each retry waits twice as long as the one before, up to 2 s.
        assert_eq!(at, vec![5, 15, 35, 55, 75]);
    }

    /// Each request names the client's previous request while that one is unanswered, so
    /// replicas apply the connection's requests in order; once it is answered, a retry
    /// names none.
    #[test]
    fn a_request_names_the_unanswered_one_before_it() {
        let mut c = PaxosClient::new(1);
        let after = |actions: Vec<ClientAction<Bytes>>| match actions.as_slice() {
            [ClientAction::Send(_, o)] => (o.answered_below, o.after),
            other => panic!("one send: {other:?}"),
        };
        assert_eq!(after(c.handle(ClientEvent::Request(get(1, 0)))), (0, None));
        assert_eq!(
            after(c.handle(ClientEvent::Request(get(1, 3)))),
            (0, Some(0))
        );
        assert_eq!(after(c.handle(ClientEvent::Request(get(2, 0)))), (0, None));
        c.handle(ClientEvent::Response(answer(1, 0)));
        assert_eq!(
            after(c.handle(ClientEvent::Request(get(1, 4)))),
            (3, Some(3))
        );
        c.handle(ClientEvent::Response(answer(1, 3)));
        // Request 4's retry: nothing before it is open any more.
        let retried: Vec<_> = (0..RETRY_TICKS)
            .flat_map(|_| c.handle(ClientEvent::Tick))
            .filter(|a| matches!(a, ClientAction::Send(_, o) if o.request.client == 1))
            .collect();
        assert_eq!(after(retried), (4, None));
    }

    #[test]
    fn a_silent_member_is_shown_suspected() {
        let mut c = PaxosClient::<Bytes>::new(3);
        let beat = Beat {
            pid: 7,
            ..Beat::default()
        };
        assert_eq!(
            c.handle(ClientEvent::Beat("acceptor", 1, beat)),
            vec![ClientAction::View("acceptor", 1, true, beat)]
        );
        // The same news twice is no news.
        assert!(c.handle(ClientEvent::Beat("acceptor", 1, beat)).is_empty());
        let mut views = vec![];
        for _ in 0..SUSPECT_AFTER_TICKS {
            views.extend(c.handle(ClientEvent::Tick));
        }
        assert_eq!(views, vec![ClientAction::View("acceptor", 1, false, beat)]);
    }

    #[test]
    fn a_request_is_given_up_in_the_end() {
        let mut c = PaxosClient::new(3);
        c.handle(ClientEvent::Request(get(1, 0)));
        for _ in 0..GIVE_UP_TICKS {
            c.handle(ClientEvent::Tick);
        }
        assert_eq!(c.outstanding(), 0);
        // A late answer is dropped.
        assert!(c.handle(ClientEvent::Response(answer(1, 0))).is_empty());
    }
}
