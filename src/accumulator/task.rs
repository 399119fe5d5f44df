//! The running accumulator of a PreReg group (spec §9.1, §9.5): one task folds the batches its routers send,
//! flushes on base ticks aligned to the wall clock (`unix_ms % accumulate_flush_ms == 0`), sends the output lines
//! to the accumulator backend's rings through a bypass router (or nowhere for `BLACKHOLE`), merges the records into
//! the bins and, on each bin's own aligned tick, hands the bin to its writer queue. Missed ticks are not replayed.
//! On shutdown it drains its input and flushes everything pending, stamped with the next aligned tick of each.
//!
//! The aggregation state sits behind a mutex only so that the admin API can read it; the task is its only writer.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::bins::Bins;
use super::clock::{tick_secs, Clock};
use super::graphite::GraphiteAccumulator;
use super::input::AccInput;
use super::statsd::StatsdAccumulator;
use super::{Record, StatRepr};
use crate::config::{AccumulatorConfig, Format};
use crate::line::Batch;
use crate::listener::framing::frame_all;
use crate::section::Router;
use crate::telemetry::RateLimit;
use crate::writer::{WriterQueue, WriterStats};

/// The aggregation of one accumulator, by input format.
#[derive(Debug)]
pub enum Aggregator {
    Statsd(Box<StatsdAccumulator>),
    Graphite(GraphiteAccumulator),
}

impl Aggregator {
    pub fn new(cfg: &AccumulatorConfig) -> Result<Aggregator, String> {
        Ok(match cfg.input_format {
            Format::Statsd => Aggregator::Statsd(Box::new(StatsdAccumulator::new(&cfg.options, cfg.keep_keys)?)),
            Format::Graphite => Aggregator::Graphite(GraphiteAccumulator::new(cfg.keep_keys)),
        })
    }

    /// Folds one line; returns (valid samples, invalid samples).
    pub fn add(&mut self, line: &[u8]) -> (u32, u32) {
        match self {
            Aggregator::Statsd(a) => a.add(line),
            Aggregator::Graphite(a) => match a.add(line) {
                Ok(()) => (1, 0),
                Err(_) => (0, 1),
            },
        }
    }

    pub fn flush(
        &mut self,
        interval: Duration,
        tick: i64,
        format: Format,
        out: &mut Vec<u8>,
        records: &mut Vec<Record>,
    ) -> usize {
        match self {
            Aggregator::Statsd(a) => a.flush(interval.as_secs_f64(), tick, format, out, records),
            Aggregator::Graphite(a) => a.flush(tick, format, out, records),
        }
    }

