//! Per-connection reply ordering: pipelined commands are answered in the order they were
//! sent, whatever order their results come back in — and never later than a deadline.
//!
//! Each command gets a *slot* when it is read. A data command's slot waits for the results of
//! its operations; a connection command's slot holds its reply already. Replies leave only
//! from the head of the queue, so a fast GET behind a slow MSET waits its turn, as Redis
//! clients expect.
//!
//! The queue numbers the operations itself ([`ReplyQueue::expect_ops`]): request ids are
//! consecutive, so the slot a result belongs to is found by subtraction, in O(1), however
//! many replies a client has pipelined.
//!
//! **Deadlines.** A slot whose results have not all come back by its deadline is answered with
//! a timeout error ([`ReplyQueue::expire`]); results that arrive later are dropped. This is
//! what keeps one lost result (a member that died holding it) from blocking every reply behind
//! it forever. Every distributed architecture relies on it as the last resort: however a
//! request is lost inside the store, its client gets an answer. The queue takes the time as an
//! argument, so tests drive it by hand.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use smallvec::SmallVec;

use crate::edge::commands::{Assemble, ExecPart, Results, assemble, assemble_exec};
use crate::edge::outbox::Outbox;
use crate::edge::resp::{Protocol, Reply};
use crate::protocol::{KVSResult, RequestId};

/// What holding one result costs beyond its bytes, for the output limit.
const RESULT_OVERHEAD: usize = 16;

/// One command's place in the reply order.
struct Slot {
    /// Request id of the slot's first operation (the others follow consecutively).
    first: RequestId,
    /// Results so far, by operation (empty for slots whose reply is known); inline for one.
    results: SmallVec<[Option<KVSResult<Bytes>>; 1]>,
    /// Results still to come.
    missing: usize,
    /// How many request ids the slot was given (its entries in [`ReplyQueue::owners`]).
    ops: usize,
    /// Bytes of the results held so far.
    held: usize,
    reply: SlotReply,
    /// When the slot gives up waiting; `None` for slots that wait for nothing.
    deadline: Option<Instant>,
    /// Close the connection once this slot is written.
    close: bool,
    /// The protocol the connection spoke when the command was read (a pipelined `HELLO 3`
    /// changes it for the replies after its own, never for those before).
    protocol: Protocol,
}

enum SlotReply {
    /// Known already (connection commands, errors, timeouts), or nothing (end of input).
    Ready(Option<Reply>),
    /// Assembled from the results once all are in.
    Assemble(Assemble),
    /// `EXEC`'s array, assembled from the transaction's one result.
    Exec(Vec<ExecPart>),
}

impl Slot {
    fn ready(reply: Option<Reply>, close: bool, protocol: Protocol) -> Self {
        Slot {
            protocol,
            first: 0,
            results: SmallVec::new(),
            missing: 0,
            ops: 0,
            held: 0,
            reply: SlotReply::Ready(reply),
            deadline: None,
            close,
        }
    }
}

/// The slots of one connection, oldest first.
pub struct ReplyQueue {
    slots: VecDeque<Slot>,
    /// Sequence number of `slots[0]` (each slot ever queued gets the next number).
    head_seq: u64,
    /// For each request id from `base_request` on, the sequence number of its slot.
    owners: VecDeque<u64>,
    /// The request id of `owners[0]`.
    base_request: RequestId,
    /// The id the next operation gets.
    next_request: RequestId,
    /// Bytes of results held in slots (not yet handed to the outbox).
    held: usize,
    /// How long a slot waits for its results.
    timeout: Duration,
    /// A closing slot has been answered: the connection ends once its output is written.
    closed: bool,
    /// The protocol new slots' replies are written in.
    protocol: Protocol,
}

impl ReplyQueue {
    /// An empty queue whose slots wait at most `timeout` for their results.
    pub fn new(timeout: Duration) -> Self {
        Self {
            slots: VecDeque::new(),
            head_seq: 0,
            owners: VecDeque::new(),
            base_request: 0,
            next_request: 0,
            held: 0,
            timeout,
            closed: false,
            protocol: Protocol::Resp2,
        }
    }

