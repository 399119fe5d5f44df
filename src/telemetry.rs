//! Logging set-up and the counters every stage reports.
//!
//! Counters are plain atomics grouped per section ([`SectionStats`]) and per destination ([`DestStats`]); hot paths
//! add to them once per batch, never per line. [`SECTION_STATS`] and [`DEST_STATS`] name each number once for
//! `/metrics` and the self-stats. Per-line problems are logged through a [`RateLimit`] so that at most
//! one message per second and reason is written, with the number of suppressed ones.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::{format::Writer, FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Why a framed line was not routed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InvalidReason {
    TooLong,
    Split(crate::splitter::SplitError),
}

impl InvalidReason {
    pub const LABELS: [&'static str; 5] = [
        "too_long",
        "invalid_statsd",
        "regex_not_matched",
        "regex_no_key",
        "no_value",
    ];

    pub fn index(self) -> usize {
        use crate::splitter::SplitError::*;
        match self {
            InvalidReason::TooLong => 0,
            InvalidReason::Split(NoColon) => 1,
            InvalidReason::Split(RegexNotMatched) => 2,
            InvalidReason::Split(RegexNoKey) => 3,
            InvalidReason::Split(NoValue) => 4,
        }
    }

    pub fn label(self) -> &'static str {
        Self::LABELS[self.index()]
    }
}

/// Why a line bound for a destination was dropped (spec §8.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    QueueFull,
    NoServer,
    Purged,
    Shutdown,
}

impl DropReason {
    pub const ALL: [DropReason; 4] = [
        DropReason::QueueFull,
        DropReason::NoServer,
        DropReason::Purged,
        DropReason::Shutdown,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NoServer => "no_server",
            DropReason::Purged => "purged",
            DropReason::Shutdown => "shutdown",
        }
    }
}

/// Counters of one section (listener side).
#[derive(Debug, Default)]
pub struct SectionStats {
    /// Every framed line (valid or not).
    pub all_lines: AtomicU64,
    /// Datagrams the kernel dropped because a UDP listener's receive buffer was full (read from the kernel).
    pub kernel_drops: AtomicU64,
    /// Lines the splitter accepted.
    pub valid_lines: AtomicU64,
    /// Invalid lines by [`InvalidReason::index`].
    pub invalid_lines: [AtomicU64; InvalidReason::LABELS.len()],
    /// One per (ring × destination) copy handed to a destination.
    pub worker_lines: AtomicU64,
    /// Lines that had no destination because a ring was empty.
    pub no_server_lines: AtomicU64,
    /// Lines a PreReg rule rejected / redirected to another section.
    pub rejected_lines: AtomicU64,
    pub redirected_lines: AtomicU64,
    /// Lines handed to the section's accumulator.
    pub accumulated_lines: AtomicU64,
    pub bytes_read: AtomicU64,
    pub connections: AtomicU64,
    pub connections_open: AtomicU64,
    /// Bytes read by stream listeners and not yet routed (input back-pressure, spec §5.3).
    pub read_buffer_bytes: AtomicU64,
}

