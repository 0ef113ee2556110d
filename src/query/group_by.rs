//! group_by (spec 4.4): `tag` groups whole series (planned from the tag index before a
//! point is read); `time`, `value` and `bin` give each point a group number, and the
//! points of a group with the same numbers form one result, in the order KairosDB's
//! Grouper first meets them.

use std::fmt::Write as _;

use serde_json::Value as Json;

use super::aggregators::{Pt, Val};
use super::json;
use super::props::{self, Problem, Sampling};
use super::time::{civil_from_days, Unit};

#[derive(Debug, Clone)]
pub enum GroupBySpec {
    Tag(Vec<String>),
    Time { size: Sampling, count: i64 },
    Value(i64),
    Bin(Vec<f64>),
}

const PKG: &str = "org.kairosdb.core.groupby";

/// Parses group-by `j` of a metric query whose context is `metric_ctx`.
pub fn parse(json: &Json, metric_ctx: &str, j: usize) -> Result<GroupBySpec, String> {
    let list_ctx = format!("{metric_ctx}.group_by[{j}]");
    let Json::Object(obj) = json else {
        return Err(format!("{list_ctx} must be an object with a name"));
    };
    let name = match obj.get("name") {
        Some(Json::String(s)) if !s.is_empty() => s.as_str(),
        Some(Json::String(_)) | Some(Json::Null) | None => return Err(format!("{list_ctx} must have a name")),
        Some(other) => return Err(format!("{list_ctx}.{other} invalid group_by name")),
    };
    let class = match name {
        "tag" => "TagGroupBy",
        "time" => "TimeGroupBy",
        "value" => "ValueGroupBy",
        "bin" => "BinGroupBy",
        _ => return Err(format!("{list_ctx}.{name} invalid group_by name")),
    };
    let ctx = list_ctx.as_str();
    let at = |p: Problem| p.at(ctx);
    let no_setter = |prop: &str| props::no_setter(prop, name, &format!("{PKG}.{class}"));
    let props = obj.iter().filter(|(k, _)| k.as_str() != "name");
    match name {
        "tag" => {
            let mut tags = None;
            for (k, v) in props {
                if k != "tags" {
                    return Err(no_setter(k));
                }
                tags = match v {
                    Json::Null => None,
                    Json::Array(a) => Some(a.iter().map(props::string).collect::<Vec<_>>()),
                    Json::String(s) => Some(vec![s.clone()]),
                    _ => return Err(format!("{ctx}.tags must be a list of tag names")),
                };
            }
            match tags {
                None => Err(format!("{ctx}.tags may not be null")),
                Some(t) if t.is_empty() => Err(format!("{ctx}.tags may not be empty")),
                Some(t) => Ok(GroupBySpec::Tag(t)),
            }
        }
        "time" => {
            let (mut size, mut count) = (None, 0);
            for (k, v) in props {
                match k.as_str() {
                    "range_size" => size = Some(props::sampling(v, "range_size").map_err(at)?),
                    "group_count" => count = props::integer(v, k).map_err(at)?,
                    _ => return Err(no_setter(k)),
                }
            }
            let size = size.ok_or_else(|| format!("{ctx}.rangeSize may not be null"))?;
            if count < 1 {
                return Err(format!("{ctx}.groupCount must be greater than or equal to 1"));
            }
            if size.value == 0 {
                return Err(format!("{ctx}.range_size.value must be greater than 0"));
            }
            Ok(GroupBySpec::Time { size, count })
        }
        "value" => {
            let mut size = 0;
            for (k, v) in props {
                if k != "range_size" {
                    return Err(no_setter(k));
                }
                size = props::integer(v, k).map_err(at)?;
            }
            if size < 1 {
                return Err(format!("{ctx}.rangeSize must be greater than or equal to 1"));
            }
            Ok(GroupBySpec::Value(size.min(i32::MAX as i64)))
        }
        _ => {
            let mut bins = Vec::new();
            for (k, v) in props {
                if k != "bins" {
                    return Err(no_setter(k));
                }
                let Json::Array(a) = v else {
                    return Err(format!("{ctx}.bins must be a list of numbers"));
                };
                bins = a
                    .iter()
                    .map(|b| props::double(b, "bins"))
                    .collect::<Result<_, _>>()
                    .map_err(at)?;
            }
            if bins.is_empty() {
                return Err(format!("{ctx}.bins may not be empty"));
            }
            Ok(GroupBySpec::Bin(bins))
        }
    }
}

impl GroupBySpec {
    /// The group number of `p` for the time, value and bin group-bys; `start` is the
    /// query start.
    pub fn group_id(&self, p: Pt, start: i64) -> i32 {
        match self {
            GroupBySpec::Tag(_) => 0,
            GroupBySpec::Time { size, count } => {
                if size.unit == Unit::Months {
                    // A UTC calendar, as KairosDB's TimeGroupBy uses.
                    let ym = |t: i64| {
                        let (y, m, _) = civil_from_days(t.div_euclid(86_400_000));
                        y * 12 + m as i64
                    };
                    ((ym(p.0) - ym(start)) % count) as i32
                } else {
                    let ms = group_size_ms(*size).max(1);
                    (((p.0 as i128 - start as i128) / ms as i128) as i64 % count) as i32
                }
            }
            GroupBySpec::Value(size) => match p.1 {
                Val::Long(l) => (l / size) as i32,
                Val::Double(d) => (d as i32) / (*size as i32),
                Val::Null => -1,
            },
            GroupBySpec::Bin(bins) => {
                let Some(v) = p.1.as_f64() else { return -1 };
                if v < bins[0] {
                    return 0;
                }
                for i in 0..bins.len() - 1 {
                    if v >= bins[i] && v < bins[i + 1] {
                        return i as i32 + 1;
                    }
                }
                bins.len() as i32
            }
        }
    }

