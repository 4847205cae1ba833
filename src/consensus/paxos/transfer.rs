//! State transfer: how a replica of the linearizable store that fell behind the log catches
//! up once the slots it lacks are forgotten (see [`super::replica`]).
//!
//! ```text
//!   leader ──Transfer { from, to }──▶ replica `from`: at its point of the log, its log's image
//!                                     (ReplicaLog::image) and its store's (KVSOperation::Snapshot)
//!   replica `from` ──parts of ≤ 16 MiB, in order──▶ replica `to`: assembled, its store restored
//!                                     (KVSOperation::Restore), its log installed
//!                                     (ReplicaLog::install); it goes on from the slots it
//!                                     buffered while the snapshot travelled
//! ```
//!
//! A snapshot travels in parts because a store can be larger than any one message may be
//! (the transport refuses frames over 256 MiB). A link delivers one sender's messages in
//! order, or drops them: a part that does not follow the one before means parts were lost,
//! and that snapshot is abandoned — the leader asks for another while the replica is still
//! behind ([`super::proposer::TRANSFER_RETRY_REPORTS`]).

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::protocol::ClientId;

/// The client id of the requests a replica gives its own store to read or replace its state
/// ([`crate::protocol::KVSOperation::Snapshot`], [`crate::protocol::KVSOperation::Restore`]):
/// the edge numbers its connections from 1 and never reaches it. Their answers stay among
/// the replicas; none goes to the proxy.
pub const TRANSFER_CLIENT: ClientId = u64::MAX;

/// The most bytes of a snapshot in one message: far below the transport's frame limit, and
/// small enough that a part does not hold a link up for long.
pub const PART_BYTES: usize = 16 * 1024 * 1024;

/// One part of a snapshot on its way to a replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// Which snapshot of the sender's this is part of.
    pub id: u64,
    /// This part's place, from 0.
    pub index: u32,
    /// How many parts the snapshot has.
    pub count: u32,
    /// The part's bytes.
    pub bytes: Bytes,
}

/// A whole snapshot, as one replica sends it to another: the log's image and the store's,
/// each encoded, at one point of the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The log's image ([`super::log::LogImage`]), encoded.
    pub log: Bytes,
    /// The store's state ([`crate::store::kvs_core::StoreImage`]), encoded.
    pub store: Bytes,
}

/// `snapshot`, encoded and cut into parts of at most `part_bytes` (always at least one).
pub fn split(id: u64, snapshot: &Snapshot, part_bytes: usize) -> Result<Vec<Part>, String> {
    let encoded = Bytes::from(
        bincode::serialize(snapshot)
            .map_err(|e| format!("a snapshot could not be encoded: {e}"))?,
    );
    let part_bytes = part_bytes.max(1);
    let count = encoded.len().div_ceil(part_bytes).max(1);
    let count = u32::try_from(count).map_err(|_| "a snapshot of too many parts".to_string())?;
    Ok((0..count)
        .map(|index| {
            let start = index as usize * part_bytes;
            let end = (start + part_bytes).min(encoded.len());
            Part {
                id,
                index,
                count,
                bytes: encoded.slice(start..end),
            }
        })
        .collect())
}

/// `snapshot`'s parts, each addressed to replica `to` (none, with a line on stderr, if it
/// cannot be encoded).
pub fn parts_for(to: u32, id: u64, snapshot: &Snapshot) -> Vec<(u32, Part)> {
    match split(id, snapshot, PART_BYTES) {
        Ok(parts) => {
            eprintln!(
                "kvs-zoo: sending replica {to} a snapshot of {} bytes in {} parts",
                snapshot.log.len() + snapshot.store.len(),
                parts.len()
            );
            parts.into_iter().map(|part| (to, part)).collect()
        }
        Err(e) => {
            eprintln!("kvs-zoo: {e}");
            Vec::new()
        }
    }
}

/// What one sender's snapshot has delivered so far.
#[derive(Clone, Debug, Default)]
pub struct Assembly {
    /// The snapshot's id.
    pub id: u64,
    /// The index of the next part expected.
    pub next: u32,
    /// The bytes received, in order.
    pub bytes: Vec<u8>,
}

/// Snapshots arriving at a replica, one per sender at most.
#[derive(Clone, Debug, Default)]
pub struct Incoming {
    /// Per sender, the snapshot it is sending.
    pub from: BTreeMap<u32, Assembly>,
}

