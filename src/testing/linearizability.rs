//! A linearizability checker for histories of a key-value store used as a set of registers
//! (`get`, `set`, `cas`), recorded from the outside by clients.
//!
//! **The question.** Clients record, for every operation, when they called it, when the
//! answer came back and what it was. The history is *linearizable* if every operation can be
//! given one instant between its call and its return such that, replayed in the order of
//! those instants, a single register per key gives exactly the answers the clients saw
//! (Herlihy and Wing, 1990). That is the guarantee the linearizable store claims, and no test
//! of single answers can check it: a stale read is a perfectly plausible answer on its own.
//!
//! **The search** is Wing and Gong's (1993): walk the history's events in time order; at a
//! call, try to linearize that operation now (if the register agrees with its answer), and
//! go on; at a return whose operation is not yet linearized, the choices made so far are
//! wrong — undo the latest and try the next. With Lowe's improvement (2017) every
//! configuration reached — the *set* of operations linearized so far and the register's
//! state — is remembered, and never explored twice: orders that linearize the same
//! operations to the same state are interchangeable. This is the algorithm of Knossos's
//! `wgl` checker and of Porcupine.
//!
//! **Per-key decomposition.** Registers are independent: a history is linearizable exactly
//! when its restriction to each key is (linearizability is *local*, Herlihy and Wing's
//! Theorem 1). So each key is checked alone, which keeps the search small.
//!
//! **Indeterminate operations.** A client that timed out does not know whether its
//! operation happened. It is recorded with no return: it may take effect at any instant
//! after its call, or never (if it takes effect later than every other operation, nothing
//! can tell the difference), and any answer is allowed. A `get` that timed out says nothing
//! and is dropped.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// What a client asked of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call<V> {
    /// Read the key.
    Get,
    /// Write the key.
    Set(V),
    /// Write `new` if the key holds exactly `expected` (a missing key never matches).
    Cas {
        /// The value the key must hold.
        expected: V,
        /// The value it then holds.
        new: V,
    },
}

/// What came back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome<V> {
    /// A `get`'s answer: the value, or `None` for a missing key.
    Read(Option<V>),
    /// A `set` was acknowledged.
    Written,
    /// A `cas`'s answer: whether it swapped.
    Swapped(bool),
    /// No answer (a timeout, a lost connection): the operation may or may not have happened.
    Unknown,
}

/// One operation of a history, as a client recorded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation<K, V> {
    /// Which client ran it (for reports only: the check needs only the times).
    pub client: u32,
    /// The key.
    pub key: K,
    /// What was asked.
    pub call: Call<V>,
    /// What came back.
    pub outcome: Outcome<V>,
    /// When the client sent it, in any monotonic unit (nanoseconds since the run began).
    pub called: u64,
    /// When the answer came back; ignored when the outcome is [`Outcome::Unknown`].
    pub returned: u64,
}

/// What the checker found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report<K> {
    /// Operations checked (indeterminate `get`s are not counted: they say nothing).
    pub operations: usize,
    /// Keys checked.
    pub keys: usize,
    /// Configurations the search visited, over all keys: how hard the history was.
    pub explored: u64,
    /// How long the check took.
    pub elapsed: Duration,
    /// `None` if the history is linearizable; else the first key found not to be, and why.
    pub violation: Option<Violation<K>>,
    /// A key whose search passed the limit of configurations before reaching a verdict
    /// (then no verdict is given for it or the keys after it).
    pub inconclusive: Option<K>,
}

impl<K> Report<K> {
    /// Whether the whole history was found linearizable.
    pub fn is_linearizable(&self) -> bool {
        self.violation.is_none() && self.inconclusive.is_none()
    }
}

/// How many configurations the search may visit for one key before it gives up.
///
/// Deciding linearizability is NP-complete, and indeterminate operations are what make a
/// history hard: each one never returns, so it stays a candidate at every later point and the
/// subsets of them double the configurations. Histories where a few operations time out (a
/// crash, an election) are quick; a limit keeps a pathological one from running for hours.
pub const SEARCH_LIMIT: u64 = 20_000_000;

/// Why one key's history is not linearizable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation<K> {
    /// The key.
    pub key: K,
    /// The longest order the search found that explains a prefix of the key's history,
    /// each operation as the history's [`fmt::Debug`] of it.
    pub longest_explained: Vec<String>,
    /// The operation that no order could place: it returned before the search could
    /// linearize it in any order explaining everything before it.
    pub unexplained: String,
}

