//! VictoriaMetrics' CSV column descriptors (`columns=` / `format=` of
//! `/api/v1/import/csv`), e.g. `1:time:unix_s,2:label:ticker,3:metric:ask`, as a source,
//! so VictoriaMetrics users' scripts work unchanged.
//!
//! Each entry is `position:type:context` with 1-based positions: `metric:NAME` is a
//! value column written as the metric NAME, `label:NAME` a tag, `time:FORMAT` the
//! timestamp in `unix_s`, `unix_ms`, `unix_ns`, `rfc3339` or `custom:<Go layout>`
//! (translated to strftime). Positions not named are ignored. The CSV has no header.

use std::collections::BTreeMap;

use super::format::Format;
use super::source::{CsvOptions, HeaderMode, MetricSpec, Source, SourceErrors, TagSpec, TimestampSpec, ValueColumns};
use super::time::TimeFormat;

/// Parses `descriptor` into a source named `name` (and validates it).
pub fn parse(descriptor: &str, name: &str) -> Result<Source, SourceErrors> {
    let mut errors = Vec::new();
    let mut by_pos: BTreeMap<usize, (String, &str, String)> = BTreeMap::new();
    let mut time: Option<(usize, TimeFormat)> = None;
    for entry in descriptor.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut parts = entry.splitn(3, ':');
        let (pos, kind, context) = (parts.next().unwrap_or(""), parts.next(), parts.next());
        let Ok(pos) = pos.parse::<usize>() else {
            errors.push(format!(
                "columns: {entry:?} must start with a column position from 1 (e.g. 1:time:unix_s)"
            ));
            continue;
        };
        if pos == 0 {
            errors.push(format!("columns: {entry:?}: positions start at 1"));
            continue;
        }
        let context = context.unwrap_or("").to_owned();
        match kind {
            Some("time") => {
                let format = match context.as_str() {
                    "unix_s" | "unix_ms" | "unix_us" | "unix_ns" | "rfc3339" => TimeFormat::parse(&context).ok(),
                    c => c
                        .strip_prefix("custom:")
                        .map(|layout| TimeFormat::Custom(go_layout(layout))),
                };
                match format {
                    Some(f) if time.is_none() => time = Some((pos, f)),
                    Some(_) => errors.push("columns: only one column may be time".to_owned()),
                    None => errors.push(format!(
                        "columns: {entry:?}: the time format must be unix_s, unix_ms, unix_ns, rfc3339 or custom:<layout>"
                    )),
                }
                by_pos.insert(pos, ("time".to_owned(), "time", context.clone()));
            }
            Some(k @ ("label" | "metric")) if !context.is_empty() => {
                if by_pos.insert(pos, (context.clone(), k, context.clone())).is_some() {
                    errors.push(format!("columns: position {pos} is given twice"));
                }
            }
            Some("label" | "metric") => errors.push(format!("columns: {entry:?} needs a name after the type")),
            _ => errors.push(format!("columns: {entry:?}: the type must be time, label or metric")),
        }
    }
    if by_pos.is_empty() && errors.is_empty() {
        errors.push("columns: the descriptor is empty".to_owned());
    }
    let names_in_use: Vec<String> = by_pos.values().filter(|v| v.1 != "time").map(|v| v.0.clone()).collect();
    let time_name = if names_in_use.iter().any(|n| n == "time") {
        "_time"
    } else {
        "time"
    };
    let width = by_pos.keys().last().copied().unwrap_or(0);
    let mut columns = Vec::with_capacity(width);
    let mut tags = Vec::new();
    let mut values = Vec::new();
    for pos in 1..=width {
        match by_pos.get(&pos) {
            Some((_, "time", _)) => columns.push(time_name.to_owned()),
            Some((n, kind, _)) => {
                if columns.contains(n) {
                    errors.push(format!("columns: the name {n:?} is used twice"));
                }
                columns.push(n.clone());
                if *kind == "label" {
                    tags.push(n.clone());
                } else {
                    values.push(n.clone());
                }
            }
            None => columns.push(format!("_unused{pos}")),
        }
    }
    if values.is_empty() && errors.is_empty() {
        errors.push("columns: at least one metric column is needed".to_owned());
    }
    if !errors.is_empty() {
        return Err(SourceErrors(errors));
    }
    let source = Source {
        name: name.to_owned(),
        version: 0,
        format: Some(Format::Csv),
        csv: CsvOptions {
            delimiter: Some(','),
            header: HeaderMode::Absent,
            quote: Some('"'),
        },
        columns: Some(columns),
        paths: BTreeMap::new(),
        timestamp: Some(TimestampSpec {
            column: time.as_ref().map(|_| time_name.to_owned()),
            format: time.map(|t| t.1).unwrap_or_default(),
            timezone: "UTC".to_owned(),
        }),
        metric: MetricSpec {
            prefix: String::new(),
            value_columns: Some(ValueColumns::List(values)),
            name_column: None,
            value_column: None,
        },
        tags: TagSpec {
            columns: tags,
            fixed: BTreeMap::new(),
        },
        merge: Default::default(),
        retention: "0".to_owned(),
        on_error: Default::default(),
        enabled: true,
        kafka: None,
    };
    source.validate()?;
    Ok(source)
}

