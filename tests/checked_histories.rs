//! Histories recorded against deployed stores, checked for linearizability
//! ([`kvs_zoo::testing::linearizability`]): concurrent clients run random `GET`, `SET` and `CAS` on a
//! few keys, and the checker searches for an order of their operations that a single copy of
//! each key would have produced, within each operation's call and return.
//!
//! Local is linearizable: one process applies every request in the order it arrives, and
//! answers after applying.

mod support;

use std::time::Duration;

use support::Server;
use support::history::{Workload, assert_linearizable, record};

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
    assert_eq!(history.len(), 2_000);
    let unknown = assert_linearizable("local", &history);
    assert_eq!(
        unknown, 0,
        "a request to a live local store went unanswered"
    );
}
