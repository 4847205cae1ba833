//! The failure detector every router shares: members send heartbeats, the proxy counts
//! detector ticks, and a member silent for too many ticks is suspected.
//!
//! HydroDeploy never reports a member as gone, so this is the only way the proxy learns of a
//! failure. A heartbeat from a suspected member brings it back (it was slow, not dead), which
//! is why "suspected" is the honest word: a detector over an asynchronous network cannot tell
//! a dead member from a slow one. The ticks are inputs, not a clock read here, so tests (and
//! Hydro's simulator, which does not simulate timers) drive time by hand.

use std::collections::BTreeMap;

/// What a member's heartbeat says besides "alive": numbers an operator reads in `INFO`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Beat {
    /// The member's process id.
    pub pid: u32,
    /// Which start of the member sent it: 0, then one more at each restart
    /// ([`crate::membership::incarnation()`]).
    pub incarnation: u32,
    /// Gossip messages the member has sent its peers so far (zero for members that do not
    /// gossip).
    pub gossip_sent: u64,
    /// Whether the member takes its full part in the protocol.
    pub standing: Standing,
    /// Its files on disk, if it keeps any (`--data-dir`).
    pub disk: Option<crate::durability::DiskUse>,
}

/// What part a live member takes in its protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Standing {
    /// Its full part.
    #[default]
    Full,
    /// An acceptor restarted without its memory (no data directory, or its files lost): it forgot what it promised, so it must never
    /// vote again (a vote that contradicts a forgotten promise could let two leaders choose
    /// different values for one slot). It is alive, and counts toward no quorum.
    NotVoting,
    /// A replica restarted with an empty store, catching up from its peers: alive, and sent
    /// no client until it has (it would answer reads with what it has not caught up on).
    Rejoining,
}

impl Standing {
    fn code(self) -> u8 {
        match self {
            Standing::Full => 0,
            Standing::NotVoting => 1,
            Standing::Rejoining => 2,
        }
    }

    fn from_code(code: u8) -> Self {
        match code {
            1 => Standing::NotVoting,
            2 => Standing::Rejoining,
            _ => Standing::Full,
        }
    }
}

/// This process's standing, as its heartbeats report it (set by the protocol the member runs,
/// e.g. a rejoining replica's gossip); [`UNSET`] until it is.
static STANDING: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(UNSET);
const UNSET: u8 = u8::MAX;

/// Set (to any value) in the environment of a deployment whose restarted members catch up
/// before they take clients (the replicated stores): such a member's standing is
/// [`Standing::Rejoining`] from its first heartbeat until its protocol says otherwise — its
/// gossip may start a moment after its heartbeats do.
pub const ENV_RESTARTS_REJOINING: &str = "KVS_ZOO_RESTARTS_REJOINING";

/// Sets this process's standing (see [`Standing`]).
pub fn set_standing(standing: Standing) {
    STANDING.store(standing.code(), std::sync::atomic::Ordering::Relaxed);
}

/// This process's standing (see [`set_standing`]; before it is set, [`Standing::Rejoining`]
/// for a restarted member of a deployment that says [`ENV_RESTARTS_REJOINING`], else
/// [`Standing::Full`]).
pub fn standing() -> Standing {
    match STANDING.load(std::sync::atomic::Ordering::Relaxed) {
        UNSET
            if crate::membership::incarnation() > 0
                && std::env::var_os(ENV_RESTARTS_REJOINING).is_some() =>
        {
            Standing::Rejoining
        }
        code => Standing::from_code(code),
    }
}

impl Beat {
    /// This process's beat: its pid, incarnation and [`standing`], and the gossip messages it
    /// sent.
    pub fn now(gossip_sent: u64) -> Self {
        Self {
            pid: std::process::id(),
            incarnation: crate::membership::incarnation(),
            gossip_sent,
            standing: standing(),
            disk: crate::durability::disk_use(),
        }
    }

    /// This acceptor's beat: the standing its protocol set once it opened its memory (see
    /// `Acceptor::open`); until then [`Standing::NotVoting`] once restarted, since a
    /// restarted acceptor votes only once it has read its promises back from its disk.
    pub fn acceptor() -> Self {
        let beat = Self::now(0);
        let standing = if STANDING.load(std::sync::atomic::Ordering::Relaxed) != UNSET {
            beat.standing
        } else if beat.incarnation == 0 {
            Standing::Full
        } else {
            Standing::NotVoting
        };
        Self { standing, ..beat }
    }
}

