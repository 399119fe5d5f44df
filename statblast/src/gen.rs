//! Line generation: a small fast PRNG and the graphite / statsd line writers. Lines are appended to a
//! reused `Vec<u8>`; numbers are written by hand, nothing is allocated per line.

/// wyrand: one multiply per number, good enough statistics for load generation.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds through splitmix64 so nearby seeds give unrelated streams.
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng(z ^ (z >> 31))
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        (t >> 64) as u64 ^ t as u64
    }

    /// Uniform in `[0, n)` (multiply-high; the bias is below 2^-40 for the ranges used here). `n > 0`.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Appends the decimal digits of `v`.
#[inline]
pub fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Statsd,
    Graphite,
}

/// Values are drawn from `[0, VALUE_RANGE)`.
pub const VALUE_RANGE: u64 = 10_000;

/// statsd type mix: relative weights of counters, timers and gauges (`--mix C,T,G`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mix {
    /// Cumulative weights: a draw `d` in `[0, total)` is a counter when `d < counter_end`, a timer when
    /// `d < timer_end`, else a gauge.
    counter_end: u64,
    timer_end: u64,
    total: u64,
}

impl Default for Mix {
    /// 34 % counters, 33 % timers, 33 % gauges: close to the uniform draw statblast always made.
    fn default() -> Mix {
        Mix::new(34, 33, 33).unwrap()
    }
}

impl Mix {
    /// `None` when every weight is 0.
    pub fn new(counters: u64, timers: u64, gauges: u64) -> Option<Mix> {
        let total = counters.checked_add(timers)?.checked_add(gauges)?;
        (total > 0).then_some(Mix {
            counter_end: counters,
            timer_end: counters + timers,
            total,
        })
    }

    /// Parses `C,T,G` (non-negative integers, usually percentages adding up to 100; any weights with a positive
    /// sum are accepted).
    pub fn parse(s: &str) -> Result<Mix, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [c, t, g] = parts[..] else {
            return Err(format!(
                "{s:?}: expected C,T,G (percentages of counters, timers, gauges)"
            ));
        };
        let num = |v: &str| {
            v.parse::<u64>()
                .map_err(|_| format!("{s:?}: {v:?} is not a non-negative integer"))
        };
        Mix::new(num(c)?, num(t)?, num(g)?).ok_or_else(|| format!("{s:?}: at least one weight must be positive"))
    }

    #[inline]
    fn pick(&self, rng: &mut Rng) -> &'static [u8] {
        self.of(rng.below(self.total))
    }

    /// The type of key `i` when every key has one type: a draw from a hash of `i` (splitmix64), so the weights
    /// hold over the keys and, keys being drawn uniformly, over the lines.
    #[inline]
    fn of_key(&self, i: u64) -> &'static [u8] {
        self.of(Rng::new(i).below(self.total))
    }

    #[inline]
    fn of(&self, d: u64) -> &'static [u8] {
        if d < self.counter_end {
            b"c"
        } else if d < self.timer_end {
            b"ms"
        } else {
            b"g"
        }
    }
}

/// Writes random lines of one kind. Each sender owns one.
#[derive(Debug, Clone)]
pub struct LineGen {
    kind: Kind,
    words: Vec<Vec<u8>>,
    keys: u64,
    mix: Mix,
    /// Each line draws its type, so every key takes every type (else, with `keys > 0`, a key has one type).
    mix_per_line: bool,
    rng: Rng,
    /// Decimal unix time of the current batch (graphite).
    ts: Vec<u8>,
}

impl LineGen {
    /// `words` must not be empty when `keys == 0`.
    pub fn new(kind: Kind, words: Vec<Vec<u8>>, keys: u64, seed: u64) -> LineGen {
        LineGen {
            kind,
            words,
            keys,
            mix: Mix::default(),
            mix_per_line: false,
            rng: Rng::new(seed),
            ts: b"0".to_vec(),
        }
    }

    /// Sets the statsd type mix (ignored for graphite): by key when `keys > 0` (each key one type, as real
    /// metrics have), unless `per_line`; by line otherwise.
    pub fn with_mix(mut self, mix: Mix, per_line: bool) -> LineGen {
        self.mix = mix;
        self.mix_per_line = per_line;
        self
    }

