//! What the deployment tests of clustered stores share: a deployment shared by one file's
//! tests, a connection that never hangs, members' own copies, and `redis-benchmark`.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::{Connection, Value};

use super::Server;

/// A deployment shared by the tests of one file (started by the first that asks).
pub type Shared = OnceLock<Mutex<Option<Server>>>;

/// The URL of `cell`'s deployment of `architecture` with `args`, starting it if needed.
pub fn shared_url(cell: &'static Shared, architecture: &str, args: &[&str]) -> String {
    let cell = cell.get_or_init(|| Mutex::new(Some(Server::start(architecture, args))));
    let guard = cell.lock().unwrap_or_else(|e| e.into_inner());
    guard.as_ref().expect("the shared server runs").url.clone()
}

/// Stops `cell`'s deployment, if one was started: call it from a `#[ctor::dtor]`.
pub fn stop_shared(cell: &'static Shared) {
    if let Some(cell) = cell.get()
        && let Some(server) = cell.lock().unwrap_or_else(|e| e.into_inner()).take()
    {
        server.stop();
    }
}

/// A connection whose every request must be answered within 10 s (a hang fails the test).
pub fn connect(url: &str) -> Connection {
    let con = redis::Client::open(url)
        .unwrap()
        .get_connection()
        .expect("connects");
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    con
}

/// Member `member`'s own copy of `key`, as `REPLICAGET` answers it.
pub fn member_copy(con: &mut Connection, member: u32, key: &str) -> Value {
    redis::cmd("REPLICAGET")
        .arg(member)
        .arg(key)
        .query(con)
        .expect("REPLICAGET is answered")
}

