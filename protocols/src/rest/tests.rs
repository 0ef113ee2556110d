use super::*;
use crate::{DataPoint, Value};
use proptest::prelude::*;

fn run(body: &str) -> (Vec<DataPoint>, Vec<String>) {
    let d = decode(body.as_bytes());
    (d.batch.to_points(), d.errors)
}

fn points(body: &str) -> Vec<DataPoint> {
    let (p, e) = run(body);
    assert!(e.is_empty(), "{body}: unexpected errors {e:?}");
    p
}

fn errors(body: &str) -> Vec<String> {
    run(body).1
}

fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn values(body: &str) -> Vec<(i64, Value)> {
    points(body).into_iter().map(|p| (p.timestamp, p.value)).collect()
}

#[test]
fn bench_shape() {
    let body = r#"[{"name":"bench.m3","datapoints":[[1795258810000,23.86],[1795258811000,5]],"tags":{"host":"h042","dc":"dc3","svc":"s1"}},
                   {"name":"other","timestamp":1,"value":2,"tags":{"a":"b"},"ttl":60}]"#;
    let p = points(body);
    assert_eq!(p.len(), 3);
    assert_eq!(p[0].metric, "bench.m3");
    assert_eq!(p[0].tags, tags(&[("dc", "dc3"), ("host", "h042"), ("svc", "s1")]));
    assert_eq!(
        (p[0].timestamp, p[0].value, p[0].ttl),
        (1_795_258_810_000, Value::Double(23.86), None)
    );
    assert_eq!((p[1].timestamp, p[1].value), (1_795_258_811_000, Value::Long(5)));
    assert_eq!(
        (p[2].metric.as_str(), p[2].value, p[2].ttl),
        ("other", Value::Long(2), Some(60))
    );
    let d = decode(body.as_bytes());
    assert_eq!(d.batch.records()[0].key_start, d.batch.records()[1].key_start);
}

