//! The Sharded + Replicated architecture: S shards, each R replicas that gossip among
//! themselves, with causal values — the replicated store, cut into shards by a
//! consistent-hash ring.
//!
//! ```text
//!                                       ┌──▶ shard 0: [ replica 0 ] [ replica 1 ] [ replica 2 ]  ◀─ gossip ─▶
//!   redis-cli ──RESP──▶ [ proxy: front, ring ]─┼──▶ shard 1: [ replica 3 ] [ replica 4 ] [ replica 5 ]  ◀─ gossip ─▶
//!                                       └──▶ shard 2: [ replica 6 ] [ replica 7 ] [ replica 8 ]  ◀─ gossip ─▶
//! ```
//!
//! Three plug-ins of the one [`KVSServer`](crate::server::KVSServer) composition, wired exactly
//! as the replicated store wires them ([`replicated_kvs`]): only the layout differs.
//! - **router** [`ClusterRouter`](crate::routing::cluster::ClusterRouter) with a [`Layout`] of S
//!   shards of R replicas: a request goes to its key's shard and, inside it, each connection
//!   sticks to one live replica (rendezvous hashing), so a client reads its own writes while
//!   that replica lives;
//! - **storage** [`CausalKVSCore`](crate::store::causal_core::CausalKVSCore): each replica stamps
//!   writes with its own vector-clock entry; concurrent writes at two replicas of a shard
//!   become siblings;
//! - **replication** [`GossipReplication`](crate::replication::gossip::flow::GossipReplication): rumor
//!   mongering and anti-entropy, each replica gossiping only with its own shard's replicas.
//!
//! **On Hydro locations.** All S × R replicas are members of one Hydro cluster (`replica`):
//! member `m` is replica `m mod R` of shard `m / R` (shard `s` is members `s·R .. (s+1)·R`).
//! A "shard cluster" is that block of members, not a Hydro location of its own: one binary
//! serves every replica, and `--shards` / `--replicas` change at deploy time through the
//! environment instead of rebuilding S location binaries.
//!
//! **Guarantees.** Within a shard, those of the replicated store: every replica converges once
//! writes stop; a client sees its own writes in order while its replica lives; concurrent
//! writes are kept as siblings. Across shards nothing is coordinated: multi-key commands
//! (MGET, MSET, DEL k1 k2 …) run part by part on each key's shard and are **not atomic**.
//!
//! **Failures.** `kill -9` of a replica: within about a second the proxy suspects it, moves
//! its clients to a live replica of the same shard and re-sends what it held; the shard keeps
//! serving while one of its replicas lives. Writes it acknowledged but had not yet gossiped
//! are lost with it; everything its shard-mates had received survives. A shard with no live
//! replica answers `-ERR shard n is down … (CLUSTERDOWN)`; the other shards keep serving.

use hydro_lang::prelude::*;

use crate::architectures::Architecture;
use crate::architectures::options::{self, OptionHelp};
use crate::architectures::replicated::replicated_kvs;
use crate::capabilities::Capabilities;
use crate::deploy::{DemoStep, KVSDemo, Topology};
use crate::membership::Layout;
use crate::membership::layout::DEFAULT_VIRTUAL_NODES;
use crate::replication::gossip::flow::GossipSettings;
use crate::server::Proxy;

/// Tag type of the cluster holding every shard's replicas.
pub struct ShardReplica;

/// The Sharded + Replicated architecture (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardedReplicated {
    /// How many shards.
    pub shards: u32,
    /// Replicas per shard.
    pub replicas: u32,
    /// Points per shard on the hash ring.
    pub virtual_nodes: u32,
    /// When and how each shard's replicas gossip.
    pub gossip: GossipSettings,
}

impl Default for ShardedReplicated {
    /// Three shards of three replicas, default gossip.
    fn default() -> Self {
        Self {
            shards: 3,
            replicas: 3,
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
            gossip: GossipSettings::default(),
        }
    }
}

