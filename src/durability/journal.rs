//! One member's files: a write-ahead log and the snapshot it starts from ([`Journal`]).
//!
//! ```text
//!   DIR/<role>-<member>/
//!     snapshot-<g>.snap   the state when generation g began (absent for generation 0)
//!     log-<g>.wal         every change since, framed (see super::frame)
//! ```
//!
//! **Start** = the newest snapshot, then the log of its generation, in order.
//!
//! **Writes.** A change is framed into memory ([`Journal::append`]). [`Journal::settle`],
//! called once per batch of answers *before* they leave the process, writes the batch's
//! records with one `write` and, under `--fsync always`, one `fsync`: every writer of the
//! batch shares it (group commit). Under `everysec` a thread syncs the log once a second;
//! under `no` the kernel writes it back when it likes. Under every policy the records are in
//! the kernel before the answers leave, so a killed *process* loses nothing it acknowledged;
//! only a crash of the machine loses what was not yet synced.
//!
//! **Compaction.** Once the log holds [`Settings::snapshot_after`](super::Settings) bytes, the
//! owner writes its whole state as the next generation's snapshot ([`Journal::snapshot`]): to
//! a temporary file, synced, renamed into place, the directory synced; then an empty log for
//! the new generation; then the old files go. A crash at any point leaves either the old
//! snapshot with its whole log, or the new snapshot (with an empty or missing log): the files
//! of an older generation found at start are left-overs, removed.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::frame::{self, Torn};
use super::{Fsync, Settings};

/// The first bytes of a snapshot file: what it is, and the format's version.
const SNAPSHOT_MAGIC: &[u8] = b"kvs-zoo snapshot 1\n";

/// What a journal hands its owner at start, in order: the snapshot, then each record.
#[derive(Debug, PartialEq, Eq)]
pub enum Replayed<'b> {
    /// The state the log starts from.
    Snapshot(&'b [u8]),
    /// One record of the log.
    Record(&'b [u8]),
}

/// What a start found and did, for the member to tell.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The generation started from.
    pub generation: u64,
    /// Bytes of the snapshot started from (0: none).
    pub snapshot_bytes: u64,
    /// Records replayed from the log.
    pub records: u64,
    /// A torn tail cut off the log: the file, and what was cut.
    pub torn: Option<(PathBuf, Torn)>,
}

impl std::fmt::Display for Recovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "generation {}: a snapshot of {} bytes and {} records of log",
            self.generation, self.snapshot_bytes, self.records
        )?;
        if let Some((path, torn)) = &self.torn {
            write!(f, "; cut a torn tail of {torn} off {}", path.display())?;
        }
        Ok(())
    }
}

/// A point of a journal's log: its generation, and the bytes of log before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mark {
    /// The generation of the log.
    pub generation: u64,
    /// Bytes of that log before the point, written or pending.
    pub offset: u64,
}

/// The last snapshot written or started from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// When it was written (its file's modification time).
    pub written: SystemTime,
    /// Its size in bytes.
    pub bytes: u64,
}

/// What `INFO persistence` shows of a journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalStats {
    /// The fsync policy.
    pub fsync: Fsync,
    /// Bytes in the current log.
    pub log_bytes: u64,
    /// The current generation.
    pub generation: u64,
    /// The last snapshot, if any.
    pub snapshot: Option<SnapshotInfo>,
    /// The last write's or sync's failure, if it failed.
    pub last_error: Option<String>,
}

/// One member's log and snapshots (see the module docs).
pub struct Journal {
    dir: PathBuf,
    settings: Settings,
    generation: u64,
    /// The current log, shared with the `everysec` syncer.
    file: Arc<Mutex<Arc<File>>>,
    /// Framed records not yet written.
    pending: Vec<u8>,
    /// Bytes in the current log, written or pending.
    log_bytes: u64,
    snapshot: Option<SnapshotInfo>,
    /// Set when bytes were written since the last sync (for the `everysec` syncer).
    dirty: Arc<AtomicBool>,
    /// The syncer's last failure.
    sync_error: Arc<Mutex<Option<String>>>,
    last_error: Option<String>,
    /// Tells the syncer to stop (when the journal is dropped).
    stop: Arc<AtomicBool>,
}