#[test]
fn single_object_and_shapes() {
    assert_eq!(
        points(r#"{"name":"m","time":1234,"value":4321,"datapoints":[[456,654]],"tags":{"a":"b"}}"#).len(),
        2
    );
    assert_eq!(points("[]"), vec![]);
    assert_eq!(points(" \r\n[ ]\n"), vec![]);
    assert_eq!(errors(""), ["Invalid json. No content due to end of input."]);
    assert_eq!(errors(" \n\t"), ["Invalid json. No content due to end of input."]);
    for body in ["5", "\"x\"", "null", "true", "abc", "\u{feff}[]"] {
        assert_eq!(errors(body), ["Invalid start of json."], "{body}");
    }
    // Timestamps are always milliseconds in REST: no seconds rule.
    assert_eq!(
        values(r#"{"name":"m","timestamp":1700000000,"value":1,"tags":{"a":"b"}}"#),
        [(1_700_000_000, Value::Long(1))]
    );
    // `time` wins over `timestamp`; a null `time` falls back.
    assert_eq!(
        values(r#"{"name":"m","timestamp":1,"time":2,"value":1,"tags":{"a":"b"}}"#)[0].0,
        2
    );
    assert_eq!(
        values(r#"{"name":"m","timestamp":1,"time":null,"value":1,"tags":{"a":"b"}}"#)[0].0,
        1
    );
    // Unknown fields are ignored; a repeated field replaces the earlier one.
    assert_eq!(
        values(r#"{"name":"x","name":"m","extra":{"deep":[1,{}]},"timestamp":1,"value":1,"tags":{"a":"b"}}"#).len(),
        1
    );
}

#[test]
fn type_inference() {
    let cases: &[(&str, Value)] = &[
        ("1", Value::Long(1)),
        ("-1", Value::Long(-1)),
        ("1.0", Value::Double(1.0)),
        ("1e3", Value::Long(1000)),
        ("1E-2", Value::Long(0)),
        ("1.5e3", Value::Double(1500.0)),
        ("-9223372036854775808", Value::Long(i64::MIN)),
        ("\"1.5\"", Value::Double(1.5)),
        ("\"42\"", Value::Long(42)),
        ("\"+5\"", Value::Long(5)),
        ("\".5\"", Value::Double(0.5)),
        ("23.86", Value::Double(23.86)),
    ];
    for &(v, expected) in cases {
        let body = format!(r#"[{{"name":"m","datapoints":[[1,{v}]],"tags":{{"a":"b"}}}}]"#);
        assert_eq!(values(&body), [(1, expected)], "{v}");
        let body = format!(r#"{{"name":"m","timestamp":1,"value":{v},"tags":{{"a":"b"}}}}"#);
        assert_eq!(values(&body), [(1, expected)], "{v}");
    }
}

#[test]
fn explicit_types() {
    let ok: &[(&str, &str, Value)] = &[
        ("long", "1.9", Value::Long(1)),
        ("long", "\"7\"", Value::Long(7)),
        ("double", "5", Value::Double(5.0)),
        ("double", "\"2.5\"", Value::Double(2.5)),
    ];
    for &(t, v, expected) in ok {
        let body = format!(r#"{{"name":"m","type":"{t}","datapoints":[[1,{v}]],"tags":{{"a":"b"}}}}"#);
        assert_eq!(values(&body), [(1, expected)], "{t} {v}");
        let body = format!(r#"{{"name":"m","datapoints":[[1,{v},"{t}"]],"tags":{{"a":"b"}}}}"#);
        assert_eq!(values(&body), [(1, expected)], "{t} {v}");
    }
    // The entry's own type wins over the metric's.
    let body = r#"{"name":"m","type":"foo","datapoints":[[1,2,"double"]],"tags":{"a":"b"}}"#;
    assert_eq!(values(body), [(1, Value::Double(2.0))]);
}

#[test]
fn timestamps() {
    // A fractional datapoints timestamp is truncated (Gson getAsLong); a numeric string is read.
    let body = r#"{"name":"m","datapoints":[[1.5,1],["7",2],[1e3,3]],"tags":{"a":"b"}}"#;
    assert_eq!(
        values(body),
        [(1, Value::Long(1)), (7, Value::Long(2)), (1000, Value::Long(3))]
    );
    assert_eq!(
        errors(r#"{"name":"m","timestamp":1.5,"value":1,"tags":{"a":"b"}}"#),
        ["metric[0](name=m).timestamp must be a whole number of milliseconds, not 1.5."]
    );
    assert_eq!(
        values(r#"{"name":"m","timestamp":1e3,"value":1,"tags":{"a":"b"}}"#)[0].0,
        1000
    );
    assert_eq!(
        errors(r#"{"name":"m","time":"abc","value":1,"tags":{"a":"b"}}"#),
        ["metric[0](name=m).time must be a number of milliseconds, not a string."]
    );
    assert_eq!(
        errors(r#"{"name":"m","datapoints":[["abc",1],[1e30,2],[true,3]],"tags":{"a":"b"}}"#),
        [
            "metric[0](name=m).datapoints[0].timestamp must be a number of milliseconds, not 'abc'.",
            "metric[0](name=m).datapoints[1].timestamp: '1e30' is out of range for a 64-bit integer.",
            "metric[0](name=m).datapoints[2].timestamp must be a number of milliseconds, not true.",
        ]
    );
}

/// Every DataPointsParserTest / MetricsResourceTest message that kairosd can produce.
#[test]
fn kairosdb_messages() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"[{"name":"","timestamp":1,"value":1,"tags":{"a":"b"}},{"timestamp":1,"value":1,"tags":{"a":"b"}}]"#,
            &["metric[0].name may not be empty.", "metric[1].name may not be null."],
        ),
        (
            r#"[{"name":"","timestamp":1,"value":1,"tags":{"a":"b"}}]"#,
            &["metric[0].name may not be empty."],
        ),
        (
            r#"[{"name":"metric1","timestamp":1,"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).value may not be null."],
        ),
        (
            r#"[{"name":"metric1","value":1,"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).timestamp may not be null."],
        ),
        (
            r#"[{"name":"metric1","timestamp":1,"value":"","tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).value may not be empty."],
        ),
        (
            r#"[{"name":"metric1","timestamp":1,"value":null,"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).value may not be empty."],
        ),
        (
            r#"[{"name":"metric1","timestamp":1,"value":[],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).value may not be an empty array."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1,"tags":{}}]"#,
            &["metric[0](name=metricName).tags count must be greater than or equal to 1."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1}]"#,
            &["metric[0](name=metricName).tags count must be greater than or equal to 1."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1,"tags":null}]"#,
            &["metric[0](name=metricName).tags count must be greater than or equal to 1."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1,"tags":{"":"bar"}}]"#,
            &["metric[0](name=metricName).tag[0].name may not be empty."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1,"tags":{"foo":""}}]"#,
            &["metric[0](name=metricName).tag[foo].value may not be empty."],
        ),
        (
            r#"[{"name":"metricName","timestamp":1,"value":1,"tags":{"foo":null}}]"#,
            &["metric[0](name=metricName).tag[foo].value may not be null."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].timestamp cannot be null or empty."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].value cannot be null or empty."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[null,2]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].timestamp may not be null."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,null]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].value may not be empty."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,""]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].value may not be empty."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,[]]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1).datapoints[0].value may not be an empty array."],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,{"a":1}]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1) value is an invalid type"],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,[1]]],"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1) value is an invalid type"],
        ),
        (
            r#"[{"name":"metric1","timestamp":2,"value":{"a":1},"tags":{"a":"b"}}]"#,
            &["metric[0](name=metric1) value is an invalid type"],
        ),
        (
            r#"[{"name":"metric1","type":"foo","datapoints":[[2,1]],"tags":{"a":"b"}}]"#,
            &["Unregistered data point type 'foo'"],
        ),
        (
            r#"[{"name":"metric1","datapoints":[[2,1,"foo"]],"tags":{"a":"b"}}]"#,
            &["Unregistered data point type 'foo'"],
        ),
        (
            r#"[{"name":"metric1","timestamp":2,"value":1,"type":"foo","tags":{"a":"b"}}]"#,
            &["Unregistered data point type 'foo'"],
        ),
        // Errors accumulate within one metric.
        (
            r#"[{"name":"metric1","timestamp":1,"value":"","tags":{"foo":""}}]"#,
            &[
                "metric[0](name=metric1).value may not be empty.",
                "metric[0](name=metric1).tag[foo].value may not be empty.",
            ],
        ),
    ];
    for &(body, expected) in cases {
        let (p, e) = run(body);
        assert_eq!(e, expected, "{body}");
        assert!(p.is_empty(), "{body}: stored {p:?}");
    }
}

