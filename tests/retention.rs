//! TTL and retention against a real kairosd: per-point ttls from REST and telnet, the
//! KairosDB ttl keys, retention policies over HTTP and the CLI, queries that hide what
//! expired, `metricnames`, and table files on disk that shrink once compaction drops
//! the expired chunks, across a restart.

mod common;

use std::io::Write;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{http, Daemon};
use serde_json::json;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn count(d: &Daemon, metric: &str) -> usize {
    d.values(metric, json!({})).len()
}

fn metric_names(d: &Daemon) -> Vec<String> {
    d.get("/api/v1/metricnames").json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

/// Polls `f` until it holds (20 s at most); returns whether it did.
fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    f()
}

fn put(d: &Daemon, method: &str, path: &str, body: &str) -> common::HttpResponse {
    http(
        d.http,
        method,
        path,
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    )
}

const FAST: [(&str, &str); 3] = [
    ("kairosd.writer.promote_interval_ms", "100"),
    ("kairosd.storage.idle_flush_ms", "200"),
    ("kairosd.retention.compaction_interval_ms", "500"),
];

#[test]
fn points_with_a_ttl_leave_queries_metricnames_and_the_disk_and_stay_gone_after_a_restart() {
    let d = Daemon::start(&FAST);
    let now = now_ms();
    // 40 series x 500 points with a 2 s ttl: doubles that do not compress, so their
    // chunks take room on disk.
    let mut body = Vec::new();
    for s in 0..40 {
        let points: Vec<_> = (0..500)
            .map(|i| {
                json!([
                    now - 500_000 + i * 1000,
                    ((s * 7919 + i * 104_729) % 1_000_003) as f64 / 7.3
                ])
            })
            .collect();
        body.push(json!({"name": "short", "tags": {"s": s.to_string()}, "datapoints": points, "ttl": 2}));
    }
    body.push(json!({"name": "keep", "tags": {"h": "a"}, "datapoints": [[now - 1000, 1], [now, 2]]}));
    let written = Instant::now();
    let r = d.post("/api/v1/datapoints", &serde_json::to_string(&body).unwrap());
    assert_eq!(r.status, 204, "{}", r.text());
    // Telnet's kairos_opt.ttl (seconds), not stored as a tag.
    let mut t = d.telnet();
    for i in 0..5 {
        writeln!(
            t,
            "put short.telnet {} {i} host=a kairos_opt.ttl=2",
            now - 5000 + i * 1000
        )
        .unwrap();
    }
    t.flush().unwrap();
    let visible = d.wait_for_points("short.telnet", 5);
    if written.elapsed() < Duration::from_millis(800) {
        assert_eq!(count(&d, "short"), 20_000, "visible until the ttl runs out");
        assert_eq!(visible.len(), 5);
        assert!(metric_names(&d).contains(&"short".to_string()));
    }
    assert_eq!(d.tags_of("short.telnet")["host"], json!(["a"]), "the ttl is not a tag");

    // The chunks reach the disk (idle flush), then expire.
    let mut on_disk = 0.0;
    assert!(
        eventually(|| {
            on_disk = d.metric("kairosd_points_sst_bytes");
            on_disk > 50_000.0
        }),
        "points never reached the table files ({on_disk} bytes)"
    );
    assert!(eventually(|| count(&d, "short") == 0), "expired points still answered");
    // The telnet points arrived a little later, so they expire a little later.
    assert!(
        eventually(|| count(&d, "short.telnet") == 0),
        "expired telnet points still answered"
    );
    assert_eq!(count(&d, "keep"), 2, "points without a ttl stay");
    let tags = d.post(
        "/api/v1/datapoints/query/tags",
        &json!({"start_absolute": 0, "metrics": [{"name": "short"}]}).to_string(),
    );
    assert_eq!(
        tags.json()["queries"][0]["results"][0]["tags"],
        json!({}),
        "query/tags lists no expired series"
    );
    let names = metric_names(&d);
    assert!(
        !names.contains(&"short".to_string()) && !names.contains(&"short.telnet".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"keep".to_string()));
    // The periodic compaction drops the expired chunks: the table files shrink.
    let mut after = 0.0;
    assert!(
        eventually(|| {
            after = d.metric("kairosd_points_sst_bytes");
            after < on_disk / 4.0
        }),
        "table files did not shrink: {on_disk} -> {after} bytes"
    );
    eprintln!("points table files: {on_disk} bytes with the points, {after} once they expired");

    let (dir, tmp) = d.stop();
    let d = Daemon::start_in(&dir, &FAST);
    assert_eq!(count(&d, "short"), 0, "nothing comes back after a restart");
    assert_eq!(count(&d, "keep"), 2);
    assert!(!metric_names(&d).contains(&"short".to_string()));
    assert!(d.metric("kairosd_points_sst_bytes") < on_disk / 4.0);
    drop(d);
    drop(tmp);
}

