//! The five architectures, each a short composition of [`KVSServer`](crate::server::KVSServer)
//! plug-ins, and the registry that lists them.
//!
//! - [`local`]: one process, last writer wins.
//! - [`replicated`]: N replicas, gossip, causal values (siblings).
//! - [`sharded`]: S shards on a consistent-hash ring.
//! - [`sharded_replicated`]: S shards of R gossiping replicas.
//! - [`linearizable`]: every operation ordered by Multi-Paxos.
//! - [`options`]: the options they take, each parsed once for every architecture taking it.
//!
//! **The registry.** Each architecture implements [`Architecture`]: its name, a one-line
//! summary, its options (with their defaults, read from its default settings), what it can do
//! ([`KVSDemo::capabilities`]), its column of the command matrix, its [`Topology`] and its
//! narrated demo. [`registry`] lists the five. `kvs-zoo serve`, `--help`, option checking,
//! `INFO`, the README's command matrix and the client suite read it; nothing matches on an
//! architecture's name. A sixth architecture is one file here and one line in [`registry`].
//!
//! This folder may import every folder below it in the crate's map; nothing in the library
//! imports it (the `kvs-zoo` binary, the examples and the tests do).
//!
//! [`Topology`]: crate::deploy::Topology

pub mod linearizable;
pub mod local;
pub mod options;
pub mod replicated;
pub mod sharded;
pub mod sharded_replicated;

use std::fmt::Write;

use crate::capabilities::Capabilities;
use crate::deploy::KVSDemo;
use options::OptionHelp;

/// An architecture `kvs-zoo` can serve: what [`KVSDemo`] says (name, topology, demo,
/// capabilities), plus what its command line and documentation need.
pub trait Architecture: KVSDemo + Send + Sync {
    /// One line for `--help`.
    fn summary(&self) -> &'static str;

    /// The options it takes besides the front's.
    fn options(&self) -> Vec<OptionHelp>;

    /// Sets option `flag` (one of [`Architecture::options`]) to `value`; an error says why
    /// the value is refused.
    fn set_option(&mut self, flag: &str, value: &str) -> Result<(), String>;

    /// The current value of option `flag`, as it would be written on the command line: the
    /// default, for an architecture fresh from [`registry`].
    fn option_value(&self, flag: &str) -> Option<String>;

    /// Its column of the command matrix: one cell per row of [`MATRIX_ROWS`].
    fn commands(&self) -> &'static [&'static str];
}

/// Every architecture, with its default settings, in the order the README presents them.
pub fn registry() -> Vec<Box<dyn Architecture>> {
    vec![
        Box::new(local::Local),
        Box::new(replicated::Replicated::default()),
        Box::new(sharded::Sharded::default()),
        Box::new(sharded_replicated::ShardedReplicated::default()),
        Box::new(linearizable::Linearizable::default()),
    ]
}

/// The names of every architecture, in registry order.
pub fn names() -> Vec<&'static str> {
    registry().iter().map(|a| a.name()).collect()
}

/// The architecture called `name`, with its default settings; an error naming the
/// architectures there are, if there is none.
pub fn find(name: &str) -> Result<Box<dyn Architecture>, String> {
    registry()
        .into_iter()
        .find(|a| a.name() == name)
        .ok_or_else(|| {
            format!(
                "unknown architecture '{name}' (available: {})",
                names().join(", ")
            )
        })
}

/// The architectures' part of `--help`: each one's summary, then each one's options with
/// their defaults.
pub fn help() -> String {
    let mut out = String::from("architectures:\n");
    let all = registry();
    for a in &all {
        let _ = writeln!(out, "  {:<28}{}", a.name(), a.summary());
    }
    // What the refusals point to: which stores can do what a replicated one refuses.
    let which = |can: fn(&Capabilities) -> bool| -> String {
        let names: Vec<&str> = all
            .iter()
            .filter(|a| can(&a.capabilities()))
            .map(|a| a.name())
            .collect();
        names.join(", ")
    };
    let _ = writeln!(
        out,
        "one copy of each key (APPEND, SETNX, CAS, expiry, WATCH): {}",
        which(|c| c.one_copy_per_key)
    );
    let _ = writeln!(
        out,
        "causal values (GETCTX, SETCTX, siblings): {}",
        which(|c| c.causal_values)
    );
    for a in &all {
        let options = a.options();
        if options.is_empty() {
            continue;
        }
        let _ = writeln!(out, "{}:", a.name());
        for o in options {
            let default = a.option_value(o.flag).unwrap_or_default();
            let _ = writeln!(
                out,
                "  {:<28}{} (default {default})",
                format!("{} {}", o.flag, o.value),
                o.help
            );
        }
    }
    out
}

