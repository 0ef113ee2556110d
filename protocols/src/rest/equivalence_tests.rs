//! The scanner (with and without a series cache) against the general serde_json
//! reader, over generated bodies valid and invalid: every body must give the same
//! points, in the same order, with the same keys, ttl and value bits, and the same
//! error list, whichever reader takes it.

use super::*;
use crate::{PointRecord, Value};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// A batch as comparable data: records with exact value bits, and each record's key.
fn snapshot(batch: &PointBatch) -> Vec<(PointRecord, u64, Vec<u8>)> {
    batch
        .records()
        .iter()
        .map(|r| {
            let bits = match r.value {
                Value::Long(v) => v as u64,
                Value::Double(v) => v.to_bits(),
            };
            (*r, bits, batch.key(r).to_vec())
        })
        .collect()
}

/// A batch that already holds a point, so appending (and rolling back) is checked too.
fn prefilled() -> PointBatch {
    let mut batch = PointBatch::new();
    batch.push_parts("before", [("a", "b")], 1, Value::Long(1), 0);
    batch
}

/// Decodes `body` every way and checks they agree; returns whether the scanner took it.
fn check(body: &[u8]) -> Result<bool, TestCaseError> {
    let mut general = prefilled();
    let want_errors = decode_into_general(body, &mut general);
    let want = snapshot(&general);

    let mut batch = prefilled();
    let errors = decode_into(body, &mut batch);
    prop_assert_eq!(&errors, &want_errors, "decode_into errors");
    prop_assert_eq!(snapshot(&batch), want.clone(), "decode_into points");

    let mut batch = prefilled();
    let scanned = decode_into_scanner(body, &mut batch);
    match &scanned {
        Some(errors) => {
            prop_assert_eq!(errors, &want_errors, "scanner errors");
            prop_assert_eq!(snapshot(&batch), want.clone(), "scanner points");
        }
        None => prop_assert_eq!(
            snapshot(&batch),
            snapshot(&prefilled()),
            "a fallback leaves the batch as it was"
        ),
    }

    // A cached decoder, twice: the second pass hits every series the first one stored.
    let mut decoder = RestDecoder::default();
    for pass in 0..2 {
        let mut batch = prefilled();
        let errors = decoder.decode_into(body, &mut batch);
        prop_assert_eq!(&errors, &want_errors, "cached errors, pass {}", pass);
        prop_assert_eq!(snapshot(&batch), want.clone(), "cached points, pass {}", pass);
    }
    Ok(scanned.is_some())
}

// ---- generators -------------------------------------------------------------------

fn ws() -> BoxedStrategy<String> {
    prop_oneof![
        6 => Just(String::new()),
        1 => proptest::collection::vec(prop_oneof![Just(' '), Just('\n'), Just('\t'), Just('\r')], 1..4)
            .prop_map(|v| v.into_iter().collect()),
    ]
    .boxed()
}

/// The inside of a JSON string: mostly plain, with escapes (good and bad), unicode
/// and raw control characters now and then.
fn string_body() -> BoxedStrategy<String> {
    let piece = prop_oneof![
        8 => "[a-z0-9._]{1,6}",
        1 => Just("é".to_owned()),
        1 => Just("你好".to_owned()),
        1 => Just("😀".to_owned()),
        1 => Just(" ".to_owned()),
        1 => Just("\\\"".to_owned()),
        1 => Just("\\\\".to_owned()),
        1 => Just("\\/".to_owned()),
        1 => prop_oneof![Just("\\b"), Just("\\f"), Just("\\n"), Just("\\r"), Just("\\t")].prop_map(str::to_owned),
        1 => prop_oneof![Just("\\u00e9"), Just("\\u0000"), Just("\\u0001"), Just("\\ud83d\\ude00"), Just("\\uD83D\\uDE00")]
            .prop_map(str::to_owned),
        1 => prop_oneof![Just("\\ud800"), Just("\\udc00x"), Just("\\ud800\\u0041")].prop_map(str::to_owned),
        1 => prop_oneof![Just("\\x"), Just("\\u12"), Just("\\uZZZZ"), Just("\\"), Just("\\U0041")].prop_map(str::to_owned),
        1 => prop_oneof![Just("\u{1}"), Just("\u{1f}"), Just("\t"), Just("\n"), Just("\u{7f}")].prop_map(str::to_owned),
    ];
    prop_oneof![
        1 => Just(String::new()),
        12 => proptest::collection::vec(piece, 1..3).prop_map(|v| v.concat()),
    ]
    .boxed()
}

