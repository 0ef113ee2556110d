//! Writing query responses by hand: a raw query can return millions of points, and
//! building a `serde_json::Value` tree for them would cost several times the output.

use std::fmt::Write as _;

use kairos_protocols::Value;

use super::aggregators::Val;
use super::exec::MetricOutput;
use super::request::MetricQuery;

/// Appends one `queries[i]` object: `{"sample_size":N,"results":[...]}`.
pub fn render_metric(out: &mut String, m: &MetricQuery, r: &MetricOutput) {
    let _ = write!(out, "{{\"sample_size\":{},\"results\":[", r.sample_size);
    if r.groups.is_empty() {
        // KairosDB 1.3: a metric without data still gets one (empty) result.
        result_head(out, m);
        if !m.exclude_tags {
            out.push_str(",\"tags\":{}");
        }
        out.push_str(",\"values\":[]}");
    }
    for (i, g) in r.groups.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        result_head(out, m);
        out.push_str(",\"group_by\":[");
        out.push_str(&g.group_by);
        out.push(']');
        if !m.exclude_tags {
            tags(
                out,
                g.tags.iter().map(|(k, v)| (k.as_str(), v.iter().map(String::as_str))),
            );
        }
        out.push_str(",\"values\":[");
        for (j, (ts, v)) in g.values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{ts},");
            val(out, *v);
            out.push(']');
        }
        out.push_str("]}");
    }
    out.push_str("]}");
}

fn result_head(out: &mut String, m: &MetricQuery) {
    out.push_str("{\"name\":");
    string(out, &m.name);
    if let Some(alias) = &m.alias {
        out.push_str(",\"alias\":");
        string(out, alias);
    }
}

/// `,"tags":{"k":["v1","v2"],...}`.
pub fn tags<'a, V: Iterator<Item = &'a str>>(out: &mut String, tags: impl Iterator<Item = (&'a str, V)>) {
    out.push_str(",\"tags\":{");
    for (j, (k, vs)) in tags.enumerate() {
        if j > 0 {
            out.push(',');
        }
        string(out, k);
        out.push_str(":[");
        for (n, v) in vs.enumerate() {
            if n > 0 {
                out.push(',');
            }
            string(out, v);
        }
        out.push(']');
    }
    out.push('}');
}

/// A JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
}

fn val(out: &mut String, v: Val) {
    match v {
        Val::Long(l) => value(out, Value::Long(l)),
        Val::Double(d) => value(out, Value::Double(d)),
        Val::Null => out.push_str("null"),
    }
}

/// Longs as integers; doubles as their shortest round-trip form without a trailing
/// `.0`, as KairosDB prints them (`55.0` → `55`).
pub fn value(out: &mut String, v: Value) {
    match v {
        Value::Long(l) => {
            let _ = write!(out, "{l}");
        }
        Value::Double(d) if d.is_finite() => {
            let mut buf = ryu::Buffer::new();
            let s = buf.format_finite(d);
            out.push_str(s.strip_suffix(".0").unwrap_or(s));
        }
        // Never stored (refused at ingest); an aggregate that overflows prints null
        // rather than making the whole answer invalid JSON.
        Value::Double(_) => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::exec::GroupOutput;

    fn fmt(v: Value) -> String {
        let mut s = String::new();
        value(&mut s, v);
        s
    }

    #[test]
    fn numbers_print_like_kairosdb() {
        assert_eq!(fmt(Value::Long(-42)), "-42");
        assert_eq!(fmt(Value::Double(55.0)), "55");
        assert_eq!(fmt(Value::Double(23.86)), "23.86");
        assert_eq!(fmt(Value::Double(30.200000000000003)), "30.200000000000003");
        assert_eq!(fmt(Value::Double(1e300)), "1e300");
    }

    #[test]
    fn response_shape() {
        let m = MetricQuery::raw("m\"x");
        let tags = vec![("host".to_string(), vec!["a".to_string(), "b".to_string()])];
        let r = MetricOutput {
            sample_size: 2,
            groups: vec![GroupOutput {
                tags: std::sync::Arc::new(tags),
                group_by: r#"{"name":"type","type":"number"}"#.into(),
                values: vec![(1, Val::Long(3)), (2, Val::Double(0.5)), (3, Val::Null)],
            }],
        };
        let mut text = String::new();
        render_metric(&mut text, &m, &r);
        assert_eq!(
            text,
            r#"{"sample_size":2,"results":[{"name":"m\"x","group_by":[{"name":"type","type":"number"}],"tags":{"host":["a","b"]},"values":[[1,3],[2,0.5],[3,null]]}]}"#
        );
        let mut empty = String::new();
        render_metric(&mut empty, &m, &MetricOutput::default());
        assert_eq!(
            empty,
            r#"{"sample_size":0,"results":[{"name":"m\"x","tags":{},"values":[]}]}"#
        );
    }
}
