//! `kvs-zoo`: serve one of the zoo's architectures to Redis clients, or build their
//! processes ahead of time.
//!
//! ```text
//! kvs-zoo build local replicated …      # or --all: a later `serve` of them builds nothing
//! kvs-zoo serve local [--port 6379] [--bind 127.0.0.1] [--requirepass PASS] …
//! kvs-zoo serve replicated [--replicas 3] [--gossip-interval 50ms] …
//! kvs-zoo serve sharded [--shards 3] [--virtual-nodes 512]
//! kvs-zoo serve sharded-replicated [--shards 3] [--replicas 3] [--gossip-interval 50ms] …
//! kvs-zoo serve linearizable [--f 1]
//! ```
//!
//! The architectures, their options and their defaults come from the registry
//! ([`kvs_zoo::architectures::registry`]); `kvs-zoo serve --help` lists them.

use std::process::ExitCode;

use hydro_deploy::Deployment;
use kvs_zoo::Hosts;
use kvs_zoo::architectures::options::{self, parse_bytes, parse_duration};
use kvs_zoo::architectures::{self as registry, Architecture};
use kvs_zoo::deploy::console::Console;
use kvs_zoo::deploy::{DataDir, Durability};
use kvs_zoo::durability::{self, Fsync};
use kvs_zoo::edge::auth::Password;
use kvs_zoo::edge::config::FrontConfig;

const USAGE: &str = "\
usage: kvs-zoo serve <architecture> [options]
       kvs-zoo build <architecture>... | --all

build compiles each named architecture's processes (the first start of an
architecture does it otherwise: minutes), so that every later serve of it,
with any options, starts in seconds.";

const FRONT_OPTIONS: &str = "\
options:
  --port <P>                  TCP port to listen on (default 6379)
  --bind <ADDR>               address to listen on (default 127.0.0.1)
  --requirepass <PASS>        clients must AUTH with this password first
  --max-value-bytes <N>       longest key or value accepted (default 1048576)
  --max-transaction-bytes <N> most bytes a MULTI's commands may queue; past it the
                              transaction is refused (default 64mb)
  --max-clients <N>           most clients connected at once (default 10000)
  --client-output-limit <N>   most bytes of unread replies per client before it is
                              disconnected (default 64mb; suffixes kb, mb, gb)
  --request-timeout <T>       answer a request with an error if the store has not
                              within T (default 5s; e.g. 1.5s, 500ms)
  --restart-after <T>         start a member again T after its process dies (default
                              2s; 'never' leaves it dead); see the README's faults
  --data-dir <DIR>            keep each process's data on disk under DIR (a log and
                              snapshots), so a crash of any or every process loses no
                              acknowledged write; without it, data is in memory only
  --fsync <always|everysec|no>
                              when the log is synced, as Redis's appendfsync (default
                              always for linearizable, everysec for the others)
  --snapshot-after <N>        compact a process's log into a snapshot once it holds N
                              bytes (default 64mb)
  --enable-debug-command      accept DEBUG SLEEP <seconds> (for testing timeouts)
  --verbose                   show hydro_deploy's launch commands and the compiler's
                              warnings about generated code
  -h, --help                  show this help";

/// The whole `--help`: usage, the registry's architectures and their options, the front's
/// options.
fn usage() -> String {
    format!(
        "{USAGE}\n\n{}\n{FRONT_OPTIONS}\n\nBuild with --release for benchmarks: the store's \
         processes are then built optimized.",
        registry::help()
    )
}

/// What the command line asked for.
enum Command {
    /// Serve one architecture.
    Serve(Box<ServeArgs>),
    /// Build these architectures' processes.
    Build(Vec<Box<dyn Architecture>>),
    /// Show the usage.
    Help,
}

/// What `serve` was asked for.
struct ServeArgs {
    /// The architecture, with its options set.
    architecture: Box<dyn Architecture>,
    front: FrontConfig,
    /// How long after a member dies it is started again (`None`: never).
    restart_after: Option<std::time::Duration>,
    /// Where the processes keep their data on disk (`None`: in memory only).
    data: Option<DataDir>,
    verbose: bool,
}

fn parse(args: &[String]) -> Result<Command, String> {
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => Ok(Command::Help),
        Some("serve") => {
            Ok(parse_serve(&args[1..])?
                .map_or(Command::Help, |serve| Command::Serve(Box::new(serve))))
        }
        Some("build") => parse_build(&args[1..]),
        Some(other) => Err(format!("unknown command '{other}'")),
        None => Err("missing command".into()),
    }
}