fn string() -> BoxedStrategy<String> {
    string_body().prop_map(|s| format!("\"{s}\"")).boxed()
}

/// Numbers in every JSON form, valid or not, and the literals around them.
fn number() -> BoxedStrategy<String> {
    let fixed = prop_oneof![
        Just("0"),
        Just("-0"),
        Just("-0.0"),
        Just("0.0"),
        Just("1"),
        Just("-1"),
        Just("23.86"),
        Just("1.0"),
        Just("1.50"),
        Just("1e3"),
        Just("1E-2"),
        Just("1.5e3"),
        Just("-1.5E+3"),
        Just("1e400"),
        Just("1.0e400"),
        Just("-1e-400"),
        Just("99999999999999999999"),
        Just("-9223372036854775808"),
        Just("9223372036854775807"),
        Just("9223372036854775808"),
        Just("123456789012345678"),
        Just("1234567890123456789"),
        Just("0.000000000000000001"),
        Just("1795258810000"),
        Just("1795258810000.5"),
        Just("12345678901234567.5"),
        Just("01"),
        Just("1."),
        Just(".5"),
        Just("-"),
        Just("+1"),
        Just("1e"),
        Just("1e+"),
        Just("--1"),
        Just("0x10"),
        Just("1.2.3"),
        Just("NaN"),
        Just("Infinity"),
        Just("-Infinity"),
    ]
    .prop_map(str::to_owned);
    prop_oneof![
        3 => fixed,
        2 => any::<i64>().prop_map(|v| v.to_string()),
        1 => (0i64..2_000_000_000_000).prop_map(|v| v.to_string()),
        2 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:?}")),
        1 => (-1000i32..1000, 0u32..100).prop_map(|(i, f)| format!("{i}.{f:02}")),
        1 => any::<f64>().prop_filter("finite", |v| v.is_finite()).prop_map(|v| format!("{v:e}")),
    ]
    .boxed()
}

fn scalar() -> BoxedStrategy<String> {
    prop_oneof![
        4 => number(),
        4 => string(),
        1 => prop_oneof![Just("\"42\""), Just("\"1.5\""), Just("\"+5\""), Just("\".5\""), Just("\"-3\""),
                         Just("\"NaN\""), Just("\"inf\""), Just("\"-Infinity\""), Just("\"1e3\""), Just("\"\"")]
            .prop_map(str::to_owned),
        1 => prop_oneof![Just("null"), Just("true"), Just("false"), Just("nul"), Just("tru"), Just("nullx"), Just("True")]
            .prop_map(str::to_owned),
    ].boxed()
}

/// Any value, nested junk included.
fn value() -> BoxedStrategy<String> {
    scalar()
        .prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                proptest::collection::vec((ws(), inner.clone()), 0..4).prop_map(|v| {
                    let items: Vec<String> = v.into_iter().map(|(w, x)| format!("{w}{x}")).collect();
                    format!("[{}]", items.join(","))
                }),
                proptest::collection::vec((string(), ws(), inner), 0..3).prop_map(|v| {
                    let items: Vec<String> = v.into_iter().map(|(k, w, x)| format!("{k}:{w}{x}")).collect();
                    format!("{{{}}}", items.join(","))
                }),
                // Separators out of place.
                Just("[1,]".to_owned()),
                Just("{\"a\":1,}".to_owned()),
                Just("[1 2]".to_owned()),
                Just("{\"a\" 1}".to_owned()),
                Just("{1:2}".to_owned()),
            ]
        })
        .boxed()
}

