//! Parsing and validating a `/api/v1/datapoints/query` body, with KairosDB's error
//! texts (spec 4.2, 4.6).

use regex::Regex;
use serde_json::{Map, Value as Json};

use super::time::{self, Unit, UNIT_NAMES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// One accepted value of a tag filter.
#[derive(Debug, Clone)]
pub enum TagMatch {
    Exact(String),
    Regex(Regex),
}

impl TagMatch {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TagMatch::Exact(v) => v == value,
            TagMatch::Regex(r) => r.is_match(value),
        }
    }
}

#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub name: String,
    pub alias: Option<String>,
    /// AND across names, OR within one name's list.
    pub tags: Vec<(String, Vec<TagMatch>)>,
    pub exclude_tags: bool,
    pub limit: Option<usize>,
    pub order: Order,
}

#[derive(Debug, Clone)]
pub struct Query {
    /// Inclusive, milliseconds.
    pub start: i64,
    /// Inclusive, milliseconds.
    pub end: i64,
    pub metrics: Vec<MetricQuery>,
}

/// The prefix that makes a tag filter value a regular expression.
pub const REGEX_PREFIX: &str = "regex:";

/// Parses a query body; `now` is the reference for relative times. Errors are the
/// messages of a 400 response.
pub fn parse(body: &[u8], now: i64) -> Result<Query, Vec<String>> {
    let json: Json = serde_json::from_slice(body).map_err(|e| vec![format!("Invalid json: {e}")])?;
    let Json::Object(obj) = json else {
        return Err(vec!["Invalid json: a query must be a JSON object".into()]);
    };
    let mut errors = Vec::new();
    let start = match time_field(&obj, "start", now) {
        Ok(Some(t)) => Some(t),
        Ok(None) => {
            errors.push("query.metric[0].start_time relative or absolute time must be set".into());
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    };
    let end = match time_field(&obj, "end", now) {
        Ok(t) => t.unwrap_or(i64::MAX),
        Err(e) => {
            errors.push(e);
            i64::MAX
        }
    };
    if let Some(start) = start {
        if end < start {
            errors.push("query.metric[0].end_time must be greater than the start time".into());
        }
    }
    let metrics = match obj.get("metrics") {
        Some(Json::Array(list)) => list
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match metric(i, m) {
                Ok(m) => Some(m),
                Err(mut e) => {
                    errors.append(&mut e);
                    None
                }
            })
            .collect(),
        _ => {
            errors.push("query.metric[] must have a size of at least 1".into());
            Vec::new()
        }
    };
    match (errors.is_empty(), start) {
        (true, Some(start)) => Ok(Query { start, end, metrics }),
        _ => Err(errors),
    }
}

/// `<prefix>_absolute` or `<prefix>_relative`; `None` if neither is present.
fn time_field(obj: &Map<String, Json>, prefix: &str, now: i64) -> Result<Option<i64>, String> {
    if let Some(v) = obj.get(&format!("{prefix}_absolute")).filter(|v| !v.is_null()) {
        return integer(v)
            .map(Some)
            .ok_or_else(|| format!("query.{prefix}_absolute must be a whole number of milliseconds"));
    }
    let Some(rel) = obj.get(&format!("{prefix}_relative")).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let ctx = format!("query.{prefix}_relative");
    let value = rel
        .get("value")
        .and_then(integer)
        .filter(|v| *v >= 0)
        .ok_or_else(|| format!("{ctx}.value must be a whole number greater than or equal to 0"))?;
    let unit_text = rel.get("unit").and_then(Json::as_str).unwrap_or("");
    let unit = Unit::parse(unit_text)
        .ok_or_else(|| format!("{ctx}.{unit_text} is not a valid time unit, must be one of {UNIT_NAMES}"))?;
    Ok(Some(time::subtract(now, value, unit)))
}

