//! `POST /api/v1/datapoints` bodies: a JSON array of metric objects, or one object.
//!
//! KairosDB streams through the body and publishes each metric object as soon as it is
//! validated, so a 400 still keeps every valid metric before (and after) a bad one, and
//! a syntax error keeps what came before it. To behave the same, the top-level array is
//! driven element by element through serde's `DeserializeSeed`: each metric object is
//! read into borrowed raw fields, validated (module `metric`) and appended to the batch
//! before the next one is read.
//!
//! Scalars are captured as `&RawValue` because KairosDB infers a value's type from its
//! *text* (`1` is a long, `1.0` a double), which a parsed `f64` no longer has. The
//! tag list, the datapoint list and the key buffer are reused from metric to metric.
//!
//! Where KairosDB's Gson would abort the whole body on a field of the wrong JSON type
//! (`"tags": 5`, `"timestamp": 1.5`, a duplicate tag name), kairosd reports it as an
//! error of that metric and goes on with the next one.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::datapoint::PointBatch;

mod metric;
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
    let mut state = State::new(std::mem::take(batch), body.len());
    let first = body
        .iter()
        .copied()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    match first {
        None => state
            .errors
            .push("Invalid json. No content due to end of input.".to_owned()),
        // Checking UTF-8 once up front spares serde_json a check per string and raw value.
        Some(open @ (b'[' | b'{')) => match std::str::from_utf8(body) {
            Ok(text) => read_body(serde_json::Deserializer::from_str(text), open, &mut state, body),
            Err(_) => read_body(serde_json::Deserializer::from_slice(body), open, &mut state, body),
        },
        Some(_) => state.errors.push("Invalid start of json.".to_owned()),
    }
    *batch = state.batch;
    state.errors.into_messages()
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

fn read_body<'de, R: serde_json::de::Read<'de>>(
    mut de: serde_json::Deserializer<R>,
    open: u8,
    state: &mut State<'de>,
    body: &[u8],
) {
    let result = if open == b'[' {
        (&mut de).deserialize_seq(TopArray(state))
    } else {
        MetricSeed(state).deserialize(&mut de)
    };
    if let Err(e) = result.and_then(|()| de.end()) {
        state.errors.push(syntax_message(&e, body));
    }
}

/// Serde's words with KairosDB's prefix, and a hint for the most likely cause of an
/// "expected value": NaN or Infinity, which Gson's lenient mode tolerated.
fn syntax_message(e: &serde_json::Error, body: &[u8]) -> String {
    if e.is_eof() {
        return format!(
            "Invalid json. Unexpected end of input at line {} column {}.",
            e.line(),
            e.column()
        );
    }
    let line_start = if e.line() <= 1 {
        0
    } else {
        memchr::memchr_iter(b'\n', body)
            .nth(e.line() - 2)
            .map_or(body.len(), |i| i + 1)
    };
    let at = line_start + e.column();
    let non_finite = (at.saturating_sub(3)..at + 1)
        .filter_map(|i| body.get(i..))
        .any(|rest| rest.starts_with(b"NaN") || rest.starts_with(b"Infinity"));
    let hint = if non_finite {
        " (NaN and Infinity are not JSON numbers, and kairosd refuses them)"
    } else {
        ""
    };
    format!("Invalid json: {e}{hint}.")
}

/// Everything that outlives one metric object.
struct State<'de> {
    batch: PointBatch,
    errors: Errors,
    /// Index of the metric object being read, for `metric[i]` in messages.
    index: usize,
    /// Tags of the current object, as read (order kept for KairosDB's `tag[i]` messages).
    tags: Vec<(Cow<'de, str>, &'de RawValue)>,
    /// Tags decoded and sorted for the series key.
    pairs: Vec<(Cow<'de, str>, Cow<'de, str>)>,
    entries: Vec<Entry<'de>>,
    key: Vec<u8>,
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

/// The fields of one metric object, borrowed from the body.
#[derive(Default)]
struct Fields<'de> {
    name: Option<&'de RawValue>,
    timestamp: Option<&'de RawValue>,
    time: Option<&'de RawValue>,
    value: Option<&'de RawValue>,
    kind: Option<&'de RawValue>,
    ttl: Option<&'de RawValue>,
    skip_validate: Option<&'de RawValue>,
    tags: Shape,
    datapoints: Shape,
}

/// One element of `datapoints`; up to three items are kept, extra ones ignored (Gson
/// does the same with `JsonElement[]`).
#[derive(Debug, Clone, Copy)]
enum Entry<'de> {
    NotArray(&'static str),
    Array {
        len: usize,
        items: [Option<&'de RawValue>; 3],
    },
}

/// Implements the `visit_*` methods of the JSON types a visitor does not want (through
/// its `wrong` method), so that a value of the wrong type becomes a per-metric error
/// instead of aborting the body.
macro_rules! wrong_json_types {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(self.wrong("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.wrong("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.wrong("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.wrong("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.wrong("a string"))
        }
    };
}

fn drain_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<usize, A::Error> {
    let mut n = 0;
    while seq.next_element::<IgnoredAny>()?.is_some() {
        n += 1;
    }
    Ok(n)
}

fn drain_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
    Ok(())
}

/// The top-level array: each element is validated and stored before the next is read.
struct TopArray<'a, 'de>(&'a mut State<'de>);

