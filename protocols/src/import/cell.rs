//! A row's cells as decoders find them, and the rules that turn a cell into a value
//! (the REST number rule), a tag or a name. Shared by every format, so CSV, JSON and
//! Parquet agree on what `20.5`, `"20.5"`, `1e3`, `NaN` or `true` mean.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::quarantine::{cut_value, Kind};
use super::time::Unit;
use crate::datapoint::Value;
use crate::number::{decimal_to_long, parse_long};

/// One cell of a row as its decoder found it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// No such key (JSON), or null (JSON, Parquet).
    Absent,
    /// A CSV cell or a Parquet string; may be any bytes.
    Text(&'a [u8]),
    /// A JSON string literal with its quotes, escapes not yet decoded.
    JsonStr(&'a str),
    /// A JSON number's text.
    Number(&'a str),
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A Parquet TIMESTAMP in its declared unit, adjusted to UTC.
    Timestamp(i64, Unit),
    /// A Parquet TIMESTAMP that is not adjusted to UTC: a wall-clock time, read in the
    /// source's timezone like any naive timestamp.
    LocalTimestamp(i64, Unit),
    /// A Parquet DATE: days since the epoch.
    Date(i32),
    /// A JSON object or array where a scalar belongs.
    Nested,
}

impl Cell<'_> {
    /// The cell as text for messages and `value`.
    pub fn shown(&self) -> Cow<'_, [u8]> {
        match self {
            Cell::Absent => Cow::Borrowed(b""),
            Cell::Text(t) => Cow::Borrowed(t),
            Cell::JsonStr(s) => Cow::Owned(json_string(s).into_owned().into_bytes()),
            Cell::Number(t) => Cow::Borrowed(t.as_bytes()),
            Cell::Bool(b) => Cow::Borrowed(if *b { b"true" } else { b"false" }),
            Cell::Int(v) => Cow::Owned(v.to_string().into_bytes()),
            Cell::Float(v) => Cow::Owned(v.to_string().into_bytes()),
            Cell::Timestamp(v, _) | Cell::LocalTimestamp(v, _) => Cow::Owned(v.to_string().into_bytes()),
            Cell::Date(v) => Cow::Owned(v.to_string().into_bytes()),
            Cell::Nested => Cow::Borrowed(b"{...}"),
        }
    }
}

/// A JSON string literal's content, unescaped only when it has escapes.
pub(crate) fn json_string(lit: &str) -> Cow<'_, str> {
    let inner = lit.get(1..lit.len().saturating_sub(1)).unwrap_or("");
    if inner.contains('\\') {
        serde_json::from_str::<String>(lit).map_or(Cow::Borrowed(inner), Cow::Owned)
    } else {
        Cow::Borrowed(inner)
    }
}

/// Appends a tag's or name's text; `Err` says why the cell cannot be one.
pub(crate) fn text_of(cell: &Cell, out: &mut String) -> Result<(), String> {
    match cell {
        Cell::Absent => Ok(()),
        Cell::Text(t) => match std::str::from_utf8(t.trim_ascii()) {
            Ok(s) => {
                out.push_str(s);
                Ok(())
            }
            Err(_) => Err(format!("value \"{}\" is not UTF-8", cut_value(t))),
        },
        Cell::JsonStr(s) => {
            out.push_str(json_string(s).trim());
            Ok(())
        }
        Cell::Number(t) => {
            out.push_str(t);
            Ok(())
        }
        Cell::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            Ok(())
        }
        Cell::Int(v) | Cell::Timestamp(v, _) | Cell::LocalTimestamp(v, _) => {
            write!(out, "{v}").map_err(|e| e.to_string())
        }
        Cell::Date(v) => write!(out, "{v}").map_err(|e| e.to_string()),
        Cell::Float(v) => write!(out, "{v}").map_err(|e| e.to_string()),
        Cell::Nested => Err("value is an object or array, not text".to_owned()),
    }
}

/// A value cell by the REST number rule: integers are longs, a decimal point makes a
/// double; an exponent without a point stays a long when exact (`1e3`), else a double
/// (nothing is truncated silently). Empty is no point; NaN/±Infinity and booleans are refused.
pub(crate) fn value_of(cell: &Cell) -> Result<Option<Value>, (Kind, String)> {
    match cell {
        Cell::Absent => Ok(None),
        Cell::Text(t) => text_value(t),
        Cell::JsonStr(s) => text_value(json_string(s).as_bytes()),
        Cell::Number(t) => text_value(t.as_bytes()),
        Cell::Bool(b) => Err((Kind::BadValue, format!("value \"{b}\" is a boolean, not a number"))),
        Cell::Int(v) => Ok(Some(Value::Long(*v))),
        Cell::Float(v) if v.is_finite() => Ok(Some(Value::Double(*v))),
        Cell::Float(v) => Err(non_finite(v.to_string().as_bytes())),
        Cell::Timestamp(..) | Cell::LocalTimestamp(..) | Cell::Date(_) => Err((
            Kind::BadValue,
            format!(
                "value \"{}\" is a timestamp or date, not a number",
                cut_value(&cell.shown())
            ),
        )),
        Cell::Nested => Err((Kind::BadValue, "value is an object or array, not a number".to_owned())),
    }
}

fn non_finite(text: &[u8]) -> (Kind, String) {
    (
        Kind::NonFinite,
        format!(
            "value \"{}\" is not a finite number; kairosd refuses NaN and Infinity",
            cut_value(text)
        ),
    )
}

