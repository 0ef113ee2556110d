//! The query API over HTTP against a real kairosd: every aggregator family with values
//! computed by hand, group_by, time zones, validation texts, query/tags and the name
//! endpoints, gzip, server types and the point budget.

mod common;

use common::{http, Daemon};
use serde_json::{json, Value};

/// 2023-11-14 00:00:00 UTC: a midnight, so aligned ranges start here.
const T0: i64 = 1_699_920_000_000;
const MIN: i64 = 60_000;

/// `agg.m`: host=a has 1..10 and host=b 10..100 at T0 + 0..9 minutes.
fn load(d: &Daemon) {
    let a: Vec<Value> = (0..10).map(|i| json!([T0 + i * MIN, i + 1])).collect();
    let b: Vec<Value> = (0..10).map(|i| json!([T0 + i * MIN, 10 * (i + 1)])).collect();
    let body = json!([
        {"name": "agg.m", "tags": {"host": "a", "dc": "eu"}, "datapoints": a},
        {"name": "agg.m", "tags": {"host": "b", "dc": "us"}, "datapoints": b},
    ]);
    let r = d.post("/api/v1/datapoints", &body.to_string());
    assert_eq!(r.status, 204, "{}", r.text());
}

/// The results of a one-metric query over [T0, T0 + 10 min).
fn results(d: &Daemon, metric: Value) -> Vec<Value> {
    let q = json!({"start_absolute": T0, "end_absolute": T0 + 10 * MIN - 1, "metrics": [metric]});
    d.query(q)["queries"][0]["results"].as_array().unwrap().clone()
}

fn values(d: &Daemon, metric: Value) -> Value {
    let r = results(d, metric);
    assert_eq!(r.len(), 1, "{r:?}");
    r[0]["values"].clone()
}

fn agg(name: &str, extra: Value) -> Value {
    let mut a = json!({"name": name});
    a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    a
}

#[test]
fn range_aggregators_by_hand() {
    let d = Daemon::start(&[]);
    load(&d);
    let five = json!({"sampling": {"value": 5, "unit": "minutes"}});
    // Both series merged: 1..5 + 10..50 = 165, 6..10 + 60..100 = 440.
    assert_eq!(
        values(&d, json!({"name": "agg.m", "aggregators": [agg("sum", five.clone())]})),
        json!([[T0, 165], [T0 + 5 * MIN, 440]])
    );
    // Units in any case, numbers as strings (as Grafana sends them).
    assert_eq!(
        values(
            &d,
            json!({"name": "agg.m", "aggregators": [agg("max", json!({"sampling": {"value": "5", "unit": "MINUTES"}}))]})
        ),
        json!([[T0, 50], [T0 + 5 * MIN, 100]])
    );
    // 3-minute ranges do not divide the 10 minutes: the last range has one minute.
    let three = json!({"sampling": {"value": 3, "unit": "Minutes"}});
    assert_eq!(
        values(&d, json!({"name": "agg.m", "aggregators": [agg("count", three)]})),
        json!([[T0, 6], [T0 + 3 * MIN, 6], [T0 + 6 * MIN, 6], [T0 + 9 * MIN, 2]])
    );
    let hour = json!({"sampling": {"value": 1, "unit": "hours"}});
    let a_only = |aggs: Value| values(&d, json!({"name": "agg.m", "tags": {"host": "a"}, "aggregators": aggs}));
    let dev = a_only(json!([agg("dev", hour.clone())]));
    assert_eq!(dev[0][0], T0);
    assert!((dev[0][1].as_f64().unwrap() - 3.0276503540974917).abs() < 1e-9, "{dev}");
    let pos = a_only(json!([agg(
        "dev",
        json!({"sampling": {"value": 1, "unit": "hours"}, "return_type": "pos_sd", "dev_count": 2})
    )]));
    assert!((pos[0][1].as_f64().unwrap() - (5.5 + 2.0 * 3.0276503540974917)).abs() < 1e-9);
    assert_eq!(
        a_only(json!([agg(
            "percentile",
            json!({"sampling": {"value": 1, "unit": "hours"}, "percentile": "0.5"})
        )])),
        json!([[T0, 5.5]])
    );
    assert_eq!(a_only(json!([agg("avg", hour.clone())])), json!([[T0, 5.5]]));
    assert_eq!(a_only(json!([agg("min", hour.clone())])), json!([[T0, 1]]));
    assert_eq!(a_only(json!([agg("first", hour.clone())])), json!([[T0, 1]]));
    assert_eq!(a_only(json!([agg("last", hour.clone())])), json!([[T0 + 9 * MIN, 10]]));
    // The data lie on y = 1 + t/min: the fitted line's ends are the first and last points.
    assert_eq!(
        a_only(json!([agg("least_squares", hour.clone())])),
        json!([[T0, 1], [T0 + 9 * MIN, 10]])
    );
    // align_end_time stamps each range with its end; last is then moved as well.
    assert_eq!(
        a_only(json!([agg(
            "last",
            json!({"sampling": {"value": 5, "unit": "minutes"}, "align_end_time": true})
        )])),
        json!([[T0 + 5 * MIN, 5], [T0 + 10 * MIN, 10]])
    );
    // Without align_sampling ranges start at the query start, not at midnight.
    let r = d.query(json!({
        "start_absolute": T0 + 2 * MIN, "end_absolute": T0 + 10 * MIN,
        "metrics": [{"name": "agg.m", "tags": {"host": "a"}, "aggregators": [
            agg("sum", json!({"sampling": {"value": 5, "unit": "minutes"}, "align_sampling": false, "align_start_time": true}))]}]
    }));
    assert_eq!(
        r["queries"][0]["results"][0]["values"],
        json!([[T0 + 2 * MIN, 3 + 4 + 5 + 6 + 7], [T0 + 7 * MIN, 8 + 9 + 10]])
    );
    assert_eq!(r["queries"][0]["sample_size"], 8);
}

