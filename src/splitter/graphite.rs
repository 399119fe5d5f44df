//! graphite: `name value time`. The name is placed and forwarded as the relay being replaced would see it
//! ([`GraphiteNames`], spec §6 and §7.8). In every mode fields are separated by any run of spaces and tabs and
//! forwarded separated by one space, and the key is a slice of the forwarded line.
//!
//! Each mode has a fast check (a table lookup per byte) that most lines pass: they are forwarded as they came,
//! without a copy. The others get the mode's rewrite, one left-to-right pass into a scratch buffer ([`Rewrite`]).
//! A property test holds each check to its rewrite: a line the check passes is one the rewrite leaves unchanged.

use super::{Split, SplitError};
use crate::ring::RingKind;

/// How a graphite section rewrites, forwards and hashes metric names (`graphite_names`, spec §7.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphiteNames {
    /// The Go relay's rewrite: `..` → `.` (pairwise, not re-scanned), each of `,*(){}` → `_`.
    Consthash,
    /// carbon-relay: the name is forwarded as it was written.
    Carbon,
    /// carbon-c-relay's daemon: the name is cleansed (below) and forwarded cleansed; a tagged name
    /// (`name;tag=value…`) is hashed on the part before its first `;`.
    ///
    /// Measured on the live daemon (carbon-c-relay 3.7.3): leading spaces, tabs and dots are skipped; in the name
    /// (up to the first `;` or whitespace) a run of dots becomes one dot, a dot before the first whitespace is
    /// dropped, and every byte outside `[0-9A-Za-z-_:#.;]` becomes `_` (each byte of a UTF-8 sequence). The tags
    /// keep every byte but collapse runs of dots, drop a dot or whitespace right after a `;`. After the first
    /// whitespace, runs of dots collapse and a dot right after that whitespace is dropped. A line that is only an
    /// untagged name is not forwarded.
    CRelay,
}

impl GraphiteNames {
    pub fn parse(s: &str) -> Option<GraphiteNames> {
        Some(match s {
            "consthash" => GraphiteNames::Consthash,
            "carbon" => GraphiteNames::Carbon,
            "c-relay" => GraphiteNames::CRelay,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            GraphiteNames::Consthash => "consthash",
            GraphiteNames::Carbon => "carbon",
            GraphiteNames::CRelay => "c-relay",
        }
    }

    /// The names of the relay a ring kind replaces (§7.8).
    pub fn default_for(kind: &RingKind) -> GraphiteNames {
        match kind {
            RingKind::ConstHash | RingKind::StatsdHashring => GraphiteNames::Consthash,
            RingKind::CarbonCh { .. } => GraphiteNames::Carbon,
            RingKind::CarbonChCRelay | RingKind::Fnv1aCh | RingKind::JumpFnv1aCh => GraphiteNames::CRelay,
        }
    }
}

/// The forwarded line of one pass: the input itself while every byte is kept, the scratch buffer from the first
/// byte that is changed or dropped. Every method takes the index `i` of the input byte being decided.
struct Rewrite<'a> {
    src: &'a [u8],
    out: &'a mut Vec<u8>,
    copied: bool,
}

impl<'a> Rewrite<'a> {
    fn new(src: &'a [u8], out: &'a mut Vec<u8>) -> Rewrite<'a> {
        Rewrite {
            src,
            out,
            copied: false,
        }
    }

    /// Leaves the input for the buffer: what was kept so far is `src[..i]`.
    #[inline]
    fn diverge(&mut self, i: usize) {
        if !self.copied {
            self.out.clear();
            self.out.extend_from_slice(&self.src[..i]);
            self.copied = true;
        }
    }

    #[inline]
    fn keep(&mut self, i: usize) {
        if self.copied {
            self.out.push(self.src[i]);
        }
    }

    #[inline]
    fn put(&mut self, i: usize, b: u8) {
        if self.copied || self.src[i] != b {
            self.diverge(i);
            self.out.push(b);
        }
    }

    #[inline]
    fn skip(&mut self, i: usize) {
        self.diverge(i);
    }

    /// Drops the last byte written.
    #[inline]
    fn pop(&mut self, i: usize) {
        self.diverge(i);
        self.out.pop();
    }

    /// The last byte written before input byte `i`.
    #[inline]
    fn last(&self, i: usize) -> Option<u8> {
        if self.copied {
            self.out.last().copied()
        } else {
            i.checked_sub(1).map(|p| self.src[p])
        }
    }

    /// A field separator: the first of a run of spaces and tabs becomes one space, the rest are dropped.
    #[inline]
    fn space(&mut self, i: usize) {
        if self.last(i) == Some(b' ') {
            self.skip(i);
        } else {
            self.put(i, b' ');
        }
    }

    fn finish(self) -> &'a [u8] {
        if self.copied {
            self.out
        } else {
            self.src
        }
    }
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Byte classes of the fast checks: `CHANGED` bytes are always rewritten, `DOUBLED` ones when repeated.
const KEPT: u8 = 0;
const CHANGED: u8 = 1;
const DOUBLED: u8 = 2;

