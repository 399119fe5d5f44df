//! `carbon_ch`: graphite carbon's `ConsistentHashRing` with its `ConsistentHashingRouter`
//! (carbon 1.1.x), spec §7.4.
//!
//! Each node `(host, instance)` gets 100 entries at the 16-bit MD5 position of
//! `"('<host>', '<instance>'):<i>"` (`None` unquoted without an instance). Nodes are added in
//! member order and an entry whose position is already taken moves up by one until it is free (no
//! wrap, so positions may exceed 65535). A key belongs to the first entry at or after its
//! position. Replicas walk on from there, but never reach the entry just before the start (as
//! carbon's `get_nodes`); with `diverse_replicas` a node on an already chosen host is skipped.

use std::collections::HashSet;
use std::fmt::Write as _;

use super::hash::md5_16;
use super::member::parse_carbon;

/// Entries per node, hardwired in carbon.
const REPLICAS: usize = 100;

/// An immutable carbon ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarbonRing {
    /// `(position, node index)`, sorted by position; positions distinct.
    entries: Vec<(u32, u32)>,
    /// Per node: `(member id, host index)`; hosts are numbered by first appearance.
    nodes: Vec<(u32, u32)>,
    diverse_replicas: bool,
}

impl CarbonRing {
    /// Builds the ring from the ordered members `(hashkey, id)`. Hashkeys are carbon
    /// `DESTINATIONS` entries (validated by the config); an unparsable one is used whole as the
    /// host. A second member with the same `(host, instance)` is ignored (carbon refuses it).
    pub fn new(members: &[(String, u32)], diverse_replicas: bool) -> CarbonRing {
        let mut hosts: Vec<&str> = Vec::new();
        let mut seen_nodes: Vec<(&str, Option<&str>)> = Vec::new();
        let mut nodes = Vec::new();
        let mut entries: Vec<(u32, u32)> = Vec::with_capacity(members.len() * REPLICAS);
        let mut taken = HashSet::with_capacity(members.len() * REPLICAS);
        let mut buf = String::new();
        for (hashkey, id) in members {
            let (host, instance) = match parse_carbon(hashkey) {
                Ok(m) => (m.host, m.instance),
                Err(_) => (hashkey.as_str(), None),
            };
            if seen_nodes.contains(&(host, instance)) {
                continue;
            }
            seen_nodes.push((host, instance));
            let host_idx = match hosts.iter().position(|h| *h == host) {
                Some(i) => i,
                None => {
                    hosts.push(host);
                    hosts.len() - 1
                }
            };
            let node = nodes.len() as u32;
            nodes.push((*id, host_idx as u32));
            for i in 0..REPLICAS {
                buf.clear();
                match instance {
                    Some(inst) => write!(buf, "('{host}', '{inst}'):{i}"),
                    None => write!(buf, "('{host}', None):{i}"),
                }
                .expect("writing to a String cannot fail");
                let mut pos = md5_16(buf.as_bytes());
                while !taken.insert(pos) {
                    pos += 1;
                }
                entries.push((pos, node));
            }
        }
        entries.sort_unstable();
        CarbonRing {
            entries,
            nodes,
            diverse_replicas,
        }
    }

    /// Index of the first entry with position >= `pos`, wrapping to 0 (Python's `bisect_left`).
    #[inline]
    fn start(&self, pos: u32) -> usize {
        let idx = self.entries.partition_point(|&(p, _)| p < pos);
        if idx == self.entries.len() {
            0
        } else {
            idx
        }
    }

