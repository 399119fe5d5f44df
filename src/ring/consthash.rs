//! The consthash ring family (spec §7.1): `vnodes` points per member, each the hash of the
//! member's elter string; a key belongs to the owner of the first point strictly after its hash.

use std::collections::BTreeMap;

use super::points::{distinct_ids, KeyHash, Owner, PointRing, Points};
use super::RingSpec;

/// The consthash-family ring of `spec` over the ordered member list `(hashkey, id)`. Members are inserted in
/// order; a later member takes over a point an earlier one already has (last added owns a collision).
/// `spec.vnodes == 0` is treated as 1. Points are distinct; a key exactly on a point belongs to the next one.
pub fn consthash_ring(spec: &RingSpec, members: &[(String, u32)]) -> PointRing {
    let vnodes = spec.vnodes.max(1);
    let mut map = BTreeMap::new();
    let mut buf = String::new();
    for (hashkey, id) in members {
        for i in 0..vnodes {
            spec.elter.point(hashkey, i, &mut buf);
            map.insert(spec.algo.hash(buf.as_bytes()), *id);
        }
    }
    let points = Points::new(map.into_iter().collect(), Owner::After, distinct_ids(members));
    PointRing::new(KeyHash::Consthash(spec.algo), points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::{Elter, HasherAlgo};
    use proptest::prelude::*;

    use crate::ring::tests_common::K;

    fn spec(algo: HasherAlgo, elter: Elter, vnodes: usize) -> RingSpec {
        RingSpec::consthash(algo, elter, vnodes)
    }

    fn members(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|&(k, id)| (k.to_string(), id)).collect()
    }

    fn get_n(ring: &PointRing, key: &str, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        ring.get_n(key.as_bytes(), n, &mut out);
        out
    }

    // ---- T: the tester set -------------------------------------------------------------------

    const S: [(&str, u32); 6] = [("s1", 1), ("s2", 2), ("s3", 3), ("s4", 4), ("s5", 5), ("s6", 6)];

    /// key, owner (s<id>), md5 hash.
    const T_WORDS: [(&str, u32, u32); 25] = [
        ("A", 1, 32709),
        ("written", 6, 40130),
        ("look", 1, 35906),
        ("gloves", 2, 34559),
        ("the", 3, 36804),
        ("here", 5, 27794),
        ("lyric.", 3, 3860),
        ("How", 6, 4901),
        ("does", 4, 21568),
        ("a", 3, 3265),
        ("separated", 4, 38001),
        ("helmet", 3, 6073),
        ("chalk?", 3, 56580),
        ("The", 6, 42096),
        ("minister", 6, 12999),
        ("intervenes", 5, 39731),
        ("across", 1, 50519),
        ("beautiful", 3, 59392),
        ("bliss.", 1, 1258),
        ("thankful", 5, 18819),
        ("equilibrium", 2, 16015),
        ("gangs", 1, 3641),
        ("your", 5, 25292),
        ("stationary", 4, 22304),
        ("apple.", 4, 61086),
    ];

    fn tester_spec() -> RingSpec {
        spec(HasherAlgo::Md5, Elter::Graphite, 100)
    }

    #[test]
    fn t_tester_set_points_and_collisions() {
        let ring = consthash_ring(&tester_spec(), &members(&S));
        assert_eq!(ring.points(), 595);
        assert_eq!(ring.members(), 6);
        // Each collision is owned by the later member.
        for (point, owner) in [(10091, 3), (32189, 6), (40067, 5), (49860, 4), (54766, 6)] {
            let found = ring.entries().iter().find(|&&(p, _)| p == point);
            assert_eq!(found, Some(&(point, owner)), "point {point}");
        }
    }

    #[test]
    fn t_tester_set_keys() {
        let ring = consthash_ring(&tester_spec(), &members(&S));
        for (key, owner, hash) in T_WORDS {
            assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(owner), "{key}");
            assert_eq!(get_n(&ring, key, 1), vec![owner], "{key}");
        }
    }

    #[test]
    fn t_tester_set_adjusted_membership() {
        let spec = tester_spec();
        let full = consthash_ring(&spec, &members(&S));

        let without_s4: Vec<(&str, u32)> = S.iter().copied().filter(|&(_, id)| id != 4).collect();
        let removed = consthash_ring(&spec, &members(&without_s4));
        assert_eq!(removed.points(), 497);
        assert_eq!(removed.members(), 5);
        assert_eq!(removed.get(b"intervenes"), Some(5));

        // s4 back in its config position: identical to the original ring.
        let back = consthash_ring(&spec, &members(&S));
        assert_eq!(back, full);
        assert_eq!(back.get(b"intervenes"), Some(5));

        // s4 appended as a new member (API): it now owns the 40067 collision.
        let mut appended = without_s4.clone();
        appended.push(("s4", 4));
        let appended = consthash_ring(&spec, &members(&appended));
        assert_eq!(appended.points(), 595);
        assert_eq!(appended.get(b"intervenes"), Some(4));
    }

    // ---- A: md5/graphite/100 with carbon-style hashkeys ---------------------------------------

    #[test]
    fn a_md5_graphite_carbon_hashkeys() {
        const A: u32 = 0;
        const B: u32 = 1;
        const C: u32 = 2;
        let ring = consthash_ring(
            &spec(HasherAlgo::Md5, Elter::Graphite, 100),
            &members(&[
                ("('192.168.10.200', 'a')", A),
                ("('192.168.10.201', 'b')", B),
                ("('192.168.10.202', 'c')", C),
            ]),
        );
        let cases: [(&str, u32, [u32; 2]); 10] = [
            ("moo.goo.org", 30635, [B, C]),
            ("stats.timers.foo", 62138, [C, B]),
            ("servers.main.cpu.load", 61693, [A, C]),
            ("servers.main-01.mem.free", 54004, [C, B]),
            ("statdtest.house.here", 22153, [B, C]),
            ("graphitetest.cow.now.test", 54409, [C, A]),
            ("a.b.c", 21823, [B, C]),
            ("foo.bar.baz", 63458, [C, B]),
            ("consthash.test", 33932, [C, B]),
            ("gorets", 51301, [B, A]),
        ];
        for (key, hash, want) in cases {
            assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{key}");
            assert_eq!(get_n(&ring, key, 2), want, "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(want[0]), "{key}");
        }
    }

    // ---- B: nodejs-hashring/statsd/40 ----------------------------------------------------------

    #[test]
    fn b_nodejs_hashring_statsd_40() {
        let ring = consthash_ring(
            &spec(HasherAlgo::NodejsHashring, Elter::Statsd, 40),
            &members(&[
                ("udp://192.168.59.103:8126", 8126),
                ("udp://192.168.59.103:8136", 8136),
                ("udp://192.168.59.103:8146", 8146),
            ]),
        );
        let cases: [(&str, u32, u32); 10] = [
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
        assert_eq!(ring.points(), 120);
        for (key, hash, port) in cases {
            assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
        }
    }

    // ---- C: defaults crc32/graphite/4 ----------------------------------------------------------

    const C_SERVERS: [(&str, u32); 3] = [
        ("tcp://127.0.0.1:6002", 6002),
        ("tcp://127.0.0.1:6003", 6003),
        ("tcp://127.0.0.1:6004", 6004),
    ];

    #[test]
    fn c_crc32_graphite_4_points() {
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 4), &members(&C_SERVERS));
        let want: [(u32, u32); 12] = [
            (589_492_717, 6004),
            (644_736_872, 6003),
            (665_816_415, 6002),
            (1_353_235_913, 6002),
            (1_365_956_606, 6003),
            (1_411_760_507, 6004),
            (3_123_421_271, 6004),
            (3_198_606_565, 6002),
            (3_211_048_658, 6003),
            (3_361_965_636, 6003),
            (3_382_832_243, 6002),
            (3_442_249_921, 6004),
        ];
        assert_eq!(ring.entries(), &want[..]);
    }

    #[test]
    fn c_crc32_graphite_4_lookups() {
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 4), &members(&C_SERVERS));
        let cases: [(&str, u32, [u32; 2]); 10] = [
            ("moo.goo.org", 3_731_202_008, [6004, 6003]),
            ("stats.timers.foo", 751_954_487, [6002, 6003]),
            ("servers.main.cpu.load", 3_566_746_813, [6004, 6003]),
            ("servers.main-01.mem.free", 3_583_155_234, [6004, 6003]),
            ("statdtest.house.here", 2_999_332_742, [6004, 6002]),
            ("graphitetest.cow.now.test", 883_034_031, [6002, 6003]),
            ("a.b.c", 3_060_946_797, [6004, 6002]),
            ("foo.bar.baz", 121_092_960, [6004, 6003]),
            ("consthash.test", 345_146_933, [6004, 6003]),
            ("gorets", 2_988_737_397, [6004, 6002]),
        ];
        for (key, hash, want) in cases {
            assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(want[0]), "{key}");
            assert_eq!(get_n(&ring, key, 2), want, "{key}");
        }
    }

    #[test]
    fn c_crc32_graphite_4_after_removing_6004() {
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 4), &members(&C_SERVERS[..2]));
        let cases = [
            ("moo.goo.org", 6003),
            ("stats.timers.foo", 6002),
            ("servers.main.cpu.load", 6003),
            ("a.b.c", 6002),
            ("gorets", 6002),
        ];
        for (key, port) in cases {
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
        }
    }

    // ---- D: mmh3, 4 vnodes ---------------------------------------------------------------------

    #[test]
    fn d_mmh3_4_goconsistent() {
        let ring = consthash_ring(&spec(HasherAlgo::Mmh3, Elter::GoConsistent, 4), &members(&C_SERVERS));
        let cases: [(&str, u32, u32); 10] = [
            ("moo.goo.org", 61_507_069, 6003),
            ("stats.timers.foo", 4_105_842_398, 6002),
            ("servers.main.cpu.load", 2_740_142_276, 6003),
            ("servers.main-01.mem.free", 333_847_472, 6004),
            ("statdtest.house.here", 2_166_470_390, 6003),
            ("graphitetest.cow.now.test", 1_622_306_513, 6002),
            ("a.b.c", 415_528_810, 6002),
            ("foo.bar.baz", 2_636_301_649, 6003),
            ("consthash.test", 4_086_010_806, 6002),
            ("gorets", 2_921_563_838, 6003),
        ];
        for (key, hash, port) in cases {
            assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
        }
    }

    #[test]
    fn d_mmh3_4_simple_falls_back_to_graphite() {
        let elter = Elter::parse("simple").unwrap_or(Elter::Graphite);
        assert_eq!(elter, Elter::Graphite);
        let ring = consthash_ring(&spec(HasherAlgo::Mmh3, elter, 4), &members(&C_SERVERS));
        let want = [6004, 6004, 6004, 6004, 6002, 6002, 6002, 6004, 6004, 6003];
        for (key, port) in K.iter().zip(want) {
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
        }
    }

    // ---- E: graphite elter, 40 vnodes ----------------------------------------------------------

    #[test]
    fn e_graphite_40_fnv_fnva_sha1() {
        let servers = members(&[
            ("udp://127.0.0.1:6080", 6080),
            ("udp://127.0.0.1:6081", 6081),
            ("udp://127.0.0.1:6082", 6082),
        ]);
        // key, then (hash, port) for fnv, fnva, sha1.
        let cases: [(&str, [(u32, u32); 3]); 10] = [
            (
                "moo.goo.org",
                [(1_782_716_283, 6082), (1_930_698_667, 6080), (22895, 6082)],
            ),
            (
                "stats.timers.foo",
                [(2_717_171_172, 6082), (3_472_169_910, 6080), (11857, 6081)],
            ),
            (
                "servers.main.cpu.load",
                [(3_369_741_030, 6080), (369_316_040, 6081), (20529, 6080)],
            ),
            (
                "servers.main-01.mem.free",
                [(2_395_636_251, 6082), (3_155_101_275, 6081), (29780, 6080)],
            ),
            (
                "statdtest.house.here",
                [(504_921_981, 6080), (3_284_814_113, 6082), (47369, 6081)],
            ),
            (
                "graphitetest.cow.now.test",
                [(843_084_962, 6081), (3_622_803_612, 6080), (61504, 6082)],
            ),
            ("a.b.c", [(3_705_500_287, 6080), (3_514_717_311, 6080), (25138, 6082)]),
            (
                "foo.bar.baz",
                [(3_045_365_595, 6082), (3_039_951_615, 6081), (64301, 6080)],
            ),
            (
                "consthash.test",
                [(3_769_518_252, 6080), (483_505_174, 6081), (12419, 6081)],
            ),
            ("gorets", [(2_268_872_479, 6082), (2_932_506_491, 6081), (12213, 6081)]),
        ];
        let algos = [HasherAlgo::Fnv1, HasherAlgo::Fnv1a, HasherAlgo::Sha1];
        for (col, algo) in algos.into_iter().enumerate() {
            let ring = consthash_ring(&spec(algo, Elter::Graphite, 40), &servers);
            for (key, row) in cases {
                let (hash, port) = row[col];
                assert_eq!(ring.position(key.as_bytes()), u64::from(hash), "{algo:?} {key}");
                assert_eq!(ring.get(key.as_bytes()), Some(port), "{algo:?} {key}");
            }
        }
    }

    // ---- F: mmh3/goconsistent/40 ---------------------------------------------------------------

    #[test]
    fn f_mmh3_goconsistent_40() {
        let ring = consthash_ring(&spec(HasherAlgo::Mmh3, Elter::GoConsistent, 40), &members(&C_SERVERS));
        let want = [6003, 6002, 6004, 6002, 6003, 6002, 6004, 6004, 6002, 6002];
        for (key, port) in K.iter().zip(want) {
            assert_eq!(ring.get(key.as_bytes()), Some(port), "{key}");
        }
    }

    // ---- edge cases ----------------------------------------------------------------------------

    #[test]
    fn empty_ring_has_no_destination() {
        let ring = consthash_ring(&tester_spec(), &[]);
        assert!(ring.is_empty());
        assert_eq!(ring.points(), 0);
        assert_eq!(ring.members(), 0);
        assert_eq!(ring.get(b"k"), None);
        let mut out = vec![7];
        ring.get_n(b"k", 3, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn zero_vnodes_means_one_point() {
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 0), &members(&C_SERVERS));
        assert_eq!(ring.points(), 3);
    }

    #[test]
    fn one_point_ring_and_n_clamping() {
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 1), &members(&[("only", 9)]));
        assert_eq!(get_n(&ring, "k", 1), vec![9]);
        assert_eq!(get_n(&ring, "k", 5), vec![9]);
        assert_eq!(get_n(&ring, "k", 0), Vec::<u32>::new());
        let ring = consthash_ring(&spec(HasherAlgo::Crc32, Elter::Graphite, 4), &members(&C_SERVERS));
        assert_eq!(get_n(&ring, "gorets", 10), vec![6004, 6002, 6003]);
    }

    #[test]
    fn get_n_does_not_reallocate_with_capacity() {
        let ring = consthash_ring(&tester_spec(), &members(&S));
        let mut out = Vec::with_capacity(3);
        let ptr = out.as_ptr();
        for (key, _, _) in T_WORDS {
            ring.get_n(key.as_bytes(), 3, &mut out);
            assert_eq!(out.len(), 3);
            assert_eq!(out.as_ptr(), ptr);
        }
    }

    // ---- properties ----------------------------------------------------------------------------

    fn any_spec() -> impl Strategy<Value = RingSpec> {
        let algo = prop::sample::select(vec![
            HasherAlgo::Crc32,
            HasherAlgo::Md5,
            HasherAlgo::Sha1,
            HasherAlgo::Fnv1,
            HasherAlgo::Fnv1a,
            HasherAlgo::NodejsHashring,
            HasherAlgo::Mmh3,
        ]);
        let elter = prop::sample::select(vec![Elter::Graphite, Elter::Statsd, Elter::GoConsistent]);
        (algo, elter, 0usize..40).prop_map(|(algo, elter, vnodes)| RingSpec::consthash(algo, elter, vnodes))
    }

    /// 1..8 members with distinct hashkeys; ids are their list positions.
    fn any_members() -> impl Strategy<Value = Vec<(String, u32)>> {
        prop::collection::btree_set("(udp://)?[a-z0-9.]{1,10}(:[0-9]{2,4})?", 1..8)
            .prop_map(|set| set.into_iter().zip(0u32..).collect())
    }

    fn any_keys() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[ -~]{0,30}", 1..60)
    }

    proptest! {
        #[test]
        fn prop_adding_a_member_moves_keys_only_to_it(
            spec in any_spec(),
            list in any_members(),
            keys in any_keys(),
        ) {
            let before = consthash_ring(&spec, &list);
            let mut grown = list.clone();
            let new_id = 1000;
            grown.push(("new.member:1234".to_string(), new_id));
            let after = consthash_ring(&spec, &grown);
            for key in &keys {
                let (b, a) = (before.get(key.as_bytes()), after.get(key.as_bytes()));
                prop_assert!(a == b || a == Some(new_id), "{key:?}: {b:?} -> {a:?}");
            }
        }

        #[test]
        fn prop_get_n_distinct_and_first_is_get(
            spec in any_spec(),
            list in any_members(),
            keys in any_keys(),
            n in 1usize..10,
        ) {
            let ring = consthash_ring(&spec, &list);
            let mut out = Vec::with_capacity(n);
            for key in &keys {
                ring.get_n(key.as_bytes(), n, &mut out);
                prop_assert_eq!(out.first().copied(), ring.get(key.as_bytes()));
                let mut sorted = out.clone();
                sorted.sort_unstable();
                sorted.dedup();
                prop_assert_eq!(sorted.len(), out.len(), "duplicates in {:?}", &out);
                prop_assert!(out.len() <= n.min(ring.members()));
                // Every member that owns a point is reachable within a full turn.
                let owners = {
                    let mut ids: Vec<u32> = ring.entries().iter().map(|&(_, id)| id).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    ids.len()
                };
                prop_assert_eq!(out.len(), n.min(owners));
            }
        }

        #[test]
        fn prop_rebuild_after_removal_equals_fresh_build(
            spec in any_spec(),
            list in any_members(),
            keys in any_keys(),
            pick in any::<prop::sample::Index>(),
        ) {
            let full = consthash_ring(&spec, &list);
            let k = pick.index(list.len());
            let removed_id = list[k].1;
            let mut rest = list.clone();
            rest.remove(k);
            let rebuilt = consthash_ring(&spec, &rest);
            // A fresh start with the reduced list, built independently, is identical.
            let fresh_list: Vec<(String, u32)> =
                list.iter().filter(|&&(_, id)| id != removed_id).cloned().collect();
            prop_assert_eq!(&rebuilt, &consthash_ring(&spec, &fresh_list));
            // Keys not on the removed member stay where they were.
            for key in &keys {
                let before = full.get(key.as_bytes());
                if before != Some(removed_id) {
                    prop_assert_eq!(rebuilt.get(key.as_bytes()), before, "{:?}", key);
                }
            }
            // Putting it back in its config position restores the original ring.
            rest.insert(k, list[k].clone());
            prop_assert_eq!(&consthash_ring(&spec, &rest), &full);
        }
    }
}
