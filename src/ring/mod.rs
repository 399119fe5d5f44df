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
//! Kinds: [`ConsthashRing`] (the consthash family: every [`HasherAlgo`] × [`Elter`] × vnodes,
//! spec §7.1–§7.3). The exact peer rings of spec §7.4 (carbon_ch, fnv1a_ch, jump_fnv1a_ch,
//! statsd_hashring) join [`Ring`] as further variants.

mod consthash;
pub mod hash;

use std::borrow::Cow;
use std::fmt::Write as _;

pub use consthash::ConsthashRing;

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
    pub algo: HasherAlgo,
    pub elter: Elter,
    /// Points per member; non-positive values are treated as 1 by the ring.
    pub vnodes: usize,
}

/// A built ring of any kind. Immutable; see the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ring {
    /// The consthash family (spec §7.1).
    ConstHash(ConsthashRing),
}

impl Ring {
    /// Builds the ring for `spec` from the ordered member list `(hashkey, id)`.
    pub fn new(spec: &RingSpec, members: &[(String, u32)]) -> Ring {
        Ring::ConstHash(ConsthashRing::new(spec, members))
    }

    /// The id of the member owning `key`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        match self {
            Ring::ConstHash(r) => r.get(key),
        }
    }

    /// Fills `out` (cleared first) with up to `n` distinct member ids for `key`, the owner first.
    /// Does not allocate when `out` has capacity for `n` ids.
    #[inline]
    pub fn get_n(&self, key: &[u8], n: usize, out: &mut Vec<u32>) {
        match self {
            Ring::ConstHash(r) => r.get_n(key, n, out),
        }
    }

    /// The key's position on the ring, for introspection (`/hashcheck`, spec §7.6).
    pub fn position(&self, key: &[u8]) -> u64 {
        match self {
            Ring::ConstHash(r) => r.position(key),
        }
    }

    /// True when the ring has no points (every lookup yields no destination).
    pub fn is_empty(&self) -> bool {
        match self {
            Ring::ConstHash(r) => r.is_empty(),
        }
    }

    /// The number of distinct points on the ring.
    pub fn points(&self) -> usize {
        match self {
            Ring::ConstHash(r) => r.points(),
        }
    }

    /// The number of distinct member ids the ring was built from.
    pub fn members(&self) -> usize {
        match self {
            Ring::ConstHash(r) => r.members(),
        }
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
        let spec = RingSpec {
            algo: HasherAlgo::Crc32,
            elter: Elter::Graphite,
            vnodes: 4,
        };
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
}
