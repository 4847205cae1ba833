//! The Local KVS: one process, last-writer-wins. Deploys it on this machine and plays a short
//! scripted scenario over the Redis protocol.
//!
//! ```text
//! cargo run --example local             # add -- --verbose to see hydro_deploy's chatter
//! ```

use hydro_deploy::Deployment;
use kvs_zoo::architectures::local::Local;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::{Hosts, run_kvs_demo};

#[tokio::main]
async fn main() {
    let console = Console::from_args();
    let mut deployment = Deployment::new();
    // Swap `Hosts::localhost` for hosts of a cloud provider to run the same demo remotely.
    let hosts = Hosts::localhost(&mut deployment);
    if let Err(e) = run_kvs_demo(Local, hosts, deployment).await {
        drop(console);
        eprintln!("local demo failed: {e}");
        std::process::exit(1);
    }
}
