//! Where an architecture's processes run ([`Hosts`]), how their code is built, and the
//! addresses and ports they listen on.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hydro_deploy::{Deployment, Host};
use hydro_lang::deploy::TrybuildHost;

/// The machines an architecture's locations run on, and how their code is built.
#[derive(Clone)]
pub struct Hosts {
    /// Runs the proxy (and with it the RESP front).
    pub proxy: Arc<dyn Host>,
    /// Runs the members of every cluster.
    pub members: Arc<dyn Host>,
    /// Build the locations optimized (release profile). Debug builds are much quicker to
    /// compile and several times slower to run.
    pub optimized: bool,
    /// How long after a member's process dies it is started again (see
    /// [`crate::deploy::supervisor`]); `None` leaves it dead.
    pub restart_after: Option<Duration>,
    /// Where the processes keep their data on disk; `None`: in memory only.
    pub data: Option<DataDir>,
}

/// A deployment's data directory: each process keeps its files in `dir/<role>-<member>/`,
/// written as `settings` say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataDir {
    /// The directory (created if missing).
    pub dir: PathBuf,
    /// How the processes write their logs.
    pub settings: crate::durability::Settings,
}

impl DataDir {
    /// The directory of the process `<role>/<member>`.
    pub fn member_dir(&self, role: &str, member: u32) -> PathBuf {
        self.dir.join(format!("{role}-{member}"))
    }
}

/// How long after a member dies `kvs-zoo serve` starts it again, unless told otherwise: long
/// enough that its peers' failure detectors notice it was gone, short enough that the store
/// runs a member short only briefly.
pub const DEFAULT_RESTART_AFTER: Duration = Duration::from_secs(2);

impl Hosts {
    /// Everything on this machine, optimized when the driver itself is a release build; a
    /// member that dies is restarted after [`DEFAULT_RESTART_AFTER`].
    pub fn localhost(deployment: &mut Deployment) -> Self {
        Self {
            proxy: deployment.Localhost(),
            members: deployment.Localhost(),
            optimized: !cfg!(debug_assertions),
            restart_after: Some(DEFAULT_RESTART_AFTER),
            data: None,
        }
    }

    /// How a process on `host` is built: optimized with its own profile, or as a debug build.
    pub fn spec(&self, host: &Arc<dyn Host>) -> TrybuildHost {
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

/// An address on this machine for a process to receive its peers' messages on.
pub(crate) fn peer_address() -> Result<String, String> {
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