    /// The id of the node owning `key`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        if self.entries.is_empty() {
            return None;
        }
        let node = self.entries[self.start(md5_16(key))].1;
        Some(self.nodes[node as usize].0)
    }

    /// Fills `out` (cleared first) with up to `n` ids as carbon's router yields them.
    pub fn get_n(&self, key: &[u8], n: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = n.min(self.nodes.len());
        if n == 0 {
            return;
        }
        let len = self.entries.len();
        let start = self.start(md5_16(key));
        // carbon stops at the entry just before the start: at most len - 1 entries are visited
        // (a one-node ring still yields its node: carbon special-cases it).
        let visits = if self.nodes.len() == 1 { len } else { len - 1 };
        for k in 0..visits {
            let (_, node) = self.entries[(start + k) % len];
            let (id, host) = self.nodes[node as usize];
            let dup = if self.diverse_replicas {
                out.iter().any(|&o| self.host_of(o) == Some(host))
            } else {
                out.contains(&id)
            };
            if !dup {
                out.push(id);
                if out.len() == n {
                    return;
                }
            }
        }
    }

    fn host_of(&self, id: u32) -> Option<u32> {
        self.nodes.iter().find(|&&(i, _)| i == id).map(|&(_, h)| h)
    }

    /// The key's position: the 16-bit MD5 of the key.
    #[inline]
    pub fn position(&self, key: &[u8]) -> u64 {
        u64::from(md5_16(key))
    }

    /// True when the ring has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The number of entries (100 per node).
    pub fn points(&self) -> usize {
        self.entries.len()
    }

    /// The number of nodes.
    pub fn members(&self) -> usize {
        self.nodes.len()
    }

    /// `(position, member id)` per entry in ring order.
    pub fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.entries.iter().map(|&(p, n)| (p, self.nodes[n as usize].0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests_common::{get_n, members, K};

    /// Spec §7.7 vector A for carbon_ch: GetN(2) by instance.
    #[test]
    fn vector_a_carbon_ch() {
        let ring = CarbonRing::new(
            &members(&[
                ("192.168.10.200:2003:a", 0),
                ("192.168.10.201:2003:b", 1),
                ("192.168.10.202:2003:c", 2),
            ]),
            true,
        );
        let cases: [(&str, u64, [u32; 2]); 10] = [
            ("moo.goo.org", 30635, [1, 2]),
            ("stats.timers.foo", 62138, [2, 1]),
            ("servers.main.cpu.load", 61693, [0, 2]),
            ("servers.main-01.mem.free", 54004, [2, 1]),
            ("statdtest.house.here", 22153, [1, 2]),
            ("graphitetest.cow.now.test", 54409, [2, 0]),
            ("a.b.c", 21823, [1, 2]),
            ("foo.bar.baz", 63458, [2, 1]),
            ("consthash.test", 33932, [2, 1]),
            ("gorets", 51301, [1, 0]),
        ];
        assert_eq!(K.len(), cases.len());
        for (key, pos, want) in cases {
            assert_eq!(ring.position(key.as_bytes()), pos, "{key}");
            assert_eq!(ring.get(key.as_bytes()), Some(want[0]), "{key}");
            assert_eq!(get_n(|k, n, o| ring.get_n(k, n, o), key, 2), want, "{key}");
        }
        // One collision was bumped: 300 distinct positions.
        assert_eq!(ring.points(), 300);
    }

    #[test]
    fn diverse_replicas_skip_a_chosen_host() {
        let list = members(&[("h1:2003:a", 10), ("h1:2004:b", 11), ("h2:2003", 12)]);
        let diverse = CarbonRing::new(&list, true);
        let plain = CarbonRing::new(&list, false);
        for key in K {
            let d = get_n(|k, n, o| diverse.get_n(k, n, o), key, 3);
            assert_eq!(d.len(), 2, "{key}: {d:?}");
            assert!(d.contains(&12), "{key}: {d:?}");
            let p = get_n(|k, n, o| plain.get_n(k, n, o), key, 3);
            assert_eq!(p.len(), 3, "{key}: {p:?}");
        }
    }

    #[test]
    fn duplicate_node_ignored_and_empty_ring() {
        let ring = CarbonRing::new(&members(&[("h:1:a", 1), ("h:2:a", 2)]), true);
        assert_eq!(ring.members(), 1);
        assert_eq!(ring.points(), 100);
        let empty = CarbonRing::new(&[], true);
        assert!(empty.is_empty());
        assert_eq!(empty.get(b"k"), None);
        assert!(get_n(|k, n, o| empty.get_n(k, n, o), "k", 2).is_empty());
    }
}
