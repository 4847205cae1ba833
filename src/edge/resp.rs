//! RESP2, the Redis serialization protocol: an incremental request decoder and a reply encoder.
//!
//! Pure code, no I/O: [`crate::edge::front`] feeds it bytes as they arrive from a socket. Clients send
//! either *multibulk* arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every
//! client library sends) or *inline* commands (`PING\r\n`, what people type into `telnet` and
//! what `redis-benchmark -t ping_inline` sends).
//!
//! The decoder keeps its place between calls, so a 1 MiB value arriving in 64 KiB reads is
//! scanned once, not re-parsed from its start on every read. An argument longer than the
//! configured limit is *skipped* as it streams in instead of being buffered: the command is
//! then reported as [`Command::oversized`], so the connection stays in sync and the client gets
//! an error for that command only.

use std::borrow::Cow;

use bytes::{Buf, Bytes, BytesMut};
use smallvec::SmallVec;

/// Longest line (inline command, or `*N` / `$N` header) accepted before a protocol error.
/// Redis uses the same 64 KiB bound for inline requests.
pub const MAX_LINE: usize = 64 * 1024;
/// Most arguments one command may have (Redis's own bound).
pub const MAX_ARGS: i64 = 1024 * 1024;
/// Longest bulk string the protocol admits at all (Redis's `proto-max-bulk-len` default).
pub const MAX_BULK: i64 = 512 * 1024 * 1024;
/// Most memory one command's arguments may take while it is buffered (each argument counts
/// its length plus its handle). Without a bound, one `MSET` of a million 1 MiB values would
/// exhaust the server's memory; Redis bounds a client's query buffer the same way.
pub const MAX_COMMAND: usize = 128 * 1024 * 1024;

/// What one buffered argument costs beyond its bytes.
const ARG_OVERHEAD: usize = std::mem::size_of::<Bytes>();
/// A command's words, inline for up to three (GET k, SET k v: no allocation for the list).
pub type Args = SmallVec<[Bytes; 3]>;

/// One decoded client command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The command name followed by its arguments; arguments that were too long are left out.
    pub args: Args,
    /// True when some argument exceeded the size limit and was skipped.
    pub oversized: bool,
}

/// A malformed request. Redis answers `-ERR Protocol error: …` and closes the connection,
/// because after a framing error it can no longer tell where the next command starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Protocol error: {}", self.0)
    }
}

impl std::error::Error for ProtocolError {}

/// Where the decoder is inside a multibulk array.
#[derive(Debug)]
enum Pending {
    /// Waiting for the next `$len` header.
    Header,
    /// Waiting for `len` bytes of argument plus `\r\n`.
    Bulk(usize),
    /// Discarding the rest of an oversized argument.
    Skip(usize),
    /// The oversized argument is discarded; its `\r\n` comes next.
    Crlf,
}

#[derive(Debug)]
enum State {
    Idle,
    Array {
        remaining: usize,
        args: Args,
        /// Memory the buffered arguments take, counted against the command limit.
        size: usize,
        oversized: bool,
        pending: Pending,
    },
}

/// Incremental RESP2 request decoder. Feed it the connection's read buffer; it consumes the
/// bytes of every complete command it returns.
///
/// **Where arguments live.** Each argument is copied out of the read buffer into an
/// allocation of its own, never split off it: a split-off `Bytes` would share (and keep
/// alive) the whole read buffer, so a stored 3-byte value would pin 16 KiB. (Copying a
/// command's short arguments into one shared chunk was tried: the reference counting and
/// the chunk's second allocation, made when it is first sliced, cost more than they saved.)
#[derive(Debug)]
pub struct RespDecoder {
    max_arg: usize,
    max_command: usize,
    /// Command names kept as static strings instead of being copied (see
    /// [`RespDecoder::with_names`]).
    names: Option<&'static CommandNames>,
    state: State,
}

impl RespDecoder {
    /// A decoder that rejects (skips) arguments longer than `max_arg` bytes, and commands
    /// larger than [`MAX_COMMAND`].
    pub fn new(max_arg: usize) -> Self {
        Self::with_command_limit(max_arg, MAX_COMMAND)
    }

