//! The ring that the consthash family, c-relay's `carbon_ch`/`fnv1a_ch` and statsd's hashring share: a sorted list
//! of `(position, member id)` entries, the owner of a position, and the walk that collects the next distinct
//! members clockwise. Rings differ only in how a key and a member's points are hashed ([`KeyHash`]), in how the
//! entries are built (one file each), and in whether a key exactly on a point belongs to that point
//! ([`Owner::AtOrAfter`], c-relay and node hashring) or to the next one ([`Owner::After`], consthash).

use super::crelay::CRelayHash;
use super::hash::md5_le32;
use super::HasherAlgo;

/// Which entry owns a position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The first entry strictly after the position (consthash).
    After,
    /// The first entry at or after the position (carbon-c-relay, node hashring).
    AtOrAfter,
}

/// Entries sorted by position; both lookups wrap to the first entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Points {
    entries: Vec<(u32, u32)>,
    owner: Owner,
    /// Distinct member ids the ring was built from (the cap of `get_n`).
    members: usize,
}

impl Points {
    /// `entries` must be sorted by position.
    pub fn new(entries: Vec<(u32, u32)>, owner: Owner, members: usize) -> Points {
        debug_assert!(
            entries.windows(2).all(|w| w[0].0 <= w[1].0),
            "entries sorted by position"
        );
        Points {
            entries,
            owner,
            members,
        }
    }

    #[inline]
    fn start(&self, pos: u32) -> usize {
        let idx = match self.owner {
            Owner::After => self.entries.partition_point(|&(p, _)| p <= pos),
            Owner::AtOrAfter => self.entries.partition_point(|&(p, _)| p < pos),
        };
        if idx == self.entries.len() {
            0
        } else {
            idx
        }
    }

    /// The member owning `pos`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, pos: u32) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        Some(self.entries[self.start(pos)].1)
    }

    /// Fills `out` (cleared first) with `min(n, members)` distinct ids: the owner of `pos`, then the next distinct
    /// owners clockwise, stopping after a full turn. Does not allocate when `out` has the capacity.
    pub fn get_n(&self, pos: u32, n: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = n.min(self.members);
        if n == 0 || self.entries.is_empty() {
            return;
        }
        let (after, before) = self.entries.split_at(self.start(pos));
        for &(_, id) in before.iter().chain(after) {
            if !out.contains(&id) {
                out.push(id);
                if out.len() == n {
                    return;
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn members(&self) -> usize {
        self.members
    }

    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }
}

/// The number of distinct ids in a member list.
pub fn distinct_ids(members: &[(String, u32)]) -> usize {
    let mut ids: Vec<u32> = members.iter().map(|&(_, id)| id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

/// How a point ring places a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyHash {
    /// The consthash family's hasher (spec §7.2).
    Consthash(HasherAlgo),
    /// c-relay's 16-bit positions.
    CRelay(CRelayHash),
    /// statsd hashring: the little-endian first 4 bytes of MD5.
    Md5Le32,
}

impl KeyHash {
    #[inline]
    pub fn position(self, key: &[u8]) -> u32 {
        match self {
            KeyHash::Consthash(algo) => algo.hash(key),
            KeyHash::CRelay(h) => h.position(key),
            KeyHash::Md5Le32 => md5_le32(key),
        }
    }
}

/// An immutable point ring: how keys hash, and the points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PointRing {
    hash: KeyHash,
    points: Points,
}

impl PointRing {
    pub fn new(hash: KeyHash, points: Points) -> PointRing {
        PointRing { hash, points }
    }

    /// The id of the member owning `key`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.points.get(self.hash.position(key))
    }

    /// Fills `out` (cleared first) with `min(n, members)` distinct ids: the owner of `key`, then the next distinct
    /// owners clockwise, stopping after a full turn.
    #[inline]
    pub fn get_n(&self, key: &[u8], n: usize, out: &mut Vec<u32>) {
        self.points.get_n(self.hash.position(key), n, out)
    }

    /// The key's position on the ring.
    pub fn position(&self, key: &[u8]) -> u64 {
        u64::from(self.hash.position(key))
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The number of entries.
    pub fn points(&self) -> usize {
        self.points.len()
    }

    /// The number of distinct member ids the ring was built from.
    pub fn members(&self) -> usize {
        self.points.members()
    }

    /// `(position, member id)` per entry, in ring order.
    pub fn entries(&self) -> &[(u32, u32)] {
        self.points.entries()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_rule_decides_exact_hits_and_both_wrap() {
        let entries = vec![(10, 0), (20, 1), (30, 2)];
        let after = Points::new(entries.clone(), Owner::After, 3);
        let at = Points::new(entries, Owner::AtOrAfter, 3);
        assert_eq!((after.get(20), at.get(20)), (Some(2), Some(1)));
        assert_eq!((after.get(15), at.get(15)), (Some(1), Some(1)));
        assert_eq!((after.get(30), at.get(31)), (Some(0), Some(0)), "wrap");
        let mut out = Vec::new();
        at.get_n(25, 5, &mut out);
        assert_eq!(out, [2, 0, 1], "capped at the members, clockwise");
        assert_eq!(Points::new(Vec::new(), Owner::After, 0).get(1), None);
    }
}
