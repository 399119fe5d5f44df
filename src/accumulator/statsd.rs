//! The statsd accumulator (spec §9.2): Etsy statsd 0.9.0 semantics with its graphite backend.
//!
//! Lines are parsed by statsd's rules (§9.2.1) and folded into one `Slot` per sanitized key. A flush computes
//! exactly what statsd's `process_metrics` and graphite backend compute, in the same IEEE operation order, and
//! prints numbers as JavaScript does ([`super::jsnum`]). `tests/statsd_compat.rs` runs the real statsd 0.9.0 on
//! the same input and compares every metric line.
//!
//! Hot path: a line of an existing key allocates nothing (the key is looked up by its bytes; a key that needs
//! sanitizing or has tags is built in a reused buffer). A key of up to [`INLINE_KEY`] bytes is held inside its table
//! entry, so that finding it costs one cache line. Timer values are kept unsorted and sorted at flush. Keys are
//! looked up by the [`key_hash`] their router computed, and a batch is folded [`PREFETCH_LINES`] lines at a time
//! while the cache lines the next chunks will touch (their buckets, then boxed keys and timers' samples) are
//! prefetched: cache misses, one line after the other, were most of the fold's time.

use foldhash::HashSet;
use hashbrown::HashTable;

use super::jsnum::{js_number_bytes, js_parse_number, js_trim};
use super::StatRepr;
use crate::config::{Format, StatsdOptions};
use crate::line::{KeyedBatch, LineKey, Record};
use crate::splitter::{accumulator_key, key_hash, AccumulatorKey, KeyScratch};

/// The accumulated state of one key (statsd keeps one object per type; a key may hold several types).
/// Most keys have one type: the single-type variants keep an idle key at a few words.
#[derive(Debug)]
enum Slot {
    Counter(Counter),
    Timer(Timer),
    Gauge(Gauge),
    Set(Box<SetState>),
    Multi(Box<Multi>),
}

#[derive(Debug, Default)]
struct Multi {
    counter: Option<Counter>,
    timer: Option<Timer>,
    gauge: Option<Gauge>,
    set: Option<Box<SetState>>,
}

/// `counters[key]`; min/max/n describe this interval's samples for the record.
#[derive(Debug, Clone, Copy)]
struct Counter {
    value: f64,
    min: f64,
    max: f64,
    n: u32,
}

/// `timers[key]` and `timer_counters[key]`.
#[derive(Debug, Default)]
struct Timer {
    values: Vec<f64>,
    count: f64,
}

/// `gauges[key]`; min/max over the values it took this interval, n = lines this interval.
#[derive(Debug, Clone, Copy)]
struct Gauge {
    value: f64,
    min: f64,
    max: f64,
    n: u32,
}

/// `sets[key]`; n = lines this interval.
#[derive(Debug, Default)]
struct SetState {
    members: HashSet<Box<str>>,
    n: u32,
}

impl Counter {
    fn new() -> Counter {
        Counter {
            value: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            n: 0,
        }
    }
    fn add(&mut self, v: f64) {
        // statsd: `if (!counters[key]) counters[key] = 0;` (resets NaN) then `+= Number(v) * (1 / rate)`.
        if self.value == 0.0 || self.value.is_nan() {
            self.value = 0.0;
        }
        self.value += v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.n += 1;
    }
}

impl Gauge {
    fn new() -> Gauge {
        Gauge {
            value: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            n: 0,
        }
    }
    fn take(&mut self, v: f64) {
        self.value = v;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.n += 1;
    }
}

impl Slot {
    /// Moves a single-type slot into a [`Multi`] (a key that receives a second type).
    fn promote(&mut self) {
        if matches!(self, Slot::Multi(_)) {
            return;
        }
        let old = std::mem::replace(self, Slot::Multi(Box::default()));
        if let Slot::Multi(m) = self {
            match old {
                Slot::Counter(c) => m.counter = Some(c),
                Slot::Timer(t) => m.timer = Some(t),
                Slot::Gauge(g) => m.gauge = Some(g),
                Slot::Set(s) => m.set = Some(s),
                Slot::Multi(_) => {}
            }
        }
    }

    fn counter(&mut self) -> &mut Counter {
        if !matches!(self, Slot::Counter(_)) {
            self.promote();
        }
        match self {
            Slot::Counter(c) => c,
            Slot::Multi(m) => m.counter.get_or_insert_with(Counter::new),
            _ => unreachable!("promoted above"),
        }
    }

    fn timer(&mut self) -> &mut Timer {
        if !matches!(self, Slot::Timer(_)) {
            self.promote();
        }
        match self {
            Slot::Timer(t) => t,
            Slot::Multi(m) => m.timer.get_or_insert_with(Timer::default),
            _ => unreachable!("promoted above"),
        }
    }

    /// The gauge if it exists (statsd: `gauges[key]` defined).
    fn gauge_opt(&mut self) -> Option<&mut Gauge> {
        match self {
            Slot::Gauge(g) => Some(g),
            Slot::Multi(m) => m.gauge.as_mut(),
            _ => None,
        }
    }

    fn gauge(&mut self) -> &mut Gauge {
        if !matches!(self, Slot::Gauge(_)) {
            self.promote();
        }
        match self {
            Slot::Gauge(g) => g,
            Slot::Multi(m) => m.gauge.get_or_insert_with(Gauge::new),
            _ => unreachable!("promoted above"),
        }
    }

    fn set(&mut self) -> &mut SetState {
        if !matches!(self, Slot::Set(_)) {
            self.promote();
        }
        match self {
            Slot::Set(s) => s,
            Slot::Multi(m) => m.set.get_or_insert_with(Box::default),
            _ => unreachable!("promoted above"),
        }
    }

    fn parts_mut(
        &mut self,
    ) -> (
        Option<&mut Counter>,
        Option<&mut Timer>,
        Option<&mut Gauge>,
        Option<&mut SetState>,
    ) {
        match self {
            Slot::Counter(c) => (Some(c), None, None, None),
            Slot::Timer(t) => (None, Some(t), None, None),
            Slot::Gauge(g) => (None, None, Some(g), None),
            Slot::Set(s) => (None, None, None, Some(s)),
            Slot::Multi(m) => (
                m.counter.as_mut(),
                m.timer.as_mut(),
                m.gauge.as_mut(),
                m.set.as_deref_mut(),
            ),
        }
    }

    fn parts(&self) -> (Option<&Counter>, Option<&Timer>, Option<&Gauge>, Option<&SetState>) {
        match self {
            Slot::Counter(c) => (Some(c), None, None, None),
            Slot::Timer(t) => (None, Some(t), None, None),
            Slot::Gauge(g) => (None, None, Some(g), None),
            Slot::Set(s) => (None, None, None, Some(s)),
            Slot::Multi(m) => (m.counter.as_ref(), m.timer.as_ref(), m.gauge.as_ref(), m.set.as_deref()),
        }
    }