impl<K: fmt::Debug> fmt::Display for Violation<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "key {:?} is not linearizable", self.key)?;
        writeln!(
            f,
            "longest explainable order ({} operations):",
            self.longest_explained.len()
        )?;
        for op in &self.longest_explained {
            writeln!(f, "  {op}")?;
        }
        write!(f, "which cannot be extended past: {}", self.unexplained)
    }
}

/// Checks a whole history, key by key (see the module docs), visiting at most
/// [`SEARCH_LIMIT`] configurations per key.
pub fn check<K, V>(history: &[Operation<K, V>]) -> Report<K>
where
    K: Clone + Eq + Hash + Ord + fmt::Debug,
    V: Clone + Eq + Hash + fmt::Debug,
{
    check_within(history, SEARCH_LIMIT)
}

/// [`check`] with another limit on the configurations visited per key.
pub fn check_within<K, V>(history: &[Operation<K, V>], limit: u64) -> Report<K>
where
    K: Clone + Eq + Hash + Ord + fmt::Debug,
    V: Clone + Eq + Hash + fmt::Debug,
{
    let started = Instant::now();
    let mut by_key: HashMap<&K, Vec<&Operation<K, V>>> = HashMap::new();
    for op in history {
        if op.call == Call::Get && op.outcome == Outcome::Unknown {
            continue;
        }
        by_key.entry(&op.key).or_default().push(op);
    }
    // Keys in order, so a report names the same key on every run.
    let mut keys: Vec<&K> = by_key.keys().copied().collect();
    keys.sort();
    let mut report = Report {
        operations: by_key.values().map(Vec::len).sum(),
        keys: keys.len(),
        explored: 0,
        elapsed: Duration::ZERO,
        violation: None,
        inconclusive: None,
    };
    for key in keys {
        let ops = &by_key[key];
        let (explored, verdict) = check_register(ops, limit);
        report.explored += explored;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::Violation {
                longest,
                unexplained,
            } => {
                report.violation = Some(Violation {
                    key: key.clone(),
                    longest_explained: longest.iter().map(|&i| describe(ops[i])).collect(),
                    unexplained: describe(ops[unexplained]),
                });
                break;
            }
            Verdict::Inconclusive => {
                report.inconclusive = Some(key.clone());
                break;
            }
        }
    }
    report.elapsed = started.elapsed();
    report
}

fn describe<K: fmt::Debug, V: fmt::Debug>(op: &Operation<K, V>) -> String {
    let returned = match op.outcome {
        Outcome::Unknown => "?".to_string(),
        _ => op.returned.to_string(),
    };
    format!(
        "client {} {:?} -> {:?} [{}, {}]",
        op.client, op.call, op.outcome, op.called, returned
    )
}

/// A register's state: which interned value it holds, if any.
type State = Option<u32>;

/// An operation with its values interned, so states are small and cheap to hash.
#[derive(Clone, Copy, Debug)]
enum Step {
    Get(State),
    Set(u32),
    Cas {
        expected: u32,
        new: u32,
        swapped: Option<bool>,
    },
}

// Free functions rather than methods: Hydro's staged copy of this crate (compiled into each
// deployed process) keeps no `impl` blocks of private types.

/// The state after `step` from `state`, if its recorded answer fits `state`.
fn apply(step: Step, state: State) -> Option<State> {
    match step {
        Step::Get(read) => (read == state).then_some(state),
        Step::Set(value) => Some(Some(value)),
        Step::Cas {
            expected,
            new,
            swapped,
        } => {
            let swaps = state == Some(expected);
            match swapped {
                Some(answer) if answer != swaps => None,
                _ => Some(if swaps { Some(new) } else { state }),
            }
        }
    }
}

/// One event of the history: an operation's call or its return.
#[derive(Clone, Copy, Debug)]
struct Event {
    op: usize,
    is_call: bool,
}

/// A set of operations, as bits.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct OpSet(Vec<u64>);

/// No operations, of `n`.
fn no_ops(n: usize) -> OpSet {
    OpSet(vec![0; n.div_ceil(64)])
}

/// Adds `op` to `set`, or removes it.
fn flip(set: &mut OpSet, op: usize) {
    set.0[op / 64] ^= 1 << (op % 64);
}

/// What the search concluded about one register.
enum Verdict {
    Linearizable,
    /// Not linearizable: the longest order found (indices of operations), and the operation
    /// whose return stopped it.
    Violation {
        longest: Vec<usize>,
        unexplained: usize,
    },
    /// The limit on configurations was reached.
    Inconclusive,
}

