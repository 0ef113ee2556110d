//! Validation of one metric object and conversion of its values, with KairosDB's
//! messages (`DataPointsParser`). A metric-level problem (name, tags, top-level
//! timestamp/value, a field of the wrong type) stores nothing of that metric; a bad
//! `datapoints` entry skips only that entry.

use std::borrow::Cow;
use std::fmt;

use super::{Entry, Fields, Shape, State};
use crate::datapoint::Value;
use crate::number::{self, quote, NumberError};
use crate::series_key;

/// A JSON value classified from its raw text.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json<'de> {
    Null,
    Bool(bool),
    /// The number's text as sent, which decides long versus double.
    Number(&'de str),
    Str(Cow<'de, str>),
    Object,
    Array {
        empty: bool,
    },
}

/// Classifies a value from its JSON text (which either reader has checked is valid JSON).
pub(super) fn classify(text: &str) -> Json<'_> {
    match text.as_bytes().first() {
        Some(b'"') => {
            let inner = &text[1..text.len() - 1];
            if has_backslash(inner.as_bytes()) {
                // Valid JSON (serde checked it), so this cannot fail; fall back anyway.
                serde_json::from_str::<String>(text)
                    .map_or(Json::Str(Cow::Borrowed(inner)), |s| Json::Str(Cow::Owned(s)))
            } else {
                Json::Str(Cow::Borrowed(inner))
            }
        }
        Some(b'n') => Json::Null,
        Some(b't') => Json::Bool(true),
        Some(b'f') => Json::Bool(false),
        Some(b'{') => Json::Object,
        Some(b'[') => Json::Array {
            empty: text[1..].trim_start().starts_with(']'),
        },
        _ => Json::Number(text),
    }
}

/// Whether a string's text holds an escape; short names and tag values are checked
/// inline, byte by byte, which costs less than a call to `memchr`.
#[inline(always)]
#[allow(clippy::manual_contains)] // `contains` calls `memchr`, which is the point
pub(super) fn has_backslash(s: &[u8]) -> bool {
    if s.len() < 24 {
        s.iter().any(|&b| b == b'\\')
    } else {
        memchr::memchr(b'\\', s).is_some()
    }
}

impl Json<'_> {
    /// What Gson's string adapter makes of a scalar: numbers and booleans as their text.
    fn as_text(&self) -> Option<Cow<'_, str>> {
        match self {
            Json::Str(s) => Some(Cow::Borrowed(s.as_ref())),
            Json::Number(t) => Some(Cow::Borrowed(t)),
            Json::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
            _ => None,
        }
    }

    /// The text of a number, or of a string that KairosDB's `Util.isNumber` accepts.
    fn numeric_text(&self) -> Option<&str> {
        match self {
            Json::Number(t) => Some(t),
            Json::Str(s) if is_numeric(s) => Some(s),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::Str(_) => "a string",
            Json::Object => "an object",
            Json::Array { .. } => "an array",
        }
    }
}

/// `Util.isNumber`, without its bug that lets `.5.5` through: an optional sign, digits
/// with at most one `.`, and no trailing `.`.
fn is_numeric(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let mut digits = 0;
    let mut points = 0;
    for b in body.bytes() {
        match b {
            b'0'..=b'9' => digits += 1,
            b'.' => points += 1,
            _ => return false,
        }
    }
    digits > 0 && points <= 1 && !body.ends_with('.')
}

/// Strings that KairosDB would have stored as string points but that a user almost
/// certainly meant as a (non-finite) number.
fn is_non_finite_word(s: &str) -> bool {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    ["nan", "inf", "infinity"].iter().any(|w| body.eq_ignore_ascii_case(w))
}

/// `metric[i]` or `metric[i](name=X)`, the prefix of every message about one metric.
#[derive(Clone, Copy)]
struct Ctx<'a> {
    index: usize,
    name: Option<&'a str>,
}