    /// statsd's reset after a flush with `deleteIdleStats: false`: counters 0, timers empty, sets empty, gauges kept.
    fn reset_kept(&mut self) {
        fn counter(c: &mut Counter) {
            *c = Counter::new();
        }
        fn timer(t: &mut Timer) {
            t.count = 0.0;
            if t.values.capacity() > 64 {
                t.values = Vec::new();
            } else {
                t.values.clear();
            }
        }
        fn gauge(g: &mut Gauge) {
            *g = Gauge {
                value: g.value,
                ..Gauge::new()
            };
        }
        fn set(s: &mut SetState) {
            s.n = 0;
            if s.members.capacity() > 64 {
                s.members = HashSet::default();
            } else {
                s.members.clear();
            }
        }
        match self {
            Slot::Counter(c) => counter(c),
            Slot::Timer(t) => timer(t),
            Slot::Gauge(g) => gauge(g),
            Slot::Set(s) => set(s),
            Slot::Multi(m) => {
                m.counter.as_mut().map(counter);
                m.timer.as_mut().map(timer);
                m.gauge.as_mut().map(gauge);
                m.set.as_deref_mut().map(set);
            }
        }
    }
}

/// One percent threshold with its metric name suffixes (`count_90`, `mean_90`, `upper_90`, `sum_90`, `sum_squares_90`).
#[derive(Debug, Clone)]
struct Threshold {
    pct: f64,
    names: [Box<str>; 5],
}

/// Where a metric's name comes from: `prefix` + K + `suffix` + globalSuffix + tags.
#[derive(Debug, Clone)]
struct Names {
    counter_rate: (String, &'static str),
    counter_count: (String, &'static str),
    /// prefix + K + `.` + stat name
    timer: String,
    gauge: String,
    set: (String, &'static str),
    /// `.suffix` or empty
    global_suffix: String,
}

/// Lines per stage of the fold's prefetch pipeline ([`StatsdState::add_batch`]): enough misses to overlap, few
/// enough that what three chunks touch stays in L1.
const PREFETCH_LINES: usize = 32;

/// A held key and its state: one bucket of [`Keys`], one cache line (the slot is 40 bytes, the key 24), so that the
/// load of a bucket brings its slot and, when the key is held inline, the key's bytes.
#[repr(align(64))]
struct Entry {
    key: HeldKey,
    slot: Slot,
}

const _: () = assert!(std::mem::size_of::<Entry>() == 64, "an entry is one cache line");

/// The longest key held inside its [`Entry`]: what fits in the 24 bytes beside the slot with its length and tag.
const INLINE_KEY: usize = 22;

/// A held key's bytes: inside the entry when they fit (comparing them costs no second cache miss), else boxed.
enum HeldKey {
    Inline { len: u8, bytes: [u8; INLINE_KEY] },
    Boxed(Box<str>),
}

impl HeldKey {
    /// Held inline (zero-padded) when it fits, else boxed: so a key's length alone says which it is.
    fn new(key: &str) -> HeldKey {
        match HeldKey::padded(key.as_bytes()) {
            Some((len, bytes)) => HeldKey::Inline { len, bytes },
            None => HeldKey::Boxed(key.into()),
        }
    }

    /// The length and zero-padded bytes of a key held inline; `None` for a longer key.
    fn padded(key: &[u8]) -> Option<(u8, [u8; INLINE_KEY])> {
        let mut bytes = [0; INLINE_KEY];
        bytes.get_mut(..key.len())?.copy_from_slice(key);
        Some((key.len() as u8, bytes))
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            HeldKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            HeldKey::Boxed(key) => key.as_bytes(),
        }
    }

    /// The key as text (flush and snapshot; the fold compares bytes).
    fn as_str(&self) -> &str {
        match self {
            // `new` copied these bytes from a `&str`, whole.
            HeldKey::Inline { .. } => std::str::from_utf8(self.as_bytes()).expect("an inline key is a copied str"),
            HeldKey::Boxed(key) => key,
        }
    }

    fn into_string(self) -> String {
        match self {
            HeldKey::Boxed(key) => key.into_string(),
            inline => inline.as_str().to_owned(),
        }
    }
}

/// The held keys and their state in one hashbrown table, by [`key_hash`] of the key's bytes.
#[derive(Default)]
struct Keys(HashTable<Entry>);

impl Keys {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn get_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Slot> {
        let found = match HeldKey::padded(key) {
            // A key short enough is held inline, zero-padded: compared as a whole array, without a call to memcmp.
            Some(probe) => self.0.find_mut(
                hash,
                |e| matches!(&e.key, HeldKey::Inline { len, bytes } if (*len, bytes) == (probe.0, &probe.1)),
            ),
            None => self.0.find_mut(
                hash,
                |e| matches!(&e.key, HeldKey::Boxed(held) if held.as_bytes() == key),
            ),
        };
        found.map(|e| &mut e.slot)
    }

    /// Holds a key it does not hold yet. `key` is UTF-8 (text or a router's key of a line that is), checked here
    /// once per key rather than on every line that folds into it.
    fn insert(&mut self, hash: u64, key: &[u8], slot: Slot) {
        let key = HeldKey::new(&String::from_utf8_lossy(key));
        self.0
            .insert_unique(hash, Entry { key, slot }, |e| key_hash(e.key.as_bytes()));
    }

    /// Prefetches the buckets the hash of each of `keys` matches: a key's slot and, held inline, its bytes. Only the
    /// table's control bytes (small, mostly cached) are waited for: a prefetch does not hold up the instructions
    /// behind it, so every line's miss is in flight together. (Reading a byte of each bucket instead kept only the
    /// few lines the CPU's reorder window holds in flight, and the fold waited on the rest: 20 % of the process in
    /// perf at 3 M lines/s.)
    fn prefetch_buckets(&self, keys: &[LineKey]) {
        for k in keys {
            self.0.iter_hash(k.hash).for_each(prefetch);
        }
    }

    /// Prefetches what the buckets of `keys` point to that their fold touches: a boxed key's bytes and the end of a
    /// timer's samples, where its next sample is stored (a store that misses holds up every store behind it: as
    /// much time as the buckets' misses in perf). Reads the buckets, so it runs once they have arrived.
    fn prefetch_held(&self, keys: &[LineKey]) {
        for k in keys {
            for e in self.0.iter_hash(k.hash) {
                if let HeldKey::Boxed(key) = &e.key {
                    key.as_bytes().first().into_iter().for_each(prefetch);
                }
                if let Slot::Timer(t) = &e.slot {
                    t.values.last().into_iter().for_each(prefetch);
                }
            }
        }
    }
}

/// Asks the CPU to bring the cache line of `at` towards its L1, without waiting for it (no effect elsewhere).
#[inline(always)]
fn prefetch<T>(at: &T) {
    #[cfg(target_arch = "x86_64")]
    safe_arch::prefetch_t0(at);
    #[cfg(not(target_arch = "x86_64"))]
    let _ = at;
}

impl std::fmt::Debug for StatsdState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsdState")
            .field("keys", &self.len())
            .finish_non_exhaustive()
    }
}

/// The statsd accumulator of one PreReg group (spec §9.2).
pub struct StatsdState {
    /// foldhash ([`key_hash`]): SipHash (std's default) cost a third of the fold time on short metric keys; foldhash
    /// beat both `fnv` and a hand-written folded-multiply hash in the fold bench.
    map: Keys,
    /// Samples of new keys are dropped (and counted) while the map holds `max_keys`.
    pub(super) bound: super::KeyBound,
    keep_keys: bool,
    names: Names,
    thresholds: Vec<Threshold>,
    /// Reused buffers for keys that need tags or sanitizing.
    key_scratch: KeyScratch,
    /// Reused at flush.
    cum: Vec<f64>,
    cum_sq: Vec<f64>,
    name_buf: String,
}

