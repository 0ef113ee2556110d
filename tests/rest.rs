//! The HTTP API over real sockets: ingest, partial success, gzip, limits, queries,
//! metadata, errors; and curl as a real client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{gzip, http, Daemon};
use serde_json::json;

#[test]
fn ingest_array_and_object_then_query_back() {
    let d = Daemon::start(&[]);
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"r.a","tags":{"host":"h1"},"datapoints":[[1000,1],[2000,2.5]]},
            {"name":"r.a","tags":{"host":"h2"},"timestamp":1500,"value":"7"}]"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let r = d.post(
        "/api/v1/datapoints",
        r#"{"name":"r.b","tags":{"x":"y"},"time":5,"value":55.0}"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // 204 means committed: the points are visible at once, no polling.
    let q = d.query(json!({"start_absolute": 0, "end_absolute": 10000, "metrics": [{"name": "r.a"}, {"name": "r.b"}]}));
    let a = &q["queries"][0];
    assert_eq!(a["sample_size"], 3);
    assert_eq!(a["results"][0]["name"], "r.a");
    assert_eq!(a["results"][0]["tags"], json!({"host": ["h1", "h2"]}));
    assert_eq!(a["results"][0]["values"], json!([[1000, 1], [1500, 7], [2000, 2.5]]));
    assert_eq!(a["results"][0]["group_by"], json!([{"name": "type", "type": "number"}]));
    // Doubles print without a trailing .0, as KairosDB does.
    let raw = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": 0, "metrics": [{"name": "r.b"}]}).to_string(),
    );
    assert!(raw.text().contains("[[5,55]]"), "{}", raw.text());
}

#[test]
fn partial_success_keeps_valid_metrics_and_lists_every_error() {
    let d = Daemon::start(&[]);
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"p.ok","tags":{"h":"a"},"datapoints":[[1,1],[2,"x"],[3,3]]},
            {"name":"p.bad","datapoints":[[1,1]]},
            {"name":"","tags":{"h":"a"},"datapoints":[[1,1]]},
            {"name":"p.ok2","tags":{"h":"a"},"timestamp":9,"value":9}]"#,
    );
    assert_eq!(r.status, 400);
    let errors = r.errors();
    assert!(
        errors.contains(&"metric[1](name=p.bad).tags count must be greater than or equal to 1.".to_string()),
        "{errors:?}"
    );
    assert!(
        errors.contains(&"metric[2].name may not be empty.".to_string()),
        "{errors:?}"
    );
    assert!(errors.len() >= 3, "{errors:?}");
    assert_eq!(d.values("p.ok", json!({})), vec![json!([1, 1]), json!([3, 3])]);
    assert_eq!(d.values("p.ok2", json!({})), vec![json!([9, 9])]);
    assert!(d.values("p.bad", json!({})).is_empty());
    // A syntax error part-way keeps the metric objects before it.
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"p.early","tags":{"h":"a"},"datapoints":[[1,1]]}, {"name": oops"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(d.values("p.early", json!({})), vec![json!([1, 1])]);
}

#[test]
fn bad_bodies_get_clear_400s_never_5xx() {
    let d = Daemon::start(&[]);
    for (body, want) in [
        ("", "Invalid json. No content due to end of input."),
        ("42", "Invalid start of json."),
        (
            "[{\"name\":\"m\",\"tags\":{\"h\":\"a\"},\"timestamp\":1,\"value\":\"NaN\"}]",
            "",
        ),
        (
            "{\"name\":\"m\",\"tags\":{\"h\":\"a\"},\"timestamp\":1}",
            "metric[0](name=m).value may not be null.",
        ),
        ("\u{0}\u{1}garbage", ""),
    ] {
        let r = d.post("/api/v1/datapoints", body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.text());
        let errors = r.errors();
        assert!(!errors.is_empty());
        if !want.is_empty() {
            assert_eq!(errors[0], want, "{body:?}");
        }
    }
    let r = http(
        d.http,
        "POST",
        "/api/v1/datapoints",
        &[("Content-Encoding", "gzip")],
        b"not gzip at all",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.errors()[0].contains("gunzip"), "{:?}", r.errors());
}

