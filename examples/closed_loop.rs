//! A closed-loop write benchmark that speaks to a RESP server (any kvs-zoo architecture,
//! Redis) or to etcd (its JSON gateway, `POST /v3/kv/put`), so the two are measured by the
//! same client: N clients, each sending one write and waiting for its answer before the next,
//! for a fixed time. Prints throughput and latency percentiles. `bench/etcd_compare.sh` runs
//! it against `kvs-zoo serve linearizable` and a three-member etcd cluster.
//!
//! ```text
//! cargo run --release --example closed_loop -- resp 127.0.0.1:6379 50 10
//! cargo run --release --example closed_loop -- etcd 127.0.0.1:2379 50 10
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: closed_loop <resp|etcd> <host:port> <clients> <seconds>";

/// One client's connection.
enum Client {
    Resp(redis::Connection),
    Etcd {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
        host: String,
    },
}

impl Client {
    fn connect(protocol: &str, addr: &str) -> Result<Client, String> {
        match protocol {
            "resp" => {
                let client =
                    redis::Client::open(format!("redis://{addr}/")).map_err(|e| e.to_string())?;
                Ok(Client::Resp(
                    client.get_connection().map_err(|e| e.to_string())?,
                ))
            }
            "etcd" => {
                let writer = TcpStream::connect(addr).map_err(|e| e.to_string())?;
                writer.set_nodelay(true).map_err(|e| e.to_string())?;
                let reader = BufReader::new(writer.try_clone().map_err(|e| e.to_string())?);
                Ok(Client::Etcd {
                    reader,
                    writer,
                    host: addr.to_string(),
                })
            }
            other => Err(format!("unknown protocol '{other}'\n{USAGE}")),
        }
    }

    /// Writes `value` at `key` and waits for the acknowledgement.
    fn put(&mut self, key: &str, value: &str) -> Result<(), String> {
        match self {
            Client::Resp(con) => redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query::<()>(con)
                .map_err(|e| e.to_string()),
            Client::Etcd {
                reader,
                writer,
                host,
            } => {
                let body = format!(
                    r#"{{"key":"{}","value":"{}"}}"#,
                    base64(key.as_bytes()),
                    base64(value.as_bytes())
                );
                let request = format!(
                    "POST /v3/kv/put HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                writer
                    .write_all(request.as_bytes())
                    .map_err(|e| e.to_string())?;
                read_http_response(reader)
            }
        }
    }
}

/// Reads one HTTP/1.1 response (a `Content-Length` or chunked body) and checks its status.
fn read_http_response(reader: &mut BufReader<TcpStream>) -> Result<(), String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|e| e.to_string())?;
    let status = line.clone();
    let (mut length, mut chunked) = (0usize, false);
    loop {
        line.clear();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let lower = header.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("content-length:") {
            length = n
                .trim()
                .parse()
                .map_err(|_| format!("bad header {header}"))?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            let size = usize::from_str_radix(line.trim(), 16).map_err(|e| e.to_string())?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).map_err(|e| e.to_string())?;
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0; length];
        reader.read_exact(&mut body).map_err(|e| e.to_string())?;
    }
    if !status.contains(" 200 ") {
        return Err(format!("etcd answered {}", status.trim_end()));
    }
    Ok(())
}

/// Standard base64, with padding (what etcd's JSON gateway expects for bytes).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [protocol, addr, clients, seconds] = &args[..] else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let (Ok(clients), Ok(seconds)) = (clients.parse::<usize>(), seconds.parse::<u64>()) else {
        eprintln!("{USAGE}");
        std::process::exit(2);
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (protocol, addr) = (protocol.clone(), addr.clone());
            std::thread::spawn(move || -> Result<Vec<Duration>, String> {
                let mut client = Client::connect(&protocol, &addr)?;
                let mut latencies = Vec::new();
                let value = "v".repeat(16);
                let mut i = 0u64;
                while Instant::now() < deadline {
                    let key = format!("bench-{c}-{}", i % 1000);
                    let sent = Instant::now();
                    client.put(&key, &value)?;
                    latencies.push(sent.elapsed());
                    i += 1;
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::new();
    for worker in workers {
        match worker.join() {
            Ok(Ok(latencies)) => all.extend(latencies),
            Ok(Err(e)) => {
                eprintln!("closed_loop: a client failed: {e}");
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("closed_loop: a client panicked");
                std::process::exit(1);
            }
        }
    }
    all.sort();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map_or(0, |d| d.as_micros())
    };
    println!(
        "{protocol} {addr} clients={clients} writes_per_s={:.0} p50_us={} p99_us={}",
        all.len() as f64 / seconds as f64,
        pct(0.50),
        pct(0.99)
    );
}
