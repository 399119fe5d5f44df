//! carbon-c-relay's `jump_fnv1a_ch`: Lamping–Veach jump consistent hash over FNV-1a-64, spec §7.4.
//!
//! The bucket list holds members with an instance first, ordered by instance (numerically when
//! both are entirely decimal, as `strtol` reads them, else byte order), then members without an
//! instance in member order. A key's bucket is `jump(fnv1a_64(key), n)`; a further replica takes
//! the key through an xorshift-multiply step and jumps again over the list with the chosen bucket
//! replaced by the last one (the list shrinks by one per replica).

use std::cmp::Ordering;

use super::hash::fnv1a_64_by;
use super::member::parse_crelay;

/// An immutable jump ring: the sorted bucket list of member ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JumpRing {
    buckets: Vec<u32>,
}

/// Replicas resolved without allocating; larger requests fall back to a heap list.
const INLINE_SWAPS: usize = 16;

/// A byte as c-relay feeds it to FNV on amd64, where `char` is signed.
#[inline]
fn sign_extend_64(b: u8) -> u64 {
    b as i8 as i64 as u64
}

/// The key hash: FNV-1a-64 with sign-extended bytes.
#[inline]
pub fn key_hash(key: &[u8]) -> u64 {
    fnv1a_64_by(key, sign_extend_64)
}

/// Lamping–Veach jump hash, in c-relay's double-precision form. `n` must be > 0.
#[inline]
pub fn jump(mut key: u64, n: usize) -> usize {
    let n = n as i64;
    let (mut b, mut j) = (-1i64, 0i64);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as usize
}

/// c-relay's next-replica step (xorshift, then multiply).
#[inline]
fn next_key(mut k: u64) -> u64 {
    k ^= k >> 12;
    k ^= k << 25;
    k ^= k >> 27;
    k.wrapping_mul(2_685_821_657_736_338_717)
}

