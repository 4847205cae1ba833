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
//! `kvs-zoo serve --help` lists every option.

use std::process::ExitCode;
use std::time::Duration;

use hydro_deploy::Deployment;
use kvs_zoo::Hosts;
use kvs_zoo::architectures::linearizable::Linearizable;
use kvs_zoo::architectures::local::Local;
use kvs_zoo::architectures::replicated::Replicated;
use kvs_zoo::architectures::sharded::Sharded;
use kvs_zoo::architectures::sharded_replicated::ShardedReplicated;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::edge::auth::Password;
use kvs_zoo::edge::config::FrontConfig;
use kvs_zoo::replication::gossip::flow::GossipSettings;
use kvs_zoo::replication::gossip::rumor::{Feedback, LossOfInterest};

const USAGE: &str = "\
usage: kvs-zoo serve <architecture> [options]
       kvs-zoo build <architecture>... | --all

build compiles each named architecture's processes (the first start of an
architecture does it otherwise: minutes), so that every later serve of it,
with any options, starts in seconds.

architectures:
  local                       one process, last-writer-wins
  replicated                  N replicas, gossip, causal values (siblings)
  sharded                     S shards on a consistent-hash ring, last-writer-wins
  sharded-replicated          S shards of R replicas, gossip inside each shard
  linearizable                Multi-Paxos orders every operation; 2f+1 proposers,
                              acceptors and replicas

options:
  --port <P>                  TCP port to listen on (default 6379)
  --bind <ADDR>               address to listen on (default 127.0.0.1)
  --requirepass <PASS>        clients must AUTH with this password first
  --max-value-bytes <N>       longest key or value accepted (default 1048576)
  --max-clients <N>           most clients connected at once (default 10000)
  --client-output-limit <N>   most bytes of unread replies per client before it is
                              disconnected (default 64mb; suffixes kb, mb, gb)
  --request-timeout <T>       answer a request with an error if the store has not
                              within T (default 5s; e.g. 1.5s, 500ms)
  --enable-debug-command      accept DEBUG SLEEP <seconds> (for testing timeouts)
sharded, sharded-replicated:
  --shards <S>                how many shards (default 3, at most 256)
  --virtual-nodes <V>         points per shard on the hash ring (default 512)
linearizable:
  --f <F>                     failures tolerated (default 1: 3 of each role; at most 3)
replicated, sharded-replicated:
  --replicas <N>              how many replicas (per shard; default 3)
  --gossip-interval <T>       how often replicas push hot rumors (default 50ms)
  --anti-entropy-interval <T> how often a replica compares digests with a peer
                              (default 1s)
  --fanout <N>                peers each rumor goes to per round (default 3)
  --rumor-k <K>               interest lost after K contacts, or with chance 1/K
                              (default 2)
  --rumor-feedback <MODE>     feedback (count contacts with peers that already had
                              it) or blind (count every contact); default feedback
  --rumor-loss <MODE>         counter or coin (default counter)

  --verbose                   show hydro_deploy's launch commands and the compiler's
                              warnings about generated code
  -h, --help                  show this help

Build with --release for benchmarks: the store's processes are then built optimized.";

/// The most shards a store may have: a SCAN cursor names its shard in its top bits.
const MAX_SHARDS: u32 = 1 << (64 - kvs_zoo::store::keyspace::POSITION_BITS);

/// The architectures `serve` knows.
const ARCHITECTURES: &[&str] = &[
    "local",
    "replicated",
    "sharded",
    "sharded-replicated",
    "linearizable",
];

/// The most failures `--f` may ask the linearizable store to tolerate: 2f + 1 processes of
/// each role, 22 processes at f = 3, already more than a laptop runs comfortably.
const MAX_F: u32 = 3;

/// What the command line asked for.
enum Command {
    /// Serve one architecture.
    Serve(Box<ServeArgs>),
    /// Build these architectures' processes.
    Build(Vec<String>),
    /// Show the usage.
    Help,
}

/// What `serve` was asked for.
struct ServeArgs {
    architecture: String,
    front: FrontConfig,
    /// Replicas (per shard), for the replicated architectures.
    replicas: u32,
    /// Shards and points per shard on the ring, for the sharded architectures.
    shards: u32,
    virtual_nodes: u32,
    /// How replicas gossip, for the replicated architectures.
    gossip: GossipSettings,
    /// Failures tolerated, for the linearizable architecture.
    f: u32,
    verbose: bool,
}

impl ServeArgs {
    fn replicated(&self) -> Replicated {
        Replicated {
            replicas: self.replicas as usize,
            gossip: self.gossip,
        }
    }

