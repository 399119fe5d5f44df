//! The bounded FIFO queue in front of one destination.
//!
//! Bounded by lines and, optionally, bytes. A push takes the whole lines of a batch that fit and hands the rest
//! back ([`PushError::Full`]); the caller decides whether to wait for room for it or to drop and count it. An empty
//! queue always takes at least one line, so a line larger than the byte bound is never stuck. Batches whose write failed go back to the head with
//! [`DestQueue::push_front`], ignoring the bound (they were already accounted for). Once closed, pushes are refused
//! and pops drain what is left, then return `None`.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use crate::line::Batch;

#[derive(Debug)]
pub enum PushError {
    Full(Batch),
    Closed(Batch),
}

#[derive(Debug, Default)]
struct State {
    batches: VecDeque<Batch>,
    lines: usize,
    bytes: usize,
    closed: bool,
}

fn first_line_fits(batch: &Batch, room_bytes: usize) -> bool {
    memchr::memchr(b'\n', &batch.data).is_some_and(|nl| nl < room_bytes)
}

#[derive(Debug)]
pub struct DestQueue {
    state: Mutex<State>,
    not_empty: Notify,
    not_full: Notify,
    max_lines: usize,
    /// 0 = no byte bound.
    max_bytes: usize,
}

impl DestQueue {
    pub fn new(max_lines: usize, max_bytes: usize) -> DestQueue {
        DestQueue {
            state: Mutex::new(State::default()),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            max_lines: max_lines.max(1),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the queue inconsistent (every critical section is a few
        // field updates), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues what fits of `batch`; `Full` hands back the lines that did not fit (all of them when none did).
    pub fn try_push(&self, mut batch: Batch) -> Result<(), PushError> {
        let mut s = self.lock();
        if s.closed {
            return Err(PushError::Closed(batch));
        }
        let room_lines = self.max_lines.saturating_sub(s.lines);
        let room_bytes = match self.max_bytes {
            0 => usize::MAX,
            max => max.saturating_sub(s.bytes),
        };
        let whole = batch.lines <= room_lines && batch.len() <= room_bytes;
        if !(whole || s.batches.is_empty() || room_lines > 0 && first_line_fits(&batch, room_bytes)) {
            return Err(PushError::Full(batch));
        }
        // the whole batch when it fits
        let head = batch.split_front(room_lines.max(1), room_bytes);
        s.lines += head.lines;
        s.bytes += head.len();
        s.batches.push_back(head);
        drop(s);
        self.not_empty.notify_one();
        if batch.is_empty() {
            Ok(())
        } else {
            Err(PushError::Full(batch))
        }
    }

    /// Returns a batch whose delivery failed to the head of the queue, regardless of the bound and of closing.
    pub fn push_front(&self, batch: Batch) {
        let mut s = self.lock();
        s.lines += batch.lines;
        s.bytes += batch.len();
        s.batches.push_front(batch);
        drop(s);
        self.not_empty.notify_one();
    }

    /// A future that completes after the next pop (register it before trying to push, then await it).
    pub fn room(&self) -> Notified<'_> {
        self.not_full.notified()
    }

    pub fn try_pop(&self) -> Option<Batch> {
        let mut s = self.lock();
        let b = s.batches.pop_front()?;
        s.lines -= b.lines;
        s.bytes -= b.len();
        let more = !s.batches.is_empty();
        drop(s);
        self.not_full.notify_waiters();
        if more {
            // pass the wake-up on, so that idle pool connections share the work
            self.not_empty.notify_one();
        }
        Some(b)
    }

    /// Waits for a batch; `None` once the queue is closed and empty.
    pub async fn pop(&self) -> Option<Batch> {
        loop {
            let notified = self.not_empty.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(b) = self.try_pop() {
                return Some(b);
            }
            if self.lock().closed {
                return None;
            }
            notified.await;
        }
    }

    /// Refuses further pushes; pops drain what is queued.
    pub fn close(&self) {
        self.lock().closed = true;
        self.not_empty.notify_waiters();
        self.not_full.notify_waiters();
    }

    /// Removes everything queued; returns the number of lines removed.
    pub fn clear(&self) -> usize {
        let mut s = self.lock();
        let lines = s.lines;
        *s = State {
            closed: s.closed,
            ..State::default()
        };
        drop(s);
        self.not_full.notify_waiters();
        lines
    }

    /// (lines, bytes) queued now.
    pub fn depth(&self) -> (usize, usize) {
        let s = self.lock();
        (s.lines, s.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(lines: usize) -> Batch {
        Batch::from_lines(Bytes::from("x\n".repeat(lines)))
    }

    #[test]
    fn bounded_by_lines_and_bytes() {
        let q = DestQueue::new(5, 0);
        assert!(q.try_push(batch(3)).is_ok());
        assert!(q.try_push(batch(2)).is_ok());
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Full(b)) if b.lines == 1));
        assert_eq!(q.depth(), (5, 10));
        assert_eq!(q.try_pop().map(|b| b.lines), Some(3));
        assert!(q.try_push(batch(3)).is_ok());

        let q = DestQueue::new(100, 6);
        assert!(q.try_push(batch(2)).is_ok());
        assert!(matches!(q.try_push(batch(2)), Err(PushError::Full(_))));
    }

    #[test]
    fn a_push_takes_the_lines_that_fit_and_hands_back_the_rest() {
        let q = DestQueue::new(4, 0);
        assert!(matches!(q.try_push(batch(10)), Err(PushError::Full(b)) if b.lines == 6));
        assert_eq!(q.depth(), (4, 8));
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Full(b)) if b.lines == 1));

        let q = DestQueue::new(100, 7);
        assert!(matches!(q.try_push(batch(5)), Err(PushError::Full(b)) if b.lines == 2));
        assert_eq!(q.depth(), (3, 6));
    }

    #[test]
    fn an_empty_queue_takes_one_line_larger_than_the_byte_bound() {
        let q = DestQueue::new(10, 4);
        let long = Batch::from_lines(Bytes::from("0123456789\nx\n"));
        assert!(matches!(q.try_push(long), Err(PushError::Full(b)) if b.lines == 1));
        assert_eq!(q.depth(), (1, 11));
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Full(_))));
    }

    #[test]
    fn push_front_ignores_the_bound_and_comes_out_first() {
        let q = DestQueue::new(2, 0);
        q.try_push(batch(2)).expect("room");
        q.push_front(batch(1));
        assert_eq!(q.depth().0, 3);
        assert_eq!(q.try_pop().map(|b| b.lines), Some(1));
    }

    #[tokio::test]
    async fn close_drains_then_ends() {
        let q = DestQueue::new(10, 0);
        q.try_push(batch(1)).expect("room");
        q.close();
        assert!(matches!(q.try_push(batch(1)), Err(PushError::Closed(_))));
        assert_eq!(q.pop().await.map(|b| b.lines), Some(1));
        assert_eq!(q.pop().await, None);
    }

    #[tokio::test]
    async fn pop_waits_for_a_push() {
        let q = std::sync::Arc::new(DestQueue::new(10, 0));
        let q2 = q.clone();
        let popper = tokio::spawn(async move { q2.pop().await.map(|b| b.lines) });
        tokio::task::yield_now().await;
        q.try_push(batch(4)).expect("room");
        assert_eq!(popper.await.expect("joins"), Some(4));
    }

    #[test]
    fn clear_counts_what_it_removed() {
        let q = DestQueue::new(10, 0);
        q.try_push(batch(2)).expect("room");
        q.try_push(batch(3)).expect("room");
        assert_eq!(q.clear(), 5);
        assert_eq!(q.depth(), (0, 0));
    }
}
