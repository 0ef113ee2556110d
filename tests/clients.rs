//! Request bodies exactly as real KairosDB clients build them, every field included,
//! replayed against a real kairosd:
//!
//! - Grafana's KairosDB data source (grafana/kairosdb-datasource 3.0.1): the bodies
//!   come from `src/core/request/query_builder.ts` (metric names, `query/tags` with
//!   `cache_time: 0, start_absolute: 0`), `src/beans/request/datapoints_query.ts`
//!   (`cache_time: 0`, absolute range in whole seconds × 1000),
//!   `src/beans/request/metric_query.ts` (`limit: 0`, `tags`, `aggregators`,
//!   `group_by`), `src/core/request/group_bys_builder.ts` and
//!   `src/core/request/parameter_object_builder.ts` (sampling values as strings, units
//!   in capitals, `align_sampling` / `align_start_time` from the alignment choice).
//!   What the panel reads back follows `src/core/response/response_handler.ts` and
//!   `series_name_builder.ts` (`values`, `group_by[name=tag].group`), and
//!   `datasource.ts` (`queries[0].results[0].tags` for tag names and values).
//! - KairosDB's Java client (kairosdb/kairosdb-client): the JSON its `QueryBuilder`
//!   produces, as in its test resources `query_multiple_metrics_relative_times.json`,
//!   `query_single_metric_aggregator_with_alignment.json`, `query_withGroupBys.json`,
//!   `query_withLimitAndOrder.json`, `query_withTimeZone.json`, and the push body of
//!   `multiple_metrics.json`; the response parts its `GroupByDeserializer` needs.

mod common;

use common::Daemon;
use serde_json::{json, Value};

/// 2023-11-14 00:00:00 UTC.
const T0: i64 = 1_699_920_000_000;

/// grafana.cpu: web1 and web2 in dc eu, web3 in dc us; a point every 10 s for ten
/// minutes, web`n` at step i = n·100 + i.
fn load_grafana(d: &Daemon) {
    let mut body = Vec::new();
    for (n, dc) in [(1, "eu"), (2, "eu"), (3, "us")] {
        let pts: Vec<Value> = (0..60).map(|i| json!([T0 + i * 10_000, n * 100 + i])).collect();
        body.push(json!({"name": "grafana.cpu", "tags": {"host": format!("web{n}"), "dc": dc}, "datapoints": pts}));
    }
    let r = d.post("/api/v1/datapoints", &Value::Array(body).to_string());
    assert_eq!(r.status, 204, "{}", r.text());
}

fn post(d: &Daemon, path: &str, body: &str) -> Value {
    let r = d.post(path, body);
    assert_eq!(r.status, 200, "{path} {body}: {}", r.text());
    r.json()
}

