//! [`GossipReplication`]: the gossip of [`super::replica`] wired into each replica's dataflow,
//! around its storage core — the [`Replication`] plug-in of the replicated stores.
//!
//! ```text
//!                     requests ──┐
//!   core inputs (Merge, Rumor, Read) ──┴─▶ storage core ──▶ responses ──▶ router
//!          ▲                                   │ effects (Changed, Heard, Read)
//!          │                                   ▼
//!          └──── Gossip::step ◀── joins, ticks, messages from peers
//!                     │
//!                     └──▶ messages to peers (demux over the cluster)
//! ```
//!
//! Two cycles close here: the core's effects drive the gossip, whose merges and reads go back
//! into the core; and messages sent to peers come back from them. Both are Hydro forward
//! references at the top level of the replica.
//!
//! Settings ([`GossipSettings`]) reach each replica's process through its environment, as the
//! front's do, so changing them does not rebuild the replicas' code.

use std::sync::OnceLock;
use std::time::Duration;

use hydro_lang::live_collections::stream::{NoOrder, TotalOrder};
use hydro_lang::location::MembershipEvent;
use hydro_lang::location::cluster::CLUSTER_SELF_ID;
use hydro_lang::prelude::*;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::membership::Layout;
use crate::net::Transport;
use crate::net::channel;
use crate::net::links::between;
use crate::protocol::{KVSRequest, KVSResponse};
use crate::replication::gossip::replica::{GossipEvent, PeerMessage, Version};
use crate::replication::gossip::rumor::{Feedback, LossOfInterest, RumorConfig};
use crate::server::{Member, Replication, Storage, StorageAt};
use crate::store::seam::ReadFor;
use crate::store::seam::StorageInput;
use crate::values::Fingerprint;

/// When gossip happens, and how rumors lose interest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GossipSettings {
    /// How often a replica pushes its hot rumors (and sends the feedback it owes).
    pub interval: Duration,
    /// How often a replica starts an anti-entropy exchange with one random peer.
    pub anti_entropy_interval: Duration,
    /// Fanout, k, feedback or blind, counter or coin.
    pub rumor: RumorConfig,
}

impl Default for GossipSettings {
    /// A 50 ms gossip interval: with the default rumor settings (fanout 3, k = 2) a write
    /// reaches every replica of a 3–9 replica cluster in one to three rounds, well under a
    /// second on localhost. Anti-entropy every second: it only repairs what rumors missed.
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(50),
            anti_entropy_interval: Duration::from_secs(1),
            rumor: RumorConfig::default(),
        }
    }
}

const ENV_INTERVAL: &str = "KVS_ZOO_GOSSIP_INTERVAL_MS";
const ENV_ANTI_ENTROPY: &str = "KVS_ZOO_ANTI_ENTROPY_INTERVAL_MS";
const ENV_FANOUT: &str = "KVS_ZOO_GOSSIP_FANOUT";
const ENV_K: &str = "KVS_ZOO_RUMOR_K";
const ENV_FEEDBACK: &str = "KVS_ZOO_RUMOR_FEEDBACK";
const ENV_LOSS: &str = "KVS_ZOO_RUMOR_LOSS";

