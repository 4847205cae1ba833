//! Commands about the connection itself, answered at the edge without reaching the store:
//! `AUTH`, `HELLO` (protocol version and authentication), `CLIENT` (ids and names) and
//! `DEBUG SLEEP`.

use super::*;

/// The longest `DEBUG SLEEP` accepted.
pub(super) const MAX_DEBUG_SLEEP: Duration = Duration::from_secs(3600);

/// Redis's reply to every command but AUTH, HELLO and QUIT before the password is given.
pub(super) const NOAUTH: &str = "NOAUTH Authentication required.";

/// Redis's reply to a wrong password (it does not say which of user and password is wrong).
pub(super) const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value`.
pub(super) fn client(args: &[Bytes], session: &mut Session) -> Reply {
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
pub(super) fn valid_client_name(name: &Bytes) -> Result<Option<Bytes>, Reply> {
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

/// `AUTH [user] password`: only the `default` user exists, as in a Redis without ACLs.
pub(super) fn auth(
    session: &mut Session,
    settings: &Settings,
    user: Option<&Bytes>,
    given: &Bytes,
) -> Reply {
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
pub(super) fn debug(args: &[Bytes], settings: &Settings) -> Plan {
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

/// `HELLO [protover [AUTH user password] [SETNAME name]]`.
pub(super) fn hello(args: &[Bytes], session: &mut Session, settings: &Settings) -> Plan {
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
