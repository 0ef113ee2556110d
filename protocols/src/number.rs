//! Number grammars that kairosd must accept exactly as KairosDB does.
//!
//! Telnet parses timestamps and integer values with KairosDB's own strict parser
//! (`Util.parseLong`: no `+`, no exponent) but values containing a `.` with Java's
//! `Double.parseDouble`, whose grammar is much wider (signs, exponents, hex floats,
//! `f`/`d` suffixes). REST numbers arrive as JSON text and are turned into longs the way
//! Gson does (`BigDecimal.longValue`, which truncates). Getting any of these wrong
//! silently changes which lines a sender's data survives, so each lives here, tested
//! against the Java behaviour.

use std::borrow::Cow;

use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case};
use nom::character::complete::{char, digit0, digit1, hex_digit0, hex_digit1, one_of};
use nom::combinator::{eof, map, opt, recognize, value};
use nom::sequence::{preceded, terminated};
use nom::{IResult, Parser};

/// How much of an offending input an error message quotes; a log line must stay
/// readable even when a sender pushes a kilobyte of garbage.
pub const QUOTE_LIMIT: usize = 64;

/// Why a number could not be read. Each variant quotes the (truncated) input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NumberError {
    #[error("'{0}' has no digits")]
    MissingDigits(String),
    #[error("'{0}' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)")]
    NotInteger(String),
    #[error("'{0}' is out of range for a 64-bit integer")]
    OutOfRange(String),
    #[error("'{0}' is not a decimal number")]
    NotDecimal(String),
}

/// The start of `bytes` as text for an error message: at most [`QUOTE_LIMIT`] bytes, cut
/// on a character boundary, invalid UTF-8 replaced, and `…` when something was left off.
pub fn quote(bytes: &[u8]) -> String {
    if bytes.len() <= QUOTE_LIMIT {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let mut cut = QUOTE_LIMIT;
    // Back up to a UTF-8 boundary so a multi-byte character is not split.
    while cut > QUOTE_LIMIT - 3 && (bytes[cut] & 0xC0) == 0x80 {
        cut -= 1;
    }
    let mut s: String = match String::from_utf8_lossy(&bytes[..cut]) {
        Cow::Borrowed(s) => s.to_owned(),
        Cow::Owned(s) => s,
    };
    s.push('…');
    s
}

/// KairosDB's `Util.parseLong`: an optional leading `-` and ASCII digits only.
///
/// Stricter than Rust's `i64::from_str`, which accepts a leading `+`; KairosDB drops
/// `put m +5 1`, so kairosd must too.
#[inline]
pub fn parse_long(s: &[u8]) -> Result<i64, NumberError> {
    let (negative, digits) = match s.split_first() {
        None => return Err(NumberError::MissingDigits(String::new())),
        Some((b'-', rest)) => (true, rest),
        Some(_) => (false, s),
    };
    // Up to 18 digits cannot overflow: the common case, without per-digit checks.
    if let Some(m) = short_digits(digits) {
        let m = m as i64;
        return Ok(if negative { -m } else { m });
    }
    parse_long_checked(s, negative, digits)
}

/// Reads 1 to 18 ASCII digits (the most that always fit an i64); `None` for anything
/// else, including more digits, which the callers' checked paths then handle.
#[inline]
pub fn short_digits(digits: &[u8]) -> Option<u64> {
    let len = digits.len();
    if len == 0 || len > 18 {
        return None;
    }
    let (mut m, mut i) = (0u64, 0);
    if len >= 8 {
        m = eight_digits(digits[..8].try_into().expect("8 bytes"))?;
        i = 8;
        if len >= 16 {
            m = m * 100_000_000 + eight_digits(digits[8..16].try_into().expect("8 bytes"))?;
            i = 16;
        }
    }
    let mut bad = 0u8;
    for &b in &digits[i..] {
        let d = b.wrapping_sub(b'0');
        bad |= u8::from(d > 9);
        m = m.wrapping_mul(10).wrapping_add(u64::from(d));
    }
    (bad == 0).then_some(m)
}

/// Eight ASCII digits at once (SWAR): checks that every byte is `0`..=`9`, then folds
/// pairs, quads and the two halves with three multiplies instead of eight steps.
#[inline]
fn eight_digits(bytes: [u8; 8]) -> Option<u64> {
    let x = u64::from_le_bytes(bytes);
    // Every byte 0x30..=0x39: high nibble 3, and adding 6 does not carry into it.
    let all_digits = (x & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030
        && (x.wrapping_add(0x0606_0606_0606_0606) & 0xF0F0_F0F0_F0F0_F0F0) == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    let x = x & 0x0F0F_0F0F_0F0F_0F0F;
    // Byte i holds digit i (the first digit in the lowest byte).
    let x = (x.wrapping_mul(10 << 8 | 1)) >> 8 & 0x00FF_00FF_00FF_00FF;
    let x = (x.wrapping_mul(100 << 16 | 1)) >> 16 & 0x0000_FFFF_0000_FFFF;
    Some((x.wrapping_mul(10_000 << 32 | 1)) >> 32)
}

/// [`parse_long`] for what the short path does not take: errors and 19+ digits.
#[cold]
fn parse_long_checked(s: &[u8], negative: bool, digits: &[u8]) -> Result<i64, NumberError> {
    if digits.is_empty() {
        return Err(NumberError::MissingDigits(quote(s)));
    }
    let mut magnitude: u64 = 0;
    let mut overflow = false;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return Err(NumberError::NotInteger(quote(s)));
        }
        // Keep scanning after an overflow: a later non-digit makes it malformed instead.
        match magnitude.checked_mul(10).and_then(|m| m.checked_add(u64::from(d))) {
            Some(m) => magnitude = m,
            None => overflow = true,
        }
    }
    let limit = if negative { 1u64 << 63 } else { i64::MAX as u64 };
    if overflow || magnitude > limit {
        return Err(NumberError::OutOfRange(quote(s)));
    }
    Ok(if negative {
        (magnitude as i64).wrapping_neg()
    } else {
        magnitude as i64
    })
}

