//! Wall-clock aligned ticks driven by `tokio::time` (spec §9.1): the accumulators flush and the file writer rotates by it.
//!
//! The wall time is a wall-clock origin plus the `tokio::time::Instant` elapsed since the clock was made, so
//! `tokio::time::pause`/`advance` move it and tests can drive flushes deterministically. The cost is that wall
//! clock steps (NTP) after start are not followed; ticks stay aligned to the origin's notion of time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

const NANOS_PER_MS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// Unix time of `origin`, in nanoseconds.
    origin_unix_ns: u64,
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock that starts at the system's wall time.
    pub fn new() -> Clock {
        let ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Clock {
            origin_unix_ns: u64::try_from(ns).unwrap_or(u64::MAX),
            origin: Instant::now(),
        }
    }

    /// A clock that reads `unix_ms` now (tests).
    pub fn starting_at(unix_ms: u64) -> Clock {
        Clock {
            origin_unix_ns: unix_ms.saturating_mul(NANOS_PER_MS),
            origin: Instant::now(),
        }
    }

    /// Current wall time in unix nanoseconds.
    pub fn now_ns(&self) -> u64 {
        let elapsed =
            u64::try_from(Instant::now().saturating_duration_since(self.origin).as_nanos()).unwrap_or(u64::MAX);
        self.origin_unix_ns.saturating_add(elapsed)
    }

    /// Current wall time in unix milliseconds.
    pub fn now_ms(&self) -> u64 {
        self.now_ns() / NANOS_PER_MS
    }

    /// The next instant strictly after now whose unix time in ms is a multiple of `interval` (whole ms, at least
    /// 1), as the tokio instant to sleep until and its unix ms.
    pub fn next_tick(&self, interval: Duration) -> (Instant, u64) {
        let iv = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX).max(1);
        let next_ms = (self.now_ms() / iv).saturating_add(1).saturating_mul(iv);
        (self.instant_at(next_ms), next_ms)
    }

    /// The tokio instant at which this clock reads `unix_ms` (the origin instant for times before it).
    pub fn instant_at(&self, unix_ms: u64) -> Instant {
        let ns = unix_ms.saturating_mul(NANOS_PER_MS).saturating_sub(self.origin_unix_ns);
        self.origin + Duration::from_nanos(ns)
    }
}

/// A tick's unix time in whole seconds, rounded half up (§9.1: sub-second intervals).
pub fn tick_secs(unix_ms: u64) -> i64 {
    i64::try_from(unix_ms.saturating_add(500) / 1000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_secs_rounds_half_up() {
        assert_eq!(tick_secs(0), 0);
        assert_eq!(tick_secs(1_457_989_005_000), 1_457_989_005);
        assert_eq!(tick_secs(1_457_989_005_499), 1_457_989_005);
        assert_eq!(tick_secs(1_457_989_005_500), 1_457_989_006);
        assert_eq!(tick_secs(1_457_989_005_999), 1_457_989_006);
        assert_eq!(tick_secs(250), 0);
        assert_eq!(tick_secs(750), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn now_follows_paused_tokio_time() {
        let clock = Clock::starting_at(1_000_123);
        assert_eq!(clock.now_ms(), 1_000_123);
        tokio::time::advance(Duration::from_millis(877)).await;
        assert_eq!(clock.now_ms(), 1_001_000);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now_ms(), 1_001_000 + 3_600_000);
    }

    #[tokio::test(start_paused = true)]
    async fn next_tick_is_aligned_and_strictly_after_now() {
        let clock = Clock::starting_at(1_457_989_003_250);
        let (at, ms) = clock.next_tick(Duration::from_secs(5));
        assert_eq!(ms, 1_457_989_005_000);
        assert_eq!(at - Instant::now(), Duration::from_millis(1750));
        let (_, ms) = clock.next_tick(Duration::from_secs(60));
        assert_eq!(ms, 1_457_989_020_000);
        let (_, ms) = clock.next_tick(Duration::from_millis(250));
        assert_eq!(ms, 1_457_989_003_500);

        // Sleeping to the tick lands on it; the next tick is then one interval later, not the same one.
        tokio::time::sleep_until(at).await;
        assert_eq!(clock.now_ms(), 1_457_989_005_000);
        let (at2, ms2) = clock.next_tick(Duration::from_secs(5));
        assert_eq!(ms2, 1_457_989_010_000);
        assert_eq!(at2 - at, Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn ticks_in_a_loop_stay_aligned() {
        let clock = Clock::starting_at(999);
        let mut seen = Vec::new();
        for _ in 0..4 {
            let (at, ms) = clock.next_tick(Duration::from_secs(2));
            tokio::time::sleep_until(at).await;
            assert!(clock.now_ms() >= ms);
            seen.push(ms);
        }
        assert_eq!(seen, vec![2000, 4000, 6000, 8000]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_interval_is_one_ms() {
        let clock = Clock::starting_at(10);
        assert_eq!(clock.next_tick(Duration::ZERO).1, 11);
    }
}
