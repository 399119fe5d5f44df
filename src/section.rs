//! A running section: what every router of the section shares (splitter, PreReg rules, its backend and the other
//! sections' backends for redirects, the input of its accumulator), its counters, and the input back-pressure of
//! its listener (spec §5.3).
//!
//! A `Section` never changes once built; membership changes happen inside its [`Backend`]. A reload builds a new
//! generation of every section: what must survive it (counters, the input budget, the connection limit, the
//! sample of recent keys, a kept accumulator's input) is shared with the previous generation through `Arc`s, so
//! a router or a connection still on the old generation and one on the new count into the same totals.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch, Notify};

use crate::backend::Backend;
use crate::config::{Format, MsgType, SectionConfig};
use crate::framing::Framing;
use crate::line::{Batch, KeyedBatch, LineKey, WhenFull};
use crate::prereg::PreReg;
use crate::ring::RingKind;
use crate::splitter::{accumulator_key, key_hash, plain_key_len, AccumulatorKey, KeyScratch, RegexSplitter, Splitter};
use crate::telemetry::{RateLimit, SectionStats};

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
    /// Every section's backend, by section index (redirect targets); one list shared by all sections.
    pub backends: Arc<[Arc<Backend>]>,
    /// The sections its lines can go to, by slot: its own index first, then its PreReg's redirect targets.
    /// Routers and the per-target counters are sized by this, not by the number of sections.
    pub routes: Vec<usize>,
    pub prereg: Option<PreReg>,
    /// The input of the section's accumulator: where the lines that stay in the section go when it has one.
    pub accumulator: Option<Arc<AccumulatorInput>>,
    /// Shared by every generation of the section.
    pub stats: Arc<SectionStats>,
    /// Lines redirected to each slot of `routes` (its own slot unused).
    pub redirected_to: Vec<AtomicU64>,
    pub framing: Framing,
    /// Input back-pressure threshold (spec §5.3).
    pub max_read_buffer_size: usize,
    /// Largest HTTP body (0 = no limit).
    pub max_body_size: usize,
    /// A permit per connection its listener serves (`max_connections` as the listener started).
    pub connections: Arc<tokio::sync::Semaphore>,
    /// Woken when `stats.read_buffer_bytes` decreases (shared by every generation of the section).
    pub read_buffer_drained: Arc<Notify>,
    /// Rate limits of the router's warnings about invalid lines and lines without a server.
    pub(crate) invalid_log: RateLimit,
    pub(crate) no_server_log: RateLimit,
    recent: Arc<Mutex<RecentKeys>>,
}

/// Every section of the current generation, in config order (replaced whole by a reload): what the accumulators'
/// outputs, self-stats and the stats log read.
pub type Sections = Arc<arc_swap::ArcSwap<Vec<Arc<Section>>>>;

/// The current generation of a section as a listener sees it; a reload sends the next one
/// ([`next_generation`]).
pub type SectionWatch = watch::Receiver<Arc<Section>>;

/// Waits for the next generation of the section; never returns when no reload can come any more.
pub async fn next_generation(w: &mut SectionWatch) -> Arc<Section> {
    match w.changed().await {
        Ok(()) => w.borrow_and_update().clone(),
        Err(_) => std::future::pending().await,
    }
}

/// The splitter of a section's `msg_type`.
fn splitter_of(cfg: &SectionConfig) -> Splitter {
    match cfg.msg_type {
        MsgType::Graphite => Splitter::Graphite(cfg.graphite_names),
        MsgType::Statsd if cfg.hashing.ring_spec.kind == RingKind::StatsdHashring => Splitter::StatsdProxy,
        MsgType::Statsd => Splitter::Statsd,
        MsgType::Regex => Splitter::Regex(
            cfg.msg_regex
                .clone()
                .and_then(RegexSplitter::new)
                .expect("config validation: a regex section has a msg_regex with a Key group"),
        ),
    }
}

/// How many recently routed keys a section keeps (one per read) for dry runs of ring changes.
pub const RECENT_KEYS: usize = 4096;

#[derive(Debug, Default)]
struct RecentKeys {
    slots: Vec<Vec<u8>>,
    next: usize,
}

