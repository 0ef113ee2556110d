//! The OpenTSDB/KairosDB telnet line protocol: `put`, `putm` and `version`.
//!
//! The caller frames lines (delimiter stripped) and calls [`parse_line`] once per line;
//! a bad line is one error and never affects its neighbours. Everything follows
//! KairosDB 1.3 (`WordSplitter`, `PutMillisecondCommand`) except where DESIGN.md says
//! kairosd differs: lines must be UTF-8, NaN and Infinity are refused, and `puts`
//! (string data points) is not supported.
//!
//! This is the hottest parser in the daemon, so it works on byte offsets into the line
//! and keeps its only growable buffer in a per-connection [`Scratch`]. A connection's
//! [`TelnetDecoder`] also keeps a [`SeriesCache`]: [`parse_line_cached`] reads the
//! command, timestamp and value, and looks the rest (the metric and the raw tag bytes)
//! up there, so a series seen before is neither validated, split, sorted nor encoded
//! again.

use std::ops::Range;

use crate::datapoint::{PointBatch, Value};
use crate::decode::{DecodeError, Decoded, Decoder};
use crate::number::{self, quote, NumberError};
use crate::scan;
use crate::series_cache::{CacheLimits, Lookup, SeriesCache};
use crate::timestamp::{self, TimeUnit};

/// What a successfully parsed line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Line {
    /// A `put`/`putm`; exactly one point was appended to the batch.
    Point,
    /// `version`: the caller writes its version string back.
    Version,
    /// Nothing but whitespace; KairosDB ignores such lines silently.
    Blank,
}

/// Why a line was refused. Messages follow KairosDB's where it has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TelnetError {
    #[error("line is not valid UTF-8 (first bad byte at offset {offset}); kairosd reads telnet lines as UTF-8")]
    NotUtf8 { offset: usize },
    #[error("Unknown command: '{0}' (kairosd understands put, putm and version)")]
    UnknownCommand(String),
    #[error("Unsupported command: 'puts'; kairosd does not store string data points (send a number with put or putm)")]
    StringPut,
    #[error("{command} needs a metric name, a timestamp and a value: '{command} <metric> <timestamp> <value> [<tag>=<value> ...]' (got {fields} of the 3)")]
    MissingFields { command: &'static str, fields: usize },
    #[error("metricName may not be empty.")]
    EmptyMetric,
    #[error("timestamp: {0}")]
    Timestamp(NumberError),
    #[error("timestamp {0} in seconds is out of range once converted to milliseconds")]
    TimestampOverflow(i64),
    #[error("value: {0}")]
    Value(NumberError),
    #[error("value '{0}' is not a finite number; kairosd refuses NaN and Infinity")]
    NotFinite(String),
    #[error("tag[{0}] must be in the format 'name=value'.")]
    TagFormat(usize),
    #[error("tag[{0}].name may not be empty.")]
    TagNameEmpty(usize),
    #[error("tag[{0}].value may not be empty.")]
    TagValueEmpty(usize),
    #[error("tag[kairos_opt.ttl] must be a number")]
    TtlNotNumber,
    #[error("tag[kairos_opt.ttl] may not be negative.")]
    TtlNegative,
    #[error("tag '{0}' appears more than once; a tag name may be given once per line")]
    DuplicateTag(String),
}

impl DecodeError for TelnetError {}

/// [`parse_line`] as a [`Decoder`]: one frame is one line; `version` asks the transport
/// to write the version line back.
#[derive(Debug)]
pub struct TelnetDecoder {
    scratch: Scratch,
    cache: SeriesCache,
    reply: Box<[u8]>,
}

impl TelnetDecoder {
    /// `version` is what a `version` command is answered with (a newline is added).
    pub fn new(version: &str) -> TelnetDecoder {
        let mut reply = version.as_bytes().to_vec();
        reply.push(b'\n');
        TelnetDecoder {
            scratch: Scratch::default(),
            cache: SeriesCache::default(),
            reply: reply.into(),
        }
    }

    /// Bounds (or, with [`CacheLimits::OFF`], turns off) the connection's series cache.
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> TelnetDecoder {
        self.cache = SeriesCache::new(limits);
        self
    }

