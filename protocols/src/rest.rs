//! `POST /api/v1/datapoints` bodies: a JSON array of metric objects, or one object.
//!
//! KairosDB streams through the body and publishes each metric object as soon as it is
//! validated, so a 400 still keeps every valid metric before (and after) a bad one, and
//! a syntax error keeps what came before it. kairosd does the same: each metric object
//! is read into borrowed raw fields, validated (module `metric`) and appended to the
//! batch before the next one is read.
//!
//! Two readers fill those fields. The hand-written scanner (module `scanner`) reads the
//! shapes agents send (plain keys, scalars, `tags` objects, `datapoints` arrays) in one
//! pass; on anything outside that subset, including every syntax error, it gives up and
//! the whole body is read again from the start by serde_json (module `serde_reader`),
//! whose error texts and positions are the ones a client gets. Both hand the same raw
//! fields to the same validation, so a body gives the same points, in the same order,
//! and the same messages whichever reader took it (a differential proptest and the
//! `rest_body` fuzz target hold them to that).
//!
//! Scalars are kept as their JSON text because KairosDB infers a value's type from its
//! *text* (`1` is a long, `1.0` a double), which a parsed `f64` no longer has. The
//! tag list, the datapoint list and the key buffer are reused from metric to metric.
//!
//! Where KairosDB's Gson would abort the whole body on a field of the wrong JSON type
//! (`"tags": 5`, `"timestamp": 1.5`, a duplicate tag name), kairosd reports it as an
//! error of that metric and goes on with the next one.

use std::borrow::Cow;

use crate::datapoint::PointBatch;
use crate::series_cache::{CacheLimits, SeriesCache};

#[cfg(test)]
mod equivalence_tests;
mod metric;
mod plain;
mod scanner;
mod serde_reader;
#[cfg(test)]
mod tests;

/// The outcome of one body: what to store and what to tell the client.
#[derive(Debug, Default)]
pub struct Decoded {
    /// Every point of every valid metric object (and every good `datapoints` entry).
    pub batch: PointBatch,
    /// One message per problem, in body order; non-empty means HTTP 400.
    pub errors: Vec<String>,
}

/// Decodes a body that is already decompressed. Never panics.
pub fn decode(body: &[u8]) -> Decoded {
    let mut batch = PointBatch::new();
    let errors = decode_into(body, &mut batch);
    Decoded { batch, errors }
}

/// [`decode`], appending the points to `batch` (so a caller can reuse its memory) and
/// returning the errors.
pub fn decode_into(body: &[u8], batch: &mut PointBatch) -> Vec<String> {
    run(body, batch, Reader::Either, None).unwrap_or_default()
}

/// [`decode_into`] through serde_json alone: the general reader, which the scanner is
/// checked against (tests, fuzzing, benchmarks). Same results, more instructions.
pub fn decode_into_general(body: &[u8], batch: &mut PointBatch) -> Vec<String> {
    run(body, batch, Reader::General, None).unwrap_or_default()
}

/// The scanner alone: `None` (and `batch` as it was) where it would hand the body to
/// the general reader. For the differential tests and the fuzz target.
#[doc(hidden)]
pub fn decode_into_scanner(body: &[u8], batch: &mut PointBatch) -> Option<Vec<String>> {
    run(body, batch, Reader::Scanner, None)
}

/// A decoder for one HTTP connection (or any source of many bodies): a [`SeriesCache`]
/// from the raw `name` and `tags` texts of a metric object to its series key, so a
/// series the connection posted before is not validated, sorted and encoded again.
/// Agents post the same series every interval, so nearly every object of a body after
/// the first hits. Results are exactly [`decode_into`]'s.
#[derive(Debug)]
pub struct RestDecoder {
    cache: SeriesCache,
}

impl Default for RestDecoder {
    fn default() -> RestDecoder {
        RestDecoder::new(CacheLimits::DEFAULT)
    }
}

impl RestDecoder {
    /// `limits` bound the cache (`CacheLimits::OFF` makes this [`decode_into`]).
    pub fn new(limits: CacheLimits) -> RestDecoder {
        RestDecoder {
            cache: SeriesCache::new(limits),
        }
    }

    /// [`decode_into`], with this decoder's series cache.
    pub fn decode_into(&mut self, body: &[u8], batch: &mut PointBatch) -> Vec<String> {
        run(body, batch, Reader::Either, Some(&mut self.cache)).unwrap_or_default()
    }

    /// The scanner alone, with the cache; see [`decode_into_scanner`].
    #[doc(hidden)]
    pub fn decode_into_scanner(&mut self, body: &[u8], batch: &mut PointBatch) -> Option<Vec<String>> {
        run(body, batch, Reader::Scanner, Some(&mut self.cache))
    }