/// A member as the proxy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberView {
    /// Detector ticks since the member was last heard from.
    pub silent_ticks: u64,
    /// Whether it is taken to be alive (not suspected).
    pub alive: bool,
    /// What its last heartbeat said (zeros until the first one).
    pub beat: Beat,
}

impl MemberView {
    /// Alive, and taking clients: not [`Standing::Rejoining`].
    pub fn serving(&self) -> bool {
        self.alive && self.beat.standing != Standing::Rejoining
    }
}

/// Every member the detector has heard of, keyed by `K` (a member id, or a role and a member
/// id), and whether each is alive.
#[derive(Clone, Debug)]
pub struct Liveness<K> {
    members: BTreeMap<K, MemberView>,
    timeout_ticks: u64,
}

impl<K: Ord + Copy> Liveness<K> {
    /// A detector that suspects a member once it has been silent for more than
    /// `timeout_ticks` ticks (at least one).
    pub fn new(timeout_ticks: u64) -> Self {
        Self {
            members: BTreeMap::new(),
            timeout_ticks: timeout_ticks.max(1),
        }
    }

    /// `member` joined the deployment: it is alive until it falls silent. Returns its view if
    /// it is new.
    pub fn joined(&mut self, member: K) -> Option<MemberView> {
        if self.members.contains_key(&member) {
            return None;
        }
        let view = MemberView {
            silent_ticks: 0,
            alive: true,
            beat: Beat::default(),
        };
        self.members.insert(member, view);
        Some(view)
    }

    /// A heartbeat from `member`: it is alive. Returns its view if what `INFO` shows of it
    /// (alive, its beat) changed.
    pub fn heartbeat(&mut self, member: K, beat: Beat) -> Option<MemberView> {
        let view = MemberView {
            silent_ticks: 0,
            alive: true,
            beat,
        };
        let before = self.members.insert(member, view);
        match before {
            Some(old) if (old.alive, old.beat) == (true, beat) => None,
            _ => Some(view),
        }
    }

    /// One detector tick: returns the members suspected by it, in key order, with their views.
    pub fn tick(&mut self) -> Vec<(K, MemberView)> {
        let mut suspected = vec![];
        for (&member, view) in self.members.iter_mut() {
            view.silent_ticks = view.silent_ticks.saturating_add(1);
            if view.alive && view.silent_ticks > self.timeout_ticks {
                view.alive = false;
                suspected.push((member, *view));
            }
        }
        suspected
    }

    /// True if `member` is known and not suspected.
    pub fn is_alive(&self, member: &K) -> bool {
        self.members.get(member).is_some_and(|v| v.alive)
    }

    /// Every member heard of, with its view, in key order.
    pub fn members(&self) -> &BTreeMap<K, MemberView> {
        &self.members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_is_suspected_only_after_more_than_the_timeout() {
        let mut l = Liveness::new(2);
        assert!(l.joined(7u32).is_some());
        assert!(l.joined(7).is_none(), "joining twice changes nothing");
        assert!(l.tick().is_empty());
        assert!(l.tick().is_empty());
        let suspected = l.tick();
        assert_eq!(suspected.len(), 1);
        assert_eq!(suspected[0].0, 7);
        assert!(!l.is_alive(&7));
        assert!(l.tick().is_empty(), "suspected once, not at every tick");
    }

    #[test]
    fn a_heartbeat_brings_a_suspected_member_back_and_reports_changes_only() {
        let mut l = Liveness::new(1);
        let beat = Beat {
            pid: 42,
            ..Beat::default()
        };
        assert!(
            l.heartbeat(("acceptor", 1u32), beat).is_some(),
            "first beat"
        );
        assert!(l.heartbeat(("acceptor", 1), beat).is_none(), "same beat");
        l.tick();
        l.tick();
        assert!(!l.is_alive(&("acceptor", 1)));
        let back = l.heartbeat(("acceptor", 1), beat).expect("back alive");
        assert!(back.alive);
        assert_eq!(back.beat.pid, 42);
    }
}
