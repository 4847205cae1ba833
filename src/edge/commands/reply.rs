//! How the results of a command's operations become its one RESP reply.

use super::*;

/// Builds the reply to a data command from its operations' results, given in operation order.
pub fn assemble(kind: Assemble, results: Results) -> Reply {
    // An error in any operation is the command's reply: Redis commands fail as a whole.
    if let Some(e) = results.iter().find_map(|r| match r {
        KVSResult::Error(e) => Some(e.clone()),
        _ => None,
    }) {
        return Reply::err(e);
    }
    let count = |want: fn(&KVSResult<Bytes>) -> bool| {
        Reply::Integer(results.iter().filter(|r| want(r)).count() as i64)
    };
    match kind {
        Assemble::Set | Assemble::MultiSet | Assemble::Watch => Reply::simple("OK"),
        Assemble::ExecAbort => Reply::Error(EXECABORT.into()),
        Assemble::Get => results.into_iter().next().map_or(Reply::Nil, value_reply),
        Assemble::Deleted => count(|r| matches!(r, KVSResult::Ok)),
        Assemble::Existing => count(|r| match r {
            // A value, siblings, or (replicated stores) a counter.
            KVSResult::Value(_) | KVSResult::Siblings(_) | KVSResult::Integer(_) => true,
            KVSResult::Versioned(_, values) => !values.is_empty(),
            KVSResult::Ok
            | KVSResult::NotFound
            | KVSResult::Error(_)
            | KVSResult::Transaction(_)
            | KVSResult::Scanned(..)
            | KVSResult::Aborted
            | KVSResult::Snapshot(..) => false,
        }),
        Assemble::MultiGet => Reply::Array(results.into_iter().map(value_reply).collect()),
        Assemble::Versioned => match results.into_iter().next() {
            Some(KVSResult::Versioned(context, values)) => Reply::Array(
                std::iter::once(context)
                    .chain(values)
                    .map(Reply::Bulk)
                    .collect(),
            ),
            other => Reply::err(format!("GETCTX got no versioned answer: {other:?}")),
        },
        Assemble::GetAnd => match results.into_iter().next() {
            Some(KVSResult::Transaction(results)) => {
                // The write refused (a counter's SET on a replicated store): say so rather
                // than answer the value read as if it had been replaced.
                if let Some(KVSResult::Error(e)) = results.get(1) {
                    return Reply::err(e);
                }
                results.into_iter().next().map_or(Reply::Nil, value_reply)
            }
            other => Reply::err(format!("got no transaction answer: {other:?}")),
        },
        Assemble::Integer => match results.into_iter().next() {
            Some(KVSResult::Integer(n)) => Reply::Integer(n),
            other => Reply::err(format!("got no number: {other:?}")),
        },
        Assemble::SetIf => match results.into_iter().next() {
            Some(KVSResult::Ok) => Reply::simple("OK"),
            _ => Reply::Nil,
        },
        Assemble::SetIfAbsent => count(|r| matches!(r, KVSResult::Ok)),
        Assemble::Ttl { seconds } => match results.into_iter().next() {
            // Redis rounds the milliseconds left to the nearest second.
            Some(KVSResult::Integer(ms)) if seconds && ms >= 0 => {
                Reply::Integer(ms.saturating_add(500) / 1000)
            }
            Some(KVSResult::Integer(n)) => Reply::Integer(n),
            other => Reply::err(format!("got no time to live: {other:?}")),
        },
        Assemble::Sum => Reply::Integer(
            results
                .iter()
                .map(|r| match r {
                    KVSResult::Integer(n) => *n,
                    _ => 0,
                })
                .sum(),
        ),
        Assemble::Keys => Reply::Array(
            results
                .into_iter()
                .flat_map(|r| match r {
                    KVSResult::Scanned(_, keys) => keys,
                    _ => vec![],
                })
                .map(Reply::Bulk)
                .collect(),
        ),
        Assemble::Scan { shard, shards } => match results.into_iter().next() {
            Some(KVSResult::Scanned(next, keys)) => {
                let bits = crate::store::keyspace::POSITION_BITS;
                let cursor = match next {
                    Some(position) => (u64::from(shard) << bits) | position,
                    // This shard is done: on to the next, or 0 when it was the last.
                    None if shard + 1 < shards => u64::from(shard + 1) << bits,
                    None => 0,
                };
                Reply::Array(vec![
                    Reply::text(cursor.to_string()),
                    Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
                ])
            }
            other => Reply::err(format!("SCAN got no keys: {other:?}")),
        },
        Assemble::Type => match results.into_iter().next() {
            Some(KVSResult::Value(_) | KVSResult::Siblings(_) | KVSResult::Integer(_)) => {
                Reply::simple("string")
            }
            _ => Reply::simple("none"),
        },
        Assemble::Strlen => match results.into_iter().next() {
            Some(KVSResult::Value(v)) => Reply::Integer(v.len() as i64),
            Some(KVSResult::Integer(n)) => Reply::Integer(n.to_string().len() as i64),
            Some(KVSResult::Siblings(_)) => Reply::err(
                "the key has siblings (concurrent writes): read them with GET, then resolve \
                 them with SETCTX",
            ),
            _ => Reply::Integer(0),
        },
    }
}

/// One GET result as RESP: a value, nil, (causal stores) the siblings — a set, since
/// concurrent versions have no order (RESP3 `~`; an array in RESP2) — or a counter's value.
pub(super) fn value_reply(result: KVSResult<Bytes>) -> Reply {
    match result {
        KVSResult::Value(v) => Reply::Bulk(v),
        KVSResult::Siblings(vs) | KVSResult::Versioned(_, vs) => {
            Reply::Set(vs.into_iter().map(Reply::Bulk).collect())
        }
        KVSResult::NotFound | KVSResult::Ok | KVSResult::Aborted => Reply::Nil,
        KVSResult::Error(e) => Reply::err(e),
        KVSResult::Transaction(_) => Reply::err("a transaction's results answer EXEC only"),
        // A replicated store's counter: a string, as Redis stores the integers INCR makes.
        KVSResult::Integer(n) => Reply::text(n.to_string()),
        KVSResult::Scanned(_, keys) => Reply::Array(keys.into_iter().map(Reply::Bulk).collect()),
        KVSResult::Snapshot(..) => Reply::err("a snapshot goes from replica to replica only"),
    }
}
