//! The Redis command table: which RESP commands exist (about forty, listed in [`COMMANDS`]),
//! how each becomes typed [`KVSOperation`]s, and how their results become one RESP reply.
//!
//! Pure code, no I/O, so every command's behaviour is unit-tested here (`tests.rs`). [`plan`]
//! is the one entry: it checks the session (authenticated? inside `MULTI`?), then hands the
//! command to the file of its job:
//!
//! - [`data`]: commands that read and write keys, planned into one operation per key; the
//!   front sends those into the dataflow and, once every result is back, calls [`assemble`]
//!   ([`reply`]).
//! - [`expiry`]: `EXPIRE` and its kin, and deadlines from the edge's clock.
//! - [`keyspace`]: `DBSIZE`, `KEYS`, `SCAN`, `FLUSHDB`, sent to every shard; `KEYSHARD`.
//! - [`transaction`]: `MULTI`/`EXEC`/`WATCH`, queued here and applied by the store as one
//!   operation.
//! - [`session`]: `AUTH`, `HELLO`, `CLIENT`, `DEBUG` — answered at once, never reaching the
//!   store (as are `PING`, `ECHO`, `COMMAND`, `CONFIG` and `INFO`'s request, here).

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use smallvec::{SmallVec, smallvec};

use crate::edge::auth::Password;
use crate::edge::resp::{Args, Command, CommandNames, Protocol, Reply};
use crate::membership::{Layout, MemberId, ShardId};
use crate::protocol::{ClientId, Expiry, KVSOperation, KVSResult, Presence};
use crate::routing::ring::Shards;

pub mod data;
pub mod expiry;
pub mod keyspace;
pub mod reply;
pub mod session;
#[cfg(test)]
mod tests;
pub mod transaction;

use data::*;
use expiry::*;
use keyspace::*;
pub use reply::assemble;
use session::*;
use transaction::*;
pub use transaction::{ExecPart, Queued, Transaction, assemble_exec};

/// How the results of a data command's operations become its reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Assemble {
    /// SET: `+OK`.
    Set,
    /// GET: the value, or nil.
    Get,
    /// DEL: how many keys were removed.
    Deleted,
    /// EXISTS: how many of the keys exist.
    Existing,
    /// MGET: an array of values and nils.
    MultiGet,
    /// MSET: `+OK`.
    MultiSet,
    /// GETCTX: an array of the causal context and then each live value.
    Versioned,
    /// GETSET, GETDEL, `SET … GET`: the value the transaction's first operation read.
    GetAnd,
    /// TYPE: `string` or `none`.
    Type,
    /// STRLEN: the value's length, 0 for a missing key.
    Strlen,
    /// INCR, DECR, INCRBY, DECRBY, APPEND: the number the store answered.
    Integer,
    /// `SET … NX` / `SET … XX`: `+OK` when written, nil when not.
    SetIf,
    /// SETNX: 1 when written, 0 when not.
    SetIfAbsent,
    /// WATCH: `+OK` (the store now remembers the keys' versions).
    Watch,
    /// EXEC of a transaction that failed while queueing, after WATCH: the watches are
    /// forgotten, and the reply is Redis's EXECABORT.
    ExecAbort,
    /// TTL (`seconds`, rounded as Redis rounds) and PTTL (milliseconds): the time left, -1
    /// for a key without a deadline, -2 for a missing key.
    Ttl {
        /// Answer in seconds rather than milliseconds.
        seconds: bool,
    },
    /// DBSIZE: the shards' counts, summed.
    Sum,
    /// KEYS: the shards' keys, joined.
    Keys,
    /// SCAN of `shard` of `shards`: the next cursor and the keys found.
    Scan {
        /// The shard this step scanned.
        shard: u32,
        /// How many shards there are.
        shards: u32,
    },
}

/// A command's operations: inline for one (GET, SET — no allocation), on the heap for more.
pub type Ops = SmallVec<[KVSOperation<Bytes>; 1]>;

/// A command's results, in operation order.
pub type Results = SmallVec<[KVSResult<Bytes>; 1]>;

/// What the front must do with one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer at once, without touching the store.
    Reply(Reply),
    /// Answer, then close the connection (QUIT).
    ReplyAndClose(Reply),
    /// Run these operations in the store, then [`assemble`] their results in the same order.
    Store(Ops, Assemble),
    /// `INFO [section …]`: the front renders these sections (lower case; empty for the
    /// default set) from its counters.
    Info(Vec<String>),
    /// `DEBUG SLEEP`: answer `+OK` after this long, as a slow store would (see
    /// [`Settings::debug_command`]).
    Sleep(Duration),
    /// `EXEC`: run the queued commands' operations as one transaction, then answer an array
    /// of every queued command's reply ([`assemble_exec`]).
    Exec(Vec<Queued>),
}