fn snapshot_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("snapshot-{generation:020}.snap"))
}

fn log_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("log-{generation:020}.wal"))
}

/// Syncs `dir` itself, so a file created, renamed or removed in it stays so after a crash.
fn sync_dir(dir: &Path) -> Result<(), String> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("syncing directory {}: {e}", dir.display()))
}

/// The generation a file of `dir` belongs to, and whether it is a snapshot (`Some(true)`),
/// a log (`Some(false)`), or a left-over temporary file (`None`).
fn classify(name: &str) -> Option<(u64, Option<bool>)> {
    if let Some(g) = name
        .strip_prefix("snapshot-")
        .and_then(|n| n.strip_suffix(".snap"))
    {
        return g.parse().ok().map(|g| (g, Some(true)));
    }
    if let Some(g) = name
        .strip_prefix("log-")
        .and_then(|n| n.strip_suffix(".wal"))
    {
        return g.parse().ok().map(|g| (g, Some(false)));
    }
    if let Some(g) = name
        .strip_prefix("snapshot-")
        .and_then(|n| n.strip_suffix(".tmp"))
    {
        return g.parse().ok().map(|g| (g, None));
    }
    None
}

impl Journal {
    /// Opens (or creates) the journal in `dir`, handing `replay` the snapshot and each record
    /// of the log after it, in order. A torn tail is cut off; damage in the middle of a file,
    /// or a `replay` error, stops the start with an error naming the file.
    pub fn open(
        dir: &Path,
        settings: Settings,
        mut replay: impl FnMut(Replayed<'_>) -> Result<(), String>,
    ) -> Result<(Self, Recovery), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let mut found: Vec<(u64, Option<bool>, PathBuf)> = vec![];
        for entry in
            std::fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?
        {
            let entry = entry.map_err(|e| format!("reading {}: {e}", dir.display()))?;
            if let Some((g, kind)) = entry.file_name().to_str().and_then(classify) {
                found.push((g, kind, entry.path()));
            }
        }
        let generation = found
            .iter()
            .filter(|(_, kind, _)| *kind == Some(true))
            .map(|(g, _, _)| *g)
            .max()
            .unwrap_or(0);
        let mut recovery = Recovery {
            generation,
            ..Recovery::default()
        };
        let mut snapshot = None;
        let snap = snapshot_path(dir, generation);
        if snap.exists() {
            let data =
                std::fs::read(&snap).map_err(|e| format!("reading {}: {e}", snap.display()))?;
            let body = read_snapshot(&data).map_err(|e| format!("{}: {e}", snap.display()))?;
            replay(Replayed::Snapshot(body)).map_err(|e| format!("{}: {e}", snap.display()))?;
            recovery.snapshot_bytes = data.len() as u64;
            snapshot = Some(SnapshotInfo {
                written: std::fs::metadata(&snap)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH),
                bytes: data.len() as u64,
            });
        }
        let log = log_path(dir, generation);
        let mut log_bytes = 0;
        if log.exists() {
            let data =
                std::fs::read(&log).map_err(|e| format!("reading {}: {e}", log.display()))?;
            let scanned = frame::scan(&data).map_err(|e| format!("{}: {e}", log.display()))?;
            for (i, record) in scanned.records.iter().enumerate() {
                replay(Replayed::Record(record))
                    .map_err(|e| format!("{}: record {i}: {e}", log.display()))?;
            }
            recovery.records = scanned.records.len() as u64;
            log_bytes = scanned.valid_bytes as u64;
            if let Some(torn) = scanned.tail {
                // Cut it off now: records appended after it must follow the valid prefix.
                let file = OpenOptions::new().write(true).open(&log).and_then(|f| {
                    f.set_len(log_bytes)?;
                    f.sync_all()
                });
                file.map_err(|e| format!("cutting the torn tail off {}: {e}", log.display()))?;
                recovery.torn = Some((log.clone(), torn));
            }
        }
        // Files of older generations, and temporary snapshots, are what a crash during a
        // compaction left behind.
        for (g, kind, path) in &found {
            if *g < generation || kind.is_none() {
                std::fs::remove_file(path)
                    .map_err(|e| format!("removing {}: {e}", path.display()))?;
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        sync_dir(dir)?;
        let journal = Self::with_file(dir, settings, generation, file, log_bytes, snapshot);
        Ok((journal, recovery))
    }

    fn with_file(
        dir: &Path,
        settings: Settings,
        generation: u64,
        file: File,
        log_bytes: u64,
        snapshot: Option<SnapshotInfo>,
    ) -> Self {
        let journal = Self {
            dir: dir.to_path_buf(),
            settings,
            generation,
            file: Arc::new(Mutex::new(Arc::new(file))),
            pending: Vec::with_capacity(64 * 1024),
            log_bytes,
            snapshot,
            dirty: Arc::new(AtomicBool::new(false)),
            sync_error: Arc::new(Mutex::new(None)),
            last_error: None,
            stop: Arc::new(AtomicBool::new(false)),
        };
        if settings.fsync == Fsync::EverySec {
            journal.start_syncer();
        }
        journal
    }

    /// Starts the `everysec` thread: once a second, if anything was written, sync the log.
    fn start_syncer(&self) {
        let (file, dirty, error, stop) = (
            self.file.clone(),
            self.dirty.clone(),
            self.sync_error.clone(),
            self.stop.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name("kvs-zoo-fsync".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_secs(1));
                    if dirty.swap(false, Ordering::AcqRel) {
                        let current = file.lock().unwrap_or_else(|p| p.into_inner()).clone();
                        let result = current.sync_data().err().map(|e| format!("fsync: {e}"));
                        *error.lock().unwrap_or_else(|p| p.into_inner()) = result;
                    }
                }
            });
        if let Err(e) = spawned {
            *self.sync_error.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(format!("starting the fsync thread: {e}"));
        }
    }

    /// Frames `record` for the log; it is written by the next [`Journal::settle`].
    pub fn append(&mut self, record: &[u8]) {
        let before = self.pending.len();
        frame::encode(record, &mut self.pending);
        self.log_bytes += (self.pending.len() - before) as u64;
    }

    /// Writes every appended record, and syncs them under `--fsync always`: what must happen
    /// before the answers that depend on them leave the process.
    pub fn settle(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let file = self.current();
        let result = (&*file)
            .write_all(&self.pending)
            .map_err(|e| format!("writing the log: {e}"))
            .and_then(|()| match self.settings.fsync {
                Fsync::Always => file.sync_data().map_err(|e| format!("fsync: {e}")),
                Fsync::EverySec => {
                    self.dirty.store(true, Ordering::Release);
                    Ok(())
                }
                Fsync::No => Ok(()),
            });
        self.pending.clear();
        if let Err(e) = &result {
            self.last_error = Some(e.clone());
        }
        result
    }

    fn current(&self) -> Arc<File> {
        self.file.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the log has grown past the bound, so its owner should write a snapshot.
    pub fn snapshot_due(&self) -> bool {
        self.log_bytes >= self.settings.snapshot_after
    }

    /// Makes `image` — the owner's whole state, with every appended record applied — the
    /// next generation's snapshot, and starts an empty log (see the module docs).
    pub fn snapshot(&mut self, image: &[u8]) -> Result<(), String> {
        let now = self.mark();
        self.snapshot_at(image, now).map(|_| ())
    }

    /// Where the log stands now: a snapshot taken of the state at this point, later, keeps
    /// the records appended after it ([`Journal::snapshot_at`]).
    pub fn mark(&self) -> Mark {
        Mark {
            generation: self.generation,
            offset: self.log_bytes,
        }
    }

    /// Makes `image` — the owner's state at `mark`, with the records appended before it
    /// applied — the next generation's snapshot, and starts the new log with the records
    /// appended after `mark`, in order. An owner whose state is read elsewhere (a replica's
    /// store, downstream of its log) marks the log when it asks for its state and goes on
    /// logging meanwhile. Returns false, writing nothing, for a mark of an older generation
    /// (another snapshot came first).
    pub fn snapshot_at(&mut self, image: &[u8], mark: Mark) -> Result<bool, String> {
        self.settle()?;
        if mark.generation != self.generation || mark.offset > self.log_bytes {
            return Ok(false);
        }
        let log = log_path(&self.dir, self.generation);
        let tail = if mark.offset == self.log_bytes {
            Vec::new()
        } else {
            let data =
                std::fs::read(&log).map_err(|e| format!("reading {}: {e}", log.display()))?;
            let from = usize::try_from(mark.offset).map_err(|e| e.to_string())?;
            data.get(from..)
                .ok_or_else(|| format!("{} is shorter than its mark", log.display()))?
                .to_vec()
        };
        let next = self.generation + 1;
        let tmp = self.dir.join(format!("snapshot-{next:020}.tmp"));
        let snap = snapshot_path(&self.dir, next);
        let mut data = Vec::with_capacity(SNAPSHOT_MAGIC.len() + frame::HEADER_BYTES + image.len());
        data.extend_from_slice(SNAPSHOT_MAGIC);
        frame::encode(image, &mut data);
        let written = File::create(&tmp).and_then(|mut f| {
            f.write_all(&data)?;
            f.sync_all()
        });
        written.map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &snap).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        sync_dir(&self.dir)?;
        // From here a start begins at the new snapshot, and the records after the mark follow
        // it: written and synced before the old log, which also holds them, goes.
        let log = log_path(&self.dir, next);
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| format!("opening {}: {e}", log.display()))?;
        if !tail.is_empty() {
            file.write_all(&tail)
                .and_then(|()| file.sync_data())
                .map_err(|e| format!("writing {}: {e}", log.display()))?;
        }
        sync_dir(&self.dir)?;
        *self.file.lock().unwrap_or_else(|p| p.into_inner()) = Arc::new(file);
        for old in [
            log_path(&self.dir, self.generation),
            snapshot_path(&self.dir, self.generation),
        ] {
            if old.exists() {
                std::fs::remove_file(&old)
                    .map_err(|e| format!("removing {}: {e}", old.display()))?;
            }
        }
        self.generation = next;
        self.log_bytes = tail.len() as u64;
        self.snapshot = Some(SnapshotInfo {
            written: SystemTime::now(),
            bytes: data.len() as u64,
        });
        Ok(true)
    }

    /// What `INFO persistence` shows.
    pub fn stats(&self) -> JournalStats {
        let sync_error = self
            .sync_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        JournalStats {
            fsync: self.settings.fsync,
            log_bytes: self.log_bytes,
            generation: self.generation,
            snapshot: self.snapshot,
            last_error: self.last_error.clone().or(sync_error),
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A snapshot file's body, if the file is whole.
fn read_snapshot(data: &[u8]) -> Result<&[u8], String> {
    let rest = data
        .strip_prefix(SNAPSHOT_MAGIC)
        .ok_or("not a kvs-zoo snapshot (or of another format version)")?;
    let scanned = frame::scan(rest).map_err(|e| e.to_string())?;
    match (scanned.records.as_slice(), scanned.tail) {
        ([body], None) => Ok(body),
        _ => Err("the snapshot is damaged (its checksum fails or it is cut short)".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn settings(snapshot_after: u64) -> Settings {
        Settings {
            fsync: Fsync::Always,
            snapshot_after,
        }
    }

    // The state a journal keeps in these tests: a list of numbers; a record appends one.
    // (Free functions, not methods: Hydro's staged copy of this crate drops the impl blocks
    // of private types.)
    fn replay(state: &mut Vec<u64>, item: Replayed<'_>) -> Result<(), String> {
        match item {
            Replayed::Snapshot(image) => {
                *state = image
                    .chunks(8)
                    .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
            }
            Replayed::Record(r) => {
                state.push(u64::from_le_bytes(r.try_into().map_err(|_| "bad record")?));
            }
        }
        Ok(())
    }

    fn image(state: &[u64]) -> Vec<u8> {
        state.iter().flat_map(|n| n.to_le_bytes()).collect()
    }

    fn reopen(dir: &Path, after: u64) -> (Journal, Vec<u64>, Recovery) {
        let mut state = vec![];
        let (journal, recovery) =
            Journal::open(dir, settings(after), |i| replay(&mut state, i)).unwrap();
        (journal, state, recovery)
    }

    fn temp_dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Whatever was settled is there after a restart, across any number of snapshots:
        /// snapshot + log replay equals the state before the "crash" (dropping the journal
        /// without closing anything).
        #[test]
        fn snapshot_and_log_replay_to_the_state_before_the_crash(
            numbers in prop::collection::vec(any::<u64>(), 0..200),
            after in 16u64..400,
            settle_every in 1usize..10,
        ) {
            let dir = temp_dir();
            let mut state: Vec<u64> = vec![];
            let (mut journal, _, _) = reopen(dir.path(), after);
            for (i, n) in numbers.iter().enumerate() {
                state.push(*n);
                journal.append(&n.to_le_bytes());
                if i % settle_every == 0 {
                    journal.settle().unwrap();
                    if journal.snapshot_due() {
                        journal.snapshot(&image(&state)).unwrap();
                    }
                }
            }
            journal.settle().unwrap();
            drop(journal);
            let (_, restored, _) = reopen(dir.path(), after);
            prop_assert_eq!(restored, state);
            // One generation's files remain.
            let files = std::fs::read_dir(dir.path()).unwrap().count();
            prop_assert!(files <= 2, "{} files left", files);
        }
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_told_and_later_records_follow_the_valid_prefix() {
        let dir = temp_dir();
        let (mut journal, _, _) = reopen(dir.path(), u64::MAX);
        for n in 0..10u64 {
            journal.append(&n.to_le_bytes());
        }
        journal.settle().unwrap();
        drop(journal);
        // A crash in the middle of the eleventh record's write.
        let log = log_path(dir.path(), 0);
        let mut tail = vec![];
        frame::encode(&10u64.to_le_bytes(), &mut tail);
        let mut f = OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(&tail[..7]).unwrap();
        drop(f);
        let (mut journal, state, recovery) = reopen(dir.path(), u64::MAX);
        assert_eq!(state, (0..10).collect::<Vec<_>>());
        let (path, torn) = recovery.torn.expect("the torn tail is told");
        assert_eq!((path, torn.bytes), (log.clone(), 7));
        journal.append(&11u64.to_le_bytes());
        journal.settle().unwrap();
        drop(journal);
        let (_, state, recovery) = reopen(dir.path(), u64::MAX);
        assert_eq!(state, (0..10).chain([11]).collect::<Vec<_>>());
        assert_eq!(recovery.torn, None);
    }

    #[test]
    fn damage_in_the_middle_stops_the_start_naming_the_file_and_offset() {
        let dir = temp_dir();
        let (mut journal, _, _) = reopen(dir.path(), u64::MAX);
        for n in 0..10u64 {
            journal.append(&n.to_le_bytes());
        }
        journal.settle().unwrap();
        drop(journal);
        let log = log_path(dir.path(), 0);
        let mut data = std::fs::read(&log).unwrap();
        let record = frame::HEADER_BYTES + 8;
        data[3 * record + frame::HEADER_BYTES + 2] ^= 0x10;
        std::fs::write(&log, &data).unwrap();
        let mut state = vec![];
        let err = Journal::open(dir.path(), settings(u64::MAX), |i| replay(&mut state, i))
            .err()
            .expect("a damaged log must not start");
        assert!(
            err.contains(&log.display().to_string())
                && err.contains(&format!("byte {}", 3 * record)),
            "{err}"
        );
        // Nothing was cut or removed: the file is as it was, for a person to look at.
        assert_eq!(std::fs::read(&log).unwrap(), data);
    }

    /// A snapshot of the state at a mark keeps the records appended after the mark: they
    /// follow the snapshot at the next start, and a mark of an older generation is refused.
    #[test]
    fn a_snapshot_at_a_mark_keeps_the_records_after_it() {
        let dir = temp_dir();
        let (mut j, _, _) = reopen(dir.path(), 1 << 20);
        for n in [1u64, 2, 3] {
            j.append(&n.to_le_bytes());
        }
        let mark = j.mark();
        let at_mark = vec![1u64, 2, 3];
        for n in [4u64, 5] {
            j.append(&n.to_le_bytes());
        }
        j.settle().unwrap();
        j.append(&6u64.to_le_bytes());
        assert_eq!(j.snapshot_at(&image(&at_mark), mark), Ok(true));
        assert_eq!(
            j.snapshot_at(&image(&at_mark), mark),
            Ok(false),
            "an old mark"
        );
        j.append(&7u64.to_le_bytes());
        j.settle().unwrap();
        drop(j);
        let (j, state, recovery) = reopen(dir.path(), 1 << 20);
        assert_eq!(state, vec![1, 2, 3, 4, 5, 6, 7]);
        assert_eq!((recovery.generation, recovery.records), (1, 4));
        assert_eq!(j.stats().log_bytes, 4 * (frame::HEADER_BYTES as u64 + 8));
    }

    #[test]
    fn a_crash_during_compaction_leaves_the_old_or_the_new_state() {
        let dir = temp_dir();
        let (mut journal, _, _) = reopen(dir.path(), u64::MAX);
        for n in 0..5u64 {
            journal.append(&n.to_le_bytes());
        }
        journal.settle().unwrap();
        drop(journal);
        let old: Vec<u64> = (0..5).collect();
        // Crashed while writing the temporary snapshot: the old state, the left-over removed.
        std::fs::write(
            dir.path().join(format!("snapshot-{:020}.tmp", 1)),
            b"half a snap",
        )
        .unwrap();
        let (journal, state, _) = reopen(dir.path(), u64::MAX);
        assert_eq!(state, old);
        assert!(!dir.path().join(format!("snapshot-{:020}.tmp", 1)).exists());
        drop(journal);
        // Crashed after the rename, before the new log: the new snapshot, the old log unused.
        let mut data = SNAPSHOT_MAGIC.to_vec();
        frame::encode(&image(&[7, 8]), &mut data);
        std::fs::write(snapshot_path(dir.path(), 1), data).unwrap();
        let (_, state, recovery) = reopen(dir.path(), u64::MAX);
        assert_eq!((state, recovery.generation), (vec![7, 8], 1));
        assert!(
            !log_path(dir.path(), 0).exists(),
            "the old generation's log is removed"
        );
    }

    #[test]
    fn a_damaged_snapshot_stops_the_start() {
        let dir = temp_dir();
        let mut data = SNAPSHOT_MAGIC.to_vec();
        frame::encode(&image(&[1, 2, 3]), &mut data);
        let last = data.len() - 1;
        data[last] ^= 1;
        std::fs::write(snapshot_path(dir.path(), 3), data).unwrap();
        let mut state = vec![];
        let err = Journal::open(dir.path(), settings(u64::MAX), |i| replay(&mut state, i))
            .err()
            .unwrap();
        assert!(
            err.contains("snapshot-00000000000000000003.snap") && err.contains("damaged"),
            "{err}"
        );
    }
}
