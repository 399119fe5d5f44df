//! The graphite accumulator (spec §9.3) and its output formats (§9.4).
//!
//! Lines are `<key> <value> <time>`; the time is ignored. Each key gets an aggregation, chosen once from
//! substrings of the key when it is first seen, and a running sum/min/max/count/last. A flush renders one line
//! per key (the aggregate), hands one [`Record`] per key that received samples to the bins, and resets the state
//! (or, with `keep_keys`, keeps the keys so idle ones emit 0).

use foldhash::HashMap;
use std::fmt;
use std::io::Write as _;

use super::StatRepr;
use crate::config::Format;
use crate::line::Record;

/// A line the graphite accumulator refuses. Small and `Copy`: counted per batch, never logged per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphiteError {
    /// Fewer than three whitespace-separated fields.
    InvalidLine,
    /// The value is not a finite float in Go syntax.
    BadValue,
}

impl GraphiteError {
    pub fn message(self) -> &'static str {
        match self {
            GraphiteError::InvalidLine => "Invalid Graphite line",
            GraphiteError::BadValue => "Bad Value",
        }
    }
}

impl fmt::Display for GraphiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for GraphiteError {}

/// How a key's values become its output value, chosen once from the key (§9.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aggregation {
    Mean,
    Min,
    Max,
    Sum,
    Last,
}

impl Aggregation {
    /// First match wins, in the spec's order.
    pub fn for_key(key: &str) -> Aggregation {
        let has = |subs: &[&str]| subs.iter().any(|s| key.contains(s));
        if has(&[".lower", ".min"]) {
            Aggregation::Min
        } else if has(&[".upper", ".max"]) {
            Aggregation::Max
        } else if has(&[".sum"]) {
            Aggregation::Sum
        } else if has(&[".gauges", ".abs", ".absolute"]) {
            Aggregation::Last
        } else if has(&[".counters", ".count", ".errors"]) {
            Aggregation::Sum
        } else {
            Aggregation::Mean
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Mean => "mean",
            Aggregation::Min => "min",
            Aggregation::Max => "max",
            Aggregation::Sum => "sum",
            Aggregation::Last => "last",
        }
    }
}

#[derive(Clone, Debug)]
struct Entry {
    agg: Aggregation,
    sum: f64,
    min: f64,
    max: f64,
    last: f64,
    count: u64,
}

impl Entry {
    fn new(agg: Aggregation) -> Entry {
        Entry {
            agg,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            last: 0.0,
            count: 0,
        }
    }

    fn add(&mut self, v: f64) {
        self.sum += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.last = v;
        self.count += 1;
    }

    /// The output value; an idle (kept) key emits 0.
    fn value(&self) -> f64 {
        if self.count == 0 {
            return 0.0;
        }
        match self.agg {
            Aggregation::Mean => self.sum / self.count as f64,
            Aggregation::Min => self.min,
            Aggregation::Max => self.max,
            Aggregation::Sum => self.sum,
            Aggregation::Last => self.last,
        }
    }

    fn reset(&mut self) {
        *self = Entry::new(self.agg);
    }
}

/// Per-key state of one graphite accumulator. Not shared: owned by the accumulator task.
#[derive(Debug, Default)]
pub struct GraphiteState {
    keep_keys: bool,
    stats: HashMap<Box<str>, Entry>,
    /// Lines of new keys are dropped (and counted) while `stats` holds `max_keys`.
    pub(super) bound: super::KeyBound,
}

impl GraphiteState {
    pub fn new(keep_keys: bool) -> Self {
        GraphiteState {
            keep_keys,
            stats: HashMap::default(),
            bound: super::KeyBound::default(),
        }
    }

    /// Holds keys under `bound` (shared with the other shards of its accumulator).
    pub fn with_bound(mut self, bound: super::KeyBound) -> Self {
        self.bound = bound;
        self
    }

    /// An empty state with the same options, under the same bound.
    pub fn emptied(&self) -> Self {
        GraphiteState::new(self.keep_keys).with_bound(self.bound.share())
    }

    /// Lines dropped for `max_keys` since the last call.
    pub fn take_over_max_keys(&mut self) -> u64 {
        self.bound.take_refused()
    }

