//! Multi-Paxos as Hydro dataflows: each role's state machine ([`super::proposer`],
//! [`super::acceptor`], [`super::log`], [`super::client`]) run over the messages and timers
//! of its process, and [`PaxosRouter`], the ordering stage the linearizable store plugs into
//! [`KVSServer`](crate::server::KVSServer).
//!
//! ```text
//!   proxy:     front ─▶ PaxosClient ──Ordered──▶ proposers (leader) ──Accept──▶ acceptors
//!              ▲   ◀─ first answer ─┐      heartbeats ▲  │ ▲                     │
//!              │                    │                 └──┘ └───Accepted──────────┘
//!              │                    │                    │ Decided(slot, entry)
//!   replicas:  │                    └─ responses ◀── KVSCore ◀── ReplicaLog (slot order)
//! ```
//!
//! Every role runs the same shape: its inputs — messages from its inbox, ticks of its timers
//! — merged into one stream, folded through the role's state machine with `scan`, and the
//! outputs sent on. Messages travel over our fail-stop transport ([`crate::net`]): Hydro's
//! channels take the sender down when a peer dies, and surviving the death of a leader or an
//! acceptor is the point of this store. (So this dataflow is not run by Hydro's simulator,
//! which runs only Hydro's channels: the protocol is simulated apart, in
//! `tests/paxos_simulation.rs`, over a network that loses and reorders messages.)
//!
//! Acceptors keep their promises in memory, not on disk: a killed process never comes back
//! (crash-stop, which is what HydroDeploy gives us), so nothing it promised can be forgotten
//! and then contradicted. A deployment whose processes restart would need them on disk.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::prelude::*;

use super::proposer::{Output, Settings};
use super::{Entry, Ordered, Slot};
use crate::protocol::{KVSRequest, KVSResponse};
use crate::server::{Member, Proxy, Router};

/// How often the leader sends heartbeats (and re-sends unanswered accepts).
pub const HEARTBEAT_EVERY: Duration = Duration::from_millis(100);
/// An election timeout: a follower that hears no heartbeat for one whole period (the
/// leader's successor; one more period per rank after it) stands for election. Ten
/// heartbeats: a leader slowed by a loaded machine is not deposed for a hiccup.
pub const ELECTION_EVERY: Duration = Duration::from_millis(1000);
/// How often replicas report their progress, and every process tells the proxy it lives.
pub const REPORT_EVERY: Duration = Duration::from_millis(100);
/// How often the proxy's retry timer ticks ([`super::client::RETRY_TICKS`] of them before a
/// retry).
pub const PROXY_TICK: Duration = Duration::from_millis(100);

/// A decided slot, as it travels to replicas.
pub type Decided = (Slot, Entry<Ordered<Bytes>>);

const ENV_F: &str = "KVS_ZOO_PAXOS_F";
const ENV_REPLICAS: &str = "KVS_ZOO_PAXOS_REPLICAS";

/// The sizes of a deployment with `f` tolerated failures and `replicas` replicas, as
/// environment variables for every process.
pub fn settings_env(f: u32, replicas: u32) -> Vec<(&'static str, String)> {
    vec![(ENV_F, f.to_string()), (ENV_REPLICAS, replicas.to_string())]
}

/// This process's protocol settings, read once from its environment ([`settings_env`]).
pub fn settings() -> Settings {
    static CURRENT: OnceLock<Settings> = OnceLock::new();
    *CURRENT.get_or_init(|| {
        let number = |name: &str, default: u32| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let f = number(ENV_F, 1);
        Settings {
            replicas: number(ENV_REPLICAS, 2 * f + 1),
            ..Settings::tolerating(f)
        }
    })
}

/// The slot this replica applies next: what its progress reports say.
static APPLIED: AtomicU64 = AtomicU64::new(0);

