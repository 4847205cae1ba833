//! Demers et al.'s Tables 1 and 2, reproduced with the replicas' own rumor-mongering code
//! (`kvs_zoo::replication::gossip::rumor`, driven by `kvs_zoo::testing::demers`): push rumor mongering on
//! 1000 sites, feedback + counter and blind + coin, k = 1..5, beside the paper's figures.
//!
//! ```text
//! cargo run --release --example demers [RUNS] [SITES] [SEED]   # defaults: 1000 1000 1987
//! ```

use std::process::ExitCode;

use kvs_zoo::testing::demers::{DEFAULT_SITES, table};

/// Parses the optional positional argument `index`, or returns `default`.
fn arg<T: std::str::FromStr>(index: usize, default: T) -> Result<T, String> {
    match std::env::args().nth(index) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("argument {index}: cannot parse {text:?}")),
    }
}

fn main() -> ExitCode {
    let parsed = (|| Ok::<_, String>((arg(1, 1000)?, arg(2, DEFAULT_SITES)?, arg(3, 1987)?)))();
    match parsed {
        Ok((runs, sites, seed)) => {
            print!("{}", table(sites, runs, seed));
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("{message}\nusage: demers [RUNS] [SITES] [SEED]");
            ExitCode::FAILURE
        }
    }
}