impl GossipSettings {
    /// The settings as environment variables, for the deployment to give every replica.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        let feedback = match self.rumor.feedback {
            Feedback::Feedback => "feedback",
            Feedback::Blind => "blind",
        };
        let loss = match self.rumor.loss {
            LossOfInterest::Counter => "counter",
            LossOfInterest::Coin => "coin",
        };
        vec![
            (ENV_INTERVAL, self.interval.as_millis().to_string()),
            (
                ENV_ANTI_ENTROPY,
                self.anti_entropy_interval.as_millis().to_string(),
            ),
            (ENV_FANOUT, self.rumor.fanout.to_string()),
            (ENV_K, self.rumor.k.to_string()),
            (ENV_FEEDBACK, feedback.to_string()),
            (ENV_LOSS, loss.to_string()),
            // A restarted replica is rejoining from its first heartbeat, before its gossip
            // has even started (see `crate::membership::liveness::standing`).
            (
                crate::membership::liveness::ENV_RESTARTS_REJOINING,
                "1".to_string(),
            ),
        ]
    }

    /// Reads the settings [`Self::to_env`] wrote, through `var`; a missing variable keeps its
    /// default, a malformed one is an error naming it.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut settings = Self::default();
        let number = |name: &str| -> Result<Option<u64>, String> {
            var(name)
                .map(|v| {
                    v.parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0)
                        .ok_or_else(|| format!("{name}={v} is not a positive number"))
                })
                .transpose()
        };
        if let Some(ms) = number(ENV_INTERVAL)? {
            settings.interval = Duration::from_millis(ms);
        }
        if let Some(ms) = number(ENV_ANTI_ENTROPY)? {
            settings.anti_entropy_interval = Duration::from_millis(ms);
        }
        if let Some(n) = number(ENV_FANOUT)? {
            settings.rumor.fanout = usize::try_from(n).map_err(|e| e.to_string())?;
        }
        if let Some(k) = number(ENV_K)? {
            settings.rumor.k = u32::try_from(k).map_err(|e| format!("{ENV_K}: {e}"))?;
        }
        match var(ENV_FEEDBACK).as_deref() {
            None | Some("feedback") => {}
            Some("blind") => settings.rumor.feedback = Feedback::Blind,
            Some(other) => return Err(format!("{ENV_FEEDBACK}={other}: feedback or blind")),
        }
        match var(ENV_LOSS).as_deref() {
            None | Some("counter") => {}
            Some("coin") => settings.rumor.loss = LossOfInterest::Coin,
            Some(other) => return Err(format!("{ENV_LOSS}={other}: counter or coin")),
        }
        Ok(settings)
    }

    /// This process's settings, read once from its environment. A replica whose settings
    /// are malformed exits with a message (`kvs-zoo serve` checks them before it deploys).
    pub fn current() -> GossipSettings {
        static CURRENT: OnceLock<GossipSettings> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            Self::from_vars(|name| std::env::var(name).ok()).unwrap_or_else(|e| {
                eprintln!("kvs-zoo: gossip settings: {e}");
                std::process::exit(2);
            })
        })
    }
}

/// A tick that drives gossip.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub enum GossipTick {
    /// Push rumors.
    Rumor,
    /// Start an anti-entropy exchange.
    AntiEntropy,
}

/// The ticks that drive gossip at every replica.
pub type Ticks<'a, C> = Stream<GossipTick, Cluster<'a, C>, Unbounded, NoOrder>;

/// Replicas that keep each other up to date by gossip (see the module docs).
pub struct GossipReplication<'a, C> {
    ticks: Ticks<'a, C>,
    /// The replicas' role in the topology, as the transport names them.
    role: &'static str,
    /// How the cluster is cut into shards: a replica gossips only with its own shard's
    /// members.
    layout: Singleton<Layout, Cluster<'a, C>, Bounded>,
    transport: Transport,
}

impl<'a, C: 'a> GossipReplication<'a, C> {
    /// Gossip among the members of each shard of `replicas` (`role` in the topology, cut
    /// into shards as `layout` says) over `transport`, driven by timers at the intervals of
    /// each replica's [`GossipSettings::current`].
    pub fn new(
        replicas: &Cluster<'a, C>,
        role: &'static str,
        layout: Singleton<Layout, Cluster<'a, C>, Bounded>,
        transport: Transport,
    ) -> Self {
        let rumor = replicas
            .source_interval(q!(
                crate::replication::gossip::flow::GossipSettings::current().interval
            ))
            .map(q!(|_| crate::replication::gossip::flow::GossipTick::Rumor));
        let anti_entropy = replicas
            .source_interval(q!(
                crate::replication::gossip::flow::GossipSettings::current().anti_entropy_interval
            ))
            .map(q!(|_| {
                crate::replication::gossip::flow::GossipTick::AntiEntropy
            }));
        Self::with_ticks(rumor.merge_unordered(anti_entropy), role, layout, transport)
    }

    /// Gossip driven by `ticks` instead of timers: Hydro's simulator does not run timers, so
    /// sim tests send the ticks themselves.
    pub fn with_ticks(
        ticks: Ticks<'a, C>,
        role: &'static str,
        layout: Singleton<Layout, Cluster<'a, C>, Bounded>,
        transport: Transport,
    ) -> Self {
        Self {
            ticks,
            role,
            layout,
            transport,
        }
    }
}