/// Sends one of a proposer's outputs where it goes.
pub fn dispatch(output: Output<Ordered<Bytes>>) {
    use crate::net::{channel, send_to};
    let s = settings();
    match output {
        Output::ToAcceptors(message) => {
            for acceptor in 0..s.acceptors {
                send_to("acceptor", acceptor, channel::TO_ACCEPTOR, &message);
            }
        }
        Output::Heartbeat(ballot) => {
            for proposer in 0..s.proposers {
                send_to("proposer", proposer, channel::LEADER, &ballot);
            }
            send_to("proxy", 0, channel::LEADER, &ballot);
        }
        Output::Forward(leader, request) => {
            send_to("proposer", leader, channel::ORDER, &request);
        }
        Output::Decided(slot, entry) => {
            let decided: Decided = (slot, entry);
            for replica in 0..s.replicas {
                send_to("replica", replica, channel::DECIDED, &decided);
            }
        }
        Output::Resend(replica, slot, entry) => {
            let decided: Decided = (slot, entry);
            send_to("replica", replica, channel::DECIDED, &decided);
        }
        Output::Behind(replica, checkpoint) => eprintln!(
            "kvs-zoo: replica {replica} fell behind the checkpoint (slot {checkpoint}): it was \
             silent too long and can no longer catch up from the log"
        ),
    }
}

/// A proposer's dataflow: requests, acceptors' answers, heartbeats, replicas' progress and
/// its two timers, through [`super::proposer::Proposer`].
pub fn proposer<'a, P: 'a>(proposers: &Cluster<'a, P>) {
    use super::proposer::Event;
    let requests = proposers
        .source_stream(q!(
            crate::net::inbox::<crate::paxos::Ordered<bytes::Bytes>>(crate::net::channel::ORDER)
        ))
        .map(q!(|(_from, request)| {
            crate::paxos::proposer::Event::Request(request)
        }));
    let answers = proposers
        .source_stream(q!(crate::net::inbox::<
            crate::paxos::FromAcceptor<crate::paxos::Ordered<bytes::Bytes>>,
        >(crate::net::channel::FROM_ACCEPTOR)))
        .map(q!(|(acceptor, answer)| {
            crate::paxos::proposer::Event::Acceptor(acceptor, answer)
        }));
    let heartbeats = proposers
        .source_stream(q!(crate::net::inbox::<crate::paxos::Ballot>(
            crate::net::channel::LEADER
        )))
        .map(q!(|(_from, ballot)| {
            crate::paxos::proposer::Event::Heartbeat(ballot)
        }));
    let progress = proposers
        .source_stream(q!(crate::net::inbox::<crate::paxos::Slot>(
            crate::net::channel::APPLIED
        )))
        .map(q!(|(replica, next)| {
            crate::paxos::proposer::Event::Applied { replica, next }
        }));
    let elections = proposers
        .source_interval(q!(crate::paxos::flow::ELECTION_EVERY))
        .map(q!(|_| crate::paxos::proposer::Event::ElectionTimeout));
    let beats = proposers
        .source_interval(q!(crate::paxos::flow::HEARTBEAT_EVERY))
        .map(q!(|_| crate::paxos::proposer::Event::HeartbeatTimeout));
    let events: Stream<Event<Ordered<Bytes>>, Cluster<'a, P>, Unbounded, NoOrder> = requests
        .merge_unordered(answers)
        .merge_unordered(heartbeats)
        .merge_unordered(progress)
        .merge_unordered(elections)
        .merge_unordered(beats);
    events
        .assume_ordering::<TotalOrder>(nondet!(
            /// A proposer acts on events in the order they reach it. Paxos is safe in any
            /// order (messages may be delayed and reordered by any network); the order only
            /// decides things like whether a heartbeat arrives before an election timeout,
            /// that is, how soon a leader is replaced, never what is decided.
        ))
        .cross_singleton(proposers.member_id())
        .scan(
            q!(|| None),
            q!(|proposer, (event, me)| {
                let proposer = proposer.get_or_insert_with(|| {
                    crate::paxos::proposer::Proposer::new(me, crate::paxos::flow::settings())
                });
                Some(proposer.handle(event))
            }),
        )
        .flatten_ordered()
        .for_each(q!(|output| crate::paxos::flow::dispatch(output)));
    report_alive(proposers, crate::net::channel::PROPOSER_BEATS);
}