impl<'de> Visitor<'de> for TopArray<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of metric objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(MetricSeed(&mut *self.0))?.is_some() {
            self.0.index += 1;
        }
        Ok(())
    }
}

struct MetricSeed<'a, 'de>(&'a mut State<'de>);

impl<'de> DeserializeSeed<'de> for MetricSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl MetricSeed<'_, '_> {
    fn wrong(self, kind: &str) {
        let index = self.0.index;
        self.0
            .errors
            .push(format!("metric[{index}] must be a JSON object, not {kind}."));
    }
}

impl<'de> Visitor<'de> for MetricSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metric object")
    }

    wrong_json_types!();

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.wrong("null");
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        drain_seq(seq)?;
        self.wrong("an array");
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let state = self.0;
        state.tags.clear();
        state.entries.clear();
        let mut f = Fields::default();
        // A repeated field replaces the earlier one, as with Gson.
        while let Some(field) = map.next_key::<Field>()? {
            match field {
                Field::Name => f.name = Some(map.next_value()?),
                Field::Timestamp => f.timestamp = Some(map.next_value()?),
                Field::Time => f.time = Some(map.next_value()?),
                Field::Value => f.value = Some(map.next_value()?),
                Field::Type => f.kind = Some(map.next_value()?),
                Field::Ttl => f.ttl = Some(map.next_value()?),
                Field::SkipValidate => f.skip_validate = Some(map.next_value()?),
                Field::Tags => f.tags = map.next_value_seed(TagsSeed(&mut state.tags))?,
                Field::Datapoints => f.datapoints = map.next_value_seed(EntriesSeed(&mut state.entries))?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        state.finish(f);
        Ok(())
    }
}

enum Field {
    Name,
    Tags,
    Timestamp,
    Time,
    Value,
    Datapoints,
    Type,
    Ttl,
    SkipValidate,
    Other,
}

impl<'de> de::Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Field, D::Error> {
        struct FieldVisitor;
        impl Visitor<'_> for FieldVisitor {
            type Value = Field;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
                Ok(match v {
                    "name" => Field::Name,
                    "tags" => Field::Tags,
                    "timestamp" => Field::Timestamp,
                    "time" => Field::Time,
                    "value" => Field::Value,
                    "datapoints" => Field::Datapoints,
                    "type" => Field::Type,
                    "ttl" => Field::Ttl,
                    "skip_validate" => Field::SkipValidate,
                    _ => Field::Other,
                })
            }
        }
        deserializer.deserialize_identifier(FieldVisitor)
    }
}

/// An object key, borrowed from the body unless it contains escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Key<'de>, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct TagsSeed<'a, 'de>(&'a mut Vec<(Cow<'de, str>, &'de RawValue)>);

impl TagsSeed<'_, '_> {
    fn wrong(self, kind: &'static str) -> Shape {
        Shape::Wrong(kind)
    }
}

impl<'de> DeserializeSeed<'de> for TagsSeed<'_, 'de> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        self.0.clear();
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TagsSeed<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of tags")
    }

    wrong_json_types!();

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Shape, A::Error> {
        drain_seq(seq)?;
        Ok(Shape::Wrong("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
        while let Some(Key(name)) = map.next_key()? {
            self.0.push((name, map.next_value()?));
        }
        Ok(Shape::Present)
    }
}

struct EntriesSeed<'a, 'de>(&'a mut Vec<Entry<'de>>);

impl EntriesSeed<'_, '_> {
    fn wrong(self, kind: &'static str) -> Shape {
        Shape::Wrong(kind)
    }
}

impl<'de> DeserializeSeed<'de> for EntriesSeed<'_, 'de> {
    type Value = Shape;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Shape, D::Error> {
        self.0.clear();
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed<'_, 'de> {
    type Value = Shape;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of datapoints")
    }

    wrong_json_types!();

    fn visit_unit<E: de::Error>(self) -> Result<Shape, E> {
        Ok(Shape::Null)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Shape, A::Error> {
        drain_map(map)?;
        Ok(Shape::Wrong("an object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
        while let Some(entry) = seq.next_element_seed(EntrySeed)? {
            self.0.push(entry);
        }
        Ok(Shape::Present)
    }
}

struct EntrySeed;

impl EntrySeed {
    fn wrong<'de>(self, kind: &'static str) -> Entry<'de> {
        Entry::NotArray(kind)
    }
}

impl<'de> DeserializeSeed<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Entry<'de>, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for EntrySeed {
    type Value = Entry<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a [timestamp, value] array")
    }

    wrong_json_types!();

    fn visit_unit<E: de::Error>(self) -> Result<Entry<'de>, E> {
        Ok(Entry::NotArray("null"))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Entry<'de>, A::Error> {
        drain_map(map)?;
        Ok(Entry::NotArray("an object"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entry<'de>, A::Error> {
        let mut items = [None; 3];
        let mut len = 0;
        for item in &mut items {
            match seq.next_element::<&'de RawValue>()? {
                Some(raw) => {
                    *item = Some(raw);
                    len += 1;
                }
                None => return Ok(Entry::Array { len, items }),
            }
        }
        len += drain_seq(seq)?;
        Ok(Entry::Array { len, items })
    }
}
