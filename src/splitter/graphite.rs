//! graphite: `key value time`. The line is rewritten in one left-to-right pass (replacements are not re-scanned):
//! `..` → `.`, each of `,*(){}` → `_`, two spaces → one space. The key is the text before the first space.

use super::Split;

/// Bytes replaced by `_`; `.` and ` ` only matter when doubled.
const fn byte_class() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    let specials = b",*(){}";
    while i < specials.len() {
        t[specials[i] as usize] = 1;
        i += 1;
    }
    t[b'.' as usize] = 2;
    t[b' ' as usize] = 2;
    t
}
static CLASS: [u8; 256] = byte_class();

/// One cheap pass: most lines need no rewrite and are forwarded as they are.
fn needs_rewrite(line: &[u8]) -> bool {
    let mut prev = 0u8;
    for &b in line {
        match CLASS[b as usize] {
            0 => {}
            1 => return true,
            _ if b == prev => return true,
            _ => {}
        }
        prev = b;
    }
    false
}

/// The single-pass rewrite into `out` (cleared first).
fn rewrite(line: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut i = 0;
    while i < line.len() {
        let b = line[i];
        match b {
            b'.' | b' ' if line.get(i + 1) == Some(&b) => {
                out.push(b);
                i += 2;
            }
            b',' | b'*' | b'(' | b')' | b'{' | b'}' => {
                out.push(b'_');
                i += 1;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
}

// Kept out of line on purpose: inlined into `Splitter::split` (as a change of the crate's layout once let it be)
// it framed and split graphite lines 20 % slower in `benches/pipeline.rs` (perf showed the inlined copy).
#[inline(never)]
pub(super) fn split<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> Split<'a> {
    let line: &'a [u8] = if needs_rewrite(line) {
        rewrite(line, scratch);
        scratch
    } else {
        line
    };
    let key = match memchr::memchr(b' ', line) {
        Some(sp) => &line[..sp],
        None => line,
    };
    Split { key, line }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_vectors() {
        let cases: &[(&str, &str, &str)] = &[
            ("moo.goo.org 123 123123", "moo.goo.org", "moo.goo.org 123 123123"),
            ("a.b.c 1 2", "a.b.c", "a.b.c 1 2"),
            ("a..b...c 1 2", "a.b..c", "a.b..c 1 2"),
            ("a,b(c){d}*e 1 2", "a_b_c__d__e", "a_b_c__d__e 1 2"),
            ("a  b 1", "a", "a b 1"),
            ("a   b 1", "a", "a  b 1"),
            ("justone", "justone", "justone"),
            ("tab\tsep 1 2", "tab\tsep", "tab\tsep 1 2"),
        ];
        let mut scratch = Vec::new();
        for (input, key, line) in cases {
            let s = split(input.as_bytes(), &mut scratch);
            assert_eq!((s.key, s.line), (key.as_bytes(), line.as_bytes()), "input {input:?}");
        }
    }
}
