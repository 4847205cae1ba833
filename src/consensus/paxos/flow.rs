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
//!                                          snapshots, replica to replica ──┘ (state transfer)
//! ```
//!
//! Every role runs the same shape: its inputs — messages from its inbox, ticks of its timers
//! — merged into one stream, folded through the role's state machine with `scan`, and the
//! outputs sent on, one [link](crate::net::links) per kind of message. Deployed, messages
//! travel over our own transport ([`Transport::Zoo`]): Hydro's channels take the sender
//! down when a peer dies, and surviving the death of a leader or an acceptor is the point of
//! this store. Hydro's simulator runs the same dataflow over Hydro's channels
//! ([`Transport::Hydro`]) with the timers replaced by inputs the test sends
//! ([`PaxosTicks`]): see the sim tests below. The protocol's state machines are also
//! simulated apart, in `tests/paxos_simulation.rs`, over a network that loses and reorders
//! messages and with processes that crash, which Hydro's simulator does not model.
//!
//! An acceptor restarted by `serve` votes again if it keeps its promises on disk
//! (`--data-dir`: its answers leave only once its log holds them), and never without
//! ([`super::acceptor::Acceptor::open`]): forgotten promises could break Paxos, so each
//! restart without a disk costs the store a vote. A restarted replica catches up
//! from another's snapshot ([`super::replica`]).

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::prelude::*;

use super::acceptor::Acceptor;
use super::proposer::{Event, Output, Settings};
use super::replica::ReplicaStep;
use super::transfer::Part;
use super::{Ballot, Entry, FromAcceptor, Ordered, Slot, ToAcceptor};
use crate::membership::liveness::Beat;
use crate::net::Transport;
use crate::net::channel;
use crate::net::links::{between, from_proxy, to_proxy};
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
/// Decided slots as the replicas of cluster `R` receive them.
pub type DecidedAt<'a, R> = Stream<Decided, Cluster<'a, R>, Unbounded, NoOrder>;
/// A proposer's message to an acceptor, as the store sends it.
pub type PhaseMessage = ToAcceptor<Ordered<Bytes>>;
/// An acceptor's answer to a proposer, as the store sends it.
pub type PhaseAnswer = FromAcceptor<Ordered<Bytes>>;

const ENV_F: &str = "KVS_ZOO_PAXOS_F";
const ENV_REPLICAS: &str = "KVS_ZOO_PAXOS_REPLICAS";

/// The sizes of a deployment with `f` tolerated failures and `replicas` replicas, as
/// environment variables for every process.
pub fn settings_env(f: u32, replicas: u32) -> Vec<(&'static str, String)> {
    vec![
        (ENV_F, f.to_string()),
        (ENV_REPLICAS, replicas.to_string()),
        // With a data directory, the log keeps each process's journal: an acceptor's
        // promises, a replica's decided slots (its store is rebuilt from them).
        (
            crate::durability::ENV_OWNER,
            crate::durability::Owner::Log.name().to_string(),
        ),
    ]
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

/// Where one of a proposer's outputs goes: one [link](crate::net::links) per kind.
#[derive(Clone, Debug)]
pub enum Addressed {
    /// A prepare or accept, to an acceptor.
    Acceptor(u32, PhaseMessage),
    /// The leader's heartbeat, to a proposer.
    Proposer(u32, Ballot),
    /// A request, forwarded to the leader proposer.
    Forward(u32, Ordered<Bytes>),
    /// The leader's heartbeat, to the proxy.
    Proxy(Ballot),
    /// A decided slot, to a replica.
    Replica(u32, Decided),
    /// To replica `from`: send a snapshot of your state to replica `to` (the second field).
    Transfer(u32, u32),
}

/// Addresses one of a proposer's outputs: a broadcast becomes one message per receiver.
pub fn address(output: Output<Ordered<Bytes>>) -> Vec<Addressed> {
    let s = settings();
    match output {
        Output::ToAcceptors(message) => (0..s.acceptors)
            .map(|a| Addressed::Acceptor(a, message.clone()))
            .collect(),
        Output::ToAcceptor(acceptor, message) => vec![Addressed::Acceptor(acceptor, message)],
        Output::Heartbeat(ballot) => (0..s.proposers)
            .map(|p| Addressed::Proposer(p, ballot))
            .chain([Addressed::Proxy(ballot)])
            .collect(),
        Output::Forward(leader, request) => vec![Addressed::Forward(leader, request)],
        Output::Decided(slot, entry) => (0..s.replicas)
            .map(|r| Addressed::Replica(r, (slot, entry.clone())))
            .collect(),
        Output::Resend(replica, slot, entry) => vec![Addressed::Replica(replica, (slot, entry))],
        Output::Transfer {
            from,
            to,
            checkpoint,
        } => {
            eprintln!(
                "kvs-zoo: replica {to} is behind the checkpoint (slot {checkpoint}), restarted \
                 or silent too long: replica {from} sends it a snapshot"
            );
            vec![Addressed::Transfer(from, to)]
        }
    }
}

/// The timers that drive the protocol, as streams of ticks: intervals when deployed
/// ([`PaxosTicks::timers`]), inputs a sim test sends (Hydro's simulator runs no timers).
pub struct PaxosTicks<'a, P, A, R> {
    /// Election timeouts, at each proposer ([`ELECTION_EVERY`]).
    pub election: Stream<(), Cluster<'a, P>, Unbounded, NoOrder>,
    /// Heartbeat timeouts, at each proposer ([`HEARTBEAT_EVERY`]): the leader's heartbeats
    /// and re-sends; every proposer's liveness beat to the proxy.
    pub heartbeat: Stream<(), Cluster<'a, P>, Unbounded, NoOrder>,
    /// Each acceptor's liveness beat to the proxy ([`REPORT_EVERY`]).
    pub acceptor: Stream<(), Cluster<'a, A>, Unbounded, NoOrder>,
    /// Each replica's progress report and liveness beat ([`REPORT_EVERY`]).
    pub replica: Stream<(), Cluster<'a, R>, Unbounded, NoOrder>,
    /// The proxy's retry timer ([`PROXY_TICK`]).
    pub proxy: Stream<(), Process<'a, Proxy>, Unbounded, NoOrder>,
}

