//! Large values through the stores that once broke on them: a transaction of 300 × 1 MiB,
//! and 64 pipelined 1 MiB `SET`s after it. Once, the transaction made a frame too big for the
//! transport (the linearizable store lost every proposer for good; the replicated one
//! answered `CLUSTERDOWN`), and the `SET`s filled every acceptor's queue with re-sent copies.
//!
//! A file of their own, one test at a time, each with a deployment of its own and a generous
//! request timeout: tens of MiB through a debug build keep its processes busy for seconds,
//! which would make the members of other tests' deployments miss heartbeats. What is checked
//! is that everything arrives, not how fast.

mod support;

use std::sync::Mutex;

use support::Server;
use support::redis_client::large_transaction_is_refused_and_the_store_goes_on;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The edge refuses the transaction at the default 64 MiB bound, and 64 pipelined 1 MiB
/// `SET`s after it succeed on `architecture`.
fn check(architecture: &str) {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(architecture, &["--request-timeout", "30s"]);
    large_transaction_is_refused_and_the_store_goes_on(
        &server.url,
        &format!("{architecture}:mib"),
        kvs_zoo::edge::commands::DEFAULT_MAX_TRANSACTION_BYTES as u64,
    );
    server.stop();
}

/// Through the log: the leader batches the `SET`s in slots of at most 16 MiB, and what it
/// sends again backs off.
#[test]
fn a_huge_transaction_is_refused_and_large_values_go_on_through_the_log() {
    check("linearizable");
}

/// Through gossip: values go in runs of at most 16 MiB.
#[test]
fn a_huge_transaction_is_refused_and_large_values_go_on_through_gossip() {
    check("replicated");
}
