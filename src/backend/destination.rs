//! One destination: its queue, its counters, its reachability, and the rules for pushing into a full queue
//! (spec §8.3).
//!
//! While a destination is *up*, a stream listener waits for room in its full queue (back-pressure reaches the
//! client); while it is *down* (marked down by health checks, or unreachable for longer than `out_block_timeout`)
//! the new batch is dropped and counted, so one dead server never stalls the relay. UDP listeners never wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

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
    /// Milliseconds since `epoch` + 1 when the first failed dial of an outage happened; 0 while reachable.
    unreachable_since: AtomicU64,
    /// Set by health checks.
    health_down: AtomicBool,
    /// Set when the destination was removed through the API: its queue is closed and dropped.
    purged: AtomicBool,
    epoch: Instant,
    drop_log: RateLimit,
}

impl Destination {
    pub fn new(section: &str, url: DestUrl, config: OutgoingConfig) -> Destination {
        Destination {
            section: section.to_string(),
            queue: DestQueue::new(config.out_queue_lines, config.out_queue_bytes),
            url,
            config,
            stats: DestStats::default(),
            unreachable_since: AtomicU64::new(0),
            health_down: AtomicBool::new(false),
            purged: AtomicBool::new(false),
            epoch: Instant::now(),
            drop_log: RateLimit::default(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    pub fn mark_unreachable(&self) {
        let _ = self
            .unreachable_since
            .compare_exchange(0, self.now_ms(), Relaxed, Relaxed);
    }

    pub fn mark_reachable(&self) {
        self.unreachable_since.store(0, Relaxed);
    }

    pub fn set_health_down(&self, down: bool) {
        self.health_down.store(down, Relaxed);
    }

    /// Down = marked down by health checks, or unreachable for longer than `out_block_timeout`.
    pub fn is_down(&self) -> bool {
        if self.health_down.load(Relaxed) {
            return true;
        }
        let since = self.unreachable_since.load(Relaxed);
        since != 0 && self.now_ms().saturating_sub(since) > self.config.out_block_timeout.as_millis() as u64
    }

    /// Queues a batch. With [`WhenFull::Wait`], waits for room while the destination is up; otherwise (or once it
    /// is down) a batch that does not fit is dropped and counted as `queue_full`.
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
}
