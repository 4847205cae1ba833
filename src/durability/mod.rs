//! Durability: a member's write-ahead log and snapshots on disk, so that a crash — of one
//! process, or of all of them — loses no acknowledged write.
//!
//! - [`frame`]: how a record is framed on disk (length, checksums), and how a file is read
//!   back: whole records, a torn tail cut off, damage in the middle refused.
//! - [`journal`]: one member's files — the log of the current generation and the snapshot it
//!   starts from — group commit, `--fsync` policies, compaction into a new snapshot.
//! - [`manifest`]: what a data directory was written by (architecture and shape), so that a
//!   store never starts from another store's files.
//!
//! **Who logs what.** This folder knows bytes, not stores: the owner of a state (a storage
//! core, see `crate::store::durable`) encodes its changes as records and its state as a
//! snapshot, and decodes them at start. A process has at most one journal, opened from its
//! environment ([`Settings::from_env`], [`ENV_DATA_DIR`]) by the first owner that asks
//! ([`open`]); the functions below act on it and do nothing when the process has none — a
//! store without `--data-dir`, as in every simulation.
//!
//! **Answers wait for their records.** The dataflow appends a change's record while it
//! applies the change ([`append`]) and calls [`settle`] once per batch of answers, before
//! they leave the process: one write, and under `always` one fsync, for the whole batch.
//! Reads wait too — a value read must not vanish in a crash after a client saw it.
//!
//! This module imports nothing from the crate.

pub mod frame;
pub mod journal;
pub mod manifest;

use std::path::PathBuf;
use std::sync::Mutex;

pub use journal::{Journal, JournalStats, Mark, Recovery, Replayed};

/// The environment variable naming this process's own directory (set by `kvs-zoo serve
/// --data-dir DIR` to `DIR/<role>-<member>`); unset, the process keeps nothing on disk.
pub const ENV_DATA_DIR: &str = "KVS_ZOO_DATA_DIR";

/// The environment variable set (to `1`) when the deployment starts again from a data
/// directory an earlier run of it wrote: a member whose own directory is then empty lost its
/// files (see [`restarted_from_disk`]).
pub const ENV_RESTARTED: &str = "KVS_ZOO_RESTARTED";

/// Whether this process's deployment started again from a data directory an earlier run
/// wrote ([`ENV_RESTARTED`]).
pub fn restarted_from_disk() -> bool {
    std::env::var_os(ENV_RESTARTED).is_some()
}

/// The environment variable naming which part of a process keeps its journal
/// ([`Owner::name`]); unset, its storage core ([`Owner::Store`]).
pub const ENV_OWNER: &str = "KVS_ZOO_JOURNAL_OWNER";

/// Which part of a process keeps its journal: a process has one, so exactly one part opens it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The storage core logs its changes (Local, a shard).
    Store,
    /// The ordering stage logs its protocol state (an acceptor's promises, a replica's
    /// decided slots), and the storage core downstream of it keeps nothing of its own: it is
    /// rebuilt from the slots the log replays.
    Log,
}

impl Owner {
    /// The owner's name, as [`ENV_OWNER`] holds it.
    pub fn name(self) -> &'static str {
        match self {
            Owner::Store => "store",
            Owner::Log => "log",
        }
    }

    /// This process's owner, from [`ENV_OWNER`].
    pub fn of_process() -> Self {
        match std::env::var(ENV_OWNER) {
            Ok(name) if name == Owner::Log.name() => Owner::Log,
            _ => Owner::Store,
        }
    }
}

/// The environment variable holding the fsync policy (`always`, `everysec`, `no`).
pub const ENV_FSYNC: &str = "KVS_ZOO_FSYNC";

/// The environment variable holding [`Settings::snapshot_after`] in bytes.
pub const ENV_SNAPSHOT_AFTER: &str = "KVS_ZOO_SNAPSHOT_AFTER";

