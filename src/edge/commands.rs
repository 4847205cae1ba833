//! The Redis command table: which RESP commands exist, how each becomes typed
//! [`KVSOperation`]s, and how their results become one RESP reply.
//!
//! Pure code, no I/O, so every command's behaviour is unit-tested here. Commands that touch
//! data (GET, SET, DEL, EXISTS, MGET, MSET) are *planned* into one operation per key; the
//! front sends those into the dataflow and, once every result is back, calls [`assemble`].
//! Connection-level commands (PING, ECHO, HELLO, …) are answered at once, never reaching the
//! store.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use smallvec::{SmallVec, smallvec};

use crate::edge::auth::Password;
use crate::edge::resp::{Args, Command, CommandNames, Protocol, Reply};
use crate::membership::{Layout, MemberId, ShardId};
use crate::protocol::{ClientId, Expiry, KVSOperation, KVSResult, Presence};
use crate::routing::ring::Shards;

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
}

impl Settings {
    /// The defaults: 1 MiB values, no password, no DEBUG.
    pub fn new() -> Self {
        Self {
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            requirepass: None,
            debug_command: false,
            shards: Shards::new(Layout::unsharded(1)),
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

/// The longest `DEBUG SLEEP` accepted.
const MAX_DEBUG_SLEEP: Duration = Duration::from_secs(3600);

/// Redis's reply to every command but AUTH, HELLO and QUIT before the password is given.
const NOAUTH: &str = "NOAUTH Authentication required.";
/// Redis's reply to EXEC of a transaction a queueing error spoiled.
const EXECABORT: &str = "EXECABORT Transaction discarded because of previous errors.";
/// Redis's reply to a wrong password (it does not say which of user and password is wrong).
const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

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
        Some(transaction) if name != b"quit" => transaction.queue(planned),
        _ => planned,
    }
}

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value`.
fn client(args: &[Bytes], session: &mut Session) -> Reply {
    let Some((sub, rest)) = args.split_first() else {
        return Reply::err("wrong number of arguments for 'client' command");
    };
    match (sub.to_ascii_lowercase().as_slice(), rest) {
        (b"id", []) => Reply::Integer(session.client as i64),
        (b"getname", []) => session.name.clone().map_or(Reply::Nil, Reply::Bulk),
        (b"setname", [name]) => match valid_client_name(name) {
            Ok(name) => {
                session.name = name;
                Reply::simple("OK")
            }
            Err(e) => e,
        },
        // Library name and version: accepted and not kept (nothing shows them yet).
        (b"setinfo", [_attr, _value]) => Reply::simple("OK"),
        (b"id" | b"getname" | b"setname" | b"setinfo", _) => Reply::err(format!(
            "wrong number of arguments for 'client|{}' command",
            String::from_utf8_lossy(sub).to_ascii_lowercase()
        )),
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Supported: CLIENT ID, GETNAME, SETNAME, SETINFO",
            String::from_utf8_lossy(sub)
        )),
    }
}

/// A name `CLIENT SETNAME` accepts: empty clears it; spaces, newlines and other special
/// characters are refused, as Redis refuses them.
fn valid_client_name(name: &Bytes) -> Result<Option<Bytes>, Reply> {
    if name.is_empty() {
        return Ok(None);
    }
    if name.iter().all(|&b| (b'!'..=b'~').contains(&b)) {
        Ok(Some(name.clone()))
    } else {
        Err(Reply::err(
            "Client names cannot contain spaces, newlines or special characters.",
        ))
    }
}

/// Commands refused between `MULTI` and `EXEC`: they change the connection (HELLO, AUTH,
/// SELECT), name a member of their own (REPLICAGET, REPLICASET), or answer from outside the
/// store (INFO, DEBUG).
const NOT_IN_TRANSACTION: &[&[u8]] = &[
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
    /// transaction (Redis's EXECABORT).
    fn queue(&mut self, planned: Plan) -> Plan {
        let queued = match planned {
            Plan::Reply(error @ Reply::Error(_)) => {
                self.failed = true;
                return Plan::Reply(error);
            }
            Plan::Reply(reply) => Queued::Reply(reply),
            Plan::Store(ops, kind) => Queued::Store(ops, kind),
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
fn transaction_command(
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
fn unwatch(session: &mut Session) -> Plan {
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
fn exec(session: &mut Session, settings: &Settings) -> Plan {
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

/// Plans a data command, moving its keys and values into the operations (no copies: this is
/// the path every GET and SET takes).
fn data(name: &[u8], all: Args, now_ms: u64) -> Plan {
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

/// `KEYSHARD key`: the shard the key lives on and the members holding it (the numbers
/// REPLICAGET takes), as `[shard, [member, …]]`. It asks [`Shards::locate`], the function the
/// router routes by, so the answer is where the key's requests go.
fn key_shard(shards: &Shards, key: &[u8]) -> Reply {
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
fn keyspace(name: &[u8], args: &[Bytes], shards: u32) -> Plan {
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
fn scan(cursor: &Bytes, options: &[Bytes], shards: u32) -> Plan {
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

/// What `SET key value [options]` asks beyond a plain write.
#[derive(Default)]
struct SetOptions {
    /// `NX` / `XX`: write only if the key is absent / present.
    condition: Option<Presence>,
    /// `GET`: answer the old value.
    get: bool,
    /// `EX`, `PX`, `EXAT`, `PXAT`, `KEEPTTL`.
    expiry: Option<Expiry>,
}

/// The options of `SET key value …`, as Redis takes them: at most one of `NX` and `XX`, at
/// most one expiry, `GET`; relative expiries become deadlines from `now_ms`.
fn set_options(options: &[Bytes], now_ms: u64) -> Result<SetOptions, Reply> {
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
fn integer(word: &[u8]) -> Option<i64> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// Redis's reply to an argument that should be an integer.
fn not_an_integer() -> Reply {
    Reply::err("value is not an integer or out of range")
}

/// The deadline (ms since the epoch, at least 0) that `amount` of `unit` names at `now_ms`:
/// seconds or milliseconds from now (`ex`, `px`, EXPIRE, PEXPIRE, SETEX, PSETEX) or since
/// the epoch (`exat`, `pxat`, EXPIREAT, PEXPIREAT). `None` when it does not fit.
fn deadline(unit: &[u8], amount: i64, now_ms: u64) -> Option<u64> {
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
fn expiry(name: &[u8], args: &[Bytes], now_ms: u64) -> Plan {
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

/// Reads `key` and then applies `then(key)` to it, both in one transaction (so nothing comes
/// between them), answering the value read: GETSET, GETDEL, `SET … GET`.
fn get_and(key: Bytes, then: impl FnOnce(Bytes) -> KVSOperation<Bytes>) -> Plan {
    let ops = vec![KVSOperation::Get(key.clone()), then(key)];
    Plan::Store(smallvec![KVSOperation::Transaction(ops)], Assemble::GetAnd)
}

/// A storage member's number, as REPLICAGET and REPLICASET take it.
fn member(word: &[u8]) -> Option<u32> {
    std::str::from_utf8(word).ok()?.parse().ok()
}

/// `AUTH [user] password`: only the `default` user exists, as in a Redis without ACLs.
fn auth(session: &mut Session, settings: &Settings, user: Option<&Bytes>, given: &Bytes) -> Reply {
    let Some(expected) = &settings.requirepass else {
        return Reply::err(
            "AUTH <password> called without any password configured for the default user. \
             Are you sure your configuration is correct?",
        );
    };
    // Both checks always run, so the time taken says nothing about which one failed.
    let user_ok = user.is_none_or(|u| u.as_ref() == b"default");
    let password_ok = expected.matches(given);
    if user_ok && password_ok {
        session.authenticated = true;
        Reply::simple("OK")
    } else {
        Reply::Error(WRONGPASS.into())
    }
}

/// `DEBUG SLEEP seconds` (fractions allowed), when enabled.
fn debug(args: &[Bytes], settings: &Settings) -> Plan {
    if !settings.debug_command {
        return Plan::Reply(Reply::err(
            "DEBUG command not allowed: start the server with --enable-debug-command",
        ));
    }
    match args {
        [sub, seconds] if sub.eq_ignore_ascii_case(b"sleep") => {
            match std::str::from_utf8(seconds)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .filter(|d| *d <= MAX_DEBUG_SLEEP)
            {
                Some(d) => Plan::Sleep(d),
                None => Plan::Reply(Reply::err(
                    "DEBUG SLEEP wants a number of seconds up to 3600",
                )),
            }
        }
        _ => Plan::Reply(Reply::err("only DEBUG SLEEP <seconds> is supported")),
    }
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

/// `HELLO [protover [AUTH user password] [SETNAME name]]`.
fn hello(args: &[Bytes], session: &mut Session, settings: &Settings) -> Plan {
    let error = |e: &str| Plan::Reply(Reply::Error(e.into()));
    let (version, mut options) = match args.split_first() {
        Some((v, rest)) => (Some(v), rest),
        None => (None, args),
    };
    let protocol = match version.map(|v| v.as_ref()) {
        None => session.protocol,
        Some(b"2") => Protocol::Resp2,
        Some(b"3") => Protocol::Resp3,
        Some(v) if std::str::from_utf8(v).is_ok_and(|v| v.parse::<i64>().is_ok()) => {
            return error("NOPROTO unsupported protocol version");
        }
        Some(_) => return error("ERR Protocol version is not an integer or out of range"),
    };
    let mut credentials = None;
    let mut setname = None;
    while let Some((option, rest)) = options.split_first() {
        options = match (option.to_ascii_lowercase().as_slice(), rest) {
            (b"auth", [user, password, rest @ ..]) => {
                credentials = Some((user, password));
                rest
            }
            (b"setname", [name, rest @ ..]) => {
                setname = Some(name);
                rest
            }
            _ => {
                return Plan::Reply(Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(option)
                )));
            }
        };
    }
    if let Some((user, password)) = credentials
        && let reply @ Reply::Error(_) = auth(session, settings, Some(user), password)
    {
        return Plan::Reply(reply);
    }
    if !session.authenticated {
        return error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the \
             HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and \
             select the RESP protocol version at the same time",
        );
    }
    if let Some(name) = setname {
        match valid_client_name(name) {
            Ok(name) => session.name = name,
            Err(e) => return Plan::Reply(e),
        }
    }
    // Only a HELLO that succeeds switches the protocol; its own reply is in the new one.
    session.protocol = protocol;
    let field = |s: &str| Reply::text(s);
    Plan::Reply(Reply::Map(vec![
        (field("server"), field("kvs-zoo")),
        (field("version"), field(REDIS_VERSION)),
        (
            field("proto"),
            Reply::Integer(match protocol {
                Protocol::Resp2 => 2,
                Protocol::Resp3 => 3,
            }),
        ),
        (field("id"), Reply::Integer(session.client as i64)),
        (field("mode"), field("standalone")),
        (field("role"), field("master")),
        (field("modules"), Reply::Array(vec![])),
    ]))
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
            | KVSResult::Aborted => false,
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
fn value_reply(result: KVSResult<Bytes>) -> Reply {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The edge's clock in these tests (ms since the epoch).
    const NOW: u64 = 1_700_000_000_000;

    fn settings() -> Settings {
        Settings {
            max_value_bytes: 16,
            ..Settings::new()
        }
    }

    /// Plans `words` on a fresh, authenticated connection 0.
    fn plan_words(words: &[&str]) -> Plan {
        let settings = settings();
        plan(cmd(words), &mut Session::new(0, &settings), &settings, NOW)
    }

    fn cmd(words: &[&str]) -> Command {
        Command {
            args: words.iter().map(|w| Bytes::from(w.to_string())).collect(),
            oversized: false,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::from(s.to_string())
    }

    fn reply(words: &[&str]) -> Reply {
        let settings = settings();
        match plan(cmd(words), &mut Session::new(5, &settings), &settings, NOW) {
            Plan::Reply(r) | Plan::ReplyAndClose(r) => r,
            other => panic!("expected an immediate reply, got {other:?}"),
        }
    }

    #[test]
    fn causal_and_replica_commands_plan_their_operations() {
        assert_eq!(
            plan_words(&["GETCTX", "k"]),
            Plan::Store(
                smallvec![KVSOperation::GetVersioned(b("k"))],
                Assemble::Versioned
            )
        );
        assert_eq!(
            plan_words(&["setctx", "k", "r0:1", "v"]),
            Plan::Store(
                smallvec![KVSOperation::PutVersioned(b("k"), b("r0:1"), b("v"))],
                Assemble::Set
            )
        );
        assert_eq!(
            plan_words(&["REPLICAGET", "2", "k"]),
            Plan::Store(
                smallvec![KVSOperation::GetAt(MemberId(2), b("k"))],
                Assemble::Get
            )
        );
        assert_eq!(
            plan_words(&["replicaset", "1", "k", "v"]),
            Plan::Store(
                smallvec![KVSOperation::PutAt(MemberId(1), b("k"), b("v"))],
                Assemble::Set
            )
        );
        assert!(matches!(
            plan_words(&["REPLICAGET", "two", "k"]),
            Plan::Reply(Reply::Error(e)) if e.contains("replica number")
        ));
        assert!(matches!(
            plan_words(&["SETCTX", "k", "v"]),
            Plan::Reply(Reply::Error(_))
        ));
    }

    #[test]
    fn a_versioned_read_answers_its_context_then_its_values() {
        let versioned = KVSResult::Versioned(b("r0:1,r1:1"), vec![b("a1"), b("a2")]);
        assert_eq!(
            assemble(Assemble::Versioned, smallvec![versioned]),
            Reply::Array(vec![
                Reply::Bulk(b("r0:1,r1:1")),
                Reply::Bulk(b("a1")),
                Reply::Bulk(b("a2"))
            ])
        );
        let siblings = KVSResult::Siblings(vec![b("a1"), b("a2")]);
        assert_eq!(
            assemble(Assemble::Get, smallvec![siblings]),
            Reply::Set(vec![Reply::Bulk(b("a1")), Reply::Bulk(b("a2"))])
        );
    }

    #[test]
    fn data_commands_plan_one_operation_per_key() {
        assert_eq!(
            plan_words(&["set", "k", "v"]),
            Plan::Store(smallvec![KVSOperation::Put(b("k"), b("v"))], Assemble::Set)
        );
        assert_eq!(
            plan_words(&["DEL", "a", "b"]),
            Plan::Store(
                smallvec![KVSOperation::Delete(b("a")), KVSOperation::Delete(b("b"))],
                Assemble::Deleted
            )
        );
        assert_eq!(
            plan_words(&["MSET", "a", "1", "b", "2"]),
            Plan::Store(
                smallvec![
                    KVSOperation::Put(b("a"), b("1")),
                    KVSOperation::Put(b("b"), b("2"))
                ],
                Assemble::MultiSet
            )
        );
        assert!(matches!(
            plan_words(&["exists", "a", "a"]),
            Plan::Store(ops, Assemble::Existing) if ops.len() == 2
        ));
    }

    #[test]
    fn wrong_arity_gets_redis_wording() {
        for words in [
            &["get"][..],
            &["get", "a", "b"],
            &["set", "k"],
            &["del"],
            &["mset", "a"],
            &["mset", "a", "1", "b"],
            &["echo"],
            &["ping", "a", "b"],
        ] {
            let Reply::Error(e) = reply(words) else {
                panic!("{words:?} should fail")
            };
            assert_eq!(
                e,
                format!("ERR wrong number of arguments for '{}' command", words[0])
            );
        }
    }

    #[test]
    fn unknown_commands_and_unsupported_options_are_errors() {
        assert_eq!(
            reply(&["FLY", "to", "moon"]),
            Reply::Error(
                "ERR unknown command 'FLY', with args beginning with: 'to' 'moon' ".into()
            )
        );
        assert!(matches!(
            reply(&["set", "k", "v", "EX", "10", "EX", "5"]),
            Reply::Error(_)
        ));
        let mut big = cmd(&["set", "k"]);
        big.oversized = true;
        let settings = settings();
        let mut session = Session::new(0, &settings);
        assert!(
            matches!(plan(big, &mut session, &settings, NOW), Plan::Reply(Reply::Error(e)) if e.contains("16 bytes"))
        );
        // The reported crash: a command whose only argument was too long arrives with no
        // words at all.
        let empty = Command {
            args: Args::new(),
            oversized: true,
        };
        assert!(
            matches!(plan(empty, &mut session, &settings, NOW), Plan::Reply(Reply::Error(e)) if e.contains("too large"))
        );
    }

    #[test]
    fn keyshard_names_the_shard_and_members_the_router_uses() {
        let layout = Layout::sharded(3, 2);
        let settings = Settings {
            shards: Shards::new(layout),
            ..Settings::new()
        };
        for key in ["color", "shape", "k:1", "k:2", "k:3"] {
            let place = Shards::new(layout).locate(key.as_bytes());
            let plan = plan(
                cmd(&["KEYSHARD", key]),
                &mut Session::new(0, &settings),
                &settings,
                NOW,
            );
            let first = i64::from(place.members.start.0);
            assert_eq!(
                plan,
                Plan::Reply(Reply::Array(vec![
                    Reply::Integer(i64::from(place.shard.0)),
                    Reply::Array(vec![Reply::Integer(first), Reply::Integer(first + 1)]),
                ]))
            );
        }
        assert!(matches!(
            plan_words(&["KEYSHARD"]),
            Plan::Reply(Reply::Error(e)) if e.contains("wrong number")
        ));
    }

    #[test]
    fn connection_commands_answer_at_once() {
        assert_eq!(reply(&["PING"]), Reply::simple("PONG"));
        assert_eq!(reply(&["ping", "hi"]), Reply::Bulk(b("hi")));
        assert_eq!(reply(&["echo", "x"]), Reply::Bulk(b("x")));
        assert_eq!(
            plan_words(&["quit"]),
            Plan::ReplyAndClose(Reply::simple("OK"))
        );
        assert!(matches!(reply(&["hello", "4"]), Reply::Error(e) if e.starts_with("NOPROTO")));
        assert!(matches!(reply(&["hello"]), Reply::Map(m) if m.len() == 7));
        assert_eq!(reply(&["command", "docs"]), Reply::Array(vec![]));
        assert_eq!(
            reply(&["config", "get", "appendonly"]),
            Reply::Array(vec![Reply::Bulk(b("appendonly")), Reply::Bulk(b("no"))])
        );
        assert_eq!(reply(&["config", "get", "nope"]), Reply::Array(vec![]));
        assert_eq!(plan_words(&["info"]), Plan::Info(vec![]));
        assert_eq!(
            plan_words(&["INFO", "Server", "clients"]),
            Plan::Info(vec!["server".into(), "clients".into()])
        );
        assert_eq!(reply(&["client", "id"]), Reply::Integer(5));
    }

    #[test]
    fn results_assemble_into_redis_replies() {
        use KVSResult::*;
        assert_eq!(
            assemble(Assemble::Get, smallvec![Value(b("v"))]),
            Reply::Bulk(b("v"))
        );
        assert_eq!(assemble(Assemble::Get, smallvec![NotFound]), Reply::Nil);
        assert_eq!(
            assemble(Assemble::Deleted, smallvec![Ok, NotFound, Ok]),
            Reply::Integer(2)
        );
        assert_eq!(
            assemble(Assemble::Existing, smallvec![Value(b("a")), NotFound]),
            Reply::Integer(1)
        );
        assert_eq!(
            assemble(Assemble::MultiGet, smallvec![Value(b("a")), NotFound]),
            Reply::Array(vec![Reply::Bulk(b("a")), Reply::Nil])
        );
        assert_eq!(
            assemble(Assemble::Get, smallvec![Siblings(vec![b("a"), b("b")])]),
            Reply::Set(vec![Reply::Bulk(b("a")), Reply::Bulk(b("b"))])
        );
        assert_eq!(
            assemble(Assemble::MultiSet, smallvec![Ok, Error("boom".into())]),
            Reply::Error("ERR boom".into())
        );
    }

    fn with_password() -> Settings {
        Settings {
            requirepass: Some(Password::new(b"s3cret")),
            ..Settings::new()
        }
    }

    fn run(words: &[&str], session: &mut Session, settings: &Settings) -> Plan {
        plan(cmd(words), session, settings, NOW)
    }

    #[test]
    fn without_the_password_only_auth_hello_and_quit_are_let_through() {
        let settings = with_password();
        let mut s = Session::new(1, &settings);
        let noauth = Plan::Reply(Reply::Error(NOAUTH.into()));
        for words in [
            &["GET", "k"][..],
            &["PING"],
            &["INFO"],
            &["FLY"],
            &["SET", "k", "v"],
        ] {
            assert_eq!(run(words, &mut s, &settings), noauth, "{words:?}");
        }
        assert!(matches!(
            run(&["HELLO", "2"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.starts_with("NOAUTH HELLO must be called")
        ));
        assert_eq!(
            run(&["QUIT"], &mut s, &settings),
            Plan::ReplyAndClose(Reply::simple("OK"))
        );
        assert!(!s.authenticated);
    }

    #[test]
    fn auth_with_the_right_password_opens_the_connection() {
        let settings = with_password();
        let wrongpass = Plan::Reply(Reply::Error(WRONGPASS.into()));
        let mut s = Session::new(1, &settings);
        assert_eq!(run(&["AUTH", "s3cre"], &mut s, &settings), wrongpass);
        assert_eq!(run(&["AUTH", "s3cret!"], &mut s, &settings), wrongpass);
        assert_eq!(
            run(&["AUTH", "bob", "s3cret"], &mut s, &settings),
            wrongpass
        );
        assert!(!s.authenticated);
        assert_eq!(
            run(&["AUTH", "s3cret"], &mut s, &settings),
            Plan::Reply(Reply::simple("OK"))
        );
        assert_eq!(
            run(&["PING"], &mut s, &settings),
            Plan::Reply(Reply::simple("PONG"))
        );
        let mut s = Session::new(2, &settings);
        assert_eq!(
            run(&["AUTH", "default", "s3cret"], &mut s, &settings),
            Plan::Reply(Reply::simple("OK"))
        );
        assert!(s.authenticated);
    }

    #[test]
    fn hello_3_switches_the_connection_to_resp3_and_hello_2_back() {
        let settings = settings();
        let mut s = Session::new(5, &settings);
        let proto = |plan: Plan| match plan {
            Plan::Reply(Reply::Map(fields)) => fields
                .into_iter()
                .find(|(k, _)| *k == Reply::text("proto"))
                .map(|(_, v)| v),
            other => panic!("{other:?}"),
        };
        assert_eq!(s.protocol, Protocol::Resp2);
        assert_eq!(
            proto(run(&["HELLO", "3"], &mut s, &settings)),
            Some(Reply::Integer(3))
        );
        assert_eq!(s.protocol, Protocol::Resp3);
        // HELLO without a version reports the current one and keeps it.
        assert_eq!(
            proto(run(&["HELLO"], &mut s, &settings)),
            Some(Reply::Integer(3))
        );
        // A refused HELLO changes nothing.
        assert!(matches!(
            run(&["HELLO", "9"], &mut s, &settings),
            Plan::Reply(Reply::Error(_))
        ));
        assert_eq!(s.protocol, Protocol::Resp3);
        assert_eq!(
            proto(run(&["HELLO", "2"], &mut s, &settings)),
            Some(Reply::Integer(2))
        );
        assert_eq!(s.protocol, Protocol::Resp2);
    }

    #[test]
    fn hello_can_authenticate() {
        let settings = with_password();
        let mut s = Session::new(1, &settings);
        assert_eq!(
            run(
                &["HELLO", "2", "AUTH", "default", "nope"],
                &mut s,
                &settings
            ),
            Plan::Reply(Reply::Error(WRONGPASS.into()))
        );
        assert!(matches!(
            run(&["HELLO", "2", "AUTH", "default", "s3cret", "SETNAME", "me"], &mut s, &settings),
            Plan::Reply(Reply::Map(m)) if m.len() == 7
        ));
        assert!(s.authenticated);
        assert!(matches!(
            run(&["HELLO", "2", "AUTH", "default"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("Syntax error in HELLO option 'AUTH'")
        ));
        assert!(matches!(
            run(&["HELLO", "x"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("not an integer")
        ));
    }

    #[test]
    fn auth_without_a_configured_password_says_so() {
        assert!(matches!(
            reply(&["AUTH", "x"]),
            Reply::Error(e) if e.contains("without any password configured")
        ));
    }

    #[test]
    fn debug_sleep_only_when_enabled() {
        assert!(matches!(
            reply(&["DEBUG", "SLEEP", "1"]),
            Reply::Error(e) if e.contains("--enable-debug-command")
        ));
        let settings = Settings {
            debug_command: true,
            ..Settings::new()
        };
        let mut s = Session::new(1, &settings);
        assert_eq!(
            run(&["debug", "sleep", "0.5"], &mut s, &settings),
            Plan::Sleep(Duration::from_millis(500))
        );
        for bad in [
            &["DEBUG", "SLEEP", "-1"][..],
            &["DEBUG", "SLEEP", "1e9"],
            &["DEBUG", "SLEEP", "x"],
            &["DEBUG", "SLEEP", "NaN"],
        ] {
            assert!(
                matches!(run(bad, &mut s, &settings), Plan::Reply(Reply::Error(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            run(&["DEBUG", "SEGFAULT"], &mut s, &settings),
            Plan::Reply(Reply::Error(_))
        ));
    }

    fn queued() -> Plan {
        Plan::Reply(Reply::simple("QUEUED"))
    }

    #[test]
    fn multi_queues_commands_and_exec_runs_them_as_one_transaction() {
        let settings = settings();
        let mut s = Session::new(1, &settings);
        assert_eq!(
            run(&["MULTI"], &mut s, &settings),
            Plan::Reply(Reply::simple("OK"))
        );
        assert_eq!(run(&["SET", "a", "1"], &mut s, &settings), queued());
        assert_eq!(run(&["PING"], &mut s, &settings), queued());
        assert_eq!(run(&["MGET", "a", "b"], &mut s, &settings), queued());
        assert_eq!(
            run(&["EXEC"], &mut s, &settings),
            Plan::Exec(vec![
                Queued::Store(smallvec![KVSOperation::Put(b("a"), b("1"))], Assemble::Set),
                Queued::Reply(Reply::simple("PONG")),
                Queued::Store(
                    smallvec![KVSOperation::Get(b("a")), KVSOperation::Get(b("b"))],
                    Assemble::MultiGet
                ),
            ])
        );
        assert_eq!(s.transaction, None, "EXEC closes the transaction");
        // EXEC's reply: each command's own, from its share of the results.
        let parts = vec![
            ExecPart::Results(Assemble::Set, 1),
            ExecPart::Ready(Reply::simple("PONG")),
            ExecPart::Results(Assemble::MultiGet, 2),
        ];
        let results = KVSResult::Transaction(vec![
            KVSResult::Ok,
            KVSResult::Value(b("1")),
            KVSResult::NotFound,
        ]);
        assert_eq!(
            assemble_exec(parts.clone(), results),
            Reply::Array(vec![
                Reply::simple("OK"),
                Reply::simple("PONG"),
                Reply::Array(vec![Reply::Bulk(b("1")), Reply::Nil]),
            ])
        );
        // A transaction that failed as a whole (its shard is down) answers its error.
        assert_eq!(
            assemble_exec(parts, KVSResult::Error("shard 1 is down".into())),
            Reply::err("shard 1 is down")
        );
    }

    #[test]
    fn an_error_while_queueing_makes_exec_discard_the_transaction() {
        let settings = settings();
        let mut s = Session::new(1, &settings);
        run(&["MULTI"], &mut s, &settings);
        assert_eq!(run(&["SET", "a", "1"], &mut s, &settings), queued());
        assert!(matches!(
            run(&["GET"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("wrong number")
        ));
        assert!(matches!(
            run(&["INFO"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("not allowed inside a transaction")
        ));
        assert_eq!(
            run(&["EXEC"], &mut s, &settings),
            Plan::Reply(Reply::Error(
                "EXECABORT Transaction discarded because of previous errors.".into()
            ))
        );
        assert_eq!(s.transaction, None);
    }

    #[test]
    fn discard_nesting_and_exec_without_multi_are_answered_as_redis_does() {
        let settings = settings();
        let mut s = Session::new(1, &settings);
        let error = |plan: Plan| match plan {
            Plan::Reply(Reply::Error(e)) => e,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            error(run(&["EXEC"], &mut s, &settings)),
            "ERR EXEC without MULTI"
        );
        assert_eq!(
            error(run(&["DISCARD"], &mut s, &settings)),
            "ERR DISCARD without MULTI"
        );
        run(&["MULTI"], &mut s, &settings);
        assert_eq!(
            error(run(&["MULTI"], &mut s, &settings)),
            "ERR MULTI calls can not be nested"
        );
        run(&["SET", "a", "1"], &mut s, &settings);
        assert_eq!(
            run(&["DISCARD"], &mut s, &settings),
            Plan::Reply(Reply::simple("OK"))
        );
        assert_eq!(s.transaction, None);
        // Once discarded, commands run at once again.
        assert!(matches!(
            run(&["GET", "a"], &mut s, &settings),
            Plan::Store(..)
        ));
        // Nothing watched: UNWATCH has nothing to tell the store.
        assert_eq!(
            run(&["UNWATCH"], &mut s, &settings),
            Plan::Reply(Reply::simple("OK"))
        );
    }

    /// WATCH asks the store to remember the keys' versions; EXEC's transaction then starts
    /// with a check of each (whose results no command answers), and the watches end.
    #[test]
    fn exec_after_watch_checks_the_watched_keys_first() {
        let settings = settings();
        let mut s = Session::new(1, &settings);
        assert_eq!(
            run(&["WATCH", "a", "b"], &mut s, &settings),
            Plan::Store(
                smallvec![KVSOperation::Watch(b("a")), KVSOperation::Watch(b("b"))],
                Assemble::Watch
            )
        );
        run(&["MULTI"], &mut s, &settings);
        assert!(matches!(
            run(&["WATCH", "c"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("inside MULTI")
        ));
        run(&["SET", "a", "1"], &mut s, &settings);
        let Plan::Exec(queued) = run(&["EXEC"], &mut s, &settings) else {
            panic!("EXEC runs the transaction");
        };
        assert_eq!(
            queued[0],
            Queued::Guards(smallvec![
                KVSOperation::Unchanged(b("a")),
                KVSOperation::Unchanged(b("b"))
            ])
        );
        assert!(s.watched.is_empty(), "EXEC ends the watches");
        // The guards' results answer nothing; a changed key makes EXEC answer nil.
        let parts = vec![ExecPart::Guards(2), ExecPart::Results(Assemble::Set, 1)];
        let ran = KVSResult::Transaction(vec![KVSResult::Ok, KVSResult::Ok, KVSResult::Ok]);
        assert_eq!(
            assemble_exec(parts.clone(), ran),
            Reply::Array(vec![Reply::simple("OK")])
        );
        assert_eq!(assemble_exec(parts, KVSResult::Aborted), Reply::NilArray);
        let mut wire = bytes::BytesMut::new();
        Reply::NilArray.encode_as(Protocol::Resp2, &mut wire);
        Reply::NilArray.encode_as(Protocol::Resp3, &mut wire);
        assert_eq!(&wire[..], b"*-1\r\n_\r\n");
    }

    /// UNWATCH and DISCARD end the watches in the store; so does an EXEC that a queueing
    /// error spoiled, which still answers EXECABORT.
    #[test]
    fn unwatch_discard_and_execabort_forget_the_watches() {
        let settings = settings();
        let mut s = Session::new(1, &settings);
        let unwatch_a = Plan::Store(smallvec![KVSOperation::Unwatch(b("a"))], Assemble::Set);
        run(&["WATCH", "a"], &mut s, &settings);
        assert_eq!(run(&["UNWATCH"], &mut s, &settings), unwatch_a);
        run(&["WATCH", "a"], &mut s, &settings);
        run(&["MULTI"], &mut s, &settings);
        assert_eq!(run(&["DISCARD"], &mut s, &settings), unwatch_a);
        run(&["WATCH", "a"], &mut s, &settings);
        run(&["MULTI"], &mut s, &settings);
        run(&["NOSUCHCOMMAND"], &mut s, &settings);
        let abort = run(&["EXEC"], &mut s, &settings);
        assert_eq!(
            abort,
            Plan::Store(
                smallvec![KVSOperation::Unwatch(b("a"))],
                Assemble::ExecAbort
            )
        );
        assert!(matches!(
            assemble(Assemble::ExecAbort, smallvec![KVSResult::Ok]),
            Reply::Error(e) if e.starts_with("EXECABORT")
        ));
        assert!(s.watched.is_empty());
    }

    #[test]
    fn a_transaction_over_two_shards_is_refused_and_one_tag_keeps_it_on_one() {
        let settings = Settings {
            shards: Shards::new(Layout::sharded(3, 1)),
            ..settings()
        };
        let shards = &settings.shards;
        let (a, b) = (0..)
            .map(|i| (format!("k{i}"), format!("k{}", i + 1)))
            .find(|(a, b)| shards.locate(a.as_bytes()).shard != shards.locate(b.as_bytes()).shard)
            .unwrap();
        let mut s = Session::new(1, &settings);
        run(&["MULTI"], &mut s, &settings);
        run(&["SET", &a, "1"], &mut s, &settings);
        run(&["SET", &b, "1"], &mut s, &settings);
        assert!(matches!(
            run(&["EXEC"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.starts_with("CROSSSLOT")
        ));
        run(&["MULTI"], &mut s, &settings);
        run(&["SET", "{user}:a", "1"], &mut s, &settings);
        run(&["MGET", "{user}:a", "{user}:b"], &mut s, &settings);
        assert!(matches!(run(&["EXEC"], &mut s, &settings), Plan::Exec(q) if q.len() == 2));
    }

    #[test]
    fn clients_name_themselves_and_reset_forgets_it_all() {
        let settings = settings();
        let mut s = Session::new(4, &settings);
        let ok = Plan::Reply(Reply::simple("OK"));
        assert_eq!(
            run(&["CLIENT", "SETNAME", "worker-1"], &mut s, &settings),
            ok
        );
        assert_eq!(
            run(&["CLIENT", "GETNAME"], &mut s, &settings),
            Plan::Reply(Reply::Bulk(b("worker-1")))
        );
        assert!(matches!(
            run(&["CLIENT", "SETNAME", "a b"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("cannot contain spaces")
        ));
        assert_eq!(
            run(
                &["CLIENT", "SETINFO", "lib-name", "redis-py"],
                &mut s,
                &settings
            ),
            ok
        );
        assert!(matches!(
            run(&["CLIENT", "KILL"], &mut s, &settings),
            Plan::Reply(Reply::Error(e)) if e.contains("unknown subcommand 'KILL'")
        ));
        assert_eq!(run(&["CLIENT", "SETNAME", ""], &mut s, &settings), ok);
        assert_eq!(
            run(&["CLIENT", "GETNAME"], &mut s, &settings),
            Plan::Reply(Reply::Nil)
        );
        // HELLO names the client too.
        run(&["HELLO", "3", "SETNAME", "h"], &mut s, &settings);
        assert_eq!(s.name, Some(b("h")));
        run(&["MULTI"], &mut s, &settings);
        assert_eq!(
            run(&["RESET"], &mut s, &settings),
            Plan::Reply(Reply::simple("RESET"))
        );
        assert_eq!(
            s,
            Session::new(4, &settings),
            "RESET starts the connection afresh"
        );
    }

    #[test]
    fn getset_getdel_and_set_get_read_and_write_in_one_transaction() {
        let get_then = |then: KVSOperation<Bytes>| {
            Plan::Store(
                smallvec![KVSOperation::Transaction(vec![
                    KVSOperation::Get(b("k")),
                    then
                ])],
                Assemble::GetAnd,
            )
        };
        assert_eq!(
            plan_words(&["GETSET", "k", "v"]),
            get_then(KVSOperation::Put(b("k"), b("v")))
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "get"]),
            get_then(KVSOperation::Put(b("k"), b("v")))
        );
        assert_eq!(
            plan_words(&["GETDEL", "k"]),
            get_then(KVSOperation::Delete(b("k")))
        );
        let old = KVSResult::Transaction(vec![KVSResult::Value(b("old")), KVSResult::Ok]);
        assert_eq!(
            assemble(Assemble::GetAnd, smallvec![old]),
            Reply::Bulk(b("old"))
        );
        let none = KVSResult::Transaction(vec![KVSResult::NotFound, KVSResult::NotFound]);
        assert_eq!(assemble(Assemble::GetAnd, smallvec![none]), Reply::Nil);
    }

    /// Every name `COMMAND COUNT` counts is one the table knows (none is "unknown").
    #[test]
    fn every_listed_command_is_known() {
        for name in COMMANDS {
            if let Plan::Reply(Reply::Error(e)) = plan_words(&[name]) {
                assert!(!e.contains("unknown command"), "{name}: {e}");
            }
        }
    }

    /// The store's operation for each expiry command: relative times become deadlines from
    /// the edge's clock, once, here.
    #[test]
    fn expiries_become_deadlines_at_the_edge() {
        let put = |presence, expiry| KVSOperation::PutExpiring(b("k"), b("v"), presence, expiry);
        let store = |op, kind| Plan::Store(smallvec![op], kind);
        let at = |ms| Expiry::At(ms);
        assert_eq!(
            plan_words(&["SET", "k", "v", "EX", "10"]),
            store(put(None, at(NOW + 10_000)), Assemble::Set)
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "px", "1500", "nx"]),
            store(put(Some(Presence::Absent), at(NOW + 1500)), Assemble::SetIf)
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "XX", "EXAT", "1800000000"]),
            store(
                put(Some(Presence::Present), at(1_800_000_000_000)),
                Assemble::SetIf
            )
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "PXAT", "1800000000123"]),
            store(put(None, at(1_800_000_000_123)), Assemble::Set)
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "KEEPTTL"]),
            store(put(None, Expiry::Keep), Assemble::Set)
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "EX", "10", "GET"]),
            store(
                KVSOperation::Transaction(vec![
                    KVSOperation::Get(b("k")),
                    put(None, at(NOW + 10_000))
                ]),
                Assemble::GetAnd
            )
        );
        assert_eq!(
            plan_words(&["SETEX", "k", "10", "v"]),
            store(put(None, at(NOW + 10_000)), Assemble::Set)
        );
        assert_eq!(
            plan_words(&["PSETEX", "k", "10", "v"]),
            store(put(None, at(NOW + 10)), Assemble::Set)
        );
        let expire = |ms| store(KVSOperation::ExpireAt(b("k"), ms), Assemble::Integer);
        assert_eq!(plan_words(&["EXPIRE", "k", "10"]), expire(NOW + 10_000));
        assert_eq!(plan_words(&["PEXPIRE", "k", "10"]), expire(NOW + 10));
        assert_eq!(plan_words(&["EXPIRE", "k", "-5"]), expire(NOW - 5000));
        assert_eq!(plan_words(&["EXPIREAT", "k", "2"]), expire(2000));
        assert_eq!(plan_words(&["PEXPIREAT", "k", "2"]), expire(2));
        assert_eq!(
            plan_words(&["TTL", "k"]),
            store(KVSOperation::Ttl(b("k")), Assemble::Ttl { seconds: true })
        );
        assert_eq!(
            plan_words(&["PERSIST", "k"]),
            store(KVSOperation::Persist(b("k")), Assemble::Integer)
        );
    }

    /// Redis's errors for expiry it would refuse, and for the options not built.
    #[test]
    fn bad_expiries_are_refused_as_redis_refuses_them() {
        let error = |words: &[&str], wanted: &str| match reply(words) {
            Reply::Error(e) => assert!(e.contains(wanted), "{words:?}: {e}"),
            other => panic!("{words:?}: {other:?}"),
        };
        error(
            &["SET", "k", "v", "EX", "0"],
            "invalid expire time in 'set'",
        );
        error(
            &["SET", "k", "v", "PX", "-3"],
            "invalid expire time in 'set'",
        );
        error(&["SET", "k", "v", "EX", "ten"], "not an integer");
        error(&["SET", "k", "v", "EX"], "syntax error");
        error(&["SET", "k", "v", "EX", "1", "PX", "1"], "syntax error");
        error(&["SET", "k", "v", "EX", "1", "KEEPTTL"], "syntax error");
        error(
            &["SET", "k", "v", "EX", "9223372036854775807"],
            "invalid expire time",
        );
        error(&["SETEX", "k", "0", "v"], "invalid expire time in 'setex'");
        error(&["SETEX", "k", "x", "v"], "not an integer");
        error(&["EXPIRE", "k", "x"], "not an integer");
        error(&["EXPIRE", "k", "10", "NX"], "not supported");
        error(&["TTL"], "wrong number of arguments");
    }

    #[test]
    fn ttl_rounds_to_the_nearest_second_and_pttl_does_not() {
        let ttl =
            |seconds, n| assemble(Assemble::Ttl { seconds }, smallvec![KVSResult::Integer(n)]);
        assert_eq!(ttl(true, 1499), Reply::Integer(1));
        assert_eq!(ttl(true, 1500), Reply::Integer(2));
        assert_eq!(ttl(true, 0), Reply::Integer(0));
        assert_eq!(ttl(true, -1), Reply::Integer(-1));
        assert_eq!(ttl(true, -2), Reply::Integer(-2));
        assert_eq!(ttl(false, 1499), Reply::Integer(1499));
    }

    #[test]
    fn type_and_strlen_describe_a_value() {
        assert_eq!(
            plan_words(&["TYPE", "k"]),
            Plan::Store(smallvec![KVSOperation::Get(b("k"))], Assemble::Type)
        );
        let value = || smallvec![KVSResult::Value(b("four"))];
        assert_eq!(assemble(Assemble::Type, value()), Reply::simple("string"));
        assert_eq!(
            assemble(Assemble::Type, smallvec![KVSResult::NotFound]),
            Reply::simple("none")
        );
        assert_eq!(assemble(Assemble::Strlen, value()), Reply::Integer(4));
        assert_eq!(
            assemble(Assemble::Strlen, smallvec![KVSResult::NotFound]),
            Reply::Integer(0)
        );
    }

    #[test]
    fn counters_appends_and_conditional_sets_plan_one_operation() {
        let one = |op: KVSOperation<Bytes>, kind| Plan::Store(smallvec![op], kind);
        assert_eq!(
            plan_words(&["INCR", "n"]),
            one(KVSOperation::Add(b("n"), 1), Assemble::Integer)
        );
        assert_eq!(
            plan_words(&["decr", "n"]),
            one(KVSOperation::Add(b("n"), -1), Assemble::Integer)
        );
        assert_eq!(
            plan_words(&["DECRBY", "n", "5"]),
            one(KVSOperation::Add(b("n"), -5), Assemble::Integer)
        );
        for bad in [
            &["INCRBY", "n", "x"][..],
            &["DECRBY", "n", "-9223372036854775808"],
        ] {
            assert!(matches!(
                plan_words(bad),
                Plan::Reply(Reply::Error(e)) if e.contains("not an integer")
            ));
        }
        assert_eq!(
            plan_words(&["CAS", "k", "old", "new"]),
            one(
                KVSOperation::Cas(b("k"), b("old"), b("new")),
                Assemble::Integer
            )
        );
        assert!(matches!(
            plan_words(&["CAS", "k", "old"]),
            Plan::Reply(Reply::Error(e)) if e.contains("wrong number of arguments")
        ));
        assert_eq!(
            plan_words(&["APPEND", "k", "v"]),
            one(KVSOperation::Append(b("k"), b("v")), Assemble::Integer)
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "nx"]),
            one(
                KVSOperation::PutIf(b("k"), b("v"), Presence::Absent),
                Assemble::SetIf
            )
        );
        assert_eq!(
            plan_words(&["SET", "k", "v", "XX"]),
            one(
                KVSOperation::PutIf(b("k"), b("v"), Presence::Present),
                Assemble::SetIf
            )
        );
        assert_eq!(
            plan_words(&["SETNX", "k", "v"]),
            one(
                KVSOperation::PutIf(b("k"), b("v"), Presence::Absent),
                Assemble::SetIfAbsent
            )
        );
        assert!(matches!(
            plan_words(&["SET", "k", "v", "NX", "XX"]),
            Plan::Reply(Reply::Error(e)) if e.contains("syntax error")
        ));
        assert_eq!(
            assemble(Assemble::Integer, smallvec![KVSResult::Integer(7)]),
            Reply::Integer(7)
        );
        assert_eq!(
            assemble(Assemble::SetIf, smallvec![KVSResult::Ok]),
            Reply::simple("OK")
        );
        assert_eq!(
            assemble(Assemble::SetIf, smallvec![KVSResult::NotFound]),
            Reply::Nil
        );
        assert_eq!(
            assemble(Assemble::SetIfAbsent, smallvec![KVSResult::Ok]),
            Reply::Integer(1)
        );
        assert_eq!(
            assemble(Assemble::SetIfAbsent, smallvec![KVSResult::NotFound]),
            Reply::Integer(0)
        );
    }

    #[test]
    fn keyspace_commands_ask_every_shard_and_scan_walks_them_in_turn() {
        let settings = Settings {
            shards: Shards::new(Layout::sharded(3, 1)),
            ..settings()
        };
        let plan =
            |words: &[&str]| plan(cmd(words), &mut Session::new(1, &settings), &settings, NOW);
        assert_eq!(
            plan(&["DBSIZE"]),
            Plan::Store(
                (0..3).map(ShardId).map(KVSOperation::Count).collect(),
                Assemble::Sum
            )
        );
        assert!(
            matches!(plan(&["KEYS", "a*"]), Plan::Store(ops, Assemble::Keys) if ops.len() == 3)
        );
        assert!(matches!(plan(&["FLUSHDB"]), Plan::Store(ops, Assemble::Set) if ops.len() == 3));
        assert!(matches!(plan(&["FLUSHALL", "ASYNC"]), Plan::Store(ops, _) if ops.len() == 3));
        // The cursor's top bits name the shard, the rest the position in it.
        let on_shard_1 = (1u64 << crate::store::keyspace::POSITION_BITS) | 42;
        assert_eq!(
            plan(&["SCAN", &on_shard_1.to_string(), "MATCH", "k*", "COUNT", "5"]),
            Plan::Store(
                smallvec![KVSOperation::Scan {
                    shard: ShardId(1),
                    from: 42,
                    count: 5,
                    pattern: Some(b("k*"))
                }],
                Assemble::Scan {
                    shard: 1,
                    shards: 3
                }
            )
        );
        let on_shard_3 = 3u64 << crate::store::keyspace::POSITION_BITS;
        for bad in ["x", "-1", &on_shard_3.to_string()] {
            assert_eq!(
                plan(&["SCAN", bad]),
                Plan::Reply(Reply::err("invalid cursor")),
                "{bad}"
            );
        }
        // A shard that is done hands over to the next; the last one ends the scan with 0.
        let step = |shard, next| {
            assemble(
                Assemble::Scan { shard, shards: 3 },
                smallvec![KVSResult::Scanned(next, vec![b("k")])],
            )
        };
        let cursor = |reply: Reply| match reply {
            Reply::Array(parts) => parts[0].clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(cursor(step(0, Some(9))), Reply::text("9"));
        assert_eq!(
            cursor(step(0, None)),
            Reply::text(on_shard_1.wrapping_sub(42).to_string())
        );
        assert_eq!(cursor(step(2, None)), Reply::text("0"));
        assert_eq!(
            assemble(
                Assemble::Sum,
                smallvec![KVSResult::Integer(2), KVSResult::Integer(5)]
            ),
            Reply::Integer(7)
        );
    }
}
