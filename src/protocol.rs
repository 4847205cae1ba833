//! The typed protocol spoken *inside* every architecture.
//!
//! Clients speak RESP at the edge (see [`crate::edge::front`]); the front turns each command into one
//! or more [`KVSRequest`]s, and every stage of an architecture (router, ordering, storage,
//! replication) passes these typed values along. Each request carries the id of the
//! connection that sent it and a request id unique on that connection, and its
//! [`KVSResponse`] carries both back: the front matches a reply to its request by those ids,
//! never by arrival order, because in a sharded or replicated store replies can overtake each
//! other.

use serde::{Deserialize, Serialize};

use crate::membership::{MemberId, ShardId};

/// Identifies one client connection at the front (unique for the life of a server process).
pub type ClientId = u64;

/// Identifies one request on its connection; the front numbers them 0, 1, 2, … in arrival order.
pub type RequestId = u64;

/// Keys are binary-safe byte strings, as in Redis.
pub type Key = bytes::Bytes;

/// A causal context: the version history a client read, handed back with its next write so
/// the store knows which versions that write supersedes (Riak's "vclock"). To clients it is an
/// opaque token; causal stores write it as text (see [`crate::values::VectorClock`]).
pub type Context = bytes::Bytes;

/// One operation on the store, before any architecture-specific metadata is attached.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KVSOperation<V> {
    /// Read the value of a key.
    Get(Key),
    /// Write (Redis `SET`) a value for a key.
    Put(Key, V),
    /// Remove a key. Stores record a tombstone, so a delete merges like any other write.
    Delete(Key),
    /// Read a key's values together with their causal context (causal stores only).
    GetVersioned(Key),
    /// Write a value that supersedes exactly the versions in the context (causal stores
    /// only): read-modify-write that resolves siblings.
    PutVersioned(Key, Context, V),
    /// Read a key at one chosen storage member, whatever the router would pick: how tests
    /// and readers look at one replica's copy.
    GetAt(MemberId, Key),
    /// Write a value at one chosen storage member: how a demo makes two replicas accept
    /// concurrent writes.
    PutAt(MemberId, Key, V),
    /// `INCRBY` (and INCR, DECR, DECRBY): add to the integer a key holds (0 when missing),
    /// answering the sum — read, add and write in one step, so no increment is lost.
    Add(Key, i64),
    /// `APPEND`: add bytes to the end of a key's value (an empty value when missing),
    /// answering the new length.
    Append(Key, V),
    /// `SET … NX` / `SET … XX` / `SETNX`: write only when the key is missing / present;
    /// answers `Ok` when written, `NotFound` when not.
    PutIf(Key, V, Presence),
    /// `CAS key expected new`: write `new` only if the key holds exactly `expected` (a
    /// missing key never matches); answers `Integer(1)` when written, `Integer(0)` when not.
    /// The register operation Maelstrom's lin-kv workload and the linearizability checker use.
    Cas(Key, V, V),
    /// `DBSIZE`, for one shard: how many live keys the member serving it holds.
    Count(ShardId),
    /// `SCAN` / `KEYS`, for one shard: up to `count` of its keys at or after scan position
    /// `from` (see [`crate::store::keyspace`]), those matching `pattern`.
    Scan {
        /// The shard scanned.
        shard: ShardId,
        /// The scan position to start at.
        from: u64,
        /// How many keys to look at (more when positions collide).
        count: u32,
        /// A Redis glob the returned keys must match.
        pattern: Option<Key>,
    },
    /// `FLUSHDB` / `FLUSHALL`, for one shard: remove every key.
    Flush(ShardId),
    /// `SET … EX/PX/EXAT/PXAT/KEEPTTL` (with `NX`/`XX` or not), `SETEX`, `PSETEX`: write
    /// the value — only when the key is missing / present, if a [`Presence`] is given — and
    /// give it `Expiry`. Answers `Ok` when written, `NotFound` when the condition failed.
    PutExpiring(Key, V, Option<Presence>, Expiry),
    /// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`: the key expires at this deadline
    /// (milliseconds since the Unix epoch, decided once, at the edge); a deadline already
    /// passed removes the key. Answers `Integer(1)` when the key exists, `Integer(0)` when
    /// not.
    ExpireAt(Key, u64),
    /// `PERSIST`: the key no longer expires. Answers `Integer(1)` when it had a deadline,
    /// `Integer(0)` when not (or when missing).
    Persist(Key),
    /// `TTL` / `PTTL`: answers `Integer(ms)` left before the key expires, `Integer(-1)` when
    /// it does not expire, `Integer(-2)` when it is missing.
    Ttl(Key),
    /// `WATCH key`: the store remembers the key's version for this client, so a later
    /// transaction can check that nobody changed the key meanwhile ([`Self::Unchanged`]).
    /// Answers `Ok`.
    Watch(Key),
    /// `UNWATCH`, `DISCARD`: forget this client's watch of the key. Answers `Ok`.
    Unwatch(Key),
    /// The first operations of a transaction after `WATCH`: answers `Ok` when the key has
    /// not changed since this client watched it, `NotFound` when it has (written, deleted,
    /// expired) or is not watched; either way the watch is over. If any answers `NotFound`
    /// the transaction's other operations do not run and it answers
    /// [`KVSResult::Aborted`] — Redis's optimistic locking.
    Unchanged(Key),
    /// A transaction (`MULTI` … `EXEC`): these operations, applied one after another by one
    /// storage member with nothing in between, answered together by
    /// [`KVSResult::Transaction`]. The edge sends one only when every key lives on one shard
    /// and no operation names a member.
    Transaction(Vec<KVSOperation<V>>),
    /// Never sent by a client: a replica of the linearizable store, asked to bring another
    /// up to date, reads its whole state at one point of the log. Answers
    /// [`KVSResult::Snapshot`] with these bytes (the log's part of the snapshot) and the
    /// store's state. Cores with no state transfer answer an error.
    Snapshot(bytes::Bytes),
    /// Never sent by a client: replace the store's whole state by one a
    /// [`Self::Snapshot`] read. Answers `Ok`, or an error if the state cannot be read.
    Restore(bytes::Bytes),
}