/// The metric name part of a threshold: JavaScript's `'' + pct` with the first `.` → `_` and the first `-` → `top`.
fn threshold_label(p: f64) -> String {
    let mut s = String::new();
    super::jsnum::js_number(p, &mut s);
    let s = s.replacen('.', "_", 1);
    s.replacen('-', "top", 1)
}

fn ns_prefix(parts: &[&str]) -> String {
    let mut s = String::new();
    for p in parts.iter().filter(|p| !p.is_empty()) {
        s.push_str(p);
        s.push('.');
    }
    s
}

/// A value part's sample rate (`@0.5`): statsd's `isValidSampleRate` and then the number of the longest run of digits
/// and dots after `@`. `None` = invalid part. Deviations: rate 0 is invalid (statsd: Infinity); a valid number that
/// does not start with a digit or dot (`@ 1`, `@+1`, `@Infinity`) is invalid (statsd throws on it).
fn sample_rate(field: &[u8]) -> Option<f64> {
    let num = field.strip_prefix(b"@")?;
    if num.is_empty() || num.starts_with(b"-") {
        return None;
    }
    let whole = js_parse_number(num)?; // isValidSampleRate's isNumber
    let run = num.iter().take_while(|c| c.is_ascii_digit() || **c == b'.').count();
    let rate = match run {
        0 => return None,
        _ if run == num.len() => whole,
        _ => js_parse_number(&num[..run])?,
    };
    Some(rate).filter(|r| *r != 0.0)
}

/// `s.split(sep)` for an ASCII `sep`: a byte loop, cheaper than the string searcher's setup on the few bytes of a
/// statsd value part.
fn fields(s: &[u8], sep: u8) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(s);
    std::iter::from_fn(move || {
        let r = rest?;
        match r.iter().position(|&b| b == sep) {
            Some(i) => {
                rest = Some(&r[i + 1..]);
                Some(&r[..i])
            }
            None => {
                rest = None;
                Some(r)
            }
        }
    })
}

/// One value part after validation.
enum Sample<'a> {
    Counter(f64),
    Timer(f64, f64),
    Gauge {
        v: f64,
        delta: bool,
    },
    /// The member as text (decoded as node does; the values of a line are text already, so this borrows).
    Set(std::borrow::Cow<'a, str>),
}

/// statsd's `is_valid_packet` and per-type conversion of one value part `v|type[|@rate]`. The part is parsed as
/// bytes (it is UTF-8 text): the usual numbers and types are ASCII, and only other text is decoded.
fn parse_part(part: &[u8]) -> Option<Sample<'_>> {
    let mut fields = fields(part, b'|');
    let v = fields.next().unwrap_or(b"");
    let ty_raw = fields.next()?;
    let rate = match fields.next() {
        Some(r) => sample_rate(r)?,
        None => 1.0,
    };
    // Validation looks at the raw type; processing at the trimmed one (statsd does both). Every type but a raw `s`
    // needs a number (`ms`: one ≥ 0); a raw `s` trims to `s`.
    let x = if ty_raw == b"s" {
        0.0
    } else {
        if v.is_empty() {
            return None;
        }
        let x = js_parse_number(v)?;
        if ty_raw == b"ms" && x.partial_cmp(&0.0).is_none_or(|o| o.is_lt()) {
            return None;
        }
        x
    };
    let trimmed;
    let ty = match ty_raw {
        b"c" | b"ms" | b"g" | b"s" => ty_raw,
        _ => {
            trimmed = String::from_utf8_lossy(ty_raw);
            js_trim(&trimmed).as_bytes()
        }
    };
    match ty {
        b"ms" => Some(Sample::Timer(x, 1.0 / rate)),
        b"g" => Some(Sample::Gauge {
            v: x,
            delta: matches!(v.first(), Some(b'+' | b'-')),
        }),
        b"s" => Some(Sample::Set(String::from_utf8_lossy(if v.is_empty() {
            b"0"
        } else {
            v
        }))),
        _ => Some(Sample::Counter(x * (1.0 / rate))),
    }
}

/// JavaScript `Math.round` for x ≥ 0 (half up).
fn js_round(x: f64) -> f64 {
    let f = x.floor();
    if x - f >= 0.5 {
        f + 1.0
    } else {
        f
    }
}

impl StatsdState {
    /// Builds the accumulator from the group's `options` (§9.2.4) and `keep_keys` (§9.2.5).
    pub fn new(options: &StatsdOptions, keep_keys: bool) -> StatsdState {
        let StatsdOptions {
            legacy_namespace: legacy,
            global_prefix,
            global_suffix,
            prefix_counter: pc,
            prefix_timer: pt,
            prefix_gauge: pg,
            prefix_set: ps,
            percent_threshold: thresholds,
        } = options;
        let global_suffix = if global_suffix.is_empty() {
            String::new()
        } else {
            format!(".{global_suffix}")
        };
        let names = if *legacy {
            Names {
                counter_rate: ("stats.".into(), ""),
                counter_count: ("stats_counts.".into(), ""),
                timer: "stats.timers.".into(),
                gauge: "stats.gauges.".into(),
                set: ("stats.sets.".into(), ".count"),
                global_suffix,
            }
        } else {
            let gp = global_prefix.as_str();
            Names {
                counter_rate: (ns_prefix(&[gp, pc]), ".rate"),
                counter_count: (ns_prefix(&[gp, pc]), ".count"),
                timer: ns_prefix(&[gp, pt]),
                gauge: ns_prefix(&[gp, pg]),
                set: (ns_prefix(&[gp, ps]), ".count"),
                global_suffix,
            }
        };
        let thresholds = thresholds
            .iter()
            .map(|&pct| {
                let l = threshold_label(pct);
                let bound = if pct > 0.0 { "upper" } else { "lower" };
                Threshold {
                    pct,
                    names: [
                        format!("count_{l}").into(),
                        format!("mean_{l}").into(),
                        format!("{bound}_{l}").into(),
                        format!("sum_{l}").into(),
                        format!("sum_squares_{l}").into(),
                    ],
                }
            })
            .collect();
        StatsdState::empty(keep_keys, names, thresholds, super::KeyBound::default())
    }

    fn empty(keep_keys: bool, names: Names, thresholds: Vec<Threshold>, bound: super::KeyBound) -> StatsdState {
        StatsdState {
            map: Keys::default(),
            bound,
            keep_keys,
            names,
            thresholds,
            key_scratch: KeyScratch::default(),
            cum: Vec::new(),
            cum_sq: Vec::new(),
            name_buf: String::new(),
        }
    }

    /// Holds keys under `bound` (shared with the other shards of its accumulator).
    pub fn with_bound(mut self, bound: super::KeyBound) -> StatsdState {
        self.bound = bound;
        self
    }

    /// An empty state with the same options, under the same bound.
    pub fn emptied(&self) -> StatsdState {
        StatsdState::empty(
            self.keep_keys,
            self.names.clone(),
            self.thresholds.clone(),
            self.bound.share(),
        )
    }

    /// Samples dropped for `max_keys` since the last call.
    pub fn take_over_max_keys(&mut self) -> u64 {
        self.bound.take_refused()
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }

