//! The Sharded architecture: S shards, each one last-writer-wins store, with a
//! consistent-hash ring at the proxy deciding which shard holds each key.
//!
//! ```text
//!                                          ┌──▶ [ shard 0: KVSCore ]
//!   redis-cli ──RESP──▶ [ proxy: front, ring ] ─┼──▶ [ shard 1: KVSCore ]
//!                                          └──▶ [ shard 2: KVSCore ]
//! ```
//!
//! Two plug-ins of the one [`KVSServer`] composition, both already used elsewhere:
//! - **router** [`ClusterRouter`] with a [`Layout`] of S shards of one member each: every
//!   request goes to the shard [`Shards::locate`](crate::routing::ring::Shards::locate) names
//!   for its key; shards never talk to each other;
//! - **storage** [`KVSCore`]: each shard is an independent LWW map (stamped with the shard's
//!   member id, which never matters: a key is only ever written at its one shard).
//!
//! **On Hydro locations.** The S shards are the S members of one Hydro cluster (`shard`):
//! one binary, S processes, member `s` being shard `s`. A cluster per shard would need S
//! location binaries, each compiled separately, and S fixed when the dataflow is built; one
//! cluster lets `--shards` change at deploy time, through the environment.
//!
//! **Guarantees.** Each key lives on exactly one shard, which applies its operations in the
//! order it receives them: per key, the store is as strong as Local (linearizable) while the
//! shard lives. Multi-key commands (MGET, MSET, DEL k1 k2 …, EXISTS k1 k2 …) are split by key
//! and each part runs on its shard: the reply comes back in the client's order, but the
//! command is **not atomic across shards** — another client can see an MSET's keys on one
//! shard updated and on another not yet.
//!
//! **Failures.** A shard holds the only copy of its keys. `kill -9` of a shard's process:
//! the proxy stops hearing its heartbeats and, within about a second, answers requests for
//! its keys (including those it had in flight) with `-ERR shard n is down … (CLUSTERDOWN)`
//! — never a hang; every other shard keeps serving. The dead shard's keys are lost.

use bytes::Bytes;
use hydro_lang::prelude::*;

use crate::architectures::Architecture;
use crate::architectures::options::{self, OptionHelp};
use crate::capabilities::Capabilities;
use crate::deploy::{DemoStep, Durability, KVSDemo, Topology};
use crate::membership::Layout;
use crate::membership::layout::DEFAULT_VIRTUAL_NODES;
use crate::net::Transport;
use crate::routing::cluster::ClusterRouter;
use crate::server::{KVSServer, Proxy};
use crate::store::kvs_core::KVSCore;

/// Tag type of the shard cluster.
pub struct Shard;

/// The Sharded architecture (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sharded {
    /// How many shards to deploy.
    pub shards: u32,
    /// Points per shard on the hash ring.
    pub virtual_nodes: u32,
}

impl Default for Sharded {
    /// Three shards.
    fn default() -> Self {
        Self {
            shards: 3,
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
        }
    }
}

impl Sharded {
    /// The storage cluster's layout: S shards of one member.
    pub fn layout(&self) -> Layout {
        Layout {
            virtual_nodes: self.virtual_nodes,
            ..Layout::sharded(self.shards, 1)
        }
    }
}

/// Wires the Sharded architecture: the proxy's RESP front, through the one [`KVSServer`]
/// composition, to the `shards` cluster, cut as the [`Layout`] in each process's environment
/// says.
pub fn sharded_kvs<'a>(proxy: &Process<'a, Proxy>, shards: &Cluster<'a, Shard>) {
    let (requests, replies) = proxy
        .sidecar_bidi::<crate::edge::front::FrontRequest, crate::edge::front::FrontResponse, _>(
            q!(|| { crate::edge::front::start() }),
        );
    let server = KVSServer::<Bytes, KVSCore, _>::new(ClusterRouter::new(
        proxy,
        shards,
        "shard",
        proxy.singleton(q!(crate::membership::layout::Layout::current())),
        Transport::Zoo,
    ));
    replies.complete(server.serve(requests));
}

impl KVSDemo for Sharded {
    fn name(&self) -> &'static str {
        "sharded"
    }

    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a> {
        let proxy = flow.process::<Proxy>();
        let shards = flow.cluster::<Shard>();
        sharded_kvs(&proxy, &shards);
        Topology::new(&proxy)
            .cluster("shard", &shards, self.shards as usize)
            .envs(self.layout().to_env())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ONE_COPY
    }

    fn durability(&self) -> Durability {
        Durability::Everything
    }

    fn placement(&self) -> Vec<(&'static str, String)> {
        vec![("virtual-nodes", self.virtual_nodes.to_string())]
    }

    fn script(&self) -> Vec<DemoStep> {
        vec![
            DemoStep::new("write a key", &["SET", "color", "blue"]),
            DemoStep::new(
                "which shard holds it: [shard, [its members]]",
                &["KEYSHARD", "color"],
            ),
            DemoStep::new("read it back through the ring", &["GET", "color"]),
            DemoStep::new(
                "write keys that land on different shards, in one command",
                &[
                    "MSET", "shape", "circle", "size", "large", "weight", "light",
                ],
            ),
            DemoStep::new("where shape lives", &["KEYSHARD", "shape"]),
            DemoStep::new("where size lives", &["KEYSHARD", "size"]),
            DemoStep::new("where weight lives", &["KEYSHARD", "weight"]),
            DemoStep::new(
                "read them back: split by shard, recombined in your order",
                &["MGET", "weight", "color", "missing", "shape", "size"],
            ),
            DemoStep::new("shard 0's own copy of color", &["REPLICAGET", "0", "color"]),
            DemoStep::new("shard 1's own copy of color", &["REPLICAGET", "1", "color"]),
            DemoStep::new("shard 2's own copy of color", &["REPLICAGET", "2", "color"]),
            DemoStep::new("delete across shards", &["DEL", "shape", "size", "missing"]),
            DemoStep::new("the ring and its members", &["INFO", "ring"]),
        ]
    }
}

