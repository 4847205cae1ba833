//! `MULTI`, `EXEC`, `DISCARD`, `WATCH` and `UNWATCH`: commands queued at the edge, then sent
//! to the store as one operation that it applies atomically, and the reply put back
//! together from its parts.

use super::*;

/// Redis's reply to EXEC of a transaction a queueing error spoiled.
pub(super) const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";

/// Commands refused between `MULTI` and `EXEC`: they change the connection (HELLO, AUTH,
/// SELECT), name a member of their own (REPLICAGET, REPLICASET), or answer from outside the
/// store (INFO, DEBUG).
pub(super) const NOT_IN_TRANSACTION: &[&[u8]] = &[
    b"hello",
    b"auth",
    b"select",
    b"debug",
    b"info",
    b"replicaget",
    b"replicaset",
];

/// Commands queued by `MULTI`, answered together by `EXEC`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Transaction {
    /// Every queued command, in order.
    pub queued: Vec<Queued>,
    /// A command was refused while queueing: `EXEC` will discard the transaction.
    pub failed: bool,
    /// The bytes of the queued operations, as they will be sent to the store.
    pub bytes: usize,
}

/// One command of a transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Queued {
    /// Its reply is known now (PING, ECHO, KEYSHARD, …).
    Reply(Reply),
    /// Its operations run in the store with the rest of the transaction's.
    Store(Ops, Assemble),
    /// Not a command: the checks of the watched keys ([`KVSOperation::Unchanged`]) the
    /// transaction starts with. They have no reply of their own.
    Guards(Ops),
}

impl Transaction {
    /// Queues a planned command: `+QUEUED`, or the error that will make `EXEC` discard the
    /// transaction (Redis's EXECABORT) — also when the queued operations would take more
    /// than `max_bytes`.
    pub(super) fn queue(&mut self, planned: Plan, max_bytes: usize) -> Plan {
        let queued = match planned {
            Plan::Reply(error @ Reply::Error(_)) => {
                self.failed = true;
                return Plan::Reply(error);
            }
            Plan::Reply(reply) => Queued::Reply(reply),
            Plan::Store(ops, kind) => {
                // Measured as encoded for the store, the form it travels in.
                let bytes =
                    usize::try_from(bincode::serialized_size(ops.as_slice()).unwrap_or(u64::MAX))
                        .unwrap_or(usize::MAX);
                self.bytes = self.bytes.saturating_add(bytes);
                if self.bytes > max_bytes {
                    self.failed = true;
                    return Plan::Reply(Reply::err(format!(
                        "transaction too large: its commands take more than {max_bytes} bytes \
                         (--max-transaction-bytes); it will be discarded"
                    )));
                }
                Queued::Store(ops, kind)
            }
            Plan::ReplyAndClose(_) | Plan::Info(_) | Plan::Sleep(_) | Plan::Exec(_) => {
                self.failed = true;
                return Plan::Reply(Reply::err("Command not allowed inside a transaction"));
            }
        };
        self.queued.push(queued);
        Plan::Reply(Reply::simple("QUEUED"))
    }
}

/// MULTI, EXEC, DISCARD, WATCH and UNWATCH.
pub(super) fn transaction_command(
    name: &[u8],
    args: &[Bytes],
    session: &mut Session,
    settings: &Settings,
) -> Plan {
    if !args.is_empty() && name != b"watch" {
        return wrong_arity(name);
    }
    let open = session.transaction.is_some();
    Plan::Reply(match name {
        b"multi" if open => Reply::err("MULTI calls can not be nested"),
        b"multi" => {
            session.transaction = Some(Transaction::default());
            Reply::simple("OK")
        }
        b"discard" if open => {
            session.transaction = None;
            return unwatch(session);
        }
        b"discard" => Reply::err("DISCARD without MULTI"),
        b"exec" => return exec(session, settings),
        b"watch" if args.is_empty() => return wrong_arity(name),
        b"watch" if open => Reply::err("WATCH inside MULTI is not allowed"),
        // The store remembers each key's version for this connection; EXEC checks them.
        b"watch" => {
            for key in args {
                if !session.watched.contains(key) {
                    session.watched.push(key.clone());
                }
            }
            return Plan::Store(
                args.iter().cloned().map(KVSOperation::Watch).collect(),
                Assemble::Watch,
            );
        }
        // UNWATCH inside MULTI is queued like a command, as in Redis: it forgets the watches
        // when EXEC runs — which ends them anyway.
        _ if open => Reply::simple("OK"),
        _ => return unwatch(session),
    })
}

