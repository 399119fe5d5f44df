//! Accumulators: statsd and graphite aggregation into aligned time bins (spec §9).
//!
//! An accumulator folds the lines of one PreReg group into per-key state. On each aligned base tick it is
//! flushed: it renders output lines (to the accumulator's backend section) and one [`Record`] per key that
//! received samples, which the [`bins`] merge and hand to the writers at their own aligned ticks.

pub mod bins;
pub mod clock;
pub mod graphite;
pub mod input;
pub mod jsnum;
pub mod statsd;
pub mod task;

/// One key's aggregate over one base interval (spec §9.5).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub key: String,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
}

impl Record {
    pub fn mean(&self) -> f64 {
        self.sum / self.count as f64
    }

    /// The merge rule of §9.5: counts and sums add, min and max combine.
    pub fn merge(&mut self, o: &Record) {
        self.sum += o.sum;
        self.count += o.count;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
}

/// A record as a writer stores it: one key, one bin.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub key: String,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    pub count: u64,
    /// The bin's tick (unix seconds).
    pub time: i64,
    /// Bin width in seconds.
    pub resolution: u64,
    /// Bin TTL in seconds.
    pub ttl: u64,
}

/// One entry of `/<s>/accumulator` (spec §11.2 StatRepr, without the time fields the API adds).
#[derive(Clone, Debug, PartialEq)]
pub struct StatRepr {
    pub key: String,
    /// `<key>|<type>`
    pub stat_key: String,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub mean: f64,
    pub count: u64,
}
