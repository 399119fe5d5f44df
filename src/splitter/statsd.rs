//! statsd: `key:value|type[|@rate]`. The key is the text before the first `:` (it may be empty or contain
//! spaces); the line is forwarded verbatim, multi-value lines stay one line. In front of a proxy.js ring a line
//! without `:` is forwarded too, hashed on the whole line (as statsd 0.9.0's proxy.js does).

use super::{Split, SplitError};

pub(super) fn split(line: &[u8]) -> Result<Split<'_>, SplitError> {
    let colon = memchr::memchr(b':', line).ok_or(SplitError::NoColon)?;
    Ok(Split {
        key: &line[..colon],
        line,
    })
}

pub(super) fn split_as_proxy(line: &[u8]) -> Split<'_> {
    let end = memchr::memchr(b':', line).unwrap_or(line.len());
    Split {
        key: &line[..end],
        line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        let ok: &[(&str, &str)] = &[
            ("moo.goo.org:123|ms|@0.1", "moo.goo.org"),
            ("a.b:1|c:2|c", "a.b"),
            (":1|c", ""),
            ("a b:1|c", "a b"),
        ];
        for (input, key) in ok {
            let s = split(input.as_bytes()).expect("valid");
            assert_eq!((s.key, s.line), (key.as_bytes(), input.as_bytes()));
        }
        for bad in ["nocolon", "moo.goo.orgII123|0.1"] {
            assert_eq!(split(bad.as_bytes()), Err(SplitError::NoColon));
        }
    }

    #[test]
    fn proxy_keys_are_the_text_before_the_first_colon_or_the_whole_line() {
        for (input, key) in [
            ("  lead.space:1|c", "  lead.space"),
            ("nocolon", "nocolon"),
            ("   ", "   "),
            ("cr:1|c\r", "cr"),
            (":1|c", ""),
        ] {
            let s = split_as_proxy(input.as_bytes());
            assert_eq!((s.key, s.line), (key.as_bytes(), input.as_bytes()));
        }
    }
}
