//! File imports end to end (spec `import.md` §8, cases 1–23): a real kairosd on
//! loopback, the real `kairosd` CLI, curl for multipart uploads.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{http, Daemon, HttpResponse};
use serde_json::{json, Value};

const W: &str = r#"{"name":"w","format":"csv","csv":{"delimiter":",","header":"auto"},"columns":null,
 "timestamp":{"column":"time","format":"auto","timezone":"UTC"},
 "metric":{"prefix":"w.","value_columns":["temp","hum"]},
 "tags":{"columns":["station"],"static":{}},"merge":"append","retention":"0",
 "on_error":"quarantine","enabled":true}"#;

const ROW1: &str = "time,station,temp,hum\n1700000000,s1,20.5,40\n";

fn daemon_with_w() -> Daemon {
    let d = Daemon::start(&[("kairosd.import.url.allow_private", "true")]);
    add_source(&d, W);
    d
}

fn add_source(d: &Daemon, json: &str) {
    let r = d.post("/api/v1/sources", json);
    assert_eq!(r.status, 201, "{}", r.text());
}

fn import(d: &Daemon, query: &str, body: &[u8]) -> HttpResponse {
    http(
        d.http,
        "POST",
        &format!("/api/v1/import?{query}"),
        &[("Content-Type", "application/octet-stream")],
        body,
    )
}

fn url(d: &Daemon) -> String {
    format!("http://{}", d.http)
}

fn kairosd(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kairosd"));
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
    let mut child = c.spawn().expect("run kairosd");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ingest(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let u = url(d);
    let mut all = vec!["ingest"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--url", &u]);
    kairosd(&all, stdin)
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn file(dir: &tempfile::TempDir, name: &str, content: &[u8]) -> String {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_owned()
}

fn values(d: &Daemon, metric: &str, tags: Value) -> Vec<(i64, Value)> {
    d.values(metric, json!({ "tags": tags }))
        .iter()
        .map(|v| (v[0].as_i64().unwrap(), v[1].clone()))
        .collect()
}

fn quarantine(d: &Daemon, query: &str) -> Vec<Value> {
    let r = d.get(&format!("/api/v1/quarantine?{query}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["results"].as_array().unwrap().clone()
}

fn names(d: &Daemon) -> Vec<String> {
    d.get("/api/v1/metricnames").json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn case01_csv_row_gives_one_point_per_value_column() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let f = file(&tmp, "data.csv", ROW1.as_bytes());
    let o = ingest(&d, &["w", &f], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s1"]})),
        [(1700000000000, json!(20.5))]
    );
    let hum = values(&d, "w.hum", json!({"station": ["s1"]}));
    assert_eq!(hum, [(1700000000000, json!(40))]);
    assert!(hum[0].1.is_i64(), "40 is stored as a long");
}

#[test]
fn case02_ndjson_multipart_and_unnamed_gzip_give_the_same_points() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let nd = file(
        &tmp,
        "rows.ndjson",
        br#"{"time":1700000000,"station":"s1","temp":20.5,"hum":40}"#,
    );
    // curl's multipart upload, the part named after the format.
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "-F", &format!("ndjson=@{nd}")])
        .arg(format!("{}/api/v1/import?source=w", url(&d)))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.ends_with("\n200"), "{text}");
    let body: Value = serde_json::from_str(text.rsplit_once('\n').unwrap().0).unwrap();
    assert_eq!(
        (body["format"].as_str(), body["points_written"].as_u64()),
        (Some("ndjson"), Some(2))
    );
    assert_eq!(values(&d, "w.temp", json!({})), [(1700000000000, json!(20.5))]);

    // Gzip on stdin, no name to tell the format or the compression.
    let d2 = daemon_with_w();
    let o = ingest(&d2, &["w", "-"], Some(&common::gzip(ROW1.as_bytes())));
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(values(&d2, "w.temp", json!({})), [(1700000000000, json!(20.5))]);
    assert_eq!(values(&d2, "w.hum", json!({})), [(1700000000000, json!(40))]);
}

#[test]
fn case03_headerless_csv_without_columns_is_a_mapping_error() {
    let d = daemon_with_w();
    let r = import(&d, "source=w", b"1700000000,s1,20.5,40\n");
    assert_eq!(r.status, 400, "{}", r.text());
    let tmp = tempfile::tempdir().unwrap();
    let f = file(&tmp, "nohead.csv", b"1700000000,s1,20.5,40\n");
    let o = ingest(&d, &["w", &f], None);
    assert_eq!(code(&o), 2, "{}", stderr(&o));
    assert!(names(&d).iter().all(|n| !n.starts_with("w.")));
}

#[test]
fn case04_rfc3339_with_offset_and_date_only() {
    let d = daemon_with_w();
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n2024-01-01T00:00:00+02:00,s1,1,\n2024-01-01,s2,2,\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(values(&d, "w.temp", json!({"station": ["s1"]}))[0].0, 1704060000000);
    assert_eq!(values(&d, "w.temp", json!({"station": ["s2"]}))[0].0, 1704067200000);
}

#[test]
fn case05_unit_mismatch_is_quarantined_and_nanoseconds_floor_to_ms() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let f = file(
        &tmp,
        "mixed.csv",
        b"time,station,temp,hum\n1700000000000,s1,1,2\n1700000001,s1,3,4\n",
    );
    let o = ingest(&d, &["w", &f, "--json"], None);
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let body: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(body["errors"][0]["kind"], "unit_mismatch", "{body}");
    assert_eq!(body["errors"][0]["line"], 3);
    let r = import(&d, "source=w", b"time,station,temp,hum\n1700000000123456789,s9,5,\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(values(&d, "w.temp", json!({"station": ["s9"]}))[0].0, 1700000000123);
}

#[test]
fn case06_a_bad_cell_quarantines_the_whole_row_naming_line_and_column() {
    let d = daemon_with_w();
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n1700000000,s1,abc,40\n1700000001,s1,21,41\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!((b["rows"].as_u64(), b["quarantine_rows"].as_u64()), (Some(2), Some(1)));
    let e = &b["errors"][0];
    assert_eq!(
        (e["line"].as_u64(), e["column_index"].as_u64()),
        (Some(2), Some(3)),
        "{b}"
    );
    assert_eq!(
        (e["column"].as_str(), e["kind"].as_str()),
        (Some("temp"), Some("bad_value"))
    );
    // The row's good cell (hum=40) is not stored either.
    assert_eq!(values(&d, "w.hum", json!({})), [(1700000001000, json!(41))]);
    let q = quarantine(&d, "source=w&kind=bad_value");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["raw"], "1700000000,s1,abc,40\n");
}

