//! The Replicated architecture: N replicas that keep each other up to date by gossip, with
//! causal values.
//!
//! ```text
//!                         ┌──▶ [ replica 0: CausalKVSCore + gossip ] ◀─┐
//!   redis-cli ──RESP──▶ [ proxy ] ──▶ [ replica 1: …                 ] ◀─┼─ gossip
//!   (front, sticky router) └──▶ [ replica 2: …                 ] ◀─┘
//! ```
//!
//! Three plug-ins of the one [`KVSServer`] composition:
//! - **router** [`ClusterRouter`]: each connection sticks to one live replica; heartbeats tell
//!   the proxy which replicas live; requests a dead replica held are re-sent or answered;
//! - **storage** [`CausalKVSCore`]: each replica stamps writes with its own vector-clock entry,
//!   so concurrent writes at different replicas become siblings;
//! - **replication** [`GossipReplication`]: rumor mongering with feedback pushes each change to
//!   random peers; anti-entropy compares digests and repairs what rumors missed.
//!
//! **Guarantees.** Every replica converges to the same value for every key once writes stop
//! (merges are a lattice's: any order, any number of times). A client sees its own writes,
//! in order, while its replica lives (it reads where it writes). Writes accepted concurrently
//! at two replicas are both kept, as siblings, until a write that saw them replaces them. No
//! linearizability: two clients on different replicas can read different values for a while.
//!
//! **Counters.** `INCR`/`DECR` are PN-counters (see [`crate::values::causal`]): each replica
//! counts in its own entry, so increments made at several replicas at once are all counted.
//! What reads a value and writes what it computed — `APPEND`, `SET NX/XX`, `CAS` — and what
//! needs one clock or one copy — expiry, `WATCH` — is refused with the reason. `FLUSHDB`
//! deletes what the client's replica holds, gossiped like any delete.
//!
//! **Failures.** `kill -9` of a replica: the proxy stops hearing its heartbeats, suspects it
//! within about a second, moves its clients to live replicas and re-sends the requests it held.
//! Writes it acknowledged but had not yet gossiped are lost with it — the price of answering
//! before replicating.

use bytes::Bytes;
use hydro_lang::prelude::*;

use crate::architectures::Architecture;
use crate::architectures::options::{self, OptionHelp};
use crate::capabilities::Capabilities;
use crate::deploy::{DemoStep, KVSDemo, Topology};
use crate::membership::Layout;
use crate::net::Transport;
use crate::replication::gossip::flow::{GossipReplication, GossipSettings};
use crate::routing::cluster::ClusterRouter;
use crate::server::{KVSServer, Proxy};
use crate::store::causal_core::CausalKVSCore;

pub use crate::replication::gossip::Replica;

/// The Replicated architecture (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicated {
    /// How many replicas to deploy.
    pub replicas: usize,
    /// When and how the replicas gossip.
    pub gossip: GossipSettings,
}

impl Default for Replicated {
    /// Three replicas, default gossip.
    fn default() -> Self {
        Self {
            replicas: 3,
            gossip: GossipSettings::default(),
        }
    }
}

/// Wires the Replicated architecture: the proxy's RESP front, through the one [`KVSServer`]
/// composition, to the `replicas` cluster, cut into shards as the [`Layout`] in each
/// process's environment says — one shard here; the sharded + replicated store
/// ([`crate::architectures::sharded_replicated`]) is this same wiring under a layout of several.
pub fn replicated_kvs<'a, C: 'a>(proxy: &Process<'a, Proxy>, replicas: &Cluster<'a, C>) {
    let (requests, replies) = proxy
        .sidecar_bidi::<crate::edge::front::FrontRequest, crate::edge::front::FrontResponse, _>(
            q!(|| { crate::edge::front::start() }),
        );
    let server = KVSServer::<Bytes, CausalKVSCore, _, _>::with_replication(
        ClusterRouter::new(
            proxy,
            replicas,
            "replica",
            proxy.singleton(q!(crate::membership::layout::Layout::current())),
            Transport::Zoo,
        ),
        GossipReplication::new(
            replicas,
            "replica",
            replicas.singleton(q!(crate::membership::layout::Layout::current())),
            Transport::Zoo,
        ),
    );
    replies.complete(server.serve(requests));
}

