//! Deploying an architecture: [`KVSDemo`] describes one, [`run_kvs_demo`] deploys it on the
//! caller's hosts and plays its scripted scenario, [`serve`] deploys it for clients.
//!
//! Both go through [`run_deployed`], so a demo exercises exactly what `kvs-zoo serve` runs:
//! the architecture's dataflow behind its RESP front, reached over TCP.
//!
//! The hosts come from the caller ([`Hosts`]): on this machine `Hosts::localhost`, and with
//! hydro_deploy's cloud hosts (e.g. `deployment.GcpComputeEngineHost()`) the same code deploys
//! to virtual machines — a change of host, not of code.

pub mod console;
pub mod progress;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hydro_deploy::{Deployment, Host};
use hydro_lang::compile::deploy::{DeployFlow, DeployResult};
use hydro_lang::deploy::{HydroDeploy, TrybuildHost};
use hydro_lang::prelude::*;

use crate::capabilities::Capabilities;
use crate::deploy::progress::{BuildReport, LocationNames};
use crate::edge::client::{RespClient, show};
use crate::edge::front::FrontConfig;
use crate::edge::resp::Reply;
use crate::net::{AddressBook, ENV_PEERS, ENV_SELF, Peer};
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
    /// [`FrontConfig::to_env`]), and every cluster with its size. Sizes are declared here
    /// once, and deployment takes them from the topology.
    fn build<'a>(&self, flow: &mut FlowBuilder<'a>) -> Topology<'a>;

    /// The scripted scenario [`run_kvs_demo`] plays.
    fn script(&self) -> Vec<DemoStep>;

    /// What the architecture can honestly do; `INFO` and the client suite read it.
    fn capabilities(&self) -> Capabilities;
}

/// Adds a cluster's members to a deployment: one location spec per member.
type DeployCluster<'a> = Box<
    dyn FnOnce(DeployFlow<'a, HydroDeploy>, Vec<TrybuildHost>) -> DeployFlow<'a, HydroDeploy> + 'a,
>;

/// One cluster of a [`Topology`].
struct ClusterRole<'a> {
    role: &'static str,
    /// The cluster's Rust type, which Hydro names its generated code after.
    type_name: &'static str,
    members: usize,
    deploy: DeployCluster<'a>,
}

/// An architecture's locations, declared once: the proxy, and each cluster with its role
/// name (as in `process <role>/<member> pid …` and `INFO members`) and its number of
/// members. [`run_deployed`] deploys exactly this.
pub struct Topology<'a> {
    proxy: Process<'a, Proxy>,
    clusters: Vec<ClusterRole<'a>>,
    env: Vec<(String, String)>,
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

/// The machines an architecture's locations run on, and how their code is built.
#[derive(Clone)]
pub struct Hosts {
    /// Runs the proxy (and with it the RESP front).
    pub proxy: Arc<dyn Host>,
    /// Runs the members of every cluster.
    pub members: Arc<dyn Host>,
    /// Build the locations optimized (release profile). Debug builds are much quicker to
    /// compile and 3–10× slower to run.
    pub optimized: bool,
}

impl Hosts {
    /// Everything on this machine, optimized when the driver itself is a release build.
    pub fn localhost(deployment: &mut Deployment) -> Self {
        Self {
            proxy: deployment.Localhost(),
            members: deployment.Localhost(),
            optimized: !cfg!(debug_assertions),
        }
    }

    fn spec(&self, host: &Arc<dyn Host>) -> TrybuildHost {
        let spec = TrybuildHost::new(host.clone());
        if self.optimized {
            // Optimized processes build with a profile of their own (see Cargo.toml), into
            // `target/location-release/`, apart from the driver's `target/release/`. Hydro
            // builds a location's crates with `STAGELEFT_TRYBUILD_BUILD_STAGED` set, which the
            // build scripts of hydro_lang, hydro_std and this crate watch: in one directory,
            // the driver's build and the locations' shared those build scripts' outputs and
            // overwrote each other's, so every start rebuilt hydro_std and kvs_zoo, for
            // minutes. Setting rustflags, even none, switches the location to a static build,
            // which any profile but `dev` needs (the prebuilt dylib Hydro would otherwise
            // link is a debug build). The compiler's warnings about Hydro's generated code are
            // hidden by `crate::deploy::console` instead of by flags.
            spec.profile(LOCATION_PROFILE).rustflags("")
        } else {
            spec
        }
    }
}

