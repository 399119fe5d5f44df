//! A running section and the [`Router`] that takes one listener task's lines to destination batches.
//!
//! The router is the relay's hot path. Per framed line it splits, looks the key up in every ring
//! (`GetN(key, num_dupe_replicas)`) and appends the forwarded line plus `\n` to an outgoing buffer per
//! destination: the only copy of the line's bytes. After each read, [`Router::flush`] hands each buffer to its
//! destination's queue as one [`Batch`] and adds the counts to the section's counters once. Nothing here allocates
//! per line once the buffers have grown.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use bytes::BytesMut;
use tokio::sync::Notify;

use crate::backend::{Backend, RingSet};
use crate::line::Batch;
use crate::listener::framing::Framed;
use crate::splitter::{Scratch, Splitter};
use crate::telemetry::{InvalidReason, RateLimit, SectionStats};

/// The runtime of one configured section.
#[derive(Debug)]
pub struct Section {
    pub name: String,
    /// The listen URL as shown in stats, or `BACKEND-ONLY`.
    pub listening: String,
    pub splitter: Splitter,
    pub backend: Arc<Backend>,
    pub stats: SectionStats,
    pub max_line_length: usize,
    /// Input back-pressure threshold (spec §5.3).
    pub max_read_buffer_size: usize,
    /// Woken when `stats.read_buffer_bytes` decreases.
    pub read_buffer_drained: Notify,
    invalid_log: RateLimit,
    no_server_log: RateLimit,
    recent: Mutex<RecentKeys>,
}

/// How many recently routed keys a section keeps (one per read) for dry runs of ring changes.
pub const RECENT_KEYS: usize = 4096;

#[derive(Debug, Default)]
struct RecentKeys {
    slots: Vec<Vec<u8>>,
    next: usize,
}

impl Section {
    pub fn new(
        name: &str,
        listening: String,
        splitter: Splitter,
        backend: Arc<Backend>,
        max_line_length: usize,
        max_read_buffer_size: usize,
    ) -> Section {
        Section {
            name: name.to_string(),
            listening,
            splitter,
            backend,
            stats: SectionStats::default(),
            max_line_length,
            max_read_buffer_size,
            read_buffer_drained: Notify::new(),
            invalid_log: RateLimit::default(),
            no_server_log: RateLimit::default(),
            recent: Mutex::default(),
        }
    }

    /// Remembers a routed key (the slots are reused: no allocation once full).
    fn sample_key(&self, key: &[u8]) {
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let next = r.next;
        if r.slots.len() < RECENT_KEYS {
            r.slots.push(key.to_vec());
        } else {
            let slot = &mut r.slots[next];
            slot.clear();
            slot.extend_from_slice(key);
        }
        r.next = (next + 1) % RECENT_KEYS;
    }

