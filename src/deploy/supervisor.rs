//! Restarting members that die, as an operator's process manager (systemd, Kubernetes) would.
//!
//! hydro_deploy launches each process once and never looks at it again: a member killed with
//! `kill -9` stays dead, and the store runs one member short for good. The supervisor wraps
//! the host the members run on ([`Supervisor::host`]). When hydro_deploy launches a member
//! through it, the supervisor keeps what it needs to launch that member again — the binary,
//! its arguments and environment, and the lines hydro_deploy writes to its standard input
//! (its network configuration, then `start`) — and watches the process. When it exits, the
//! supervisor waits [`Supervisor::new`]'s `restart_after`, launches it again with the same
//! address and a new **incarnation** ([`crate::membership::incarnation()`]), replays those
//! lines, and reports the restart ([`Restarted`]). A stop of the deployment stops whichever
//! process currently runs for the member, and restarts nothing.
//!
//! What a restarted member may do is each architecture's business: it comes back with an
//! empty memory (no disk yet), so a replica must catch up before it serves, and an acceptor
//! must not vote with promises it forgot (see the README's fault table).
//!
//! The proxy is not supervised: it holds the clients' connections, and a restart of it is a
//! restart of the store.

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use hydro_deploy::rust_crate::build::BuildOutput;
use hydro_deploy::rust_crate::tracing_options::TracingOptions;
use hydro_deploy::{
    BaseServerStrategy, ClientStrategy, Host, HostStrategyGetter, HostTargetType, LaunchedBinary,
    LaunchedHost, PortNetworkHint, ResourceBatch, ResourceResult, ServerStrategy,
};
use hydro_deploy_integration::ServerBindConfig;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;

use crate::membership::incarnation::ENV_INCARNATION;
use crate::net::ENV_SELF;

/// How often the supervisor looks whether a member's process has exited.
const WATCH_EVERY: Duration = Duration::from_millis(100);
/// How long a relaunched process may take to answer each step of hydro_deploy's handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// A member the supervisor launched again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restarted {
    /// `role/member`, as in `process <role>/<member> pid …`.
    pub member: String,
    /// How many times it has been restarted, this one included (its new incarnation).
    pub restart: u32,
}

/// Restarts the members launched through its hosts when they die.
pub struct Supervisor {
    restart_after: Duration,
    events: UnboundedSender<Restarted>,
    /// The members' binaries, one copy per file (members of one cluster share one).
    binaries: Mutex<HashMap<PathBuf, Arc<BuildOutput>>>,
}

impl Supervisor {
    /// A supervisor that restarts a dead member `restart_after` after it exited, and the
    /// stream of restarts it made.
    pub fn new(restart_after: Duration) -> (Arc<Self>, UnboundedReceiver<Restarted>) {
        let (events, restarts) = unbounded_channel();
        let supervisor = Arc::new(Self {
            restart_after,
            events,
            binaries: Mutex::default(),
        });
        (supervisor, restarts)
    }

    /// `inner`, with every process launched on it supervised.
    pub fn host(self: &Arc<Self>, inner: Arc<dyn Host>) -> Arc<dyn Host> {
        Arc::new(SupervisedHost {
            inner,
            supervisor: self.clone(),
        })
    }

    /// A copy of `built` to launch again later (shared by the members that run the same
    /// file).
    fn keep(&self, built: &BuildOutput) -> Arc<BuildOutput> {
        let mut binaries = self.binaries.lock().unwrap_or_else(|e| e.into_inner());
        binaries
            .entry(built.bin_path.clone())
            .or_insert_with(|| {
                Arc::new(BuildOutput {
                    bin_data: built.bin_data.clone(),
                    bin_path: built.bin_path.clone(),
                    shared_library_path: built.shared_library_path.clone(),
                })
            })
            .clone()
    }
}

/// A host whose launched processes are supervised; everything else is `inner`'s.
struct SupervisedHost {
    inner: Arc<dyn Host>,
    supervisor: Arc<Supervisor>,
}

impl fmt::Debug for SupervisedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Supervised({:?})", self.inner)
    }
}

impl SupervisedHost {
    fn wrap(&self, inner: Arc<dyn LaunchedHost>) -> Arc<dyn LaunchedHost> {
        Arc::new(SupervisedLaunchedHost {
            inner,
            supervisor: self.supervisor.clone(),
        })
    }
}

impl Host for SupervisedHost {
    fn target_type(&self) -> HostTargetType {
        self.inner.target_type()
    }

    fn request_port_base(&self, bind_type: &BaseServerStrategy) {
        self.inner.request_port_base(bind_type)
    }

    fn request_port(&self, bind_type: &ServerStrategy) {
        self.inner.request_port(bind_type)
    }

    fn id(&self) -> usize {
        self.inner.id()
    }

    fn request_custom_binary(&self) {
        self.inner.request_custom_binary()
    }

