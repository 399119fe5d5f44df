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

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AccumulatorConfig, Format};
use crate::line::{KeyedBatch, Record};
use graphite::GraphiteState;
use statsd::StatsdState;

pub use task::{Accumulator, AccumulatorStats, AccumulatorTask};

/// The `max_keys` bound of an accumulator's key maps: a new key is admitted while fewer keys are held; the samples
/// of refused ones are counted until taken. The held count is shared by the clones made with [`KeyBound::share`]
/// (the shards of one accumulator), so the bound is on all of them together; a state taken for flushing leaves it
/// ([`KeyBound::detach`]).
#[derive(Debug)]
pub struct KeyBound {
    max: usize,
    held: Arc<AtomicUsize>,
    refused: u64,
}

impl Default for KeyBound {
    fn default() -> KeyBound {
        KeyBound::new(usize::MAX)
    }
}

impl KeyBound {
    pub fn new(max: usize) -> KeyBound {
        KeyBound {
            max,
            held: Arc::default(),
            refused: 0,
        }
    }

    /// A bound on the same held keys, with its own refused count.
    pub fn share(&self) -> KeyBound {
        KeyBound {
            max: self.max,
            held: self.held.clone(),
            refused: 0,
        }
    }

    /// Whether one more key may be held; counts it as held when so, and the sample as refused when not.
    pub fn admits(&mut self) -> bool {
        if self.held.fetch_add(1, Relaxed) < self.max {
            return true;
        }
        self.held.fetch_sub(1, Relaxed);
        self.refused += 1;
        false
    }

    /// `keys` admitted keys are no longer held.
    pub fn release(&self, keys: usize) {
        self.held.fetch_sub(keys, Relaxed);
    }

    /// Moves `keys` held keys out of the shared count into a count of their own (a state taken for flushing: its
    /// keys no longer count against the live states').
    pub fn detach(&mut self, keys: usize) {
        self.release(keys);
        self.held = Arc::new(AtomicUsize::new(keys));
    }