const fn classes(changed: &[u8], doubled: &[u8]) -> [u8; 256] {
    let mut t = [KEPT; 256];
    let mut i = 0;
    while i < changed.len() {
        t[changed[i] as usize] = CHANGED;
        i += 1;
    }
    i = 0;
    while i < doubled.len() {
        t[doubled[i] as usize] = DOUBLED;
        i += 1;
    }
    t
}

static CONSTHASH_CLASSES: [u8; 256] = classes(b",*(){}\t", b". ");
static CARBON_CLASSES: [u8; 256] = classes(b"\t", b" ");

/// Whether a line has a byte of class `CHANGED`, or a `DOUBLED` byte twice in a row.
fn has_change(line: &[u8], classes: &[u8; 256]) -> bool {
    let mut prev = 0u8;
    for &b in line {
        match classes[b as usize] {
            KEPT => {}
            CHANGED => return true,
            _ if b == prev => return true,
            _ => {}
        }
        prev = b;
    }
    false
}

/// c-relay's byte classes for its fast check: bytes kept in a name, and the bytes its cleansing looks at.
const NAME: u8 = 0;
const DOT: u8 = 1;
const SPACE: u8 = 2;
const SEMI: u8 = 3;
const TAB: u8 = 4;
const OTHER: u8 = 5;

const fn crelay_classes() -> [u8; 256] {
    let mut t = [OTHER; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'.' => DOT,
            b' ' => SPACE,
            b';' => SEMI,
            b'\t' => TAB,
            _ if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b':' | b'#') => NAME,
            _ => OTHER,
        };
        b += 1;
    }
    t
}
static CRELAY_CLASSES: [u8; 256] = crelay_classes();

/// The fast check of c-relay names: whether the daemon forwards the line exactly as it came (see [`crelay`]).
fn crelay_unchanged(line: &[u8]) -> bool {
    let mut part = Part::Name;
    let mut prev = SPACE; // as if after whitespace: a leading dot or space is dropped
    let mut i = 0;
    while i < line.len() {
        // Runs of name bytes (most of a line) are kept in every part.
        let c = CRELAY_CLASSES[line[i] as usize];
        i += 1;
        if c == NAME {
            while i < line.len() && CRELAY_CLASSES[line[i] as usize] == NAME {
                i += 1;
            }
            if part == (Part::Rest { fresh: true }) {
                part = Part::Rest { fresh: false };
            }
            prev = NAME;
            continue;
        }
        let kept = match (part, c) {
            (_, TAB) => false,
            (Part::Name, DOT) => prev == NAME,
            (Part::Name, SPACE) => {
                part = Part::Rest { fresh: true };
                prev == NAME
            }
            (Part::Name, SEMI) => {
                part = Part::Tags;
                true
            }
            (Part::Name, _) => false,
            (Part::Tags, DOT) => prev != DOT && prev != SEMI,
            (Part::Tags, SPACE) => {
                part = Part::Rest { fresh: true };
                prev != SEMI
            }
            (Part::Tags, _) => true,
            (Part::Rest { fresh: true }, DOT | SPACE) => false,
            (Part::Rest { .. }, DOT | SPACE) => prev != c,
            (Part::Rest { .. }, _) => true,
        };
        if !kept {
            return false;
        }
        if let Part::Rest { fresh: true } = part {
            if c != SPACE {
                part = Part::Rest { fresh: false };
            }
        }
        prev = c;
    }
    part != Part::Name
}

