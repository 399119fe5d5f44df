//! Splitters: extract a line's routing key (spec §6).
//!
//! A splitter is a pure function of one framed line. It never panics and never allocates per line: the graphite
//! splitter rewrites into a caller-owned scratch buffer only when the line needs rewriting, and the regex splitter
//! reuses its capture slots. The returned key is always a slice of the returned line.

mod graphite;
mod regex;
mod statsd;

pub use self::regex::RegexSplitter;

/// Why a line was rejected by its splitter (counted per listener as an invalid line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitError {
    /// statsd: no `:` in the line.
    NoColon,
    /// regex: the expression did not match.
    RegexNotMatched,
    /// regex: the `Key` group is empty or did not participate.
    RegexNoKey,
}

impl SplitError {
    /// The reason label used in counters and metrics.
    pub fn reason(self) -> &'static str {
        match self {
            SplitError::NoColon => "invalid_statsd",
            SplitError::RegexNotMatched => "regex_not_matched",
            SplitError::RegexNoKey => "regex_no_key",
        }
    }

    /// The text logged (rate-limited) for such a line.
    pub fn message(self) -> &'static str {
        match self {
            SplitError::NoColon => "Invalid Statsd line",
            SplitError::RegexNotMatched => "Regex not matched",
            SplitError::RegexNoKey => "Invalid Regex (cannot find key)",
        }
    }
}

/// A split line: the key and the line to forward (the rewritten line for graphite).
#[derive(Debug, PartialEq, Eq)]
pub struct Split<'a> {
    pub key: &'a [u8],
    pub line: &'a [u8],
}

/// The splitter of a section (`msg_type`).
#[derive(Clone, Debug)]
pub enum Splitter {
    Graphite,
    Statsd,
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

    /// Splits one framed (trimmed, non-empty) line.
    pub fn split<'a>(&self, line: &'a [u8], scratch: &'a mut Scratch) -> Result<Split<'a>, SplitError> {
        match self {
            Splitter::Graphite => Ok(graphite::split(line, &mut scratch.line)),
            Splitter::Statsd => statsd::split(line),
            Splitter::Regex(r) => {
                let caps = scratch.captures.get_or_insert_with(|| r.capture_locations());
                r.split(line, caps)
            }
        }
    }
}
