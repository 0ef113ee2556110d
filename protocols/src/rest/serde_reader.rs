//! The general reader: serde_json drives the body through `DeserializeSeed`s, so every
//! JSON text is read exactly as serde_json reads it, with its syntax error messages and
//! positions. The hand-written scanner (module `scanner`) takes the common shapes and
//! hands everything else here; this module is also the reference it is tested against.
//!
//! The top-level array is driven element by element: each metric object is read into
//! borrowed raw fields, validated (module `metric`) and appended to the batch before the
//! next one is read, so a syntax error keeps what came before it.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::{Entry, Fields, Shape, State};

/// Reads `body` with serde_json into `state`, from the start.
pub(super) fn read<'de>(body: &'de [u8], open: u8, state: &mut State<'de>) {
    // Checking UTF-8 once up front spares serde_json a check per string and raw value.
    match std::str::from_utf8(body) {
        Ok(text) => read_body(serde_json::Deserializer::from_str(text), open, state, body),
        Err(_) => read_body(serde_json::Deserializer::from_slice(body), open, state, body),
    }
}

/// The text of the next value, as sent (without the whitespace around it).
fn raw<'de, A: MapAccess<'de>>(map: &mut A) -> Result<&'de str, A::Error> {
    Ok(map.next_value::<&'de RawValue>()?.get())
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
                Field::Name => f.name = Some(raw(&mut map)?),
                Field::Timestamp => f.timestamp = Some(raw(&mut map)?),
                Field::Time => f.time = Some(raw(&mut map)?),
                Field::Value => f.value = Some(raw(&mut map)?),
                Field::Type => f.kind = Some(raw(&mut map)?),
                Field::Ttl => f.ttl = Some(raw(&mut map)?),
                Field::SkipValidate => f.skip_validate = Some(raw(&mut map)?),
                Field::Tags => f.tags = map.next_value_seed(TagsSeed(&mut state.tags))?,
                Field::Datapoints => f.datapoints = map.next_value_seed(EntriesSeed(&mut state.entries))?,
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        state.finish(f, None);
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

struct TagsSeed<'a, 'de>(&'a mut Vec<(Cow<'de, str>, &'de str)>);

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
            self.0.push((name, raw(&mut map)?));
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
                    *item = Some(raw.get());
                    len += 1;
                }
                None => return Ok(Entry::Array { len, items }),
            }
        }
        len += drain_seq(seq)?;
        Ok(Entry::Array { len, items })
    }
}