impl fmt::Display for Ctx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "metric[{}]", self.index)?;
        match self.name {
            Some(name) if !name.is_empty() => write!(f, "(name={})", quote(name.as_bytes())),
            _ => Ok(()),
        }
    }
}

/// How `ttl` may be given: Java's `int`, and not negative.
pub(super) const TTL_MAX: i64 = i32::MAX as i64;

impl<'de> State<'de> {
    /// Validates the metric object just read and appends its points. `known` is the
    /// series key of this object's `name` and `tags` texts when a series cache has them
    /// (the cache holds only series that validated without an error, with validation
    /// on): the tags are then neither checked nor encoded again. Returns whether the
    /// object's series key was made without any error (what a cache may remember).
    pub(super) fn finish(&mut self, f: Fields<'de>, known: Option<&[u8]>) -> bool {
        if self.plain_shortcut && self.finish_plain(&f, known) {
            return true;
        }
        let index = self.index;
        let errors_before = self.errors.len();
        let errors = &mut self.errors;
        let at = Ctx { index, name: None };

        let validate = match f.skip_validate.map(classify) {
            None | Some(Json::Null) | Some(Json::Bool(false)) => true,
            Some(Json::Bool(true)) => false,
            Some(Json::Str(s)) if s.eq_ignore_ascii_case("true") || s.eq_ignore_ascii_case("false") => {
                !s.eq_ignore_ascii_case("true")
            }
            Some(other) => {
                errors.push(format!(
                    "{at}.skip_validate must be true or false, not {}.",
                    other.kind()
                ));
                true
            }
        };

        let name_json = f.name.map(classify);
        let name: Option<Cow<str>> = match &name_json {
            None | Some(Json::Null) => {
                errors.push(format!("{at}.name may not be null."));
                None
            }
            Some(j) => match j.as_text() {
                Some(t) if t.is_empty() && validate => {
                    errors.push(format!("{at}.name may not be empty."));
                    None
                }
                Some(t) => Some(t),
                None => {
                    errors.push(format!("{at}.name must be a string, not {}.", j.kind()));
                    None
                }
            },
        };
        let ctx = Ctx {
            index,
            name: name.as_deref(),
        };

        let kind_json = f.kind.map(classify);
        let kind: Option<Cow<str>> = match &kind_json {
            None | Some(Json::Null) => None,
            Some(j) => match j.as_text() {
                Some(t) => Some(t),
                None => {
                    errors.push(format!("{ctx}.type must be a string, not {}.", j.kind()));
                    None
                }
            },
        };

        let ttl = match f.ttl.map(classify) {
            None | Some(Json::Null) => 0,
            Some(j) => match j.numeric_text().map(json_long) {
                Some(Ok((v, true))) if (0..=TTL_MAX).contains(&v) => v as u32,
                _ => {
                    let shown = f.ttl.unwrap_or("");
                    errors.push(format!(
                        "{ctx}.ttl must be a whole number of seconds from 0 to {TTL_MAX}, not {}.",
                        quote(shown.as_bytes())
                    ));
                    0
                }
            },
        };

        // `time` is an alias of `timestamp` and wins when both are given.
        let (ts_field, ts_raw) = match (f.time, f.timestamp) {
            (Some(t), _) if classify(t) != Json::Null => ("time", Some(t)),
            (_, Some(t)) => ("timestamp", Some(t)),
            (t, None) => ("time", t),
        };
        let ts_json = ts_raw.map(classify).filter(|j| *j != Json::Null);
        let timestamp = match &ts_json {
            None => None,
            Some(j) => match j.numeric_text().map(json_long) {
                Some(Ok((v, true))) => Some(v),
                Some(Ok((_, false))) => {
                    let t = j.numeric_text().unwrap_or_default();
                    errors.push(format!(
                        "{ctx}.{ts_field} must be a whole number of milliseconds, not {}.",
                        quote(t.as_bytes())
                    ));
                    None
                }
                Some(Err(e)) => {
                    errors.push(format!("{ctx}.{ts_field}: {e}."));
                    None
                }
                None => {
                    errors.push(format!(
                        "{ctx}.{ts_field} must be a number of milliseconds, not {}.",
                        j.kind()
                    ));
                    None
                }
            },
        };

        let value = f.value.map(classify);
        let is_string_type = kind.as_deref() == Some("string");
        if validate {
            if ts_json.is_some() {
                match &value {
                    None => errors.push(format!("{ctx}.value may not be null.")),
                    Some(_) if is_string_type => {}
                    Some(v) => empty_check(errors, &ctx, "value", v),
                }
            } else if value.as_ref().is_some_and(|v| *v != Json::Null) {
                errors.push(format!("{ctx}.timestamp may not be null."));
            }
        }

        if known.is_none() {
            self.pairs.clear();
            check_tags(errors, &self.tags, &mut self.pairs, f.tags, &ctx, validate);
        }

        if let Shape::Wrong(kind) = f.datapoints {
            errors.push(format!(
                "{ctx}.datapoints must be an array of [timestamp, value] arrays, not {kind}."
            ));
        }

        if errors.len() > errors_before {
            return false;
        }
        let Some(metric) = name.as_deref() else {
            return false;
        };

        let key: &[u8] = match known {
            Some(key) => key,
            None => {
                self.key.clear();
                series_key::encode_into(
                    &mut self.key,
                    metric,
                    self.pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
                );
                &self.key
            }
        };

        if let (Some(ts), Some(v)) = (timestamp, &value) {
            match convert(kind.as_deref(), v, &ctx, &What::Value(ctx)) {
                Ok(value) => self.batch.push_encoded(key, ts, value, ttl),
                Err(e) => errors.push(e),
            }
        }

        for (i, entry) in self.entries.iter().enumerate() {
            let what = What::Entry(ctx, i, "value");
            let point = entry_point(entry, kind.as_deref(), &ctx, i)
                .and_then(|(ts, kind, v)| Ok((ts, convert(kind.as_deref(), &v, &ctx, &what)?)));
            match point {
                Ok((ts, value)) => self.batch.push_encoded(key, ts, value, ttl),
                Err(e) => errors.push(e),
            }
        }
        true
    }
}