#[test]
fn kairosd_refusals() {
    let cases: &[(&str, &str)] = &[
        (r#"{"name":"m","timestamp":1,"value":"abc","tags":{"a":"b"}}"#, "metric[0](name=m).value 'abc' is not a number; kairosd does not store string data points."),
        (r#"{"name":"m","timestamp":1,"value":true,"tags":{"a":"b"}}"#, "metric[0](name=m).value 'true' is not a number; kairosd does not store string data points."),
        (r#"{"name":"m","datapoints":[[1,"x","string"]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value has type 'string'; kairosd does not store string data points."),
        (r#"{"name":"m","type":"string","datapoints":[[1,""]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value has type 'string'; kairosd does not store string data points."),
        (r#"{"name":"m","datapoints":[[1,"NaN"]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value 'NaN' is not a finite number; kairosd refuses NaN and Infinity."),
        (r#"{"name":"m","datapoints":[[1,"-Infinity"]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value '-Infinity' is not a finite number; kairosd refuses NaN and Infinity."),
        (r#"{"name":"m","datapoints":[[1,1.0e400]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value 1.0e400 is not a finite number; kairosd refuses NaN and Infinity."),
        (r#"{"name":"m","type":"double","datapoints":[[1,1e400]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value 1e400 is not a finite number; kairosd refuses NaN and Infinity."),
        (r#"{"name":"m","type":"double","datapoints":[[1,"inf"]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value inf is not a finite number; kairosd refuses NaN and Infinity."),
        (r#"{"name":"m","datapoints":[[1,1e400]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value: '1e400' is out of range for a 64-bit integer."),
        (r#"{"name":"m","datapoints":[[1,99999999999999999999]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value: '99999999999999999999' is out of range for a 64-bit integer."),
        (r#"{"name":"m","type":"long","datapoints":[[1,"x"]],"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints[0].value x is not a number (type long)."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":"b","a":"c"}}"#, "metric[0](name=m).tag[a] is given more than once."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":"b"},"ttl":-5}"#, "metric[0](name=m).ttl must be a whole number of seconds from 0 to 2147483647, not -5."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":"b"},"ttl":2147483648}"#, "metric[0](name=m).ttl must be a whole number of seconds from 0 to 2147483647, not 2147483648."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":"b"},"ttl":1.5}"#, "metric[0](name=m).ttl must be a whole number of seconds from 0 to 2147483647, not 1.5."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":"b"},"ttl":"x"}"#, "metric[0](name=m).ttl must be a whole number of seconds from 0 to 2147483647, not \"x\"."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":[1]}"#, "metric[0](name=m).tags must be an object of tag names to values, not an array."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":"a=b"}"#, "metric[0](name=m).tags must be an object of tag names to values, not a string."),
        (r#"{"name":"m","timestamp":1,"value":1,"tags":{"a":{}}}"#, "metric[0](name=m).tag[a].value must be a string, not an object."),
        (r#"{"name":{},"timestamp":1,"value":1,"tags":{"a":"b"}}"#, "metric[0].name must be a string, not an object."),
        (r#"{"name":"m","datapoints":{"a":1},"tags":{"a":"b"}}"#, "metric[0](name=m).datapoints must be an array of [timestamp, value] arrays, not an object."),
        (r#"{"name":"m","datapoints":[[1,2]],"tags":{"a":"b"},"type":[]}"#, "metric[0](name=m).type must be a string, not an array."),
        (r#"{"name":"m","datapoints":[[1,2]],"tags":{"a":"b"},"skip_validate":1}"#, "metric[0].skip_validate must be true or false, not a number."),
    ];
    for &(body, expected) in cases {
        let (p, e) = run(body);
        assert_eq!(e, [expected], "{body}");
        assert!(p.is_empty(), "{body}: stored {p:?}");
    }
    assert_eq!(
        errors(r#"[1,"x",null,[1]]"#),
        [
            "metric[0] must be a JSON object, not a number.",
            "metric[1] must be a JSON object, not a string.",
            "metric[2] must be a JSON object, not null.",
            "metric[3] must be a JSON object, not an array.",
        ]
    );
}

#[test]
fn tag_values_like_gson() {
    let p = points(r#"{"name":"m","timestamp":1,"value":1,"tags":{"n":3,"f":1.50,"b":true,"e":"a\"b\u00e9"}}"#);
    assert_eq!(
        p[0].tags,
        tags(&[("b", "true"), ("e", "a\"bé"), ("f", "1.50"), ("n", "3")])
    );
    let p = points(r#"{"name":"m\u0000x","timestamp":1,"value":1,"tags":{"k\n":"v"}}"#);
    assert_eq!(
        (p[0].metric.as_str(), p[0].tags.clone()),
        ("m\u{0}x", tags(&[("k\n", "v")]))
    );
    let p = points(r#"{"name":"你好","timestamp":1,"value":1,"tags":{"city":"Zürich"}}"#);
    assert_eq!(p[0].metric, "你好");
}

#[test]
fn skip_validate() {
    let p = points(r#"{"name":"m","timestamp":1,"value":1,"skip_validate":true}"#);
    assert_eq!(p[0].tags, vec![]);
    let p = points(r#"{"name":"m","datapoints":[[1,2]],"tags":{"":""},"skip_validate":"true"}"#);
    assert_eq!(p[0].tags, tags(&[("", "")]));
    assert_eq!(
        errors(r#"{"timestamp":1,"value":1,"skip_validate":true}"#),
        ["metric[0].name may not be null."]
    );
}

#[test]
fn partial_success() {
    // A bad datapoints entry is skipped; the good ones of that metric are kept.
    let (p, e) = run(r#"[{"name":"m","datapoints":[[1,1],[2,null],[3,3],[4],"x"],"tags":{"a":"b"}}]"#);
    assert_eq!(p.iter().map(|p| p.timestamp).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(
        e,
        [
            "metric[0](name=m).datapoints[1].value may not be empty.",
            "metric[0](name=m).datapoints[3].value cannot be null or empty.",
            "metric[0](name=m).datapoints[4] must be an array of [timestamp, value] or [timestamp, value, type], not a string.",
        ]
    );
    // A metric with a name or tag error stores nothing; its neighbours are kept.
    let (p, e) = run(r#"[{"name":"a","datapoints":[[1,1]],"tags":{"t":"1"}},
            {"name":"b","datapoints":[[1,1]],"tags":{}},
            {"name":"c","datapoints":[[1,1]],"tags":{"t":"1"}}]"#);
    assert_eq!(p.iter().map(|p| p.metric.as_str()).collect::<Vec<_>>(), ["a", "c"]);
    assert_eq!(e, ["metric[1](name=b).tags count must be greater than or equal to 1."]);
    // A bad single value does not stop the datapoints of the same (valid) metric.
    let (p, e) = run(r#"{"name":"m","timestamp":1,"value":{},"datapoints":[[2,2]],"tags":{"a":"b"}}"#);
    assert_eq!(p.len(), 1);
    assert_eq!(e, ["metric[0](name=m) value is an invalid type"]);
}

#[test]
fn syntax_errors_keep_what_came_before() {
    let (p, e) = run(
        r#"[{"name":"a","datapoints":[[1,1]],"tags":{"t":"1"}}, {"name":"b","datapoints":[[1,1]],"tags":{"t":"1"}}, {"name": x}]"#,
    );
    assert_eq!(p.iter().map(|p| p.metric.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert_eq!(e, ["Invalid json: expected value at line 1 column 115."]);
    // The metric being read when the error hit stores nothing.
    let (p, e) = run(
        r#"[{"name":"a","datapoints":[[1,1]],"tags":{"t":"1"}}, {"name":"b","datapoints":[[1,1],[2,]],"tags":{"t":"1"}}]"#,
    );
    assert_eq!(p.len(), 1);
    assert_eq!(e.len(), 1);
    assert_eq!(e, ["Invalid json: trailing comma at line 1 column 89."]);
    // Validation errors before the syntax error are kept too.
    let (p, e) = run(
        r#"[{"name":"","timestamp":1,"value":1,"tags":{"a":"b"}}, {"name":"c","timestamp":1,"value":1,"tags":{"a":"b"}} oops"#,
    );
    assert_eq!(p.len(), 1);
    assert_eq!(e[0], "metric[0].name may not be empty.");
    assert!(e[1].starts_with("Invalid json: expected `,` or `]`"), "{e:?}");
    // Truncated body.
    let (p, e) = run(r#"[{"name":"a","datapoints":[[1,1]],"tags":{"t":"1"}}, {"name":"b""#);
    assert_eq!(p.len(), 1);
    assert_eq!(e, ["Invalid json. Unexpected end of input at line 1 column 64."]);
    // Trailing garbage after a complete body.
    let (p, e) = run(r#"{"name":"a","datapoints":[[1,1]],"tags":{"t":"1"}} x"#);
    assert_eq!(p.len(), 1);
    assert_eq!(e, ["Invalid json: trailing characters at line 1 column 52."]);
    // NaN and Infinity literals get a hint.
    for body in [
        r#"[{"name":"a","datapoints":[[1,NaN]],"tags":{"t":"1"}}]"#,
        "[{\"name\":\"a\",\n\"value\":-Infinity}]",
    ] {
        let e = errors(body);
        assert!(
            e[0].ends_with("(NaN and Infinity are not JSON numbers, and kairosd refuses them)."),
            "{e:?}"
        );
    }
    assert!(errors(r#"[{"name":"a","datapoints":[[1,NaN]],"tags":{"t":"1"}}, {"name":"b"}]"#).len() == 1);
    // Invalid UTF-8 inside a string.
    let d = decode(b"[{\"name\":\"a\xff\",\"timestamp\":1,\"value\":1,\"tags\":{\"a\":\"b\"}}]");
    assert!(d.batch.is_empty());
    assert_eq!(d.errors.len(), 1);
    // ... keeps the metrics before it, as any syntax error does.
    let d = decode(
        b"[{\"name\":\"ok\",\"timestamp\":1,\"value\":1,\"tags\":{\"a\":\"b\"}},\
          {\"name\":\"a\xff\",\"timestamp\":1,\"value\":1,\"tags\":{\"a\":\"b\"}}]",
    );
    assert_eq!(d.batch.len(), 1);
    assert_eq!(d.errors.len(), 1);
}

#[test]
fn decode_into_appends_to_a_reused_batch() {
    let body = br#"[{"name":"m","datapoints":[[1,2],[3,4.5]],"tags":{"h":"a"}}]"#;
    let mut batch = decode(body).batch;
    batch.clear();
    let capacity = batch.capacity_bytes();
    assert!(decode_into(body, &mut batch).is_empty());
    assert_eq!(batch.len(), 2);
    assert!(batch.capacity_bytes() >= capacity);
    assert_eq!(batch.to_points()[1].value, Value::Double(4.5));
}

#[test]
fn long_names_are_truncated_in_messages() {
    let name = "n".repeat(100);
    let e = errors(&format!(r#"{{"name":"{name}","timestamp":1,"tags":{{"a":"b"}}}}"#));
    assert_eq!(
        e,
        [format!("metric[0](name={}…).value may not be null.", "n".repeat(64))]
    );
}

#[test]
fn deep_nesting_does_not_overflow_the_stack() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"[{{"name":"a","x":{deep},"datapoints":[[1,{deep}],{deep}],"tags":{{"a":{deep}}}}},{deep}]"#);
    assert_eq!(
        errors(&body),
        [
            "metric[0](name=a).tag[a].value must be a string, not an array.",
            "metric[1] must be a JSON object, not an array."
        ]
    );
}

fn name_strategy() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9._ é\"\\\\\u{0}-\u{1f}]{1,16}"
}

proptest! {
    #[test]
    fn metrics_round_trip(
        metrics in proptest::collection::vec(
            (
                name_strategy(),
                proptest::collection::btree_map(name_strategy(), name_strategy(), 1..4),
                proptest::collection::vec((any::<i64>(), any::<i64>(), any::<f64>().prop_filter("finite", |v| v.is_finite()), any::<bool>()), 0..4),
                0u32..1000,
            ),
            0..5,
        )
    ) {
        let mut json = Vec::new();
        let mut expected = Vec::new();
        for (name, tag_map, dps, ttl) in &metrics {
            let mut datapoints = Vec::new();
            for &(ts, long, double, is_double) in dps {
                let value = if is_double { Value::Double(double) } else { Value::Long(long) };
                let v = if is_double {
                    serde_json::Value::from(double)
                } else {
                    serde_json::Value::from(long)
                };
                // serde_json writes an integral double as `1.0`, which keeps it a double.
                datapoints.push(serde_json::json!([ts, v]));
                expected.push(DataPoint {
                    metric: name.clone(),
                    tags: tag_map.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                    timestamp: ts,
                    value,
                    ttl: (*ttl != 0).then_some(*ttl),
                });
            }
            json.push(serde_json::json!({"name": name, "tags": tag_map, "datapoints": datapoints, "ttl": ttl}));
        }
        let body = serde_json::to_vec(&json).unwrap();
        let d = decode(&body);
        prop_assert!(d.errors.is_empty(), "{:?}", d.errors);
        prop_assert_eq!(d.batch.to_points(), expected);
    }

    #[test]
    fn never_panics(body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let d = decode(&body);
        for r in d.batch.records() {
            if let Value::Double(v) = r.value {
                prop_assert!(v.is_finite());
            }
        }
    }

    #[test]
    fn never_panics_on_json_like_bodies(body in r#"\[?\{("(name|tags|timestamp|time|value|datapoints|type|ttl|skip_validate)":(\[|\]|\{|\}|"[a-z]{0,3}"|-?[0-9.eE+]{1,6}|null|true|,|:)*,?){0,6}\}?\]?"#) {
        let d = decode(body.as_bytes());
        for r in d.batch.records() {
            if let Value::Double(v) = r.value {
                prop_assert!(v.is_finite());
            }
        }
    }
}

#[test]
fn the_error_list_is_capped_and_says_how_many_more() {
    let bad: Vec<String> = (0..5000)
        .map(|i| format!(r#"{{"name":"","timestamp":{i},"value":1}}"#))
        .collect();
    let mut body = format!("[{}", bad.join(","));
    body.push_str(r#",{"name":"ok","tags":{"h":"a"},"timestamp":1,"value":2}]"#);
    let d = decode(body.as_bytes());
    assert_eq!(d.errors.len(), MAX_ERRORS + 1);
    assert_eq!(d.errors[0], "metric[0].name may not be empty.");
    assert!(
        d.errors[MAX_ERRORS].starts_with("... and ") && d.errors[MAX_ERRORS].contains("more errors"),
        "{}",
        d.errors[MAX_ERRORS]
    );
    assert_eq!(d.batch.len(), 1, "the valid object is still kept");
}
