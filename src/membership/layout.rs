//! How a deployment's storage cluster is cut into shards.
//!
//! A sharded deployment is one Hydro cluster of `shards × replicas` members: member `m`
//! belongs to shard `m / replicas`, so shard `s` is members `s·replicas .. (s+1)·replicas`.
//! Every process of the deployment reads the same layout from its environment (set by the
//! deployment, see [`Layout::to_env`]), so the proxy, the edge and the members agree on it.

use std::sync::OnceLock;

use crate::membership::ids::{MemberId, MemberRange, ShardId};

/// Virtual nodes per shard unless configured otherwise: enough that, over a million keys,
/// the most-loaded of 3, 5 or 8 shards holds under 1.1× the mean (see the balance test), and
/// few enough that the ring (S × 512 points) fits in a few cache-friendly kilobytes.
pub const DEFAULT_VIRTUAL_NODES: u32 = 512;

/// The environment variables that carry a [`Layout`] to every process of a deployment.
pub const ENV_SHARDS: &str = "KVS_ZOO_SHARDS";
/// See [`ENV_SHARDS`].
pub const ENV_REPLICAS_PER_SHARD: &str = "KVS_ZOO_REPLICAS_PER_SHARD";
/// See [`ENV_SHARDS`].
pub const ENV_VIRTUAL_NODES: &str = "KVS_ZOO_VIRTUAL_NODES";

/// How a deployment's storage cluster is cut into shards .
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// How many shards.
    pub shards: u32,
    /// Members per shard, each holding a copy of the shard's keys.
    pub replicas: u32,
    /// Points per shard on the ring.
    pub virtual_nodes: u32,
}

impl Layout {
    /// One shard of `replicas` members: every member may hold every key (Local is
    /// `unsharded(1)`; the replicated store `unsharded(N)`).
    pub fn unsharded(replicas: u32) -> Self {
        Self::sharded(1, replicas)
    }

    /// `shards` shards of `replicas` members each, with the default virtual nodes.
    pub fn sharded(shards: u32, replicas: u32) -> Self {
        Self {
            shards: shards.max(1),
            replicas: replicas.max(1),
            virtual_nodes: DEFAULT_VIRTUAL_NODES,
        }
    }

    /// How many members the storage cluster has.
    pub fn members(&self) -> u32 {
        self.shards.saturating_mul(self.replicas)
    }

    /// The shard member `member` belongs to.
    pub fn shard_of_member(&self, member: MemberId) -> ShardId {
        ShardId(member.0 / self.replicas.max(1))
    }

    /// The members of `shard`.
    pub fn members_of(&self, shard: ShardId) -> MemberRange {
        let first = shard.0.saturating_mul(self.replicas);
        MemberRange {
            start: MemberId(first),
            end: MemberId(first.saturating_add(self.replicas)),
        }
    }

    /// The layout as environment variables, for the deployment to give every process.
    pub fn to_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (ENV_SHARDS, self.shards.to_string()),
            (ENV_REPLICAS_PER_SHARD, self.replicas.to_string()),
            (ENV_VIRTUAL_NODES, self.virtual_nodes.to_string()),
        ]
    }

    /// Reads what [`Self::to_env`] wrote, through `var`. With none of the variables set it is
    /// a single unsharded member (the Local architecture).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let read = |name: &str, default: u32| -> Result<u32, String> {
            match var(name) {
                None => Ok(default),
                Some(text) => text
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}={text:?} is not a positive number")),
            }
        };
        Ok(Self {
            shards: read(ENV_SHARDS, 1)?,
            replicas: read(ENV_REPLICAS_PER_SHARD, 1)?,
            virtual_nodes: read(ENV_VIRTUAL_NODES, DEFAULT_VIRTUAL_NODES)?,
        })
    }

    /// This process's layout, read from its environment. A malformed variable is a bug in
    /// the deployment, which sets them: the process says so and stops rather than routing
    /// keys to the wrong shards.
    pub fn current() -> Layout {
        static CURRENT: OnceLock<Layout> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            Layout::from_vars(|name| std::env::var(name).ok()).unwrap_or_else(|e| {
                eprintln!("kvs-zoo: bad shard layout in the environment: {e}");
                std::process::exit(2)
            })
        })
    }
}
