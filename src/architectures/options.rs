//! The architectures' command-line options: each option's flag, help and parser, written once
//! and shared by every architecture that takes it (the gossip options by both replicated
//! stores, the sharding options by both sharded ones).
//!
//! Every option is a run-time setting: it reaches the processes through their environment,
//! so changing one never rebuilds a process.

use std::time::Duration;

use crate::replication::gossip::flow::GossipSettings;
use crate::replication::gossip::rumor::{Feedback, LossOfInterest};
use crate::store::keyspace::POSITION_BITS;

/// One option an architecture takes, as `--help` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OptionHelp {
    /// The flag, e.g. `--replicas`.
    pub flag: &'static str,
    /// What its value looks like, e.g. `<N>`.
    pub value: &'static str,
    /// What it does.
    pub help: &'static str,
}

/// The most shards a store may have: a `SCAN` cursor names its shard in its top bits.
pub const MAX_SHARDS: u32 = 1 << (64 - POSITION_BITS);

/// The sharded stores' options.
pub const SHARDING: &[OptionHelp] = &[
    OptionHelp {
        flag: "--shards",
        value: "<S>",
        help: "how many shards (at most 256)",
    },
    OptionHelp {
        flag: "--virtual-nodes",
        value: "<V>",
        help: "points per shard on the hash ring",
    },
];

/// The replicated stores' replica count.
pub const REPLICAS: OptionHelp = OptionHelp {
    flag: "--replicas",
    value: "<N>",
    help: "how many replicas (per shard)",
};

/// The replicated stores' gossip options.
pub const GOSSIP: &[OptionHelp] = &[
    OptionHelp {
        flag: "--gossip-interval",
        value: "<T>",
        help: "how often replicas push hot rumors",
    },
    OptionHelp {
        flag: "--anti-entropy-interval",
        value: "<T>",
        help: "how often a replica compares digests with a peer",
    },
    OptionHelp {
        flag: "--fanout",
        value: "<N>",
        help: "peers each rumor goes to per round",
    },
    OptionHelp {
        flag: "--rumor-k",
        value: "<K>",
        help: "interest lost after K contacts, or with chance 1/K",
    },
    OptionHelp {
        flag: "--rumor-feedback",
        value: "<MODE>",
        help: "feedback (count contacts with peers that already had it) or blind",
    },
    OptionHelp {
        flag: "--rumor-loss",
        value: "<MODE>",
        help: "counter or coin",
    },
];

/// The error for a value `flag` cannot take.
pub fn bad(flag: &str, value: &str) -> String {
    format!("bad {flag} '{value}'")
}

/// A number above zero, or the error saying `flag` cannot take `value`.
pub fn positive<N: std::str::FromStr + PartialOrd + Default>(
    flag: &str,
    value: &str,
) -> Result<N, String> {
    value
        .parse()
        .ok()
        .filter(|n| *n > N::default())
        .ok_or_else(|| bad(flag, value))
}

/// `1048576`, `64kb`, `64mb`, `1gb` (powers of 1024, as Redis reads `kb`/`mb`/`gb`); not zero.
pub fn parse_bytes(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let (digits, unit) = [("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10)]
        .into_iter()
        .find_map(|(suffix, unit)| lower.strip_suffix(suffix).map(|d| (d, unit)))
        .unwrap_or((&lower, 1));
    digits
        .parse::<usize>()
        .ok()?
        .checked_mul(unit)
        .filter(|n| *n > 0)
}

/// `5` or `5s` (seconds, fractions allowed) or `500ms`; more than zero, at most a day.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1e-3),
        None => (text.strip_suffix('s').unwrap_or(text), 1.0),
    };
    let seconds = number.parse::<f64>().ok()? * scale;
    Duration::try_from_secs_f64(seconds)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(86_400))
}

/// A duration as [`parse_duration`] reads it: `1s`, `50ms`.
pub fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// Sets one sharding option (see [`SHARDING`]).
pub fn set_sharding(
    shards: &mut u32,
    virtual_nodes: &mut u32,
    flag: &str,
    value: &str,
) -> Result<(), String> {
    match flag {
        "--shards" => {
            let s = positive(flag, value)?;
            if s > MAX_SHARDS {
                return Err(format!("--shards is at most {MAX_SHARDS}"));
            }
            *shards = s;
        }
        "--virtual-nodes" => *virtual_nodes = positive(flag, value)?,
        _ => return Err(format!("unknown option '{flag}'")),
    }
    Ok(())
}