impl Section {
    /// The section of `cfg` at `index` among `backends` (every section's backend, by index), with its PreReg
    /// rules and the input of its accumulator. `previous` is the generation it replaces on a reload: its counters,
    /// input budget, recent keys and (when `max_connections` is the same) connection limit carry over.
    pub fn new(
        cfg: &SectionConfig,
        index: usize,
        backends: Arc<[Arc<Backend>]>,
        prereg: Option<PreReg>,
        accumulator: Option<Arc<AccumulatorInput>>,
        previous: Option<&Section>,
    ) -> Section {
        let mut routes = vec![index];
        routes.extend(prereg.iter().flat_map(PreReg::redirect_targets).filter(|t| *t != index));
        // a redirect target keeps its count across a reload when it keeps its name
        let carried = |target: usize| {
            let name = &backends[target].name;
            previous
                .and_then(|p| {
                    p.routes
                        .iter()
                        .position(|r| p.backends[*r].name == *name)
                        .map(|i| &p.redirected_to[i])
                })
                .map_or(0, |n| n.load(Relaxed))
        };
        let redirected_to = routes.iter().map(|t| AtomicU64::new(carried(*t))).collect();
        // the listener's connection limit is fixed while it runs, like its socket
        let connections = previous.map_or_else(
            || {
                let max = cfg.input.max_connections.min(tokio::sync::Semaphore::MAX_PERMITS);
                Arc::new(tokio::sync::Semaphore::new(max))
            },
            |p| p.connections.clone(),
        );
        let splitter = splitter_of(cfg);
        Section {
            name: cfg.name.clone(),
            listening: cfg.listening(),
            framing: Framing {
                max_line_length: cfg.input.max_line_length,
                trim: splitter.trims(),
            },
            splitter,
            index,
            backend: backends[index].clone(),
            backends,
            routes,
            prereg,
            accumulator,
            stats: previous.map_or_else(Arc::default, |p| p.stats.clone()),
            redirected_to,
            max_read_buffer_size: cfg.input.max_read_buffer_size,
            max_body_size: cfg.input.max_body_size,
            connections,
            read_buffer_drained: previous.map_or_else(Arc::default, |p| p.read_buffer_drained.clone()),
            invalid_log: RateLimit::default(),
            no_server_log: RateLimit::default(),
            recent: previous.map_or_else(Arc::default, |p| p.recent.clone()),
        }
    }

