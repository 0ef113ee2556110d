//! Parsing and validating a query body (`/datapoints/query`, `/query/tags`, `/delete`),
//! with KairosDB's error texts (spec 4.2, 4.6). Every problem found is reported, each
//! naming its place (`query.metric[0].aggregators[1]...`).

use regex::Regex;
use serde_json::{Map, Value as Json};

use super::aggregators::parse::{self as agg_parse, QueryDefaults};
use super::aggregators::AggSpec;
use super::group_by::{self, GroupBySpec};
use super::props;
use super::time::{self, Unit, UNIT_NAMES};
use super::tz::Tz;

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

/// A tag filter: AND across names, OR within one name's list.
pub type TagFilter = Vec<(String, Vec<TagMatch>)>;

#[derive(Debug, Clone)]
pub struct MetricQuery {
    pub name: String,
    pub alias: Option<String>,
    pub tags: TagFilter,
    pub exclude_tags: bool,
    /// Raw points per group before the aggregators; `None` (or KairosDB's 0) is no limit.
    pub limit: Option<usize>,
    pub order: Order,
    pub group_by: Vec<GroupBySpec>,
    pub aggregators: Vec<AggSpec>,
}

impl MetricQuery {
    /// A raw query for `name` over everything (tests and tools).
    pub fn raw(name: &str) -> MetricQuery {
        MetricQuery {
            name: name.to_string(),
            alias: None,
            tags: Vec::new(),
            exclude_tags: false,
            limit: None,
            order: Order::Asc,
            group_by: Vec::new(),
            aggregators: Vec::new(),
        }
    }

