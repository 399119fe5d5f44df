//! Consistent-hash rings: which destination(s) a key goes to.
//!
//! A ring maps a key (the splitter key of a line) to one member, or to `n` distinct members for
//! replication. Members are handed to the ring as an **ordered** list of `(hashkey, id)`: the
//! hashkey is the ring identity that is hashed into points (spec §7.5), the id is an opaque small
//! integer the caller uses to find the destination; the ring never interprets it.
//!
//! Invariants:
//! - A ring is an immutable snapshot. Nothing mutates it after [`Ring::new`]; readers share it
//!   (behind an `ArcSwap`) without locks.
//! - A membership change (health, admin API) builds a new ring from the new ordered member list.
//!   The result therefore equals a fresh start with that list: no history, no hidden state.
//! - Lookups are deterministic functions of the key and the snapshot, and do not allocate when the
//!   caller's output vector has capacity.
//!
//! Kinds ([`RingKind`], one file each): the consthash family ([`consthash_ring`]: every [`HasherAlgo`] ×
//! [`Elter`] × vnodes, spec §7.1–§7.3) and the exact peer rings of spec §7.4: [`CarbonRing`] (carbon's
//! `carbon_ch`), carbon-c-relay's `carbon_ch` and `fnv1a_ch` ([`crelay_ring`]), [`JumpRing`] (c-relay's
//! `jump_fnv1a_ch`) and statsd proxy.js's hashring ([`statsd_hashring`]). The consthash, c-relay and hashring
//! kinds differ only in how they build their sorted points: they share one [`PointRing`] (`points.rs`).
//! Peer rings take their members' hashkeys in the peer's own syntax (spec §7.5,
//! [`validate_hashkey`]) and are checked against golden vectors produced by the real programs
//! (`tests/data/golden/`, `golden_tests.rs`).

mod carbon;
mod consthash;
mod crelay;
#[cfg(test)]
mod golden_tests;
pub mod hash;
mod hashring;
mod jump;
pub mod member;
mod points;

use std::borrow::Cow;
use std::fmt::Write as _;

pub use carbon::CarbonRing;
pub use consthash::consthash_ring;
pub use crelay::{crelay_ring, CRelayHash};
pub use hashring::statsd_hashring;
pub use jump::JumpRing;
pub use member::{default_hashkey, validate_hashkey};
pub use points::{KeyHash, PointRing};

/// Which ring a section uses (`hasher_algo`): the consthash family or one exact peer ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RingKind {
    /// The consthash family; [`RingSpec::algo`], `elter` and `vnodes` apply.
    #[default]
    ConstHash,
    /// graphite carbon's ring and router (`carbon_ch`); `diverse_replicas` is carbon's
    /// DIVERSE_REPLICAS.
    CarbonCh { diverse_replicas: bool },
    /// carbon-c-relay's `carbon_ch` (`carbon_ch_c_relay`).
    CarbonChCRelay,
    /// carbon-c-relay's `fnv1a_ch`.
    Fnv1aCh,
    /// carbon-c-relay's `jump_fnv1a_ch`.
    JumpFnv1aCh,
    /// statsd proxy.js's npm hashring (`statsd_hashring`).
    StatsdHashring,
}

impl RingKind {
    /// The peer ring for a `hasher_algo` name, or `None` for any other name (a consthash-family
    /// hasher, or unknown). `carbon_ch` gets carbon's default `diverse_replicas = true`.
    pub fn parse(name: &str) -> Option<RingKind> {
        Some(match name {
            "carbon_ch" => RingKind::CarbonCh { diverse_replicas: true },
            "carbon_ch_c_relay" => RingKind::CarbonChCRelay,
            "fnv1a_ch" => RingKind::Fnv1aCh,
            "jump_fnv1a_ch" => RingKind::JumpFnv1aCh,
            "statsd_hashring" => RingKind::StatsdHashring,
            _ => return None,
        })
    }