    fn sharded(&self) -> Sharded {
        Sharded {
            shards: self.shards,
            virtual_nodes: self.virtual_nodes,
        }
    }

    fn linearizable(&self) -> Linearizable {
        Linearizable { f: self.f }
    }

    fn sharded_replicated(&self) -> ShardedReplicated {
        ShardedReplicated {
            shards: self.shards,
            replicas: self.replicas,
            virtual_nodes: self.virtual_nodes,
            gossip: self.gossip,
        }
    }
}

/// Which architectures take an option (by its prefix); options of none are unknown.
fn takes_option(architecture: &str, flag: &str) -> bool {
    let sharded = ["--shards", "--virtual-nodes"];
    let replicated = [
        "--replicas",
        "--gossip",
        "--anti-entropy",
        "--fanout",
        "--rumor",
    ];
    if sharded.iter().any(|p| flag.starts_with(p)) {
        return architecture.starts_with("sharded");
    }
    if replicated.iter().any(|p| flag.starts_with(p)) {
        return architecture.ends_with("replicated");
    }
    if flag == "--f" {
        return architecture == "linearizable";
    }
    true
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
        return Ok(Command::Build(
            ARCHITECTURES.iter().map(|a| a.to_string()).collect(),
        ));
    }
    if args.is_empty() {
        return Err("build needs architectures, or --all".into());
    }
    let mut architectures: Vec<String> = vec![];
    for architecture in args {
        if architecture.starts_with('-') {
            return Err(format!("unknown option '{architecture}'"));
        }
        known_architecture(architecture)?;
        if !architectures.contains(architecture) {
            architectures.push(architecture.clone());
        }
    }
    Ok(Command::Build(architectures))
}

/// An error naming the architectures there are, unless `architecture` is one.
fn known_architecture(architecture: &str) -> Result<(), String> {
    if !ARCHITECTURES.contains(&architecture) {
        return Err(format!(
            "unknown architecture '{architecture}' (available: {})",
            ARCHITECTURES.join(", ")
        ));
    }
    Ok(())
}

/// `serve`'s arguments; `None` for a request for help.
fn parse_serve(args: &[String]) -> Result<Option<ServeArgs>, String> {
    let mut it = args.iter();
    let architecture = it.next().ok_or("missing architecture")?.clone();
    if architecture == "-h" || architecture == "--help" {
        return Ok(None);
    }
    known_architecture(&architecture)?;
    let mut front = FrontConfig::localhost(&architecture, 6379);
    let defaults = ShardedReplicated::default();
    let (mut replicas, mut shards, mut virtual_nodes) =
        (defaults.replicas, defaults.shards, defaults.virtual_nodes);
    let mut gossip = defaults.gossip;
    let mut verbose = false;
    let mut f = Linearizable::default().f;
    let (mut port, mut bind) = (6379u16, "127.0.0.1".to_string());
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
        let bad = || format!("bad {flag} '{value}'");
        let positive = || positive_number::<usize>(value).ok_or_else(bad);
        let positive_u32 = || positive_number::<u32>(value).ok_or_else(bad);
        if !takes_option(&architecture, flag) {
            return Err(format!(
                "{flag} is not an option of '{architecture}' (see --help)"
            ));
        }
        let rumor = &mut gossip.rumor;
        match flag.as_str() {
            "--replicas" => replicas = positive_u32()?,
            // A SCAN cursor names its shard in 8 bits (see kvs_zoo::store::keyspace).
            "--shards" => {
                shards = positive_u32()?;
                if shards > MAX_SHARDS {
                    return Err(format!("--shards is at most {MAX_SHARDS}"));
                }
            }
            "--virtual-nodes" => virtual_nodes = positive_u32()?,
            "--f" => {
                f = positive_u32()?;
                if f > MAX_F {
                    return Err(format!("--f is at most {MAX_F}"));
                }
            }
            "--gossip-interval" => gossip.interval = parse_duration(value).ok_or_else(bad)?,
            "--anti-entropy-interval" => {
                gossip.anti_entropy_interval = parse_duration(value).ok_or_else(bad)?
            }
            "--fanout" => rumor.fanout = positive()?,
            "--rumor-k" => {
                rumor.k = value
                    .parse()
                    .ok()
                    .filter(|k: &u32| *k > 0)
                    .ok_or_else(bad)?
            }
            "--rumor-feedback" => {
                rumor.feedback = match value.as_str() {
                    "feedback" => Feedback::Feedback,
                    "blind" => Feedback::Blind,
                    _ => return Err(bad()),
                }
            }
            "--rumor-loss" => {
                rumor.loss = match value.as_str() {
                    "counter" => LossOfInterest::Counter,
                    "coin" => LossOfInterest::Coin,
                    _ => return Err(bad()),
                }
            }
            "--port" => port = value.parse().map_err(|_| format!("bad port '{value}'"))?,
            "--bind" => bind = value.clone(),
            "--requirepass" if value.is_empty() => return Err(bad()),
            "--requirepass" => front.commands.requirepass = Some(Password::new(value.as_bytes())),
            "--max-value-bytes" => front.commands.max_value_bytes = positive()?,
            "--max-clients" => front.max_clients = positive()?,
            "--client-output-limit" => {
                front.client_output_limit = parse_bytes(value).ok_or_else(bad)?
            }
            "--request-timeout" => front.request_timeout = parse_duration(value).ok_or_else(bad)?,
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    front.bind = if bind.contains(':') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    };
    // Gossip timers count whole milliseconds.
    for (name, interval) in [
        ("--gossip-interval", gossip.interval),
        ("--anti-entropy-interval", gossip.anti_entropy_interval),
    ] {
        if interval < Duration::from_millis(1) {
            return Err(format!("{name} must be at least 1ms"));
        }
    }
    Ok(Some(ServeArgs {
        architecture,
        front,
        replicas,
        shards,
        virtual_nodes,
        gossip,
        f,
        verbose,
    }))
}

