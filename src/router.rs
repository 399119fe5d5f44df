//! The router: the relay's hot path, one per listener task (a connection, the datagram socket, an HTTP request)
//! and one per accumulator output.
//!
//! Per framed line it splits the key ([`splitter`](crate::splitter)), applies the section's PreReg rules
//! ([`prereg`](crate::prereg)), and then keeps the line for the section's accumulator, or looks the key up in every
//! ring of the target section (`GetN(key, num_dupe_replicas)`) and appends the forwarded line plus `\n` to an
//! outgoing buffer per destination (or per shard of the accumulator, by key hash, kept beside the line for the
//! fold): the only copy of the line's bytes. After each read, [`Router::flush`] hands each buffer to its
//! destination's queue as one [`Batch`] (a [`KeyedBatch`] to an accumulator shard) and adds
//! the counts to the section's counters once.
//! Nothing here allocates per line once the buffers have grown, and the ring snapshots are loaded once per read.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::BytesMut;

use crate::backend::RingSet;
use crate::framing::Framed;
use crate::line::{Batch, KeyedBatch, LineKey, WhenFull};
use crate::prereg::Action;
use crate::section::Section;
use crate::splitter::{KeyScratch, Scratch, Splitter};
use crate::telemetry::InvalidReason;

#[derive(Debug, Default)]
struct Out {
    buf: BytesMut,
    lines: usize,
}

impl Out {
    fn push(&mut self, line: &[u8]) {
        self.buf.reserve(line.len() + 1);
        self.buf.extend_from_slice(line);
        self.buf.extend_from_slice(b"\n");
        self.lines += 1;
    }

    fn take(&mut self) -> Batch {
        Batch {
            data: self.buf.split().freeze(),
            lines: std::mem::take(&mut self.lines),
        }
    }
}

/// The outgoing buffer of one accumulator shard: its lines and their keys.
#[derive(Debug, Default)]
struct ShardOut {
    out: Out,
    keys: Vec<LineKey>,
}

impl ShardOut {
    fn push(&mut self, line: &[u8], key: (u64, u32)) {
        self.out.push(line);
        self.keys.push(LineKey::new(self.out.buf.len() - 1, key));
    }

    /// The batch; the next one's keys start with room for as many lines (one allocation per batch).
    fn take(&mut self) -> KeyedBatch {
        let room = self.keys.len();
        KeyedBatch {
            lines: self.out.take(),
            keys: std::mem::replace(&mut self.keys, Vec::with_capacity(room)),
        }
    }
}

#[derive(Debug, Default)]
struct Counts {
    all: u64,
    valid: u64,
    invalid: [u64; InvalidReason::LABELS.len()],
    copies: u64,
    no_server: u64,
    rejected: u64,
    /// Redirected lines by target slot (`Section::routes`).
    redirected: Vec<u64>,
    accumulated: u64,
    last_invalid: Option<(InvalidReason, Vec<u8>)>,
}

/// The outgoing buffers of one target section (the own one, or a redirect target).
#[derive(Debug, Default)]
struct TargetOut {
    /// Loaded at the first line of a read, dropped at flush.
    rings: Option<Arc<RingSet>>,
    outs: Vec<Out>,
    touched: Vec<u32>,
}

/// Where the lines a router sees come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A listener of the section: counted as input, PreReg and accumulator apply.
    Listener,
    /// Accumulator output into the section: straight to its rings, bypassing its PreReg and accumulator.
    Bypass,
}

/// Routes the lines of one task (a connection, the datagram socket, an HTTP request, an accumulator flush).
pub struct Router {
    section: Arc<Section>,
    splitter: Splitter,
    mode: Mode,
    scratch: Scratch,
    /// By slot of `Section::routes` (its own section first, then its redirect targets).
    targets: Vec<TargetOut>,
    touched_targets: Vec<usize>,
    /// By shard of the section's accumulator.
    to_accumulator: Vec<ShardOut>,
    key_scratch: KeyScratch,
    ids: Vec<u32>,
    counts: Counts,
    /// The first key of the current read, offered to the section's sample of recent keys at flush.
    sample: Vec<u8>,
}

impl Router {
    /// A router for a listener of `section`.
    pub fn new(section: Arc<Section>) -> Router {
        let splitter = section.splitter.clone();
        Router::with(section, splitter, Mode::Listener)
    }

    /// A router into `section` that splits with `splitter` (the accumulator's output splitter) and bypasses the
    /// section's PreReg and accumulator.
    pub fn bypass(section: Arc<Section>, splitter: Splitter) -> Router {
        Router::with(section, splitter, Mode::Bypass)
    }

    fn with(section: Arc<Section>, splitter: Splitter, mode: Mode) -> Router {
        let n = section.routes.len();
        Router {
            scratch: splitter.scratch(),
            splitter,
            mode,
            targets: (0..n).map(|_| TargetOut::default()).collect(),
            touched_targets: Vec::new(),
            to_accumulator: Vec::new(),
            key_scratch: KeyScratch::default(),
            ids: Vec::new(),
            counts: Counts {
                redirected: vec![0; n],
                ..Counts::default()
            },
            sample: Vec::new(),
            section,
        }
    }

    pub fn section(&self) -> &Arc<Section> {
        &self.section
    }

