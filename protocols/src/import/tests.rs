//! Spec §8's cases that need no IO, through the public seam: a source, bytes fed in
//! chunks, the points and records that come out.

use std::io::Write;

use proptest::prelude::*;

use super::*;
use crate::{DataPoint, Value};

const W: &str = r#"{"name":"w","format":"csv","csv":{"delimiter":",","header":"auto"},"columns":null,
 "timestamp":{"column":"time","format":"auto","timezone":"UTC"},
 "metric":{"prefix":"w.","value_columns":["temp","hum"]},
 "tags":{"columns":["station"],"static":{}},"merge":"append","retention":"0",
 "on_error":"quarantine","enabled":true}"#;

fn w() -> Source {
    Source::from_json(W.as_bytes()).unwrap()
}

fn source(json: &str) -> Source {
    Source::from_json(json.as_bytes()).unwrap_or_else(|e| panic!("{e}"))
}

fn run_with(source: Option<Source>, options: ImportOptions, input: &[u8], chunk: usize) -> Result<Output, ImportError> {
    let mut import = Import::new(source, options)?;
    let mut out = Output::default();
    for c in input.chunks(chunk.max(1)) {
        import.feed(c, &mut out)?;
    }
    if input.is_empty() {
        import.feed(&[], &mut out)?;
    }
    import.finish(&mut out)?;
    Ok(out)
}

