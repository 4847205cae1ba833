//! The front's counters, and the `INFO` reply operators read them in.
//!
//! Counters are atomics shared by the connections and the accepting task; a connection adds
//! its commands once per batch it reads, not once per command, so counting costs nothing
//! measurable on the hot path. `instantaneous_ops_per_sec` is computed as Redis does: the
//! command counter is sampled every 100 ms, and the rate is taken over the last 16 samples.

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::edge::config::FrontConfig;

/// How often the command counter is sampled for the ops/sec figure.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// Samples the ops/sec figure is computed over (Redis keeps 16).
const SAMPLES: usize = 16;

/// Counters of one front.
pub struct Stats {
    started: Instant,
    connected_clients: AtomicU64,
    total_connections_received: AtomicU64,
    total_commands_processed: AtomicU64,
    rejected_connections: AtomicU64,
    /// (when, total commands then), oldest first.
    samples: Mutex<VecDeque<(Instant, u64)>>,
}

/// Which `INFO` sections exist, in Redis's order.
const SECTIONS: &[&str] = &[
    "server",
    "clients",
    "persistence",
    "stats",
    "members",
    "ring",
    "paxos",
];

impl Stats {
    /// Fresh counters, started now.
    pub fn new() -> Self {
        Self {
            started: Instant::now(),
            connected_clients: AtomicU64::new(0),
            total_connections_received: AtomicU64::new(0),
            total_commands_processed: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            samples: Mutex::new(VecDeque::new()),
        }
    }