#[test]
fn case07_empty_cell_gives_no_point_and_nan_is_non_finite() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let f = file(&tmp, "empty.csv", b"time,station,temp,hum\n1700000000,s1,,40\n");
    let o = ingest(&d, &["w", &f], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(values(&d, "w.temp", json!({})).is_empty());
    assert_eq!(values(&d, "w.hum", json!({})).len(), 1);
    let r = import(&d, "source=w", b"time,station,temp,hum\n1700000001,s1,NaN,40\n");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["kind"], "non_finite");
}

#[test]
fn case08_an_unclosed_quote_is_an_invalid_line_kept_raw() {
    let d = daemon_with_w();
    let body = b"time,station,temp,hum\n1700000000,s1,1,2\n1700000001,\"s1,3,4\n";
    let r = import(&d, "source=w", body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["invalid_lines"], 1);
    let q = quarantine(&d, "source=w&kind=malformed");
    assert_eq!(q[0]["raw"], "1700000001,\"s1,3,4\n");
}

#[test]
fn case09_a_header_without_a_mapped_column_fails_before_any_row() {
    let d = daemon_with_w();
    let r = import(&d, "source=w", b"time,station,temperature,hum\n1700000000,s1,1,2\n");
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("temp"), "{}", r.text());
    assert!(names(&d).iter().all(|n| !n.starts_with("w.")));
}

#[test]
fn case10_nothing_usable_or_abort_is_422_and_commits_nothing() {
    let d = daemon_with_w();
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n1700000000,s1,x,y\n1700000001,s1,z,w\n",
    );
    assert_eq!(r.status, 422, "{}", r.text());
    let mut big = String::from("time,station,temp,hum\n");
    for i in 0..1000 {
        let v = if i == 500 { "bad".to_owned() } else { i.to_string() };
        big.push_str(&format!("{},s1,{v},1\n", 1700000000 + i));
    }
    let r = import(&d, "source=w&on_error=abort", big.as_bytes());
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["status"], "error");
    assert!(values(&d, "w.temp", json!({})).is_empty());
    assert!(names(&d).iter().all(|n| !n.starts_with("w.")), "{:?}", names(&d));
}