/// Deeper than the scanner's bracket stack, or just within it.
fn deep() -> BoxedStrategy<String> {
    (28usize..40)
        .prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)))
        .boxed()
}

/// A name from a small pool (so series repeat and caches hit), or anything.
fn name() -> BoxedStrategy<String> {
    prop_oneof![
        6 => prop_oneof![Just("\"cpu\""), Just("\"bench.m3\""), Just("\"m\""), Just("\"disk.used\"")].prop_map(str::to_owned),
        2 => string(),
        1 => Just("\"\"".to_owned()),
        1 => value(),
    ].boxed()
}

fn tag_key() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop_oneof![Just("\"host\""), Just("\"dc\""), Just("\"svc\""), Just("\"a\"")].prop_map(str::to_owned),
        2 => string(),
        1 => Just("\"\"".to_owned()),
        1 => Just("\"h\\u006fst\"".to_owned()),
        1 => Just("5".to_owned()),
    ]
    .boxed()
}

fn tag_value() -> BoxedStrategy<String> {
    prop_oneof![
        8 => prop_oneof![Just("\"h042\""), Just("\"dc3\""), Just("\"s1\""), Just("\"web01\"")].prop_map(str::to_owned),
        3 => string(),
        2 => scalar(),
        1 => value(),
    ]
    .boxed()
}

fn tags() -> BoxedStrategy<String> {
    prop_oneof![
        10 => proptest::collection::vec((ws(), tag_key(), ws(), tag_value(), ws()), 0..5).prop_map(|v| {
            let items: Vec<String> = v.into_iter().map(|(a, k, b, x, c)| format!("{a}{k}{b}:{x}{c}")).collect();
            format!("{{{}}}", items.join(","))
        }),
        1 => value(),
    ]
    .boxed()
}

fn entry() -> BoxedStrategy<String> {
    let ts = prop_oneof![
        6 => (1_700_000_000_000i64..1_800_000_000_000).prop_map(|v| v.to_string()),
        3 => scalar(),
    ];
    let v = prop_oneof![
        6 => prop_oneof![
            (0i64..1_000_000).prop_map(|v| v.to_string()),
            (0u32..100, 0u32..100).prop_map(|(i, f)| format!("{i}.{f:02}")),
        ],
        3 => scalar(),
        1 => value(),
    ];
    let kind = prop_oneof![
        Just("\"long\""),
        Just("\"double\""),
        Just("\"string\""),
        Just("\"foo\""),
        Just("5")
    ];
    prop_oneof![
        10 => (ws(), ts.clone(), ws(), v.clone()).prop_map(|(a, t, b, x)| format!("[{a}{t},{b}{x}]")),
        1 => (ts.clone(), v.clone(), kind).prop_map(|(t, x, k)| format!("[{t},{x},{k}]")),
        1 => (ts, v.clone(), v).prop_map(|(t, x, y)| format!("[{t},{x},{y},{y}]")),
        1 => prop_oneof![Just("[]"), Just("[1]"), Just("[null,2]"), Just("[2,null]"), Just("[2,]"), Just("[,2]")].prop_map(str::to_owned),
        1 => value(),
    ].boxed()
}

fn datapoints() -> BoxedStrategy<String> {
    prop_oneof![
        10 => proptest::collection::vec((ws(), entry(), ws()), 0..4).prop_map(|v| {
            let items: Vec<String> = v.into_iter().map(|(a, e, b)| format!("{a}{e}{b}")).collect();
            format!("[{}]", items.join(","))
        }),
        1 => value(),
        1 => deep(),
    ]
    .boxed()
}