/// Settings the command table needs to know about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// Longest key or value accepted, in bytes.
    pub max_value_bytes: usize,
    /// The password clients must give (`AUTH`) before any other command (Redis's
    /// `requirepass`); `None` lets every client in.
    pub requirepass: Option<Password>,
    /// Accept `DEBUG SLEEP seconds`, whose reply comes back late as if the store were slow
    /// (Redis's `enable-debug-command`). Off by default: it exists to test request timeouts.
    pub debug_command: bool,
    /// Where keys live (`KEYSHARD`): the same shards the router routes by.
    pub shards: Shards,
    /// Most bytes a transaction's queued operations may take, as sent to the store: a
    /// transaction travels as one message, and no message may be too big to send.
    pub max_transaction_bytes: usize,
}

impl Settings {
    /// The defaults: 1 MiB values, no password, no DEBUG.
    pub fn new() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            requirepass: None,
            debug_command: false,
            shards: Shards::new(Layout::unsharded(1)),
            max_transaction_bytes: DEFAULT_MAX_TRANSACTION_BYTES,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self::new()
    }
}

/// What the command table remembers about one connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    /// The connection's id (`CLIENT ID`).
    pub client: ClientId,
    /// True once the client may run commands: it gave the password, or none is required.
    pub authenticated: bool,
    /// The protocol the client speaks: RESP2 until `HELLO 3`.
    pub protocol: Protocol,
    /// The commands queued since `MULTI`, while a transaction is open.
    pub transaction: Option<Transaction>,
    /// The name the client gave itself (`CLIENT SETNAME`, `HELLO … SETNAME`).
    pub name: Option<Bytes>,
    /// The keys this connection watches (`WATCH`), until `EXEC`, `DISCARD` or `UNWATCH`.
    pub watched: Vec<Bytes>,
}

impl Session {
    /// A new connection `client`, authenticated if `settings` require no password.
    pub fn new(client: ClientId, settings: &Settings) -> Self {
        Self {
            client,
            authenticated: settings.requirepass.is_none(),
            protocol: Protocol::Resp2,
            transaction: None,
            name: None,
            watched: Vec::new(),
        }
    }
}

/// The default limit on keys and values: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Default bound on a transaction's operations: 64 MiB, 64 values of the largest default
/// size, and well under the most a message between processes may carry (the transport's
/// frame limit), so a transaction is refused at the edge rather than cut off on the way.
pub const DEFAULT_MAX_TRANSACTION_BYTES: usize = 64 * 1024 * 1024;

/// The edge's clock: milliseconds since the Unix epoch. Requests carry it
/// ([`crate::protocol::KVSRequest::at`]), and relative expiries (`EX 10`) become deadlines
/// from it, here, once.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Decides what to do with `cmd` on `session`'s connection, at `now_ms` on the edge's clock
/// ([`unix_ms`]).
pub fn plan(cmd: Command, session: &mut Session, settings: &Settings, now_ms: u64) -> Plan {
    // A command can arrive with no words at all when its only argument was too long and
    // skipped: it is answered like any oversized command.
    let Some((first, args)) = cmd.args.split_first() else {
        return Plan::Reply(too_large(settings));
    };
    // The name, lower-cased on the stack: this runs for every command, so no allocation.
    let mut buf = [0u8; MAX_NAME];
    let name = lower_name(first, &mut buf);
    if cmd.oversized {
        return Plan::Reply(too_large(settings));
    }
    if !session.authenticated && !matches!(name, b"auth" | b"hello" | b"quit") {
        return Plan::Reply(Reply::Error(NOAUTH.into()));
    }
    let arity_error = || wrong_arity(name);
    match name {
        b"multi" | b"exec" | b"discard" | b"watch" | b"unwatch" => {
            return transaction_command(name, args, session, settings);
        }
        // RESET leaves a transaction too, so it is never queued.
        b"reset" if session.transaction.is_some() => session.transaction = None,
        _ => {}
    }
    if let Some(transaction) = &mut session.transaction
        && NOT_IN_TRANSACTION.contains(&name)
    {
        transaction.failed = true;
        return Plan::Reply(Reply::err(format!(
            "Command not allowed inside a transaction: {}",
            String::from_utf8_lossy(name)
        )));
    }
    let planned = match name {
        b"ping" => match args {
            [] => Plan::Reply(Reply::simple("PONG")),
            [msg] => Plan::Reply(Reply::Bulk(msg.clone())),
            _ => arity_error(),
        },
        b"echo" => match args {
            [msg] => Plan::Reply(Reply::Bulk(msg.clone())),
            _ => arity_error(),
        },
        b"quit" => Plan::ReplyAndClose(Reply::simple("OK")),
        b"get" | b"set" | b"del" | b"exists" | b"mget" | b"mset" | b"getctx" | b"setctx"
        | b"replicaget" | b"replicaset" | b"getset" | b"getdel" | b"type" | b"strlen"
        | b"setnx" | b"incr" | b"decr" | b"incrby" | b"decrby" | b"append" | b"cas" => {
            data(name, cmd.args, now_ms)
        }
        b"setex" | b"psetex" | b"expire" | b"pexpire" | b"expireat" | b"pexpireat" | b"ttl"
        | b"pttl" | b"persist" => expiry(name, args, now_ms),
        b"dbsize" | b"keys" | b"scan" | b"flushdb" | b"flushall" => {
            keyspace(name, args, settings.shards.layout().shards)
        }
        b"auth" => match args {
            [password] => Plan::Reply(auth(session, settings, None, password)),
            [user, password] => Plan::Reply(auth(session, settings, Some(user), password)),
            _ => arity_error(),
        },
        b"hello" => hello(args, session, settings),
        b"command" => command(args),
        b"config" => config(args),
        b"info" => Plan::Info(
            args.iter()
                .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
                .collect(),
        ),
        b"debug" => debug(args, settings),
        b"keyshard" => match args {
            [key] => Plan::Reply(key_shard(&settings.shards, key)),
            _ => arity_error(),
        },
        b"select" => match args {
            [db] if db.as_ref() == b"0" => Plan::Reply(Reply::simple("OK")),
            [_] => Plan::Reply(Reply::err("DB index is out of range")),
            _ => arity_error(),
        },
        b"client" => Plan::Reply(client(args, session)),
        b"reset" => match args {
            [] => {
                // As Redis: leave any transaction, forget the name, go back to RESP2, and
                // ask for the password again if one is set.
                *session = Session::new(session.client, settings);
                Plan::Reply(Reply::simple("RESET"))
            }
            _ => arity_error(),
        },
        _ => Plan::Reply(unknown_command(first, args)),
    };
    match &mut session.transaction {
        // QUIT is never queued: it ends the connection, and the transaction with it.
        Some(transaction) if name != b"quit" => {
            transaction.queue(planned, settings.max_transaction_bytes)
        }
        _ => planned,
    }
}