#[test]
fn case11_raw_quarantine_is_header_plus_bad_lines_and_reimports_cleanly() {
    let d = daemon_with_w();
    let body = "time,station,temp,hum\n1700000000,s1,1,2\n1700000001,s1,abc,4\n1700000002,s1,5,6\n";
    let r = import(&d, "source=w", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    let raw = d.get("/api/v1/quarantine?source=w&format=raw");
    assert_eq!(raw.text(), "time,station,temp,hum\n1700000001,s1,abc,4\n");
    let tmp = tempfile::tempdir().unwrap();
    let fixed = raw.text().replace("abc", "3");
    let f = file(&tmp, "fixed.csv", fixed.as_bytes());
    let o = ingest(&d, &["w", &f], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(values(&d, "w.temp", json!({})).len(), 3);
    let del = http(d.http, "DELETE", "/api/v1/quarantine?source=w", &[], b"");
    assert_eq!(del.status, 204);
    assert!(quarantine(&d, "source=w").is_empty());
}

#[test]
fn case12_row_counts_are_queryable_as_points() {
    let d = daemon_with_w();
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n1700000000,s1,abc,40\n1700000001,s1,21,41\n",
    );
    assert_eq!(r.status, 200);
    let bad = d.wait_for_points("kairosd.import.rows", 1);
    assert!(!bad.is_empty());
    let v = values(
        &d,
        "kairosd.import.rows",
        json!({"kind": ["bad_value"], "source": ["w"]}),
    );
    assert_eq!(v.iter().map(|p| p.1.as_i64().unwrap()).sum::<i64>(), 1);
    let v = values(&d, "kairosd.import.rows", json!({"kind": ["accepted"]}));
    assert_eq!(v.iter().map(|p| p.1.as_i64().unwrap()).sum::<i64>(), 1);
}

#[test]
fn case13_appending_the_same_file_twice_changes_nothing() {
    let d = daemon_with_w();
    let body = "time,station,temp,hum\n1700000000,s1,1,2\n1700000001,s2,3,4\n";
    for _ in 0..2 {
        assert_eq!(import(&d, "source=w", body.as_bytes()).status, 200);
    }
    assert_eq!(
        values(&d, "w.temp", json!({})),
        [(1700000000000, json!(1)), (1700000001000, json!(3))]
    );
}

#[test]
fn case14_ledger_keeps_the_first_write() {
    let d = Daemon::start(&[]);
    add_source(&d, &W.replace("\"merge\":\"append\"", "\"merge\":\"ledger\""));
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"w.temp","tags":{"station":"s1"},"datapoints":[[1700000000000,10]]}]"#,
    );
    assert_eq!(r.status, 204);
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n1700000000,s1,11,\n1700000000,s1,10,\n1700000005,s2,7,\n1700000005,s2,8,\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(b["points_conflicting"], 2, "{b}");
    assert_eq!(b["points_skipped_duplicate"], 1, "{b}");
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s1"]})),
        [(1700000000000, json!(10))]
    );
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s2"]})),
        [(1700000005000, json!(7))]
    );
    assert!(b["errors"].as_array().unwrap().iter().any(|e| e["kind"] == "conflict"));
}

