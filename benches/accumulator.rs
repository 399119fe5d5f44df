//! Accumulator throughput: the statsd accumulator (spec §9.2) folding lines into 100 000 keys (60 % counters,
//! 30 % timers, 10 % gauges), new and already-held keys (these also in a shuffled order, as a live stream sends
//! them: each line's key elsewhere in memory), in batches with their keys as a router sends them, and flushing
//! 1 000 000 keys to graphite lines and records; the keys a router finds for those lines; the graphite accumulator
//! (§9.3) folding 100 000 keys already held. Inputs are built outside the timed loops.

use std::hint::black_box;
use std::time::Duration;

use consthash::accumulator::graphite::GraphiteState;
use consthash::accumulator::statsd::StatsdState;
use consthash::config::{Format, StatsdOptions};
use consthash::line::{Batch, KeyedBatch};
use consthash::section::AccumulatorInput;
use consthash::splitter::KeyScratch;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// One line per key: `i % 10` < 6 counter, < 9 timer, else gauge; some with sample rates. Keys are 32-36 bytes
/// (`short`: 13-17, short enough to be held inside their table entry).
fn lines(keys: usize, short: bool) -> Vec<Vec<u8>> {
    (0..keys)
        .map(|i| {
            let key = if short {
                format!("h{}.app{}.m{}", i % 997, i % 13, i)
            } else {
                format!("servers.host-{:04}.app{}.metric{}", i % 997, i % 13, i)
            };
            match i % 10 {
                0..=5 if i % 4 == 0 => format!("{key}:{}|c|@0.5", i % 100),
                0..=5 => format!("{key}:{}|c", i % 100),
                6..=8 => format!("{key}:{}.{}|ms", i % 1000, i % 7),
                _ => format!("{key}:{}|g", i % 500),
            }
            .into_bytes()
        })
        .collect()
}

/// `lines` in batches of `BATCH_LINES` with their keys, as a router hands them to an accumulator shard.
fn batches(lines: &[Vec<u8>]) -> Vec<KeyedBatch> {
    let (input, _rx) = AccumulatorInput::new("bench", 1, Format::Statsd);
    let mut scratch = KeyScratch::default();
    lines
        .chunks(BATCH_LINES)
        .map(|chunk| {
            let data: Vec<u8> = chunk.iter().flat_map(|l| l.iter().chain(b"\n")).copied().collect();
            input.keyed(Batch::from_lines(data.into()), &mut scratch)
        })
        .collect()
}

/// Lines per batch: about what one read of a busy UDP socket routes to one shard.
const BATCH_LINES: usize = 256;

fn filled(lines: &[Vec<u8>], rounds: usize) -> StatsdState {
    let mut a = StatsdState::new(&StatsdOptions::default(), false);
    for _ in 0..rounds {
        for l in lines {
            a.add(l);
        }
    }
    a
}

fn bench_fold(c: &mut Criterion) {
    let input = lines(100_000, false);
    let mut g = c.benchmark_group("statsd_fold_100k_keys");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(20);
    let in_order = batches(&input);
    g.bench_function("new_keys", |b| {
        b.iter_batched(
            || filled(&[], 0),
            |mut a| {
                for batch in &in_order {
                    black_box(a.add_batch(batch));
                }
                a
            },
            BatchSize::LargeInput,
        )
    });
    // Held keys in key order, then in the order a live stream sends them: each line's key elsewhere in memory; and
    // short keys in that order.
    let shuffle = |input: &[Vec<u8>]| {
        let mut shuffled = input.to_vec();
        fastrand::Rng::with_seed(7).shuffle(&mut shuffled);
        batches(&shuffled)
    };
    let short = lines(100_000, true);
    for (name, held, order) in [
        ("existing_keys", &input, in_order),
        ("existing_keys_shuffled", &input, shuffle(&input)),
        ("existing_short_keys_shuffled", &short, shuffle(&short)),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || filled(held, 1),
                |mut a| {
                    for batch in &order {
                        black_box(a.add_batch(batch));
                    }
                    a
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

/// The router's half: each line's key found and hashed ([`AccumulatorInput::keyed`] calls what a router calls per
/// line), over the shuffled lines in batches.
fn bench_keys(c: &mut Criterion) {
    let mut input = lines(100_000, false);
    fastrand::Rng::with_seed(7).shuffle(&mut input);
    let data: Vec<Batch> = input
        .chunks(BATCH_LINES)
        .map(|chunk| {
            Batch::from_lines(
                chunk
                    .iter()
                    .flat_map(|l| l.iter().chain(b"\n"))
                    .copied()
                    .collect::<Vec<_>>()
                    .into(),
            )
        })
        .collect();
    let (keys, _rx) = AccumulatorInput::new("bench", 1, Format::Statsd);
    let mut scratch = KeyScratch::default();
    let mut g = c.benchmark_group("statsd_keys_100k_keys");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(20);
    g.bench_function("keyed", |b| {
        b.iter(|| {
            for batch in &data {
                black_box(keys.keyed(batch.clone(), &mut scratch));
            }
        })
    });
    g.finish();
}

fn bench_flush(c: &mut Criterion) {
    let input = lines(1_000_000, false);
    let mut g = c.benchmark_group("statsd_flush_1m_keys");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("graphite", |b| {
        b.iter_batched(
            || {
                (
                    filled(&input, 2),
                    Vec::with_capacity(64 << 20),
                    Vec::with_capacity(1 << 20),
                )
            },
            |(mut a, mut out, mut records)| {
                black_box(a.flush(10.0, 1_700_000_000, Format::Graphite, Some(&mut out), &mut records));
                (a, out, records)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_graphite_fold(c: &mut Criterion) {
    let input: Vec<Vec<u8>> = (0..100_000)
        .map(|i| {
            format!(
                "servers.host-{:04}.app{}.metric{i} {} 1700000000",
                i % 997,
                i % 13,
                i % 100
            )
            .into_bytes()
        })
        .collect();
    let mut g = c.benchmark_group("graphite_fold_100k_keys");
    g.throughput(Throughput::Elements(input.len() as u64));
    g.sample_size(20);
    g.bench_function("existing_keys", |b| {
        b.iter_batched(
            || {
                let mut a = GraphiteState::new(false);
                for l in &input {
                    a.add(l).expect("a valid graphite line");
                }
                a
            },
            |mut a| {
                for l in &input {
                    let _ = black_box(a.add(l));
                }
                a
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench_fold, bench_keys, bench_flush, bench_graphite_fold);
criterion_main!(benches);
