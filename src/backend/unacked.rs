//! The lines written to one stream connection that its peer has not acknowledged yet.
//!
//! "Sent" means the peer has the line (spec §8.3, issue "lose nothing silently"): a sender moves each batch here
//! once all of its bytes are in the connection, and tells [`Unacked::acknowledged`] how many of the connection's
//! bytes the kernel still holds for the peer ([`outq::outstanding`]). The whole lines among the acknowledged bytes
//! leave as sent; the rest waits here, and goes back to the head of the destination's queue when the connection
//! fails or is given up (at-least-once: the peer may have some of them; they are counted as resent).
//!
//! Invariant: `batches` are the connection's stream bytes from `start` on, in order; `written` (everything written,
//! including part of a batch still being written) ≥ `start` + the bytes of `batches`; `acked` never decreases.

use std::collections::VecDeque;

use crate::line::Batch;

#[derive(Debug, Default)]
pub struct Unacked {
    batches: VecDeque<Batch>,
    /// Stream offset of the first byte of `batches`: everything before it was counted as sent.
    start: u64,
    /// Bytes written to the connection.
    written: u64,
    /// Bytes the peer acknowledged, at the last look.
    acked: u64,
    lines: usize,
}

/// What one look at the kernel's count changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Acked {
    /// Whole lines (and their bytes) newly acknowledged: sent.
    pub lines: usize,
    pub bytes: usize,
    /// Whether the acknowledged offset moved at all (part of a line counts: the peer is taking bytes).
    pub progressed: bool,
}

impl Unacked {
    /// One write call put `n` more bytes into the connection.
    pub fn wrote(&mut self, n: usize) {
        self.written += n as u64;
    }

    /// All of `batch`'s bytes are in the connection now (counted by [`Unacked::wrote`]).
    pub fn push(&mut self, batch: Batch) {
        self.lines += batch.lines;
        self.batches.push_back(batch);
    }

    /// The kernel still holds `outstanding` of the written bytes for the peer: the whole lines before that point
    /// are sent.
    pub fn acknowledged(&mut self, outstanding: usize) -> Acked {
        let acked = self.written.saturating_sub(outstanding as u64).max(self.acked);
        let progressed = acked > self.acked;
        self.acked = acked;
        let mut left = (acked - self.start) as usize;
        let mut out = Acked {
            progressed,
            ..Acked::default()
        };
        while let Some(front) = self.batches.front_mut() {
            let head = if left >= front.len() {
                self.batches.pop_front().expect("front exists")
            } else {
                // the whole lines within the acknowledged part of this batch; a line cut by it stays whole
                match memchr::memrchr(b'\n', &front.data[..left]) {
                    Some(end) => front.split_front(usize::MAX, end + 1),
                    None => break,
                }
            };
            left -= head.len();
            self.start += head.len() as u64;
            self.lines -= head.lines;
            out.lines += head.lines;
            out.bytes += head.len();
        }
        out
    }

    /// Every batch not acknowledged, oldest first, for the queue; the connection is done with.
    pub fn take(&mut self) -> VecDeque<Batch> {
        self.lines = 0;
        std::mem::take(&mut self.batches)
    }

    /// Lines waiting for their acknowledgement.
    pub fn lines(&self) -> usize {
        self.lines
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Whether bytes written to the connection are still unacknowledged (including a batch being written).
    pub fn waiting(&self) -> bool {
        self.acked < self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn batch(s: &'static str) -> Batch {
        Batch::from_lines(Bytes::from_static(s.as_bytes()))
    }

    fn written(u: &mut Unacked, b: Batch) {
        u.wrote(b.len());
        u.push(b);
    }

    #[test]
    fn whole_lines_are_sent_as_their_bytes_are_acknowledged() {
        let mut u = Unacked::default();
        written(&mut u, batch("a 1\nb 2\n"));
        written(&mut u, batch("c 3\nd 4\n"));
        assert_eq!(u.lines(), 4);
        let nothing = Acked::default();
        assert_eq!(u.acknowledged(16), nothing, "all 16 bytes outstanding");
        // 10 bytes acknowledged: the first batch and half of "c 3": c is not sent yet
        let got = u.acknowledged(6);
        assert_eq!((got.lines, got.bytes, got.progressed), (2, 8, true));
        assert_eq!(u.acknowledged(6), nothing, "no change, no progress");
        let got = u.acknowledged(4);
        assert_eq!((got.lines, got.bytes, got.progressed), (1, 4, true));
        assert_eq!(u.lines(), 1);
        assert!(u.waiting());
        let got = u.acknowledged(0);
        assert_eq!((got.lines, got.bytes), (1, 4));
        assert!(u.is_empty() && !u.waiting());
    }

    #[test]
    fn a_batch_being_written_is_not_sent_before_it_is_pushed() {
        let mut u = Unacked::default();
        written(&mut u, batch("a 1\n"));
        u.wrote(2); // "b " of "b 2\n" is in the connection, the rest not yet
        let got = u.acknowledged(0);
        assert_eq!((got.lines, got.progressed), (1, true));
        u.wrote(2);
        u.push(batch("b 2\n"));
        assert_eq!(u.acknowledged(0).lines, 1);
    }

    #[test]
    fn what_was_never_acknowledged_goes_back_whole_and_oldest_first() {
        let mut u = Unacked::default();
        written(&mut u, batch("a 1\nb 2\n"));
        written(&mut u, batch("c 3\n"));
        assert_eq!(u.acknowledged(10).lines, 0, "2 of a's bytes: no whole line");
        assert_eq!(u.take(), [batch("a 1\nb 2\n"), batch("c 3\n")]);
        assert_eq!(u.lines(), 0);
    }

    #[test]
    fn a_smaller_count_of_a_later_look_never_takes_back_what_was_acknowledged() {
        let mut u = Unacked::default();
        written(&mut u, batch("a 1\nb 2\n"));
        assert_eq!(u.acknowledged(4).lines, 1);
        // a unix socket's count includes overhead and may read higher later; acknowledged stays acknowledged
        assert_eq!(u.acknowledged(8), Acked::default());
        assert_eq!(u.lines(), 1);
    }
}