/// `build`'s arguments: architectures, or `--all`.
fn parse_build(args: &[String]) -> Result<Command, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Command::Help);
    }
    if args.iter().any(|a| a == "--all") {
        if args.len() > 1 {
            return Err("build takes architectures or --all, not both".into());
        }
        return Ok(Command::Build(registry::registry()));
    }
    if args.is_empty() {
        return Err("build needs architectures, or --all".into());
    }
    let mut architectures: Vec<Box<dyn Architecture>> = vec![];
    for name in args {
        if name.starts_with('-') {
            return Err(format!("unknown option '{name}'"));
        }
        let architecture = registry::find(name)?;
        if !architectures.iter().any(|a| a.name() == name) {
            architectures.push(architecture);
        }
    }
    Ok(Command::Build(architectures))
}

/// `serve`'s arguments; `None` for a request for help.
fn parse_serve(args: &[String]) -> Result<Option<ServeArgs>, String> {
    let mut it = args.iter();
    let name = it.next().ok_or("missing architecture")?;
    if name == "-h" || name == "--help" {
        return Ok(None);
    }
    let mut architecture = registry::find(name)?;
    let mut front = FrontConfig::localhost(name, 6379);
    let mut verbose = false;
    let mut restart_after = Some(kvs_zoo::deploy::DEFAULT_RESTART_AFTER);
    let (mut port, mut bind) = (6379u16, "127.0.0.1".to_string());
    let (mut data_dir, mut fsync, mut snapshot_after) = (None, None, None);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--enable-debug-command" => {
                front.commands.debug_command = true;
                continue;
            }
            "--verbose" => {
                verbose = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = || options::bad(flag, value);
        if architecture.options().iter().any(|o| o.flag == flag) {
            architecture.set_option(flag, value)?;
            continue;
        }
        // An option of another architecture is a mistake worth naming as such.
        let elsewhere = registry::registry()
            .iter()
            .any(|a| a.options().iter().any(|o| o.flag == flag));
        if elsewhere {
            return Err(format!("{flag} is not an option of '{name}' (see --help)"));
        }
        match flag.as_str() {
            "--port" => port = value.parse().map_err(|_| format!("bad port '{value}'"))?,
            "--bind" => bind = value.clone(),
            "--requirepass" if value.is_empty() => return Err(bad()),
            "--requirepass" => front.commands.requirepass = Some(Password::new(value.as_bytes())),
            "--max-value-bytes" => front.commands.max_value_bytes = options::positive(flag, value)?,
            "--max-transaction-bytes" => {
                front.commands.max_transaction_bytes = parse_bytes(value).ok_or_else(bad)?
            }
            "--max-clients" => front.max_clients = options::positive(flag, value)?,
            "--client-output-limit" => {
                front.client_output_limit = parse_bytes(value).ok_or_else(bad)?
            }
            "--request-timeout" => front.request_timeout = parse_duration(value).ok_or_else(bad)?,
            "--restart-after" if value == "never" => restart_after = None,
            "--restart-after" => restart_after = Some(parse_duration(value).ok_or_else(bad)?),
            "--data-dir" if value.is_empty() => return Err(bad()),
            "--data-dir" => data_dir = Some(std::path::PathBuf::from(value)),
            "--fsync" => fsync = Some(Fsync::parse(value).ok_or_else(bad)?),
            "--snapshot-after" => {
                snapshot_after = Some(parse_bytes(value).filter(|&n| n > 0).ok_or_else(bad)? as u64)
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    front.bind = if bind.contains(':') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    };
    let data = match data_dir {
        None if fsync.is_some() || snapshot_after.is_some() => {
            return Err("--fsync and --snapshot-after need --data-dir".into());
        }
        None => None,
        Some(_) if architecture.durability() == Durability::Memory => {
            let durable: Vec<&str> = registry::registry()
                .iter()
                .filter(|a| a.durability() != Durability::Memory)
                .map(|a| a.name())
                .collect();
            return Err(format!(
                "'{name}' keeps its data in memory only: --data-dir is for {} (see the \
                 README's durability table)",
                durable.join(", ")
            ));
        }
        Some(dir) => {
            // Absolute, so that every process finds it wherever it runs from.
            let dir = std::path::absolute(&dir)
                .map_err(|e| format!("--data-dir '{}': {e}", dir.display()))?;
            // A log synced before each answer is what a consensus store promises; the others
            // default to Redis's own default, once a second.
            let default_fsync = if architecture.capabilities().consensus {
                Fsync::Always
            } else {
                Fsync::EverySec
            };
            Some(DataDir {
                dir,
                settings: durability::Settings {
                    fsync: fsync.unwrap_or(default_fsync),
                    snapshot_after: snapshot_after.unwrap_or(durability::DEFAULT_SNAPSHOT_AFTER),
                },
            })
        }
    };
    Ok(Some(ServeArgs {
        architecture,
        front,
        restart_after,
        data,
        verbose,
    }))
}

/// True for addresses only this machine can reach.
fn is_loopback(bind: &str) -> bool {
    bind == "localhost"
        || bind
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    let result = match parse(&args) {
        Ok(Command::Help) => {
            println!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(serve)) => serve_one(*serve).await,
        Ok(Command::Build(architectures)) => build(&architectures).await,
        Err(e) => {
            eprintln!("kvs-zoo: {e}\n\n{}", usage());
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kvs-zoo: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_one(serve: ServeArgs) -> Result<(), String> {
    let host = serve.front.bind.rsplit_once(':').map_or("", |(h, _)| h);
    if !is_loopback(host.trim_matches(['[', ']'])) && serve.front.commands.requirepass.is_none() {
        eprintln!(
            "kvs-zoo: WARNING: listening on {} without a password: anyone who can reach it can \
             read and change every key (use --requirepass)",
            serve.front.bind
        );
    }
    // Fail early and clearly if the port is taken, rather than after building the store.
    if let Err(e) = std::net::TcpListener::bind(&serve.front.bind) {
        return Err(format!("cannot listen on {}: {e}", serve.front.bind));
    }
    let _console = Console::new(serve.verbose);
    let mut deployment = Deployment::new();
    match &serve.data {
        None => eprintln!(
            "kvs-zoo: keeping data in memory only: a crash of a process loses its keys \
             (--data-dir DIR keeps them on disk)"
        ),
        Some(data) => eprintln!(
            "kvs-zoo: keeping data in {} (fsync {}, a snapshot every {} bytes of log)",
            data.dir.display(),
            data.settings.fsync.name(),
            data.settings.snapshot_after
        ),
    }
    let hosts = Hosts {
        restart_after: serve.restart_after,
        data: serve.data,
        ..Hosts::localhost(&mut deployment)
    };
    eprintln!(
        "kvs-zoo: starting '{}' ({} processes; the first start of an architecture compiles \
         them: minutes)",
        serve.architecture.name(),
        build_kind(&hosts)
    );
    kvs_zoo::deploy::serve(&*serve.architecture, hosts, serve.front, deployment).await
}

/// How `hosts` builds the processes, as `serve` and `build` tell the user.
fn build_kind(hosts: &Hosts) -> &'static str {
    if hosts.optimized {
        "optimized"
    } else {
        "debug"
    }
}

/// Builds each architecture's processes, one after the other, saying which and how long.
async fn build(architectures: &[Box<dyn Architecture>]) -> Result<(), String> {
    let _console = Console::new(false);
    let total = architectures.len();
    for (i, architecture) in architectures.iter().enumerate() {
        let mut d = Deployment::new();
        let hosts = Hosts::localhost(&mut d);
        eprintln!(
            "kvs-zoo: [{}/{total}] building '{}' ({})",
            i + 1,
            architecture.name(),
            build_kind(&hosts)
        );
        // Settings reach the processes at run time, so the defaults build the same code as
        // any options would.
        kvs_zoo::deploy::build(&**architecture, &hosts, d).await?;
    }
    eprintln!("kvs-zoo: built {total} architecture(s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn command(words: &str) -> Result<Command, String> {
        let args: Vec<String> = words.split_whitespace().map(String::from).collect();
        parse(&args)
    }

    /// `serve`'s arguments, `None` for help.
    fn parse_words(words: &str) -> Result<Option<ServeArgs>, String> {
        match command(words)? {
            Command::Serve(serve) => Ok(Some(*serve)),
            Command::Help => Ok(None),
            Command::Build(_) => panic!("'{words}' is not a serve command"),
        }
    }

    fn built(words: &str) -> Result<Vec<&'static str>, String> {
        match command(words)? {
            Command::Build(architectures) => Ok(architectures.iter().map(|a| a.name()).collect()),
            _ => panic!("'{words}' is not a build command"),
        }
    }

    /// The value `serve` would run with for `flag`, after parsing `words`.
    fn setting(words: &str, flag: &str) -> String {
        let serve = parse_words(words).unwrap().unwrap();
        serve.architecture.option_value(flag).unwrap()
    }

    #[test]
    fn build_takes_architectures_or_all() {
        assert_eq!(built("build local").unwrap(), ["local"]);
        assert_eq!(
            built("build linearizable local linearizable").unwrap(),
            ["linearizable", "local"],
            "each once, in the order given"
        );
        assert_eq!(built("build --all").unwrap(), registry::names());
        assert!(matches!(command("build --help"), Ok(Command::Help)));
        for (words, error) in [
            ("build", "build needs architectures, or --all"),
            (
                "build local --all",
                "build takes architectures or --all, not both",
            ),
            (
                "build paxos",
                "unknown architecture 'paxos' (available: local, replicated, sharded, \
                 sharded-replicated, linearizable)",
            ),
            ("build local --release", "unknown option '--release'"),
        ] {
            assert_eq!(built(words).err().as_deref(), Some(error), "{words}");
        }
    }

    #[test]
    fn defaults_and_options() {
        let serve = parse_words("serve local").unwrap().unwrap();
        assert_eq!(serve.architecture.name(), "local");
        assert_eq!(serve.front, FrontConfig::localhost("local", 6379));
        assert_eq!(
            serve.restart_after,
            Some(kvs_zoo::deploy::DEFAULT_RESTART_AFTER)
        );
        let never = parse_words("serve replicated --restart-after never")
            .unwrap()
            .unwrap();
        assert_eq!(never.restart_after, None);
        let soon = parse_words("serve replicated --restart-after 300ms")
            .unwrap()
            .unwrap();
        assert_eq!(soon.restart_after, Some(Duration::from_millis(300)));
        assert_eq!(
            parse_words("serve replicated --restart-after later")
                .err()
                .as_deref(),
            Some("bad --restart-after 'later'")
        );
        let serve = parse_words(
            "serve local --port 7000 --bind ::1 --max-value-bytes 10 --requirepass pw \
             --max-clients 3 --client-output-limit 2mb --request-timeout 250ms \
             --max-transaction-bytes 1kb \
             --enable-debug-command --verbose",
        )
        .unwrap()
        .unwrap();
        assert!(serve.verbose);
        let front = serve.front;
        assert_eq!(front.bind, "[::1]:7000");
        assert_eq!(front.commands.max_value_bytes, 10);
        assert_eq!(front.commands.max_transaction_bytes, 1024);
        assert_eq!(front.commands.requirepass, Some(Password::new(b"pw")));
        assert!(front.commands.debug_command);
        assert_eq!(front.max_clients, 3);
        assert_eq!(front.client_output_limit, 2 << 20);
        assert_eq!(front.request_timeout, Duration::from_millis(250));
    }

    #[test]
    fn a_data_dir_takes_a_policy_and_a_bound_with_defaults_per_architecture() {
        let serve = parse_words("serve local").unwrap().unwrap();
        assert_eq!(serve.data, None, "in memory unless asked");
        let serve = parse_words("serve sharded --data-dir /srv/zoo")
            .unwrap()
            .unwrap();
        let data = serve.data.unwrap();
        assert_eq!(data.dir, std::path::PathBuf::from("/srv/zoo"));
        assert_eq!(data.settings.fsync, Fsync::EverySec);
        assert_eq!(
            data.settings.snapshot_after,
            durability::DEFAULT_SNAPSHOT_AFTER
        );
        let serve = parse_words("serve local --data-dir rel --fsync always --snapshot-after 1mb")
            .unwrap()
            .unwrap();
        let data = serve.data.unwrap();
        assert!(data.dir.is_absolute(), "{}", data.dir.display());
        assert_eq!(data.settings.fsync, Fsync::Always);
        assert_eq!(data.settings.snapshot_after, 1 << 20);
        for (words, error) in [
            (
                "serve local --fsync always",
                "--fsync and --snapshot-after need --data-dir",
            ),
            (
                "serve local --data-dir d --fsync sometimes",
                "bad --fsync 'sometimes'",
            ),
            (
                "serve local --data-dir d --snapshot-after 0",
                "bad --snapshot-after '0'",
            ),
            (
                "serve replicated --data-dir d",
                "'replicated' keeps its data in memory only: --data-dir is for local, \
                 sharded, linearizable (see the README's durability table)",
            ),
        ] {
            assert_eq!(parse_words(words).err().as_deref(), Some(error), "{words}");
        }
    }

    #[test]
    fn architecture_options_reach_the_architecture() {
        let words = "serve replicated --replicas 5 --gossip-interval 20ms \
                     --anti-entropy-interval 2s --fanout 1 --rumor-k 4 --rumor-feedback blind \
                     --rumor-loss coin";
        for (flag, want) in [
            ("--replicas", "5"),
            ("--gossip-interval", "20ms"),
            ("--anti-entropy-interval", "2s"),
            ("--fanout", "1"),
            ("--rumor-k", "4"),
            ("--rumor-feedback", "blind"),
            ("--rumor-loss", "coin"),
        ] {
            assert_eq!(setting(words, flag), want, "{flag}");
        }
        let words = "serve sharded-replicated --shards 2 --replicas 4 --fanout 1";
        assert_eq!(setting(words, "--shards"), "2");
        assert_eq!(setting(words, "--replicas"), "4");
        assert_eq!(
            setting("serve sharded --virtual-nodes 64", "--virtual-nodes"),
            "64"
        );
        assert_eq!(setting("serve linearizable --f 2", "--f"), "2");
        assert_eq!(setting("serve linearizable", "--f"), "1");
    }

    #[test]
    fn only_loopback_addresses_count_as_private() {
        for private in ["127.0.0.1", "::1", "localhost", "127.0.0.2"] {
            assert!(is_loopback(private), "{private}");
        }
        for public in ["0.0.0.0", "::", "10.0.0.1", "example.com"] {
            assert!(!is_loopback(public), "{public}");
        }
    }

    #[test]
    fn help_is_not_an_error_and_lists_every_architecture_and_option() {
        for words in ["--help", "serve -h", "serve local --port 1 -h"] {
            assert!(parse_words(words).unwrap().is_none(), "{words}");
        }
        let help = usage();
        for a in registry::registry() {
            assert!(help.contains(a.summary()), "{}", a.name());
            for o in a.options() {
                assert!(help.contains(o.flag), "{}", o.flag);
            }
        }
        assert!(help.contains("--replicas <N>"), "{help}");
        assert!(help.contains("(default 50ms)"), "{help}");
        // What a refusal points to (see kvs_zoo::store::refusals).
        assert!(
            help.contains(
                "one copy of each key (APPEND, SETNX, CAS, expiry, WATCH): local, sharded, \
                 linearizable"
            ),
            "{help}"
        );
        assert!(
            help.contains(
                "causal values (GETCTX, SETCTX, siblings): replicated, sharded-replicated"
            ),
            "{help}"
        );
    }

    #[test]
    fn bad_command_lines_are_explained() {
        for (words, error) in [
            ("", "missing command"),
            ("run local", "unknown command 'run'"),
            ("serve", "missing architecture"),
            (
                "serve paxos",
                "unknown architecture 'paxos' (available: local, replicated, sharded, \
                 sharded-replicated, linearizable)",
            ),
            (
                "serve local --replicas 3",
                "--replicas is not an option of 'local' (see --help)",
            ),
            (
                "serve sharded --replicas 3",
                "--replicas is not an option of 'sharded' (see --help)",
            ),
            (
                "serve replicated --shards 3",
                "--shards is not an option of 'replicated' (see --help)",
            ),
            ("serve sharded --shards 0", "bad --shards '0'"),
            ("serve linearizable --f 4", "--f is at most 3"),
            ("serve linearizable --f 0", "bad --f '0'"),
            (
                "serve local --f 1",
                "--f is not an option of 'local' (see --help)",
            ),
            (
                "serve linearizable --replicas 3",
                "--replicas is not an option of 'linearizable' (see --help)",
            ),
            ("serve sharded --shards 257", "--shards is at most 256"),
            ("serve replicated --replicas 0", "bad --replicas '0'"),
            (
                "serve replicated --rumor-loss maybe",
                "bad --rumor-loss 'maybe'",
            ),
            (
                "serve replicated --gossip-interval 0.1ms",
                "--gossip-interval must be at least 1ms",
            ),
            ("serve local --port", "--port needs a value"),
            ("serve local --port 70000", "bad port '70000'"),
            (
                "serve local --max-value-bytes 0",
                "bad --max-value-bytes '0'",
            ),
            ("serve local --max-clients 0", "bad --max-clients '0'"),
            (
                "serve local --max-transaction-bytes 0",
                "bad --max-transaction-bytes '0'",
            ),
            (
                "serve local --request-timeout soon",
                "bad --request-timeout 'soon'",
            ),
            ("serve local --requirepass", "--requirepass needs a value"),
            ("serve local --loud 1", "unknown option '--loud'"),
        ] {
            assert_eq!(parse_words(words).err().as_deref(), Some(error), "{words}");
        }
    }
}
