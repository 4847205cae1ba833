//! The deployment's members as the proxy sees them, for `INFO members`.
//!
//! The router's dataflow (see [`crate::routers::replicas`]) publishes a member's status each
//! time it changes — joined, suspected, heard from again, its process id — and the front
//! renders the table when a client asks. It is process-wide state because the front and the
//! dataflow are two parts of one proxy process that share nothing else; it stays small (one
//! entry per member).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// One member's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status {
    alive: bool,
    pid: u32,
}

/// Every member the proxy has heard of, by role and member id.
static MEMBERS: Mutex<BTreeMap<(&'static str, u32), Status>> = Mutex::new(BTreeMap::new());

/// Records that member `member` of `role` is (or is no longer) `alive`, with process id
/// `pid` (0 while unknown).
pub fn publish(role: &'static str, member: u32, alive: bool, pid: u32) {
    let mut members = MEMBERS.lock().unwrap_or_else(|e| e.into_inner());
    members.insert((role, member), Status { alive, pid });
}

/// The `# Members` section: one line per member, `<role><id>:state=<alive|suspected>,pid=<pid>`
/// (as Redis writes `slave0:ip=…,state=online`), or `None` for an architecture without members
/// beyond the proxy.
pub fn section() -> Option<String> {
    let members = MEMBERS.lock().unwrap_or_else(|e| e.into_inner());
    if members.is_empty() {
        return None;
    }
    let mut out = String::from("# Members\r\n");
    for ((role, member), status) in members.iter() {
        let state = if status.alive { "alive" } else { "suspected" };
        // Writing to a String cannot fail.
        let _ = write!(out, "{role}{member}:state={state},pid={}\r\n", status.pid);
    }
    Some(out)
}

/// Parses one line of [`section`] into `(role, member, alive, pid)`; for readers of `INFO`
/// such as `kvs-zoo serve` and the tests.
pub fn parse_line(line: &str) -> Option<(String, u32, bool, u32)> {
    let (name, fields) = line.trim_end().split_once(':')?;
    let digits = name.find(|c: char| c.is_ascii_digit())?;
    let (role, member) = name.split_at(digits);
    let mut alive = None;
    let mut pid = None;
    for field in fields.split(',') {
        match field.split_once('=')? {
            ("state", state) => alive = Some(state == "alive"),
            ("pid", p) => pid = p.parse().ok(),
            _ => {}
        }
    }
    Some((role.to_string(), member.parse().ok()?, alive?, pid?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_members_are_listed_and_parse_back() {
        publish("testrole", 1, true, 4242);
        publish("testrole", 0, false, 77);
        let section = section().expect("members were published");
        let lines: Vec<_> = section
            .lines()
            .filter(|l| l.starts_with("testrole"))
            .collect();
        assert_eq!(
            lines,
            [
                "testrole0:state=suspected,pid=77",
                "testrole1:state=alive,pid=4242"
            ]
        );
        assert_eq!(
            parse_line(lines[1]),
            Some(("testrole".to_string(), 1, true, 4242))
        );
        assert_eq!(parse_line("connected_clients:3"), None);
    }
}