/// When the log is synced to disk, as Redis's `appendfsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Before every answer leaves (group commit: one fsync per batch). A crash of the
    /// machine loses no acknowledged write.
    Always,
    /// Once a second, by a thread of its own. A crash of the machine loses at most about the
    /// last second; a crash of the process, nothing.
    EverySec,
    /// Never: the kernel writes the log back when it likes. A crash of the process loses
    /// nothing; of the machine, whatever the kernel had not written.
    No,
}

impl Fsync {
    /// The policy's name, as `--fsync` takes it and `INFO persistence` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::EverySec => "everysec",
            Self::No => "no",
        }
    }

    /// The policy named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Always, Self::EverySec, Self::No]
            .into_iter()
            .find(|f| f.name() == name)
    }
}

/// The default [`Settings::snapshot_after`]: 64 MiB of log, as Redis's
/// `auto-aof-rewrite-min-size`.
pub const DEFAULT_SNAPSHOT_AFTER: u64 = 64 << 20;

/// How a journal writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Settings {
    /// When the log is synced.
    pub fsync: Fsync,
    /// Bytes of log after which its owner compacts it into a snapshot.
    pub snapshot_after: u64,
}

impl Settings {
    /// The environment variables that carry these settings to a process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_FSYNC, self.fsync.name().to_string()),
            (ENV_SNAPSHOT_AFTER, self.snapshot_after.to_string()),
        ]
    }

    /// Reads what [`Settings::to_env`] wrote, through `var`; the directory is
    /// [`ENV_DATA_DIR`]'s (`None`: no journal).
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<(PathBuf, Self)>, String> {
        let Some(dir) = var(ENV_DATA_DIR) else {
            return Ok(None);
        };
        let fsync = var(ENV_FSYNC).unwrap_or_else(|| "always".into());
        let fsync = Fsync::parse(&fsync).ok_or_else(|| format!("bad {ENV_FSYNC} '{fsync}'"))?;
        let snapshot_after = match var(ENV_SNAPSHOT_AFTER) {
            None => DEFAULT_SNAPSHOT_AFTER,
            Some(n) => n
                .parse()
                .map_err(|_| format!("bad {ENV_SNAPSHOT_AFTER} '{n}'"))?,
        };
        Ok(Some((
            PathBuf::from(dir),
            Self {
                fsync,
                snapshot_after,
            },
        )))
    }
}

/// This process's journal, once [`open`]ed.
static JOURNAL: Mutex<Option<Journal>> = Mutex::new(None);

fn with_journal<T>(f: impl FnOnce(&mut Journal) -> T) -> Option<T> {
    JOURNAL
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .as_mut()
        .map(f)
}

