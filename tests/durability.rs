//! Persistence across a clean restart and across kill -9.

mod common;

use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

#[test]
fn points_series_and_names_survive_a_restart() {
    let d = Daemon::start(&[]);
    let body = json!([
        {"name": "keep.a", "tags": {"host": "h1"}, "datapoints": [[1000, 1], [2000, 2.5]]},
        {"name": "keep.b", "tags": {"host": "h2", "dc": "x"}, "datapoints": [[3000, 3]]}
    ]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let mut s = d.telnet();
    std::io::Write::write_all(&mut s, b"put keep.t 1700000000 7 host=h3\n").unwrap();
    assert_eq!(d.wait_for_points("keep.t", 1).len(), 1);
    drop(s);
    let (dir, tmp) = d.stop();
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(
        d.get("/api/v1/metricnames?prefix=keep").json(),
        json!({"results": ["keep.a", "keep.b", "keep.t"]})
    );
    assert_eq!(
        d.values("keep.a", json!({})),
        vec![json!([1000, 1]), json!([2000, 2.5])]
    );
    let q = d.query(json!({"start_absolute": 0, "metrics": [{"name": "keep.b", "tags": {"dc": "x"}}]}));
    assert_eq!(
        q["queries"][0]["results"][0]["tags"],
        json!({"dc": ["x"], "host": ["h2"]})
    );
    assert_eq!(d.values("keep.t", json!({})), vec![json!([1_700_000_000_000i64, 7])]);
    // Writing to a known series after the restart reuses its id.
    assert_eq!(
        d.post(
            "/api/v1/datapoints",
            r#"{"name":"keep.a","tags":{"host":"h1"},"timestamp":4000,"value":4}"#
        )
        .status,
        204
    );
    assert_eq!(d.values("keep.a", json!({})).len(), 3);
    assert_eq!(d.metric("kairosd_series_created_total"), 0.0);
    drop(tmp);
}

#[test]
fn every_acknowledged_write_survives_kill_9() {
    let d = Daemon::start(&[]);
    let mut acked = 0usize;
    let started = Instant::now();
    // A stream of acknowledged writes right up to the kill.
    while started.elapsed() < Duration::from_millis(1500) {
        let pts: Vec<_> = (0..50).map(|j| json!([acked * 50 + j, j])).collect();
        let body = json!([{"name": "crash", "tags": {"h": "a"}, "datapoints": pts}]);
        let r = d.post("/api/v1/datapoints", &body.to_string());
        assert_eq!(r.status, 204, "{}", r.text());
        acked += 1;
    }
    let (dir, tmp) = d.kill9();
    let d = Daemon::start_in(&dir, &[]);
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "crash"}]}));
    assert_eq!(
        r["queries"][0]["sample_size"].as_u64().unwrap() as usize,
        acked * 50,
        "acknowledged points lost"
    );
    drop(tmp);
}

#[test]
fn a_store_from_an_incompatible_version_is_refused() {
    let d = Daemon::start(&[]);
    let (dir, tmp) = d.stop();
    // Rewrite the schema version through RocksDB itself.
    {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(false);
        let cfs = rocksdb::DB::list_cf(&opts, &dir).unwrap();
        let db = rocksdb::DB::open_cf(&opts, &dir, cfs).unwrap_or_else(|e| panic!("{e}"));
        db.put_cf(db.cf_handle("meta").unwrap(), b"schema_version", 99u32.to_be_bytes())
            .unwrap();
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .args(["serve", "--set"])
        .arg(format!("kairosd.data_dir={}", dir.display()))
        .args([
            "--set",
            "kairosdb.telnetserver.port=0",
            "--set",
            "kairosdb.jetty.port=0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("schema version 99"), "{err}");
    drop(tmp);
}

#[test]
fn a_bad_config_value_refuses_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("kairos.properties");
    std::fs::write(&conf, "kairosdb.telnetserver.port=99999\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kairosd"))
        .args(["serve", "--config"])
        .arg(&conf)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kairosdb.telnetserver.port") && err.contains("99999"),
        "{err}"
    );
}

#[test]
fn sigterm_commits_everything_already_received() {
    // Points would sit in the writer for a minute: only the shutdown path commits them.
    let d = Daemon::start(&[("kairosd.writer.linger_ms", "60000")]);
    let mut s = d.telnet();
    let mut lines = String::new();
    for i in 0..5000 {
        lines.push_str(&format!("put drain {} {i} h=a\n", 1_700_000_000 + i));
    }
    std::io::Write::write_all(&mut s, lines.as_bytes()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.metric("kairosd_points_accepted_total{protocol=\"telnet\"}") < 5000.0 {
        assert!(Instant::now() < deadline, "lines never read");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        d.metric("kairosd_points_written_total"),
        0.0,
        "flush interval did not hold the points back"
    );
    let (dir, tmp) = d.stop();
    drop(s);
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(d.values("drain", json!({})).len(), 5000);
    drop(tmp);
}

#[test]
fn kill_9_with_points_only_in_the_staging_log_loses_nothing() {
    // Nothing is promoted to chunks before the kill: recovery must do it.
    let staged_only = [
        ("kairosd.writer.promote_interval_ms", "600000"),
        ("kairosd.writer.promote_points", "100000000"),
    ];
    let d = Daemon::start(&staged_only);
    for i in 0..20 {
        let pts: Vec<_> = (0..100).map(|j| json!([i * 100 + j, j])).collect();
        let body = json!([
            {"name": "staged", "tags": {"h": "a"}, "datapoints": pts},
            {"name": "staged", "tags": {"h": "b"}, "datapoints": [[i, 1]]}
        ]);
        assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    }
    // An overwrite inside the staging log: the later value wins.
    assert_eq!(
        d.post(
            "/api/v1/datapoints",
            r#"{"name":"staged","tags":{"h":"b"},"timestamp":3,"value":33}"#
        )
        .status,
        204
    );
    let q = json!({"start_absolute": 0, "metrics": [{"name": "staged", "tags": {"h": "b"}}]});
    assert_eq!(
        d.query(q.clone())["queries"][0]["results"][0]["values"][3],
        json!([3, 33])
    );
    let (dir, tmp) = d.kill9();
    let d = Daemon::start_in(&dir, &staged_only);
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "staged"}]}));
    assert_eq!(r["queries"][0]["sample_size"], 2020);
    assert_eq!(d.query(q)["queries"][0]["results"][0]["values"][3], json!([3, 33]));
    // Later writes over promoted points still win.
    assert_eq!(
        d.post(
            "/api/v1/datapoints",
            r#"{"name":"staged","tags":{"h":"b"},"timestamp":3,"value":44}"#
        )
        .status,
        204
    );
    let r =
        d.query(json!({"start_absolute": 3, "end_absolute": 3, "metrics": [{"name": "staged", "tags": {"h": "b"}}]}));
    assert_eq!(r["queries"][0]["results"][0]["values"], json!([[3, 44]]));
    drop(tmp);
}