#[test]
fn case15_replace_swaps_the_range_and_quarantines_rows_outside() {
    let d = daemon_with_w();
    // 2024-01-01T00:00 = 1704067200; old points at 00:10, 00:50 and 02:00.
    let old = "time,station,temp,hum\n1704067800,s1,1,\n1704070200,s1,2,\n1704074400,s1,3,\n";
    assert_eq!(import(&d, "source=w", old.as_bytes()).status, 200);
    let new = "time,station,temp,hum\n1704067200,s1,10,\n1704069000,s1,11,\n1704070800,s1,12,\n1704078000,s1,13,\n";
    let r = import(
        &d,
        "source=w&mode=replace&replace_start=2024-01-01T00:00:00Z&replace_end=2024-01-01T01:00:00Z",
        new.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    assert_eq!(
        (b["points_replaced"].as_u64(), b["quarantine_rows"].as_u64()),
        (Some(2), Some(1)),
        "{b}"
    );
    assert_eq!(b["errors"][0]["kind"], "outside_replace_range");
    let message = b["errors"][0]["message"].as_str().unwrap();
    assert_eq!(message.matches("line ").count(), 1, "the location once: {message}");
    let got: Vec<i64> = values(&d, "w.temp", json!({}))
        .iter()
        .map(|p| p.1.as_i64().unwrap())
        .collect();
    assert_eq!(got, [10, 11, 12, 3]);
}

#[test]
fn case16_replace_by_tag_keeps_other_series_and_needs_a_range() {
    let d = daemon_with_w();
    let old = "time,station,temp,hum\n1704067800,s1,1,\n1704067800,s2,2,\n";
    assert_eq!(import(&d, "source=w", old.as_bytes()).status, 200);
    let r = import(
        &d,
        "source=w&mode=replace&replace_start=1704067200000&replace_end=1704070800000&replace_tag=station:s1",
        b"time,station,temp,hum\n1704069000,s1,9,\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s1"]})),
        [(1704069000000, json!(9))]
    );
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s2"]})),
        [(1704067800000, json!(2))]
    );
    let r = import(
        &d,
        "source=w&mode=replace",
        b"time,station,temp,hum\n1704069000,s1,9,\n",
    );
    assert_eq!(r.status, 400, "{}", r.text());
}

