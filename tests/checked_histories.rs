//! Histories recorded against deployed stores, checked for linearizability
//! ([`kvs_zoo::linearizability`]): concurrent clients run random `GET`, `SET` and `CAS` on a
//! few keys, and the checker searches for an order of their operations that a single copy of
//! each key would have produced, within each operation's call and return.
//!
//! Local is linearizable: one process applies every request in the order it arrives, and
//! answers after applying.

mod support;

use std::time::Duration;

use kvs_zoo::linearizability::{Outcome, check};
use support::Server;
use support::history::{Workload, record};

const WORKLOAD: Workload = Workload {
    clients: 5,
    operations: 400,
    keys: 3,
    timeout: Duration::from_secs(5),
};

#[test]
fn local_histories_are_linearizable() {
    let server = Server::start("local", &[]);
    let history = record(&server.url, WORKLOAD, 1);
    server.stop();
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    let swapped = history
        .iter()
        .filter(|op| op.outcome == Outcome::Swapped(true))
        .count();
    let report = check(&history);
    println!(
        "local: {} operations on {} keys ({unknown} indeterminate, {swapped} successful CAS) \
         checked in {:?}, {} configurations explored",
        report.operations, report.keys, report.elapsed, report.explored
    );
    assert_eq!(report.operations, 2_000);
    // The workload must exercise CAS both ways, or the check proves little about it.
    assert!(swapped > 0, "no CAS ever swapped");
    if let Some(violation) = &report.violation {
        panic!("{violation}");
    }
    assert!(report.is_linearizable(), "{report:?}");
}