    pub fn snapshot(&self) -> Vec<StatRepr> {
        match self {
            Aggregator::Statsd(a) => a.snapshot(),
            Aggregator::Graphite(a) => a.snapshot(),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Aggregator::Statsd(a) => a.len(),
            Aggregator::Graphite(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Counters of one accumulator.
#[derive(Debug, Default)]
pub struct AccStats {
    pub lines: AtomicU64,
    pub invalid: AtomicU64,
    pub flushes: AtomicU64,
    pub output_lines: AtomicU64,
    pub records: AtomicU64,
}

/// What the task, the routers and the admin API share.
#[derive(Debug)]
pub struct Accumulator {
    pub group: String,
    pub config: AccumulatorConfig,
    /// Where routers send the lines that stay in the section.
    pub input: AccInput,
    state: Mutex<Aggregator>,
    pub stats: AccStats,
    /// Unix ms of the last base flush (0 before the first).
    last_flush_ms: AtomicU64,
    clock: Clock,
    /// Per bin: (bin seconds, driver, counters), once the writers started.
    pub writer_stats: OnceLock<Vec<(u64, &'static str, Arc<WriterStats>)>>,
}

impl Accumulator {
    /// The shared part and the receiving end of its input, for the [`Task`].
    pub fn new(
        section: &str,
        group: &str,
        config: AccumulatorConfig,
        clock: Clock,
    ) -> Result<(Arc<Accumulator>, mpsc::Receiver<Batch>), String> {
        let (input, rx) = AccInput::new(section);
        let acc = Accumulator {
            group: group.to_string(),
            input,
            state: Mutex::new(Aggregator::new(&config)?),
            config,
            stats: AccStats::default(),
            last_flush_ms: AtomicU64::new(0),
            clock,
            writer_stats: OnceLock::new(),
        };
        Ok((Arc::new(acc), rx))
    }

    fn state(&self) -> MutexGuard<'_, Aggregator> {
        // The task folds and flushes in short critical sections that leave the state consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Distinct keys held now.
    pub fn keys(&self) -> usize {
        self.state().len()
    }

    /// `/<s>/accumulator`: the un-flushed state (spec §11).
    pub fn report(&self) -> Value {
        let now_ms = self.clock.now_ms();
        let first = self.config.times.first();
        let resolution = first.map_or(self.config.accumulate_flush, |b| b.interval).as_secs();
        let ttl = first.map_or(0, |b| b.ttl.as_secs());
        let finite = |v: f64| if v.is_finite() { v } else { 0.0 };
        let time = crate::telemetry::rfc3339(now_ms);
        let stats: Vec<Value> = self
            .state()
            .snapshot()
            .into_iter()
            .map(|s| {
                json!({
                    "key": s.key, "stat_key": s.stat_key, "min": finite(s.min), "max": finite(s.max),
                    "sum": finite(s.sum), "mean": finite(s.mean), "count": s.count, "time_ns": time,
                    "resolution": resolution, "ttl": ttl,
                })
            })
            .collect();
        let last = self.last_flush_ms.load(Relaxed);
        json!({
            "min_time": if last == 0 { now_ms / 1000 } else { last / 1000 },
            "max_time": now_ms / 1000,
            "stats": stats,
        })
    }
}

/// Everything the task owns besides the shared part.
pub struct Task {
    pub acc: Arc<Accumulator>,
    pub input: mpsc::Receiver<Batch>,
    /// The bypass router into the accumulator's backend section; `None` for `BLACKHOLE`.
    pub output: Option<Router>,
    pub max_line_length: usize,
    pub bins: Bins,
    /// One queue per bin; empty without writers (then bins do nothing).
    pub writers: Vec<WriterQueue>,
}

impl Task {
    pub async fn run(mut self, stop: CancellationToken) {
        let clock = self.acc.clock;
        let interval = self.acc.config.accumulate_flush;
        let mut base = clock.next_tick(interval);
        let bin_intervals = if self.writers.is_empty() {
            Vec::new()
        } else {
            self.bins.intervals()
        };
        let mut bin_ticks: Vec<(Instant, u64)> = bin_intervals.iter().map(|i| clock.next_tick(*i)).collect();
        let invalid_log = RateLimit::default();
        loop {
            let next_bin = bin_ticks.iter().map(|t| t.0).min();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                _ = sleep_until(base.0) => {}
                _ = sleep_until(next_bin.unwrap_or(base.0)), if next_bin.is_some() => {}
                batch = self.input.recv() => match batch {
                    Some(b) => { self.fold(&b, &invalid_log); continue; }
                    None => break,
                },
            }
            // A timer fired: the base flush first, then every bin whose tick has come (spec §9.5).
            let now = Instant::now();
            if base.0 <= now {
                self.base_flush(tick_secs(base.1)).await;
                base = clock.next_tick(interval);
            }
            for (i, t) in bin_ticks.iter_mut().enumerate() {
                if t.0 <= now {
                    self.bin_flush(i, tick_secs(t.1));
                    *t = clock.next_tick(bin_intervals[i]);
                }
            }
        }
        // Shutdown: what routers already sent, then everything pending, stamped with the next aligned ticks.
        while let Ok(b) = self.input.try_recv() {
            self.fold(&b, &invalid_log);
        }
        self.base_flush(tick_secs(base.1)).await;
        for (i, t) in bin_ticks.iter().enumerate() {
            self.bin_flush(i, tick_secs(t.1));
        }
    }

    fn fold(&mut self, batch: &Batch, log: &RateLimit) {
        let mut invalid = 0u64;
        {
            let mut state = self.acc.state();
            for line in batch.data.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                invalid += u64::from(state.add(line).1);
            }
        }
        self.acc.stats.lines.fetch_add(batch.lines as u64, Relaxed);
        if invalid > 0 {
            self.acc.stats.invalid.fetch_add(invalid, Relaxed);
            if let Some(suppressed) = log.allow() {
                tracing::warn!(group = %self.acc.group, invalid, suppressed, "accumulator: invalid samples dropped");
            }
        }
    }

    async fn base_flush(&mut self, tick: i64) {
        let (mut out, mut records) = (Vec::new(), Vec::new());
        let cfg = &self.acc.config;
        let lines = self
            .acc
            .state()
            .flush(cfg.accumulate_flush, tick, cfg.output_format, &mut out, &mut records);
        self.acc.last_flush_ms.store(self.acc.clock.now_ms(), Relaxed);
        self.acc.stats.flushes.fetch_add(1, Relaxed);
        self.acc.stats.output_lines.fetch_add(lines as u64, Relaxed);
        self.acc.stats.records.fetch_add(records.len() as u64, Relaxed);
        if let Some(router) = &mut self.output {
            frame_all(&out, self.max_line_length, |f| router.route(f));
            router.flush(true).await;
        }
        if !self.writers.is_empty() {
            self.bins.merge(&records);
        }
    }

    fn bin_flush(&mut self, bin: usize, tick: i64) {
        let points = self.bins.drain(bin, tick);
        if points.is_empty() {
            return;
        }
        if let Some(q) = self.writers.get(bin) {
            // a full queue skips the whole bin flush; the queue counts and logs it (spec §10.1)
            let _ = q.try_submit(points);
        }
    }
}