/// Wing–Gong–Lowe on one register's operations. Returns the configurations explored and the
/// verdict.
fn check_register<K, V>(ops: &[&Operation<K, V>], limit: u64) -> (u64, Verdict)
where
    V: Clone + Eq + Hash,
{
    let mut values: HashMap<V, u32> = HashMap::new();
    let mut intern = |v: &V| -> u32 {
        let next = values.len() as u32;
        *values.entry(v.clone()).or_insert(next)
    };
    let steps: Vec<Step> = ops
        .iter()
        .map(|op| match (&op.call, &op.outcome) {
            (Call::Get, Outcome::Read(value)) => Step::Get(value.as_ref().map(&mut intern)),
            // A get whose answer is of the wrong kind can match no state.
            (Call::Get, _) => Step::Get(Some(u32::MAX)),
            (Call::Set(value), _) => Step::Set(intern(value)),
            (Call::Cas { expected, new }, outcome) => Step::Cas {
                expected: intern(expected),
                new: intern(new),
                swapped: match outcome {
                    Outcome::Swapped(answer) => Some(*answer),
                    _ => None,
                },
            },
        })
        .collect();

    // The events in time order. An unknown operation returns after everything. At equal
    // times calls come first: operations that touch at an instant count as concurrent, the
    // lenient reading of a clock too coarse to order them.
    let returned = |op: usize| match ops[op].outcome {
        Outcome::Unknown => u64::MAX,
        _ => ops[op].returned.max(ops[op].called),
    };
    let mut events: Vec<Event> = (0..ops.len())
        .flat_map(|op| [Event { op, is_call: true }, Event { op, is_call: false }])
        .collect();
    events.sort_by_key(|e| {
        let time = if e.is_call {
            ops[e.op].called
        } else {
            returned(e.op)
        };
        (time, !e.is_call, e.op)
    });

    // A doubly linked list over the events, with a head sentinel at index `n`: linearizing
    // an operation unlinks its call and its return; undoing it links them back, in reverse
    // order, which restores the list exactly.
    let n = events.len();
    let head = n;
    let mut next: Vec<usize> = (1..=n).chain([0]).collect();
    let mut prev: Vec<usize> = std::iter::once(n).chain(0..n).collect();
    // Close the ring: the last event leads back to the head (for no events, the head to
    // itself).
    if let Some(last) = n.checked_sub(1) {
        next[last] = head;
    } else {
        next[head] = head;
    }
    let mut return_of = vec![0; ops.len()];
    for (i, e) in events.iter().enumerate() {
        if !e.is_call {
            return_of[e.op] = i;
        }
    }
    let unlink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, q) = (prev[i], next[i]);
        next[p] = q;
        prev[q] = p;
    };
    let relink = |next: &mut Vec<usize>, prev: &mut Vec<usize>, i: usize| {
        let (p, q) = (prev[i], next[i]);
        next[p] = i;
        prev[q] = i;
    };

    let mut state: State = None;
    let mut linearized = no_ops(ops.len());
    let mut seen: HashSet<(OpSet, State)> = HashSet::new();
    // Each choice made: the call event linearized and the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    // The operation whose return first stopped the longest order: the one to blame.
    let mut blocked: Option<usize> = None;
    let mut explored = 0u64;
    let mut entry = next[head];
    loop {
        if entry == head {
            return (explored, Verdict::Linearizable);
        }
        if explored > limit {
            return (explored, Verdict::Inconclusive);
        }
        let event = events[entry];
        if event.is_call {
            if let Some(after) = apply(steps[event.op], state) {
                let mut with = linearized.clone();
                flip(&mut with, event.op);
                if seen.insert((with.clone(), after)) {
                    explored += 1;
                    stack.push((entry, state));
                    state = after;
                    linearized = with;
                    unlink(&mut next, &mut prev, entry);
                    unlink(&mut next, &mut prev, return_of[event.op]);
                    if stack.len() > longest.len() {
                        longest = stack.iter().map(|&(e, _)| events[e].op).collect();
                        blocked = None;
                    }
                    entry = next[head];
                    continue;
                }
            }
            entry = next[entry];
        } else {
            // This operation returned and is not linearized: undo the latest choice.
            if stack.len() == longest.len() && blocked.is_none() {
                blocked = Some(event.op);
            }
            let Some((call, before)) = stack.pop() else {
                let unexplained = blocked.unwrap_or(event.op);
                return (
                    explored,
                    Verdict::Violation {
                        longest,
                        unexplained,
                    },
                );
            };
            let op = events[call].op;
            relink(&mut next, &mut prev, return_of[op]);
            relink(&mut next, &mut prev, call);
            flip(&mut linearized, op);
            state = before;
            entry = next[call];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Op = Operation<&'static str, u32>;

    fn op(client: u32, call: Call<u32>, outcome: Outcome<u32>, called: u64, returned: u64) -> Op {
        Operation {
            client,
            key: "x",
            call,
            outcome,
            called,
            returned,
        }
    }
    fn set(client: u32, v: u32, called: u64, returned: u64) -> Op {
        op(client, Call::Set(v), Outcome::Written, called, returned)
    }
    fn get(client: u32, v: Option<u32>, called: u64, returned: u64) -> Op {
        op(client, Call::Get, Outcome::Read(v), called, returned)
    }
    fn cas(client: u32, expected: u32, new: u32, swapped: bool, called: u64, returned: u64) -> Op {
        op(
            client,
            Call::Cas { expected, new },
            Outcome::Swapped(swapped),
            called,
            returned,
        )
    }
    fn linearizable(history: &[Op]) -> bool {
        let report = check(history);
        if let Some(v) = &report.violation {
            println!("{v}");
        }
        assert_eq!(report.inconclusive, None);
        report.is_linearizable()
    }

    #[test]
    fn an_empty_history_is_linearizable() {
        assert!(linearizable(&[]));
    }

    #[test]
    fn sequential_operations_with_the_right_answers_are_accepted() {
        assert!(linearizable(&[
            get(0, None, 0, 1),
            set(0, 1, 2, 3),
            get(1, Some(1), 4, 5),
            cas(1, 1, 2, true, 6, 7),
            cas(0, 1, 3, false, 8, 9),
            get(0, Some(2), 10, 11),
        ]));
    }

    #[test]
    fn a_stale_read_is_rejected() {
        // The write of 2 finished before the read began: reading 1 is stale.
        let report = check(&[set(0, 1, 0, 1), set(0, 2, 2, 3), get(1, Some(1), 4, 5)]);
        let violation = report.violation.expect("a stale read");
        assert_eq!(violation.key, "x");
        assert!(
            violation.unexplained.contains("Read(Some(1))"),
            "{violation}"
        );
    }

    #[test]
    fn a_read_concurrent_with_a_write_may_see_either_value() {
        for seen in [Some(1), Some(2)] {
            assert!(linearizable(&[
                set(0, 1, 0, 1),
                set(0, 2, 2, 10),
                get(1, seen, 3, 5),
            ]));
        }
    }

    #[test]
    fn reads_may_not_go_back_in_time() {
        // Both reads overlap the write, but once one reader saw the new value a later read
        // must see it too.
        assert!(!linearizable(&[
            set(0, 1, 0, 1),
            set(0, 2, 2, 20),
            get(1, Some(2), 3, 5),
            get(2, Some(1), 6, 8),
        ]));
    }

    #[test]
    fn a_lost_write_is_rejected() {
        // An acknowledged write, then a read that never sees it nor anything after it.
        assert!(!linearizable(&[
            set(0, 1, 0, 1),
            set(1, 2, 2, 3),
            get(2, Some(1), 10, 11),
            get(2, Some(1), 12, 13),
        ]));
        assert!(!linearizable(&[set(0, 1, 0, 1), get(1, None, 2, 3)]));
    }

    #[test]
    fn a_cas_applied_twice_is_rejected() {
        // Two clients swap 0 → 1 one after the other: only the first may succeed.
        assert!(!linearizable(&[
            set(0, 0, 0, 1),
            cas(0, 0, 1, true, 2, 3),
            cas(1, 0, 1, true, 4, 5),
        ]));
        // Concurrent, they still cannot both succeed.
        assert!(!linearizable(&[
            set(0, 0, 0, 1),
            cas(0, 0, 1, true, 2, 10),
            cas(1, 0, 1, true, 3, 9),
        ]));
        // One of them failing is fine.
        assert!(linearizable(&[
            set(0, 0, 0, 1),
            cas(0, 0, 1, true, 2, 10),
            cas(1, 0, 1, false, 3, 9),
        ]));
    }

    #[test]
    fn a_cas_on_a_missing_key_never_matches() {
        assert!(!linearizable(&[cas(0, 0, 1, true, 0, 1)]));
        assert!(linearizable(&[
            cas(0, 0, 1, false, 0, 1),
            get(0, None, 2, 3)
        ]));
    }

    #[test]
    fn an_unknown_write_may_have_happened_or_not() {
        let unknown = |called| op(0, Call::Set(5), Outcome::Unknown, called, 0);
        assert!(linearizable(&[
            set(1, 1, 0, 1),
            unknown(2),
            get(1, Some(5), 10, 11)
        ]));
        assert!(linearizable(&[
            set(1, 1, 0, 1),
            unknown(2),
            get(1, Some(1), 10, 11)
        ]));
        // ... even late: seen by one read and not by an earlier one.
        assert!(linearizable(&[
            set(1, 1, 0, 1),
            unknown(2),
            get(1, Some(1), 10, 11),
            get(1, Some(5), 12, 13),
        ]));
        // But never before it was called.
        assert!(!linearizable(&[
            set(1, 1, 0, 1),
            get(1, Some(5), 2, 3),
            unknown(4),
        ]));
    }

    #[test]
    fn an_unknown_cas_may_have_swapped_or_not() {
        let unknown = op(
            0,
            Call::Cas {
                expected: 1,
                new: 2,
            },
            Outcome::Unknown,
            2,
            0,
        );
        assert!(linearizable(&[
            set(1, 1, 0, 1),
            unknown.clone(),
            get(1, Some(2), 5, 6)
        ]));
        assert!(linearizable(&[
            set(1, 1, 0, 1),
            unknown,
            get(1, Some(1), 5, 6)
        ]));
    }

    #[test]
    fn a_search_past_its_limit_gives_no_verdict() {
        // Twelve writes that never returned, then a read of a value none of them wrote: every
        // subset of them is tried before the read is found unexplainable.
        let mut history: Vec<Op> = (0..12)
            .map(|v| op(0, Call::Set(v), Outcome::Unknown, v as u64, 0))
            .collect();
        history.push(get(1, Some(99), 100, 101));
        let report = check_within(&history, 1_000);
        assert!(!report.is_linearizable());
        assert_eq!((report.inconclusive, report.violation), (Some("x"), None));
        assert!(check(&history).violation.is_some());
    }

    #[test]
    fn keys_are_checked_apart() {
        let mut other = get(1, Some(7), 4, 5);
        other.key = "y";
        let mut other_set = set(0, 7, 0, 1);
        other_set.key = "y";
        let report = check(&[set(0, 1, 0, 1), other_set, get(1, Some(1), 2, 3), other]);
        assert_eq!((report.keys, report.operations), (2, 4));
        assert!(report.violation.is_none());
        // A violation names its key.
        let mut stale = get(1, Some(9), 6, 7);
        stale.key = "y";
        let report = check(&[set(0, 1, 0, 1), stale]);
        assert_eq!(report.violation.map(|v| v.key), Some("y"));
    }

    /// Histories produced by a real register, with random overlapping intervals around each
    /// operation's instant, are always linearizable; the same histories with one read's
    /// answer changed to a value the register never held at any point are not.
    #[test]
    fn histories_of_a_real_register_are_accepted_and_corrupted_ones_rejected() {
        let mut rng = crate::replication::gossip::rng::Rng::new(7);
        let mut explored = 0;
        for round in 0..50 {
            let mut register: Option<u32> = None;
            let mut history = vec![];
            let clients = 5;
            let mut free_at = vec![0u64; clients];
            for instant in 0..400u64 {
                let t = instant * 10;
                let client = rng.below(clients);
                if free_at[client] > t {
                    continue;
                }
                // The operation takes effect at `t`; its call and return straddle it.
                let called = t - (rng.below(25) as u64).min(t.saturating_sub(free_at[client]));
                let returned = t + rng.below(25) as u64;
                free_at[client] = returned + 1;
                let value = rng.below(4) as u32;
                let (call, outcome) = match rng.below(3) {
                    0 => (Call::Get, Outcome::Read(register)),
                    1 => {
                        register = Some(value);
                        (Call::Set(value), Outcome::Written)
                    }
                    _ => {
                        let expected = rng.below(4) as u32;
                        let swaps = register == Some(expected);
                        if swaps {
                            register = Some(value);
                        }
                        (
                            Call::Cas {
                                expected,
                                new: value,
                            },
                            Outcome::Swapped(swaps),
                        )
                    }
                };
                // Few timeouts, as in a run with a crash: each one doubles the search.
                let outcome = if rng.chance(100) {
                    Outcome::Unknown
                } else {
                    outcome
                };
                history.push(Operation {
                    client: client as u32,
                    key: "x",
                    call,
                    outcome,
                    called,
                    returned,
                });
            }
            let report = check(&history);
            assert!(report.is_linearizable(), "round {round}: {report:?}");
            // A read of a value no operation ever wrote cannot be explained.
            let read = history
                .iter()
                .rposition(|op| matches!(op.outcome, Outcome::Read(_)))
                .expect("some read");
            history[read].outcome = Outcome::Read(Some(99));
            assert!(check(&history).violation.is_some(), "round {round}");
            explored += report.explored;
        }
        println!("50 histories of 400 operations: {explored} configurations explored");
    }
}
