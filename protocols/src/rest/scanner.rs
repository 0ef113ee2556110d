//! A hand-written reader for the bodies agents send, one pass over the bytes: the
//! top-level array (or single object), metric objects with plain keys, `tags` objects,
//! `datapoints` arrays of arrays, and any scalar or nested value where serde_json would
//! capture or skip one. It fills the same raw fields as the general reader
//! (`serde_reader`) and hands them to the same validation.
//!
//! It reads a strict subset of what serde_json reads, and reads it the same way: each
//! value's text starts and ends where serde_json's `RawValue` would, strings and
//! numbers are checked by the rules of serde_json's `ignore_value`, keys by those of its
//! string parser. Anything else (a syntax error, an escape in a key, a metric that is
//! not an object, a `tags` that is not an object, nesting deeper than [`MAX_DEPTH`])
//! gives [`Fallback`], and the caller reads the whole body again with serde_json. So the
//! scanner never writes an error message about syntax: those, with their positions,
//! are always serde_json's.

use std::borrow::Cow;

use super::{Entry, Fields, Shape, State};
use crate::series_cache::{Lookup, SeriesCache};

/// The body is outside what the scanner reads; the general reader takes it from the start.
#[derive(Debug)]
pub(super) struct Fallback;

type Scan<T> = Result<T, Fallback>;

/// Brackets open at once inside one skipped or captured value (deeper ones fall back).
const MAX_DEPTH: usize = 32;

/// Reads `text` into `state`, metric by metric. With a `cache`, a metric object whose
/// `name` and `tags` texts the cache holds takes its series key from there.
pub(super) fn read<'de>(text: &'de str, state: &mut State<'de>, cache: Option<&mut SeriesCache>) -> Scan<()> {
    let mut cache = cache.filter(|c| c.enabled());
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    s.ws();
    match s.peek() {
        Some(b'[') => {
            s.i += 1;
            s.ws();
            if s.peek() == Some(b']') {
                s.i += 1;
            } else {
                loop {
                    s.metric(state, cache.as_deref_mut())?;
                    state.index += 1;
                    s.ws();
                    match s.next() {
                        Some(b',') => s.ws(),
                        Some(b']') => break,
                        _ => return Err(Fallback),
                    }
                }
            }
        }
        Some(b'{') => s.metric(state, cache)?,
        _ => return Err(Fallback),
    }
    s.ws();
    if s.i == s.b.len() {
        Ok(())
    } else {
        Err(Fallback)
    }
}

/// Where a metric object's `tags` object lies, when it is read after the object (for
/// the cache lookup) instead of while scanning it.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

struct Scanner<'de> {
    text: &'de str,
    b: &'de [u8],
    i: usize,
}

