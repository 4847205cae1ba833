//! The commands that read and write keys (`GET`, `SET` and its options, `MGET`, `MSET`,
//! `DEL`, counters, `APPEND`, `CAS`, the causal `GETCTX`/`SETCTX`, …), each planned into
//! typed operations, one per key.

use super::*;

/// Plans a data command, moving its keys and values into the operations (no copies: this is
/// the path every GET and SET takes).
pub(super) fn data(name: &[u8], all: Args, now_ms: u64) -> Plan {
    let n = all.len().saturating_sub(1);
    let mut args = all.into_iter().skip(1);
    let mut two = || (args.next(), args.next());
    match name {
        b"get" if n == 1 => match two() {
            (Some(key), None) => Plan::Store(smallvec![KVSOperation::Get(key)], Assemble::Get),
            _ => wrong_arity(name),
        },
        b"set" if n > 2 => {
            let key_value = two();
            let options: Vec<Bytes> = args.collect();
            match (key_value, set_options(&options, now_ms)) {
                (_, Err(e)) => Plan::Reply(e),
                ((Some(key), Some(value)), Ok(options)) => {
                    let write = |key| match (options.condition, options.expiry) {
                        (None, None) => KVSOperation::Put(key, value),
                        (Some(presence), None) => KVSOperation::PutIf(key, value, presence),
                        (condition, Some(expiry)) => {
                            KVSOperation::PutExpiring(key, value, condition, expiry)
                        }
                    };
                    match (options.get, options.condition) {
                        (true, _) => get_and(key, write),
                        (false, None) => Plan::Store(smallvec![write(key)], Assemble::Set),
                        (false, Some(_)) => Plan::Store(smallvec![write(key)], Assemble::SetIf),
                    }
                }
                _ => wrong_arity(name),
            }
        }
        b"setnx" if n == 2 => match two() {
            (Some(key), Some(value)) => Plan::Store(
                smallvec![KVSOperation::PutIf(key, value, Presence::Absent)],
                Assemble::SetIfAbsent,
            ),
            _ => wrong_arity(name),
        },
        b"incr" | b"decr" if n == 1 => match two() {
            (Some(key), None) => {
                let delta = if name == b"incr" { 1 } else { -1 };
                Plan::Store(smallvec![KVSOperation::Add(key, delta)], Assemble::Integer)
            }
            _ => wrong_arity(name),
        },
        b"incrby" | b"decrby" if n == 2 => match two() {
            (Some(key), Some(by)) => {
                let by = std::str::from_utf8(&by)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok());
                let delta = match by {
                    Some(by) if name == b"incrby" => Some(by),
                    Some(by) => by.checked_neg(),
                    None => None,
                };
                match delta {
                    Some(delta) => {
                        Plan::Store(smallvec![KVSOperation::Add(key, delta)], Assemble::Integer)
                    }
                    None => Plan::Reply(Reply::err("value is not an integer or out of range")),
                }
            }
            _ => wrong_arity(name),
        },
        b"cas" if n == 3 => match (two(), args.next()) {
            ((Some(key), Some(expected)), Some(new)) => Plan::Store(
                smallvec![KVSOperation::Cas(key, expected, new)],
                Assemble::Integer,
            ),
            _ => wrong_arity(name),
        },
        b"append" if n == 2 => match two() {
            (Some(key), Some(value)) => Plan::Store(
                smallvec![KVSOperation::Append(key, value)],
                Assemble::Integer,
            ),
            _ => wrong_arity(name),
        },
        b"getset" if n == 2 => match two() {
            (Some(key), Some(value)) => get_and(key, |key| KVSOperation::Put(key, value)),
            _ => wrong_arity(name),
        },
        b"getdel" if n == 1 => match two() {
            (Some(key), None) => get_and(key, KVSOperation::Delete),
            _ => wrong_arity(name),
        },
        b"type" if n == 1 => match two() {
            (Some(key), None) => Plan::Store(smallvec![KVSOperation::Get(key)], Assemble::Type),
            _ => wrong_arity(name),
        },
        b"strlen" if n == 1 => match two() {
            (Some(key), None) => Plan::Store(smallvec![KVSOperation::Get(key)], Assemble::Strlen),
            _ => wrong_arity(name),
        },
        b"set" if n == 2 => match two() {
            (Some(key), Some(value)) => {
                Plan::Store(smallvec![KVSOperation::Put(key, value)], Assemble::Set)
            }
            _ => wrong_arity(name),
        },
        b"del" if n >= 1 => {
            Plan::Store(args.map(KVSOperation::Delete).collect(), Assemble::Deleted)
        }
        b"exists" if n >= 1 => {
            Plan::Store(args.map(KVSOperation::Get).collect(), Assemble::Existing)
        }
        b"mget" if n >= 1 => Plan::Store(args.map(KVSOperation::Get).collect(), Assemble::MultiGet),
        b"getctx" if n == 1 => match two() {
            (Some(key), None) => Plan::Store(
                smallvec![KVSOperation::GetVersioned(key)],
                Assemble::Versioned,
            ),
            _ => wrong_arity(name),
        },
        b"setctx" if n == 3 => match (args.next(), args.next(), args.next()) {
            (Some(key), Some(context), Some(value)) => Plan::Store(
                smallvec![KVSOperation::PutVersioned(key, context, value)],
                Assemble::Set,
            ),
            _ => wrong_arity(name),
        },
        b"replicaget" if n == 2 => match (args.next().as_deref().and_then(member), args.next()) {
            (Some(member), Some(key)) => Plan::Store(
                smallvec![KVSOperation::GetAt(MemberId(member), key)],
                Assemble::Get,
            ),
            _ => Plan::Reply(Reply::err(
                "REPLICAGET wants a replica number and a key, e.g. REPLICAGET 0 key",
            )),
        },
        b"replicaset" if n == 3 => {
            match (
                args.next().as_deref().and_then(member),
                args.next(),
                args.next(),
            ) {
                (Some(member), Some(key), Some(value)) => Plan::Store(
                    smallvec![KVSOperation::PutAt(MemberId(member), key, value)],
                    Assemble::Set,
                ),
                _ => Plan::Reply(Reply::err(
                    "REPLICASET wants a replica number, a key and a value, e.g. REPLICASET 0 key value",
                )),
            }
        }
        b"mset" if n >= 2 && n.is_multiple_of(2) => {
            let mut ops = Ops::with_capacity(n / 2);
            while let (Some(k), Some(v)) = two() {
                ops.push(KVSOperation::Put(k, v));
            }
            Plan::Store(ops, Assemble::MultiSet)
        }
        _ => wrong_arity(name),
    }
}

