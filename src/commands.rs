//! The Redis command table: which RESP commands exist, how each becomes typed
//! [`KVSOperation`]s, and how their results become one RESP reply.
//!
//! Pure code, no I/O, so every command's behaviour is unit-tested here. Commands that touch
//! data (GET, SET, DEL, EXISTS, MGET, MSET) are *planned* into one operation per key; the
//! front sends those into the dataflow and, once every result is back, calls [`assemble`].
//! Connection-level commands (PING, ECHO, HELLO, …) are answered at once, never reaching the
//! store.

use bytes::Bytes;

use crate::protocol::{KVSOperation, KVSResult};
use crate::resp::{Command, Reply};

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
}

/// What the front must do with one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Answer at once, without touching the store.
    Reply(Reply),
    /// Answer, then close the connection (QUIT).
    ReplyAndClose(Reply),
    /// Run these operations in the store, then [`assemble`] their results in the same order.
    Store(Vec<KVSOperation<Bytes>>, Assemble),
}

/// Settings the command table needs to know about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest key or value accepted, in bytes.
    pub max_value_bytes: usize,
}

/// The default limit on keys and values: 1 MiB.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 1024 * 1024;

/// Decides what to do with `cmd` for connection `client`.
pub fn plan(cmd: Command, limits: Limits, client: u64) -> Plan {
    let name = String::from_utf8_lossy(&cmd.args[0]).to_ascii_lowercase();
    let args = &cmd.args[1..];
    if cmd.oversized {
        return Plan::Reply(Reply::err(format!(
            "argument too large: keys and values are limited to {} bytes",
            limits.max_value_bytes
        )));
    }
    // Checks the argument count: `n` exactly, or at least `-n` when negative (Redis's convention).
    let arity_ok = |n: isize| {
        if n >= 0 {
            args.len() == n as usize
        } else {
            args.len() >= n.unsigned_abs()
        }
    };
    let wrong_arity = || {
        Plan::Reply(Reply::err(format!(
            "wrong number of arguments for '{name}' command"
        )))
    };
    let arity = |n: isize, then: &dyn Fn() -> Plan| {
        if arity_ok(n) { then() } else { wrong_arity() }
    };
    match name.as_str() {
        "ping" => match args {
            [] => Plan::Reply(Reply::simple("PONG")),
            [msg] => Plan::Reply(Reply::Bulk(msg.clone())),
            _ => wrong_arity(),
        },
        "echo" => arity(1, &|| Plan::Reply(Reply::Bulk(args[0].clone()))),
        "quit" => Plan::ReplyAndClose(Reply::simple("OK")),
        "get" | "set" | "del" | "exists" | "mget" | "mset" => data(&name, cmd.args),
        "hello" => hello(args, client),
        "command" => command(args),
        "config" => config(args),
        "info" => Plan::Reply(Reply::text(format!(
            "# Server\r\nredis_version:7.0.0\r\nkvs_zoo_version:{}\r\nredis_mode:standalone\r\n",
            env!("CARGO_PKG_VERSION")
        ))),
        "select" => arity(1, &|| {
            if args[0].as_ref() == b"0" {
                Plan::Reply(Reply::simple("OK"))
            } else {
                Plan::Reply(Reply::err("DB index is out of range"))
            }
        }),
        "client" => match args.first().map(|a| a.to_ascii_lowercase()) {
            Some(sub) if sub == b"setname" || sub == b"setinfo" => Plan::Reply(Reply::simple("OK")),
            Some(sub) if sub == b"id" => Plan::Reply(Reply::Integer(client as i64)),
            _ => Plan::Reply(Reply::err(
                "only CLIENT SETNAME, SETINFO and ID are supported",
            )),
        },
        _ => Plan::Reply(unknown_command(&cmd.args)),
    }
}

