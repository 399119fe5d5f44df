//! Ring lookup throughput: `get_n` per hasher on a 4-member, 100-vnode consthash ring over
//! 10 000 prebuilt keys (one lookup per relayed line on the hot path).

use std::hint::black_box;

use consthash::ring::{Elter, HasherAlgo, Ring, RingSpec};
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
            let spec = RingSpec {
                algo,
                elter: Elter::Graphite,
                vnodes: 100,
            };
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

criterion_group!(benches, bench_get_n);
criterion_main!(benches);