    /// Writes the replies of commands queued from now on in `protocol`.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.protocol = protocol;
    }

    /// Queues a command whose reply is known now; `None` writes nothing. With `close`, the
    /// connection closes once it is written.
    pub fn expect_reply(&mut self, reply: Option<Reply>, close: bool) {
        self.slots
            .push_back(Slot::ready(reply, close, self.protocol));
    }

    /// Queues a command that waits for the results of `ops` operations (at least one),
    /// arriving from `now`; returns the request id of the first (the others follow
    /// consecutively). Give the operations these ids before they enter the store.
    pub fn expect_ops(&mut self, ops: usize, kind: Assemble, now: Instant) -> RequestId {
        self.expect(ops, SlotReply::Assemble(kind), now)
    }

    /// Queues an `EXEC`, which waits for its transaction's one result, arriving from `now`;
    /// returns the transaction's request id.
    pub fn expect_exec(&mut self, parts: Vec<ExecPart>, now: Instant) -> RequestId {
        self.expect(1, SlotReply::Exec(parts), now)
    }

    fn expect(&mut self, ops: usize, reply: SlotReply, now: Instant) -> RequestId {
        let seq = self.head_seq + self.slots.len() as u64;
        let first = self.next_request;
        self.next_request += ops as u64;
        self.owners.extend(std::iter::repeat_n(seq, ops));
        self.slots.push_back(Slot {
            first,
            results: SmallVec::from_elem(None, ops),
            missing: ops,
            ops,
            held: 0,
            reply,
            deadline: Some(now + self.timeout),
            close: false,
            protocol: self.protocol,
        });
        first
    }

    /// Commands queued and not yet handed to the outbox.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no command is waiting.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Bytes of results held, waiting for the replies before them.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Files one operation's result in its slot. Results for no waiting slot (late ones, after
    /// a timeout, or duplicates) are dropped.
    pub fn deliver(&mut self, request: RequestId, result: KVSResult<Bytes>) {
        let Some(at) = request.checked_sub(self.base_request) else {
            return;
        };
        let Some(&seq) = self.owners.get(at as usize) else {
            return;
        };
        let Some(slot) = seq
            .checked_sub(self.head_seq)
            .and_then(|i| self.slots.get_mut(i as usize))
        else {
            return;
        };
        // After a timeout the slot's results are gone, and so is its place for this one.
        let Some(place) = request
            .checked_sub(slot.first)
            .and_then(|i| slot.results.get_mut(i as usize))
        else {
            return;
        };
        if place.is_none() {
            let size = result_bytes(&result);
            slot.held += size;
            self.held += size;
            *place = Some(result);
            slot.missing -= 1;
        }
    }

    /// Answers every slot whose deadline has passed by `now` and whose results are not all in
    /// with a timeout error; their late results will be dropped.
    pub fn expire(&mut self, now: Instant) {
        for slot in self.slots.iter_mut() {
            match slot.deadline {
                // Deadlines grow along the queue: nothing after this one has passed either.
                Some(deadline) if deadline > now => return,
                Some(_) if slot.missing > 0 => {
                    self.held -= slot.held;
                    slot.held = 0;
                    slot.results = SmallVec::new();
                    slot.missing = 0;
                    slot.reply = SlotReply::Ready(Some(Reply::err(format!(
                        "request timed out: the store did not answer within {} ms",
                        self.timeout.as_millis()
                    ))));
                }
                _ => {}
            }
        }
    }

    /// When the oldest slot still waiting gives up, if one is waiting.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.slots
            .iter()
            .find(|s| s.missing > 0)
            .and_then(|s| s.deadline)
    }

    /// Moves every completed reply at the head of the queue into `out`; returns true once
    /// the connection must close when `out` is written (and from then on).
    pub fn drain_ready(&mut self, out: &mut Outbox) -> bool {
        while !self.closed {
            let Some(head) = self.slots.front_mut() else {
                break;
            };
            if head.missing > 0 {
                break;
            }
            let reply = match &mut head.reply {
                SlotReply::Ready(r) => r.take(),
                // One operation (GET, SET, …, most commands): its result moves straight in,
                // without gathering the slot's results into a new list.
                SlotReply::Assemble(kind) => Some(match &mut head.results[..] {
                    [Some(result)] => {
                        let result = std::mem::replace(result, KVSResult::Ok);
                        assemble(*kind, Results::from_buf([result]))
                    }
                    _ => assemble(*kind, head.results.drain(..).flatten().collect()),
                }),
                SlotReply::Exec(parts) => {
                    let result = head.results.drain(..).flatten().next();
                    Some(assemble_exec(
                        std::mem::take(parts),
                        result.unwrap_or(KVSResult::Transaction(vec![])),
                    ))
                }
            };
            if let Some(reply) = reply {
                out.push(reply, head.protocol);
            }
            self.held -= head.held;
            // Nothing after a closing slot is answered.
            self.closed = head.close;
            let ops = head.ops;
            self.slots.pop_front();
            self.head_seq += 1;
            self.owners.drain(..ops);
            self.base_request += ops as u64;
        }
        self.closed
    }
}

