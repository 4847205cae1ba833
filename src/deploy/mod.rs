//! Deploying an architecture: [`KVSDemo`] describes one, [`run_kvs_demo`] deploys it on the
//! caller's hosts and plays its scripted scenario, [`serve`] deploys it for clients.
//!
//! Both go through [`run_deployed`], so a demo exercises exactly what `kvs-zoo serve` runs:
//! the architecture's dataflow behind its RESP front, reached over TCP.
//!
//! The hosts come from the caller ([`Hosts`]): on this machine `Hosts::localhost`, and with
//! hydro_deploy's cloud hosts (e.g. `deployment.GcpComputeEngineHost()`) the same code deploys
//! to virtual machines — a change of host, not of code.
//!
//! - [`topology`]: what an architecture declares ([`KVSDemo`], [`Topology`]).
//! - [`hosts`]: where the processes run and how they are built.
//! - [`supervisor`]: members that die are started again, with a new incarnation.
//! - [`progress`]: what is being compiled, while it is; [`console`]: hydro_deploy's chatter
//!   kept off the terminal unless `--verbose`.
//!
//! This folder may import the edge (the front's settings, a RESP client) and everything below
//! it; it knows no architecture by name (they implement [`KVSDemo`]).

pub mod console;
pub mod hosts;
pub mod progress;
pub mod supervisor;
pub mod topology;

use std::future::Future;
use std::time::{Duration, Instant};

use hydro_deploy::Deployment;
use hydro_lang::compile::deploy::DeployResult;
use hydro_lang::deploy::{HydroDeploy, TrybuildHost};
use hydro_lang::prelude::*;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::deploy::hosts::peer_address;
pub use crate::deploy::hosts::{
    DEFAULT_RESTART_AFTER, DataDir, Hosts, LOCATION_PROFILE, free_port,
};
use crate::deploy::progress::{BuildReport, LocationNames};
use crate::deploy::supervisor::{Restarted, Supervisor};
pub use crate::deploy::topology::{DemoStep, Durability, KVSDemo, Topology};
use crate::durability::manifest::Claimed;
use crate::edge::client::{RespClient, show};
use crate::edge::front::FrontConfig;
use crate::edge::resp::Reply;
use crate::net::{AddressBook, ENV_PEERS, ENV_SELF, Peer};
use crate::server::Proxy;

/// How long a started deployment may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A launched deployment.
pub struct Launched<'a> {
    /// The topology's roles and sizes, in declaration order.
    pub roles: Vec<(&'static str, usize)>,
    /// The deployed nodes, which must stay alive while the deployment runs (dropping them
    /// stops it).
    pub nodes: DeployResult<'a, HydroDeploy>,
    /// The members the supervisor restarts, as it does (`None` if `hosts` restart nothing).
    pub restarts: Option<UnboundedReceiver<Restarted>>,
}

/// Builds `demo`'s locations and launches them on `hosts` (without starting their dataflows),
/// telling on standard error what is being built while it is. Members run supervised when
/// `hosts` say to restart them ([`Hosts::restart_after`]).
///
/// Every setting reaches the processes through their environment ([`Topology::env`],
/// [`FrontConfig::to_env`]), never through their code: two starts with different options
/// generate the same code, so the second builds nothing.
pub async fn launch<'a, D: KVSDemo + ?Sized>(
    demo: &D,
    hosts: &Hosts,
    front: &FrontConfig,
    deployment: &mut Deployment,
) -> Result<Launched<'a>, String> {
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
    // Whether the deployment starts again from an earlier run's directory.
    let claimed = match &hosts.data {
        Some(data) => match claim_data_dir(demo, data, &roles) {
            Ok(claimed) => Some(claimed),
            Err(e) => {
                // A flow that is dropped unfinished panics: finish it, unused.
                drop(flow.finalize());
                return Err(e);
            }
        },
        None => None,
    };
    // Each process keeps its files in a directory of its own, named after it.
    let data_env = |me: &Peer| -> Vec<(String, String)> {
        let Some(data) = &hosts.data else {
            return vec![];
        };
        let mut env: Vec<(String, String)> = data
            .settings
            .to_env()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let dir = data.member_dir(&me.role, me.member);
        env.push((
            crate::durability::ENV_DATA_DIR.to_string(),
            dir.display().to_string(),
        ));
        if claimed == Some(Claimed::Same) {
            env.push((
                crate::durability::ENV_RESTARTED.to_string(),
                "1".to_string(),
            ));
        }
        env
    };
    let named = |spec: TrybuildHost, me: &Peer| {
        data_env(me).into_iter().fold(
            with_env(spec)
                .env(ENV_PEERS, peers.clone())
                .env(ENV_SELF, me.to_string()),
            |spec, (k, v)| spec.env(k, v),
        )
    };
    // The front reports what this architecture can do (`INFO`), whoever built `front`.
    let front = FrontConfig {
        capabilities: demo.capabilities(),
        ..front.clone()
    };
    let (members_host, restarts) = match hosts.restart_after {
        Some(after) => {
            let (supervisor, restarts) = Supervisor::new(after);
            (supervisor.host(hosts.members.clone()), Some(restarts))
        }
        None => (hosts.members.clone(), None),
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
                named(hosts.spec(&members_host), &me)
            })
            .collect();
        deploy_flow = (cluster.deploy)(deploy_flow, specs);
    }
    let nodes = deploy_flow.deploy(deployment);
    let report = BuildReport::start(names);
    let deployed = deployment.deploy().await;
    report.finish(demo.name()).await;
    deployed.map_err(|e| format!("deploying {}: {e}", demo.name()))?;
    Ok(Launched {
        roles,
        nodes,
        restarts,
    })
}