    /// Sets the timestamp of the graphite lines that follow (called once per batch).
    pub fn set_time(&mut self, unix: u64) {
        self.ts.clear();
        push_u64(&mut self.ts, unix);
    }

    /// Appends one line, `\n` included:
    /// graphite `graphitetest.<w>.<w>.<w> <c> <unix>`, statsd `statdtest.<w>.<w>.<w>:<c>|<c|g|ms>|@<rate>`,
    /// with `.k<i>` in place of the three words when `keys > 0`.
    #[inline]
    pub fn push_line(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(match self.kind {
            Kind::Graphite => b"graphitetest",
            Kind::Statsd => b"statdtest",
        });
        let key = (self.keys > 0).then(|| self.rng.below(self.keys));
        if let Some(i) = key {
            out.extend_from_slice(b".k");
            push_u64(out, i);
        } else {
            let n = self.words.len() as u64;
            for _ in 0..3 {
                out.push(b'.');
                out.extend_from_slice(&self.words[self.rng.below(n) as usize]);
            }
        }
        let value = self.rng.below(VALUE_RANGE);
        match self.kind {
            Kind::Graphite => {
                out.push(b' ');
                push_u64(out, value);
                out.push(b' ');
                out.extend_from_slice(&self.ts);
            }
            Kind::Statsd => {
                out.push(b':');
                push_u64(out, value);
                out.push(b'|');
                out.extend_from_slice(match key {
                    Some(i) if !self.mix_per_line => self.mix.of_key(i),
                    _ => self.mix.pick(&mut self.rng),
                });
                // Sample rate in hundredths, 1..=100: printed 0.01 .. 1.00, never 0.00.
                let r = 1 + self.rng.below(100) as u8;
                if r == 100 {
                    out.extend_from_slice(b"|@1.00");
                } else {
                    out.extend_from_slice(&[b'|', b'@', b'0', b'.', b'0' + r / 10, b'0' + r % 10]);
                }
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn words() -> Vec<Vec<u8>> {
        ["test", "house", "here"]
            .iter()
            .map(|w| w.as_bytes().to_vec())
            .collect()
    }

    fn lines(g: &mut LineGen, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            g.push_line(&mut out);
        }
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with('\n'));
        text.lines().map(str::to_string).collect()
    }

    #[test]
    fn push_u64_writes_decimal() {
        for v in [0u64, 7, 10, 9999, 1_700_000_000, u64::MAX] {
            let mut out = b"x".to_vec();
            push_u64(&mut out, v);
            assert_eq!(out, format!("x{v}").into_bytes());
        }
    }

    #[test]
    fn below_stays_in_range_and_covers_it() {
        let mut r = Rng::new(1);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let v = r.below(7);
            assert!(v < 7);
            seen[v as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }

    #[test]
    fn graphite_words_shape() {
        let mut g = LineGen::new(Kind::Graphite, words(), 0, 3);
        g.set_time(1_700_000_000);
        for line in lines(&mut g, 500) {
            let parts: Vec<&str> = line.split(' ').collect();
            assert_eq!(parts.len(), 3, "{line}");
            let key: Vec<&str> = parts[0].split('.').collect();
            assert_eq!(key.len(), 4, "{line}");
            assert_eq!(key[0], "graphitetest");
            assert!(key[1..].iter().all(|w| ["test", "house", "here"].contains(w)), "{line}");
            assert!(parts[1].parse::<u64>().unwrap() < VALUE_RANGE);
            assert_eq!(parts[2], "1700000000");
        }
    }

    #[test]
    fn graphite_keys_shape() {
        let mut g = LineGen::new(Kind::Graphite, words(), 10, 4);
        g.set_time(42);
        let mut seen = std::collections::HashSet::new();
        for line in lines(&mut g, 1000) {
            let (key, rest) = line.split_once(' ').unwrap();
            let i: u64 = key.strip_prefix("graphitetest.k").unwrap().parse().unwrap();
            assert!(i < 10);
            seen.insert(i);
            let (v, ts) = rest.split_once(' ').unwrap();
            assert!(v.parse::<u64>().unwrap() < VALUE_RANGE);
            assert_eq!(ts, "42");
        }
        assert_eq!(seen.len(), 10);
    }

    #[test]
    fn statsd_shape_and_rate_never_zero() {
        let mut g = LineGen::new(Kind::Statsd, words(), 0, 5);
        let mut rates = std::collections::HashSet::new();
        for line in lines(&mut g, 20_000) {
            let (key, rest) = line.split_once(':').unwrap();
            assert_eq!(key.split('.').count(), 4, "{line}");
            assert!(key.starts_with("statdtest."), "{line}");
            let fields: Vec<&str> = rest.split('|').collect();
            assert_eq!(fields.len(), 3, "{line}");
            assert!(fields[0].parse::<u64>().unwrap() < VALUE_RANGE);
            assert!(["c", "g", "ms"].contains(&fields[1]), "{line}");
            let rate = fields[2].strip_prefix('@').unwrap();
            assert_eq!(rate.len(), 4, "two decimals: {line}");
            assert_eq!(&rate[1..2], ".");
            let r: f64 = rate.parse().unwrap();
            assert!((0.01..=1.0).contains(&r), "{line}");
            assert_ne!(rate, "0.00");
            rates.insert(rate.to_string());
        }
        assert!(
            rates.contains("1.00") && rates.contains("0.01"),
            "both ends are reachable"
        );
        assert_eq!(rates.len(), 100);
    }

    #[test]
    fn mix_parses_and_rejects() {
        assert_eq!(Mix::parse("60,30,10").unwrap(), Mix::new(60, 30, 10).unwrap());
        assert_eq!(Mix::parse(" 100 , 0,0").unwrap(), Mix::new(100, 0, 0).unwrap());
        for bad in ["", "60,40", "1,2,3,4", "a,b,c", "-1,50,51", "0,0,0", "1.5,50,48"] {
            assert!(Mix::parse(bad).is_err(), "{bad}");
        }
    }

    /// The shares of each type among the lines of `g`, and the types each key was sent with.
    fn mix_of(g: &mut LineGen, n: usize) -> (HashMap<String, f64>, HashMap<String, HashSet<String>>) {
        let (mut counts, mut types) = (HashMap::new(), HashMap::<String, HashSet<String>>::new());
        for line in lines(g, n) {
            let (key, rest) = line.split_once(':').unwrap();
            let ty = rest.split('|').nth(1).unwrap().to_string();
            *counts.entry(ty.clone()).or_insert(0.0) += 1.0 / n as f64;
            types.entry(key.to_string()).or_default().insert(ty);
        }
        (counts, types)
    }

    #[test]
    fn statsd_mix_is_followed_per_line_or_per_key() {
        let mix = Mix::parse("60,30,10").unwrap();
        // 100 k draws: the standard error of a share is below 0.0016; 0.01 is > 6 sigma. Per key over 100 k keys
        // the keys' own draw adds about as much again: 0.015 is > 6 sigma.
        for (keys, per_line, tolerance) in [(100, true, 0.01), (100_000, false, 0.015)] {
            let mut g = LineGen::new(Kind::Statsd, words(), keys, 7).with_mix(mix, per_line);
            let (share, types) = mix_of(&mut g, 100_000);
            let share = |t: &str| share.get(t).copied().unwrap_or(0.0);
            assert!(
                (share("c") - 0.60).abs() < tolerance,
                "{keys} {per_line}: {}",
                share("c")
            );
            assert!(
                (share("ms") - 0.30).abs() < tolerance,
                "{keys} {per_line}: {}",
                share("ms")
            );
            assert!(
                (share("g") - 0.10).abs() < tolerance,
                "{keys} {per_line}: {}",
                share("g")
            );
            let most = types.values().map(HashSet::len).max().unwrap();
            assert_eq!(
                most,
                if per_line { 3 } else { 1 },
                "types of one key, per_line {per_line}"
            );
        }
        // A zero weight never shows up.
        for per_line in [true, false] {
            let mut only =
                LineGen::new(Kind::Statsd, words(), 100, 8).with_mix(Mix::parse("0,100,0").unwrap(), per_line);
            assert!(lines(&mut only, 1000).iter().all(|l| l.split('|').nth(1) == Some("ms")));
        }
    }

    #[test]
    fn statsd_keys_shape() {
        let mut g = LineGen::new(Kind::Statsd, words(), 3, 6);
        for line in lines(&mut g, 100) {
            let (key, _) = line.split_once(':').unwrap();
            let i: u64 = key.strip_prefix("statdtest.k").unwrap().parse().unwrap();
            assert!(i < 3);
        }
    }
}