/// The value of one sharding option.
pub fn sharding_value(shards: u32, virtual_nodes: u32, flag: &str) -> Option<String> {
    match flag {
        "--shards" => Some(shards.to_string()),
        "--virtual-nodes" => Some(virtual_nodes.to_string()),
        _ => None,
    }
}

/// Sets one gossip option (see [`GOSSIP`]).
pub fn set_gossip(gossip: &mut GossipSettings, flag: &str, value: &str) -> Result<(), String> {
    let duration = || {
        let d = parse_duration(value).ok_or_else(|| bad(flag, value))?;
        // Gossip timers count whole milliseconds.
        if d < Duration::from_millis(1) {
            return Err(format!("{flag} must be at least 1ms"));
        }
        Ok(d)
    };
    let rumor = &mut gossip.rumor;
    match flag {
        "--gossip-interval" => gossip.interval = duration()?,
        "--anti-entropy-interval" => gossip.anti_entropy_interval = duration()?,
        "--fanout" => rumor.fanout = positive(flag, value)?,
        "--rumor-k" => rumor.k = positive(flag, value)?,
        "--rumor-feedback" => {
            rumor.feedback = match value {
                "feedback" => Feedback::Feedback,
                "blind" => Feedback::Blind,
                _ => return Err(bad(flag, value)),
            }
        }
        "--rumor-loss" => {
            rumor.loss = match value {
                "counter" => LossOfInterest::Counter,
                "coin" => LossOfInterest::Coin,
                _ => return Err(bad(flag, value)),
            }
        }
        _ => return Err(format!("unknown option '{flag}'")),
    }
    Ok(())
}

/// The value of one gossip option, as [`set_gossip`] reads it.
pub fn gossip_value(gossip: &GossipSettings, flag: &str) -> Option<String> {
    let rumor = &gossip.rumor;
    Some(match flag {
        "--gossip-interval" => show_duration(gossip.interval),
        "--anti-entropy-interval" => show_duration(gossip.anti_entropy_interval),
        "--fanout" => rumor.fanout.to_string(),
        "--rumor-k" => rumor.k.to_string(),
        "--rumor-feedback" => match rumor.feedback {
            Feedback::Feedback => "feedback",
            Feedback::Blind => "blind",
        }
        .to_string(),
        "--rumor-loss" => match rumor.loss {
            LossOfInterest::Counter => "counter",
            LossOfInterest::Coin => "coin",
        }
        .to_string(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations_read_as_redis_users_write_them() {
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("64KB"), Some(64 << 10));
        assert_eq!(parse_bytes("1gb"), Some(1 << 30));
        for bad in ["", "0", "mb", "-1", "1.5mb", "99999999999999999999gb"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        assert_eq!(parse_duration("5"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("20ms"), Some(Duration::from_millis(20)));
        for bad in ["", "0", "-1", "x", "2d", "NaN", "1e30"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_shown_duration_reads_back() {
        for d in [Duration::from_secs(1), Duration::from_millis(50)] {
            assert_eq!(parse_duration(&show_duration(d)), Some(d));
        }
    }

    #[test]
    fn every_gossip_option_reads_back_what_it_set() {
        let mut g = GossipSettings::default();
        for (flag, value) in [
            ("--gossip-interval", "20ms"),
            ("--anti-entropy-interval", "2s"),
            ("--fanout", "1"),
            ("--rumor-k", "4"),
            ("--rumor-feedback", "blind"),
            ("--rumor-loss", "coin"),
        ] {
            set_gossip(&mut g, flag, value).unwrap();
            assert_eq!(gossip_value(&g, flag).as_deref(), Some(value), "{flag}");
        }
        assert_eq!(g.interval, Duration::from_millis(20));
        assert_eq!(g.rumor.feedback, Feedback::Blind);
        assert_eq!(
            set_gossip(&mut g, "--gossip-interval", "0.1ms"),
            Err("--gossip-interval must be at least 1ms".into())
        );
        assert_eq!(
            set_gossip(&mut g, "--rumor-loss", "maybe"),
            Err("bad --rumor-loss 'maybe'".into())
        );
    }
}
