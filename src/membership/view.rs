//! The deployment's members as the proxy sees them, for `INFO members`.
//!
//! The router's dataflow (see [`crate::routing::cluster`]) publishes a member's status each
//! time it changes — joined, suspected, heard from again, its process id — and the front
//! renders the table when a client asks. It is process-wide state because the front and the
//! dataflow are two parts of one proxy process that share nothing else; it stays small (one
//! entry per member).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

use crate::membership::liveness::{Beat, Standing};

/// One member's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Status {
    alive: bool,
    beat: Beat,
}

/// Every member the proxy has heard of, by role and member id.
static MEMBERS: Mutex<BTreeMap<(&'static str, u32), Status>> = Mutex::new(BTreeMap::new());

/// Records that member `member` of `role` is (or is no longer) `alive`, and what its last
/// heartbeat said (zeros while none has come).
pub fn publish(role: &'static str, member: u32, alive: bool, beat: Beat) {
    let mut members = MEMBERS.lock().unwrap_or_else(|e| e.into_inner());
    members.insert((role, member), Status { alive, beat });
}

/// The Multi-Paxos leader as the proxy last learned it: (proposer, ballot round).
static LEADER: Mutex<Option<(u32, u64)>> = Mutex::new(None);

/// Records the linearizable store's leader, as the proxy learned it from a heartbeat.
pub fn publish_leader(proposer: u32, round: u64) {
    *LEADER.lock().unwrap_or_else(|e| e.into_inner()) = Some((proposer, round));
}

/// The `# Paxos` section (`leader:<proposer id>`, `ballot:<round>.<proposer id>`), for
/// architectures ordered by Multi-Paxos; `leader:none` until a leader is heard from.
pub fn paxos_section() -> String {
    match *LEADER.lock().unwrap_or_else(|e| e.into_inner()) {
        Some((leader, round)) => {
            format!("# Paxos\r\nleader:{leader}\r\nballot:{round}.{leader}\r\n")
        }
        None => "# Paxos\r\nleader:none\r\n".to_string(),
    }
}

/// The `# Members` section: one line per member,
/// `<role><id>:state=<alive|rejoining|suspected>,pid=<pid>,incarnation=<restarts>,gossip_sent=<messages>`,
/// and `,voting=no` for an acceptor that may not vote (as Redis writes
/// `slave0:ip=…,state=online`), or `None` for an architecture without members beyond the proxy.
pub fn section() -> Option<String> {
    let members = MEMBERS.lock().unwrap_or_else(|e| e.into_inner());
    if members.is_empty() {
        return None;
    }
    let mut out = String::from("# Members\r\n");
    for ((role, member), status) in members.iter() {
        let state = match (status.alive, status.beat.standing) {
            (false, _) => "suspected",
            (true, Standing::Rejoining) => "rejoining",
            (true, _) => "alive",
        };
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "{role}{member}:state={state},pid={},incarnation={},gossip_sent={}",
            status.beat.pid, status.beat.incarnation, status.beat.gossip_sent
        );
        if status.beat.standing == Standing::NotVoting {
            out.push_str(",voting=no");
        }
        if let Some(disk) = status.beat.disk {
            let _ = write!(
                out,
                ",log_bytes={},snapshot_bytes={},last_snapshot={}",
                disk.log_bytes, disk.snapshot_bytes, disk.last_snapshot
            );
        }
        out.push_str("\r\n");
    }
    Some(out)
}

/// The files of every member that keeps some, added up from their last heartbeats, for
/// `INFO persistence`; `None` if no member keeps files.
pub fn disk_totals() -> Option<crate::durability::DiskUse> {
    let members = MEMBERS.lock().unwrap_or_else(|e| e.into_inner());
    members
        .values()
        .filter_map(|status| status.beat.disk)
        .reduce(|a, b| crate::durability::DiskUse {
            log_bytes: a.log_bytes + b.log_bytes,
            snapshot_bytes: a.snapshot_bytes + b.snapshot_bytes,
            last_snapshot: a.last_snapshot.max(b.last_snapshot),
        })
}

/// One member as a line of [`section`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberLine {
    /// Its role (`replica`, …).
    pub role: String,
    /// Its member id.
    pub member: u32,
    /// Whether the proxy sees it alive (`alive` or `rejoining`).
    pub alive: bool,
    /// Whether it is alive but catching up (`rejoining`), so sent no client.
    pub rejoining: bool,
    /// Its process id (0 until its first heartbeat).
    pub pid: u32,
    /// How many times it was restarted (0 until its first heartbeat).
    pub incarnation: u32,
    /// Gossip messages it has sent its peers.
    pub gossip_sent: u64,
    /// False for an acceptor that may not vote (`voting=no`).
    pub voting: bool,
}

/// Parses one line of [`section`]; for readers of `INFO` such as `kvs-zoo serve`, the
/// examples and the tests. Other lines are `None`.
pub fn parse_line(line: &str) -> Option<MemberLine> {
    let (name, fields) = line.trim_end().split_once(':')?;
    let digits = name.find(|c: char| c.is_ascii_digit())?;
    let (role, member) = name.split_at(digits);
    let (mut alive, mut pid, mut incarnation, mut gossip_sent) = (None, None, None, None);
    let (mut voting, mut rejoining) = (true, false);
    for field in fields.split(',') {
        match field.split_once('=')? {
            ("state", state) => {
                alive = Some(state != "suspected");
                rejoining = state == "rejoining";
            }
            ("pid", p) => pid = p.parse().ok(),
            ("incarnation", n) => incarnation = n.parse().ok(),
            ("voting", v) => voting = v != "no",
            ("gossip_sent", n) => gossip_sent = n.parse().ok(),
            _ => {}
        }
    }
    Some(MemberLine {
        role: role.to_string(),
        member: member.parse().ok()?,
        alive: alive?,
        rejoining,
        pid: pid?,
        incarnation: incarnation?,
        gossip_sent: gossip_sent?,
        voting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_members_are_listed_and_parse_back() {
        let beat = |pid, gossip_sent| Beat {
            pid,
            incarnation: u32::from(pid == 77),
            gossip_sent,
            standing: if pid == 77 {
                Standing::NotVoting
            } else {
                Standing::Full
            },
            disk: None,
        };
        publish("testrole", 1, true, beat(4242, 17));
        publish("testrole", 0, false, beat(77, 0));
        let section = section().expect("members were published");
        let lines: Vec<_> = section
            .lines()
            .filter(|l| l.starts_with("testrole"))
            .collect();
        assert_eq!(
            lines,
            [
                "testrole0:state=suspected,pid=77,incarnation=1,gossip_sent=0,voting=no",
                "testrole1:state=alive,pid=4242,incarnation=0,gossip_sent=17"
            ]
        );
        assert_eq!(
            parse_line(lines[1]),
            Some(MemberLine {
                role: "testrole".into(),
                member: 1,
                alive: true,
                rejoining: false,
                pid: 4242,
                incarnation: 0,
                gossip_sent: 17,
                voting: true,
            })
        );
        assert!(!parse_line(lines[0]).unwrap().voting);
        assert_eq!(parse_line("connected_clients:3"), None);
    }
}