impl KVSDemo for Replicated {
    fn name(&self) -> &'static str {
        "replicated"
    }

    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a> {
        let proxy = flow.process::<Proxy>();
        let replicas = flow.cluster::<Replica>();
        replicated_kvs(&proxy, &replicas);
        let layout = Layout::unsharded(self.replicas as u32);
        Topology::new(&proxy)
            .cluster("replica", &replicas, self.replicas)
            .envs(self.gossip.to_env().into_iter().chain(layout.to_env()))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::CAUSAL_REPLICAS
    }

    fn script(&self) -> Vec<DemoStep> {
        vec![
            DemoStep::new("write a key through the proxy", &["SET", "color", "blue"]),
            DemoStep::new(
                "read it back (same replica: read your writes)",
                &["GET", "color"],
            ),
            DemoStep::new(
                "write alpha at replica 0 …",
                &["REPLICASET", "0", "alpha", "a1"],
            ),
            DemoStep::new(
                "… and, concurrently, at replica 1: neither has seen the other's write",
                &["REPLICASET", "1", "alpha", "a2"],
            ),
            DemoStep::new(
                "a counter: each replica counts its own increments, so none is lost",
                &["INCR", "visits"],
            ),
        ]
    }
}

impl Architecture for Replicated {
    fn summary(&self) -> &'static str {
        "N replicas, gossip, causal values (siblings)"
    }

    fn options(&self) -> Vec<OptionHelp> {
        [options::REPLICAS]
            .into_iter()
            .chain(options::GOSSIP.iter().copied())
            .collect()
    }

    fn set_option(&mut self, flag: &str, value: &str) -> Result<(), String> {
        match flag {
            "--replicas" => self.replicas = options::positive(flag, value)?,
            _ => options::set_gossip(&mut self.gossip, flag, value)?,
        }
        Ok(())
    }

    fn option_value(&self, flag: &str) -> Option<String> {
        match flag {
            "--replicas" => Some(self.replicas.to_string()),
            _ => options::gossip_value(&self.gossip, flag),
        }
    }

    fn commands(&self) -> &'static [&'static str] {
        Self::COMMANDS
    }
}

impl Replicated {
    /// This architecture's column of the command matrix (see [`super::MATRIX_ROWS`]).
    const COMMANDS: &'static [&'static str] = &[
        "your replica: read-your-writes, eventual elsewhere; siblings",
        "each key at your replica; not atomic",
        "causal context read-modify-write",
        "replica `n`'s own copy",
        "`[0, [0…N−1]]`",
        "in one step at your replica",
        "your replica's view (it may not have heard of every write yet)",
        "deletes every key your replica holds (a tombstone each, gossiped to the others); a write your replica had not seen is concurrent with the flush and survives it",
        "a PN-counter: each replica counts its own increments and decrements, merged entry by entry, so none is lost (a read-modify-write of a value would lose one: two replicas read 5, both write 6); your replica answers the sum it knows; a counter key takes only these, `GET` and `DEL` (which resets it; an increment it had not seen survives)",
        "error: two replicas would both read the same value and both write, losing one write",
        "error, as `APPEND`",
        "error: expiry needs one clock per key (each replica would expire at its own time; gossip could bring an expired value back)",
        "the same at your replica (`STRLEN` of a key with siblings: an error saying so)",
        "atomic at your replica",
        "error: a replica cannot tell whether another changed the key",
        "members; one shard",
        r#"clients move to a live replica; what it held is re-sent there if it may be applied twice (reads, `SET`, `DEL`), else (`INCR`) answered "may or may not have been applied", never counted twice"#,
    ];
}