    /// Folds one framed line (the raw statsd line including its key). Returns (valid value parts, invalid value parts).
    pub fn add(&mut self, line: &[u8]) -> (u32, u32) {
        self.add_keyed(line, None)
    }

    /// Folds the lines of a router's batch by their keys, [`PREFETCH_LINES`] at a time, in a pipeline of three
    /// stages so that each prefetch has a chunk's fold to arrive: while chunk `c` is folded, the buckets of chunk
    /// `c + 2` and what the buckets of chunk `c + 1` point to are on their way. Returns the invalid value parts.
    pub fn add_batch(&mut self, batch: &KeyedBatch) -> u64 {
        let keys = &batch.keys;
        let chunk = |c: usize| &keys[(c * PREFETCH_LINES).min(keys.len())..((c + 1) * PREFETCH_LINES).min(keys.len())];
        self.map.prefetch_buckets(chunk(0));
        self.map.prefetch_buckets(chunk(1));
        self.map.prefetch_held(chunk(0));
        let mut invalid = 0;
        let mut lines = batch.iter();
        for c in 0..keys.len().div_ceil(PREFETCH_LINES) {
            self.map.prefetch_buckets(chunk(c + 2));
            self.map.prefetch_held(chunk(c + 1));
            for (line, key) in lines.by_ref().take(chunk(c).len()) {
                invalid += u64::from(self.add_keyed(line, Some(key)).1);
            }
        }
        invalid
    }

    /// [`StatsdState::add`] of a line whose key its router found (`None`: found here).
    fn add_keyed(&mut self, line: &[u8], known: Option<LineKey>) -> (u32, u32) {
        // The router's key length: the line is `key:values` as it is, ASCII (`LineKey::key_len`). Nothing to parse
        // or decode: the key's bytes are compared and the values parsed as they are.
        if let Some(k) = known.filter(|k| k.key_len > 0) {
            if let Some((key, [b':', values @ ..])) = line.split_at_checked(k.key_len as usize) {
                debug_assert_eq!(
                    (k.hash, Some((key, values))),
                    (
                        key_hash(key),
                        accumulator_key(&crate::splitter::decode(line), &mut KeyScratch::default())
                            .map(|a| (a.key.as_bytes(), a.values.as_bytes()))
                    ),
                    "the router found another key than the fold's"
                );
                return self.add_values(key, k.hash, values);
            }
        }
        let line = crate::splitter::decode(line);
        let mut scratch = std::mem::take(&mut self.key_scratch);
        let folded = match accumulator_key(&line, &mut scratch) {
            Some(AccumulatorKey { key, values, .. }) => {
                let hash = known.map_or_else(|| key_hash(key.as_bytes()), |k| k.hash);
                debug_assert_eq!(hash, key_hash(key.as_bytes()), "the router hashed another key");
                self.add_values(key.as_bytes(), hash, values.as_bytes())
            }
            // statsd pushes a lone "1", which has no type.
            None => (0, 1),
        };
        self.key_scratch = scratch;
        folded
    }

    /// Folds the value parts of one line (`values` of `key:values`) into `key`, which has `hash`.
    fn add_values(&mut self, key: &[u8], hash: u64, values: &[u8]) -> (u32, u32) {
        let (mut ok, mut bad) = (0, 0);
        for part in fields(values, b':') {
            match parse_part(part) {
                Some(s) => {
                    ok += 1;
                    self.fold(key, hash, s);
                }
                None => bad += 1,
            }
        }
        (ok, bad)
    }

    fn fold(&mut self, key: &[u8], hash: u64, s: Sample<'_>) {
        if let Some(slot) = self.map.get_mut(hash, key) {
            match s {
                Sample::Counter(v) => slot.counter().add(v),
                Sample::Timer(v, c) => {
                    let t = slot.timer();
                    t.values.push(v);
                    t.count += c;
                }
                Sample::Gauge { v, delta } => match slot.gauge_opt() {
                    // statsd: `if (gauges[key] && /^[-+]/)`: a defined, non-zero, non-NaN gauge takes deltas.
                    Some(g) if delta && g.value != 0.0 && !g.value.is_nan() => {
                        let nv = g.value + v;
                        g.take(nv)
                    }
                    _ => slot.gauge().take(v),
                },
                Sample::Set(m) => {
                    let set = slot.set();
                    set.n += 1;
                    if !set.members.contains(&*m) {
                        set.members.insert(m.into());
                    }
                }
            }
            return;
        }
        if !self.bound.admits() {
            return;
        }
        let slot = match s {
            Sample::Counter(v) => {
                let mut c = Counter::new();
                c.add(v);
                Slot::Counter(c)
            }
            Sample::Timer(v, c) => Slot::Timer(Timer {
                values: vec![v],
                count: c,
            }),
            Sample::Gauge { v, .. } => {
                let mut g = Gauge::new();
                g.take(v);
                Slot::Gauge(g)
            }
            Sample::Set(m) => {
                let mut set = SetState {
                    members: HashSet::with_capacity_and_hasher(1, Default::default()),
                    n: 1,
                };
                set.members.insert(m.into());
                Slot::Set(Box::new(set))
            }
        };
        self.map.insert(hash, key, slot);
    }

    /// The un-flushed state, one entry per key and type (`stat_key` = `<key>|c`, `|ms`, `|g`, `|s`).
    pub fn snapshot(&self) -> Vec<StatRepr> {
        let mut out = Vec::with_capacity(self.map.len());
        for Entry { key, slot } in self.map.0.iter() {
            let key = key.as_str();
            let (c, t, g, s) = slot.parts();
            let mut push = |ty: &str, min: f64, max: f64, sum: f64, count: u64| {
                out.push(StatRepr {
                    key: key.to_string(),
                    stat_key: format!("{key}|{ty}"),
                    min,
                    max,
                    sum,
                    mean: sum / count as f64,
                    count,
                })
            };
            if let Some(c) = c {
                push("c", c.min, c.max, c.value, u64::from(c.n));
            }
            if let Some(t) = t {
                let min = t.values.iter().copied().fold(f64::INFINITY, f64::min);
                let max = t.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                push("ms", min, max, t.values.iter().sum(), t.values.len() as u64);
            }
            if let Some(g) = g {
                push("g", g.min, g.max, g.value, u64::from(g.n));
            }
            if let Some(s) = s {
                let n = s.members.len() as f64;
                push("s", n, n, n, u64::from(s.n));
            }
        }
        out
    }

    /// Takes the interval's state: appends the output lines stamped `tick` to `out` in `format` (only counts them
    /// when `out` is `None`: an accumulator without a backend), pushes one [`Record`] per key that received
    /// samples, and resets (keep_keys) or forgets (default) every key. Returns the number of output lines.
    pub fn flush(
        &mut self,
        interval_secs: f64,
        tick: i64,
        format: Format,
        out: Option<&mut Vec<u8>>,
        records: &mut Vec<Record>,
    ) -> usize {
        let mut r = Renderer {
            names: &self.names,
            thresholds: &self.thresholds,
            format,
            // statsd divides by `flushInterval / 1000` with flushInterval in whole milliseconds.
            per_sec: (interval_secs * 1000.0).round() / 1000.0,
            tick: tick.to_string(),
            out,
            lines: 0,
            name: std::mem::take(&mut self.name_buf),
            cum: std::mem::take(&mut self.cum),
            cum_sq: std::mem::take(&mut self.cum_sq),
        };
        if self.keep_keys {
            for Entry { key, slot } in self.map.0.iter_mut() {
                let key = key.as_str();
                if let Some(mut rec) = r.key(key, slot) {
                    rec.key = key.to_owned();
                    records.push(rec);
                }
                slot.reset_kept();
            }
        } else {
            self.bound.release(self.map.len());
            for Entry { key, mut slot } in self.map.0.drain() {
                if let Some(mut rec) = r.key(key.as_str(), &mut slot) {
                    rec.key = key.into_string();
                    records.push(rec);
                }
            }
        }
        let Renderer {
            lines,
            name,
            cum,
            cum_sq,
            ..
        } = r;
        (self.name_buf, self.cum, self.cum_sq) = (name, cum, cum_sq);
        lines
    }
}

