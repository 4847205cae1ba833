//! `kvs-zoo serve … --data-dir DIR`, as its users see it: a store killed with `kill -9` —
//! one member, or every process at once — and started again from its directory has every
//! write it acknowledged, with the deadlines it had; a log compacted into snapshots starts
//! the same; a linearizable store's acceptor restarted from its files votes again; a
//! directory another architecture wrote is refused.
//!
//! Each test has its own deployment and its own directory (kills would disturb a shared one).

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kvs_zoo::architectures::sharded::Sharded;
use kvs_zoo::routing::ring::Shards;
use redis::Commands;
use support::Server;
use support::redis_client::{connect, member_line, signal, until_member};

/// `INFO persistence`'s field `name`.
fn persistence(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .trim()
        .to_string()
}

/// What one writer had acknowledged when the store was killed: `(key, value)` of each SET,
/// and how many of its INCRs were answered and sent.
struct Acked {
    sets: Vec<(String, u64)>,
    increments_answered: i64,
    increments_sent: i64,
}

/// Writes from `writers` clients until `stop` (or the store dies): each SETs keys of its own
/// and INCRs a counter of its own, recording what was acknowledged.
fn write_until(
    url: &str,
    writers: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Acked>> {
    (0..writers)
        .map(|w| {
            let url = url.to_string();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                let mut acked = Acked {
                    sets: vec![],
                    increments_answered: 0,
                    increments_sent: 0,
                };
                for i in 0u64.. {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let key = format!("w{w}:{i}");
                    if con.set::<_, _, ()>(&key, i).is_err() {
                        break;
                    }
                    acked.sets.push((key, i));
                    acked.increments_sent += 1;
                    if con.incr::<_, _, i64>(format!("count:{w}"), 1).is_err() {
                        break;
                    }
                    acked.increments_answered += 1;
                }
                acked
            })
        })
        .collect()
}

/// Every acknowledged SET is there with its value; each counter holds every answered INCR,
/// and at most the one that was in flight besides.
fn assert_all_acknowledged_present(con: &mut redis::Connection, acked: &[Acked]) {
    let mut checked = 0;
    for (w, writer) in acked.iter().enumerate() {
        for (key, value) in &writer.sets {
            let got: Option<u64> = con.get(key).unwrap();
            assert_eq!(got, Some(*value), "{key} was acknowledged and is lost");
            checked += 1;
        }
        let count: Option<i64> = con.get(format!("count:{w}")).unwrap();
        let count = count.unwrap_or(0);
        assert!(
            (writer.increments_answered..=writer.increments_sent).contains(&count),
            "count:{w} is {count}: {} increments were answered, {} sent",
            writer.increments_answered,
            writer.increments_sent
        );
    }
    println!("{checked} acknowledged writes present after the restart");
    assert!(checked > 100, "too few writes to mean anything: {checked}");
}

#[test]
fn local_killed_mid_workload_with_fsync_always_restarts_with_every_acknowledged_write() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = ["--data-dir", data.to_str().unwrap(), "--fsync", "always"];
    let server = Server::start("local", &args);
    let mut con = connect(&server.url);
    let () = con.set_ex("expiring", "soon", 1000).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = write_until(&server.url, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    // Every process dies at once, mid-write; the writers see their connections fail.
    server.kill_all();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let server = Server::start("local", &args);
    let mut con = connect(&server.url);
    assert_all_acknowledged_present(&mut con, &acked);
    let ttl: i64 = con.ttl("expiring").unwrap();
    assert!(
        (900..=1000).contains(&ttl),
        "the deadline was not kept: TTL {ttl}"
    );
    assert_eq!(persistence(&mut con, "aof_enabled"), "1");
    assert_eq!(persistence(&mut con, "aof_fsync"), "always");
    server.stop();
}

