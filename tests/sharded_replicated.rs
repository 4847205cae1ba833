//! `kvs-zoo serve sharded-replicated`, as its users see it: a key lives on the replicas of
//! the shard the ring names (and `KEYSHARD` says which), gossip spreads it to all of them and
//! to no other shard, multi-key commands span shards, `INFO` shows the ring and all nine
//! replicas, `redis-benchmark` completes, and a replica killed with `kill -9` mid-workload
//! leaves its shard serving through the others with nothing lost that a survivor had.
//!
//! The scenarios that leave the store as they found it share one deployment; the crash test
//! has its own.

mod support;

use std::time::{Duration, Instant};

use kvs_zoo::architectures::sharded_replicated::ShardedReplicated;
use kvs_zoo::membership::{Layout, MemberId, ShardId};
use kvs_zoo::routing::ring::Shards;
use kvs_zoo::routing::sticky::StickyRouter;
use redis::{Commands, Value};
use support::Server;
use support::redis_client::{
    Shared, assert_members_alive, benchmark_completes, bulk, check_multi_key_commands, connect,
    key_shard, kill_9, member_copy, shared_url, stop_shared, until_members_have,
};

/// Gossip every 300 ms (as the replicated store's tests do).
const SHARED_ARGS: &[&str] = &["--gossip-interval", "300ms"];

static SHARED: Shared = Shared::new();

fn shared() -> String {
    shared_url(&SHARED, "sharded-replicated", SHARED_ARGS)
}

#[ctor::dtor]
fn stop() {
    stop_shared(&SHARED);
}

/// The layout `serve sharded-replicated` deploys by default: 3 shards of 3 replicas.
fn layout() -> Layout {
    ShardedReplicated::default().layout()
}

#[test]
fn a_key_reaches_every_replica_of_its_shard_and_no_other() {
    let mut con = connect(&shared());
    let ring = Shards::new(layout());
    let mut shards_used = std::collections::BTreeSet::new();
    for i in 0..6 {
        let key = format!("placed:{i}");
        let _: () = con.set(&key, i).unwrap();
        let (shard, members) = key_shard(&mut con, &key);
        let place = ring.locate(key.as_bytes());
        let place_members: Vec<u32> = place.members.into_iter().map(|m| m.0).collect();
        assert_eq!(shard, place.shard.0, "{key}");
        assert_eq!(members, place_members, "{key}");
        until_members_have(&mut con, place_members, &key, &bulk(&i.to_string()));
        for member in (0..layout().members()).filter(|&m| !place.members.contains(&MemberId(m))) {
            assert_eq!(
                member_copy(&mut con, member, &key),
                Value::Nil,
                "{key} at {member}"
            );
        }
        shards_used.insert(shard);
    }
    assert!(shards_used.len() > 1, "the keys span shards");
}

#[test]
fn a_client_reads_its_own_writes_on_every_shard() {
    let mut con = connect(&shared());
    for i in 0..30 {
        let key = format!("ryw:{}", i % 6);
        let _: () = con.set(&key, i).unwrap();
        let got: i64 = con.get(&key).unwrap();
        assert_eq!(
            got, i,
            "a read on the writer's connection missed its write to {key}"
        );
    }
}

#[test]
fn multi_key_commands_span_shards_and_answer_in_the_clients_order() {
    let mut con = connect(&shared());
    let keys: Vec<String> = (0..9).map(|i| format!("multi:{i}")).collect();
    check_multi_key_commands(&mut con, &keys);
}

#[test]
fn info_shows_the_ring_and_every_replica_alive_with_its_process() {
    let mut con = connect(&shared());
    let ring: String = redis::cmd("INFO").arg("ring").query(&mut con).unwrap();
    assert!(
        ring.contains("shards:3\r\nreplicas_per_shard:3\r\n"),
        "{ring}"
    );
    assert!(ring.contains("shard1:members=3+4+5,share=0."), "{ring}");
    assert_members_alive(&mut con, "replica", 9);
}

#[test]
fn redis_benchmark_completes() {
    benchmark_completes(&shared());
}

/// Clients write keys on every shard while the replica of shard 0 that the first client's
/// connection uses is killed with `kill -9` (and left dead: `--restart-after never`). Every request is answered and none fails: the
/// client moves to another replica of shard 0, which keeps serving, and requests the dead
/// one held are re-sent. No acknowledged write is lost that a survivor had: writes
/// acknowledged well before the kill (gossiped by then) and every write acknowledged after
/// the proxy noticed the death.
#[test]
fn killing_a_replica_leaves_its_shard_serving_and_loses_nothing_a_survivor_had() {
    const CLIENTS: usize = 3;
    let server = Server::start("sharded-replicated", &["--restart-after", "never"]);
    let ring = Shards::new(layout());
    let mut connections: Vec<_> = (0..CLIENTS).map(|_| connect(&server.url)).collect();
    // The member the router sends the first client's shard-0 keys to: the same function
    // the proxy runs, over the same layout, with every member alive.
    let client_id: u64 = redis::cmd("CLIENT")
        .arg("ID")
        .query(&mut connections[0])
        .unwrap();
    let mut router = StickyRouter::<bytes::Bytes>::new(1, layout());
    for member in 0..layout().members() {
        router.joined(MemberId(member));
    }
    let shard_0_key = (0..)
        .map(|i| format!("probe:{i}"))
        .find(|k| ring.locate(k.as_bytes()).shard == ShardId(0))
        .unwrap();
    let dead = router
        .member_for(client_id, shard_0_key.as_bytes())
        .unwrap()
        .0;
    let victim = server.pids[&format!("replica/{dead}")];
    let started = Instant::now();
    let kill_at = Duration::from_secs(3);
    let run_for = Duration::from_secs(7);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let mut con = connections.pop().unwrap();
            let c = CLIENTS - 1 - c;
            std::thread::spawn(move || {
                let mut acked = vec![];
                let mut i = 0;
                while started.elapsed() < run_for {
                    let key = format!("crash:{c}:{i}");
                    match con.set::<_, _, ()>(&key, i) {
                        Ok(()) => acked.push((key, started.elapsed())),
                        Err(e) => panic!("client {c}: {key} failed: {e}"),
                    }
                    i += 1;
                    std::thread::sleep(Duration::from_millis(5));
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(kill_at);
    kill_9(victim);
    let acked: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread panicked"))
        .collect();
    println!("{} writes acknowledged", acked.len());
    let after_detection = kill_at + Duration::from_secs(2);
    let on_shard_0_late = acked
        .iter()
        .any(|(key, at)| ring.locate(key.as_bytes()).shard == ShardId(0) && *at > after_detection);
    assert!(
        on_shard_0_late,
        "shard 0 acknowledged nothing after its replica died"
    );

    let mut con = connect(&server.url);
    let info: String = redis::cmd("INFO").arg("members").query(&mut con).unwrap();
    assert!(
        info.contains(&format!("replica{dead}:state=suspected")),
        "{info}"
    );
    let safe = |at: Duration| at + Duration::from_secs(1) < kill_at || at > after_detection;
    for (key, _) in acked.iter().filter(|(_, at)| safe(*at)) {
        let want = bulk(key.rsplit(':').next().unwrap());
        let survivors: Vec<u32> = ring
            .locate(key.as_bytes())
            .members
            .into_iter()
            .map(|m| m.0)
            .filter(|&m| m != dead)
            .collect();
        until_members_have(&mut con, survivors, key, &want);
    }
    server.stop();
}
