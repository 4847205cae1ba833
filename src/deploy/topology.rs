//! What an architecture declares to be deployed: [`KVSDemo`] (its name, its locations and
//! dataflow, what it can do, its narrated scenario) and the [`Topology`] its `build` returns —
//! the proxy and each cluster with its role name and size, declared once.

use hydro_lang::compile::deploy::DeployFlow;
use hydro_lang::deploy::{HydroDeploy, TrybuildHost};
use hydro_lang::prelude::*;

use crate::capabilities::Capabilities;
use crate::server::Proxy;

/// One step of a demo's scenario: a narration and the command to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DemoStep {
    /// What the step shows.
    pub narration: String,
    /// The Redis command, word by word.
    pub command: Vec<String>,
}

impl DemoStep {
    /// A step sending `command` with the narration `narration`.
    pub fn new(narration: &str, command: &[&str]) -> Self {
        Self {
            narration: narration.into(),
            command: command.iter().map(|w| w.to_string()).collect(),
        }
    }
}

/// An architecture that can be deployed and demonstrated.
pub trait KVSDemo {
    /// The architecture's name, as in `kvs-zoo serve <name>`.
    fn name(&self) -> &'static str;

    /// Adds the architecture's locations and dataflow to `flow`; returns its [`Topology`]:
    /// the proxy process, which runs the RESP front (configured at deploy time, see
    /// [`FrontConfig::to_env`](crate::edge::config::FrontConfig::to_env)), and every cluster with its size. Sizes are declared here
    /// once, and deployment takes them from the topology.
    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a>;

    /// The scripted scenario [`run_kvs_demo`](crate::run_kvs_demo) plays.
    fn script(&self) -> Vec<DemoStep>;

    /// What the architecture can honestly do; `INFO` and the client suite read it.
    fn capabilities(&self) -> Capabilities;

    /// What its processes keep on disk when given a data directory (`--data-dir`, see
    /// [`crate::durability`]).
    fn durability(&self) -> Durability {
        Durability::Memory
    }

    /// The settings besides the member counts that decide where a key lives, as
    /// `(name, value)`: a data directory written under one placement must not be read under
    /// another (see [`crate::durability::manifest`]).
    fn placement(&self) -> Vec<(&'static str, String)> {
        vec![]
    }
}

/// Adds a cluster's members to a deployment: one location spec per member.
pub(crate) type DeployCluster<'a> = Box<
    dyn FnOnce(DeployFlow<'a, HydroDeploy>, Vec<TrybuildHost>) -> DeployFlow<'a, HydroDeploy> + 'a,
>;

/// One cluster of a [`Topology`].
pub(crate) struct ClusterRole<'a> {
    pub(crate) role: &'static str,
    /// The cluster's Rust type, which Hydro names its generated code after.
    pub(crate) type_name: &'static str,
    pub(crate) members: usize,
    pub(crate) deploy: DeployCluster<'a>,
}

/// An architecture's locations, declared once: the proxy, and each cluster with its role
/// name (as in `process <role>/<member> pid …` and `INFO members`) and its number of
/// members. [`run_deployed`](crate::deploy::run_deployed) deploys exactly this.
pub struct Topology<'a> {
    pub(crate) proxy: Process<'a, Proxy>,
    pub(crate) clusters: Vec<ClusterRole<'a>>,
    pub(crate) env: Vec<(String, String)>,
}

impl<'a> Topology<'a> {
    /// A deployment of `proxy` alone.
    pub fn new(proxy: &Process<'a, Proxy>) -> Self {
        Self {
            proxy: proxy.clone(),
            clusters: vec![],
            env: vec![],
        }
    }

    /// Adds `cluster`, deployed with `members` members, known as `role`.
    pub fn cluster<C: 'a>(
        mut self,
        role: &'static str,
        cluster: &Cluster<'a, C>,
        members: usize,
    ) -> Self {
        let cluster = cluster.clone();
        self.clusters.push(ClusterRole {
            role,
            type_name: std::any::type_name::<C>(),
            members,
            deploy: Box::new(move |flow, specs| flow.with_cluster(&cluster, specs)),
        });
        self
    }

    /// Sets an environment variable in every process of the deployment: how run-time
    /// settings (gossip intervals, …) reach the members without rebuilding their code.
    pub fn env(mut self, name: &str, value: impl ToString) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets each `(name, value)` of `vars` with [`Topology::env`].
    pub fn envs(self, vars: impl IntoIterator<Item = (&'static str, String)>) -> Self {
        vars.into_iter()
            .fold(self, |topology, (name, value)| topology.env(name, value))
    }

    /// The clusters' roles and sizes, in declaration order.
    pub fn roles(&self) -> Vec<(&'static str, usize)> {
        self.clusters.iter().map(|c| (c.role, c.members)).collect()
    }

    /// The proxy process.
    pub fn proxy(&self) -> &Process<'a, Proxy> {
        &self.proxy
    }
}

/// What an architecture's processes keep on disk when given a data directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Nothing: it refuses a `--data-dir`.
    Memory,
    /// Every process that holds state keeps it on disk: a member restarted while the
    /// deployment runs, and the whole deployment served again, start from their files.
    Everything,
}
