//! The Replicated KVS: three replicas that gossip, with causal values. First the values on
//! their own (two clients' concurrent edits become siblings), then the deployed store: a
//! write spreading by gossip, concurrent writes at two replicas kept as siblings, a causally
//! later write superseding both, and a delete.
//!
//! ```text
//! cargo run --example replicated        # add -- --verbose to see hydro_deploy's chatter
//! ```

use std::time::{Duration, Instant};

use hydro_deploy::Deployment;
use kvs_zoo::Hosts;
use kvs_zoo::architectures::replicated::Replicated;
use kvs_zoo::deploy::console::Console;
use kvs_zoo::deploy::{connect, free_port, run_deployed};
use kvs_zoo::edge::client::{RespClient, show};
use kvs_zoo::edge::config::FrontConfig;
use kvs_zoo::edge::resp::Reply;
use kvs_zoo::protocol::{KVSOperation, KVSRequest, KVSResult};
use kvs_zoo::store::lattice_core::LatticeStore;
use kvs_zoo::store::seam::StorageInput;
use kvs_zoo::testing::examples_support::{CausalString, generate_causal_operations, log_operation};
use kvs_zoo::values::causal::siblings;

const REPLICAS: u32 = 3;

#[tokio::main]
async fn main() {
    let console = Console::from_args();
    causal_values_on_their_own();
    if let Err(e) = deployed().await {
        drop(console);
        eprintln!("replicated demo failed: {e}");
        std::process::exit(1);
    }
}

/// Part 1: the lattice the replicas keep, applied by hand to one store. Clients stamp these
/// writes themselves (alice and bob); the deployed store stamps them for its clients.
fn causal_values_on_their_own() {
    println!("== Causal values on their own ==\n");
    let narrations = [
        "alice writes a draft",
        "bob, having read it, writes over it",
        "alice edits what bob wrote ...",
        "... and bob edits it too, without having seen alice's edit: concurrent",
        "a read finds both edits, kept as siblings",
        "alice, having read both, deletes the doc",
        "the delete saw both siblings, so it supersedes them",
    ];
    let mut store: LatticeStore<CausalString> = LatticeStore::default();
    for ((request, op), narration) in (0..).zip(generate_causal_operations("doc")).zip(narrations) {
        let command = match &op {
            KVSOperation::Put(key, value) => format!(
                "merge {} <- {:?} at clock {{{}}}",
                String::from_utf8_lossy(key),
                siblings(value),
                value.clock()
            ),
            other => format!("read {}", String::from_utf8_lossy(other.key())),
        };
        let (reply, _) = store.apply(StorageInput::Request(KVSRequest {
            at: 0,
            client: 0,
            request,
            op,
        }));
        let shown = match reply.map(|r| r.result) {
            Some(KVSResult::Value(v)) => format!("{:?}", siblings(&v)),
            Some(KVSResult::Ok) => "OK".into(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        };
        log_operation(narration, &command, &shown);
    }
}

/// Part 2: the deployed store, driven over RESP.
async fn deployed() -> Result<(), String> {
    let mut deployment = Deployment::new();
    let hosts = Hosts::localhost(&mut deployment);
    let port = free_port().map_err(|e| e.to_string())?;
    let front = FrontConfig::localhost("replicated", port);
    // Gossip every 300 ms, slower than the default 50 ms: slow enough that the two writes
    // to alpha below, sent one after the other, reach their replicas before either hears of
    // the other's; fast enough to watch every write spread.
    let mut architecture = Replicated {
        replicas: REPLICAS as usize,
        ..Replicated::default()
    };
    architecture.gossip.interval = Duration::from_millis(300);
    println!("== KVS Zoo: replicated ({REPLICAS} replicas) ==");
    run_deployed(
        &architecture,
        &hosts,
        &front,
        &mut deployment,
        |_roles| async {
            println!("serving on redis://{}\n", front.bind);
            let mut client = connect(&front).await?;
            let mut step = async |narration: &str, words: &[&str]| -> Result<Reply, String> {
                let reply = client
                    .command(words)
                    .await
                    .map_err(|e| format!("{}: {e}", words.join(" ")))?;
                log_operation(narration, &words.join(" "), &show(&reply));
                Ok(reply)
            };

            step(
                "write through the proxy, to this connection's replica",
                &["SET", "color", "blue"],
            )
            .await?;
            step(
                "read it back: the same replica answers, so we read our write",
                &["GET", "color"],
            )
            .await?;
            let mut watcher = connect(&front).await?;
            spread(&mut watcher, "color", &Reply::Bulk("blue".into())).await?;

            step(
                "write alpha at replica 0 ...",
                &["REPLICASET", "0", "alpha", "a1"],
            )
            .await?;
            step(
                "... and at replica 1, which has not heard of a1 yet: the writes are concurrent",
                &["REPLICASET", "1", "alpha", "a2"],
            )
            .await?;
            let both = Reply::Array(vec![Reply::Bulk("a1".into()), Reply::Bulk("a2".into())]);
            spread(&mut watcher, "alpha", &both).await?;
            step("GET shows both siblings", &["GET", "alpha"]).await?;
            let versioned = step(
                "GETCTX adds their causal context: r0 and r1 each wrote once",
                &["GETCTX", "alpha"],
            )
            .await?;
            let Reply::Array(parts) = versioned else {
                return Err(format!("GETCTX answered {versioned:?}"));
            };
            let Some(Reply::Bulk(context)) = parts.first() else {
                return Err("GETCTX answered no context".into());
            };
            let context = String::from_utf8_lossy(context).into_owned();
            step(
                "a write with that context saw both siblings, so it supersedes them",
                &["SETCTX", "alpha", &context, "a1+a2"],
            )
            .await?;
            spread(&mut watcher, "alpha", &Reply::Bulk("a1+a2".into())).await?;
            step(
                "delete alpha: a tombstone that wins over what it saw",
                &["DEL", "alpha"],
            )
            .await?;
            spread(&mut watcher, "alpha", &Reply::Nil).await?;
            step("the replicas as the proxy sees them", &["INFO", "members"]).await?;
            Ok(())
        },
    )
    .await
}

/// Watches every replica's copy of `key` until each holds `want`, printing when each one
/// learned it.
async fn spread(client: &mut RespClient, key: &str, want: &Reply) -> Result<(), String> {
    let start = Instant::now();
    let mut learned = vec![None; REPLICAS as usize];
    while learned.iter().any(Option::is_none) {
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!("{key} did not reach every replica within 10 s"));
        }
        for (member, when) in learned.iter_mut().enumerate() {
            if when.is_some() {
                continue;
            }
            let copy = client
                .command(&["REPLICAGET", &member.to_string(), key])
                .await
                .map_err(|e| e.to_string())?;
            if &copy == want {
                *when = Some(start.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let when: Vec<String> = learned
        .iter()
        .enumerate()
        .map(|(m, t)| format!("replica {m} at {} ms", t.unwrap_or_default().as_millis()))
        .collect();
    println!(
        "# gossip: every replica holds {key} = {}: {}\n",
        show(want),
        when.join(", ")
    );
    Ok(())
}