    /// A decoder that skips arguments longer than `max_arg` bytes and refuses (as a protocol
    /// error) commands whose arguments would take more than `max_command` bytes.
    pub fn with_command_limit(max_arg: usize, max_command: usize) -> Self {
        Self {
            max_arg,
            max_command,
            names: None,
            state: State::Idle,
        }
    }

    /// A decoder that gives a command whose name is one of `names` (compared ignoring case)
    /// that name as a static string, in lower case, instead of a copy of what the client sent:
    /// the name is only looked at, so copying it is wasted work on every command.
    pub fn with_names(mut self, names: &'static CommandNames) -> Self {
        self.names = Some(names);
        self
    }

    /// Decodes the next complete command from `buf`, consuming its bytes. `Ok(None)` means more
    /// bytes are needed. After an error the connection must be closed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtocolError> {
        loop {
            match &mut self.state {
                State::Idle => {
                    let Some(&first) = buf.first() else {
                        return Ok(None);
                    };
                    if first == b'*' {
                        if let Some((command, used)) = self.decode_whole(buf) {
                            buf.advance(used);
                            return Ok(Some(command));
                        }
                        let Some(n) = take_line(buf, "too big mbulk count string", |l| {
                            l.get(1..).and_then(parse_int)
                        })?
                        else {
                            return Ok(None);
                        };
                        let n = n
                            .filter(|n| *n <= MAX_ARGS)
                            .ok_or_else(|| err("invalid multibulk length"))?;
                        if n <= 0 {
                            // Redis ignores empty and null arrays.
                            continue;
                        }
                        self.state = State::Array {
                            remaining: n as usize,
                            args: SmallVec::new(),
                            size: 0,
                            oversized: false,
                            pending: Pending::Header,
                        };
                    } else {
                        let Some(args) = take_line(buf, "too big inline request", |line| {
                            line.split(|b| b.is_ascii_whitespace())
                                .filter(|w| !w.is_empty())
                                .map(Bytes::copy_from_slice)
                                .collect::<Args>()
                        })?
                        else {
                            return Ok(None);
                        };
                        if args.is_empty() {
                            continue;
                        }
                        let oversized = args.iter().any(|a| a.len() > self.max_arg);
                        return Ok(Some(Command { args, oversized }));
                    }
                }
                State::Array {
                    remaining,
                    args,
                    size,
                    oversized,
                    pending,
                } => {
                    if *remaining == 0 {
                        let command = Command {
                            args: std::mem::take(args),
                            oversized: *oversized,
                        };
                        self.state = State::Idle;
                        return Ok(Some(command));
                    }
                    match *pending {
                        Pending::Header => {
                            let Some(&first) = buf.first() else {
                                return Ok(None);
                            };
                            if first != b'$' {
                                return Err(err(&format!(
                                    "expected '$', got '{}'",
                                    char::from(first).escape_default()
                                )));
                            }
                            let Some(len) = take_line(buf, "too big bulk count string", |l| {
                                l.get(1..).and_then(parse_int)
                            })?
                            else {
                                return Ok(None);
                            };
                            let len = len
                                .filter(|n| (0..=MAX_BULK).contains(n))
                                .ok_or_else(|| err("invalid bulk length"))?
                                as usize;
                            if len > self.max_arg {
                                *oversized = true;
                                *pending = Pending::Skip(len);
                            } else {
                                // Checked before the argument is buffered, so the limit
                                // bounds memory, not just the command that gets through.
                                *size += len + ARG_OVERHEAD;
                                if *size > self.max_command {
                                    return Err(err(&format!(
                                        "too big command: its arguments exceed {} bytes",
                                        self.max_command
                                    )));
                                }
                                *pending = Pending::Bulk(len);
                            }
                        }
                        Pending::Bulk(len) => {
                            let (Some(word), Some(end)) = (buf.get(..len), buf.get(len..len + 2))
                            else {
                                buf.reserve((len + 2).saturating_sub(buf.len()));
                                return Ok(None);
                            };
                            if end != b"\r\n" {
                                return Err(err("bulk string not terminated by CRLF"));
                            }
                            // Copied out, not split off (see the type's docs).
                            let known = match args.is_empty() {
                                true => self.names.and_then(|names| names.find(word)),
                                false => None,
                            };
                            args.push(match known {
                                Some(name) => Bytes::from_static(name.as_bytes()),
                                None => Bytes::copy_from_slice(word),
                            });
                            buf.advance(len + 2);
                            *remaining -= 1;
                            *pending = Pending::Header;
                        }
                        Pending::Skip(left) => {
                            let n = left.min(buf.len());
                            buf.advance(n);
                            if n < left {
                                *pending = Pending::Skip(left - n);
                                return Ok(None);
                            }
                            *pending = Pending::Crlf;
                        }
                        Pending::Crlf => {
                            if buf.len() < 2 {
                                return Ok(None);
                            }
                            if &buf[..2] != b"\r\n" {
                                return Err(err("bulk string not terminated by CRLF"));
                            }
                            buf.advance(2);
                            *remaining -= 1;
                            *pending = Pending::Header;
                        }
                    }
                }
            }
        }
    }

    /// The common case in one pass: the multibulk command at the front of `buf` when it is
    /// there whole, well formed, and none of its arguments is oversized.
    /// Returns it and how many bytes it took; `None` leaves everything else (a command cut
    /// by the end of a read, oversized arguments, anything malformed) to the general
    /// decoder, which gives the same commands and the errors.
    ///
    /// Why a second path: the general decoder keeps its place between reads, so it consumes
    /// each header and argument as it goes and re-checks its state at every step. A pipeline
    /// read delivers whole commands nearly always, and under pipelining that step-by-step decoding
    /// showed up high in profiles; this path checks the frame
    /// first, then copies the arguments out and consumes the command with one `advance`.
    fn decode_whole(&self, buf: &[u8]) -> Option<(Command, usize)> {
        let mut at = 1;
        let n = header_number(buf, &mut at)?;
        if n == 0 || n > WHOLE_MAX_ARGS {
            return None;
        }
        // Where each argument is: (start, length).
        let mut spans: SmallVec<[(usize, usize); 4]> = SmallVec::new();
        let mut size = 0;
        for _ in 0..n {
            if *buf.get(at)? != b'$' {
                return None;
            }
            at += 1;
            let len = header_number(buf, &mut at)?;
            if len > self.max_arg {
                return None;
            }
            let end = at + len;
            if buf.get(end..end + 2)? != b"\r\n" {
                return None;
            }
            spans.push((at, len));
            size += len + ARG_OVERHEAD;
            at = end + 2;
        }
        if size > self.max_command {
            return None;
        }
        let word = |(start, len): (usize, usize)| &buf[start..start + len];
        let mut args = Args::new();
        for (i, &span) in spans.iter().enumerate() {
            let known = match i {
                0 => self.names.and_then(|names| names.find(word(span))),
                _ => None,
            };
            args.push(match known {
                Some(name) => Bytes::from_static(name.as_bytes()),
                None => Bytes::copy_from_slice(word(span)),
            });
        }
        Some((
            Command {
                args,
                oversized: false,
            },
            at,
        ))
    }
}