/// The `tags` checks (KairosDB's order and texts), collecting the decoded pairs sorted
/// by name for the series key.
fn check_tags<'de>(
    errors: &mut super::Errors,
    tags: &[(Cow<'de, str>, &'de str)],
    pairs: &mut Vec<(Cow<'de, str>, Cow<'de, str>)>,
    shape: Shape,
    ctx: &Ctx,
    validate: bool,
) {
    match shape {
        Shape::Wrong(kind) => errors.push(format!(
            "{ctx}.tags must be an object of tag names to values, not {kind}."
        )),
        _ if validate && tags.is_empty() => {
            errors.push(format!("{ctx}.tags count must be greater than or equal to 1."))
        }
        _ => {}
    }
    for (i, (tag, raw)) in tags.iter().enumerate() {
        let v = classify(raw);
        if validate && tag.is_empty() {
            errors.push(format!("{ctx}.tag[{i}].name may not be empty."));
        }
        let label = TagLabel { index: i, name: tag };
        let text = match v {
            Json::Null => {
                errors.push(format!("{ctx}.tag[{label}].value may not be null."));
                continue;
            }
            Json::Str(s) => s,
            Json::Number(t) => Cow::Borrowed(t),
            Json::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
            Json::Object | Json::Array { .. } => {
                errors.push(format!("{ctx}.tag[{label}].value must be a string, not {}.", v.kind()));
                continue;
            }
        };
        if validate && text.is_empty() {
            errors.push(format!("{ctx}.tag[{label}].value may not be empty."));
        }
        pairs.push((tag.clone(), text));
    }
    sort_by_name(pairs);
    if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        errors.push(format!(
            "{ctx}.tag[{}] is given more than once.",
            quote(w[0].0.as_bytes())
        ));
    }
}

