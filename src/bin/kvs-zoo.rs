//! `kvs-zoo`: serve one of the zoo's architectures to Redis clients.
//!
//! ```text
//! kvs-zoo serve local [--port 6379] [--bind 127.0.0.1] [--max-value-bytes 1048576]
//! ```

use std::process::ExitCode;

use hydro_deploy::Deployment;
use kvs_zoo::Hosts;
use kvs_zoo::commands::DEFAULT_MAX_VALUE_BYTES;
use kvs_zoo::front::FrontConfig;
use kvs_zoo::local::Local;

const USAGE: &str = "\
usage: kvs-zoo serve <architecture> [options]

architectures:
  local                 one process, last-writer-wins

options:
  --port <P>            TCP port to listen on (default 6379)
  --bind <ADDR>         address to listen on (default 127.0.0.1)
  --max-value-bytes <N> longest key or value accepted (default 1048576)
  -h, --help            show this help

Build with --release for benchmarks: the store's processes are then built optimized.";

/// The architectures `serve` knows.
const ARCHITECTURES: &[&str] = &["local"];

/// What the command line asked for.
struct ServeArgs {
    architecture: String,
    front: FrontConfig,
}

fn parse(args: &[String]) -> Result<Option<ServeArgs>, String> {
    let mut it = args.iter();
    match it.next().map(String::as_str) {
        Some("-h" | "--help") => return Ok(None),
        Some("serve") => {}
        Some(other) => return Err(format!("unknown command '{other}'")),
        None => return Err("missing command".into()),
    }
    let architecture = it.next().ok_or("missing architecture")?.clone();
    if architecture == "-h" || architecture == "--help" {
        return Ok(None);
    }
    if !ARCHITECTURES.contains(&architecture.as_str()) {
        return Err(format!(
            "unknown architecture '{architecture}' (available: {})",
            ARCHITECTURES.join(", ")
        ));
    }
    let (mut port, mut bind, mut max_value_bytes) =
        (6379u16, "127.0.0.1".to_string(), DEFAULT_MAX_VALUE_BYTES);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(None);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|_| format!("bad port '{value}'"))?,
            "--bind" => bind = value.clone(),
            "--max-value-bytes" => {
                max_value_bytes = value
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("bad --max-value-bytes '{value}'"))?
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let front = FrontConfig {
        bind: if bind.contains(':') {
            format!("[{bind}]:{port}")
        } else {
            format!("{bind}:{port}")
        },
        max_value_bytes,
    };
    Ok(Some(ServeArgs {
        architecture,
        front,
    }))
}

fn main() -> ExitCode {
    // Hydro builds each location's code from this crate's sources at deploy time and finds
    // them through CARGO_MANIFEST_DIR, which only `cargo run` sets. Point it at the sources this
    // binary was built from, so `target/release/kvs-zoo` also works when run directly.
    if std::env::var_os("CARGO_MANIFEST_DIR").is_none() {
        // SAFETY: no other thread exists yet (the tokio runtime starts below).
        unsafe { std::env::set_var("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR")) };
    }
    tokio::runtime::Runtime::new()
        .expect("a tokio runtime starts")
        .block_on(run())
}

async fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve = match parse(&args) {
        Ok(Some(serve)) => serve,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("kvs-zoo: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Fail early and clearly if the port is taken, rather than after building the store.
    if let Err(e) = std::net::TcpListener::bind(&serve.front.bind) {
        eprintln!("kvs-zoo: cannot listen on {}: {e}", serve.front.bind);
        return ExitCode::from(2);
    }
    // Deploying compiles the store's processes first; say so, or the wait looks like a hang.
    eprintln!(
        "kvs-zoo: building and starting '{}' (the first start compiles the store: minutes)",
        serve.architecture
    );
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    let result = match serve.architecture.as_str() {
        "local" => kvs_zoo::demo::serve(Local, hosts, serve.front, deployment).await,
        other => unreachable!("parse accepts only known architectures, not '{other}'"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvs-zoo: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_words(words: &str) -> Result<Option<ServeArgs>, String> {
        let args: Vec<String> = words.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    #[test]
    fn defaults_and_options() {
        let serve = parse_words("serve local").unwrap().unwrap();
        assert_eq!(serve.architecture, "local");
        assert_eq!(serve.front, FrontConfig::localhost(6379));
        let serve = parse_words("serve local --port 7000 --bind ::1 --max-value-bytes 10")
            .unwrap()
            .unwrap();
        assert_eq!(serve.front.bind, "[::1]:7000");
        assert_eq!(serve.front.max_value_bytes, 10);
    }

    #[test]
    fn help_is_not_an_error() {
        for words in ["--help", "serve -h", "serve local --port 1 -h"] {
            assert!(parse_words(words).unwrap().is_none(), "{words}");
        }
    }

    #[test]
    fn bad_command_lines_are_explained() {
        for (words, error) in [
            ("", "missing command"),
            ("run local", "unknown command 'run'"),
            ("serve", "missing architecture"),
            (
                "serve paxos",
                "unknown architecture 'paxos' (available: local)",
            ),
            ("serve local --port", "--port needs a value"),
            ("serve local --port 70000", "bad port '70000'"),
            (
                "serve local --max-value-bytes 0",
                "bad --max-value-bytes '0'",
            ),
            ("serve local --verbose 1", "unknown option '--verbose'"),
        ] {
            assert_eq!(parse_words(words).err().as_deref(), Some(error), "{words}");
        }
    }
}