/// Longest command name the table knows, lower-cased without allocating.
const MAX_NAME: usize = 16;

/// `name` in lower case, in `buf`; names longer than any command come back empty (unknown).
fn lower_name<'a>(name: &[u8], buf: &'a mut [u8; MAX_NAME]) -> &'a [u8] {
    let Some(lower) = buf.get_mut(..name.len()) else {
        return &[];
    };
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    lower
}

fn wrong_arity(name: &[u8]) -> Plan {
    Plan::Reply(Reply::err(format!(
        "wrong number of arguments for '{}' command",
        String::from_utf8_lossy(name)
    )))
}

fn too_large(settings: &Settings) -> Reply {
    Reply::err(format!(
        "argument too large: keys and values are limited to {} bytes",
        settings.max_value_bytes
    ))
}

/// Redis's wording for an unknown command, with the first few arguments quoted back.
fn unknown_command(name: &[u8], args: &[Bytes]) -> Reply {
    let quoted: String = args
        .iter()
        .take(3)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
        .collect();
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {quoted}",
        String::from_utf8_lossy(name)
    ))
}

/// The Redis version `HELLO` reports (as `INFO`'s `redis_version` does): the commands and
/// protocol the zoo speaks are Redis 7's, which is what clients decide features by. The zoo's
/// own version is `INFO`'s `kvs_zoo_version`.
pub const REDIS_VERSION: &str = "7.0.0";

/// [`COMMANDS`], indexed for the decoder once per process: every connection's decoder shares
/// it.
pub static COMMAND_NAMES: LazyLock<CommandNames> = LazyLock::new(|| CommandNames::new(COMMANDS));

/// The commands [`plan`] knows, for `COMMAND COUNT` and for the decoder, which keeps their
/// names without copying them.
pub const COMMANDS: &[&str] = &[
    "ping",
    "echo",
    "quit",
    "get",
    "set",
    "del",
    "exists",
    "mget",
    "mset",
    "getctx",
    "setctx",
    "replicaget",
    "replicaset",
    "keyshard",
    "getset",
    "getdel",
    "type",
    "strlen",
    "setnx",
    "incr",
    "decr",
    "incrby",
    "decrby",
    "append",
    "cas",
    "setex",
    "psetex",
    "expire",
    "pexpire",
    "expireat",
    "pexpireat",
    "ttl",
    "pttl",
    "persist",
    "dbsize",
    "keys",
    "scan",
    "flushdb",
    "flushall",
    "reset",
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "auth",
    "hello",
    "command",
    "config",
    "info",
    "debug",
    "select",
    "client",
];

fn command(args: &[Bytes]) -> Plan {
    // redis-cli asks `COMMAND DOCS` for its hints; an empty answer means "no hints".
    match args.first().map(|a| a.to_ascii_lowercase()) {
        Some(sub) if sub == b"count" => Plan::Reply(Reply::Integer(COMMANDS.len() as i64)),
        _ => Plan::Reply(Reply::Array(vec![])),
    }
}

fn config(args: &[Bytes]) -> Plan {
    // redis-benchmark reads `save` and `appendonly` before it starts; report "no persistence".
    match (args.first().map(|a| a.to_ascii_lowercase()), args.get(1)) {
        (Some(sub), Some(param)) if sub == b"get" => {
            let value = match param.to_ascii_lowercase().as_slice() {
                b"save" => Some(""),
                b"appendonly" => Some("no"),
                _ => None,
            };
            Plan::Reply(Reply::Array(match value {
                Some(v) => vec![Reply::Bulk(param.clone()), Reply::text(v)],
                None => vec![],
            }))
        }
        _ => Plan::Reply(Reply::err("only CONFIG GET is supported")),
    }
}
