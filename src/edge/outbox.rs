//! A connection's unsent replies, written to the socket in bounded chunks.
//!
//! Replies are encoded as they leave the reply queue, but a large value is never copied into
//! the output: its bytes are already in memory (a stored value, shared by reference count), so
//! the outbox keeps a handle to them and hands the socket a list of slices to write
//! (`write_vectored`). Small replies are encoded into a staging buffer, so a pipeline of short
//! replies still leaves in one write.
//!
//! That is what keeps a slow reader cheap: a client that pipelines a thousand GETs of a 1 MiB
//! value and never reads costs a thousand handles, not a gigabyte of encoded replies, and
//! [`Outbox::len`] still counts every byte it owes the client, which is what the front's
//! output limit is checked against.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};

use crate::edge::resp::{Protocol, Reply, collection_prefix, put_header};

/// Bulk strings at least this long are written from their own memory instead of being copied.
const SHARE_FROM: usize = 4 * 1024;
/// Most slices handed to one `write_vectored` call (Linux accepts 1024; a few dozen fill a
/// socket buffer).
pub const MAX_SLICES: usize = 64;

/// The bytes one connection still has to write, in order.
#[derive(Default)]
pub struct Outbox {
    /// Encoded parts ready to write, oldest first.
    parts: VecDeque<Bytes>,
    /// Small replies being encoded; becomes a part when it is written or a shared part follows.
    staging: BytesMut,
    /// Bytes in `parts` (the staging buffer counts separately).
    queued: usize,
}

impl Outbox {
    /// Appends `reply`'s wire form in `protocol`.
    pub fn push(&mut self, reply: Reply, protocol: Protocol) {
        let prefix = collection_prefix(&reply, protocol);
        match reply {
            Reply::Bulk(b) if b.len() >= SHARE_FROM => {
                put_header(&mut self.staging, b'$', b.len());
                self.seal();
                self.queued += b.len();
                self.parts.push_back(b);
                self.staging.extend_from_slice(b"\r\n");
            }
            Reply::Array(items) | Reply::Set(items) => {
                put_header(&mut self.staging, prefix, items.len());
                for item in items {
                    self.push(item, protocol);
                }
            }
            Reply::Map(pairs) => {
                let n = match protocol {
                    Protocol::Resp3 => pairs.len(),
                    Protocol::Resp2 => 2 * pairs.len(),
                };
                put_header(&mut self.staging, prefix, n);
                for (key, value) in pairs {
                    self.push(key, protocol);
                    self.push(value, protocol);
                }
            }
            other => other.encode_as(protocol, &mut self.staging),
        }
    }

    /// Bytes not yet written.
    pub fn len(&self) -> usize {
        self.queued + self.staging.len()
    }

    /// True when everything has been written.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Moves the staging buffer into the parts list, so it can be written.
    fn seal(&mut self) {
        if !self.staging.is_empty() {
            let part = self.staging.split().freeze();
            self.queued += part.len();
            self.parts.push_back(part);
        }
    }

    /// Points `slices` at the next bytes to write; returns how many it filled (at most
    /// [`MAX_SLICES`]).
    pub fn fill<'a>(&'a mut self, slices: &mut [IoSlice<'a>; MAX_SLICES]) -> usize {
        self.seal();
        let mut n = 0;
        for (slot, part) in slices.iter_mut().zip(&self.parts) {
            *slot = IoSlice::new(part);
            n += 1;
        }
        n
    }

    /// Drops the first `n` bytes, which the socket has taken.
    pub fn advance(&mut self, mut n: usize) {
        self.queued -= n.min(self.queued);
        while n > 0 {
            let Some(front) = self.parts.front_mut() else {
                return;
            };
            if front.len() > n {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.parts.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes everything as a socket taking `step` bytes at a time would.
    fn written(outbox: &mut Outbox, step: usize) -> Vec<u8> {
        let mut got = vec![];
        while !outbox.is_empty() {
            let mut took = 0;
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = outbox.fill(&mut slices);
            for s in &slices[..n] {
                let n = s.len().min(step - took);
                got.extend_from_slice(&s[..n]);
                took += n;
                if took == step {
                    break;
                }
            }
            outbox.advance(took);
        }
        got
    }

    #[test]
    fn the_wire_form_is_the_encoders_whatever_the_write_sizes() {
        let big = Bytes::from(vec![b'v'; SHARE_FROM + 3]);
        let reply = Reply::Array(vec![
            Reply::Bulk(big.clone()),
            Reply::simple("OK"),
            Reply::Nil,
            Reply::Array(vec![Reply::Bulk(big.clone()), Reply::Integer(7)]),
            Reply::Set(vec![Reply::Bulk(big.clone()), Reply::Nil]),
            Reply::Map(vec![(Reply::text("k"), Reply::Bulk(big.clone()))]),
            Reply::Bulk(Bytes::from_static(b"small")),
        ]);
        for protocol in [Protocol::Resp2, Protocol::Resp3] {
            let mut expected = BytesMut::new();
            reply.encode_as(protocol, &mut expected);
            for step in [1, 7, 100, SHARE_FROM, usize::MAX / 2] {
                let mut outbox = Outbox::default();
                outbox.push(reply.clone(), protocol);
                assert_eq!(outbox.len(), expected.len());
                assert_eq!(written(&mut outbox, step), &expected[..], "step {step}");
                assert_eq!(outbox.len(), 0);
            }
        }
    }

    #[test]
    fn large_values_are_shared_not_copied() {
        let big = Bytes::from(vec![b'v'; 1 << 20]);
        let mut outbox = Outbox::default();
        for _ in 0..100 {
            outbox.push(Reply::Bulk(big.clone()), Protocol::Resp2);
        }
        assert_eq!(outbox.len(), 100 * ((1 << 20) + "$1048576\r\n\r\n".len()));
        // Every copy points at the one stored value.
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = outbox.fill(&mut slices);
        let shared = slices[..n].iter().filter(|s| s.len() == 1 << 20).count();
        assert_eq!(shared, MAX_SLICES / 2);
        assert!(outbox.parts.iter().any(|p| p.as_ptr() == big.as_ptr()));
    }
}
