//! PreReg matching: the first-match rule scan per line, with 10 and 100 rules of mixed kinds (prefix,
//! substring, regex), where most keys fall through to the last rule, the worst case. Inputs are built outside the
//! timed loop.

use std::hint::black_box;

use consthash::config::{Group, Matcher, Rule};
use consthash::prereg::PreReg;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const KEYS: usize = 10_000;

fn group(rules: usize) -> Group {
    let rule = |i: usize| {
        let matcher = match i % 3 {
            0 => Matcher::Prefix(format!("app{i}.").into_bytes()),
            1 => Matcher::Substring(format!(".svc{i}.").into_bytes()),
            _ => Matcher::Regex(regex::bytes::Regex::new(&format!(r"^host-{i}\.[a-z]+\.cpu")).expect("valid")),
        };
        Rule {
            matcher,
            reject: i.is_multiple_of(2),
            backend: "b".into(),
        }
    };
    let mut list: Vec<Rule> = (0..rules - 1).map(rule).collect();
    list.push(Rule {
        matcher: Matcher::Noop,
        reject: false,
        backend: "a".into(),
    });
    Group {
        name: "g".into(),
        listen_server: "a".into(),
        default_backend: "a".into(),
        rules: list,
        accumulator: None,
    }
}

fn bench(c: &mut Criterion) {
    let keys: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("servers.host-{:04}.cpu.core{}.user", i % 997, i % 8).into_bytes())
        .collect();
    let mut g = c.benchmark_group("prereg_route");
    g.throughput(Throughput::Elements(KEYS as u64));
    for rules in [10usize, 100] {
        let p = PreReg::new(&group(rules), 0, |n| ["a", "b"].iter().position(|x| *x == n));
        g.bench_with_input(BenchmarkId::from_parameter(rules), &p, |b, p| {
            b.iter(|| {
                let mut own = 0usize;
                for k in &keys {
                    own += usize::from(p.route(k) == consthash::prereg::Action::Own);
                }
                black_box(own)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