impl<'a, P: 'a, A: 'a, R: 'a> PaxosTicks<'a, P, A, R> {
    /// The deployed timers, at the intervals this module's constants name.
    pub fn timers(
        proxy: &Process<'a, Proxy>,
        proposers: &Cluster<'a, P>,
        acceptors: &Cluster<'a, A>,
        replicas: &Cluster<'a, R>,
    ) -> Self {
        Self {
            election: proposers
                .source_interval(q!(crate::consensus::paxos::flow::ELECTION_EVERY))
                .map(q!(|_| ()))
                .weaken_ordering(),
            heartbeat: proposers
                .source_interval(q!(crate::consensus::paxos::flow::HEARTBEAT_EVERY))
                .map(q!(|_| ()))
                .weaken_ordering(),
            acceptor: acceptors
                .source_interval(q!(crate::consensus::paxos::flow::REPORT_EVERY))
                .map(q!(|_| ()))
                .weaken_ordering(),
            replica: replicas
                .source_interval(q!(crate::consensus::paxos::flow::REPORT_EVERY))
                .map(q!(|_| ()))
                .weaken_ordering(),
            proxy: proxy
                .source_interval(q!(crate::consensus::paxos::flow::PROXY_TICK))
                .map(q!(|_| ()))
                .weaken_ordering(),
        }
    }
}

/// `message` to every proposer.
pub fn to_every_proposer<T: Clone>(message: T) -> Vec<(u32, T)> {
    (0..settings().proposers)
        .map(|p| (p, message.clone()))
        .collect()
}

/// A proposer's dataflow: its inbox and its two timers, through
/// [`super::proposer::Proposer`]. Returns its outputs, addressed.
pub fn proposer<'a, P: 'a>(
    proposers: &Cluster<'a, P>,
    inbox: Stream<Event<Ordered<Bytes>>, Cluster<'a, P>, Unbounded, NoOrder>,
    election: Stream<(), Cluster<'a, P>, Unbounded, NoOrder>,
    heartbeat: Stream<(), Cluster<'a, P>, Unbounded, NoOrder>,
) -> Stream<Addressed, Cluster<'a, P>, Unbounded, TotalOrder> {
    inbox
        .merge_unordered(election.map(q!(|_| {
            crate::consensus::paxos::proposer::Event::ElectionTimeout
        })))
        .merge_unordered(heartbeat.map(q!(|_| {
            crate::consensus::paxos::proposer::Event::HeartbeatTimeout
        })))
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
                    crate::consensus::paxos::proposer::Proposer::new(
                        me,
                        crate::consensus::paxos::flow::settings(),
                    )
                });
                Some(proposer.handle(event))
            }),
        )
        .flatten_ordered()
        .flat_map_ordered(q!(|output| crate::consensus::paxos::flow::address(output)))
}

/// `message` from proposer `from`, answered by `acceptor`: each answer (a promise may take
/// several parts) addressed to that proposer.
pub fn answer_proposer(
    acceptor: &mut Acceptor<Ordered<Bytes>>,
    from: u32,
    message: PhaseMessage,
) -> Vec<(u32, PhaseAnswer)> {
    acceptor
        .serve(message)
        .into_iter()
        .map(|answer| (from, answer))
        .collect()
}

/// An acceptor's dataflow: each proposer's message answered, to that proposer.
pub fn acceptor<'a, A: 'a>(
    messages: Stream<(u32, PhaseMessage), Cluster<'a, A>, Unbounded, NoOrder>,
) -> Stream<(u32, PhaseAnswer), Cluster<'a, A>, Unbounded, TotalOrder> {
    let tick = messages.location().tick();
    messages
        .assume_ordering::<TotalOrder>(nondet!(
            /// An acceptor answers messages in the order they reach it: Paxos is safe in
            /// any order (each answer follows from the promise and the accepted values the
            /// acceptor holds at that moment, whatever came before).
        ))
        .scan(
            q!(|| crate::consensus::paxos::acceptor::Acceptor::open(
                crate::membership::incarnation(),
                crate::durability::restarted_from_disk()
            )),
            q!(
                |acceptor, (from, message)| Some(crate::consensus::paxos::flow::answer_proposer(
                    acceptor, from, message
                ))
            ),
        )
        .batch(
            &tick,
            nondet!(
                /// Where a batch ends decides only how many answers share one write of the
                /// log (and one fsync): each answer still leaves after the records of every
                /// promise and accept made before it are written.
            ),
        )
        .collect_vec()
        .flat_map_ordered(q!(|answers| crate::durability::settle(answers)))
        .all_ticks()
        .flatten_ordered()
}

