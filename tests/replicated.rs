//! `kvs-zoo serve replicated`, as its users see it: writes reach every replica, concurrent
//! writes become siblings that a context write resolves, `INFO` lists the replicas, and a
//! replica killed with `kill -9` mid-workload leaves a store that keeps answering and loses
//! nothing that reached a survivor, and a replica paused mid-workload has none of the
//! increments it held counted twice.
//!
//! The scenarios that leave the store as they found it share one deployment (starting one
//! costs seconds); the crash and pause tests have their own.

mod support;

use std::time::{Duration, Instant};

use redis::{Commands, Connection, Value};
use support::Server;
use support::redis_client::{
    Shared, assert_members_alive, benchmark_completes, bulk, connect, kill_9, member_copy,
    shared_url, signal, stop_shared, text, until_member, until_members_have,
};

/// Gossip every 300 ms: convergence still well under a second or two, and two writes sent
/// together to two replicas are (almost certainly) concurrent rather than one seeing the
/// other's rumor first.
const SHARED_ARGS: &[&str] = &["--gossip-interval", "300ms"];

/// The deployment the non-destructive scenarios share, stopped when the test binary exits.
static SHARED: Shared = Shared::new();

fn shared() -> String {
    shared_url(&SHARED, "replicated", SHARED_ARGS)
}

#[ctor::dtor]
fn stop() {
    stop_shared(&SHARED);
}

/// Polls every replica's copy of `key` until each is `want`.
fn until_every_replica_has(con: &mut Connection, replicas: u32, key: &str, want: &Value) {
    until_members_have(con, 0..replicas, key, want);
}

#[test]
fn a_write_reaches_every_replica() {
    let mut con = connect(&shared());
    let _: () = con.set("spread", "far").unwrap();
    until_every_replica_has(&mut con, 3, "spread", &bulk("far"));
}

#[test]
fn a_client_reads_its_own_writes() {
    let mut con = connect(&shared());
    for i in 0..50 {
        let _: () = con.set("ryw", i).unwrap();
        let got: i64 = con.get("ryw").unwrap();
        assert_eq!(got, i, "a read on the writer's connection missed its write");
    }
}