impl SectionStats {
    pub fn invalid_total(&self) -> u64 {
        self.invalid_lines.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Counters of one destination.
#[derive(Debug, Default)]
pub struct DestStats {
    /// Lines (and their bytes) the peer has: acknowledged by its TCP (streams), a 2xx answer (HTTP), or handed to
    /// the kernel (UDP, which has no acknowledgement).
    pub sent_lines: AtomicU64,
    pub sent_bytes: AtomicU64,
    /// Lines a sender took from the queue and the peer has not acknowledged yet (being written, or written).
    pub in_flight_lines: AtomicU64,
    /// Written lines whose acknowledgement never came (the connection failed or was given up): queued again.
    pub resent_lines: AtomicU64,
    /// Connections that made no progress (nothing written, nothing acknowledged) for `write_timeout`.
    pub stalled_connections: AtomicU64,
    /// Times a connection stalled.
    pub stalls: AtomicU64,
    /// Dropped lines by the index of [`DropReason::ALL`].
    pub dropped: [AtomicU64; 4],
    pub connect_failures: AtomicU64,
    pub write_failures: AtomicU64,
    pub connections_open: AtomicU64,
    /// Health transitions to down / back up.
    pub health_down: AtomicU64,
    pub health_up: AtomicU64,
}

impl DestStats {
    pub fn drop_lines(&self, reason: DropReason, lines: usize) {
        let i = DropReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[i].fetch_add(lines as u64, Relaxed);
    }

    pub fn dropped(&self, reason: DropReason) -> u64 {
        let i = DropReason::ALL.iter().position(|r| *r == reason).unwrap_or(0);
        self.dropped[i].load(Relaxed)
    }

    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().map(|c| c.load(Relaxed)).sum()
    }
}

/// Whether a [`Stat`] only grows or is a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    /// The Prometheus `# TYPE`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// One plain number of a section ([`SectionStats`]) or destination ([`DestStats`]), named once for every surface
/// that reports it: its `/metrics` family (spec §13.2) and its self-stats names (§13.1, the Go original's names;
/// `{proto}`, `{section}` and `{dest}` are filled in by the self-stats). `/stats` (§11.2) reports section totals
/// summed from the same fields. Numbers with a label of their own (invalid and drop reasons, redirect targets,
/// health states) are rendered by the surfaces from [`InvalidReason::LABELS`] and [`DropReason::ALL`].
pub struct Stat<T: 'static> {
    pub kind: Kind,
    /// The `/metrics` family; `""` when it is reported there only with a label of its own.
    pub metric: &'static str,
    pub help: &'static str,
    /// `/metrics` labels it with the listener's protocol too.
    pub by_proto: bool,
    /// Self-stats names (several where the Go original reports the number more than once).
    pub selfstat: &'static [&'static str],
    pub read: fn(&T) -> u64,
}

/// The section numbers, in `/metrics` order.
pub const SECTION_STATS: &[Stat<SectionStats>] = &[
    Stat {
        kind: Kind::Counter,
        metric: "consthash_lines_received_total",
        help: "Framed lines received, valid or not.",
        by_proto: true,
        selfstat: &["incoming.{proto}.lines"],
        read: |s| s.all_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Invalid lines (by reason in consthash_lines_invalid_total).",
        by_proto: false,
        selfstat: &["incoming.{proto}.invalidlines"],
        read: |s| s.invalid_total(),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Lines the splitter accepted.",
        by_proto: false,
        selfstat: &["success.valid-lines"],
        read: |s| s.valid_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Line copies handed to destinations (ring × replica).",
        by_proto: false,
        selfstat: &["success.valid-lines-sent-to-workers"],
        read: |s| s.worker_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Lines without a destination (consthash_lines_dropped_total, reason no_server).",
        by_proto: false,
        selfstat: &["failed.invalid-hash-server"],
        read: |s| s.no_server_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_lines_rejected_total",
        help: "Lines rejected by a PreReg rule.",
        by_proto: false,
        selfstat: &[],
        read: |s| s.rejected_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_udp_kernel_drops_total",
        help: "Datagrams the kernel dropped before a UDP listener read them (its receive buffer was full).",
        by_proto: false,
        selfstat: &["incoming.udp.kerneldrops"],
        read: |s| s.kernel_drops.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_bytes_read_total",
        help: "Bytes read by the listener.",
        by_proto: false,
        selfstat: &[],
        read: |s| s.bytes_read.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_connections_total",
        help: "Incoming connections accepted.",
        by_proto: false,
        selfstat: &["{section}.tcp.incoming.connections"],
        read: |s| s.connections.load(Relaxed),
    },
    Stat {
        kind: Kind::Gauge,
        metric: "consthash_connections_open",
        help: "Incoming connections open now.",
        by_proto: false,
        selfstat: &[],
        read: |s| s.connections_open.load(Relaxed),
    },
    Stat {
        kind: Kind::Gauge,
        metric: "",
        help: "Bytes read and not yet routed.",
        by_proto: false,
        selfstat: &["{section}.readbuffer.length"],
        read: |s| s.read_buffer_bytes.load(Relaxed),
    },
];