/// A string accepted by Java's `Double.parseDouble`, before conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
enum JavaDouble<'a> {
    /// Sign, digits, optional fraction and exponent, without the type suffix: exactly
    /// the grammar Rust's `f64::from_str` converts with correct rounding.
    Decimal(&'a [u8]),
    Hex(HexFloat<'a>),
    Special(f64),
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct HexFloat<'a> {
    negative: bool,
    int: &'a [u8],
    frac: &'a [u8],
    exp_negative: bool,
    exp: &'a [u8],
}

fn sign(i: &[u8]) -> IResult<&[u8], bool> {
    map(opt(one_of("+-")), |s| s == Some('-')).parse(i)
}

/// Java ignores a trailing type suffix: `1.5f` and `1.5d` are both the double 1.5.
fn suffix(i: &[u8]) -> IResult<&[u8], Option<char>> {
    opt(one_of("fFdD")).parse(i)
}

fn decimal(i: &[u8]) -> IResult<&[u8], JavaDouble<'_>> {
    let mantissa = alt((
        recognize((digit1, opt((char('.'), digit0)))),
        recognize((char('.'), digit1)),
    ));
    let exponent = opt((one_of("eE"), opt(one_of("+-")), digit1));
    map(
        terminated(recognize((opt(one_of("+-")), mantissa, exponent)), suffix),
        JavaDouble::Decimal,
    )
    .parse(i)
}