#[test]
fn a_delete_reaches_every_replica_and_its_tombstone_is_collected() {
    let mut con = connect(&shared());
    let _: () = con.set("doomed", "x").unwrap();
    until_every_replica_has(&mut con, 3, "doomed", &bulk("x"));
    let removed: i64 = con.del("doomed").unwrap();
    assert_eq!(removed, 1);
    until_every_replica_has(&mut con, 3, "doomed", &Value::Nil);
    // Once every replica holds the tombstone, it is collected: the key's context is empty.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let versioned: Vec<Value> = redis::cmd("GETCTX").arg("doomed").query(&mut con).unwrap();
        if versioned == [bulk("")] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tombstone was never collected: {versioned:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A write after the key's tombstone was collected is stamped above every version the
/// replica ever issued (Riak's kv679: a reused version would be wiped by a tombstone a peer
/// still held), so it reaches every replica and stays through later anti-entropy rounds. The
/// exact interleaving — a peer still holding the tombstone when the new write meets it — is
/// built by the unit test `a_write_after_a_collected_tombstone_survives_the_tombstone`.
#[test]
fn a_write_after_a_collected_tombstone_reaches_every_replica_and_stays() {
    let mut con = connect(&shared());
    for round in 0..3 {
        let value = format!("v{round}");
        let _: () = redis::cmd("REPLICASET")
            .arg(0)
            .arg("reborn")
            .arg(&value)
            .query(&mut con)
            .unwrap();
        until_every_replica_has(&mut con, 3, "reborn", &bulk(&value));
        let _: () = redis::cmd("DEL").arg("reborn").query(&mut con).unwrap();
        until_every_replica_has(&mut con, 3, "reborn", &Value::Nil);
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::cmd("GETCTX")
            .arg("reborn")
            .query::<Vec<Value>>(&mut con)
            .unwrap()
            != [bulk("")]
        {
            assert!(
                Instant::now() < deadline,
                "the tombstone was never collected"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let _: () = redis::cmd("REPLICASET")
        .arg(0)
        .arg("reborn")
        .arg("after")
        .query(&mut con)
        .unwrap();
    until_every_replica_has(&mut con, 3, "reborn", &bulk("after"));
    // Several anti-entropy rounds later, no replica has lost it.
    std::thread::sleep(Duration::from_secs(3));
    for replica in 0..3 {
        assert_eq!(member_copy(&mut con, replica, "reborn"), bulk("after"));
    }
}

#[test]
fn concurrent_writes_at_two_replicas_become_siblings_that_a_context_write_resolves() {
    let mut con = connect(&shared());
    // Both writes leave in one pipeline, before either replica can hear of the other's.
    let _: () = redis::pipe()
        .cmd("REPLICASET")
        .arg(0)
        .arg("alpha")
        .arg("a1")
        .cmd("REPLICASET")
        .arg(1)
        .arg("alpha")
        .arg("a2")
        .query(&mut con)
        .unwrap();
    let siblings = Value::Array(vec![bulk("a1"), bulk("a2")]);
    until_every_replica_has(&mut con, 3, "alpha", &siblings);
    // GET on the client's own replica shows both, and GETCTX the context to resolve them.
    let got: Vec<String> = con.get("alpha").unwrap();
    assert_eq!(got, ["a1", "a2"]);
    let versioned: Vec<Value> = redis::cmd("GETCTX").arg("alpha").query(&mut con).unwrap();
    let context = text(&versioned[0]);
    assert_eq!(versioned[1..], [bulk("a1"), bulk("a2")]);
    // The context names a version of each replica (its counts are the replicas' own, taken
    // over every key they stamped, so they depend on what else was written).
    let clock: kvs_zoo::VectorClock = context.parse().expect("a vector clock");
    assert!(clock.get("r0") > 0 && clock.get("r1") > 0, "{context}");
    let _: () = redis::cmd("SETCTX")
        .arg("alpha")
        .arg(&context)
        .arg("a1+a2")
        .query(&mut con)
        .unwrap();
    until_every_replica_has(&mut con, 3, "alpha", &bulk("a1+a2"));
}

#[test]
fn a_malformed_context_is_refused() {
    let mut con = connect(&shared());
    let err = redis::cmd("SETCTX")
        .arg("k")
        .arg("not a clock")
        .arg("v")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("invalid causal context"), "{err}");
}

#[test]
fn info_lists_every_replica_alive_with_its_process() {
    let url = shared();
    let mut con = connect(&url);
    assert_members_alive(&mut con, "replica", 3);
}

/// FLUSHDB at one replica deletes every key it holds, a tombstone each, and gossip carries
/// the deletes to the other replicas. (Its own deployment: a flush would pull keys from under
/// the scenarios sharing one.)
#[test]
fn flushdb_empties_every_replica() {
    let server = Server::start("replicated", SHARED_ARGS);
    let mut con = connect(&server.url);
    let keys = ["flush:a", "flush:b", "flush:c"];
    for key in keys {
        let () = con.set(key, "x").unwrap();
        until_every_replica_has(&mut con, 3, key, &bulk("x"));
    }
    let ok: String = redis::cmd("FLUSHDB").query(&mut con).unwrap();
    assert_eq!(ok, "OK");
    for key in keys {
        until_every_replica_has(&mut con, 3, key, &Value::Nil);
    }
    let size: i64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 0);
    server.stop();
}

/// Four clients, whose connections the router spreads over the replicas, each INCR one key
/// 100 times at once: every replica ends with exactly 400 — each replica counted its own
/// clients' increments and the counters merged without losing one.
#[test]
fn concurrent_increments_at_several_replicas_are_all_counted() {
    const CLIENTS: usize = 4;
    const EACH: usize = 100;
    let url = shared();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                for _ in 0..EACH {
                    let _: i64 = con.incr("counted", 1).unwrap();
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client panicked");
    }
    let total = (CLIENTS * EACH).to_string();
    until_every_replica_has(&mut connect(&url), 3, "counted", &bulk(&total));
}

/// Twelve clients `INCR` one key while replica 0 is paused (`SIGSTOP`) for 2.5 s, long enough
/// to be taken for dead, then resumed. The increments it held are not sent to another replica
/// (the paused one applies them when it resumes); they are answered as of unknown outcome. So
/// once the replicas agree, the counter lies between the acknowledged increments and those
/// plus the unknown ones: none is counted twice.
#[test]
fn increments_held_by_a_paused_replica_are_never_counted_twice() {
    const CLIENTS: usize = 12;
    let server = Server::start("replicated", &[]);
    let victim = server.pids["replica/0"];
    let started = Instant::now();
    let (pause_at, resume_at, run_for) = (
        Duration::from_secs(1),
        Duration::from_millis(3500),
        Duration::from_secs(5),
    );
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                let (mut acked, mut unknown) = (0u64, 0u64);
                while started.elapsed() < run_for {
                    match con.incr::<_, _, i64>("paused:n", 1) {
                        Ok(_) => acked += 1,
                        // Indeterminate: it may or may not have been applied (a timeout too).
                        Err(e)
                            if e.to_string().contains("may or may not have been applied")
                                || e.to_string().contains("timed out") =>
                        {
                            unknown += 1
                        }
                        Err(e) => panic!("INCR: {e}"),
                    }
                }
                (acked, unknown)
            })
        })
        .collect();
    std::thread::sleep(pause_at);
    signal(victim, "STOP");
    std::thread::sleep(resume_at - pause_at);
    signal(victim, "CONT");
    // How long after SIGCONT the router takes it back (under the clients' load).
    let resumed = Instant::now();
    let mut watcher = connect(&server.url);
    until_member(
        &mut watcher,
        "replica",
        0,
        Duration::from_secs(10),
        |line| line.alive,
    );
    println!(
        "replica/0: alive again {:?} after SIGCONT",
        resumed.elapsed()
    );
    let (acked, unknown) = clients
        .into_iter()
        .map(|c| c.join().expect("a client panicked"))
        .fold((0, 0), |(a, u), (ca, cu)| (a + ca, u + cu));
    println!("{acked} INCRs acknowledged, {unknown} of unknown outcome");
    // Once every replica shows the same count twice in a row, it has converged.
    let mut con = connect(&server.url);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = None;
    let count = loop {
        let copies: Vec<u64> = (0..3)
            .map(|m| match member_copy(&mut con, m, "paused:n") {
                Value::Nil => 0,
                copy => text(&copy).parse().expect("a count"),
            })
            .collect();
        let agreed = copies.iter().all(|c| *c == copies[0]).then_some(copies[0]);
        if agreed.is_some() && agreed == last {
            break copies[0];
        }
        assert!(
            Instant::now() < deadline,
            "the replicas never agreed: {copies:?}"
        );
        last = agreed;
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        (acked..=acked + unknown).contains(&count),
        "the counter is {count}: {acked} acknowledged, {unknown} unknown"
    );
    // With twelve connections, some were on the paused replica with an INCR in flight.
    assert!(unknown > 0, "no INCR was held by the paused replica");
    server.stop();
}