    /// Fold one line (without its newline) into the state.
    pub fn add(&mut self, line: &[u8]) -> Result<(), GraphiteError> {
        let mut fields = line.split(|b| b.is_ascii_whitespace()).filter(|f| !f.is_empty());
        let (Some(key), Some(value), Some(_time)) = (fields.next(), fields.next(), fields.next()) else {
            return Err(GraphiteError::InvalidLine);
        };
        let value = std::str::from_utf8(value)
            .ok()
            .and_then(parse_go_float)
            .ok_or(GraphiteError::BadValue)?;
        if !value.is_finite() {
            return Err(GraphiteError::BadValue);
        }
        let key = String::from_utf8_lossy(key);
        match self.stats.get_mut(key.as_ref()) {
            Some(e) => e.add(value),
            None if !self.bound.admits() => {}
            None => {
                let mut e = Entry::new(Aggregation::for_key(&key));
                e.add(value);
                self.stats.insert(key.into(), e);
            }
        }
        Ok(())
    }

    /// Render every key stamped with `tick` (unix seconds) into `out`, one newline-terminated line each (only count
    /// them when `out` is `None`: an accumulator without a backend), push one record per key that received
    /// samples, and reset the state. Returns the number of lines.
    pub fn flush(
        &mut self,
        tick: i64,
        format: Format,
        mut out: Option<&mut Vec<u8>>,
        records: &mut Vec<Record>,
    ) -> usize {
        let mut lines = 0;
        for (key, e) in &self.stats {
            if let Some(out) = out.as_deref_mut() {
                write_line(out, key, e.value(), tick, format);
            }
            lines += 1;
            if e.count > 0 {
                records.push(Record {
                    key: key.to_string(),
                    sum: e.sum,
                    min: e.min,
                    max: e.max,
                    count: e.count,
                });
            }
        }
        if self.keep_keys {
            self.stats.values_mut().for_each(Entry::reset);
        } else {
            self.bound.release(self.stats.len());
            self.stats.clear();
        }
        lines
    }

    /// The current state, for the stats API. `stat_key` is `<key>|<aggregation>` (`mean`, `min`, `max`, `sum`,
    /// `last`); an idle kept key shows zeros.
    pub fn snapshot(&self) -> Vec<StatRepr> {
        self.stats
            .iter()
            .map(|(key, e)| {
                let idle = e.count == 0;
                StatRepr {
                    key: key.to_string(),
                    stat_key: format!("{key}|{}", e.agg.name()),
                    min: if idle { 0.0 } else { e.min },
                    max: if idle { 0.0 } else { e.max },
                    sum: e.sum,
                    mean: if idle { 0.0 } else { e.sum / e.count as f64 },
                    count: e.count,
                }
            })
            .collect()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.stats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stats.is_empty()
    }
}

/// One output line (§9.4): graphite `<key> <value %.6f> <tick>`, statsd `<name>:<value %.6f>|c`.
fn write_line(out: &mut Vec<u8>, key: &str, value: f64, tick: i64, format: Format) {
    // Writing into a Vec<u8> cannot fail.
    let _ = match format {
        Format::Graphite => writeln!(out, "{key} {value:.6} {tick}"),
        Format::Statsd => writeln!(out, "{}:{value:.6}|c", statsd_name(key)),
    };
}

/// The key with the first occurrence of each statsd namespace prefix removed (§9.4).
pub fn statsd_name(key: &str) -> String {
    let mut name = key.to_string();
    for pat in ["stats.counters.", "stats.gauges.", "stats.timers."] {
        if name.contains(pat) {
            name = name.replacen(pat, "", 1);
        }
    }
    name
}

/// Go `strconv.ParseFloat(s, 64)` syntax: decimal (what Rust's parser accepts, minus nothing Go lacks) plus Go's
/// hexadecimal floats (`0x1.8p1`, underscores between digits). `None` for a syntax error; out-of-range values
/// come back infinite and are refused by the caller.
fn parse_go_float(s: &str) -> Option<f64> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'+') => (false, &s[1..]),
        Some(b'-') => (true, &s[1..]),
        _ => (false, s),
    };
    if body.len() > 2 && (body.starts_with("0x") || body.starts_with("0X")) {
        let v = parse_hex_float(&body[2..])?;
        return Some(if neg { -v } else { v });
    }
    s.parse::<f64>().ok()
}

