//! The running accumulator of a PreReg group (spec §9.1, §9.5). Its state is split by key hash into shards
//! ([`AccumulatorInput::shard`](crate::section::AccumulatorInput::shard)): routers send each shard its own batches
//! and one fold task per shard folds them, so the fold runs on as many threads as there are shards. The
//! accumulator's task flushes on base ticks aligned to the wall clock (`unix_ms % accumulate_flush_ms == 0`):
//! every shard renders on a blocking thread, the output lines go to the accumulator backend's rings through a
//! bypass router (or nowhere for `BLACKHOLE`), the records are merged into the bins and, on each bin's own aligned
//! tick, a bin goes to its writer queue. Missed ticks are not replayed. On shutdown the fold tasks drain their input
//! and everything pending is flushed, stamped with the next aligned tick of each.
//!
//! Invariants: every line of one key is in one shard, folded in the order its router sent it; a flush of the shards
//! is the flush of one state holding them all (keys are disjoint, and statsd emits nothing across keys). A shard's
//! state sits behind a mutex that its fold task takes per batch, the flush to take (or, with `keep_keys`, render)
//! it, and the admin API to read it. `max_keys` bounds the shards together ([`KeyBound`]).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::bins::Bins;
use super::{KeyBound, StatRepr, State};
use crate::clock::{tick_secs, Clock};
use crate::config::{AccumulatorConfig, Format, MAX_SHARDS};
use crate::framing::{frame_all, Framing};
use crate::line::{KeyedBatch, Record, WhenFull};
use crate::router::Router;
use crate::section::{per_worker, Section, Sections};
use crate::splitter::{GraphiteNames, Splitter};
use crate::telemetry::RateLimit;
use crate::writer::{QueueStatus, WriterQueue};

/// Counters of one accumulator.
#[derive(Debug, Default)]
pub struct AccumulatorStats {
    pub lines: AtomicU64,
    pub invalid: AtomicU64,
    /// Samples dropped because their key was new and the accumulator held `max_keys` keys.
    pub over_max_keys: AtomicU64,
    pub flushes: AtomicU64,
    pub output_lines: AtomicU64,
    pub records: AtomicU64,
}

/// What the task and the admin API share.
#[derive(Debug)]
pub struct Accumulator {
    pub group: String,
    pub config: AccumulatorConfig,
    /// The state by shard.
    shards: Vec<Arc<Mutex<State>>>,
    /// The live states' `max_keys` bound (its held count is every shard's keys).
    bound: KeyBound,
    pub stats: AccumulatorStats,
    /// Unix ms of the last base flush (0 before the first).
    last_flush_ms: AtomicU64,
    /// How long the last base flush took, from taking the state to its lines routed, in µs.
    last_flush_us: AtomicU64,
    pub clock: Clock,
    /// Per bin, then the indexer: its queue and counters, once the writers started.
    pub writer_stats: OnceLock<Vec<QueueStatus>>,
    /// Rate limits of the "max_keys reached" and "invalid samples" warnings.
    max_keys_log: RateLimit,
    invalid_log: RateLimit,
}

impl Accumulator {
    /// The accumulator of `config`, with `config.shards` shards (0: one per worker thread of the running runtime).
    pub fn new(group: &str, config: AccumulatorConfig, clock: Clock) -> Arc<Accumulator> {
        let bound = KeyBound::new(config.max_keys);
        let shards = (0..per_worker(config.shards, MAX_SHARDS))
            .map(|_| Arc::new(Mutex::new(State::new(&config, bound.share()))))
            .collect();
        Arc::new(Accumulator {
            group: group.to_string(),
            shards,
            bound,
            config,
            stats: AccumulatorStats::default(),
            last_flush_ms: AtomicU64::new(0),
            last_flush_us: AtomicU64::new(0),
            clock,
            writer_stats: OnceLock::new(),
            max_keys_log: RateLimit::default(),
            invalid_log: RateLimit::default(),
        })
    }

    /// Number of shards (the size of its input, [`crate::section::AccumulatorInput::new`]).
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// Distinct keys held now.
    pub fn keys(&self) -> usize {
        self.bound.held()
    }

    /// The un-flushed state, one entry per key and type (`/<s>/accumulator`).
    pub async fn snapshot(&self) -> Vec<StatRepr> {
        let mut all = Vec::new();
        for shard in &self.shards {
            all.extend(shard.lock().await.snapshot());
        }
        all
    }

    /// Unix ms of the last base flush, `None` before the first.
    pub fn last_flush_ms(&self) -> Option<u64> {
        Some(self.last_flush_ms.load(Relaxed)).filter(|&ms| ms != 0)
    }