/// One field of a metric object: a key (the known ones mostly) and a value that suits it.
fn field() -> BoxedStrategy<String> {
    let kv = prop_oneof![
        6 => name().prop_map(|v| ("\"name\"".to_owned(), v)),
        6 => tags().prop_map(|v| ("\"tags\"".to_owned(), v)),
        6 => datapoints().prop_map(|v| ("\"datapoints\"".to_owned(), v)),
        2 => (prop_oneof![Just("\"timestamp\""), Just("\"time\"")], prop_oneof![3 => number(), 1 => scalar()])
            .prop_map(|(k, v)| (k.to_owned(), v)),
        2 => prop_oneof![3 => number(), 1 => scalar(), 1 => value()].prop_map(|v| ("\"value\"".to_owned(), v)),
        1 => prop_oneof![
                Just("\"long\""), Just("\"double\""), Just("\"string\""), Just("\"foo\""), Just("null"), Just("[]")
            ].prop_map(|v| ("\"type\"".to_owned(), v.to_owned())),
        1 => prop_oneof![
                Just("60"), Just("0"), Just("-5"), Just("2147483647"), Just("2147483648"), Just("1.5"), Just("\"x\""),
                Just("\"60\""), Just("1e2"), Just("null")
            ].prop_map(|v| ("\"ttl\"".to_owned(), v.to_owned())),
        1 => prop_oneof![Just("true"), Just("false"), Just("\"true\""), Just("\"FALSE\""), Just("1"), Just("null")]
            .prop_map(|v| ("\"skip_validate\"".to_owned(), v.to_owned())),
        1 => (prop_oneof![Just("\"metric\""), Just("\"extra\""), Just("\"\""), Just("\"n\\u0061me\""), Just("\"Name\"")], value())
            .prop_map(|(k, v)| (k.to_owned(), v)),
        1 => deep().prop_map(|v| ("\"junk\"".to_owned(), v)),
    ];
    (ws(), kv, ws(), ws())
        .prop_map(|(a, (k, v), b, c)| format!("{a}{k}{b}:{c}{v}"))
        .boxed()
}

fn metric_object() -> BoxedStrategy<String> {
    (proptest::collection::vec(field(), 0..7), ws())
        .prop_map(|(fields, w)| format!("{{{}{w}}}", fields.join(",")))
        .boxed()
}

/// The load generator's object, the shape the scanner is for.
fn agent_object() -> BoxedStrategy<String> {
    (0usize..4, 0usize..3, 1_700_000_000_000i64..1_800_000_000_000, number())
        .prop_map(|(m, h, ts, v)| {
            format!(
                r#"{{"name":"bench.m{m}","datapoints":[[{ts},{v}]],"tags":{{"host":"h{h:03}","dc":"dc1","svc":"s1"}}}}"#
            )
        })
        .boxed()
}

