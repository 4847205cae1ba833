//! `redis-benchmark` runs to completion against `kvs-zoo serve local`: every reply received,
//! with one client, many clients, and pipelining. (Throughput is measured by
//! `bench/redis_compare.sh`, not here.)

mod support;

use std::process::Command;

use support::Server;

#[test]
fn redis_benchmark_completes() {
    let server = Server::start("local", &[]);
    for extra in [&["-c", "1"][..], &["-c", "50"], &["-c", "50", "-P", "16"]] {
        let out = Command::new("timeout")
            .arg("300")
            .arg("redis-benchmark")
            .args([
                "-p",
                &server.port.to_string(),
                "-t",
                "set,get,ping",
                "-n",
                "20000",
                "-q",
            ])
            .args(extra)
            .output()
            .expect("redis-benchmark is installed (.ci/run installs redis-tools)");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: Vec<&str> = stdout
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .collect();
        println!(
            "redis-benchmark {extra:?}: {summary:#?} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "redis-benchmark {extra:?} did not finish: {}",
            out.status
        );
        // `-q` ends each test with "<TEST>: <n> requests per second" once it has received every
        // reply (progress lines before it are separated by carriage returns).
        let lines: Vec<&str> = stdout.split(['\r', '\n']).map(str::trim).collect();
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with(&format!("{test}: "))
                        && l.contains("requests per second")),
                "redis-benchmark {extra:?} did not complete {test}"
            );
        }
    }
    server.stop();
}
