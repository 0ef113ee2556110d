//! The telnet listener over real sockets: KairosDB's line rules, bad lines, limits,
//! concurrency, and the real `nc` client.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Daemon;
use serde_json::json;

#[test]
fn put_lines_are_stored_with_kairosdb_rules() {
    let d = Daemon::start(&[]);
    let mut s = d.telnet();
    s.write_all(
        b"put t.sec 1700000000 1 host=a\n\
          put t.sec 1700000001000 2.5 host=a\r\n\
          putm t.sec 5 7 host=a\n\
          put t.notags 1700000000 3\n\
          put  t.sec   1700000002  4   host=a   \r\n",
    )
    .unwrap();
    let v = d.wait_for_points("t.sec", 4);
    assert_eq!(
        v,
        vec![
            json!([5, 7]),
            json!([1_700_000_000_000i64, 1]),
            json!([1_700_000_001_000i64, 2.5]),
            json!([1_700_000_002_000i64, 4])
        ]
    );
    // A put without tags gets KairosDB's `add=tag`.
    d.wait_for_points("t.notags", 1);
    let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "t.notags"}]}));
    assert_eq!(r["queries"][0]["results"][0]["tags"], json!({"add": ["tag"]}));
}

#[test]
fn bad_and_over_long_lines_cost_one_line_and_keep_the_connection() {
    let d = Daemon::start(&[("kairosdb.telnetserver.max_command_size", "100")]);
    let mut s = d.telnet();
    let long = format!("put t.bad 1700000000 1 host={}\n", "x".repeat(200));
    let mut input = String::new();
    input.push_str("put t.bad 1700000000 1 host=a\n");
    input.push_str("put t.bad 1700000001 notanumber host=a\n");
    input.push_str("bogus command\n");
    input.push_str("put t.bad 1700000002 1 host=a host=b\n");
    input.push_str("put t.bad 1700000003 1.0e400 host=a\n");
    input.push_str(&long);
    input.push_str("put t.bad 1700000004 2 fum=\n");
    input.push_str("put t.bad 1700000005 5 host=a\n");
    s.write_all(input.as_bytes()).unwrap();
    let v = d.wait_for_points("t.bad", 2);
    assert_eq!(
        v,
        vec![json!([1_700_000_000_000i64, 1]), json!([1_700_000_005_000i64, 5])]
    );
    // The connection is still open and still ingesting.
    s.write_all(b"put t.bad 1700000006 6 host=a\n").unwrap();
    assert_eq!(d.wait_for_points("t.bad", 3).len(), 3);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"telnet\"}"), 6.0);
    assert_eq!(d.metric("kairosd_telnet_lines_too_long_total"), 1.0);
}

#[test]
fn version_command_answers_one_line() {
    let d = Daemon::start(&[]);
    let mut s = d.telnet();
    s.write_all(b"version\n").unwrap();
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).unwrap();
    assert!(line.starts_with("KairosDB "), "{line:?}");
    assert!(line.ends_with('\n'));
}

#[test]
fn unterminated_last_line_is_dropped_like_kairosdb() {
    let d = Daemon::start(&[]);
    let mut s = d.telnet();
    s.write_all(b"put t.eof 1700000000 1 h=a\nput t.eof 1700000001 2 h=a")
        .unwrap();
    drop(s);
    let v = d.wait_for_points("t.eof", 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(v, vec![json!([1_700_000_000_000i64, 1])]);
    assert_eq!(d.values("t.eof", json!({})).len(), 1);
}

#[test]
fn slow_client_with_half_a_line_blocks_nobody() {
    let d = Daemon::start(&[]);
    let mut slow = d.telnet();
    slow.write_all(b"put t.slow 1700000000 1 h=").unwrap();
    let mut fast = d.telnet();
    fast.write_all(b"put t.fast 1700000000 1 h=a\n").unwrap();
    assert_eq!(d.wait_for_points("t.fast", 1).len(), 1);
    slow.write_all(b"b\n").unwrap();
    assert_eq!(d.wait_for_points("t.slow", 1).len(), 1);
}

#[test]
fn thousands_of_concurrent_connections() {
    // Thousands of sockets must not depend on the shell's `ulimit -n`.
    kairosd::listener::raise_fd_limit();
    let d = Daemon::start(&[]);
    let n = 3000;
    let conns: Vec<TcpStream> = (0..n)
        .map(|i| {
            let mut s = d.telnet();
            s.write_all(format!("put t.many 1700000000 {i} conn=c{i}\n").as_bytes())
                .unwrap();
            s
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "t.many"}]}));
        let got = r["queries"][0]["sample_size"].as_u64().unwrap();
        if got == n as u64 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "only {got} of {n} points arrived");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(d.metric("kairosd_telnet_connections"), n as f64);
    drop(conns);
}

#[test]
fn nc_client_pushes_put_lines() {
    let d = Daemon::start(&[]);
    let mut nc = Command::new("nc")
        .args(["-N", "127.0.0.1", &d.telnet.port().to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("nc (netcat-openbsd) must be installed: the README's test command installs it");
    let mut lines = String::new();
    for i in 0..100 {
        lines.push_str(&format!("put t.nc {} {i} host=nc\r\n", 1_700_000_000 + i));
    }
    nc.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
    assert!(nc.wait().unwrap().success());
    let v = d.wait_for_points("t.nc", 100);
    assert_eq!(v.len(), 100);
    assert_eq!(v[99], json!([1_700_000_099_000i64, 99]));
}

#[test]
fn timestamps_at_the_ends_of_the_i64_range_are_stored_and_found() {
    // Promote every commit at once, so the points are read back from their chunks.
    let d = Daemon::start(&[("kairosd.writer.promote_points", "1")]);
    let mut s = d.telnet();
    s.write_all(
        b"putm t.edge -9223372036854775808 1 host=a\n\
          putm t.edge -9223372036854775807 2 host=a\n\
          putm t.edge 9223372036854775807 3 host=a\n\
          put t.edge -5 4 host=a\n",
    )
    .unwrap();
    let all = json!({"start_absolute": i64::MIN, "end_absolute": i64::MAX, "metrics": [{"name": "t.edge"}]});
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let values = loop {
        let r = d.query(all.clone());
        let v = r["queries"][0]["results"][0]["values"].clone();
        if v.as_array().is_some_and(|a| a.len() >= 4) || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        values,
        json!([[i64::MIN, 1], [i64::MIN + 1, 2], [-5000, 4], [i64::MAX, 3]])
    );
    // A range that starts inside the lowest bucket finds only what is in range.
    let r = d.query(json!({"start_absolute": i64::MIN + 1, "end_absolute": 0, "metrics": [{"name": "t.edge"}]}));
    assert_eq!(
        r["queries"][0]["results"][0]["values"],
        json!([[i64::MIN + 1, 2], [-5000, 4]])
    );
}