impl<'a, C: 'a, V, S> Replication<'a, V, S, Cluster<'a, C>> for GossipReplication<'a, C>
where
    V: 'a,
    S: Storage<V>,
    S::Stored: Fingerprint + Clone + Serialize + DeserializeOwned + Send + 'static,
{
    fn wire(
        self,
        requests: Stream<KVSRequest<V>, Cluster<'a, C>, Unbounded, TotalOrder>,
        storage: StorageAt<'a, V, S, Cluster<'a, C>>,
    ) -> Stream<KVSResponse<V>, Cluster<'a, C>, Unbounded, TotalOrder> {
        let replicas = requests.location().clone();
        let ticks = self.ticks;

        // Everything replicas send, this replica's reads to itself included, arrives here
        // from the network (the end of this function sends it). Values and reads go into the
        // core; bookkeeping goes to the gossip. Sending reads to itself through the network is
        // what keeps the core → gossip → core loop from being a cycle within one Hydro tick,
        // which Hydro does not run.
        let (inbound_later, inbound) = replicas.forward_ref::<Stream<
            (u32, PeerMessage<S::Stored>),
            Cluster<'a, C>,
            Unbounded,
            NoOrder,
        >>();
        let (for_core, for_gossip) = inbound.partition(q!(|(_, message)| !matches!(
            message,
            crate::replication::gossip::replica::PeerMessage::Gossip(_)
        )));
        // A rejoining replica counts the runs of values a peer sends for its sync: the values
        // go to the core like any others, and the gossip hears that a run came.
        let (synced, for_core) = for_core.partition(q!(|(_, message)| matches!(
            message,
            crate::replication::gossip::replica::PeerMessage::Values(
                crate::store::seam::ReadFor::Sync(_),
                _
            )
        )));
        let sync_runs = synced
            .clone()
            .filter_map(q!(|(from, message)| match message {
                crate::replication::gossip::replica::PeerMessage::Values(
                    crate::store::seam::ReadFor::Sync(id),
                    _,
                ) => Some(crate::replication::gossip::replica::GossipEvent::SyncRun(
                    from, id
                )),
                _ => None,
            }));
        let for_core = for_core.merge_unordered(synced);
        let inputs = requests
            .map(q!(|r| crate::store::seam::StorageInput::Request(r)))
            .merge_unordered(for_core.flat_map_ordered(q!(|(from, message)| {
                crate::replication::gossip::flow::core_inputs(from, message)
            })))
            .assume_ordering::<TotalOrder>(nondet!(
                /// Clients' requests and peers' values reach the core in arrival order. Merges
                /// commute, so the state the replicas converge to does not depend on it; a
                /// read may see a peer's write a moment earlier or later, which is what
                /// eventual consistency allows.
            ));
        let (responses, effects) = storage.with_changes(inputs);

        let joined = replicas
            .source_cluster_membership_stream(
                &replicas,
                nondet!(
                    /// Every member is reported as joined at start (HydroDeploy); a replica
                    /// gossips only with the peers it has heard of.
                ),
            )
            .entries()
            .filter_map(q!(|(member, event)| match event {
                MembershipEvent::Joined => Some(member.get_raw_id()),
                MembershipEvent::Left => None,
            }))
            // Peers are the members of this replica's own shard: shards never talk.
            .cross_singleton(self.layout.clone())
            .filter_map(q!(move |(member, layout)| {
                let me = CLUSTER_SELF_ID.get_raw_id();
                let same_shard = |a, b| {
                    use crate::membership::ids::MemberId;
                    layout.shard_of_member(MemberId(a)) == layout.shard_of_member(MemberId(b))
                };
                same_shard(member, me).then_some(
                    crate::replication::gossip::replica::GossipEvent::Joined(member),
                )
            }));
        let bookkeeping = for_gossip.filter_map(q!(|(from, message)| match message {
            crate::replication::gossip::replica::PeerMessage::Gossip(message) => Some(
                crate::replication::gossip::replica::GossipEvent::Message(from, message)
            ),
            _ => None,
        }));
        let events = effects
            .map(q!(|effect| crate::replication::gossip::flow::event_of(
                effect
            )))
            .merge_unordered(joined)
            .merge_unordered(bookkeeping)
            .merge_unordered(sync_runs)
            .merge_unordered(ticks.map(q!(|tick| match tick {
                crate::replication::gossip::flow::GossipTick::Rumor =>
                    crate::replication::gossip::replica::GossipEvent::GossipTick,
                crate::replication::gossip::flow::GossipTick::AntiEntropy =>
                    crate::replication::gossip::replica::GossipEvent::AntiEntropyTick,
            })))
            .assume_ordering::<TotalOrder>(nondet!(
                /// Gossip reacts to changes, messages and ticks in arrival order. The order
                /// decides which peer hears a rumor first and how soon a rumor retires, not
                /// what the replicas converge to: anti-entropy repairs whatever rumors miss.
            ));
        let outgoing = events
            .cross_singleton(replicas.member_id())
            .scan(
                q!(|| None),
                q!(|gossip, (event, me)| {
                    let gossip = gossip.get_or_insert_with(|| {
                        crate::replication::gossip::replica::Gossip::in_incarnation(
                            me,
                            crate::replication::gossip::flow::GossipSettings::current().rumor,
                            crate::membership::incarnation(),
                        )
                    });
                    Some(gossip.step(event))
                }),
            )
            .flatten_ordered();

        let received = between(
            outgoing,
            &replicas,
            self.role,
            channel::GOSSIP,
            self.transport,
        );
        inbound_later.complete(received);
        responses
    }
}