/// Opens this process's journal from its environment for `owner`, replaying it into
/// `replay`; returns what was recovered, or `None` when the process keeps nothing on disk or
/// its journal belongs to another owner ([`Owner::of_process`]).
///
/// A process that cannot start from its files must not serve as if it had none: on error
/// this prints why, naming the file, and ends the process (the supervisor's restarts will
/// fail the same way, visibly, until a person looks).
pub fn open(
    owner: Owner,
    replay: impl FnMut(Replayed<'_>) -> Result<(), String>,
) -> Option<Recovery> {
    if owner != Owner::of_process() {
        return None;
    }
    let opened = Settings::from_vars(|name| std::env::var(name).ok()).and_then(|settings| {
        let Some((dir, settings)) = settings else {
            return Ok(None);
        };
        let (journal, recovery) = Journal::open(&dir, settings, replay)
            .map_err(|e| format!("cannot start from {}: {e}", dir.display()))?;
        Ok(Some((journal, recovery, dir)))
    });
    match opened {
        Ok(None) => None,
        Ok(Some((journal, recovery, dir))) => {
            eprintln!("kvs-zoo: {}: started from {recovery}", dir.display());
            *JOURNAL.lock().unwrap_or_else(|p| p.into_inner()) = Some(journal);
            Some(recovery)
        }
        Err(e) => fail(&e),
    }
}

/// Ends the process after a failure of its files. Acknowledging a write that is not on disk
/// would break the one promise a data directory makes; Redis also stops when its
/// append-only file cannot be written under `appendfsync always`.
pub fn fail(why: &str) -> ! {
    eprintln!("kvs-zoo: {why}");
    std::process::exit(71)
}

/// Whether this process keeps a journal.
pub fn enabled() -> bool {
    with_journal(|_| ()).is_some()
}

/// Appends `record` to this process's log (written by the next [`settle`]).
pub fn append(record: &[u8]) {
    with_journal(|j| j.append(record));
}

/// Writes (and under `always`, syncs) every appended record; then hands `answers` back, to
/// leave the process. Ends the process if the log cannot be written.
pub fn settle<T>(answers: Vec<T>) -> Vec<T> {
    if let Some(Err(e)) = with_journal(Journal::settle) {
        fail(&format!("the log cannot be written, stopping: {e}"));
    }
    answers
}

/// Whether the log has grown past its bound: the owner should call [`snapshot`].
pub fn snapshot_due() -> bool {
    with_journal(|j| j.snapshot_due()).unwrap_or(false)
}

/// Compacts the log into `image`, the owner's whole state (see [`Journal::snapshot`]). Ends
/// the process if it cannot be written.
pub fn snapshot(image: &[u8]) {
    if let Some(Err(e)) = with_journal(|j| j.snapshot(image)) {
        fail(&format!("a snapshot cannot be written, stopping: {e}"));
    }
}

/// Where this process's log stands now (see [`Journal::mark`]), if it keeps one.
pub fn mark() -> Option<Mark> {
    with_journal(|j| j.mark())
}

/// Compacts the log into `image`, the owner's state at `mark`, keeping the records appended
/// after it (see [`Journal::snapshot_at`]). Ends the process if it cannot be written.
pub fn snapshot_at(image: &[u8], mark: Mark) {
    if let Some(Err(e)) = with_journal(|j| j.snapshot_at(image, mark)) {
        fail(&format!("a snapshot cannot be written, stopping: {e}"));
    }
}

/// What `INFO persistence` shows of this process's journal, if it keeps one.
pub fn stats() -> Option<JournalStats> {
    with_journal(|j| j.stats())
}

/// A process's files, in numbers: what its heartbeats carry to the proxy's `INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DiskUse {
    /// Bytes in the current log.
    pub log_bytes: u64,
    /// Bytes of the last snapshot (0: none yet).
    pub snapshot_bytes: u64,
    /// When the last snapshot was written, in seconds since the epoch (0: none yet).
    pub last_snapshot: u64,
}

/// This process's [`DiskUse`], if it keeps a journal.
pub fn disk_use() -> Option<DiskUse> {
    stats().map(|s| DiskUse {
        log_bytes: s.log_bytes,
        snapshot_bytes: s.snapshot.map_or(0, |i| i.bytes),
        last_snapshot: s.snapshot.map_or(0, |i| {
            i.written
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_round_trip_through_the_environment() {
        let settings = Settings {
            fsync: Fsync::EverySec,
            snapshot_after: 1234,
        };
        let mut env: Vec<(&str, String)> = settings.to_env();
        env.push((ENV_DATA_DIR, "/data/shard-1".into()));
        let var = |name: &str| env.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        assert_eq!(
            Settings::from_vars(var),
            Ok(Some((PathBuf::from("/data/shard-1"), settings)))
        );
        assert_eq!(Settings::from_vars(|_| None), Ok(None));
        let bad = |name: &str| match name {
            ENV_DATA_DIR => Some("/d".to_string()),
            ENV_FSYNC => Some("sometimes".to_string()),
            _ => None,
        };
        assert_eq!(
            Settings::from_vars(bad),
            Err("bad KVS_ZOO_FSYNC 'sometimes'".into())
        );
        for f in [Fsync::Always, Fsync::EverySec, Fsync::No] {
            assert_eq!(Fsync::parse(f.name()), Some(f));
        }
    }
}