#[test]
fn a_rewrite_carries_its_own_ttl_last_write_wins() {
    let d = Daemon::start(&FAST);
    let now = now_ms();
    let write = |ttl: Option<u32>, v: i64| {
        let mut m = json!({"name": "lww", "tags": {"h": "a"}, "datapoints": [[now, v], [now + 1, v]]});
        if let Some(t) = ttl {
            m["ttl"] = json!(t);
        }
        assert_eq!(d.post("/api/v1/datapoints", &json!([m]).to_string()).status, 204);
    };
    write(None, 1);
    // Promoted first, so the rewrite lands on a stored chunk.
    std::thread::sleep(Duration::from_millis(400));
    write(Some(1), 2);
    assert!(
        eventually(|| count(&d, "lww") == 0),
        "a point rewritten with a ttl must expire"
    );
    write(None, 3);
    assert_eq!(
        d.wait_for_points("lww", 2).len(),
        2,
        "written again without a ttl, it lives"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(count(&d, "lww"), 2);
}

#[test]
fn kairosdb_ttl_keys_default_force_and_align() {
    // A default ttl of 1 s, forced over the client's.
    let d = Daemon::start(&[
        ("kairosd.writer.promote_interval_ms", "100"),
        ("kairosdb.datastore.cassandra.datapoint_ttl", "1"),
        ("kairosdb.datastore.cassandra.force_default_datapoint_ttl", "true"),
    ]);
    let now = now_ms();
    let body = json!([{"name": "forced", "tags": {"h": "a"}, "datapoints": [[now, 1]], "ttl": 100000}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    assert!(
        eventually(|| count(&d, "forced") == 0),
        "the forced default ttl applies"
    );
    drop(d);

    // Aligned with the timestamp: a point older than the ttl is dead on arrival.
    let d = Daemon::start(&[
        ("kairosdb.datastore.cassandra.datapoint_ttl", "3600"),
        (
            "kairosdb.datastore.cassandra.align_datapoint_ttl_with_timestamp",
            "true",
        ),
    ]);
    let now = now_ms();
    let body =
        json!([{"name": "aligned", "tags": {"h": "a"}, "datapoints": [[now - 7_200_000, 1], [now - 60_000, 2]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let v = d.wait_for_points("aligned", 1);
    assert_eq!(v, vec![json!([now - 60_000, 2])]);
    assert_eq!(d.metric("kairosd_points_expired_on_arrival_total"), 1.0);
    drop(d);

    // KairosDB refuses alignment without a default ttl.
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .args(["serve", "--set"])
        .arg(format!("kairosd.data_dir={}", tmp.path().join("d").display()))
        .args([
            "--set",
            "kairosdb.datastore.cassandra.align_datapoint_ttl_with_timestamp=true",
        ])
        .args([
            "--set",
            "kairosdb.jetty.port=0",
            "--set",
            "kairosdb.telnetserver.port=0",
        ])
        .args(["--set", "kairosdb.service.carbon=<disabled>"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("datapoint_ttl"), "{err}");
}

fn cli(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .arg("retention")
        .args(args)
        .args(["--url", &format!("http://{}", d.http)])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn retention_policies_longest_prefix_wins_over_http_and_the_cli() {
    let d = Daemon::start(&FAST);
    let now = now_ms();
    // One point every hour for ten days, half an hour off the hour so no point sits on
    // a policy's boundary.
    let points: Vec<_> = (0..240).map(|h| json!([now - 1_800_000 - h * 3_600_000, h])).collect();
    let body: Vec<_> = ["ret.a", "ret.b.keep", "other"]
        .iter()
        .map(|m| json!({"name": m, "tags": {"h": "x"}, "datapoints": points}))
        .collect();
    assert_eq!(d.post("/api/v1/datapoints", &json!(body).to_string()).status, 204);
    assert_eq!(count(&d, "ret.a"), 240);

    let r = put(&d, "PUT", "/api/v1/retention", r#"{"prefix":"ret.","retention":"2d"}"#);
    assert_eq!(r.status, 204, "{}", r.text());
    let (code, out, err) = cli(&d, &["set", "ret.b", "0"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "ret.b\t0\n");

    assert_eq!(count(&d, "ret.a"), 48, "two days of hourly points");
    assert_eq!(count(&d, "ret.b.keep"), 240, "a longer prefix with 0 keeps everything");
    assert_eq!(count(&d, "other"), 240);
    // Aggregates see the same points.
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "ret.a", "aggregators": [{"name": "count", "sampling": {"value": 100, "unit": "years"}}]}]}));
    assert_eq!(r["queries"][0]["results"][0]["values"][0][1], json!(48));

    let listed = d.get("/api/v1/retention").json();
    assert_eq!(
        listed,
        json!({"results": [
            {"prefix": "ret.", "retention": "2d", "retention_ms": 172_800_000},
            {"prefix": "ret.b", "retention": "0", "retention_ms": 0}
        ]})
    );
    let (code, out, _) = cli(&d, &["list"]);
    assert_eq!((code, out.as_str()), (0, "ret.\t2d\nret.b\t0\n"));

    // Bad input: clear errors, nothing changed.
    let r = put(
        &d,
        "PUT",
        "/api/v1/retention",
        r#"{"prefix":"ret.","retention":"two days"}"#,
    );
    assert_eq!(r.status, 400);
    assert!(
        r.errors()[0].contains("two days") && r.errors()[0].contains("7d"),
        "{:?}",
        r.errors()
    );
    assert_eq!(put(&d, "PUT", "/api/v1/retention", r#"{"retention":"1d"}"#).status, 400);
    assert_eq!(put(&d, "PUT", "/api/v1/retention", "[").status, 400);
    assert_eq!(put(&d, "DELETE", "/api/v1/retention", "").status, 400);
    let r = put(&d, "DELETE", "/api/v1/retention?prefix=nope", "");
    assert_eq!(r.status, 404);
    assert!(r.errors()[0].contains("nope"));
    let (code, _, err) = cli(&d, &["set", "x", "7 days"]);
    assert_eq!(code, 2);
    assert!(err.contains("7 days"), "{err}");
    let (code, _, err) = cli(&d, &["remove", "nope"]);
    assert_eq!(code, 1);
    assert!(err.contains("no retention policy"), "{err}");
    assert_eq!(count(&d, "ret.a"), 48);

    // Policies survive a restart.
    let (dir, tmp) = d.stop();
    let d = Daemon::start_in(&dir, &FAST);
    assert_eq!(count(&d, "ret.a"), 48);
    assert_eq!(count(&d, "ret.b.keep"), 240);

    // A metric whose points have all passed its retention leaves metricnames.
    let (code, _, err) = cli(&d, &["set", "ret.a", "10m"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&d, "ret.a"), 0);
    let names = metric_names(&d);
    assert!(!names.contains(&"ret.a".to_string()), "{names:?}");
    assert!(names.contains(&"ret.b.keep".to_string()) && names.contains(&"other".to_string()));

    // Removing the shorter exemption brings the 2-day limit back to ret.b.
    let (code, _, err) = cli(&d, &["remove", "ret.b"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&d, "ret.b.keep"), 48);
    assert_eq!(put(&d, "DELETE", "/api/v1/retention?prefix=ret.a", "").status, 204);
    drop(d);
    drop(tmp);
}