/// What `SET key value [options]` asks beyond a plain write.
#[derive(Default)]
pub(super) struct SetOptions {
    /// `NX` / `XX`: write only if the key is absent / present.
    condition: Option<Presence>,
    /// `GET`: answer the old value.
    get: bool,
    /// `EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`.
    expiry: Option<Expiry>,
}

/// The options of `SET key value …`, as Redis takes them: at most one of `NX` and `XX`, at
/// most one expiry, `GET`; relative expiries become deadlines from `now_ms`.
pub(super) fn set_options(options: &[Bytes], now_ms: u64) -> Result<SetOptions, Reply> {
    let syntax = || Reply::err("syntax error");
    let mut set = SetOptions::default();
    let mut words = options.iter();
    while let Some(word) = words.next() {
        match word.to_ascii_lowercase().as_slice() {
            b"nx" | b"xx" if set.condition.is_none() => {
                set.condition = Some(if word.eq_ignore_ascii_case(b"nx") {
                    Presence::Absent
                } else {
                    Presence::Present
                });
            }
            b"get" => set.get = true,
            b"keepttl" if set.expiry.is_none() => set.expiry = Some(Expiry::Keep),
            unit @ (b"ex" | b"px" | b"exat" | b"pxat") if set.expiry.is_none() => {
                let amount = words.next().ok_or_else(syntax)?;
                let amount = integer(amount).ok_or_else(not_an_integer)?;
                if amount <= 0 {
                    return Err(Reply::err("invalid expire time in 'set' command"));
                }
                let deadline = deadline(unit, amount, now_ms)
                    .ok_or_else(|| Reply::err("invalid expire time in 'set' command"))?;
                set.expiry = Some(Expiry::At(deadline));
            }
            _ => return Err(syntax()),
        }
    }
    Ok(set)
}

/// An argument as Redis reads an integer.
pub(super) fn integer(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// Redis's reply to an argument that should be an integer.
pub(super) fn not_an_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

/// Reads `key` and then applies `then(key)` to it, both in one transaction (so nothing comes
/// between them), answering the value read: GETSET, GETDEL, `SET … GET`.
pub(super) fn get_and(key: Bytes, then: impl FnOnce(Bytes) -> KVSOperation<Bytes>) -> Plan {
    let ops = vec![KVSOperation::Get(key.clone()), then(key)];
    Plan::Store(smallvec![KVSOperation::Transaction(ops)], Assemble::GetAnd)
}

/// A storage member's number, as REPLICAGET and REPLICASET take it.
pub(super) fn member(word: &[u8]) -> Option<u32> {
    std::str::from_utf8(word).ok()?.parse().ok()
}
