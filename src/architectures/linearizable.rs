//! The Linearizable architecture: every operation ordered by Multi-Paxos, applied by every
//! replica in the decided order.
//!
//! ```text
//!                               ┌─▶ proposer 0 ─┐      ┌─▶ acceptor 0
//!   redis-cli ─RESP─▶ [ proxy ] ┼─▶ proposer 1 ─┼─────▶┼─▶ acceptor 1      (majority decides)
//!   (front, PaxosClient)  ▲     └─▶ proposer 2 ─┘      └─▶ acceptor 2
//!                         │            │ decided log, slot by slot
//!                         │            ▼
//!                         └── [ replica 0 | replica 1 | replica 2 ]: KVSCore each
//! ```
//!
//! Plug-ins of the one [`KVSServer`] composition: the **router** is the ordering stage
//! ([`PaxosRouter`]): its output, at each replica, is the decided log in slot order; the
//! **storage** is the LWW [`KVSCore`]; there is no replication plug-in — replicas agree
//! because they apply the same log, not because they exchange state.
//!
//! **Guarantees.** Linearizable: every operation — reads too, which go through the log —
//! takes effect at one point between its call and its answer, as if one copy served them one
//! at a time. `CAS`, `INCR`, `SET NX` and `MULTI`/`EXEC` are atomic (each is one log entry).
//! With `--f F` (default 1): 2F + 1 proposers and acceptors, 2F + 1 replicas.
//!
//! **Failures.** Any F acceptors and any proposers but one may be killed (`kill -9`), the
//! leader included: after about one or two election timeouts (1 s each) the next proposer
//! leads, recovers what the old leader may have decided, and the store serves again; clients'
//! requests are retried by the proxy meanwhile and answered once. Replicas: the store
//! answers while one lives. A killed member is restarted by `serve`: a proposer rejoins and
//! may lead again; an acceptor comes back with its vote if it keeps its promises on disk
//! (`--data-dir`), else without one (it forgot them); a replica comes back empty and catches
//! up from another replica's snapshot. See
//! [`crate::consensus::paxos`] for the protocol.

use bytes::Bytes;
use hydro_lang::prelude::*;

use crate::architectures::Architecture;
use crate::architectures::options::{self, OptionHelp};
use crate::capabilities::Capabilities;
use crate::consensus::paxos::flow::PaxosRouter;
use crate::deploy::{DemoStep, Durability, KVSDemo, Topology};
use crate::server::{KVSServer, Proxy};
use crate::store::kvs_core::KVSCore;

pub use crate::consensus::paxos::roles::{Acceptor, Proposer, Replica};

/// The most failures `--f` may ask for: 2f + 1 processes of each role, 22 processes at
/// f = 3, already more than a laptop runs comfortably.
pub const MAX_F: u32 = 3;

/// The Linearizable architecture (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Linearizable {
    /// Failures tolerated: 2f + 1 proposers, acceptors and replicas.
    pub f: u32,
}

impl Default for Linearizable {
    /// f = 1: three of each.
    fn default() -> Self {
        Self { f: 1 }
    }
}

/// Wires the Linearizable architecture: the proxy's RESP front, through the one
/// [`KVSServer`] composition, ordered by Multi-Paxos among `proposers` and `acceptors`, to
/// the `replicas`.
pub fn linearizable_kvs<'a>(
    proxy: &Process<'a, Proxy>,
    proposers: &Cluster<'a, Proposer>,
    acceptors: &Cluster<'a, Acceptor>,
    replicas: &Cluster<'a, Replica>,
) {
    let (requests, replies) = proxy
        .sidecar_bidi::<crate::edge::front::FrontRequest, crate::edge::front::FrontResponse, _>(
            q!(|| { crate::edge::front::start() }),
        );
    let server = KVSServer::<Bytes, KVSCore, _>::new(PaxosRouter::new(
        proxy, proposers, acceptors, replicas,
    ));
    replies.complete(server.serve(requests));
}