#[test]
fn redis_benchmark_completes() {
    benchmark_completes(&shared());
}

/// Several clients write and read while replica 1 is killed with `kill -9` (and left dead:
/// `--restart-after never`). Every request is answered (none hangs); the store keeps serving writes; the survivors converge; and no
/// acknowledged write is lost that a survivor had: writes acknowledged well before the kill
/// (gossiped by then) and every write acknowledged after the proxy noticed the death (taken
/// by a survivor).
#[test]
fn killing_a_replica_mid_workload_loses_nothing_a_survivor_had() {
    const CLIENTS: usize = 4;
    let server = Server::start("replicated", &["--restart-after", "never"]);
    let victim = server.pids["replica/1"];
    let started = Instant::now();
    let kill_at = Duration::from_secs(2);
    let run_for = Duration::from_secs(6);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                let mut acked = vec![];
                let mut errors = 0;
                let mut i = 0;
                while started.elapsed() < run_for {
                    let key = format!("crash:{c}:{i}");
                    match con.set::<_, _, ()>(&key, i) {
                        Ok(()) => acked.push((key, started.elapsed())),
                        // An error is an answer; a hang would fail the read timeout.
                        Err(e) if e.is_timeout() => panic!("client {c} hung on {key}"),
                        Err(_) => errors += 1,
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                (acked, errors)
            })
        })
        .collect();
    std::thread::sleep(kill_at);
    kill_9(victim);
    let mut acked = vec![];
    let mut errors = 0;
    for client in clients {
        let (a, e) = client.join().expect("a client thread panicked");
        acked.extend(a);
        errors += e;
    }
    println!(
        "{} writes acknowledged, {errors} answered with an error",
        acked.len()
    );
    let after_detection = kill_at + Duration::from_secs(2);
    assert!(
        acked.iter().any(|(_, at)| *at > after_detection),
        "no write was acknowledged after the replica died"
    );

    let mut con = connect(&server.url);
    let info: String = redis::cmd("INFO").arg("members").query(&mut con).unwrap();
    assert!(info.contains("replica1:state=suspected"), "{info}");
    let safe = |at: Duration| at + Duration::from_secs(1) < kill_at || at > after_detection;
    let must_survive: Vec<_> = acked.iter().filter(|(_, at)| safe(*at)).collect();
    assert!(!must_survive.is_empty());
    for (key, _) in &must_survive {
        let want = key.rsplit(':').next().unwrap();
        for member in [0, 2] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let got = member_copy(&mut con, member, key);
                if got == bulk(want) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "replica {member} lost acknowledged write {key}: {got:?}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // The dead replica's own copy is out of reach, and says so.
    let err = redis::cmd("REPLICAGET")
        .arg(1)
        .arg("crash:0:0")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("replica 1 is not alive"), "{err}");
    server.stop();
}

