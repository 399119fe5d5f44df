//! JavaScript number conversions, as statsd 0.9.0 (a node program) applies them (spec §9.2.1, §9.2.3).
//!
//! * [`js_number`] is `String(v)` (Number::toString): the shortest digits that round-trip, in plain notation when the
//!   decimal exponent n (v = 0.d × 10ⁿ) satisfies −6 < n ≤ 21, else `d[.ddd]e±x`. Rust's `{:e}` formatting of f64
//!   already yields the shortest round-trip digits (the same digits JavaScript picks), so only the layout is ours.
//! * [`js_parse_number`] is `Number(s)`: surrounding JavaScript whitespace trimmed, empty → 0, optional sign,
//!   decimal fraction and exponent, `Infinity`, and unsigned `0x`/`0o`/`0b` integers, correctly rounded.

use std::fmt::Write as _;

/// Appends `v` as JavaScript prints it (`String(v)`): `3`, `0.5`, `1e+21`, `1e-7`, `NaN`, `Infinity`; `-0` → `0`.
pub fn js_number(v: f64, out: &mut String) {
    let mut buf = NumBuf::new();
    format_js(v, &mut buf);
    out.push_str(buf.as_str());
}

/// [`js_number`] into a byte buffer (the flush path writes output lines as bytes).
pub(crate) fn js_number_bytes(v: f64, out: &mut Vec<u8>) {
    let mut buf = NumBuf::new();
    format_js(v, &mut buf);
    out.extend_from_slice(buf.as_str().as_bytes());
}

/// A fixed stack buffer; the longest JavaScript number string is 25 bytes (`-0.0000012345678901234567`).
struct NumBuf {
    b: [u8; 40],
    len: usize,
}

impl NumBuf {
    fn new() -> NumBuf {
        NumBuf { b: [0; 40], len: 0 }
    }
    fn push(&mut self, c: u8) {
        if self.len < self.b.len() {
            self.b[self.len] = c;
            self.len += 1;
        }
    }
    fn push_str(&mut self, s: &str) {
        for &c in s.as_bytes() {
            self.push(c);
        }
    }
    fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.b[..self.len]).unwrap_or("")
    }
}

impl std::fmt::Write for NumBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() > self.b.len() {
            return Err(std::fmt::Error);
        }
        self.push_str(s);
        Ok(())
    }
}

/// `d.ddde-x` (Rust's `{:e}`) → (digits, digit count, decimal exponent x).
fn split_exp(s: &[u8]) -> ([u8; 24], usize, i32) {
    let epos = s.iter().position(|&c| c == b'e').unwrap_or(s.len());
    let mut digits = [0u8; 24];
    let mut k = 0;
    for &c in &s[..epos] {
        if c.is_ascii_digit() && k < digits.len() {
            digits[k] = c;
            k += 1;
        }
    }
    let mut exp: i32 = 0;
    let mut neg_exp = false;
    for &c in s.get(epos + 1..).unwrap_or(&[]) {
        match c {
            b'-' => neg_exp = true,
            b'0'..=b'9' => exp = exp * 10 + i32::from(c - b'0'),
            _ => {}
        }
    }
    (digits, k, if neg_exp { -exp } else { exp })
}

