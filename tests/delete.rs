//! Deleting over HTTP against a real kairosd: by name, tag filter and time range, and
//! whole metrics; ordered with writes, durable across restart and compaction, and data
//! written afterwards shows up at once (KairosDB issue #313).

mod common;

use std::process::Command;

use common::{http, Daemon};
use serde_json::{json, Value};

fn post_points(d: &Daemon, body: Value) {
    let r = d.post("/api/v1/datapoints", &body.to_string());
    assert_eq!(r.status, 204, "{}", r.text());
}

fn values(d: &Daemon, metric: &str, tags: Value) -> Value {
    let q = json!({"start_absolute": 0, "metrics": [{"name": metric, "tags": tags}]});
    d.query(q)["queries"][0]["results"][0]["values"].clone()
}

/// del.m: hosts a and b, points every 1000 ms from 1000 to 10000, value = ts / 1000.
fn load(d: &Daemon) {
    let pts: Vec<Value> = (1..=10).map(|i| json!([i * 1000, i])).collect();
    post_points(
        d,
        json!([
            {"name": "del.m", "tags": {"host": "a"}, "datapoints": pts},
            {"name": "del.m", "tags": {"host": "b"}, "datapoints": pts},
            {"name": "keep.m", "tags": {"host": "a"}, "datapoints": pts},
        ]),
    );
}

fn delete(d: &Daemon, body: Value) {
    let r = d.post("/api/v1/datapoints/delete", &body.to_string());
    assert_eq!(r.status, 204, "{}", r.text());
}

#[test]
fn delete_by_tag_filter_and_inclusive_range() {
    // Small buckets: the range covers some whole buckets and cuts two.
    let d = Daemon::start(&[("kairosd.storage.bucket_width_ms", "2000")]);
    load(&d);
    delete(
        &d,
        json!({"start_absolute": 3000, "end_absolute": 7000, "metrics": [{"name": "del.m", "tags": {"host": "a"}}]}),
    );
    assert_eq!(
        values(&d, "del.m", json!({"host": "a"})),
        json!([[1000, 1], [2000, 2], [8000, 8], [9000, 9], [10000, 10]])
    );
    assert_eq!(values(&d, "del.m", json!({"host": "b"})).as_array().unwrap().len(), 10);
    assert_eq!(values(&d, "keep.m", json!({})).as_array().unwrap().len(), 10);
    // Invalid bodies get the query's 400 texts; nothing is deleted.
    let r = d.post(
        "/api/v1/datapoints/delete",
        &json!({"metrics": [{"name": "del.m"}]}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.errors(),
        ["query.metric[0].start_time relative or absolute time must be set"]
    );
    assert_eq!(values(&d, "del.m", json!({"host": "b"})).as_array().unwrap().len(), 10);
}

#[test]
fn a_delete_applies_after_the_writes_before_it_and_before_those_after() {
    // Points stay staged (not yet in chunks) when the delete arrives.
    let d = Daemon::start(&[("kairosd.writer.promote_interval_ms", "600000")]);
    load(&d);
    delete(
        &d,
        json!({"start_absolute": 0, "end_absolute": 5000, "metrics": [{"name": "del.m"}]}),
    );
    assert_eq!(
        values(&d, "del.m", json!({"host": "b"})),
        json!([[6000, 6], [7000, 7], [8000, 8], [9000, 9], [10000, 10]])
    );
    // Written after the delete, inside its range: kept.
    post_points(
        &d,
        json!([{"name": "del.m", "tags": {"host": "b"}, "datapoints": [[2000, 22]]}]),
    );
    assert_eq!(values(&d, "del.m", json!({"host": "b"}))[0], json!([2000, 22]));
}

#[test]
fn deleting_a_metric_removes_data_index_and_names_and_it_can_come_back() {
    let d = Daemon::start(&[]);
    load(&d);
    post_points(
        &d,
        json!([{"name": "other.m", "tags": {"host": "a", "only": "here"}, "datapoints": [[1, 1]]}]),
    );
    let r = http(d.http, "DELETE", "/api/v1/metric/del.m", &[], b"");
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        d.get("/api/v1/metricnames").json(),
        json!({"results": ["keep.m", "other.m"]})
    );
    assert_eq!(values(&d, "del.m", json!({})), json!([]));
    let tags = d.post(
        "/api/v1/datapoints/query/tags",
        &json!({"start_absolute": 0, "metrics": [{"name": "del.m"}]}).to_string(),
    );
    assert_eq!(tags.json()["queries"][0]["results"][0]["tags"], json!({}));
    // Unknown metrics delete fine (204), as in KairosDB.
    assert_eq!(http(d.http, "DELETE", "/api/v1/metric/never.was", &[], b"").status, 204);
    // Tag names and values go with the last series that carried them.
    let r = http(d.http, "DELETE", "/api/v1/metric/other.m", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(d.get("/api/v1/tagnames").json(), json!({"results": ["host"]}));
    assert_eq!(d.get("/api/v1/tagvalues").json(), json!({"results": ["a"]}));
    // Written again: visible at once, with its names (no stale writer cache).
    post_points(
        &d,
        json!([{"name": "del.m", "tags": {"host": "b"}, "datapoints": [[5, 5]]}]),
    );
    assert_eq!(values(&d, "del.m", json!({})), json!([[5, 5]]));
    assert_eq!(
        d.get("/api/v1/metricnames").json(),
        json!({"results": ["del.m", "keep.m"]})
    );
    assert_eq!(d.get("/api/v1/tagvalues").json(), json!({"results": ["a", "b"]}));
    // Over telnet too: a put for a deleted series lands.
    let r = http(d.http, "DELETE", "/api/v1/metric/keep.m", &[], b"");
    assert_eq!(r.status, 204);
    let mut t = d.telnet();
    std::io::Write::write_all(&mut t, b"putm keep.m 7 7 host=a\n").unwrap();
    assert_eq!(d.wait_for_points("keep.m", 1), vec![json!([7, 7])]);
}

#[test]
fn deleted_data_stays_deleted_across_restart_and_compaction() {
    let d = Daemon::start(&[("kairosd.storage.bucket_width_ms", "4000")]);
    load(&d);
    delete(
        &d,
        json!({"start_absolute": 2500, "end_absolute": 8500, "metrics": [{"name": "del.m"}]}),
    );
    let r = http(d.http, "DELETE", "/api/v1/metric/keep.m", &[], b"");
    assert_eq!(r.status, 204);
    let (dir, tmp) = d.stop();
    let status = Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .arg("compact")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    let d = Daemon::start_in(&dir, &[("kairosd.storage.bucket_width_ms", "4000")]);
    let want = json!([[1000, 1], [2000, 2], [9000, 9], [10000, 10]]);
    assert_eq!(values(&d, "del.m", json!({"host": "a"})), want);
    assert_eq!(values(&d, "del.m", json!({"host": "b"})), want);
    assert_eq!(values(&d, "keep.m", json!({})), json!([]));
    assert_eq!(d.get("/api/v1/metricnames").json(), json!({"results": ["del.m"]}));
    drop(d);
    drop(tmp);
}
