//! Graphite's pickle protocol: each frame is a pickled list of
//! `(path, (timestamp, value))`, as carbon-relay and carbon's clients send it, in any
//! pickle protocol from 0 to 5. Timestamps and values may be ints, floats or numeric
//! strings (graphitesend sends `'1.500000'`); carbon-relay sends floats.
//!
//! A frame is first run through [`validate`], which refuses anything but the opcodes
//! such a list needs and caps depth and size; only then does serde-pickle build the
//! value. Like carbon, a point that does not fit is skipped and the rest of the frame is
//! kept; a frame that fails validation or decoding is refused whole.

pub mod validate;

use std::sync::Arc;

use serde_pickle::{DeOptions, Value as Pickled};

use crate::datapoint::{PointBatch, Value};
use crate::decode::{Decoded, Decoder};
use crate::series_cache::{CacheLimits, Lookup, SeriesCache};

use super::path::{PathMapper, PathScratch};
use super::text::{parse_timestamp, parse_value};
use super::GraphiteError;

pub use validate::Limits;

/// Why a whole pickle frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PickleError {
    #[error(
        "opcode {name} (0x{code:02x}) at byte {offset} is not allowed; a carbon frame holds only lists, \
         tuples, strings and numbers, so nothing in it is ever imported, called or built"
    )]
    Opcode {
        name: &'static str,
        code: u8,
        offset: usize,
    },
    #[error("pickle protocol {0} is not supported (0 to 5 are)")]
    Protocol(u8),
    #[error("the frame ends inside the opcode at byte {offset}")]
    Truncated { offset: usize },
    #[error("the frame has no STOP opcode")]
    NoStop,
    #[error("bytes after STOP at byte {offset}")]
    TrailingBytes { offset: usize },
    #[error("nesting deeper than {max} at byte {offset}; a carbon frame needs 3 levels")]
    TooDeep { max: usize, offset: usize },
    #[error("more than {max} MARK opcodes in one frame; send smaller frames or pickle protocol 2 or later")]
    TooManyMarks { max: usize },
    #[error("more than {max} values in one frame; send smaller frames")]
    TooManyValues { max: usize },
    #[error("memo references copy more than {max} bytes of strings")]
    TooMuchCloning { max: usize },
    #[error("a number at byte {offset} is longer than any timestamp or value")]
    NumberTooLong { offset: usize },
    #[error("memo reference {id} at byte {offset} was never stored")]
    MemoMissing { id: u64, offset: usize },
    #[error("memo reference {id} at byte {offset} points at a list or tuple; only strings and numbers may be referenced again")]
    MemoContainer { id: u64, offset: usize },
    #[error("malformed pickle at byte {offset}: {what}")]
    Stack { offset: usize, what: &'static str },
    #[error("{0}")]
    Decode(String),
    #[error("the frame holds {0}, not a list of (path, (timestamp, value))")]
    NotAList(&'static str),
}

/// Decodes one validated frame into `batch`, reporting each skipped point to `reject`.
/// The per-connection parts (`scratch`, `cache`) are passed one by one so that tests and
/// fuzz targets can give each its own.
#[allow(clippy::too_many_arguments)]
pub fn decode_frame(
    frame: &[u8],
    limits: Limits,
    now_ms: i64,
    mapper: &PathMapper,
    batch: &mut PointBatch,
    scratch: &mut PathScratch,
    cache: &mut SeriesCache,
    reject: &mut impl FnMut(GraphiteError),
) -> Result<Decoded, PickleError> {
    validate::validate(frame, limits)?;
    let value =
        serde_pickle::value_from_slice(frame, DeOptions::new()).map_err(|e| PickleError::Decode(e.to_string()))?;
    let items = match value {
        Pickled::List(items) | Pickled::Tuple(items) => items,
        other => return Err(PickleError::NotAList(kind(&other))),
    };
    let mut out = Decoded::NOTHING;
    for (index, item) in items.into_iter().enumerate() {
        match point(item, index, now_ms, mapper, batch, scratch, cache) {
            Ok(()) => out.points += 1,
            Err(e) => {
                out.rejected += 1;
                reject(e);
            }
        }
    }
    Ok(out)
}

fn point(
    item: Pickled,
    index: usize,
    now_ms: i64,
    mapper: &PathMapper,
    batch: &mut PointBatch,
    scratch: &mut PathScratch,
    cache: &mut SeriesCache,
) -> Result<(), GraphiteError> {
    let shape = |what: String| GraphiteError::PickleShape { index, what };
    let in_item = |error: GraphiteError| GraphiteError::PickleItem {
        index,
        error: Box::new(error),
    };
    let [path, datapoint] = pair(item).map_err(|k| shape(format!("it is {k}, not a (path, datapoint) pair")))?;
    let [timestamp, value] =
        pair(datapoint).map_err(|k| shape(format!("its datapoint is {k}, not a (timestamp, value) pair")))?;
    let path: Vec<u8> = match path {
        Pickled::String(s) => s.into_bytes(),
        Pickled::Bytes(b) => b,
        other => return Err(shape(format!("its path is {}", kind(&other)))),
    };
    // A path seen before is valid UTF-8 and maps to its cached key; only a new one is
    // checked (before the timestamp and value, which keeps the order of the messages).
    let lookup = cache.get(&path, b"");
    let text = match lookup {
        Lookup::Hit { .. } => "",
        Lookup::Miss(_) => std::str::from_utf8(&path).map_err(|e| {
            in_item(GraphiteError::NotUtf8 {
                offset: e.valid_up_to(),
            })
        })?,
    };
    let timestamp = match timestamp {
        Pickled::I64(s) => seconds_int(s, now_ms),
        Pickled::Int(big) => i64::try_from(&big)
            .map_err(|_| GraphiteError::TimestampRange(big.to_string()))
            .and_then(|s| seconds_int(s, now_ms)),
        Pickled::F64(f) => seconds_float(f, now_ms),
        Pickled::String(s) => parse_timestamp(s.trim().as_bytes(), now_ms),
        Pickled::Bytes(b) => parse_timestamp(b.trim_ascii(), now_ms),
        other => return Err(shape(format!("its timestamp is {}", kind(&other)))),
    }
    .map_err(in_item)?;
    let value = match value {
        Pickled::I64(v) => Value::Long(v),
        Pickled::Int(big) => match i64::try_from(&big) {
            Ok(v) => Value::Long(v),
            Err(_) => parse_value(big.to_string().as_bytes()).map_err(in_item)?,
        },
        Pickled::F64(v) if v.is_finite() => Value::Double(v),
        Pickled::F64(v) => return Err(in_item(GraphiteError::NotFinite(v.to_string()))),
        Pickled::String(s) => parse_value(s.trim().as_bytes()).map_err(in_item)?,
        Pickled::Bytes(b) => parse_value(b.trim_ascii()).map_err(in_item)?,
        other => return Err(shape(format!("its value is {}", kind(&other)))),
    };
    match lookup {
        Lookup::Hit { key, ttl } => {
            batch.push_encoded(key, timestamp, value, ttl);
            Ok(())
        }
        Lookup::Miss(token) => {
            mapper
                .push(text, timestamp, value, batch, scratch)
                .map_err(|e| in_item(e.into()))?;
            let last = batch.records().last().expect("the point just pushed");
            cache.insert(token, &path, b"", batch.key(last), last.ttl);
            Ok(())
        }
    }
}

fn seconds_int(s: i64, now_ms: i64) -> Result<i64, GraphiteError> {
    match s {
        -1 => Ok(now_ms),
        s => s
            .checked_mul(1000)
            .ok_or_else(|| GraphiteError::TimestampRange(s.to_string())),
    }
}

/// A float timestamp in seconds, truncated as carbon's `int()` does.
fn seconds_float(f: f64, now_ms: i64) -> Result<i64, GraphiteError> {
    if !f.is_finite() || f.abs() >= 9.2e15 {
        return Err(GraphiteError::TimestampRange(f.to_string()));
    }
    match f.trunc() as i64 {
        -1 => Ok(now_ms),
        s => Ok(s * 1000),
    }
}

/// The two items of a 2-tuple or 2-list.
fn pair(v: Pickled) -> Result<[Pickled; 2], &'static str> {
    match v {
        Pickled::Tuple(items) | Pickled::List(items) if items.len() == 2 => {
            let mut it = items.into_iter();
            Ok([it.next().expect("two"), it.next().expect("two")])
        }
        Pickled::Tuple(_) | Pickled::List(_) => Err("a sequence of another length"),
        other => Err(kind(&other)),
    }
}

