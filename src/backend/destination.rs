//! One destination: its queue, its counters, its reachability, and the rules for pushing into a full queue
//! (spec §8.3).
//!
//! While a destination is *up*, a stream listener waits for room in its full queue (back-pressure reaches the
//! client); while it is *down* (marked down by health checks, or unreachable for longer than `out_block_timeout`)
//! what does not fit is dropped and counted, so one dead server never stalls the relay. UDP listeners never wait.
//! A destination whose connections make no progress (nothing written, nothing acknowledged) for `write_timeout` is
//! *stalled*: down as well, and failing its health checks, until its peer takes bytes again.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::health::Outage;
use super::queue::{DestQueue, PushError};
use crate::config::{DestUrl, OutgoingConfig};
use crate::line::{Batch, WhenFull};
use crate::telemetry::{DestStats, DropReason, RateLimit};

/// How often a waiting listener re-checks whether a destination went down.
const DOWN_RECHECK: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub struct Destination {
    pub section: String,
    pub url: DestUrl,
    /// Its section's outgoing settings.
    pub config: OutgoingConfig,
    pub queue: DestQueue,
    pub stats: DestStats,
    /// Failed dials since the last successful one.
    outage: Outage,
    /// Set by health checks.
    health_down: AtomicBool,
    /// Set when the destination was removed through the API: its queue is closed and dropped.
    purged: AtomicBool,
    /// Set when a reload removed it: it drains, and is never reused.
    retired: AtomicBool,
    drop_log: RateLimit,
    /// "send failed" warnings, at most one a second per kind of error, shared by the pool's connections.
    send_failures: Mutex<Vec<(io::ErrorKind, RateLimit)>>,
    epoch: Instant,
    /// When a connection last made progress: milliseconds since `epoch`.
    progress_ms: AtomicU64,
    /// Its pooled senders, and their hard stop (a child of the shutdown deadline's), so that a destination a
    /// reload removed can be stopped alone.
    pub(super) senders: TaskTracker,
    pub(super) stop_senders: OnceLock<CancellationToken>,
}

impl Destination {
    pub fn new(section: &str, url: DestUrl, config: OutgoingConfig) -> Destination {
        Destination {
            section: section.to_string(),
            queue: DestQueue::new(config.out_queue_lines, config.out_queue_bytes),
            url,
            config,
            stats: DestStats::default(),
            outage: Outage::default(),
            health_down: AtomicBool::new(false),
            purged: AtomicBool::new(false),
            retired: AtomicBool::new(false),
            drop_log: RateLimit::default(),
            send_failures: Mutex::default(),
            epoch: Instant::now(),
            progress_ms: AtomicU64::new(0),
            senders: TaskTracker::new(),
            stop_senders: OnceLock::new(),
        }
    }

    /// Whether a "send failed" warning for an error of `kind` may be logged now (`Some(suppressed since the last
    /// one)`): at most one a second per destination and kind of error, whatever the pool size.
    pub fn send_failure_log(&self, kind: io::ErrorKind) -> Option<u64> {
        self.send_failure_log_at(kind, crate::telemetry::unix_secs())
    }