/// The Cargo profile optimized processes are built with (declared in Cargo.toml).
pub const LOCATION_PROFILE: &str = "location-release";

/// How long a started deployment may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Builds `demo`'s locations and launches them on `hosts` (without starting their dataflows),
/// telling on standard error what is being built while it is. Returns the topology's roles
/// and sizes, and the deployed nodes, which must stay alive while the deployment runs
/// (dropping them stops it).
///
/// Every setting reaches the processes through their environment ([`Topology::env`],
/// [`FrontConfig::to_env`]), never through their code: two starts with different options
/// generate the same code, so the second builds nothing.
pub async fn launch<'a, D: KVSDemo + ?Sized>(
    demo: &D,
    hosts: &Hosts,
    front: &FrontConfig,
    deployment: &mut Deployment,
) -> Result<(Vec<(&'static str, usize)>, DeployResult<'a, HydroDeploy>), String> {
    let mut flow = FlowBuilder::new();
    let topology = demo.build(&mut flow);
    let roles = topology.roles();
    let Topology {
        proxy,
        clusters,
        env,
    } = topology;
    let mut names = LocationNames::default();
    names.add(std::any::type_name::<Proxy>(), "proxy");
    for cluster in &clusters {
        names.add(cluster.type_name, cluster.role);
    }
    let with_env = |spec: TrybuildHost| {
        env.iter()
            .fold(spec, |spec, (k, v)| spec.env(k.clone(), v.clone()))
    };
    // Where each process listens for its peers (`crate::net`): every process gets the whole
    // book, and its own name.
    let mut book = AddressBook::default();
    let proxy_peer = Peer::new("proxy", 0);
    book.insert(proxy_peer.clone(), peer_address()?);
    for cluster in &clusters {
        for member in 0..cluster.members {
            let member = u32::try_from(member).map_err(|e| e.to_string())?;
            book.insert(Peer::new(cluster.role, member), peer_address()?);
        }
    }
    let peers = book.to_env();
    let named = |spec: TrybuildHost, me: &Peer| {
        with_env(spec)
            .env(ENV_PEERS, peers.clone())
            .env(ENV_SELF, me.to_string())
    };
    // The front reports what this architecture can do (`INFO`), whoever built `front`.
    let front = FrontConfig {
        capabilities: demo.capabilities(),
        ..front.clone()
    };
    let proxy_spec = front.to_env().into_iter().fold(
        named(hosts.spec(&hosts.proxy), &proxy_peer),
        |spec, (k, v)| spec.env(k, v),
    );
    let mut deploy_flow = flow.with_process(&proxy, proxy_spec);
    for cluster in clusters {
        // Member i of the spec list is member id i of the cluster.
        let specs = (0..cluster.members)
            .map(|member| {
                let me = Peer::new(cluster.role, member as u32);
                named(hosts.spec(&hosts.members), &me)
            })
            .collect();
        deploy_flow = (cluster.deploy)(deploy_flow, specs);
    }
    let nodes = deploy_flow.deploy(deployment);
    let report = BuildReport::start(names);
    let deployed = deployment.deploy().await;
    report.finish(demo.name()).await;
    deployed.map_err(|e| format!("deploying {}: {e}", demo.name()))?;
    Ok((roles, nodes))
}

/// Builds `demo`'s processes on `hosts` ahead of time, so that a later start builds nothing.
/// hydro_deploy builds only what it deploys, so this launches the processes once (a build is
/// a deployment that never starts), then kills them.
pub async fn build<D: KVSDemo + ?Sized>(
    demo: &D,
    hosts: &Hosts,
    mut deployment: Deployment,
) -> Result<(), String> {
    let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let front = FrontConfig::localhost(demo.name(), port);
    let (_roles, nodes) = launch(demo, hosts, &front, &mut deployment).await?;
    // Not `deployment.stop()`: a process that was never started takes a stop for a broken
    // launch, and panics. Dropping the deployment kills them.
    drop(nodes);
    drop(deployment);
    Ok(())
}

/// Deploys `demo` on `hosts` with its front at `front`, waits until the front answers a
/// request that goes through the dataflow, runs `body` with the topology's roles and sizes,
/// then stops the deployment.
pub async fn run_deployed<D, F, Fut>(
    demo: &D,
    hosts: &Hosts,
    front: &FrontConfig,
    deployment: &mut Deployment,
    body: F,
) -> Result<(), String>
where
    D: KVSDemo + ?Sized,
    F: FnOnce(Vec<(&'static str, usize)>) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (roles, _nodes) = launch(demo, hosts, front, deployment).await?;
    deployment
        .start()
        .await
        .map_err(|e| format!("starting {}: {e}", demo.name()))?;
    let outcome = match wait_ready(front).await {
        Ok(()) => body(roles).await,
        Err(e) => Err(e),
    };
    if let Err(e) = deployment.stop().await {
        eprintln!("kvs-zoo: stopping the deployment: {e}");
    }
    outcome
}

/// Connects to the front at `front`, authenticating if it requires a password.
pub async fn connect(front: &FrontConfig) -> Result<RespClient, String> {
    let addr = &front.bind;
    let mut client = RespClient::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    if let Some(pass) = &front.commands.requirepass {
        let pass = pass
            .plain()
            .ok_or("the front requires a password this process does not know")?;
        match client.command(&[&b"AUTH"[..], pass]).await {
            Ok(Reply::Simple(_)) => {}
            other => return Err(format!("AUTH at {addr}: {other:?}")),
        }
    }
    Ok(client)
}

/// Waits until a GET through the dataflow is answered (a PING would be answered by the front
/// alone, before the dataflow runs).
async fn wait_ready(front: &FrontConfig) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Ok(mut client)) =
            tokio::time::timeout(Duration::from_secs(1), connect(front)).await
            && let Ok(Ok(Reply::Nil | Reply::Bulk(_))) = tokio::time::timeout(
                Duration::from_secs(2),
                client.command(&["GET", "kvs-zoo:ready-probe"]),
            )
            .await
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no answer on {} within {}s of starting",
                front.bind,
                READY_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deploys `demo` on `hosts`, plays its scenario against it over RESP and prints each step.
pub async fn run_kvs_demo<D: KVSDemo>(
    demo: D,
    hosts: Hosts,
    mut deployment: Deployment,
) -> Result<(), String> {
    let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
    let front = FrontConfig::localhost(demo.name(), port);
    println!("== KVS Zoo: {} ==", demo.name());
    let steps = demo.script();
    run_deployed(&demo, &hosts, &front, &mut deployment, |_roles| async {
        println!("serving on redis://{}\n", front.bind);
        let mut client = connect(&front).await?;
        for step in steps {
            let reply = client
                .command(&step.command)
                .await
                .map_err(|e| format!("{}: {e}", step.command.join(" ")))?;
            crate::testing::examples_support::log_operation(
                &step.narration,
                &step.command.join(" "),
                &show(&reply),
            );
        }
        Ok(())
    })
    .await
}

/// Serves `demo` on `hosts` at `front` until Ctrl-C, announcing `ready:` once it answers.
pub async fn serve<D: KVSDemo + ?Sized>(
    demo: &D,
    hosts: Hosts,
    front: FrontConfig,
    mut deployment: Deployment,
) -> Result<(), String> {
    let front = &front;
    run_deployed(demo, &hosts, front, &mut deployment, |roles| async move {
        // Ctrl-C is caught from here on, *before* `ready:` is printed: a user (or a test) that
        // presses it the moment the store is ready must get a clean stop, not the default
        // action of SIGINT, which kills this driver and leaves its processes behind.
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                .map_err(|e| format!("catching Ctrl-C: {e}"))?;
        // Which process is which, so a user can watch or kill one on purpose.
        for (name, pid) in process_ids(front, &roles).await? {
            println!("process {name} pid {pid}");
        }
        println!("ready: redis://{}", front.bind);
        interrupt.recv().await;
        println!("stopping");
        Ok(())
    })
    .await
}

/// How long `serve` waits for every member's first heartbeat (which carries its pid).
const MEMBERS_TIMEOUT: Duration = Duration::from_secs(30);

/// Every process of the deployment as `(<role>/<member>, pid)`: the proxy's from `INFO
/// server`, the members' from `INFO members` once each has sent a heartbeat. hydro_deploy
/// does not tell process ids; the processes tell the proxy themselves.
async fn process_ids(
    front: &FrontConfig,
    roles: &[(&'static str, usize)],
) -> Result<Vec<(String, u32)>, String> {
    let mut client = connect(front).await?;
    let deadline = Instant::now() + MEMBERS_TIMEOUT;
    loop {
        let info = match client.command(&["INFO", "server", "members"]).await {
            Ok(Reply::Bulk(info)) => String::from_utf8_lossy(&info).into_owned(),
            other => return Err(format!("INFO: {other:?}")),
        };
        let proxy = info
            .lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .ok_or_else(|| format!("INFO server has no process_id: {info}"))?;
        let members: Vec<(String, u32)> = info
            .lines()
            .filter_map(crate::membership::view::parse_line)
            .filter(|m| m.pid != 0)
            .map(|m| (format!("{}/{}", m.role, m.member), m.pid))
            .collect();
        let expected: usize = roles.iter().map(|(_, n)| n).sum();
        if members.len() >= expected {
            let mut all = vec![("proxy/0".to_string(), proxy)];
            all.extend(members);
            return Ok(all);
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {expected} members reported within {}s:\n{info}",
                members.len(),
                MEMBERS_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An address on this machine for a process to receive its peers' messages on.
fn peer_address() -> Result<String, String> {
    let port = free_port().map_err(|e| format!("finding a free port: {e}"))?;
    Ok(format!("127.0.0.1:{port}"))
}

/// A TCP port on 127.0.0.1 that is free right now, for a process started later to listen on.
///
/// The port is only *checked* here: the process that listens on it binds it later, so anything
/// that binds in between wins it. Two things would, if we asked the kernel for port 0: the
/// kernel hands out ports from its ephemeral range to every outgoing connection too, and it
/// hands the same freed port to the next caller soon after (several deployments starting at
/// once in one test binary collided that way: "Address already in use"). So ports come from
/// below the ephemeral range, where the kernel never picks on its own, starting at a random
/// place, and this process never hands out the same port twice.
pub fn free_port() -> std::io::Result<u16> {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static GIVEN: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let given = GIVEN.get_or_init(Mutex::default);
    let (low, high) = listen_port_range();
    let span = usize::from(high.saturating_sub(low));
    // Where to start looking: different in each process, so concurrent test binaries and
    // `serve`s rarely probe the same ports.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
        ^ (u64::from(std::process::id()) << 32);
    let mut rng = crate::replication::gossip::rng::Rng::new(seed);
    let start = rng.below(span);
    let mut given = given
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    for step in 0..span {
        // `span` fits in a u16, and so does any remainder of it.
        let port = low + ((start + step) % span) as u16;
        if given.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            given.insert(port);
            return Ok(port);
        }
    }
    // Every port of the range is taken: let the kernel choose.
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The ports [`free_port`] chooses from: the registered ports below the kernel's ephemeral
/// range (`/proc/sys/net/ipv4/ip_local_port_range`, 32768–60999 by default on Linux).
fn listen_port_range() -> (u16, u16) {
    const LOW: u16 = 10_000;
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    // An unusual ephemeral range that starts this low leaves no room: the range is then
    // empty, and the kernel chooses.
    (LOW, ephemeral_low.max(LOW))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_and_below_the_ephemeral_range() {
        let (low, high) = listen_port_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port().unwrap()).collect();
        let distinct: std::collections::HashSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "a port was handed out twice");
        assert!(
            ports.iter().all(|&p| (low..high).contains(&p)),
            "{ports:?} not all in {low}..{high}"
        );
    }
}