    /// The `hasher_algo` name (`consthash` for the family).
    pub fn name(&self) -> &'static str {
        match self {
            RingKind::ConstHash => "consthash",
            RingKind::CarbonCh { .. } => "carbon_ch",
            RingKind::CarbonChCRelay => "carbon_ch_c_relay",
            RingKind::Fnv1aCh => "fnv1a_ch",
            RingKind::JumpFnv1aCh => "jump_fnv1a_ch",
            RingKind::StatsdHashring => "statsd_hashring",
        }
    }

    /// True for the exact peer rings.
    pub fn is_peer(&self) -> bool {
        !matches!(self, RingKind::ConstHash)
    }
}

/// A hash function of the consthash ring family (`hasher_algo`, spec §7.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HasherAlgo {
    /// CRC-32/IEEE (`crc`, `crc32`); the default and the fallback for unknown names.
    Crc32,
    /// First 2 bytes of MD5, big-endian (`md5`, `graphite`).
    Md5,
    /// First 2 bytes of SHA-1, big-endian (`sha1`).
    Sha1,
    /// FNV-1 32-bit (`fnv`, `fnv32`).
    Fnv1,
    /// FNV-1a 32-bit (`fnva`, `fnv32a`).
    Fnv1a,
    /// MD5 bytes 0..4 little-endian (`statsd`, `nodejs-hashring`).
    NodejsHashring,
    /// MurmurHash3 x86_32, seed 0 (`mmh`, `mmh3`, `mmh32`).
    Mmh3,
}

impl HasherAlgo {
    /// The algorithm for a config name, or `None` for an unknown name (the caller falls back to
    /// `Crc32` with a warning).
    pub fn parse(name: &str) -> Option<HasherAlgo> {
        Some(match name {
            "crc" | "crc32" => HasherAlgo::Crc32,
            "md5" | "graphite" => HasherAlgo::Md5,
            "sha1" => HasherAlgo::Sha1,
            "fnv" | "fnv32" => HasherAlgo::Fnv1,
            "fnva" | "fnv32a" => HasherAlgo::Fnv1a,
            "statsd" | "nodejs-hashring" => HasherAlgo::NodejsHashring,
            "mmh" | "mmh3" | "mmh32" => HasherAlgo::Mmh3,
            _ => return None,
        })
    }
}

/// How a member's point strings are formed (`hasher_elter`, spec §7.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Elter {
    /// `clean(m) + ":" + i` (`graphite`; the default and the fallback, incl. `simple`).
    Graphite,
    /// `clean(m) + "-" + i` (`statsd`).
    Statsd,
    /// `i + m`, no cleaning (`consistent`, `goconsistent`).
    GoConsistent,
}

impl Elter {
    /// The elter for a config name, or `None` for an unknown name (the caller falls back to
    /// `Graphite` with a warning; `simple` is such a name).
    pub fn parse(name: &str) -> Option<Elter> {
        Some(match name {
            "graphite" => Elter::Graphite,
            "statsd" => Elter::Statsd,
            "consistent" | "goconsistent" => Elter::GoConsistent,
            _ => return None,
        })
    }

    /// Writes the point string of `member`'s `i`-th vnode into `out` (cleared first), spec §7.3.
    pub fn point(&self, member: &str, i: usize, out: &mut String) {
        out.clear();
        let sep = match self {
            Elter::Graphite => ':',
            Elter::Statsd => '-',
            Elter::GoConsistent => {
                write!(out, "{i}{member}").expect("writing to a String cannot fail");
                return;
            }
        };
        write!(out, "{}{sep}{i}", clean(member)).expect("writing to a String cannot fail");
    }
}

/// Removes every occurrence of `udp://`, `tcp://` and `http://` (in that order; `https://` stays).
pub fn clean(s: &str) -> Cow<'_, str> {
    if !s.contains("://") {
        return Cow::Borrowed(s);
    }
    Cow::Owned(s.replace("udp://", "").replace("tcp://", "").replace("http://", ""))
}

/// Everything a ring needs besides its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpec {
    /// Consthash family only.
    pub algo: HasherAlgo,
    /// Consthash family only.
    pub elter: Elter,
    /// Points per member; non-positive values are treated as 1 by the ring. Consthash family only.
    pub vnodes: usize,
    /// Which ring to build.
    pub kind: RingKind,
}

impl RingSpec {
    /// A consthash-family spec.
    pub fn consthash(algo: HasherAlgo, elter: Elter, vnodes: usize) -> RingSpec {
        RingSpec {
            algo,
            elter,
            vnodes,
            kind: RingKind::ConstHash,
        }
    }