fn hex(i: &[u8]) -> IResult<&[u8], JavaDouble<'_>> {
    let digits = alt((
        map((hex_digit1, opt(preceded(char('.'), hex_digit0))), |(int, frac)| {
            (int, frac.unwrap_or_default())
        }),
        map(preceded(char('.'), hex_digit1), |frac| (&b""[..], frac)),
    ));
    map(
        terminated(
            (
                sign,
                preceded(tag_no_case("0x"), digits),
                preceded(one_of("pP"), (sign, digit1)),
            ),
            suffix,
        ),
        |(negative, (int, frac), (exp_negative, exp))| {
            JavaDouble::Hex(HexFloat {
                negative,
                int,
                frac,
                exp_negative,
                exp,
            })
        },
    )
    .parse(i)
}

/// `NaN` and `Infinity` are part of the grammar (signed, case-sensitive, no suffix);
/// callers refuse them, but with their own message instead of "not a number".
fn special(i: &[u8]) -> IResult<&[u8], JavaDouble<'_>> {
    map(
        (
            sign,
            alt((value(f64::NAN, tag("NaN")), value(f64::INFINITY, tag("Infinity")))),
        ),
        |(negative, v)| JavaDouble::Special(if negative { -v } else { v }),
    )
    .parse(i)
}

fn java_double(i: &[u8]) -> IResult<&[u8], JavaDouble<'_>> {
    terminated(alt((hex, special, decimal)), eof).parse(i)
}

/// Java's `Double.parseDouble`, minus the whitespace trimming (telnet tokens never
/// contain whitespace). Overflow gives ±infinity, as in Java; callers refuse it.
pub fn parse_java_double(s: &[u8]) -> Result<f64, NumberError> {
    if let Some(v) = short_decimal(s) {
        return Ok(v);
    }
    let parsed = match java_double(s) {
        Ok((_, parsed)) => parsed,
        Err(_) => return Err(NumberError::NotDecimal(quote(s))),
    };
    match parsed {
        JavaDouble::Decimal(text) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .ok_or_else(|| NumberError::NotDecimal(quote(s))),
        JavaDouble::Hex(h) => Ok(hex_to_f64(&h)),
        JavaDouble::Special(v) => Ok(v),
    }
}

/// Python's `float()` on a token, which is how carbon reads Graphite values and
/// timestamps: an optional sign, then digits with an optional fraction and exponent
/// (`1e3`, `.75`, `5.`), `inf`/`infinity`/`nan` in any case, and `_` between digits
/// (`1_000`). Unlike Java's grammar: no hex floats, no `f`/`d` suffix.
pub fn parse_python_float(s: &[u8]) -> Result<f64, NumberError> {
    if let Some(v) = short_decimal(s) {
        return Ok(v);
    }
    let bad = || NumberError::NotDecimal(quote(s));
    let text = std::str::from_utf8(s).map_err(|_| bad())?;
    if !text.contains('_') {
        // Rust's grammar is Python's without the underscores (inf and nan included).
        return text.parse().map_err(|_| bad());
    }
    let digit = |i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    let mut plain = String::with_capacity(s.len());
    for (i, c) in text.char_indices() {
        if c == '_' {
            if i == 0 || !digit(i - 1) || !digit(i + 1) {
                return Err(bad());
            }
        } else {
            plain.push(c);
        }
    }
    plain.parse().map_err(|_| bad())
}

/// A number in the plainest form every grammar here accepts alike.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plain {
    /// `-?[0-9]{1,18}`: what [`parse_long`] (and Python's `int(float())` up to 2^53)
    /// makes of it.
    Long(i64),
    /// `-?digits.digits` with at most 15 digits: exactly what Java's and Python's
    /// parsers make of it (see [`short_decimal`]).
    Double(f64),
}