/// Command names a decoder recognises ([`RespDecoder::with_names`]), indexed once and shared
/// by every connection's decoder: each name, lower-cased and zero-padded to 16 bytes, is one
/// number, and the numbers are sorted, so a name is found by one binary search over numbers,
/// not by comparing strings.
#[derive(Debug)]
pub struct CommandNames {
    names: &'static [&'static str],
    /// `(packed name, its index in names)`, sorted.
    packed: Box<[(u128, usize)]>,
}

impl CommandNames {
    /// Indexes `names` (lower case). A name longer than 16 bytes is not indexed: commands
    /// with it keep the spelling the client sent.
    pub fn new(names: &'static [&'static str]) -> Self {
        let mut packed: Vec<(u128, usize)> = names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| Some((pack_name(name.as_bytes())?, i)))
            .collect();
        packed.sort_unstable();
        Self {
            names,
            packed: packed.into_boxed_slice(),
        }
    }

    /// The name (lower case) that `word` spells, ignoring case.
    pub fn find(&self, word: &[u8]) -> Option<&'static str> {
        let key = pack_name(word)?;
        let at = self
            .packed
            .binary_search_by_key(&key, |&(packed, _)| packed)
            .ok()?;
        // The padding is zeros: `get\0` packs as `get` does, and only the lengths tell them
        // apart.
        self.names
            .get(self.packed.get(at)?.1)
            .copied()
            .filter(|name| name.len() == word.len())
    }
}

