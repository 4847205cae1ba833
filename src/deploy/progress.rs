//! What a deployment is building, told while it builds.
//!
//! `deployment.deploy()` compiles every location the first time (minutes) and says nothing
//! while it does: hydro_deploy draws progress bars only on a terminal. So while it runs,
//! [`BuildReport`] looks at the build itself — the `cargo build --example …` and `rustc`
//! processes this process started, found under `/proc` — and prints one line on standard
//! error when what is being built changes, and at least every [`QUIET`] otherwise:
//!
//! ```text
//! kvs-zoo: building proxy, replica (34 s): compiling hydro_lang, kvs_zoo
//! ```
//!
//! Where `/proc` cannot be read (not Linux), the lines tell only the elapsed time. A start
//! whose processes are already built builds nothing, and says so in one line.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The longest silence while something is being built.
pub const QUIET: Duration = Duration::from_secs(15);

/// How often the build is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(500);

/// One look at the build: the locations (generated example crates) cargo is building, and
/// the crates rustc is compiling right now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Building {
    /// Example names given to `cargo build --example`, one per location being built.
    pub examples: BTreeSet<String>,
    /// Crate names given to `rustc --crate-name`.
    pub crates: BTreeSet<String>,
}

impl Building {
    /// True when nothing is being compiled.
    pub fn is_idle(&self) -> bool {
        self.examples.is_empty() && self.crates.is_empty()
    }

    /// Reads one process's command line (its arguments) into this look.
    pub fn add_command_line(&mut self, args: &[String]) {
        let program = args.first().map(|p| p.rsplit('/').next().unwrap_or(p));
        let after = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
                .cloned()
        };
        match program {
            Some("cargo") => self.examples.extend(after("--example")),
            // Build scripts all have this name: it says nothing about what is built.
            Some("rustc") => self
                .crates
                .extend(after("--crate-name").filter(|c| c != "build_script_build")),
            _ => {}
        }
    }
}

/// Names the locations of one deployment in progress lines: each location's Rust type (as
/// Hydro names the generated example after it) and the role a reader knows it by.
#[derive(Clone, Debug, Default)]
pub struct LocationNames {
    by_type: Vec<(String, String)>,
}

impl LocationNames {
    /// Adds a location of Rust type `type_name` (as `std::any::type_name` spells it), known as
    /// `role`.
    pub fn add(&mut self, type_name: &str, role: &str) {
        self.by_type
            .push((example_prefix(type_name), role.to_string()));
    }

    /// The role whose location `example` (a generated example's name) builds; the example's
    /// name if none matches, e.g. a location of another deployment in the same project.
    pub fn role_of(&self, example: &str) -> String {
        self.by_type
            .iter()
            .filter(|(prefix, _)| example.starts_with(prefix.as_str()))
            // The longest prefix wins: `Replica` must not take `ReplicaGroup`'s examples.
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or_else(|| example.to_string(), |(_, role)| role.clone())
    }

    /// One progress line: what is being built after `elapsed`.
    pub fn line(&self, building: &Building, elapsed: Duration) -> String {
        let seconds = elapsed.as_secs();
        if building.is_idle() {
            return format!("kvs-zoo: building and launching the processes ({seconds} s)");
        }
        let roles: BTreeSet<String> = building.examples.iter().map(|e| self.role_of(e)).collect();
        let what = if roles.is_empty() {
            "the processes".to_string()
        } else {
            roles.into_iter().collect::<Vec<_>>().join(", ")
        };
        let compiling: Vec<String> = building
            .crates
            .iter()
            .map(|c| {
                if building.examples.contains(c) {
                    format!("{}'s code", self.role_of(c))
                } else {
                    c.clone()
                }
            })
            .collect();
        if compiling.is_empty() {
            format!("kvs-zoo: building {what} ({seconds} s)")
        } else {
            format!(
                "kvs-zoo: building {what} ({seconds} s): compiling {}",
                compiling.join(", ")
            )
        }
    }
}

/// How Hydro names a location's generated example: its type name with `::` as `__` and the
/// characters a file name cannot have dropped, followed by `_` and a hash of its code.
fn example_prefix(type_name: &str) -> String {
    let mut name = type_name.replace("::", "__").replace([' ', ',', '<'], "_");
    name.retain(|c| !matches!(c, '>' | '(' | ')'));
    name
}

/// Every process under `root` (its children, theirs, …) with its command line, read from
/// `/proc`. Empty where `/proc` cannot be read.
pub fn look(root: u32) -> Building {
    let mut building = Building::default();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return building;
    };
    // (pid, parent pid) of every process.
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut ours = BTreeSet::from([root]);
    // Descendants, by repeated passes: a pass adds the children of what is known so far.
    loop {
        let before = ours.len();
        for (pid, parent) in &parents {
            if ours.contains(parent) {
                ours.insert(*pid);
            }
        }
        if ours.len() == before {
            break;
        }
    }
    ours.remove(&root);
    for pid in ours {
        if let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let args: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            building.add_command_line(&args);
        }
    }
    building
}