#[test]
fn grafana_kairosdb_datasource_flow() {
    let d = Daemon::start(&[]);
    load_grafana(&d);

    // MetricNamesStore.fetch: GET /api/v1/metricnames, reads response.data.results.
    let names = d.get("/api/v1/metricnames").json();
    assert_eq!(names["results"], json!(["grafana.cpu"]));

    // getMetricTags (tag_names): buildTagsRequestBody(metricName, {}).
    let tags = post(
        &d,
        "/api/v1/datapoints/query/tags",
        r#"{"cache_time":0,"metrics":[{"name":"grafana.cpu","tags":{}}],"start_absolute":0}"#,
    );
    let all = &tags["queries"][0]["results"][0]["tags"];
    assert_eq!(all, &json!({"dc": ["eu", "us"], "host": ["web1", "web2", "web3"]}));
    // tag_values(grafana.cpu, host, dc=eu): the same body with filters.
    let tags = post(
        &d,
        "/api/v1/datapoints/query/tags",
        r#"{"cache_time":0,"metrics":[{"name":"grafana.cpu","tags":{"dc":["eu"]}}],"start_absolute":0}"#,
    );
    assert_eq!(
        tags["queries"][0]["results"][0]["tags"]["host"],
        json!(["web1", "web2"])
    );

    // A raw panel: no aggregator, no group-by, an empty tag list dropped by pickBy.
    let from = T0 / 1000 * 1000;
    let to = (T0 + 600_000) / 1000 * 1000;
    let raw = format!(
        r#"{{"cache_time":0,"start_absolute":{from},"end_absolute":{to},"metrics":[{{"limit":0,"name":"grafana.cpu","tags":{{}},"aggregators":[],"group_by":[]}}]}}"#
    );
    let r = post(&d, "/api/v1/datapoints/query", &raw);
    assert_eq!(r["queries"][0]["sample_size"], 180);
    let res = &r["queries"][0]["results"];
    assert_eq!(res.as_array().unwrap().len(), 1);
    let values = res[0]["values"].as_array().unwrap();
    assert_eq!(values.len(), 180, "limit 0 is no limit");
    assert_eq!(values[0], json!([T0, 100]));
    assert_eq!(res[0]["group_by"], json!([{"name": "type", "type": "number"}]));

    // Tags, group by tag and a sampled avg (alignment NONE adds nothing; sampling from
    // the auto interval "1m": value "1", unit "MINUTES").
    let grouped = format!(
        r#"{{"cache_time":0,"start_absolute":{from},"end_absolute":{to},"metrics":[{{"limit":0,"name":"grafana.cpu","tags":{{"dc":["eu"]}},"aggregators":[{{"name":"avg","sampling":{{"value":"1","unit":"MINUTES"}}}}],"group_by":[{{"name":"tag","tags":["host"]}}]}}]}}"#
    );
    let r = post(&d, "/api/v1/datapoints/query", &grouped);
    assert_eq!(r["queries"][0]["sample_size"], 120);
    let res = r["queries"][0]["results"].as_array().unwrap();
    assert_eq!(res.len(), 2);
    for (i, n) in [1i64, 2].iter().enumerate() {
        let g = &res[i];
        // series_name_builder: the tag group's values name the series.
        let tag = g["group_by"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == "tag")
            .unwrap();
        assert_eq!(tag["group"], json!({"host": format!("web{n}")}));
        assert_eq!(tag["tags"], json!(["host"]));
        // Minute m holds steps 6m..6m+5: mean n·100 + 6m + 2.5, stamped at its first point.
        let want: Vec<Value> = (0..10)
            .map(|m| json!([T0 + m * 60_000, (n * 100 + 6 * m) as f64 + 2.5]))
            .collect();
        assert_eq!(g["values"], Value::Array(want));
    }

    // Alignment SAMPLING (align_sampling) and START_TIME (align_start_time), a rate with
    // a unit, and a time group-by and a value group-by as the builder writes them.
    let aligned = format!(
        r#"{{"cache_time":0,"start_absolute":{},"end_absolute":{to},"metrics":[{{"limit":0,"name":"grafana.cpu","tags":{{"host":["web3"]}},"aggregators":[{{"name":"max","align_start_time":true,"sampling":{{"value":"5","unit":"MINUTES"}}}},{{"name":"rate","unit":"MINUTES"}}],"group_by":[{{"group_count":2,"name":"time","range_size":{{"unit":"MINUTES","value":"5"}}}},{{"name":"value","range_size":"1000"}}]}}]}}"#,
        from + 30_000
    );
    let r = post(&d, "/api/v1/datapoints/query", &aligned);
    let res = r["queries"][0]["results"].as_array().unwrap();
    // Time groups of 5 minutes from the query start (T0+30s): steps 0..32 and 33..59.
    assert_eq!(res.len(), 2);
    assert_eq!(res[0]["group_by"][0]["group"]["group_number"], 0);
    assert_eq!(
        res[0]["group_by"][1],
        json!({"name": "value", "range_size": 1000, "group": {"group_number": 0}})
    );
    // Ranges align to midnight, so the first 5-minute range is [T0, T0+5m): max over
    // steps 3..29 = 329 at T0 (range start), then 359 at T0+5m for steps 30..32 in group 0.
    assert_eq!(
        res[0]["values"],
        json!([[T0 + 300_000, (332.0 - 329.0) / 300_000.0 * 60_000.0]])
    );
    let sampling = format!(
        r#"{{"cache_time":0,"start_absolute":{from},"end_absolute":{to},"metrics":[{{"limit":0,"name":"grafana.cpu","tags":{{"host":["web1"]}},"aggregators":[{{"name":"sum","align_sampling":true,"sampling":{{"value":"5","unit":"MINUTES"}}}}],"group_by":[]}}]}}"#
    );
    let r = post(&d, "/api/v1/datapoints/query", &sampling);
    let s0: i64 = (0..30).map(|i| 100 + i).sum();
    let s1: i64 = (30..60).map(|i| 100 + i).sum();
    assert_eq!(
        r["queries"][0]["results"][0]["values"],
        json!([[T0, s0], [T0 + 300_000, s1]])
    );
}

