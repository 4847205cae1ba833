//! The hardened RESP edge, against `kvs-zoo serve local` started with the settings each test
//! needs: input that once crashed a connection, clients that never read their replies,
//! `--max-clients`, `--request-timeout`, `--requirepass` and `INFO`.

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use kvs_zoo::edge::resp::Reply;
use redis::AsyncCommands;
use support::{Server, closes, exchange, is_closed, read_at_least, request};

/// The proxy's peak resident memory, in bytes (`VmHWM` in `/proc/<pid>/status`).
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proxy is alive");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in kB")
        * 1024
}

fn set_command(key: &str, value: &[u8]) -> Vec<u8> {
    let mut cmd = format!(
        "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n",
        key.len(),
        value.len()
    )
    .into_bytes();
    cmd.extend_from_slice(value);
    cmd.extend_from_slice(b"\r\n");
    cmd
}

/// The reported crash: a command whose only argument is over the value limit.
#[test]
fn a_command_that_is_only_an_oversized_argument_is_answered() {
    let server = Server::start("local", &[]);
    let mut s = server.connect();
    let size = 2_000_000;
    let mut input = format!("*1\r\n${size}\r\n").into_bytes();
    input.extend(vec![b'x'; size]);
    input.extend(b"\r\n*1\r\n$4\r\nPING\r\n");
    let want = "-ERR argument too large: keys and values are limited to 1048576 bytes\r\n+PONG\r\n";
    let got = exchange(&mut s, &input, want.len());
    assert_eq!(String::from_utf8_lossy(&got), want);
    server.stop();
}

