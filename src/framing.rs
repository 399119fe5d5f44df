//! Newline framing shared by every listener (spec §5.2).
//!
//! Invariants: lines are split on `\n` only; each line is trimmed of spaces, tabs, `\r` and `\n` at both ends
//! (unless the section's splitter forwards lines untrimmed, as proxy.js does); empty lines are skipped silently; a line longer than `max_line_length` is reported once as [`Framed::TooLong`]
//! and its bytes are discarded up to the next `\n` (even when it spans several reads). The result does not depend
//! on how the input was chunked.

use bytes::{Buf, BytesMut};

/// One framing result: a trimmed, non-empty line, or the report of a discarded overlong line.
#[derive(Debug, PartialEq, Eq)]
pub enum Framed<'a> {
    Line(&'a [u8]),
    TooLong,
}

/// How a section's input is cut into lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Framing {
    /// Longer lines are reported and discarded.
    pub max_line_length: usize,
    /// Trim whitespace at both ends of each line ([`trim`]).
    pub trim: bool,
}

impl Framing {
    pub fn new(max_line_length: usize) -> Framing {
        Framing {
            max_line_length,
            trim: true,
        }
    }
}

/// Trims spaces, tabs, `\r` and `\n` at both ends.
pub fn trim(line: &[u8]) -> &[u8] {
    let is_ws = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !is_ws(b)).unwrap_or(line.len());
    let end = line.iter().rposition(|b| !is_ws(b)).map_or(start, |i| i + 1);
    &line[start..end]
}

/// Splits a complete buffer (a datagram, an HTTP body) into lines; the last segment is a line too.
pub fn frame_all(buf: &[u8], framing: Framing, mut on: impl FnMut(Framed<'_>)) {
    let mut start = 0;
    for nl in memchr::memchr_iter(b'\n', buf) {
        emit(&buf[start..nl], framing, &mut on);
        start = nl + 1;
    }
    emit(&buf[start..], framing, &mut on);
}

fn emit(raw: &[u8], framing: Framing, on: &mut impl FnMut(Framed<'_>)) {
    if raw.len() > framing.max_line_length {
        on(Framed::TooLong);
        return;
    }
    let line = if framing.trim { trim(raw) } else { raw };
    if !line.is_empty() {
        on(Framed::Line(line));
    }
}

/// Framing state of one stream (a TCP or unix connection, an HTTP body read in pieces).
#[derive(Debug)]
pub struct StreamFramer {
    framing: Framing,
    /// Inside an overlong line that was already reported: drop bytes up to the next `\n`.
    discarding: bool,
}

impl StreamFramer {
    pub fn new(framing: Framing) -> StreamFramer {
        StreamFramer {
            framing,
            discarding: false,
        }
    }

    /// Frames what comes next with `framing` (a reload's new section generation).
    pub fn set_framing(&mut self, framing: Framing) {
        self.framing = framing;
    }

    /// Calls `on` for every complete line in `buf` and removes what it consumed. A partial last line stays in
    /// `buf` for the next read, unless `eof` is set: then it is processed as a final line.
    pub fn drain(&mut self, buf: &mut BytesMut, eof: bool, mut on: impl FnMut(Framed<'_>)) {
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', buf) {
            if self.discarding {
                self.discarding = false;
            } else {
                emit(&buf[start..nl], self.framing, &mut on);
            }
            start = nl + 1;
        }
        let rest = &buf[start..];
        if self.discarding {
            start = buf.len();
        } else if eof {
            emit(rest, self.framing, &mut on);
            start = buf.len();
        } else if rest.len() > self.framing.max_line_length {
            on(Framed::TooLong);
            self.discarding = true;
            start = buf.len();
        }
        buf.advance(start);
        if eof {
            self.discarding = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn collect_stream(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut framer = StreamFramer::new(Framing::new(max));
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let n = chunks.len();
        for (i, c) in chunks.iter().enumerate() {
            buf.extend_from_slice(c);
            framer.drain(&mut buf, i + 1 == n, |f| {
                out.push(match f {
                    Framed::Line(l) => Ok(l.to_vec()),
                    Framed::TooLong => Err(()),
                })
            });
        }
        out
    }

    #[test]
    fn trims_and_skips_empty_lines() {
        let cases: &[(&[u8], &[&[u8]])] = &[
            (b"a 1 2\n", &[b"a 1 2"]),
            (b"  a 1 2\r\n\r\n\n \t\nb\tc \r\n", &[b"a 1 2", b"b\tc"]),
            (b"final unterminated", &[b"final unterminated"]),
            (b"x\ny", &[b"x", b"y"]),
            (b"", &[]),
        ];
        for (input, want) in cases {
            let got = collect_stream(&[input], 100);
            let want: Vec<Result<Vec<u8>, ()>> = want.iter().map(|l| Ok(l.to_vec())).collect();
            assert_eq!(got, want, "input {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn overlong_lines_are_reported_once_and_discarded() {
        let got = collect_stream(&[b"ok\n0123456789", b"0123456789", b"012\nnext\n"], 8);
        assert_eq!(got, vec![Ok(b"ok".to_vec()), Err(()), Ok(b"next".to_vec())]);
        // exactly max is fine, max+1 is too long
        let got = collect_stream(&[b"12345678\n123456789\n"], 8);
        assert_eq!(got, vec![Ok(b"12345678".to_vec()), Err(())]);
    }

    #[test]
    fn datagram_framing_processes_last_segment() {
        let mut out = Vec::new();
        frame_all(b"a:1|c\nb:2|c\r\n\nc:3|c", Framing::new(100), |f| {
            out.push(format!("{f:?}"))
        });
        assert_eq!(out.len(), 3);
        let mut n = 0;
        frame_all(b"waytoolong\nok", Framing::new(4), |f| {
            n += 1;
            if n == 1 {
                assert_eq!(f, Framed::TooLong)
            } else {
                assert_eq!(f, Framed::Line(b"ok"))
            }
        });
        assert_eq!(n, 2);
    }

    #[test]
    fn untrimmed_framing_keeps_whitespace_and_skips_only_empty_lines() {
        let mut out = Vec::new();
        let framing = Framing {
            max_line_length: 100,
            trim: false,
        };
        frame_all(b"  a:1|c \n\n   \nb:2|c\r\n", framing, |f| out.push(format!("{f:?}")));
        let want = [b"  a:1|c ".as_slice(), b"   ", b"b:2|c\r"].map(|l| format!("{:?}", Framed::Line(l)));
        assert_eq!(out, want);
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_lines(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b' '), Just(b'\r'), b'a'..=b'e'], 0..300),
            cuts in proptest::collection::vec(0usize..300, 0..10),
            max in 1usize..20,
        ) {
            let whole = collect_stream(&[&input], max);
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|c| *c <= input.len()).collect();
            cuts.sort();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut prev = 0;
            for c in cuts { chunks.push(&input[prev..c]); prev = c; }
            chunks.push(&input[prev..]);
            prop_assert_eq!(whole, collect_stream(&chunks, max));
        }

        #[test]
        fn a_datagram_frames_as_a_whole_stream_does(
            input in proptest::collection::vec(prop_oneof![Just(b'\n'), Just(b' '), Just(b'\r'), b'a'..=b'e'], 0..300),
            max in 1usize..20,
        ) {
            let mut got = Vec::new();
            frame_all(&input, Framing::new(max), |f| got.push(match f {
                Framed::Line(l) => Ok(l.to_vec()),
                Framed::TooLong => Err(()),
            }));
            prop_assert_eq!(got, collect_stream(&[&input], max));
        }
    }
}