/// The key of the metric being rendered: the name before its `;tags`, and the tags (with their `;`, or empty).
#[derive(Clone, Copy)]
struct Metric<'a> {
    k: &'a str,
    tags: &'a str,
}

/// Which statsd type an output line has in statsd format (`|c` or `|g`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Out {
    Count,
    Gauge,
}

/// Renders the output lines of one flush, in statsd's graphite backend's names and order (or in statsd format
/// for a statsd backend); keeps its buffers across flushes.
struct Renderer<'a> {
    names: &'a Names,
    thresholds: &'a [Threshold],
    format: Format,
    /// The interval in seconds, as statsd rounds it (`*_ps`, `rate`).
    per_sec: f64,
    tick: String,
    /// `None`: lines are counted, not rendered.
    out: Option<&'a mut Vec<u8>>,
    lines: usize,
    /// Scratch: the metric name, and a timer's cumulative sums and sums of squares.
    name: String,
    cum: Vec<f64>,
    cum_sq: Vec<f64>,
}

impl Renderer<'_> {
    /// The lines of one key, in statsd's order (counter, timer, gauge, set); its record (all types merged) if it
    /// received samples.
    fn key(&mut self, key: &str, slot: &mut Slot) -> Option<Record> {
        let (k, tags) = key.find(';').map_or((key, ""), |i| key.split_at(i));
        let m = Metric { k, tags };
        let (c, t, g, s) = slot.parts_mut();
        let records = [
            c.and_then(|c| self.counter(m, c)),
            t.and_then(|t| self.timer(m, t)),
            g.and_then(|g| self.gauge(m, g)),
            s.and_then(|s| self.set(m, s)),
        ];
        records.into_iter().flatten().reduce(|mut a, b| {
            a.merge(&b);
            a
        })
    }

    fn counter(&mut self, m: Metric<'_>, c: &Counter) -> Option<Record> {
        let names = self.names;
        let (p, sfx) = &names.counter_rate;
        self.line(m, p, "", sfx, c.value / self.per_sec, Out::Count);
        let (p, sfx) = &names.counter_count;
        self.line(m, p, "", sfx, c.value, Out::Count);
        (c.n > 0).then(|| record(c.value, c.min, c.max, c.n))
    }

    fn gauge(&mut self, m: Metric<'_>, g: &Gauge) -> Option<Record> {
        self.line(m, &self.names.gauge, "", "", g.value, Out::Gauge);
        (g.n > 0).then(|| record(g.value, g.min, g.max, g.n))
    }

    fn set(&mut self, m: Metric<'_>, s: &SetState) -> Option<Record> {
        let n = s.members.len() as f64;
        let (p, sfx) = &self.names.set;
        self.line(m, p, "", sfx, n, Out::Gauge);
        (s.n > 0).then(|| record(n, n, n, s.n))
    }

    /// statsd's `process_metrics` for one timer, in its operation order.
    fn timer(&mut self, m: Metric<'_>, t: &mut Timer) -> Option<Record> {
        let p = self.names.timer.as_str();
        if t.values.is_empty() {
            self.line(m, p, "count", "", 0.0, Out::Count);
            self.line(m, p, "count_ps", "", 0.0, Out::Count);
            return None;
        }
        let values = &mut t.values;
        values.sort_unstable_by(f64::total_cmp);
        let n = values.len();
        let (min, max) = (values[0], values[n - 1]);
        let (mut cum, mut cum_sq) = (std::mem::take(&mut self.cum), std::mem::take(&mut self.cum_sq));
        cum.clear();
        cum_sq.clear();
        cum.push(min);
        cum_sq.push(min * min);
        for i in 1..n {
            cum.push(values[i] + cum[i - 1]);
            cum_sq.push(values[i] * values[i] + cum_sq[i - 1]);
        }
        let (mut sum, mut sum_sq, mut mean, mut boundary) = (min, min * min, min, max);
        for th in self.thresholds {
            let mut k_in = n;
            if n > 1 {
                k_in = js_round(th.pct.abs() / 100.0 * n as f64) as usize;
                if k_in == 0 {
                    continue;
                }
                if th.pct > 0.0 {
                    boundary = values[k_in - 1];
                    sum = cum[k_in - 1];
                    sum_sq = cum_sq[k_in - 1];
                } else {
                    boundary = values[n - k_in];
                    // Deviation: statsd reads cumulativeValues[-1] (undefined → NaN) when k = n; we take 0.
                    let (c0, q0) = if n > k_in {
                        (cum[n - k_in - 1], cum_sq[n - k_in - 1])
                    } else {
                        (0.0, 0.0)
                    };
                    sum = cum[n - 1] - c0;
                    sum_sq = cum_sq[n - 1] - q0;
                }
                mean = sum / k_in as f64;
            }
            let [nc, nm, nb, ns, nq] = &th.names;
            self.line(m, p, nc, "", k_in as f64, Out::Count);
            self.line(m, p, nm, "", mean, Out::Gauge);
            self.line(m, p, nb, "", boundary, Out::Gauge);
            self.line(m, p, ns, "", sum, Out::Gauge);
            self.line(m, p, nq, "", sum_sq, Out::Gauge);
        }
        let sum = cum[n - 1];
        let sum_sq = cum_sq[n - 1];
        (self.cum, self.cum_sq) = (cum, cum_sq);
        let mean = sum / n as f64;
        let diffs: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        let mid = n / 2;
        let median = if n % 2 == 1 {
            values[mid]
        } else {
            (values[mid - 1] + values[mid]) / 2.0
        };
        let std = (diffs / n as f64).sqrt();
        for (stat, v, out) in [
            ("std", std, Out::Gauge),
            ("upper", max, Out::Gauge),
            ("lower", min, Out::Gauge),
            ("count", t.count, Out::Count),
            ("count_ps", t.count / self.per_sec, Out::Count),
            ("sum", sum, Out::Gauge),
            ("sum_squares", sum_sq, Out::Gauge),
            ("mean", mean, Out::Gauge),
            ("median", median, Out::Gauge),
        ] {
            self.line(m, p, stat, "", v, out);
        }
        Some(record(sum, min, max, n as u64))
    }

    /// One output line: name = `prefix` K [`.` stat] `suffix` globalSuffix tags.
    fn line(&mut self, m: Metric<'_>, prefix: &str, stat: &str, suffix: &str, v: f64, kind: Out) {
        self.lines += 1;
        let Some(out) = self.out.as_deref_mut() else {
            return;
        };
        let name = &mut self.name;
        name.clear();
        name.push_str(prefix);
        name.push_str(m.k);
        if !stat.is_empty() {
            name.push('.');
            name.push_str(stat);
        }
        name.push_str(suffix);
        name.push_str(&self.names.global_suffix);
        name.push_str(m.tags);
        match self.format {
            Format::Graphite => {
                out.extend_from_slice(name.as_bytes());
                out.push(b' ');
                js_number_bytes(v, out);
                out.push(b' ');
                out.extend_from_slice(self.tick.as_bytes());
            }
            Format::Statsd => {
                for pat in ["stats.counters.", "stats.gauges.", "stats.timers."] {
                    if let Some(i) = name.find(pat) {
                        name.replace_range(i..i + pat.len(), "");
                    }
                }
                out.extend_from_slice(name.as_bytes());
                out.push(b':');
                js_number_bytes(v, out);
                out.extend_from_slice(if kind == Out::Count { b"|c" } else { b"|g" });
            }
        }
        out.push(b'\n');
    }
}

