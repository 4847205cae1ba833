//! The Sharded + Replicated KVS: three shards of three gossiping replicas. Deploys it on this
//! machine and plays a short scenario over the Redis protocol: where keys live (KEYSHARD: the
//! shard and its replicas), multi-key commands split by shard, and the ring in INFO.
//!
//! ```text
//! cargo run --example sharded_replicated   # add -- --verbose to see hydro_deploy's chatter
//! ```

use hydro_deploy::Deployment;
use kvs_zoo::architectures::sharded_replicated::ShardedReplicated;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::{Hosts, run_kvs_demo};

#[tokio::main]
async fn main() {
    let console = Console::from_args();
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    if let Err(e) = run_kvs_demo(ShardedReplicated::default(), hosts, deployment).await {
        drop(console);
        eprintln!("sharded_replicated demo failed: {e}");
        std::process::exit(1);
    }
}
