//! Accumulators: statsd and graphite aggregation into aligned time bins (spec §9).
//!
//! An accumulator folds the lines of one PreReg group into per-key state. On each aligned base tick it is
//! flushed: it renders output lines (to the accumulator's backend section) and one [`Record`] per key that
//! received samples, which the [`bins`] merge and hand to the writers at their own aligned ticks.

pub mod bins;
pub mod graphite;
pub mod jsnum;
pub mod statsd;
pub mod task;

use std::time::Duration;

use crate::config::{AccumulatorConfig, Format};
use crate::line::Record;
use graphite::GraphiteState;
use statsd::StatsdState;

pub use task::{Accumulator, AccumulatorStats, AccumulatorTask};

/// The `max_keys` bound of an accumulator's key map: a new key is admitted while fewer keys are held; the samples
/// of refused ones are counted until taken.
#[derive(Clone, Copy, Debug)]
pub struct KeyBound {
    max: usize,
    refused: u64,
}

impl Default for KeyBound {
    fn default() -> KeyBound {
        KeyBound::new(usize::MAX)
    }
}

impl KeyBound {
    pub fn new(max: usize) -> KeyBound {
        KeyBound { max, refused: 0 }
    }

    /// Whether a new key may join the `held` ones; counts the sample as refused when not.
    pub fn admits(&mut self, held: usize) -> bool {
        let ok = held < self.max;
        if !ok {
            self.refused += 1;
        }
        ok
    }

    /// Samples refused since the last call.
    pub fn take_refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

/// The aggregation state of one accumulator, by input format.
#[derive(Debug)]
pub enum State {
    Statsd(Box<StatsdState>),
    Graphite(GraphiteState),
}

impl State {
    /// An empty state for the accumulator of `cfg`.
    pub fn new(cfg: &AccumulatorConfig) -> State {
        match cfg.input_format {
            Format::Statsd => State::Statsd(Box::new(
                StatsdState::new(&cfg.options, cfg.keep_keys).with_max_keys(cfg.max_keys),
            )),
            Format::Graphite => State::Graphite(GraphiteState::new(cfg.keep_keys).with_max_keys(cfg.max_keys)),
        }
    }

    /// Samples dropped since the last call because their key was new and `max_keys` keys were held.
    pub fn take_over_max_keys(&mut self) -> u64 {
        match self {
            State::Statsd(a) => a.take_over_max_keys(),
            State::Graphite(a) => a.take_over_max_keys(),
        }
    }

    /// Folds one line; returns (valid samples, invalid samples).
    pub fn add(&mut self, line: &[u8]) -> (u32, u32) {
        match self {
            State::Statsd(a) => a.add(line),
            State::Graphite(a) => match a.add(line) {
                Ok(()) => (1, 0),
                Err(_) => (0, 1),
            },
        }
    }

    /// Renders the interval's output lines into `out` and its records; returns the number of lines.
    pub fn flush(
        &mut self,
        interval: Duration,
        tick: i64,
        format: Format,
        out: &mut Vec<u8>,
        records: &mut Vec<Record>,
    ) -> usize {
        match self {
            State::Statsd(a) => a.flush(interval.as_secs_f64(), tick, format, out, records),
            State::Graphite(a) => a.flush(tick, format, out, records),
        }
    }

    /// The un-flushed state, one entry per key and type.
    pub fn snapshot(&self) -> Vec<StatRepr> {
        match self {
            State::Statsd(a) => a.snapshot(),
            State::Graphite(a) => a.snapshot(),
        }
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        match self {
            State::Statsd(a) => a.len(),
            State::Graphite(a) => a.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
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
