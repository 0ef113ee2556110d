use super::*;
use crate::DataPoint;
use proptest::prelude::*;

fn parse(line: &str) -> Result<(Line, Vec<DataPoint>), TelnetError> {
    parse_bytes(line.as_bytes())
}

fn parse_bytes(line: &[u8]) -> Result<(Line, Vec<DataPoint>), TelnetError> {
    let mut batch = PointBatch::new();
    let mut scratch = Scratch::default();
    let result = parse_line(line, &mut batch, &mut scratch);
    let points = batch.to_points();
    match result {
        Ok(kind) => {
            assert_eq!(points.len(), usize::from(kind == Line::Point), "{line:?}");
            Ok((kind, points))
        }
        Err(e) => {
            assert!(points.is_empty(), "an error must not leave a point: {line:?}");
            Err(e)
        }
    }
}

fn point(line: &str) -> DataPoint {
    match parse(line) {
        Ok((Line::Point, mut points)) => points.remove(0),
        other => panic!("{line:?}: {other:?}"),
    }
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn err(line: &str) -> String {
    match parse(line) {
        Err(e) => e.to_string(),
        Ok(r) => panic!("{line:?} should fail, got {r:?}"),
    }
}

#[test]
fn put_converts_seconds_below_3e9() {
    let cases: &[(&str, i64)] = &[
        ("put m 1700000000 1 h=a", 1_700_000_000_000),
        ("put m 2999999999 1 h=a", 2_999_999_999_000),
        ("put m 3000000000 1 h=a", 3_000_000_000),
        ("put m 1700000000000 1 h=a", 1_700_000_000_000),
        ("put m 0 1 h=a", 0),
        ("put m -5 1 h=a", -5000),
        ("putm m 1700000000 1 h=a", 1_700_000_000),
        ("putm m 5 1 h=a", 5),
        ("putm m -9223372036854775808 1 h=a", i64::MIN),
    ];
    for &(line, ts) in cases {
        assert_eq!(point(line).timestamp, ts, "{line}");
    }
    assert_eq!(
        err("put m -9223372036854775808 1 h=a"),
        "timestamp -9223372036854775808 in seconds is out of range once converted to milliseconds"
    );
}

#[test]
fn full_point() {
    let p = point("put bench.m3 1795258810 23.86 host=h042 dc=dc3 svc=s1");
    assert_eq!(p.metric, "bench.m3");
    assert_eq!(p.timestamp, 1_795_258_810_000);
    assert_eq!(p.value, Value::Double(23.86));
    assert_eq!(p.tags, tags(&[("dc", "dc3"), ("host", "h042"), ("svc", "s1")]));
    assert_eq!(p.ttl, None);
}

#[test]
fn values() {
    let cases: &[(&str, Value)] = &[
        ("5", Value::Long(5)),
        ("-5", Value::Long(-5)),
        ("-9223372036854775808", Value::Long(i64::MIN)),
        ("1.5", Value::Double(1.5)),
        (".5", Value::Double(0.5)),
        ("5.", Value::Double(5.0)),
        ("+5.0", Value::Double(5.0)),
        ("1.0e3", Value::Double(1000.0)),
        ("0x1.8p1", Value::Double(3.0)),
        ("1.5f", Value::Double(1.5)),
        ("2.5d", Value::Double(2.5)),
    ];
    for &(v, expected) in cases {
        assert_eq!(point(&format!("put m 1 {v} h=a")).value, expected, "{v}");
    }
    let refused: &[(&str, &str)] = &[
        (
            "+5",
            "value: '+5' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)",
        ),
        (
            "1e3",
            "value: '1e3' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)",
        ),
        (
            "NaN",
            "value: 'NaN' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)",
        ),
        (
            "9223372036854775808",
            "value: '9223372036854775808' is out of range for a 64-bit integer",
        ),
        ("-", "value: '-' has no digits"),
        ("1.2.3", "value: '1.2.3' is not a decimal number"),
        (
            "1.0e400",
            "value '1.0e400' is not a finite number; kairosd refuses NaN and Infinity",
        ),
        (
            "-1.0e400",
            "value '-1.0e400' is not a finite number; kairosd refuses NaN and Infinity",
        ),
        (
            "0x1.0p99999",
            "value '0x1.0p99999' is not a finite number; kairosd refuses NaN and Infinity",
        ),
    ];
    for &(v, msg) in refused {
        assert_eq!(err(&format!("put m 1 {v} h=a")), msg, "{v}");
    }
}

#[test]
fn timestamps_use_the_strict_long_parser() {
    assert_eq!(
        err("put m +5 1 h=a"),
        "timestamp: '+5' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)"
    );
    assert_eq!(
        err("put m 1.5 1 h=a"),
        "timestamp: '1.5' is not a whole number (only an optional '-' followed by the digits 0-9 is allowed)"
    );
    assert_eq!(
        err("put m 99999999999999999999 1 h=a"),
        "timestamp: '99999999999999999999' is out of range for a 64-bit integer"
    );
}

#[test]
fn whitespace_and_line_endings() {
    let expected = point("put m 1 2 a=b c=d");
    for line in [
        "put m 1 2 a=b c=d\r",
        "put  m  1  2  a=b  c=d",
        "  put m 1 2 a=b c=d  ",
        "\tput\tm\t1\t2\ta=b\tc=d",
        "put m 1 2 a=b\x0b\x01c=d\x00",
        "put m 1 2 a=b  c=d  \r",
    ] {
        assert_eq!(point(line), expected, "{line:?}");
    }
    for line in ["", " ", "\r", " \t \r", "\x00\x1f"] {
        assert_eq!(parse(line).unwrap().0, Line::Blank, "{line:?}");
    }
}

#[test]
fn quoted_tokens() {
    let p = point(r#"put "my metric" 1 2 "host=a b" dc="x"#);
    assert_eq!(p.metric, "my metric");
    // A quote inside a token is literal; only a token *starting* with `"` is quoted.
    assert_eq!(p.tags, tags(&[("dc", "\"x"), ("host", "a b")]));
    assert!(matches!(parse(r#"put m 1 2 dc="x y""#), Err(TelnetError::TagFormat(1))));

    assert_eq!(point(r#"put "a"b" 1 2 h=a"#).metric, "a\"b");
    assert_eq!(point(r#"put "a"b c" 1 2 h=a"#).metric, "a\"b c");
    // An unterminated quote runs to the end of the line.
    assert_eq!(
        parse("put \"m 1 2 h=a"),
        Err(TelnetError::MissingFields {
            command: "put",
            fields: 1
        })
    );
    assert_eq!(point(r#"put m 1 2 "h=a""#).tags, tags(&[("h", "a")]));
    assert_eq!(point("put m 1 2 \"h=a b").tags, tags(&[("h", "a b")]));
    assert_eq!(err(r#"put "" 1 2 h=a"#), "metricName may not be empty.");
    assert_eq!(err(r#"put m 1 2 """#), "tag[0] must be in the format 'name=value'.");
    // `" x`: the opening quote followed by whitespace is an empty quote and yields nothing.
    assert_eq!(point(r#"put " m 1 2 h=a"#).metric, "m");
    // A lone quote at the end of the line yields nothing.
    assert_eq!(point(r#"put m 1 2 h=a ""#).tags, tags(&[("h", "a")]));
}

#[test]
fn tokenizer_matches_word_splitter() {
    let split = |s: &str| -> Vec<String> { Tokens::new(s.as_bytes()).map(|r| s[r].to_string()).collect() };
    assert_eq!(split(r#"a "b c" d"#), ["a", "b c", "d"]);
    assert_eq!(split(r#""" x"#), ["", "x"]);
    assert_eq!(split(r#"x """#), ["x", ""]);
    assert_eq!(split(r#""a""#), ["a"]);
    assert_eq!(split(r#""a"  "#), ["a"]);
    assert_eq!(split(r#"a"b "c"#), ["a\"b", "c"]);
    assert_eq!(split(r#"""#), Vec::<String>::new());
    assert_eq!(split(r#"" "#), Vec::<String>::new());
    assert_eq!(split(r#"" x" y"#), ["x\"", "y"]);
}

#[test]
fn tag_rules() {
    let msgs: &[(&str, &str)] = &[
        ("fum=", "tag[0] must be in the format 'name=value'."),
        ("fum-barfum", "tag[0] must be in the format 'name=value'."),
        ("=", "tag[0] must be in the format 'name=value'."),
        ("==", "tag[0] must be in the format 'name=value'."),
        ("a==", "tag[0] must be in the format 'name=value'."),
        ("=bar", "tag[0].name may not be empty."),
        ("==b", "tag[0].name may not be empty."),
        ("a==b", "tag[0].value may not be empty."),
        (
            "ok=1 kairos_opt.ttl=5 bad",
            "tag[1] must be in the format 'name=value'.",
        ),
        ("ok=1 x=2 =v", "tag[2].name may not be empty."),
        ("kairos_opt.ttl=", "tag[0] must be in the format 'name=value'."),
        ("kairos_opt.ttl=abc", "tag[kairos_opt.ttl] must be a number"),
        ("kairos_opt.ttl=1.5", "tag[kairos_opt.ttl] must be a number"),
        ("kairos_opt.ttl=2147483648", "tag[kairos_opt.ttl] must be a number"),
        ("kairos_opt.ttl=-5", "tag[kairos_opt.ttl] may not be negative."),
        (
            "host=a host=b",
            "tag 'host' appears more than once; a tag name may be given once per line",
        ),
    ];
    for &(t, msg) in msgs {
        assert_eq!(err(&format!("put m 1 2 {t}")), msg, "{t}");
    }
    assert_eq!(point("put m 1 2 a=b=c").tags, tags(&[("a", "b")]));
    assert_eq!(point("put m 1 2 a=b=").tags, tags(&[("a", "b")]));
    assert_eq!(point("put m 1 2 a:b=c:d").tags, tags(&[("a:b", "c:d")]));
    assert_eq!(
        point("put m 1 2 z=1 a=2 m=3").tags,
        tags(&[("a", "2"), ("m", "3"), ("z", "1")])
    );
}

#[test]
fn ttl_and_add_tag() {
    let p = point("put m 1 2 kairos_opt.ttl=60 host=a");
    assert_eq!((p.ttl, p.tags), (Some(60), tags(&[("host", "a")])));
    let p = point("put m 1 2 kairos_opt.ttl=60");
    assert_eq!((p.ttl, p.tags), (Some(60), tags(&[("add", "tag")])));
    let p = point("put m 1 2");
    assert_eq!((p.ttl, p.tags), (None, tags(&[("add", "tag")])));
    assert_eq!(point("put m 1 2 kairos_opt.ttl=+7 h=a").ttl, Some(7));
    assert_eq!(point("put m 1 2 kairos_opt.ttl=0 h=a").ttl, None);
    assert_eq!(point("put m 1 2 kairos_opt.ttl=1 kairos_opt.ttl=2 h=a").ttl, Some(2));
    assert_eq!(
        point("put m 1 2 kairos_opt.ttl=2147483647 h=a").ttl,
        Some(i32::MAX as u32)
    );
}

#[test]
fn commands() {
    assert_eq!(parse("version").unwrap().0, Line::Version);
    assert_eq!(parse("version extra tokens").unwrap().0, Line::Version);
    assert_eq!(parse("version\r").unwrap().0, Line::Version);
    assert_eq!(
        err("puts m 1 abc h=a"),
        "Unsupported command: 'puts'; kairosd does not store string data points (send a number with put or putm)"
    );
    assert_eq!(
        err("PUT m 1 2 h=a"),
        "Unknown command: 'PUT' (kairosd understands put, putm and version)"
    );
    assert_eq!(
        err("help"),
        "Unknown command: 'help' (kairosd understands put, putm and version)"
    );
    assert_eq!(
        err(&format!("{} m", "x".repeat(100))),
        format!(
            "Unknown command: '{}…' (kairosd understands put, putm and version)",
            "x".repeat(64)
        )
    );
    assert_eq!(err("put m 123"), "put needs a metric name, a timestamp and a value: 'put <metric> <timestamp> <value> [<tag>=<value> ...]' (got 2 of the 3)");
    assert_eq!(err("putm"), "putm needs a metric name, a timestamp and a value: 'putm <metric> <timestamp> <value> [<tag>=<value> ...]' (got 0 of the 3)");
}

#[test]
fn utf8() {
    let p = point("put 你好 1 2 city=Zürich");
    assert_eq!((p.metric.as_str(), p.tags), ("你好", tags(&[("city", "Zürich")])));
    assert_eq!(
        parse_bytes(b"put m\xe9 1 2 h=a").unwrap_err().to_string(),
        "line is not valid UTF-8 (first bad byte at offset 5); kairosd reads telnet lines as UTF-8"
    );
    assert_eq!(parse_bytes(b"\xff").unwrap_err(), TelnetError::NotUtf8 { offset: 0 });
}

#[test]
fn error_leaves_batch_alone_and_scratch_is_reusable() {
    let mut batch = PointBatch::new();
    let mut scratch = Scratch::default();
    for line in [
        "put a 1 1 x=1 y=2",
        "put b 1 1 y=2 y=3",
        "put a 2 1 y=2 x=1",
        "bad",
        "putm c 2 2.5 z=9",
    ] {
        let _ = parse_line(line.as_bytes(), &mut batch, &mut scratch);
    }
    let points = batch.to_points();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0].tags, points[1].tags);
    assert_eq!(points[2].metric, "c");
    // Consecutive points of one series share one key in the arena.
    assert_eq!(batch.records()[0].key_start, batch.records()[1].key_start);
}

/// A token that survives tokenizing unchanged: no whitespace, not starting with `"`.
fn word(extra: &'static str) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[a-zA-Z0-9._/:\\-{extra}é你]{{1,12}}")).unwrap()
}

proptest! {
    #[test]
    fn put_lines_round_trip(
        metric in word("\""),
        ts in any::<i64>(),
        millis in any::<bool>(),
        long in any::<i64>(),
        double in any::<f64>().prop_filter("finite", |d| d.is_finite()),
        as_double in any::<bool>(),
        tag_map in proptest::collection::btree_map(word(""), "[a-zA-Z0-9é][a-zA-Z0-9é=]{0,11}", 0..6),
        ttl in proptest::option::of(1u32..=i32::MAX as u32),
    ) {
        prop_assume!(!metric.starts_with('"'));
        prop_assume!(!tag_map.contains_key("kairos_opt.ttl"));
        let (cmd, unit) = if millis { ("putm", TimeUnit::Millis) } else { ("put", TimeUnit::SecondsOrMillis) };
        prop_assume!(timestamp::to_millis(ts, unit).is_some());
        let (value_text, value) = if as_double {
            (format!("{double:?}").replace("inf", "x"), Value::Double(double))
        } else {
            (long.to_string(), Value::Long(long))
        };
        prop_assume!(!as_double || value_text.contains('.'));
        let mut line = format!("{cmd} {metric} {ts} {value_text}");
        for (k, v) in &tag_map {
            line.push_str(&format!(" {k}={v}"));
        }
        if let Some(ttl) = ttl {
            line.push_str(&format!("  kairos_opt.ttl={ttl}\r"));
        }
        let p = point(&line);
        prop_assert_eq!(&p.metric, &metric);
        prop_assert_eq!(p.timestamp, timestamp::to_millis(ts, unit).unwrap());
        prop_assert_eq!(p.value, value);
        prop_assert_eq!(p.ttl, ttl);
        let expected: Vec<(String, String)> = if tag_map.is_empty() {
            tags(&[("add", "tag")])
        } else {
            tag_map.into_iter().map(|(k, v)| (k, v.split('=').next().unwrap().to_string())).collect()
        };
        prop_assert_eq!(p.tags, expected);
    }

    #[test]
    fn never_panics(line in proptest::collection::vec(any::<u8>(), 0..80)) {
        let mut batch = PointBatch::new();
        let mut scratch = Scratch::default();
        if let Ok(Line::Point) = parse_line(&line, &mut batch, &mut scratch) {
            let Value::Double(v) = batch.records()[0].value else { return Ok(()) };
            prop_assert!(v.is_finite());
        }
    }

    #[test]
    fn never_panics_on_put_like_lines(line in "(put|putm) [a-z\" =.]{0,10} [0-9.+-]{0,5} [0-9.eE+-x]{0,8}( [a-z\"=]{0,5}){0,4}") {
        let mut batch = PointBatch::new();
        let mut scratch = Scratch::default();
        let _ = parse_line(line.as_bytes(), &mut batch, &mut scratch);
    }
}

/// Pieces of lines that a connection repeats, with every way two lines can name the same
/// series differently (tag order, quoting, whitespace runs, `\r`) or not quite be a point.
const COMMANDS: &[&[u8]] = &[b"put", b"put", b"putm", b"version", b"puts", b"pu", b" put", b"\"put\""];
const METRICS: &[&[u8]] = &[
    b"cpu",
    b"cpu",
    b"mem.used",
    b"\"cpu\"",
    b"\"a b\"",
    b"\"\"",
    b"c\xffpu",
    b"m\xc3\xa9",
    b"x\x00y",
    b"\"q\"x",
];
const TIMESTAMPS: &[&[u8]] = &[
    b"1700000000",
    b"1700000000000",
    b"12",
    b"-5",
    b"+5",
    b"1.5",
    b"x",
    b"\"17\"",
    b"9\xff",
    b"99999999999999999999",
];
const VALUES: &[&[u8]] = &[
    b"42",
    b"-1",
    b"2.5",
    b"1e3",
    b"1.5f",
    b"0x1p3",
    b"NaN",
    b"1.0e999",
    b"abc",
    b"7\xff",
    b"\"3\"",
    b"+7",
    b"1234567890123456789",
];
const TAGS: &[&[u8]] = &[
    b"host=a",
    b"host=a",
    b"dc=eu",
    b"host=b",
    b"a=b=c",
    b"a==b",
    b"a=",
    b"=b",
    b"ab",
    b"kairos_opt.ttl=60",
    b"kairos_opt.ttl=-1",
    b"kairos_opt.ttl=x",
    b"\"q=v w\"",
    b"t=\xff",
    b"t=\xc3\xa9",
    b"host=a\r",
    b"z=1",
];
const SEPARATORS: &[&[u8]] = &[b" ", b" ", b"  ", b"\t", b" \r ", b"\x01"];

fn build_line(parts: &(usize, usize, usize, usize, Vec<(usize, usize)>, usize, bool)) -> Vec<u8> {
    let (c, m, t, v, tags, sep, cr) = parts;
    let sep = SEPARATORS[*sep];
    let mut line = Vec::new();
    for (i, part) in [COMMANDS[*c], METRICS[*m], TIMESTAMPS[*t], VALUES[*v]]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            line.extend_from_slice(sep);
        }
        line.extend_from_slice(part);
    }
    for &(tag, s) in tags {
        line.extend_from_slice(SEPARATORS[s]);
        line.extend_from_slice(TAGS[tag]);
    }
    if *cr {
        line.push(b'\r');
    }
    line
}

fn line_parts() -> impl Strategy<Value = (usize, usize, usize, usize, Vec<(usize, usize)>, usize, bool)> {
    (
        0..COMMANDS.len(),
        0..METRICS.len(),
        0..TIMESTAMPS.len(),
        0..VALUES.len(),
        proptest::collection::vec((0..TAGS.len(), 0..SEPARATORS.len()), 0..4),
        0..SEPARATORS.len(),
        any::<bool>(),
    )
}

/// What a decoder made of a sequence of lines: per line the outcome, then every point.
fn run(
    lines: &[Vec<u8>],
    mut parse: impl FnMut(&[u8], &mut PointBatch) -> Result<Line, TelnetError>,
) -> (Vec<Result<Line, String>>, Vec<(Vec<u8>, i64, Value, u32)>) {
    let mut batch = PointBatch::new();
    let outcomes = lines
        .iter()
        .map(|l| parse(l, &mut batch).map_err(|e| e.to_string()))
        .collect();
    let points = batch
        .records()
        .iter()
        .map(|r| (batch.key(r).to_vec(), r.timestamp, r.value, r.ttl))
        .collect();
    (outcomes, points)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn cached_parse_equals_uncached(
        pool in proptest::collection::vec(line_parts(), 1..12),
        picks in proptest::collection::vec(any::<proptest::sample::Index>(), 1..60),
        tiny in any::<bool>(),
    ) {
        // A connection repeats a handful of lines, in any order.
        let pool: Vec<Vec<u8>> = pool.iter().map(build_line).collect();
        let lines: Vec<Vec<u8>> = picks.iter().map(|i| pool[i.index(pool.len())].clone()).collect();
        let mut scratch = Scratch::default();
        let want = run(&lines, |l, b| parse_line(l, b, &mut scratch));
        // A cache small enough to rotate generations all the time, and the default.
        let limits = if tiny { CacheLimits { entries: 4, bytes: 600 } } else { CacheLimits::DEFAULT };
        let mut cache = SeriesCache::new(limits);
        let mut scratch = Scratch::default();
        let got = run(&lines, |l, b| parse_line_cached(l, b, &mut scratch, &mut cache));
        prop_assert_eq!(&got, &want);
        // Repeated points did come from the cache (so the comparison tested something).
        let points: Vec<&Vec<u8>> = lines.iter().zip(&want.0).filter(|(_, r)| *r == &Ok(Line::Point)).map(|(l, _)| l).collect();
        let repeated = points.iter().enumerate().any(|(i, l)| points[..i].contains(l));
        if repeated && !tiny {
            prop_assert!(cache.stats().0 > 0);
        }
        // And through the decoder a connection uses.
        let mut decoder = TelnetDecoder::new("v").with_cache_limits(limits);
        let got = run(&lines, |l, b| {
            let mut err = None;
            let d = decoder.decode(l, b, &mut |e| err = Some(e));
            match err {
                Some(e) => Err(e),
                None if d.reply => Ok(Line::Version),
                None if d.points == 1 => Ok(Line::Point),
                None => Ok(Line::Blank),
            }
        });
        prop_assert_eq!(got, want);
    }
}