/// A number above zero.
fn positive_number<N: std::str::FromStr + PartialOrd + Default>(text: &str) -> Option<N> {
    text.parse().ok().filter(|n| *n > N::default())
}

/// `1048576`, `64kb`, `64mb`, `1gb` (powers of 1024, as Redis reads `kb`/`mb`/`gb`); not zero.
fn parse_bytes(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)]
        .into_iter()
        .find_map(|(suffix, unit)| lower.strip_suffix(suffix).map(|d| (d, unit)))
        .unwrap_or((&lower, 1));
    digits
        .parse::<usize>()
        .ok()?
        .checked_mul(unit)
        .filter(|n| *n > 0)
}

/// `5` or `5s` (seconds, fractions allowed) or `500ms`; more than zero, at most a day.
fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let seconds = number.parse::<f64>().ok()? * scale;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(86_400))
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
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Command::Serve(serve)) => serve_one(*serve).await,
        Ok(Command::Build(architectures)) => build(&architectures).await,
        Err(e) => {
            eprintln!("kvs-zoo: {e}\n\n{USAGE}");
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
    let hosts = Hosts::localhost(&mut deployment);
    eprintln!(
        "kvs-zoo: starting '{}' ({} processes; the first start of an architecture compiles \
         them: minutes)",
        serve.architecture,
        build_kind(&hosts)
    );
    let front = serve.front.clone();
    match serve.architecture.as_str() {
        "local" => kvs_zoo::deploy::serve(Local, hosts, front, deployment).await,
        "replicated" => kvs_zoo::deploy::serve(serve.replicated(), hosts, front, deployment).await,
        "sharded" => kvs_zoo::deploy::serve(serve.sharded(), hosts, front, deployment).await,
        "sharded-replicated" => {
            kvs_zoo::deploy::serve(serve.sharded_replicated(), hosts, front, deployment).await
        }
        "linearizable" => {
            kvs_zoo::deploy::serve(serve.linearizable(), hosts, front, deployment).await
        }
        other => unreachable!("parse accepts only known architectures, not '{other}'"),
    }
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
async fn build(architectures: &[String]) -> Result<(), String> {
    let _console = Console::new(false);
    let total = architectures.len();
    for (i, architecture) in architectures.iter().enumerate() {
        let mut d = Deployment::new();
        let hosts = Hosts::localhost(&mut d);
        eprintln!(
            "kvs-zoo: [{}/{total}] building '{architecture}' ({})",
            i + 1,
            build_kind(&hosts)
        );
        // Settings reach the processes at run time, so the defaults build the same code as
        // any options would.
        match architecture.as_str() {
            "local" => kvs_zoo::deploy::build(&Local, &hosts, d).await,
            "replicated" => kvs_zoo::deploy::build(&Replicated::default(), &hosts, d).await,
            "sharded" => kvs_zoo::deploy::build(&Sharded::default(), &hosts, d).await,
            "sharded-replicated" => {
                kvs_zoo::deploy::build(&ShardedReplicated::default(), &hosts, d).await
            }
            "linearizable" => kvs_zoo::deploy::build(&Linearizable::default(), &hosts, d).await,
            other => unreachable!("parse accepts only known architectures, not '{other}'"),
        }?;
    }
    eprintln!("kvs-zoo: built {total} architecture(s)");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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

    fn built(words: &str) -> Result<Vec<String>, String> {
        match command(words)? {
            Command::Build(architectures) => Ok(architectures),
            _ => panic!("'{words}' is not a build command"),
        }
    }

    #[test]
    fn build_takes_architectures_or_all() {
        assert_eq!(built("build local").unwrap(), ["local"]);
        assert_eq!(
            built("build linearizable local linearizable").unwrap(),
            ["linearizable", "local"],
            "each once, in the order given"
        );
        assert_eq!(built("build --all").unwrap(), ARCHITECTURES);
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
        assert_eq!(serve.architecture, "local");
        assert_eq!(serve.front, FrontConfig::localhost("local", 6379));
        let serve = parse_words(
            "serve local --port 7000 --bind ::1 --max-value-bytes 10 --requirepass pw \
             --max-clients 3 --client-output-limit 2mb --request-timeout 250ms \
             --enable-debug-command --verbose",
        )
        .unwrap()
        .unwrap();
        assert!(serve.verbose);
        let front = serve.front;
        assert_eq!(front.bind, "[::1]:7000");
        assert_eq!(front.commands.max_value_bytes, 10);
        assert_eq!(front.commands.requirepass, Some(Password::new(b"pw")));
        assert!(front.commands.debug_command);
        assert_eq!(front.max_clients, 3);
        assert_eq!(front.client_output_limit, 2 << 20);
        assert_eq!(front.request_timeout, Duration::from_millis(250));
    }

    #[test]
    fn replicated_options() {
        let serve = parse_words(
            "serve replicated --replicas 5 --gossip-interval 20ms --anti-entropy-interval 2s \
             --fanout 1 --rumor-k 4 --rumor-feedback blind --rumor-loss coin",
        )
        .unwrap()
        .unwrap();
        let r = serve.replicated();
        assert_eq!(r.replicas, 5);
        assert_eq!(r.gossip.interval, Duration::from_millis(20));
        assert_eq!(r.gossip.anti_entropy_interval, Duration::from_secs(2));
        assert_eq!(
            (r.gossip.rumor.fanout, r.gossip.rumor.k),
            (1, 4),
            "fanout and k"
        );
        assert_eq!(r.gossip.rumor.feedback, Feedback::Blind);
        assert_eq!(r.gossip.rumor.loss, LossOfInterest::Coin);
        assert_eq!(
            parse_words("serve replicated")
                .unwrap()
                .unwrap()
                .replicated(),
            Replicated::default()
        );
    }

    #[test]
    fn sharded_options() {
        let serve = parse_words("serve sharded --shards 5 --virtual-nodes 64")
            .unwrap()
            .unwrap();
        let layout = serve.sharded().layout();
        assert_eq!(
            (layout.shards, layout.replicas, layout.virtual_nodes),
            (5, 1, 64)
        );
        assert_eq!(
            parse_words("serve sharded").unwrap().unwrap().sharded(),
            Sharded::default()
        );
        let serve = parse_words("serve sharded-replicated --shards 2 --replicas 4 --fanout 1")
            .unwrap()
            .unwrap();
        let both = serve.sharded_replicated();
        assert_eq!(
            (both.shards, both.replicas, both.gossip.rumor.fanout),
            (2, 4, 1)
        );
        assert_eq!(
            parse_words("serve sharded-replicated")
                .unwrap()
                .unwrap()
                .sharded_replicated(),
            ShardedReplicated::default()
        );
    }

    #[test]
    fn sizes_and_durations_read_as_redis_users_write_them() {
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("64KB"), Some(64 << 10));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        for bad in ["", "0", "mb", "-1", "1.5mb", "99999999999999999999gb"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        for bad in ["", "0", "-1", "x", "2d", "NaN", "1e30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
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
    fn help_is_not_an_error() {
        for words in ["--help", "serve -h", "serve local --port 1 -h"] {
            assert!(parse_words(words).unwrap().is_none(), "{words}");
        }
    }

    #[test]
    fn linearizable_options() {
        let serve = parse_words("serve linearizable").unwrap().unwrap();
        assert_eq!(serve.linearizable(), Linearizable::default());
        let serve = parse_words("serve linearizable --f 2").unwrap().unwrap();
        assert_eq!(serve.linearizable(), Linearizable { f: 2 });
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