/// When a value written by [`KVSOperation::PutExpiring`] expires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Expiry {
    /// At this deadline, in milliseconds since the Unix epoch.
    At(u64),
    /// When the value it replaces would have (`KEEPTTL`); never if it had no deadline.
    Keep,
}

/// The condition of a [`KVSOperation::PutIf`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Presence {
    /// Write only if the key holds no value (`NX`).
    Absent,
    /// Write only if the key holds a value (`XX`).
    Present,
}

/// The key of an operation that names no key (an empty transaction, a keyspace command).
static NO_KEY: Key = Key::from_static(b"");

impl<V> KVSOperation<V> {
    /// The key that routes this operation: the one key it touches; for a transaction, its
    /// first key (all its keys live on one shard); and the empty key for the keyspace
    /// operations (`Count`, `Scan`, `Flush`), which name their shard instead ([`Self::shard`]).
    pub fn key(&self) -> &Key {
        match self {
            KVSOperation::Transaction(ops) => ops.first().map_or(&NO_KEY, |op| op.key()),
            KVSOperation::Get(k)
            | KVSOperation::Put(k, _)
            | KVSOperation::Delete(k)
            | KVSOperation::GetVersioned(k)
            | KVSOperation::PutVersioned(k, _, _)
            | KVSOperation::GetAt(_, k)
            | KVSOperation::PutAt(_, k, _)
            | KVSOperation::Add(k, _)
            | KVSOperation::Append(k, _)
            | KVSOperation::PutIf(k, _, _)
            | KVSOperation::Cas(k, _, _)
            | KVSOperation::PutExpiring(k, _, _, _)
            | KVSOperation::ExpireAt(k, _)
            | KVSOperation::Persist(k)
            | KVSOperation::Ttl(k)
            | KVSOperation::Watch(k)
            | KVSOperation::Unwatch(k)
            | KVSOperation::Unchanged(k) => k,
            KVSOperation::Count(_)
            | KVSOperation::Scan { .. }
            | KVSOperation::Flush(_)
            | KVSOperation::Snapshot(_)
            | KVSOperation::Restore(_) => &NO_KEY,
        }
    }

    /// The shard this operation must run at, when it names one rather than a key (the
    /// keyspace commands, which the edge sends to every shard).
    pub fn shard(&self) -> Option<ShardId> {
        match self {
            KVSOperation::Count(shard)
            | KVSOperation::Scan { shard, .. }
            | KVSOperation::Flush(shard) => Some(*shard),
            _ => None,
        }
    }

    /// True if applying this operation twice has the effect of applying it once, so a router
    /// may send it again to another member when the one that had it stops answering (and may
    /// have applied it after all). Reads are; so are writes of a given value (`SET`, `DEL`,
    /// `FLUSHDB`: the second copy is merely a later version of the same value). Operations that
    /// compute from what they read are not: an `INCR` applied by a slow member and again by
    /// another counts twice, an `APPEND` appends twice, a `CAS` may succeed twice. A
    /// transaction is idempotent if every one of its operations is.
    pub fn is_idempotent(&self) -> bool {
        match self {
            KVSOperation::Add(..)
            | KVSOperation::Append(..)
            | KVSOperation::PutIf(..)
            | KVSOperation::Cas(..) => false,
            // `SET … NX|XX` with a deadline is a conditional write too.
            KVSOperation::PutExpiring(_, _, presence, _) => presence.is_none(),
            KVSOperation::Transaction(ops) => ops.iter().all(KVSOperation::is_idempotent),
            KVSOperation::Get(_)
            | KVSOperation::Put(..)
            | KVSOperation::Delete(_)
            | KVSOperation::GetVersioned(_)
            | KVSOperation::PutVersioned(..)
            | KVSOperation::GetAt(..)
            | KVSOperation::PutAt(..)
            | KVSOperation::Count(_)
            | KVSOperation::Scan { .. }
            | KVSOperation::Flush(_)
            | KVSOperation::ExpireAt(..)
            | KVSOperation::Persist(_)
            | KVSOperation::Ttl(_)
            | KVSOperation::Watch(_)
            | KVSOperation::Unwatch(_)
            | KVSOperation::Unchanged(_)
            | KVSOperation::Snapshot(_)
            | KVSOperation::Restore(_) => true,
        }
    }

