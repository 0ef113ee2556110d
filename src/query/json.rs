//! Writing query responses by hand: a raw query can return millions of points, and
//! building a `serde_json::Value` tree for them would cost several times the output.

use std::fmt::Write as _;

use kairos_protocols::Value;

use super::request::MetricQuery;
use super::MetricResult;

/// `{"queries":[...]}` for `results`, one per metric query in request order.
pub fn render(metrics: &[MetricQuery], results: &[MetricResult]) -> String {
    let points: usize = results.iter().map(|r| r.values.len()).sum();
    let mut out = String::with_capacity(64 + points * 24);
    out.push_str("{\"queries\":[");
    for (i, (m, r)) in metrics.iter().zip(results).enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"sample_size\":{},\"results\":[{{\"name\":", r.sample_size);
        string(&mut out, &m.name);
        if let Some(alias) = &m.alias {
            out.push_str(",\"alias\":");
            string(&mut out, alias);
        }
        if !r.values.is_empty() {
            out.push_str(",\"group_by\":[{\"name\":\"type\",\"type\":\"number\"}]");
        }
        if !m.exclude_tags {
            out.push_str(",\"tags\":{");
            for (j, (k, vs)) in r.tags.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                string(&mut out, k);
                out.push_str(":[");
                for (n, v) in vs.iter().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    string(&mut out, v);
                }
                out.push(']');
            }
            out.push('}');
        }
        out.push_str(",\"values\":[");
        for (j, (ts, v)) in r.values.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let _ = write!(out, "[{ts},");
            value(&mut out, *v);
            out.push(']');
        }
        out.push_str("]}]}");
    }
    out.push_str("]}");
    out
}

/// A JSON string literal.
pub fn string(out: &mut String, s: &str) {
    out.push_str(&serde_json::to_string(s).expect("strings always serialize"));
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
        // Refused at ingest; kept valid JSON should one ever be read back.
        Value::Double(_) => out.push_str("null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::request::Order;
    use std::collections::{BTreeMap, BTreeSet};

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
        let m = MetricQuery {
            name: "m\"x".into(),
            alias: None,
            tags: vec![],
            exclude_tags: false,
            limit: None,
            order: Order::Asc,
        };
        let mut tags = BTreeMap::new();
        tags.insert("host".to_string(), BTreeSet::from(["a".to_string(), "b".to_string()]));
        let r = MetricResult {
            sample_size: 2,
            tags,
            values: vec![(1, Value::Long(3)), (2, Value::Double(0.5))],
        };
        let text = render(std::slice::from_ref(&m), &[r]);
        assert_eq!(
            text,
            r#"{"queries":[{"sample_size":2,"results":[{"name":"m\"x","group_by":[{"name":"type","type":"number"}],"tags":{"host":["a","b"]},"values":[[1,3],[2,0.5]]}]}]}"#
        );
        let empty = render(&[m], &[MetricResult::default()]);
        assert_eq!(
            empty,
            r#"{"queries":[{"sample_size":0,"results":[{"name":"m\"x","tags":{},"values":[]}]}]}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(parsed["queries"][0]["results"][0]["values"][1][1], 0.5);
    }
}
