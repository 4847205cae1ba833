//! The Linearizable KVS: Multi-Paxos orders every operation (f = 1: three proposers, three
//! acceptors, three replicas). Deploys it on this machine and plays a short scenario over the
//! Redis protocol: writes and reads through the log, compare-and-set, a counter, and who
//! leads.
//!
//! ```text
//! cargo run --example linearizable   # add -- --verbose to see hydro_deploy's chatter
//! ```

use hydro_deploy::Deployment;
use kvs_zoo::architectures::linearizable::Linearizable;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::{Hosts, run_kvs_demo};

#[tokio::main]
async fn main() {
    let console = Console::from_args();
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    if let Err(e) = run_kvs_demo(Linearizable::default(), hosts, deployment).await {
        drop(console);
        eprintln!("linearizable demo failed: {e}");
        std::process::exit(1);
    }
}