#[test]
fn kairosdb_java_client_request_shapes() {
    let d = Daemon::start(&[]);
    // multiple_metrics.json: what the client's push serializer writes.
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"metric1","tags":{"tag2":"tab2value","tag1":"tab1value"},"datapoints":[[1,10],[2,30]]},{"name":"metric2","tags":{"tag3":"tab3value"},"datapoints":[[2,30],[3,2.3]]}]"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let day = 86_400_000;
    // Points the relative-time fixtures can see, half-way into a 2-hour time group
    // (whole days from the query start would put them on a group boundary).
    let recent = now - 10 * day - 3_600_000;
    let body = json!([
        {"name": "metric1", "tags": {"larry": "moe", "foo": "bar", "tag1": "x"},
         "datapoints": [[recent, 5], [recent + 1000, 7]]},
        {"name": "metric2", "tags": {"curly": "joe"}, "datapoints": [[recent, 1.5]]},
        {"name": "metric1", "tags": {"tag1": "v1", "tag2": "v2"},
         "datapoints": [[1359774127000i64, 3], [1359774128000i64, 15]]},
    ]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);

    // query_multiple_metrics_relative_times.json
    let r = post(
        &d,
        "/api/v1/datapoints/query",
        r#"{"start_relative":{"value":3,"unit":"WEEKS"},"end_relative":{"value":2,"unit":"DAYS"},"cache_time":2000,"metrics":[{"name":"metric1","tags":{"larry":["moe"],"foo":["bar"]},"group_by":[],"aggregators":[{"sampling":{"value":1,"unit":"DAYS"},"name":"max"}]},{"name":"metric2","tags":{"curly":["joe"]},"group_by":[],"aggregators":[]}]}"#,
    );
    let q = r["queries"].as_array().unwrap();
    assert_eq!(q.len(), 2);
    assert_eq!(q[0]["results"][0]["values"][0][1], 7);
    assert_eq!(q[1]["results"][0]["values"], json!([[recent, 1.5]]));
    // The client's GroupByDeserializer needs the type entry on every result.
    assert_eq!(
        q[1]["results"][0]["group_by"],
        json!([{"name": "type", "type": "number"}])
    );

    // query_single_metric_aggregator_with_alignment.json
    let r = post(
        &d,
        "/api/v1/datapoints/query",
        r#"{"start_absolute":1359774127000,"end_absolute":13597745127000,"cache_time":0,"metrics":[{"name":"metric1","tags":{},"group_by":[],"aggregators":[{"sampling":{"value":1,"unit":"DAYS"},"align_sampling":true,"name":"max"}]}]}"#,
    );
    let v = &r["queries"][0]["results"][0]["values"];
    assert_eq!(v[0], json!([1359774127000i64, 15]));

    // query_withGroupBys.json
    let r = post(
        &d,
        "/api/v1/datapoints/query",
        r#"{"start_relative":{"value":2,"unit":"MONTHS"},"cache_time":0,"metrics":[{"name":"metric1","tags":{},"group_by":[{"range_size":10,"name":"value"},{"tags":["tag1","tag2"],"name":"tag"},{"range_size":{"value":2,"unit":"HOURS"},"group_count":3,"name":"time"}],"aggregators":[]}]}"#,
    );
    let res = &r["queries"][0]["results"][0];
    let names: Vec<&str> = res["group_by"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["value", "time", "tag", "type"]);
    assert_eq!(res["group_by"][2]["group"], json!({"tag1": "x"}));
    assert_eq!(res["values"], json!([[recent, 5], [recent + 1000, 7]]));

    // query_withLimitAndOrder.json and query_withTimeZone.json
    for body in [
        r#"{"start_relative":{"value":2,"unit":"MONTHS"},"cache_time":0,"metrics":[{"name":"metric1","tags":{},"group_by":[],"aggregators":[],"limit":10,"order":"desc"}]}"#,
        r#"{"start_relative":{"value":2,"unit":"MONTHS"},"cache_time":0,"time_zone":"Europe/Vienna","metrics":[{"name":"metric1","tags":{},"group_by":[],"aggregators":[],"limit":10,"order":"desc"}]}"#,
    ] {
        let r = post(&d, "/api/v1/datapoints/query", body);
        assert_eq!(
            r["queries"][0]["results"][0]["values"],
            json!([[recent + 1000, 7], [recent, 5]])
        );
    }

    // QueryTagBuilder: name and tag multimap, an absolute start.
    let r = post(
        &d,
        "/api/v1/datapoints/query/tags",
        r#"{"start_absolute":0,"metrics":[{"tags":{"tag1":["v1"]},"name":"metric1"}]}"#,
    );
    assert_eq!(
        r["queries"][0]["results"][0]["tags"],
        json!({"tag1": ["v1"], "tag2": ["v2"]})
    );
}
