//! `kvs-zoo serve local` over the Redis protocol: a Redis client library, raw sockets,
//! pipelining, reconnects, concurrent clients, and every kind of bad input.
//!
//! One server serves every scenario in turn (starting one costs a deployment), and each
//! scenario uses its own keys.

mod support;

use redis::AsyncCommands;
use support::{Server, exchange, is_closed, read_at_least};

#[test]
fn local_store_over_resp() {
    let server = Server::start("local", &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(redis_client_commands(&server));
    rt.block_on(concurrent_clients(&server));
    reconnects_get_their_first_reply(&server);
    pipelined_replies_come_in_request_order(&server);
    bad_input_gets_redis_errors(&server);
    oversized_values_are_refused_and_the_connection_lives(&server);
    malformed_frames_close_only_their_connection(&server);
    quit_and_inline_commands(&server);
    redis_cli_works(&server);
    support::redis_client::check_keys_expire(
        &mut support::redis_client::connect(&server.url),
        "local:ttl",
    );
    // After all of that, the server still serves.
    rt.block_on(async {
        let mut con = connection(&server).await;
        let _: () = con.set("after", "all").await.unwrap();
        assert_eq!(con.get::<_, String>("after").await.unwrap(), "all");
    });
    server.stop();
}

async fn connection(server: &Server) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the redis crate connects")
}

async fn redis_client_commands(server: &Server) {
    let mut con = connection(server).await;
    let pong: String = redis::cmd("PING").query_async(&mut con).await.unwrap();
    assert_eq!(pong, "PONG");
    let _: () = con.set("lib:a", "1").await.unwrap();
    assert_eq!(
        con.get::<_, Option<String>>("lib:a").await.unwrap(),
        Some("1".into())
    );
    assert_eq!(
        con.get::<_, Option<String>>("lib:none").await.unwrap(),
        None
    );
    let _: () = con.mset(&[("lib:b", "2"), ("lib:c", "3")]).await.unwrap();
    let got: Vec<Option<String>> = con.mget(&["lib:a", "lib:x", "lib:c"]).await.unwrap();
    assert_eq!(got, vec![Some("1".into()), None, Some("3".into())]);
    assert_eq!(
        con.exists::<_, i64>(&["lib:a", "lib:b", "lib:x", "lib:a"])
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        con.del::<_, i64>(&["lib:a", "lib:b", "lib:x"])
            .await
            .unwrap(),
        2
    );
    assert_eq!(con.exists::<_, i64>("lib:a").await.unwrap(), 0);
    // Overwrite: the last write wins.
    let _: () = con.set("lib:c", "30").await.unwrap();
    assert_eq!(con.get::<_, String>("lib:c").await.unwrap(), "30");
    // Binary-safe keys and values, including CR LF and NUL bytes.
    let binary: Vec<u8> = (0u8..=255).chain(*b"\r\n\0").collect();
    let _: () = con.set(&binary[..], &binary[..]).await.unwrap();
    assert_eq!(con.get::<_, Vec<u8>>(&binary[..]).await.unwrap(), binary);
    // A value just at the 1 MiB limit is accepted.
    let big = vec![b'x'; 1024 * 1024];
    let _: () = con.set("lib:big", &big[..]).await.unwrap();
    assert_eq!(
        con.get::<_, Vec<u8>>("lib:big").await.unwrap().len(),
        big.len()
    );
    // Unsupported options are refused, not silently ignored.
    let err = redis::cmd("EXPIRE")
        .arg("lib:a")
        .arg(10)
        .arg("GT")
        .query_async::<()>(&mut con)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not supported"), "{err}");
}

