//! `echoserver`: a line sink for testing and benchmarking consthash (spec §14.1).
//!
//! It listens on every URL of `--servers` (`tcp://host:port`, `udp://host:port`, `unix:///path`,
//! `http://host:port/path`) and frames what arrives like the relay does: split on `\n`, trim spaces, tabs,
//! `\r` and `\n`, skip empty lines, and count a final line without `\n` at end of stream. A UDP datagram is
//! framed alone; an HTTP request (any method on the path; a path ending in `/` matches its subtree) has its
//! body framed and gets `200` with an empty body.
//!
//! Output:
//! * stderr, per line unless `--quiet` or `--count`: `2006/01/02 15:04:05 [ECHO from <url>] <line>`;
//!   per tcp/unix/http connection `[<url>] Accepted connection from <addr>` and `[<url>] Close connection from <addr>`.
//! * stderr every 5 s per listener: `Server <url>: ValidConnections: %d, OpenConnections: %d, Lines: %d,
//!   Lines/s: %0.2f Total: %d` (lines of the last 5 s, that over 5, and all lines of all listeners so far).
//! * stdout on SIGINT or SIGTERM, then exit 0 — one line per listener and one overall, made to be parsed:
//!   `LISTENER <url> lines=<n> bytes=<n> connections=<n>` and
//!   `TOTAL lines=<n> bytes=<n> connections=<n> elapsed=<seconds since start, 3 decimals> rate=<lines/elapsed, 2 decimals>`.
//!
//! `--count` is the sink of the throughput benchmarks: it never touches line contents beyond finding
//! newlines (memchr over 256 KiB reads) and updates its counters once per read.
//! With no arguments it prints the flags and their defaults and exits 0. It raises the soft open-files limit to
//! min(999999, hard).

#![forbid(unsafe_code)]

mod lines;
mod listen;
mod log;

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{CommandFactory, Parser};
use tokio::signal::unix::{signal, SignalKind};

use crate::listen::{Listener, Stats};

/// How often the per-listener stats line is written.
const REPORT_EVERY: Duration = Duration::from_secs(5);

#[derive(Parser, Debug)]
#[command(
    name = "echoserver",
    version,
    about = "A line sink for testing consthash: prints or counts the lines it receives"
)]
struct Args {
    /// Comma list of listen URLs: tcp://host:port, udp://host:port, unix:///path, http://host:port/path
    #[arg(long, default_value = "tcp://127.0.0.1:6002")]
    servers: String,
    /// Do not print lines, only the periodic stats
    #[arg(long)]
    quiet: bool,
    /// Accepted for compatibility; no effect
    #[arg(long, default_value = "")]
    profile: String,
    /// Count lines and bytes instead of printing them (implies --quiet)
    #[arg(long)]
    count: bool,
    /// (benchmarks) Exit, printing the totals, once this many lines arrived over all listeners; the elapsed time
    /// then runs from the first line received to the last. 0 = run until a signal.
    #[arg(long, default_value_t = 0)]
    expect: u64,
}

fn main() -> ExitCode {
    if std::env::args_os().len() <= 1 {
        // A closed stdout (`| head`) is not an error worth a panic.
        let _ = writeln!(std::io::stdout(), "{}", Args::command().render_help());
        return ExitCode::SUCCESS;
    }
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echoserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Err((want, e)) = consthash::app::raise_nofile_limit() {
        log::line(format_args!("could not raise the open files limit to {want}: {e}"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let result = rt.block_on(serve(args));
    rt.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let print = !(args.quiet || args.count);
    let listeners: Vec<Arc<Listener>> = consthash::config::parse_url_list(&args.servers)
        .map_err(|e| anyhow::anyhow!("--servers: {e}"))?
        .into_iter()
        .map(|(url, endpoint)| {
            Arc::new(Listener {
                url,
                endpoint,
                print,
                stats: Stats::default(),
            })
        })
        .collect();
    // Handlers first: a signal sent as soon as "Listening" shows must still print the totals.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let start = Instant::now();
    for l in &listeners {
        if let Err(e) = l.clone().bind().await {
            listeners.iter().for_each(|l| l.cleanup());
            return Err(e);
        }
    }
    let reporter = tokio::spawn(report(listeners.clone()));
    let elapsed = tokio::select! {
        _ = sigterm.recv() => start.elapsed(),
        _ = sigint.recv() => start.elapsed(),
        e = expected(&listeners, args.expect), if args.expect > 0 => e,
    };
    reporter.abort();
    print_totals(&listeners, elapsed)?;
    listeners.iter().for_each(|l| l.cleanup());
    Ok(())
}

/// Completes once `want` lines arrived in total; returns the time from the first line to the last.
async fn expected(listeners: &[Arc<Listener>], want: u64) -> Duration {
    let total = || listeners.iter().map(|l| l.stats.lines.load(Relaxed)).sum::<u64>();
    let mut first = None;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    loop {
        tick.tick().await;
        let n = total();
        if n > 0 && first.is_none() {
            first = Some(Instant::now());
        }
        if n >= want {
            return first.map_or(Duration::ZERO, |f| f.elapsed());
        }
    }
}

/// Every 5 s, one stats line per listener.
async fn report(listeners: Vec<Arc<Listener>>) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + REPORT_EVERY, REPORT_EVERY);
    let mut last = vec![0u64; listeners.len()];
    loop {
        tick.tick().await;
        let now: Vec<u64> = listeners.iter().map(|l| l.stats.lines.load(Relaxed)).collect();
        let total: u64 = now.iter().sum();
        for ((l, &lines), last) in listeners.iter().zip(&now).zip(last.iter_mut()) {
            let recent = lines - *last;
            *last = lines;
            log::line(format_args!(
                "Server {}: ValidConnections: {}, OpenConnections: {}, Lines: {recent}, Lines/s: {:.2} Total: {total}",
                l.url,
                l.stats.connections.load(Relaxed),
                l.stats.open.load(Relaxed),
                recent as f64 / REPORT_EVERY.as_secs_f64(),
            ));
        }
    }
}

fn print_totals(listeners: &[Arc<Listener>], elapsed: Duration) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let (mut lines, mut bytes, mut conns) = (0u64, 0u64, 0u64);
    for l in listeners {
        let (ln, by, co) = (
            l.stats.lines.load(Relaxed),
            l.stats.bytes.load(Relaxed),
            l.stats.connections.load(Relaxed),
        );
        writeln!(out, "LISTENER {} lines={ln} bytes={by} connections={co}", l.url)?;
        lines += ln;
        bytes += by;
        conns += co;
    }
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 { lines as f64 / secs } else { 0.0 };
    writeln!(
        out,
        "TOTAL lines={lines} bytes={bytes} connections={conns} elapsed={secs:.3} rate={rate:.2}"
    )?;
    out.flush()
}