    /// This group-by's entry in a result's `group_by` list (not for `tag`).
    pub fn render(&self, id: i32, out: &mut String) {
        match self {
            GroupBySpec::Tag(_) => {}
            GroupBySpec::Time { size, count } => {
                let _ = write!(
                    out,
                    "{{\"name\":\"time\",\"range_size\":{{\"value\":{},\"unit\":\"{}\"}},\"group_count\":{count},\"group\":{{\"group_number\":{id}}}}}",
                    size.value,
                    size.unit_name()
                );
            }
            GroupBySpec::Value(size) => {
                let _ = write!(
                    out,
                    "{{\"name\":\"value\",\"range_size\":{size},\"group\":{{\"group_number\":{id}}}}}"
                );
            }
            GroupBySpec::Bin(bins) => {
                out.push_str("{\"name\":\"bin\",\"bins\":[");
                for (i, b) in bins.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    json::value(out, kairos_protocols::Value::Double(*b));
                }
                let _ = write!(out, "],\"group\":{{\"bin_number\":{id}}}}}");
            }
        }
    }
}

/// KairosDB's TimeGroupBy size in ms; a year counts 52 weeks, as it does there.
fn group_size_ms(size: Sampling) -> i64 {
    let per = match size.unit {
        Unit::Milliseconds => 1,
        Unit::Seconds => 1000,
        Unit::Minutes => 60_000,
        Unit::Hours => 3_600_000,
        Unit::Days => 86_400_000,
        Unit::Weeks => 7 * 86_400_000,
        Unit::Months => 0,
        Unit::Years => 52 * 7 * 86_400_000,
    };
    size.value.saturating_mul(per)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(j: Json) -> Result<GroupBySpec, String> {
        parse(&j, "query.metric[0]", 0)
    }

    #[test]
    fn kairosdb_texts() {
        assert_eq!(
            p(json!({})).unwrap_err(),
            "query.metric[0].group_by[0] must have a name"
        );
        assert_eq!(
            p(json!({"name": "bogus"})).unwrap_err(),
            "query.metric[0].group_by[0].bogus invalid group_by name"
        );
        assert_eq!(
            p(json!({"name": "tag"})).unwrap_err(),
            "query.metric[0].group_by[0].tags may not be null"
        );
        assert_eq!(
            p(json!({"name": "tag", "tags": []})).unwrap_err(),
            "query.metric[0].group_by[0].tags may not be empty"
        );
        assert_eq!(
            p(json!({"name": "time", "group_count": 1})).unwrap_err(),
            "query.metric[0].group_by[0].rangeSize may not be null"
        );
        assert_eq!(
            p(json!({"name": "time", "range_size": {"value": "-1", "unit": "minutes"}, "group_count": "1"}))
                .unwrap_err(),
            "query.metric[0].group_by[0].range_size.value must be greater than or equal to 0"
        );
        assert_eq!(
            p(json!({"name": "time", "range_size": {"value": 1, "unit": "bogus"}, "group_count": 1})).unwrap_err(),
            "query.metric[0].group_by[0].bogus is not a valid time unit, must be one of \
             MILLISECONDS,SECONDS,MINUTES,HOURS,DAYS,WEEKS,MONTHS,YEARS"
        );
        assert_eq!(
            p(json!({"name": "time", "range_size": {"value": 1, "unit": "hours"}})).unwrap_err(),
            "query.metric[0].group_by[0].groupCount must be greater than or equal to 1"
        );
    }

    #[test]
    fn group_numbers() {
        let time = p(json!({"name": "time", "range_size": {"value": 1, "unit": "hours"}, "group_count": 24})).unwrap();
        assert_eq!(time.group_id((25 * 3_600_000 + 5, Val::Long(0)), 0), 1);
        let value = p(json!({"name": "value", "range_size": 10})).unwrap();
        assert_eq!(value.group_id((0, Val::Long(25)), 0), 2);
        assert_eq!(value.group_id((0, Val::Double(-15.5)), 0), -1);
        let bin = p(json!({"name": "bin", "bins": [10, "20", 30]})).unwrap();
        let ids: Vec<i32> = [5.0, 10.0, 25.0, 30.0, 99.0]
            .iter()
            .map(|&v| bin.group_id((0, Val::Double(v)), 0))
            .collect();
        assert_eq!(ids, [0, 1, 2, 3, 3]);
        let mut s = String::new();
        time.render(3, &mut s);
        assert_eq!(
            s,
            r#"{"name":"time","range_size":{"value":1,"unit":"HOURS"},"group_count":24,"group":{"group_number":3}}"#
        );
    }
}