    pub fn cache(&self) -> &SeriesCache {
        &self.cache
    }
}

impl Decoder for TelnetDecoder {
    type Error = TelnetError;

    #[inline]
    fn decode(&mut self, frame: &[u8], batch: &mut PointBatch, reject: &mut impl FnMut(TelnetError)) -> Decoded {
        match parse_line_cached(frame, batch, &mut self.scratch, &mut self.cache) {
            Ok(Line::Point) => Decoded::POINT,
            Ok(Line::Blank) => Decoded::NOTHING,
            Ok(Line::Version) => Decoded {
                reply: true,
                ..Decoded::NOTHING
            },
            Err(err) => {
                reject(err);
                Decoded::REJECTED
            }
        }
    }

    fn reply(&self) -> &[u8] {
        &self.reply
    }
}

/// Buffers reused from line to line so that parsing allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Scratch {
    tags: Vec<TagSpan>,
}

/// Where one tag's name and value sit in the line.
#[derive(Debug, Clone)]
struct TagSpan {
    name: Range<usize>,
    value: Range<usize>,
}

/// The tag KairosDB uses to set a point's time to live instead of naming a tag.
const TTL_TAG: &[u8] = b"kairos_opt.ttl";

/// [`parse_line`], with the series of a line looked up in `cache` first.
///
/// Gives exactly what [`parse_line`] gives for every line: the cache is consulted only
/// once the command, timestamp and value have parsed, and only holds what
/// [`parse_line`] accepted; anything else (a miss, a bad or unusual line) takes the
/// full parse, whose result is then cached if it is a point.
#[inline]
pub fn parse_line_cached(
    line: &[u8],
    batch: &mut PointBatch,
    scratch: &mut Scratch,
    cache: &mut SeriesCache,
) -> Result<Line, TelnetError> {
    if !cache.enabled() {
        return parse_line(line, batch, scratch);
    }
    let Some(head) = parse_head(line) else {
        return parse_line(line, batch, scratch);
    };
    let (metric, tail) = (&line[head.metric], &line[head.tail..]);
    match cache.get(metric, tail) {
        Lookup::Hit { key, ttl } => {
            batch.push_encoded(key, head.timestamp, head.value, ttl);
            Ok(Line::Point)
        }
        Lookup::Miss(token) => {
            let parsed = parse_line(line, batch, scratch)?;
            if let (Line::Point, Some(last)) = (parsed, batch.records().last()) {
                cache.insert(token, metric, tail, batch.key(last), last.ttl);
            }
            Ok(parsed)
        }
    }
}

/// The part of a `put`/`putm` line before its tags, parsed; `None` for anything else
/// (including every bad line), which the full parse then reports.
struct Head {
    metric: Range<usize>,
    /// Where the tags start: everything from here is the cache key's second part.
    tail: usize,
    timestamp: i64,
    value: Value,
}

#[inline]
fn parse_head(line: &[u8]) -> Option<Head> {
    // The four words, unquoted (the common case), found without the quote handling;
    // a line with a quote among them is split by the full tokenizer.
    let mut words = [0..0, 0..0, 0..0, 0..0];
    let mut pos = 0;
    for word in &mut words {
        let start = scan::space_end(line, pos);
        if start == line.len() {
            return None;
        }
        if line[start] == b'"' {
            return parse_head_quoted(line);
        }
        pos = scan::word_end(line, start);
        *word = start..pos;
    }
    let [command, metric, ts, value] = words;
    head(line, command, metric, ts, value, pos)
}

#[cold]
fn parse_head_quoted(line: &[u8]) -> Option<Head> {
    let mut tokens = Tokens::new(line);
    let (command, metric, ts, value) = (tokens.next()?, tokens.next()?, tokens.next()?, tokens.next()?);
    head(line, command, metric, ts, value, tokens.pos)
}

