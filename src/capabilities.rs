//! What a store can honestly do, as data: which of the operations that need a guarantee it
//! keeps, so the edge, `INFO` and the client suite ask the architecture rather than match on
//! its name.
//!
//! This module imports nothing from the crate.

/// What a store can honestly do (see the README's command matrix for the whole column).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// One copy of each key serves every operation on it — a single node, a key's one shard,
    /// or one log every replica applies in order. Then read-modify-write (`APPEND`, `SETNX`,
    /// `CAS`), expiry and `WATCH` are safe; replicas that accept writes independently refuse
    /// them.
    pub one_copy_per_key: bool,
    /// Values are causal (vector clocks, siblings): `GETCTX` and `SETCTX` work.
    pub causal_values: bool,
    /// Operations are ordered by consensus: `INFO` shows the leader (`# Paxos`) and no ring.
    pub consensus: bool,
}

impl Capabilities {
    /// One copy of each key serves it, by one process or one shard, in arrival order.
    pub const ONE_COPY: Self = Self {
        one_copy_per_key: true,
        causal_values: false,
        consensus: false,
    };

    /// Replicas that accept writes independently and merge causal values.
    pub const CAUSAL_REPLICAS: Self = Self {
        one_copy_per_key: false,
        causal_values: true,
        consensus: false,
    };

    /// Replicas that apply one log, ordered by consensus: one copy of each key in effect.
    pub const ORDERED_LOG: Self = Self {
        one_copy_per_key: true,
        causal_values: false,
        consensus: true,
    };

    /// The capabilities as `name=0|1` words, for an environment variable or a client script.
    pub fn to_words(&self) -> String {
        format!(
            "one_copy_per_key={} causal_values={} consensus={}",
            u8::from(self.one_copy_per_key),
            u8::from(self.causal_values),
            u8::from(self.consensus)
        )
    }

    /// Reads what [`Capabilities::to_words`] wrote.
    pub fn from_words(words: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for word in words.split_whitespace() {
            let (name, value) = word
                .split_once('=')
                .ok_or_else(|| format!("capability '{word}' is not name=0|1"))?;
            let value = match value {
                "0" => false,
                "1" => true,
                _ => return Err(format!("capability '{word}' is not name=0|1")),
            };
            match name {
                "one_copy_per_key" => out.one_copy_per_key = value,
                "causal_values" => out.causal_values = value,
                "consensus" => out.consensus = value,
                _ => return Err(format!("unknown capability '{name}'")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_round_trip_through_words() {
        for bits in 0..8u8 {
            let c = Capabilities {
                one_copy_per_key: bits & 1 != 0,
                causal_values: bits & 2 != 0,
                consensus: bits & 4 != 0,
            };
            assert_eq!(Capabilities::from_words(&c.to_words()), Ok(c));
        }
        assert!(Capabilities::from_words("consensus=yes").is_err());
        assert!(Capabilities::from_words("fast=1").is_err());
    }
}