/// A replica's log ([`super::replica::ReplicaState`]): decided slots, report ticks, the
/// leader's requests for a snapshot (`send_snapshot`: to which replica) and parts of
/// snapshots (`parts`: from which replica) in; requests to apply (in log order, each once,
/// and the replica's own requests that read or replace the store's state) and progress
/// reports out.
pub fn replica_log<'a, R: 'a>(
    decided: Stream<Decided, Cluster<'a, R>, Unbounded, NoOrder>,
    report: Stream<(), Cluster<'a, R>, Unbounded, NoOrder>,
    send_snapshot: Stream<u32, Cluster<'a, R>, Unbounded, NoOrder>,
    parts: Stream<(u32, Part), Cluster<'a, R>, Unbounded, NoOrder>,
) -> Stream<ReplicaStep, Cluster<'a, R>, Unbounded, TotalOrder> {
    let tick = decided.location().tick();
    decided
        .map(q!(|(slot, entry)| {
            crate::consensus::paxos::replica::ReplicaEvent::Decided(slot, entry)
        }))
        .merge_unordered(report.map(q!(|_| {
            crate::consensus::paxos::replica::ReplicaEvent::Report
        })))
        .merge_unordered(send_snapshot.map(q!(|to| {
            crate::consensus::paxos::replica::ReplicaEvent::SendSnapshot(to)
        })))
        .merge_unordered(parts.map(q!(|(from, part)| {
            crate::consensus::paxos::replica::ReplicaEvent::Part(from, part)
        })))
        .assume_ordering::<TotalOrder>(nondet!(
            /// Decided slots may arrive in any order (from several proposers, resent, out of
            /// order): the log applies them in slot order whatever their arrival order. A
            /// snapshot is read at whatever point of the log the request for it arrives, and
            /// installed only if it is ahead of the log, whatever came before. The order only
            /// decides which progress a report carries and which slot a snapshot covers.
        ))
        .scan(
            q!(|| crate::consensus::paxos::replica::ReplicaState::open()),
            q!(|replica, event| Some(replica.step(event))),
        )
        .batch(
            &tick,
            nondet!(
                /// Where a batch ends decides only how many steps share one write of the log
                /// (and one fsync): each step still leaves after the record of every slot
                /// decided before it is written, so no progress is reported, and nothing
                /// applied, that a restart could lose.
            ),
        )
        .collect_vec()
        .flat_map_ordered(q!(|steps| crate::durability::settle(steps)))
        .all_ticks()
        .flatten_ordered()
}

/// Each member's liveness beat (its pid and incarnation, and for `acceptors` whether they
/// vote), one per tick, to the proxy on `channel`.
pub fn beats<'a, C: 'a>(
    ticks: Stream<(), Cluster<'a, C>, Unbounded, NoOrder>,
    proxy: &Process<'a, Proxy>,
    channel: u8,
    transport: Transport,
    acceptors: bool,
) -> Stream<(u32, Beat), Process<'a, Proxy>, Unbounded, NoOrder> {
    let beats = ticks
        .map(q!(move |_| if acceptors {
            crate::membership::liveness::Beat::acceptor()
        } else {
            crate::membership::liveness::Beat::now(0)
        }))
        .assume_ordering::<TotalOrder>(nondet!(
            /// Ticks are alike: their order is no order at all.
        ));
    to_proxy(beats, proxy, channel, transport)
}

/// Every request's answer, as the proxy receives them.
pub type AnswersAtProxy<'a> = Stream<KVSResponse<Bytes>, Process<'a, Proxy>, Unbounded, NoOrder>;

/// The ordering stage of the linearizable store: requests from the proxy go through
/// Multi-Paxos, and each replica receives the decided log, in slot order, each request once.
pub struct PaxosRouter<'a, P, A, R> {
    proxy: Process<'a, Proxy>,
    proposers: Cluster<'a, P>,
    acceptors: Cluster<'a, A>,
    replicas: Cluster<'a, R>,
    ticks: PaxosTicks<'a, P, A, R>,
    transport: Transport,
}