    /// The series cache (hit counts, memory).
    pub fn cache(&self) -> &SeriesCache {
        &self.cache
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reader {
    /// The scanner, and the general reader where it gives up.
    Either,
    General,
    Scanner,
}

/// `None` only for [`Reader::Scanner`] when the scanner gave up (`batch` then unchanged).
fn run(body: &[u8], batch: &mut PointBatch, reader: Reader, cache: Option<&mut SeriesCache>) -> Option<Vec<String>> {
    let mark = batch.mark();
    let mut state = State::new(std::mem::take(batch), body.len());
    let first = body
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    let mut done = true;
    match first {
        None => state
            .errors
            .push("Invalid json. No content due to end of input.".to_owned()),
        Some(open @ (b'[' | b'{')) => {
            state.plain_shortcut = true;
            let scanned = reader != Reader::General
                && std::str::from_utf8(body).is_ok_and(|text| scanner::read(text, &mut state, cache).is_ok());
            if !scanned {
                state.plain_shortcut = false;
                // Start again from scratch: what the scanner stored and said is dropped.
                state.batch.truncate(mark);
                state.errors.clear();
                state.index = 0;
                if reader == Reader::Scanner {
                    done = false;
                } else {
                    serde_reader::read(body, open, &mut state);
                }
            }
        }
        Some(_) => state.errors.push("Invalid start of json.".to_owned()),
    }
    *batch = state.batch;
    done.then(|| state.errors.into_messages())
}

/// Most error messages one body gets; past it they are counted, not kept (a 64 MiB body
/// of bad objects would otherwise build gigabytes of messages).
pub const MAX_ERRORS: usize = 100;

/// A body's error messages: the first [`MAX_ERRORS`], and how many more there were.
#[derive(Debug, Default)]
pub(crate) struct Errors {
    list: Vec<String>,
    more: usize,
}

impl Errors {
    pub(crate) fn push(&mut self, message: String) {
        if self.list.len() < MAX_ERRORS {
            self.list.push(message);
        } else {
            self.more += 1;
        }
    }

    /// The last message kept.
    pub(crate) fn pop(&mut self) -> Option<String> {
        self.list.pop()
    }

    /// Every error counted, kept or not.
    pub(crate) fn len(&self) -> usize {
        self.list.len() + self.more
    }

    /// Forgets everything (the scanner gave up and the general reader starts again).
    pub(crate) fn clear(&mut self) {
        self.list.clear();
        self.more = 0;
    }

    fn into_messages(mut self) -> Vec<String> {
        if self.more > 0 {
            self.list.push(format!(
                "... and {} more errors (only the first {MAX_ERRORS} are listed).",
                self.more
            ));
        }
        self.list
    }
}

/// Everything that outlives one metric object.
struct State<'de> {
    batch: PointBatch,
    errors: Errors,
    /// Index of the metric object being read, for `metric[i]` in messages.
    index: usize,
    /// Tags of the current object, as read (order kept for KairosDB's `tag[i]` messages).
    tags: Vec<(Cow<'de, str>, &'de str)>,
    /// Tags decoded and sorted for the series key.
    pairs: Vec<(Cow<'de, str>, Cow<'de, str>)>,
    entries: Vec<Entry<'de>>,
    key: Vec<u8>,
    /// Whether a plain object may be stored by the shortcut (module `plain`): only for
    /// the scanner, so that the general reader stays the all-general reference.
    plain_shortcut: bool,
}

impl State<'_> {
    fn new(mut batch: PointBatch, body_len: usize) -> Self {
        // The bench shape spends ~90 body bytes per point and ~25 key bytes per metric.
        batch.reserve(body_len / 64 + 1, body_len / 4 + 16);
        State {
            batch,
            errors: Errors::default(),
            index: 0,
            tags: Vec::new(),
            pairs: Vec::new(),
            entries: Vec::new(),
            key: Vec::with_capacity(128),
            plain_shortcut: false,
        }
    }
}

/// What a `tags` or `datapoints` field held, before validation.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Shape {
    #[default]
    Absent,
    Null,
    Present,
    /// The JSON type it had instead, for the message.
    Wrong(&'static str),
}

/// The fields of one metric object: each value's JSON text, borrowed from the body.
#[derive(Default)]
struct Fields<'de> {
    name: Option<&'de str>,
    timestamp: Option<&'de str>,
    time: Option<&'de str>,
    value: Option<&'de str>,
    kind: Option<&'de str>,
    ttl: Option<&'de str>,
    skip_validate: Option<&'de str>,
    tags: Shape,
    datapoints: Shape,
}

/// One element of `datapoints`; up to three items are kept, extra ones ignored (Gson
/// does the same with `JsonElement[]`).
#[derive(Debug, Clone, Copy)]
enum Entry<'de> {
    NotArray(&'static str),
    Array { len: usize, items: [Option<&'de str>; 3] },
}