/// The Go relay's rewrite (§6), with any whitespace run as one separator.
fn consthash<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let mut w = Rewrite::new(line, scratch);
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'.' if line.get(i + 1) == Some(&b'.') => {
                w.keep(i);
                w.skip(i + 1);
                i += 1;
            }
            b',' | b'*' | b'(' | b')' | b'{' | b'}' => w.put(i, b'_'),
            b' ' | b'\t' => w.space(i),
            _ => w.keep(i),
        }
        i += 1;
    }
    w.finish()
}

/// carbon-relay: names unchanged, fields separated by one space.
fn carbon<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    let mut w = Rewrite::new(line, scratch);
    for (i, &b) in line.iter().enumerate() {
        if is_space(b) {
            w.space(i);
        } else {
            w.keep(i);
        }
    }
    w.finish()
}

/// Where the c-relay pass is in the line.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Name,
    Tags,
    /// After the first whitespace; `fresh` until a byte is written after it.
    Rest {
        fresh: bool,
    },
}

/// carbon-c-relay's daemon cleansing (see [`GraphiteNames::CRelay`]); `None` for a line it does not forward.
fn crelay<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    let mut w = Rewrite::new(line, scratch);
    let mut part = Part::Name;
    for (i, &b) in line.iter().enumerate() {
        // `w.last(i)` only in guards: their patterns rule out the common bytes first.
        match part {
            Part::Name => match b {
                b'.' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'_' | b':' | b'#'
                    if b != b'.' || !matches!(w.last(i), None | Some(b'.')) =>
                {
                    w.keep(i)
                }
                b'.' => w.skip(i),
                b' ' | b'\t' if w.last(i).is_none() => w.skip(i),
                b' ' | b'\t' => {
                    if w.last(i) == Some(b'.') {
                        w.pop(i);
                    }
                    w.put(i, b' ');
                    part = Part::Rest { fresh: true };
                }
                b';' => {
                    w.keep(i);
                    part = Part::Tags;
                }
                _ => w.put(i, b'_'),
            },
            Part::Tags => match b {
                b' ' | b'\t' | b'.' if w.last(i) == Some(b';') => w.skip(i),
                b'.' if w.last(i) == Some(b'.') => w.skip(i),
                b' ' | b'\t' => {
                    w.put(i, b' ');
                    part = Part::Rest { fresh: true };
                }
                _ => w.keep(i),
            },
            Part::Rest { fresh } => match b {
                b' ' | b'\t' => w.space(i),
                b'.' if fresh || w.last(i) == Some(b'.') => w.skip(i),
                _ => {
                    w.keep(i);
                    part = Part::Rest { fresh: false };
                }
            },
        }
    }
    (part != Part::Name).then(|| w.finish())
}

/// A mode's rewrite of a line into the scratch buffer.
type Rewriter = for<'l> fn(&'l [u8], &'l mut Vec<u8>) -> &'l [u8];

