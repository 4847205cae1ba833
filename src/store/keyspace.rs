//! The keyspace commands' logic, shared by every core: Redis's glob patterns (`KEYS`, `SCAN …
//! MATCH`) and the order `SCAN` walks a store's keys in.
//!
//! **Why hash order.** `SCAN` promises that a key present for the whole scan is returned,
//! however many cursor calls it takes and whatever is written meanwhile. A store kept in a
//! hash map has no stable order of its own, so a scan walks keys in the order of a stable hash
//! of each key ([`position`]), and the cursor is simply the next position to look at. Keys
//! written or deleted meanwhile cannot shift anyone else's position. (Keys whose positions
//! collide are always returned together, so none is skipped at a batch boundary.)

use crate::hashing::stable_hash;
use crate::protocol::Key;

/// Bits of a cursor that hold the position within a shard; the bits above name the shard.
pub const POSITION_BITS: u32 = 56;

/// Where `key` falls in a scan: its stable hash, cut to [`POSITION_BITS`] bits.
pub fn position(key: &[u8]) -> u64 {
    stable_hash(key) >> (64 - POSITION_BITS)
}

/// One step of a scan over `keys` (a store's live keys, in any order): up to `count` keys at
/// or after position `from` (more when positions collide), those of them that match
/// `pattern`, and the position to continue from — `None` once no key lies beyond.
pub fn scan<'k>(
    keys: impl Iterator<Item = &'k Key>,
    from: u64,
    count: usize,
    pattern: Option<&[u8]>,
) -> (Option<u64>, Vec<Key>) {
    let mut ahead: Vec<(u64, &Key)> = keys
        .map(|k| (position(k), k))
        .filter(|(p, _)| *p >= from)
        .collect();
    ahead.sort_unstable();
    let take = match ahead.get(count.max(1) - 1) {
        // Everything at the last taken position goes in this batch too.
        Some(&(last, _)) => ahead.partition_point(|(p, _)| *p <= last),
        None => ahead.len(),
    };
    let next = ahead.get(take).map(|(p, _)| *p);
    let keys = ahead[..take]
        .iter()
        .filter(|(_, k)| pattern.is_none_or(|p| glob_match(p, k)))
        .map(|(_, k)| (*k).clone())
        .collect();
    (next, keys)
}

/// A core's answer to a `Scan` operation over `keys` (see [`scan`]).
pub fn scan_result<'k, V>(
    keys: impl Iterator<Item = &'k Key>,
    from: u64,
    count: u32,
    pattern: Option<&[u8]>,
) -> crate::protocol::KVSResult<V> {
    let (next, keys) = scan(keys, from, count as usize, pattern);
    crate::protocol::KVSResult::Scanned(next, keys)
}

/// Redis's glob: `*` any run, `?` any one byte, `[abc]`, `[^a]`, `[a-z]` classes, and `\`
/// to take the next byte literally. Byte-wise, like Redis.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative with one backtrack point for the last `*`: linear-ish and never recursive,
    // so a hostile pattern cannot blow the stack.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, end)) = class(pattern, p, text[t]) {
                        if matched {
                            p = end;
                            t += 1;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unclosed `[` is a literal.
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() && pattern[p + 1] == text[t] => {
                    p += 2;
                    t += 1;
                    continue;
                }
                // An escaped byte that differs: a mismatch, whatever the byte is.
                b'\\' if p + 1 < pattern.len() => {}
                c if c == text[t] => {
                    p += 1;
                    t += 1;
                    continue;
                }
                _ => {}
            }
        }
        // Mismatch: let the last `*` swallow one more byte, or fail.
        match star {
            Some((sp, st)) => {
                p = sp + 1;
                t = st + 1;
                star = Some((sp, st + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `byte` against the class starting at `pattern[at] == b'['`: whether it matched,
/// and where the pattern goes on after the class; `None` if the class is never closed.
fn class(pattern: &[u8], at: usize, byte: u8) -> Option<(bool, usize)> {
    let mut i = at + 1;
    let negate = pattern.get(i) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let c = *pattern.get(i)?;
        if c == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if c == b'\\' {
            let escaped = *pattern.get(i + 1)?;
            matched |= escaped == byte;
            i += 2;
        } else if pattern.get(i + 1) == Some(&b'-')
            && pattern.get(i + 2).is_some_and(|&e| e != b']')
        {
            let (lo, hi) = (c.min(pattern[i + 2]), c.max(pattern[i + 2]));
            matched |= (lo..=hi).contains(&byte);
            i += 3;
        } else {
            matched |= c == byte;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_redis_does() {
        let yes = |p: &str, t: &str| assert!(glob_match(p.as_bytes(), t.as_bytes()), "{p} {t}");
        let no = |p: &str, t: &str| assert!(!glob_match(p.as_bytes(), t.as_bytes()), "{p} {t}");
        yes("*", "");
        yes("*", "anything");
        yes("user:*", "user:7");
        no("user:*", "users");
        yes("h?llo", "hello");
        no("h?llo", "hllo");
        yes("h*llo", "heeeello");
        yes("h[ae]llo", "hallo");
        no("h[ae]llo", "hillo");
        yes("h[^e]llo", "hallo");
        no("h[^e]llo", "hello");
        yes("h[a-c]llo", "hbllo");
        no("h[a-c]llo", "hdllo");
        yes("a\\*b", "a*b");
        no("a\\*b", "axb");
        yes("*a*b*c*", "xxaxxbxxcxx");
        no("*a*b*c*", "xxaxxcxxbxx");
        yes("[", "[");
        no("", "x");
        yes("", "");
    }

    #[test]
    fn a_scan_in_batches_returns_every_key_once() {
        let keys: Vec<Key> = (0..1000).map(|i| Key::from(format!("key:{i}"))).collect();
        let mut seen = vec![];
        let mut from = 0;
        let mut calls = 0;
        loop {
            let (next, batch) = scan(keys.iter(), from, 37, None);
            seen.extend(batch);
            calls += 1;
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        seen.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(seen, want);
        assert!(calls >= 1000 / 37, "{calls}");
    }

    #[test]
    fn a_key_present_all_along_is_returned_whatever_is_written_meanwhile() {
        let mut keys: Vec<Key> = (0..100).map(|i| Key::from(format!("stay:{i}"))).collect();
        let mut seen = vec![];
        let mut from = 0;
        let mut round = 0;
        loop {
            let (next, batch) = scan(keys.iter(), from, 10, Some(b"stay:*"));
            seen.extend(batch);
            // Meanwhile other keys come and go.
            keys.push(Key::from(format!("new:{round}")));
            round += 1;
            match next {
                Some(n) => from = n,
                None => break,
            }
        }
        for i in 0..100 {
            assert!(
                seen.contains(&Key::from(format!("stay:{i}"))),
                "stay:{i} missed"
            );
        }
    }
}