/// Sends a chunked request in two pieces; `between` runs after the first.
fn two_part_request(
    addr: std::net::SocketAddr,
    path: &str,
    first: &[u8],
    second: &[u8],
    between: impl FnOnce(),
) -> HttpResponse {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    write!(s, "{:x}\r\n", first.len()).unwrap();
    s.write_all(first).unwrap();
    s.write_all(b"\r\n").unwrap();
    s.flush().unwrap();
    between();
    write!(s, "{:x}\r\n", second.len()).unwrap();
    s.write_all(second).unwrap();
    s.write_all(b"\r\n0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    common::parse_response(&raw)
}

fn wait_job(d: &Daemon, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let jobs = d.get("/api/v1/import/jobs").json();
        if let Some(j) = jobs["results"].as_array().unwrap().iter().find(|j| pred(j)) {
            return j.clone();
        }
        assert!(Instant::now() < deadline, "no such job: {jobs}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_running_import_shows_its_progress() {
    let d = daemon_with_w();
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /api/v1/import?source=w HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let chunk = |s: &mut TcpStream, body: &[u8]| {
        write!(s, "{:x}\r\n", body.len()).unwrap();
        s.write_all(body).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
    };
    chunk(&mut s, b"time,station,temp,hum\n1700000000,s1,1,2\n");
    wait_job(&d, |j| j["status"] == "working");
    // Progress is written at most once a second, when more of the body arrives.
    std::thread::sleep(Duration::from_millis(1100));
    chunk(&mut s, b"1700000001,s1,3,4\n1700000002,s1,5,6\n");
    let job = wait_job(&d, |j| {
        j["status"] == "working" && j["progress"]["rows"].as_u64() >= Some(3)
    });
    assert!(job["progress"]["bytes_read"].as_u64() > Some(0), "{job}");
    assert_eq!(job["progress"]["points"], 6, "{job}");
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let r = common::parse_response(&raw);
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["import_id"].as_str().unwrap().to_owned();
    let done = d.get(&format!("/api/v1/import/jobs/{id}")).json();
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["progress"]["rows"], 3, "{done}");
}

#[test]
fn case17_a_live_write_during_a_replace_is_kept() {
    let d = daemon_with_w();
    assert_eq!(
        import(&d, "source=w", b"time,station,temp,hum\n1704067800,s1,1,\n").status,
        200
    );
    let r = two_part_request(
        d.http,
        "/api/v1/import?source=w&mode=replace&replace_start=1704067200000&replace_end=1704070800000",
        b"time,station,temp,hum\n1704069000,s1,9,\n",
        b"1704069100,s1,8,\n",
        || {
            wait_job(&d, |j| j["status"] == "working" && j["mode"] == "replace");
            let mut t = d.telnet();
            t.write_all(b"put w.temp 1704069500000 77 station=s1\n").unwrap();
            drop(t);
            let deadline = Instant::now() + Duration::from_secs(20);
            while !values(&d, "w.temp", json!({})).iter().any(|p| p.1 == json!(77)) {
                assert!(Instant::now() < deadline, "the telnet point never arrived");
                std::thread::sleep(Duration::from_millis(20));
            }
        },
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let got: Vec<i64> = values(&d, "w.temp", json!({}))
        .iter()
        .map(|p| p.1.as_i64().unwrap())
        .collect();
    assert_eq!(got, [9, 8, 77], "the old point goes, the file's and the live one stay");
}

#[test]
fn case18_kill9_mid_import_leaves_nothing_and_async_jobs_finish() {
    let d = daemon_with_w();
    let mut s = TcpStream::connect(d.http).unwrap();
    let first = b"time,station,temp,hum\n1700000000,s1,1,2\n1700000001,newstation,3,4\n";
    write!(
        s,
        "POST /api/v1/import?source=w HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        first.len()
    )
    .unwrap();
    s.write_all(first).unwrap();
    s.write_all(b"\r\n").unwrap();
    s.flush().unwrap();
    wait_job(&d, |j| j["status"] == "working");
    let (dir, tmp) = d.kill9();
    let d = Daemon::start_in(&dir, &[]);
    let _keep = tmp;
    let job = wait_job(&d, |_| true);
    assert_eq!(job["status"], "error", "{job}");
    assert!(values(&d, "w.temp", json!({})).is_empty());
    assert!(names(&d).iter().all(|n| !n.starts_with("w.")), "{:?}", names(&d));

    let r = import(&d, "source=w&async=true", ROW1.as_bytes());
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["import_id"].as_str().unwrap().to_owned();
    let job = wait_job(&d, |j| j["id"] == id.as_str() && j["status"] == "done");
    let sync = import(&d, "source=w", ROW1.as_bytes()).json();
    let result = &job["result"];
    for k in [
        "rows",
        "rows_accepted",
        "points",
        "points_written",
        "quarantine_rows",
        "invalid_lines",
        "status",
    ] {
        assert_eq!(result[k], sync[k], "{k}: {result} vs {sync}");
    }
    assert_eq!(d.get(&format!("/api/v1/import/jobs/{id}")).json()["status"], "done");
}

#[test]
fn case19_usage_errors_and_disabled_sources_exit_2_and_summaries_are_plain() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let a = file(&tmp, "a.csv", ROW1.as_bytes());
    let b = file(&tmp, "b.csv", b"time,station,temp,hum\n1700000009,s1,1,2\n");
    assert_eq!(code(&ingest(&d, &["w", &a, "--stdin"], None)), 2);
    let o = ingest(&d, &["w", &a, &b], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "one line per file plus total, no progress: {err:?}");
    assert!(
        lines[0].starts_with("w: ") && lines[0].contains("1 rows, 2 points"),
        "{err}"
    );
    assert!(lines[2].starts_with("total: 2 files, 2 rows, 4 points"), "{err}");
    assert!(!err.contains('\r'), "a progress bar was drawn: {err:?}");
    let r = http(d.http, "POST", "/api/v1/sources/w/disable", &[], b"");
    assert_eq!(r.status, 204);
    assert_eq!(d.get("/api/v1/sources/w").json()["enabled"], false);
    assert_eq!(import(&d, "source=w", ROW1.as_bytes()).status, 409);
    assert_eq!(code(&ingest(&d, &["w", &a], None)), 2);
    assert_eq!(import(&d, "source=nope", ROW1.as_bytes()).status, 404);
}

#[test]
fn case20_tail_prints_the_newest_points_oldest_first() {
    let d = daemon_with_w();
    let body = "time,station,temp,hum\n1700000000,s1,1,\n1700000001,s2,2,\n1700000002,s1,3,\n";
    assert_eq!(import(&d, "source=w", body.as_bytes()).status, 200);
    let u = url(&d);
    let o = kairosd(&["tail", "w.temp", "-n", "2", "-o", "csv", "--url", &u], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "time,value,station\n2023-11-14T22:13:21.000Z,2,s2\n2023-11-14T22:13:22.000Z,3,s1\n"
    );
    let o = kairosd(&["tail", "w.temp", "-n", "2", "--url", &u], None);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("2023-11-14T22:13:22.000Z") && !table.contains("22:13:20"),
        "{table}"
    );
    let o = kairosd(&["tail", "w.temp", "-n", "1", "-o", "ndjson", "--url", &u], None);
    let line: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        line,
        json!({"time": "2023-11-14T22:13:22.000Z", "value": 3, "tags": {"station": "s1"}})
    );
    assert_eq!(code(&kairosd(&["tail", "no.such", "--url", &u], None)), 1);
}

