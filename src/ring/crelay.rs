//! carbon-c-relay's `carbon_ch` and `fnv1a_ch` rings (c-relay 3.x), spec §7.4.
//!
//! Every member gets 100 entries with a 16-bit position:
//! * `carbon_ch`: MD5 of `"('<host>', '<instance>'):<i>"` (or `None`), first 2 bytes big-endian;
//! * `fnv1a_ch`: FNV-1a-32 of `"<i>-<host>:<port>"`, or `"<i>-<instance>"` when the member has an
//!   instance, folded as `(h >> 16) ^ (h & 0xffff)`; c-relay feeds bytes sign-extended.
//!
//! No collision bump: entries are sorted by position, then host (byte order), then instance
//! (`carbon_ch`; members without one after those with) or port (`fnv1a_ch`); among entries with
//! equal position every entry takes the member of the first one. A key belongs to the first entry
//! at or after its position (wrapping); replicas are the next distinct members clockwise.

use std::cmp::Ordering;
use std::fmt::Write as _;

use super::hash::{fnv1a_32_by, md5_16};
use super::member::{parse_crelay, CRelayMember};
use super::points::{distinct_ids, KeyHash, Owner, PointRing, Points};

/// Entries per member, hardwired in c-relay (after carbon).
const REPLICAS: usize = 100;

/// Which of c-relay's two 16-bit rings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CRelayHash {
    /// `carbon_ch`: carbon's MD5 positions.
    Carbon,
    /// `fnv1a_ch`: folded FNV-1a-32 positions.
    Fnv1a,
}

impl CRelayHash {
    /// The 16-bit position of `bytes`.
    #[inline]
    pub fn position(self, bytes: &[u8]) -> u32 {
        match self {
            CRelayHash::Carbon => md5_16(bytes),
            CRelayHash::Fnv1a => {
                let h = fnv1a_32_by(bytes, sign_extend_32);
                (h >> 16) ^ (h & 0xffff)
            }
        }
    }
}

/// A byte as c-relay feeds it to FNV on amd64, where `char` is signed.
#[inline]
pub(crate) fn sign_extend_32(b: u8) -> u32 {
    b as i8 as i32 as u32
}

/// The c-relay `carbon_ch` / `fnv1a_ch` ring over the ordered members `(hashkey, id)`; hashkeys are c-relay
/// members `host[:port][=instance]` (validated by the config; an unparsable one is used whole as the host, port
/// 2003). Equal positions are kept; a key at a position belongs to it.
pub fn crelay_ring(hash: CRelayHash, members: &[(String, u32)]) -> PointRing {
    let parsed: Vec<(CRelayMember<'_>, u32)> = members
        .iter()
        .map(|(key, id)| {
            let m = parse_crelay(key).unwrap_or(CRelayMember {
                host: key,
                port: super::member::CRELAY_DEFAULT_PORT,
                instance: None,
            });
            (m, *id)
        })
        .collect();
    // (position, member index) in insertion order; the stable sort keeps it for full ties.
    let mut raw: Vec<(u32, usize)> = Vec::with_capacity(parsed.len() * REPLICAS);
    let mut buf = String::new();
    for (mi, (m, _)) in parsed.iter().enumerate() {
        for i in 0..REPLICAS {
            buf.clear();
            match (hash, m.instance) {
                (CRelayHash::Carbon, Some(inst)) => write!(buf, "('{}', '{inst}'):{i}", m.host),
                (CRelayHash::Carbon, None) => write!(buf, "('{}', None):{i}", m.host),
                (CRelayHash::Fnv1a, Some(inst)) => write!(buf, "{i}-{inst}"),
                (CRelayHash::Fnv1a, None) => write!(buf, "{i}-{}:{}", m.host, m.port),
            }
            .expect("writing to a String cannot fail");
            raw.push((hash.position(buf.as_bytes()), mi));
        }
    }
    raw.sort_by(|&(pa, a), &(pb, b)| {
        pa.cmp(&pb).then_with(|| {
            let (ma, mb) = (&parsed[a].0, &parsed[b].0);
            ma.host.as_bytes().cmp(mb.host.as_bytes()).then_with(|| match hash {
                CRelayHash::Carbon => match (ma.instance, mb.instance) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Greater,
                    (Some(_), None) => Ordering::Less,
                    (Some(x), Some(y)) => x.as_bytes().cmp(y.as_bytes()),
                },
                CRelayHash::Fnv1a => ma.port.cmp(&mb.port),
            })
        })
    });
    let mut entries: Vec<(u32, u32)> = Vec::with_capacity(raw.len());
    for (pos, mi) in raw {
        let id = match entries.last() {
            Some(&(p, prev)) if p == pos => prev,
            _ => parsed[mi].1,
        };
        entries.push((pos, id));
    }
    PointRing::new(
        KeyHash::CRelay(hash),
        Points::new(entries, Owner::AtOrAfter, distinct_ids(members)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests_common::{get_n, members, K};

    #[test]
    fn c_relay_carbon_ch_matches_carbon_without_collisions() {
        // Vector A's members have no equal positions, so c-relay agrees with carbon there.
        let ring = crelay_ring(
            CRelayHash::Carbon,
            &members(&[
                ("192.168.10.200=a", 0),
                ("192.168.10.201=b", 1),
                ("192.168.10.202=c", 2),
            ]),
        );
        let want = [
            [1, 2],
            [2, 1],
            [0, 2],
            [2, 1],
            [1, 2],
            [2, 0],
            [1, 2],
            [2, 1],
            [2, 1],
            [1, 0],
        ];
        for (key, want) in K.iter().zip(want) {
            assert_eq!(get_n(|k, n, o| ring.get_n(k, n, o), key, 2), want, "{key}");
        }
        assert_eq!(ring.position(b"moo.goo.org"), 30635);
    }

    #[test]
    fn fnv1a_position_sign_extends() {
        // (h >> 16) ^ (h & 0xffff) of FNV-1a("a") = 0xe40c292c.
        assert_eq!(CRelayHash::Fnv1a.position(b"a"), 0xe40c ^ 0x292c);
        let plain = super::super::hash::fnv1a_32(b"\xe9");
        let signed = fnv1a_32_by(b"\xe9", sign_extend_32);
        assert_ne!(plain, signed);
        assert_eq!(
            signed,
            (super::super::hash::FNV32_OFFSET ^ 0xffff_ffe9).wrapping_mul(16_777_619)
        );
    }

    #[test]
    fn equal_positions_take_the_first_member() {
        let ring = crelay_ring(
            CRelayHash::Fnv1a,
            &members(&[("10.0.0.2:2003=x", 2), ("10.0.0.1:2003=x", 1)]),
        );
        // Same instance: identical positions; 10.0.0.1 sorts first and owns every entry.
        assert_eq!(ring.points(), 200);
        assert!(ring.entries().iter().all(|&(_, id)| id == 1));
        assert_eq!(get_n(|k, n, o| ring.get_n(k, n, o), "k", 2), vec![1]);
    }
}