/// A JSON integer, or a string holding one (KairosDB accepts `"value":"5"`).
fn integer(v: &Json) -> Option<i64> {
    match v {
        Json::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Json::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn metric(i: usize, m: &Json) -> Result<MetricQuery, Vec<String>> {
    let ctx = format!("query.metric[{i}]");
    let Json::Object(m) = m else {
        return Err(vec![format!("{ctx} must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let name = m.get("name").and_then(Json::as_str).unwrap_or("");
    if name.is_empty() {
        errors.push(format!("{ctx}.name may not be empty"));
    }
    for (field, what) in [("aggregators", "aggregators"), ("group_by", "group_by")] {
        if m.get(field).and_then(Json::as_array).is_some_and(|a| !a.is_empty()) {
            errors.push(format!(
                "{ctx}.{what} are not supported by this version of kairosd yet; send a raw query (no {what})"
            ));
        }
    }
    let mut tags = Vec::new();
    match m.get("tags") {
        None | Some(Json::Null) => {}
        Some(Json::Object(t)) => {
            for (k, v) in t {
                let values: Vec<&Json> = match v {
                    Json::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                let mut matches = Vec::new();
                for v in values {
                    match v.as_str() {
                        Some(s) => match s.strip_prefix(REGEX_PREFIX) {
                            Some(pattern) => match Regex::new(pattern) {
                                Ok(r) => matches.push(TagMatch::Regex(r)),
                                Err(e) => errors.push(format!("{ctx}.tags[{k}] bad regular expression: {e}")),
                            },
                            None => matches.push(TagMatch::Exact(s.to_string())),
                        },
                        None => errors.push(format!("{ctx}.tags[{k}] values must be strings")),
                    }
                }
                if !matches.is_empty() {
                    tags.push((k.clone(), matches));
                }
            }
        }
        Some(_) => errors.push(format!(
            "{ctx}.tags must be an object of tag name to value or list of values"
        )),
    }
    let limit = match m.get("limit") {
        None | Some(Json::Null) => None,
        Some(v) => match integer(v) {
            Some(n) if n >= 0 => Some(n as usize),
            _ => {
                errors.push(format!("{ctx}.limit must be a whole number greater than or equal to 0"));
                None
            }
        },
    };
    let order = match m
        .get("order")
        .and_then(Json::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("asc") => Order::Asc,
        Some("desc") => Order::Desc,
        Some(other) => {
            errors.push(format!("{ctx}.order {other} is not a valid order, must be asc or desc"));
            Order::Asc
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(MetricQuery {
        name: name.to_string(),
        alias: m.get("alias").and_then(Json::as_str).map(str::to_string),
        tags,
        exclude_tags: m.get("exclude_tags").and_then(Json::as_bool).unwrap_or(false),
        limit,
        order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errs(body: &str) -> Vec<String> {
        parse(body.as_bytes(), 1_000_000).unwrap_err()
    }

    #[test]
    fn absolute_and_relative_ranges() {
        let q = parse(
            br#"{"start_absolute":5,"end_absolute":"9","metrics":[{"name":"m"}]}"#,
            0,
        )
        .unwrap();
        assert_eq!((q.start, q.end), (5, 9));
        let q = parse(
            br#"{"start_relative":{"value":"2","unit":"seconds"},"metrics":[]}"#,
            10_000,
        )
        .unwrap();
        assert_eq!((q.start, q.end), (8_000, i64::MAX));
        assert!(q.metrics.is_empty());
    }

    #[test]
    fn kairosdb_error_texts() {
        assert_eq!(
            errs(r#"{"metrics":[{"name":"m"}]}"#),
            ["query.metric[0].start_time relative or absolute time must be set"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":5,"end_absolute":4,"metrics":[{"name":"m"}]}"#),
            ["query.metric[0].end_time must be greater than the start time"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":5,"metrics":[{"name":""}]}"#),
            ["query.metric[0].name may not be empty"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":5}"#),
            ["query.metric[] must have a size of at least 1"]
        );
        let e = errs(r#"{"start_relative":{"value":1,"unit":"bogus"},"metrics":[{"name":"m"}]}"#);
        assert!(
            e[0].contains("bogus is not a valid time unit, must be one of MILLISECONDS"),
            "{e:?}"
        );
        assert!(errs("{").pop().unwrap().starts_with("Invalid json"));
    }

    #[test]
    fn aggregators_are_refused_with_a_reason() {
        let e = errs(r#"{"start_absolute":5,"metrics":[{"name":"m","aggregators":[{"name":"sum"}]}]}"#);
        assert!(e[0].contains("aggregators are not supported"), "{e:?}");
    }

    #[test]
    fn tag_filters_exact_list_and_regex() {
        let q = parse(
            br#"{"start_absolute":0,"metrics":[{"name":"m","tags":{"host":["a","b"],"dc":"regex:^eu-"},"order":"DESC","limit":3}]}"#,
            0,
        )
        .unwrap();
        let m = &q.metrics[0];
        assert_eq!((m.order, m.limit), (Order::Desc, Some(3)));
        let dc = &m.tags.iter().find(|(k, _)| k == "dc").unwrap().1;
        assert!(dc[0].matches("eu-west") && !dc[0].matches("us-east"));
        let host = &m.tags.iter().find(|(k, _)| k == "host").unwrap().1;
        assert!(host.iter().any(|t| t.matches("b")) && !host.iter().any(|t| t.matches("c")));
        let e = errs(r#"{"start_absolute":0,"metrics":[{"name":"m","tags":{"h":"regex:("}}]}"#);
        assert!(e[0].contains("bad regular expression"), "{e:?}");
    }
}