impl<'de> Scanner<'de> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline(always)]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek();
        self.i += 1;
        b
    }

    /// JSON whitespace, as serde_json skips it.
    #[inline(always)]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    #[inline(always)]
    fn eat(&mut self, c: u8) -> Scan<()> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// The text from `start` to here (both ends sit on ASCII bytes, so on character
    /// boundaries).
    #[inline]
    fn text_from(&self, start: usize) -> Scan<&'de str> {
        self.text.get(start..self.i).ok_or(Fallback)
    }

    /// At a string's opening quote: steps past it, checking it as serde_json's
    /// `ignore_str` does (no control characters; escapes well formed, not decoded).
    #[inline(always)]
    fn string(&mut self) -> Scan<()> {
        self.i += 1;
        loop {
            self.i = string_stop(self.b, self.i);
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(());
                }
                Some(b'\\') => {
                    self.i += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.i += 1,
                        Some(b'u') => {
                            let hex = self.b.get(self.i + 1..self.i + 5).ok_or(Fallback)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Fallback);
                            }
                            self.i += 5;
                        }
                        _ => return Err(Fallback),
                    }
                }
                // A control character, or the end of the body.
                _ => return Err(Fallback),
            }
        }
    }

    /// An object key: a string without escapes (serde_json decodes keys with its full
    /// string parser, whose escape rules are left to it). Gives the key's text.
    #[inline(always)]
    fn key(&mut self) -> Scan<&'de str> {
        if self.peek() != Some(b'"') {
            return Err(Fallback);
        }
        let start = self.i + 1;
        let end = string_stop(self.b, start);
        if self.b.get(end) != Some(&b'"') {
            return Err(Fallback);
        }
        self.i = end + 1;
        self.text.get(start..end).ok_or(Fallback)
    }

    /// `key`, whitespace, `:`, whitespace.
    #[inline(always)]
    fn key_colon(&mut self) -> Scan<&'de str> {
        let key = self.key()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Ok(key)
    }

    /// Steps over a run of ASCII digits (eight at a time: timestamps have 13), giving
    /// its length.
    #[inline(always)]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
            // The high bit of each byte that is not a digit: below 0x30 borrows, 0x3A and
            // up carries into it, 0x80 and up has it. A borrow or carry only reaches bytes
            // above a marked one, so the lowest mark is exact.
            let not_digit = (x.wrapping_sub(LOW * 0x30) | x.wrapping_add(LOW * 0x46) | x) & HIGH;
            if not_digit != 0 {
                self.i += (not_digit.trailing_zeros() / 8) as usize;
                return self.i - start;
            }
            self.i += 8;
        }
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// A number by serde_json's `ignore_integer` grammar: `-?(0|[1-9][0-9]*)`, then an
    /// optional fraction and exponent, each with at least one digit; any length.
    #[inline(always)]
    fn number(&mut self) -> Scan<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => {
                self.i += 1;
                if let Some(b'0'..=b'9') = self.peek() {
                    return Err(Fallback);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Fallback),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Fallback);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Fallback);
            }
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        if self.b.get(self.i..self.i + word.len()) == Some(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Fallback)
        }
    }

    /// Steps over a scalar (string, number, `null`, `true`, `false`).
    #[inline(always)]
    fn scalar(&mut self) -> Scan<()> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            _ => Err(Fallback),
        }
    }

    /// Steps over one value as serde_json's `ignore_value` does, and gives its text.
    #[inline(always)]
    fn value(&mut self) -> Scan<&'de str> {
        let start = self.i;
        match self.peek() {
            Some(b'[' | b'{') => self.nested()?,
            _ => self.scalar()?,
        }
        self.text_from(start)
    }

    /// Steps over an array or object, without recursion: the open brackets are kept on
    /// a small stack, and anything deeper than [`MAX_DEPTH`] falls back.
    fn nested(&mut self) -> Scan<()> {
        let mut open = [0u8; MAX_DEPTH];
        let mut depth = 0;
        loop {
            // At the start of a value.
            match self.peek() {
                Some(c @ (b'[' | b'{')) => {
                    if depth == MAX_DEPTH {
                        return Err(Fallback);
                    }
                    self.i += 1;
                    self.ws();
                    let close = if c == b'[' { b']' } else { b'}' };
                    if self.peek() == Some(close) {
                        self.i += 1;
                    } else {
                        open[depth] = c;
                        depth += 1;
                        if c == b'{' {
                            self.key_any()?;
                        }
                        continue;
                    }
                }
                _ => self.scalar()?,
            }
            // After a value: close what it ends, or go on to the next one.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                self.ws();
                let inner = open[depth - 1];
                match self.next() {
                    Some(b',') => {
                        self.ws();
                        if inner == b'{' {
                            self.key_any()?;
                        }
                        break;
                    }
                    Some(b']') if inner == b'[' => depth -= 1,
                    Some(b'}') if inner == b'{' => depth -= 1,
                    _ => return Err(Fallback),
                }
            }
        }
    }

    /// A key inside a skipped value (`ignore_value` checks it as it checks any string),
    /// then the colon.
    fn key_any(&mut self) -> Scan<()> {
        if self.peek() != Some(b'"') {
            return Err(Fallback);
        }
        self.string()?;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Ok(())
    }

    /// One metric object, validated and stored.
    fn metric(&mut self, state: &mut State<'de>, cache: Option<&mut SeriesCache>) -> Scan<()> {
        self.eat(b'{')?;
        self.ws();
        state.tags.clear();
        state.entries.clear();
        let mut f = Fields::default();
        let mut tags_at: Option<Span> = None;
        if self.peek() == Some(b'}') {
            self.i += 1;
        } else {
            loop {
                let key = self.key_colon()?;
                // A repeated field replaces the earlier one, as in the general reader.
                match key.as_bytes() {
                    b"name" => f.name = Some(self.value()?),
                    b"datapoints" => f.datapoints = self.datapoints(&mut state.entries)?,
                    b"tags" => {
                        if cache.is_some() {
                            let start = self.i;
                            self.tags(None)?;
                            tags_at = Some(Span { start, end: self.i });
                        } else {
                            self.tags(Some(&mut state.tags))?;
                        }
                        f.tags = Shape::Present;
                    }
                    b"timestamp" => f.timestamp = Some(self.value()?),
                    b"time" => f.time = Some(self.value()?),
                    b"value" => f.value = Some(self.value()?),
                    b"type" => f.kind = Some(self.value()?),
                    b"ttl" => f.ttl = Some(self.value()?),
                    b"skip_validate" => f.skip_validate = Some(self.value()?),
                    _ => {
                        self.value()?;
                    }
                }
                self.ws();
                match self.next() {
                    Some(b',') => self.ws(),
                    Some(b'}') => break,
                    _ => return Err(Fallback),
                }
            }
        }

        let (Some(cache), Some(span)) = (cache, tags_at) else {
            state.finish(f, None);
            return Ok(());
        };
        let tags_text = &self.b[span.start..span.end];
        // The cache holds what validated with validation on, keyed by the name's text.
        let lookup = match f.name {
            Some(name) if f.skip_validate.is_none() => Some((name, cache.get(name.as_bytes(), tags_text))),
            _ => None,
        };
        if let Some((_, Lookup::Hit { key, .. })) = &lookup {
            state.finish(f, Some(*key));
            return Ok(());
        }
        let mut again = Scanner {
            text: self.text,
            b: self.b,
            i: span.start,
        };
        again.tags(Some(&mut state.tags))?;
        let stored = state.finish(f, None);
        if let Some((name, Lookup::Miss(token))) = lookup {
            if stored {
                cache.insert(token, name.as_bytes(), tags_text, &state.key, 0);
            }
        }
        Ok(())
    }

    /// A `tags` object of plain keys to any values, into `out` (cleared first, as a
    /// repeated `tags` replaces the earlier one); `None` only checks it.
    fn tags(&mut self, mut out: Option<&mut Vec<(Cow<'de, str>, &'de str)>>) -> Scan<()> {
        self.eat(b'{')?;
        self.ws();
        if let Some(out) = out.as_deref_mut() {
            out.clear();
        }
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(());
        }
        loop {
            let key = self.key_colon()?;
            let value = self.value()?;
            if let Some(out) = out.as_deref_mut() {
                out.push((Cow::Borrowed(key), value));
            }
            self.ws();
            match self.next() {
                Some(b',') => self.ws(),
                Some(b'}') => return Ok(()),
                _ => return Err(Fallback),
            }
        }
    }

    /// A `datapoints` array of arrays into `out` (cleared first); anything but an array
    /// of arrays falls back.
    fn datapoints(&mut self, out: &mut Vec<Entry<'de>>) -> Scan<Shape> {
        self.eat(b'[')?;
        self.ws();
        out.clear();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Shape::Present);
        }
        loop {
            out.push(self.entry()?);
            self.ws();
            match self.next() {
                Some(b',') => self.ws(),
                Some(b']') => return Ok(Shape::Present),
                _ => return Err(Fallback),
            }
        }
    }

    /// `[timestamp, value]` or `[timestamp, value, type]`; the first three items are
    /// kept, the rest counted.
    #[inline]
    fn entry(&mut self) -> Scan<Entry<'de>> {
        self.eat(b'[')?;
        self.ws();
        let mut items = [None; 3];
        let mut len = 0;
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Entry::Array { len, items });
        }
        loop {
            let item = self.value()?;
            if let Some(slot) = items.get_mut(len) {
                *slot = Some(item);
            }
            len += 1;
            self.ws();
            match self.next() {
                Some(b',') => self.ws(),
                Some(b']') => return Ok(Entry::Array { len, items }),
                _ => return Err(Fallback),
            }
        }
    }
}