/// The destination numbers, in `/metrics` order.
pub const DEST_STATS: &[Stat<DestStats>] = &[
    Stat {
        kind: Kind::Counter,
        metric: "consthash_lines_sent_total",
        help: "Lines a destination has (TCP-acknowledged, HTTP 2xx, or a UDP datagram sent).",
        by_proto: false,
        selfstat: &["success.sent", "hashserver.{dest}.used"],
        read: |d| d.sent_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_bytes_written_total",
        help: "Bytes of the lines a destination has.",
        by_proto: false,
        selfstat: &["success.sent-bytes"],
        read: |d| d.sent_bytes.load(Relaxed),
    },
    Stat {
        kind: Kind::Gauge,
        metric: "consthash_lines_in_flight",
        help: "Lines taken from the queue by a destination's connections and not acknowledged yet.",
        by_proto: false,
        selfstat: &["outqueue.{dest}.inflight"],
        read: |d| d.in_flight_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_lines_resent_total",
        help: "Written lines queued again because their acknowledgement never came (they may arrive twice).",
        by_proto: false,
        selfstat: &["failed.resent"],
        read: |d| d.resent_lines.load(Relaxed),
    },
    Stat {
        kind: Kind::Gauge,
        metric: "consthash_destination_stalled_connections",
        help: "Connections of a destination that made no progress for write_timeout.",
        by_proto: false,
        selfstat: &["outqueue.{dest}.stalled"],
        read: |d| d.stalled_connections.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "consthash_destination_stalls_total",
        help: "Times a connection of a destination stalled.",
        by_proto: false,
        selfstat: &[],
        read: |d| d.stalls.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Failed dials.",
        by_proto: false,
        selfstat: &["failed.bad-connection"],
        read: |d| d.connect_failures.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Failed writes.",
        by_proto: false,
        selfstat: &["failed.aborted-connection"],
        read: |d| d.write_failures.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Health transitions to down (consthash_health_transitions_total, state down).",
        by_proto: false,
        selfstat: &["health.{dest}.down"],
        read: |d| d.health_down.load(Relaxed),
    },
    Stat {
        kind: Kind::Counter,
        metric: "",
        help: "Health transitions back up (consthash_health_transitions_total, state up).",
        by_proto: false,
        selfstat: &["health.{dest}.up"],
        read: |d| d.health_up.load(Relaxed),
    },
];

/// Whole seconds of the wall clock, the unit of [`RateLimit::allow_at`].
pub fn unix_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// At most one message per second; counts what it suppressed.
#[derive(Debug, Default)]
pub struct RateLimit {
    last_sec: AtomicU64,
    suppressed: AtomicU64,
}

impl RateLimit {
    /// `Some(suppressed since the last message)` when a message may be logged now.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(unix_secs())
    }

    pub fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last_sec.load(Relaxed);
        if now > last && self.last_sec.compare_exchange(last, now, Relaxed, Relaxed).is_ok() {
            Some(self.suppressed.swap(0, Relaxed))
        } else {
            self.suppressed.fetch_add(1, Relaxed);
            None
        }
    }
}

/// Maps a `--loglevel` value (case-insensitive) to a tracing level.
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "debug" => Level::DEBUG,
        "info" => Level::INFO,
        "warning" | "warn" => Level::WARN,
        "error" | "critical" => Level::ERROR,
        _ => return None,
    })
}

/// Crates whose own messages show only at `--loglevel debug`: the writers log every database failure themselves,
/// with the driver's error text and the writer's name, rate-limited.
const QUIET_CRATES: [&str; 2] = ["scylla", "sqlx"];