/// A replica killed with `kill -9` is started again (restarts on, after 500 ms) with an empty
/// store and incarnation 1. It is `rejoining` — alive, and sent no client — until it has
/// caught up with its peers; once it is `alive` again it holds every key its peers held at
/// the kill, and it takes writes. (Keys are first gossiped to every replica: a write that only
/// the killed replica held is lost with it, as the README says.)
#[test]
fn a_killed_replica_is_restarted_and_takes_clients_only_once_caught_up() {
    let server = Server::start("replicated", &["--restart-after", "500ms"]);
    let mut con = connect(&server.url);
    let keys: Vec<String> = (0..50).map(|i| format!("rejoin:{i}")).collect();
    for key in &keys {
        let () = con.set(key, key).unwrap();
    }
    for key in &keys {
        until_members_have(&mut con, [0, 1, 2], key, &bulk(key));
    }
    let (pid, took) = server.kill_and_await_restart("replica/1");
    println!("replica/1: from kill -9 to alive again: {took:?}");
    let back = Instant::now();
    let line = until_member(&mut con, "replica", 1, Duration::from_secs(20), |line| {
        assert!(
            line.alive && line.pid == pid && line.incarnation == 1,
            "{line:?}"
        );
        !line.rejoining
    });
    println!(
        "replica/1 caught up {:?} after it was back: {line:?}",
        back.elapsed()
    );
    for key in &keys {
        assert_eq!(member_copy(&mut con, 1, key), bulk(key), "{key}");
    }
    let () = con.set("rejoin:after", "after").unwrap();
    until_members_have(&mut con, [0, 1, 2], "rejoin:after", &bulk("after"));
    server.stop();
}