    /// How long the last base flush took (zero before the first).
    pub fn last_flush_duration(&self) -> Duration {
        Duration::from_micros(self.last_flush_us.load(Relaxed))
    }

    /// Folds one batch into shard `shard`.
    async fn fold(&self, shard: usize, batch: &KeyedBatch) {
        let (invalid, over_max_keys) = {
            let mut state = self.shards[shard].lock().await;
            (state.add_batch(batch), state.take_over_max_keys())
        };
        if over_max_keys > 0 {
            self.stats.over_max_keys.fetch_add(over_max_keys, Relaxed);
            if let Some(suppressed) = self.max_keys_log.allow() {
                tracing::warn!(
                    group = %self.group, dropped = over_max_keys, max_keys = self.config.max_keys, suppressed,
                    "accumulator: samples of new keys dropped, max_keys reached"
                );
            }
        }
        self.stats.lines.fetch_add(batch.lines.lines as u64, Relaxed);
        if invalid > 0 {
            self.stats.invalid.fetch_add(invalid, Relaxed);
            if let Some(suppressed) = self.invalid_log.allow() {
                tracing::warn!(group = %self.group, invalid, suppressed, "accumulator: invalid samples dropped");
            }
        }
    }

    /// The fold task of one shard: folds its batches until `stop`, then what its routers already sent; ends early
    /// once every sender is gone.
    async fn fold_shard(self: Arc<Self>, shard: usize, mut input: mpsc::Receiver<KeyedBatch>, stop: CancellationToken) {
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                batch = input.recv() => match batch {
                    Some(b) => self.fold(shard, &b).await,
                    None => return,
                },
            }
        }
        while let Ok(b) = input.try_recv() {
            self.fold(shard, &b).await;
        }
    }
}

/// Where an accumulator's output lines go: a bypass router into the current generation of its backend section
/// (looked up by name at each flush, so that a reload that replaced the section is followed).
pub struct Output {
    target: String,
    sections: Sections,
    format: Format,
    router: Option<Router>,
    framing: Framing,
}

impl Output {
    /// Output in `format` into the section named `target` of `sections`.
    pub fn new(target: &str, sections: Sections, format: Format) -> Output {
        Output {
            target: target.to_string(),
            sections,
            format,
            router: None,
            framing: Framing::new(usize::MAX),
        }
    }

    /// The router into the current generation of the target (rebuilt when a reload replaced it).
    fn router(&mut self) -> Option<(&mut Router, Framing)> {
        let current = self.sections.load().iter().find(|s| s.name == self.target).cloned();
        if let Some(s) = current {
            if !self.router.as_ref().is_some_and(|r| Arc::ptr_eq(r.section(), &s)) {
                self.framing = s.framing;
                self.router = Some(Router::bypass(s.clone(), output_splitter(self.format, &s)));
            }
        }
        Some((self.router.as_mut()?, self.framing))
    }
}

/// The splitter that re-splits an accumulator's output lines: the target section's own when it reads that format
/// (so its name rules apply), else the default one.
pub fn output_splitter(format: Format, target: &Section) -> Splitter {
    match (format, &target.splitter) {
        (Format::Graphite, s @ Splitter::Graphite(_))
        | (Format::Statsd, s @ (Splitter::Statsd | Splitter::StatsdProxy)) => s.clone(),
        (Format::Graphite, _) => Splitter::Graphite(GraphiteNames::Consthash),
        (Format::Statsd, _) => Splitter::Statsd,
    }
}

/// The running accumulator: everything the task owns besides the shared part. The task ends on `stop` or once
/// every sender of its input is gone (a reload replaced it), after a final flush of everything pending.
pub struct AccumulatorTask {
    pub acc: Arc<Accumulator>,
    /// By shard: what its routers send ([`crate::section::AccumulatorInput::new`]).
    pub input: Vec<mpsc::Receiver<KeyedBatch>>,
    /// Into the accumulator's backend section; `None` for `BLACKHOLE`.
    pub output: Option<Output>,
    pub bins: Bins,
    /// One queue per bin; empty without writers (then bins do nothing).
    pub writers: Vec<WriterQueue>,
}

/// What one shard's flush rendered: output lines, their count, records.
type Rendered = (Vec<u8>, usize, Vec<Record>);