    fn collect_resources(&self, resource_batch: &mut ResourceBatch) {
        self.inner.collect_resources(resource_batch)
    }

    fn provision(&self, resource_result: &Arc<ResourceResult>) -> Arc<dyn LaunchedHost> {
        self.wrap(self.inner.provision(resource_result))
    }

    fn launched(&self) -> Option<Arc<dyn LaunchedHost>> {
        self.inner.launched().map(|inner| self.wrap(inner))
    }

    fn strategy_as_server<'a>(
        &'a self,
        connection_from: &dyn Host,
        server_tcp_port_hint: PortNetworkHint,
    ) -> Result<(ClientStrategy<'a>, HostStrategyGetter)> {
        self.inner
            .strategy_as_server(connection_from, server_tcp_port_hint)
    }

    fn can_connect_to(&self, typ: ClientStrategy<'_>) -> bool {
        self.inner.can_connect_to(typ)
    }
}

/// The launched side of [`SupervisedHost`].
struct SupervisedLaunchedHost {
    inner: Arc<dyn LaunchedHost>,
    supervisor: Arc<Supervisor>,
}

#[async_trait]
impl LaunchedHost for SupervisedLaunchedHost {
    fn base_server_config(&self, strategy: &BaseServerStrategy) -> ServerBindConfig {
        self.inner.base_server_config(strategy)
    }

    fn server_config(&self, strategy: &ServerStrategy) -> ServerBindConfig {
        self.inner.server_config(strategy)
    }

    async fn copy_binary(&self, binary: &BuildOutput) -> Result<()> {
        self.inner.copy_binary(binary).await
    }

    async fn forward_port(&self, addr: &std::net::SocketAddr) -> Result<std::net::SocketAddr> {
        self.inner.forward_port(addr).await
    }

    async fn launch_binary(
        &self,
        id: String,
        binary: &BuildOutput,
        args: &[String],
        perf: Option<TracingOptions>,
        env: &HashMap<String, String>,
        pin_to_core: Option<usize>,
    ) -> Result<Box<dyn LaunchedBinary>> {
        let launched: Arc<dyn LaunchedBinary> = Arc::from(
            self.inner
                .launch_binary(id.clone(), binary, args, perf, env, pin_to_core)
                .await?,
        );
        let slot = Arc::new(Slot {
            member: env.get(ENV_SELF).cloned().unwrap_or_else(|| id.clone()),
            id,
            host: self.inner.clone(),
            binary: self.supervisor.keep(binary),
            args: args.to_vec(),
            env: env.clone(),
            lines: Mutex::default(),
            current: Mutex::new(launched.clone()),
            stopping: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
        });
        // hydro_deploy's lines to the member pass through here: the first two (its
        // configuration and `start`) are kept for a restart, and each goes to whichever
        // process runs for the member now (`stop` too).
        let (stdin, mut lines) = unbounded_channel::<String>();
        let keeper = slot.clone();
        tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                if line.starts_with("stop") {
                    keeper.stopping.store(true, Ordering::Relaxed);
                }
                keeper
                    .lines
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(line.clone());
                let _ = keeper.current().stdin().send(line);
            }
        });
        tokio::spawn(slot.clone().watch(self.supervisor.clone()));
        Ok(Box::new(Supervised {
            first: launched,
            slot,
            stdin,
        }))
    }
}

/// One supervised member: how to launch it again, and which process runs for it now.
struct Slot {
    member: String,
    id: String,
    host: Arc<dyn LaunchedHost>,
    binary: Arc<BuildOutput>,
    args: Vec<String>,
    env: HashMap<String, String>,
    /// What hydro_deploy wrote to the first process's standard input: its configuration, then
    /// `start`.
    lines: Mutex<Vec<String>>,
    /// The process running for the member now.
    current: Mutex<Arc<dyn LaunchedBinary>>,
    /// Set once the deployment stops: nothing is restarted after.
    stopping: AtomicBool,
    restarts: AtomicU32,
}

impl Slot {
    fn current(&self) -> Arc<dyn LaunchedBinary> {
        self.current
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn started(&self) -> bool {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).len() >= 2
    }

    /// Launches the member again as incarnation `incarnation` and replays hydro_deploy's
    /// handshake with it.
    async fn relaunch(&self, incarnation: u32) -> Result<Arc<dyn LaunchedBinary>, String> {
        let mut env = self.env.clone();
        env.insert(ENV_INCARNATION.to_string(), incarnation.to_string());
        let launched: Arc<dyn LaunchedBinary> = Arc::from(
            self.host
                .launch_binary(self.id.clone(), &self.binary, &self.args, None, &env, None)
                .await
                .map_err(|e| format!("launching: {e}"))?,
        );
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // The configuration is answered `ready: …`, `start: …` with `ack start`.
        for (line, answer) in lines.iter().zip(["ready", "ack start"]) {
            let reply = launched.deploy_stdout();
            launched
                .stdin()
                .send(line.clone())
                .map_err(|_| "its standard input closed".to_string())?;
            expect(reply, answer).await?;
        }
        Ok(launched)
    }
}