    /// A peer-ring spec (the consthash fields hold their defaults and are unused).
    pub fn peer(kind: RingKind) -> RingSpec {
        RingSpec {
            algo: HasherAlgo::Crc32,
            elter: Elter::Graphite,
            vnodes: 4,
            kind,
        }
    }
}

/// A built ring of any kind. Immutable; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ring {
    /// The consthash family (spec §7.1), c-relay's `carbon_ch` / `fnv1a_ch`, statsd proxy.js's hashring.
    Points(PointRing),
    /// carbon's `carbon_ch`.
    Carbon(CarbonRing),
    /// carbon-c-relay's `jump_fnv1a_ch`.
    Jump(JumpRing),
}

/// Calls `$body` with the ring of whichever variant `$ring` is.
macro_rules! each_ring {
    ($ring:expr, $r:ident => $body:expr) => {
        match $ring {
            Ring::Points($r) => $body,
            Ring::Carbon($r) => $body,
            Ring::Jump($r) => $body,
        }
    };
}

impl Ring {
    /// Builds the ring for `spec` from the ordered member list `(hashkey, id)`. Peer rings expect
    /// hashkeys valid for their kind ([`validate_hashkey`]).
    pub fn new(spec: &RingSpec, members: &[(String, u32)]) -> Ring {
        match spec.kind {
            RingKind::ConstHash => Ring::Points(consthash_ring(spec, members)),
            RingKind::CarbonCh { diverse_replicas } => Ring::Carbon(CarbonRing::new(members, diverse_replicas)),
            RingKind::CarbonChCRelay => Ring::Points(crelay_ring(CRelayHash::Carbon, members)),
            RingKind::Fnv1aCh => Ring::Points(crelay_ring(CRelayHash::Fnv1a, members)),
            RingKind::JumpFnv1aCh => Ring::Jump(JumpRing::new(members)),
            RingKind::StatsdHashring => Ring::Points(statsd_hashring(members)),
        }
    }

    /// The id of the member owning `key`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        each_ring!(self, r => r.get(key))
    }

    /// Fills `out` (cleared first) with up to `n` distinct member ids for `key`, the owner first.
    /// Does not allocate when `out` has capacity for `n` ids.
    #[inline]
    pub fn get_n(&self, key: &[u8], n: usize, out: &mut Vec<u32>) {
        each_ring!(self, r => r.get_n(key, n, out))
    }

    /// The key's position on the ring, for introspection (`/hashcheck`, spec §7.6).
    pub fn position(&self, key: &[u8]) -> u64 {
        each_ring!(self, r => r.position(key))
    }

    /// True when the ring has no points (every lookup yields no destination).
    pub fn is_empty(&self) -> bool {
        each_ring!(self, r => r.is_empty())
    }

    /// The number of points on the ring (distinct points for the consthash family; entries for
    /// the peer rings, buckets for jump).
    pub fn points(&self) -> usize {
        each_ring!(self, r => r.points())
    }

    /// The number of distinct member ids the ring was built from.
    pub fn members(&self) -> usize {
        each_ring!(self, r => r.members())
    }
}

/// Helpers shared by the ring tests.
#[cfg(test)]
pub(crate) mod tests_common {
    /// Spec §7.7 keys K.
    pub const K: [&str; 10] = [
        "moo.goo.org",
        "stats.timers.foo",
        "servers.main.cpu.load",
        "servers.main-01.mem.free",
        "statdtest.house.here",
        "graphitetest.cow.now.test",
        "a.b.c",
        "foo.bar.baz",
        "consthash.test",
        "gorets",
    ];

    pub fn members(list: &[(&str, u32)]) -> Vec<(String, u32)> {
        list.iter().map(|&(k, id)| (k.to_string(), id)).collect()
    }