impl<'a, P: 'a, A: 'a, R: 'a> PaxosRouter<'a, P, A, R> {
    /// The deployed ordering stage from `proxy` through `proposers` and `acceptors` to
    /// `replicas`: timers, and our own transport.
    pub fn new(
        proxy: &Process<'a, Proxy>,
        proposers: &Cluster<'a, P>,
        acceptors: &Cluster<'a, A>,
        replicas: &Cluster<'a, R>,
    ) -> Self {
        let ticks = PaxosTicks::timers(proxy, proposers, acceptors, replicas);
        Self::with_ticks(proxy, proposers, acceptors, replicas, ticks, Transport::Zoo)
    }

    /// The ordering stage driven by `ticks` instead of timers, over `transport`: what sim
    /// tests build.
    pub fn with_ticks(
        proxy: &Process<'a, Proxy>,
        proposers: &Cluster<'a, P>,
        acceptors: &Cluster<'a, A>,
        replicas: &Cluster<'a, R>,
        ticks: PaxosTicks<'a, P, A, R>,
        transport: Transport,
    ) -> Self {
        Self {
            proxy: proxy.clone(),
            proposers: proposers.clone(),
            acceptors: acceptors.clone(),
            replicas: replicas.clone(),
            ticks,
            transport,
        }
    }

    /// Routes as [`Router::route`] does, and also returns every decided slot as the replicas
    /// receive it (re-sent ones again): where a test watches that a slot is only ever
    /// decided one way.
    pub fn route_watched(
        self,
        requests: Stream<KVSRequest<Bytes>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
    ) -> (AnswersAtProxy<'a>, DecidedAt<'a, R>) {
        let Self {
            proxy,
            proposers,
            acceptors,
            replicas,
            ticks,
            transport: net,
        } = self;
        let (proxy, proposers, acceptors, replicas) = (&proxy, &proposers, &acceptors, &replicas);

        // What proposers hear from each other, from acceptors and from replicas arrives
        // after they speak: a cycle, closed at the end.
        let (proposer_inbox_later, proposer_inbox) =
            proposers
                .forward_ref::<Stream<Event<Ordered<Bytes>>, Cluster<'a, P>, Unbounded, NoOrder>>();
        let (proxy_inbox_later, proxy_inbox) = proxy.forward_ref::<Stream<
            crate::consensus::paxos::client::ClientEvent<Bytes>,
            Process<'a, Proxy>,
            Unbounded,
            NoOrder,
        >>();

        // Proposers.
        let outputs = proposer(
            proposers,
            proposer_inbox,
            ticks.election,
            ticks.heartbeat.clone(),
        );
        let to_acceptors = outputs.clone().filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Acceptor(to, m) => Some((to, m)),
            _ => None,
        }));
        let heartbeats = outputs.clone().filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Proposer(to, ballot) => Some((to, ballot)),
            _ => None,
        }));
        let forwards = outputs.clone().filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Forward(to, request) => Some((to, request)),
            _ => None,
        }));
        let leader_to_proxy = outputs.clone().filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Proxy(ballot) => Some(ballot),
            _ => None,
        }));
        let decided = outputs.clone().filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Replica(to, decided) => Some((to, decided)),
            _ => None,
        }));
        let snapshot_asks = outputs.filter_map(q!(|a| match a {
            crate::consensus::paxos::flow::Addressed::Transfer(from, to) => Some((from, to)),
            _ => None,
        }));

        // Acceptors.
        let at_acceptors = between(
            to_acceptors,
            acceptors,
            "acceptor",
            channel::TO_ACCEPTOR,
            net,
        );
        let answers = acceptor(at_acceptors);

        // Replicas: the decided log, in slot order and each request once, into the core;
        // every answer back to the proxy, progress to the proposers, snapshots to replicas
        // behind (which arrive after they are sent: a cycle, closed below).
        let at_replicas = between(decided, replicas, "replica", channel::DECIDED, net)
            .map(q!(|(_proposer, decided)| decided));
        let watched = at_replicas.clone();
        let asked = between(
            snapshot_asks,
            replicas,
            "replica",
            channel::SNAPSHOT_ASK,
            net,
        )
        .map(q!(|(_proposer, to)| to));
        let (parts_later, parts) =
            replicas.forward_ref::<Stream<(u32, Part), Cluster<'a, R>, Unbounded, NoOrder>>();
        let steps = replica_log(at_replicas, ticks.replica.clone(), asked, parts);
        let in_order = steps.clone().filter_map(q!(|step| match step {
            crate::consensus::paxos::replica::ReplicaStep::Apply(request) => Some(request),
            _ => None,
        }));
        let answer_again = steps.clone().filter_map(q!(|step| match step {
            crate::consensus::paxos::replica::ReplicaStep::AnswerAgain(client, request) => Some(
                crate::consensus::paxos::replies::Answer::Again(client, request)
            ),
            _ => None,
        }));
        let progress = steps
            .filter_map(q!(|step| match step {
                crate::consensus::paxos::replica::ReplicaStep::Progress(next) => Some(next),
                _ => None,
            }))
            .flat_map_ordered(q!(|next| crate::consensus::paxos::flow::to_every_proposer(
                (next, crate::membership::incarnation())
            )));
        let answered = serve(in_order);
        let to_clients = answered
            .clone()
            .filter(q!(|response| {
                response.client != crate::consensus::paxos::transfer::TRANSFER_CLIENT
            }))
            .map(q!(|response| {
                crate::consensus::paxos::replies::Answer::Fresh(response)
            }))
            .merge_ordered(
                answer_again,
                nondet!(
                    /// A retry's mark comes out of the log after the request it repeats was
                    /// applied, so its first answer is normally in the cache already. Were the
                    /// mark to overtake that answer here, the cache would miss and the retry
                    /// go unanswered, as with no cache: the client's timeout, never a wrong
                    /// answer. Fresh answers keep their order among themselves.
                ),
            )
            .scan(
                q!(|| crate::consensus::paxos::replies::ReplyCache::new()),
                q!(|cache, answer| Some(cache.answer(answer))),
            )
            .flatten_ordered();
        let snapshots = answered
            .filter(q!(|response| {
                response.client == crate::consensus::paxos::transfer::TRANSFER_CLIENT
            }))
            .filter_map(q!(|response| {
                crate::consensus::paxos::replica::snapshot_destination(response)
            }))
            .flat_map_ordered(q!(|(to, id, snapshot)| {
                crate::consensus::paxos::transfer::parts_for(to, id, &snapshot)
            }));
        parts_later.complete(between(
            snapshots,
            replicas,
            "replica",
            channel::SNAPSHOT,
            net,
        ));
        let responses = to_proxy(to_clients, proxy, channel::RESPONSES, net);

        // The proxy: requests, what it hears and its timer, through the PaxosClient.
        let heard = proxy_inbox
            .merge_unordered(
                ticks
                    .proxy
                    .map(q!(|_| crate::consensus::paxos::client::ClientEvent::Tick)),
            )
            .assume_ordering::<TotalOrder>(nondet!(
                /// The proxy acts on what it hears in the order it arrives. The order decides
                /// when a request is retried and which replica's answer arrives first (all
                /// replicas applied the same log, so every answer to a request is the same),
                /// never what a request returns.
            ));
        let actions = requests
            .map(q!(|request| {
                crate::consensus::paxos::client::ClientEvent::Request(request)
            }))
            .merge_ordered(
                heard,
                nondet!(
                    /// Clients' requests keep their order among themselves: a request says
                    /// which of its client's requests were answered before it was sent
                    /// (`answered_below`, how replicas forget old requests), which is true
                    /// only if the proxy saw that client's earlier requests first. Hydro's
                    /// simulator found this: with the requests merged in any order, a
                    /// client's later request told replicas to forget earlier ones not yet
                    /// applied. Where what is heard falls among the requests is free.
                ),
            )
            .scan(
                q!(|| None),
                q!(|client, event| {
                    let client = client.get_or_insert_with(|| {
                        crate::consensus::paxos::client::PaxosClient::new(
                            crate::consensus::paxos::flow::settings().proposers,
                        )
                    });
                    Some(client.handle(event))
                }),
            )
            .flatten_ordered();
        actions.clone().for_each(q!(|action| match action {
            crate::consensus::paxos::client::ClientAction::Leader(leader, ballot) => {
                crate::membership::view::publish_leader(leader, ballot.round)
            }
            crate::consensus::paxos::client::ClientAction::View(role, member, alive, beat) => {
                crate::membership::view::publish(role, member, alive, beat)
            }
            _ => {}
        }));
        let sends = actions.clone().filter_map(q!(|action| match action {
            crate::consensus::paxos::client::ClientAction::Send(proposer, request) =>
                Some((proposer, request)),
            _ => None,
        }));

        // Everything proposers hear.
        proposer_inbox_later.complete(
            from_proxy(sends, proposers, "proposer", channel::ORDER, net)
                .map(q!(|request| {
                    crate::consensus::paxos::proposer::Event::Request(request)
                }))
                .merge_unordered(
                    between(answers, proposers, "proposer", channel::FROM_ACCEPTOR, net).map(q!(
                        |(acceptor, answer)| {
                            crate::consensus::paxos::proposer::Event::Acceptor(acceptor, answer)
                        }
                    )),
                )
                .merge_unordered(
                    between(heartbeats, proposers, "proposer", channel::LEADER, net).map(q!(
                        |(_from, ballot)| crate::consensus::paxos::proposer::Event::Heartbeat(
                            ballot
                        )
                    )),
                )
                .merge_unordered(
                    between(forwards, proposers, "proposer", channel::FORWARD, net).map(q!(
                        |(_from, request)| crate::consensus::paxos::proposer::Event::Request(
                            request
                        )
                    )),
                )
                .merge_unordered(
                    between(progress, proposers, "proposer", channel::APPLIED, net).map(q!(
                        |(replica, (next, incarnation))| {
                            crate::consensus::paxos::proposer::Event::Applied {
                                replica,
                                next,
                                incarnation,
                            }
                        }
                    )),
                ),
        );

        // Everything the proxy hears: answers, leaders' heartbeats, members' beats.
        let mut heard_by_proxy = responses
            .map(q!(|(_replica, answer)| {
                crate::consensus::paxos::client::ClientEvent::Response(answer)
            }))
            .merge_unordered(
                to_proxy(leader_to_proxy, proxy, channel::LEADER, net).map(q!(|(
                    _proposer,
                    ballot,
                )| {
                    crate::consensus::paxos::client::ClientEvent::Heartbeat(ballot)
                })),
            );
        for (role, beats) in [
            (
                "proposer",
                beats(ticks.heartbeat, proxy, channel::PROPOSER_BEATS, net, false),
            ),
            (
                "acceptor",
                beats(ticks.acceptor, proxy, channel::ACCEPTOR_BEATS, net, true),
            ),
            (
                "replica",
                beats(ticks.replica, proxy, channel::HEARTBEATS, net, false),
            ),
        ] {
            heard_by_proxy =
                heard_by_proxy.merge_unordered(beats.map(q!(move |(member, beat)| {
                    crate::consensus::paxos::client::ClientEvent::Beat(role, member, beat)
                })));
        }
        proxy_inbox_later.complete(heard_by_proxy);

        let answers = actions
            .filter_map(q!(|action| match action {
                crate::consensus::paxos::client::ClientAction::Reply(response) => Some(response),
                _ => None,
            }))
            .weaken_ordering();
        (answers, watched)
    }
}