impl ShardedReplicated {
    /// The storage cluster's layout: S shards of R replicas.
    pub fn layout(&self) -> Layout {
        Layout {
            virtual_nodes: self.virtual_nodes,
            ..Layout::sharded(self.shards, self.replicas)
        }
    }
}

impl KVSDemo for ShardedReplicated {
    fn name(&self) -> &'static str {
        "sharded-replicated"
    }

    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a> {
        let proxy = flow.process::<Proxy>();
        let replicas = flow.cluster::<ShardReplica>();
        // The replicated store's wiring: only the layout in the environment differs.
        replicated_kvs(&proxy, &replicas);
        let members = self.layout().members() as usize;
        Topology::new(&proxy)
            .cluster("replica", &replicas, members)
            .envs(
                self.gossip
                    .to_env()
                    .into_iter()
                    .chain(self.layout().to_env()),
            )
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::CAUSAL_REPLICAS
    }

    fn placement(&self) -> Vec<(&'static str, String)> {
        vec![("virtual-nodes", self.virtual_nodes.to_string())]
    }

    fn script(&self) -> Vec<DemoStep> {
        vec![
            DemoStep::new("write a key", &["SET", "color", "blue"]),
            DemoStep::new(
                "which shard holds it, and its replicas: [shard, [members]]",
                &["KEYSHARD", "color"],
            ),
            DemoStep::new(
                "read it back (your replica of its shard)",
                &["GET", "color"],
            ),
            DemoStep::new(
                "write keys on several shards in one command (not atomic across shards)",
                &[
                    "MSET", "shape", "circle", "size", "large", "weight", "light",
                ],
            ),
            DemoStep::new(
                "read them back, recombined in your order",
                &["MGET", "weight", "color", "missing", "shape", "size"],
            ),
            DemoStep::new("the ring and its shards' replicas", &["INFO", "ring"]),
        ]
    }
}

impl Architecture for ShardedReplicated {
    fn summary(&self) -> &'static str {
        "S shards of R replicas, gossip inside each shard"
    }

    fn options(&self) -> Vec<OptionHelp> {
        options::SHARDING
            .iter()
            .copied()
            .chain([options::REPLICAS])
            .chain(options::GOSSIP.iter().copied())
            .collect()
    }

    fn set_option(&mut self, flag: &str, value: &str) -> Result<(), String> {
        match flag {
            "--replicas" => self.replicas = options::positive(flag, value)?,
            "--shards" | "--virtual-nodes" => {
                options::set_sharding(&mut self.shards, &mut self.virtual_nodes, flag, value)?
            }
            _ => options::set_gossip(&mut self.gossip, flag, value)?,
        }
        Ok(())
    }

    fn option_value(&self, flag: &str) -> Option<String> {
        match flag {
            "--replicas" => Some(self.replicas.to_string()),
            "--shards" | "--virtual-nodes" => {
                options::sharding_value(self.shards, self.virtual_nodes, flag)
            }
            _ => options::gossip_value(&self.gossip, flag),
        }
    }

    fn commands(&self) -> &'static [&'static str] {
        Self::COMMANDS
    }
}

impl ShardedReplicated {
    /// This architecture's column of the command matrix (see [`super::MATRIX_ROWS`]).
    const COMMANDS: &'static [&'static str] = &[
        "as replicated, inside the key's shard",
        "split by shard; not atomic",
        "causal context, inside the key's shard",
        "member `n`'s copy (shard `n / R`)",
        "`[s, [s·R … s·R+R−1]]`",
        "in one step at your replica of the key's shard",
        "your replica of every shard",
        "as replicated, at your replica of every shard",
        "as replicated, inside the key's shard",
        "error, as replicated",
        "error, as replicated",
        "error, as replicated",
        "the same",
        "atomic at your replica of one shard; `CROSSSLOT` across shards",
        "error, as replicated",
        "members; the ring",
        "clients move to a live replica of the shard; what it held is re-sent or answered, as replicated",
    ];
}

#[cfg(test)]
mod sim_tests {
    use bytes::Bytes;

