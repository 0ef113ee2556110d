//! Graphite plaintext lines: `<path> <value> [<timestamp>]`.
//!
//! Fields are separated by runs of spaces or tabs (any byte <= 0x20, so a CRLF's `\r`
//! is whitespace too). Values and timestamps are read with Python's `float()` grammar,
//! as carbon reads them: `1e3` and `.75` are numbers, and so are `nan` and `inf` in any
//! case, which are skipped and counted (collectd sends `nan` as the first sample of every
//! rate). A value written as a whole number is stored as a long, anything else as a
//! double. Timestamps are seconds; a fractional one is truncated, and `-1` or no
//! timestamp at all means now.
//!
//! A connection's [`TextDecoder`] keeps a [`SeriesCache`] from raw paths to series keys
//! ([`parse_line_cached`]), so a path seen before is not validated or mapped again.

use std::sync::Arc;

use crate::datapoint::{PointBatch, Value};
use crate::decode::{Decoded, Decoder};
use crate::number::{self, quote, Plain};
use crate::scan;
use crate::series_cache::{CacheLimits, Lookup, SeriesCache};

use super::path::{PathMapper, PathScratch};
use super::GraphiteError;

/// What a successfully parsed line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    Point,
    /// Nothing but whitespace: skipped silently.
    Blank,
}

/// Parses one line (without its `\n`) into `batch`; `now_ms` stamps a line without a
/// timestamp.
pub fn parse_line(
    line: &[u8],
    now_ms: i64,
    mapper: &PathMapper,
    batch: &mut PointBatch,
    scratch: &mut PathScratch,
) -> Result<Line, GraphiteError> {
    let text = std::str::from_utf8(line).map_err(|e| GraphiteError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut fields = Fields { line, pos: 0 };
    let Some(path) = fields.next() else {
        return Ok(Line::Blank);
    };
    let value = fields.next().ok_or(GraphiteError::Fields { fields: 1 })?;
    let timestamp = fields.next();
    if fields.next().is_some() {
        return Err(GraphiteError::Fields {
            fields: 4 + fields.count(),
        });
    }
    let value = parse_value(&line[value])?;
    let timestamp = match timestamp {
        Some(t) => parse_timestamp(&line[t], now_ms)?,
        None => now_ms,
    };
    // The separators are ASCII, so every field boundary is a character boundary.
    mapper.push(&text[path], timestamp, value, batch, scratch)?;
    Ok(Line::Point)
}

/// [`parse_line`], with the path looked up in `cache` first; gives exactly what
/// [`parse_line`] gives for every line (the cache is consulted only once the value and
/// timestamp have parsed, and holds only paths the mapper accepted).
#[inline]
pub fn parse_line_cached(
    line: &[u8],
    now_ms: i64,
    mapper: &PathMapper,
    batch: &mut PointBatch,
    scratch: &mut PathScratch,
    cache: &mut SeriesCache,
) -> Result<Line, GraphiteError> {
    if !cache.enabled() {
        return parse_line(line, now_ms, mapper, batch, scratch);
    }
    let Some((path, timestamp, value)) = parse_head(line, now_ms) else {
        return parse_line(line, now_ms, mapper, batch, scratch);
    };
    let path = &line[path];
    match cache.get(path, b"") {
        Lookup::Hit { key, ttl } => {
            batch.push_encoded(key, timestamp, value, ttl);
            Ok(Line::Point)
        }
        Lookup::Miss(token) => {
            let parsed = parse_line(line, now_ms, mapper, batch, scratch)?;
            if let (Line::Point, Some(last)) = (parsed, batch.records().last()) {
                cache.insert(token, path, b"", batch.key(last), last.ttl);
            }
            Ok(parsed)
        }
    }
}

/// The path's range, the timestamp and the value of a well-formed line; `None` for
/// anything else, which the full parse then reports. The value and timestamp parse
/// ASCII only, so with a cached path the line is valid UTF-8.
#[inline]
fn parse_head(line: &[u8], now_ms: i64) -> Option<(std::ops::Range<usize>, i64, Value)> {
    let mut fields = Fields { line, pos: 0 };
    let path = fields.next()?;
    let value = fields.next()?;
    let timestamp = fields.next();
    if fields.next().is_some() {
        return None;
    }
    let value = parse_value(&line[value]).ok()?;
    let timestamp = match timestamp {
        Some(t) => parse_timestamp(&line[t], now_ms).ok()?,
        None => now_ms,
    };
    Some((path, timestamp, value))
}

/// Byte ranges of the fields of a line: runs of bytes above 0x20.
struct Fields<'a> {
    line: &'a [u8],
    pos: usize,
}