impl AccumulatorTask {
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
        let stop_folding = CancellationToken::new();
        let mut folding = JoinSet::new();
        for (shard, input) in std::mem::take(&mut self.input).into_iter().enumerate() {
            folding.spawn(self.acc.clone().fold_shard(shard, input, stop_folding.clone()));
        }
        loop {
            let next_bin = bin_ticks.iter().map(|t| t.0).min();
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                // a fold task ends early only once every sender is gone: so do all of them
                _ = folding.join_next() => break,
                _ = sleep_until(base.0) => {}
                _ = sleep_until(next_bin.unwrap_or(base.0)), if next_bin.is_some() => {}
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
        stop_folding.cancel();
        while let Some(done) = folding.join_next().await {
            if let Err(e) = done {
                tracing::error!(group = %self.acc.group, error = %e, "accumulator fold task failed");
            }
        }
        self.base_flush(tick_secs(base.1)).await;
        for (i, t) in bin_ticks.iter().enumerate() {
            self.bin_flush(i, tick_secs(t.1));
        }
    }

    /// Renders every shard, each on a blocking thread, so that a large flush stalls neither a runtime thread nor
    /// ingestion: without `keep_keys` a shard's state is taken and a fresh one folds the batches that arrive
    /// meanwhile; with `keep_keys` the shard is rendered in place and its arriving batches wait in its (bounded)
    /// channel.
    async fn base_flush(&mut self, tick: i64) {
        let started = std::time::Instant::now();
        let cfg = &self.acc.config;
        let (interval, format) = (cfg.accumulate_flush, cfg.output_format);
        // Without a backend (BLACKHOLE) the lines are only counted (rendering 500 k counters takes ~0.2 s).
        let has_output = self.output.is_some();
        let render = move |state: &mut State| -> Rendered {
            let (mut out, mut records) = (Vec::new(), Vec::new());
            let lines = state.flush(interval, tick, format, has_output.then_some(&mut out), &mut records);
            (out, lines, records)
        };
        let mut rendering = Vec::with_capacity(self.acc.shards.len());
        for shard in &self.acc.shards {
            rendering.push(if cfg.keep_keys {
                let mut state = shard.clone().lock_owned().await;
                tokio::task::spawn_blocking(move || render(&mut state))
            } else {
                let mut taken = shard.lock().await.take();
                tokio::task::spawn_blocking(move || render(&mut taken))
            });
        }
        let mut all_records = Vec::new();
        let (mut lines, mut rendered) = (0, Vec::with_capacity(rendering.len()));
        for r in rendering {
            match r.await {
                Ok((out, n, records)) => {
                    lines += n;
                    all_records.extend(records);
                    rendered.push(out);
                }
                Err(e) => {
                    tracing::error!(group = %self.acc.group, error = %e, "accumulator flush failed: this interval of a shard is lost")
                }
            }
        }
        self.acc.last_flush_ms.store(self.acc.clock.now_ms(), Relaxed);
        self.acc.stats.flushes.fetch_add(1, Relaxed);
        self.acc.stats.output_lines.fetch_add(lines as u64, Relaxed);
        self.acc.stats.records.fetch_add(all_records.len() as u64, Relaxed);
        if let Some((router, framing)) = self.output.as_mut().and_then(Output::router) {
            for out in &rendered {
                frame_all(out, framing, |f| router.route(f));
            }
            router.flush(WhenFull::Wait).await;
        }
        let took = started.elapsed().as_micros().try_into().unwrap_or(u64::MAX);
        self.acc.last_flush_us.store(took.max(1), Relaxed);
        if !self.writers.is_empty() {
            self.bins.merge(all_records);
        }
        let merged_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(group = %self.acc.group, lines, rendered_ms = took / 1000, merged_ms, "accumulator flushed");
    }