impl<'a, P: 'a, A: 'a, R: 'a> Router<'a, Bytes> for PaxosRouter<'a, P, A, R> {
    type Storage = Cluster<'a, R>;

    fn storage(&self) -> &Cluster<'a, R> {
        &self.replicas
    }

    fn route(
        self,
        requests: Stream<KVSRequest<Bytes>, Process<'a, Proxy>, Unbounded, TotalOrder>,
        serve: impl FnOnce(
            Stream<KVSRequest<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
        ) -> Stream<KVSResponse<Bytes>, Cluster<'a, R>, Unbounded, TotalOrder>,
    ) -> Stream<KVSResponse<Bytes>, Process<'a, Proxy>, Unbounded, NoOrder> {
        self.route_watched(requests, serve).0
    }
}

#[cfg(test)]
mod sim_tests {
    use std::collections::{BTreeMap, BTreeSet};

    use std::panic::RefUnwindSafe;

    use hydro_lang::live_collections::stream::ExactlyOnce;
    use hydro_lang::prelude::*;
    use hydro_lang::sim::quiesce;

    use super::*;
    use crate::consensus::paxos::client::RETRY_TICKS;
    use crate::consensus::paxos::roles::{Acceptor, Proposer, Replica};
    use crate::protocol::{KVSOperation, KVSResult};

