//! NDJSON and JSON rows: each record (a line, or an element of a top-level array) is
//! one JSON object whose cells are found by key, or by a `$.a.b` path for nested ones.
//!
//! Only the keys the mapping reads are captured, as borrowed raw values; numbers keep
//! their text (which decides long versus double, as in REST) and strings are unescaped
//! only when they hold escapes.

use std::fmt;
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::framing::{Framer, Record};
use super::mapping::{Cell, Clock, Mapper, Plan, RowCells, RowCheck};
use super::quarantine::{Kind, Rejected};
use super::source::Source;
use super::{ImportError, Output};

/// The segments of `$.a.b` (`$.a` is the key `a`). Keys holding `.` cannot be paths.
pub fn parse_path(path: &str) -> Result<Vec<String>, String> {
    let rest = path
        .strip_prefix("$.")
        .ok_or_else(|| format!("{path:?} must look like $.key or $.outer.inner"))?;
    let segments: Vec<String> = rest.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return Err(format!("{path:?} has an empty key"));
    }
    Ok(segments)
}

/// Where each slot's value is: the top-level key, then the rest of its path.
///
/// Rows of one file nearly always list their keys in the same order, so the search
/// for a key starts after the previous key's entry: one comparison per key.
struct Lookup {
    /// (top-level key, [(slot, deeper segments)]), one entry per distinct key.
    keys: Vec<(String, Vec<Target>)>,
    next: std::cell::Cell<usize>,
}

/// A slot that reads under a key, and the path below the key (empty: the key's value).
type Target = (usize, Vec<String>);
type Targets = [Target];

impl Lookup {
    fn new(source: &Source, plan: &Plan) -> Lookup {
        let mut keys: Vec<(String, Vec<Target>)> = Vec::new();
        for (slot, info) in plan.slots.iter().enumerate() {
            let mut segs = match source.paths.get(&info.name) {
                Some(p) => parse_path(p).unwrap_or_else(|_| vec![info.name.clone()]),
                None => vec![info.name.clone()],
            };
            let first = segs.remove(0);
            match keys.iter_mut().find(|k| k.0 == first) {
                Some(k) => k.1.push((slot, segs)),
                None => keys.push((first, vec![(slot, segs)])),
            }
        }
        Lookup {
            keys,
            next: std::cell::Cell::new(0),
        }
    }

    fn find(&self, key: &str) -> Option<&Targets> {
        let n = self.keys.len();
        let start = self.next.get();
        for i in 0..n {
            let at = (start + i) % n;
            let (k, targets) = &self.keys[at];
            if k.len() == key.len() && k == key {
                self.next.set((at + 1) % n);
                return Some(targets);
            }
        }
        None
    }
}

/// Decodes JSON records into rows.
pub(crate) struct JsonDecoder {
    framer: Framer,
    mapper: Mapper,
    lookup: Lookup,
    /// Per slot, the byte range of its raw value in the record.
    cells: Vec<Option<Range<usize>>>,
    /// `"*"`: (key, value range) of every other top-level key.
    extras: Vec<(String, Range<usize>)>,
    extra_count: usize,
}

impl JsonDecoder {
    pub(crate) fn new(
        source: &Source,
        lines: bool,
        clock: Clock,
        check: Option<RowCheck>,
        max_record: usize,
    ) -> Result<JsonDecoder, ImportError> {
        let plan = Plan::for_keys(source)?;
        let lookup = Lookup::new(source, &plan);
        let slots = plan.slots.len();
        Ok(JsonDecoder {
            framer: if lines {
                Framer::lines(max_record)
            } else {
                Framer::values(max_record)
            },
            mapper: Mapper::new(plan, source, clock, check)?,
            lookup,
            cells: vec![None; slots],
            extras: Vec::new(),
            extra_count: 0,
        })
    }

    pub(crate) fn feed(&mut self, chunk: &[u8], out: &mut Output) -> Result<(), ImportError> {
        let JsonDecoder {
            framer,
            mapper,
            lookup,
            cells,
            extras,
            extra_count,
        } = self;
        framer.feed(chunk, &mut |r| {
            record(r, mapper, lookup, cells, extras, extra_count, out);
            Ok(())
        })
    }

    pub(crate) fn finish(&mut self, out: &mut Output) -> Result<(), ImportError> {
        let JsonDecoder {
            framer,
            mapper,
            lookup,
            cells,
            extras,
            extra_count,
        } = self;
        framer.finish(&mut |r| {
            record(r, mapper, lookup, cells, extras, extra_count, out);
            Ok(())
        })
    }
}

/// An invalid line: counted, and kept with its bytes.
pub(crate) fn malformed(r: &Record, message: String, out: &mut Output) {
    out.stats.rows += 1;
    out.stats.invalid_lines += 1;
    let loc = r.location;
    out.rejected.push(Rejected::record(
        Kind::Malformed,
        loc,
        r.bytes,
        format!("{loc}: {message}"),
    ));
}

