//! Recording histories against a deployed store, for the linearizability checker
//! ([`kvs_zoo::testing::linearizability`]): concurrent clients each run random `GET`, `SET` and `CAS`
//! on a few keys, one operation at a time, and note when each was called, when it returned
//! and what came back. A request that fails (timeout, lost connection) is recorded as
//! indeterminate, and the client reconnects.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kvs_zoo::replication::gossip::rng::Rng;
use kvs_zoo::testing::linearizability::{Call, Operation, Outcome};
use redis::{Connection, Value};

/// One client's share of a recorded history.
pub type History = Vec<Operation<String, String>>;

/// What to record.
#[derive(Clone, Copy, Debug)]
pub struct Workload {
    /// Concurrent clients.
    pub clients: u32,
    /// Operations each client runs.
    pub operations: u32,
    /// Keys the operations spread over.
    pub keys: u32,
    /// How long a request may take before it is recorded as indeterminate.
    pub timeout: Duration,
}

/// Records `workload` against the store at `url`: every client's operations, together.
pub fn record(url: &str, workload: Workload, seed: u64) -> History {
    record_while(url, workload, seed, |_| ())
}

/// How far a recording is, for what runs beside it.
pub struct Progress {
    /// The instant the history's times count from.
    pub start: Instant,
    completed: Arc<AtomicUsize>,
}

impl Progress {
    /// Blocks until `n` operations have completed.
    pub fn wait_for(&self, n: usize) {
        while self.completed.load(Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// [`record`], while `meanwhile` runs on this thread (killing a process, say) with the
/// recording's [`Progress`].
pub fn record_while(
    url: &str,
    workload: Workload,
    seed: u64,
    meanwhile: impl FnOnce(&Progress),
) -> History {
    let progress = Progress {
        start: Instant::now(),
        completed: Arc::new(AtomicUsize::new(0)),
    };
    let start = progress.start;
    let clients: Vec<_> = (0..workload.clients)
        .map(|client| {
            let url = url.to_string();
            let completed = progress.completed.clone();
            std::thread::spawn(move || run_client(&url, workload, client, seed, start, &completed))
        })
        .collect();
    meanwhile(&progress);
    clients
        .into_iter()
        .flat_map(|c| c.join().expect("a client thread"))
        .collect()
}

/// Checks `history`, prints what was checked, and fails on a violation. Returns the number of
/// indeterminate operations.
pub fn assert_linearizable(name: &str, history: &History) -> usize {
    let unknown = history
        .iter()
        .filter(|op| op.outcome == Outcome::Unknown)
        .count();
    let swapped = history
        .iter()
        .filter(|op| op.outcome == Outcome::Swapped(true))
        .count();
    let report = kvs_zoo::testing::linearizability::check(history);
    println!(
        "{name}: {} operations on {} keys ({unknown} indeterminate, {swapped} successful CAS) \
         checked in {:?}, {} configurations explored",
        report.operations, report.keys, report.elapsed, report.explored
    );
    // The workload must exercise CAS both ways, or the check proves little about it.
    assert!(swapped > 0, "{name}: no CAS ever swapped");
    if let Some(violation) = &report.violation {
        panic!("{name}: {violation}");
    }
    assert!(report.is_linearizable(), "{name}: {report:?}");
    unknown
}

fn open(url: &str, timeout: Duration) -> Option<Connection> {
    let con = redis::Client::open(url).ok()?.get_connection().ok()?;
    con.set_read_timeout(Some(timeout)).ok()?;
    con.set_write_timeout(Some(timeout)).ok()?;
    Some(con)
}

fn run_client(
    url: &str,
    w: Workload,
    client: u32,
    seed: u64,
    start: Instant,
    completed: &AtomicUsize,
) -> History {
    let mut rng = Rng::new(seed ^ (u64::from(client) << 32));
    let mut con = open(url, w.timeout);
    let mut history = Vec::with_capacity(w.operations as usize);
    let mut last_seen: HashMap<String, String> = HashMap::new();
    let now = || start.elapsed().as_nanos() as u64;
    for i in 0..w.operations {
        let key = format!("lin-{}", rng.below(w.keys as usize));
        // Every written value is unique: the checker then rarely has to try several orders.
        let fresh = format!("{client}-{i}");
        let call = match rng.below(3) {
            0 => Call::Get,
            1 => Call::Set(fresh),
            // Expect the value this client last saw there: it holds it still, unless another
            // client wrote since, so some swaps succeed and some fail.
            _ => Call::Cas {
                expected: last_seen.get(&key).cloned().unwrap_or_default(),
                new: fresh,
            },
        };
        let command = match &call {
            Call::Get => redis::cmd("GET").arg(&key).clone(),
            Call::Set(v) => redis::cmd("SET").arg(&key).arg(v).clone(),
            Call::Cas { expected, new } => {
                redis::cmd("CAS").arg(&key).arg(expected).arg(new).clone()
            }
        };
        let called = now();
        let reply: Option<Value> = con.as_mut().and_then(|c| command.query::<Value>(c).ok());
        let returned = now();
        let outcome = match (&call, reply) {
            (_, None) => Outcome::Unknown,
            (Call::Get, Some(Value::Nil)) => Outcome::Read(None),
            (Call::Get, Some(Value::BulkString(v))) => {
                Outcome::Read(Some(String::from_utf8_lossy(&v).into_owned()))
            }
            (Call::Set(_), Some(Value::Okay)) => Outcome::Written,
            (Call::Cas { .. }, Some(Value::Int(n))) => Outcome::Swapped(n == 1),
            (call, Some(other)) => panic!("{call:?} on {key} was answered {other:?}"),
        };
        match (&call, &outcome) {
            (_, Outcome::Read(Some(v))) => {
                last_seen.insert(key.clone(), v.clone());
            }
            (Call::Set(v), Outcome::Written)
            | (Call::Cas { new: v, .. }, Outcome::Swapped(true)) => {
                last_seen.insert(key.clone(), v.clone());
            }
            _ => {}
        }
        if outcome == Outcome::Unknown {
            // The connection may be broken or out of step: start a new one.
            con = open(url, w.timeout);
        }
        history.push(Operation {
            client,
            key,
            call,
            outcome,
            called,
            returned,
        });
        completed.fetch_add(1, Ordering::Relaxed);
    }
    history
}