impl KVSDemo for Linearizable {
    fn name(&self) -> &'static str {
        "linearizable"
    }

    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a> {
        let proxy = flow.process::<Proxy>();
        let proposers = flow.cluster::<Proposer>();
        let acceptors = flow.cluster::<Acceptor>();
        let replicas = flow.cluster::<Replica>();
        linearizable_kvs(&proxy, &proposers, &acceptors, &replicas);
        let n = (2 * self.f + 1) as usize;
        Topology::new(&proxy)
            .cluster("proposer", &proposers, n)
            .cluster("acceptor", &acceptors, n)
            .cluster("replica", &replicas, n)
            .envs(crate::consensus::paxos::flow::settings_env(
                self.f, n as u32,
            ))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ORDERED_LOG
    }

    /// Acceptors log their promises and accepted values, replicas the slots they apply (see
    /// [`crate::consensus::paxos::acceptor`], [`crate::consensus::paxos::replica`]).
    fn durability(&self) -> Durability {
        Durability::Everything
    }

    fn script(&self) -> Vec<DemoStep> {
        vec![
            DemoStep::new(
                "write a key: decided in one slot",
                &["SET", "color", "blue"],
            ),
            DemoStep::new(
                "read it back: reads go through the log too",
                &["GET", "color"],
            ),
            DemoStep::new(
                "compare-and-set from the value it holds: swapped",
                &["CAS", "color", "blue", "green"],
            ),
            DemoStep::new(
                "the same swap again: the key no longer holds blue",
                &["CAS", "color", "blue", "red"],
            ),
            DemoStep::new("the value after the swaps", &["GET", "color"]),
            DemoStep::new(
                "a counter: each INCR one log entry, none lost",
                &["INCR", "visits"],
            ),
            DemoStep::new("who leads, and under which ballot", &["INFO", "paxos"]),
        ]
    }
}

impl Architecture for Linearizable {
    fn summary(&self) -> &'static str {
        "Multi-Paxos orders every operation; 2f+1 proposers, acceptors and replicas"
    }

    fn options(&self) -> Vec<OptionHelp> {
        vec![OptionHelp {
            flag: "--f",
            value: "<F>",
            help: "failures tolerated: 2F+1 of each role (at most 3)",
        }]
    }

    fn set_option(&mut self, flag: &str, value: &str) -> Result<(), String> {
        if flag != "--f" {
            return Err(format!("unknown option '{flag}'"));
        }
        let f = options::positive(flag, value)?;
        if f > MAX_F {
            return Err(format!("--f is at most {MAX_F}"));
        }
        self.f = f;
        Ok(())
    }

    fn option_value(&self, flag: &str) -> Option<String> {
        (flag == "--f").then(|| self.f.to_string())
    }

    fn commands(&self) -> &'static [&'static str] {
        Self::COMMANDS
    }
}

impl Linearizable {
    /// This architecture's column of the command matrix (see [`super::MATRIX_ROWS`]).
    const COMMANDS: &'static [&'static str] = &[
        "linearizable: each one log entry, reads too",
        "one log entry per key: each linearizable, together not atomic (use `MULTI`)",
        "error: one version per key",
        "through the log, like `GET`/`SET`: every replica applies it, the first to answer answers (`n` is not used)",
        "`[0, [0]]`",
        "one log entry: atomic",
        "the store, at one point of the log",
        "one log entry: empties the store",
        "one log entry each: no update lost",
        "one log entry each",
        "one log entry: atomic (what the checked histories use)",
        "deadline and time in the log: every replica expires the key at the same log position",
        "the same",
        "atomic: the whole transaction is one log entry",
        "checks in the log: the same at every replica",
        "members (proposers, acceptors, replicas); `INFO paxos`: the leader and its ballot",
        "the leader: the next proposer leads within 1–2 s, requests wait and are answered; up to F acceptors, any replicas but one: nothing a client sees",
    ];
}