/// Installs the stderr logger: `YYYY-MM-DD HH:MM:SS.mmm [module] LEVL message`.
pub fn init_logging(level: Level) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let quiet = if level >= Level::DEBUG {
        LevelFilter::from_level(level)
    } else {
        LevelFilter::OFF
    };
    let filter = QUIET_CRATES
        .iter()
        .fold(Targets::new().with_default(level), |t, c| t.with_target(*c, quiet));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .event_format(LineFormat);
    let _ = tracing_subscriber::registry().with(fmt).with(filter).try_init();
}

struct LineFormat;

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "ERRO",
            Level::WARN => "WARN",
            Level::INFO => "INFO",
            _ => "DEBU",
        };
        let module = meta.target().rsplit("::").next().unwrap_or("");
        write!(w, "{} [{module}] {level} ", Timestamp(SystemTime::now()))?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// RFC 3339 UTC time of a unix-ms instant: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn rfc3339(unix_ms: u64) -> String {
    utc_ms(i64::try_from(unix_ms).unwrap_or(i64::MAX))
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// UTC wall-clock time as `YYYY-MM-DD HH:MM:SS.mmm`.
pub struct Timestamp(pub SystemTime);

/// The instant of a unix millisecond, clamped to the range jiff represents (about years -9999..=9999).
fn utc_ms(unix_ms: i64) -> jiff::Timestamp {
    let out_of_range = if unix_ms < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    };
    jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(out_of_range)
}

/// A unix second as the Go `log` package stamps lines: `YYYY/MM/DD HH:MM:SS` (UTC); the tools' log format.
pub fn go_log_stamp(unix_secs: i64) -> String {
    utc_ms(unix_secs.saturating_mul(1000))
        .strftime("%Y/%m/%d %H:%M:%S")
        .to_string()
}

/// Writes `<go_log_stamp of now> <message>` to stderr: the tools' log line.
pub fn go_log_line(msg: fmt::Arguments<'_>) {
    use std::io::Write;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let _ = writeln!(std::io::stderr().lock(), "{} {msg}", go_log_stamp(now));
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let t = utc_ms(i64::try_from(ms).unwrap_or(i64::MAX));
        write!(f, "{}", t.strftime("%Y-%m-%d %H:%M:%S%.3f"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamp_format() {
        let t = UNIX_EPOCH + Duration::from_millis(1_763_769_000_123);
        assert_eq!(Timestamp(t).to_string(), "2025-11-21 23:50:00.123");
        assert_eq!(Timestamp(UNIX_EPOCH).to_string(), "1970-01-01 00:00:00.000");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(Timestamp(leap).to_string(), "2000-02-29 00:00:00.000");
        assert_eq!(rfc3339(1_763_769_000_123), "2025-11-21T23:50:00.123Z");
        assert!(
            rfc3339(u64::MAX).starts_with("9999-12-30T"),
            "clamped to the last instant jiff represents"
        );
    }

    #[test]
    fn go_log_stamps() {
        assert_eq!(go_log_stamp(0), "1970/01/01 00:00:00");
        assert_eq!(go_log_stamp(951_782_400), "2000/02/29 00:00:00");
        assert_eq!(go_log_stamp(1_700_000_000), "2023/11/14 22:13:20");
    }

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!(parse_level("WARNING"), Some(Level::WARN));
        assert_eq!(parse_level("Critical"), Some(Level::ERROR));
        assert_eq!(parse_level("loud"), None);
    }

    #[test]
    fn rate_limit_suppresses_within_a_second() {
        let rl = RateLimit::default();
        assert_eq!(rl.allow_at(100), Some(0));
        assert_eq!(rl.allow_at(100), None);
        assert_eq!(rl.allow_at(100), None);
        assert_eq!(rl.allow_at(101), Some(2));
        assert_eq!(rl.allow_at(101), None);
    }
}
