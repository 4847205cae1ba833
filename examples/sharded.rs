//! The Sharded KVS: three shards on a consistent-hash ring, last-writer-wins. Deploys it on this
//! machine and plays a short scenario over the Redis protocol: where keys live (KEYSHARD), each
//! shard's own copy (REPLICAGET), and multi-key commands split by shard.
//!
//! ```text
//! cargo run --example sharded   # add -- --verbose to see hydro_deploy's chatter
//! ```

use hydro_deploy::Deployment;
use kvs_zoo::architectures::sharded::Sharded;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::{Hosts, run_kvs_demo};

#[tokio::main]
async fn main() {
    let console = Console::from_args();
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    if let Err(e) = run_kvs_demo(Sharded::default(), hosts, deployment).await {
        drop(console);
        eprintln!("sharded demo failed: {e}");
        std::process::exit(1);
    }
}
