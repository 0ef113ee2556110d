//! The metric object agents send, stored without the general checks: a non-empty
//! `name` string, one to [`MAX_TAGS`] tags of non-empty strings, `datapoints` entries
//! of two plain numbers (and/or a plain `timestamp` and `value`), an optional plain
//! `ttl`, and nothing else. Such an object can have no error, so its points follow
//! from its texts directly: no classification, no `Cow`s, no message context.
//!
//! Anything else (or any doubt) is left to the general validation in `metric`, which
//! is the one place that writes messages; this is only ever a shortcut to the same
//! result, and the differential tests hold it to that (the general reader never takes
//! it for an object the scanner takes it for, and both must agree).
//!
//! "Plain" means: a string with no escape (JSON forbids raw control characters in a
//! string, so such a string has no 0x00 or 0x01 and needs no key escaping), and a
//! number that [`number::plain_number`] reads (`-?digits` up to 18, or a short
//! `digits.digits`), whose value is exactly what the general conversion gives.

use super::metric::{has_backslash, TTL_MAX};
use super::{Entry, Fields, Shape, State};
use crate::datapoint::Value;
use crate::number::{self, Plain};

/// Tags a plain object may have; more take the general path.
const MAX_TAGS: usize = 16;

/// The inside of a string's JSON text if it has no escape.
#[inline(always)]
fn plain_string(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    (!has_backslash(inner.as_bytes())).then_some(inner)
}

#[inline(always)]
fn plain_long(text: &str) -> Option<i64> {
    match number::plain_number(text.as_bytes()) {
        Some(Plain::Long(v)) => Some(v),
        _ => None,
    }
}

/// KairosDB's type inference on a plain number: no `.` is a long, else a double.
#[inline(always)]
fn plain_value(text: &str) -> Option<Value> {
    match number::plain_number(text.as_bytes())? {
        Plain::Long(v) => Some(Value::Long(v)),
        Plain::Double(v) => Some(Value::Double(v)),
    }
}

impl<'de> State<'de> {
    /// Stores `f` if it is plain, with `known` as its series key if given (see
    /// `finish`). Returns false, with the batch as it was, for anything else.
    pub(super) fn finish_plain(&mut self, f: &Fields<'de>, known: Option<&[u8]>) -> bool {
        if f.skip_validate.is_some() || f.kind.is_some() || f.time.is_some() {
            return false;
        }
        let Some(name) = f.name.and_then(plain_string).filter(|n| !n.is_empty()) else {
            return false;
        };
        let ttl = match f.ttl {
            None => 0,
            Some(t) => match plain_long(t) {
                Some(v) if (0..=TTL_MAX).contains(&v) => v as u32,
                _ => return false,
            },
        };
        let single = match (f.timestamp, f.value) {
            (None, None) => None,
            (Some(ts), Some(v)) => match (plain_long(ts), plain_value(v)) {
                (Some(ts), Some(v)) => Some((ts, v)),
                _ => return false,
            },
            _ => return false,
        };
        match f.datapoints {
            Shape::Present => {}
            Shape::Absent if single.is_some() => {}
            _ => return false,
        }

        let key: &[u8] = match known {
            Some(key) => key,
            None => {
                if f.tags != Shape::Present || self.tags.is_empty() || self.tags.len() > MAX_TAGS {
                    return false;
                }
                let mut pairs = [("", ""); MAX_TAGS];
                for (pair, (tag, raw)) in pairs.iter_mut().zip(&self.tags) {
                    match plain_string(raw) {
                        Some(value) if !tag.is_empty() && !value.is_empty() => *pair = (tag.as_ref(), value),
                        _ => return false,
                    }
                }
                let pairs = &mut pairs[..self.tags.len()];
                // Insertion sort: a metric has a few tags.
                for i in 1..pairs.len() {
                    let mut j = i;
                    while j > 0 && pairs[j - 1].0.as_bytes() > pairs[j].0.as_bytes() {
                        pairs.swap(j - 1, j);
                        j -= 1;
                    }
                }
                // A repeated tag name is an error: the general path reports it.
                if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                    return false;
                }
                let key = &mut self.key;
                key.clear();
                key.extend_from_slice(name.as_bytes());
                key.push(0);
                for (k, v) in pairs.iter() {
                    key.extend_from_slice(k.as_bytes());
                    key.push(0);
                    key.extend_from_slice(v.as_bytes());
                    key.push(0);
                }
                &self.key
            }
        };

        let mark = self.batch.mark();
        if let Some((ts, v)) = single {
            self.batch.push_encoded(key, ts, v, ttl);
        }
        for entry in &self.entries {
            let point = match entry {
                Entry::Array {
                    len: 2,
                    items: [Some(ts), Some(v), None],
                } => plain_long(ts).zip(plain_value(v)),
                _ => None,
            };
            match point {
                Some((ts, v)) => self.batch.push_encoded(key, ts, v, ttl),
                None => {
                    self.batch.truncate(mark);
                    return false;
                }
            }
        }
        true
    }
}