impl Slot {
    /// Watches the member and restarts it whenever its process exits, until the deployment
    /// stops. (A method, as everything here that reads private fields: Hydro's staged copy of
    /// this crate keeps no impl of a private type and no access to a public one's fields.)
    async fn watch(self: Arc<Self>, supervisor: Arc<Supervisor>) {
        let slot = self;
        loop {
            tokio::time::sleep(WATCH_EVERY).await;
            if slot.stopping.load(Ordering::Relaxed) {
                return;
            }
            // Only a started member is restarted: one that dies while hydro_deploy launches it
            // fails the launch, which hydro_deploy reports.
            let Some(code) = slot.current().exit_code() else {
                continue;
            };
            if !slot.started() {
                continue;
            }
            eprintln!(
                "kvs-zoo: {} exited ({}); restarting it in {:?}",
                slot.member,
                describe_exit(code),
                supervisor.restart_after
            );
            loop {
                tokio::time::sleep(supervisor.restart_after).await;
                if slot.stopping.load(Ordering::Relaxed) {
                    return;
                }
                let restart = slot.restarts.load(Ordering::Relaxed) + 1;
                match slot.relaunch(restart).await {
                    Ok(launched) => {
                        slot.restarts.store(restart, Ordering::Relaxed);
                        *slot.current.lock().unwrap_or_else(|e| e.into_inner()) = launched;
                        if slot.stopping.load(Ordering::Relaxed) {
                            // The deployment stopped while this one launched: stop it too.
                            let _ = slot.current().stop().await;
                            return;
                        }
                        let _ = supervisor.events.send(Restarted {
                            member: slot.member.clone(),
                            restart,
                        });
                        break;
                    }
                    Err(e) => eprintln!(
                        "kvs-zoo: restarting {} failed ({e}); trying again in {:?}",
                        slot.member, supervisor.restart_after
                    ),
                }
            }
        }
    }
}

/// Waits for a relaunched process's answer `answer` to a handshake line.
async fn expect(reply: oneshot::Receiver<String>, answer: &str) -> Result<(), String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, reply).await {
        Ok(Ok(line)) if line.starts_with(answer) => Ok(()),
        Ok(Ok(line)) => Err(format!("expected '{answer}', got '{line}'")),
        Ok(Err(_)) => Err(format!("it exited before '{answer}'")),
        Err(_) => Err(format!(
            "no '{answer}' within {}s",
            HANDSHAKE_TIMEOUT.as_secs()
        )),
    }
}

/// An exit code as the supervisor reports it (hydro_deploy gives a signal's number as the
/// code when a signal ended the process).
fn describe_exit(code: i32) -> String {
    match code {
        0 => "exit code 0".into(),
        9 => "killed by signal 9".into(),
        15 => "terminated by signal 15".into(),
        n => format!("exit code or signal {n}"),
    }
}

/// What hydro_deploy holds for a supervised member: its first process's output, and control
/// of whichever process runs for the member now.
struct Supervised {
    first: Arc<dyn LaunchedBinary>,
    slot: Arc<Slot>,
    stdin: UnboundedSender<String>,
}

#[async_trait]
impl LaunchedBinary for Supervised {
    fn stdin(&self) -> UnboundedSender<String> {
        self.stdin.clone()
    }

    fn deploy_stdout(&self) -> oneshot::Receiver<String> {
        self.first.deploy_stdout()
    }

    fn stdout(&self) -> UnboundedReceiver<String> {
        self.first.stdout()
    }

    fn stderr(&self) -> UnboundedReceiver<String> {
        self.first.stderr()
    }

    fn stdout_filter(&self, prefix: String) -> UnboundedReceiver<String> {
        self.first.stdout_filter(prefix)
    }

    fn stderr_filter(&self, prefix: String) -> UnboundedReceiver<String> {
        self.first.stderr_filter(prefix)
    }

    fn exit_code(&self) -> Option<i32> {
        self.slot.current().exit_code()
    }

    async fn wait(&self) -> Result<i32> {
        self.slot.stopping.store(true, Ordering::Relaxed);
        self.slot.current().wait().await
    }

    async fn stop(&self) -> Result<()> {
        self.slot.stopping.store(true, Ordering::Relaxed);
        let current = self.slot.current();
        current.stop().await?;
        if !Arc::ptr_eq(&current, &self.first) {
            self.first.stop().await?;
        }
        Ok(())
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        // Dropping a launched process terminates it; make sure the current one is dropped
        // too (the watcher, which also holds the slot, returns at its next look).
        self.slot.stopping.store(true, Ordering::Relaxed);
        *self.slot.current.lock().unwrap_or_else(|e| e.into_inner()) = self.first.clone();
    }
}