/// Sorts tags by name: an insertion sort for the few tags a metric has (the general
/// sort's setup costs more than the sort at that size).
fn sort_by_name(pairs: &mut [(Cow<'_, str>, Cow<'_, str>)]) {
    if pairs.len() > 8 {
        pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        return;
    }
    for i in 1..pairs.len() {
        let mut j = i;
        while j > 0 && pairs[j - 1].0.as_bytes() > pairs[j].0.as_bytes() {
            pairs.swap(j - 1, j);
            j -= 1;
        }
    }
}

/// `tag[name]` once the name is known, `tag[i]` when it is empty (KairosDB's rule).
struct TagLabel<'a> {
    index: usize,
    name: &'a str,
}

impl fmt::Display for TagLabel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        if self.name.is_empty() {
            write!(f, "{}", self.index)
        } else {
            f.write_str(&quote(self.name.as_bytes()))
        }
    }
}

/// KairosDB's `isNotNullOrEmpty` for a JSON value.
fn empty_check(errors: &mut super::Errors, ctx: &Ctx, field: impl fmt::Display, v: &Json) {
    match v {
        Json::Null => errors.push(format!("{ctx}.{field} may not be empty.")),
        Json::Str(s) if s.is_empty() => errors.push(format!("{ctx}.{field} may not be empty.")),
        Json::Array { empty: true } => errors.push(format!("{ctx}.{field} may not be an empty array.")),
        _ => {}
    }
}

/// Where a value came from, for messages: `metric[0](name=m).value` or
/// `metric[0](name=m).datapoints[3].value`.
enum What<'a> {
    Value(Ctx<'a>),
    Entry(Ctx<'a>, usize, &'static str),
}

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            What::Value(ctx) => write!(f, "{ctx}.value"),
            What::Entry(ctx, i, field) => write!(f, "{ctx}.datapoints[{i}].{field}"),
        }
    }
}

/// Checks one `datapoints` entry; gives its timestamp, type and the value to convert.
fn entry_point<'a, 'de>(
    entry: &Entry<'de>,
    metric_kind: Option<&'a str>,
    ctx: &Ctx,
    i: usize,
) -> Result<(i64, Option<Cow<'a, str>>, Json<'de>), String> {
    let (len, items) = match entry {
        Entry::NotArray(kind) => {
            return Err(format!(
                "{ctx}.datapoints[{i}] must be an array of [timestamp, value] or [timestamp, value, type], not {kind}."
            ))
        }
        Entry::Array { len, items } => (*len, items),
    };
    let (Some(ts_raw), Some(value_raw)) = (items[0], items[1]) else {
        let field = if len == 0 { "timestamp" } else { "value" };
        return Err(format!("{ctx}.datapoints[{i}].{field} cannot be null or empty."));
    };
    let ts_json = classify(ts_raw);
    let ts = match ts_json.numeric_text() {
        // Gson's `getAsLong` truncates a fractional timestamp here (1.5 → 1).
        Some(t) => json_long(t)
            .map(|(v, _)| v)
            .map_err(|e| format!("{ctx}.datapoints[{i}].timestamp: {e}."))?,
        None if ts_json == Json::Null => return Err(format!("{ctx}.datapoints[{i}].timestamp may not be null.")),
        None => {
            return Err(format!(
                "{ctx}.datapoints[{i}].timestamp must be a number of milliseconds, not {}.",
                shown(&ts_json, ts_raw)
            ))
        }
    };
    let kind: Option<Cow<'a, str>> = match items[2].map(classify) {
        None => metric_kind.map(Cow::Borrowed),
        Some(Json::Str(s)) => Some(Cow::Owned(s.into_owned())),
        Some(_) => Some(Cow::Owned(items[2].unwrap_or("").to_owned())),
    };
    let value = classify(value_raw);
    if kind.as_deref() != Some("string") {
        let mut problems = super::Errors::default();
        empty_check(&mut problems, ctx, format_args!("datapoints[{i}].value"), &value);
        if let Some(e) = problems.pop() {
            return Err(e);
        }
    }
    Ok((ts, kind, value))
}