    /// Keys held under this bound (by every state sharing it).
    pub fn held(&self) -> usize {
        self.held.load(Relaxed)
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
    /// An empty state for the accumulator of `cfg`, holding keys under `bound`.
    pub fn new(cfg: &AccumulatorConfig, bound: KeyBound) -> State {
        match cfg.input_format {
            Format::Statsd => State::Statsd(Box::new(
                StatsdState::new(&cfg.options, cfg.keep_keys).with_bound(bound),
            )),
            Format::Graphite => State::Graphite(GraphiteState::new(cfg.keep_keys).with_bound(bound)),
        }
    }

    /// Takes the state for flushing, leaving an empty one with the same options and bound in its place; the keys
    /// taken no longer count against the bound.
    pub fn take(&mut self) -> State {
        let fresh = match self {
            State::Statsd(a) => State::Statsd(Box::new(a.emptied())),
            State::Graphite(a) => State::Graphite(a.emptied()),
        };
        let mut taken = std::mem::replace(self, fresh);
        let keys = taken.len();
        taken.bound().detach(keys);
        taken
    }

    fn bound(&mut self) -> &mut KeyBound {
        match self {
            State::Statsd(a) => &mut a.bound,
            State::Graphite(a) => &mut a.bound,
        }
    }

    /// Samples dropped since the last call because their key was new and `max_keys` keys were held.
    pub fn take_over_max_keys(&mut self) -> u64 {
        match self {
            State::Statsd(a) => a.take_over_max_keys(),
            State::Graphite(a) => a.take_over_max_keys(),
        }
    }

    /// Folds the lines of a router's batch; returns the invalid samples.
    pub fn add_batch(&mut self, batch: &KeyedBatch) -> u64 {
        match self {
            State::Statsd(a) => a.add_batch(batch),
            State::Graphite(a) => batch.iter().map(|(line, _)| u64::from(a.add(line).is_err())).sum(),
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

    /// Renders the interval's output lines into `out` (counts them only, for `None`) and its records; returns the
    /// number of lines.
    pub fn flush(
        &mut self,
        interval: Duration,
        tick: i64,
        format: Format,
        out: Option<&mut Vec<u8>>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StatsdOptions;
    use crate::line::Batch;
    use crate::section::AccumulatorInput;
    use crate::splitter::{accumulator_key, KeyScratch};
    use proptest::prelude::*;
    use std::hash::BuildHasher;

    /// Keys that differ as written but not as the accumulator holds them (sanitized, tagged, lossily decoded).
    const STATSD_KEYS: &[&[u8]] = &[
        b"a",
        b"a b",
        b"a_b",
        b"a\tb",
        b"a/b",
        b"a-b",
        b"\xffa",
        b"\xfea",
        b"",
        b"x.y",
        b"x;t=1",
        b"x",
        b"q\xc3\xa9",
    ];
    const GRAPHITE_KEYS: &[&[u8]] = &[b"a.count", b"a.max", b"b", b"b.min", b"\xff", b"\xfe", b"c.gauges.x"];

    fn statsd_line() -> impl Strategy<Value = Vec<u8>> {
        let part = (
            prop::sample::select(&["1", "-2", "+3", "0.5", "abc", "", "7"][..]),
            prop::sample::select(&["c", "ms", "g", "s", "h", "x"][..]),
            prop::sample::select(&["", "|@0.5", "|@x"][..]),
        )
            .prop_map(|(v, t, r)| format!("{v}|{t}{r}"));
        (
            prop::sample::select(STATSD_KEYS),
            prop::collection::vec(part, 0..3),
            prop::sample::select(&["", "|#t:1", "|#t:1,u", "|#"][..]),
        )
            .prop_map(|(key, parts, tags)| {
                let mut line = key.to_vec();
                if !parts.is_empty() {
                    line.push(b':');
                    line.extend_from_slice(parts.join(":").as_bytes());
                }
                line.extend_from_slice(tags.as_bytes());
                line
            })
    }

    fn graphite_line() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(GRAPHITE_KEYS),
            prop::sample::select(&["1", "-2.5", "x", "3e2"][..]),
        )
            .prop_map(|(k, v)| [k, b" ", v.as_bytes(), b" 1"].concat())
    }

    fn state(graphite: bool, keep: bool, bound: KeyBound) -> State {
        let options = StatsdOptions::from_pairs(&[("percentThreshold", "50,90,-10")]).expect("options");
        if graphite {
            State::Graphite(GraphiteState::new(keep).with_bound(bound))
        } else {
            State::Statsd(Box::new(StatsdState::new(&options, keep).with_bound(bound)))
        }
    }

    /// Sorted output lines and records (as text) of one flush.
    fn rendered(out: &[u8], records: &[Record]) -> (Vec<String>, Vec<String>) {
        let mut lines: Vec<String> = String::from_utf8_lossy(out).lines().map(str::to_string).collect();
        lines.sort();
        let mut recs: Vec<String> = records.iter().map(|r| format!("{r:?}")).collect();
        recs.sort();
        (lines, recs)
    }

    proptest! {
        /// A stream folded over any number of shards, each key in one shard (by the input's own hash, each shard
        /// folding its lines in batches with their keys as a router sends them, or by any other function of the
        /// key the accumulator holds, line by line), flushes the same lines and records as one state, over two
        /// intervals (so `keep_keys` and taking a shard for its flush count), with the same keys held and dropped.
        #[test]
        fn any_split_over_shards_flushes_what_one_shard_does(
            graphite in any::<bool>(),
            lines in prop::collection::vec(prop_oneof![statsd_line(), graphite_line()], 1..120),
            shards in 1usize..6,
            by_input in any::<bool>(),
            seed in any::<u64>(),
            keep in any::<bool>(),
            max_keys in prop_oneof![Just(usize::MAX), 1usize..12],
            cut in any::<prop::sample::Index>(),
        ) {
            let format = if graphite { Format::Graphite } else { Format::Statsd };
            let (input, _rx) = AccumulatorInput::new("s", shards, format);
            let mut scratch = KeyScratch::default();
            let mut shard_of = |line: &[u8]| -> usize {
                if by_input {
                    return input.shard(input.key_of(line, &mut scratch).0);
                }
                let text = String::from_utf8_lossy(line);
                let key: String = if graphite {
                    text.split_ascii_whitespace().next().unwrap_or("").to_string()
                } else {
                    accumulator_key(&text, &mut scratch).map_or(String::new(), |k| k.key.to_string())
                };
                (foldhash::fast::FixedState::with_seed(seed).hash_one(key) % shards as u64) as usize
            };
            let one_bound = KeyBound::new(max_keys);
            let mut one = state(graphite, keep, one_bound.share());
            let split_bound = KeyBound::new(max_keys);
            let mut split: Vec<State> = (0..shards).map(|_| state(graphite, keep, split_bound.share())).collect();
            let cut = cut.index(lines.len() + 1);
            for (i, interval) in [&lines[..cut], &lines[cut..]].into_iter().enumerate() {
                // framed lines, as a router has them (never empty), with their shards
                let interval: Vec<(usize, &[u8])> =
                    interval.iter().filter(|l| !l.is_empty()).map(|l| (shard_of(l), l.as_slice())).collect();
                let mut one_valid = (0, 0);
                for (_, line) in &interval {
                    let (v, b) = one.add(line);
                    one_valid = (one_valid.0 + v, one_valid.1 + b);
                }
                if by_input {
                    // in batches with their keys, as from a router: each run of lines of one shard is one batch, so
                    // that the shards fold in stream order (which keys `max_keys` admits depends on it)
                    let mut invalid = 0;
                    for run in interval.chunk_by(|a, b| a.0 == b.0) {
                        let lines: Vec<u8> = run.iter().flat_map(|(_, l)| l.iter().chain(b"\n")).copied().collect();
                        let batch = input.keyed(Batch::from_lines(lines.into()), &mut KeyScratch::default());
                        invalid += split[run[0].0].add_batch(&batch);
                    }
                    prop_assert_eq!(u64::from(one_valid.1), invalid);
                } else {
                    let mut split_valid = (0, 0);
                    for (shard, line) in &interval {
                        let (v, b) = split[*shard].add(line);
                        split_valid = (split_valid.0 + v, split_valid.1 + b);
                    }
                    prop_assert_eq!(one_valid, split_valid);
                }
                prop_assert_eq!(one.take_over_max_keys(), split.iter_mut().map(State::take_over_max_keys).sum::<u64>());
                prop_assert_eq!(one_bound.held(), split_bound.held());
                let tick = 1_700_000_000 + 10 * i as i64;
                let (mut out, mut records) = (Vec::new(), Vec::new());
                one.flush(Duration::from_secs(10), tick, Format::Graphite, Some(&mut out), &mut records);
                let want = rendered(&out, &records);
                let (mut out, mut records) = (Vec::new(), Vec::new());
                if keep {
                    for s in &mut split {
                        s.flush(Duration::from_secs(10), tick, Format::Graphite, Some(&mut out), &mut records);
                    }
                } else {
                    // as the task does: every shard taken, the fresh states admitting new keys while these render
                    let mut taken: Vec<State> = split.iter_mut().map(State::take).collect();
                    prop_assert_eq!(split_bound.held(), 0, "taken keys do not count against the live states");
                    for t in &mut taken {
                        t.flush(Duration::from_secs(10), tick, Format::Graphite, Some(&mut out), &mut records);
                    }
                }
                prop_assert_eq!(rendered(&out, &records), want);
                prop_assert_eq!(one_bound.held(), split_bound.held(), "after the flush");
            }
        }
    }
}