#[test]
fn case21_points_beyond_the_retention_are_quarantined() {
    let d = Daemon::start(&[]);
    add_source(&d, &W.replace("\"retention\":\"0\"", "\"retention\":\"1d\""));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let body = format!("time,station,temp,hum\n{},s1,1,\n{},s1,2,\n", now - 2 * 86400, now - 60);
    let r = import(&d, "source=w", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["kind"], "beyond_retention");
    let message = r.json()["errors"][0]["message"].as_str().unwrap().to_owned();
    assert!(
        message.starts_with("line 2: timestamp ") && message.matches("line 2").count() == 1,
        "the location once, in front: {message}"
    );
    assert_eq!(values(&d, "w.temp", json!({})).len(), 1);
}

#[test]
fn a_sources_retention_expires_what_it_imported() {
    let d = Daemon::start(&[]);
    add_source(&d, &W.replace("\"retention\":\"0\"", "\"retention\":\"3s\""));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // One point a second old (hidden about 2 s from now), one written by telnet to the
    // same metric, which the source's retention does not cover.
    let body = format!("time,station,temp,hum\n{},s1,1,\n", now - 1000);
    let r = import(&d, "source=w", body.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["points_written"], 1, "{}", r.text());
    d.telnet()
        .write_all(format!("putm w.temp {} 7 station=s1\n", now - 1000 + 1).as_bytes())
        .unwrap();
    assert_eq!(d.wait_for_points("w.temp", 2).len(), 2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let left = loop {
        let v = values(&d, "w.temp", json!({}));
        if v.len() < 2 || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        left,
        [(now - 1000 + 1, json!(7))],
        "the imported point expired, the telnet one stays"
    );
}

#[test]
fn a_full_quarantine_fails_the_import_instead_of_dropping_rows() {
    let d = Daemon::start(&[("kairosd.import.quarantine_max_bytes", "4000")]);
    add_source(&d, W);
    let mut body = String::from("time,station,temp,hum\n1700000000,s1,1,2\n");
    for i in 0..30 {
        body.push_str(&format!("1700000{i:03},s1,not-a-number,\n"));
    }
    let r = import(&d, "source=w", body.as_bytes());
    assert_eq!(r.status, 409, "{}", r.text());
    let text = r.text();
    assert!(
        text.contains("kairosd.import.quarantine_max_bytes (4000 bytes"),
        "{text}"
    );
    assert!(text.contains("DELETE /api/v1/quarantine?source=w"), "{text}");
    assert!(
        values(&d, "w.temp", json!({})).is_empty(),
        "nothing of a failed import is committed"
    );
    // Once the quarantine is emptied, the file imports.
    let del = http(d.http, "DELETE", "/api/v1/quarantine?source=w", &[], b"");
    assert_eq!(del.status, 204);
    let r = import(
        &d,
        "source=w",
        b"time,station,temp,hum\n1700000000,s1,1,2\n1700000001,s1,x,\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(quarantine(&d, "source=w").len(), 1);
}

#[test]
fn quarantined_rows_expire_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start_in(dir.path(), &[("kairosd.import.quarantine_retention", "2s")]);
    add_source(&d, W);
    let r = import(&d, "source=w", b"time,station,temp,hum\n1700000000,s1,x,\n");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(quarantine(&d, "source=w").len(), 1);
    // Hidden once 2 s have passed since the import...
    let deadline = Instant::now() + Duration::from_secs(20);
    while !quarantine(&d, "source=w").is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(quarantine(&d, "source=w").is_empty());
    // ...and deleted by the sweep a start runs: kept forever from now on, still gone.
    d.stop();
    let d = Daemon::start_in(dir.path(), &[("kairosd.import.quarantine_retention", "2s")]);
    d.stop();
    let d = Daemon::start_in(dir.path(), &[("kairosd.import.quarantine_retention", "0")]);
    assert!(quarantine(&d, "source=w").is_empty());
    // A new bad row is kept.
    let r = import(&d, "source=w", b"time,station,temp,hum\n1700000000,s1,x,\n");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(quarantine(&d, "source=w").len(), 1);
}

#[test]
fn case22_victoriametrics_column_descriptors() {
    let d = Daemon::start(&[]);
    let r = import(
        &d,
        "columns=1:label:ticker,2:metric:ask,3:time:unix_ms",
        b"MSFT,3.21,1613408940000\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        values(&d, "ask", json!({"ticker": ["MSFT"]})),
        [(1613408940000, json!(3.21))]
    );
    let r = http(
        d.http,
        "POST",
        "/api/v1/import/csv?format=1:label:ticker,2:metric:bid,3:time:unix_ms",
        &[],
        b"MSFT,3.1,1613408940000\n",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["points_written"], 1);
    assert_eq!(values(&d, "bid", json!({})), [(1613408940000, json!(3.1))]);
}

#[test]
fn case23_analyze_detects_the_columns_and_its_source_posts() {
    let d = Daemon::start(&[]);
    let r = http(
        d.http,
        "POST",
        "/api/v1/import/analyze?file=w.csv",
        &[],
        ROW1.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let a = r.json();
    let detected: Vec<(String, String)> = a["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["detected"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        detected,
        [
            ("time", "timestamp"),
            ("station", "tag"),
            ("temp", "value"),
            ("hum", "value")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    let r = d.post("/api/v1/sources", &a["source"].to_string());
    assert_eq!(r.status, 201, "{}", r.text());
    let name = r.json()["name"].as_str().unwrap().to_owned();
    let r = import(&d, &format!("source={name}"), ROW1.as_bytes());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["points_written"], 2);
}

/// Serves one file over HTTP on loopback, for imports from a URL.
fn serve_once(body: Vec<u8>) -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming().take(4) {
            let Ok(mut s) = s else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let req = String::from_utf8_lossy(&buf);
            if req.starts_with("GET /missing") {
                let _ = s.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
                continue;
            }
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
            let _ = s.write_all(&body);
        }
    });
    addr
}

