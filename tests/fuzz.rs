//! Fuzzing on the stable toolchain: proptest feeds random and mutated input to everything that parses what a
//! client or an operator sends: framing, the three splitters, both accumulators, both config loaders, and a live
//! HTTP listener. Nothing may panic, and what comes out must still make sense (a key is part of its line; framing
//! does not depend on how the bytes were cut; a listener that was sent garbage still relays a good request).
//!
//! `FUZZ_CASES` sets the cases per target (default 500; `.ci/run` runs a bounded number). Failures are minimised
//! by proptest and written to `tests/fuzz.proptest-regressions`, which then replays them first.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::BytesMut;
use consthash::accumulator::graphite::GraphiteState;
use consthash::accumulator::statsd::StatsdState;
use consthash::config::{load_main, load_prereg, StatsdOptions};
use consthash::framing::{frame_all, Framed, Framing, StreamFramer};
use consthash::splitter::{GraphiteNames, Splitter};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

/// Bytes that look like metric lines often enough to get past the first checks: lines built from the characters
/// the formats care about, mixed with arbitrary bytes.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"a.b.c".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\t".to_vec()),
        Just(b":".to_vec()),
        Just(b"|".to_vec()),
        Just(b"|c".to_vec()),
        Just(b"|ms".to_vec()),
        Just(b"|g".to_vec()),
        Just(b"|s".to_vec()),
        Just(b"|@0.1".to_vec()),
        Just(b"|#t:v,u".to_vec()),
        Just(b"1e308".to_vec()),
        Just(b"-0.5".to_vec()),
        Just(b"+".to_vec()),
        Just(b"NaN".to_vec()),
        Just(b"..".to_vec()),
        Just(b"(){}*,".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just("é€\u{0}".as_bytes().to_vec()),
        proptest::collection::vec(any::<u8>(), 0..12),
    ];
    proptest::collection::vec(piece, 0..24).prop_map(|p| p.concat())
}

fn framed(buf: &[u8], max: usize) -> Vec<Option<Vec<u8>>> {
    let mut out = Vec::new();
    frame_all(buf, Framing::new(max), |f| {
        out.push(match f {
            Framed::Line(l) => Some(l.to_vec()),
            Framed::TooLong => None,
        })
    });
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn framing_does_not_depend_on_how_the_stream_was_cut(
        data in line_bytes(),
        cuts in proptest::collection::vec(0usize..64, 0..8),
        max in 1usize..40,
    ) {
        let whole = framed(&data, max);
        let mut framer = StreamFramer::new(Framing::new(max));
        let (mut buf, mut got) = (BytesMut::new(), Vec::new());
        let mut rest = &data[..];
        for c in cuts {
            let (piece, tail) = rest.split_at(c.min(rest.len()));
            buf.extend_from_slice(piece);
            framer.drain(&mut buf, false, |f| got.push(match f {
                Framed::Line(l) => Some(l.to_vec()),
                Framed::TooLong => None,
            }));
            rest = tail;
        }
        buf.extend_from_slice(rest);
        framer.drain(&mut buf, true, |f| got.push(match f {
            Framed::Line(l) => Some(l.to_vec()),
            Framed::TooLong => None,
        }));
        prop_assert_eq!(got, whole);
    }

    #[test]
    fn splitters_return_a_key_from_the_line_or_an_error(data in line_bytes()) {
        let regex = consthash::splitter::RegexSplitter::new(
            regex::bytes::Regex::new(r"^(?P<Key>[^ :]+)[ :]").expect("compiles"),
        )
        .expect("has Key");
        for splitter in [
            Splitter::Graphite(GraphiteNames::Consthash),
            Splitter::Graphite(GraphiteNames::Carbon),
            Splitter::Graphite(GraphiteNames::CRelay),
            Splitter::Statsd,
            Splitter::StatsdProxy,
            Splitter::Regex(regex),
        ] {
            let mut scratch = splitter.scratch();
            frame_all(&data, Framing::new(1024), |f| {
                if let Framed::Line(line) = f {
                    if let Ok(split) = splitter.split(line, &mut scratch) {
                        let (l, k) = (split.line, split.key);
                        let inside = k.is_empty()
                            || (k.as_ptr() >= l.as_ptr() && k.as_ptr() as usize + k.len() <= l.as_ptr() as usize + l.len());
                        assert!(inside, "the key is a slice of the forwarded line");
                    }
                }
            });
        }
    }

    #[test]
    fn accumulators_fold_anything_and_flush(data in line_bytes()) {
        let mut statsd = StatsdState::new(&StatsdOptions::default(), false);
        let mut graphite = GraphiteState::new(false);
        frame_all(&data, Framing::new(1024), |f| {
            if let Framed::Line(line) = f {
                statsd.add(line);
                let _ = graphite.add(line);
            }
        });
        let (mut out, mut records) = (Vec::new(), Vec::new());
        statsd.flush(10.0, 1_700_000_000, consthash::config::Format::Graphite, Some(&mut out), &mut records);
        graphite.flush(1_700_000_000, consthash::config::Format::Statsd, Some(&mut out), &mut records);
        prop_assert!(out.is_empty() || out.ends_with(b"\n"));
    }

    #[test]
    fn config_loaders_report_errors_and_never_panic(
        base in prop_oneof![
            Just(include_str!("../configs/example.toml")),
            Just(include_str!("../configs/quickstart.toml")),
            Just(include_str!("../configs/statsd-proxy.toml")),
            Just(include_str!("../configs/syslog-regex.toml")),
        ],
        edits in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..8, "[ -~\n]{0,12}"), 0..6),
    ) {
        let mut text = base.to_string();
        for (at, cut, insert) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            let mut end = (i + cut).min(text.len());
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.replace_range(i..end, &insert);
        }
        if let Ok(main) = load_main(&text, "fuzz.toml") {
            let _ = load_prereg(include_str!("../configs/example-prereg.toml"), "prereg.toml", &main);
            let _ = load_prereg(&text, "prereg.toml", &main);
        }
    }
}

