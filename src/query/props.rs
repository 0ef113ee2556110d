//! Reading the properties of aggregators and group-bys the way KairosDB's Gson setup
//! does: numbers may come as JSON strings, units in any case, and each problem is a
//! `(path, message)` pair that the caller joins onto its context
//! (`query.metric[0].aggregators[1]` + `.` + path + ` ` + message).

use serde_json::Value as Json;

use super::time::{Unit, UNIT_NAMES};
use super::tz::Tz;

/// A property problem: where (relative to the processor) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub path: String,
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            path: path.into(),
            message: message.into(),
        }
    }

    /// `<ctx>.<path> <message>`, KairosDB's wording.
    pub fn at(&self, ctx: &str) -> String {
        if self.path.is_empty() {
            format!("{ctx} {}", self.message)
        } else {
            format!("{ctx}.{} {}", self.path, self.message)
        }
    }
}

/// A query processor's sampling, range size or relative time: `{value, unit}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    pub value: i64,
    pub unit: Unit,
}

impl Sampling {
    pub fn unit_name(&self) -> &'static str {
        self.unit.name()
    }
}

/// Java's `Double.parseDouble` text as a Rust float, with its exception messages.
pub fn double(v: &Json, name: &str) -> Result<f64, Problem> {
    match v {
        Json::Number(n) => n.as_f64().ok_or_else(|| Problem::new(name, "is not a number")),
        Json::String(s) => parse_java_double(s).map_err(|m| Problem::new(name, m)),
        Json::Null => Ok(0.0),
        _ => Err(Problem::new(name, "must be a number")),
    }
}

fn parse_java_double(s: &str) -> Result<f64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty String".into());
    }
    if t.matches('.').count() > 1 {
        return Err("multiple points".into());
    }
    let body = t.strip_suffix(['d', 'D', 'f', 'F']).unwrap_or(t);
    match body.parse::<f64>() {
        Ok(d) if body.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) => Ok(d),
        _ => Err(format!("For input string: \"{s}\"")),
    }
}

/// A whole number, from a JSON number or a numeric string.
pub fn integer(v: &Json, name: &str) -> Result<i64, Problem> {
    let bad = || Problem::new(name, format!("For input string: \"{}\"", text(v)));
    match v {
        Json::Number(n) => n
            .as_i64()
            .or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                    .map(|f| f as i64)
            })
            .ok_or_else(bad),
        Json::String(s) => s.trim().parse().map_err(|_| bad()),
        _ => Err(bad()),
    }
}

/// `true`/`false`, also as strings.
pub fn boolean(v: &Json, name: &str) -> Result<bool, Problem> {
    match v {
        Json::Bool(b) => Ok(*b),
        Json::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Json::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Json::Null => Ok(false),
        _ => Err(Problem::new(name, "must be true or false")),
    }
}

pub fn string(v: &Json) -> String {
    match v {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn text(v: &Json) -> String {
    string(v)
}

/// A time unit in any case; the problem's path is the bad text itself, as KairosDB's.
pub fn unit(v: &Json) -> Result<Unit, Problem> {
    let s = text(v);
    Unit::parse(&s).ok_or_else(|| Problem::new(s, format!("is not a valid time unit, must be one of {UNIT_NAMES}")))
}

/// `{value, unit}` under property `name` (`sampling`, `range_size`, `start_relative`).
pub fn sampling(v: &Json, name: &str) -> Result<Sampling, Problem> {
    let Json::Object(o) = v else {
        return Err(Problem::new(name, "must be an object with value and unit"));
    };
    let value = match o.get("value") {
        None | Some(Json::Null) => return Err(Problem::new(format!("{name}.value"), "may not be null")),
        Some(v) => integer(v, &format!("{name}.value"))?,
    };
    if value < 0 {
        return Err(Problem::new(
            format!("{name}.value"),
            "must be greater than or equal to 0",
        ));
    }
    let unit = match o.get("unit") {
        None | Some(Json::Null) => return Err(Problem::new(format!("{name}.unit"), "may not be null")),
        Some(u) => unit(u)?,
    };
    Ok(Sampling { value, unit })
}

/// An IANA zone name or offset; `""` and null are UTC.
pub fn time_zone(v: &Json) -> Result<Tz, Problem> {
    let s = match v {
        Json::Null => String::new(),
        other => text(other),
    };
    Tz::parse(&s).ok_or_else(|| {
        Problem::new(
            s,
            "is not a valid time zone, must be one of the IANA time zone IDs (e.g. UTC, Europe/Berlin, \
             America/New_York) or an offset such as +05:30",
        )
    })
}

/// KairosDB's answer to a property its class has no setter for (a 400 on its own).
pub fn no_setter(property: &str, object: &str, class: &str) -> String {
    format!(
        "Property '{property}' was specified for object '{object}' but no matching setter was found on 'class {class}'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn java_number_messages() {
        assert_eq!(
            double(&json!("0.7.1"), "percentile").unwrap_err().message,
            "multiple points"
        );
        assert_eq!(
            double(&json!("abc"), "percentile").unwrap_err().message,
            "For input string: \"abc\""
        );
        assert_eq!(double(&json!("0.5"), "p").unwrap(), 0.5);
        assert_eq!(double(&json!(2), "p").unwrap(), 2.0);
        assert_eq!(integer(&json!("10"), "size").unwrap(), 10);
        assert!(integer(&json!(1.5), "size").is_err());
    }

    #[test]
    fn sampling_texts() {
        let ctx = "query.metric[0].aggregators[0]";
        let e = sampling(&json!({"value": -1, "unit": "minutes"}), "sampling").unwrap_err();
        assert_eq!(
            e.at(ctx),
            "query.metric[0].aggregators[0].sampling.value must be greater than or equal to 0"
        );
        let e = sampling(&json!({"value": 1, "unit": "bogus"}), "sampling").unwrap_err();
        assert_eq!(
            e.at(ctx),
            format!("query.metric[0].aggregators[0].bogus is not a valid time unit, must be one of {UNIT_NAMES}")
        );
        let s = sampling(&json!({"value": "5", "unit": "HOURS"}), "sampling").unwrap();
        assert_eq!((s.value, s.unit), (5, Unit::Hours));
    }
}