    use crate::membership::{MemberId, ShardId};
    use crate::net::Transport;
    use crate::replication::gossip::flow::GossipReplication;
    use crate::routing::cluster::ClusterRouter;
    use crate::server::KVSServer;
    use crate::store::causal_core::CausalKVSCore;
    use hydro_lang::live_collections::stream::TotalOrder;
    use hydro_lang::prelude::*;
    use hydro_lang::sim::quiesce;

    use super::*;
    use crate::membership::liveness::Beat;
    use crate::protocol::{KVSOperation, KVSRequest, KVSResult};
    use crate::replication::gossip::flow::GossipTick;
    use crate::routing::ring::Shards;

    /// Two shards of two replicas, the whole composition (ring router, causal cores, gossip
    /// inside each shard) run by Hydro's simulator with gossip driven by hand: once gossip
    /// has run, both replicas of a key's shard hold it, and neither replica of the other
    /// shard ever does.
    #[test]
    fn a_shards_replicas_converge_and_other_shards_never_see_its_keys() {
        let layout = Layout::sharded(2, 2);
        let keys: Vec<Bytes> = (0..6).map(|i| Bytes::from(format!("key:{i}"))).collect();
        let homes: Vec<ShardId> = keys
            .iter()
            .map(|k| Shards::new(layout).locate(k).shard)
            .collect();
        assert!(
            homes.contains(&ShardId(0)) && homes.contains(&ShardId(1)),
            "keys on both shards"
        );

        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let replicas = flow.cluster::<ShardReplica>();
        let (requests_in, requests) = proxy.sim_input();
        let (beats_in, beats) = proxy.sim_input();
        let (_ticks_in, ticks) = proxy.sim_input();
        let (gossip_in, gossip_ticks) = replicas.sim_input();
        let router = ClusterRouter::new(
            &proxy,
            &replicas,
            "replica",
            proxy.singleton(q!(crate::membership::layout::Layout::sharded(2, 2))),
            Transport::Hydro,
        )
        .with_liveness((beats, ticks));
        let gossip = GossipReplication::with_ticks(
            gossip_ticks,
            "replica",
            replicas.singleton(q!(crate::membership::layout::Layout::sharded(2, 2))),
            Transport::Hydro,
        );
        let responses = KVSServer::<Bytes, CausalKVSCore, _, _>::with_replication(router, gossip)
            .serve(requests)
            .map(q!(|response| response.result))
            .assume_ordering::<TotalOrder>(nondet!(
                /// The test has one request in flight at a time.
            ))
            .sim_output();

        flow.sim().with_cluster_size(&replicas, 4).fuzz(async || {
            beats_in.send_many_unordered((0..4).map(|m| (m, Beat::default())));
            quiesce().await;
            let id = std::cell::Cell::new(0);
            let run = async |op| {
                id.set(id.get() + 1);
                requests_in.send(KVSRequest {
                    at: 0,
                    client: 1,
                    request: id.get(),
                    op,
                });
                responses.next().await
            };
            for key in &keys {
                let put = KVSOperation::Put(key.clone(), key.clone());
                assert_eq!(run(put).await, KVSResult::Ok);
            }
            // Gossip rounds until both replicas of every key's shard hold it; replicas of
            // the other shard must never hold it, in any round.
            let mut converged = false;
            for _round in 0..8 {
                for tick in [
                    GossipTick::Rumor,
                    GossipTick::Rumor,
                    GossipTick::AntiEntropy,
                ] {
                    quiesce().await;
                    gossip_in.send_many_unordered((0..4).map(|m| (m, tick)));
                }
                quiesce().await;
                let mut all_home = true;
                for (key, &home) in keys.iter().zip(&homes) {
                    for member in (0..4).map(MemberId) {
                        let got = run(KVSOperation::GetAt(member, key.clone())).await;
                        if layout.shard_of_member(member) == home {
                            all_home &= got == KVSResult::Value(key.clone());
                        } else {
                            assert_eq!(got, KVSResult::NotFound, "{key:?} leaked to {member}");
                        }
                    }
                }
                if all_home {
                    converged = true;
                    break;
                }
            }
            assert!(converged, "a shard's replicas never converged");
        });
    }
}
