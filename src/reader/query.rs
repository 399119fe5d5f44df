//! The arithmetic of a render (spec §12), as pure functions pinned by the spec's vectors: time parsing, the
//! resolution a request reads, slot alignment, which column a series shows, and slot filling.

/// One stored aggregate as the reader sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stored {
    /// Unix seconds (the bin's tick).
    pub time: i64,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

/// The column a series is shown by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Sum,
    Mean,
    Min,
    Max,
}

impl Column {
    /// From the series' last path part: the first of `mean avg count std average upper max min lower` it contains
    /// picks mean, mean, sum, mean, mean, max, max, min, min; anything else is sum.
    pub fn of(path: &str) -> Column {
        let last = path.rsplit('.').next().unwrap_or(path);
        const RULES: [(&str, Column); 9] = [
            ("mean", Column::Mean),
            ("avg", Column::Mean),
            ("count", Column::Sum),
            ("std", Column::Mean),
            ("average", Column::Mean),
            ("upper", Column::Max),
            ("max", Column::Max),
            ("min", Column::Min),
            ("lower", Column::Min),
        ];
        RULES
            .iter()
            .find(|(word, _)| last.contains(word))
            .map_or(Column::Sum, |&(_, c)| c)
    }

    pub fn value(self, p: &Stored) -> f64 {
        match self {
            Column::Sum => p.sum,
            Column::Mean => p.mean,
            Column::Min => p.min,
            Column::Max => p.max,
        }
    }
}

