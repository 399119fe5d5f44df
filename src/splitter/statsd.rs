//! statsd: `key:value|type[|@rate]`. The key is the text before the first `:` (it may be empty or contain
//! spaces); the line is forwarded verbatim, multi-value lines stay one line.

use super::{Split, SplitError};

pub(super) fn split(line: &[u8]) -> Result<Split<'_>, SplitError> {
    let colon = memchr::memchr(b':', line).ok_or(SplitError::NoColon)?;
    Ok(Split {
        key: &line[..colon],
        line,
    })
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
}
