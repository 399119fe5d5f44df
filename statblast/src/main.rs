//! `statblast`: a load generator for consthash (spec §14.2). It sends random graphite or statsd lines to
//! every target of `--servers` (`tcp://host:port`, `udp://host:port`, `unix:///path`, `http://host:port/path`).
//!
//! Lines, with `c` uniform in `[0, 10000)` and `<w>` drawn from `--words`:
//! * graphite: `graphitetest.<w>.<w>.<w> <c> <unix_now>`
//! * statsd: `statdtest.<w>.<w>.<w>:<c>|<c|g|ms>|@<rate>`, rate with two decimals in `[0.01, 1.00]`; the type is
//!   drawn with the weights of `--mix C,T,G` (counters, timers, gauges; default `34,33,33`)
//!
//! With `--keys N > 0` the three words become `k<i>`, `i` uniform in `[0, N)`: N distinct keys. Each key then has
//! one type, drawn once from the mix by a hash of `i` (as real metrics are either counters or timers or gauges),
//! unless `--mix-per-line`, where every line draws its type and so every key takes all three.
//!
//! Each target has one connection shared by its `--forks` senders. A sender appends lines to a batch until
//! the next line would make it reach `--buffer` bytes, writes the batch in one write (one datagram, one POST),
//! starts the next batch with that line and sleeps `--rate` (a Go duration: `0.1s`, `10ms`, `0` = no sleep).
//! The sleeps are paced against a schedule: the n-th send of a sender starts no earlier than start + n × rate.
//! That is the same as sleeping `--rate` after each send when sends are fast, and it keeps sub-millisecond
//! rates right on average although the timer has a 1 ms resolution (several sends then follow one wake-up).
//! A sender that falls more than 5 ms behind its schedule drops the debt instead of bursting to catch up.
//! So the offered load is about `targets × forks × (lines per send) / rate` lines/s.
//! A failed write re-dials (2 s timeout) and retries the batch on streams; UDP drops it.
//! `--lines N` sends exactly N lines in total (split across the senders), flushes and stops.
//!
//! Output: every 5 s on stderr `Sent %d lines in %ds - rate: %0.2f lines/s` (the last interval); at the end
//! (`--lines` reached, SIGINT or SIGTERM) one line on stdout, made to be parsed, then exit 0:
//! `TOTAL sent=<lines delivered> elapsed=<seconds, 3 decimals> rate=<lines/s, 2 decimals> per_send=<lines per
//! delivered send (datagram, write, POST), 2 decimals>`.
//! With no arguments it prints the flags and their defaults and exits 0.
//!
//! Speed: numbers are written by hand into a reused buffer, the PRNG is wyrand, the unix time is read once
//! per batch and the shared counter is bumped once per batch; nothing is allocated per line.

#![forbid(unsafe_code)]

mod gen;
mod log;
mod target;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::bail;
use clap::{CommandFactory, Parser};
use tokio::signal::unix::{signal, SignalKind};
use tokio::task::JoinSet;

use crate::gen::{Kind, LineGen, Mix};
use crate::target::Target;
use consthash::config::parse_duration;

/// How often the progress line is written.
const REPORT_EVERY: Duration = Duration::from_secs(5);
/// How far a sender may fall behind its send schedule before it forgets the debt.
const MAX_LAG: Duration = Duration::from_millis(5);

#[derive(Parser, Debug)]
#[command(
    name = "statblast",
    version,
    about = "A load generator for consthash: sends graphite or statsd lines"
)]
struct Args {
    /// Comma list of targets: tcp://host:port, udp://host:port, unix:///path, http://host:port/path
    #[arg(long, default_value = "tcp://127.0.0.1:8125")]
    servers: String,
    /// Line format
    #[arg(long = "type", value_name = "TYPE", value_enum, default_value = "statsd")]
    kind: Kind,
    /// Sleep after each send (Go duration: 0.1s, 10ms, 0 = none)
    #[arg(long, default_value = "0.1s", value_parser = parse_duration)]
    rate: Duration,
    /// Bytes per send
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..))]
    buffer: u64,
    /// Concurrent senders per target
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..))]
    forks: u64,
    /// Key word pool
    #[arg(long, default_value = "test,house,here,there,badline,cow,now")]
    words: String,
    /// Total lines to send across all senders, then stop (0 = unlimited)
    #[arg(long, default_value_t = 0)]
    lines: u64,
    /// When > 0, keys are <prefix>.k<i> with i in [0, keys) instead of word combinations
    #[arg(long, default_value_t = 0)]
    keys: u64,
    /// statsd only: weights (percentages) of counters, timers and gauges, C,T,G
    #[arg(long, default_value = "34,33,33", value_parser = Mix::parse)]
    mix: Mix,
    /// statsd with --keys: every line draws its type from the mix (a key takes every type) instead of each key
    /// having one
    #[arg(long)]
    mix_per_line: bool,
}

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{}", Args::command().render_help());
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            let r = rt.block_on(blast(args));
            rt.shutdown_timeout(Duration::from_millis(200));
            r
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("statblast: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Lines sender `index` of `senders` must send: an even split of `total` (0 = unlimited).
fn quota(total: u64, senders: u64, index: u64) -> u64 {
    if total == 0 {
        u64::MAX
    } else {
        total / senders + u64::from(index < total % senders)
    }
}

async fn blast(args: Args) -> anyhow::Result<()> {
    let targets: Vec<Arc<Target>> = target::parse_list(&args.servers)?.into_iter().map(Arc::new).collect();
    let words: Vec<Vec<u8>> = args
        .words
        .split(',')
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(|w| w.as_bytes().to_vec())
        .collect();
    if args.keys == 0 && words.is_empty() {
        bail!("--words: no word given");
    }
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;

    let senders = targets.len() as u64 * args.forks;
    let sent = Arc::new(AtomicU64::new(0));
    let sends = Arc::new(AtomicU64::new(0));
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ (u64::from(std::process::id()) << 32);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (t, target) in targets.iter().enumerate() {
        for f in 0..args.forks {
            let index = t as u64 * args.forks + f;
            let sender = Sender {
                target: target.clone(),
                gen: LineGen::new(args.kind, words.clone(), args.keys, seed.wrapping_add(index))
                    .with_mix(args.mix, args.mix_per_line),
                quota: quota(args.lines, senders, index),
                buffer: args.buffer as usize,
                rate: args.rate,
                sent: sent.clone(),
                sends: sends.clone(),
            };
            if sender.quota > 0 {
                tasks.spawn(sender.run());
            }
        }
    }
    let reporter = tokio::spawn(report(sent.clone()));
    let finished = async {
        while let Some(joined) = tasks.join_next().await {
            joined?;
        }
        for t in &targets {
            t.close().await;
        }
        anyhow::Ok(())
    };
    tokio::select! {
        r = finished => r?,
        _ = sigint.recv() => {}
        _ = sigterm.recv() => {}
    }
    reporter.abort();
    let elapsed = start.elapsed().as_secs_f64();
    let total = sent.load(Relaxed);
    let rate = if elapsed > 0.0 { total as f64 / elapsed } else { 0.0 };
    let writes = sends.load(Relaxed);
    let per_send = if writes > 0 { total as f64 / writes as f64 } else { 0.0 };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "TOTAL sent={total} elapsed={elapsed:.3} rate={rate:.2} per_send={per_send:.2}"
    )?;
    out.flush()?;
    Ok(())
}