/// Polls the copies of `key` at `members` until each is `want`, for up to 10 s.
pub fn until_members_have(
    con: &mut Connection,
    members: impl IntoIterator<Item = u32> + Clone,
    key: &str,
    want: &Value,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let copies: Vec<(u32, Value)> = (members.clone().into_iter())
            .map(|m| (m, member_copy(con, m, key)))
            .collect();
        if copies.iter().all(|(_, c)| c == want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never agreed on {key} = {want:?}: {copies:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `KEYSHARD key`: the key's shard and its members.
pub fn key_shard(con: &mut Connection, key: &str) -> (u32, Vec<u32>) {
    redis::cmd("KEYSHARD")
        .arg(key)
        .query(con)
        .expect("KEYSHARD is answered")
}

/// A bulk string reply.
pub fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

/// The text of a bulk string reply.
pub fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// Runs `redis-benchmark -t set,get` against `url`'s server and checks that both tests
/// received every reply.
pub fn benchmark_completes(url: &str) {
    let port = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    let out = std::process::Command::new("timeout")
        .args(["300", "redis-benchmark", "-p", &port])
        .args(["-t", "set,get", "-n", "5000", "-c", "20", "-q"])
        .output()
        .expect("redis-benchmark is installed (.ci/run installs redis-tools)");
    assert!(out.status.success(), "redis-benchmark: {}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for test in ["SET", "GET"] {
        assert!(
            stdout
                .split(['\r', '\n'])
                .any(|l| l.trim().starts_with(&format!("{test}: ")) && l.contains("per second")),
            "redis-benchmark did not complete {test}: {stdout}"
        );
    }
}

/// Sends `kill -9` to `pid`.
pub fn kill_9(pid: u32) {
    signal(pid, "9");
}

/// Sends `signal` (`STOP`, `CONT`, …) to `pid`: `kill -STOP` pauses a process as a long
/// garbage-collection pause or a stalled machine would, `kill -CONT` resumes it.
pub fn signal(pid: u32, signal: &str) {
    let sent = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{signal} {pid}");
}

/// Member `member` of `role` as `INFO members` shows it.
pub fn member_line(
    con: &mut Connection,
    role: &str,
    member: u32,
) -> kvs_zoo::membership::view::MemberLine {
    let info: String = redis::cmd("INFO").arg("members").query(con).unwrap();
    info.lines()
        .filter_map(kvs_zoo::membership::view::parse_line)
        .find(|m| m.role == role && m.member == member)
        .unwrap_or_else(|| panic!("no {role}{member} in {info}"))
}

/// Polls member `member` of `role` in `INFO members` every 20 ms until `ready` holds of it,
/// for up to `limit`; returns that line.
pub fn until_member(
    con: &mut Connection,
    role: &str,
    member: u32,
    limit: Duration,
    ready: impl Fn(&kvs_zoo::membership::view::MemberLine) -> bool,
) -> kvs_zoo::membership::view::MemberLine {
    let deadline = Instant::now() + limit;
    loop {
        let line = member_line(con, role, member);
        if ready(&line) {
            return line;
        }
        assert!(
            Instant::now() < deadline,
            "{role}{member} not as awaited within {limit:?}: {line:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Checks `INFO members`: exactly `count` members of `role`, numbered 0, 1, …, each alive
/// and each a live process.
pub fn assert_members_alive(con: &mut Connection, role: &str, count: usize) {
    let info: String = redis::cmd("INFO").arg("members").query(con).unwrap();
    let members: Vec<_> = info
        .lines()
        .filter_map(kvs_zoo::membership::view::parse_line)
        .collect();
    assert_eq!(members.len(), count, "{info}");
    for (member, line) in members.into_iter().enumerate() {
        assert_eq!(
            (line.role.as_str(), line.member, line.alive),
            (role, member as u32, true)
        );
        let pid = line.pid;
        assert!(
            std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "{role} {member}'s pid {pid} is not a live process"
        );
    }
}

/// Writes `keys` with one MSET, then checks MGET (asked in reverse, with a missing key in the
/// middle), EXISTS and DEL over them answer in the client's order and count, and that the
/// keys are gone afterwards.
pub fn check_multi_key_commands(con: &mut Connection, keys: &[String]) {
    use redis::Commands;
    let pairs: Vec<(String, String)> = keys.iter().map(|k| (k.clone(), format!("v-{k}"))).collect();
    let _: () = con.mset(&pairs).unwrap();
    let missing = "multi:missing".to_string();
    let mut asked: Vec<String> = keys.iter().rev().cloned().collect();
    asked.insert(asked.len() / 2, missing.clone());
    let got: Vec<Option<String>> = con.mget(&asked).unwrap();
    let want: Vec<Option<String>> = asked
        .iter()
        .map(|k| (*k != missing).then(|| format!("v-{k}")))
        .collect();
    assert_eq!(got, want);
    let existing: usize = con.exists(&asked).unwrap();
    assert_eq!(existing, keys.len());
    let removed: usize = con.del(&asked).unwrap();
    assert_eq!(removed, keys.len());
    let existing: usize = con.exists(keys).unwrap();
    assert_eq!(existing, 0);
}

/// Keys with a deadline, on a store that gives expiry a meaning: they are there until it
/// passes (a real wait of a few hundred milliseconds) and then gone — from GET, EXISTS,
/// DBSIZE's count and TTL alike; PERSIST keeps one for good. Keys start with `prefix`.
pub fn check_keys_expire(con: &mut Connection, prefix: &str) {
    let key = |k: &str| format!("{prefix}:{k}");
    let ok: String = redis::cmd("SET")
        .arg(key("short"))
        .arg("v")
        .arg("PX")
        .arg(400)
        .query(con)
        .unwrap();
    assert_eq!(ok, "OK");
    let () = redis::cmd("SET")
        .arg(key("kept"))
        .arg("w")
        .arg("PX")
        .arg(400)
        .query(con)
        .unwrap();
    let persisted: i64 = redis::cmd("PERSIST").arg(key("kept")).query(con).unwrap();
    assert_eq!(persisted, 1);
    let pttl: i64 = redis::cmd("PTTL").arg(key("short")).query(con).unwrap();
    assert!((1..=400).contains(&pttl), "PTTL {pttl}");
    let got: Option<String> = redis::cmd("GET").arg(key("short")).query(con).unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    std::thread::sleep(std::time::Duration::from_millis(600));
    let got: Option<String> = redis::cmd("GET").arg(key("short")).query(con).unwrap();
    assert_eq!(got, None, "expired");
    let exists: i64 = redis::cmd("EXISTS").arg(key("short")).query(con).unwrap();
    assert_eq!(exists, 0);
    let pttl: i64 = redis::cmd("PTTL").arg(key("short")).query(con).unwrap();
    assert_eq!(pttl, -2);
    let got: Option<String> = redis::cmd("GET").arg(key("kept")).query(con).unwrap();
    assert_eq!(got.as_deref(), Some("w"), "persisted");
    let expired: i64 = redis::cmd("EXPIRE")
        .arg(key("kept"))
        .arg(-1)
        .query(con)
        .unwrap();
    assert_eq!(expired, 1);
    let got: Option<String> = redis::cmd("GET").arg(key("kept")).query(con).unwrap();
    assert_eq!(got, None, "an expiry in the past removes the key at once");
}

/// `WATCH` as optimistic locking: a transaction after another client changed a watched key
/// does not run (EXEC answers nil) and the other client's value stays; with no change it
/// runs. Uses `key` (all of its commands run on `key`'s shard).
pub fn check_watch(url: &str, key: &str) {
    let (mut mine, mut other) = (connect(url), connect(url));
    let run = |con: &mut Connection, value: &str| -> Value {
        let () = redis::cmd("MULTI").query(con).unwrap();
        let queued: String = redis::cmd("SET").arg(key).arg(value).query(con).unwrap();
        assert_eq!(queued, "QUEUED");
        redis::cmd("EXEC").query(con).unwrap()
    };
    let () = redis::cmd("SET")
        .arg(key)
        .arg("first")
        .query(&mut mine)
        .unwrap();
    let () = redis::cmd("WATCH").arg(key).query(&mut mine).unwrap();
    let () = redis::cmd("SET")
        .arg(key)
        .arg("theirs")
        .query(&mut other)
        .unwrap();
    assert_eq!(run(&mut mine, "mine"), Value::Nil, "EXEC after a change");
    let got: String = redis::cmd("GET").arg(key).query(&mut mine).unwrap();
    assert_eq!(got, "theirs");
    let () = redis::cmd("WATCH").arg(key).query(&mut mine).unwrap();
    assert_eq!(
        run(&mut mine, "mine"),
        Value::Array(vec![Value::Okay]),
        "EXEC with no change"
    );
    let got: String = redis::cmd("GET").arg(key).query(&mut mine).unwrap();
    assert_eq!(got, "mine");
}

/// The transaction of the fault that once cut a store off for good: `MULTI`, 300 `SET`s of
/// 1 MiB under keys `{prefix}:i`, `EXEC`. The `SET` that crosses the store's
/// `--max-transaction-bytes` (`bound` bytes) is refused with the bound named, `EXEC` answers
/// `EXECABORT`, nothing of it is applied, and the store goes on: 64 pipelined 1 MiB `SET`s
/// after it all succeed and read back.
pub fn large_transaction_is_refused_and_the_store_goes_on(url: &str, prefix: &str, bound: u64) {
    let mut con = connect(url);
    let value = vec![b'x'; 1024 * 1024];
    let () = redis::cmd("MULTI").query(&mut con).unwrap();
    let mut first_refused = None;
    for i in 0..300 {
        let queued = redis::cmd("SET")
            .arg(format!("{prefix}:{i}"))
            .arg(&value)
            .query::<String>(&mut con);
        if let Err(e) = queued
            && first_refused.is_none()
        {
            first_refused = Some((i, e.to_string()));
        }
    }
    let (i, error) = first_refused.expect("a SET past the bound was refused");
    assert!(
        error.contains("transaction too large") && error.contains(&bound.to_string()),
        "SET {i}: {error}"
    );
    let exec = redis::cmd("EXEC")
        .query::<Value>(&mut con)
        .expect_err("EXEC of a transaction with a refused command");
    assert_eq!(exec.code(), Some("EXECABORT"), "{exec}");
    let none: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("{prefix}:0"))
        .query(&mut con)
        .unwrap();
    assert_eq!(none, None, "nothing of the refused transaction was applied");
    let mut pipe = redis::pipe();
    for i in 0..64 {
        pipe.cmd("SET")
            .arg(format!("{prefix}:after:{i}"))
            .arg(&value)
            .ignore();
    }
    let started = Instant::now();
    let () = pipe.query(&mut con).unwrap_or_else(|e| {
        panic!(
            "64 pipelined 1 MiB SETs, after {:?}: {e}",
            started.elapsed()
        )
    });
    println!(
        "{prefix}: a transaction refused at SET {i}; then 64 pipelined 1 MiB SETs in {:?}",
        started.elapsed()
    );
    // Every one arrives. (On a replicated store, a replica kept busy by 64 MiB of gossip in a
    // debug build can be taken for dead for a moment, and the connection moved to a replica
    // that has not heard of the writes yet: read until gossip has brought them.)
    for i in [0, 63] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got: Option<Vec<u8>> = redis::cmd("GET")
                .arg(format!("{prefix}:after:{i}"))
                .query(&mut con)
                .unwrap();
            if got.as_ref().map(Vec::len) == Some(value.len()) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{prefix}:after:{i} never arrived"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}