impl Iterator for Fields<'_> {
    type Item = std::ops::Range<usize>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let line = self.line;
        self.pos = scan::space_end(line, self.pos);
        if self.pos == line.len() {
            return None;
        }
        let start = self.pos;
        self.pos = scan::word_end(line, start);
        Some(start..self.pos)
    }
}

/// A value as carbon's `float(value)` reads it; a whole number stays a long.
#[inline]
pub fn parse_value(token: &[u8]) -> Result<Value, GraphiteError> {
    match number::plain_number(token) {
        Some(Plain::Long(v)) => return Ok(Value::Long(v)),
        Some(Plain::Double(v)) => return Ok(Value::Double(v)),
        None => {}
    }
    if let Some(v) = whole_number(token) {
        return Ok(Value::Long(v));
    }
    let v = number::parse_python_float(token).map_err(GraphiteError::Value)?;
    if !v.is_finite() {
        return Err(GraphiteError::NotFinite(quote(token)));
    }
    Ok(Value::Double(v))
}

/// A timestamp in seconds as carbon's `int(float(ts))` reads it, in milliseconds;
/// `-1` means now.
#[inline]
pub fn parse_timestamp(token: &[u8], now_ms: i64) -> Result<i64, GraphiteError> {
    let seconds = match number::plain_number(token) {
        Some(Plain::Long(s)) => s,
        // At most 15 digits: far inside the range, truncated as below.
        Some(Plain::Double(f)) => f.trunc() as i64,
        None => match whole_number(token) {
            Some(s) => s,
            None => {
                let f = number::parse_python_float(token).map_err(GraphiteError::Timestamp)?;
                // Truncated toward zero; beyond ±2^63 ms it cannot be stored.
                if !f.is_finite() || f.abs() >= 9.2e15 {
                    return Err(GraphiteError::TimestampRange(quote(token)));
                }
                f.trunc() as i64
            }
        },
    };
    if seconds == -1 {
        return Ok(now_ms);
    }
    seconds
        .checked_mul(1000)
        .ok_or_else(|| GraphiteError::TimestampRange(quote(token)))
}