/// `hexdigits[.hexdigits]p[+-]digits` after the `0x` prefix; the exponent is mandatory (Go).
fn parse_hex_float(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    // Underscores must sit between digits (the prefix counts as a digit on the left).
    for (i, &c) in b.iter().enumerate() {
        if c == b'_' {
            let left_ok = i == 0 || b[i - 1].is_ascii_hexdigit();
            let right_ok = b.get(i + 1).is_some_and(|c| c.is_ascii_hexdigit());
            if !left_ok || !right_ok {
                return None;
            }
        }
    }
    let p = b.iter().position(|&c| c == b'p' || c == b'P')?;
    let (mant, exp) = (&s[..p], &s[p + 1..]);
    let exp: i32 = exp.replace('_', "").parse().ok()?;
    let mut value = 0.0f64;
    let mut frac_digits: i32 = 0;
    let (mut seen_dot, mut digits) = (false, 0);
    for c in mant.chars() {
        match c {
            '_' => {}
            '.' if !seen_dot => seen_dot = true,
            _ => {
                let d = c.to_digit(16)?;
                value = value * 16.0 + f64::from(d);
                digits += 1;
                if seen_dot {
                    frac_digits += 1;
                }
            }
        }
    }
    if digits == 0 {
        return None;
    }
    let e = exp.saturating_sub(frac_digits.saturating_mul(4));
    Some(value * 2f64.powi(e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulator::KeyBound;

    fn acc_with(keep: bool, lines: &[&str]) -> GraphiteState {
        let mut acc = GraphiteState::new(keep);
        for l in lines {
            acc.add(l.as_bytes()).expect("valid line");
        }
        acc
    }

    fn flush_sorted(acc: &mut GraphiteState, tick: i64, format: Format) -> (Vec<String>, Vec<Record>) {
        let (mut out, mut recs) = (Vec::new(), Vec::new());
        let n = acc.flush(tick, format, Some(&mut out), &mut recs);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.is_empty() || text.ends_with('\n'));
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), n);
        lines.sort();
        recs.sort_by(|a, b| a.key.cmp(&b.key));
        (lines, recs)
    }

    #[test]
    fn lines_without_an_output_buffer_are_counted_not_rendered() {
        let lines = ["a.b 1 1", "c.d 2 1", "a.b 4 1"];
        let (mut rendered, mut counted) = (acc_with(false, &lines), acc_with(false, &lines));
        let (mut out, mut want, mut got) = (Vec::new(), Vec::new(), Vec::new());
        assert_eq!(rendered.flush(5, Format::Graphite, Some(&mut out), &mut want), 2);
        assert_eq!(counted.flush(5, Format::Graphite, None, &mut got), 2);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 2);
        want.sort_by(|a, b| a.key.cmp(&b.key));
        got.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got, want);
    }

    #[test]
    fn new_keys_beyond_max_keys_are_dropped_and_counted() {
        let mut acc = GraphiteState::new(false).with_bound(KeyBound::new(1));
        for l in ["a 1 1", "b 1 1", "a 2 1"] {
            acc.add(l.as_bytes()).expect("valid");
        }
        assert_eq!(acc.take_over_max_keys(), 1);
        let (mut out, mut records) = (Vec::new(), Vec::new());
        assert_eq!(acc.flush(10, Format::Graphite, Some(&mut out), &mut records), 1);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].count, 2);
    }

    #[test]
    fn aggregation_choice_by_substring() {
        let cases = [
            ("moo.goo.avg", Aggregation::Mean),
            ("moo.goo.max", Aggregation::Max),
            ("moo.goo.min", Aggregation::Min),
            ("stats.counters.goo", Aggregation::Sum),
            ("stats.gauges.goo", Aggregation::Last),
            ("x.timers.t.upper_90", Aggregation::Max),
            ("x.timers.t.lower", Aggregation::Min),
            ("x.timers.t.sum", Aggregation::Sum),
            ("x.abs", Aggregation::Last),
            ("x.absolute", Aggregation::Last),
            ("x.errors", Aggregation::Sum),
            ("servers.maximus.cpu", Aggregation::Max),
            ("x.count_ps", Aggregation::Sum),
            // order matters: .min beats .max, .sum beats .count
            ("a.min.max", Aggregation::Min),
            ("a.count.sum", Aggregation::Sum),
            ("a.gauges.count", Aggregation::Last),
            ("plain", Aggregation::Mean),
        ];
        for (key, want) in cases {
            assert_eq!(Aggregation::for_key(key), want, "{key}");
        }
    }

    #[test]
    fn spec_vectors_graphite_output() {
        let cases: [(&str, &[f64], &str); 10] = [
            ("moo.goo.avg", &[2.0, 5.0, 10.0], "5.666667"),
            ("moo.goo.max", &[2.0, 5.0, 10.0], "10.000000"),
            ("moo.goo.min", &[2.0, 5.0, 10.0], "2.000000"),
            ("stats.counters.goo", &[2.0, 5.0, 10.0], "17.000000"),
            ("stats.gauges.goo", &[2.0, 5.0, 10.0], "10.000000"),
            ("x.timers.t.upper_90", &[3.0, 9.0], "9.000000"),
            ("x.timers.t.lower", &[3.0, 9.0], "3.000000"),
            ("x.timers.t.sum", &[3.0, 9.0], "12.000000"),
            ("x.abs", &[1.0, 7.0], "7.000000"),
            ("x.errors", &[1.0, 1.0], "2.000000"),
        ];
        for (key, values, want) in cases {
            let mut acc = GraphiteState::new(false);
            for v in values {
                acc.add(format!("{key} {v} 123").as_bytes()).expect("valid");
            }
            let (lines, recs) = flush_sorted(&mut acc, 1457989005, Format::Graphite);
            assert_eq!(lines, vec![format!("{key} {want} 1457989005")]);
            let r = &recs[0];
            assert_eq!(r.count, values.len() as u64, "{key}");
            assert_eq!(r.sum, values.iter().sum::<f64>(), "{key}");
            assert_eq!(r.min, values.iter().cloned().fold(f64::INFINITY, f64::min), "{key}");
            assert_eq!(r.max, values.iter().cloned().fold(f64::NEG_INFINITY, f64::max), "{key}");
        }
    }

    #[test]
    fn record_carries_true_min_and_max() {
        let mut acc = acc_with(false, &["moo.goo.max 2 1", "moo.goo.max 5 1", "moo.goo.max 10 1"]);
        let (_, recs) = flush_sorted(&mut acc, 10, Format::Graphite);
        assert_eq!(
            recs,
            vec![Record {
                key: "moo.goo.max".into(),
                sum: 17.0,
                min: 2.0,
                max: 10.0,
                count: 3
            }]
        );
        assert!((recs[0].mean() - 17.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn parse_errors_and_valid_line() {
        let mut acc = GraphiteState::new(false);
        assert_eq!(acc.add(b"moo.goo.org 1"), Err(GraphiteError::InvalidLine));
        assert_eq!(acc.add(b"moo.goo.org:1"), Err(GraphiteError::InvalidLine));
        assert_eq!(acc.add(b""), Err(GraphiteError::InvalidLine));
        assert_eq!(acc.add(b"bad.val x 1"), Err(GraphiteError::BadValue));
        assert_eq!(acc.add(b"bad.val NaN 1"), Err(GraphiteError::BadValue));
        assert_eq!(acc.add(b"bad.val +Inf 1"), Err(GraphiteError::BadValue));
        assert_eq!(acc.add(b"bad.val 1e400 1"), Err(GraphiteError::BadValue));
        assert_eq!(acc.add(b"bad.val 1_000 1"), Err(GraphiteError::BadValue));
        assert_eq!(acc.add(b"bad.val 0x1 1"), Err(GraphiteError::BadValue));
        assert!(acc.is_empty());
        assert_eq!(GraphiteError::InvalidLine.message(), "Invalid Graphite line");
        assert_eq!(GraphiteError::BadValue.to_string(), "Bad Value");
        assert_eq!(acc.add(b"moo.goo.org 1 123123"), Ok(()));
        assert_eq!(acc.add(b"  moo.goo.org\t2   123123  extra"), Ok(()));
        assert_eq!(acc.len(), 1);
    }

    #[test]
    fn go_float_syntax() {
        let cases = [
            ("1", Some(1.0)),
            ("-2.5", Some(-2.5)),
            ("+.5", Some(0.5)),
            ("5.", Some(5.0)),
            ("1e3", Some(1000.0)),
            ("1E-2", Some(0.01)),
            ("0x1p-2", Some(0.25)),
            ("0x1.8p1", Some(3.0)),
            ("-0X_1FFp0", Some(-511.0)),
            ("0x1p", None),
            ("0x_p1", None),
            ("0x1__0p0", None),
            ("abc", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(parse_go_float(s), want, "{s:?}");
        }
    }

    #[test]
    fn flush_twice_gives_no_lines() {
        let mut acc = acc_with(false, &["a.b 1 1", "c.d 2 1", "e.f 3 1"]);
        let (lines, recs) = flush_sorted(&mut acc, 5, Format::Graphite);
        assert_eq!(lines.len(), 3);
        assert_eq!(recs.len(), 3);
        let (lines, recs) = flush_sorted(&mut acc, 10, Format::Graphite);
        assert!(lines.is_empty());
        assert!(recs.is_empty());
        assert!(acc.is_empty());
    }

    #[test]
    fn keep_keys_emits_idle_keys_as_zero() {
        let mut acc = acc_with(true, &["moo.goo.max 4 1", "stats.counters.x 2 1"]);
        let (lines, recs) = flush_sorted(&mut acc, 5, Format::Graphite);
        assert_eq!(lines, vec!["moo.goo.max 4.000000 5", "stats.counters.x 2.000000 5"]);
        assert_eq!(recs.len(), 2);
        let (lines, recs) = flush_sorted(&mut acc, 10, Format::Graphite);
        assert_eq!(lines, vec!["moo.goo.max 0.000000 10", "stats.counters.x 0.000000 10"]);
        assert!(recs.is_empty(), "idle kept keys produce no record");
        // The aggregation chosen at first sight stays, and new samples count from zero.
        acc.add(b"moo.goo.max 1 1").expect("valid");
        let (lines, _) = flush_sorted(&mut acc, 15, Format::Graphite);
        assert_eq!(lines, vec!["moo.goo.max 1.000000 15", "stats.counters.x 0.000000 15"]);
        assert_eq!(acc.len(), 2);
    }

    #[test]
    fn statsd_output_vectors() {
        let mut acc = acc_with(false, &["stats.counters.goo 2 1", "stats.counters.goo 5 1"]);
        let (lines, _) = flush_sorted(&mut acc, 5, Format::Statsd);
        assert_eq!(lines, vec!["goo:7.000000|c"]);
        let mut acc = acc_with(false, &["stats.timers.t.mean 4 1", "stats.timers.t.mean 6 1"]);
        let (lines, _) = flush_sorted(&mut acc, 5, Format::Statsd);
        assert_eq!(lines, vec!["t.mean:5.000000|c"]);
    }

    #[test]
    fn statsd_name_removes_first_occurrences() {
        assert_eq!(statsd_name("stats.counters.goo"), "goo");
        assert_eq!(statsd_name("stats.gauges.a.stats.gauges.b"), "a.stats.gauges.b");
        assert_eq!(statsd_name("x.stats.timers.y"), "x.y");
        assert_eq!(statsd_name("plain"), "plain");
    }

    #[test]
    fn snapshot_shows_state() {
        let acc = acc_with(true, &["moo.goo.min 2 1", "moo.goo.min 4 1"]);
        let snap = acc.snapshot();
        assert_eq!(
            snap,
            vec![StatRepr {
                key: "moo.goo.min".into(),
                stat_key: "moo.goo.min|min".into(),
                min: 2.0,
                max: 4.0,
                sum: 6.0,
                mean: 3.0,
                count: 2,
            }]
        );
    }
}