/// A value for a message: strings quoted as sent, anything else by its JSON text.
fn shown(json: &Json, raw: &str) -> String {
    match json {
        Json::Str(s) => format!("'{}'", quote(s.as_bytes())),
        _ => quote(raw.as_bytes()),
    }
}

const NO_STRINGS: &str = "kairosd does not store string data points";

/// Turns a JSON value into a sample of `kind` (or the inferred kind), KairosDB style.
fn convert(kind: Option<&str>, v: &Json, ctx: &Ctx, what: &What) -> Result<Value, String> {
    let text_of = |v: &Json| {
        v.as_text()
            .map(|t| quote(t.as_bytes()))
            .unwrap_or_else(|| v.kind().to_owned())
    };
    match kind {
        // KairosDB's `findType`: a number's text decides long (no `.`) or double.
        None => match (v.numeric_text(), v) {
            (Some(t), _) if t.contains('.') => to_double(t, what),
            (Some(t), _) => to_long(t, what),
            (None, Json::Str(s)) if is_non_finite_word(s) => Err(format!(
                "{what} '{}' is not a finite number; kairosd refuses NaN and Infinity.",
                quote(s.as_bytes())
            )),
            (None, Json::Str(_) | Json::Bool(_)) => {
                Err(format!("{what} '{}' is not a number; {NO_STRINGS}.", text_of(v)))
            }
            (None, _) => Err(format!("{ctx} value is an invalid type")),
        },
        Some("long") => match v.numeric_text() {
            Some(t) => to_long(t, what),
            None => Err(format!("{what} {} is not a number (type long).", text_of(v))),
        },
        Some("double") => match v.numeric_text() {
            Some(t) => to_double(t, what),
            None if matches!(v, Json::Str(s) if is_non_finite_word(s)) => Err(format!(
                "{what} {} is not a finite number; kairosd refuses NaN and Infinity.",
                text_of(v)
            )),
            None => Err(format!("{what} {} is not a number (type double).", text_of(v))),
        },
        Some("string") => Err(format!("{what} has type 'string'; {NO_STRINGS}.")),
        Some(other) => Err(format!("Unregistered data point type '{}'", quote(other.as_bytes()))),
    }
}

/// A JSON number (or numeric string) as a long, truncated like Gson's `getAsLong`;
/// the second value says whether nothing was truncated.
fn json_long(text: &str) -> Result<(i64, bool), NumberError> {
    let bytes = text.as_bytes();
    // The strict parser is the fast path for the common plain integer.
    match number::parse_long(bytes) {
        Ok(v) => Ok((v, true)),
        Err(_) => number::decimal_to_long(bytes),
    }
}

fn to_long(text: &str, what: &What) -> Result<Value, String> {
    json_long(text)
        .map(|(v, _)| Value::Long(v))
        .map_err(|e| format!("{what}: {e}."))
}

fn to_double(text: &str, what: &What) -> Result<Value, String> {
    // The common `23.86` without the general parser (the same, correctly rounded value).
    if let Some(number::Plain::Double(v)) = number::plain_number(text.as_bytes()) {
        return Ok(Value::Double(v));
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Value::Double(v)),
        Ok(_) => Err(format!(
            "{what} {} is not a finite number; kairosd refuses NaN and Infinity.",
            quote(text.as_bytes())
        )),
        Err(_) => Err(format!("{what}: {}.", NumberError::NotDecimal(quote(text.as_bytes())))),
    }
}
