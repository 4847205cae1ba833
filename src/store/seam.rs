//! The seam between a storage core and the stages around it: what every core consumes
//! ([`StorageInput`]) and produces ([`Applied`]: a reply and an [`Effect`] replication acts
//! on), and how a transaction is applied atomically ([`apply_atomically`]).
//!
//! Every core — LWW, lattice, causal — and every replication plug-in speaks these types, so
//! they live here, beside the cores and below the plug-ins, rather than in any one core.

use hydro_lang::live_collections::stream::TotalOrder;
use hydro_lang::location::Location;
use hydro_lang::prelude::*;
use smallvec::SmallVec;

use crate::protocol::{KVSOperation, KVSRequest, KVSResponse, KVSResult, Key};

/// What a storage core consumes: a client's request, or what replication brings or needs.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum StorageInput<V, S> {
    /// A client's request, answered with a response.
    Request(KVSRequest<V>),
    /// A peer's value for a key, merged silently.
    Merge(Key, S),
    /// A peer's value pushed as a rumor: merged silently, and reported as
    /// [`Effect::Heard`] so replication can tell the peer whether this member already had it
    /// (Demers' feedback).
    Rumor {
        /// The peer that pushed it.
        from: u32,
        /// The key.
        key: Key,
        /// The peer's value.
        value: S,
    },
    /// Drop `key` if it still holds exactly the tombstone whose fingerprint is `print`: every
    /// replica is known to hold that tombstone, so no older value can come back (see
    /// `crate::replication::gossip::replica`). A newer version written meanwhile is kept.
    Collect {
        /// The deleted key.
        key: Key,
        /// The tombstone's fingerprint.
        print: u64,
    },
    /// Read the current values of `keys`, to send to peer `to`: replication keeps keys, and
    /// reads values from the store only when it sends them.
    Read {
        /// The peer the values go to.
        to: u32,
        /// What they are for (passed back in [`Effect::Read`]).
        why: ReadFor,
        /// The keys to read; keys the store does not hold are left out.
        keys: Vec<Key>,
    },
}

/// What a replication read is for; the core only passes it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ReadFor {
    /// To push hot keys to a peer as rumors.
    Rumor,
    /// To repair the differences anti-entropy found with a peer.
    Repair,
    /// Everything this replica holds, for a restarted peer catching up (its request's id).
    Sync(u64),
}

/// What replication learns from the core: the stream [`Replication`](crate::server::Replication)
/// wires back to the peers.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Effect<S> {
    /// A key's value changed, by a client's write or a peer's value.
    Changed(Key, S),
    /// A peer's rumor was merged; `changed` is the key's new value, or `None` when this member
    /// already had it.
    Heard {
        /// The peer that pushed the rumor.
        from: u32,
        /// The key.
        key: Key,
        /// The new value, if the merge changed the key.
        changed: Option<S>,
    },
    /// Values read for peer `to`.
    Read {
        /// The peer the values go to.
        to: u32,
        /// What they are for.
        why: ReadFor,
        /// Each key read, with its value.
        values: Vec<(Key, S)>,
    },
}

/// What a storage core produces: responses to client requests, and the [`Effect`]s
/// replication acts on.
pub type StorageOutput<V, S, L> = (
    Stream<KVSResponse<V>, L, Unbounded, TotalOrder>,
    Stream<Effect<S>, L, Unbounded, TotalOrder>,
);

/// What one input produced: the reply (client requests only) and its effect, if any.
pub type Applied<V, S> = (Option<KVSResponse<V>>, Option<Effect<S>>);

/// One input's outputs: a single `(reply, effect)` for most inputs, several for a
/// transaction (inline for one, so the common case allocates nothing).
pub type AppliedAll<V, S> = SmallVec<[Applied<V, S>; 1]>;

/// Applies `input` with `apply`. A transaction's operations are applied one after another,
/// nothing in between — a core's dataflow calls this for each input in turn, so no other
/// input can come between them: that is what makes the transaction atomic. Their effects
/// come out one by one, and their results together, as one response. A transaction inside
/// a transaction (a compound command such as GETDEL queued after MULTI) is applied in place.
pub fn apply_atomically<V, S>(
    input: StorageInput<V, S>,
    mut apply: impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
) -> AppliedAll<V, S> {
    let request = match input {
        StorageInput::Request(request) if matches!(request.op, KVSOperation::Transaction(_)) => {
            request
        }
        other => return smallvec::smallvec![apply(other)],
    };
    let at = request.at;
    let (op, reply_to) = request.into_parts();
    let KVSOperation::Transaction(ops) = op else {
        unreachable!("matched as a transaction above")
    };
    let mut out = AppliedAll::new();
    let result = run_transaction(ops, reply_to, at, &mut apply, &mut out);
    out.push((Some(reply_to.respond(result)), None));
    out
}

