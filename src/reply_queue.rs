//! Per-connection reply ordering: pipelined commands are answered in the order they were
//! sent, whatever order their results come back in.
//!
//! Each command gets a [`Slot`] when it is read. A data command's slot waits for the results of
//! its operations (matched by request id); a connection command's slot holds its reply
//! already. Replies are written only from the head of the queue, so a fast GET behind a slow
//! MSET waits its turn, as Redis clients expect.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};

use crate::commands::{Assemble, assemble};
use crate::protocol::{KVSResult, RequestId};
use crate::resp::Reply;

/// One command's place in the reply order.
pub struct Slot {
    /// Request id of the command's first operation (its others follow consecutively).
    first: RequestId,
    /// Results so far, by operation.
    results: Vec<Option<KVSResult<Bytes>>>,
    missing: usize,
    reply: SlotReply,
    /// Close the connection once this slot is written.
    close: bool,
}

enum SlotReply {
    /// Known already (connection commands, errors), or nothing (end of input).
    Ready(Option<Reply>),
    /// Assembled from the results once all are in.
    Assemble(Assemble),
}

impl Slot {
    /// A slot whose reply is known now; `None` writes nothing. With `close`, the connection
    /// closes once it is written.
    pub fn ready(reply: Option<Reply>, close: bool) -> Self {
        Slot {
            first: 0,
            results: vec![],
            missing: 0,
            reply: SlotReply::Ready(reply),
            close,
        }
    }

    /// A slot waiting for the results of `ops` operations numbered from `first`.
    pub fn pending(first: RequestId, ops: usize, kind: Assemble) -> Self {
        Slot {
            first,
            results: (0..ops).map(|_| None).collect(),
            missing: ops,
            reply: SlotReply::Assemble(kind),
            close: false,
        }
    }

    /// True when the connection closes after this slot.
    pub fn closes(&self) -> bool {
        self.close
    }

    /// Records `result` if `request` is one of this slot's operations; gives it back if not.
    fn offer(&mut self, request: RequestId, result: KVSResult<Bytes>) -> Option<KVSResult<Bytes>> {
        let Some(place) = request
            .checked_sub(self.first)
            .and_then(|i| self.results.get_mut(i as usize))
        else {
            return Some(result);
        };
        // A duplicate delivery is ignored: the first answer stands.
        if place.is_none() {
            *place = Some(result);
            self.missing -= 1;
        }
        None
    }

    /// The slot's reply, once every result is in.
    fn take_reply(&mut self) -> Option<Option<Reply>> {
        if self.missing > 0 {
            return None;
        }
        Some(match &mut self.reply {
            SlotReply::Ready(r) => r.take(),
            SlotReply::Assemble(kind) => Some(assemble(
                *kind,
                self.results
                    .drain(..)
                    .map(|r| r.expect("no result is missing"))
                    .collect(),
            )),
        })
    }
}

/// The slots of one connection, oldest first.
#[derive(Default)]
pub struct ReplyQueue {
    slots: VecDeque<Slot>,
}

impl ReplyQueue {
    /// Queues the next command's slot.
    pub fn expect(&mut self, slot: Slot) {
        self.slots.push_back(slot);
    }

    /// Files one operation's result in its slot. Results for no known slot (which a correct
    /// store never sends) are dropped.
    pub fn deliver(&mut self, request: RequestId, result: KVSResult<Bytes>) {
        let mut result = Some(result);
        for slot in self.slots.iter_mut() {
            result = slot.offer(request, result.take().expect("still ours"));
            if result.is_none() {
                return;
            }
        }
    }

    /// Encodes every completed reply at the head of the queue into `out`; returns true when
    /// the connection must now close.
    pub fn drain_ready(&mut self, out: &mut BytesMut) -> bool {
        while let Some(head) = self.slots.front_mut() {
            let Some(reply) = head.take_reply() else {
                return false;
            };
            if let Some(reply) = reply {
                reply.encode(out);
            }
            if head.close {
                return true;
            }
            self.slots.pop_front();
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(q: &mut ReplyQueue) -> (String, bool) {
        let mut out = BytesMut::new();
        let close = q.drain_ready(&mut out);
        (String::from_utf8(out.to_vec()).unwrap(), close)
    }

    fn v(s: &'static str) -> KVSResult<Bytes> {
        KVSResult::Value(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn replies_leave_in_request_order_whatever_order_results_arrive() {
        let mut q = ReplyQueue::default();
        q.expect(Slot::pending(0, 1, Assemble::Get));
        q.expect(Slot::ready(Some(Reply::simple("PONG")), false));
        q.expect(Slot::pending(1, 2, Assemble::MultiGet));
        q.deliver(2, v("b"));
        q.deliver(1, v("a"));
        assert_eq!(
            drained(&mut q),
            (String::new(), false),
            "the head is still waiting"
        );
        q.deliver(0, KVSResult::NotFound);
        assert_eq!(
            drained(&mut q),
            ("$-1\r\n+PONG\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n".into(), false)
        );
    }

    #[test]
    fn close_waits_for_earlier_replies_and_stops_the_queue() {
        let mut q = ReplyQueue::default();
        q.expect(Slot::pending(0, 1, Assemble::Set));
        q.expect(Slot::ready(Some(Reply::simple("OK")), true));
        q.expect(Slot::ready(Some(Reply::simple("NEVER")), false));
        assert_eq!(drained(&mut q), (String::new(), false));
        q.deliver(0, KVSResult::Ok);
        assert_eq!(drained(&mut q), ("+OK\r\n+OK\r\n".into(), true));
    }

    #[test]
    fn stray_and_duplicate_results_change_nothing() {
        let mut q = ReplyQueue::default();
        q.expect(Slot::pending(5, 1, Assemble::Get));
        q.deliver(99, v("stray"));
        q.deliver(5, v("first"));
        q.deliver(5, v("second"));
        assert_eq!(drained(&mut q), ("$5\r\nfirst\r\n".into(), false));
    }
}