/// Reads the common metric value or timestamp in one pass; `None` for anything else,
/// which then takes the full grammar of its protocol. Agreeing with every grammar on
/// what it accepts is what lets each protocol try it first.
#[inline]
pub fn plain_number(s: &[u8]) -> Option<Plain> {
    let (negative, body) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if body.is_empty() || body.len() > 18 {
        return None;
    }
    let (mut m, mut i) = (0u64, 0);
    if body.len() >= 8 {
        if let Some(v) = eight_digits(body[..8].try_into().expect("8 bytes")) {
            (m, i) = (v, 8);
        }
    }
    let mut point = usize::MAX;
    while i < body.len() {
        let b = body[i];
        let d = b.wrapping_sub(b'0');
        if d <= 9 {
            m = m * 10 + u64::from(d);
        } else if b == b'.' && point == usize::MAX {
            point = i;
        } else {
            return None;
        }
        i += 1;
    }
    if point == usize::MAX {
        let m = m as i64;
        return Some(Plain::Long(if negative { -m } else { m }));
    }
    if body.len() < 2 || body.len() > 16 {
        return None;
    }
    let v = m as f64 / EXACT_POW10[body.len() - 1 - point];
    Some(Plain::Double(if negative { -v } else { v }))
}

/// Powers of ten that are exact in an f64.
const EXACT_POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common metric value, `-?digits.digits` with at most 15 digits in all, without
/// the grammar and the general float parser: the digits form an integer below 2^53 and
/// the scale is an exact power of ten, so one IEEE division is correctly rounded
/// (Clinger's fast path) and equals what the full parser returns. `None` for anything
/// else, which then takes the full path.
fn short_decimal(s: &[u8]) -> Option<f64> {
    let (negative, body) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    if body.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'0'..=b'9' => mantissa = mantissa * 10 + u64::from(b - b'0'),
            b'.' if point.is_none() => point = Some(i),
            _ => return None,
        }
    }
    let point = point?;
    if body.len() < 2 {
        return None;
    }
    let scale = EXACT_POW10[body.len() - 1 - point];
    let v = mantissa as f64 / scale;
    Some(if negative { -v } else { v })
}

fn hex_value(b: u8) -> u64 {
    match b {
        b'0'..=b'9' => u64::from(b - b'0'),
        b'a'..=b'f' => u64::from(b - b'a' + 10),
        b'A'..=b'F' => u64::from(b - b'A' + 10),
        _ => 0,
    }
}

/// Exponents beyond this are infinity or zero for any mantissa a line can carry, and
/// clamping keeps the arithmetic below free of overflow.
const EXP_CLAMP: i64 = 1 << 40;

/// Converts a hex float with round-half-even, including subnormals, like Java.
fn hex_to_f64(h: &HexFloat<'_>) -> f64 {
    // Mantissa digits as one stream; keep the first 15 significant ones (60 bits) and
    // remember whether anything non-zero was dropped (the sticky bit).
    let mut mantissa: u64 = 0;
    let mut kept = 0u32;
    let mut sticky = false;
    let mut exp2: i64 = 0;
    for (i, &b) in h.int.iter().chain(h.frac.iter()).enumerate() {
        let d = hex_value(b);
        let in_fraction = i >= h.int.len();
        if mantissa == 0 && d == 0 {
            if in_fraction {
                exp2 -= 4;
            }
            continue;
        }
        if kept < 15 {
            mantissa = (mantissa << 4) | d;
            kept += 1;
            if in_fraction {
                exp2 -= 4;
            }
        } else {
            sticky |= d != 0;
            if !in_fraction {
                exp2 += 4;
            }
        }
    }
    let exp: i64 = h
        .exp
        .iter()
        .fold(0i64, |acc, &b| (acc * 10 + i64::from(b - b'0')).min(EXP_CLAMP));
    let exp = if h.exp_negative { -exp } else { exp };
    let magnitude = if mantissa == 0 {
        0.0
    } else {
        compose(mantissa, exp2.saturating_add(exp), sticky)
    };
    if h.negative {
        -magnitude
    } else {
        magnitude
    }
}

