//! `kvs-zoo serve sharded`, as its users see it: each key lands on the shard the ring names
//! (and `KEYSHARD` says so), multi-key commands span shards and come back in the client's
//! order, `INFO` shows the ring and every shard, `redis-benchmark` completes, and a shard
//! killed with `kill -9` mid-workload fails only its own keys — promptly, never a hang —
//! while every other shard keeps serving and loses nothing.
//!
//! The scenarios that leave the store as they found it share one deployment; the crash test
//! has its own.

mod support;

use std::time::{Duration, Instant};

use kvs_zoo::architectures::sharded::Sharded;
use kvs_zoo::routing::ring::Shards;
use redis::{Commands, Value};
use support::Server;
use support::redis_client::{
    Shared, assert_members_alive, benchmark_completes, bulk, check_multi_key_commands, connect,
    key_shard, kill_9, member_copy, member_line, shared_url, signal, stop_shared, until_member,
};

const SHARDS: u32 = 3;

static SHARED: Shared = Shared::new();

fn shared() -> String {
    shared_url(&SHARED, "sharded", &[])
}

#[ctor::dtor]
fn stop() {
    stop_shared(&SHARED);
}

#[test]
fn each_key_lands_on_the_shard_the_ring_names_and_only_there() {
    let mut con = connect(&shared());
    // The ring the library computes, for the default layout `serve sharded` deploys.
    let ring = Shards::new(Sharded::default().layout());
    let mut shards_used = std::collections::BTreeSet::new();
    for i in 0..30 {
        let key = format!("placed:{i}");
        let _: () = con.set(&key, i).unwrap();
        let (shard, members) = key_shard(&mut con, &key);
        assert_eq!(shard, ring.locate(key.as_bytes()).shard.0, "{key}");
        assert_eq!(members, vec![shard], "{key}: one member per shard");
        for member in 0..SHARDS {
            let want = if member == shard {
                bulk(&i.to_string())
            } else {
                Value::Nil
            };
            assert_eq!(
                member_copy(&mut con, member, &key),
                want,
                "{key} at {member}"
            );
        }
        shards_used.insert(shard);
    }
    assert_eq!(
        shards_used.len(),
        SHARDS as usize,
        "30 keys use every shard"
    );
}

#[test]
fn multi_key_commands_span_shards_and_answer_in_the_clients_order() {
    let mut con = connect(&shared());
    let keys: Vec<String> = (0..12).map(|i| format!("multi:{i}")).collect();
    let shards: std::collections::BTreeSet<u32> =
        keys.iter().map(|k| key_shard(&mut con, k).0).collect();
    assert!(shards.len() > 1, "the keys span shards");
    check_multi_key_commands(&mut con, &keys);
}

#[test]
fn info_shows_the_ring_and_every_shard_alive_with_its_process() {
    let mut con = connect(&shared());
    let ring: String = redis::cmd("INFO").arg("ring").query(&mut con).unwrap();
    assert!(ring.contains("shards:3\r\n"), "{ring}");
    assert!(ring.contains("replicas_per_shard:1\r\n"), "{ring}");
    for shard in 0..SHARDS {
        assert!(
            ring.contains(&format!("shard{shard}:members={shard},share=0.")),
            "{ring}"
        );
    }
    assert_members_alive(&mut con, "shard", SHARDS as usize);
}

#[test]
fn redis_benchmark_completes() {
    benchmark_completes(&shared());
}