/// One concurrent sender: builds batches and writes them to its target.
struct Sender {
    target: Arc<Target>,
    gen: LineGen,
    /// Lines still to send (`u64::MAX`: unlimited).
    quota: u64,
    buffer: usize,
    rate: Duration,
    sent: Arc<AtomicU64>,
    /// Delivered sends (datagrams, writes, POSTs), for the lines-per-send average.
    sends: Arc<AtomicU64>,
}

impl Sender {
    async fn run(mut self) {
        let mut batch: Vec<u8> = Vec::with_capacity(self.buffer + 1024);
        let mut in_batch = 0u64;
        let mut next = tokio::time::Instant::now();
        self.gen.set_time(unix_now());
        while self.quota > 0 {
            let start = batch.len();
            self.gen.push_line(&mut batch);
            self.quota -= 1;
            if batch.len() >= self.buffer && start > 0 {
                // The new line would make the batch reach --buffer: send what came before it.
                if self.target.send(&batch[..start]).await {
                    self.sent.fetch_add(in_batch, Relaxed);
                    self.sends.fetch_add(1, Relaxed);
                }
                batch.copy_within(start.., 0);
                batch.truncate(batch.len() - start);
                in_batch = 0;
                self.gen.set_time(unix_now());
                if !self.rate.is_zero() {
                    next += self.rate;
                    let now = tokio::time::Instant::now();
                    if next > now {
                        tokio::time::sleep_until(next).await;
                    } else if now - next > MAX_LAG {
                        next = now;
                    }
                }
            }
            in_batch += 1;
        }
        if !batch.is_empty() && self.target.send(&batch).await {
            self.sent.fetch_add(in_batch, Relaxed);
            self.sends.fetch_add(1, Relaxed);
        }
    }
}

/// Every 5 s: lines sent in the last interval and their rate.
async fn report(sent: Arc<AtomicU64>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let mut last = 0u64;
    loop {
        tick.tick().await;
        let now = sent.load(Relaxed);
        let recent = now - last;
        last = now;
        log::line(format_args!(
            "Sent {recent} lines in {}s - rate: {:.2} lines/s",
            REPORT_EVERY.as_secs(),
            recent as f64 / REPORT_EVERY.as_secs_f64()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_add_up_exactly() {
        for (total, senders) in [(1000u64, 4u64), (10, 3), (1, 8), (0, 2), (7, 7)] {
            let sum: u64 = (0..senders)
                .map(|i| quota(total, senders, i))
                .fold(0u64, u64::saturating_add);
            if total == 0 {
                assert_eq!(sum, u64::MAX);
            } else {
                assert_eq!(sum, total);
            }
        }
    }

    #[test]
    fn args_parse_durations_and_defaults() {
        let a = Args::try_parse_from(["statblast", "--rate", "10ms", "--type", "graphite"]).unwrap();
        assert_eq!(a.rate, Duration::from_millis(10));
        assert_eq!(a.kind, Kind::Graphite);
        assert_eq!(a.buffer, 512);
        assert_eq!(a.forks, 2);
        let d = Args::try_parse_from(["statblast", "--lines", "5"]).unwrap();
        assert_eq!(d.rate, Duration::from_millis(100));
        assert_eq!(d.kind, Kind::Statsd);
        assert_eq!(d.mix, Mix::default());
        assert_eq!(
            Args::try_parse_from(["statblast", "--mix", "60,30,10"]).unwrap().mix,
            Mix::new(60, 30, 10).unwrap()
        );
        assert!(Args::try_parse_from(["statblast", "--mix", "60,40"]).is_err());
        assert_eq!(
            Args::try_parse_from(["statblast", "--rate", "0"]).unwrap().rate,
            Duration::ZERO
        );
        assert!(Args::try_parse_from(["statblast", "--rate", "10"]).is_err());
        assert!(Args::try_parse_from(["statblast", "--forks", "0"]).is_err());
    }
}