impl Incoming {
    /// Nothing arriving.
    pub fn new() -> Self {
        Self::default()
    }

    /// `part` arrived from replica `from`. Returns the snapshot once its last part is in;
    /// `Err` when the parts make no snapshot (one was lost, or the bytes are not one).
    pub fn add(&mut self, from: u32, part: Part) -> Result<Option<Snapshot>, String> {
        if part.index == 0 {
            // A new snapshot from this sender replaces one it had not finished.
            self.from.insert(
                from,
                Assembly {
                    id: part.id,
                    next: 0,
                    bytes: Vec::new(),
                },
            );
        }
        let Some(assembly) = self.from.get_mut(&from) else {
            return Err(format!(
                "part {} of a snapshot from replica {from}, whose first part was lost",
                part.index
            ));
        };
        if assembly.id != part.id || assembly.next != part.index {
            self.from.remove(&from);
            return Err(format!(
                "a part of the snapshot from replica {from} was lost: abandoned"
            ));
        }
        assembly.bytes.extend_from_slice(&part.bytes);
        assembly.next += 1;
        if assembly.next < part.count {
            return Ok(None);
        }
        let bytes = self.from.remove(&from).map(|a| a.bytes).unwrap_or_default();
        bincode::deserialize(&bytes)
            .map(Some)
            .map_err(|e| format!("the snapshot from replica {from} could not be read: {e}"))
    }

    /// Bytes held for snapshots not yet complete.
    pub fn held(&self) -> usize {
        self.from.values().map(|a| a.bytes.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(size: usize) -> Snapshot {
        Snapshot {
            log: Bytes::from_static(b"log"),
            store: Bytes::from((0..size).map(|i| i as u8).collect::<Vec<u8>>()),
        }
    }

    #[test]
    fn a_snapshot_travels_in_parts_no_larger_than_the_bound() {
        let sent = snapshot(10_000);
        let parts = split(7, &sent, 1_000).unwrap();
        assert_eq!(
            parts.len(),
            11,
            "10,000 bytes and the framing, in parts of 1,000"
        );
        assert!(
            parts
                .iter()
                .all(|p| p.bytes.len() <= 1_000 && p.count == 11)
        );
        let mut incoming = Incoming::new();
        let mut got = None;
        for part in parts {
            assert!(got.is_none(), "complete before its last part");
            got = incoming.add(2, part).unwrap();
        }
        assert_eq!(got, Some(sent));
        assert_eq!(incoming.held(), 0);
    }

    #[test]
    fn a_small_snapshot_is_one_part() {
        let parts = split(1, &snapshot(0), PART_BYTES).unwrap();
        assert_eq!(parts.len(), 1);
        assert!(Incoming::new().add(0, parts[0].clone()).unwrap().is_some());
    }

    /// A lost part abandons that snapshot, and nothing of it is kept; the next one the
    /// sender starts is assembled from scratch.
    #[test]
    fn a_snapshot_missing_a_part_is_abandoned() {
        let parts = split(1, &snapshot(5_000), 1_000).unwrap();
        let mut incoming = Incoming::new();
        incoming.add(0, parts[0].clone()).unwrap();
        assert!(incoming.add(0, parts[2].clone()).is_err());
        assert_eq!(incoming.held(), 0);
        assert!(
            incoming.add(0, parts[3].clone()).is_err(),
            "nothing to continue"
        );
        let again = split(2, &snapshot(5_000), 1_000).unwrap();
        let results: Vec<_> = again
            .into_iter()
            .map(|p| incoming.add(0, p).unwrap())
            .collect();
        assert!(results.last().unwrap().is_some());
    }

    /// Two senders' snapshots (the leader asked again, another replica answered) arrive
    /// interleaved: each is assembled from its own parts.
    #[test]
    fn snapshots_from_two_senders_do_not_mix() {
        let (a, b) = (snapshot(3_000), snapshot(4_000));
        let (pa, pb) = (split(1, &a, 1_000).unwrap(), split(1, &b, 1_000).unwrap());
        let mut incoming = Incoming::new();
        let mut done = Vec::new();
        for i in 0..pa.len().max(pb.len()) {
            for (from, parts) in [(0, &pa), (1, &pb)] {
                if let Some(part) = parts.get(i)
                    && let Some(s) = incoming.add(from, part.clone()).unwrap()
                {
                    done.push((from, s));
                }
            }
        }
        assert_eq!(done, vec![(0, a), (1, b)]);
    }
}
