//! `kvs-zoo serve linearizable` as users see it: the everyday commands through the log,
//! `CAS`, who leads, `redis-benchmark`; histories of concurrent clients checked for
//! linearizability with no fault, and with the leader, an acceptor or a replica killed — and
//! restarted by `serve` (a restarted acceptor comes back without a vote).

mod support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::{Commands, Connection};
use support::Server;
use support::history::{Workload, assert_linearizable, record, record_while};
use support::redis_client::{
    Shared, benchmark_completes, check_keys_expire, check_watch, connect, kill_9, shared_url,
    signal, stop_shared, until_member,
};

static SHARED: Shared = Shared::new();

/// Held by each recorded history: they run one at a time, so that a history's timing is its
/// own store's, not the load of the other tests on a 2-core machine.
static ONE_HISTORY_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_HISTORY_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner())
}

fn shared() -> String {
    shared_url(&SHARED, "linearizable", &[])
}

#[ctor::dtor]
fn stop() {
    stop_shared(&SHARED);
}

const WORKLOAD: Workload = Workload {
    clients: 5,
    operations: 400,
    keys: 3,
    timeout: Duration::from_secs(10),
};

/// The leader the proxy believes in, from `INFO paxos`, once there is one.
fn leader(con: &mut Connection) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info: String = redis::cmd("INFO").arg("paxos").query(con).unwrap();
        if let Some(leader) = info
            .lines()
            .find_map(|l| l.strip_prefix("leader:"))
            .and_then(|l| l.trim().parse().ok())
        {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader: {info}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn writes_reads_and_deletes_go_through_the_log() {
    let mut con = connect(&shared());
    let () = con.set("lin:a", "1").unwrap();
    let got: Option<String> = con.get("lin:a").unwrap();
    assert_eq!(got.as_deref(), Some("1"));
    let removed: usize = con.del("lin:a").unwrap();
    assert_eq!(removed, 1);
    let got: Option<String> = con.get("lin:a").unwrap();
    assert_eq!(got, None);
}

/// Deadlines are decided once, at the edge, and judged by the time the log carries: every
/// replica removes the key at the same point of the log.
#[test]
fn keys_expire_through_the_log() {
    check_keys_expire(&mut connect(&shared()), "lin:ttl");
}

/// WATCH through the log: the versions replicas compare are the same at every replica.
#[test]
fn watch_refuses_exec_after_a_change() {
    check_watch(&shared(), "lin:watched");
}

#[test]
fn cas_swaps_only_from_the_expected_value() {
    let mut con = connect(&shared());
    let cas = |con: &mut Connection, expected: &str, new: &str| -> i64 {
        redis::cmd("CAS")
            .arg("lin:cas")
            .arg(expected)
            .arg(new)
            .query(con)
            .unwrap()
    };
    assert_eq!(cas(&mut con, "x", "y"), 0, "a missing key never matches");
    let () = con.set("lin:cas", "x").unwrap();
    assert_eq!(cas(&mut con, "x", "y"), 1);
    assert_eq!(cas(&mut con, "x", "z"), 0);
    let got: String = con.get("lin:cas").unwrap();
    assert_eq!(got, "y");
}

#[test]
fn counters_and_transactions_are_atomic() {
    let url = shared();
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                for _ in 0..100 {
                    let _: i64 = con.incr("lin:counter", 1).unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    let mut con = connect(&url);
    let total: i64 = con.get("lin:counter").unwrap();
    assert_eq!(total, 400);
    let (a, b): (String, String) = redis::pipe()
        .atomic()
        .set("lin:t1", "one")
        .ignore()
        .set("lin:t2", "two")
        .ignore()
        .get("lin:t1")
        .get("lin:t2")
        .query(&mut con)
        .unwrap();
    assert_eq!((a.as_str(), b.as_str()), ("one", "two"));
}

#[test]
fn info_names_the_leader_and_every_member() {
    let mut con = connect(&shared());
    assert!(leader(&mut con) < 3);
    let info: String = redis::cmd("INFO").arg("members").query(&mut con).unwrap();
    let members: Vec<_> = info
        .lines()
        .filter_map(kvs_zoo::membership::view::parse_line)
        .collect();
    for role in ["proposer", "acceptor", "replica"] {
        let alive = members
            .iter()
            .filter(|m| m.role == role && m.alive && m.pid != 0)
            .count();
        assert_eq!(alive, 3, "{role}: {info}");
    }
}

#[test]
fn redis_benchmark_completes() {
    benchmark_completes(&shared());
}

#[test]
fn histories_without_faults_are_linearizable() {
    let _alone = one_at_a_time();
    let history = record(&shared(), WORKLOAD, 7);
    assert_eq!(history.len(), 2_000);
    assert_linearizable("linearizable, no fault", &history);
}

/// Kills `victim` (a role/member name) a quarter of the way into a recorded history, while
/// `serve` restarts it (100 ms after it died), and checks the history; prints how long after
/// the kill the next operation called after it completed. Then checks that the member came
/// back — alive, incarnation 1, voting only if `votes` — and that the store still serves.
fn history_with_a_kill(
    name: &str,
    votes: bool,
    victim: impl FnOnce(&mut Connection, &Server) -> String,
) {
    let _alone = one_at_a_time();
    // Restarted soon after the kill, so that it rejoins while the history is recorded.
    let server = Server::start("linearizable", &["--restart-after", "100ms"]);
    let mut con = connect(&server.url);
    let _ = leader(&mut con);
    let killed = victim(&mut con, &server);
    let pid = server.pids[&killed];
    // The kill comes a quarter of the way through the history.
    let mut kill_ns = 0;
    let history = record_while(&server.url, WORKLOAD, 11, |progress| {
        progress.wait_for(WORKLOAD.operations as usize * WORKLOAD.clients as usize / 4);
        kill_9(pid);
        // Counted from when the process is gone, not from when the kill was decided.
        kill_ns = progress.start.elapsed().as_nanos() as u64;
    });
    let recovered = history
        .iter()
        .filter(|op| {
            op.called >= kill_ns
                && op.outcome != kvs_zoo::testing::linearizability::Outcome::Unknown
        })
        .map(|op| op.returned)
        .min()
        .expect("operations completed after the kill");
    println!(
        "{name}: killed {killed}; the first operation called after the kill completed {:?} \
         later (election timeout {:?})",
        Duration::from_nanos(recovered - kill_ns),
        kvs_zoo::consensus::paxos::flow::ELECTION_EVERY
    );
    assert_linearizable(name, &history);
    // The member was restarted, and is back.
    let restarted = server
        .wait_for_line(&format!("process {killed} pid "), Duration::from_secs(60))
        .unwrap_or_else(|| panic!("{killed} was not restarted"));
    assert!(restarted.ends_with("(restart 1)"), "{restarted}");
    let (role, member) = killed.split_once('/').unwrap();
    let member: u32 = member.parse().unwrap();
    let line = until_member(&mut con, role, member, Duration::from_secs(10), |line| {
        line.alive && line.incarnation == 1
    });
    assert_eq!(line.voting, votes, "{line:?}");
    println!("{name}: {restarted}");
    // The store still serves, and says who leads now.
    let () = con.set("lin:after", "yes").unwrap();
    let after = leader(&mut con);
    println!("{name}: leader now proposer {after}");
    server.stop();
}

#[test]
fn histories_are_linearizable_when_the_leader_is_killed_and_restarted() {
    history_with_a_kill("linearizable, leader killed", true, |con, _| {
        format!("proposer/{}", leader(con))
    });
}

#[test]
fn histories_are_linearizable_when_an_acceptor_is_killed_and_restarted_without_a_vote() {
    history_with_a_kill("linearizable, acceptor killed", false, |_, _| {
        "acceptor/1".into()
    });
}

#[test]
fn histories_are_linearizable_when_a_replica_is_killed_and_restarted() {
    history_with_a_kill("linearizable, replica killed", true, |_, _| {
        "replica/2".into()
    });
}

/// The leader is paused (`SIGSTOP`) for 3 s — longer than the election timeout — a quarter of
/// the way into a recorded history, then resumed (`SIGCONT`): another proposer leads
/// meanwhile, the old leader steps down when it wakes, the history is linearizable, and the
/// paused proposer is alive again (prints how long after `SIGCONT`).
#[test]
fn histories_are_linearizable_when_the_leader_is_paused_and_resumed() {
    let name = "linearizable, leader paused";
    let _alone = one_at_a_time();
    let server = Server::start("linearizable", &[]);
    let mut con = connect(&server.url);
    let paused = leader(&mut con);
    let pid = server.pids[&format!("proposer/{paused}")];
    let mut resumed = None;
    let history = record_while(&server.url, WORKLOAD, 13, |progress| {
        progress.wait_for(WORKLOAD.operations as usize * WORKLOAD.clients as usize / 4);
        signal(pid, "STOP");
        std::thread::sleep(Duration::from_secs(3));
        signal(pid, "CONT");
        resumed = Some(Instant::now());
    });
    assert_linearizable(name, &history);
    let resumed = resumed.expect("the leader was resumed");
    until_member(
        &mut con,
        "proposer",
        paused,
        Duration::from_secs(10),
        |line| line.alive,
    );
    println!(
        "{name}: proposer {paused} alive again {:?} after SIGCONT; leader now proposer {}",
        resumed.elapsed(),
        leader(&mut con)
    );
    let () = con.set("lin:after-pause", "yes").unwrap();
    server.stop();
}

/// A replica killed and restarted with nothing, after the start of the log was forgotten
/// (every live replica had applied it), catches up from another replica's snapshot: with
/// the other two replicas then paused, it alone answers every read, and every acknowledged
/// write is there — values, a counter, a deadline. (Before state transfer, its requests
/// timed out: the slots it lacked were gone.) Prints how long after the kill it answered.
#[test]
fn a_restarted_replica_catches_up_from_a_snapshot_and_serves_alone() {
    let _alone = one_at_a_time();
    let server = Server::start("linearizable", &["--restart-after", "200ms"]);
    let mut con = connect(&server.url);
    let _ = leader(&mut con);
    let keys = 300;
    for i in 0..keys {
        let () = con.set(format!("snap:{i}"), i).unwrap();
    }
    for _ in 0..25 {
        let _: i64 = con.incr("snap:counter", 1).unwrap();
    }
    let () = redis::cmd("SET")
        .arg("snap:ttl")
        .arg("v")
        .arg("EX")
        .arg(1000)
        .query(&mut con)
        .unwrap();
    // Every replica reports having applied all of it: the log's start is then forgotten.
    std::thread::sleep(Duration::from_millis(500));
    let () = con.set("snap:after-checkpoint", "yes").unwrap();

    let killed = Instant::now();
    let (pid, _) = server.kill_and_await_restart("replica/0");
    until_member(&mut con, "replica", 0, Duration::from_secs(10), |line| {
        line.alive && line.incarnation == 1
    });
    let others = [server.pids["replica/1"], server.pids["replica/2"]];
    for other in others {
        signal(other, "STOP");
    }
    // Only the restarted replica can answer now.
    let first: Option<String> = con.get("snap:0").unwrap();
    let serving = killed.elapsed();
    let mut missing = Vec::new();
    for i in 0..keys {
        let value: Option<i64> = con.get(format!("snap:{i}")).unwrap();
        if value != Some(i) {
            missing.push((i, value));
        }
    }
    let counter: i64 = con.get("snap:counter").unwrap();
    let ttl: i64 = con.ttl("snap:ttl").unwrap();
    for other in others {
        signal(other, "CONT");
    }
    assert_eq!(first.as_deref(), Some("0"));
    assert!(
        missing.is_empty(),
        "not at the restarted replica: {missing:?}"
    );
    assert_eq!(counter, 25);
    assert!((900..=1000).contains(&ttl), "the deadline travelled: {ttl}");
    println!(
        "restarted replica/0 (pid {pid}) answered alone {serving:?} after the kill, with all \
         {keys} keys, the counter and the deadline"
    );
    let () = con.set("snap:end", "yes").unwrap();
    server.stop();
}

/// Two replicas stalled in turn, each for longer than the proposers wait before they take a
/// replica for dead (so each falls behind the forgotten part of the log and must catch up
/// from a snapshot), while a client writes; then the third is killed for good. The store
/// still answers, from the two that stalled, and every acknowledged write reads back.
#[test]
fn two_replicas_stalled_in_turn_then_the_third_killed_lose_no_acknowledged_write() {
    let _alone = one_at_a_time();
    let server = Server::start("linearizable", &["--restart-after", "never"]);
    let mut con = connect(&server.url);
    let _ = leader(&mut con);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (url, stop) = (server.url.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut con = connect(&url);
            let mut acknowledged = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let written: redis::RedisResult<()> =
                    con.set(format!("stall:{acknowledged}"), acknowledged);
                if written.is_ok() {
                    acknowledged += 1;
                }
            }
            acknowledged
        })
    };
    let stall = Duration::from_secs(4);
    for replica in ["replica/0", "replica/1"] {
        std::thread::sleep(Duration::from_millis(500));
        let pid = server.pids[replica];
        signal(pid, "STOP");
        std::thread::sleep(stall);
        signal(pid, "CONT");
    }
    // Both caught up (from a snapshot, or the log if it was still kept) before the third
    // goes: the store then answers from them alone.
    std::thread::sleep(Duration::from_secs(2));
    kill_9(server.pids["replica/2"]);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acknowledged = writer.join().unwrap();
    assert!(
        acknowledged > 100,
        "the writer made progress: {acknowledged}"
    );
    let mut missing = Vec::new();
    for i in 0..acknowledged {
        let value: Option<u64> = con.get(format!("stall:{i}")).unwrap();
        if value != Some(i) {
            missing.push(i);
        }
    }
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    println!(
        "two replicas stalled {stall:?} in turn, the third killed: all {acknowledged} \
         acknowledged writes read back"
    );
    server.stop();
}