/// Plans a data command, moving its keys and values into the operations (no copies: this is
/// the path every GET and SET takes).
fn data(name: &str, all: Vec<Bytes>) -> Plan {
    let n = all.len() - 1;
    let mut args = all.into_iter().skip(1);
    let mut next = || args.next().expect("the arity was checked");
    match name {
        "get" if n == 1 => Plan::Store(vec![KVSOperation::Get(next())], Assemble::Get),
        "set" if n == 2 => Plan::Store(vec![KVSOperation::Put(next(), next())], Assemble::Set),
        "set" if n > 2 => Plan::Reply(Reply::err(
            "syntax error: SET options (EX, PX, NX, XX, GET, KEEPTTL) are not supported",
        )),
        "del" if n >= 1 => Plan::Store(args.map(KVSOperation::Delete).collect(), Assemble::Deleted),
        "exists" if n >= 1 => {
            Plan::Store(args.map(KVSOperation::Get).collect(), Assemble::Existing)
        }
        "mget" if n >= 1 => Plan::Store(args.map(KVSOperation::Get).collect(), Assemble::MultiGet),
        "mset" if n >= 2 && n.is_multiple_of(2) => {
            let mut ops = Vec::with_capacity(n / 2);
            while let (Some(k), Some(v)) = (args.next(), args.next()) {
                ops.push(KVSOperation::Put(k, v));
            }
            Plan::Store(ops, Assemble::MultiSet)
        }
        _ => Plan::Reply(Reply::err(format!(
            "wrong number of arguments for '{name}' command"
        ))),
    }
}

/// Redis's wording for an unknown command, with the first few arguments quoted back.
fn unknown_command(all: &[Bytes]) -> Reply {
    let quoted: String = all[1..]
        .iter()
        .take(3)
        .map(|a| format!("'{}' ", String::from_utf8_lossy(a)))
        .collect();
    Reply::err(format!(
        "unknown command '{}', with args beginning with: {quoted}",
        String::from_utf8_lossy(&all[0])
    ))
}

fn hello(args: &[Bytes], client: u64) -> Plan {
    if let Some(version) = args.first()
        && version.as_ref() != b"2"
    {
        return Plan::Reply(Reply::Error(
            "NOPROTO sorry, this protocol version is not supported".into(),
        ));
    }
    let field = |s: &str| Reply::text(s);
    Plan::Reply(Reply::Array(vec![
        field("server"),
        field("kvs-zoo"),
        field("version"),
        field(env!("CARGO_PKG_VERSION")),
        field("proto"),
        Reply::Integer(2),
        field("id"),
        Reply::Integer(client as i64),
        field("mode"),
        field("standalone"),
        field("role"),
        field("master"),
        field("modules"),
        Reply::Array(vec![]),
    ]))
}

/// The commands [`plan`] knows, for `COMMAND COUNT`.
const COMMANDS: &[&str] = &[
    "ping", "echo", "quit", "get", "set", "del", "exists", "mget", "mset", "hello", "command",
    "config", "info", "select", "client",
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
pub fn assemble(kind: Assemble, results: Vec<KVSResult<Bytes>>) -> Reply {
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
        Assemble::Set | Assemble::MultiSet => Reply::simple("OK"),
        Assemble::Get => results.into_iter().next().map_or(Reply::Nil, value_reply),
        Assemble::Deleted => count(|r| matches!(r, KVSResult::Ok)),
        Assemble::Existing => count(|r| matches!(r, KVSResult::Value(_) | KVSResult::Siblings(_))),
        Assemble::MultiGet => Reply::Array(results.into_iter().map(value_reply).collect()),
    }
}

