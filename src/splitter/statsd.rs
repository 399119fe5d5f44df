//! statsd: `key:value|type[|@rate]`. The key is the text before the first `:` (it may be empty or contain
//! spaces); the line is forwarded verbatim, multi-value lines stay one line. In front of a proxy.js ring a line
//! without `:` is forwarded too, hashed on the whole line (as statsd 0.9.0's proxy.js does).
//!
//! [`accumulator_key`] is the other statsd key: the one a statsd accumulator folds a line under (tags appended,
//! sanitized), which also decides the accumulator shard a line goes to.

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

/// Reused buffers for the accumulator key of a line that has tags or needs sanitizing.
#[derive(Debug, Default)]
pub struct KeyScratch {
    raw: String,
    key: String,
}

/// A statsd line as the accumulator reads it: Node decodes a datagram as UTF-8 with replacement characters;
/// valid UTF-8 (nearly every line) is borrowed, after a check faster than the lossy decoder's.
pub fn decode(line: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(line) {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(line),
    }
}

/// The key a statsd accumulator folds a line under and the line's value parts ([`accumulator_key`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AccumulatorKey<'a> {
    pub key: &'a str,
    pub values: &'a str,
    /// The line is `key:values` as it is (no tags, nothing sanitized): a fold given the key's length can slice both.
    pub as_is: bool,
}

/// The key a statsd accumulator folds `line` under, and the line's value parts (the text after the first `:`,
/// before any `|#` tags); `None` for a line without `:`. As statsd 0.9.0 does: the `|#` tags (the text between the
/// first and second `|#`) are appended to the key as `;name=value` (each tag's first `;` → `_`, first `:` → `=`),
/// and the result is sanitized ([`sanitize_into`]). The common clean, untagged key is a slice of `line`; other
/// keys are built in `scratch`, without allocating once its buffers have grown (tags aside).
pub fn accumulator_key<'a>(line: &'a str, scratch: &'a mut KeyScratch) -> Option<AccumulatorKey<'a>> {
    let (metric, tags, tagged) = match find_tags(line) {
        Some(i) => {
            let rest = &line[i + 2..];
            (&line[..i], find_tags(rest).map_or(rest, |j| &rest[..j]), true)
        }
        None => (line, "", false),
    };
    let (raw_key, values) = metric.split_once(':')?;
    if tags.is_empty() && raw_key.bytes().all(key_byte_ok) {
        return Some(AccumulatorKey {
            key: raw_key,
            values,
            as_is: !tagged,
        });
    }
    let KeyScratch { raw, key } = scratch;
    raw.clear();
    raw.push_str(raw_key);
    if !tags.is_empty() {
        for tag in tags.split(',') {
            raw.push(';');
            let tag = tag.replacen(';', "_", 1).replacen(':', "=", 1);
            raw.push_str(&tag);
        }
    }
    key.clear();
    sanitize_into(raw, key);
    Some(AccumulatorKey {
        key,
        values,
        as_is: false,
    })
}

/// The key's length when `line` is `key:values` as it is, found in one pass over its bytes: ASCII, a key of
/// statsd's key characters only, no tags. Then [`accumulator_key`] of the line is that key and the rest (`as_is`);
/// `None` says nothing: such a line needs [`accumulator_key`].
pub fn plain_key_len(line: &[u8]) -> Option<usize> {
    let colon = line.iter().position(|&b| !key_byte_ok(b))?;
    if line[colon] != b':' {
        return None;
    }
    // One loop for both checks: `is_ascii` plus [`find_tags`] on the values measured slower (criterion
    // `statsd_keys_100k_keys`: 8.5-11.4 vs 12.5 M lines/s).
    let mut prev = b':';
    for &b in &line[colon + 1..] {
        if !b.is_ascii() || (prev == b'|' && b == b'#') {
            return None;
        }
        prev = b;
    }
    Some(colon)
}

/// Where the first `|#` of `s` starts. A line has one or two `|`, so looking at the byte after each is cheaper
/// than a substring search.
fn find_tags(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    memchr::memchr_iter(b'|', b).find(|&i| b.get(i + 1) == Some(&b'#'))
}