#[test]
fn gzip_bodies_and_the_decompressed_body_limit() {
    let d = Daemon::start(&[("kairosd.http.max_body_bytes", "100000")]);
    let body = r#"[{"name":"g.z","tags":{"h":"a"},"datapoints":[[1,1],[2,2]]}]"#;
    let r = http(
        d.http,
        "POST",
        "/api/v1/datapoints",
        &[("Content-Encoding", "gzip")],
        &gzip(body.as_bytes()),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(d.values("g.z", json!({})).len(), 2);
    // 150 kB of JSON that gzips to ~1 kB: the limit counts what it inflates to.
    let mut big = String::from("[");
    for i in 0..3000 {
        big.push_str(&format!(
            "{{\"name\":\"g.big\",\"tags\":{{\"h\":\"a\"}},\"timestamp\":{i},\"value\":1}},"
        ));
    }
    big.pop();
    big.push(']');
    assert!(big.len() > 100_000);
    let r = http(
        d.http,
        "POST",
        "/api/v1/datapoints",
        &[("Content-Encoding", "gzip")],
        &gzip(big.as_bytes()),
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let r = d.post("/api/v1/datapoints", &big);
    assert_eq!(r.status, 413, "{}", r.text());
    assert!(d.values("g.big", json!({})).is_empty());
}

#[test]
fn query_filters_order_limit_and_relative_times() {
    let d = Daemon::start(&[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut body = Vec::new();
    for (host, dc) in [("a", "eu"), ("b", "eu"), ("c", "us")] {
        body.push(json!({"name": "q.m", "tags": {"host": host, "dc": dc}, "datapoints": [[now - 3000, 1], [now - 2000, 2], [now - 1000, 3]]}));
    }
    assert_eq!(d.post("/api/v1/datapoints", &json!(body).to_string()).status, 204);
    let sample = |m: serde_json::Value, start: serde_json::Value| {
        let mut q = json!({"metrics": [m]});
        q.as_object_mut().unwrap().extend(start.as_object().unwrap().clone());
        d.query(q)["queries"][0].clone()
    };
    let abs = json!({"start_absolute": 0});
    // AND across tag names, OR within one name's values.
    let r = sample(
        json!({"name": "q.m", "tags": {"dc": "eu", "host": ["a", "c"]}}),
        abs.clone(),
    );
    assert_eq!(r["sample_size"], 3);
    assert_eq!(r["results"][0]["tags"], json!({"dc": ["eu"], "host": ["a"]}));
    let r = sample(json!({"name": "q.m", "tags": {"host": "regex:^[ab]$"}}), abs.clone());
    assert_eq!(r["sample_size"], 6);
    let r = sample(json!({"name": "q.m", "tags": {"host": "zzz"}}), abs.clone());
    assert_eq!(r["sample_size"], 0);
    assert_eq!(r["results"][0]["values"], json!([]));
    // Equal timestamps from different series are all kept; desc + limit.
    let r = sample(json!({"name": "q.m", "order": "desc", "limit": 4}), abs.clone());
    let ts: Vec<i64> = r["results"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v[0].as_i64().unwrap())
        .collect();
    assert_eq!(ts, vec![now - 1000, now - 1000, now - 1000, now - 2000]);
    // Relative start: the last 1.5 s holds only the newest point of each series.
    let r = sample(
        json!({"name": "q.m"}),
        json!({"start_relative": {"value": 1500, "unit": "milliseconds"}}),
    );
    assert_eq!(r["sample_size"], 3);
    let r = sample(json!({"name": "q.m", "exclude_tags": true}), abs.clone());
    assert!(r["results"][0].get("tags").is_none());
    // Inclusive ends.
    let q = d.query(json!({"start_absolute": now - 2000, "end_absolute": now - 2000, "metrics": [{"name": "q.m"}]}));
    assert_eq!(q["queries"][0]["sample_size"], 3);
    // GET with ?query= works too.
    let enc: String = json!({"start_absolute": 0, "metrics": [{"name": "q.m"}]})
        .to_string()
        .bytes()
        .map(|b| format!("%{b:02X}"))
        .collect();
    let r = d.get(&format!("/api/v1/datapoints/query?query={enc}"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["queries"][0]["sample_size"], 9);
    assert_eq!(
        d.query(json!({"start_absolute": 0, "metrics": []})),
        json!({"queries": []})
    );
}

#[test]
fn query_errors_are_400_with_kairosdb_texts() {
    let d = Daemon::start(&[]);
    for (q, want) in [
        (
            json!({"metrics": [{"name": "m"}]}),
            "query.metric[0].start_time relative or absolute time must be set",
        ),
        (
            json!({"start_absolute": 5, "end_absolute": 1, "metrics": [{"name": "m"}]}),
            "query.metric[0].end_time must be greater than the start time",
        ),
        (
            json!({"start_absolute": 5, "metrics": [{"name": ""}]}),
            "query.metric[0].name may not be empty",
        ),
        (
            json!({"start_absolute": 5}),
            "query.metric[] must have a size of at least 1",
        ),
    ] {
        let r = d.post("/api/v1/datapoints/query", &q.to_string());
        assert_eq!(r.status, 400);
        assert_eq!(r.errors(), vec![want.to_string()]);
    }
    let r = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": 5, "metrics": [{"name": "m", "aggregators": [{"name": "bogus"}]}]}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.errors(),
        vec!["query.metric[0].aggregators[0].bogus invalid aggregators name".to_string()]
    );
    let r = d.post("/api/v1/datapoints/query", "{not json");
    assert_eq!(r.status, 400);
}

#[test]
fn query_point_limit_is_a_400_not_an_out_of_memory() {
    let d = Daemon::start(&[("kairosd.query.max_points", "10")]);
    let pts: Vec<_> = (0..20).map(|i| json!([i, i])).collect();
    let body = json!([{"name": "big", "tags": {"h": "a"}, "datapoints": pts}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let r = d.post(
        "/api/v1/datapoints/query",
        &json!({"start_absolute": 0, "metrics": [{"name": "big"}]}).to_string(),
    );
    assert_eq!(r.status, 400);
    assert!(r.errors()[0].contains("kairosd.query.max_points"), "{:?}", r.errors());
}

#[test]
fn same_timestamp_keeps_the_last_write_whatever_its_type() {
    let d = Daemon::start(&[]);
    for v in ["5", "5.5", "6"] {
        let body = format!(r#"{{"name":"lww","tags":{{"h":"a"}},"timestamp":1000,"value":{v}}}"#);
        assert_eq!(d.post("/api/v1/datapoints", &body).status, 204);
    }
    let body = r#"{"name":"lww","tags":{"h":"a"},"datapoints":[[2000,1],[2000,2.25]]}"#;
    assert_eq!(d.post("/api/v1/datapoints", body).status, 204);
    assert_eq!(d.values("lww", json!({})), vec![json!([1000, 6]), json!([2000, 2.25])]);
}

#[test]
fn metadata_health_version_and_metrics() {
    let d = Daemon::start(&[]);
    for name in ["sys.cpu", "sys.mem", "app.req"] {
        let body = format!(r#"{{"name":"{name}","tags":{{"h":"a"}},"timestamp":1,"value":1}}"#);
        assert_eq!(d.post("/api/v1/datapoints", &body).status, 204);
    }
    assert_eq!(
        d.get("/api/v1/metricnames").json(),
        json!({"results": ["app.req", "sys.cpu", "sys.mem"]})
    );
    assert_eq!(
        d.get("/api/v1/metricnames?prefix=sys").json(),
        json!({"results": ["sys.cpu", "sys.mem"]})
    );
    assert_eq!(d.get("/api/v1/health/check").status, 204);
    assert_eq!(
        d.get("/api/v1/health/status").json(),
        json!(["Datastore-Query: OK", "Datastore-Write: OK"])
    );
    let v = d.get("/api/v1/version").json();
    assert!(v["version"].as_str().unwrap().starts_with("KairosDB "));
    assert_eq!(d.metric("kairosd_points_accepted_total{protocol=\"rest\"}"), 3.0);
    assert_eq!(d.metric("kairosd_points_written_total"), 3.0);
    assert!(d.metric("kairosd_flush_duration_seconds_count") >= 1.0);
    let r = d.get("/api/v1/nope");
    assert_eq!(r.status, 404);
    assert!(!r.errors().is_empty());
    let r = d.get("/api/v1/datapoints");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST"));
    let r = http(
        d.http,
        "OPTIONS",
        "/api/v1/datapoints",
        &[("Access-Control-Request-Method", "POST")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Access-Control-Allow_Method"), Some("POST"));
}

#[test]
fn gzip_responses_when_asked() {
    let d = Daemon::start(&[]);
    let pts: Vec<_> = (0..500).map(|i| json!([i, i])).collect();
    let body = json!([{"name": "gzr", "tags": {"h": "a"}, "datapoints": pts}]);
    assert_eq!(d.post("/api/v1/datapoints", &body.to_string()).status, 204);
    let q = json!({"start_absolute": 0, "metrics": [{"name": "gzr"}]}).to_string();
    let r = http(
        d.http,
        "POST",
        "/api/v1/datapoints/query",
        &[("Accept-Encoding", "gzip")],
        q.as_bytes(),
    );
    assert_eq!(r.header("Content-Encoding"), Some("gzip"));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut text)
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["queries"][0]["sample_size"], 500);
}

#[test]
fn half_sent_header_is_closed_by_the_header_timeout() {
    let d = Daemon::start(&[("kairosd.http.header_read_timeout_ms", "300")]);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /api/v1/datapoints HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(started.elapsed() < Duration::from_secs(5), "connection was held open");
}

#[test]
fn idle_keep_alive_connection_is_closed() {
    let d = Daemon::start(&[("kairosdb.jetty.socket_idle_timeout", "300")]);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /api/v1/health/check HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 204"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle connection was held open"
    );
}

#[test]
fn curl_posts_gzip_and_queries() {
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("body.json.gz");
    std::fs::write(
        &file,
        gzip(br#"[{"name":"curl.m","tags":{"h":"a"},"datapoints":[[1,10],[2,20]]}]"#),
    )
    .unwrap();
    let url = format!("http://{}/api/v1/datapoints", d.http);
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "Content-Encoding: gzip",
            "-H",
            "Content-Type: application/json",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(&url)
        .output()
        .expect("curl must be installed: the README's test command installs it");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "204");
    let out = Command::new("curl")
        .args(["-sS", "--compressed", "-H", "Content-Type: application/json", "-d"])
        .arg(json!({"start_absolute": 0, "metrics": [{"name": "curl.m"}]}).to_string())
        .arg(format!("http://{}/api/v1/datapoints/query", d.http))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["queries"][0]["results"][0]["values"], json!([[1, 10], [2, 20]]));
}

#[test]
fn a_writer_that_stays_behind_gets_503_not_a_hung_request() {
    // A commit interval far beyond the ack timeout: the writer "stays behind".
    let d = Daemon::start(&[
        ("kairosd.writer.linger_ms", "3000"),
        ("kairosd.writer.ack_timeout_ms", "200"),
    ]);
    let started = Instant::now();
    let r = d.post(
        "/api/v1/datapoints",
        r#"{"name":"slow","tags":{"h":"a"},"timestamp":1,"value":1}"#,
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.errors()[0].contains("did not commit"), "{:?}", r.errors());
    assert!(started.elapsed() < Duration::from_secs(2));
    // The point was accepted into the queue and is committed later, not lost.
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.values("slow", json!({})).is_empty() {
        assert!(Instant::now() < deadline, "queued point never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn connection_cap_makes_extra_clients_wait_not_fail() {
    let d = Daemon::start(&[("kairosd.http.max_connections", "2")]);
    let hold: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = TcpStream::connect(d.http).unwrap();
            s.write_all(b"GET /api/v1/health/check HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = [0u8; 64];
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let n = s.read(&mut buf).unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 204"));
            s
        })
        .collect();
    // A third connection is accepted by the kernel but not served while two are open.
    let mut third = TcpStream::connect(d.http).unwrap();
    third
        .write_all(b"GET /api/v1/health/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    third.set_read_timeout(Some(Duration::from_millis(500))).unwrap();
    let mut buf = [0u8; 64];
    assert!(third.read(&mut buf).is_err(), "served past the connection cap");
    drop(hold);
    third.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let n = third.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 204"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
}

/// Python's `json.dumps` as clients use it (", " and ": " separators, non-ASCII as
/// `\u` escapes) posted with `urllib`: one body the hand-written scanner reads (escapes
/// only in values), one it hands to serde_json (an escaped tag name), and a bad one.
/// Each must store and answer exactly as the general reader would.
#[test]
fn python_json_clients_through_both_readers() {
    let d = Daemon::start(&[]);
    let script = r#"
import json, sys, urllib.request, urllib.error
port = int(sys.argv[1])
def post(doc):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/api/v1/datapoints",
                                 data=json.dumps(doc).encode(), headers={"Content-Type": "application/json"})
    try:
        return urllib.request.urlopen(req, timeout=10).status, ""
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())["errors"]
print(post([{"name": "py.scan", "tags": {"city": "Zürich", "path": "/var/log"}, "datapoints": [[1000, 1.5], [2000, 2]]},
            {"name": "py.scan", "tags": {"city": "Zürich", "path": "/var/log"}, "timestamp": 3000, "value": "7", "ttl": 60}]))
print(post({"name": "py.fallback", "tags": {"städt": "x"}, "datapoints": [[1000, 1e3]]}))
print(post([{"name": "py.ok", "tags": {"h": "a"}, "datapoints": [[1, 1]]},
            {"name": "py.bad", "tags": {"h": "a"}, "datapoints": [[2, "x"]]}]))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(d.http.port().to_string())
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines[0], "(204, '')");
    assert_eq!(lines[1], "(204, '')");
    assert_eq!(
        lines[2],
        "(400, [\"metric[1](name=py.bad).datapoints[0].value 'x' is not a number; kairosd does not store string data points.\"])"
    );
    let q = d.query(json!({"start_absolute": 0, "metrics": [{"name": "py.scan"}]}));
    let r = &q["queries"][0]["results"][0];
    assert_eq!(r["tags"], json!({"city": ["Zürich"], "path": ["/var/log"]}));
    assert_eq!(r["values"], json!([[1000, 1.5], [2000, 2], [3000, 7]]));
    let q = d.query(json!({"start_absolute": 0, "metrics": [{"name": "py.fallback"}]}));
    assert_eq!(q["queries"][0]["results"][0]["tags"], json!({"städt": ["x"]}));
    assert_eq!(q["queries"][0]["results"][0]["values"], json!([[1000, 1000]]));
    assert_eq!(d.values("py.ok", json!({})), vec![json!([1, 1])]);
    assert!(d.values("py.bad", json!({})).is_empty());
}

/// One response off a keep-alive connection: the head, then Content-Length bytes.
fn read_one_response(s: &mut TcpStream) -> common::HttpResponse {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "connection closed mid-head");
        raw.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let len = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    raw.extend_from_slice(&body);
    common::parse_response(&raw)
}

#[test]
fn one_connection_posting_its_series_again_stores_exactly_what_it_sent() {
    // The connection's REST series cache must never stand in for validation or for the
    // series a body names: a repeat, a new series, a bad tag and reordered tags, all
    // on one keep-alive connection.
    let d = Daemon::start(&[]);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let bodies = [
        (
            r#"[{"name":"kc","tags":{"h":"a","dc":"x"},"datapoints":[[1000,1]]}]"#,
            204,
        ),
        (
            r#"[{"name":"kc","tags":{"h":"a","dc":"x"},"datapoints":[[2000,2]]},{"name":"kc","tags":{"h":"b","dc":"x"},"datapoints":[[2000,20]]}]"#,
            204,
        ),
        (
            r#"[{"name":"kc","tags":{"h":"a","dc":""},"datapoints":[[3000,3]]}]"#,
            400,
        ),
        (
            r#"[{"name":"kc","tags":{"dc":"x","h":"a"},"datapoints":[[4000,4.5]]}]"#,
            204,
        ),
        (
            r#"[{"name":"kc","tags":{"h":"a","dc":"x"},"datapoints":[[5000,5]]}]"#,
            204,
        ),
    ];
    for (body, status) in bodies {
        let req = format!(
            "POST /api/v1/datapoints HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        let r = read_one_response(&mut s);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        if status == 400 {
            assert!(r.errors()[0].contains("value may not be empty"), "{:?}", r.errors());
        }
    }
    let res = d.query(json!({
        "start_absolute": 1, "end_absolute": 10_000,
        "metrics": [{"name": "kc", "group_by": [{"name": "tag", "tags": ["h"]}]}]
    }));
    let results = res["queries"][0]["results"].as_array().unwrap();
    let by_host: std::collections::BTreeMap<String, Vec<(i64, f64)>> = results
        .iter()
        .map(|r| {
            (
                r["tags"]["h"][0].as_str().unwrap().to_owned(),
                common::pairs(r["values"].as_array().unwrap()),
            )
        })
        .collect();
    assert_eq!(by_host["a"], vec![(1000, 1.0), (2000, 2.0), (4000, 4.5), (5000, 5.0)]);
    assert_eq!(by_host["b"], vec![(2000, 20.0)]);
}