    type Sender<T, O> = hydro_lang::sim::SimSender<T, O, ExactlyOnce>;
    type ClusterSender<T> = hydro_lang::sim::SimClusterSender<T, NoOrder, ExactlyOnce>;

    /// The test's handles on a simulated ordering stage.
    struct Driver {
        /// Clients' requests, into the proxy.
        requests: Sender<KVSRequest<Bytes>, TotalOrder>,
        /// Election timeouts, per proposer.
        elect: ClusterSender<()>,
        /// Heartbeat timeouts, per proposer.
        beat: ClusterSender<()>,
        /// Report timeouts, per replica.
        report: ClusterSender<()>,
        /// The proxy's retry timer.
        tick: Sender<(), NoOrder>,
        /// The proxy's answers: (client, request, result).
        answers:
            hydro_lang::sim::SimReceiver<(u64, u64, KVSResult<Bytes>), TotalOrder, ExactlyOnce>,
    }

    /// Election timeouts at `members`.
    fn elect(d: &Driver, members: &[u32]) {
        d.elect
            .send_many_unordered(members.iter().map(|&m| (m, ())));
    }

    /// A heartbeat timeout at every proposer.
    fn beat(d: &Driver) {
        d.beat.send_many_unordered((0..3).map(|m| (m, ())));
    }

    /// One tick of the proxy's retry timer.
    fn tick(d: &Driver) {
        d.tick.send_many_unordered([()]);
    }

    /// Client `client`'s request `request` (a GET: what it reads does not matter here).
    fn request(d: &Driver, client: u64, request: u64) {
        d.requests.send(KVSRequest {
            at: 0,
            client,
            request,
            op: KVSOperation::Get(Bytes::from_static(b"k")),
        });
    }

    /// Requests `requests` of every client in `clients`, all at once (request by request,
    /// each client's in turn), recorded in `sent`.
    fn send(
        d: &Driver,
        clients: std::ops::RangeInclusive<u64>,
        requests: std::ops::Range<u64>,
        sent: &mut BTreeSet<(u64, u64)>,
    ) {
        for r in requests {
            for client in clients.clone() {
                request(d, client, r);
                sent.insert((client, r));
            }
        }
    }

    /// Election timeouts elect proposer 0 (the first to stand when no leader was ever
    /// heard), and its heartbeats reach the others and the proxy.
    async fn first_leader(d: &Driver) {
        elect(d, &[0, 1, 2]);
        quiesce().await;
        beat(d);
        quiesce().await;
    }

