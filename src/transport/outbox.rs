//! The messages waiting for one peer: sent in order, removed once the peer acknowledged them,
//! sent again after a reconnect, dropped when the peer restarted (its executions are gone) and
//! bounded, so a dead peer cannot grow memory without limit.

use std::collections::VecDeque;

/// One message to a peer: `RG.INNERMSGCOMMAND <my id> <my run id> <function> <payload> <id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub function: String,
    pub payload: Vec<u8>,
    /// How many times it was written to a connection.
    pub sends: u32,
}

/// Why a message was not queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0} messages already wait for this peer")]
    TooMany(usize),
    #[error("{0} bytes already wait for this peer")]
    TooLarge(usize),
}

#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Message>,
    bytes: usize,
    next_id: u64,
    max_messages: usize,
    max_bytes: usize,
}

impl Outbox {
    pub fn new(max_messages: usize, max_bytes: usize) -> Outbox {
        Outbox { queue: VecDeque::new(), bytes: 0, next_id: 0, max_messages, max_bytes }
    }

    /// Queues a message; its id is one more than the last one's, from 0 as in 1.2 (ids never
    /// repeat for this sender run, so the peer's de-duplication can trust them).
    pub fn push(&mut self, function: &str, payload: Vec<u8>) -> Result<u64, Refused> {
        if self.queue.len() >= self.max_messages {
            return Err(Refused::TooMany(self.queue.len()));
        }
        if self.bytes + payload.len() > self.max_bytes && !self.queue.is_empty() {
            return Err(Refused::TooLarge(self.bytes));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.bytes += payload.len();
        self.queue.push_back(Message { id, function: function.to_string(), payload, sends: 0 });
        Ok(id)
    }

    /// Up to `n` messages from the oldest, counted as sent once more.
    pub fn take_batch(&mut self, n: usize) -> Vec<Message> {
        self.queue
            .iter_mut()
            .take(n)
            .map(|m| {
                m.sends += 1;
                m.clone()
            })
            .collect()
    }

    /// The peer acknowledged message `id` (the oldest ones are acknowledged first).
    pub fn acknowledge(&mut self, id: u64) {
        while let Some(front) = self.queue.front() {
            if front.id > id {
                break;
            }
            self.bytes -= front.payload.len();
            self.queue.pop_front();
        }
    }

    /// Drops the messages sent `max_sends` times already (0: never); their function names.
    pub fn drop_exhausted(&mut self, max_sends: u32) -> Vec<String> {
        if max_sends == 0 {
            return Vec::new();
        }
        let mut dropped = Vec::new();
        let bytes = &mut self.bytes;
        self.queue.retain(|m| {
            let keep = m.sends < max_sends;
            if !keep {
                *bytes -= m.payload.len();
                dropped.push(m.function.clone());
            }
            keep
        });
        dropped
    }

    /// Everything waiting is dropped (the peer restarted: what it was sent is void); how many.
    pub fn clear(&mut self) -> usize {
        let n = self.queue.len();
        self.queue.clear();
        self.bytes = 0;
        n
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_in_order_and_removed_when_acknowledged() {
        let mut out = Outbox::new(10, 1000);
        let a = out.push("f", b"a".to_vec()).unwrap();
        let b = out.push("g", b"bb".to_vec()).unwrap();
        assert_eq!((a, b), (0, 1));
        let batch = out.take_batch(8);
        assert_eq!(batch.iter().map(|m| m.id).collect::<Vec<_>>(), vec![0, 1]);
        out.acknowledge(0);
        assert_eq!(out.len(), 1);
        // A reconnect sends what is left again, with the same id.
        let again = out.take_batch(8);
        assert_eq!((again[0].id, again[0].sends), (1, 2));
        out.acknowledge(1);
        assert!(out.is_empty());
        assert_eq!(out.push("h", vec![]).unwrap(), 2, "ids never repeat");
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let mut out = Outbox::new(2, 10);
        out.push("f", vec![0; 8]).unwrap();
        assert_eq!(out.push("f", vec![0; 3]), Err(Refused::TooLarge(8)));
        out.push("f", vec![0; 2]).unwrap();
        assert_eq!(out.push("f", vec![]), Err(Refused::TooMany(2)));
        out.acknowledge(0);
        out.push("f", vec![0; 8]).unwrap();
        // One message larger than the bound still goes when nothing else waits.
        let mut big = Outbox::new(2, 10);
        assert!(big.push("f", vec![0; 50]).is_ok());
    }

    #[test]
    fn exhausted_and_cleared() {
        let mut out = Outbox::new(10, 100);
        out.push("a", vec![1]).unwrap();
        out.take_batch(1);
        out.push("b", vec![2]).unwrap();
        assert_eq!(out.drop_exhausted(2), Vec::<String>::new());
        out.take_batch(2); // a written twice now, b once
        assert_eq!(out.drop_exhausted(2), vec!["a".to_string()]);
        assert_eq!(out.drop_exhausted(0), Vec::<String>::new());
        assert_eq!(out.clear(), 1);
        assert!(out.is_empty());
    }
}