/// An acceptor's dataflow: each proposer's message answered, to that proposer.
pub fn acceptor<'a, A: 'a>(acceptors: &Cluster<'a, A>) {
    acceptors
        .source_stream(q!(crate::net::inbox::<
            crate::paxos::ToAcceptor<crate::paxos::Ordered<bytes::Bytes>>,
        >(crate::net::channel::TO_ACCEPTOR)))
        .scan(
            q!(|| crate::paxos::acceptor::Acceptor::new()),
            q!(|acceptor, (from, message)| Some((from, acceptor.handle(message)))),
        )
        .for_each(q!(|(proposer, answer)| crate::net::send_to(
            "proposer",
            proposer,
            crate::net::channel::FROM_ACCEPTOR,
            &answer
        )));
    report_alive(acceptors, crate::net::channel::ACCEPTOR_BEATS);
}

/// Every [`REPORT_EVERY`], each member tells the proxy it lives (and its pid) on `channel`.
///
/// (Public, as every function with quoted code must be: Hydro re-exports public functions
/// into the staged copy of this crate it compiles, and copies private ones, whose `crate::`
/// paths then name the wrong crate.)
pub fn report_alive<'a, C: 'a>(members: &Cluster<'a, C>, channel: u8) {
    members
        .source_interval(q!(crate::paxos::flow::REPORT_EVERY))
        .for_each(q!(move |_| crate::net::send_to(
            "proxy",
            0,
            channel,
            &crate::routers::sticky::Beat {
                pid: std::process::id(),
                gossip_sent: 0,
            }
        )));
}

/// The ordering stage of the linearizable store: requests from the proxy go through
/// Multi-Paxos, and each replica receives the decided log, in slot order, each request once.
pub struct PaxosRouter<'a, P, A, R> {
    proxy: Process<'a, Proxy>,
    proposers: Cluster<'a, P>,
    acceptors: Cluster<'a, A>,
    replicas: Cluster<'a, R>,
}

impl<'a, P, A, R> PaxosRouter<'a, P, A, R> {
    /// The ordering stage from `proxy` through `proposers` and `acceptors` to `replicas`.
    pub fn new(
        proxy: &Process<'a, Proxy>,
        proposers: &Cluster<'a, P>,
        acceptors: &Cluster<'a, A>,
        replicas: &Cluster<'a, R>,
    ) -> Self {
        Self {
            proxy: proxy.clone(),
            proposers: proposers.clone(),
            acceptors: acceptors.clone(),
            replicas: replicas.clone(),
        }
    }
}

impl<'a, P: 'a, A: 'a, R: 'a> Router<'a, Bytes> for PaxosRouter<'a, P, A, R> {
    type Storage = Cluster<'a, R>;