#[test]
fn import_from_a_url_runs_as_a_job_and_private_hosts_are_refused_by_default() {
    let d = daemon_with_w();
    let addr = serve_once(ROW1.as_bytes().to_vec());
    let r = import(&d, &format!("source=w&url=http://{addr}/data.csv"), b"");
    assert_eq!(r.status, 202, "{}", r.text());
    let id = r.json()["import_id"].as_str().unwrap().to_owned();
    let job = wait_job(&d, |j| {
        j["id"] == id.as_str() && j["status"] != "waiting" && j["status"] != "working"
    });
    assert_eq!(job["status"], "done", "{job}");
    assert_eq!(job["progress"]["bytes_total"], ROW1.len());
    assert_eq!(values(&d, "w.temp", json!({})).len(), 1);
    let r = import(&d, &format!("source=w&url=http://{addr}/missing"), b"");
    let id = r.json()["import_id"].as_str().unwrap().to_owned();
    let job = wait_job(&d, |j| j["id"] == id.as_str() && j["status"] == "error");
    assert!(job["error"].as_str().unwrap().contains("HTTP 404"), "{job}");

    let strict = Daemon::start(&[]);
    add_source(&strict, W);
    let r = import(&strict, &format!("source=w&url=http://{addr}/data.csv"), b"");
    let id = r.json()["import_id"].as_str().unwrap().to_owned();
    let job = wait_job(&strict, |j| j["id"] == id.as_str() && j["status"] == "error");
    assert!(
        job["error"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1 is a loopback address")
            || job["error"].as_str().unwrap().contains("loopback"),
        "{job}"
    );
}

#[test]
fn offline_ingest_with_data_dir_and_a_held_lock_names_url() {
    let d = daemon_with_w();
    let tmp = tempfile::tempdir().unwrap();
    let a = file(&tmp, "a.csv", ROW1.as_bytes());
    let dir = d.data_dir.to_str().unwrap().to_owned();
    let o = kairosd(&["ingest", "w", &a, "--data-dir", &dir], None);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("--url"), "{}", stderr(&o));
    let (dir, _tmp) = d.stop();
    let dir_s = dir.to_str().unwrap().to_owned();
    let o = kairosd(&["ingest", "w", &a, "--data-dir", &dir_s], None);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let o = kairosd(&["sources", "list", "--json", "--data-dir", &dir_s], None);
    let list: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(list["results"][0]["name"], "w");
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(values(&d, "w.temp", json!({})), [(1700000000000, json!(20.5))]);
}