/// The double nearest to `mantissa * 2^exp2` (`sticky`: a tiny bit more than that),
/// rounding half to even.
fn compose(mantissa: u64, exp2: i64, sticky: bool) -> f64 {
    let lz = mantissa.leading_zeros();
    let m = mantissa << lz;
    let e = exp2 - i64::from(lz); // value = m * 2^e, m in [2^63, 2^64)
    let top = e + 63; // the value's binary exponent
    if top > 1023 {
        return f64::INFINITY;
    }
    // Mantissa bits that fit: 53 for normal numbers, fewer for subnormals.
    let keep = if top >= -1022 { 53 } else { top + 1075 };
    if keep <= 0 {
        // Below half the smallest subnormal, or exactly half when keep == 0 and
        // nothing else is set (ties to even, i.e. to zero).
        let above_half = keep == 0 && (m << 1 != 0 || sticky);
        return if above_half { f64::from_bits(1) } else { 0.0 };
    }
    let drop = (64 - keep) as u32;
    let mut r = m >> drop;
    let rest = m & ((1u64 << drop) - 1);
    let half = 1u64 << (drop - 1);
    if rest > half || (rest == half && (sticky || r & 1 == 1)) {
        r += 1;
    }
    if keep == 53 {
        let mut biased = top + 1023;
        if r == 1 << 53 {
            r >>= 1;
            biased += 1;
        }
        if biased >= 2047 {
            return f64::INFINITY;
        }
        f64::from_bits(((biased as u64) << 52) | (r & ((1 << 52) - 1)))
    } else {
        // Subnormal: r counts units of 2^-1074; a carry into bit 52 lands exactly on
        // the smallest normal number, whose bit pattern is the same integer.
        f64::from_bits(r)
    }
}