/// Clients write keys on every shard while shard 1 is killed with `kill -9` (and left dead:
/// `--restart-after never`). Every request is answered (none hangs); once the proxy notices, shard 1's keys get a CLUSTERDOWN error
/// at once; the other shards answer throughout and lose no acknowledged write.
#[test]
fn killing_a_shard_fails_only_its_keys_promptly_and_the_rest_keep_serving() {
    const CLIENTS: usize = 3;
    const DEAD: u32 = 1;
    let server = Server::start("sharded", &["--restart-after", "never"]);
    let ring = Shards::new(Sharded::default().layout());
    let victim = server.pids[&format!("shard/{DEAD}")];
    let started = Instant::now();
    let kill_at = Duration::from_secs(2);
    let run_for = Duration::from_secs(6);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let url = server.url.clone();
            std::thread::spawn(move || {
                let mut con = connect(&url);
                // (key, when it was asked, how long the answer took, acknowledged?)
                let mut log = vec![];
                let mut i = 0;
                while started.elapsed() < run_for {
                    let key = format!("crash:{c}:{i}");
                    let asked = started.elapsed();
                    let answer = con.set::<_, _, ()>(&key, i);
                    if let Err(e) = &answer {
                        assert!(!e.is_timeout(), "client {c} hung on {key}");
                        assert!(e.to_string().contains("CLUSTERDOWN"), "{key}: {e}");
                    }
                    log.push((key, asked, started.elapsed() - asked, answer.is_ok()));
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                log
            })
        })
        .collect();
    std::thread::sleep(kill_at);
    kill_9(victim);
    let log: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread panicked"))
        .collect();
    let on_dead = |key: &str| ring.locate(key.as_bytes()).shard.0 == DEAD;
    let detected = kill_at + Duration::from_secs(2);
    let failed = log.iter().filter(|(_, _, _, ok)| !ok).count();
    println!("{} writes, {failed} answered CLUSTERDOWN", log.len());

    // Every write to a surviving shard was acknowledged, before and after the kill.
    for (key, asked, _, ok) in &log {
        if !on_dead(key) {
            assert!(ok, "{key}, asked at {asked:?}, on a live shard, failed");
        }
    }
    // Once the death was noticed, the dead shard's keys fail at once.
    let late: Vec<_> = log
        .iter()
        .filter(|(key, asked, _, _)| on_dead(key) && *asked > detected)
        .collect();
    assert!(
        !late.is_empty(),
        "no write to the dead shard after detection"
    );
    for (key, asked, took, ok) in &late {
        assert!(!ok, "{key} acknowledged by a dead shard at {asked:?}");
        assert!(*took < Duration::from_millis(500), "{key} took {took:?}");
    }
    // Nothing acknowledged on a surviving shard was lost.
    let mut con = connect(&server.url);
    for (key, _, _, _) in log.iter().filter(|(key, _, _, ok)| *ok && !on_dead(key)) {
        let want = key.rsplit(':').next().unwrap();
        let got: Option<String> = con.get(key).unwrap();
        assert_eq!(got.as_deref(), Some(want), "{key} lost");
    }
    let info: String = redis::cmd("INFO").arg("members").query(&mut con).unwrap();
    assert!(info.contains("shard1:state=suspected"), "{info}");
    server.stop();
}

/// A shard killed with `kill -9` is started again by `serve` (restarts on, after 500 ms): its
/// new process is `alive` in `INFO members` with incarnation 1, and serves its keys again —
/// empty, as a shard without a disk comes back.
#[test]
fn a_killed_shard_is_restarted_and_serves_its_keys_again() {
    let server = Server::start("sharded", &["--restart-after", "500ms"]);
    let ring = Shards::new(Sharded::default().layout());
    let mut con = connect(&server.url);
    let on_shard_1 = |i: usize| {
        let key = format!("restart:{i}");
        (ring.locate(key.as_bytes()).shard.0 == 1).then_some(key)
    };
    let keys: Vec<String> = (0..200).filter_map(on_shard_1).take(5).collect();
    for key in &keys {
        let () = con.set(key, "before").unwrap();
    }
    let (pid, took) = server.kill_and_await_restart("shard/1");
    println!("shard/1: from kill -9 to alive again: {took:?}");
    let line = member_line(&mut con, "shard", 1);
    assert!(
        line.alive && line.pid == pid && line.incarnation == 1,
        "{line:?}"
    );
    for key in &keys {
        let got: Option<String> = con.get(key).unwrap();
        assert_eq!(got, None, "{key} survived a restart without a disk");
        let () = con.set(key, "after").unwrap();
        let got: Option<String> = con.get(key).unwrap();
        assert_eq!(got.as_deref(), Some("after"), "{key}");
    }
    server.stop();
}

/// A shard paused (`SIGSTOP`) for 2.5 s, longer than the failure detector, then resumed
/// (`SIGCONT`): meanwhile its keys answer `CLUSTERDOWN`; afterwards it is alive again — the
/// same process, nothing restarted — and serves its keys, with what it held before the pause.
#[test]
fn a_paused_shard_is_down_while_paused_and_serves_again_with_its_keys() {
    let server = Server::start("sharded", &[]);
    let ring = Shards::new(Sharded::default().layout());
    let mut con = connect(&server.url);
    let key = (0..200)
        .map(|i| format!("pause:{i}"))
        .find(|k| ring.locate(k.as_bytes()).shard.0 == 1)
        .expect("a key of shard 1");
    let () = con.set(&key, "before").unwrap();
    let pid = server.pids["shard/1"];
    signal(pid, "STOP");
    std::thread::sleep(Duration::from_millis(2500));
    let during: Result<Option<String>, _> = con.get(&key);
    let during = during.expect_err("a paused shard answered");
    assert!(during.to_string().contains("CLUSTERDOWN"), "{during}");
    signal(pid, "CONT");
    let resumed = Instant::now();
    let line = until_member(&mut con, "shard", 1, Duration::from_secs(10), |line| {
        line.alive
    });
    assert_eq!((line.pid, line.incarnation), (pid, 0), "{line:?}");
    println!("shard/1: alive again {:?} after SIGCONT", resumed.elapsed());
    let got: Option<String> = con.get(&key).unwrap();
    assert_eq!(got.as_deref(), Some("before"));
    server.stop();
}