#[test]
fn sources_crud_over_http_and_the_cli() {
    let d = Daemon::start(&[]);
    let u = url(&d);
    let o = kairosd(
        &[
            "sources",
            "add",
            "m",
            "--timestamp",
            "ts",
            "--tag",
            "host",
            "--value",
            "cpu",
            "--prefix",
            "sys.",
            "--url",
            &u,
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = d.get("/api/v1/sources/m").json();
    assert_eq!(
        (s["version"].as_u64(), s["metric"]["prefix"].as_str()),
        (Some(1), Some("sys."))
    );
    assert_eq!(
        d.post("/api/v1/sources", &s.to_string()).status,
        409,
        "a second POST of a name"
    );
    let bad = d.post("/api/v1/sources", r#"{"name":"x","metric":{}}"#);
    assert_eq!(bad.status, 400, "{}", bad.text());
    let r = http(d.http, "PUT", "/api/v1/sources/m", &[], s.to_string().as_bytes());
    assert_eq!((r.status, r.json()["version"].as_u64()), (200, Some(2)));
    let o = kairosd(&["sources", "show", "m", "--url", &u], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"sys.\""));
    let o = kairosd(&["sources", "list", "--url", &u], None);
    assert!(String::from_utf8_lossy(&o.stdout).contains("sys.cpu"));
    assert_eq!(code(&kairosd(&["sources", "remove", "m", "--url", &u], None)), 0);
    assert_eq!(d.get("/api/v1/sources/m").status, 404);
    assert_eq!(code(&kairosd(&["sources", "show", "m", "--url", &u], None)), 2);
}

#[test]
fn parquet_files_import_by_name_and_by_magic_bytes() {
    let d = daemon_with_w();
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/protocols/tests/fixtures/weather_ms_snappy.parquet"
    );
    let o = ingest(&d, &["w", fixture, "--json"], None);
    // Row 3 has no station: quarantined (no_tags), the rest committed.
    assert_eq!(code(&o), 3, "{}", stderr(&o));
    let body: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (body["format"].as_str(), body["points_written"].as_u64()),
        (Some("parquet"), Some(3)),
        "{body}"
    );
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s1"]})),
        [(1700000000000, json!(20.5))]
    );
    assert_eq!(
        values(&d, "w.hum", json!({"station": ["s2"]})),
        [(1700000060000, json!(41))]
    );
    let q = quarantine(&d, "source=w&kind=no_tags");
    assert_eq!(q[0]["location"]["row"], 3);

    let d = daemon_with_w();
    let r = import(&d, "source=w", &std::fs::read(fixture).unwrap());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["points_written"], 3);
}

/// `event_time=now` stamps rows whose timestamp cell is empty or absent with the time
/// the daemon read the request (StreamSQL stamps events on arrival), and rows with a
/// timestamp keep theirs.
#[test]
fn event_time_now_stamps_rows_without_a_timestamp_on_arrival() {
    let d = daemon_with_w();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let body = b"{\"station\":\"s1\",\"temp\":1}\n{\"time\":\"\",\"station\":\"s2\",\"temp\":2}\n\
                 {\"time\":1700000000,\"station\":\"s3\",\"temp\":3}\n";
    let r = import(&d, "source=w&format=ndjson&event_time=now", body);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["points_written"], 3, "{}", r.text());
    let after = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    for station in ["s1", "s2"] {
        let v = values(&d, "w.temp", json!({ "station": [station] }));
        assert_eq!(v.len(), 1, "{station}: {v:?}");
        assert!(
            (before..=after).contains(&v[0].0),
            "{station}: {} not in {before}..={after}",
            v[0].0
        );
    }
    assert_eq!(
        values(&d, "w.temp", json!({"station": ["s3"]})),
        [(1700000000000, json!(3))]
    );
    // Without it a row lacking its timestamp is quarantined, and a bad value names `now`.
    let r = import(&d, "source=w&format=ndjson", b"{\"station\":\"s4\",\"temp\":4}\n");
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json()["errors"][0]["kind"], "missing_timestamp", "{}", r.text());
    let r = import(&d, "source=w&format=ndjson&event_time=later", body);
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.json()["errors"][0].as_str().unwrap().contains("now"), "{}", r.text());
}
