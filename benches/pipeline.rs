//! Framing + splitting throughput per format: a 1 MiB read buffer of lines framed with the stream framer and
//! each line split, as a listener task does before the ring lookup; and statsd datagrams framed one by one, as the
//! UDP listener does. Inputs are built outside the timed loop.

use std::hint::black_box;

use bytes::BytesMut;
use consthash::framing::{frame_all, Framed, Framing, StreamFramer};
use consthash::splitter::{GraphiteNames, RegexSplitter, Splitter};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const LINES: usize = 20_000;

fn input(kind: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        let line = match kind {
            "graphite" => format!("servers.host-{:04}.cpu.core{}.user {} 1700000000\n", i % 997, i % 8, i),
            "graphite_rewrite" => format!("servers.host-{:04}..cpu,core{}.user {} 1700000000\n", i % 997, i % 8, i),
            "graphite_tagged" => format!("disk.used;host=web{:04};dc=ams {} 1700000000\n", i % 997, i),
            "statsd" => format!("statdtest.k{}.house:{}|ms|@0.5\n", i % 100_000, i),
            _ => format!(
                "<13>Nov 18 01:22:36 web-{}-frontend mfp-nginx: 190.172.234.165 - momo {i}\n",
                i % 50
            ),
        };
        out.extend_from_slice(line.as_bytes());
    }
    out
}

fn bench_frame_and_split(c: &mut Criterion) {
    let regex = RegexSplitter::new(
        regex::bytes::Regex::new(
            r"^(<\d+>)?(?P<Timestamp>[A-Z][a-z]+\s+\d+\s\d+:\d+:\d+) (?P<Key>\S+) (?P<Logger>\S+):(.*)",
        )
        .expect("valid"),
    )
    .expect("has Key");
    let cases = [
        (
            "graphite",
            Splitter::Graphite(GraphiteNames::Consthash),
            input("graphite"),
        ),
        (
            "graphite_rewrite",
            Splitter::Graphite(GraphiteNames::Consthash),
            input("graphite_rewrite"),
        ),
        (
            "graphite_carbon",
            Splitter::Graphite(GraphiteNames::Carbon),
            input("graphite"),
        ),
        (
            "graphite_c_relay",
            Splitter::Graphite(GraphiteNames::CRelay),
            input("graphite"),
        ),
        (
            "graphite_c_relay_tagged",
            Splitter::Graphite(GraphiteNames::CRelay),
            input("graphite_tagged"),
        ),
        ("statsd", Splitter::Statsd, input("statsd")),
        ("statsd_proxy", Splitter::StatsdProxy, input("statsd")),
        ("regex", Splitter::Regex(regex), input("regex")),
    ];
    let mut group = c.benchmark_group("frame_and_split");
    group.throughput(Throughput::Elements(LINES as u64));
    for (name, splitter, data) in cases {
        let mut scratch = splitter.scratch();
        let mut framer = StreamFramer::new(Framing::new(65_536));
        let mut buf = BytesMut::with_capacity(data.len());
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                buf.extend_from_slice(&data);
                let mut keys = 0usize;
                framer.drain(&mut buf, false, |f| {
                    if let Framed::Line(l) = f {
                        if let Ok(s) = splitter.split(l, &mut scratch) {
                            keys += s.key.len();
                        }
                    }
                });
                black_box(keys)
            })
        });
    }
    // A UDP listener's case: datagrams of whole lines up to 1450 bytes, each framed as one buffer.
    let mut datagrams: Vec<Vec<u8>> = vec![Vec::new()];
    for line in input("statsd").split_inclusive(|b| *b == b'\n') {
        if datagrams.last().is_some_and(|d| d.len() + line.len() > 1450) {
            datagrams.push(Vec::new());
        }
        datagrams.last_mut().expect("one").extend_from_slice(line);
    }
    let splitter = Splitter::Statsd;
    let mut scratch = splitter.scratch();
    group.bench_function("statsd_datagrams", |b| {
        b.iter(|| {
            let mut keys = 0usize;
            for d in &datagrams {
                frame_all(d, Framing::new(65_536), |f| {
                    if let Framed::Line(l) = f {
                        if let Ok(s) = splitter.split(l, &mut scratch) {
                            keys += s.key.len();
                        }
                    }
                });
            }
            black_box(keys)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_frame_and_split);
criterion_main!(benches);