    /// Three proposers, acceptors and replicas (f = 1, the defaults a process without
    /// settings in its environment takes), the whole ordering stage run by Hydro's
    /// simulator with every timer driven by the test. Each replica answers a request with
    /// its position in that replica's applied sequence, and every replica's sequence is
    /// also tapped, so the test sees what each replica applied and in which order.
    ///
    /// `scenario` drives it and returns the requests it sent; then every replica hears
    /// every decision (progress reports bring resends), and what each applied is checked.
    fn run_paxos(
        transport: Transport,
        iterations: usize,
        scenario: impl AsyncFn(&Driver) -> BTreeSet<(u64, u64)> + RefUnwindSafe,
    ) {
        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let proposers = flow.cluster::<Proposer>();
        let acceptors = flow.cluster::<Acceptor>();
        let replicas = flow.cluster::<Replica>();
        let (requests_in, requests) = proxy.sim_input();
        let (elect_in, election) = proposers.sim_input();
        let (beat_in, heartbeat) = proposers.sim_input();
        let (report_in, replica) = replicas.sim_input();
        let (tick_in, proxy_ticks) = proxy.sim_input();
        let (_acceptor_in, acceptor_ticks) = acceptors.sim_input();
        let ticks = PaxosTicks {
            election,
            heartbeat,
            acceptor: acceptor_ticks,
            replica,
            proxy: proxy_ticks,
        };
        let router =
            PaxosRouter::with_ticks(&proxy, &proposers, &acceptors, &replicas, ticks, transport);
        let mut applied = None;
        let (answers, decided) = router.route_watched(requests, |at_replicas| {
            let numbered = at_replicas.enumerate();
            applied = Some(
                numbered
                    .clone()
                    .map(q!(|(i, r)| (i, r.client, r.request)))
                    .sim_cluster_output(),
            );
            numbered.map(q!(|(i, request)| {
                request
                    .into_parts()
                    .1
                    .respond(KVSResult::Value(Bytes::from(i.to_string())))
            }))
        });
        let answers = answers
            .map(q!(|response| (
                response.client,
                response.request,
                response.result
            )))
            .assume_ordering::<TotalOrder>(nondet!(
                /// The test sorts what it receives.
            ))
            .sim_output();
        let applied = applied.expect("the router serves");
        let decided = decided
            .assume_ordering::<TotalOrder>(nondet!(
                /// The test only collects the decisions each replica received.
            ))
            .sim_cluster_output();
        let driver = Driver {
            requests: requests_in,
            elect: elect_in,
            beat: beat_in,
            report: report_in,
            tick: tick_in,
            answers,
        };

        let lossy = transport == Transport::HydroLossy;
        let sim = flow
            .sim()
            .with_cluster_size(&proposers, 3)
            .with_cluster_size(&acceptors, 3)
            .with_cluster_size(&replicas, 3)
            .unit_test_fuzz_iterations(iterations);
        let sim = if lossy { sim.test_safety_only() } else { sim };
        sim.fuzz(async || {
            let sent = scenario(&driver).await;
            for _ in 0..3 {
                quiesce().await;
                driver.report.send_many_unordered((0..3).map(|m| (m, ())));
                quiesce().await;
                beat(&driver);
            }
            let mut sequences = Vec::new();
            let mut slots = BTreeMap::new();
            for replica in 0..3 {
                let got: Vec<(usize, u64, u64)> = applied.collect(replica).await;
                sequences.push(got);
                let received: Vec<Decided> = decided.collect(replica).await;
                for (slot, entry) in received {
                    let first = slots.entry(slot).or_insert_with(|| entry.clone());
                    assert_eq!(*first, entry, "slot {slot} decided two ways");
                }
            }
            let noops = slots.values().filter(|e| matches!(e, Entry::Noop)).count();
            NOOPS.fetch_add(noops, std::sync::atomic::Ordering::Relaxed);
            check_applied(&sequences, &sent, !lossy);
        });
    }

    /// Holes filled with no-ops, over every run of the test.
    static NOOPS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

    /// Random schedules explored per test (`cargo test`; `cargo sim` explores with a fuzzer).
    const ITERATIONS: usize = 150;
    /// Random schedules of the lossy test: about 3 in 100 leave a hole, and the test asks
    /// that one did (400 make a run without one about as likely as 1 in 100,000).
    const LOSSY_ITERATIONS: usize = 400;