#[test]
fn chained_and_pairwise_aggregators_by_hand() {
    let d = Daemon::start(&[]);
    load(&d);
    let a = |aggs: Value| {
        values(
            &d,
            json!({"name": "agg.m", "tags": {"host": ["a"]}, "aggregators": aggs}),
        )
    };
    let minutes = |from: i64, vals: &[f64]| -> Value {
        vals.iter()
            .enumerate()
            .map(|(i, &v)| {
                let t = T0 + (from + i as i64) * MIN;
                // Whole doubles print as integers, as KairosDB prints them.
                if v.fract() == 0.0 {
                    json!([t, v as i64])
                } else {
                    json!([t, v])
                }
            })
            .collect()
    };
    // +1 per minute: rate per minute is 1 at every later point.
    assert_eq!(a(json!([{"name": "rate", "unit": "MINUTES"}])), minutes(1, &[1.0; 9]));
    assert_eq!(
        a(json!([{"name": "rate", "sampling": {"value": 1, "unit": "seconds"}}])),
        minutes(1, &[1.0 / 60.0; 9])
    );
    assert_eq!(
        a(json!([{"name": "sampler", "unit": "minutes"}])),
        minutes(1, &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    );
    assert_eq!(a(json!([{"name": "diff"}])), minutes(1, &[1.0; 9]));
    assert_eq!(
        a(json!([{"name": "sma", "size": 3}])),
        minutes(2, &[2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    );
    assert_eq!(
        a(json!([{"name": "trim", "trim": "both"}, {"name": "filter", "filter_op": "gt", "threshold": 5}])),
        minutes(1, &[2.0, 3.0, 4.0, 5.0])
    );
    // sum per 5 minutes, then div and scale: (15, 40) / 5 × 2.
    assert_eq!(
        a(json!([
            {"name": "sum", "sampling": {"value": 5, "unit": "minutes"}},
            {"name": "div", "divisor": 5},
            {"name": "scale", "factor": "2"}
        ])),
        json!([[T0, 6], [T0 + 5 * MIN, 16]])
    );
    // Two series at the same timestamps: rate cannot tell them apart (KairosDB's text).
    let r = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": T0, "metrics": [{"name": "agg.m", "aggregators": [{"name": "rate"}]}]}).to_string(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(
        r.errors(),
        [
            "The rate aggregator cannot compute rate for data points with the same time stamp.  \
          You must precede rate with another aggregator."
        ]
    );
    // ... unless a range aggregator comes first, as KairosDB advises.
    assert_eq!(
        values(
            &d,
            json!({"name": "agg.m", "aggregators": [
            {"name": "sum", "sampling": {"value": 1, "unit": "minutes"}}, {"name": "rate", "unit": "minutes"}]})
        ),
        minutes(1, &[11.0; 9])
    );
}

#[test]
fn gaps_marks_empty_ranges_with_null() {
    let d = Daemon::start(&[]);
    let body = json!([{"name": "gap.m", "tags": {"h": "a"}, "datapoints": [[T0, 1], [T0 + 2 * MIN, 3]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let q = json!({"start_absolute": T0, "end_absolute": T0 + 3 * MIN, "metrics": [{"name": "gap.m",
        "aggregators": [{"name": "gaps", "sampling": {"value": 1, "unit": "minutes"}}]}]});
    assert_eq!(
        d.query(q)["queries"][0]["results"][0]["values"],
        json!([[T0, 1], [T0 + MIN, null], [T0 + 2 * MIN, 3], [T0 + 3 * MIN, null]])
    );
}

#[test]
fn month_ranges_follow_the_query_time_zone() {
    let d = Daemon::start(&[]);
    // Kabul is UTC+4:30. 2024-01-31 22:00 local = 17:30 UTC; 2024-02-01 01:00 local =
    // 2024-01-31 20:30 UTC: one point in each local month, both in January UTC.
    let jan: i64 = 1_706_722_200_000; // 2024-01-31T17:30:00Z
    let feb: i64 = 1_706_733_000_000; // 2024-01-31T20:30:00Z
    let body = json!([{"name": "tz.m", "tags": {"h": "a"}, "datapoints": [[jan, 1], [feb, 1]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let count = json!([{"name": "count", "sampling": {"value": 1, "unit": "months"}, "align_start_time": true}]);
    let q = |tz: &str| {
        json!({"start_absolute": jan - 86_400_000, "end_absolute": feb + 1, "time_zone": tz,
               "metrics": [{"name": "tz.m", "aggregators": count.clone()}]})
    };
    // Local month starts: 2024-01-01 00:00 +04:30 and 2024-02-01 00:00 +04:30.
    assert_eq!(
        d.query(q("Asia/Kabul"))["queries"][0]["results"][0]["values"],
        json!([[1_704_051_000_000i64, 1], [1_706_729_400_000i64, 1]])
    );
    assert_eq!(
        d.query(q("UTC"))["queries"][0]["results"][0]["values"],
        json!([[1_704_067_200_000i64, 2]])
    );
}

#[test]
fn group_by_tag_time_value_and_bin() {
    let d = Daemon::start(&[]);
    load(&d);
    // A series without the grouped tag forms its own group (KairosDB 1.3).
    let body = json!([{"name": "agg.m", "tags": {"rack": "r1"}, "datapoints": [[T0, 1000]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let r = results(
        &d,
        json!({"name": "agg.m", "group_by": [{"name": "tag", "tags": ["host"]}],
               "aggregators": [{"name": "sum", "sampling": {"value": 1, "unit": "hours"}}]}),
    );
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0]["group_by"],
        json!([{"name": "tag", "tags": ["host"], "group": {}}, {"name": "type", "type": "number"}])
    );
    assert_eq!(r[0]["values"], json!([[T0, 1000]]));
    assert_eq!(r[0]["tags"], json!({"rack": ["r1"]}));
    assert_eq!(r[1]["group_by"][0]["group"], json!({"host": "a"}));
    assert_eq!(r[1]["tags"], json!({"dc": ["eu"], "host": ["a"]}));
    assert_eq!(r[1]["values"], json!([[T0, 55]]));
    assert_eq!(r[2]["values"], json!([[T0, 550]]));
    // time: even and odd minutes of host a.
    let r = results(
        &d,
        json!({"name": "agg.m", "tags": {"host": "a"},
               "group_by": [{"name": "time", "range_size": {"value": 1, "unit": "minutes"}, "group_count": 2}]}),
    );
    assert_eq!(r.len(), 2);
    assert_eq!(
        r[0]["group_by"],
        json!([{"name": "time", "range_size": {"value": 1, "unit": "MINUTES"}, "group_count": 2, "group": {"group_number": 0}},
               {"name": "type", "type": "number"}])
    );
    assert_eq!(r[0]["values"].as_array().unwrap().len(), 5);
    assert_eq!(r[1]["values"][0], json!([T0 + MIN, 2]));
    // value: groups of 40, first seen first; bin: below 5, from 5.
    let r = results(
        &d,
        json!({"name": "agg.m", "group_by": [{"name": "value", "range_size": 40}]}),
    );
    let groups: Vec<i64> = r
        .iter()
        .map(|g| g["group_by"][0]["group"]["group_number"].as_i64().unwrap())
        .collect();
    // At T0 the rack series' 1000 comes right after host a's 1 and host b's 10.
    assert_eq!(groups, [0, 25, 1, 2]);
    assert_eq!(r[0]["values"].as_array().unwrap().len(), 13, "1..10 and 10..30");
    let r = results(
        &d,
        json!({"name": "agg.m", "tags": {"host": "a"}, "group_by": [{"name": "bin", "bins": ["5"]}],
               "aggregators": [{"name": "count", "sampling": {"value": 1, "unit": "hours"}}]}),
    );
    assert_eq!(
        r[0]["group_by"][0],
        json!({"name": "bin", "bins": [5], "group": {"bin_number": 0}})
    );
    assert_eq!(r[0]["values"], json!([[T0, 4]]));
    assert_eq!(r[1]["values"], json!([[T0 + 4 * MIN, 6]]));
}

#[test]
fn validation_texts_and_request_forms() {
    let d = Daemon::start(&[]);
    let bad = |q: Value| {
        let r = d.post("/api/v1/datapoints/query", &q.to_string());
        assert_eq!(r.status, 400, "{q}: {}", r.text());
        assert!(r.header("Content-Type").unwrap().starts_with("application/json"));
        r.errors()
    };
    let m = |extra: Value| {
        let mut m = json!({"name": "m"});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        json!({"start_absolute": 1, "metrics": [m]})
    };
    let units = "MILLISECONDS,SECONDS,MINUTES,HOURS,DAYS,WEEKS,MONTHS,YEARS";
    for (q, want) in [
        (
            m(json!({"aggregators": [{}]})),
            "query.metric[0].aggregators[0] must have a name".to_string(),
        ),
        (
            m(json!({"aggregators": [{"name": "bogus"}]})),
            "query.metric[0].aggregators[0].bogus invalid aggregators name".into(),
        ),
        (
            m(json!({"aggregators": [{"name": "sum", "sampling": {"value": 1, "unit": "bogus"}}]})),
            format!("query.metric[0].aggregators[0].bogus is not a valid time unit, must be one of {units}"),
        ),
        (
            m(json!({"aggregators": [{"name": "sum", "sampling": {"value": -1, "unit": "days"}}]})),
            "query.metric[0].aggregators[0].sampling.value must be greater than or equal to 0".into(),
        ),
        (
            m(json!({"aggregators": [{"name": "div", "divisor": 0}]})),
            "query.metric[0].aggregators[0].m_divisor may not be zero".into(),
        ),
        (
            m(json!({"aggregators": [{"name": "percentile"}]})),
            "query.metric[0].aggregators[0].percentile may not be zero".into(),
        ),
        (
            m(json!({"aggregators": [{"name": "sum", "bogus": true}]})),
            "Property 'bogus' was specified for object 'sum' but no matching setter was found on \
             'class org.kairosdb.core.aggregator.SumAggregator'"
                .into(),
        ),
        (
            m(json!({"group_by": [{"name": "bogus"}]})),
            "query.metric[0].group_by[0].bogus invalid group_by name".into(),
        ),
        (
            m(json!({"group_by": [{"name": "tag", "tags": []}]})),
            "query.metric[0].group_by[0].tags may not be empty".into(),
        ),
        (
            m(json!({"order": "sideways"})),
            "query.metric[0].order must be either 'asc' or 'desc'".into(),
        ),
    ] {
        assert_eq!(bad(q), [want]);
    }
    let tz = bad(json!({"start_absolute": 1, "time_zone": "Mars/Olympus", "metrics": [{"name": "m"}]}));
    assert!(
        tz[0].starts_with("query.Mars/Olympus is not a valid time zone"),
        "{tz:?}"
    );
    // metrics: [] is a valid (empty) query; an unknown metric is one empty result.
    assert_eq!(
        d.query(json!({"start_absolute": 1, "metrics": []})),
        json!({"queries": []})
    );
    assert_eq!(
        d.query(json!({"start_absolute": 1, "metrics": [{"name": "nothing.here"}]})),
        json!({"queries": [{"sample_size": 0, "results": [{"name": "nothing.here", "tags": {}, "values": []}]}]})
    );
    // GET with ?query= answers the same as POST.
    let body = json!({"start_absolute": 1, "metrics": [{"name": "nothing.here"}]}).to_string();
    let encoded: String = body
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let r = d.get(&format!("/api/v1/datapoints/query?query={encoded}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["queries"][0]["results"][0]["name"], "nothing.here");
    for path in [
        "/api/v1/version",
        "/api/v1/metricnames",
        "/api/v1/tagnames",
        "/api/v1/health/status",
        "/api/v1/nope",
    ] {
        let r = d.get(path);
        assert!(
            r.header("Content-Type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{path}: {:?}",
            r.headers
        );
    }
}

#[test]
fn query_tags_name_endpoints_and_gzip() {
    let d = Daemon::start(&[]);
    load(&d);
    let r = d.post(
        "/api/v1/datapoints/query/tags",
        &json!({"start_absolute": 0, "metrics": [{"name": "agg.m", "tags": {"dc": ["eu"]}}]}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"queries": [{"results": [{"name": "agg.m", "tags": {"dc": ["eu"], "host": ["a"]}, "values": []}]}]})
    );
    // Outside the data's time range no series matches.
    let r = d.post(
        "/api/v1/datapoints/query/tags",
        &json!({"start_absolute": 0, "end_absolute": 1000, "metrics": [{"name": "agg.m"}]}).to_string(),
    );
    assert_eq!(r.json()["queries"][0]["results"][0]["tags"], json!({}));
    assert_eq!(d.get("/api/v1/tagnames").json(), json!({"results": ["dc", "host"]}));
    assert_eq!(d.get("/api/v1/tagvalues?prefix=e").json(), json!({"results": ["eu"]}));
    assert_eq!(
        d.get("/api/v1/metricnames?prefix=agg").json(),
        json!({"results": ["agg.m"]})
    );
    let many: Vec<Value> = (0..500).map(|i| json!([T0 + i, i])).collect();
    let body = json!([{"name": "big.m", "tags": {"h": "a"}, "datapoints": many}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let q = json!({"start_absolute": 0, "metrics": [{"name": "big.m"}]}).to_string();
    let r = http(
        d.http,
        "POST",
        "/api/v1/datapoints/query",
        &[("Accept-Encoding", "gzip")],
        q.as_bytes(),
    );
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&r.body[..]), &mut text).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["queries"][0]["sample_size"], 500);
}

#[test]
fn save_as_writes_a_new_metric() {
    let d = Daemon::start(&[]);
    load(&d);
    let q = json!({"start_absolute": T0, "metrics": [{"name": "agg.m",
        "group_by": [{"name": "tag", "tags": ["host"]}],
        "aggregators": [{"name": "sum", "sampling": {"value": 5, "unit": "minutes"}},
                        {"name": "save_as", "metric_name": "agg.m.5m", "tags": {"kind": "rollup"}}]}]});
    let r = d.query(q);
    assert_eq!(
        r["queries"][0]["results"][0]["values"],
        json!([[T0, 15], [T0 + 5 * MIN, 40]])
    );
    let saved = d.query(json!({"start_absolute": T0, "metrics": [{"name": "agg.m.5m", "tags": {"host": "b"}}]}));
    let res = &saved["queries"][0]["results"][0];
    assert_eq!(res["values"], json!([[T0, 150], [T0 + 5 * MIN, 400]]));
    assert_eq!(
        res["tags"],
        json!({"host": ["b"], "kind": ["rollup"], "saved_from": ["agg.m"]})
    );
}

#[test]
fn staged_points_are_aggregated_at_once() {
    // Promotion far away: everything stays in the staging log during the test.
    let d = Daemon::start(&[("kairosd.writer.promote_interval_ms", "600000")]);
    load(&d);
    let r = values(
        &d,
        json!({"name": "agg.m", "aggregators": [{"name": "sum", "sampling": {"value": 10, "unit": "minutes"}}]}),
    );
    assert_eq!(r, json!([[T0, 605]]));
    // A later write to the same timestamp replaces the staged point.
    let body = json!([{"name": "agg.m", "tags": {"host": "a", "dc": "eu"}, "datapoints": [[T0, 101]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let r = values(
        &d,
        json!({"name": "agg.m", "aggregators": [{"name": "sum", "sampling": {"value": 10, "unit": "minutes"}}]}),
    );
    assert_eq!(r, json!([[T0, 705]]));
}

#[test]
fn server_type_switches_groups_off_with_403() {
    let d = Daemon::start(&[("kairosdb.server.type", "INGEST")]);
    load(&d);
    for (method, path) in [
        ("POST", "/api/v1/datapoints/query"),
        ("POST", "/api/v1/datapoints/query/tags"),
        ("GET", "/api/v1/metricnames"),
        ("POST", "/api/v1/datapoints/delete"),
        ("DELETE", "/api/v1/metric/agg.m"),
    ] {
        let r = http(d.http, method, path, &[], b"{}");
        assert_eq!(r.status, 403, "{method} {path}");
        let group = if path.contains("delete") || path.contains("/metric/") {
            "DELETE"
        } else {
            "QUERY"
        };
        assert_eq!(
            r.errors(),
            [format!(
                "Forbidden: {group} API methods are disabled on this KairosDB instance."
            )]
        );
    }
    assert_eq!(d.get("/api/v1/version").status, 200);
    let q = Daemon::start(&[("kairosdb.server.type", "QUERY")]);
    let r = q.post("/api/v1/datapoints", "[]");
    assert_eq!(r.status, 403);
    assert_eq!(
        r.errors(),
        ["Forbidden: INGEST API methods are disabled on this KairosDB instance."]
    );
}

#[test]
fn point_budget_covers_the_whole_query() {
    let d = Daemon::start(&[("kairosd.query.max_points", "15")]);
    load(&d);
    let r = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": T0, "metrics": [{"name": "agg.m", "tags": {"host": "a"}}, {"name": "agg.m", "tags": {"host": "b"}}]})
            .to_string(),
    );
    assert_eq!(r.status, 400);
    let e = &r.errors()[0];
    assert!(
        e.starts_with("query.metric[1] would read more than 15 data points"),
        "{e}"
    );
    assert!(e.contains("kairosd.query.max_points"), "{e}");
    // Each metric alone fits.
    let r = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": T0, "metrics": [{"name": "agg.m", "tags": {"host": "b"}}]}).to_string(),
    );
    assert_eq!(r.status, 200);
    assert!(d.metric("kairosd_query_points_scanned_total") >= 10.0);
}