fn text_value(t: &[u8]) -> Result<Option<Value>, (Kind, String)> {
    let t = t.trim_ascii();
    if t.is_empty() {
        return Ok(None);
    }
    // Whole numbers take the strict parser; checking the digits first spares it the
    // error it would build (and allocate) for every decimal.
    let unsigned = t.strip_prefix(b"-").unwrap_or(t);
    if !unsigned.is_empty() && unsigned.iter().all(u8::is_ascii_digit) {
        return match parse_long(t) {
            Ok(v) => Ok(Some(Value::Long(v))),
            Err(_) => Err((
                Kind::BadValue,
                format!("value \"{}\" is out of range for a 64-bit integer", cut_value(t)),
            )),
        };
    }
    // One pass: only digits, signs, points and exponents, and which of them.
    let body = t.strip_prefix(b"-").or_else(|| t.strip_prefix(b"+")).unwrap_or(t);
    let (mut numeric, mut point, mut exponent) = (
        body.first().is_some_and(|b| b.is_ascii_digit() || *b == b'.'),
        false,
        false,
    );
    for &b in body {
        match b {
            b'0'..=b'9' | b'+' | b'-' => {}
            b'.' => point = true,
            b'e' | b'E' => exponent = true,
            _ => {
                numeric = false;
                break;
            }
        }
    }
    if numeric {
        // `1e3` and `+5` are whole numbers when exact (as Gson reads them); nothing
        // is truncated silently, so `1e-2` stays a double.
        if !point && (exponent || t.starts_with(b"+")) {
            match decimal_to_long(t) {
                Ok((v, true)) => return Ok(Some(Value::Long(v))),
                Ok((_, false)) => {}
                Err(crate::number::NumberError::OutOfRange(_)) if !exponent => {
                    return Err((
                        Kind::BadValue,
                        format!("value \"{}\" is out of range for a 64-bit integer", cut_value(t)),
                    ))
                }
                Err(_) => {}
            }
        }
        // Only digits, signs, points and exponents reach here, so Java's wider grammar
        // (hex, suffixes) cannot; its short-decimal fast path is the reason to use it.
        if let Ok(v) = crate::number::parse_java_double(t) {
            return if v.is_finite() {
                Ok(Some(Value::Double(v)))
            } else {
                Err(non_finite(t))
            };
        }
    }
    let word = t.strip_prefix(b"-").or_else(|| t.strip_prefix(b"+")).unwrap_or(t);
    if [&b"nan"[..], b"inf", b"infinity"]
        .iter()
        .any(|w| word.eq_ignore_ascii_case(w))
    {
        return Err(non_finite(t));
    }
    if t.eq_ignore_ascii_case(b"true") || t.eq_ignore_ascii_case(b"false") {
        return Err((
            Kind::BadValue,
            format!("value \"{}\" is a boolean, not a number", cut_value(t)),
        ));
    }
    Err((Kind::BadValue, format!("value \"{}\" is not a number", cut_value(t))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Result<Option<Value>, Kind> {
        text_value(s.as_bytes()).map_err(|e| e.0)
    }

    #[test]
    fn the_number_rule() {
        assert_eq!(v("40"), Ok(Some(Value::Long(40))));
        assert_eq!(v(" -7 "), Ok(Some(Value::Long(-7))));
        assert_eq!(v("+5"), Ok(Some(Value::Long(5))));
        assert_eq!(v("20.5"), Ok(Some(Value::Double(20.5))));
        assert_eq!(v("5.0"), Ok(Some(Value::Double(5.0))));
        assert_eq!(v(".5"), Ok(Some(Value::Double(0.5))));
        assert_eq!(v("1e3"), Ok(Some(Value::Long(1000))));
        assert_eq!(v("1e-2"), Ok(Some(Value::Double(0.01))));
        assert_eq!(v("1.5e3"), Ok(Some(Value::Double(1500.0))));
        assert_eq!(v(""), Ok(None));
        assert_eq!(v("   "), Ok(None));
        assert_eq!(v("NaN"), Err(Kind::NonFinite));
        assert_eq!(v("-Infinity"), Err(Kind::NonFinite));
        assert_eq!(v("inf"), Err(Kind::NonFinite));
        assert_eq!(v("1e999"), Err(Kind::NonFinite));
        assert_eq!(v("true"), Err(Kind::BadValue));
        assert_eq!(v("abc"), Err(Kind::BadValue));
        assert_eq!(v("1,5"), Err(Kind::BadValue));
        assert_eq!(v("0x10"), Err(Kind::BadValue));
        assert_eq!(v("99999999999999999999"), Err(Kind::BadValue));
        assert_eq!(v("1e30"), Ok(Some(Value::Double(1e30))));
        assert_eq!(value_of(&Cell::Bool(true)).map_err(|e| e.0), Err(Kind::BadValue));
        assert_eq!(value_of(&Cell::Float(f64::NAN)).map_err(|e| e.0), Err(Kind::NonFinite));
        assert_eq!(value_of(&Cell::Number("23.86")), Ok(Some(Value::Double(23.86))));
        assert_eq!(value_of(&Cell::JsonStr("\"12\"")), Ok(Some(Value::Long(12))));
        assert_eq!(value_of(&Cell::Absent), Ok(None));
    }
}
