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

/// Consecutive members `start..end`: the members of one shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberRange {
    /// The first member.
    pub start: MemberId,
    /// One past the last member.
    pub end: MemberId,
}

impl MemberRange {
    /// True if `member` is one of these.
    pub fn contains(&self, member: &MemberId) -> bool {
        (self.start..self.end).contains(member)
    }

    /// The members, one by one.
    pub fn iter(&self) -> std::iter::Map<std::ops::Range<u32>, fn(u32) -> MemberId> {
        (self.start.0..self.end.0).map(MemberId)
    }
}

impl IntoIterator for MemberRange {
    type Item = MemberId;
    type IntoIter = std::iter::Map<std::ops::Range<u32>, fn(u32) -> MemberId>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// So a map keyed by member can be asked for one shard's members (`BTreeMap::range`).
impl std::ops::RangeBounds<MemberId> for MemberRange {
    fn start_bound(&self) -> std::ops::Bound<&MemberId> {
        std::ops::Bound::Included(&self.start)
    }

    fn end_bound(&self) -> std::ops::Bound<&MemberId> {
        std::ops::Bound::Excluded(&self.end)
    }
}