/// Checks that `demo` may keep its data in `data`, and claims the directory for it: a store
/// that keeps nothing on disk, or a directory another architecture or shape wrote, is
/// refused (see [`crate::durability::manifest`]).
fn claim_data_dir<D: KVSDemo + ?Sized>(
    demo: &D,
    data: &DataDir,
    roles: &[(&'static str, usize)],
) -> Result<Claimed, String> {
    let durability = demo.durability();
    if durability == Durability::Memory {
        return Err(format!(
            "'{}' keeps its data in memory only: it takes no --data-dir yet",
            demo.name()
        ));
    }
    let shape: Vec<String> = std::iter::once(&("proxy", 1))
        .chain(roles)
        .map(|(role, n)| format!("{role}={n}"))
        .chain(
            demo.placement()
                .into_iter()
                .map(|(k, v)| format!("{k}={v}")),
        )
        .collect();
    let manifest = crate::durability::manifest::Manifest {
        architecture: demo.name().to_string(),
        shape: shape.join(" "),
    };
    manifest.claim(&data.dir)
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
    let launched = launch(demo, hosts, &front, &mut deployment).await?;
    // Not `deployment.stop()`: a process that was never started takes a stop for a broken
    // launch, and panics. Dropping the deployment kills them.
    drop(launched);
    drop(deployment);
    Ok(())
}

/// A deployment that answers, as [`run_deployed`] hands it to its body.
pub struct Running {
    /// The topology's roles and sizes, in declaration order.
    pub roles: Vec<(&'static str, usize)>,
    /// The members the supervisor restarts, as it does (`None` if the hosts restart nothing).
    pub restarts: Option<UnboundedReceiver<Restarted>>,
}

/// Deploys `demo` on `hosts` with its front at `front`, waits until the front answers a
/// request that goes through the dataflow, runs `body` with the [`Running`] deployment, then
/// stops it.
pub async fn run_deployed<D, F, Fut>(
    demo: &D,
    hosts: &Hosts,
    front: &FrontConfig,
    deployment: &mut Deployment,
    body: F,
) -> Result<(), String>
where
    D: KVSDemo + ?Sized,
    F: FnOnce(Running) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let Launched {
        roles,
        nodes: _nodes,
        restarts,
    } = launch(demo, hosts, front, deployment).await?;
    deployment
        .start()
        .await
        .map_err(|e| format!("starting {}: {e}", demo.name()))?;
    let outcome = match wait_ready(front).await {
        Ok(()) => body(Running { roles, restarts }).await,
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
    run_deployed(&demo, &hosts, &front, &mut deployment, |_running| async {
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

/// Serves `demo` on `hosts` at `front` until Ctrl-C, announcing `ready:` once it answers, and
/// `process <role>/<member> pid <PID> (restart N)` each time the supervisor restarts a member.
pub async fn serve<D: KVSDemo + ?Sized>(
    demo: &D,
    hosts: Hosts,
    front: FrontConfig,
    mut deployment: Deployment,
) -> Result<(), String> {
    let front = &front;
    run_deployed(demo, &hosts, front, &mut deployment, |running| async move {
        let Running { roles, restarts } = running;
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
        let Some(mut restarts) = restarts else {
            interrupt.recv().await;
            println!("stopping");
            return Ok(());
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                Some(restarted) = restarts.recv() => {
                    let front = front.clone();
                    tokio::spawn(async move { announce(&front, restarted).await });
                }
            }
        }
        println!("stopping");
        Ok(())
    })
    .await
}

/// Prints `process <role>/<member> pid <PID> (restart N)` once the restarted member's first
/// heartbeat (which carries its new pid and incarnation) reaches the proxy.
async fn announce(front: &FrontConfig, restarted: Restarted) {
    let deadline = Instant::now() + MEMBERS_TIMEOUT;
    let Restarted { member, restart } = restarted;
    while Instant::now() < deadline {
        if let Ok(mut client) = connect(front).await
            && let Ok(Reply::Bulk(info)) = client.command(&["INFO", "members"]).await
        {
            let pid = String::from_utf8_lossy(&info)
                .lines()
                .filter_map(crate::membership::view::parse_line)
                .find(|m| format!("{}/{}", m.role, m.member) == member && m.incarnation == restart)
                .map(|m| m.pid);
            if let Some(pid) = pid {
                println!("process {member} pid {pid} (restart {restart})");
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "kvs-zoo: {member} was restarted (restart {restart}) but has not reported within {}s",
        MEMBERS_TIMEOUT.as_secs()
    );
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
