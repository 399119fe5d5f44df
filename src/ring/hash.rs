//! The hash functions of the consthash ring family (spec §7.2) and the plain FNV helpers that the
//! peer rings build on.
//!
//! Every function here hashes the bytes exactly as given. carbon-c-relay's FNV variants feed bytes
//! `>= 0x80` sign-extended; that is a different byte-to-word mapping, added next to
//! [`fnv1a_32`]/[`fnv1a_64`] through [`fnv1a_32_by`]/[`fnv1a_64_by`] when the peer rings need it.
//!
//! The FNV code is hand-written on purpose (the `fnv` crate is used for hash maps, not here): placement must be
//! bit-identical to the peers', which needs the 64-bit variant, the byte-widening hook of c-relay's variant
//! and the folds of §7.2, none of which a `Hasher` exposes. The golden vectors (`golden_tests.rs`) pin it.

use md5::{Digest, Md5};
use sha1::Sha1;

use super::HasherAlgo;

/// FNV 32-bit offset basis.
pub const FNV32_OFFSET: u32 = 2_166_136_261;
/// FNV 32-bit prime.
pub const FNV32_PRIME: u32 = 16_777_619;
/// FNV 64-bit offset basis.
pub const FNV64_OFFSET: u64 = 14_695_981_039_346_656_037;
/// FNV 64-bit prime.
pub const FNV64_PRIME: u64 = 1_099_511_628_211;

impl HasherAlgo {
    /// The 32-bit hash of `bytes` under this algorithm (spec §7.2). `Md5` and `Sha1` yield
    /// 0..=65535.
    #[inline]
    pub fn hash(&self, bytes: &[u8]) -> u32 {
        match self {
            HasherAlgo::Crc32 => crc32(bytes),
            HasherAlgo::Md5 => md5_16(bytes),
            HasherAlgo::Sha1 => sha1_16(bytes),
            HasherAlgo::Fnv1 => fnv1_32(bytes),
            HasherAlgo::Fnv1a => fnv1a_32(bytes),
            HasherAlgo::NodejsHashring => md5_le32(bytes),
            HasherAlgo::Mmh3 => murmur3_32(bytes, 0),
        }
    }
}

/// CRC-32/IEEE (zlib).
#[inline]
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// The first 2 bytes of MD5, big-endian (graphite's ring position).
#[inline]
pub fn md5_16(bytes: &[u8]) -> u32 {
    let d = Md5::digest(bytes);
    u32::from(u16::from_be_bytes([d[0], d[1]]))
}

/// The first 2 bytes of SHA-1, big-endian.
#[inline]
pub fn sha1_16(bytes: &[u8]) -> u32 {
    let d = Sha1::digest(bytes);
    u32::from(u16::from_be_bytes([d[0], d[1]]))
}