/// `[+-]?[0-9]+` within the i64 range, without building an error for anything else
/// (this runs on every value, and most values are not whole numbers).
#[inline]
fn whole_number(token: &[u8]) -> Option<i64> {
    let (negative, digits) = match token.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, token),
    };
    if let Some(m) = number::short_digits(digits) {
        let m = m as i64;
        return Some(if negative { -m } else { m });
    }
    if digits.len() != 19 {
        return None;
    }
    let mut magnitude: u64 = 0;
    for &b in digits {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        magnitude = magnitude * 10 + u64::from(d);
    }
    if negative {
        (magnitude <= 1 << 63).then(|| (magnitude as i64).wrapping_neg())
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// [`parse_line`] as a [`Decoder`].
#[derive(Debug)]
pub struct TextDecoder {
    mapper: Arc<PathMapper>,
    scratch: PathScratch,
    cache: SeriesCache,
    now_ms: i64,
}

impl TextDecoder {
    pub fn new(mapper: Arc<PathMapper>) -> TextDecoder {
        TextDecoder {
            scratch: mapper.scratch(),
            mapper,
            cache: SeriesCache::default(),
            now_ms: 0,
        }
    }

    /// Bounds (or, with [`CacheLimits::OFF`], turns off) the series cache.
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> TextDecoder {
        self.cache = SeriesCache::new(limits);
        self
    }

    pub fn cache(&self) -> &SeriesCache {
        &self.cache
    }
}

impl Decoder for TextDecoder {
    type Error = GraphiteError;

    #[inline]
    fn decode(&mut self, frame: &[u8], batch: &mut PointBatch, reject: &mut impl FnMut(GraphiteError)) -> Decoded {
        match parse_line_cached(
            frame,
            self.now_ms,
            &self.mapper,
            batch,
            &mut self.scratch,
            &mut self.cache,
        ) {
            Ok(Line::Point) => Decoded::POINT,
            Ok(Line::Blank) => Decoded::NOTHING,
            Err(e) => {
                reject(e);
                Decoded::REJECTED
            }
        }
    }

    fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graphite::path::PathError;

    const NOW: i64 = 1_700_000_123_000;

    fn parse(line: &str) -> Result<Vec<(String, i64, Value)>, GraphiteError> {
        let mapper = PathMapper::Graphite;
        let mut batch = PointBatch::new();
        let mut scratch = mapper.scratch();
        parse_line(line.as_bytes(), NOW, &mapper, &mut batch, &mut scratch)?;
        Ok(batch
            .to_points()
            .into_iter()
            .map(|p| (p.metric, p.timestamp, p.value))
            .collect())
    }

    fn one(line: &str) -> (String, i64, Value) {
        parse(line).unwrap_or_else(|e| panic!("{line:?}: {e}")).remove(0)
    }

    #[test]
    fn lines_as_carbon_reads_them() {
        assert_eq!(
            one("a.b 42 1700000000"),
            ("a.b".into(), 1_700_000_000_000, Value::Long(42))
        );
        assert_eq!(one("a.b\t\t2.5   1700000000\r").2, Value::Double(2.5));
        assert_eq!(one("  a.b 2.5 1700000000  ").0, "a.b");
        assert_eq!(one("a 1e3 1700000000").2, Value::Double(1000.0));
        assert_eq!(one("a .75 1700000000").2, Value::Double(0.75));
        assert_eq!(one("a +5 1700000000").2, Value::Long(5));
        assert_eq!(one("a -5 1700000000").2, Value::Long(-5));
        assert_eq!(one("a 1_000 1700000000").2, Value::Double(1000.0));
        assert_eq!(one("a 99999999999999999999 1").2, Value::Double(1e20));
        // Timestamps: truncated seconds; -1 and a missing one mean now.
        assert_eq!(one("a 1 1700000000.9").1, 1_700_000_000_000);
        assert_eq!(one("a 1 1.7e9").1, 1_700_000_000_000);
        assert_eq!(one("a 1 -1").1, NOW);
        assert_eq!(one("a 1 -1.5").1, NOW);
        assert_eq!(one("a 1").1, NOW);
        assert_eq!(one("a 1 -5").1, -5000);
        assert_eq!(parse("   \r").unwrap(), vec![]);
    }

    #[test]
    fn bad_lines_say_why() {
        for (line, want) in [
            ("a", "got 1 fields"),
            ("a 1 2 3", "got 4 fields"),
            ("a 1 2 3 4 5", "got 6 fields"),
            ("a x 1", "value: 'x' is not a decimal number"),
            ("a 1.5f 1", "value: '1.5f' is not"),
            ("a 1 yesterday", "timestamp: 'yesterday'"),
            ("a 1 nan", "timestamp 'nan'"),
            ("a 1 1e300", "timestamp '1e300'"),
            ("a 1 9223372036854776", "timestamp '9223372036854776'"),
            (";t=1 1 1", "the metric path is empty"),
        ] {
            let err = parse(line).unwrap_err().to_string();
            assert!(err.contains(want), "{line}: {err}");
        }
        let bad_utf8 = b"a\xff 1 1";
        let mapper = PathMapper::Graphite;
        let err = parse_line(bad_utf8, NOW, &mapper, &mut PointBatch::new(), &mut mapper.scratch()).unwrap_err();
        assert_eq!(err, GraphiteError::NotUtf8 { offset: 1 });
        assert!(matches!(
            parse("a;b 1 1"),
            Err(GraphiteError::Path(PathError::TagFormat { .. }))
        ));
    }

    #[test]
    fn nan_and_infinity_are_routine_skips() {
        use crate::decode::DecodeError;
        for v in ["nan", "NaN", "-nan", "inf", "-Infinity", "INF", "1e999"] {
            let err = parse(&format!("a {v} 1")).unwrap_err();
            assert!(matches!(err, GraphiteError::NotFinite(_)), "{v}: {err}");
            assert!(err.is_routine());
        }
        assert!(!parse("a x 1").unwrap_err().is_routine());
    }

    #[test]
    fn decoder_counts_and_reports() {
        let mut d = TextDecoder::new(Arc::new(PathMapper::Graphite));
        d.set_now(NOW);
        let mut batch = PointBatch::new();
        let mut errors = Vec::new();
        let mut reject = |e: GraphiteError| errors.push(e.to_string());
        assert_eq!(d.decode(b"m;h=a 1", &mut batch, &mut reject), Decoded::POINT);
        assert_eq!(d.decode(b"m nan 1", &mut batch, &mut reject), Decoded::REJECTED);
        assert_eq!(d.decode(b"", &mut batch, &mut reject), Decoded::NOTHING);
        assert_eq!(errors.len(), 1);
        let p = &batch.to_points()[0];
        assert_eq!((p.timestamp, p.tags.len()), (NOW, 1));
    }

    const PATHS: &[&[u8]] = &[
        b"a.b.c",
        b"a.b.c",
        b"disk.used;rack=a1;dc=eu",
        b"disk.used;dc=eu;rack=a1",
        b"m;t=1;t=2",
        b"m;name=x;t=1",
        b"m;ab",
        b"m;a=",
        b";a=b",
        b"m;a=~b",
        b"a\xff.b",
        b"caf\xc3\xa9.x",
        b"servers.web01.cpu",
        b"drop.me",
        b"x\x00y",
    ];
    const VALUES: &[&[u8]] = &[
        b"42", b"-1", b"2.5", b"+5", b"1e3", b".75", b"1_000", b"nan", b"inf", b"x", b"9\xff",
    ];
    const TIMESTAMPS: &[Option<&[u8]>] = &[
        Some(b"1700000000"),
        Some(b"-1"),
        Some(b"1700000000.9"),
        Some(b"1e300"),
        Some(b"x"),
        None,
        Some(b"1 2"),
    ];
    const SEPARATORS: &[&[u8]] = &[b" ", b" ", b"  ", b"\t", b" \r "];

    fn run(
        lines: &[Vec<u8>],
        mut parse: impl FnMut(&[u8], &mut PointBatch) -> Result<Line, GraphiteError>,
    ) -> (Vec<Result<Line, String>>, Vec<(Vec<u8>, i64, Value, u32)>) {
        let mut batch = PointBatch::new();
        let outcomes = lines
            .iter()
            .map(|l| parse(l, &mut batch).map_err(|e| e.to_string()))
            .collect();
        let points = batch
            .records()
            .iter()
            .map(|r| (batch.key(r).to_vec(), r.timestamp, r.value, r.ttl))
            .collect();
        (outcomes, points)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn cached_parse_equals_uncached(
            pool in proptest::collection::vec(
                (0..PATHS.len(), 0..VALUES.len(), 0..TIMESTAMPS.len(), 0..SEPARATORS.len(), proptest::bool::ANY, proptest::bool::ANY),
                1..10,
            ),
            picks in proptest::collection::vec(proptest::prelude::any::<proptest::sample::Index>(), 1..50),
            tiny in proptest::bool::ANY,
        ) {
            let pool: Vec<Vec<u8>> = pool
                .iter()
                .map(|&(p, v, t, s, lead, cr)| {
                    let sep = SEPARATORS[s];
                    let mut line = if lead { sep.to_vec() } else { Vec::new() };
                    line.extend_from_slice(PATHS[p]);
                    line.extend_from_slice(sep);
                    line.extend_from_slice(VALUES[v]);
                    if let Some(t) = TIMESTAMPS[t] {
                        line.extend_from_slice(sep);
                        line.extend_from_slice(t);
                    }
                    if cr {
                        line.push(b'\r');
                    }
                    line
                })
                .collect();
            let lines: Vec<Vec<u8>> = picks.iter().map(|i| pool[i.index(pool.len())].clone()).collect();
            let host = crate::graphite::host::HostTagConfig::default();
            let mappers = [
                PathMapper::Graphite,
                PathMapper::new(crate::graphite::TagParserKind::Templates, &host, "^drop\\.me; .* metric.host.metric*").unwrap(),
                PathMapper::new(crate::graphite::TagParserKind::Host, &host, "").unwrap(),
            ];
            let limits = if tiny {
                CacheLimits { entries: 4, bytes: 600 }
            } else {
                CacheLimits::DEFAULT
            };
            for mapper in &mappers {
                let mut scratch = mapper.scratch();
                let want = run(&lines, |l, b| parse_line(l, NOW, mapper, b, &mut scratch));
                let mut scratch = mapper.scratch();
                let mut cache = SeriesCache::new(limits);
                let got = run(&lines, |l, b| parse_line_cached(l, NOW, mapper, b, &mut scratch, &mut cache));
                proptest::prop_assert_eq!(got, want);
            }
        }
    }
}
