//! Consistent hashing: which shard holds a key, and which cluster members make up a shard.
//!
//! **The ring.** Each shard owns `virtual_nodes` points on a 64-bit circle; a key belongs to
//! the shard owning the first point at or after the key's hash (wrapping around). Many points
//! per shard spread each shard's share of the circle over many small arcs, so shares even
//! out (with one point each, one shard could own half the circle). Adding a shard adds its
//! points: only keys on the arcs they cut move, about 1/(S+1) of them, all to the new shard.
//! Removing a shard hands only *its* arcs to the next points. That is the point of
//! consistent hashing, as opposed to `hash(key) % S`, which moves almost every key when S
//! changes.
//!
//! **A stable hash.** Every process (the proxy routing, the edge answering `KEYSHARD`, a
//! test checking placement) must put a key on the same shard, in every build.
//! `std::hash::DefaultHasher` makes no such promise across Rust releases, so the ring uses
//! [`crate::hashing::stable_hash`], written out and pinned by tests.
//!
//! **The layout.** A sharded deployment is one Hydro cluster of `shards × replicas` members
//! (see [`Layout`]). [`Shards`] puts the ring and that layout together:
//! [`Shards::locate`] is the one function that says where a key lives, called by the router
//! for every request and by `KEYSHARD` for a curious client alike.

use std::sync::OnceLock;

use crate::hashing::{mix, stable_hash};
use crate::membership::ids::MemberRange;
pub use crate::membership::layout::{
    DEFAULT_VIRTUAL_NODES, ENV_REPLICAS_PER_SHARD, ENV_SHARDS, ENV_VIRTUAL_NODES,
};
use crate::membership::{Layout, ShardId};

/// The part of `key` that places it: as in Redis Cluster, the text between the first `{` and
/// the first `}` after it, when that is not empty; otherwise the whole key. So `{user:7}:name`
/// and `{user:7}:email` live on one shard, and a transaction (or an MSET) over both can be
/// applied there atomically.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// A consistent-hash ring of shards with virtual nodes (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HashRing {
    /// Every shard's points, sorted by position; ties broken by shard id, so the order is a
    /// function of the shard set alone.
    points: Vec<(u64, u32)>,
}

impl HashRing {
    /// A ring of shards `0..shards`, each with `virtual_nodes` points.
    pub fn new(shards: u32, virtual_nodes: u32) -> Self {
        Self::of(0..shards, virtual_nodes)
    }

    /// A ring of the given shard ids (not necessarily contiguous: a ring a shard was
    /// removed from), each with `virtual_nodes` points (at least one).
    pub fn of(shards: impl IntoIterator<Item = u32>, virtual_nodes: u32) -> Self {
        let mut points: Vec<(u64, u32)> = shards
            .into_iter()
            .flat_map(|shard| {
                (0..virtual_nodes.max(1)).map(move |vnode| (point(shard, vnode), shard))
            })
            .collect();
        points.sort_unstable();
        points.dedup();
        Self { points }
    }

    /// The shard holding `key`; `None` only for a ring without shards. A key with a hash tag
    /// is placed by its tag alone (see [`hash_tag`]).
    pub fn shard_of(&self, key: &[u8]) -> Option<u32> {
        let hash = stable_hash(hash_tag(key));
        let at = self.points.partition_point(|&(p, _)| p < hash);
        // Past the last point, the circle wraps to the first.
        self.points
            .get(at)
            .or_else(|| self.points.first())
            .map(|&(_, shard)| shard)
    }

    /// The fraction of the hash circle each shard owns (what share of keys it can expect),
    /// by shard id.
    pub fn shares(&self) -> Vec<(u32, f64)> {
        let mut owned: std::collections::BTreeMap<u32, u128> = Default::default();
        for (i, &(position, shard)) in self.points.iter().enumerate() {
            // A point owns the arc from the previous point (exclusive) up to itself.
            let previous = match i.checked_sub(1) {
                Some(j) => self.points[j].0,
                None => self.points.last().map_or(0, |&(p, _)| p),
            };
            let arc = if i == 0 {
                // Wraps: from the last point round to this one.
                (u128::from(u64::MAX) - u128::from(previous)) + u128::from(position) + 1
            } else {
                u128::from(position - previous)
            };
            *owned.entry(shard).or_default() += arc;
        }
        let circle = 1u128 << 64;
        owned
            .into_iter()
            .map(|(shard, arc)| (shard, arc as f64 / circle as f64))
            .collect()
    }
}