fn run(source: &Source, format: Option<Format>, input: &[u8]) -> Output {
    let options = ImportOptions {
        format,
        ..ImportOptions::default()
    };
    run_with(Some(source.clone()), options, input, 1 << 16).unwrap_or_else(|e| panic!("{e}"))
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn point(metric: &str, t: &[(&str, &str)], ts: i64, v: Value) -> DataPoint {
    DataPoint {
        metric: metric.into(),
        tags: tags(t),
        timestamp: ts,
        value: v,
        ttl: None,
    }
}

fn case1_points() -> Vec<DataPoint> {
    vec![
        point("w.temp", &[("station", "s1")], 1_700_000_000_000, Value::Double(20.5)),
        point("w.hum", &[("station", "s1")], 1_700_000_000_000, Value::Long(40)),
    ]
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

#[test]
fn case1_csv_wide_row() {
    let out = run(&w(), None, b"time,station,temp,hum\n1700000000,s1,20.5,40\n");
    assert_eq!(out.batch.to_points(), case1_points());
    assert_eq!(out.header.as_deref(), Some(&b"time,station,temp,hum\n"[..]));
    assert_eq!(
        out.stats,
        Stats {
            rows: 1,
            rows_accepted: 1,
            points: 2,
            bytes: 44,
            ..Stats::default()
        }
    );
}

#[test]
fn case2_same_points_from_ndjson_json_tsv_and_gzip() {
    let nd = br#"{"time":1700000000,"station":"s1","temp":20.5,"hum":40}"#;
    assert_eq!(run(&w(), Some(Format::Ndjson), nd).batch.to_points(), case1_points());
    let bom: Vec<u8> = [&b"\xEF\xBB\xBF"[..], nd].concat();
    assert_eq!(run(&w(), None, &bom).batch.to_points(), case1_points());
    // Format by sniffing, whatever the source's default.
    let mut imp = Import::new(
        Some(w()),
        ImportOptions {
            name: Some("x.ndjson".into()),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(imp.format(), Some(Format::Ndjson));
    let mut out = Output::default();
    imp.feed(nd, &mut out).unwrap();
    imp.finish(&mut out).unwrap();
    assert_eq!(out.batch.to_points(), case1_points());
    let arr = "\u{feff}[ {\"time\":\"1700000000\",\"station\":\"s1\",\"temp\":\"20.5\",\"hum\":\"40\"} ]".as_bytes();
    assert_eq!(run(&w(), Some(Format::Json), arr).batch.to_points(), case1_points());
    let tsv = b"time\tstation\ttemp\thum\n1700000000\ts1\t20.5\t40\n";
    assert_eq!(run(&w(), Some(Format::Tsv), tsv).batch.to_points(), case1_points());
    // Gzipped, no name hint, the source's format unset: gzip by magic, CSV by sniffing.
    let mut s = w();
    s.format = None;
    let gz = gzip(b"time,station,temp,hum\n1700000000,s1,20.5,40\n");
    for chunk in [1, 3, 10, 1000] {
        let mut imp = Import::new(Some(s.clone()), ImportOptions::default()).unwrap();
        let mut out = Output::default();
        for c in gz.chunks(chunk) {
            imp.feed(c, &mut out).unwrap();
        }
        imp.finish(&mut out).unwrap();
        assert_eq!(out.batch.to_points(), case1_points(), "chunk {chunk}");
        assert_eq!(imp.compression(), Some(Compression::Gzip));
        assert_eq!(imp.format(), Some(Format::Csv));
    }
    // The same NDJSON gzipped, sniffed as NDJSON.
    let out = run_with(Some(s), ImportOptions::default(), &gzip(nd), 7).unwrap();
    assert_eq!(out.batch.to_points(), case1_points());
}

#[test]
fn case3_headerless_csv_without_columns_is_a_mapping_error() {
    let e = run_with(Some(w()), ImportOptions::default(), b"1700000000,s1,20.5,40\n", 100).unwrap_err();
    let ImportError::Mapping(msg) = e else { panic!("{e:?}") };
    assert!(msg.contains("no header") && msg.contains("\"time\""), "{msg}");
    let options = ImportOptions {
        header: Some(HeaderMode::Absent),
        ..Default::default()
    };
    assert!(matches!(
        Import::new(Some(w()), options).and_then(|mut i| i.finish(&mut Output::default())),
        Err(ImportError::Mapping(_))
    ));
    // With `columns`, the same line imports.
    let mut s = w();
    s.columns = Some(vec!["time".into(), "station".into(), "temp".into(), "hum".into()]);
    assert_eq!(
        run(&s, None, b"1700000000,s1,20.5,40\n").batch.to_points(),
        case1_points()
    );
    // And a header line that is there anyway is skipped.
    assert_eq!(
        run(&s, None, b"time,station,temp,hum\n1700000000,s1,20.5,40\n")
            .batch
            .to_points(),
        case1_points()
    );
}

#[test]
fn case4_rfc3339_rows() {
    let out = run(&w(), None, b"time,station,temp,hum\n2024-01-01T00:00:00+02:00,s1,1,2\n");
    assert_eq!(out.batch.records()[0].timestamp, 1_704_060_000_000);
    let out = run(&w(), None, b"time,station,temp,hum\n2024-01-01,s1,1,2\n");
    assert_eq!(out.batch.records()[0].timestamp, 1_704_067_200_000);
}

#[test]
fn case5_unit_mismatch_and_nanoseconds() {
    let out = run(
        &w(),
        None,
        b"time,station,temp,hum\n1700000000000,s1,1,2\n1700000001,s1,1,2\n",
    );
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.stats.quarantine_rows, 1);
    let r = &out.rejected[0];
    assert_eq!(r.kind, Kind::UnitMismatch);
    assert_eq!(r.location.line, Some(3));
    assert_eq!(r.raw, b"1700000001,s1,1,2\n");
    let out = run(&w(), None, b"time,station,temp,hum\n1700000000123456789,s1,1,2\n");
    assert_eq!(out.batch.records()[0].timestamp, 1_700_000_000_123);
}

#[test]
fn case6_a_bad_cell_quarantines_the_whole_row() {
    let input = b"time,station,temp,hum\n1700000000,s1,abc,40\n1700000060,s1,21,41\n";
    let out = run(&w(), None, input);
    assert_eq!(out.batch.len(), 2, "only the good row's points");
    assert_eq!(out.stats.quarantine_rows, 1);
    assert_eq!(out.stats.rows, 2);
    let r = &out.rejected[0];
    assert_eq!(r.kind, Kind::BadValue);
    assert_eq!(
        r.location,
        Location {
            line: Some(2),
            offset: Some(22),
            ..Default::default()
        }
    );
    assert_eq!(r.errors.len(), 1);
    let e = &r.errors[0];
    assert_eq!(e.column.as_deref(), Some("temp"));
    assert_eq!(e.column_index, Some(3));
    assert_eq!(e.value.as_deref(), Some("abc"));
    assert_eq!(e.message, "line 2, column 3 \"temp\": value \"abc\" is not a number");
    // Every problem of the row is listed.
    let out = run(&w(), None, b"time,station,temp,hum\nyesterday,,abc,true\n");
    let kinds: Vec<Kind> = out.rejected[0].errors.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [Kind::BadTimestamp, Kind::BadValue, Kind::BadValue, Kind::NoTags]
    );
    assert_eq!(out.rejected[0].kind, Kind::BadTimestamp);
}

#[test]
fn case7_empty_values_and_non_finite() {
    let out = run(&w(), None, b"time,station,temp,hum\n1700000000,s1,,40\n");
    assert_eq!(out.batch.to_points(), vec![case1_points()[1].clone()]);
    assert_eq!(out.stats.empty_values, 1);
    assert!(out.rejected.is_empty());
    let out = run(&w(), None, b"time,station,temp,hum\n1700000000,s1,NaN,40\n");
    assert_eq!(out.batch.len(), 0);
    assert_eq!(out.rejected[0].kind, Kind::NonFinite);
    let out = run(
        &w(),
        Some(Format::Ndjson),
        br#"{"time":1700000000,"station":"s1","temp":true,"hum":null}"#,
    );
    assert_eq!(out.rejected[0].kind, Kind::BadValue);
}

#[test]
fn case8_unclosed_quote_is_one_invalid_line() {
    let input = b"time,station,temp,hum\n1700000000,\"s1,20.5,40\n1700000060,s2,21,41\n";
    for chunk in [1, 5, 1000] {
        let out = run_with(Some(w()), ImportOptions::default(), input, chunk).unwrap();
        assert_eq!(out.stats.invalid_lines, 1, "chunk {chunk}");
        let r = &out.rejected[0];
        assert_eq!(r.kind, Kind::Malformed);
        assert_eq!(r.raw, b"1700000000,\"s1,20.5,40\n");
        assert_eq!(r.location.line, Some(2));
        assert!(
            r.errors[0].message.contains("quoted field is not closed"),
            "{}",
            r.errors[0].message
        );
        // The line after it is read again and imports.
        let p = out.batch.to_points();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].tags, tags(&[("station", "s2")]));
    }
    // Quoting that closes, with an embedded newline, is one record.
    let out = run(
        &w(),
        None,
        b"time,station,temp,hum\n1700000000,\"s\n1\",1,2\n1700000001,s2,1,2\n",
    );
    assert_eq!(out.batch.to_points()[0].tags, tags(&[("station", "s\n1")]));
    let r = run(&w(), None, b"time,station,temp,hum\n1,s,1\n1,s,1,2\n\"\xff\",s1,1,2\n");
    assert_eq!(r.stats.invalid_lines, 2);
    assert!(r.rejected[0].errors[0]
        .message
        .contains("3 fields, but the header has 4 columns"));
    assert!(r.rejected[1].errors[0].message.contains("not UTF-8"));
    assert_eq!(r.rejected[1].location.line, Some(4));
}