fn format_js(v: f64, out: &mut NumBuf) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    if v == 0.0 {
        out.push(b'0');
        return;
    }
    if v.fract() == 0.0 && v.abs() < 9007199254740992.0 {
        // Integers below 2^53 are their own shortest digits.
        let mut d = [0u8; 20];
        let mut i = d.len();
        let mut n = v.abs() as u64;
        while n > 0 {
            i -= 1;
            d[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        if v < 0.0 {
            out.push(b'-');
        }
        d[i..].iter().for_each(|&c| out.push(c));
        return;
    }
    // Shortest round-trip digits from Rust: "d.ddde-x".
    let mut e = NumBuf::new();
    if write!(e, "{:e}", v.abs()).is_err() {
        out.push(b'0');
        return;
    }
    let (mut digits, mut k, mut exp) = split_exp(&e.b[..e.len]);
    if k >= 16 {
        // Among several shortest candidates Rust may pick either neighbour of an exact tie; JavaScript takes the
        // closest, ties to even: that is the k-digit correct rounding, which Rust's exact mode computes.
        let mut e = NumBuf::new();
        if write!(e, "{:.*e}", k - 1, v.abs()).is_ok() {
            (digits, k, exp) = split_exp(&e.b[..e.len]);
        }
    }
    let digits = &digits[..k];
    let k = k as i32;
    let n = exp + 1; // v = 0.d × 10ⁿ
    if v < 0.0 {
        out.push(b'-');
    }
    if k <= n && n <= 21 {
        digits.iter().for_each(|&d| out.push(d));
        (0..n - k).for_each(|_| out.push(b'0'));
    } else if 0 < n && n <= 21 {
        let n = n as usize;
        digits[..n].iter().for_each(|&d| out.push(d));
        out.push(b'.');
        digits[n..].iter().for_each(|&d| out.push(d));
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        (0..-n).for_each(|_| out.push(b'0'));
        digits.iter().for_each(|&d| out.push(d));
    } else {
        out.push(digits[0]);
        if k > 1 {
            out.push(b'.');
            digits[1..].iter().for_each(|&d| out.push(d));
        }
        out.push(b'e');
        out.push(if n - 1 < 0 { b'-' } else { b'+' });
        let _ = write!(out, "{}", (n - 1).abs());
    }
}

pub(crate) use crate::splitter::is_js_space;

/// JavaScript `s.trim()`.
pub(crate) fn js_trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// JavaScript `Number(s)` of UTF-8 text `s`; `None` where it is NaN. (Bytes: the usual plain decimals are parsed
/// without decoding. Bytes that are not UTF-8 are NaN, as their decoding with U+FFFD would be.)
pub fn js_parse_number(s: &[u8]) -> Option<f64> {
    if let Some(v) = fast_decimal(s) {
        return Some(v);
    }
    let s = js_trim(std::str::from_utf8(s).ok()?);
    if s.is_empty() {
        return Some(0.0);
    }
    let b = s.as_bytes();
    if b.len() > 2 && b[0] == b'0' {
        let radix_bits = match b[1] {
            b'x' | b'X' => 4,
            b'o' | b'O' => 3,
            b'b' | b'B' => 1,
            _ => 0,
        };
        if radix_bits > 0 {
            return parse_pow2_radix(&b[2..], radix_bits);
        }
    }
    let (neg, rest) = match b[0] {
        b'+' => (false, &s[1..]),
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if rest == "Infinity" {
        return Some(if neg { f64::NEG_INFINITY } else { f64::INFINITY });
    }
    if !is_decimal_literal(rest.as_bytes()) {
        return None;
    }
    // The grammar is checked above; Rust's parser is correctly rounded for any length.
    s.parse::<f64>().ok()
}

/// The common `123`, `-4.25`: at most 15 significant digits and no exponent, where m / 10^f is exact-then-rounded
/// once (Clinger's fast path), so equal to the correctly rounded value.
#[inline]
fn fast_decimal(b: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    let (neg, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if b.is_empty() || b.len() > 16 {
        return None;
    }
    let mut m: u64 = 0;
    let mut digits = 0;
    let mut frac: Option<usize> = None;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'0'..=b'9' => {
                m = m * 10 + u64::from(c - b'0');
                digits += 1;
            }
            b'.' if frac.is_none() && i > 0 && i + 1 < b.len() => frac = Some(b.len() - i - 1),
            _ => return None,
        }
    }
    if digits > 15 {
        return None;
    }
    // m < 10^15 converts exactly, and through i64 in one instruction; an integer needs no division (whose latency
    // was a third of this function in perf).
    let m = m as i64 as f64;
    let v = match frac {
        Some(f) => m / POW10[f],
        None => m,
    };
    Some(if neg { -v } else { v })
}

/// StrUnsignedDecimalLiteral without `Infinity`: `1`, `1.`, `.5`, `1.5e-3`.
fn is_decimal_literal(b: &[u8]) -> bool {
    let mut i = 0;
    let int_digits = b.iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        frac_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return false;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
        if exp_digits == 0 {
            return false;
        }
        i += exp_digits;
    }
    i == b.len()
}