/// `word`, lower-cased and zero-padded, as one number; `None` if it is longer than 16 bytes.
fn pack_name(word: &[u8]) -> Option<u128> {
    let mut buf = [0u8; 16];
    buf.get_mut(..word.len())?.copy_from_slice(word);
    buf.make_ascii_lowercase();
    Some(u128::from_le_bytes(buf))
}

/// Most arguments a command may have for [`RespDecoder::decode_whole`] to take it.
const WHOLE_MAX_ARGS: usize = 64;

/// The number in a `*N` or `$N` header starting at `*at` (after its type byte), moving `at`
/// past its `\r\n`; `None` unless it is plain digits (at most 10) ended by `\r\n`.
fn header_number(buf: &[u8], at: &mut usize) -> Option<usize> {
    let start = *at;
    let mut n = 0usize;
    loop {
        match *buf.get(*at)? {
            digit @ b'0'..=b'9' if *at - start < 10 => {
                n = n * 10 + usize::from(digit - b'0');
                *at += 1;
            }
            b'\r' if *at > start => break,
            _ => return None,
        }
    }
    if *buf.get(*at + 1)? != b'\n' {
        return None;
    }
    *at += 2;
    Some(n)
}

fn err(msg: &str) -> ProtocolError {
    ProtocolError(msg.to_owned())
}

/// Reads one `\n`-terminated line (without its `\n` or a preceding `\r`) from the front of
/// `buf` with `read`, then consumes it. The line is borrowed, not split off, so reading a
/// header costs no allocation or reference count.
fn take_line<T>(
    buf: &mut BytesMut,
    too_big: &str,
    read: impl FnOnce(&[u8]) -> T,
) -> Result<Option<T>, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_LINE + 2)];
    match window.iter().position(|&b| b == b'\n') {
        Some(end) => {
            let line = &buf[..end];
            let value = read(line.strip_suffix(b"\r").unwrap_or(line));
            buf.advance(end + 1);
            Ok(Some(value))
        }
        None if buf.len() > MAX_LINE => Err(err(too_big)),
        None => Ok(None),
    }
}

/// A decimal integer, optionally negative, as Redis reads lengths (no `+`, no spaces). Parsed
/// by hand: every header of every command goes through here.
fn parse_int(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, text),
    };
    if digits.is_empty() {
        return None;
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    // Accumulated negatively, so i64::MIN parses too.
    if negative { Some(n) } else { n.checked_neg() }
}

/// Which protocol a connection speaks: RESP2 until it says `HELLO 3`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    /// RESP2: nil is `$-1`, maps and sets are plain arrays.
    #[default]
    Resp2,
    /// RESP3: nil is `_`, maps are `%`, sets `~`.
    Resp3,
}

/// A reply, in the types RESP3 has; [`Reply::encode_as`] writes it in either protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`-style status line.
    Simple(Cow<'static, str>),
    /// `-ERR …` error line; the text must include its prefix (`ERR`, `NOPROTO`, …).
    Error(String),
    /// `:n` integer.
    Integer(i64),
    /// `$n` bulk string.
    Bulk(Bytes),
    /// Redis's nil: `$-1` in RESP2, `_` in RESP3.
    Nil,
    /// Redis's nil array: `*-1` in RESP2, `_` in RESP3 (`EXEC` of a transaction that a
    /// changed watched key stopped).
    NilArray,
    /// `*n` array of replies.
    Array(Vec<Reply>),
    /// A map: `%n` and its keys and values in RESP3; in RESP2 a flat array of keys and
    /// values, as Redis sends `HELLO`'s answer.
    Map(Vec<(Reply, Reply)>),
    /// A set (`~n` in RESP3, an array in RESP2): causal siblings, which have no order.
    Set(Vec<Reply>),
}