    /// A copy of the recently routed keys (at most [`RECENT_KEYS`]).
    pub fn recent_keys(&self) -> Vec<Vec<u8>> {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).slots.clone()
    }

    /// Waits while the section holds more read-but-unrouted bytes than `max_read_buffer_size`.
    pub async fn wait_read_room(&self) {
        loop {
            let drained = self.read_buffer_drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            if self.stats.read_buffer_bytes.load(Relaxed) as usize <= self.max_read_buffer_size {
                return;
            }
            drained.await;
        }
    }

    /// Accounts `n` bytes read and not yet routed.
    pub fn hold_read(&self, n: usize) {
        self.stats.bytes_read.fetch_add(n as u64, Relaxed);
        self.stats.read_buffer_bytes.fetch_add(n as u64, Relaxed);
    }

    /// The `n` bytes of an earlier [`Section::hold_read`] are routed.
    pub fn release_read(&self, n: usize) {
        self.stats.read_buffer_bytes.fetch_sub(n as u64, Relaxed);
        self.read_buffer_drained.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct Out {
    buf: BytesMut,
    lines: usize,
}

#[derive(Debug, Default)]
struct Counts {
    all: u64,
    valid: u64,
    invalid: [u64; 4],
    copies: u64,
    no_server: u64,
    last_invalid: Option<(InvalidReason, Vec<u8>)>,
}

/// Routes the lines of one listener task (connection, datagram socket, HTTP request) of a section.
pub struct Router {
    section: Arc<Section>,
    scratch: Scratch,
    rings: Arc<RingSet>,
    outs: Vec<Out>,
    touched: Vec<u32>,
    ids: Vec<u32>,
    counts: Counts,
    /// The first key of the current read, offered to the section's sample of recent keys at flush.
    sample: Vec<u8>,
}

impl Router {
    pub fn new(section: Arc<Section>) -> Router {
        Router {
            scratch: section.splitter.scratch(),
            rings: section.backend.load(),
            section,
            outs: Vec::new(),
            touched: Vec::new(),
            ids: Vec::new(),
            counts: Counts::default(),
            sample: Vec::new(),
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
        let split = match self.section.splitter.split(line, &mut self.scratch) {
            Ok(s) => s,
            Err(e) => return self.invalid(InvalidReason::Split(e), line),
        };
        self.counts.valid += 1;
        if self.sample.is_empty() {
            self.sample.extend_from_slice(split.key);
        }
        for ring in &self.rings.rings {
            ring.get_n(split.key, self.rings.replicas, &mut self.ids);
            if self.ids.is_empty() {
                self.counts.no_server += 1;
            }
            for &id in &self.ids {
                let i = id as usize;
                if i >= self.outs.len() {
                    self.outs.resize_with(i + 1, Out::default);
                }
                let out = &mut self.outs[i];
                if out.lines == 0 {
                    self.touched.push(id);
                }
                out.buf.reserve(split.line.len() + 1);
                out.buf.extend_from_slice(split.line);
                out.buf.extend_from_slice(b"\n");
                out.lines += 1;
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

    /// Hands every buffered batch to its destination queue (waiting for room with `wait`, spec §8.3), publishes
    /// the counters, and picks up the latest ring snapshot for the next read. Returns the number of valid lines
    /// routed since the previous flush.
    pub async fn flush(&mut self, wait: bool) -> u64 {
        let valid = self.publish_counts();
        if !self.sample.is_empty() {
            self.section.sample_key(&self.sample);
            self.sample.clear();
        }
        for id in std::mem::take(&mut self.touched) {
            let out = &mut self.outs[id as usize];
            let batch = Batch {
                data: out.buf.split().freeze(),
                lines: std::mem::take(&mut out.lines),
            };
            if let Some(dest) = self.rings.dests.get(id as usize) {
                dest.push(batch, wait).await;
            }
        }
        self.rings = self.section.backend.load();
        valid
    }

    fn publish_counts(&mut self) -> u64 {
        let c = std::mem::take(&mut self.counts);
        let s = &self.section.stats;
        if c.all == 0 {
            return 0;
        }
        s.all_lines.fetch_add(c.all, Relaxed);
        s.valid_lines.fetch_add(c.valid, Relaxed);
        s.worker_lines.fetch_add(c.copies, Relaxed);
        for (total, n) in s.invalid_lines.iter().zip(c.invalid) {
            if n > 0 {
                total.fetch_add(n, Relaxed);
            }
        }
        if let Some((reason, line)) = c.last_invalid {
            if let Some(suppressed) = self.section.invalid_log.allow() {
                let what = match reason {
                    InvalidReason::TooLong => "line longer than max_line_length",
                    InvalidReason::Split(e) => e.message(),
                };
                tracing::warn!(section = %self.section.name, suppressed, "Invalid Line: {what} ({})", String::from_utf8_lossy(&line));
            }
        }
        if c.no_server > 0 {
            s.no_server_lines.fetch_add(c.no_server, Relaxed);
            if let Some(suppressed) = self.section.no_server_log.allow() {
                tracing::warn!(section = %self.section.name, lines = c.no_server, suppressed, "lines dropped: no server in ring");
            }
        }
        c.valid
    }
}