/// `strtol(s, &end, 10)` when it consumes the whole string (c-relay's "is a number" test).
fn strtol_whole(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if s.is_empty() {
        return Some(0);
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for b in digits.bytes() {
        let d = i64::from(b - b'0');
        v = if neg {
            v.saturating_mul(10).saturating_sub(d)
        } else {
            v.saturating_mul(10).saturating_add(d)
        };
    }
    Some(v)
}

/// c-relay's bucket comparator (`entrycmp_jump_fnv1a`), including its `(int)` difference.
fn bucket_cmp(a: (Option<&str>, usize), b: (Option<&str>, usize)) -> Ordering {
    match (a.0, b.0) {
        (None, None) => a.1.cmp(&b.1),
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => match (strtol_whole(x), strtol_whole(y)) {
            (Some(vx), Some(vy)) => (vx.wrapping_sub(vy) as i32).cmp(&0),
            _ => x.as_bytes().cmp(y.as_bytes()),
        },
    }
}

impl JumpRing {
    /// Builds the bucket list from the ordered members `(hashkey, id)`; hashkeys are c-relay
    /// members `host[:port][=instance]`.
    pub fn new(members: &[(String, u32)]) -> JumpRing {
        let mut list: Vec<(Option<&str>, usize, u32)> = members
            .iter()
            .enumerate()
            .map(|(i, (key, id))| (parse_crelay(key).ok().and_then(|m| m.instance), i, *id))
            .collect();
        // Insertion sort: stable, and it never panics on the comparator, which is not a total
        // order when numeric and non-numeric instances mix (c-relay's qsort is then
        // implementation-defined too).
        for i in 1..list.len() {
            let mut j = i;
            while j > 0 && bucket_cmp((list[j - 1].0, list[j - 1].1), (list[j].0, list[j].1)) == Ordering::Greater {
                list.swap(j - 1, j);
                j -= 1;
            }
        }
        JumpRing {
            buckets: list.into_iter().map(|(_, _, id)| id).collect(),
        }
    }

    /// The id of the member owning `key`, or `None` for an empty ring.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        if self.buckets.is_empty() {
            return None;
        }
        Some(self.buckets[jump(key_hash(key), self.buckets.len())])
    }

    /// Fills `out` (cleared first) with `min(n, members)` distinct ids, as c-relay's jump
    /// `replication n`.
    pub fn get_n(&self, key: &[u8], n: usize, out: &mut Vec<u32>) {
        out.clear();
        let n = n.min(self.buckets.len());
        if n == 0 {
            return;
        }
        let mut hash = key_hash(key);
        let mut size = self.buckets.len();
        // The shrinking list is the bucket list plus the swaps made so far: (index, id).
        let mut inline = [(0usize, 0u32); INLINE_SWAPS];
        let mut heap = Vec::new();
        let mut swaps = 0usize;
        let lookup = |inline: &[(usize, u32)], heap: &[(usize, u32)], swaps: usize, i: usize| -> u32 {
            let made = if swaps <= INLINE_SWAPS { &inline[..swaps] } else { heap };
            made.iter()
                .rev()
                .find(|&&(at, _)| at == i)
                .map_or(self.buckets[i], |&(_, id)| id)
        };
        loop {
            let j = jump(hash, size);
            out.push(lookup(&inline, &heap, swaps, j));
            if out.len() == n {
                return;
            }
            hash = next_key(hash);
            size -= 1;
            let last = lookup(&inline, &heap, swaps, size);
            if swaps == INLINE_SWAPS {
                heap.extend_from_slice(&inline);
            }
            if swaps < INLINE_SWAPS {
                inline[swaps] = (j, last);
            } else {
                heap.push((j, last));
            }
            swaps += 1;
        }
    }

    /// The key's bucket index in the sorted bucket list (`-d`'s `hash_pos`), 0 for an empty ring.
    #[inline]
    pub fn position(&self, key: &[u8]) -> u64 {
        if self.buckets.is_empty() {
            return 0;
        }
        jump(key_hash(key), self.buckets.len()) as u64
    }

    /// True when the ring has no members.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// The number of buckets (one per member).
    pub fn points(&self) -> usize {
        self.buckets.len()
    }

    /// The number of members.
    pub fn members(&self) -> usize {
        self.buckets.len()
    }

    /// Member ids in bucket order.
    pub fn buckets(&self) -> &[u32] {
        &self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::tests_common::{get_n, members};

    #[test]
    fn bucket_order() {
        let ring = JumpRing::new(&members(&[
            ("h:1", 0),
            ("h:2=10", 1),
            ("h:3=2", 2),
            ("h:4", 3),
            ("h:5=b", 4),
            ("h:6=a", 5),
        ]));
        // Numeric 2 < 10; "10" < "a" < "b" bytewise ("2" vs "a" too); no-instance last in order.
        assert_eq!(ring.buckets(), &[2, 1, 5, 4, 0, 3]);
    }

    #[test]
    fn strtol_rules() {
        assert_eq!(strtol_whole("12"), Some(12));
        assert_eq!(strtol_whole(" -3"), Some(-3));
        assert_eq!(strtol_whole("+7"), Some(7));
        assert_eq!(strtol_whole(""), Some(0));
        assert_eq!(strtol_whole("1a"), None);
        assert_eq!(strtol_whole("-"), None);
    }

    #[test]
    fn jump_reference_values() {
        // Lamping & Veach: every key lands in bucket 0 of 1; results are stable as n grows.
        assert_eq!(jump(12345, 1), 0);
        for k in [0u64, 1, 0xdead_beef, u64::MAX] {
            let mut prev = jump(k, 1);
            for n in 2..50 {
                let b = jump(k, n);
                assert!(b == prev || b == n - 1, "{k} {n}");
                prev = b;
            }
        }
    }

    #[test]
    fn get_n_many_replicas_distinct_without_and_with_heap() {
        let list: Vec<(String, u32)> = (0..40).map(|i| (format!("10.0.0.{i}:2003"), i)).collect();
        let ring = JumpRing::new(&list);
        for key in ["a", "b.c", "moo.goo.org"] {
            let all = get_n(|k, n, o| ring.get_n(k, n, o), key, 40);
            let mut sorted = all.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 40, "{key}");
            assert_eq!(all[..3], get_n(|k, n, o| ring.get_n(k, n, o), key, 3)[..], "{key}");
            assert_eq!(Some(all[0]), ring.get(key.as_bytes()));
        }
    }
}
