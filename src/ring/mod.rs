//! Consistent-hash rings: which destination(s) a key goes to.

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
}

/// Everything a ring needs besides its members.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingSpec {
    pub algo: HasherAlgo,
    pub elter: Elter,
    /// Points per member; non-positive values are treated as 1 by the ring.
    pub vnodes: usize,
}
