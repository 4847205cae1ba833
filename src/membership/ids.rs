//! Names for members and shards. Both are small numbers, and a bare `u32` let one pass for the
//! other (`GetAt(member, …)` beside `Count(shard)`); each has a type of its own instead.

use std::fmt;

/// A storage member's id: its index in its Hydro cluster (`0..shards × replicas`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct MemberId(pub u32);

/// A shard's id: its index on the consistent-hash ring (`0..shards`).
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
)]
pub struct ShardId(pub u32);

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ShardId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