/// Where virtual node `vnode` of `shard` sits on the circle.
fn point(shard: u32, vnode: u32) -> u64 {
    mix(mix(u64::from(shard) ^ 0x7368_6172_6421_0000) ^ u64::from(vnode))
}

/// A [`Layout`] with its ring built: the answer to "where does this key live?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shards {
    layout: Layout,
    ring: HashRing,
}

/// Where a key lives: its shard and that shard's members.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The shard the ring names.
    pub shard: ShardId,
    /// The members holding the shard's keys.
    pub members: MemberRange,
}

impl Shards {
    /// Builds the ring of `layout`.
    pub fn new(layout: Layout) -> Self {
        Self {
            ring: HashRing::new(layout.shards, layout.virtual_nodes),
            layout,
        }
    }

    /// The shards of this process's [`Layout`] (from its environment), built once.
    pub fn current() -> &'static Shards {
        static CURRENT: OnceLock<Shards> = OnceLock::new();
        CURRENT.get_or_init(|| Shards::new(Layout::current()))
    }

    /// The layout.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The ring.
    pub fn ring(&self) -> &HashRing {
        &self.ring
    }

    /// Where `key` lives. The router routes by it and `KEYSHARD` reports it: one function, so
    /// the two cannot disagree.
    pub fn locate(&self, key: &[u8]) -> Location {
        let shard = ShardId(self.ring.shard_of(key).unwrap_or(0));
        Location {
            shard,
            members: self.layout.members_of(shard),
        }
    }

    /// The `# Ring` section of `INFO`: the layout, and each shard's members and share of the
    /// hash circle.
    pub fn info_section(&self) -> String {
        let Layout {
            shards,
            replicas,
            virtual_nodes,
        } = self.layout;
        let mut out = format!(
            "# Ring\r\nshards:{shards}\r\nreplicas_per_shard:{replicas}\r\nvirtual_nodes:{virtual_nodes}\r\nhash:fnv1a64+splitmix64\r\n"
        );
        for (shard, share) in self.ring.shares() {
            let members = self.layout.members_of(ShardId(shard)).into_iter();
            let members: Vec<String> = members.map(|m| m.to_string()).collect();
            out.push_str(&format!(
                "shard{shard}:members={},share={share:.4}\r\n",
                members.join("+")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::membership::MemberId;

    const KEYS: u32 = 1_000_000;

    fn key(i: u32) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    /// Every key's shard in `ring`, for the first `KEYS` keys.
    fn placement(ring: &HashRing) -> Vec<u32> {
        (0..KEYS)
            .map(|i| ring.shard_of(&key(i)).expect("ring has shards"))
            .collect()
    }

    #[test]
    fn with_default_virtual_nodes_no_shard_holds_more_than_1_15x_the_mean() {
        for shards in [3u32, 5, 8] {
            let ring = HashRing::new(shards, DEFAULT_VIRTUAL_NODES);
            let mut counts = vec![0u32; shards as usize];
            for shard in placement(&ring) {
                counts[shard as usize] += 1;
            }
            let mean = f64::from(KEYS) / f64::from(shards);
            let max = f64::from(*counts.iter().max().unwrap());
            let min = f64::from(*counts.iter().min().unwrap());
            println!(
                "S={shards}: keys per shard {counts:?}; max {:.3}× mean, min {:.3}× mean",
                max / mean,
                min / mean
            );
            assert!(max / mean <= 1.15, "S={shards}: {counts:?}");
        }
    }

    #[test]
    fn adding_a_shard_moves_about_one_in_s_plus_one_keys_all_to_the_new_shard() {
        for shards in [3u32, 5, 8] {
            let before = placement(&HashRing::new(shards, DEFAULT_VIRTUAL_NODES));
            let after = placement(&HashRing::new(shards + 1, DEFAULT_VIRTUAL_NODES));
            let moved: Vec<_> = (0..before.len())
                .filter(|&i| before[i] != after[i])
                .collect();
            assert!(moved.iter().all(|&i| after[i] == shards));
            let fraction = moved.len() as f64 / f64::from(KEYS);
            let ideal = 1.0 / f64::from(shards + 1);
            println!(
                "S={shards}→{}: {:.4} of keys moved (ideal {ideal:.4})",
                shards + 1,
                fraction
            );
            assert!(
                (fraction - ideal).abs() < 0.25 * ideal,
                "{fraction} vs {ideal}"
            );
        }
    }

    #[test]
    fn removing_a_shard_moves_only_its_keys() {
        let shards = 5u32;
        let before = placement(&HashRing::new(shards, DEFAULT_VIRTUAL_NODES));
        let gone = 2;
        let after = placement(&HashRing::of(
            (0..shards).filter(|&s| s != gone),
            DEFAULT_VIRTUAL_NODES,
        ));
        let mut moved = 0;
        for (b, a) in before.iter().zip(&after) {
            if b != a {
                assert_eq!(*b, gone, "a key of a surviving shard moved");
                moved += 1;
            } else {
                assert_ne!(*a, gone);
            }
        }
        println!(
            "S=5, shard {gone} removed: {moved} keys moved ({:.4}), all of them its own",
            f64::from(moved) / f64::from(KEYS)
        );
        assert_eq!(
            moved,
            before.iter().filter(|&&s| s == gone).count() as u32,
            "every key of the removed shard moved"
        );
    }

    #[test]
    fn keys_with_one_hash_tag_live_on_one_shard() {
        assert_eq!(hash_tag(b"{user:7}:name"), b"user:7");
        assert_eq!(hash_tag(b"a{b}c{d}"), b"b");
        for untagged in [&b"plain"[..], b"{}x", b"{open", b"close}", b"x}{y"] {
            assert_eq!(hash_tag(untagged), untagged);
        }
        let ring = HashRing::new(8, DEFAULT_VIRTUAL_NODES);
        let home = ring.shard_of(b"{user:7}:name");
        for i in 0..100 {
            assert_eq!(
                ring.shard_of(format!("{{user:7}}:field{i}").as_bytes()),
                home
            );
        }
        assert_eq!(
            ring.shard_of(b"user:7"),
            home,
            "the tag alone is placed the same"
        );
    }

    #[test]
    fn shares_cover_the_circle() {
        let ring = HashRing::new(5, 64);
        let total: f64 = ring.shares().iter().map(|(_, s)| s).sum();
        assert!((total - 1.0).abs() < 1e-9, "{total}");
        assert_eq!(ring.shares().len(), 5);
    }

    #[test]
    fn a_shards_members_are_a_contiguous_block() {
        let layout = Layout::sharded(3, 3);
        assert_eq!(layout.members(), 9);
        assert_eq!(
            layout.members_of(ShardId(1)).iter().collect::<Vec<_>>(),
            [MemberId(3), MemberId(4), MemberId(5)]
        );
        assert_eq!(layout.shard_of_member(MemberId(5)), ShardId(1));
        assert_eq!(layout.shard_of_member(MemberId(6)), ShardId(2));
        let shards = Shards::new(layout);
        let place = shards.locate(b"color");
        assert_eq!(place.members, layout.members_of(place.shard));
    }

    #[test]
    fn the_layout_travels_through_the_environment() {
        let layout = Layout {
            shards: 4,
            replicas: 2,
            virtual_nodes: 16,
        };
        let env = layout.to_env();
        let var = |name: &str| env.iter().find(|(n, _)| *n == name).map(|(_, v)| v.clone());
        assert_eq!(Layout::from_vars(var), Ok(layout));
        assert_eq!(Layout::from_vars(|_| None), Ok(Layout::unsharded(1)));
        let err = Layout::from_vars(|name| (name == ENV_SHARDS).then(|| "0".into())).unwrap_err();
        assert!(err.contains(ENV_SHARDS), "{err}");
    }

    #[test]
    fn a_ring_without_shards_places_nothing() {
        assert_eq!(HashRing::of([], 8).shard_of(b"k"), None);
    }
}