#[test]
fn a_log_compacted_into_snapshots_restarts_to_the_same_keys() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--snapshot-after",
        "16kb",
    ];
    let server = Server::start("local", &args);
    let mut con = connect(&server.url);
    for i in 0..2000 {
        let () = con.set(format!("k{i}"), i).unwrap();
    }
    for i in (0..2000).step_by(3) {
        let () = con.del(format!("k{i}")).unwrap();
    }
    let saved: u64 = persistence(&mut con, "rdb_last_save_time").parse().unwrap();
    assert!(saved > 0, "no snapshot was written");
    let files: Vec<String> = std::fs::read_dir(data.join("proxy-0"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        files.iter().any(|f| f.ends_with(".snap")) && files.len() == 2,
        "one generation's snapshot and log: {files:?}"
    );
    server.kill_all();
    let server = Server::start("local", &args);
    let mut con = connect(&server.url);
    for i in 0..2000 {
        let got: Option<u64> = con.get(format!("k{i}")).unwrap();
        let want = (i % 3 != 0).then_some(i);
        assert_eq!(got, want, "k{i}");
    }
    let size: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 2000 - 667);
    server.stop();
}

#[test]
fn a_killed_shard_with_a_data_dir_is_restarted_with_its_keys() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let server = Server::start(
        "sharded",
        &[
            "--data-dir",
            data.to_str().unwrap(),
            "--fsync",
            "always",
            "--restart-after",
            "500ms",
        ],
    );
    let ring = Shards::new(Sharded::default().layout());
    let mut con = connect(&server.url);
    let keys: Vec<String> = (0..400)
        .map(|i| format!("restart:{i}"))
        .filter(|k| ring.locate(k.as_bytes()).shard.0 == 1)
        .take(20)
        .collect();
    for key in &keys {
        let () = con.set(key, "before").unwrap();
    }
    let line = member_line(&mut con, "shard", 1);
    assert!(line.alive, "{line:?}");
    let (pid, took) = server.kill_and_await_restart("shard/1");
    println!("shard/1: from kill -9 to alive again, from its disk: {took:?}");
    let line = member_line(&mut con, "shard", 1);
    assert!(line.alive && line.pid == pid, "{line:?}");
    for key in &keys {
        let got: Option<String> = con.get(key).unwrap();
        assert_eq!(
            got.as_deref(),
            Some("before"),
            "{key} lost in a restart from disk"
        );
    }
    let logged: u64 = persistence(&mut con, "aof_current_size").parse().unwrap();
    assert!(logged > 0, "INFO persistence shows no log");
    server.stop();
}

#[test]
fn every_process_of_a_sharded_store_killed_and_served_again_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = ["--data-dir", data.to_str().unwrap()];
    let server = Server::start("sharded", &args);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = write_until(&server.url, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(1500));
    server.kill_all();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let server = Server::start("sharded", &args);
    let mut con = connect(&server.url);
    // `everysec`, the default: a crash of the processes (not of the machine) still loses
    // nothing, because each batch's records reach the kernel before its answers leave.
    assert_eq!(persistence(&mut con, "aof_fsync"), "everysec");
    assert_all_acknowledged_present(&mut con, &acked);
    server.stop();
}

#[test]
fn a_data_dir_of_another_architecture_or_shape_is_refused() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let server = Server::start("sharded", &["--data-dir", data]);
    let mut con = connect(&server.url);
    let () = con.set("kept", "yes").unwrap();
    server.stop();
    for (architecture, extra, want) in [
        (
            "local",
            &[][..],
            "holds the data of 'sharded' (proxy=1 shard=3 virtual-nodes=512); this is \
             'local' (proxy=1): refusing to start from it",
        ),
        (
            "sharded",
            &["--shards", "4"][..],
            "this is 'sharded' (proxy=1 shard=4 virtual-nodes=512): refusing",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_kvs-zoo"))
            .args(["serve", architecture, "--data-dir", data, "--port", "1"])
            .args(extra)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{architecture} started: {stderr}");
        assert!(stderr.contains(want), "{stderr}");
    }
    // The refused starts changed nothing: the store still starts from its directory.
    let server = Server::start("sharded", &["--data-dir", data]);
    let mut con = connect(&server.url);
    let got: Option<String> = con.get("kept").unwrap();
    assert_eq!(got.as_deref(), Some("yes"));
    server.stop();
}

