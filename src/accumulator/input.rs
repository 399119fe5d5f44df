//! The bounded channel in front of an accumulator: routers send it batches of the lines that stay in their
//! section. Stream listeners wait for room (back-pressure); UDP listeners drop and count what does not fit.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use tokio::sync::mpsc;

use crate::line::Batch;
use crate::telemetry::RateLimit;

/// Batches the channel holds.
pub const CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct AccInput {
    tx: mpsc::Sender<Batch>,
    /// Lines accepted into the channel.
    pub accepted: AtomicU64,
    /// Lines dropped because the channel was full (UDP) or closed (shutdown).
    pub dropped: AtomicU64,
    log: RateLimit,
    section: String,
}

impl AccInput {
    pub fn new(section: &str) -> (AccInput, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(CAPACITY);
        let input = AccInput {
            tx,
            accepted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            log: RateLimit::default(),
            section: section.to_string(),
        };
        (input, rx)
    }

    pub async fn push(&self, batch: Batch, wait: bool) {
        let lines = batch.lines as u64;
        let sent = if wait {
            self.tx.send(batch).await.is_ok()
        } else {
            self.tx.try_send(batch).is_ok()
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
