//! The command table's unit tests: every command planned and assembled, without I/O.

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
        Reply::Error("ERR unknown command 'FLY', with args beginning with: 'to' 'moon' ".into())
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

/// A transaction travels to the store as one message: past its bound, the command that
/// crosses it is refused and EXEC discards the transaction, as after any queueing error.
#[test]
fn a_transaction_past_its_byte_bound_is_refused_and_discarded() {
    let settings = Settings {
        max_transaction_bytes: 64,
        ..settings()
    };
    let mut s = Session::new(1, &settings);
    run(&["MULTI"], &mut s, &settings);
    assert_eq!(
        run(&["SET", "a", "0123456789"], &mut s, &settings),
        queued()
    );
    assert!(matches!(
        run(&["MSET", "b", "0123456789abcdef", "c", "0123456789abcdef"], &mut s, &settings),
        Plan::Reply(Reply::Error(e)) if e.contains("transaction too large") && e.contains("64 bytes")
    ));
    assert_eq!(
        run(&["EXEC"], &mut s, &settings),
        Plan::Reply(Reply::Error(
            "EXECABORT Transaction discarded because of previous errors.".into()
        ))
    );
    // The next transaction starts from nothing.
    run(&["MULTI"], &mut s, &settings);
    assert_eq!(
        run(&["SET", "a", "0123456789"], &mut s, &settings),
        queued()
    );
    assert!(matches!(run(&["EXEC"], &mut s, &settings), Plan::Exec(_)));
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
            KVSOperation::Transaction(vec![KVSOperation::Get(b("k")), put(None, at(NOW + 10_000))]),
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
    let ttl = |seconds, n| assemble(Assemble::Ttl { seconds }, smallvec![KVSResult::Integer(n)]);
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
    let plan = |words: &[&str]| plan(cmd(words), &mut Session::new(1, &settings), &settings, NOW);
    assert_eq!(
        plan(&["DBSIZE"]),
        Plan::Store(
            (0..3).map(ShardId).map(KVSOperation::Count).collect(),
            Assemble::Sum
        )
    );
    assert!(matches!(plan(&["KEYS", "a*"]), Plan::Store(ops, Assemble::Keys) if ops.len() == 3));
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
