//! Expiry: `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`, `TTL`, `PTTL`, `PERSIST`, and the
//! deadlines they and `SET … EX` compute from the edge's clock.

use super::*;

/// The deadline (ms since the epoch, at least 0) that `amount` of `unit` names at `now_ms`:
/// seconds or milliseconds from now (`ex`, `px`, EXPIRE, PEXPIRE, SETEX, PSETEX) or since
/// the epoch (`exat`, `pxat`, EXPIREAT, PEXPIREAT). `None` when it does not fit.
pub(super) fn deadline(unit: &[u8], amount: i64, now_ms: u64) -> Option<u64> {
    let amount = i128::from(amount);
    let now = i128::from(now_ms);
    let ms = match unit {
        b"ex" | b"expire" | b"setex" => now + amount.checked_mul(1000)?,
        b"px" | b"pexpire" | b"psetex" => now + amount,
        b"exat" | b"expireat" => amount.checked_mul(1000)?,
        _ => amount,
    };
    // A deadline in the past is "now": the key expires at once. One past what the
    // store's clock can hold does not fit.
    u64::try_from(ms.max(0))
        .ok()
        .filter(|&ms| ms < u64::MAX / 2)
}

/// The expiry commands: SETEX, PSETEX, EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT, TTL, PTTL,
/// PERSIST.
pub(super) fn expiry(name: &[u8], args: &[Bytes], now_ms: u64) -> Plan {
    let invalid = || {
        Plan::Reply(Reply::err(format!(
            "invalid expire time in '{}' command",
            String::from_utf8_lossy(name)
        )))
    };
    match (name, args) {
        (b"setex" | b"psetex", [key, amount, value]) => {
            let Some(amount) = integer(amount) else {
                return Plan::Reply(not_an_integer());
            };
            match deadline(name, amount, now_ms) {
                Some(deadline) if amount > 0 => Plan::Store(
                    smallvec![KVSOperation::PutExpiring(
                        key.clone(),
                        value.clone(),
                        None,
                        Expiry::At(deadline)
                    )],
                    Assemble::Set,
                ),
                _ => invalid(),
            }
        }
        (b"expire" | b"pexpire" | b"expireat" | b"pexpireat", [key, amount, options @ ..]) => {
            if !options.is_empty() {
                return Plan::Reply(Reply::err(format!(
                    "{} options NX, XX, GT and LT are not supported",
                    String::from_utf8_lossy(name).to_ascii_uppercase()
                )));
            }
            let Some(amount) = integer(amount) else {
                return Plan::Reply(not_an_integer());
            };
            match deadline(name, amount, now_ms) {
                Some(deadline) => Plan::Store(
                    smallvec![KVSOperation::ExpireAt(key.clone(), deadline)],
                    Assemble::Integer,
                ),
                None => invalid(),
            }
        }
        (b"ttl" | b"pttl", [key]) => Plan::Store(
            smallvec![KVSOperation::Ttl(key.clone())],
            Assemble::Ttl {
                seconds: name == b"ttl",
            },
        ),
        (b"persist", [key]) => Plan::Store(
            smallvec![KVSOperation::Persist(key.clone())],
            Assemble::Integer,
        ),
        _ => wrong_arity(name),
    }
}
