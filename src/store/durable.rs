//! A single copy's store kept on disk: the [`LwwStore`] of Local and of each shard, with
//! every change written to the process's log (see [`crate::durability`]) before the answer
//! that follows it leaves.
//!
//! **What is logged.** Not the commands but their effect on the state ([`Change`]): a key's
//! new stamped value (a tombstone for a delete or an expiry), a key's new deadline, or a
//! flush. Replaying effects needs none of what decided them — the clock, the time, a
//! transaction's watches — so a log replays to exactly the state that was acknowledged,
//! whatever the commands were. A snapshot is the store's image ([`LwwStore::image`]).
//!
//! A store whose process has no data directory logs nothing and copies nothing.

use crate::protocol::{KVSRequest, KVSResponse, Key};
use crate::store::kvs_core::{LwwStore, StringValue};
use crate::values::Stamp;

/// One change to an [`LwwStore`]'s state, as its log records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// `key` now holds `value` (`None`: a tombstone), written at `stamp`.
    Value {
        /// The key.
        key: Key,
        /// The write's stamp.
        stamp: Stamp,
        /// The value's bytes, or `None` for a tombstone.
        value: Option<bytes::Bytes>,
    },
    /// `key`'s deadline is now `at` (`None`: it has none).
    Deadline {
        /// The key.
        key: Key,
        /// The deadline, in ms since the epoch.
        at: Option<u64>,
    },
    /// Every key is gone.
    Flush,
}

/// An [`LwwStore`] that a single copy serves from, logging its changes when the process
/// keeps a journal.
pub struct LoggedStore<V> {
    store: LwwStore<V>,
    logging: bool,
}

impl<V: Clone + Ord + std::hash::Hash + StringValue> LoggedStore<V> {
    /// The store, rebuilt from this process's data directory if it has one (its snapshot,
    /// then every change logged after it); empty otherwise. A process whose files cannot be
    /// read ends, saying why (see [`crate::durability::open`]).
    pub fn open() -> Self {
        let mut store = LwwStore::single_copy();
        let recovered = crate::durability::open(crate::durability::Owner::Store, |item| {
            match item {
                crate::durability::Replayed::Snapshot(image) => store.restore(image)?,
                crate::durability::Replayed::Record(record) => {
                    let change: Change = bincode::deserialize(record)
                        .map_err(|e| format!("a record cannot be read: {e}"))?;
                    store.replay(change);
                }
            }
            Ok(())
        });
        let logging = recovered.is_some();
        if logging {
            store.forget_watches();
            store.keep_changes();
        }
        Self { store, logging }
    }

    /// Answers `request`, logging what it changed; compacts the log into a snapshot once
    /// it has grown past its bound.
    pub fn answer(&mut self, request: KVSRequest<V>) -> KVSResponse<V> {
        let response = self.store.answer(request);
        if self.logging {
            for change in self.store.take_changes() {
                // Encoding a change of plain bytes and integers cannot fail.
                if let Ok(record) = bincode::serialize(&change) {
                    crate::durability::append(&record);
                }
            }
            if crate::durability::snapshot_due() {
                match self.store.image() {
                    Ok(image) => crate::durability::snapshot(&image),
                    Err(e) => eprintln!("kvs-zoo: no snapshot: {e}"),
                }
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::membership::ShardId;
    use crate::protocol::{Expiry, KVSOperation, KVSResult};

    fn op() -> impl Strategy<Value = KVSOperation<Bytes>> {
        let key = (0u8..6).prop_map(|k| Bytes::from(vec![b'k', k]));
        let value = (0u8..50).prop_map(|v| Bytes::from(v.to_string()));
        prop_oneof![
            (key.clone(), value.clone()).prop_map(|(k, v)| KVSOperation::Put(k, v)),
            key.clone().prop_map(KVSOperation::Delete),
            (key.clone(), -5i64..5).prop_map(|(k, d)| KVSOperation::Add(k, d)),
            (key.clone(), value.clone()).prop_map(|(k, v)| KVSOperation::Append(k, v)),
            (key.clone(), 0u64..3_000).prop_map(|(k, d)| KVSOperation::ExpireAt(k, d)),
            key.clone().prop_map(KVSOperation::Persist),
            (key.clone(), value, 0u64..3_000)
                .prop_map(|(k, v, d)| { KVSOperation::PutExpiring(k, v, None, Expiry::At(d)) }),
            Just(KVSOperation::Flush(ShardId(0))),
            key.prop_map(KVSOperation::Get),
        ]
    }

    fn request(i: u64, at: u64, op: KVSOperation<Bytes>) -> KVSRequest<Bytes> {
        KVSRequest {
            at,
            client: 1,
            request: i,
            op,
        }
    }

    proptest! {
        /// Replaying the changes a store logged, from an empty store, rebuilds it exactly:
        /// every later operation is answered alike.
        #[test]
        fn replaying_the_changes_rebuilds_the_store(
            ops in prop::collection::vec((op(), 0u64..100), 1..80),
            probes in prop::collection::vec(op(), 1..20),
        ) {
            let mut original = LwwStore::<Bytes>::single_copy();
            original.keep_changes();
            let mut log = vec![];
            let mut at = 0;
            for (i, (op, step)) in ops.into_iter().enumerate() {
                at += step;
                original.answer(request(i as u64, at, op));
                for change in original.take_changes() {
                    log.push(bincode::serialize(&change).unwrap());
                }
            }
            let mut rebuilt = LwwStore::<Bytes>::single_copy();
            for record in &log {
                rebuilt.replay(bincode::deserialize(record).unwrap());
            }
            for (i, probe) in probes.into_iter().enumerate() {
                let ttl = match &probe {
                    KVSOperation::Get(k) | KVSOperation::Delete(k) => Some(k.clone()),
                    _ => None,
                };
                let a = original.answer(request(1000 + i as u64, at, probe.clone()));
                let b = rebuilt.answer(request(1000 + i as u64, at, probe));
                prop_assert_eq!(a, b);
                if let Some(k) = ttl {
                    let a = original.answer(request(0, at, KVSOperation::Ttl(k.clone())));
                    let b = rebuilt.answer(request(0, at, KVSOperation::Ttl(k)));
                    prop_assert_eq!(&a, &b);
                    prop_assert!(!matches!(a.result, KVSResult::Error(_)));
                }
            }
            prop_assert_eq!(original.image(), rebuilt.image());
        }
    }
}