/// The rows of the command matrix: which commands each row is about.
pub const MATRIX_ROWS: &[&str] = &[
    "`GET`, `SET`, `DEL k`, `EXISTS k`",
    "`MGET`, `MSET`, `DEL`/`EXISTS` of several keys",
    "`GETCTX`, `SETCTX`",
    "`REPLICAGET n k`, `REPLICASET n k v`",
    "`KEYSHARD k`",
    "`GETSET`, `GETDEL`, `SET k v GET`",
    "`DBSIZE`, `KEYS`, `SCAN`",
    "`FLUSHDB`, `FLUSHALL`",
    "`INCR`/`DECR`/`INCRBY`/`DECRBY`",
    r#"`APPEND`, `SETNX`, `SET k v NX\|XX`"#,
    "`CAS k expected new`",
    "`SET … EX/PX/EXAT/PXAT/KEEPTTL`, `SETEX`, `PSETEX`, `EXPIRE`…, `TTL`, `PTTL`, `PERSIST`",
    "`TYPE`, `STRLEN`",
    "`MULTI` … `EXEC`",
    "`WATCH`",
    "`INFO members`, `INFO ring`",
    "a dead member",
];

/// The command matrix as a Markdown table, one column per architecture (the README's).
pub fn command_matrix() -> String {
    let all = registry();
    let mut out = String::from("| command |");
    for a in &all {
        let _ = write!(out, " {} |", a.name());
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(all.len()));
    for (i, row) in MATRIX_ROWS.iter().enumerate() {
        let _ = write!(out, "\n| {row} |");
        for a in &all {
            let _ = write!(out, " {} |", a.commands()[i]);
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let names = names();
        for name in &names {
            assert_eq!(find(name).unwrap().name(), *name);
            assert_eq!(names.iter().filter(|n| *n == name).count(), 1, "{name}");
        }
        assert_eq!(
            find("paxos").err().as_deref(),
            Some(
                "unknown architecture 'paxos' (available: local, replicated, sharded, \
                 sharded-replicated, linearizable)"
            )
        );
    }

    #[test]
    fn every_option_has_a_default_that_it_accepts_back() {
        for mut a in registry() {
            for o in a.options() {
                let default = a
                    .option_value(o.flag)
                    .unwrap_or_else(|| panic!("{} has no value for {}", a.name(), o.flag));
                a.set_option(o.flag, &default)
                    .unwrap_or_else(|e| panic!("{} {} {default}: {e}", a.name(), o.flag));
                assert_eq!(a.option_value(o.flag), Some(default), "{}", o.flag);
            }
        }
    }

    #[test]
    fn every_architecture_fills_its_column_of_the_command_matrix() {
        for a in registry() {
            assert_eq!(a.commands().len(), MATRIX_ROWS.len(), "{}", a.name());
            assert!(a.commands().iter().all(|c| !c.is_empty()), "{}", a.name());
        }
    }

    /// Each option sets the field the architecture deploys with, not just the value it reports.
    #[test]
    fn options_set_the_settings_the_architecture_deploys_with() {
        let mut r = replicated::Replicated::default();
        r.set_option("--replicas", "5").unwrap();
        r.set_option("--fanout", "1").unwrap();
        assert_eq!((r.replicas, r.gossip.rumor.fanout), (5, 1));
        let mut s = sharded::Sharded::default();
        s.set_option("--shards", "5").unwrap();
        s.set_option("--virtual-nodes", "64").unwrap();
        let layout = s.layout();
        assert_eq!(
            (layout.shards, layout.replicas, layout.virtual_nodes),
            (5, 1, 64)
        );
        let mut both = sharded_replicated::ShardedReplicated::default();
        both.set_option("--shards", "2").unwrap();
        both.set_option("--replicas", "4").unwrap();
        assert_eq!((both.shards, both.replicas), (2, 4));
        let mut l = linearizable::Linearizable::default();
        l.set_option("--f", "2").unwrap();
        assert_eq!(l, linearizable::Linearizable { f: 2 });
        assert_eq!(
            l.set_option("--f", "4"),
            Err("--f is at most 3".to_string())
        );
    }

    /// The README shows the matrix the registry holds, so the two cannot drift apart.
    #[test]
    fn the_readme_shows_the_registrys_command_matrix() {
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&command_matrix()),
            "README.md's command matrix differs from the registry's; it should read:\n{}",
            command_matrix()
        );
    }
}