/// 40 clients each pipeline 1,500 GETs of a 1 MiB value and never read a reply: they are
/// disconnected at the output limit, the proxy's memory stays under 1 GiB, and a client that
/// does read is served all along.
#[test]
fn clients_that_never_read_cannot_exhaust_memory() {
    const CLIENTS: usize = 40;
    const GETS: usize = 1_500;
    let server = Server::start("local", &[]);
    let pid = server.pids["proxy/0"];
    let mut writer = server.connect();
    let value = vec![b'v'; 1024 * 1024];
    assert_eq!(
        exchange(&mut writer, &set_command("big", &value), 5),
        b"+OK\r\n"
    );
    let before = peak_rss(pid);

    let gets = b"*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n".repeat(GETS);
    let flooders: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut s = server.connect();
            let gets = gets.clone();
            std::thread::spawn(move || {
                // The server stops reading once 1,024 commands wait (backpressure), so this
                // write may block until the server disconnects us: that is expected.
                let _ = s.write_all(&gets);
                s
            })
        })
        .collect();

    // Meanwhile a well-behaved client is served promptly.
    let mut bystander = server.connect();
    for i in 0..20 {
        let started = Instant::now();
        let v = format!("{i}");
        assert_eq!(
            exchange(&mut bystander, &set_command("bystander", v.as_bytes()), 5),
            b"+OK\r\n"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a reading client waited {:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = server.wait_for_line("passed the client output limit", Duration::from_secs(60));
    assert!(
        closed.is_some(),
        "no client was disconnected at the output limit"
    );
    let mut flooders: Vec<_> = flooders.into_iter().map(|t| t.join().unwrap()).collect();
    for s in &mut flooders {
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    }
    // Every flooder is disconnected in the end (its unread replies pass the limit).
    let disconnected = flooders.iter_mut().map(closes).filter(|&c| c).count();
    let peak = peak_rss(pid);
    println!(
        "proxy peak resident memory: {} MiB before, {} MiB after {CLIENTS} clients × {GETS} \
         unread GETs of 1 MiB",
        before >> 20,
        peak >> 20
    );
    assert_eq!(disconnected, CLIENTS);
    assert!(peak < 1 << 30, "proxy peaked at {} MiB", peak >> 20);
    assert_eq!(exchange(&mut bystander, b"PING\r\n", 7), b"+PONG\r\n");
    server.stop();
}

#[test]
fn connections_past_max_clients_are_refused() {
    let server = Server::start("local", &["--max-clients", "3"]);
    let mut admitted: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for s in &mut admitted {
        assert_eq!(exchange(s, b"PING\r\n", 7), b"+PONG\r\n");
    }
    let mut refused = server.connect();
    let got = read_at_least(&mut refused, usize::MAX);
    assert_eq!(
        String::from_utf8_lossy(&got),
        "-ERR max number of clients reached\r\n"
    );
    assert!(is_closed(&mut refused));
    // A place frees up when a client leaves. The server may take a moment to see the close,
    // and connections it refuses meanwhile are counted too.
    drop(admitted.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refusals = 1;
    loop {
        let mut s = server.connect();
        let got = exchange(&mut s, b"PING\r\n", 7);
        if got == b"+PONG\r\n" {
            break;
        }
        refusals += 1;
        assert!(Instant::now() < deadline, "no place freed up: {got:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let Reply::Bulk(info) = request(&mut admitted[0], b"INFO stats\r\n") else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8_lossy(&info);
    assert!(
        info.contains(&format!("rejected_connections:{refusals}\r\n")),
        "{refusals} refused: {info}"
    );
    server.stop();
}

/// `DEBUG SLEEP` stands in for a store that lost a request: its reply does not come back
/// within the timeout, so the client gets an error, and the replies behind it follow.
#[test]
fn a_request_past_its_deadline_is_answered_with_an_error() {
    let server = Server::start(
        "local",
        &["--request-timeout", "500ms", "--enable-debug-command"],
    );
    let mut s = server.connect();
    let started = Instant::now();
    let want = "-ERR request timed out: the store did not answer within 500 ms\r\n$-1\r\n+PONG\r\n";
    let got = exchange(
        &mut s,
        b"DEBUG SLEEP 3\r\nGET nothing\r\nPING\r\n",
        want.len(),
    );
    let took = started.elapsed();
    assert_eq!(String::from_utf8_lossy(&got), want);
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    // The late result (3 s) is dropped; the connection goes on.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(exchange(&mut s, b"ECHO still\r\n", 11), b"$5\r\nstill\r\n");
    // A request that does come back in time is unaffected.
    assert_eq!(exchange(&mut s, b"DEBUG SLEEP 0.1\r\n", 5), b"+OK\r\n");
    server.stop();
}

#[test]
fn debug_is_off_by_default() {
    let server = Server::start("local", &[]);
    let mut s = server.connect();
    let got = String::from_utf8_lossy(&exchange(&mut s, b"DEBUG SLEEP 1\r\n", 10)).into_owned();
    assert!(got.starts_with("-ERR DEBUG command not allowed"), "{got}");
    server.stop();
}

#[test]
fn auth_is_required_when_a_password_is_set() {
    let server = Server::start("local", &["--requirepass", "s3cret"]);
    let mut s = server.connect();
    let noauth = b"-NOAUTH Authentication required.\r\n";
    assert_eq!(exchange(&mut s, b"GET k\r\n", noauth.len()), noauth);
    assert_eq!(exchange(&mut s, b"PING\r\n", noauth.len()), noauth);
    let wrongpass = b"-WRONGPASS invalid username-password pair or user is disabled.\r\n";
    assert_eq!(
        exchange(&mut s, b"AUTH guess\r\n", wrongpass.len()),
        wrongpass
    );
    assert_eq!(exchange(&mut s, b"AUTH s3cret\r\n", 5), b"+OK\r\n");
    assert_eq!(exchange(&mut s, b"PING\r\n", 7), b"+PONG\r\n");

    // HELLO 2 AUTH, as client libraries send it.
    let mut s = server.connect();
    let hello = exchange(&mut s, b"HELLO 2 AUTH default s3cret\r\n", 10);
    assert!(
        hello.starts_with(b"*14\r\n"),
        "{:?}",
        String::from_utf8_lossy(&hello)
    );

    // The redis crate with the password in the URL.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let url = format!("redis://:s3cret@{}/", server.addr);
        let mut con = redis::Client::open(url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("the redis crate logs in");
        let _: () = con.set("authed", "yes").await.unwrap();
        assert_eq!(con.get::<_, String>("authed").await.unwrap(), "yes");
        let wrong = format!("redis://:nope@{}/", server.addr);
        let refused = redis::Client::open(wrong.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await;
        assert!(refused.is_err(), "a wrong password must be refused");
    });
    server.stop();
}

#[test]
fn info_reports_the_deployment_and_its_counters() {
    let server = Server::start("local", &["--max-clients", "77"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut con = redis::Client::open(server.url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        for i in 0..100 {
            let _: () = con.set("counted", i).await.unwrap();
        }
        let info: String = redis::cmd("INFO").query_async(&mut con).await.unwrap();
        let field = |key: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}:")))
                .map(str::trim)
                .map(String::from)
                .unwrap_or_else(|| panic!("INFO has no {key}: {info}"))
        };
        for section in ["# Server", "# Clients", "# Stats"] {
            assert!(info.contains(section), "{info}");
        }
        assert_eq!(field("kvs_zoo_architecture"), "local");
        assert_eq!(field("tcp_port"), server.port.to_string());
        assert_eq!(field("process_id"), server.pids["proxy/0"].to_string());
        assert_eq!(field("maxclients"), "77");
        assert!(field("connected_clients").parse::<u64>().unwrap() >= 1);
        assert!(field("total_connections_received").parse::<u64>().unwrap() >= 1);
        assert!(field("total_commands_processed").parse::<u64>().unwrap() >= 100);
        assert_eq!(field("rejected_connections"), "0");
        field("instantaneous_ops_per_sec").parse::<u64>().unwrap();
        field("uptime_in_seconds").parse::<u64>().unwrap();
        // One section by name.
        let clients: String = redis::cmd("INFO")
            .arg("clients")
            .query_async(&mut con)
            .await
            .unwrap();
        assert!(clients.starts_with("# Clients") && !clients.contains("# Server"));
    });
    server.stop();
}
