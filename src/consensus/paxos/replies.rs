//! A replica's reply cache (Raft's §6.3): the answer to a request applied here, kept for a
//! while, so that a retry of it — decided again, and not applied again
//! ([`super::log::ReplicaLog`]) — gets its answer.
//!
//! Why it is needed: the proxy retries a request until one replica answers it. If every
//! replica applied it but every answer was lost (the proxy's links failed at that moment),
//! the retry is a duplicate everywhere, and without a cache nobody would answer it again: the
//! client would get a timeout for a request that took effect. With the cache, the duplicate is
//! answered with what the request returned the first time, never by applying it again.
//!
//! The cache is bounded ([`MAX_REPLIES`], [`MAX_REPLY_BYTES`]) and forgets the oldest answers
//! first: a retry comes half a second after its request, so only a store answering more
//! requests than the bound in that time misses, and a miss leaves the retry unanswered — as
//! it was before the cache — not answered wrongly.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use crate::protocol::{KVSResponse, KVSResult};

/// The most answers a replica keeps.
pub const MAX_REPLIES: usize = 262_144;
/// The most bytes of answers a replica keeps (values read, mostly).
pub const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// What reaches the cache, in the order the replica produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The store answered a request it applied: it goes to the proxy, and is kept.
    Fresh(KVSResponse<Bytes>),
    /// A retry of request `.1` of client `.0`, applied before: answer it again, if kept.
    Again(u64, u64),
}

/// Recent answers, by client and request (see the module docs).
#[derive(Clone, Debug, Default)]
pub struct ReplyCache {
    /// The answers kept.
    pub kept: HashMap<(u64, u64), KVSResponse<Bytes>>,
    /// Their order, oldest first, with the bytes each holds.
    pub order: VecDeque<((u64, u64), usize)>,
    /// Bytes held.
    pub bytes: usize,
}

impl ReplyCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// What goes to the proxy for `answer`: a fresh answer (and it is kept), or a kept one
    /// again.
    pub fn answer(&mut self, answer: Answer) -> Option<KVSResponse<Bytes>> {
        match answer {
            Answer::Fresh(response) => {
                // The log applies each request once, so each is answered fresh once.
                let id = (response.client, response.request);
                if self.kept.insert(id, response.clone()).is_none() {
                    let size = response_bytes(&response.result);
                    self.order.push_back((id, size));
                    self.bytes += size;
                }
                while self.order.len() > MAX_REPLIES || self.bytes > MAX_REPLY_BYTES {
                    let Some((oldest, size)) = self.order.pop_front() else {
                        break;
                    };
                    self.kept.remove(&oldest);
                    self.bytes -= size;
                }
                Some(response)
            }
            Answer::Again(client, request) => self.kept.get(&(client, request)).cloned(),
        }
    }

    /// Answers kept.
    pub fn len(&self) -> usize {
        self.kept.len()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.kept.is_empty()
    }
}

/// About what `result` holds, in bytes.
fn response_bytes(result: &KVSResult<Bytes>) -> usize {
    64 + match result {
        KVSResult::Value(v) => v.len(),
        KVSResult::Siblings(vs) | KVSResult::Versioned(_, vs) => vs.iter().map(Bytes::len).sum(),
        KVSResult::Error(e) => e.len(),
        KVSResult::Transaction(results) => results.iter().map(response_bytes).sum(),
        KVSResult::Scanned(_, keys) => keys.iter().map(Bytes::len).sum(),
        KVSResult::Snapshot(log, store) => log.len() + store.len(),
        KVSResult::Ok | KVSResult::NotFound | KVSResult::Integer(_) | KVSResult::Aborted => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(client: u64, request: u64, value: &'static str) -> KVSResponse<Bytes> {
        KVSResponse {
            client,
            request,
            result: KVSResult::Value(Bytes::from_static(value.as_bytes())),
        }
    }

    /// A retry of an applied request is answered with what it returned the first time; one
    /// never answered here gets nothing.
    #[test]
    fn a_retry_gets_the_first_answer_again() {
        let mut cache = ReplyCache::new();
        let first = response(1, 7, "seven");
        assert_eq!(
            cache.answer(Answer::Fresh(first.clone())),
            Some(first.clone())
        );
        assert_eq!(cache.answer(Answer::Again(1, 7)), Some(first));
        assert_eq!(cache.answer(Answer::Again(1, 8)), None);
        assert_eq!(cache.answer(Answer::Again(2, 7)), None);
    }

    /// The cache keeps at most `MAX_REPLIES` answers and `MAX_REPLY_BYTES` bytes, forgetting
    /// the oldest first.
    #[test]
    fn the_oldest_answers_are_forgotten_past_the_bounds() {
        let mut cache = ReplyCache::new();
        for request in 0..MAX_REPLIES as u64 + 10 {
            cache.answer(Answer::Fresh(response(1, request, "v")));
        }
        assert_eq!(cache.len(), MAX_REPLIES);
        assert_eq!(cache.answer(Answer::Again(1, 9)), None);
        assert!(cache.answer(Answer::Again(1, 10)).is_some());
        // One large answer pushes out as many as its bytes need.
        let big = KVSResponse {
            client: 2,
            request: 0,
            result: KVSResult::Value(Bytes::from(vec![0u8; MAX_REPLY_BYTES / 2])),
        };
        cache.answer(Answer::Fresh(big));
        assert!(cache.bytes <= MAX_REPLY_BYTES);
        assert!(cache.answer(Answer::Again(2, 0)).is_some());
        assert!(cache.len() < MAX_REPLIES);
    }
}
