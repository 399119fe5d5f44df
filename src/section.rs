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

use crate::accumulator::task::Accumulator;
use crate::backend::{Backend, RingSet};
use crate::line::Batch;
use crate::listener::framing::Framed;
use crate::prereg::{Action, PreReg};
use crate::splitter::{Scratch, Splitter};
use crate::telemetry::{InvalidReason, RateLimit, SectionStats};

/// The runtime of one configured section.
#[derive(Debug)]
pub struct Section {
    pub name: String,
    /// The listen URL as shown in stats, or `BACKEND-ONLY`.
    pub listening: String,
    pub splitter: Splitter,
    /// This section's index in the process's section list.
    pub index: usize,
    pub backend: Arc<Backend>,
    /// Every section's backend, by section index (redirect targets).
    pub backends: Vec<Arc<Backend>>,
    pub prereg: Option<PreReg>,
    pub accumulator: Option<Arc<Accumulator>>,
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
            index: 0,
            backends: vec![backend.clone()],
            prereg: None,
            accumulator: None,
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

    /// Places the section at `index` among `backends` (every section's backend), with its PreReg rules and its
    /// accumulator.
    pub fn with_routing(
        mut self,
        index: usize,
        backends: Vec<Arc<Backend>>,
        prereg: Option<PreReg>,
        accumulator: Option<Arc<Accumulator>>,
    ) -> Section {
        self.stats.redirected_to = (0..backends.len()).map(|_| Default::default()).collect();
        self.index = index;
        self.backends = backends;
        self.prereg = prereg;
        self.accumulator = accumulator;
        self
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

#[derive(Debug, Default)]
struct Counts {
    all: u64,
    valid: u64,
    invalid: [u64; 4],
    copies: u64,
    no_server: u64,
    rejected: u64,
    /// Redirected lines by target section index.
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
    /// By section index.
    targets: Vec<TargetOut>,
    touched_targets: Vec<usize>,
    to_accumulator: Out,
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
        let n = section.backends.len().max(section.index + 1);
        Router {
            scratch: splitter.scratch(),
            splitter,
            mode,
            targets: (0..n).map(|_| TargetOut::default()).collect(),
            touched_targets: Vec::new(),
            to_accumulator: Out::default(),
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
        let target = match action {
            Action::Reject => {
                self.counts.rejected += 1;
                return;
            }
            Action::Redirect(i) => {
                self.counts.redirected[i] += 1;
                i
            }
            Action::Own => match (&s.accumulator, self.mode) {
                (Some(_), Mode::Listener) => {
                    self.to_accumulator.push(split.line);
                    self.counts.accumulated += 1;
                    return;
                }
                _ => s.index,
            },
        };
        let Some(backend) = s.backends.get(target) else { return };
        let t = &mut self.targets[target];
        if t.rings.is_none() && t.touched.is_empty() {
            self.touched_targets.push(target);
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

    /// Hands every buffered batch to its destination queue or the accumulator (waiting for room with `wait`, spec
    /// §8.3), publishes the counters, and lets the next read pick up the latest ring snapshots. Returns the number
    /// of valid lines routed since the previous flush.
    pub async fn flush(&mut self, wait: bool) -> u64 {
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
                    dest.push(batch, wait).await;
                }
            }
        }
        if self.to_accumulator.lines > 0 {
            let batch = self.to_accumulator.take();
            if let Some(acc) = &self.section.accumulator {
                acc.input.push(batch, wait).await;
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
            if let Some(per) = s.redirected_to.get(i) {
                per.fetch_add(*n, Relaxed);
            }
        }
        if let Some((reason, line)) = c.last_invalid.take() {
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
