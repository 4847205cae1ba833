//! `MULTI` / `EXEC` as users see them: atomic on Local and, within one shard, on the sharded
//! store — a reader's transaction never sees half of a writer's — and refused with
//! `CROSSSLOT` when a sharded store's transaction spans shards; `WATCH` makes `EXEC` refuse
//! to run after another client changed a watched key. And `INCR`, the
//! read-modify-write clients most often rely on: concurrent increments are never lost.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis::Connection;
use support::Server;
use support::redis_client::{check_watch, connect};

/// One writer sets two keys to the same number in each transaction while a reader reads both
/// in transactions of its own, for two seconds: every read must see the two equal.
fn readers_never_see_half_a_transaction(url: &str, a: &str, b: &str) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (url, a, b, stop) = (url.to_string(), a.to_string(), b.to_string(), stop.clone());
        std::thread::spawn(move || {
            let mut con = connect(&url);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let () = redis::pipe()
                    .atomic()
                    .set(&a, i)
                    .ignore()
                    .set(&b, i)
                    .ignore()
                    .query(&mut con)
                    .unwrap();
                i += 1;
            }
            i
        })
    };
    let mut con = connect(url);
    let (mut reads, mut changes, mut last) = (0, 0, None);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        let (pair,): (Vec<Option<u64>>,) = redis::pipe()
            .atomic()
            .mget(&[a, b])
            .query(&mut con)
            .unwrap();
        assert_eq!(
            pair[0], pair[1],
            "a transaction's read saw half a write: {pair:?}"
        );
        if last != Some(pair[0]) {
            changes += 1;
            last = Some(pair[0]);
        }
        reads += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let writes = writer.join().expect("the writer thread panicked");
    println!("{reads} transactional reads saw {changes} values; {writes} transactions written");
    assert!(
        changes > 10,
        "the reader saw the writer's transactions: {changes} values"
    );
}

/// Sends `MULTI`, a `SET` of each key and `EXEC` one by one; returns EXEC's error.
fn exec_error(con: &mut Connection, keys: &[&str]) -> String {
    let () = redis::cmd("MULTI").query(con).unwrap();
    for key in keys {
        let queued: String = redis::cmd("SET").arg(*key).arg(1).query(con).unwrap();
        assert_eq!(queued, "QUEUED");
    }
    let error = redis::cmd("EXEC").query::<redis::Value>(con).unwrap_err();
    format!("{:?}: {}", error.code(), error.detail().unwrap_or_default())
}

/// Four clients each `INCR` one key 500 times at once: the counter ends at exactly 2000.
fn no_increment_is_lost(url: &str, key: &str) {
    const CLIENTS: u64 = 4;
    const EACH: u64 = 500;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (url, key) = (url.to_string(), key.to_string());
            std::thread::spawn(move || {
                let mut con = connect(&url);
                for _ in 0..EACH {
                    let _: u64 = redis::cmd("INCR").arg(&key).query(&mut con).unwrap();
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    let total: u64 = redis::cmd("GET").arg(key).query(&mut connect(url)).unwrap();
    assert_eq!(total, CLIENTS * EACH);
}

#[test]
fn transactions_are_atomic_on_local() {
    let server = Server::start("local", &[]);
    readers_never_see_half_a_transaction(&server.url, "a", "b");
    server.stop();
}

/// A transaction travels to the store as one message, so its size is bounded at the edge: the
/// `SET` that crosses `--max-transaction-bytes` is refused with the bound named, `EXEC`
/// discards the transaction, and the store goes on serving large values.
#[test]
fn a_transaction_past_its_byte_bound_is_refused_and_the_store_goes_on() {
    let server = Server::start("local", &["--max-transaction-bytes", "1mb"]);
    let mut con = connect(&server.url);
    let value = vec![b'x'; 400 * 1024];
    let () = redis::cmd("MULTI").query(&mut con).unwrap();
    let mut refused = None;
    for i in 0..3 {
        match redis::cmd("SET")
            .arg(format!("big:{i}"))
            .arg(&value)
            .query::<String>(&mut con)
        {
            Ok(queued) => assert_eq!(queued, "QUEUED"),
            Err(e) => refused = Some((i, e.to_string())),
        }
    }
    let (i, error) = refused.expect("a SET past the bound was queued");
    assert_eq!(i, 2, "the third 400 KiB SET crosses 1 MiB");
    assert!(
        error.contains("transaction too large") && error.contains("1048576"),
        "{error}"
    );
    let error = redis::cmd("EXEC")
        .query::<redis::Value>(&mut con)
        .unwrap_err();
    assert_eq!(error.code(), Some("EXECABORT"), "{error}");
    // Nothing of it was applied, and the store serves large values as before.
    let none: Option<Vec<u8>> = redis::cmd("GET").arg("big:0").query(&mut con).unwrap();
    assert_eq!(none, None);
    for i in 0..8 {
        let () = redis::cmd("SET")
            .arg(format!("after:{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
    }
    let got: Vec<u8> = redis::cmd("GET").arg("after:7").query(&mut con).unwrap();
    assert_eq!(got.len(), value.len());
    server.stop();
}

#[test]
fn watch_refuses_exec_after_a_change_on_local() {
    let server = Server::start("local", &[]);
    check_watch(&server.url, "watched");
    server.stop();
}

#[test]
fn watch_refuses_exec_after_a_change_on_sharded() {
    let server = Server::start("sharded", &[]);
    check_watch(&server.url, "watched");
    server.stop();
}

#[test]
fn concurrent_increments_are_never_lost_on_local() {
    let server = Server::start("local", &[]);
    no_increment_is_lost(&server.url, "counter");
    server.stop();
}

#[test]
fn concurrent_increments_are_never_lost_on_sharded() {
    let server = Server::start("sharded", &[]);
    no_increment_is_lost(&server.url, "counter");
    server.stop();
}

#[test]
fn transactions_within_one_shard_are_atomic_and_across_shards_are_refused() {
    let server = Server::start("sharded", &[]);
    // One hash tag: one shard.
    readers_never_see_half_a_transaction(&server.url, "{pair}:a", "{pair}:b");
    let mut con = connect(&server.url);
    let shard = |con: &mut Connection, key: &str| -> u32 {
        let (shard, _members): (u32, Vec<u32>) =
            redis::cmd("KEYSHARD").arg(key).query(con).unwrap();
        shard
    };
    let first = shard(&mut con, "k0");
    let other = (1..)
        .map(|i| format!("k{i}"))
        .find(|k| shard(&mut con, k) != first)
        .unwrap();
    let error = exec_error(&mut con, &["k0", &other]);
    assert!(error.contains("CROSSSLOT"), "{error}");
    // Nothing of the refused transaction was applied.
    let exists: u32 = redis::cmd("EXISTS")
        .arg("k0")
        .arg(&other)
        .query(&mut con)
        .unwrap();
    assert_eq!(exists, 0);
    server.stop();
}