    /// Routes one framing result into the outgoing buffers.
    pub fn route(&mut self, framed: Framed<'_>) {
        self.counts.all += 1;
        let line = match framed {
            Framed::Line(l) => l,
            Framed::TooLong => return self.invalid(InvalidReason::TooLong, b""),
        };
        let split = match self.splitter.split(line, &mut self.scratch) {
            Ok(s) => s,
            Err(e) => return self.invalid(InvalidReason::Split(e), line),
        };
        self.counts.valid += 1;
        if self.sample.is_empty() {
            self.sample.extend_from_slice(split.key);
        }
        let s = &*self.section;
        let action = match (&s.prereg, self.mode) {
            (Some(p), Mode::Listener) => p.route(split.key),
            _ => Action::Own,
        };
        // the slot of the target section in `Section::routes` (0: the section itself)
        let slot = match action {
            Action::Reject => {
                self.counts.rejected += 1;
                return;
            }
            Action::Redirect(i) => {
                let Some(slot) = s.slot(i) else { return };
                self.counts.redirected[slot] += 1;
                slot
            }
            Action::Own => match (&s.accumulator, self.mode) {
                (Some(input), Mode::Listener) => {
                    let key = input.key_of(split.line, &mut self.key_scratch);
                    let shard = input.shard(key.0);
                    if shard >= self.to_accumulator.len() {
                        self.to_accumulator.resize_with(shard + 1, ShardOut::default);
                    }
                    self.to_accumulator[shard].push(split.line, key);
                    self.counts.accumulated += 1;
                    return;
                }
                _ => 0,
            },
        };
        let Some(backend) = s.backends.get(s.routes[slot]) else {
            return;
        };
        let t = &mut self.targets[slot];
        if t.rings.is_none() && t.touched.is_empty() {
            self.touched_targets.push(slot);
        }
        let rings = t.rings.get_or_insert_with(|| backend.load());
        for ring in &rings.rings {
            ring.get_n(split.key, rings.replicas, &mut self.ids);
            if self.ids.is_empty() {
                self.counts.no_server += 1;
            }
            for &id in &self.ids {
                let i = id as usize;
                if i >= t.outs.len() {
                    t.outs.resize_with(i + 1, Out::default);
                }
                if t.outs[i].lines == 0 {
                    t.touched.push(id);
                }
                t.outs[i].push(split.line);
                self.counts.copies += 1;
            }
        }
    }

    fn invalid(&mut self, reason: InvalidReason, line: &[u8]) {
        self.counts.invalid[reason.index()] += 1;
        if self.counts.last_invalid.is_none() {
            self.counts.last_invalid = Some((reason, line.iter().take(200).copied().collect()));
        }
    }

    /// Hands every buffered batch to its destination queue or the accumulator (a full one is waited for or
    /// dropped per `when_full`, spec §8.3), publishes the counters, and lets the next read pick up the latest ring
    /// snapshots. Returns the number of valid lines routed since the previous flush.
    pub async fn flush(&mut self, when_full: WhenFull) -> u64 {
        let valid = self.publish_counts();
        if !self.sample.is_empty() {
            self.section.sample_key(&self.sample);
            self.sample.clear();
        }
        for ti in std::mem::take(&mut self.touched_targets) {
            let t = &mut self.targets[ti];
            let Some(rings) = t.rings.take() else { continue };
            for id in std::mem::take(&mut t.touched) {
                let batch = t.outs[id as usize].take();
                if let Some(dest) = rings.dests.get(id as usize) {
                    dest.push(batch, when_full).await;
                }
            }
        }
        if let Some(input) = &self.section.accumulator {
            for (shard, out) in self.to_accumulator.iter_mut().enumerate() {
                if out.out.lines > 0 {
                    input.push(shard, out.take(), when_full).await;
                }
            }
        }
        valid
    }

    fn publish_counts(&mut self) -> u64 {
        let mut c = std::mem::take(&mut self.counts);
        self.counts.redirected = vec![0; c.redirected.len()];
        let s = &self.section.stats;
        if c.all == 0 {
            return 0;
        }
        if self.mode == Mode::Listener {
            s.all_lines.fetch_add(c.all, Relaxed);
            s.valid_lines.fetch_add(c.valid, Relaxed);
            for (total, n) in s.invalid_lines.iter().zip(c.invalid) {
                if n > 0 {
                    total.fetch_add(n, Relaxed);
                }
            }
        }
        s.worker_lines.fetch_add(c.copies, Relaxed);
        s.rejected_lines.fetch_add(c.rejected, Relaxed);
        s.accumulated_lines.fetch_add(c.accumulated, Relaxed);
        for (i, n) in c.redirected.iter().enumerate().filter(|(_, n)| **n > 0) {
            s.redirected_lines.fetch_add(*n, Relaxed);
            if let Some(per) = self.section.redirected_to.get(i) {
                per.fetch_add(*n, Relaxed);
            }
        }
        if let Some((reason, line)) = c.last_invalid.take() {
            if let Some(suppressed) = self.section.invalid_log.allow() {
                let what = match reason {
                    InvalidReason::TooLong => "line longer than max_line_length",
                    InvalidReason::Split(e) => e.message(),
                };
                let line = String::from_utf8_lossy(&line);
                tracing::warn!(section = %self.section.name, suppressed, "Invalid Line: {what} ({line})");
            }
        }
        if c.no_server > 0 {
            s.no_server_lines.fetch_add(c.no_server, Relaxed);
            if let Some(suppressed) = self.section.no_server_log.allow() {
                let lines = c.no_server;
                tracing::warn!(section = %self.section.name, lines, suppressed, "lines dropped: no server in ring");
            }
        }
        c.valid
    }
}
