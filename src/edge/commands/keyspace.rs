//! The keyspace commands, which every shard answers for its own keys: `DBSIZE`, `KEYS`,
//! `SCAN` (a cursor naming a shard and a position in it), `FLUSHDB`/`FLUSHALL`, and
//! `KEYSHARD`, which says where a key lives.

use super::*;

/// `KEYSHARD key`: the shard the key lives on and the members holding it (the numbers
/// REPLICAGET takes), as `[shard, [member, …]]`. It asks [`Shards::locate`], the function the
/// router routes by, so the answer is where the key's requests go.
pub(super) fn key_shard(shards: &Shards, key: &[u8]) -> Reply {
    let place = shards.locate(key);
    Reply::Array(vec![
        Reply::Integer(i64::from(place.shard.0)),
        Reply::Array(
            place
                .members
                .into_iter()
                .map(|m| Reply::Integer(i64::from(m.0)))
                .collect(),
        ),
    ])
}

/// The keyspace commands, which every shard answers for its own keys: `DBSIZE` (summed),
/// `KEYS pattern` (joined), `SCAN cursor [MATCH p] [COUNT n]` (one shard at a time: the
/// cursor's top bits name the shard, the rest the scan position in it), `FLUSHDB` and
/// `FLUSHALL` (every shard).
pub(super) fn keyspace(name: &[u8], args: &[Bytes], shards: u32) -> Plan {
    let every_shard = |op: &dyn Fn(ShardId) -> KVSOperation<Bytes>| -> Ops {
        (0..shards).map(ShardId).map(op).collect()
    };
    match (name, args) {
        (b"dbsize", []) => Plan::Store(every_shard(&KVSOperation::Count), Assemble::Sum),
        (b"keys", [pattern]) => Plan::Store(
            every_shard(&|shard| KVSOperation::Scan {
                shard,
                from: 0,
                count: u32::MAX,
                pattern: Some(pattern.clone()),
            }),
            Assemble::Keys,
        ),
        (b"flushdb" | b"flushall", [] | [_]) => {
            let mode = args.first().map(|m| m.to_ascii_lowercase());
            if mode.is_some_and(|m| m != b"sync" && m != b"async") {
                return Plan::Reply(Reply::err("syntax error"));
            }
            Plan::Store(every_shard(&KVSOperation::Flush), Assemble::Set)
        }
        (b"scan", [cursor, options @ ..]) => scan(cursor, options, shards),
        _ => wrong_arity(name),
    }
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE string]`.
pub(super) fn scan(cursor: &Bytes, options: &[Bytes], shards: u32) -> Plan {
    let Some(cursor) = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return Plan::Reply(Reply::err("invalid cursor"));
    };
    let shard = cursor >> crate::store::keyspace::POSITION_BITS;
    let from = cursor & ((1 << crate::store::keyspace::POSITION_BITS) - 1);
    let Some(shard) = u32::try_from(shard).ok().filter(|s| *s < shards) else {
        return Plan::Reply(Reply::err("invalid cursor"));
    };
    let (mut pattern, mut count) = (None, 10u32);
    let mut options = options.iter();
    while let Some(option) = options.next() {
        match (option.to_ascii_lowercase().as_slice(), options.next()) {
            (b"match", Some(p)) => pattern = Some(p.clone()),
            (b"count", Some(n)) => {
                match std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| n.parse::<u32>().ok())
                {
                    Some(n) if n > 0 => count = n,
                    _ => return Plan::Reply(Reply::err("value is not an integer or out of range")),
                }
            }
            // Every value is a string: TYPE string filters nothing, any other type everything.
            (b"type", Some(t)) if t.eq_ignore_ascii_case(b"string") => {}
            (b"type", Some(_)) => {
                return Plan::Reply(Reply::Array(vec![Reply::text("0"), Reply::Array(vec![])]));
            }
            _ => return Plan::Reply(Reply::err("syntax error")),
        }
    }
    Plan::Store(
        smallvec![KVSOperation::Scan {
            shard: ShardId(shard),
            from,
            count,
            pattern
        }],
        Assemble::Scan { shard, shards },
    )
}
