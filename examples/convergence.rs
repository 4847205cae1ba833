//! How fast gossip spreads, and what it costs: deploys `replicated` with N replicas (3, 5, 9
//! by default), writes a burst of keys through one connection, times how long until every
//! replica holds every key (in milliseconds and in gossip intervals), and counts the gossip
//! messages the replicas sent (from their heartbeats, in `INFO members`) per write.
//!
//! ```text
//! cargo run --release --example convergence [BURST] [N …]    # defaults: 200 3 5 9
//! ```

use std::time::{Duration, Instant};

use hydro_deploy::Deployment;
use kvs_zoo::Hosts;
use kvs_zoo::architectures::replicated::Replicated;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::deploy::{connect, free_port, run_deployed};
use kvs_zoo::edge::client::RespClient;
use kvs_zoo::edge::config::FrontConfig;
use kvs_zoo::edge::resp::Reply;

#[tokio::main]
async fn main() {
    let _console = Console::new(false);
    let mut args = std::env::args().skip(1);
    let burst: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let sizes: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() {
        vec![3, 5, 9]
    } else {
        sizes
    };
    println!("replicas  burst  every replica holds every key after   gossip messages per write");
    for replicas in sizes {
        match measure(replicas, burst).await {
            Ok(line) => println!("{line}"),
            Err(e) => {
                eprintln!("convergence with {replicas} replicas: {e}");
                std::process::exit(1);
            }
        }
    }
}

async fn measure(replicas: usize, burst: usize) -> Result<String, String> {
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    let front = FrontConfig::localhost("replicated", free_port().map_err(|e| e.to_string())?);
    let architecture = Replicated {
        replicas,
        ..Replicated::default()
    };
    let interval = architecture.gossip.interval;
    let mut outcome = String::new();
    run_deployed(&architecture, &hosts, &front, &mut deployment, |_| async {
        let mut writer = connect(&front).await?;
        let mut watcher = connect(&front).await?;
        // Let the replicas' heartbeats report, then count from here.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let sent_before = gossip_sent(&mut watcher).await?;
        let start = Instant::now();
        for i in 0..burst {
            writer
                .command(&["SET", &format!("burst:{i}"), "x"])
                .await
                .map_err(|e| e.to_string())?;
        }
        let written = start.elapsed();
        let mut missing: Vec<(usize, usize)> = (0..replicas)
            .flat_map(|r| (0..burst).map(move |i| (r, i)))
            .collect();
        while !missing.is_empty() {
            if start.elapsed() > Duration::from_secs(30) {
                return Err(format!("{} copies still missing after 30 s", missing.len()));
            }
            missing = still_missing(&mut watcher, missing).await?;
        }
        let all = start.elapsed();
        // Rumors die down within a few intervals; heartbeats then carry the final counts.
        tokio::time::sleep(interval * 10 + Duration::from_millis(300)).await;
        let sent = gossip_sent(&mut watcher).await? - sent_before;
        outcome = format!(
            "{replicas:>8}  {burst:>5}  {:>6} ms = {:>4.1} intervals (writes took {:>2} ms)  {:>6.1}",
            all.as_millis(),
            all.as_secs_f64() / interval.as_secs_f64(),
            written.as_millis(),
            sent as f64 / burst as f64
        );
        Ok(())
    })
    .await?;
    Ok(outcome)
}

/// Gossip messages every replica has sent so far, summed (`INFO members`).
async fn gossip_sent(client: &mut RespClient) -> Result<u64, String> {
    match client.command(&["INFO", "members"]).await {
        Ok(Reply::Bulk(info)) => Ok(String::from_utf8_lossy(&info)
            .lines()
            .filter_map(kvs_zoo::membership::view::parse_line)
            .map(|m| m.gossip_sent)
            .sum()),
        other => Err(format!("INFO members: {other:?}")),
    }
}

/// The `(replica, key)` copies of `missing` that are still not there.
async fn still_missing(
    client: &mut RespClient,
    missing: Vec<(usize, usize)>,
) -> Result<Vec<(usize, usize)>, String> {
    let mut still = vec![];
    for (replica, i) in missing {
        let copy = client
            .command(&["REPLICAGET", &replica.to_string(), &format!("burst:{i}")])
            .await
            .map_err(|e| e.to_string())?;
        if copy != Reply::Bulk("x".into()) {
            still.push((replica, i));
        }
    }
    Ok(still)
}
