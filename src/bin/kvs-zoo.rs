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
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    let result = match serve.architecture.as_str() {
        "local" => kvs_zoo::demo::serve(Local, hosts, serve.front, deployment).await,
        other => Err(format!("unknown architecture '{other}' (available: local)")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvs-zoo: {e}");
            ExitCode::FAILURE
        }
    }
}
