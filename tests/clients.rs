//! The client compatibility suite: the Redis client libraries people use, each in its default
//! configuration, doing what their READMEs show against every architecture — redis-py
//! (RESP3 by default), node-redis, ioredis, and the Rust `redis` crate in RESP2 and RESP3.
//!
//! The Python and Node clients are installed on first use by `tests/clients/install.sh`
//! (redis-py into `target/client-venv`, the Node clients from `tests/clients/package-lock.json`),
//! so `cargo test` alone runs the suite on a fresh machine with python3 and npm. Each
//! architecture is deployed once; every client runs against it in turn.

mod support;

use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use redis::{Commands, Value};
use support::Server;

/// Installs the clients, once per test binary.
fn install_clients() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let status = Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/clients/install.sh"
            ))
            .status()
            .expect("bash runs");
        assert!(status.success(), "installing the client libraries failed");
    });
}

/// True if `architecture` keeps one copy of each key (read-modify-write, expiry and WATCH
/// work there), as the registry says.
fn one_copy_per_key(architecture: &str) -> bool {
    kvs_zoo::architectures::find(architecture)
        .expect("a registered architecture")
        .capabilities()
        .one_copy_per_key
}

/// Runs one client script against `server` (serving `architecture`; the script is told
/// whether it keeps one copy of each key, in `KVS_ONE_COPY_PER_KEY`);
/// fails with its output if it fails or takes longer than a minute (a client that hangs on a
/// reply).
fn run_client(server: &Server, architecture: &str, program: &str, script: &str) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");
    let out = Command::new("timeout")
        .args(["60", program, &format!("{dir}/{script}")])
        .current_dir(dir)
        .env("KVS_URL", &server.url)
        .env(
            "KVS_ONE_COPY_PER_KEY",
            if one_copy_per_key(architecture) {
                "1"
            } else {
                "0"
            },
        )
        .output()
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{script}:\n{stdout}{stderr}");
    assert!(
        out.status.success(),
        "{script} against {}: {}\n{stdout}{stderr}",
        server.url,
        out.status
    );
}

/// The Rust `redis` crate, in `protocol` (`resp2` or `resp3`), against `architecture`.
fn rust_client(server: &Server, architecture: &str, protocol: &str) {
    let url = format!("{}?protocol={protocol}", server.url);
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connects");
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let key = |k: &str| format!("rs-{protocol}:{k}");
    let _: () = con.set(key("color"), "blue").unwrap();
    let got: Option<String> = con.get(key("color")).unwrap();
    assert_eq!(got.as_deref(), Some("blue"));
    let missing: Value = con.get(key("missing")).unwrap();
    assert_eq!(missing, Value::Nil);
    let _: () = con.mset(&[(key("a"), "1"), (key("b"), "2")]).unwrap();
    let got: Vec<Option<String>> = con.mget(&[key("a"), key("missing"), key("b")]).unwrap();
    assert_eq!(got, [Some("1".into()), None, Some("2".into())]);
    let (set, get): (String, String) = redis::pipe()
        .set(key("p"), "x")
        .get(key("p"))
        .query(&mut con)
        .unwrap();
    assert_eq!((set.as_str(), get.as_str()), ("OK", "x"));
    // A transaction; the hash tag keeps both keys on one shard.
    let tag = |k: &str| format!("{{rs-{protocol}}}:{k}");
    let (got,): (Vec<String>,) = redis::pipe()
        .atomic()
        .set(tag("t1"), "a")
        .ignore()
        .set(tag("t2"), "b")
        .ignore()
        .mget(&[tag("t1"), tag("t2")])
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["a", "b"]);
    // The keyspace: scan_match follows the cursor across shards until it comes back 0.
    let _: () = con
        .mset(&[(key("scan:a"), "1"), (key("scan:b"), "2")])
        .unwrap();
    let mut scanned: Vec<String> = con
        .scan_match::<_, String>(key("scan:*"))
        .unwrap()
        .collect();
    scanned.sort();
    assert_eq!(scanned, [key("scan:a"), key("scan:b")]);
    // Counters everywhere (a PN-counter on the replicated stores).
    let n: i64 = con.incr(key("n"), 5).unwrap();
    assert_eq!(n, 5);
    let n: i64 = con.decr(key("n"), 2).unwrap();
    assert_eq!(n, 3);
    // Expiry where one copy (or one log) holds a key; refused elsewhere.
    if one_copy_per_key(architecture) {
        let _: () = con.set_ex(key("ttl"), "v", 100).unwrap();
        let ttl: i64 = con.ttl(key("ttl")).unwrap();
        assert!((98..=100).contains(&ttl), "TTL {ttl}");
        let persisted: bool = con.persist(key("ttl")).unwrap();
        assert!(persisted);
        let ttl: i64 = con.ttl(key("ttl")).unwrap();
        assert_eq!(ttl, -1);
    } else {
        let refused: redis::RedisResult<()> = con.set_ex(key("ttl"), "v", 100);
        let e = refused.expect_err("expiry is refused on a replicated store");
        assert!(e.to_string().contains("expiry needs one clock"), "{e}");
    }
}

/// Every client against `architecture`, deployed once.
fn every_client_against(architecture: &str) {
    install_clients();
    let server = Server::start(architecture, &[]);
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/target/client-venv/bin/python");
    run_client(&server, architecture, python, "redis_py.py");
    run_client(&server, architecture, "node", "node_redis.mjs");
    run_client(&server, architecture, "node", "ioredis.mjs");
    rust_client(&server, architecture, "resp2");
    rust_client(&server, architecture, "resp3");
    server.stop();
}

#[test]
fn clients_work_against_local() {
    every_client_against("local");
}

#[test]
fn clients_work_against_replicated() {
    every_client_against("replicated");
}

#[test]
fn clients_work_against_sharded() {
    every_client_against("sharded");
}

#[test]
fn clients_work_against_sharded_replicated() {
    every_client_against("sharded-replicated");
}

#[test]
fn clients_work_against_linearizable() {
    every_client_against("linearizable");
}