/// A Go time layout (`2006-01-02 15:04:05`) as the strftime layout that reads the same.
pub fn go_layout(layout: &str) -> String {
    const TOKENS: &[(&str, &str)] = &[
        ("January", "%B"),
        ("Jan", "%b"),
        ("Monday", "%A"),
        ("Mon", "%a"),
        ("MST", "%Z"),
        ("2006", "%Y"),
        ("Z07:00", "%:z"),
        ("-07:00", "%:z"),
        ("Z0700", "%z"),
        ("-0700", "%z"),
        ("-07", "%z"),
        ("002", "%j"),
        ("01", "%m"),
        ("02", "%d"),
        ("_2", "%e"),
        ("03", "%I"),
        ("04", "%M"),
        ("05", "%S"),
        ("06", "%y"),
        ("15", "%H"),
        ("PM", "%p"),
        ("pm", "%P"),
        ("1", "%m"),
        ("2", "%d"),
        ("3", "%I"),
        ("4", "%M"),
        ("5", "%S"),
    ];
    let mut out = String::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        // Fractional seconds: `.000`, `.999`, `,000`.
        if let Some(after) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(',')) {
            let n = after.bytes().take_while(|b| *b == b'0' || *b == b'9').count();
            if n > 0 {
                out.push_str("%.f");
                rest = &after[n..];
                continue;
            }
        }
        for (go, strf) in TOKENS {
            if let Some(after) = rest.strip_prefix(go) {
                out.push_str(strf);
                rest = after;
                continue 'outer;
            }
        }
        let c = rest.chars().next().expect("not empty");
        if c == '%' {
            out.push_str("%%");
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vm_example() {
        // Spec §8 case 22.
        let s = parse("1:label:ticker,2:metric:ask,3:time:unix_ms", "vm").unwrap();
        assert_eq!(s.columns.as_deref().unwrap(), ["ticker", "ask", "time"]);
        assert_eq!(s.tags.columns, ["ticker"]);
        assert_eq!(s.metric.value_columns, Some(ValueColumns::List(vec!["ask".into()])));
        assert_eq!(s.metric.prefix, "");
        let ts = s.timestamp.as_ref().unwrap();
        assert_eq!(ts.column.as_deref(), Some("time"));
        assert_eq!(ts.format, TimeFormat::Unix(super::super::time::Unit::Millis));
        assert_eq!(s.csv.header, HeaderMode::Absent);
    }

    #[test]
    fn gaps_names_and_errors() {
        let s = parse("1:time:rfc3339,3:label:time,4:metric:bid", "vm").unwrap();
        assert_eq!(s.columns.as_deref().unwrap(), ["_time", "_unused2", "time", "bid"]);
        let s = parse("2:metric:m,1:label:l", "vm").unwrap();
        assert_eq!(s.timestamp.unwrap().column, None);
        for bad in [
            "",
            "x:time:unix_s",
            "0:metric:a",
            "1:metric",
            "1:foo:bar",
            "1:time:unix",
            "1:label:a",
            "1:label:a,1:metric:b",
        ] {
            assert!(parse(bad, "vm").is_err(), "{bad}");
        }
    }

    #[test]
    fn go_layouts() {
        assert_eq!(go_layout("2006-01-02 15:04:05"), "%Y-%m-%d %H:%M:%S");
        assert_eq!(go_layout("2006-01-02T15:04:05.000Z07:00"), "%Y-%m-%dT%H:%M:%S%.f%:z");
        assert_eq!(go_layout("Jan _2 2006 3:04PM"), "%b %e %Y %I:%M%p");
        assert_eq!(go_layout("02/01/06 100%"), "%d/%m/%y %m00%%");
        let s = parse("1:time:custom:2006-01-02 15:04:05,2:label:a,3:metric:m", "vm").unwrap();
        assert_eq!(
            s.timestamp.unwrap().format,
            TimeFormat::Custom("%Y-%m-%d %H:%M:%S".into())
        );
    }
}