    /// Runs a `get_n`-shaped lookup into a fresh vector.
    pub fn get_n(f: impl Fn(&[u8], usize, &mut Vec<u32>), key: &str, n: usize) -> Vec<u32> {
        let mut out = Vec::new();
        f(key.as_bytes(), n, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elter_points() {
        let cases = [
            (Elter::Graphite, "udp://10.0.0.1:8126", 7, "10.0.0.1:8126:7"),
            (Elter::Statsd, "udp://10.0.0.1:8126", 7, "10.0.0.1:8126-7"),
            (Elter::GoConsistent, "udp://10.0.0.1:8126", 7, "7udp://10.0.0.1:8126"),
            (Elter::Graphite, "tcp://127.0.0.1:6002", 0, "127.0.0.1:6002:0"),
            (Elter::Graphite, "http://h:80", 12, "h:80:12"),
            (Elter::Graphite, "https://h:443", 1, "https://h:443:1"),
            (Elter::Statsd, "s1", 99, "s1-99"),
            (Elter::GoConsistent, "s1", 10, "10s1"),
            (
                Elter::Graphite,
                "('192.168.10.200', 'a')",
                3,
                "('192.168.10.200', 'a'):3",
            ),
        ];
        let mut out = String::from("stale");
        for (elter, member, i, want) in cases {
            elter.point(member, i, &mut out);
            assert_eq!(out, want, "{elter:?} {member} {i}");
        }
    }

    #[test]
    fn clean_removes_every_occurrence() {
        let cases = [
            ("udp://a", "a"),
            ("tcp://a", "a"),
            ("http://a", "a"),
            ("https://a", "https://a"),
            ("udp://a,udp://b,tcp://c", "a,b,c"),
            ("plain", "plain"),
            ("", ""),
        ];
        for (input, want) in cases {
            assert_eq!(clean(input), want, "{input}");
        }
    }

    #[test]
    fn ring_delegates() {
        let spec = RingSpec::consthash(HasherAlgo::Crc32, Elter::Graphite, 4);
        let empty = Ring::new(&spec, &[]);
        assert!(empty.is_empty());
        assert_eq!(empty.get(b"k"), None);
        let members = vec![("a".to_string(), 1), ("b".to_string(), 2)];
        let ring = Ring::new(&spec, &members);
        assert!(!ring.is_empty());
        assert_eq!(ring.points(), 8);
        assert_eq!(ring.members(), 2);
        assert_eq!(ring.position(b"MOOOOGOOOO234"), 419_017_553);
        let mut out = Vec::with_capacity(2);
        ring.get_n(b"k", 2, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(Some(out[0]), ring.get(b"k"));
    }

    #[test]
    fn ring_kind_names() {
        for name in [
            "carbon_ch",
            "carbon_ch_c_relay",
            "fnv1a_ch",
            "jump_fnv1a_ch",
            "statsd_hashring",
        ] {
            let kind = RingKind::parse(name).unwrap();
            assert_eq!(kind.name(), name);
            assert!(kind.is_peer());
        }
        assert_eq!(
            RingKind::parse("carbon_ch"),
            Some(RingKind::CarbonCh { diverse_replicas: true })
        );
        assert_eq!(RingKind::parse("md5"), None);
        assert!(!RingKind::ConstHash.is_peer());
    }

    #[test]
    fn every_kind_behind_ring() {
        let members = tests_common::members(&[("10.0.0.1:2003", 1), ("10.0.0.2:2004", 2), ("10.0.0.3:2005", 3)]);
        let kinds = [
            RingKind::CarbonCh { diverse_replicas: true },
            RingKind::CarbonChCRelay,
            RingKind::Fnv1aCh,
            RingKind::JumpFnv1aCh,
            RingKind::StatsdHashring,
        ];
        for kind in kinds {
            let ring = Ring::new(&RingSpec::peer(kind), &members);
            assert_eq!(ring.members(), 3, "{kind:?}");
            let mut out = Vec::with_capacity(3);
            let ptr = out.as_ptr();
            for key in tests_common::K {
                ring.get_n(key.as_bytes(), 3, &mut out);
                assert_eq!(out.len(), 3, "{kind:?} {key}");
                assert_eq!(Some(out[0]), ring.get(key.as_bytes()), "{kind:?} {key}");
                assert_eq!(out.as_ptr(), ptr, "{kind:?} reallocated");
            }
            let empty = Ring::new(&RingSpec::peer(kind), &[]);
            assert!(empty.is_empty());
            assert_eq!(empty.get(b"k"), None);
            empty.get_n(b"k", 2, &mut out);
            assert!(out.is_empty());
        }
    }
}