// Kept out of line on purpose: inlined into `Splitter::split` (as a change of the crate's layout once let it be)
// it framed and split graphite lines 20 % slower in `benches/pipeline.rs` (perf showed the inlined copy).
#[inline(never)]
pub(super) fn split<'a>(
    names: GraphiteNames,
    line: &'a [u8],
    scratch: &'a mut Vec<u8>,
) -> Result<Split<'a>, SplitError> {
    let (line, key_end) = match names {
        GraphiteNames::Consthash | GraphiteNames::Carbon => {
            let (classes, rewrite): (_, Rewriter) = match names {
                GraphiteNames::Consthash => (&CONSTHASH_CLASSES, consthash),
                _ => (&CARBON_CLASSES, carbon),
            };
            let line = if has_change(line, classes) {
                rewrite(line, scratch)
            } else {
                line
            };
            (line, memchr::memchr(b' ', line))
        }
        GraphiteNames::CRelay => {
            let line = if crelay_unchanged(line) {
                line
            } else {
                crelay(line, scratch).ok_or(SplitError::NoValue)?
            };
            (line, memchr::memchr2(b' ', b';', line))
        }
    };
    let key = &line[..key_end.unwrap_or(line.len())];
    Ok(Split { key, line })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(names: GraphiteNames, cases: &[(&[u8], &[u8], &[u8])]) {
        let mut scratch = Vec::new();
        for (input, key, line) in cases {
            let s = split(names, input, &mut scratch).expect("valid");
            assert_eq!(
                (s.key, s.line),
                (*key, *line),
                "{} names, input {:?}",
                names.name(),
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn consthash_spec_vectors() {
        check(
            GraphiteNames::Consthash,
            &[
                (b"moo.goo.org 123 123123", b"moo.goo.org", b"moo.goo.org 123 123123"),
                (b"a.b.c 1 2", b"a.b.c", b"a.b.c 1 2"),
                (b"a..b...c 1 2", b"a.b..c", b"a.b..c 1 2"),
                (b"a,b(c){d}*e 1 2", b"a_b_c__d__e", b"a_b_c__d__e 1 2"),
                (b"a  b 1", b"a", b"a b 1"),
                (b"a   b 1", b"a", b"a b 1"),
                (b"justone", b"justone", b"justone"),
                (b"tab\tsep 1 2", b"tab", b"tab sep 1 2"),
                (b"a.b\t1\t2", b"a.b", b"a.b 1 2"),
                (b"a.b \t 1\t\t2", b"a.b", b"a.b 1 2"),
                (b"d.u;h=w 1 2", b"d.u;h=w", b"d.u;h=w 1 2"),
            ],
        );
    }

    #[test]
    fn carbon_forwards_names_unchanged() {
        check(
            GraphiteNames::Carbon,
            &[
                (b"a..b,c(d) 1 2", b"a..b,c(d)", b"a..b,c(d) 1 2"),
                (b"tab\tsep\t1  2", b"tab", b"tab sep 1 2"),
                (b"d.u;h=w;dc=a 1 2", b"d.u;h=w;dc=a", b"d.u;h=w;dc=a 1 2"),
                (
                    "m\u{fc}nchen.t 1 2".as_bytes(),
                    "m\u{fc}nchen.t".as_bytes(),
                    "m\u{fc}nchen.t 1 2".as_bytes(),
                ),
                (b".lead.trail. 1 2", b".lead.trail.", b".lead.trail. 1 2"),
                (b"justone", b"justone", b"justone"),
            ],
        );
    }

    /// Input → forwarded line pairs read from the live carbon-c-relay 3.7.3 daemon (`cluster … carbon_ch`,
    /// `match * send to …`), by feeding it these lines over TCP and reading what its servers received.
    #[test]
    fn crelay_vectors_from_the_live_daemon() {
        let cases: &[(&[u8], &[u8], &[u8])] = &[
            (b"plain.name 1 1700000000", b"plain.name", b"plain.name 1 1700000000"),
            (b"tab.sep\t2\t1700000000", b"tab.sep", b"tab.sep 2 1700000000"),
            (
                b"disk.used;host=web01;dc=ams 3 1",
                b"disk.used",
                b"disk.used;host=web01;dc=ams 3 1",
            ),
            (b"a..b.c 4 1", b"a.b.c", b"a.b.c 4 1"),
            (b"a...b 1 1", b"a.b", b"a.b 1 1"),
            (b".lead.dot 5 1", b"lead.dot", b"lead.dot 5 1"),
            (b"trail.dot. 6 1", b"trail.dot", b"trail.dot 6 1"),
            (b"paren(x) 7 1", b"paren_x_", b"paren_x_ 7 1"),
            (b"a,b*c{d} 8 1", b"a_b_c_d_", b"a_b_c_d_ 8 1"),
            (
                "m\u{fc}nchen.temp 9 1".as_bytes(),
                b"m__nchen.temp",
                b"m__nchen.temp 9 1",
            ),
            (b"sp  two 10 1", b"sp", b"sp two 10 1"),
            (b"a/b@c!d 12 1", b"a_b_c_d", b"a_b_c_d 12 1"),
            (b"tag;x=a/b 13 1", b"tag", b"tag;x=a/b 13 1"),
            (b"q:w#e-r_t 14 1", b"q:w#e-r_t", b"q:w#e-r_t 14 1"),
            (b"x=y 1 1", b"x_y", b"x_y 1 1"),
            (b"x\x00y 1 2", b"x_y", b"x_y 1 2"),
            (b"x\x0by 1 2", b"x_y", b"x_y 1 2"),
            (b"x\xc3\xa9 1 2", b"x__", b"x__ 1 2"),
            (b"t;k=x\x0by 1 2", b"t", b"t;k=x\x0by 1 2"),
            (b"x;a=\xc3\xa9 1 2", b"x", b"x;a=\xc3\xa9 1 2"),
            (b"x;a=b..c 1 1", b"x", b"x;a=b.c 1 1"),
            (b"x;a=..b 1 1", b"x", b"x;a=.b 1 1"),
            (b"x.;.a 1 2", b"x.", b"x.;a 1 2"),
            (b"x..;a=b 1 1", b"x.", b"x.;a=b 1 1"),
            (b"x;a=b.  1 1", b"x", b"x;a=b. 1 1"),
            (b"x; 1 1", b"x", b"x;1 1"),
            (b";a=1 1 1", b"", b";a=1 1 1"),
            (b"x ;a=b 1 1", b"x", b"x ;a=b 1 1"),
            (b"x;a=b c 1 2", b"x", b"x;a=b c 1 2"),
            (b"a. b 1 1", b"a", b"a b 1 1"),
            (b"a .b 1 1", b"a", b"a b 1 1"),
            (b".  a 1 1", b"a", b"a 1 1"),
            (b"x .1 2", b"x", b"x 1 2"),
            (b"x 1 ..2", b"x", b"x 1 .2"),
            (b"x 1..5 17", b"x", b"x 1.5 17"),
            (b"x 1. 2", b"x", b"x 1. 2"),
            (b"x\t 1\t 2", b"x", b"x 1 2"),
            (b"x 1", b"x", b"x 1"),
            (b"x 1 2 3 4", b"x", b"x 1 2 3 4"),
            (b"s;t=1", b"s", b"s;t=1"),
            (b"x;", b"x", b"x;"),
            (b"_x 1 2", b"_x", b"_x 1 2"),
            (b"-x 1 2", b"-x", b"-x 1 2"),
        ];
        check(GraphiteNames::CRelay, cases);
        let mut scratch = Vec::new();
        for dropped in [&b"single"[..], b"x.y.", b"...", b"a..b"] {
            assert_eq!(
                split(GraphiteNames::CRelay, dropped, &mut scratch),
                Err(SplitError::NoValue),
                "{:?}",
                String::from_utf8_lossy(dropped)
            );
        }
    }

    proptest::proptest! {
        /// A line a fast check passes is one its rewrite leaves as it is, and the other way round.
        #[test]
        fn each_fast_check_agrees_with_its_rewrite(
            line in proptest::collection::vec(proptest::sample::select(b"ab.; \t,(_=\xc3".to_vec()), 1..14),
        ) {
            let mut scratch = Vec::new();
            let unchanged = |out: Option<&[u8]>| out == Some(&line[..]);
            proptest::prop_assert_eq!(!has_change(&line, &CONSTHASH_CLASSES), unchanged(Some(consthash(&line, &mut scratch))));
            proptest::prop_assert_eq!(!has_change(&line, &CARBON_CLASSES), unchanged(Some(carbon(&line, &mut scratch))));
            proptest::prop_assert_eq!(crelay_unchanged(&line), unchanged(crelay(&line, &mut scratch)));
        }
    }

    #[test]
    fn an_unchanged_line_is_not_copied() {
        let mut scratch = Vec::new();
        for names in [GraphiteNames::Consthash, GraphiteNames::Carbon, GraphiteNames::CRelay] {
            let line = b"a.b;c=d 1 2";
            let s = split(names, line, &mut scratch).expect("valid");
            assert_eq!(s.line.as_ptr(), line.as_ptr(), "{} names", names.name());
        }
    }
}