const LOW: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The index of the first `"`, `\` or control character (below 0x20) at or after `i`,
/// or `b.len()`; eight bytes at a time.
#[inline(always)]
fn string_stop(b: &[u8], mut i: usize) -> usize {
    while i + 8 <= b.len() {
        let x = u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        let quote = x ^ (LOW * u64::from(b'"'));
        let backslash = x ^ (LOW * u64::from(b'\\'));
        // Each term marks the bytes that are zero (or below 0x20); a borrow only ever
        // marks bytes above a true mark, so the lowest mark of the three is exact.
        let stop = (quote.wrapping_sub(LOW) & !quote)
            | (backslash.wrapping_sub(LOW) & !backslash)
            | (x.wrapping_sub(LOW * 0x20) & !x);
        let stop = stop & HIGH;
        if stop != 0 {
            return i + (stop.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < b.len() && !matches!(b[i], b'"' | b'\\' | 0..=0x1f) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn digits_stops_at_the_first_non_digit(
            chars in proptest::collection::vec(prop_oneof![4 => proptest::char::range('0', '9'), 1 => any::<char>()], 0..40),
            from in 0usize..40,
        ) {
            let text: String = chars.into_iter().collect();
            let b = text.as_bytes();
            let from = from.min(b.len());
            let want = b[from..].iter().take_while(|c| c.is_ascii_digit()).count();
            let mut s = Scanner { text: &text, b, i: from };
            prop_assert_eq!(s.digits(), want);
            prop_assert_eq!(s.i, from + want);
        }

        #[test]
        fn string_stop_is_the_first_stop_byte(
            b in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), 0u8..0x21, 0x20u8..0xff], 0..40),
            from in 0usize..40,
        ) {
            let from = from.min(b.len());
            let want = b[from..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .map_or(b.len(), |p| from + p);
            prop_assert_eq!(string_stop(&b, from), want);
        }
    }
}