    /// Remembers a routed key (the slots are reused: no allocation once full).
    pub(crate) fn sample_key(&self, key: &[u8]) {
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

    /// The slot of section `target` in [`Section::routes`].
    pub fn slot(&self, target: usize) -> Option<usize> {
        self.routes.iter().position(|r| *r == target)
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

/// Batches each shard's channel of an accumulator input holds.
pub const ACCUMULATOR_INPUT_BATCHES: usize = 1024;

/// How many of a per-thread part (UDP receive sockets, accumulator shards) a setting asks for: 0 = one per worker
/// thread of the running runtime; at most `max`.
pub fn per_worker(configured: usize, max: usize) -> usize {
    match configured {
        0 => tokio::runtime::Handle::try_current().map_or(1, |h| h.metrics().num_workers()),
        n => n,
    }
    .clamp(1, max.max(1))
}

/// The bounded channels in front of a section's accumulator, one per shard: routers send each shard a batch of the
/// lines that stay in the section whose key hashes to it ([`AccumulatorInput::shard`]), with their keys. Stream
/// listeners wait for room (back-pressure); UDP listeners drop and count what does not fit.
#[derive(Debug)]
pub struct AccumulatorInput {
    shards: Vec<mpsc::Sender<KeyedBatch>>,
    /// What the accumulator reads, which says where a line's key is.
    format: Format,
    /// Lines accepted into the channels.
    pub accepted: AtomicU64,
    /// Lines dropped because a channel was full (UDP) or closed (shutdown).
    pub dropped: AtomicU64,
    log: RateLimit,
    section: String,
}

impl AccumulatorInput {
    /// The input of an accumulator of `shards` shards reading `format`, and the receiving end of each shard's
    /// channel, which the accumulator's fold tasks read.
    pub fn new(section: &str, shards: usize, format: Format) -> (AccumulatorInput, Vec<mpsc::Receiver<KeyedBatch>>) {
        let (txs, rxs) = (0..shards.max(1))
            .map(|_| mpsc::channel(ACCUMULATOR_INPUT_BATCHES))
            .unzip();
        let input = AccumulatorInput {
            shards: txs,
            format,
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            log: RateLimit::default(),
            section: section.to_string(),
        };
        (input, rxs)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The [`key_hash`] of the key the accumulator folds `line` under (statsd: with its tags and sanitized;
    /// graphite: the first field), 0 for a line without a key (invalid, counted by the fold); and the key's length
    /// when the line is `key:values` as it is (statsd), else 0 ([`LineKey::key_len`]).
    pub fn key_of(&self, line: &[u8], scratch: &mut KeyScratch) -> (u64, u32) {
        match self.format {
            Format::Statsd => {
                if let Some(len) = plain_key_len(line) {
                    return (key_hash(&line[..len]), len as u32);
                }
                let text = crate::splitter::decode(line);
                let decoded_as_is = matches!(text, std::borrow::Cow::Borrowed(_));
                match accumulator_key(&text, scratch) {
                    Some(AccumulatorKey { key, as_is, .. }) => {
                        let len = if as_is && decoded_as_is { key.len() as u32 } else { 0 };
                        (key_hash(key.as_bytes()), len)
                    }
                    None => (0, 0),
                }
            }
            Format::Graphite => {
                let Some(key) = line.split(u8::is_ascii_whitespace).find(|f| !f.is_empty()) else {
                    return (0, 0);
                };
                match std::str::from_utf8(key) {
                    Ok(_) => (key_hash(key), 0),
                    // the accumulator decodes it lossily: invalid sequences that decode alike are one key
                    Err(_) => (key_hash(String::from_utf8_lossy(key).as_bytes()), 0),
                }
            }
        }
    }

    /// The shard of a key hash, so that every line of one key lands in one shard: bits 32..56 of the hash scaled to
    /// the shards, bits that a shard's key map does not read (hashbrown takes a bucket from the low bits and a
    /// bucket's tag from the top 7), so the keys of one shard spread over all of its map.
    pub fn shard(&self, hash: u64) -> usize {
        ((((hash >> 32) & 0xff_ffff) * self.shards.len() as u64) >> 24) as usize
    }

    /// The batch of `lines` (newline-terminated) with each line's key, as a router builds it.
    pub fn keyed(&self, lines: Batch, scratch: &mut KeyScratch) -> KeyedBatch {
        let mut start = 0;
        let keys = memchr::memchr_iter(b'\n', &lines.data)
            .map(|end| {
                let key = LineKey::new(end, self.key_of(&lines.data[start..end], scratch));
                start = end + 1;
                key
            })
            .collect();
        KeyedBatch { lines, keys }
    }

    /// Sends `batch` to shard `shard`'s channel, waiting for room or dropping per `when_full`.
    pub async fn push(&self, shard: usize, batch: KeyedBatch, when_full: WhenFull) {
        let lines = batch.lines.lines as u64;
        let tx = &self.shards[shard];
        let sent = match when_full {
            WhenFull::Wait => tx.send(batch).await.is_ok(),
            WhenFull::Drop => tx.try_send(batch).is_ok(),
        };
        if sent {
            self.accepted.fetch_add(lines, Relaxed);
        } else {
            self.dropped.fetch_add(lines, Relaxed);
            if let Some(suppressed) = self.log.allow() {
                tracing::warn!(section = %self.section, lines, suppressed, "accumulator input full: lines dropped");
            }
        }
    }
}

/// What one stream (a connection, an HTTP body) holds against its section's `max_read_buffer_size`: the bytes it
/// read and has not routed yet, including a partial last line waiting for the rest of its bytes, so that many
/// clients holding half lines cannot go on reading past the budget. A connection reserves each read before it
/// reads ([`ReadHold::reserve`], once the socket is readable): at most the room left, waiting while there is none.
/// A stream in the middle of a line may always take [`MID_LINE_READ`] bytes (only the rest of its line frees what
/// it holds, else half lines would wait for each other forever), so the budget is exceeded by at most that much per
/// such connection. An HTTP body cannot be read in reserved pieces: it waits for room ([`ReadHold::room`]) and
/// holds what each piece brings.
#[derive(Debug)]
pub struct ReadHold {
    /// What it holds counts in these totals (shared by every generation of the section, so a connection that
    /// outlives a reload keeps no old generation alive).
    stats: Arc<SectionStats>,
    drained: Arc<Notify>,
    max: usize,
    held: usize,
    reserved: usize,
}

/// What a stream holding a partial line may read beyond the budget.
pub const MID_LINE_READ: usize = 4096;

impl ReadHold {
    pub fn new(section: &Section) -> ReadHold {
        ReadHold {
            stats: section.stats.clone(),
            drained: section.read_buffer_drained.clone(),
            max: section.max_read_buffer_size,
            held: 0,
            reserved: 0,
        }
    }

    fn release(&self, n: usize) {
        self.stats.read_buffer_bytes.fetch_sub(n as u64, Relaxed);
        self.drained.notify_waiters();
    }

    /// Reserves room for the next read of at most `chunk` bytes; returns how many bytes it may read (> 0).
    pub async fn reserve(&mut self, chunk: usize) -> usize {
        self.reserve_at_least(chunk, 1).await
    }

    /// Reserves room for a read that may bring up to `piece` bytes (an HTTP body frame, whose size is known only
    /// once it is read): waits until the whole piece fits (or the budget is empty, when it is smaller than a piece);
    /// a request in the middle of a line may take a piece beyond the budget, as a stream may read
    /// [`MID_LINE_READ`], so that half lines holding the whole budget cannot stop every reader for good.
    pub async fn reserve_piece(&mut self, piece: usize) -> usize {
        let piece = piece.min(self.max.max(1));
        let at_least = if self.held > 0 { 1 } else { piece };
        self.reserve_at_least(piece, at_least).await
    }

    async fn reserve_at_least(&mut self, chunk: usize, at_least: usize) -> usize {
        let counter = &self.stats.read_buffer_bytes;
        loop {
            let drained = self.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            let mut used = counter.load(Relaxed);
            loop {
                let room = (self.max as u64).saturating_sub(used);
                let allowed = if self.held > 0 {
                    room.max(MID_LINE_READ as u64)
                } else {
                    room
                };
                let r = allowed.min(chunk as u64);
                if r == 0 || r < at_least as u64 {
                    break;
                }
                match counter.compare_exchange_weak(used, used + r, Relaxed, Relaxed) {
                    Ok(_) => {
                        self.reserved += r as usize;
                        return r as usize;
                    }
                    Err(now) => used = now,
                }
            }
            drained.await;
        }
    }

    /// Gives back a reservation that was not read (the socket had nothing after all).
    pub fn unreserve(&mut self) {
        let reserved = std::mem::take(&mut self.reserved);
        self.release(reserved);
    }

    /// `n` bytes were read (within what was reserved, if anything was).
    pub fn read(&mut self, n: usize) {
        match std::mem::take(&mut self.reserved) {
            0 => {
                self.stats.bytes_read.fetch_add(n as u64, Relaxed);
                self.stats.read_buffer_bytes.fetch_add(n as u64, Relaxed);
            }
            // the reservation already counts: give back what the read did not use
            reserved => {
                self.stats.bytes_read.fetch_add(n as u64, Relaxed);
                if reserved > n {
                    self.release(reserved - n);
                } else {
                    // a frame larger than its reservation (a half line's allowance): the rest counts too
                    let over = (n - reserved) as u64;
                    self.stats.read_buffer_bytes.fetch_add(over, Relaxed);
                }
            }
        }
        self.held += n;
    }

    /// Everything was routed but `rest` bytes (a partial last line), which stay held.
    pub fn keep(&mut self, rest: usize) {
        let rest = rest.min(self.held);
        self.release(self.held - rest);
        self.held = rest;
    }
}

impl Drop for ReadHold {
    fn drop(&mut self) {
        self.release(self.held + self.reserved);
    }
}