/// Garbage over many connections to a live HTTP listener: each gets an answer or a close, and a good request
/// afterwards is still relayed.
#[test]
fn an_http_listener_survives_garbage() {
    use std::io::{Read, Write};
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let sink = std::net::TcpListener::bind("127.0.0.1:0").expect("sink");
    let sink_addr = sink.local_addr().expect("addr");
    let config = load_main(
        &format!(
            "[default]\n[relay]\nlisten = \"http://127.0.0.1:0/in\"\nmsg_type = \"graphite\"\n\
             [[relay.servers]]\nservers = [\"tcp://{sink_addr}\"]\n"
        ),
        "fuzz.toml",
    )
    .expect("config");
    let relay = rt
        .block_on(consthash::app::Relay::start(&config, None))
        .expect("starts");
    let Some(consthash::listener::Bound::Http(addr)) = relay.bound("relay").cloned() else {
        panic!("an http listener")
    };
    let requests = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..512),
        (
            line_bytes(),
            "[A-Z]{0,7}",
            "(/in|/|/in/x|\\*)",
            prop_oneof![Just("chunked"), Just("gzip"), Just("")]
        )
            .prop_map(|(body, method, path, te)| {
                let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n").into_bytes();
                if te.is_empty() {
                    r.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
                } else {
                    r.extend_from_slice(format!("Transfer-Encoding: {te}\r\n\r\n").as_bytes());
                }
                r.extend_from_slice(&body);
                r
            }),
    ];
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases() / 5 + 1));
    runner
        .run(&requests, |req| {
            let mut c = std::net::TcpStream::connect(addr).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
            let _ = c.write_all(&req);
            let _ = c.shutdown(std::net::Shutdown::Write);
            let mut answer = Vec::new();
            let _ = c.read_to_end(&mut answer);
            Ok(())
        })
        .expect("no case failed");
    let section = relay.section("relay").expect("section").clone();
    let before = section.stats.valid_lines.load(Relaxed);
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    let body = "after.garbage 1 1700000000\n";
    write!(
        c,
        "POST /in HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(section.stats.valid_lines.load(Relaxed), before + 1);
    rt.block_on(relay.shutdown());
}