fn record(
    r: Record,
    mapper: &mut Mapper,
    lookup: &Lookup,
    cells: &mut [Option<Range<usize>>],
    extras: &mut Vec<(String, Range<usize>)>,
    extra_count: &mut usize,
    out: &mut Output,
) {
    if let Some(problem) = &r.problem {
        malformed(&r, problem.clone(), out);
        return;
    }
    let text = match std::str::from_utf8(r.bytes) {
        Ok(t) => t,
        Err(e) => {
            malformed(&r, format!("the text is not UTF-8 (at byte {})", e.valid_up_to()), out);
            return;
        }
    };
    let body = text.trim().trim_start_matches('\u{feff}');
    if !body.starts_with('{') {
        malformed(&r, "not a JSON object".to_owned(), out);
        return;
    }
    cells.iter_mut().for_each(|c| *c = None);
    *extra_count = 0;
    let dynamic = mapper.plan().dynamic();
    let mut de = serde_json::Deserializer::from_str(body);
    let seed = ObjectSeed {
        base: body.as_ptr() as usize,
        lookup,
        cells,
        extras: dynamic.then_some(&mut *extras),
        extra_count,
    };
    if let Err(e) = seed.deserialize(&mut de).and_then(|()| de.end()) {
        malformed(&r, format!("not valid JSON: {e}"), out);
        return;
    }
    let row = JsonRow {
        text: body,
        cells,
        extras: &extras[..*extra_count],
    };
    let raw = r.bytes;
    mapper.row(&row, r.location, &mut || raw.to_vec(), out);
}

struct JsonRow<'a> {
    text: &'a str,
    cells: &'a [Option<Range<usize>>],
    extras: &'a [(String, Range<usize>)],
}

/// A raw JSON value as a cell.
fn classify(text: &str) -> Cell<'_> {
    match text.as_bytes().first() {
        Some(b'"') => Cell::JsonStr(text),
        Some(b'n') => Cell::Absent,
        Some(b't') => Cell::Bool(true),
        Some(b'f') => Cell::Bool(false),
        Some(b'{' | b'[') => Cell::Nested,
        Some(_) => Cell::Number(text),
        None => Cell::Absent,
    }
}

impl RowCells for JsonRow<'_> {
    fn cell(&self, slot: usize) -> Cell<'_> {
        match &self.cells[slot] {
            Some(range) => classify(&self.text[range.clone()]),
            None => Cell::Absent,
        }
    }

    fn extras(&self, each: &mut dyn FnMut(&str, Cell<'_>)) {
        for (key, range) in self.extras {
            each(key, classify(&self.text[range.clone()]));
        }
    }
}

/// Reads one object, keeping the ranges of the values the lookup wants.
struct ObjectSeed<'a> {
    base: usize,
    lookup: &'a Lookup,
    cells: &'a mut [Option<Range<usize>>],
    extras: Option<&'a mut Vec<(String, Range<usize>)>>,
    extra_count: &'a mut usize,
}

impl<'de> DeserializeSeed<'de> for ObjectSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ObjectSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            let Some(targets) = self.lookup.find(&key) else {
                match self.extras.as_deref_mut() {
                    Some(extras) => {
                        let raw: &'de RawValue = map.next_value()?;
                        let range = range_of(self.base, raw.get());
                        let n = *self.extra_count;
                        if n < extras.len() {
                            extras[n].0.clear();
                            extras[n].0.push_str(&key);
                            extras[n].1 = range;
                        } else {
                            extras.push((key.into_owned(), range));
                        }
                        *self.extra_count += 1;
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                continue;
            };
            let raw: &'de RawValue = map.next_value()?;
            for (slot, deeper) in targets {
                let found = if deeper.is_empty() {
                    Some(raw)
                } else {
                    find_path(raw, deeper)
                };
                // A repeated key: the last one wins, as in most JSON readers.
                self.cells[*slot] = found.map(|r| range_of(self.base, r.get()));
            }
        }
        Ok(())
    }
}

/// An object key, borrowed from the record unless it has escapes (serde's own `Cow`
/// always allocates).
struct Key<'de>(std::borrow::Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Key<'de>, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(std::borrow::Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

fn range_of(base: usize, text: &str) -> Range<usize> {
    let start = text.as_ptr() as usize - base;
    start..start + text.len()
}

/// The value at `path` inside `raw`, if `raw` is an object that has it.
fn find_path<'de>(raw: &'de RawValue, path: &[String]) -> Option<&'de RawValue> {
    struct Find<'p>(&'p str);
    impl<'de> Visitor<'de> for Find<'_> {
        type Value = Option<&'de RawValue>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut found = None;
            while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                if key == self.0 {
                    found = Some(map.next_value::<&'de RawValue>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(found)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    let mut current = raw;
    for seg in path {
        let mut de = serde_json::Deserializer::from_str(current.get());
        current = de::Deserializer::deserialize_any(&mut de, Find(seg)).ok()??;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parse_path("$.a.b").unwrap(), ["a", "b"]);
        assert_eq!(parse_path("$.a").unwrap(), ["a"]);
        assert!(parse_path("a.b").is_err());
        assert!(parse_path("$.a..b").is_err());
        let raw: &RawValue = serde_json::from_str(r#"{"a":{"b":[1],"c":{"d":"x"}}}"#).unwrap();
        let segs = |p: &str| parse_path(p).unwrap();
        assert_eq!(find_path(raw, &segs("$.a.c.d")).map(RawValue::get), Some("\"x\""));
        assert_eq!(find_path(raw, &segs("$.a.b")).map(RawValue::get), Some("[1]"));
        assert!(find_path(raw, &segs("$.a.b.x")).is_none());
        assert!(find_path(raw, &segs("$.z")).is_none());
    }
}