/// An acceptor of the linearizable store killed with `kill -9` and restarted from its data
/// directory votes again: with a second acceptor then paused, every quorum needs the restarted
/// one, and writes still succeed and read back. Without its files it comes back `voting=no`,
/// and the same writes would wait for a quorum that never forms.
#[test]
fn a_restarted_acceptor_with_a_data_dir_votes_again_and_completes_a_quorum() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--restart-after",
        "200ms",
    ];
    let server = Server::start("linearizable", &args);
    let mut con = connect(&server.url);
    for i in 0..50 {
        let () = con.set(format!("before:{i}"), i).unwrap();
    }
    assert_eq!(persistence(&mut con, "aof_fsync"), "always");
    let (pid, took) = server.kill_and_await_restart("acceptor/0");
    let line = until_member(&mut con, "acceptor", 0, Duration::from_secs(10), |l| {
        l.alive && l.pid == pid
    });
    println!("acceptor/0: from kill -9 to alive again, from its disk: {took:?}");
    assert!(
        line.voting,
        "the restarted acceptor does not vote: {line:?}"
    );
    // Acceptors 0 and 2 are now the only majority.
    signal(server.pids["acceptor/1"], "STOP");
    for i in 0..50 {
        let () = con.set(format!("after:{i}"), i).unwrap();
    }
    let counted: i64 = con.incr("after:count", 5).unwrap();
    assert_eq!(counted, 5);
    for i in 0..50 {
        let before: Option<i64> = con.get(format!("before:{i}")).unwrap();
        let after: Option<i64> = con.get(format!("after:{i}")).unwrap();
        assert_eq!((before, after), (Some(i), Some(i)), "key {i}");
    }
    signal(server.pids["acceptor/1"], "CONT");
    server.stop();
}

/// Every process of the linearizable store killed with `kill -9` mid-workload (the default
/// `--fsync always`) and `serve` started again on the same directory: acceptors read their
/// promises back, replicas replay the slots they logged, and every acknowledged write is
/// there — each counter with every answered `INCR`, none applied twice.
#[test]
fn every_process_of_a_linearizable_store_killed_and_served_again_keeps_every_acknowledged_write() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = ["--data-dir", data.to_str().unwrap()];
    let server = Server::start("linearizable", &args);
    let stop = Arc::new(AtomicBool::new(false));
    let writers = write_until(&server.url, 4, stop.clone());
    std::thread::sleep(Duration::from_millis(2000));
    server.kill_all();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    let server = Server::start("linearizable", &args);
    let mut con = connect(&server.url);
    assert_all_acknowledged_present(&mut con, &acked);
    // And it goes on: a new write, read back.
    let () = con.set("after-restart", "yes").unwrap();
    let got: Option<String> = con.get("after-restart").unwrap();
    assert_eq!(got.as_deref(), Some("yes"));
    server.stop();
}

/// The linearizable store's replicas compact their logs into snapshots (`--snapshot-after
/// 16kb`: a snapshot of the store read while the log goes on); served again after every
/// process is killed, the store holds the same keys.
#[test]
fn a_linearizable_store_with_compacted_logs_restarts_to_the_same_keys() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    let args = [
        "--data-dir",
        data.to_str().unwrap(),
        "--snapshot-after",
        "16kb",
    ];
    let server = Server::start("linearizable", &args);
    let mut con = connect(&server.url);
    for i in 0..1500 {
        let () = con.set(format!("k{i}"), i).unwrap();
    }
    for i in (0..1500).step_by(3) {
        let () = con.del(format!("k{i}")).unwrap();
    }
    let counted: i64 = con.incr("counter", 7).unwrap();
    assert_eq!(counted, 7);
    for member in 0..3 {
        let files: Vec<String> = std::fs::read_dir(data.join(format!("replica-{member}")))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            files.iter().any(|f| f.ends_with(".snap")),
            "replica {member} wrote no snapshot: {files:?}"
        );
    }
    server.kill_all();
    let server = Server::start("linearizable", &args);
    let mut con = connect(&server.url);
    for i in 0..1500 {
        let got: Option<u64> = con.get(format!("k{i}")).unwrap();
        let want = (i % 3 != 0).then_some(i);
        assert_eq!(got, want, "k{i}");
    }
    let counter: i64 = con.get("counter").unwrap();
    assert_eq!(counter, 7, "an INCR applied again in the replay");
    server.stop();
}