/// What holding `result` costs, for the output limit.
fn result_bytes(result: &KVSResult<Bytes>) -> usize {
    RESULT_OVERHEAD
        + match result {
            KVSResult::Value(v) => v.len(),
            KVSResult::Siblings(vs) => vs.iter().map(|v| v.len() + RESULT_OVERHEAD).sum(),
            KVSResult::Versioned(context, vs) => {
                context.len() + vs.iter().map(|v| v.len() + RESULT_OVERHEAD).sum::<usize>()
            }
            KVSResult::Error(e) => e.len(),
            KVSResult::Ok | KVSResult::NotFound | KVSResult::Integer(_) | KVSResult::Aborted => 0,
            KVSResult::Transaction(results) => results.iter().map(result_bytes).sum(),
            KVSResult::Scanned(_, keys) => keys.iter().map(|k| k.len() + RESULT_OVERHEAD).sum(),
            KVSResult::Snapshot(log, store) => log.len() + store.len(),
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn drained(q: &mut ReplyQueue) -> (String, bool) {
        let mut out = Outbox::default();
        let close = q.drain_ready(&mut out);
        let mut bytes = vec![];
        let mut slices = [std::io::IoSlice::new(&[]); crate::edge::outbox::MAX_SLICES];
        let n = out.fill(&mut slices);
        for s in &slices[..n] {
            bytes.extend_from_slice(s);
        }
        (String::from_utf8(bytes).unwrap(), close)
    }

    fn v(s: &'static str) -> KVSResult<Bytes> {
        KVSResult::Value(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn replies_leave_in_request_order_whatever_order_results_arrive() {
        let now = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        assert_eq!(q.expect_ops(1, Assemble::Get, now), 0);
        q.expect_reply(Some(Reply::simple("PONG")), false);
        assert_eq!(q.expect_ops(2, Assemble::MultiGet, now), 1);
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
        assert!(q.is_empty());
        assert_eq!(q.held_bytes(), 0);
        // Ids go on from where they were, and the emptied queue still finds their slots.
        assert_eq!(q.expect_ops(1, Assemble::Set, now), 3);
        q.deliver(3, KVSResult::Ok);
        assert_eq!(drained(&mut q), ("+OK\r\n".into(), false));
    }

    #[test]
    fn close_waits_for_earlier_replies_and_stops_the_queue() {
        let now = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        q.expect_ops(1, Assemble::Set, now);
        q.expect_reply(Some(Reply::simple("OK")), true);
        q.expect_reply(Some(Reply::simple("NEVER")), false);
        assert_eq!(drained(&mut q), (String::new(), false));
        q.deliver(0, KVSResult::Ok);
        assert_eq!(drained(&mut q), ("+OK\r\n+OK\r\n".into(), true));
        assert_eq!(
            drained(&mut q),
            (String::new(), true),
            "closing stays closing"
        );
        assert_eq!(q.next_deadline(), None);
    }

    #[test]
    fn stray_and_duplicate_results_change_nothing() {
        let now = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        q.expect_ops(1, Assemble::Get, now);
        q.deliver(99, v("stray"));
        q.deliver(0, v("first"));
        q.deliver(0, v("second"));
        assert_eq!(drained(&mut q), ("$5\r\nfirst\r\n".into(), false));
        q.deliver(0, v("after it was answered"));
        assert!(q.is_empty());
    }

    #[test]
    fn a_lost_result_times_out_and_releases_the_replies_behind_it() {
        let start = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        q.expect_ops(2, Assemble::MultiGet, start); // ids 0, 1: id 1 is lost
        q.expect_ops(1, Assemble::Get, start + Duration::from_secs(1)); // id 2
        q.deliver(0, v("held"));
        q.deliver(2, v("behind"));
        assert!(q.held_bytes() > 0);
        assert_eq!(q.next_deadline(), Some(start + TIMEOUT));
        q.expire(start + TIMEOUT - Duration::from_millis(1));
        assert_eq!(drained(&mut q), (String::new(), false), "not yet");
        q.expire(start + TIMEOUT);
        assert_eq!(
            drained(&mut q),
            (
                "-ERR request timed out: the store did not answer within 5000 ms\r\n\
                 $6\r\nbehind\r\n"
                    .into(),
                false
            ),
            "the slot behind had its result, so it is not timed out"
        );
        assert_eq!(q.held_bytes(), 0);
        // The late result finds no slot; the connection goes on.
        q.deliver(1, v("late"));
        assert!(q.is_empty());
        assert_eq!(q.next_deadline(), None);
        assert_eq!(q.expect_ops(1, Assemble::Set, start), 3);
    }

    #[test]
    fn late_results_for_an_expired_slot_behind_a_waiting_one_are_dropped() {
        let start = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        q.expect_ops(1, Assemble::Get, start); // id 0
        q.expect_ops(1, Assemble::Get, start); // id 1
        q.expire(start + TIMEOUT);
        q.deliver(1, v("late"));
        q.deliver(0, v("late too"));
        let (text, _) = drained(&mut q);
        assert_eq!(text.matches("timed out").count(), 2, "{text}");
        assert_eq!(q.held_bytes(), 0);
    }

    #[test]
    fn deadlines_follow_the_oldest_waiting_slot() {
        let start = Instant::now();
        let mut q = ReplyQueue::new(TIMEOUT);
        assert_eq!(q.next_deadline(), None);
        q.expect_reply(Some(Reply::simple("PONG")), false);
        q.expect_ops(1, Assemble::Get, start + Duration::from_secs(2));
        assert_eq!(
            q.next_deadline(),
            Some(start + Duration::from_secs(2) + TIMEOUT)
        );
    }
}