    fn send_failure_log_at(&self, kind: io::ErrorKind, now: u64) -> Option<u64> {
        let mut limits = self.send_failures.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, limit)) = limits.iter().find(|(k, _)| *k == kind) {
            return limit.allow_at(now);
        }
        let limit = RateLimit::default();
        let allowed = limit.allow_at(now);
        limits.push((kind, limit));
        allowed
    }

    /// A connection wrote bytes or had bytes acknowledged.
    pub fn progressed(&self) {
        self.progress_ms.store(self.epoch.elapsed().as_millis() as u64, Relaxed);
    }

    /// A connection made no progress for `write_timeout` (it stays open, waiting for its peer).
    pub fn connection_stalled(&self) {
        self.stats.stalled_connections.fetch_add(1, Relaxed);
        self.stats.stalls.fetch_add(1, Relaxed);
    }

    /// A stalled connection made progress again, or was closed.
    pub fn connection_unstalled(&self) {
        self.stats.stalled_connections.fetch_sub(1, Relaxed);
    }

    /// Stalled = a connection is stalled and none made progress for `write_timeout` (one stuck connection of a
    /// pool whose others deliver is not a stalled destination).
    pub fn is_stalled(&self) -> bool {
        self.stats.stalled_connections.load(Relaxed) > 0
            && self.epoch.elapsed().as_millis() as u64 - self.progress_ms.load(Relaxed)
                >= self.config.write_timeout.as_millis() as u64
    }

    /// A dial failed.
    pub fn mark_unreachable(&self) {
        self.outage.dial_failed();
    }

    /// A dial succeeded.
    pub fn mark_reachable(&self) {
        self.outage.dialled();
    }

    pub fn set_health_down(&self, down: bool) {
        self.health_down.store(down, Relaxed);
    }

    /// Down = marked down by health checks, unreachable for longer than `out_block_timeout`, or stalled.
    pub fn is_down(&self) -> bool {
        if self.health_down.load(Relaxed) || self.is_stalled() {
            return true;
        }
        self.outage.longer_than(self.config.out_block_timeout)
    }

    /// Queues a batch. With [`WhenFull::Wait`], waits for room for the lines that do not fit while the destination
    /// is up; otherwise (or once it is down) they are dropped and counted as `queue_full`.
    pub async fn push(&self, mut batch: Batch, when_full: WhenFull) {
        loop {
            let room = self.queue.room();
            tokio::pin!(room);
            room.as_mut().enable();
            match self.queue.try_push(batch) {
                Ok(()) => return,
                Err(PushError::Closed(b)) => {
                    let reason = if self.purged.load(Relaxed) {
                        DropReason::Purged
                    } else {
                        DropReason::Shutdown
                    };
                    self.drop_batch(reason, b.lines);
                    return;
                }
                Err(PushError::Full(b)) => batch = b,
            }
            if when_full == WhenFull::Drop || self.is_down() {
                self.drop_batch(DropReason::QueueFull, batch.lines);
                return;
            }
            let _ = tokio::time::timeout(DOWN_RECHECK, room).await;
        }
    }

    pub fn drop_batch(&self, reason: DropReason, lines: usize) {
        if lines == 0 {
            return;
        }
        self.stats.drop_lines(reason, lines);
        if let Some(suppressed) = self.drop_log.allow() {
            tracing::warn!(
                section = %self.section, destination = %self.url.raw, reason = reason.label(), lines, suppressed,
                "lines dropped"
            );
        }
    }

    /// Removes the destination for good: closes its queue and counts what was queued as `purged`.
    pub fn purge(&self) {
        self.purged.store(true, Relaxed);
        self.queue.close();
        let lines = self.queue.clear();
        self.drop_batch(DropReason::Purged, lines);
    }

    pub fn is_purged(&self) -> bool {
        self.purged.load(Relaxed)
    }

    /// A reload removed it from every ring: it drains what it holds, and a member added later gets a fresh one.
    pub fn retire(&self) {
        self.retired.store(true, Relaxed);
    }

    /// Neither purged nor retired: a ring member may use it.
    pub fn is_live(&self) -> bool {
        !self.purged.load(Relaxed) && !self.retired.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn destination(block_ms: u64) -> Destination {
        let cfg = crate::config::load_main(
            &format!(
                "[default]\n[s]\nmsg_type = 'graphite'\nout_queue_lines = 2\nout_block_timeout = {block_ms}\n\
                 [[s.servers]]\nservers = ['tcp://127.0.0.1:9']\n"
            ),
            "t.toml",
        )
        .expect("config");
        let s = &cfg.sections[0];
        Destination::new("s", s.rings[0].servers[0].clone(), s.outgoing)
    }

    fn batch(lines: usize) -> Batch {
        Batch::from_lines(Bytes::from("x\n".repeat(lines)))
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_of_an_unreachable_destination_blocks_for_out_block_timeout_then_drops() {
        let d = destination(1000);
        d.push(batch(2), WhenFull::Wait).await;
        d.mark_unreachable();
        let start = tokio::time::Instant::now();
        d.push(batch(1), WhenFull::Wait).await;
        let waited = start.elapsed();
        assert!(waited > Duration::from_millis(1000), "waited {waited:?}");
        assert!(
            waited <= Duration::from_millis(1000) + DOWN_RECHECK,
            "waited {waited:?}"
        );
        assert_eq!(d.stats.dropped(DropReason::QueueFull), 1);
        // Once down, a full queue drops at once; reachable again, it waits again.
        d.push(batch(1), WhenFull::Wait).await;
        assert_eq!(start.elapsed(), waited);
        assert_eq!(d.stats.dropped(DropReason::QueueFull), 2);
        d.mark_reachable();
        assert!(!d.is_down());
        let pushing = d.push(batch(1), WhenFull::Wait);
        tokio::pin!(pushing);
        assert!(
            tokio::time::timeout(Duration::from_secs(60), pushing.as_mut())
                .await
                .is_err(),
            "a reachable destination's full queue holds the producer back"
        );
        d.queue.try_pop().expect("queued");
        pushing.await;
        assert_eq!(d.queue.depth().0, 1);
        assert_eq!(d.stats.dropped_total(), 2);
    }

    #[test]
    fn send_failure_warnings_are_limited_per_destination_and_kind_of_error() {
        let d = destination(1000);
        let refused = io::ErrorKind::ConnectionRefused;
        assert_eq!(d.send_failure_log_at(refused, 100), Some(0));
        // the other connections of the pool failing the same way in the same second: suppressed, counted
        for _ in 0..9 {
            assert_eq!(d.send_failure_log_at(refused, 100), None);
        }
        assert_eq!(
            d.send_failure_log_at(io::ErrorKind::TimedOut, 100),
            Some(0),
            "another reason has its own limit"
        );
        assert_eq!(
            d.send_failure_log_at(refused, 101),
            Some(9),
            "next second, with what was suppressed"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn drop_never_waits() {
        let d = destination(1000);
        d.push(batch(2), WhenFull::Drop).await;
        let start = tokio::time::Instant::now();
        d.push(batch(1), WhenFull::Drop).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(d.stats.dropped(DropReason::QueueFull), 1);
    }
}