#[test]
fn case9_header_without_a_mapped_column_fails_before_any_row() {
    let e = run_with(
        Some(w()),
        ImportOptions::default(),
        b"time,station,temperature,hum\n1700000000,s1,20.5,40\n",
        5,
    )
    .unwrap_err();
    assert_eq!(
        e,
        ImportError::Mapping("column \"temp\" not in header (found: time,station,temperature,hum)".into())
    );
    let s = source(
        r#"{"name":"p","timestamp":{"column":"time"},"metric":{"value_columns":["x"]},"tags":{"columns":["h"]}}"#,
    );
    let e = ParquetRows::new(fixture("weather_ms_snappy.parquet"), &s, Clock::default(), None)
        .err()
        .unwrap();
    assert!(
        matches!(&e, ImportError::Mapping(m) if m.contains("not in Parquet schema (found: time,station,temp,hum)")),
        "{e}"
    );
}

#[test]
fn case11_quarantine_raw_rebuilds_a_fixable_file() {
    let input: &[u8] = b"time,station,temp,hum\r\n1700000000,s1,abc,40\r\n1700000060,s1,21,41\r\n1700000120,,1,2\r\n";
    let out = run(&w(), None, input);
    let mut file = out.header.clone().unwrap();
    for r in &out.rejected {
        file.extend_from_slice(&r.raw);
    }
    assert_eq!(
        file,
        b"time,station,temp,hum\r\n1700000000,s1,abc,40\r\n1700000120,,1,2\r\n"
    );
    let fixed = String::from_utf8(file)
        .unwrap()
        .replace("abc", "20.5")
        .replace(",,", ",s2,");
    let again = run(&w(), None, fixed.as_bytes());
    assert!(again.rejected.is_empty());
    assert_eq!(again.stats.points, 4);
}

#[test]
fn case21_the_daemon_decides_beyond_retention() {
    let now = 1_700_000_000_000i64;
    let options = ImportOptions {
        check: Some(Box::new(move |row: &RowInfo| {
            assert_eq!(row.tag("station"), Some("s1"));
            if row.timestamp < now - 86_400_000 {
                Err((Kind::BeyondRetention, "older than the retention of 1d".into()))
            } else {
                Ok(())
            }
        })),
        ..Default::default()
    };
    let input = format!(
        "time,station,temp,hum\n{},s1,1,2\n{},s1,1,2\n",
        now / 1000 - 2 * 86_400,
        now / 1000
    );
    let out = run_with(Some(w()), options, input.as_bytes(), 9).unwrap();
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.rejected.len(), 1);
    assert_eq!(out.rejected[0].kind, Kind::BeyondRetention);
    assert_eq!(
        out.rejected[0].errors[0].message,
        "line 2: older than the retention of 1d"
    );
}

#[test]
fn case22_victoriametrics_descriptor() {
    let s = descriptor::parse("1:label:ticker,2:metric:ask,3:time:unix_ms", "vm").unwrap();
    let out = run(&s, None, b"MSFT,3.21,1613408940000\n");
    assert_eq!(
        out.batch.to_points(),
        vec![point(
            "ask",
            &[("ticker", "MSFT")],
            1_613_408_940_000,
            Value::Double(3.21)
        )]
    );
}

