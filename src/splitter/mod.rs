//! Splitters: extract a line's routing key (spec §6).
//!
//! A splitter is a pure function of one framed line. It never panics and never allocates per line: the graphite
//! splitter rewrites into a caller-owned scratch buffer only when the line needs rewriting, and the regex splitter
//! reuses its capture slots. The returned key is always a slice of the returned line.

mod graphite;
mod regex;
mod statsd;

pub use self::graphite::GraphiteNames;
pub use self::regex::RegexSplitter;
pub use self::statsd::{accumulator_key, decode, is_js_space, plain_key_len, AccumulatorKey, KeyScratch};

/// The hash of the key an accumulator folds a line under ([`accumulator_key`]; a graphite line's first field): the
/// router picks the line's shard from it and the shard looks the key up in its map by it, so it is computed once
/// per line. Its seed is random per process (foldhash's), so that no sender can choose keys that collide.
pub fn key_hash(key: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static HASHER: std::sync::LazyLock<foldhash::fast::RandomState> = std::sync::LazyLock::new(Default::default);
    HASHER.hash_one(key)
}

/// Why a line was rejected by its splitter (counted per listener as an invalid line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// statsd: no `:` in the line.
    NoColon,
    /// regex: the expression did not match.
    RegexNotMatched,
    /// regex: the `Key` group is empty or did not participate.
    RegexNoKey,
    /// graphite with c-relay names: the line is only an untagged name (the daemon does not forward it).
    NoValue,
}

impl SplitError {
    /// The reason label used in counters and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            SplitError::NoColon => "invalid_statsd",
            SplitError::RegexNotMatched => "regex_not_matched",
            SplitError::RegexNoKey => "regex_no_key",
            SplitError::NoValue => "no_value",
        }
    }

    /// The text logged (rate-limited) for such a line.
    pub fn message(self) -> &'static str {
        match self {
            SplitError::NoColon => "Invalid Statsd line",
            SplitError::RegexNotMatched => "Regex not matched",
            SplitError::RegexNoKey => "Invalid Regex (cannot find key)",
            SplitError::NoValue => "Invalid graphite line (no value)",
        }
    }
}

/// A split line: the key and the line to forward (the rewritten line for graphite).
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub key: &'a [u8],
    pub line: &'a [u8],
}

/// What a section forwards and hashes for one metric name ([`Splitter::apply_names`]).
#[derive(Debug, PartialEq, Eq)]
pub struct NameCheck {
    pub name: Vec<u8>,
    pub key: Vec<u8>,
}

/// The splitter of a section (`msg_type`, and for graphite its `graphite_names`).
#[derive(Clone, Debug)]
pub enum Splitter {
    Graphite(GraphiteNames),
    Statsd,
    /// statsd in front of a statsd proxy.js ring (`statsd_hashring`), as proxy.js splits: lines are not trimmed
    /// and a line without `:` is forwarded, hashed on the whole line.
    StatsdProxy,
    Regex(RegexSplitter),
}

/// Per-task reusable buffers of a splitter; create one per listener task with [`Splitter::scratch`].
#[derive(Debug, Default)]
pub struct Scratch {
    line: Vec<u8>,
    captures: Option<::regex::bytes::CaptureLocations>,
}

impl Splitter {
    pub fn scratch(&self) -> Scratch {
        Scratch {
            line: Vec::new(),
            captures: match self {
                Splitter::Regex(r) => Some(r.capture_locations()),
                _ => None,
            },
        }
    }

    /// Whether lines are trimmed of whitespace before splitting (spec §5.2); proxy.js does not trim.
    pub fn trims(&self) -> bool {
        !matches!(self, Splitter::StatsdProxy)
    }

    /// What the section does with metric `name` (for `hashcheck`): the name it forwards and the key it hashes,
    /// found by splitting the line a client would send for it. A regex section's key is the name itself.
    pub fn apply_names(&self, name: &[u8]) -> NameCheck {
        let suffix: &[u8] = match self {
            Splitter::Graphite(_) => b" 1 0",
            Splitter::Statsd | Splitter::StatsdProxy => b":1|c",
            Splitter::Regex(_) => {
                return NameCheck {
                    name: name.to_vec(),
                    key: name.to_vec(),
                }
            }
        };
        let line = [name, suffix].concat();
        let mut scratch = self.scratch();
        // With a value (graphite) or a `:` (statsd) after the name, these splitters accept every line.
        let Ok(split) = self.split(&line, &mut scratch) else {
            return NameCheck {
                name: name.to_vec(),
                key: name.to_vec(),
            };
        };
        let forwarded = match self {
            Splitter::Graphite(_) => split.line.split(|b| *b == b' ').next().unwrap_or_default(),
            _ => &split.line[..split.line.len() - suffix.len()],
        };
        NameCheck {
            name: forwarded.to_vec(),
            key: split.key.to_vec(),
        }
    }

    /// Splits one framed (non-empty, and trimmed unless [`Splitter::trims`] is false) line.
    pub fn split<'a>(&self, line: &'a [u8], scratch: &'a mut Scratch) -> Result<Split<'a>, SplitError> {
        match self {
            Splitter::Graphite(names) => graphite::split(*names, line, &mut scratch.line),
            Splitter::Statsd => statsd::split(line),
            Splitter::StatsdProxy => Ok(statsd::split_as_proxy(line)),
            Splitter::Regex(r) => {
                let caps = scratch.captures.get_or_insert_with(|| r.capture_locations());
                r.split(line, caps)
            }
        }
    }
}