async fn concurrent_clients(server: &Server) {
    let clients = 16;
    let rounds = 100;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let url = server.url.clone();
            tokio::spawn(async move {
                let mut con = redis::Client::open(url.as_str())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap();
                for r in 0..rounds {
                    let key = format!("conc:{c}:{}", r % 10);
                    let value = format!("{c}-{r}");
                    let _: () = con.set(&key, &value).await.unwrap();
                    let got: String = con.get(&key).await.unwrap();
                    assert_eq!(got, value, "client {c} read another client's reply");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

/// The sequence that lost replies on Hydro's own many-client port: connect, send,
/// disconnect; connect again and send — the new connection's *first* reply must arrive.
fn reconnects_get_their_first_reply(server: &Server) {
    for i in 0..50 {
        let mut s = server.connect();
        let set = format!(
            "*3\r\n$3\r\nSET\r\n$6\r\nre:key\r\n${}\r\n{i}\r\n",
            i.to_string().len()
        );
        let reply = exchange(&mut s, set.as_bytes(), 5);
        assert_eq!(reply, b"+OK\r\n", "reconnect {i}");
        drop(s);
    }
}

fn pipelined_replies_come_in_request_order(server: &Server) {
    let mut s = server.connect();
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        let v = format!("v{i}");
        request.extend(format!("*3\r\n$3\r\nSET\r\n$4\r\npipe\r\n${}\r\n{v}\r\n", v.len()).bytes());
        expected.extend(b"+OK\r\n");
        request.extend(b"*2\r\n$3\r\nGET\r\n$4\r\npipe\r\n");
        expected.extend(format!("${}\r\n{v}\r\n", v.len()).bytes());
        // Interleave commands the front answers itself with ones the store answers.
        request.extend(format!("*2\r\n$4\r\nECHO\r\n${}\r\n{i}\r\n", i.to_string().len()).bytes());
        expected.extend(format!("${}\r\n{i}\r\n", i.to_string().len()).bytes());
    }
    request.extend(b"*3\r\n$3\r\nDEL\r\n$4\r\npipe\r\n$4\r\npipe\r\n");
    expected.extend(b":1\r\n");
    let reply = exchange(&mut s, &request, expected.len());
    assert_eq!(
        String::from_utf8_lossy(&reply),
        String::from_utf8_lossy(&expected)
    );
}

fn bad_input_gets_redis_errors(server: &Server) {
    let mut s = server.connect();
    let cases: [(&[u8], &[u8]); 5] = [
        (
            b"*2\r\n$7\r\nFLYAWAY\r\n$1\r\nx\r\n",
            b"-ERR unknown command 'FLYAWAY', with args beginning with: 'x' \r\n",
        ),
        (
            b"*1\r\n$3\r\nGET\r\n",
            b"-ERR wrong number of arguments for 'get' command\r\n",
        ),
        (
            b"*2\r\n$3\r\nSET\r\n$1\r\nk\r\n",
            b"-ERR wrong number of arguments for 'set' command\r\n",
        ),
        (
            b"*4\r\n$4\r\nMSET\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n",
            b"-ERR wrong number of arguments for 'mset' command\r\n",
        ),
        (
            b"*1\r\n$3\r\nDEL\r\n",
            b"-ERR wrong number of arguments for 'del' command\r\n",
        ),
    ];
    for (input, want) in cases {
        let got = exchange(&mut s, input, want.len());
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }
    // The connection is still usable after errors.
    assert_eq!(exchange(&mut s, b"*1\r\n$4\r\nPING\r\n", 7), b"+PONG\r\n");
}

fn oversized_values_are_refused_and_the_connection_lives(server: &Server) {
    let mut s = server.connect();
    let size = 1024 * 1024 + 1;
    let mut input = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${size}\r\n").into_bytes();
    input.extend(vec![b'x'; size]);
    input.extend(b"\r\n*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n");
    let want_err = b"-ERR argument too large: keys and values are limited to 1048576 bytes\r\n";
    let got = exchange(&mut s, &input, want_err.len() + 5);
    assert_eq!(
        String::from_utf8_lossy(&got),
        format!("{}$-1\r\n", String::from_utf8_lossy(want_err)),
        "the oversized SET is refused and the GET after it is answered"
    );
}

fn malformed_frames_close_only_their_connection(server: &Server) {
    let mut bystander = server.connect();
    for bad in [
        &b"*1\r\n:5\r\n"[..],
        b"*abc\r\n",
        b"*1\r\n$-7\r\n",
        b"*1\r\n$3\r\nGETXX",
    ] {
        let mut s = server.connect();
        let got = String::from_utf8_lossy(&exchange(&mut s, bad, 1)).into_owned();
        let got = got + &String::from_utf8_lossy(&read_at_least(&mut s, usize::MAX));
        assert!(
            got.starts_with("-ERR Protocol error"),
            "{bad:?} got {got:?}"
        );
        assert!(
            is_closed(&mut s),
            "the connection closes after a protocol error"
        );
    }
    assert_eq!(exchange(&mut bystander, b"PING\r\n", 7), b"+PONG\r\n");
}

fn quit_and_inline_commands(server: &Server) {
    let mut s = server.connect();
    // Inline commands, as typed into telnet.
    assert_eq!(exchange(&mut s, b"PING\r\n", 7), b"+PONG\r\n");
    assert_eq!(exchange(&mut s, b"SET inline yes\r\n", 5), b"+OK\r\n");
    assert_eq!(exchange(&mut s, b"GET inline\r\n", 9), b"$3\r\nyes\r\n");
    // QUIT answers after the replies before it, then closes.
    let got = exchange(&mut s, b"GET inline\r\nQUIT\r\nPING\r\n", usize::MAX);
    assert_eq!(got, b"$3\r\nyes\r\n+OK\r\n");
}

fn redis_cli_works(server: &Server) {
    let cli = |args: &[&str]| {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &server.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli is installed (.ci/run installs redis-tools)");
        assert!(out.status.success(), "redis-cli {args:?} failed");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["SET", "cli", "hello"]), "OK\n");
    assert_eq!(cli(&["GET", "cli"]), "hello\n");
    assert_eq!(cli(&["DEL", "cli", "nothing"]), "1\n");
}