#[inline]
fn head(
    line: &[u8],
    command: Range<usize>,
    metric: Range<usize>,
    ts: Range<usize>,
    value: Range<usize>,
    tail: usize,
) -> Option<Head> {
    let unit = match &line[command] {
        b"put" => TimeUnit::SecondsOrMillis,
        b"putm" => TimeUnit::Millis,
        _ => return None,
    };
    // Both parse ASCII only, so with the cached metric and tags (valid UTF-8 on their
    // own, between ASCII separators) the whole line is valid UTF-8.
    let ts_raw = match number::plain_number(&line[ts.clone()]) {
        Some(number::Plain::Long(v)) => v,
        _ => number::parse_long(&line[ts]).ok()?,
    };
    let timestamp = timestamp::to_millis(ts_raw, unit)?;
    let value = parse_value(&line[value]).ok()?;
    Some(Head {
        metric,
        tail,
        timestamp,
        value,
    })
}

/// Parses one line; see the module documentation.
pub fn parse_line(line: &[u8], batch: &mut PointBatch, scratch: &mut Scratch) -> Result<Line, TelnetError> {
    let text = std::str::from_utf8(line).map_err(|e| TelnetError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let mut tokens = Tokens::new(line);
    let Some(command) = tokens.next() else {
        return Ok(Line::Blank);
    };
    let (command, unit) = match &line[command.clone()] {
        b"put" => ("put", TimeUnit::SecondsOrMillis),
        b"putm" => ("putm", TimeUnit::Millis),
        b"version" => return Ok(Line::Version),
        b"puts" => return Err(TelnetError::StringPut),
        other => return Err(TelnetError::UnknownCommand(quote(other))),
    };
    let (metric, ts, value) = match (tokens.next(), tokens.next(), tokens.next()) {
        (Some(m), Some(t), Some(v)) => (m, t, v),
        (m, t, _) => {
            let fields = usize::from(m.is_some()) + usize::from(t.is_some());
            return Err(TelnetError::MissingFields { command, fields });
        }
    };

    // KairosDB's order of checks: timestamp, metric name, value, tags.
    let ts_raw = number::parse_long(&line[ts]).map_err(TelnetError::Timestamp)?;
    let timestamp = timestamp::to_millis(ts_raw, unit).ok_or(TelnetError::TimestampOverflow(ts_raw))?;
    if metric.is_empty() {
        return Err(TelnetError::EmptyMetric);
    }
    let value = parse_value(&line[value])?;

    let tags = &mut scratch.tags;
    tags.clear();
    let mut ttl = 0;
    for token in tokens {
        let index = tags.len();
        let span = split_tag(line, token, index)?;
        if &line[span.name.clone()] == TTL_TAG {
            ttl = parse_ttl(&line[span.value])?;
        } else {
            tags.push(span);
        }
    }
    sort_tags(tags, line);
    if let Some(w) = tags
        .windows(2)
        .find(|w| line[w[0].name.clone()] == line[w[1].name.clone()])
    {
        return Err(TelnetError::DuplicateTag(quote(&line[w[0].name.clone()])));
    }

    let metric = &text[metric];
    if tags.is_empty() {
        // KairosDB stores tag-less telnet points under `add=tag` (since 0.9).
        batch.push_parts(metric, [("add", "tag")], timestamp, value, ttl);
    } else {
        let pairs = tags.iter().map(|t| (&text[t.name.clone()], &text[t.value.clone()]));
        batch.push_parts(metric, pairs, timestamp, value, ttl);
    }
    Ok(Line::Point)
}

/// Sorts tag spans by name. Lines carry a handful of tags, where a plain insertion
/// sort costs about half of what the general sort's set-up does.
fn sort_tags(tags: &mut [TagSpan], line: &[u8]) {
    if tags.len() > 16 {
        tags.sort_unstable_by(|a, b| line[a.name.clone()].cmp(&line[b.name.clone()]));
        return;
    }
    for i in 1..tags.len() {
        let mut j = i;
        while j > 0 && line[tags[j - 1].name.clone()] > line[tags[j].name.clone()] {
            tags.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// A token with a `.` is a double in Java's grammar; anything else must be a strict long.
#[inline]
fn parse_value(token: &[u8]) -> Result<Value, TelnetError> {
    match number::plain_number(token) {
        Some(number::Plain::Long(v)) => return Ok(Value::Long(v)),
        Some(number::Plain::Double(v)) => return Ok(Value::Double(v)),
        None => {}
    }
    if token.contains(&b'.') {
        let v = number::parse_java_double(token).map_err(TelnetError::Value)?;
        if !v.is_finite() {
            return Err(TelnetError::NotFinite(quote(token)));
        }
        Ok(Value::Double(v))
    } else {
        number::parse_long(token).map(Value::Long).map_err(TelnetError::Value)
    }
}

/// Java's `Integer.parseInt`: optional sign, digits, 32-bit range; kairosd also refuses
/// a negative ttl, which KairosDB passes on to Cassandra.
fn parse_ttl(value: &[u8]) -> Result<u32, TelnetError> {
    let (negative, digits) = match value.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(TelnetError::TtlNotNumber);
    }
    let n = digits
        .iter()
        .try_fold(0u64, |acc, &b| {
            let next = acc * 10 + u64::from(b - b'0');
            (next <= 1 << 31).then_some(next)
        })
        .ok_or(TelnetError::TtlNotNumber)?;
    match (negative, n) {
        (_, 0) => Ok(0),
        (true, _) => Err(TelnetError::TtlNegative),
        (false, n) if n <= i32::MAX as u64 => Ok(n as u32),
        _ => Err(TelnetError::TtlNotNumber),
    }
}

/// Splits a tag token the way Java's `token.split("=")` does, which drops trailing
/// empty parts: `a=b=c` is `a`=`b`, `a==b` has an empty value, `a=` and `=` have too
/// few parts. `index` counts real tags for the messages.
fn split_tag(line: &[u8], token: Range<usize>, index: usize) -> Result<TagSpan, TelnetError> {
    let bytes = &line[token.clone()];
    // Tokens are short: a plain scan beats memchr's set-up here.
    let Some(eq) = bytes.iter().position(|&b| b == b'=') else {
        return Err(TelnetError::TagFormat(index));
    };
    let after = &bytes[eq + 1..];
    // With nothing but `=` after the name, Java's trailing-empty removal leaves < 2 parts.
    if after.iter().all(|&b| b == b'=') {
        return Err(TelnetError::TagFormat(index));
    }
    if eq == 0 {
        return Err(TelnetError::TagNameEmpty(index));
    }
    let value_len = after.iter().position(|&b| b == b'=').unwrap_or(after.len());
    if value_len == 0 {
        return Err(TelnetError::TagValueEmpty(index));
    }
    let value_start = token.start + eq + 1;
    Ok(TagSpan {
        name: token.start..token.start + eq,
        value: value_start..value_start + value_len,
    })
}

/// KairosDB 1.3's `WordSplitter`: tokens are separated by runs of bytes <= 0x20; a
/// token that starts with `"` runs until a `"` followed by whitespace or the end of the
/// line, without its quotes. Yields byte ranges into the line.
struct Tokens<'a> {
    line: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn new(line: &'a [u8]) -> Tokens<'a> {
        Tokens { line, pos: 0 }
    }
}

impl Iterator for Tokens<'_> {
    type Item = Range<usize>;

    fn next(&mut self) -> Option<Range<usize>> {
        let line = self.line;
        loop {
            self.pos = scan::space_end(line, self.pos);
            if self.pos == line.len() {
                return None;
            }
            if line[self.pos] != b'"' {
                let start = self.pos;
                self.pos = scan::word_end(line, start);
                return Some(start..self.pos);
            }
            // Quoted: ends at whitespace right after a `"` (the opening one included,
            // so `" x` is an empty quote that yields nothing, as in Java).
            let start = self.pos + 1;
            let mut prev = b'"';
            let mut i = start;
            while i < line.len() {
                let c = line[i];
                if c <= b' ' && prev == b'"' {
                    self.pos = i + 1;
                    if i > start {
                        return Some(start..i - 1);
                    }
                    break;
                }
                prev = c;
                i += 1;
            }
            if i == line.len() {
                self.pos = line.len();
                if start >= line.len() {
                    return None;
                }
                let end = if line[line.len() - 1] == b'"' {
                    line.len() - 1
                } else {
                    line.len()
                };
                return Some(start..end);
            }
        }
    }
}

#[cfg(test)]
mod tests;