#[test]
fn case23_analyze_proposes_a_source_that_imports() {
    let input = b"time,station,temp,hum\n1700000000,s1,20.5,40\n1700000060,s2,21,41\n";
    let a = analyze::analyze(
        input,
        &analyze::AnalyzeOptions {
            file_name: Some("w.csv".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let roles: Vec<(&str, analyze::Detected)> = a.columns.iter().map(|c| (c.name.as_str(), c.detected)).collect();
    use analyze::Detected::*;
    assert_eq!(
        roles,
        [("time", Timestamp), ("station", Tag), ("temp", Value), ("hum", Value)]
    );
    assert_eq!(a.columns[0].timestamp_format.as_deref(), Some("unix_s"));
    assert_eq!(a.columns[2].value_type, "double");
    assert_eq!(a.columns[3].value_type, "long");
    assert_eq!(a.columns[1].samples, ["s1", "s2"]);
    assert_eq!(a.columns[1].present_pct, 100.0);
    assert_eq!(
        (a.format, a.header, a.delimiter.as_deref()),
        (Format::Csv, Some(true), Some(","))
    );
    assert_eq!(a.preview.points, 4);
    assert_eq!(a.preview.would_quarantine, 0);
    // The proposed source is ready to POST: it round-trips through JSON and validation,
    // and imports the file.
    let json = serde_json::to_vec(&a.source).unwrap();
    let s = Source::from_json(&json).unwrap();
    assert_eq!(s, a.source);
    assert_eq!(s.name, "w");
    let out = run(&s, None, input);
    assert_eq!(
        out.batch.to_points()[0],
        point(
            "w.temp",
            &[("station", "s1")],
            1_700_000_000_000,
            crate::Value::Double(20.5)
        )
    );
    // Headerless, NDJSON with a nested key, gzip, Parquet.
    let a = analyze::analyze(
        b"2024-01-01T00:00:00Z;h1;5\n2024-01-01T00:01:00Z;h2;6\n",
        &Default::default(),
    )
    .unwrap();
    assert_eq!(a.header, Some(false));
    assert_eq!(a.delimiter.as_deref(), Some(";"));
    assert_eq!(a.source.columns.as_deref().unwrap(), ["c1", "c2", "c3"]);
    assert_eq!(a.preview.points, 2);
    let nd = gzip(
        br#"{"ts":"2024-01-01T00:00:00Z","meta":{"host":"h1"},"cpu":0.5}
{"ts":"2024-01-01T00:00:10Z","meta":{"host":"h2"},"cpu":0.7,"extra":null}
"#,
    );
    let a = analyze::analyze(&nd, &Default::default()).unwrap();
    assert_eq!((a.format, a.compression), (Format::Ndjson, Compression::Gzip));
    let host = a.columns.iter().find(|c| c.name == "host").unwrap();
    assert_eq!((host.path.as_deref(), host.detected), (Some("$.meta.host"), Tag));
    assert_eq!(a.source.paths.get("host").map(String::as_str), Some("$.meta.host"));
    assert_eq!(a.preview.points, 2);
    let a = analyze::analyze(
        &std::fs::read(fixture_path("weather_ms_snappy.parquet")).unwrap(),
        &Default::default(),
    )
    .unwrap();
    let roles: Vec<(&str, analyze::Detected)> = a.columns.iter().map(|c| (c.name.as_str(), c.detected)).collect();
    assert_eq!(
        roles,
        [("time", Timestamp), ("station", Tag), ("temp", Value), ("hum", Value)]
    );
    // The third row has no station: no tags.
    assert_eq!(a.preview.points, 3);
    assert_eq!(a.preview.would_quarantine, 1);
}

#[test]
fn narrow_rows_static_tags_and_paths() {
    let s = source(
        r#"{"name":"n","timestamp":{"column":"t","format":"unix_ms"},
        "metric":{"prefix":"sys.","name_column":"metric","value_column":"v"},
        "tags":{"columns":["host"],"static":{"dc":"eu"}},
        "paths":{"host":"$.meta.host"}}"#,
    );
    let nd = br#"{"t":5,"metric":"cpu","v":1.5,"meta":{"host":"h1","x":[1]}}
{"t":6,"metric":"mem","v":"7","meta":{"host":"h\u0032"}}
{"t":7,"metric":"","v":1,"meta":{"host":"h1"}}
{"t":8,"metric":"kairosd.x","v":1,"meta":{"host":"h1"}}
{"t":9,"metric":"disk","v":2,"meta":{}}
"#;
    let out = run(&s, Some(Format::Ndjson), nd);
    let p = out.batch.to_points();
    assert_eq!(
        p[0],
        point("sys.cpu", &[("dc", "eu"), ("host", "h1")], 5, Value::Double(1.5))
    );
    assert_eq!(
        p[1],
        point("sys.mem", &[("dc", "eu"), ("host", "h2")], 6, Value::Long(7))
    );
    // The prefix keeps a name out of the reserved "kairosd." space.
    assert_eq!(p[2].metric, "sys.kairosd.x");
    assert_eq!(
        p[3],
        point("sys.disk", &[("dc", "eu")], 9, Value::Long(2)),
        "an empty tag cell omits its tag"
    );
    let kinds: Vec<Kind> = out.rejected.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [Kind::BadName]);
    assert_eq!(out.rejected[0].location.line, Some(3));
    assert_eq!(
        out.rejected[0].errors[0].message,
        "line 3, column \"metric\": the metric name cell is empty"
    );
}

#[test]
fn star_takes_every_unmapped_column() {
    let s = source(
        r#"{"name":"s","timestamp":{"column":"time"},"metric":{"prefix":"m.","value_columns":"*"},"tags":{"columns":["host"]}}"#,
    );
    let out = run(&s, None, b"host,time,a,b\nh1,1700000000,1,2\n");
    let names: Vec<String> = out.batch.to_points().into_iter().map(|p| p.metric).collect();
    assert_eq!(names, ["m.a", "m.b"]);
    let out = run(&s, Some(Format::Json), br#"[{"time":1700000000,"host":"h","x":1,"nested":{"q":1},"y":null},{"time":1700000001,"host":"h","z":"oops"}]"#);
    let names: Vec<String> = out.batch.to_points().into_iter().map(|p| p.metric).collect();
    assert_eq!(names, ["m.x"]);
    assert_eq!(out.stats.empty_values, 1);
    assert_eq!(out.rejected[0].location.element, Some(2));
    assert_eq!(
        out.rejected[0].errors[0].message,
        "element 2 (line 1), column \"z\": value \"oops\" is not a number"
    );
}

#[test]
fn receive_time_and_event_time() {
    let s = source(
        r#"{"name":"r","timestamp":{"column":null},"metric":{"value_columns":["v"]},"tags":{"static":{"a":"b"}}}"#,
    );
    let options = ImportOptions {
        format: Some(Format::Csv),
        clock: Clock {
            event_time: None,
            receive_time: 42,
        },
        ..Default::default()
    };
    let out = run_with(Some(s), options, b"v\n1\n", 100).unwrap();
    assert_eq!(out.batch.records()[0].timestamp, 42);
    let options = ImportOptions {
        clock: Clock {
            event_time: Some(7),
            receive_time: 42,
        },
        ..Default::default()
    };
    let out = run_with(Some(w()), options, b"time,station,temp,hum\n,s1,1,\n", 100).unwrap();
    assert_eq!(out.batch.records()[0].timestamp, 7);
    let out = run(&w(), None, b"time,station,temp,hum\n,s1,1,\n");
    assert_eq!(out.rejected[0].kind, Kind::MissingTimestamp);
}

#[test]
fn json_invalid_records_and_locations() {
    let input = b"[{\"time\":1700000000,\"station\":\"s1\",\"temp\":1},\n 5,\n {\"time\": oops},\n {\"time\":1700000000,\"station\":\"s1\",\"hum\":2}]";
    let out = run(&w(), Some(Format::Json), input);
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.stats.invalid_lines, 2);
    assert_eq!(out.rejected[0].location.element, Some(2));
    assert_eq!(out.rejected[0].location.line, Some(2));
    assert_eq!(out.rejected[0].raw, b"5");
    assert_eq!(out.rejected[1].raw, b"{\"time\": oops}");
    assert!(out.rejected[1].errors[0]
        .message
        .starts_with("element 3 (line 3): not valid JSON"));
    let out = run(
        &w(),
        Some(Format::Ndjson),
        b"{\"time\":1700000000,\"station\":\"s1\",\"temp\":1}\n{bad\n\xff\n",
    );
    assert_eq!(out.batch.len(), 1);
    assert_eq!(out.stats.invalid_lines, 2);
    assert_eq!(out.rejected[0].raw, b"{bad\n");
}

#[test]
fn kairosdb_objects_need_no_source() {
    let options = || ImportOptions {
        format: Some(Format::Kairosdb),
        ..Default::default()
    };
    let body = br#"[{"name":"m","tags":{"h":"a"},"datapoints":[[1,2],[3,4.5]]},{"name":"m","tags":{"h":"a"},"datapoints":[[5,"x"]]}]"#;
    let out = run_with(None, options(), body, 4).unwrap();
    assert_eq!(out.batch.len(), 2);
    assert_eq!(out.stats.quarantine_rows, 1);
    assert_eq!(out.rejected[0].location.element, Some(2));
    assert!(
        out.rejected[0].errors[0].message.contains("datapoints[0].value"),
        "{:?}",
        out.rejected[0].errors
    );
    let export = b"{\"name\":\"m\",\"tags\":{\"h\":\"a\"},\"datapoints\":[[1,2]]}\n{\"name\":\"m\",\"datapoints\":[[1,2]]}\n{\"name\":\n";
    let out = run_with(None, options(), export, 3).unwrap();
    assert_eq!(out.batch.len(), 1);
    assert_eq!(
        out.rejected.iter().map(|r| r.kind).collect::<Vec<_>>(),
        [Kind::NoTags, Kind::Malformed]
    );
    assert_eq!(out.rejected[1].location.line, Some(3));
    assert!(Import::new(None, ImportOptions::default()).is_err());
}

#[test]
fn compressions_and_limits() {
    let e = run_with(Some(w()), ImportOptions::default(), &[0x28, 0xb5, 0x2f, 0xfd, 0, 0], 2).unwrap_err();
    assert!(matches!(e, ImportError::Unsupported(m) if m.contains("zstd")));
    let e = run_with(Some(w()), ImportOptions::default(), b"BZh91AY&SY", 3).unwrap_err();
    assert!(matches!(e, ImportError::Unsupported(m) if m.contains("bzip2")));
    let mut gz = gzip(b"time,station,temp,hum\n1700000000,s1,20.5,40\n");
    gz.truncate(gz.len() - 6);
    assert!(matches!(
        run_with(Some(w()), ImportOptions::default(), &gz, 5),
        Err(ImportError::Input(_))
    ));
    // A gzip bomb stops at the limit.
    let bomb = gzip(&vec![b'1'; 10 << 20]);
    let options = ImportOptions {
        max_bytes: Some(1 << 20),
        format: Some(Format::Csv),
        ..Default::default()
    };
    assert_eq!(
        run_with(Some(w()), options, &bomb, 1 << 20).unwrap_err(),
        ImportError::TooLarge(1 << 20)
    );
    // A too-long record is an invalid line and the next line imports.
    let mut input = b"time,station,temp,hum\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 5000));
    input.extend_from_slice(b",s1,1,2\n1700000000,s1,1,2\n");
    let options = ImportOptions {
        max_record_bytes: 1000,
        ..Default::default()
    };
    let out = run_with(Some(w()), options, &input, 700).unwrap();
    assert_eq!(out.stats.invalid_lines, 1);
    assert_eq!(out.batch.len(), 2);
    // An empty body is no rows and no error.
    let out = run_with(Some(w()), ImportOptions::default(), b"", 1).unwrap();
    assert_eq!(out.stats, Stats::default());
}

#[test]
fn source_validation_lists_every_problem() {
    let e = Source::from_json(
        br#"{"name":"bad name","metric":{"prefix":"kairosd.","value_columns":[]},"tags":{},
        "retention":"5 days","csv":{"delimiter":"ab"}}"#,
    );
    assert!(e.is_err()); // "ab" is not a char: a serde error
    let e = Source::from_json(
        br#"{"name":"bad name","metric":{"prefix":"kairosd.","value_columns":[]},"tags":{},"retention":"5 days"}"#,
    )
    .unwrap_err();
    let all = e.to_string();
    for part in [
        "name \"bad name\"",
        "timestamp is required",
        "metric.prefix",
        "value_columns may not be empty",
        "maps no tags",
        "retention",
    ] {
        assert!(all.contains(part), "{part} missing from: {all}");
    }
    let e = Source::from_json(
        br#"{"name":"x","timestamp":{"column":"t","format":"unix","timezone":"Mars/Base"},"metric":{"name_column":"t","value_columns":["v"]},"tags":{"columns":["t"]}}"#,
    );
    assert!(e.is_err());
    let e = Source::from_json(
        br#"{"name":"x","timestamp":{"column":"t","timezone":"Mars/Base"},"metric":{"name_column":"n","value_column":"v"},"tags":{"columns":["t","h"],"static":{"h":"x"}},"columns":["t","n"],"paths":{"v":"v.w"}}"#,
    )
    .unwrap_err()
    .to_string();
    for part in [
        "timezone",
        "mapped twice",
        "both a tag column and a static tag",
        "\"v\" is not in columns",
        "\"h\" is not in columns",
        "paths.v",
    ] {
        assert!(e.contains(part), "{part} missing from: {e}");
    }
    assert!(Source::from_json(br#"{"name":"x","timestamp":{"column":"t"},"metric":{"value_columns":"*"},"tags":{"static":{"a":"b"}},"unknown":1}"#).is_err());
    assert_eq!(source::parse_retention("30d"), Ok(Some(30 * 86_400_000)));
    assert_eq!(source::parse_retention("0"), Ok(None));
    assert!(source::parse_retention("0d").is_err());
    assert_eq!(w().retention_ms(), None);
}

#[test]
fn source_json_round_trips() {
    let s = w();
    let back = Source::from_json(&serde_json::to_vec(&s).unwrap()).unwrap();
    assert_eq!(back, s);
    let v: serde_json::Value = serde_json::to_value(&s).unwrap();
    assert_eq!(v["csv"]["header"], "auto");
    assert_eq!(v["timestamp"]["format"], "auto");
    assert_eq!(v["metric"]["value_columns"], serde_json::json!(["temp", "hum"]));
    assert_eq!(v["tags"]["static"], serde_json::json!({}));
}

fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn fixture(name: &str) -> bytes::Bytes {
    bytes::Bytes::from(std::fs::read(fixture_path(name)).unwrap())
}

fn parquet_points(name: &str, s: &Source) -> Output {
    let mut rows = ParquetRows::new(fixture(name), s, Clock::default(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(rows.num_rows(), if name == "types.parquet" { 2 } else { 3 });
    let mut out = Output::default();
    // Small steps, to cross batch and row group boundaries.
    while rows.read(&mut out, 1).unwrap() {}
    out
}

#[test]
fn parquet_files_from_pyarrow() {
    let expect = vec![
        point("w.temp", &[("station", "s1")], 1_700_000_000_000, Value::Double(20.5)),
        point("w.hum", &[("station", "s1")], 1_700_000_000_000, Value::Long(40)),
        point("w.hum", &[("station", "s2")], 1_700_000_060_000, Value::Long(41)),
    ];
    for name in [
        "weather_ms_snappy.parquet",
        "weather_us_zstd.parquet",
        "weather_ns_gzip.parquet",
        "weather_lz4.parquet",
        "weather_int96.parquet",
    ] {
        let out = parquet_points(name, &w());
        assert_eq!(out.batch.to_points(), expect, "{name}");
        assert_eq!(out.stats.empty_values, 1, "{name}");
        // Row 3 has no station: no tags, set aside with its cells as NDJSON.
        assert_eq!(out.rejected.len(), 1, "{name}");
        let r = &out.rejected[0];
        assert_eq!(r.kind, Kind::NoTags);
        let group = if name == "weather_us_zstd.parquet" { 1 } else { 0 };
        assert_eq!(
            r.location,
            Location {
                row_group: Some(group),
                row: Some(3),
                ..Default::default()
            },
            "{name}"
        );
        assert_eq!(
            r.errors[0].message,
            format!("row 3 (row group {group}): every tag cell is empty, and KairosDB refuses points without tags")
        );
        let raw: serde_json::Value = serde_json::from_slice(&r.raw).unwrap();
        assert_eq!(
            raw,
            serde_json::json!({"time":1_700_000_120_000i64 * if name.contains("_ms") || name.contains("lz4") { 1 } else if name.contains("us") { 1000 } else { 1_000_000 },"station":null,"temp":19.25,"hum":42}),
            "{name}"
        );
    }
    // A timestamp not adjusted to UTC is a wall-clock time in the source's timezone.
    let mut berlin = w();
    berlin.timestamp.as_mut().unwrap().timezone = "Europe/Berlin".into();
    let mut rows = ParquetRows::new(fixture("naive_ms.parquet"), &berlin, Clock::default(), None).unwrap();
    let mut out = Output::default();
    while rows.read(&mut out, 10).unwrap() {}
    assert_eq!(out.batch.records()[0].timestamp, 1_704_067_200_000);
    // The same file through Import (spooled).
    let out = run(
        &w(),
        None,
        &std::fs::read(fixture_path("weather_us_zstd.parquet")).unwrap(),
    );
    assert_eq!(out.batch.to_points(), expect);
}

#[test]
fn parquet_types() {
    let s = source(
        r#"{"name":"t","timestamp":{"column":"day","timezone":"+01:00"},
        "metric":{"value_columns":["price","count","big","ratio","rack"]},
        "tags":{"columns":["host","ok"]},"paths":{"host":"$.meta.host","rack":"$.meta.rack"}}"#,
    );
    let out = parquet_points("types.parquet", &s);
    assert!(out.rejected.is_empty(), "{:?}", out.rejected);
    let p = out.batch.to_points();
    let day = 1_704_067_200_000 - 3_600_000;
    let t = &[("host", "h1"), ("ok", "true")];
    assert_eq!(
        p[..5],
        [
            point("price", t, day, Value::Double(3.21)),
            point("count", t, day, Value::Long(7)),
            point("big", t, day, Value::Double(9_223_372_036_854_775_813.0)),
            point("ratio", t, day, Value::Double(0.5)),
            point("rack", t, day, Value::Long(1)),
        ]
    );
    assert_eq!(
        p[5],
        point(
            "price",
            &[("host", "h2"), ("ok", "false")],
            day + 86_400_000,
            Value::Double(-0.5)
        )
    );
    // A list column is not a cell.
    let s = source(
        r#"{"name":"t","timestamp":{"column":"day"},"metric":{"value_columns":["list"]},"tags":{"static":{"a":"b"}}}"#,
    );
    assert!(matches!(
        ParquetRows::new(fixture("types.parquet"), &s, Clock::default(), None),
        Err(ImportError::Mapping(_))
    ));
    // A corrupt file fails as a whole.
    let e = ParquetRows::new(
        bytes::Bytes::from_static(b"PAR1 not really PAR1"),
        &w(),
        Clock::default(),
        None,
    )
    .err()
    .unwrap();
    assert!(matches!(e, ImportError::Input(_)), "{e}");
}

/// Rows of the bench shape, as CSV.
fn bench_csv(rows: usize) -> Vec<u8> {
    let mut s = String::from("time,host,dc,svc,m0,m1,m2,m3,m4\n");
    for i in 0..rows {
        s.push_str(&format!(
            "{},h{:03},dc{},\"s{}\",{}.{:02},{},-{}.5,{}e1,{}\n",
            1_700_000_000 + i / 100,
            i % 1000,
            i % 4,
            i % 3,
            i % 97,
            i % 100,
            i % 50,
            i % 13,
            i % 7,
            if i % 11 == 0 { "" } else { "1" }
        ));
    }
    s.into_bytes()
}

fn bench_source() -> Source {
    source(
        r#"{"name":"b","timestamp":{"column":"time","format":"unix_s"},"metric":{"prefix":"bench.","value_columns":"*"},
        "tags":{"columns":["host","dc","svc"]}}"#,
    )
}

fn digest(out: &Output) -> (Vec<DataPoint>, Vec<Rejected>, Stats, Option<Vec<u8>>) {
    (
        out.batch.to_points(),
        out.rejected.clone(),
        out.stats,
        out.header.clone(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Feeding in arbitrary chunk splits gives the same rows, records and counts.
    #[test]
    fn csv_chunk_splits_change_nothing(cuts in proptest::collection::vec(0usize..4000, 0..12), bad in 0usize..40) {
        let mut input = bench_csv(40);
        // Something to set aside: a bad cell, an unclosed quote at the end.
        let line_start = memchr::memchr_iter(b'\n', &input).nth(bad).unwrap() + 1;
        input.insert(line_start + 3, b'x');
        input.extend_from_slice(b"1700000000,\"h1,dc1,s1,1,2,3,4,5\n1700000001,h1,dc1,s1,1,2,3,4,5");
        let whole = run_with(Some(bench_source()), ImportOptions::default(), &input, usize::MAX).unwrap();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % input.len()).collect();
        cuts.sort_unstable();
        let mut imp = Import::new(Some(bench_source()), ImportOptions::default()).unwrap();
        let mut out = Output::default();
        let mut at = 0;
        for c in cuts.into_iter().chain([input.len()]) {
            imp.feed(&input[at..c], &mut out).unwrap();
            at = c;
        }
        imp.finish(&mut out).unwrap();
        prop_assert_eq!(digest(&out), digest(&whole));
        prop_assert_eq!(whole.stats.rows, 42);
        prop_assert!(whole.stats.invalid_lines == 1 && whole.stats.quarantine_rows == 1);
    }

    #[test]
    fn json_chunk_splits_change_nothing(cut_every in 1usize..200, lines in any::<bool>()) {
        let csv = bench_csv(30);
        let text = String::from_utf8(csv).unwrap();
        let mut objects = Vec::new();
        for line in text.lines().skip(1) {
            let c: Vec<&str> = line.split(',').collect();
            objects.push(format!(
                r#"{{"time":{},"host":"{}","dc":"{}","svc":{},"m0":{},"m1":"{}","m2":{},"m3":{},"m4":"{}"}}"#,
                c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8]
            ));
        }
        let input = if lines { objects.join("\n") } else { format!("[{}]", objects.join(",\n")) }.into_bytes();
        let format = Some(if lines { Format::Ndjson } else { Format::Json });
        let whole = run_with(Some(bench_source()), ImportOptions { format, ..Default::default() }, &input, usize::MAX).unwrap();
        prop_assert_eq!(whole.stats.rows_accepted, 30);
        let split = run_with(Some(bench_source()), ImportOptions { format, ..Default::default() }, &input, cut_every).unwrap();
        prop_assert_eq!(digest(&split), digest(&whole));
    }
}

#[test]
fn bench_shape_rows_all_map() {
    let input = bench_csv(1000);
    let out = run(&bench_source(), None, &input);
    assert!(out.rejected.is_empty(), "{:?}", &out.rejected[..1]);
    assert_eq!(out.stats.rows_accepted, 1000);
    assert_eq!(out.stats.points, 5000 - 1000 / 11 - 1);
    let p = out.batch.to_points();
    assert_eq!(
        p[0],
        point(
            "bench.m0",
            &[("dc", "dc0"), ("host", "h000"), ("svc", "s0")],
            1_700_000_000_000,
            Value::Double(0.0)
        )
    );
    assert_eq!(p[3].value, Value::Long(0)); // 0e1 is exact: a long
}

#[test]
fn leading_whitespace_does_not_decide_the_format() {
    // Found by the fuzzer: the first byte after 94 `\r` said "array" only when the
    // input came in one piece.
    let mut body = vec![b'\r'; 94];
    body.extend_from_slice(br#"[{"name":"m","tags":{"h":"a"},"datapoints":[[1,2]]}]"#);
    for chunk in [1, 64, 1000] {
        let options = ImportOptions {
            format: Some(Format::Kairosdb),
            ..Default::default()
        };
        let out = run_with(None, options, &body, chunk).unwrap();
        assert_eq!((out.batch.len(), out.rejected.len()), (1, 0), "chunk {chunk}");
    }
    let mut body = vec![b' '; 200];
    body.extend_from_slice(br#"{"time":1700000000,"station":"s1","temp":20.5,"hum":40}"#);
    let out = run_with(Some(w()), ImportOptions::default(), &body, 10).unwrap();
    assert_eq!(out.batch.to_points(), case1_points());
}

#[test]
fn a_parquet_file_that_panics_the_parquet_crate_is_an_error() {
    // Found by fuzzing: a dictionary-encoded page without its dictionary page makes
    // the parquet crate panic; the import must fail, not the daemon.
    let s = source(
        r#"{"name":"f","timestamp":{"column":"time"},"metric":{"value_columns":"*"},"tags":{"columns":["station"]}}"#,
    );
    let result =
        ParquetRows::new(fixture("corrupt_dictionary.parquet"), &s, Clock::default(), None).and_then(|mut rows| {
            let mut out = Output::default();
            while rows.read(&mut out, 1000)? {}
            Ok(out)
        });
    assert!(
        matches!(&result, Err(ImportError::Input(m)) if m.contains("corrupt")),
        "{:?}",
        result.err()
    );
}

#[test]
fn broken_characters_in_two_fields_are_not_utf8() {
    // Found by fuzzing: `\xd3` ending one field and `\xaf` starting the next are a
    // valid character once the delimiter between them is gone.
    let input = b"time,station,temp,hum\n1700000000,s\xd3,\xaf1,2\n";
    for chunk in [1, 5, 1000] {
        let out = run_with(Some(w()), ImportOptions::default(), input, chunk).unwrap();
        assert_eq!(out.stats.invalid_lines, 1, "chunk {chunk}");
        assert_eq!(
            out.rejected[0].errors[0].message,
            "line 2, column 2: the text is not UTF-8"
        );
    }
}

#[test]
fn a_parquet_file_that_claims_huge_sizes_fails_in_bounded_memory() {
    // Found by fuzzing: a page header that declares a huge size.
    let s = source(
        r#"{"name":"f","timestamp":{"column":"time"},"metric":{"value_columns":"*"},"tags":{"columns":["station"]}}"#,
    );
    let result = ParquetRows::new(fixture("huge_page.parquet"), &s, Clock::default(), None).and_then(|mut rows| {
        let mut out = Output::default();
        while rows.read(&mut out, 1000)? {}
        Ok(out)
    });
    assert!(result.is_err(), "{:?}", result.map(|o| o.stats));
}

#[test]
fn a_parquet_page_header_declaring_a_huge_list_is_refused_before_decoding() {
    // Found by fuzzing: 1,251 bytes whose first page header declares a list of
    // 422,936,575 elements in 60 bytes; the parquet crate skipped them one by one (17 s).
    let mut rows = ParquetRows::new(fixture("slow_page_header.parquet"), &w(), Clock::default(), None).unwrap();
    let e = rows.read(&mut Output::default(), 1000).err().unwrap();
    assert!(e.to_string().contains("bad page header at byte 60"), "{e}");
    assert!(e.to_string().contains("422936575 list elements"), "{e}");
}

#[test]
fn a_parquet_footer_declaring_a_huge_list_is_refused_before_decoding() {
    // Found by fuzzing: 19 bytes whose footer declares a list of billions of empty
    // elements kept the parquet crate's footer decoder busy for seconds.
    let e = ParquetRows::new(fixture("slow_footer.parquet"), &w(), Clock::default(), None)
        .err()
        .unwrap();
    assert!(matches!(&e, ImportError::Input(_)), "{e}");
}