/// The key characters statsd keeps (`[A-Za-z0-9_.;=-]`).
fn key_byte_ok(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b';' | b'=' | b'-')
}

/// statsd's `sanitizeKeyName`: whitespace runs → `_`, `/` → `-`, other characters outside `[A-Za-z0-9_.;=-]` deleted.
fn sanitize_into(raw: &str, out: &mut String) {
    let mut in_ws = false;
    for c in raw.chars() {
        if is_js_space(c) {
            if !in_ws {
                out.push('_');
            }
            in_ws = true;
            continue;
        }
        in_ws = false;
        if c == '/' {
            out.push('-');
        } else if c.is_ascii() && key_byte_ok(c as u8) {
            out.push(c);
        }
    }
}

/// JavaScript's WhiteSpace and LineTerminator code points (what `trim()` removes and `\s` matches).
pub fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}' | '\u{2028}' | '\u{2029}' | '\u{202f}' | '\u{205f}' | '\u{3000}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_decode_as_node_does() {
        assert!(matches!(decode(b"a.b:1|c"), std::borrow::Cow::Borrowed("a.b:1|c")));
        assert_eq!(decode(b"a\xffb:1|c"), "a\u{fffd}b:1|c");
        assert_eq!(
            decode(b"\xe2\x82:1|c"),
            "\u{fffd}:1|c",
            "a truncated sequence is one replacement"
        );
    }

    #[test]
    fn accumulator_keys_append_tags_and_are_sanitized() {
        let mut scratch = KeyScratch::default();
        for (line, key, values, as_is) in [
            ("a.b:1|c:2|ms", "a.b", "1|c:2|ms", true),
            ("a b/c$:1|g", "a_b-c", "1|g", false),
            ("k:1|g|#a:b,c;d|#x", "k;a=b;c_d", "1|g", false),
            ("\u{3000}x:1|c", "_x", "1|c", false),
            ("k:1|c||#t:v", "k;t=v", "1|c|", false),
            ("k:2|", "k", "2|", true),
            // empty tags: the key is as it is, the values are not the rest of the line
            ("k:3|#", "k", "3", false),
        ] {
            let got = accumulator_key(line, &mut scratch);
            assert_eq!(got, Some(AccumulatorKey { key, values, as_is }), "{line}");
            if as_is {
                assert_eq!(format!("{key}:{values}"), line);
            }
        }
        assert_eq!(accumulator_key("no colon|#t:1", &mut scratch), None);
    }

    #[test]
    fn plain_keys_are_the_accumulator_keys_of_lines_as_they_are() {
        for (line, want) in [
            ("a.b:1|c:2|ms", Some(3)),
            ("k:2|", Some(1)),
            (":1|c", Some(0)),
            ("k:1|c#x", Some(1)),
            ("k:3|#", None),
            ("k:1|g|#a:b", None),
            ("a b:1|g", None),
            ("k\u{e9}:1|c", None),
            ("k:1|c\u{e9}", None),
            ("nocolon", None),
            ("", None),
        ] {
            assert_eq!(plain_key_len(line.as_bytes()), want, "{line:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_plain_key_is_what_accumulator_key_finds_as_is(
            key in proptest::collection::vec(proptest::sample::select(&b"ab.-_;=: /\xc3\xa9"[..]), 0..8),
            values in proptest::collection::vec(proptest::sample::select(&b"1.:|#@cmsg\t\xc3\xa9\xff"[..]), 0..16),
        ) {
            let line = [&key[..], b":", &values[..]].concat();
            let got = plain_key_len(&line);
            if let Some(n) = got {
                let text = std::str::from_utf8(&line).expect("a plain line is ASCII");
                let want = AccumulatorKey { key: &text[..n], values: &text[n + 1..], as_is: true };
                let mut scratch = KeyScratch::default();
                proptest::prop_assert_eq!(accumulator_key(text, &mut scratch), Some(want));
            } else if let Ok(text) = std::str::from_utf8(&line) {
                // nothing plain is missed: an ASCII line accumulator_key takes as it is has a plain key
                let as_is = accumulator_key(text, &mut KeyScratch::default()).is_some_and(|k| k.as_is);
                proptest::prop_assert!(!(as_is && text.is_ascii()), "{:?}", text);
            }
        }
    }

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