    /// The tag names of the query's (first) tag group-by, as KairosDB uses only that one.
    pub fn tag_group(&self) -> Option<&[String]> {
        self.group_by.iter().find_map(|g| match g {
            GroupBySpec::Tag(t) => Some(t.as_slice()),
            _ => None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct Query {
    /// Inclusive, milliseconds.
    pub start: i64,
    /// Inclusive, milliseconds.
    pub end: i64,
    pub time_zone: Tz,
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
    let mut start_failed = false;
    let start = match time_field(&obj, "start", now) {
        Ok(t) => t,
        Err(e) => {
            errors.push(e);
            start_failed = true;
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
    match obj.get("cache_time") {
        None | Some(Json::Null) => {}
        Some(v) => match props::integer(v, "cache_time") {
            Ok(c) if c >= 0 => {}
            Ok(_) => errors.push("cache_time must be greater than or equal to 0".into()),
            Err(p) => errors.push(format!("{} {}", p.path, p.message)),
        },
    }
    let time_zone = match obj.get("time_zone") {
        None => Tz::Utc,
        Some(v) => props::time_zone(v).unwrap_or_else(|p| {
            errors.push(p.at("query"));
            Tz::Utc
        }),
    };
    plugins(&obj, "query", &mut errors);
    let metrics_json = match obj.get("metrics") {
        Some(Json::Array(list)) => list.as_slice(),
        _ => {
            errors.push("query.metric[] must have a size of at least 1".into());
            &[]
        }
    };
    // KairosDB checks the range per metric, so an empty `metrics` needs no start.
    if !metrics_json.is_empty() {
        match start {
            None if !start_failed => {
                errors.push("query.metric[0].start_time relative or absolute time must be set".into())
            }
            Some(s) if end < s => errors.push("query.metric[0].end_time must be greater than the start time".into()),
            _ => {}
        }
    }
    let defaults = QueryDefaults {
        start: start.unwrap_or(0),
        end,
        tz: &time_zone,
    };
    let mut metrics = Vec::with_capacity(metrics_json.len());
    for (i, m) in metrics_json.iter().enumerate() {
        match metric(i, m, &defaults) {
            Ok(m) => metrics.push(m),
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Query {
        start: start.unwrap_or(0),
        end,
        time_zone,
        metrics,
    })
}

/// `plugins` (KairosDB's query plugins): none is installed, so any named one is refused.
fn plugins(obj: &Map<String, Json>, ctx: &str, errors: &mut Vec<String>) {
    if let Some(Json::Array(list)) = obj.get("plugins") {
        for (i, p) in list.iter().enumerate() {
            match p.get("name").and_then(Json::as_str) {
                Some(name) if !name.is_empty() => {
                    errors.push(format!("{ctx}.plugins[{i}].{name} invalid query plugin name"))
                }
                _ => errors.push(format!("{ctx}.plugins[{i}] must have a name")),
            }
        }
    }
}

/// `<prefix>_absolute` or `<prefix>_relative`; `None` if neither is present.
fn time_field(obj: &Map<String, Json>, prefix: &str, now: i64) -> Result<Option<i64>, String> {
    if let Some(v) = obj.get(&format!("{prefix}_absolute")).filter(|v| !v.is_null()) {
        return props::integer(v, "")
            .map(Some)
            .map_err(|_| format!("query.{prefix}_absolute must be a whole number of milliseconds"));
    }
    let Some(rel) = obj.get(&format!("{prefix}_relative")).filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let field = format!("{prefix}_relative");
    let value = rel
        .get("value")
        .ok_or_else(|| format!("{field}.value may not be null"))
        .and_then(|v| props::integer(v, "").map_err(|_| format!("{field}.value must be a whole number")))?;
    if value < 0 {
        return Err(format!("{field}.value must be greater than or equal to 0"));
    }
    let unit_text = rel.get("unit").map(props::string).unwrap_or_default();
    let unit = Unit::parse(&unit_text)
        .ok_or_else(|| format!("query.{unit_text} is not a valid time unit, must be one of {UNIT_NAMES}"))?;
    Ok(Some(time::subtract(now, value, unit)))
}

fn metric(i: usize, m: &Json, defaults: &QueryDefaults<'_>) -> Result<MetricQuery, Vec<String>> {
    let ctx = format!("query.metric[{i}]");
    let Json::Object(m) = m else {
        return Err(vec![format!("{ctx} must be a JSON object")]);
    };
    let mut errors = Vec::new();
    let name = m.get("name").and_then(Json::as_str).unwrap_or("");
    if name.is_empty() {
        errors.push(format!("{ctx}.name may not be empty"));
    }
    let tags = tag_filter(&ctx, m.get("tags"), &mut errors);
    let limit = match m.get("limit") {
        None | Some(Json::Null) => None,
        Some(v) => match props::integer(v, "limit") {
            Ok(0) => None,
            Ok(n) if n > 0 => Some(n as usize),
            _ => {
                errors.push(format!("{ctx}.limit must be a whole number greater than or equal to 0"));
                None
            }
        },
    };
    let order = match m.get("order") {
        None | Some(Json::Null) => Order::Asc,
        Some(v) => match props::string(v).to_ascii_lowercase().as_str() {
            "asc" => Order::Asc,
            "desc" => Order::Desc,
            _ => {
                errors.push(format!("{ctx}.order must be either 'asc' or 'desc'"));
                Order::Asc
            }
        },
    };
    let exclude_tags = match m.get("exclude_tags") {
        None => false,
        Some(v) => props::boolean(v, "exclude_tags").unwrap_or_else(|p| {
            errors.push(p.at(&ctx));
            false
        }),
    };
    let list = |field: &str, errors: &mut Vec<String>| -> Vec<Json> {
        match m.get(field) {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(a)) => a.clone(),
            Some(_) => {
                errors.push(format!("{ctx}.{field} must be a list"));
                Vec::new()
            }
        }
    };
    let mut group_by = Vec::new();
    for (j, g) in list("group_by", &mut errors).iter().enumerate() {
        match group_by::parse(g, &ctx, j) {
            Ok(g) => group_by.push(g),
            Err(e) => errors.push(e),
        }
    }
    let mut aggregators = Vec::new();
    for (j, a) in list("aggregators", &mut errors).iter().enumerate() {
        match agg_parse::aggregator(a, &ctx, j, defaults) {
            Ok(a) => aggregators.push(a),
            Err(e) => errors.push(e),
        }
    }
    plugins(m, &ctx, &mut errors);
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(MetricQuery {
        name: name.to_string(),
        alias: m.get("alias").and_then(Json::as_str).map(str::to_string),
        tags,
        exclude_tags,
        limit,
        order,
        group_by,
        aggregators,
    })
}

fn tag_filter(ctx: &str, tags: Option<&Json>, errors: &mut Vec<String>) -> TagFilter {
    let mut out = Vec::new();
    match tags {
        None | Some(Json::Null) => {}
        Some(Json::Object(t)) => {
            for (count, (k, v)) in t.iter().enumerate() {
                let tctx = format!("{ctx}.tags[{count}]");
                if k.is_empty() {
                    errors.push(format!("{tctx} name must not be empty"));
                    continue;
                }
                let values: Vec<&Json> = match v {
                    Json::Array(a) => a.iter().collect(),
                    other => vec![other],
                };
                let mut matches = Vec::new();
                for v in values {
                    let s = match v {
                        Json::String(s) if !s.is_empty() => s.clone(),
                        Json::Number(n) => n.to_string(),
                        Json::Bool(b) => b.to_string(),
                        _ => {
                            errors.push(format!("{tctx}.{k} value must not be null or empty"));
                            continue;
                        }
                    };
                    match s.strip_prefix(REGEX_PREFIX) {
                        Some(pattern) => match Regex::new(pattern) {
                            Ok(r) => matches.push(TagMatch::Regex(r)),
                            Err(e) => errors.push(format!("{tctx}.{k} bad regular expression: {e}")),
                        },
                        None => matches.push(TagMatch::Exact(s)),
                    }
                }
                // An empty list filters nothing (Grafana sends `"host": []` for none).
                if !matches.is_empty() {
                    out.push((k.clone(), matches));
                }
            }
        }
        Some(_) => errors.push(format!(
            "{ctx}.tags must be an object of tag name to value or list of values"
        )),
    }
    out
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
        // KairosDB validates the range per metric: no metric, no start needed.
        assert!(parse(br#"{"metrics":[]}"#, 0).unwrap().metrics.is_empty());
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
        assert_eq!(
            errs(r#"{"start_relative":{"value":-1,"unit":"days"},"metrics":[{"name":"m"}]}"#),
            ["start_relative.value must be greater than or equal to 0"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":1,"cache_time":-1,"metrics":[{"name":"m"}]}"#),
            ["cache_time must be greater than or equal to 0"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":1,"metrics":[{"name":"m","tags":{"host":""}}]}"#),
            ["query.metric[0].tags[0].host value must not be null or empty"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":1,"metrics":[{"name":"m","tags":{"":"a"}}]}"#),
            ["query.metric[0].tags[0] name must not be empty"]
        );
        assert_eq!(
            errs(r#"{"start_absolute":1,"metrics":[{"name":"m","order":"up"}]}"#),
            ["query.metric[0].order must be either 'asc' or 'desc'"]
        );
        let e = errs(r#"{"start_relative":{"value":1,"unit":"bogus"},"metrics":[{"name":"m"}]}"#);
        assert_eq!(
            e,
            [format!(
                "query.bogus is not a valid time unit, must be one of {UNIT_NAMES}"
            )]
        );
        let e = errs(r#"{"start_absolute":1,"time_zone":"bogus","metrics":[{"name":"m"}]}"#);
        assert!(e[0].starts_with("query.bogus is not a valid time zone"), "{e:?}");
        assert!(errs("{").pop().unwrap().starts_with("Invalid json"));
        // Problems in different places are all reported.
        let e = errs(
            r#"{"start_absolute":1,"metrics":[{"name":"m","aggregators":[{"name":"bogus"}],"group_by":[{"name":"tag"}]}]}"#,
        );
        assert_eq!(
            e,
            [
                "query.metric[0].group_by[0].tags may not be null",
                "query.metric[0].aggregators[0].bogus invalid aggregators name"
            ]
        );
    }

    #[test]
    fn tag_filters_exact_list_and_regex_and_limit_zero() {
        let q = parse(
            br#"{"start_absolute":0,"metrics":[{"name":"m","tags":{"host":["a","b"],"dc":"regex:^eu-","x":[]},"order":"DESC","limit":3},{"name":"n","limit":0}]}"#,
            0,
        )
        .unwrap();
        let m = &q.metrics[0];
        assert_eq!((m.order, m.limit), (Order::Desc, Some(3)));
        assert_eq!(m.tags.len(), 2, "an empty value list filters nothing");
        let dc = &m.tags.iter().find(|(k, _)| k == "dc").unwrap().1;
        assert!(dc[0].matches("eu-west") && !dc[0].matches("us-east"));
        let host = &m.tags.iter().find(|(k, _)| k == "host").unwrap().1;
        assert!(host.iter().any(|t| t.matches("b")) && !host.iter().any(|t| t.matches("c")));
        assert_eq!(q.metrics[1].limit, None, "limit 0 is no limit, as in KairosDB");
        let e = errs(r#"{"start_absolute":0,"metrics":[{"name":"m","tags":{"h":"regex:("}}]}"#);
        assert!(e[0].contains("bad regular expression"), "{e:?}");
    }
}