    /// Counts a new connection, if fewer than `max_clients` are connected; returns whether it
    /// was admitted. A refused connection is counted in `rejected_connections`.
    pub fn admit(&self, max_clients: usize) -> bool {
        self.total_connections_received
            .fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .connected_clients
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max_clients as u64).then_some(n + 1)
            })
            .is_ok();
        if !admitted {
            self.rejected_connections.fetch_add(1, Ordering::Relaxed);
        }
        admitted
    }

    /// Counts an admitted connection's end.
    pub fn disconnected(&self) {
        self.connected_clients.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts `n` commands processed.
    pub fn commands(&self, n: u64) {
        if n > 0 {
            self.total_commands_processed
                .fetch_add(n, Ordering::Relaxed);
        }
    }

    /// Records one sample of the command counter (call every [`SAMPLE_EVERY`]).
    pub fn sample(&self, now: Instant) {
        let total = self.total_commands_processed.load(Ordering::Relaxed);
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push_back((now, total));
        if samples.len() > SAMPLES + 1 {
            samples.pop_front();
        }
    }

    /// Commands per second over the sampled window.
    fn ops_per_sec(&self) -> u64 {
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        rate(samples.front().copied(), samples.back().copied())
    }

    /// The `INFO` reply for `sections` (lower case; empty, `default`, `all` or `everything`
    /// for all of them). Unknown sections are left out, as Redis does.
    pub fn info(&self, config: &FrontConfig, sections: &[String]) -> String {
        let all = sections.is_empty()
            || sections
                .iter()
                .any(|s| matches!(s.as_str(), "default" | "all" | "everything"));
        let mut out = String::new();
        // Architectures without members beyond the proxy have no members or ring section.
        let mut members = crate::membership::view::section();
        let clustered = members.is_some();
        for section in SECTIONS {
            if !all && !sections.iter().any(|s| s == section) {
                continue;
            }
            if matches!(*section, "members" | "ring") && !clustered {
                continue;
            }
            // A store ordered by consensus has a leader and no ring; the others the other way
            // round.
            let ordered = config.capabilities.consensus;
            if (*section == "paxos" && !ordered) || (*section == "ring" && ordered) {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
            // Writing to a String cannot fail.
            let _ = match *section {
                "server" => {
                    let uptime = self.started.elapsed().as_secs();
                    write!(
                        out,
                        "# Server\r\nredis_version:{}\r\nkvs_zoo_version:{}\r\n\
                         kvs_zoo_architecture:{}\r\nredis_mode:standalone\r\nos:{} {}\r\n\
                         arch_bits:{}\r\nprocess_id:{}\r\ntcp_port:{}\r\n\
                         uptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
                        crate::edge::commands::REDIS_VERSION,
                        env!("CARGO_PKG_VERSION"),
                        config.architecture,
                        std::env::consts::OS,
                        std::env::consts::ARCH,
                        usize::BITS,
                        std::process::id(),
                        config.port(),
                        uptime / 86_400,
                    )
                }
                "persistence" => out.write_str(&persistence()),
                "members" => out.write_str(&members.take().unwrap_or_default()),
                "ring" => out.write_str(&config.commands.shards.info_section()),
                "paxos" => out.write_str(&crate::membership::view::paxos_section()),
                "clients" => write!(
                    out,
                    "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
                    load(&self.connected_clients),
                    config.max_clients,
                ),
                _ => write!(
                    out,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\n\
                     instantaneous_ops_per_sec:{}\r\nrejected_connections:{}\r\n",
                    load(&self.total_connections_received),
                    load(&self.total_commands_processed),
                    self.ops_per_sec(),
                    load(&self.rejected_connections),
                ),
            };
        }
        out
    }
}

/// The `# Persistence` section, in Redis's words where they fit: whether the deployment keeps
/// its data on disk (this process's environment says, see `crate::durability`), the policy,
/// and the files of every process that keeps some — this one's own (Local's store runs
/// here) and the members' (from their heartbeats).
fn persistence() -> String {
    let settings = crate::durability::Settings::from_vars(|name| std::env::var(name).ok())
        .ok()
        .flatten();
    let Some((dir, settings)) = settings else {
        return "# Persistence\r\naof_enabled:0\r\n".to_string();
    };
    // This process's own directory is `DIR/proxy-0`: the deployment's is its parent.
    let data_dir = dir.parent().unwrap_or(&dir).display().to_string();
    let own = crate::durability::stats();
    let error = own.as_ref().and_then(|s| s.last_error.clone());
    let disk = [
        crate::durability::disk_use(),
        crate::membership::view::disk_totals(),
    ]
    .into_iter()
    .flatten()
    .fold(crate::durability::DiskUse::default(), |a, b| {
        crate::durability::DiskUse {
            log_bytes: a.log_bytes + b.log_bytes,
            snapshot_bytes: a.snapshot_bytes + b.snapshot_bytes,
            last_snapshot: a.last_snapshot.max(b.last_snapshot),
        }
    });
    let mut out = format!(
        "# Persistence\r\naof_enabled:1\r\nkvs_zoo_data_dir:{data_dir}\r\n\
         aof_fsync:{}\r\naof_last_write_status:{}\r\naof_current_size:{}\r\n\
         rdb_last_save_time:{}\r\nkvs_zoo_snapshot_bytes:{}\r\n\
         kvs_zoo_snapshot_after:{}\r\n",
        settings.fsync.name(),
        if error.is_some() { "err" } else { "ok" },
        disk.log_bytes,
        disk.last_snapshot,
        disk.snapshot_bytes,
        settings.snapshot_after,
    );
    if let Some(e) = error {
        let _ = write!(out, "kvs_zoo_last_write_error:{e}\r\n");
    }
    out
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Commands per second between two samples of the command counter.
fn rate(first: Option<(Instant, u64)>, last: Option<(Instant, u64)>) -> u64 {
    match (first, last) {
        (Some((t0, n0)), Some((t1, n1))) if t1 > t0 => {
            ((n1 - n0) as f64 / (t1 - t0).as_secs_f64()).round() as u64
        }
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `key:value` lines of an INFO reply.
    fn field(info: &str, key: &str) -> Option<String> {
        info.split("\r\n")
            .find_map(|l| l.strip_prefix(&format!("{key}:")).map(String::from))
    }

    #[test]
    fn connections_past_the_limit_are_refused_and_counted() {
        let stats = Stats::new();
        assert!(stats.admit(2));
        assert!(stats.admit(2));
        assert!(!stats.admit(2));
        stats.disconnected();
        assert!(stats.admit(2));
        let info = stats.info(&FrontConfig::localhost("local", 1), &[]);
        assert_eq!(field(&info, "connected_clients").as_deref(), Some("2"));
        assert_eq!(
            field(&info, "total_connections_received").as_deref(),
            Some("4")
        );
        assert_eq!(field(&info, "rejected_connections").as_deref(), Some("1"));
        assert_eq!(field(&info, "maxclients").as_deref(), Some("10000"));
    }

    #[test]
    fn ops_per_second_come_from_the_sampled_window() {
        let stats = Stats::new();
        let t0 = Instant::now();
        for i in 0..40u32 {
            stats.commands(50);
            stats.sample(t0 + SAMPLE_EVERY * i);
        }
        // 50 commands every 100 ms.
        assert_eq!(stats.ops_per_sec(), 500);
        assert_eq!(rate(None, None), 0);
    }

    #[test]
    fn sections_are_chosen_by_name() {
        let stats = Stats::new();
        let config = FrontConfig::localhost("local", 6390);
        let all = stats.info(&config, &[]);
        for header in ["# Server", "# Clients", "# Persistence", "# Stats"] {
            assert!(all.contains(header), "{all}");
        }
        assert_eq!(field(&all, "tcp_port").as_deref(), Some("6390"));
        assert_eq!(
            field(&all, "kvs_zoo_architecture").as_deref(),
            Some("local")
        );
        assert_eq!(
            field(&all, "process_id"),
            Some(std::process::id().to_string())
        );
        let clients = stats.info(&config, &["clients".into()]);
        assert!(clients.starts_with("# Clients\r\n") && !clients.contains("# Server"));
        assert_eq!(stats.info(&config, &["nope".into()]), "");
        // This test process has no data directory.
        assert_eq!(
            stats.info(&config, &["persistence".into()]),
            "# Persistence\r\naof_enabled:0\r\n"
        );
    }
}
