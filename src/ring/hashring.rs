//! `statsd_hashring`: npm `hashring` 3.2.0 as statsd 0.9.0's proxy.js builds it, spec §7.4.
//!
//! proxy.js passes `{"host:port": 100, ...}` with algorithm md5 and `replicas: 0` (hashring
//! clamps it to 1) and the default 40 vnodes. Each server gets
//! `floor((weight / total) · 40 · servers)` points (39 instead of 40 for some server counts, by
//! double rounding), the little-endian first 4 MD5 bytes of `"<host:port>-<i>"`; points are
//! stable-sorted by value and duplicates kept. A key belongs to the first point at or after its
//! value, wrapping to the first; replicas are the next distinct servers clockwise (hashring's
//! `range`; statsd itself never replicates).

use std::fmt::Write as _;

use super::hash::md5_le32;
use super::points::{KeyHash, Owner, PointRing, Points};

/// hashring's default vnode count.
const VNODES: f64 = 40.0;
/// The weight proxy.js gives every server.
const WEIGHT: f64 = 100.0;

/// Points per server for `n` servers, evaluated as hashring does in IEEE double.
pub fn points_per_server(n: usize) -> usize {
    let total = WEIGHT * n as f64;
    let percentage = WEIGHT / total;
    (percentage * VNODES * n as f64).floor() as usize
}

/// The statsd hashring over the ordered members `(hashkey, id)`; hashkeys are `host:port`, hashed as written. A
/// repeated hashkey counts once (proxy.js keys an object by it). Points are stably sorted by value, duplicates
/// kept; a key at a value belongs to it.
pub fn statsd_hashring(members: &[(String, u32)]) -> PointRing {
    let mut servers: Vec<(&str, u32)> = Vec::with_capacity(members.len());
    for (key, id) in members {
        if !servers.iter().any(|(k, _)| *k == key.as_str()) {
            servers.push((key, *id));
        }
    }
    let len = points_per_server(servers.len());
    let mut points = Vec::with_capacity(servers.len() * len);
    let mut buf = String::new();
    for (key, id) in &servers {
        for i in 0..len {
            buf.clear();
            write!(buf, "{key}-{i}").expect("writing to a String cannot fail");
            points.push((md5_le32(buf.as_bytes()), *id));
        }
    }
    points.sort_by_key(|&(v, _)| v);
    PointRing::new(KeyHash::Md5Le32, Points::new(points, Owner::AtOrAfter, servers.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests_common::{get_n, members};

    #[test]
    fn points_per_server_39_for_some_counts() {
        let short: Vec<usize> = (1..=100).filter(|&n| points_per_server(n) != 40).collect();
        assert_eq!(short, [7, 14, 28, 49, 56, 98]);
        assert_eq!(points_per_server(7), 39);
    }

    /// Spec §7.7 vector B for statsd_hashring.
    #[test]
    fn vector_b_statsd_hashring() {
        let ring = statsd_hashring(&members(&[
            ("192.168.59.103:8126", 8126),
            ("192.168.59.103:8136", 8136),
            ("192.168.59.103:8146", 8146),
        ]));
        assert_eq!(ring.points(), 120);
        let cases: [(&str, u64, u32); 10] = [
            ("moo.goo.org", 1_522_576_247, 8136),
            ("stats.timers.foo", 278_575_858, 8146),
            ("servers.main.cpu.load", 682_098_160, 8146),
            ("servers.main-01.mem.free", 2_598_761_682, 8136),
            ("statdtest.house.here", 3_208_939_862, 8136),
            ("graphitetest.cow.now.test", 1_433_831_892, 8146),
            ("a.b.c", 1_333_149_525, 8136),
            ("foo.bar.baz", 3_273_122_551, 8136),
            ("consthash.test", 1_791_200_388, 8146),
            ("gorets", 1_770_481_096, 8136),
        ];
        for (key, value, port) in cases {
            assert_eq!(ring.position(key.as_bytes()), value, "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
            assert_eq!(get_n(|k, n, o| ring.get_n(k, n, o), key, 1), vec![port], "{key}");
        }
    }
}