fn kind(v: &Pickled) -> &'static str {
    match v {
        Pickled::None => "None",
        Pickled::Bool(_) => "a boolean",
        Pickled::I64(_) | Pickled::Int(_) => "an integer",
        Pickled::F64(_) => "a float",
        Pickled::Bytes(_) => "bytes",
        Pickled::String(_) => "a string",
        Pickled::List(_) => "a list",
        Pickled::Tuple(_) => "a tuple",
        Pickled::Set(_) | Pickled::FrozenSet(_) => "a set",
        Pickled::Dict(_) => "a dict",
    }
}

/// [`decode_frame`] as a [`Decoder`]: one frame is one pickle.
#[derive(Debug)]
pub struct PickleDecoder {
    mapper: Arc<PathMapper>,
    scratch: PathScratch,
    cache: SeriesCache,
    limits: Limits,
    now_ms: i64,
}

impl PickleDecoder {
    pub fn new(mapper: Arc<PathMapper>) -> PickleDecoder {
        PickleDecoder {
            scratch: mapper.scratch(),
            mapper,
            cache: SeriesCache::default(),
            limits: Limits::default(),
            now_ms: 0,
        }
    }

    pub fn with_limits(mut self, limits: Limits) -> PickleDecoder {
        self.limits = limits;
        self
    }

    /// Bounds (or, with [`CacheLimits::OFF`], turns off) the series cache of the paths.
    pub fn with_cache_limits(mut self, limits: CacheLimits) -> PickleDecoder {
        self.cache = SeriesCache::new(limits);
        self
    }

    pub fn cache(&self) -> &SeriesCache {
        &self.cache
    }
}

impl Decoder for PickleDecoder {
    type Error = GraphiteError;
    const TEXT: bool = false;

    fn decode(&mut self, frame: &[u8], batch: &mut PointBatch, reject: &mut impl FnMut(GraphiteError)) -> Decoded {
        let before = batch.len();
        match decode_frame(
            frame,
            self.limits,
            self.now_ms,
            &self.mapper,
            batch,
            &mut self.scratch,
            &mut self.cache,
            reject,
        ) {
            Ok(d) => d,
            Err(e) => {
                debug_assert_eq!(batch.len(), before, "a refused frame adds nothing");
                reject(GraphiteError::Pickle(e));
                Decoded::REJECTED
            }
        }
    }

    fn set_now(&mut self, now_ms: i64) {
        self.now_ms = now_ms;
    }
}

#[cfg(test)]
mod tests;