    fn storage(&self) -> &Cluster<'a, R> {
        &self.replicas
    }

    fn route(
        &self,
        requests: Stream<KVSRequest<Bytes>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<Bytes>, Process<'a, Proxy>, Unbounded, NoOrder> {
        proposer(&self.proposers);
        acceptor(&self.acceptors);

        // Replicas: the decided log, in slot order and each request once, into the core;
        // every answer back to the proxy.
        let in_order = self
            .replicas
            .source_stream(q!(crate::net::inbox::<crate::paxos::flow::Decided>(
                crate::net::channel::DECIDED
            )))
            .scan(
                q!(|| crate::paxos::log::ReplicaLog::new()),
                q!(|log, (_proposer, (slot, entry))| {
                    let ready = log.decided(slot, entry);
                    crate::paxos::flow::applied(log.next());
                    Some(ready)
                }),
            )
            .flatten_ordered()
            .map(q!(|ordered| ordered.request));
        serve(in_order).for_each(q!(|response| crate::net::send_to(
            "proxy",
            0,
            crate::net::channel::RESPONSES,
            &response
        )));
        self.replicas
            .source_interval(q!(crate::paxos::flow::REPORT_EVERY))
            .for_each(q!(|_| crate::paxos::flow::report_progress()));
        report_alive(&self.replicas, crate::net::channel::HEARTBEATS);

        // The proxy: requests, answers, leaders' heartbeats, members' beats and a timer,
        // through the PaxosClient.
        let answers = self
            .proxy
            .source_stream(q!(crate::net::inbox::<
                crate::protocol::KVSResponse<bytes::Bytes>,
            >(crate::net::channel::RESPONSES)))
            .map(q!(|(_replica, answer)| {
                crate::paxos::client::ClientEvent::Response(answer)
            }));
        let leaders = self
            .proxy
            .source_stream(q!(crate::net::inbox::<crate::paxos::Ballot>(
                crate::net::channel::LEADER
            )))
            .map(q!(|(_proposer, ballot)| {
                crate::paxos::client::ClientEvent::Heartbeat(ballot)
            }));
        let ticks = self
            .proxy
            .source_interval(q!(crate::paxos::flow::PROXY_TICK))
            .map(q!(|_| crate::paxos::client::ClientEvent::Tick));
        let mut events = requests
            .map(q!(|request| crate::paxos::client::ClientEvent::Request(
                request
            )))
            .merge_unordered(answers)
            .merge_unordered(leaders)
            .merge_unordered(ticks);
        for (role, channel) in [
            ("proposer", crate::net::channel::PROPOSER_BEATS),
            ("acceptor", crate::net::channel::ACCEPTOR_BEATS),
            ("replica", crate::net::channel::HEARTBEATS),
        ] {
            let beats = self
                .proxy
                .source_stream(q!(crate::net::inbox::<crate::routers::sticky::Beat>(
                    channel
                )))
                .map(q!(move |(member, beat)| {
                    crate::paxos::client::ClientEvent::Beat(role, member, beat)
                }));
            events = events.merge_unordered(beats);
        }
        let actions = events
            .assume_ordering::<TotalOrder>(nondet!(
                /// The proxy acts on events in the order they reach it. The order decides
                /// when a request is retried and which replica's answer arrives first (all
                /// replicas applied the same log, so every answer to a request is the same),
                /// never what a request returns.
            ))
            .scan(
                q!(|| None),
                q!(|client, event| {
                    let client = client.get_or_insert_with(|| {
                        crate::paxos::client::PaxosClient::new(
                            crate::paxos::flow::settings().proposers,
                        )
                    });
                    Some(client.handle(event))
                }),
            )
            .flatten_ordered();
        actions.clone().for_each(q!(|action| match action {
            crate::paxos::client::ClientAction::Send(proposer, request) =>
                crate::net::send_to("proposer", proposer, crate::net::channel::ORDER, &request),
            crate::paxos::client::ClientAction::Leader(leader, ballot) => {
                crate::edge::members::publish_leader(leader, ballot.round)
            }
            crate::paxos::client::ClientAction::View(role, member, alive, beat) => {
                crate::edge::members::publish(role, member, alive, beat)
            }
            crate::paxos::client::ClientAction::Reply(_) => {}
        }));
        actions
            .filter_map(q!(|action| match action {
                crate::paxos::client::ClientAction::Reply(response) => Some(response),
                _ => None,
            }))
            .weaken_ordering()
    }
}

/// Records this replica's progress (called by its log as it applies).
pub fn applied(next: Slot) {
    APPLIED.store(next, Ordering::Relaxed);
}

/// Tells every proposer how far this replica has applied.
pub fn report_progress() {
    let next: Slot = APPLIED.load(Ordering::Relaxed);
    for proposer in 0..settings().proposers {
        crate::net::send_to("proposer", proposer, crate::net::channel::APPLIED, &next);
    }
}