/// Plain objects (what the shortcut stores) and their near misses: fields in any
/// order, tags from a small pool (so names repeat), values that are just plain or just
/// not, an optional ttl or single point, now and then one odd field.
fn plain_object() -> BoxedStrategy<String> {
    let tag = (
        prop_oneof![Just("host"), Just("dc"), Just("svc"), Just("a"), Just("")],
        prop_oneof![
            8 => prop_oneof![Just("\"h042\""), Just("\"dc3\""), Just("\"s1\"")].prop_map(str::to_owned),
            1 => Just("\"\"".to_owned()),
            1 => Just("\"x\\/y\"".to_owned()),
            1 => number(),
        ],
    )
        .prop_map(|(k, v)| format!("\"{k}\":{v}"));
    let plain_number = prop_oneof![
        3 => (0i64..1_000_000).prop_map(|v| v.to_string()),
        3 => (-100i32..100, 0u32..100).prop_map(|(i, f)| format!("{i}.{f:02}")),
        1 => number(),
    ];
    let ts = prop_oneof![
        6 => (1_700_000_000_000i64..1_800_000_000_000).prop_map(|v| v.to_string()),
        1 => number(),
    ];
    let entry = (ts.clone(), plain_number.clone()).prop_map(|(t, v)| format!("[{t},{v}]"));
    let odd = prop_oneof![
        4 => Just(None),
        1 => prop_oneof![
            Just("\"skip_validate\":true"), Just("\"skip_validate\":false"), Just("\"skip_validate\":\"true\""),
            Just("\"type\":\"double\""), Just("\"time\":5")
        ].prop_map(|f| Some(f.to_owned())),
        1 => field().prop_map(Some),
    ];
    (
        prop_oneof![
            Just("\"cpu\""),
            Just("\"bench.m3\""),
            Just("\"\""),
            Just("\"m\\u0031\"")
        ],
        proptest::collection::vec(tag, 0..5),
        proptest::collection::vec(entry, 0..3),
        proptest::option::of((ts, plain_number)),
        proptest::option::of(prop_oneof![
            Just("60"),
            Just("0"),
            Just("-1"),
            Just("2147483648"),
            Just("1.0")
        ]),
        odd,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(name, tags, entries, single, ttl, odd, order)| {
            let mut fields = vec![
                format!("\"name\":{name}"),
                format!("\"tags\":{{{}}}", tags.join(",")),
                format!("\"datapoints\":[{}]", entries.join(",")),
            ];
            if let Some((t, v)) = single {
                fields.push(format!("\"timestamp\":{t},\"value\":{v}"));
            }
            if let Some(ttl) = ttl {
                fields.push(format!("\"ttl\":{ttl}"));
            }
            if let Some(odd) = odd {
                fields.push(odd);
            }
            let n = fields.len();
            fields.rotate_left(order.index(n));
            format!("{{{}}}", fields.join(","))
        })
        .boxed()
}

fn element() -> BoxedStrategy<String> {
    prop_oneof![
        6 => metric_object(),
        3 => agent_object(),
        6 => plain_object(),
        1 => value(),
    ]
    .boxed()
}

/// A whole body, then now and then cut short, given trailing junk or a byte changed.
fn body() -> BoxedStrategy<Vec<u8>> {
    let top = prop_oneof![
        8 => (ws(), proptest::collection::vec((ws(), element(), ws()), 0..5), ws()).prop_map(|(a, v, b)| {
            let items: Vec<String> = v.into_iter().map(|(x, e, y)| format!("{x}{e}{y}")).collect();
            format!("{a}[{}]{b}", items.join(","))
        }),
        3 => (ws(), element(), ws()).prop_map(|(a, e, b)| format!("{a}{e}{b}")),
        1 => value(),
    ];
    let edit = prop_oneof![
        12 => Just(None),
        2 => (any::<prop::sample::Index>()).prop_map(|i| Some((0u8, i, 0u8))),
        1 => (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Some((1u8, i, b))),
        1 => (any::<prop::sample::Index>(), prop_oneof![Just(b','), Just(b']'), Just(b'}'), Just(b'"'), Just(b' '), Just(0xff)])
            .prop_map(|(i, b)| Some((2u8, i, b))),
    ];
    (top, edit)
        .prop_map(|(text, edit)| {
            let mut bytes = text.into_bytes();
            if let Some((kind, at, b)) = edit {
                if !bytes.is_empty() {
                    let i = at.index(bytes.len());
                    match kind {
                        0 => bytes.truncate(i),
                        1 => bytes[i] = b,
                        _ => bytes.insert(i, b),
                    }
                }
            }
            bytes
        })
        .boxed()
}

proptest! {
    #![proptest_config(Config { cases: 2000, ..Config::default() })]

    #[test]
    fn scanner_and_cache_agree_with_the_general_reader(body in body()) {
        check(&body)?;
    }

    /// One cached decoder over a sequence of bodies (a connection), with a cache small
    /// enough to rotate: each body must still decode exactly as the general reader does.
    #[test]
    fn a_connection_cache_changes_nothing(bodies in proptest::collection::vec(body(), 1..6), entries in 1usize..6) {
        let mut decoder = RestDecoder::new(CacheLimits { entries, bytes: 4096 });
        for body in &bodies {
            let mut general = PointBatch::new();
            let want_errors = decode_into_general(body, &mut general);
            let mut batch = PointBatch::new();
            let errors = decoder.decode_into(body, &mut batch);
            prop_assert_eq!(errors, want_errors);
            prop_assert_eq!(snapshot(&batch), snapshot(&general));
        }
    }
}

