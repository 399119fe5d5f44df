//! The types that flow between pipeline stages.
//!
//! Parsing and routing happen inline in a listener task on `&[u8]` slices of its read buffer; the only thing that
//! crosses a task boundary on the relay path is a [`Batch`]: the newline-terminated lines one listener task routed
//! to one destination during one read, joined in a single buffer. That buffer is where a line's bytes are copied
//! (once) on their way from the socket to the destination connection.
//!
//! On the accumulator side, a flush turns each key's state into a [`Record`] (one key, one base interval); the
//! bins merge records and hand each writer [`Point`]s (one key, one bin).

use bytes::Bytes;

/// What a producer does when the bounded queue it hands a [`Batch`] to is full (spec §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Wait for room: back-pressure reaches the producer (stream and HTTP listeners, accumulator flushes).
    Wait,
    /// Drop the batch and count it: the producer cannot wait (a UDP socket).
    Drop,
}

/// Newline-terminated lines for one destination. `lines` is the number of `\n` in `data`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub data: Bytes,
    pub lines: usize,
}

impl Batch {
    /// A batch of already newline-terminated lines; counts them.
    pub fn from_lines(data: Bytes) -> Batch {
        let lines = memchr::memchr_iter(b'\n', &data).count();
        Batch { data, lines }
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Splits off the longest prefix of whole lines not exceeding `max_bytes` (at least one line, even when that
    /// line alone is larger). The prefix is returned, `self` keeps the rest.
    pub fn split_lines_to(&mut self, max_bytes: usize) -> Batch {
        self.split_front(usize::MAX, max_bytes)
    }

    /// Splits off the longest prefix of at most `max_lines` whole lines and `max_bytes` bytes (at least one line,
    /// even when that line alone is larger). The prefix is returned, `self` keeps the rest.
    pub fn split_front(&mut self, max_lines: usize, max_bytes: usize) -> Batch {
        if self.lines <= max_lines && self.data.len() <= max_bytes {
            return std::mem::take(self);
        }
        let mut end = 0;
        let mut lines = 0;
        for nl in memchr::memchr_iter(b'\n', &self.data) {
            if nl + 1 > max_bytes && lines > 0 {
                break;
            }
            end = nl + 1;
            lines += 1;
            if end >= max_bytes || lines >= max_lines {
                break;
            }
        }
        if lines == 0 {
            // no newline at all: the rest is one (unterminated) piece
            end = self.data.len();
            lines = self.lines;
        }
        let head = self.data.split_to(end);
        self.lines -= lines;
        Batch { data: head, lines }
    }
}

/// Lines for one accumulator shard, each with where it ends and what its key is ([`LineKey`]): the router finds
/// the key once, to pick the shard, and the shard's fold looks it up by its hash without parsing it again.
/// `keys[i]` belongs to the `i`-th line of `lines`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyedBatch {
    pub lines: Batch,
    pub keys: Vec<LineKey>,
}

/// One line of a [`KeyedBatch`]: the [`crate::splitter::key_hash`] of the key the accumulator folds it under, where
/// the line ends, and how long its key is when the key is the line's first bytes as they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineKey {
    pub hash: u64,
    /// Offset of the line's `\n` in the batch's data.
    pub end: u32,
    /// The key is `line[..key_len]` (statsd: no tags, nothing to sanitize; the `:` follows); 0: the fold finds it.
    pub key_len: u32,
}

impl LineKey {
    /// The key of the line ending at `end`, with the `(hash, key_len)` that `AccumulatorInput::key_of` found.
    pub fn new(end: usize, (hash, key_len): (u64, u32)) -> LineKey {
        LineKey {
            hash,
            end: end as u32,
            key_len,
        }
    }
}

impl KeyedBatch {
    /// Each line (without its `\n`) with its key; empty lines (which no router sends) skipped.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], LineKey)> {
        let data = &self.lines.data[..];
        let mut start = 0;
        self.keys
            .iter()
            .map(move |k| {
                let line = data.get(start..k.end as usize).unwrap_or_default();
                start = k.end as usize + 1;
                (line, *k)
            })
            .filter(|(line, _)| !line.is_empty())
    }
}

/// One key's aggregate over one base interval (spec §9.5).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub key: String,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

impl Record {
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// The merge rule of §9.5: counts and sums add, min and max combine.
    pub fn merge(&mut self, o: &Record) {
        self.sum += o.sum;
        self.count += o.count;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// A record as a writer stores it: one key, one bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub key: String,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
    /// The bin's tick (unix seconds).
    pub time: i64,
    /// Bin width in seconds.
    pub resolution: u64,
    /// Bin TTL in seconds.
    pub ttl: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_lines_to_keeps_whole_lines() {
        let mut b = Batch::from_lines(Bytes::from_static(b"aa\nbbbb\nc\nverylongline\nd\n"));
        assert_eq!(b.lines, 5);
        let mut pieces = Vec::new();
        while !b.is_empty() {
            let p = b.split_lines_to(8);
            assert!(p.lines >= 1);
            pieces.push((String::from_utf8_lossy(&p.data).into_owned(), p.lines));
        }
        assert_eq!(
            pieces,
            vec![
                ("aa\nbbbb\n".to_string(), 2),
                ("c\n".to_string(), 1),
                ("verylongline\n".to_string(), 1),
                ("d\n".to_string(), 1)
            ]
        );
        assert_eq!(b.lines, 0);
    }
}