    /// What every replica applied: each request at most once, all in one order (one a
    /// prefix of the other where a replica is behind), and — when nothing can be lost
    /// (`complete`) — every sent request, everywhere.
    fn check_applied(
        sequences: &[Vec<(usize, u64, u64)>],
        sent: &BTreeSet<(u64, u64)>,
        complete: bool,
    ) {
        let orders: Vec<Vec<(u64, u64)>> = sequences
            .iter()
            .map(|sequence| {
                let mut sequence = sequence.clone();
                sequence.sort();
                for (position, (i, _, _)) in sequence.iter().enumerate() {
                    assert_eq!(*i, position, "a replica's positions have a gap");
                }
                sequence.into_iter().map(|(_, c, r)| (c, r)).collect()
            })
            .collect();
        for (replica, order) in orders.iter().enumerate() {
            let distinct: BTreeSet<(u64, u64)> = order.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                order.len(),
                "replica {replica} applied a request twice: {order:?}"
            );
            assert!(
                distinct.is_subset(sent),
                "replica {replica} applied a request never sent"
            );
            if complete {
                assert_eq!(
                    &distinct, sent,
                    "replica {replica} did not apply every request"
                );
            }
            for other in &orders[..replica] {
                let common = order.len().min(other.len());
                assert_eq!(
                    order[..common],
                    other[..common],
                    "replicas {replica} and another applied different orders"
                );
            }
        }
    }

    /// Receives `n` answers and checks each sent request is answered exactly once, with a
    /// position in the applied order.
    async fn answers_once(d: &Driver, sent: &BTreeSet<(u64, u64)>) {
        let got: Vec<(u64, u64, KVSResult<Bytes>)> = d.answers.collect_n(sent.len()).await;
        let mut by_request = BTreeMap::new();
        for (client, request, result) in got {
            assert!(
                matches!(result, KVSResult::Value(_)),
                "({client}, {request}) answered {result:?}"
            );
            assert!(
                by_request.insert((client, request), result).is_none(),
                "({client}, {request}) answered twice"
            );
        }
        let answered: BTreeSet<(u64, u64)> = by_request.into_keys().collect();
        assert_eq!(&answered, sent);
    }

    /// Election timeouts fed in elect proposer 0; the requests of three clients, sent at
    /// once, are then decided and applied in one order by every replica, each answered once.
    #[test]
    fn an_elected_leader_orders_concurrent_requests() {
        run_paxos(Transport::Hydro, ITERATIONS, async |d| {
            first_leader(d).await;
            let mut sent = BTreeSet::new();
            send(d, 1..=3, 0..4, &mut sent);
            answers_once(d, &sent).await;
            sent
        });
    }

    /// Requests sent before any leader exists are held and retried (the proxy's retry timer
    /// moves them from proposer to proposer), not dropped: once timeouts elect a leader,
    /// each is applied once — a request that reached several proposers is decided more than
    /// once and applied only the first time.
    #[test]
    fn requests_sent_before_an_election_are_answered_once() {
        run_paxos(Transport::Hydro, ITERATIONS, async |d| {
            let mut sent = BTreeSet::new();
            send(d, 1..=2, 0..3, &mut sent);
            // Two rounds of retries: each request is now held by more than one proposer.
            for _ in 0..2 * RETRY_TICKS {
                quiesce().await;
                tick(d);
            }
            quiesce().await;
            elect(d, &[0, 1, 2]);
            quiesce().await;
            beat(d);
            answers_once(d, &sent).await;
            sent
        });
    }

    /// The leader falls silent (its heartbeat timer stops) while requests are in flight: the
    /// next proposer's election timeouts pass without a heartbeat, it stands with a higher
    /// ballot, recovers what the old leader may have had accepted and carries on. Requests
    /// before, during and after the change are each applied once, in one order everywhere.
    #[test]
    fn a_new_leader_takes_over_from_a_silent_one() {
        run_paxos(Transport::Hydro, ITERATIONS, async |d| {
            first_leader(d).await;
            let mut sent = BTreeSet::new();
            send(d, 1..=1, 0..4, &mut sent);
            // Proposers 1 and 2 hear nothing more from 0: 1 stands after its second timeout
            // (the first only clears the heartbeat it heard).
            for _ in 0..2 {
                elect(d, &[1, 2]);
                quiesce().await;
            }
            send(d, 2..=2, 0..4, &mut sent);
            for _ in 0..RETRY_TICKS {
                tick(d);
                quiesce().await;
            }
            beat(d);
            for _ in 0..RETRY_TICKS {
                tick(d);
                quiesce().await;
            }
            answers_once(d, &sent).await;
            sent
        });
    }

    /// Safety over a lossy network: messages between proposers, acceptors and replicas may
    /// be lost and overtake each other (Hydro's `lossy_delayed_forever`), while the leader
    /// changes and the proxy retries. Nothing is promised to arrive, so nothing is awaited;
    /// what must hold in every schedule is that no slot is ever decided two ways, and that
    /// the replicas apply one order, each request at most once. Over all the runs, some
    /// accept reaches a quorum for a later slot but not an earlier one when a new leader
    /// takes over, and it fills such holes with no-ops: the test checks that this happened.
    #[test]
    fn no_slot_is_decided_two_ways_over_a_lossy_network() {
        run_paxos(Transport::HydroLossy, LOSSY_ITERATIONS, async |d| {
            let mut sent = BTreeSet::new();
            first_leader(d).await;
            // The followers' next timeout only clears the heartbeat they heard.
            elect(d, &[1, 2]);
            quiesce().await;
            // Requests from three clients at once, and meanwhile proposer 1's second timeout:
            // it stands while proposer 0's accepts for several slots are in flight, and its
            // prepare races them (messages overtake each other on this network).
            send(d, 1..=3, 0..4, &mut sent);
            elect(d, &[1, 2]);
            quiesce().await;
            beat(d);
            send(d, 2..=2, 4..8, &mut sent);
            for _ in 0..2 * RETRY_TICKS {
                tick(d);
                beat(d);
                quiesce().await;
            }
            sent
        });
        let noops = NOOPS.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!("holes filled with no-ops over {LOSSY_ITERATIONS} schedules: {noops}");
        assert!(noops > 0, "no run left a hole for a new leader to fill");
    }
}