impl Architecture for Sharded {
    fn summary(&self) -> &'static str {
        "S shards on a consistent-hash ring, last-writer-wins"
    }

    fn options(&self) -> Vec<OptionHelp> {
        options::SHARDING.to_vec()
    }

    fn set_option(&mut self, flag: &str, value: &str) -> Result<(), String> {
        options::set_sharding(&mut self.shards, &mut self.virtual_nodes, flag, value)
    }

    fn option_value(&self, flag: &str) -> Option<String> {
        options::sharding_value(self.shards, self.virtual_nodes, flag)
    }

    fn commands(&self) -> &'static [&'static str] {
        Self::COMMANDS
    }
}

impl Sharded {
    /// This architecture's column of the command matrix (see [`super::MATRIX_ROWS`]).
    const COMMANDS: &'static [&'static str] = &[
        "linearizable per key (its shard)",
        "split by shard, answered in your order; **not atomic across shards**",
        "error: one version per key",
        "shard `n`'s copy",
        "`[s, [s]]`",
        "in one step at the key's shard",
        "every shard, combined; `SCAN` walks them in turn",
        "empties every shard (not atomically across shards)",
        "in one step at the key's shard",
        "in one step at the key's shard",
        "in one step at the key's shard",
        "at the key's shard, judged by the proxy's clock",
        "the same",
        "atomic within one shard; `CROSSSLOT` across shards",
        "at the key's shard (with the transaction's keys)",
        "members; the ring",
        "`-ERR shard n is down … (CLUSTERDOWN)` for its keys only",
    ];
}

#[cfg(test)]
mod sim_tests {
    use bytes::Bytes;
    use hydro_lang::live_collections::stream::TotalOrder;
    use hydro_lang::prelude::*;
    use hydro_lang::sim::quiesce;

    use super::*;
    use crate::membership::liveness::Beat;
    use crate::membership::{MemberId, ShardId};
    use crate::protocol::{KVSOperation, KVSRequest, KVSResult};
    use crate::routing::ring::Shards;

    /// The sharded composition (ring router, one LWW core per shard), run by Hydro's
    /// simulator: every write reaches the shard the ring names, and only that shard — each
    /// shard's own copy, read with `GetAt`, has the key or not as the ring says.
    #[test]
    fn each_key_lives_on_the_shard_the_ring_names_and_nowhere_else() {
        let layout = Layout::sharded(3, 1);
        let keys: Vec<Bytes> = (0..12).map(|i| Bytes::from(format!("key:{i}"))).collect();
        let homes: Vec<ShardId> = keys
            .iter()
            .map(|k| Shards::new(layout).locate(k).shard)
            .collect();
        assert!(
            (0..3).all(|s| homes.contains(&ShardId(s))),
            "keys on every shard"
        );

        let mut flow = FlowBuilder::new();
        let proxy = flow.process::<Proxy>();
        let shards = flow.cluster::<Shard>();
        let (requests_in, requests) = proxy.sim_input();
        let (beats_in, beats) = proxy.sim_input();
        let (_ticks_in, ticks) = proxy.sim_input();
        let router = ClusterRouter::new(
            &proxy,
            &shards,
            "shard",
            proxy.singleton(q!(crate::membership::layout::Layout::sharded(3, 1))),
            Transport::Hydro,
        )
        .with_liveness((beats, ticks));
        let responses = KVSServer::<Bytes, KVSCore, _>::new(router)
            .serve(requests)
            .map(q!(|response| response.result))
            .assume_ordering::<TotalOrder>(nondet!(
                /// The test has one request in flight at a time.
            ))
            .sim_output();

        flow.sim().with_cluster_size(&shards, 3).fuzz(async || {
            beats_in.send_many_unordered((0..3).map(|m| (m, Beat::default())));
            quiesce().await;
            let mut id = 0;
            let mut run = async |op| {
                id += 1;
                requests_in.send(KVSRequest {
                    at: 0,
                    client: 1,
                    request: id,
                    op,
                });
                responses.next().await
            };
            for key in &keys {
                let put = KVSOperation::Put(key.clone(), key.clone());
                assert_eq!(run(put).await, KVSResult::Ok);
            }
            for (key, &home) in keys.iter().zip(&homes) {
                for shard in (0..3).map(ShardId) {
                    let want = if shard == home {
                        KVSResult::Value(key.clone())
                    } else {
                        KVSResult::NotFound
                    };
                    // One member per shard: shard s is member s.
                    let got = run(KVSOperation::GetAt(MemberId(shard.0), key.clone())).await;
                    assert_eq!(got, want, "{key:?} at shard {shard} (home {home})");
                }
            }
        });
    }
}