/// MD5 bytes 0..4 read little-endian (npm `hashring`, as used by statsd).
#[inline]
pub fn md5_le32(bytes: &[u8]) -> u32 {
    let d = Md5::digest(bytes);
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// A byte fed to FNV as its unsigned value (the standard definition).
#[inline]
pub fn widen_unsigned(b: u8) -> u32 {
    u32::from(b)
}

/// FNV-1 32-bit: multiply, then xor.
#[inline]
pub fn fnv1_32(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(FNV32_OFFSET, |h, &b| h.wrapping_mul(FNV32_PRIME) ^ widen_unsigned(b))
}

/// FNV-1a 32-bit: xor, then multiply.
#[inline]
pub fn fnv1a_32(bytes: &[u8]) -> u32 {
    fnv1a_32_by(bytes, widen_unsigned)
}

/// FNV-1a 32-bit with a caller-chosen byte-to-word mapping (e.g. carbon-c-relay's sign extension).
#[inline]
pub fn fnv1a_32_by(bytes: &[u8], widen: impl Fn(u8) -> u32) -> u32 {
    bytes
        .iter()
        .fold(FNV32_OFFSET, |h, &b| (h ^ widen(b)).wrapping_mul(FNV32_PRIME))
}

/// FNV-1a 64-bit: xor, then multiply.
#[inline]
pub fn fnv1a_64(bytes: &[u8]) -> u64 {
    fnv1a_64_by(bytes, u64::from)
}

/// FNV-1a 64-bit with a caller-chosen byte-to-word mapping.
#[inline]
pub fn fnv1a_64_by(bytes: &[u8], widen: impl Fn(u8) -> u64) -> u64 {
    bytes
        .iter()
        .fold(FNV64_OFFSET, |h, &b| (h ^ widen(b)).wrapping_mul(FNV64_PRIME))
}

/// MurmurHash3 x86_32.
pub fn murmur3_32(bytes: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;

    let mut h = seed;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }

    let tail = blocks.remainder();
    if !tail.is_empty() {
        let mut k: u32 = 0;
        for (i, &b) in tail.iter().enumerate() {
            k |= u32::from(b) << (8 * i);
        }
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }

    // Lengths above 4 GiB wrap, as in the reference (which takes a 32-bit length).
    h ^= bytes.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moooogoooo234_per_hasher() {
        let cases = [
            (HasherAlgo::Md5, 4357),
            (HasherAlgo::Sha1, 1267),
            (HasherAlgo::Crc32, 419_017_553),
            (HasherAlgo::Fnv1, 1_703_332_092),
            (HasherAlgo::Fnv1a, 2_808_862_626),
            (HasherAlgo::NodejsHashring, 2_430_731_537),
            (HasherAlgo::Mmh3, 2_603_919_929),
        ];
        for (algo, want) in cases {
            assert_eq!(algo.hash(b"MOOOOGOOOO234"), want, "{algo:?}");
        }
    }

    #[test]
    fn mmh3_sanity() {
        let cases: [(&[u8], u32); 3] = [
            (b"hello", 0x248b_fa47),
            (b"", 0),
            (b"The quick brown fox jumps over the lazy dog", 0x2e4f_f723),
        ];
        for (input, want) in cases {
            assert_eq!(murmur3_32(input, 0), want, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(HasherAlgo::Mmh3.hash(input), want);
        }
    }

    #[test]
    fn mmh3_every_tail_length_and_seed() {
        // Widely published MurmurHash3_x86_32 reference vectors: tails of 0..=3 bytes, seeds.
        let cases: [(&[u8], u32, u32); 14] = [
            (b"", 1, 0x514e_28b7),
            (b"\0\0\0\0", 0, 0x2362_f9de),
            (b"\x21\x43\x65\x87", 0, 0xf55b_516b),
            (b"\x21\x43\x65", 0, 0x7e4a_8634),
            (b"\x21\x43", 0, 0xa0f7_b07a),
            (b"\x21", 0, 0x7266_1cf4),
            (b"\xff\xff\xff\xff", 0, 0x7629_3b50),
            (b"aaaa", 0x9747_b28c, 0x5a97_808a),
            (b"aaa", 0x9747_b28c, 0x283e_0130),
            (b"aa", 0x9747_b28c, 0x5d21_1726),
            (b"a", 0x9747_b28c, 0x7fa0_9ea6),
            (b"abcd", 0x9747_b28c, 0xf047_8627),
            (b"Hello, world!", 0x9747_b28c, 0x2488_4cba),
            (b"The quick brown fox jumps over the lazy dog", 0x9747_b28c, 0x2fa8_26cd),
        ];
        for (input, seed, want) in cases {
            assert_eq!(murmur3_32(input, seed), want, "{input:?} seed {seed:#x}");
        }
    }

    #[test]
    fn fnv_sanity() {
        assert_eq!(fnv1a_32(b"a"), 0xe40c_292c);
        assert_eq!(fnv1_32(b"a"), 0x050c_5d7e);
        assert_eq!(fnv1a_32(b""), FNV32_OFFSET);
        assert_eq!(fnv1_32(b""), FNV32_OFFSET);
        // Published FNV-1a 64-bit test vectors.
        assert_eq!(fnv1a_64(b""), FNV64_OFFSET);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn fnv_by_unsigned_equals_plain() {
        let input = b"\x00\x7f\x80\xffabc";
        assert_eq!(fnv1a_32_by(input, widen_unsigned), fnv1a_32(input));
        assert_eq!(fnv1a_64_by(input, u64::from), fnv1a_64(input));
    }
}