/// One GET result as RESP: a value, nil, or (causal stores) an array of siblings.
fn value_reply(result: KVSResult<Bytes>) -> Reply {
    match result {
        KVSResult::Value(v) => Reply::Bulk(v),
        KVSResult::Siblings(vs) => Reply::Array(vs.into_iter().map(Reply::Bulk).collect()),
        KVSResult::NotFound | KVSResult::Ok => Reply::Nil,
        KVSResult::Error(e) => Reply::err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_value_bytes: 16,
    };

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
        match plan(cmd(words), LIMITS, 5) {
            Plan::Reply(r) | Plan::ReplyAndClose(r) => r,
            other => panic!("expected an immediate reply, got {other:?}"),
        }
    }

    #[test]
    fn data_commands_plan_one_operation_per_key() {
        assert_eq!(
            plan(cmd(&["set", "k", "v"]), LIMITS, 0),
            Plan::Store(vec![KVSOperation::Put(b("k"), b("v"))], Assemble::Set)
        );
        assert_eq!(
            plan(cmd(&["DEL", "a", "b"]), LIMITS, 0),
            Plan::Store(
                vec![KVSOperation::Delete(b("a")), KVSOperation::Delete(b("b"))],
                Assemble::Deleted
            )
        );
        assert_eq!(
            plan(cmd(&["MSET", "a", "1", "b", "2"]), LIMITS, 0),
            Plan::Store(
                vec![
                    KVSOperation::Put(b("a"), b("1")),
                    KVSOperation::Put(b("b"), b("2"))
                ],
                Assemble::MultiSet
            )
        );
        assert!(matches!(
            plan(cmd(&["exists", "a", "a"]), LIMITS, 0),
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
            reply(&["set", "k", "v", "EX", "10"]),
            Reply::Error(_)
        ));
        let mut big = cmd(&["set", "k"]);
        big.oversized = true;
        assert!(
            matches!(plan(big, LIMITS, 0), Plan::Reply(Reply::Error(e)) if e.contains("16 bytes"))
        );
    }

    #[test]
    fn connection_commands_answer_at_once() {
        assert_eq!(reply(&["PING"]), Reply::simple("PONG"));
        assert_eq!(reply(&["ping", "hi"]), Reply::Bulk(b("hi")));
        assert_eq!(reply(&["echo", "x"]), Reply::Bulk(b("x")));
        assert_eq!(
            plan(cmd(&["quit"]), LIMITS, 0),
            Plan::ReplyAndClose(Reply::simple("OK"))
        );
        assert!(matches!(reply(&["hello", "3"]), Reply::Error(e) if e.starts_with("NOPROTO")));
        assert!(matches!(reply(&["hello"]), Reply::Array(a) if a.len() == 14));
        assert_eq!(reply(&["command", "docs"]), Reply::Array(vec![]));
        assert_eq!(
            reply(&["config", "get", "appendonly"]),
            Reply::Array(vec![Reply::Bulk(b("appendonly")), Reply::Bulk(b("no"))])
        );
        assert_eq!(reply(&["config", "get", "nope"]), Reply::Array(vec![]));
        assert!(matches!(reply(&["info"]), Reply::Bulk(_)));
        assert_eq!(reply(&["client", "id"]), Reply::Integer(5));
    }

    #[test]
    fn results_assemble_into_redis_replies() {
        use KVSResult::*;
        assert_eq!(
            assemble(Assemble::Get, vec![Value(b("v"))]),
            Reply::Bulk(b("v"))
        );
        assert_eq!(assemble(Assemble::Get, vec![NotFound]), Reply::Nil);
        assert_eq!(
            assemble(Assemble::Deleted, vec![Ok, NotFound, Ok]),
            Reply::Integer(2)
        );
        assert_eq!(
            assemble(Assemble::Existing, vec![Value(b("a")), NotFound]),
            Reply::Integer(1)
        );
        assert_eq!(
            assemble(Assemble::MultiGet, vec![Value(b("a")), NotFound]),
            Reply::Array(vec![Reply::Bulk(b("a")), Reply::Nil])
        );
        assert_eq!(
            assemble(Assemble::Get, vec![Siblings(vec![b("a"), b("b")])]),
            Reply::Array(vec![Reply::Bulk(b("a")), Reply::Bulk(b("b"))])
        );
        assert_eq!(
            assemble(Assemble::MultiSet, vec![Ok, Error("boom".into())]),
            Reply::Error("ERR boom".into())
        );
    }
}