/// The parent of process `pid`, from `/proc/<pid>/stat` (its fourth field, after the command
/// name in parentheses, which may itself hold spaces and parentheses).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

/// Reports a deployment's build on standard error while it runs: start it before
/// `deployment.deploy()`, [`BuildReport::finish`] it after.
pub struct BuildReport {
    task: tokio::task::JoinHandle<bool>,
    stop: tokio::sync::watch::Sender<bool>,
    started: Instant,
}

impl BuildReport {
    /// Starts reporting the build of the locations `names` knows.
    pub fn start(names: LocationNames) -> Self {
        let started = Instant::now();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let me = std::process::id();
            // The locations named in the last line printed.
            let mut announced = BTreeSet::new();
            let mut last_line = started;
            let mut built_anything = false;
            loop {
                tokio::select! {
                    _ = stopped.changed() => return built_anything,
                    _ = tokio::time::sleep(LOOK_EVERY) => {}
                }
                let now = tokio::task::spawn_blocking(move || look(me))
                    .await
                    .unwrap_or_default();
                // A start whose processes are built runs `cargo build` for each, briefly,
                // and compiles nothing: not worth a line.
                built_anything |= !now.crates.is_empty();
                if built_anything && (now.examples != announced || last_line.elapsed() >= QUIET) {
                    eprintln!("{}", names.line(&now, started.elapsed()));
                    last_line = Instant::now();
                    announced = now.examples;
                }
            }
        });
        Self {
            task,
            stop,
            started,
        }
    }

    /// Stops reporting; says how long building and launching took, and whether anything was
    /// compiled.
    pub async fn finish(self, what: &str) {
        let _ = self.stop.send(true);
        let built = self.task.await.unwrap_or(true);
        let took = self.started.elapsed().as_secs_f64();
        if built {
            eprintln!("kvs-zoo: {what}: built and launched in {took:.1} s");
        } else {
            eprintln!("kvs-zoo: {what}: already built; launched in {took:.1} s");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    fn names() -> LocationNames {
        let mut names = LocationNames::default();
        names.add("kvs_zoo::server::plugins::Proxy", "proxy");
        names.add("kvs_zoo::replication::gossip::Replica", "replica");
        names
    }

    #[test]
    fn cargo_and_rustc_command_lines_are_read() {
        let mut b = Building::default();
        b.add_command_line(&words(
            "/root/.rustup/toolchains/x/bin/cargo build --locked --profile location-release \
             --example kvs_zoo__server__plugins__Proxy_1A2B3C4D --no-default-features",
        ));
        b.add_command_line(&words(
            "rustc --crate-name hydro_lang --edition=2024 src/lib.rs",
        ));
        b.add_command_line(&words("rustc --crate-name build_script_build build.rs"));
        b.add_command_line(&words("cc -o foo foo.c"));
        assert_eq!(
            b.examples,
            BTreeSet::from(["kvs_zoo__server__plugins__Proxy_1A2B3C4D".to_string()])
        );
        assert_eq!(b.crates, BTreeSet::from(["hydro_lang".to_string()]));
    }

    #[test]
    fn examples_are_named_by_their_role() {
        let names = names();
        assert_eq!(
            names.role_of("kvs_zoo__server__plugins__Proxy_1A2B3C4D"),
            "proxy"
        );
        // A cluster's name hint carries its location key: `Replica (cluster 2)`.
        assert_eq!(
            names.role_of("kvs_zoo__replication__gossip__Replica_cluster_2_99AA00BB"),
            "replica"
        );
        assert_eq!(names.role_of("other_ABCD"), "other_ABCD");
    }

    #[test]
    fn a_line_names_the_roles_and_the_crates() {
        let names = names();
        let b = Building {
            examples: BTreeSet::from([
                "kvs_zoo__server__plugins__Proxy_1A2B3C4D".to_string(),
                "kvs_zoo__replication__gossip__Replica_cluster_2_99AA00BB".to_string(),
            ]),
            crates: BTreeSet::from([
                "hydro_lang".to_string(),
                "kvs_zoo__server__plugins__Proxy_1A2B3C4D".to_string(),
            ]),
        };
        assert_eq!(
            names.line(&b, Duration::from_secs(34)),
            "kvs-zoo: building proxy, replica (34 s): compiling hydro_lang, proxy's code"
        );
        assert_eq!(
            names.line(&Building::default(), Duration::from_secs(3)),
            "kvs-zoo: building and launching the processes (3 s)"
        );
    }

    #[test]
    fn a_compiler_started_by_this_process_is_seen() {
        // A stand-in `rustc` started by this process, as cargo's compilers are started by the
        // deployment's: a shell named `rustc` (its second command keeps it from handing its
        // process over to `sleep`).
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sh")
            .arg0("rustc")
            .args(["-c", "sleep 5; true", "--crate-name", "stand_in_crate"])
            .spawn()
            .unwrap();
        let seen = look(std::process::id());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(seen.crates.contains("stand_in_crate"), "{seen:?}");
    }
}