impl Reply {
    /// A status line such as `+OK`.
    pub fn simple(s: &'static str) -> Self {
        Reply::Simple(Cow::Borrowed(s))
    }

    /// The `-ERR <msg>` reply.
    pub fn err(msg: impl std::fmt::Display) -> Self {
        Reply::Error(format!("ERR {msg}"))
    }

    /// A bulk string from text.
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Bulk(Bytes::from(s.into()))
    }

    /// Appends this reply's RESP2 wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        self.encode_as(Protocol::Resp2, out)
    }

    /// Appends this reply's wire form in `protocol` to `out`.
    pub fn encode_as(&self, protocol: Protocol, out: &mut BytesMut) {
        let resp3 = protocol == Protocol::Resp3;
        match self {
            Reply::Simple(s) => put_line(out, b'+', s.as_bytes()),
            Reply::Error(e) => {
                // An error line cannot contain CR or LF; keep the message on one line.
                let clean: String = e
                    .chars()
                    .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
                    .collect();
                put_line(out, b'-', clean.as_bytes())
            }
            Reply::Integer(n) => put_line(out, b':', n.to_string().as_bytes()),
            Reply::Bulk(b) => {
                put_header(out, b'$', b.len());
                out.extend_from_slice(b);
                out.extend_from_slice(b"\r\n");
            }
            Reply::Nil | Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) | Reply::Set(items) => {
                put_header(out, collection_prefix(self, protocol), items.len());
                for item in items {
                    item.encode_as(protocol, out);
                }
            }
            Reply::Map(pairs) => {
                let n = if resp3 { pairs.len() } else { 2 * pairs.len() };
                put_header(out, collection_prefix(self, protocol), n);
                for (key, value) in pairs {
                    key.encode_as(protocol, out);
                    value.encode_as(protocol, out);
                }
            }
        }
    }
}

/// The type byte of an array, set or map's header in `protocol` (`*` for every other reply).
pub(crate) fn collection_prefix(reply: &Reply, protocol: Protocol) -> u8 {
    match (reply, protocol) {
        (Reply::Map(_), Protocol::Resp3) => b'%',
        (Reply::Set(_), Protocol::Resp3) => b'~',
        _ => b'*',
    }
}

/// Parses one reply from the front of `buf` (the client side of the protocol, used by
/// [`crate::edge::client`] and the tests). Returns the reply and how many bytes it took, `Ok(None)`
/// when the reply is not complete yet.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ProtocolError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return Ok(None);
    };
    let Some((&kind, body)) = buf[..end].split_first() else {
        return Err(err("empty reply line"));
    };
    let next = end + 2;
    let text = || String::from_utf8_lossy(body).into_owned();
    let int = || parse_int(body).ok_or_else(|| err("bad integer in reply"));
    Ok(Some(match kind {
        b'+' => (Reply::Simple(Cow::Owned(text())), next),
        b'-' => (Reply::Error(text()), next),
        b':' => (Reply::Integer(int()?), next),
        b'_' => (Reply::Nil, next),
        b'$' => match int()? {
            -1 => (Reply::Nil, next),
            n if n < 0 => return Err(err("invalid bulk length")),
            n => {
                let n = n as usize;
                if buf.len() < next + n + 2 {
                    return Ok(None);
                }
                (
                    Reply::Bulk(Bytes::copy_from_slice(&buf[next..next + n])),
                    next + n + 2,
                )
            }
        },
        b'*' | b'~' | b'%' => {
            let n = int()?;
            if n < 0 {
                return Ok(Some((Reply::NilArray, next)));
            }
            // A map's entries are two replies each.
            let entries = if kind == b'%' { n.saturating_mul(2) } else { n };
            let mut items = Vec::with_capacity((entries as usize).min(1024));
            let mut at = next;
            for _ in 0..entries {
                let Some((item, used)) = parse_reply(&buf[at..])? else {
                    return Ok(None);
                };
                items.push(item);
                at += used;
            }
            let reply = match kind {
                b'~' => Reply::Set(items),
                b'%' => {
                    let mut items = items.into_iter();
                    let mut pairs = vec![];
                    while let (Some(k), Some(v)) = (items.next(), items.next()) {
                        pairs.push((k, v));
                    }
                    Reply::Map(pairs)
                }
                _ => Reply::Array(items),
            };
            (reply, at)
        }
        other => {
            return Err(err(&format!(
                "unexpected reply type '{}'",
                char::from(other).escape_default()
            )));
        }
    }))
}