    /// The storage member this operation must run at, when it names one.
    pub fn member(&self) -> Option<MemberId> {
        match self {
            KVSOperation::GetAt(member, _) | KVSOperation::PutAt(member, _, _) => Some(*member),
            _ => None,
        }
    }
}

/// An operation together with the ids that route its reply back to the right client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KVSRequest<V> {
    /// The connection that sent the request.
    pub client: ClientId,
    /// The request's number on that connection.
    pub request: RequestId,
    /// What to do.
    pub op: KVSOperation<V>,
    /// The edge's clock when the request arrived, in milliseconds since the Unix epoch (0:
    /// no time given). Expiry is judged by it, not by the clock of whichever process applies
    /// the request: a store's time is the greatest `at` it has applied, so every replica of a
    /// log reaches the same verdict on whether a key has expired, and tests can set the time.
    pub at: u64,
}

impl<V> KVSRequest<V> {
    /// Takes the request apart: its operation, whose key and value can then move into a store
    /// instead of being copied, and the address its response must carry.
    pub fn into_parts(self) -> (KVSOperation<V>, ReplyTo) {
        let reply_to = ReplyTo {
            client: self.client,
            request: self.request,
        };
        (self.op, reply_to)
    }
}

/// Where a response goes: the ids of the request it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The connection that sent the request.
    pub client: ClientId,
    /// The request's number on that connection.
    pub request: RequestId,
}

impl ReplyTo {
    /// Addresses `result` to the request, so the reply finds its way home.
    pub fn respond<W>(self, result: KVSResult<W>) -> KVSResponse<W> {
        KVSResponse {
            client: self.client,
            request: self.request,
            result,
        }
    }
}

/// The outcome of one operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum KVSResult<V> {
    /// A GET found exactly one value.
    Value(V),
    /// A GET found several concurrent values (causal stores keep concurrent writes).
    Siblings(Vec<V>),
    /// A versioned read: the key's causal context and its live values (none if deleted or
    /// never written; several if concurrent writes are siblings).
    Versioned(Context, Vec<V>),
    /// A PUT was applied, or a DELETE removed a live value.
    Ok,
    /// A GET found no live value, or a DELETE found nothing to remove.
    NotFound,
    /// The operation failed; the text is shown to the client as a Redis error.
    Error(String),
    /// A transaction's results, one per operation, in order.
    Transaction(Vec<KVSResult<V>>),
    /// A number: the sum of an `Add`, the length after an `Append`, a shard's key count.
    Integer(i64),
    /// One step of a scan: the position to continue from (`None`: the shard is done) and
    /// the keys found.
    Scanned(Option<u64>, Vec<Key>),
    /// A transaction that did not run: a key it watched had changed (`EXEC` answers nil).
    Aborted,
    /// The answer to [`KVSOperation::Snapshot`]: the bytes it carried, and the store's state
    /// (for [`KVSOperation::Restore`]). Never sent to a client.
    Snapshot(bytes::Bytes, bytes::Bytes),
}

/// A result addressed to the request it answers.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KVSResponse<V> {
    /// The connection the reply goes to.
    pub client: ClientId,
    /// The request it answers.
    pub request: RequestId,
    /// What happened.
    pub result: KVSResult<V>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_the_ids_of_their_request() {
        let req = KVSRequest {
            at: 0,
            client: 7,
            request: 42,
            op: KVSOperation::Put(Key::from_static(b"k"), 1u8),
        };
        let (op, reply_to) = req.into_parts();
        assert_eq!(op.key(), &Key::from_static(b"k"));
        let resp = reply_to.respond::<u8>(KVSResult::Ok);
        assert_eq!((resp.client, resp.request), (7, 42));
        assert_eq!(resp.result, KVSResult::Ok);
    }

    #[test]
    fn every_operation_names_its_key() {
        let k = Key::from_static(b"x");
        for op in [
            KVSOperation::Get(k.clone()),
            KVSOperation::Put(k.clone(), ()),
            KVSOperation::Delete(k.clone()),
            KVSOperation::GetVersioned(k.clone()),
            KVSOperation::PutVersioned(k.clone(), Context::new(), ()),
            KVSOperation::GetAt(MemberId(2), k.clone()),
            KVSOperation::PutAt(MemberId(2), k.clone(), ()),
        ] {
            assert_eq!(op.key(), &k);
            let targeted = matches!(op, KVSOperation::GetAt(..) | KVSOperation::PutAt(..));
            assert_eq!(op.member(), targeted.then_some(MemberId(2)));
        }
    }
}