/// Forgets this connection's watches, in the store too (`UNWATCH`, `DISCARD`): `+OK`.
pub(super) fn unwatch(session: &mut Session) -> Plan {
    if session.watched.is_empty() {
        return Plan::Reply(Reply::simple("OK"));
    }
    let ops = session
        .watched
        .drain(..)
        .map(KVSOperation::Unwatch)
        .collect();
    Plan::Store(ops, Assemble::Set)
}

/// `EXEC`: the transaction's commands, to run as one atomic operation — or why they will not.
/// After `WATCH`, the transaction starts with a check of each watched key, and the watches
/// end with it.
pub(super) fn exec(session: &mut Session, settings: &Settings) -> Plan {
    let Some(mut transaction) = session.transaction.take() else {
        return Plan::Reply(Reply::err("EXEC without MULTI"));
    };
    if transaction.failed {
        // The store's watches of this connection end too (Redis unwatches on EXECABORT); the
        // reply is the abort.
        if let Plan::Store(ops, _) = unwatch(session) {
            return Plan::Store(ops, Assemble::ExecAbort);
        }
        return Plan::Reply(Reply::Error(EXECABORT.into()));
    }
    if !session.watched.is_empty() {
        let guards = session
            .watched
            .drain(..)
            .map(KVSOperation::Unchanged)
            .collect();
        transaction.queued.insert(0, Queued::Guards(guards));
    }
    // A transaction is atomic because one storage member applies it with nothing in between;
    // keys on two shards would need two members to agree, which a sharded store cannot do.
    let mut shards = transaction.queued.iter().flat_map(|q| match q {
        Queued::Store(ops, _) | Queued::Guards(ops) => ops.as_slice(),
        Queued::Reply(_) => &[],
    });
    if let Some(first) = shards.next() {
        let shard = settings.shards.locate(first.key()).shard;
        if shards.any(|op| settings.shards.locate(op.key()).shard != shard) {
            return Plan::Reply(Reply::Error(
                "CROSSSLOT Keys in request don't hash to the same slot: this store is sharded, \
                 and a transaction is applied atomically only when all its keys live on one \
                 shard (KEYSHARD key tells where a key lives)"
                    .into(),
            ));
        }
    }
    Plan::Exec(transaction.queued)
}

/// How `EXEC`'s reply is built: each queued command's reply, known already or assembled from
/// its share of the transaction's results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExecPart {
    /// Known when the command was queued.
    Ready(Reply),
    /// Assembled as the command's own reply from its `n` results.
    Results(Assemble, usize),
    /// `n` checks of watched keys: no reply of their own.
    Guards(usize),
}

/// `EXEC`'s reply: one reply per queued command, from the transaction's `result`.
pub fn assemble_exec(parts: Vec<ExecPart>, result: KVSResult<Bytes>) -> Reply {
    let results = match result {
        KVSResult::Transaction(results) => results,
        // A watched key changed: nothing ran, and EXEC answers a nil array, as Redis does.
        KVSResult::Aborted => return Reply::NilArray,
        // The transaction as a whole failed (its shard is down, it timed out): nothing ran.
        KVSResult::Error(e) => return Reply::err(e),
        other => return Reply::err(format!("EXEC got no transaction answer: {other:?}")),
    };
    let mut results = results.into_iter();
    Reply::Array(
        parts
            .into_iter()
            .filter_map(|part| match part {
                ExecPart::Ready(reply) => Some(reply),
                ExecPart::Results(kind, n) => {
                    Some(assemble(kind, results.by_ref().take(n).collect()))
                }
                ExecPart::Guards(n) => {
                    results.by_ref().take(n).for_each(drop);
                    None
                }
            })
            .collect(),
    )
}