/// The generator must reach both readers: a differential test in which the scanner
/// always gave up (or never did) would prove nothing.
#[test]
fn generated_bodies_exercise_both_readers() {
    let mut runner = TestRunner::deterministic();
    let strategy = body();
    let (mut scanned, mut scanned_with_errors, mut scanned_with_points, mut general) = (0, 0, 0, 0);
    for _ in 0..3000 {
        let body = strategy.new_tree(&mut runner).expect("a body").current();
        let mut batch = PointBatch::new();
        match decode_into_scanner(&body, &mut batch) {
            Some(errors) => {
                scanned += 1;
                scanned_with_errors += usize::from(!errors.is_empty());
                scanned_with_points += usize::from(!batch.is_empty());
            }
            None => general += 1,
        }
    }
    assert!(scanned > 600 && general > 600, "scanned {scanned}, general {general}");
    assert!(
        scanned_with_errors > 200 && scanned_with_points > 200,
        "errors {scanned_with_errors}, points {scanned_with_points}"
    );
}

/// Bodies the scanner must take itself (a silent fallback would keep the results right
/// but lose the point of it): the shapes agents send.
#[test]
fn the_scanner_takes_what_agents_send() {
    let bodies = [
        r#"[{"name":"bench.m3","datapoints":[[1795258810000,23.86]],"tags":{"host":"h042","dc":"dc3","svc":"s1"}}]"#,
        r#"[{"name":"m","timestamp":1,"value":2,"tags":{"a":"b"},"ttl":60}, {"name":"m","datapoints":[[1,2],[3,4.5]],"tags":{"a":"b"}}]"#,
        "{\n  \"name\": \"m\",\n  \"datapoints\": [[1, 2, \"double\"]],\n  \"tags\": {\"host\": \"Z\\u00fcrich\\/1\"},\n  \"type\": \"long\"\n}\n",
        r#"[{"name":"m","timestamp":1,"value":"abc","tags":{"a":"b"}}]"#,
        r#"[{"name":"m","datapoints":[[1,1],[2,null],[3,3],[4]],"tags":{"a":"b"},"extra":{"x":[1,{"y":null}]}}]"#,
        r#"[{"metric":"m","name":"n","timestamp":1e3,"value":-0.0,"tags":{"a":5,"b":true}}]"#,
        "[]",
        // Python's json.dumps (the integration test's first body).
        r#"[{"name": "py.scan", "tags": {"city": "Z\u00fcrich", "path": "/var/log"}, "datapoints": [[1000, 1.5], [2000, 2]]}, {"name": "py.scan", "tags": {"city": "Z\u00fcrich", "path": "/var/log"}, "timestamp": 3000, "value": "7", "ttl": 60}]"#,
    ];
    for body in bodies {
        let mut batch = PointBatch::new();
        assert!(decode_into_scanner(body.as_bytes(), &mut batch).is_some(), "{body}");
        check(body.as_bytes()).expect(body);
    }
    // And gives up where serde_json must have the say: syntax errors, escaped keys,
    // non-object elements.
    for body in [
        r#"[{"name":"m",}]"#,
        r#"[{"n\u0061me":"m"}]"#,
        r#"[1]"#,
        r#"[{"name":"m","tags":null}]"#,
        "[{\"name\":\"a\u{1}\"}]",
        r#"{"name": "py.fallback", "tags": {"st\u00e4dt": "x"}, "datapoints": [[1000, 1000.0]]}"#,
    ] {
        let mut batch = PointBatch::new();
        assert!(decode_into_scanner(body.as_bytes(), &mut batch).is_none(), "{body}");
        check(body.as_bytes()).expect(body);
    }
}
