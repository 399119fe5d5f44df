//! Reconnect backoff of one pooled connection (spec §8.3): after each failure the wait doubles from
//! [`Backoff::START`] up to `reconnect_backoff_max`; a success starts over. Each wait is jittered into
//! `[d/2, d]` so that the connections of a pool (and of many relays) that failed together do not re-dial in step.

use std::time::Duration;

/// The exponential, jittered backoff of one connection.
#[derive(Debug)]
pub struct Backoff {
    /// The un-jittered wait after the next failure.
    next: Duration,
    max: Duration,
    rng: fastrand::Rng,
}

impl Backoff {
    /// The first wait (before jitter).
    pub const START: Duration = Duration::from_millis(100);

    /// A backoff capped at `max` (at least [`Backoff::START`]).
    pub fn new(max: Duration) -> Backoff {
        Backoff {
            next: Backoff::START,
            max: max.max(Backoff::START),
            rng: fastrand::Rng::new(),
        }
    }

    /// How long to wait after a failure; the next failure waits twice as long, up to the cap.
    pub fn failed(&mut self) -> Duration {
        let d = self.next;
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        half + Duration::from_nanos(self.rng.u64(0..=half.as_nanos() as u64))
    }

    /// A success: the next failure waits [`Backoff::START`] again.
    pub fn succeeded(&mut self) {
        self.next = Backoff::START;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap_and_starts_over_after_a_success() {
        let mut b = Backoff::new(Duration::from_millis(1000));
        for _ in 0..100 {
            let ceilings = [100, 200, 400, 800, 1000, 1000];
            for ms in ceilings {
                let d = b.failed();
                let ceiling = Duration::from_millis(ms);
                assert!(
                    d >= ceiling / 2 && d <= ceiling,
                    "{d:?} outside [{:?}, {ceiling:?}]",
                    ceiling / 2
                );
            }
            b.succeeded();
        }
    }

    #[test]
    fn a_cap_below_the_start_is_the_start() {
        let mut b = Backoff::new(Duration::from_millis(10));
        for _ in 0..5 {
            assert!(b.failed() <= Backoff::START);
        }
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut b = Backoff::new(Duration::from_secs(5));
        let waits: std::collections::HashSet<Duration> = (0..20)
            .map(|_| {
                b.succeeded();
                b.failed()
            })
            .collect();
        assert!(waits.len() > 10, "20 first waits, only {} distinct", waits.len());
    }
}