/// The integer a JSON number stands for, truncated toward zero as Gson's
/// `getAsLong` (`BigDecimal.longValue`) does, so `1e3` is 1000 and `1.9` is 1. The
/// second value says whether nothing was truncated. Unlike Java, which wraps around
/// silently, a value beyond 64 bits is an error.
///
/// `s` must be a JSON number or a numeric string (`+`/`-`, digits, at most one `.`,
/// optional exponent); anything else is [`NumberError::NotDecimal`].
pub fn decimal_to_long(s: &[u8]) -> Result<(i64, bool), NumberError> {
    let bad = || NumberError::NotDecimal(quote(s));
    let (negative, rest) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let int_len = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let (int, mut rest) = rest.split_at(int_len);
    let mut frac: &[u8] = &[];
    if let Some((b'.', after)) = rest.split_first() {
        let n = after.iter().take_while(|b| b.is_ascii_digit()).count();
        frac = &after[..n];
        rest = &after[n..];
    }
    if int.is_empty() && frac.is_empty() {
        return Err(bad());
    }
    let mut exp: i64 = 0;
    if let Some((b'e' | b'E', after)) = rest.split_first() {
        let (exp_negative, digits) = match after.first() {
            Some(b'-') => (true, &after[1..]),
            Some(b'+') => (false, &after[1..]),
            _ => (false, after),
        };
        if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
            return Err(bad());
        }
        exp = digits
            .iter()
            .fold(0i64, |acc, &b| (acc * 10 + i64::from(b - b'0')).min(EXP_CLAMP));
        if exp_negative {
            exp = -exp;
        }
        rest = &[];
    }
    if !rest.is_empty() {
        return Err(bad());
    }
    let digit = |i: usize| {
        if i < int.len() {
            int[i] - b'0'
        } else {
            frac.get(i - int.len()).map_or(0, |b| b - b'0')
        }
    };
    let total = int.len() + frac.len();
    // The decimal point sits after `point` digits of int ++ frac.
    let point = (int.len() as i64).saturating_add(exp);
    let whole_digits = point.clamp(0, total as i64 + 20) as usize;
    let mut magnitude: u64 = 0;
    for i in 0..whole_digits {
        if magnitude == 0 && i >= total {
            break; // only zeros remain
        }
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|m| m.checked_add(u64::from(digit(i))))
            .ok_or_else(|| NumberError::OutOfRange(quote(s)))?;
    }
    if point > total as i64 + 20 && magnitude != 0 {
        return Err(NumberError::OutOfRange(quote(s)));
    }
    let exact = (whole_digits..total).all(|i| digit(i) == 0);
    let limit = if negative { 1u64 << 63 } else { i64::MAX as u64 };
    if magnitude > limit {
        return Err(NumberError::OutOfRange(quote(s)));
    }
    let v = if negative {
        (magnitude as i64).wrapping_neg()
    } else {
        magnitude as i64
    };
    Ok((v, exact))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_long_follows_kairosdb() {
        let ok: &[(&str, i64)] = &[
            ("0", 0),
            ("-0", 0),
            ("42", 42),
            ("-5", -5),
            ("007", 7),
            ("9223372036854775807", i64::MAX),
            ("-9223372036854775808", i64::MIN),
        ];
        for &(s, v) in ok {
            assert_eq!(parse_long(s.as_bytes()), Ok(v), "{s}");
        }
        let err: &[(&str, NumberError)] = &[
            ("", NumberError::MissingDigits(String::new())),
            ("-", NumberError::MissingDigits("-".into())),
            ("+5", NumberError::NotInteger("+5".into())),
            ("1e3", NumberError::NotInteger("1e3".into())),
            ("0x10", NumberError::NotInteger("0x10".into())),
            ("1_000", NumberError::NotInteger("1_000".into())),
            ("1.5", NumberError::NotInteger("1.5".into())),
            ("NaN", NumberError::NotInteger("NaN".into())),
            ("--1", NumberError::NotInteger("--1".into())),
            (
                "9223372036854775808",
                NumberError::OutOfRange("9223372036854775808".into()),
            ),
            (
                "-9223372036854775809",
                NumberError::OutOfRange("-9223372036854775809".into()),
            ),
            (
                "99999999999999999999999",
                NumberError::OutOfRange("99999999999999999999999".into()),
            ),
            (
                "99999999999999999999999x",
                NumberError::NotInteger("99999999999999999999999x".into()),
            ),
        ];
        for (s, e) in err {
            assert_eq!(parse_long(s.as_bytes()).as_ref(), Err(e), "{s}");
        }
    }

    #[test]
    fn java_double_grammar() {
        let ok: &[(&str, f64)] = &[
            ("1.5", 1.5),
            (".5", 0.5),
            ("5.", 5.0),
            ("+5.0", 5.0),
            ("-2.25", -2.25),
            ("1.0e3", 1000.0),
            ("1.0E+3", 1000.0),
            ("2.5e-1", 0.25),
            ("1.5f", 1.5),
            ("1.5F", 1.5),
            ("1.5d", 1.5),
            ("1.5D", 1.5),
            ("5", 5.0),
            ("1e3", 1000.0),
            ("0x1.8p1", 3.0),
            ("0X1.8P1", 3.0),
            ("-0x1p-2", -0.25),
            ("0x.8p1", 1.0),
            ("0x1.p0", 1.0),
            ("0x10p0d", 16.0),
            ("0x1.fffffffffffffp1023", f64::MAX),
            ("0x0.0000000000001p-1022", f64::from_bits(1)),
            ("0x1p-1074", f64::from_bits(1)),
            ("0x1p-1075", 0.0),
            ("0x1.0000000000001p-1075", f64::from_bits(1)),
            ("0x1.00000000000008p0", 1.0),
            ("0x1.00000000000018p0", 1.0 + 2.0 * f64::EPSILON),
            ("0x1.000000000000080000001p0", 1.0 + f64::EPSILON),
            ("0x0p0", 0.0),
            ("0x1p99999999999999999999", f64::INFINITY),
            ("0x1p-99999999999999999999", 0.0),
            ("23.86", 23.86),
        ];
        for &(s, v) in ok {
            let got = parse_java_double(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(got.to_bits(), v.to_bits(), "{s}: {got:e} != {v:e}");
        }
        assert_eq!(parse_java_double(b"1.0e400"), Ok(f64::INFINITY));
        assert_eq!(parse_java_double(b"-1.0e400"), Ok(f64::NEG_INFINITY));
        assert_eq!(parse_java_double(b"1.0e-400"), Ok(0.0));
        assert!(parse_java_double(b"NaN").unwrap().is_nan());
        assert_eq!(parse_java_double(b"-Infinity"), Ok(f64::NEG_INFINITY));
        for s in [
            "",
            ".",
            "+",
            "-.",
            "e5",
            "1.e",
            "1.5e+",
            "1.5x",
            "1.5ff",
            "0x1.8",
            "0x.p1",
            "0xp1",
            "1..5",
            "1.5.1",
            "nan",
            "inf",
            "Infinityf",
            " 1.5",
            "1.5 ",
            "0x1.8p",
            "1,5",
        ] {
            assert_eq!(
                parse_java_double(s.as_bytes()),
                Err(NumberError::NotDecimal(s.into())),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn python_float_grammar() {
        let ok: &[(&str, f64)] = &[
            ("1.5", 1.5),
            ("1e3", 1000.0),
            (".75", 0.75),
            ("5.", 5.0),
            ("+5", 5.0),
            ("-2.5e-1", -0.25),
            ("1.e2", 100.0),
            ("1_000.5", 1000.5),
            ("1e1_0", 1e10),
            ("inf", f64::INFINITY),
            ("-Infinity", f64::NEG_INFINITY),
            ("+iNf", f64::INFINITY),
            ("23.86", 23.86),
        ];
        for &(s, v) in ok {
            let got = parse_python_float(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(got.to_bits(), v.to_bits(), "{s}");
        }
        for s in ["nan", "NaN", "-nan", "nAn"] {
            assert!(parse_python_float(s.as_bytes()).unwrap().is_nan(), "{s}");
        }
        for s in [
            "", ".", "e5", "1e", "1.5f", "0x10", "_1", "1_", "1__0", "1_.5", "1._5", "abc", " 1", "1 ", "--1",
        ] {
            assert_eq!(
                parse_python_float(s.as_bytes()),
                Err(NumberError::NotDecimal(s.into())),
                "{s:?} should be rejected"
            );
        }
    }

    #[test]
    fn json_numbers_truncate_like_gson() {
        let ok: &[(&str, i64, bool)] = &[
            ("1", 1, true),
            ("-1", -1, true),
            ("1e3", 1000, true),
            ("1E+3", 1000, true),
            ("1.5", 1, false),
            ("-1.9", -1, false),
            ("1.0", 1, true),
            ("1.5e3", 1500, true),
            ("1.2345e2", 123, false),
            ("1E-2", 0, false),
            ("0e999999999999", 0, true),
            ("0.000e5", 0, true),
            ("+5", 5, true),
            (".5", 0, false),
            ("9223372036854775807", i64::MAX, true),
            ("-9223372036854775808", i64::MIN, true),
            ("92233720368547758.07e2", i64::MAX, true),
        ];
        for &(s, v, exact) in ok {
            assert_eq!(decimal_to_long(s.as_bytes()), Ok((v, exact)), "{s}");
        }
        for s in ["9223372036854775808", "1e19", "1e400", "-1e9999999999999999999999"] {
            assert_eq!(
                decimal_to_long(s.as_bytes()),
                Err(NumberError::OutOfRange(s.into())),
                "{s}"
            );
        }
        for s in ["", "-", ".", "abc", "1e", "1.5.5", "1x"] {
            assert_eq!(
                decimal_to_long(s.as_bytes()),
                Err(NumberError::NotDecimal(s.into())),
                "{s}"
            );
        }
    }

    #[test]
    fn quote_truncates_on_char_boundary() {
        assert_eq!(quote(b"abc"), "abc");
        let long = "é".repeat(40); // 80 bytes
        let q = quote(long.as_bytes());
        assert!(q.ends_with('…'));
        assert!(q.len() <= QUOTE_LIMIT + '…'.len_utf8());
        assert_eq!(quote(&[0xff, b'a']), "\u{fffd}a");
    }

    /// Java's `Double.toHexString` form of a finite double.
    fn java_hex(v: f64) -> String {
        let bits = v.to_bits();
        let sign = if v.is_sign_negative() { "-" } else { "" };
        let exp = ((bits >> 52) & 0x7ff) as i64;
        let frac = bits & ((1 << 52) - 1);
        if exp == 0 && frac == 0 {
            return format!("{sign}0x0.0p0");
        }
        if exp == 0 {
            format!("{sign}0x0.{frac:013x}p-1022")
        } else {
            format!("{sign}0x1.{frac:013x}p{}", exp - 1023)
        }
    }

    proptest! {
        #[test]
        fn parse_long_round_trips(v in any::<i64>()) {
            prop_assert_eq!(parse_long(v.to_string().as_bytes()), Ok(v));
        }

        #[test]
        fn plain_numbers_agree_with_the_full_parsers(s in "-?[0-9]{0,19}(\\.[0-9]{0,17})?|[-+.0-9e]{0,6}") {
            let b = s.as_bytes();
            match plain_number(b) {
                Some(Plain::Long(v)) => {
                    prop_assert_eq!(parse_long(b), Ok(v));
                    // Graphite's whole-number rule, which is Rust's i64 grammar without `+`.
                    prop_assert_eq!(s.parse::<i64>(), Ok(v));
                }
                Some(Plain::Double(v)) => {
                    prop_assert_eq!(parse_java_double(b).map(f64::to_bits), Ok(v.to_bits()));
                    prop_assert_eq!(parse_python_float(b).map(f64::to_bits), Ok(v.to_bits()));
                }
                None => {
                    // The plain form, spelled out: refused only when it is not that.
                    let body = s.strip_prefix('-').unwrap_or(&s);
                    let digits = body.bytes().filter(u8::is_ascii_digit).count();
                    let points = body.bytes().filter(|&c| c == b'.').count();
                    let plain = digits + points == body.len()
                        && ((points == 0 && (1..=18).contains(&digits)) || (points == 1 && (2..=16).contains(&body.len())));
                    prop_assert!(!plain, "{} refused", s);
                }
            }
        }

        #[test]
        fn short_digits_read_exactly_the_ascii_digits(s in "[0-9/:a]{0,20}") {
            let want = (!s.is_empty() && s.len() <= 18 && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().unwrap());
            prop_assert_eq!(short_digits(s.as_bytes()), want);
        }

        #[test]
        fn hex_floats_round_trip(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let s = java_hex(v);
            let got = parse_java_double(s.as_bytes()).unwrap();
            prop_assert_eq!(got.to_bits(), v.to_bits(), "{}", s);
        }

        #[test]
        fn decimal_round_trips(bits in any::<u64>()) {
            let v = f64::from_bits(bits);
            prop_assume!(v.is_finite());
            let s = format!("{v:?}");
            prop_assert_eq!(parse_java_double(s.as_bytes()).map(f64::to_bits), Ok(v.to_bits()), "{}", s);
        }

        #[test]
        fn short_decimals_equal_the_full_parser(
            negative in any::<bool>(),
            int in "[0-9]{0,9}",
            frac in "[0-9]{0,9}",
        ) {
            let text = format!("{}{int}.{frac}", if negative { "-" } else { "" });
            let full = match java_double(text.as_bytes()) {
                Ok((_, JavaDouble::Decimal(t))) => std::str::from_utf8(t).unwrap().parse::<f64>().ok(),
                _ => None,
            };
            let fast = short_decimal(text.as_bytes());
            if int.len() + frac.len() <= 15 {
                prop_assert_eq!(fast.map(f64::to_bits), full.map(f64::to_bits), "{}", text);
            } else {
                prop_assert_eq!(fast, None);
            }
        }

        #[test]
        fn never_panics(s in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = parse_long(&s);
            let _ = parse_java_double(&s);
            let _ = decimal_to_long(&s);
            let _ = parse_python_float(&s);
        }
    }
}