/// Digits of a `0x`/`0o`/`0b` literal (after the prefix), rounded to nearest, ties to even.
fn parse_pow2_radix(digits: &[u8], bits: u32) -> Option<f64> {
    if digits.is_empty() {
        return None;
    }
    let radix = 1u32 << bits;
    // The first 64 significant bits, then a sticky bit and a binary exponent for the rest.
    let mut m: u64 = 0;
    let mut extra: i32 = 0;
    let mut sticky = false;
    for &c in digits {
        let d = (c as char).to_digit(radix)?;
        for j in (0..bits).rev() {
            let bit = (d >> j) & 1;
            if m >> 63 == 0 {
                m = (m << 1) | u64::from(bit);
            } else {
                extra = extra.saturating_add(1);
                sticky |= bit == 1;
            }
        }
    }
    let m = m | u64::from(sticky);
    // u64 → f64 rounds to nearest even; scaling by a power of two is exact (or overflows to Infinity as JS does).
    Some(m as f64 * 2f64.powi(extra))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn js(v: f64) -> String {
        let mut s = String::new();
        js_number(v, &mut s);
        s
    }

    #[test]
    fn js_number_table() {
        let cases: &[(f64, &str)] = &[
            (3.0, "3"),
            (0.5, "0.5"),
            (2.8722813232690143, "2.8722813232690143"),
            (1e21, "1e+21"),
            (1e-7, "1e-7"),
            (123456789012345680000.0, "123456789012345680000"),
            (0.000001, "0.000001"),
            (0.0000012345, "0.0000012345"),
            (1.5e-7, "1.5e-7"),
            (-0.0, "0"),
            (0.0, "0"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-1.5, "-1.5"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (1.2345e21, "1.2345e+21"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.0 / 3.0, "0.3333333333333333"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (-1e-7, "-1e-7"),
            (123.456, "123.456"),
            (2.0 / 1.5, "1.3333333333333333"),
            // An exact tie between two shortest candidates: JavaScript takes the even one.
            (f64::from_bits(0x431b658f5697721d), "1927872669670535.2"),
        ];
        for &(v, want) in cases {
            assert_eq!(js(v), want, "js_number({v:e})");
        }
    }

    #[test]
    fn js_parse_number_table() {
        let cases: &[(&str, Option<f64>)] = &[
            ("", Some(0.0)),
            ("   ", Some(0.0)),
            ("1", Some(1.0)),
            (" 1 ", Some(1.0)),
            ("\u{a0}2\u{3000}", Some(2.0)),
            ("+1", Some(1.0)),
            ("-1.5", Some(-1.5)),
            ("1.", Some(1.0)),
            (".5", Some(0.5)),
            ("1e3", Some(1000.0)),
            ("1E-3", Some(0.001)),
            ("-1e+2", Some(-100.0)),
            ("Infinity", Some(f64::INFINITY)),
            ("+Infinity", Some(f64::INFINITY)),
            ("-Infinity", Some(f64::NEG_INFINITY)),
            ("0x10", Some(16.0)),
            ("0XfF", Some(255.0)),
            ("0o17", Some(15.0)),
            ("0b101", Some(5.0)),
            ("00012", Some(12.0)),
            ("0x", None),
            ("-0x10", None),
            ("+0x10", None),
            ("0x1g", None),
            ("0b2", None),
            ("infinity", None),
            ("inf", None),
            ("NaN", None),
            ("nan", None),
            ("abc", None),
            (".", None),
            ("+", None),
            ("-", None),
            ("1e", None),
            ("e5", None),
            ("1.2.3", None),
            ("1_000", None),
            ("1 2", None),
            ("1f", None),
            ("0.1", Some(0.1)),
            ("1\u{fffd}", None),
        ];
        for &(s, want) in cases {
            let got = js_parse_number(s.as_bytes());
            assert_eq!(got.map(f64::to_bits), want.map(f64::to_bits), "Number({s:?})");
        }
        assert_eq!(js_parse_number(b"-0").map(f64::to_bits), Some((-0.0f64).to_bits()));
        // Bytes that are not UTF-8 are NaN, as their decoding (U+FFFD) is.
        assert_eq!(js_parse_number(b"1\xff"), None);
        assert_eq!(js_parse_number(b"\xa0 7"), None);
        // Correct rounding of long binary literals: 2^53 + 1 ties to even, 2^53 + 3 rounds up.
        assert_eq!(js_parse_number(b"0x20000000000001"), Some(9007199254740992.0));
        assert_eq!(js_parse_number(b"0x20000000000003"), Some(9007199254740996.0));
        assert_eq!(js_parse_number(b"0x1fffffffffffffffffff"), Some(2f64.powi(77)));
        assert_eq!(
            js_parse_number(format!("0x1{}", "0".repeat(300)).as_bytes()),
            Some(f64::INFINITY)
        );
    }
}