    fn bin_flush(&mut self, bin: usize, tick: i64) {
        let started = std::time::Instant::now();
        let points = self.bins.drain(bin, tick);
        if points.is_empty() {
            return;
        }
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(group = %self.acc.group, bin, points = points.len(), took_ms, "bin drained");
        if let Some(q) = self.writers.get(bin) {
            // a full queue skips the whole bin flush; the queue counts and logs it (spec §10.1)
            let _ = q.try_submit(points);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{load_main, load_prereg};
    use crate::section::AccumulatorInput;
    use bytes::Bytes;
    use std::time::Duration;
    use tokio_util::task::TaskTracker;

    /// A minute boundary (unix ms).
    const MINUTE: u64 = 1_700_000_040_000;

    /// An accumulator from a PreReg text, its task with file writers under `dir`, and the writer tracker.
    async fn setup(
        acc_toml: &str,
        dir: &std::path::Path,
        clock: Clock,
    ) -> (Arc<Accumulator>, AccumulatorInput, AccumulatorTask, TaskTracker) {
        let main = load_main(
            "[default]\n[s]\nmsg_type = \"statsd\"\n[[s.servers]]\nservers = [\"tcp://127.0.0.1:9\"]\n",
            "m.toml",
        )
        .expect("main config");
        let prereg = format!(
            "[g]\nlisten_server = \"s\"\ndefault_backend = \"s\"\n[[g.map]]\nnoop = \"true\"\n[g.accumulator]\n\
             backend = \"BLACKHOLE\"\n{acc_toml}\n[g.accumulator.writer]\nmetrics = {{ driver = \"file\", dsn = \"{}\" }}\n",
            dir.join("stats").display()
        );
        let prereg = load_prereg(&prereg, "p.toml", &main).expect("prereg");
        let cfg = prereg.groups[0].accumulator.clone().expect("accumulator");
        let tracker = TaskTracker::new();
        let stop = tokio_util::sync::CancellationToken::new();
        let writers = crate::writer::start(
            "g",
            cfg.writer.as_ref().expect("writer"),
            &cfg.times,
            1000,
            &tracker,
            &stop,
        )
        .await
        .expect("writers");
        let bins = Bins::new(&cfg.times);
        let acc = Accumulator::new("g", cfg, clock);
        let (input, rx) = AccumulatorInput::new("s", acc.shards(), acc.config.input_format);
        let task = AccumulatorTask {
            acc: acc.clone(),
            input: rx,
            output: None,
            bins,
            writers,
        };
        (acc, input, task, tracker)
    }

    /// The lines of `text` as a router sends them to `input`: with their keys.
    fn batch(input: &AccumulatorInput, text: &str) -> KeyedBatch {
        let lines = crate::line::Batch::from_lines(Bytes::from(text.to_string()));
        input.keyed(lines, &mut crate::splitter::KeyScratch::default())
    }

    /// The rows of a file writer's file: columns split on TAB.
    fn rows(path: &std::path::Path) -> Vec<Vec<String>> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    async fn wait_rows(path: &std::path::Path, n: usize) -> Vec<Vec<String>> {
        for _ in 0..10_000 {
            let r = rows(path);
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never had {n} rows: {:?}", path.display(), rows(path));
    }

    #[tokio::test(start_paused = true)]
    async fn five_second_flushes_merge_into_an_aligned_minute_bin_with_its_ttl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::starting_at(MINUTE + 1_000);
        let (_acc, input, task, tracker) = setup(
            "input_format = \"statsd\"\noutput_format = \"graphite\"\naccumulate_flush = \"5s\"\ntimes = [\"5s:1h\", \"1m:24h\"]",
            dir.path(),
            clock,
        )
        .await;
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        // one pair of samples in each of the twelve 5 s windows of the minute (MINUTE, MINUTE + 60 s]
        for i in 0..12u32 {
            input
                .push(
                    0,
                    batch(&input, &format!("k:2|c\nk:2|c\nt:{}|ms\n", 10 + i)),
                    WhenFull::Wait,
                )
                .await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let minute = wait_rows(&dir.path().join("stats_60s"), 2).await;
        let k = minute.iter().find(|r| r[0] == "k").expect("a row for k");
        let want_ts = ((MINUTE + 60_000) * 1_000_000).to_string();
        assert_eq!(
            k[1..],
            [
                "48.000000",
                "2.000000",
                "2.000000",
                "2.000000",
                "24",
                "60.00",
                want_ts.as_str(),
                "86400"
            ]
        );
        let t = minute.iter().find(|r| r[0] == "t").expect("a row for t");
        assert_eq!(t[1..6], ["186.000000", "15.500000", "10.000000", "21.000000", "12"]);

        let five = wait_rows(&dir.path().join("stats_5s"), 24).await;
        let k5: Vec<&Vec<String>> = five.iter().filter(|r| r[0] == "k").collect();
        assert_eq!(k5.len(), 12, "one row per 5 s bin");
        for r in &k5 {
            assert_eq!(r[1..6], ["4.000000", "2.000000", "2.000000", "2.000000", "2"]);
            assert_eq!(r[6], "5.00");
            assert_eq!(r[8], "3600");
            let ns: u64 = r[7].parse().expect("ns");
            assert_eq!(ns % 5_000_000_000, 0, "stamped with a tick aligned to the wall clock");
        }
        stop.cancel();
        running.await.expect("task");
        tracker.close();
        tracker.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_flushes_every_pending_sample_into_every_bin() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::starting_at(MINUTE + 7_000);
        let (_acc, input, task, tracker) = setup(
            "input_format = \"statsd\"\noutput_format = \"graphite\"\naccumulate_flush = \"10s\"\ntimes = [\"10s\", \"1m\"]",
            dir.path(),
            clock,
        )
        .await;
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        input
            .push(0, batch(&input, "late:5|c\nlate:7|c\n"), WhenFull::Wait)
            .await;
        stop.cancel(); // before any tick: the final flush must carry it
        running.await.expect("task");
        tracker.close();
        tracker.wait().await;
        let ten = rows(&dir.path().join("stats_10s"));
        assert_eq!(ten.len(), 1);
        assert_eq!(
            ten[0][..6],
            ["late", "12.000000", "6.000000", "5.000000", "7.000000", "2"]
        );
        assert_eq!(
            ten[0][7],
            ((MINUTE + 10_000) * 1_000_000).to_string(),
            "stamped with the next aligned tick"
        );
        let minute = rows(&dir.path().join("stats_60s"));
        assert_eq!(minute.len(), 1);
        assert_eq!(minute[0][7], ((MINUTE + 60_000) * 1_000_000).to_string());
    }

    /// Sends each line of `text` to its shard, as a router does.
    async fn send(input: &AccumulatorInput, text: &str) {
        let mut scratch = crate::splitter::KeyScratch::default();
        for line in text.lines() {
            let shard = input.shard(input.key_of(line.as_bytes(), &mut scratch).0);
            input
                .push(shard, batch(input, &format!("{line}\n")), WhenFull::Wait)
                .await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shards_fold_apart_and_flush_as_one_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (acc, input, task, tracker) = setup(
            "input_format = \"statsd\"\noutput_format = \"graphite\"\naccumulate_flush = \"1h\"\ntimes = [\"1h\"]\nshards = 4",
            dir.path(),
            Clock::new(),
        )
        .await;
        assert_eq!((acc.shards(), input.shards()), (4, 4));
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        let keys: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
        for round in 1..=3 {
            let text: String = keys
                .iter()
                .map(|k| format!("{k}:{round}|c\n{k} x:{round}|ms\n"))
                .collect();
            send(&input, &text).await;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while acc.stats.lines.load(Relaxed) < 240 {
            assert!(
                Instant::now() < deadline,
                "folded {} of 240 lines",
                acc.stats.lines.load(Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(acc.keys(), 80, "k<i> and k<i>_x, counted over every shard");
        let snapshot = acc.snapshot().await;
        assert_eq!(snapshot.len(), 80);
        assert!(snapshot
            .iter()
            .filter(|s| s.stat_key.ends_with("|c"))
            .all(|s| s.sum == 6.0 && s.count == 3));
        stop.cancel();
        running.await.expect("task");
        tracker.close();
        tracker.wait().await;
        let rows = rows(&dir.path().join("stats_3600s"));
        assert_eq!(rows.len(), 80, "one row per key: {rows:?}");
        for k in &keys {
            let c = rows.iter().find(|r| &r[0] == k).expect("counter row");
            assert_eq!(c[1..6], ["6.000000", "2.000000", "1.000000", "3.000000", "3"], "{k}");
            let t = rows.iter().find(|r| r[0] == format!("{k}_x")).expect("timer row");
            assert_eq!(t[1..6], ["6.000000", "2.000000", "1.000000", "3.000000", "3"], "{k}_x");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn kept_keys_are_emitted_idle_but_produce_no_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Clock::starting_at(MINUTE + 1_000);
        let (acc, input, task, tracker) = setup(
            "input_format = \"graphite\"\noutput_format = \"graphite\"\naccumulate_flush = \"5s\"\nkeep_keys = true",
            dir.path(),
            clock,
        )
        .await;
        let stop = CancellationToken::new();
        let running = tokio::spawn(task.run(stop.clone()));
        input
            .push(0, batch(&input, "a.count 3 1\nb.max 4 1\n"), WhenFull::Wait)
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(acc.keys(), 2, "kept after the flush");
        tokio::time::sleep(Duration::from_secs(10)).await; // two idle flushes
        assert_eq!(acc.stats.flushes.load(Relaxed), 3);
        assert_eq!(
            acc.stats.output_lines.load(Relaxed),
            6,
            "2 keys on every flush, idle ones as 0"
        );
        assert_eq!(acc.stats.records.load(Relaxed), 2, "idle kept keys produce no record");
        stop.cancel();
        running.await.expect("task");
        tracker.close();
        tracker.wait().await;
    }
}
