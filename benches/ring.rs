//! Ring lookup throughput: `get_n` per hasher on a 4-member, 100-vnode consthash ring, and per
//! exact peer ring kind on 4 members, over 10 000 prebuilt keys (one lookup per relayed line on
//! the hot path).

use std::hint::black_box;

use consthash::ring::{Elter, HasherAlgo, Ring, RingKind, RingSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const KEYS: usize = 10_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("servers.host-{:04}.cpu.core{}.user", i % 997, i).into_bytes())
        .collect()
}

fn members() -> Vec<(String, u32)> {
    (0..4u32).map(|i| (format!("tcp://10.0.0.{}:2003", i + 1), i)).collect()
}

fn bench_get_n(c: &mut Criterion) {
    let keys = keys();
    let members = members();
    let algos = [
        ("crc32", HasherAlgo::Crc32),
        ("md5", HasherAlgo::Md5),
        ("sha1", HasherAlgo::Sha1),
        ("fnv", HasherAlgo::Fnv1),
        ("fnva", HasherAlgo::Fnv1a),
        ("nodejs-hashring", HasherAlgo::NodejsHashring),
        ("mmh3", HasherAlgo::Mmh3),
    ];
    for n in [1usize, 2] {
        let mut group = c.benchmark_group(format!("ring_get_n{n}"));
        group.throughput(Throughput::Elements(KEYS as u64));
        for (name, algo) in algos {
            let spec = RingSpec::consthash(algo, Elter::Graphite, 100);
            let ring = Ring::new(&spec, &members);
            let mut out = Vec::with_capacity(n);
            group.bench_with_input(BenchmarkId::from_parameter(name), &keys, |b, keys| {
                b.iter(|| {
                    let mut acc = 0u32;
                    for key in keys {
                        ring.get_n(black_box(key), n, &mut out);
                        acc = acc.wrapping_add(out[0]);
                    }
                    black_box(acc)
                })
            });
        }
        group.finish();
    }
}

/// The exact peer rings (spec §7.4), 4 members in each one's own hashkey form.
fn bench_peer_get_n(c: &mut Criterion) {
    let keys = keys();
    let hosts = |form: &dyn Fn(u32) -> String| -> Vec<(String, u32)> { (0..4u32).map(|i| (form(i), i)).collect() };
    let kinds = [
        (
            "carbon_ch",
            RingKind::CarbonCh { diverse_replicas: true },
            hosts(&|i| format!("10.0.0.{}:2003:{}", i + 1, i)),
        ),
        (
            "carbon_ch_nodiverse",
            RingKind::CarbonCh {
                diverse_replicas: false,
            },
            hosts(&|i| format!("10.0.0.{}:2003:{}", i + 1, i)),
        ),
        (
            "carbon_ch_c_relay",
            RingKind::CarbonChCRelay,
            hosts(&|i| format!("10.0.0.{}:2003={}", i + 1, i)),
        ),
        (
            "fnv1a_ch",
            RingKind::Fnv1aCh,
            hosts(&|i| format!("10.0.0.{}:2003", i + 1)),
        ),
        (
            "jump_fnv1a_ch",
            RingKind::JumpFnv1aCh,
            hosts(&|i| format!("10.0.0.{}:2003", i + 1)),
        ),
        (
            "statsd_hashring",
            RingKind::StatsdHashring,
            hosts(&|i| format!("10.0.0.{}:8125", i + 1)),
        ),
    ];
    for n in [1usize, 2] {
        let mut group = c.benchmark_group(format!("peer_ring_get_n{n}"));
        group.throughput(Throughput::Elements(KEYS as u64));
        for (name, kind, members) in &kinds {
            let ring = Ring::new(&RingSpec::peer(*kind), members);
            let mut out = Vec::with_capacity(n);
            group.bench_with_input(BenchmarkId::from_parameter(name), &keys, |b, keys| {
                b.iter(|| {
                    let mut acc = 0u32;
                    for key in keys {
                        ring.get_n(black_box(key), n, &mut out);
                        acc = acc.wrapping_add(out[0]);
                    }
                    black_box(acc)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_get_n, bench_peer_get_n);
criterion_main!(benches);