/// Appends a `*n` or `$n` header line (digits written without allocating: this runs for
/// every reply).
pub(crate) fn put_header(out: &mut BytesMut, prefix: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put_line(out, prefix, &digits[at..]);
}

fn put_line(out: &mut BytesMut, prefix: u8, body: &[u8]) {
    out.reserve(body.len() + 3);
    out.extend_from_slice(&[prefix]);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use std::sync::LazyLock;

    use super::*;

    fn decode_all(input: &[u8], max: usize) -> (Vec<Command>, Option<ProtocolError>, usize) {
        let mut d = RespDecoder::new(max);
        let mut buf = BytesMut::from(input);
        let mut out = vec![];
        loop {
            match d.decode(&mut buf) {
                Ok(Some(c)) => out.push(c),
                Ok(None) => return (out, None, buf.len()),
                Err(e) => return (out, Some(e), buf.len()),
            }
        }
    }

    fn args(c: &Command) -> Vec<&[u8]> {
        c.args.iter().map(|a| a.as_ref()).collect()
    }

    #[test]
    fn multibulk_commands_decode() {
        let (cmds, e, rest) =
            decode_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n", 100);
        assert!(e.is_none());
        assert_eq!(rest, 0);
        assert_eq!(args(&cmds[0]), vec![&b"GET"[..], b"k"]);
        assert_eq!(args(&cmds[1]), vec![&b"PING"[..]]);
    }

    #[test]
    fn values_are_binary_safe() {
        let (cmds, _, _) = decode_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4\r\na\r\nb\r\n", 100);
        assert_eq!(cmds[0].args[2].as_ref(), b"a\r\nb");
    }

    #[test]
    fn inline_commands_decode_and_blank_lines_are_ignored() {
        let (cmds, e, _) = decode_all(b"PING\r\n\r\nSET  k v\nECHO hi\r\n", 100);
        assert!(e.is_none());
        assert_eq!(cmds.len(), 3);
        assert_eq!(args(&cmds[1]), vec![&b"SET"[..], b"k", b"v"]);
    }

    #[test]
    fn every_split_point_gives_the_same_commands() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let (whole, _, _) = decode_all(input, 100);
        for split in 0..input.len() {
            let mut d = RespDecoder::new(100);
            let mut buf = BytesMut::from(&input[..split]);
            let mut got = vec![];
            while let Some(c) = d.decode(&mut buf).unwrap() {
                got.push(c);
            }
            buf.extend_from_slice(&input[split..]);
            while let Some(c) = d.decode(&mut buf).unwrap() {
                got.push(c);
            }
            assert_eq!(got, whole, "split at {split}");
        }
    }

    #[test]
    fn an_oversized_argument_is_skipped_and_the_stream_stays_in_sync() {
        let mut input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123456789\r\n".to_vec();
        input.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
        // Feed byte by byte: the skip must work across reads too.
        let mut d = RespDecoder::new(4);
        let mut buf = BytesMut::new();
        let mut got = vec![];
        for b in input {
            buf.extend_from_slice(&[b]);
            while let Some(c) = d.decode(&mut buf).unwrap() {
                got.push(c);
            }
        }
        assert_eq!(got.len(), 2);
        assert!(got[0].oversized);
        assert_eq!(args(&got[0]), vec![&b"SET"[..], b"k"]);
        assert!(!got[1].oversized);
        assert_eq!(args(&got[1]), vec![&b"GET"[..], b"k"]);
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        for bad in [
            &b"*x\r\n"[..],
            b"*2\r\n:1\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$3\r\nabcXY",
            b"*99999999\r\n",
            b"*1\r\n$999999999999\r\n",
        ] {
            let (_, e, _) = decode_all(bad, 100);
            assert!(
                e.is_some(),
                "{:?} should be rejected",
                String::from_utf8_lossy(bad)
            );
        }
        let (_, e, _) = decode_all(b"*1\r\n:1\r\n", 100);
        assert_eq!(
            e.unwrap().to_string(),
            "Protocol error: expected '$', got ':'"
        );
    }

    #[test]
    fn endless_lines_are_rejected_instead_of_buffered() {
        let (_, e, _) = decode_all(&vec![b'a'; MAX_LINE + 10], 100);
        assert_eq!(e.unwrap().0, "too big inline request");
        let mut header = b"*".to_vec();
        header.extend(vec![b'1'; MAX_LINE + 10]);
        assert!(decode_all(&header, 100).1.is_some());
    }

    #[test]
    fn commands_larger_than_the_limit_are_refused_before_they_are_buffered() {
        let mut d = RespDecoder::with_command_limit(100, 200);
        let mut ok = BytesMut::from(&b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$50\r\n"[..]);
        ok.extend_from_slice(&[b'v'; 50]);
        ok.extend_from_slice(b"\r\n");
        assert!(d.decode(&mut ok).unwrap().is_some());
        // Every argument is under the per-argument limit, but together they are too much;
        // the error comes at the header of the argument that would cross the limit.
        let mut big = BytesMut::from(&b"*9\r\n$4\r\nMSET\r\n"[..]);
        for _ in 0..2 {
            big.extend_from_slice(b"$1\r\nk\r\n$90\r\n");
            big.extend_from_slice(&[b'v'; 90]);
            big.extend_from_slice(b"\r\n");
        }
        let e = d.decode(&mut big).unwrap_err();
        assert!(e.0.starts_with("too big command"), "{e}");
    }

    #[test]
    fn empty_arrays_are_ignored_like_redis_does() {
        let (cmds, e, _) = decode_all(b"*0\r\n*-1\r\nPING\r\n", 100);
        assert!(e.is_none());
        assert_eq!(cmds.len(), 1);
    }

    #[test]
    fn arguments_are_copied_out_of_the_read_buffer() {
        let (mut cmds, e, _) = decode_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n", 100);
        assert!(e.is_none());
        // Each argument owns its bytes: a stored value keeps nothing else alive.
        let args = cmds.remove(0).args;
        assert_eq!(args.len(), 3);
        assert!(args.into_iter().all(|a| a.try_into_mut().is_ok()));
    }

    #[test]
    fn known_names_are_not_copied_and_a_lone_argument_is_its_own_allocation() {
        static GET_ECHO: LazyLock<CommandNames> =
            LazyLock::new(|| CommandNames::new(&["get", "echo"]));
        let mut d = RespDecoder::new(100).with_names(&GET_ECHO);
        let mut buf = BytesMut::from(
            &b"*2\r\n$3\r\ngEt\r\n$1\r\nk\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n*1\r\n$3\r\nFLY\r\n"[..],
        );
        let get = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(args(&get), vec![&b"get"[..], b"k"]);
        let echo = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            args(&echo),
            vec![&b"echo"[..], b""],
            "an empty argument is kept"
        );
        let fly = d.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            args(&fly),
            vec![&b"FLY"[..]],
            "unknown names keep their spelling"
        );
    }

    /// The names most tests give their decoder.
    static GET_SET: LazyLock<CommandNames> = LazyLock::new(|| CommandNames::new(&["get", "set"]));

    #[test]
    fn every_known_name_is_found_in_any_case_and_nothing_else_is() {
        let commands = crate::edge::commands::COMMANDS;
        let names = CommandNames::new(commands);
        for name in commands {
            let upper = name.to_ascii_uppercase();
            assert_eq!(names.find(upper.as_bytes()), Some(*name));
            assert_eq!(names.find(name.as_bytes()), Some(*name));
        }
        for other in [
            &b"ge"[..],
            b"gett",
            b"get\0",
            b"",
            b"sixteen-letters!",
            b"x\xffy",
        ] {
            assert_eq!(names.find(other), None, "{other:?}");
        }
        // Past 16 bytes nothing is packed, so a long name is never taken for a short one.
        let long = CommandNames::new(&["seventeen-letters"]);
        assert!(long.packed.is_empty());
        assert_eq!(long.find(b"seventeen-letters"), None);
    }

    /// Decodes `input` fed one byte at a time: every command then arrives cut, so only the
    /// general decoder ever sees it.
    fn decode_bytewise(input: &[u8], max: usize) -> (Vec<Command>, Option<ProtocolError>) {
        let mut d = RespDecoder::new(max).with_names(&GET_SET);
        let mut buf = BytesMut::new();
        let mut out = vec![];
        for &b in input {
            buf.extend_from_slice(&[b]);
            loop {
                match d.decode(&mut buf) {
                    Ok(Some(c)) => out.push(c),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e)),
                }
            }
        }
        (out, None)
    }

    proptest::proptest! {
        /// The one-pass path for whole commands decodes exactly what the general decoder
        /// does, for commands with short, long, oversized and empty arguments, known and
        /// unknown names, and malformed frames mixed in.
        #[test]
        fn whole_commands_decode_as_the_general_decoder_does(
            commands in proptest::collection::vec(
                (
                    proptest::sample::select(vec!["GET", "set", "Fly", ""]),
                    proptest::collection::vec(
                        proptest::prop_oneof![
                            4 => proptest::collection::vec(proptest::num::u8::ANY, 0..24),
                            1 => proptest::collection::vec(proptest::num::u8::ANY, 1000..1100),
                        ],
                        0..5,
                    ),
                    proptest::sample::select(vec!["", "", "", "*0\r\n", "$1\r\n", "*1\n$1\nx\n", "*2\r\n$1\r\nab\r\n"]),
                ),
                1..6,
            ),
            max in proptest::sample::select(vec![10usize, 100, 2000]),
        ) {
            let mut input = vec![];
            for (name, words, junk) in &commands {
                input.extend(format!("*{}\r\n${}\r\n{name}\r\n", words.len() + 1, name.len()).bytes());
                for w in words {
                    input.extend(format!("${}\r\n", w.len()).bytes());
                    input.extend_from_slice(w);
                    input.extend_from_slice(b"\r\n");
                }
                input.extend_from_slice(junk.as_bytes());
            }
            let mut d = RespDecoder::new(max).with_names(&GET_SET);
            let mut buf = BytesMut::from(&input[..]);
            let mut whole = vec![];
            let whole_error = loop {
                match d.decode(&mut buf) {
                    Ok(Some(c)) => whole.push(c),
                    Ok(None) => break None,
                    Err(e) => break Some(e),
                }
            };
            let (bytewise, bytewise_error) = decode_bytewise(&input, max);
            proptest::prop_assert_eq!(whole, bytewise);
            proptest::prop_assert_eq!(whole_error, bytewise_error);
        }
    }

    #[test]
    fn integers_parse_as_redis_reads_them() {
        for (text, want) in [
            ("0", Some(0)),
            ("42", Some(42)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("", None),
            ("-", None),
            ("+5", None),
            ("1 ", None),
            ("1x", None),
            ("--1", None),
        ] {
            assert_eq!(parse_int(text.as_bytes()), want, "{text:?}");
        }
    }

    #[test]
    fn replies_encode() {
        let mut out = BytesMut::new();
        Reply::Array(vec![
            Reply::simple("OK"),
            Reply::err("bad\r\nthing"),
            Reply::Integer(-3),
            Reply::Bulk(Bytes::from_static(b"v")),
            Reply::Nil,
        ])
        .encode(&mut out);
        assert_eq!(
            &out[..],
            b"*5\r\n+OK\r\n-ERR bad  thing\r\n:-3\r\n$1\r\nv\r\n$-1\r\n"
        );
    }

    #[test]
    fn encoded_replies_parse_back_and_partial_ones_wait() {
        let reply = Reply::Array(vec![
            Reply::simple("OK"),
            Reply::Bulk(Bytes::from_static(b"a\r\nb")),
            Reply::Array(vec![Reply::Integer(7), Reply::Nil]),
            Reply::err("x"),
        ]);
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        assert_eq!(parse_reply(&out).unwrap(), Some((reply, out.len())));
        for cut in 0..out.len() {
            assert_eq!(parse_reply(&out[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert!(parse_reply(b"?x\r\n").is_err());
    }
}