/// Answers one client `request` with `apply` — a transaction's operations one after another,
/// as [`apply_atomically`] does — and drops every effect: how a core whose changes nobody
/// reads (a single copy, see [`crate::server::Storage::answer`]) runs.
pub fn answer_atomically<V, S>(
    request: KVSRequest<V>,
    mut apply: impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
) -> KVSResponse<V> {
    let reply_to = crate::protocol::ReplyTo {
        client: request.client,
        request: request.request,
    };
    if !matches!(request.op, KVSOperation::Transaction(_)) {
        let (response, _) = apply(StorageInput::Request(request));
        // Every core answers every request it applies; if one ever did not, the client is
        // told so rather than given an `OK` nothing earned.
        return response.unwrap_or_else(|| {
            reply_to.respond(KVSResult::Error("the store gave no answer".into()))
        });
    }
    let at = request.at;
    let (op, _) = request.into_parts();
    let KVSOperation::Transaction(ops) = op else {
        unreachable!("matched as a transaction above")
    };
    let result = run_transaction(ops, reply_to, at, &mut apply, &mut AppliedAll::new());
    reply_to.respond(result)
}

/// Applies a transaction's `ops` in order, pushing their effects to `out`; returns their
/// results.
fn run_transaction<V, S>(
    ops: Vec<KVSOperation<V>>,
    reply_to: crate::protocol::ReplyTo,
    at: u64,
    apply: &mut impl FnMut(StorageInput<V, S>) -> Applied<V, S>,
    out: &mut AppliedAll<V, S>,
) -> KVSResult<V> {
    let mut results = Vec::with_capacity(ops.len());
    // A transaction after WATCH starts with its guards: each checks (and ends) one watch.
    // All of them run, so every watch ends; if any key changed, nothing else runs.
    let guards = ops
        .iter()
        .take_while(|op| matches!(op, KVSOperation::Unchanged(_)))
        .count();
    let mut ops = ops.into_iter();
    let mut changed = false;
    for op in ops.by_ref().take(guards) {
        let (response, _) = apply(StorageInput::Request(KVSRequest {
            at,
            client: reply_to.client,
            request: reply_to.request,
            op,
        }));
        match response.map(|r| r.result) {
            Some(KVSResult::Ok) => results.push(KVSResult::Ok),
            Some(KVSResult::Error(e)) => return KVSResult::Error(e),
            _ => changed = true,
        }
    }
    if changed {
        return KVSResult::Aborted;
    }
    for op in ops {
        let result = match op {
            KVSOperation::Transaction(inner) => run_transaction(inner, reply_to, at, apply, out),
            op => {
                let (response, effect) = apply(StorageInput::Request(KVSRequest {
                    at,
                    client: reply_to.client,
                    request: reply_to.request,
                    op,
                }));
                if effect.is_some() {
                    out.push((None, effect));
                }
                response.map_or(KVSResult::Ok, |r| r.result)
            }
        };
        results.push(result);
    }
    KVSResult::Transaction(results)
}

/// One input's outputs as an iterator: its reply (`Ok`), then its effect (`Err`).
///
/// A named type rather than an iterator chain because Hydro writes out the types of the
/// staged code, and the standard library's iterator adapters live in private modules.
pub struct Outputs<V, S>(pub Option<KVSResponse<V>>, pub Option<Effect<S>>);

impl<V, S> Iterator for Outputs<V, S> {
    type Item = Result<KVSResponse<V>, Effect<S>>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.take() {
            Some(reply) => Some(Ok(reply)),
            None => self.1.take().map(Err),
        }
    }
}

/// Splits a core's `(reply, effect)` stream into the reply stream and the effect stream.
pub fn split_applied<'a, L, V, S>(
    applied: Stream<Applied<V, S>, L, Unbounded, TotalOrder>,
) -> StorageOutput<V, S, L>
where
    L: Location<'a>,
    V: 'a,
    S: 'a,
{
    // Each input yields a reply, an effect, or both. Flatten them into one stream (`Ok` is a
    // reply, `Err` an effect) and partition it: unlike cloning the stream and filtering each
    // copy, no value is copied on the way.
    let (responses, effects) = applied
        .flat_map_ordered(q!(|(reply, effect)| crate::store::seam::Outputs(
            reply, effect
        )))
        .partition(q!(|out| out.is_ok()));
    (
        responses.filter_map(q!(|out| out.ok())),
        effects.filter_map(q!(|out| out.err())),
    )
}
