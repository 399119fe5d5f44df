//! regex: `msg_regex` is searched in the line; the key is the capture of the group named `Key`.

use regex::bytes::{CaptureLocations, Regex};

use super::{Split, SplitError};

/// A compiled `msg_regex` with the index of its `Key` group.
#[derive(Clone, Debug)]
pub struct RegexSplitter {
    regex: Regex,
    key_group: usize,
}

impl RegexSplitter {
    /// `None` when the expression has no group named `Key` (config validation reports that).
    pub fn new(regex: Regex) -> Option<RegexSplitter> {
        let key_group = regex.capture_names().position(|n| n == Some("Key"))?;
        Some(RegexSplitter { regex, key_group })
    }

    pub(super) fn capture_locations(&self) -> CaptureLocations {
        self.regex.capture_locations()
    }

    pub(super) fn split<'a>(&self, line: &'a [u8], caps: &mut CaptureLocations) -> Result<Split<'a>, SplitError> {
        self.regex
            .captures_read(caps, line)
            .ok_or(SplitError::RegexNotMatched)?;
        match caps.get(self.key_group) {
            Some((start, end)) if end > start => Ok(Split {
                key: &line[start..end],
                line,
            }),
            _ => Err(SplitError::RegexNoKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const R1: &str = r"^(<\d+>)?(?P<Timestamp>[A-Z][a-z]+\s+\d+\s\d+:\d+:\d+) (?P<Key>\S+) (?P<Logger>\S+):(.*)";

    fn run(re: &str, line: &str) -> Result<String, SplitError> {
        let s = RegexSplitter::new(Regex::new(re).expect("compiles")).expect("has Key");
        let mut caps = s.capture_locations();
        s.split(line.as_bytes(), &mut caps).map(|sp| {
            assert_eq!(sp.line, line.as_bytes(), "forwarded verbatim");
            String::from_utf8_lossy(sp.key).into_owned()
        })
    }

    #[test]
    fn spec_vectors() {
        assert_eq!(
            run(
                R1,
                "<13>Nov 18 01:22:36 web-7-frontend-lb-prod mfp-nginx: 190.172.234.165 - momo"
            )
            .as_deref(),
            Ok("web-7-frontend-lb-prod")
        );
        assert_eq!(
            run(R1, "Nov 18 01:22:36 web-7-frontend-lb-prod"),
            Err(SplitError::RegexNotMatched)
        );
        assert_eq!(
            run(r"^(?P<Key>\S+) (?P<Rest>.*)", "moo.goo.org some rest").as_deref(),
            Ok("moo.goo.org")
        );
        assert_eq!(run(r"^(?P<Key>[a-z.]+)$", "moo.goo.org").as_deref(), Ok("moo.goo.org"));
        assert_eq!(run(r"^(?P<Key>[a-z]*)x", "x"), Err(SplitError::RegexNoKey));
        assert_eq!(run(r"^(?:(?P<Key>a)|b)", "b"), Err(SplitError::RegexNoKey));
    }

    #[test]
    fn no_key_group_is_refused() {
        assert!(RegexSplitter::new(Regex::new(r"^(\S+)").expect("compiles")).is_none());
    }
}