/// What the gossip makes of one of the core's effects.
pub fn event_of<S: Fingerprint>(effect: crate::store::seam::Effect<S>) -> GossipEvent<S> {
    use crate::store::seam::Effect;
    let version = |key: &[u8], value: &S| Version {
        print: value.fingerprint(key),
        tombstone: value.is_tombstone(),
    };
    match effect {
        Effect::Changed(key, value) => {
            let version = version(&key, &value);
            GossipEvent::Changed(key, version)
        }
        Effect::Heard { from, key, changed } => {
            let changed = changed.map(|value| version(&key, &value));
            GossipEvent::Heard {
                from,
                had_it: changed.is_none(),
                key,
                changed,
            }
        }
        Effect::Read { to, why, values } => GossipEvent::Read { to, why, values },
    }
}

/// What a message from replica `from` asks of this replica's core: merge values (rumors
/// with feedback to `from`), or read values to send. Bookkeeping asks nothing of the core.
pub fn core_inputs<V, S>(from: u32, message: PeerMessage<S>) -> Vec<StorageInput<V, S>> {
    match message {
        PeerMessage::Values(ReadFor::Rumor, values) => values
            .into_iter()
            .map(|(key, value)| StorageInput::Rumor { from, key, value })
            .collect(),
        PeerMessage::Values(ReadFor::Repair | ReadFor::Sync(_), values) => values
            .into_iter()
            .map(|(key, value)| StorageInput::Merge(key, value))
            .collect(),
        PeerMessage::Read(to, why, keys) => vec![StorageInput::Read { to, why, keys }],
        PeerMessage::Collect(key, print) => vec![StorageInput::Collect { key, print }],
        PeerMessage::Gossip(_) => vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_travel_through_the_environment() {
        let settings = GossipSettings {
            interval: Duration::from_millis(20),
            anti_entropy_interval: Duration::from_millis(700),
            rumor: RumorConfig {
                feedback: Feedback::Blind,
                loss: LossOfInterest::Coin,
                k: 4,
                fanout: 1,
            },
        };
        let env = settings.to_env();
        let var = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(GossipSettings::from_vars(var), Ok(settings));
        assert_eq!(
            GossipSettings::from_vars(|_| None),
            Ok(GossipSettings::default())
        );
    }

    #[test]
    fn malformed_settings_are_refused_by_name() {
        let bad = |name: &'static str, value: &'static str| {
            GossipSettings::from_vars(move |n| (n == name).then(|| value.to_string()))
        };
        assert!(bad(ENV_INTERVAL, "0").unwrap_err().contains(ENV_INTERVAL));
        assert!(bad(ENV_K, "many").unwrap_err().contains(ENV_K));
        assert!(
            bad(ENV_FEEDBACK, "loud")
                .unwrap_err()
                .contains(ENV_FEEDBACK)
        );
    }
}

#[cfg(test)]
mod sim_tests {
    use bytes::Bytes;
    use hydro_lang::prelude::*;
    use hydro_lang::sim::quiesce;

    use super::*;
    use crate::protocol::{KVSOperation, KVSResult};
    use crate::store::causal_core::CausalKVSCore;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn request(request: u64, op: KVSOperation<Bytes>) -> KVSRequest<Bytes> {
        KVSRequest {
            at: 0,
            client: 1,
            request,
            op,
        }
    }

    /// Three replicas, each a causal core wrapped in gossip, driven by hand: writes at some
    /// replicas, gossip and anti-entropy ticks, then a read at every replica. Hydro's simulator
    /// varies batching and message order between the barriers; whatever it picks, once gossip
    /// has run every replica answers the same: concurrent writes as siblings, a causally later
    /// write alone, a delete as nothing.
    #[test]
    fn replicas_converge_once_gossip_has_run() {
        let mut flow = FlowBuilder::new();
        let replicas = flow.cluster::<crate::replication::gossip::Replica>();
        let (requests_in, requests) = replicas.sim_input();
        let (ticks_in, ticks) = replicas.sim_input();
        let layout = replicas.singleton(q!(crate::membership::layout::Layout::unsharded(3)));
        let gossip = GossipReplication::with_ticks(ticks, "replica", layout, Transport::Hydro);
        let member = replicas.member_id();
        let responses = gossip
            .wire(requests, StorageAt::<_, CausalKVSCore, _>::new(member))
            .map(q!(|response| response.result))
            .sim_cluster_output();

        flow.sim().with_cluster_size(&replicas, 3).fuzz(async || {
            let next_id = std::cell::Cell::new(0);
            // Runs `op` at replica `at` and returns its result.
            let run = async |at: u32, op: KVSOperation<Bytes>| {
                next_id.set(next_id.get() + 1);
                requests_in.send(at, request(next_id.get(), op));
                responses.next(at).await
            };
            // Gossip rounds (two rumor ticks and an anti-entropy tick at every replica, each
            // run to quiescence) until every replica answers `want` for `alpha`; anti-entropy
            // pairs replicas at random, so a few rounds may be needed, never many.
            let until_all = async |read: fn() -> KVSOperation<Bytes>, want: KVSResult<Bytes>| {
                for _round in 0..8 {
                    for tick in [
                        GossipTick::Rumor,
                        GossipTick::Rumor,
                        GossipTick::AntiEntropy,
                    ] {
                        quiesce().await;
                        ticks_in.send_many_unordered((0..3).map(|m| (m, tick)));
                    }
                    quiesce().await;
                    let mut answers = vec![];
                    for at in 0..3 {
                        answers.push(run(at, read()).await);
                    }
                    if answers.iter().all(|a| *a == want) {
                        return;
                    }
                }
                panic!("replicas never all answered {want:?}");
            };
            let until_all_answer =
                async |want| until_all(|| KVSOperation::Get(b("alpha")), want).await;
            let until_all_answer_versioned =
                async |want| until_all(|| KVSOperation::GetVersioned(b("alpha")), want).await;

            // Replicas 0 and 1 accept writes to `alpha` that neither has seen the other's.
            assert_eq!(
                run(0, KVSOperation::Put(b("alpha"), b("a1"))).await,
                KVSResult::Ok
            );
            assert_eq!(
                run(1, KVSOperation::Put(b("alpha"), b("a2"))).await,
                KVSResult::Ok
            );
            until_all_answer(KVSResult::Siblings(vec![b("a1"), b("a2")])).await;

            // Replica 2 has seen both: its write supersedes them everywhere.
            run(2, KVSOperation::Put(b("alpha"), b("a3"))).await;
            until_all_answer(KVSResult::Value(b("a3"))).await;

            // A delete wins over the version it saw, at every replica ...
            assert_eq!(
                run(1, KVSOperation::Delete(b("alpha"))).await,
                KVSResult::Ok
            );
            until_all_answer(KVSResult::NotFound).await;
            // ... and once every replica holds its tombstone, the tombstone is collected
            // everywhere (its context is then empty): the older versions never come back.
            until_all_answer_versioned(KVSResult::Versioned(Bytes::new(), vec![])).await;
            until_all_answer(KVSResult::NotFound).await;
        });
    }
}