/// A key's record of one interval (the key is filled in by the caller).
fn record(sum: f64, min: f64, max: f64, count: impl Into<u64>) -> Record {
    Record {
        key: String::new(),
        sum,
        min,
        max,
        count: count.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accumulator::KeyBound;
    use std::collections::BTreeMap;

    fn acc(o: &[(&str, &str)], keep: bool) -> StatsdState {
        StatsdState::new(&StatsdOptions::from_pairs(o).expect("valid options"), keep)
    }

    #[test]
    fn new_keys_beyond_max_keys_are_dropped_and_counted() {
        let mut a = acc(&[], false).with_bound(KeyBound::new(2));
        for l in ["a:1|c", "b:1|ms", "c:1|g", "a:2|c", "d:1|c:2|c"] {
            a.add(l.as_bytes());
        }
        assert_eq!(a.len(), 2);
        assert_eq!(a.take_over_max_keys(), 3, "c, and both samples of d");
        assert_eq!(a.take_over_max_keys(), 0);
        let m = flush_map(&mut a, &mut Vec::new());
        assert_eq!(m["stats_counts.a"], "3", "held keys keep folding");
        let mut kept = acc(&[], true).with_bound(KeyBound::new(1));
        kept.add(b"a:1|c");
        flush_map(&mut kept, &mut Vec::new());
        kept.add(b"b:1|c");
        assert_eq!(kept.take_over_max_keys(), 1, "kept keys count toward the bound");
    }

    /// Flushes in graphite format with a 10 s interval; name → value.
    fn flush_map(a: &mut StatsdState, records: &mut Vec<Record>) -> BTreeMap<String, String> {
        let mut out = Vec::new();
        let n = a.flush(10.0, 1000, Format::Graphite, Some(&mut out), records);
        let text = String::from_utf8(out).expect("utf8");
        let mut m = BTreeMap::new();
        for l in text.lines() {
            let f: Vec<&str> = l.split(' ').collect();
            assert_eq!(f.len(), 3, "{l}");
            assert_eq!(f[2], "1000");
            assert!(m.insert(f[0].to_string(), f[1].to_string()).is_none(), "duplicate {l}");
        }
        assert_eq!(n, m.len());
        m
    }

    fn one(lines: &[&str]) -> BTreeMap<String, String> {
        let mut a = acc(&[], false);
        for l in lines {
            a.add(l.as_bytes());
        }
        flush_map(&mut a, &mut Vec::new())
    }

    #[test]
    fn keys_inline_and_boxed_fold_and_flush_under_their_names() {
        // Around INLINE_KEY bytes (statsd keeps only ASCII in a key; a two-byte character across the boundary too).
        let keys = [1, 21, 22, 23, 90].map(|n| "k".repeat(n));
        for key in keys.iter().chain([&format!("{}é", "k".repeat(21))]) {
            let held = HeldKey::new(key);
            assert_eq!(matches!(held, HeldKey::Inline { .. }), key.len() <= INLINE_KEY, "{key}");
            assert_eq!((held.as_bytes(), held.as_str()), (key.as_bytes(), key.as_str()));
            assert_eq!(held.into_string(), *key);
        }
        let mut a = acc(&[], true);
        for round in 0..2 {
            for (i, key) in keys.iter().enumerate() {
                for _ in 0..=i {
                    a.add(format!("{key}:2|c").as_bytes());
                }
            }
            let m = flush_map(&mut a, &mut Vec::new());
            for (i, key) in keys.iter().enumerate() {
                assert_eq!(
                    m[&format!("stats_counts.{key}")],
                    (2 * (i + 1)).to_string(),
                    "round {round}: {key}"
                );
            }
        }
    }

    #[test]
    fn fields_split_as_str_split_does() {
        for s in ["", "1|c", "1|c|@0.5", "|", "||a|", "a", "é|ü|", "1:2:3", ":"] {
            for sep in [b'|', b':'] {
                let want: Vec<&[u8]> = s.split(sep as char).map(str::as_bytes).collect();
                assert_eq!(
                    fields(s.as_bytes(), sep).collect::<Vec<_>>(),
                    want,
                    "{s:?} on {:?}",
                    sep as char
                );
            }
        }
    }

    #[test]
    fn parse_valid_invalid_counts() {
        let cases: &[(&str, (u32, u32))] = &[
            ("k:1|c", (1, 0)),
            ("k:1|ms", (1, 0)),
            ("k:3|ms|@0.01", (1, 0)),
            ("k:1|h", (1, 0)),
            ("k:1|kv", (1, 0)),
            ("k:1|C", (1, 0)),
            ("k:1|", (1, 0)),
            ("k:1|g", (1, 0)),
            ("k:+1|g", (1, 0)),
            ("k:-5|g", (1, 0)),
            ("u:abc|s", (1, 0)),
            ("u:|s", (1, 0)),
            ("k:1|c:2|c", (2, 0)),
            ("k:1|c:x|c:3|ms", (2, 1)),
            ("k", (0, 1)),
            ("k:1", (0, 1)),
            ("k:", (0, 1)),
            ("k:3|ms|@gg", (0, 1)),
            ("k:-1|ms", (0, 1)),
            ("k:abc|c", (0, 1)),
            ("k:abc|g", (0, 1)),
            ("k:|c", (0, 1)),
            ("k:1|c|0.1", (0, 1)),
            ("k:1|c|@", (0, 1)),
            ("k:1|c|@-0.5", (0, 1)),
            ("k:1|c|@0", (0, 1)),
            ("k:1|c|@0.0", (0, 1)),
            ("k:1|c|@+1", (0, 1)),
            ("k:1|c|@Infinity", (0, 1)),
            ("k:1|c|@0.5|extra", (1, 0)),
            ("k:1|c|@0.5e1", (1, 0)),
            ("k:0x10|c", (1, 0)),
            ("k: 1 |c", (1, 0)),
            ("k:1e3|ms", (1, 0)),
            ("k:Infinity|g", (1, 0)),
            ("k:-1| ms", (1, 0)),
            ("k:abc| s", (0, 1)),
            ("k:1|c|#a:b", (1, 0)),
            ("k:1|c|#", (1, 0)),
        ];
        for &(line, want) in cases {
            let mut a = acc(&[], false);
            assert_eq!(a.add(line.as_bytes()), want, "{line}");
        }
    }

    #[test]
    fn key_sanitizing_and_tags() {
        let cases: &[(&str, &str)] = &[
            ("a b:1|g", "stats.gauges.a_b"),
            ("a \t b:1|g", "stats.gauges.a_b"),
            ("a/b:1|g", "stats.gauges.a-b"),
            ("a$b%c(d):1|g", "stats.gauges.abcd"),
            ("a \u{1} b:1|g", "stats.gauges.a__b"),
            ("a\u{a0}b:1|g", "stats.gauges.a_b"),
            ("é.x:1|g", "stats.gauges..x"),
            ("k=v;t:1|g", "stats.gauges.k=v;t"),
            ("k:1|g|#a:b,c", "stats.gauges.k;a=b;c"),
            ("k:1|g|#a:b:c,d;e;f", "stats.gauges.k;a=b:c;d_e;f"),
            ("k:1|g|#x y:1|#ignored", "stats.gauges.k;x_y=1"),
            ("k:1|g|#", "stats.gauges.k"),
            (":1|g", "stats.gauges."),
        ];
        for &(line, name) in cases {
            let m = one(&[line]);
            let want = name.replace(':', "");
            let want = if line.contains("a:b:c") {
                "stats.gauges.k;a=bc;d_e;f".to_string()
            } else {
                want
            };
            assert!(m.contains_key(&want), "{line}: {m:?}");
        }
        let mut a = acc(&[], false);
        a.add(b"x:1|c|#t:1");
        a.add(b"x;t=1:2|c");
        let m = flush_map(&mut a, &mut Vec::new());
        assert_eq!(m["stats_counts.x;t=1"], "3");
        assert_eq!(m["stats.x;t=1"], "0.3");
    }

    #[test]
    fn counters_rates_and_types() {
        let m = one(&["c:1|c", "c:2|c|@0.5", "c:3|h", "c:1|unknown", "c:0x10|c"]);
        assert_eq!(m["stats_counts.c"], "25");
        assert_eq!(m["stats.c"], "2.5");
        let m = one(&["c:1|c|@0.1"]);
        assert_eq!(m["stats_counts.c"], "10");
        let m = one(&["c:1|c|@0.3"]);
        assert_eq!(m["stats_counts.c"], "3.3333333333333335");
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn gauges_and_deltas() {
        let m = one(&["g:5|g", "g:+3|g", "g:-10|g"]);
        assert_eq!(m["stats.gauges.g"], "-2");
        // A delta on a missing or zero gauge sets it.
        let m = one(&["g:+3|g"]);
        assert_eq!(m["stats.gauges.g"], "3");
        let m = one(&["g:0|g", "g:-3|g"]);
        assert_eq!(m["stats.gauges.g"], "-3");
        // A leading space is not a sign.
        let m = one(&["g:5|g", "g: +3|g"]);
        assert_eq!(m["stats.gauges.g"], "3");
        let m = one(&["g:5|g|@0.1"]);
        assert_eq!(m["stats.gauges.g"], "5");
    }

    #[test]
    fn sets_count_distinct() {
        let m = one(&["s:a|s", "s:b|s", "s:a|s", "s:|s", "s:0|s"]);
        assert_eq!(m["stats.sets.s.count"], "3");
        // Members are text: `é` is one member; bytes that are not UTF-8 decode to U+FFFD, as node's do, so the
        // last three lines are one member "\u{fffd}".
        let mut a = acc(&[], false);
        for l in [
            &b"s:\xc3\xa9|s"[..],
            b"s:\xc3\xa9|s",
            b"s:\xff|s",
            b"s:\xfe|s",
            b"s:\xef\xbf\xbd|s",
        ] {
            assert_eq!(a.add(l), (1, 0));
        }
        assert_eq!(flush_map(&mut a, &mut Vec::new())["stats.sets.s.count"], "2");
    }

    #[test]
    fn timers_statistics() {
        let mut a = acc(&[("percentThreshold", "90,50,-10")], false);
        for v in 1..=10 {
            a.add(format!("t:{v}|ms").as_bytes());
        }
        a.add(b"t:5|ms|@0.5");
        let m = flush_map(&mut a, &mut Vec::new());
        let get = |x: &str| m[&format!("stats.timers.t.{x}")].as_str();
        assert_eq!(get("count"), "12");
        assert_eq!(get("count_ps"), "1.2");
        assert_eq!(get("upper"), "10");
        assert_eq!(get("lower"), "1");
        assert_eq!(get("sum"), "60");
        assert_eq!(get("sum_squares"), "410");
        assert_eq!(get("mean"), "5.454545454545454");
        assert_eq!(get("median"), "5");
        assert_eq!(get("count_90"), "10");
        assert_eq!(get("upper_90"), "9");
        assert_eq!(get("sum_90"), "50");
        assert_eq!(get("mean_90"), "5");
        assert_eq!(get("count_50"), "6");
        assert_eq!(get("upper_50"), "5");
        assert_eq!(get("count_top10"), "1");
        assert_eq!(get("lower_top10"), "10");
        assert_eq!(get("sum_top10"), "10");
        assert_eq!(get("sum_squares_top10"), "100");
        assert_eq!(m.len(), 9 + 15);
        // One value: every threshold is that value; median of an even count averages.
        let m = one(&["t:4|ms"]);
        assert_eq!(m["stats.timers.t.upper_90"], "4");
        assert_eq!(m["stats.timers.t.sum_squares_90"], "16");
        assert_eq!(m["stats.timers.t.std"], "0");
        let m = one(&["t:1|ms", "t:2|ms"]);
        assert_eq!(m["stats.timers.t.median"], "1.5");
        assert_eq!(m["stats.timers.t.std"], "0.5");
        // k = round(0.1 × 2) = 0 skips the threshold; k = n for −100 takes C[-1] = 0.
        let mut a = acc(&[("percentThreshold", "10,-100")], false);
        a.add(b"t:1|ms:2|ms");
        let m = flush_map(&mut a, &mut Vec::new());
        assert!(!m.contains_key("stats.timers.t.count_10"));
        assert_eq!(m["stats.timers.t.sum_top100"], "3");
    }

    #[test]
    fn percentile_names() {
        let cases: &[(&str, &str)] = &[
            ("90", "upper_90"),
            ("99.9", "upper_99_9"),
            ("-10", "lower_top10"),
            ("0.95", "upper_95"),
            ("0.999", "upper_99_9"),
            ("-0.5", "lower_top50"),
            (" 75 ", "upper_75"),
            ("100", "upper_100"),
        ];
        for &(p, name) in cases {
            let a = acc(&[("percentThreshold", p)], false);
            assert_eq!(&*a.thresholds[0].names[2], name, "{p}");
        }
        assert!(StatsdOptions::from_pairs(&[("percentThreshold", "101")]).is_err());
        assert!(StatsdOptions::from_pairs(&[("percentThreshold", "90,")]).is_err());
        assert!(StatsdOptions::from_pairs(&[("percentThreshold", "x")]).is_err());
        assert!(StatsdOptions::from_pairs(&[("legacyNamespace", "yes")]).is_err());
        assert!(StatsdOptions::from_pairs(&[("nope", "1")]).is_err());
    }

    #[test]
    fn namespaces() {
        let lines = ["c:1|c", "t:1|ms", "g:1|g", "s:1|s|#a:b"];
        let run = |o: &[(&str, &str)]| {
            let mut a = acc(o, false);
            for l in lines {
                a.add(l.as_bytes());
            }
            flush_map(&mut a, &mut Vec::new()).into_keys().collect::<Vec<_>>()
        };
        let legacy = run(&[("globalSuffix", "sfx"), ("prefixCounter", "ignored")]);
        for n in [
            "stats.c.sfx",
            "stats_counts.c.sfx",
            "stats.timers.t.upper.sfx",
            "stats.gauges.g.sfx",
        ] {
            assert!(legacy.contains(&n.to_string()), "{n} in {legacy:?}");
        }
        assert!(legacy.contains(&"stats.sets.s.count.sfx;a=b".to_string()));
        let new = run(&[("legacyNamespace", "false")]);
        for n in [
            "stats.counters.c.rate",
            "stats.counters.c.count",
            "stats.timers.t.upper",
            "stats.gauges.g",
        ] {
            assert!(new.contains(&n.to_string()), "{n} in {new:?}");
        }
        assert!(new.contains(&"stats.sets.s.count;a=b".to_string()));
        let custom = run(&[
            ("legacyNamespace", "0"),
            ("globalPrefix", ""),
            ("prefixCounter", "C"),
            ("prefixTimer", ""),
            ("prefixGauge", "G"),
            ("prefixSet", "S"),
            ("globalSuffix", ""),
        ]);
        for n in ["C.c.rate", "C.c.count", "t.upper", "G.g", "S.s.count;a=b"] {
            assert!(custom.contains(&n.to_string()), "{n} in {custom:?}");
        }
    }

    #[test]
    fn statsd_output_format() {
        let mut a = acc(&[("legacyNamespace", "false")], false);
        a.add(b"c:3|c");
        a.add(b"t:2|ms");
        a.add(b"g:1.5|g");
        a.add(b"s:x|s");
        let mut out = Vec::new();
        let n = a.flush(2.0, 7, Format::Statsd, Some(&mut out), &mut Vec::new());
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(n, lines.len());
        for want in [
            "c.rate:1.5|c",
            "c.count:3|c",
            "t.count:1|c",
            "t.count_ps:0.5|c",
            "t.count_90:1|c",
        ] {
            assert!(lines.contains(&want), "{want} in {lines:?}");
        }
        for want in ["t.upper_90:2|g", "t.median:2|g", "g:1.5|g", "stats.sets.s.count:1|g"] {
            assert!(lines.contains(&want), "{want} in {lines:?}");
        }
    }

    #[test]
    fn delete_idle_by_default() {
        let mut a = acc(&[], false);
        a.add(b"g:5|g");
        a.add(b"c:1|c");
        assert_eq!(a.len(), 2);
        assert_eq!(flush_map(&mut a, &mut Vec::new()).len(), 3);
        assert!(a.is_empty());
        assert!(flush_map(&mut a, &mut Vec::new()).is_empty());
        // A delta after a flush sets.
        a.add(b"g:+2|g");
        assert_eq!(flush_map(&mut a, &mut Vec::new())["stats.gauges.g"], "2");
    }

    #[test]
    fn keep_keys_idle_values() {
        let mut a = acc(&[], true);
        for l in ["c:2|c", "t:3|ms", "g:5|g", "s:a|s"] {
            a.add(l.as_bytes());
        }
        let mut recs = Vec::new();
        let first = flush_map(&mut a, &mut recs);
        assert_eq!(recs.len(), 4);
        assert_eq!(first.len(), 2 + 14 + 1 + 1);
        let mut recs = Vec::new();
        let idle = flush_map(&mut a, &mut recs);
        assert!(recs.is_empty(), "idle keys give no records");
        let want: BTreeMap<String, String> = [
            ("stats.c", "0"),
            ("stats_counts.c", "0"),
            ("stats.timers.t.count", "0"),
            ("stats.timers.t.count_ps", "0"),
            ("stats.gauges.g", "5"),
            ("stats.sets.s.count", "0"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(idle, want);
        // Deltas apply to the kept gauge.
        a.add(b"g:+2|g");
        assert_eq!(flush_map(&mut a, &mut Vec::new())["stats.gauges.g"], "7");
        assert_eq!(a.len(), 4);
    }

    #[test]
    fn records_per_type() {
        let fill = |a: &mut StatsdState| {
            for l in [
                "c:2|c",
                "c:1|c|@0.5",
                "t:3|ms",
                "t:1|ms|@0.1",
                "g:5|g",
                "g:-7|g",
                "g:+1|g",
                "s:a|s",
                "s:a|s",
                "m:4|c:6|ms",
            ] {
                a.add(l.as_bytes());
            }
        };
        // Without an output buffer the lines are counted, not rendered, and the records are the same.
        let (mut rendered, mut counted) = (acc(&[], false), acc(&[], false));
        fill(&mut rendered);
        fill(&mut counted);
        let (mut out, mut rendered_recs, mut recs) = (Vec::new(), Vec::new(), Vec::new());
        let lines = rendered.flush(10.0, 1, Format::Graphite, Some(&mut out), &mut rendered_recs);
        assert_eq!(counted.flush(10.0, 1, Format::Graphite, None, &mut recs), lines);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), lines);
        recs.sort_by(|a, b| a.key.cmp(&b.key));
        rendered_recs.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(recs, rendered_recs);
        let r = |key: &str, sum: f64, min: f64, max: f64, count: u64| Record {
            key: key.into(),
            sum,
            min,
            max,
            count,
        };
        assert_eq!(
            recs,
            vec![
                r("c", 4.0, 2.0, 2.0, 2),
                r("g", -1.0, -2.0, 5.0, 3),
                r("m", 10.0, 4.0, 6.0, 2),
                r("s", 1.0, 1.0, 1.0, 2),
                r("t", 4.0, 1.0, 3.0, 2),
            ]
        );
    }

    #[test]
    fn snapshot_shows_unflushed_state() {
        let mut a = acc(&[], false);
        a.add(b"k:1|c:2|c:3|ms:5|ms");
        let mut s = a.snapshot();
        s.sort_by(|a, b| a.stat_key.cmp(&b.stat_key));
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].stat_key.as_str(), s[0].sum, s[0].count), ("k|c", 3.0, 2));
        assert_eq!(
            (s[1].stat_key.as_str(), s[1].min, s[1].max, s[1].mean),
            ("k|ms", 3.0, 5.0, 4.0)
        );
    }

    #[test]
    fn non_finite_values_print_as_javascript() {
        let m = one(&["c:Infinity|c", "g:-Infinity|g", "x:1e308|c:1e308|c"]);
        assert_eq!(m["stats_counts.c"], "Infinity");
        assert_eq!(m["stats.gauges.g"], "-Infinity");
        assert_eq!(m["stats_counts.x"], "Infinity");
        // Infinity + -Infinity is NaN; statsd then resets the counter on its next sample.
        let m = one(&["n:Infinity|c", "n:-Infinity|c"]);
        assert_eq!(m["stats_counts.n"], "NaN");
        let m = one(&["n:Infinity|c", "n:-Infinity|c", "n:2|c"]);
        assert_eq!(m["stats_counts.n"], "2");
    }
}