/// `now`, `±N<unit>` relative to `now` (units s/sec/second, m/min, h/hour, d/day, mon, y/year), or epoch seconds.
pub fn parse_time(s: &str, now: i64) -> Result<i64, String> {
    let t = s.trim().to_ascii_lowercase();
    if t == "now" {
        return Ok(now);
    }
    if let Ok(epoch) = t.parse::<i64>() {
        return Ok(epoch);
    }
    let bad = || format!("bad time {s:?}: expected now, epoch seconds or -N<unit> (s, min, h, d, mon, y)");
    let (sign, rest) = match t.as_bytes().first() {
        Some(b'-') => (-1, &t[1..]),
        Some(b'+') => (1, &t[1..]),
        _ => return Err(bad()),
    };
    let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
    let unit = match &rest[digits..] {
        "s" | "sec" | "second" => 1,
        "m" | "min" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "mon" => 2_592_000,
        "y" | "year" => 31_536_000,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .and_then(|d| now.checked_add(sign * d))
        .ok_or_else(bad)
}

/// The first bin `(secs, ttl_secs)` whose TTL covers the whole request (and its distance from now); else the last.
pub fn resolution(bins: &[(i64, i64)], start: i64, end: i64, now: i64) -> i64 {
    bins.iter()
        .find(|&&(_, ttl)| end - start < ttl && now - start < ttl && now - end < ttl)
        .or(bins.last())
        .map_or(1, |&(secs, _)| secs.max(1))
}

/// Rounds `x` to the nearest multiple of `r` (a remainder of half `r` or more rounds up).
pub fn truncate_to(x: i64, r: i64) -> i64 {
    let m = x.rem_euclid(r);
    if m < r / 2 {
        x - m
    } else {
        x + (r - m)
    }
}

/// The time window a render reads: `(start, end, step)` after swapping, choosing the resolution and aligning.
pub fn window(bins: &[(i64, i64)], from: i64, to: i64, now: i64) -> (i64, i64, i64) {
    let (start, end) = if to < from { (to, from) } else { (from, to) };
    let step = resolution(bins, start, end, now);
    (truncate_to(start, step), truncate_to(end, step), step)
}

/// `(end − start) / step` slots from `start`: slot i takes the next unused point whose time is at most the slot's
/// time (at most one point per slot); points with equal times count once (the last read wins).
pub fn slots(points: &[Stored], column: Column, start: i64, end: i64, step: i64) -> Vec<Option<f64>> {
    let n = if step > 0 && end > start {
        ((end - start) / step) as usize
    } else {
        0
    };
    let mut out = Vec::with_capacity(n);
    let mut j = 0;
    let mut cur = start;
    for _ in 0..n {
        while j + 1 < points.len() && points[j + 1].time == points[j].time {
            j += 1;
        }
        if j < points.len() && points[j].time <= cur {
            out.push(six_decimals(column.value(&points[j])));
            j += 1;
        } else {
            out.push(None);
        }
        cur += step;
    }
    out
}

/// A value as graphite shows it: six decimals; NaN and infinities are no value.
fn six_decimals(v: f64) -> Option<f64> {
    if !v.is_finite() {
        return None;
    }
    let r = (v * 1e6).round() / 1e6;
    Some(if r.is_finite() { r } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_458_000_000;
    const BINS: [(i64, i64); 3] = [(5, 604_800), (60, 2_592_000), (600, 63_072_000)];

    fn at(t: &str) -> i64 {
        parse_time(t, NOW).expect("time")
    }

    #[test]
    fn the_resolution_vectors() {
        assert_eq!(resolution(&BINS, at("-1h"), at("now"), NOW), 5);
        assert_eq!(resolution(&BINS, at("-8d"), at("now"), NOW), 60);
        assert_eq!(resolution(&BINS, at("-40d"), at("now"), NOW), 600);
        assert_eq!(resolution(&BINS, at("-3y"), at("now"), NOW), 600);
        // an old window of one hour needs a bin that still holds it
        assert_eq!(resolution(&BINS, at("-10d"), at("-10d") + 3600, NOW), 60);
    }

    #[test]
    fn the_truncation_vectors() {
        assert_eq!(truncate_to(1_457_999_997, 5), 1_458_000_000);
        assert_eq!(truncate_to(1_457_999_992, 5), 1_457_999_995);
        assert_eq!(truncate_to(1_457_999_972, 60), 1_458_000_000);
        assert_eq!(truncate_to(1_458_000_000, 60), 1_458_000_000);
    }

    #[test]
    fn time_parsing() {
        assert_eq!(at("now"), NOW);
        assert_eq!(at(" NOW "), NOW);
        assert_eq!(at("-1h"), NOW - 3600);
        assert_eq!(at("-1hour"), NOW - 3600);
        assert_eq!(at("-5min"), NOW - 300);
        assert_eq!(at("-5m"), NOW - 300);
        assert_eq!(at("-30s"), NOW - 30);
        assert_eq!(at("-30sec"), NOW - 30);
        assert_eq!(at("-2second"), NOW - 2);
        assert_eq!(at("-1d"), NOW - 86_400);
        assert_eq!(at("-1day"), NOW - 86_400);
        assert_eq!(at("-1mon"), NOW - 2_592_000);
        assert_eq!(at("-1y"), NOW - 31_536_000);
        assert_eq!(at("-1year"), NOW - 31_536_000);
        assert_eq!(at("+1h"), NOW + 3600);
        assert_eq!(at("1457000000"), 1_457_000_000);
        for bad in ["-3minutes", "-2days", "-1month", "-1w", "abc", "-", "-h", ""] {
            assert!(parse_time(bad, NOW).is_err(), "{bad:?} must be an error");
        }
    }

    #[test]
    fn the_interpolation_vectors() {
        let p = |time, v| Stored {
            time,
            sum: v,
            mean: v,
            min: v,
            max: v,
        };
        let points = [p(1000, 1.0), p(1011, 2.0), p(1012, 3.0), p(1031, 4.0)];
        assert_eq!(
            slots(&points, Column::Sum, 1000, 1040, 10),
            [Some(1.0), None, Some(2.0), Some(3.0)]
        );
        assert_eq!(slots(&[], Column::Sum, 1000, 1030, 10), [None, None, None]);
        assert!(slots(&points, Column::Sum, 1040, 1000, 10).is_empty());
        // a point stored twice (two writers of a farm) fills one slot
        let twice = [p(1000, 1.0), p(1010, 2.0), p(1010, 2.0), p(1020, 3.0)];
        assert_eq!(
            slots(&twice, Column::Sum, 1000, 1030, 10),
            [Some(1.0), Some(2.0), Some(3.0)]
        );
        assert_eq!(
            slots(&[p(1000, 1.0 / 3.0)], Column::Sum, 1000, 1010, 10),
            [Some(0.333333)]
        );
        assert_eq!(slots(&[p(1000, f64::NAN)], Column::Sum, 1000, 1010, 10), [None]);
    }

    #[test]
    fn the_value_column_rule() {
        assert_eq!(Column::of("stats.timers.api.mean_90"), Column::Mean);
        assert_eq!(Column::of("a.avg"), Column::Mean);
        assert_eq!(Column::of("stats.timers.api.count"), Column::Sum);
        assert_eq!(Column::of("a.std"), Column::Mean);
        assert_eq!(Column::of("a.upper_90"), Column::Max);
        assert_eq!(Column::of("a.max"), Column::Max);
        assert_eq!(Column::of("a.min"), Column::Min);
        assert_eq!(Column::of("a.lower"), Column::Min);
        assert_eq!(Column::of("a.cpu"), Column::Sum);
        // the first rule wins: "count_min" holds count before min
        assert_eq!(Column::of("a.count_min"), Column::Sum);
        // only the last part counts
        assert_eq!(Column::of("mean.cpu"), Column::Sum);
    }

    #[test]
    fn window_swaps_and_aligns() {
        assert_eq!(window(&BINS, NOW, NOW - 3600 + 3, NOW), (NOW - 3600 + 5, NOW, 5));
    }
}
