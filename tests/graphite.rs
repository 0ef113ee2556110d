//! The Graphite plaintext listener over real sockets: carbon's line rules over TCP and
//! UDP with `nc`, the path parsers, limits, bad config, and real clients (graphyte from
//! PyPI, collectd's write_graphite and write_tsdb).

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{client_available, have_python_module, pairs, python, Daemon};
use serde_json::json;

fn now_s() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Pipes `input` into `nc` with `args` (the port last).
fn nc(args: &[&str], input: &[u8]) {
    let mut child = Command::new("nc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("nc (netcat-openbsd) must be installed: the README's test command installs it");
    child.stdin.take().unwrap().write_all(input).unwrap();
    assert!(child.wait().unwrap().success(), "nc {args:?} failed");
}

#[test]
fn plaintext_over_tcp_follows_carbon_rules() {
    let d = Daemon::start(&[]);
    let port = d.carbon.unwrap().port().to_string();
    let before = now_s();
    nc(
        &["-N", "127.0.0.1", &port],
        b"g.tcp;host=a 1 1700000000\r\n\
          g.tcp;host=a\t\t2.5   1700000001\n\
          g.tcp;host=a 1e3 1700000002\n\
          g.tcp;host=a .75 1700000003.9\n\
          g.tcp;host=a nan 1700000004\n\
          g.tcp;host=a -Infinity 1700000005\n\
          g.tcp;host=a x 1700000006\n\
          g.tcp;=a 1 1700000007\n\
          g.tcp;host=a 8 1700000008 extra\n\
          g.tcp;host=a 9 1700000009\n\
          g.plain.path 5 1700000000\n\
          g.now 1 -1\n\
          g.now2 2\n",
    );
    let v = d.wait_for("g.tcp", |v| v.len() >= 5);
    assert_eq!(
        pairs(&v),
        vec![
            (1_700_000_000_000, 1.0),
            (1_700_000_001_000, 2.5),
            (1_700_000_002_000, 1000.0),
            (1_700_000_003_000, 0.75),
            (1_700_000_009_000, 9.0)
        ]
    );
    assert_eq!(v[0][1], json!(1), "a whole number is stored as a long");
    assert_eq!(d.tags_of("g.tcp"), json!({"host": ["a"]}));
    // A path without `;` is the metric, with no tags.
    assert_eq!(
        d.wait_for_points("g.plain.path", 1),
        vec![json!([1_700_000_000_000i64, 5])]
    );
    assert_eq!(d.tags_of("g.plain.path"), json!({}));
    // -1 and a missing timestamp mean now.
    let after = now_s() + 1;
    for m in ["g.now", "g.now2"] {
        let v = d.wait_for_points(m, 1);
        let ts = v[0][0].as_i64().unwrap() / 1000;
        assert!((before..=after).contains(&ts), "{m}: {ts} not in {before}..={after}");
    }
    // nan, -Infinity, a bad value, a bad tag and a fourth field: counted, skipped.
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"graphite\"}"), 5.0);
    assert_eq!(d.metric("kairosd_points_accepted_total{protocol=\"graphite\"}"), 8.0);
}

#[test]
fn a_bad_line_keeps_the_connection_and_a_long_one_costs_one_line() {
    let d = Daemon::start(&[("kairosdb.carbon.text.max_size", "64")]);
    let mut s = d.carbon();
    let long = format!("g.long.{} 1 1700000000\n", "x".repeat(100));
    s.write_all(b"g.keep 1 1700000000\nnot a number here\n").unwrap();
    s.write_all(long.as_bytes()).unwrap();
    s.write_all(b"g.keep 2 1700000001\n").unwrap();
    assert_eq!(d.wait_for_points("g.keep", 2).len(), 2);
    // Still the same connection, still ingesting.
    s.write_all(b"g.keep 3 1700000002\n").unwrap();
    assert_eq!(
        pairs(&d.wait_for_points("g.keep", 3)),
        vec![
            (1_700_000_000_000, 1.0),
            (1_700_000_001_000, 2.0),
            (1_700_000_002_000, 3.0)
        ]
    );
    assert_eq!(d.metric("kairosd_frames_too_long_total{protocol=\"graphite\"}"), 1.0);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"graphite\"}"), 2.0);
    assert!(d.values("g.long.xxxx", json!({})).is_empty());
}

#[test]
fn plaintext_over_udp_one_datagram_many_lines() {
    let d = Daemon::start(&[]);
    let udp = d.carbon_udp.expect("UDP is on by default");
    assert_eq!(udp.port(), d.carbon.unwrap().port(), "TCP and UDP share the port");
    // The last line of a datagram needs no newline.
    nc(
        &["-u", "-w1", "127.0.0.1", &udp.port().to_string()],
        b"g.udp;via=nc 1 1700000000\ng.udp;via=nc 2.5 1700000001\r\ng.udp;via=nc 3 1700000002",
    );
    assert_eq!(
        pairs(&d.wait_for_points("g.udp", 3)),
        vec![
            (1_700_000_000_000, 1.0),
            (1_700_000_001_000, 2.5),
            (1_700_000_002_000, 3.0)
        ]
    );
    // A datagram of ~60 KB: 1,500 lines in one sendto.
    python(
        "import socket, sys\n\
         lines = ''.join('g.udp.big;i=%d %d %d\\n' % (i % 7, i, 1700000000 + i) for i in range(1500))\n\
         assert 40000 < len(lines) < 65000, len(lines)\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.sendto(lines.encode(), ('127.0.0.1', int(sys.argv[1])))\n",
        &[udp.port().to_string()],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "g.udp.big", "limit": 0}]}));
        let got = r["queries"][0]["sample_size"].as_u64().unwrap();
        if got == 1500 {
            break;
        }
        assert!(Instant::now() < deadline, "{got} points of the big datagram arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let v = d.values("g.udp.big", json!({"tags": {"i": ["3"]}}));
    assert_eq!(v.len(), 214);
    assert_eq!(pairs(&v)[213], (1_700_001_494_000, 1494.0));
    assert_eq!(
        d.metric("kairosd_points_accepted_total{protocol=\"graphite_udp\"}"),
        1503.0
    );
}

#[test]
fn graphyte_from_pypi_over_tcp_and_batched_udp() {
    if !client_available(have_python_module("graphyte"), "graphyte (PyPI)") {
        return;
    }
    let d = Daemon::start(&[]);
    let port = d.carbon.unwrap().port().to_string();
    python(
        r#"
import sys, graphyte
port = int(sys.argv[1])
tcp = graphyte.Sender('127.0.0.1', port=port, prefix='gy', tags={'lib': 'graphyte'})
tcp.send('tcp', 1.5, timestamp=1700000000)
tcp.send('tcp', 42, timestamp=1700000001, tags={'extra': 'x'})
# One background send of up to 1,000 lines per datagram.
udp = graphyte.Sender('127.0.0.1', port=port, prefix='gy', protocol='udp', interval=0.2, batch_size=1000)
for i in range(1000):
    udp.send('udp', i, timestamp=1700000000 + i, tags={'k': 'v'})
udp.stop()
"#,
        &[port],
    );
    let v = d.wait_for("gy.tcp", |v| v.len() >= 2);
    assert_eq!(pairs(&v), vec![(1_700_000_000_000, 1.5), (1_700_000_001_000, 42.0)]);
    assert_eq!(d.tags_of("gy.tcp"), json!({"extra": ["x"], "lib": ["graphyte"]}));
    assert_eq!(
        d.values("gy.tcp", json!({"tags": {"extra": ["x"]}})),
        vec![json!([1_700_000_001_000i64, 42])]
    );
    let v = d.wait_for("gy.udp", |v| v.len() >= 1000);
    assert_eq!(v.len(), 1000);
    assert_eq!(pairs(&v)[999], (1_700_000_999_000, 999.0));
    assert_eq!(d.tags_of("gy.udp"), json!({"k": ["v"]}));
}

#[test]
fn host_parser_with_kairosdb_class_name_and_defaults() {
    let d = Daemon::start(&[("kairosdb.carbon.tag_parser", "org.kairosdb.plugin.carbon.HostTagParser")]);
    let mut s = d.carbon();
    s.write_all(b"servers.web01.cpu.load 5 1700000000\ntoo.short 1 1700000000\nservers.web02.cpu.load 6 1700000000\n")
        .unwrap();
    let v = d.wait_for("servers.cpu.load", |v| v.len() >= 2);
    assert_eq!(v.len(), 2);
    assert_eq!(d.tags_of("servers.cpu.load"), json!({"host": ["web01", "web02"]}));
    assert_eq!(
        d.values("servers.cpu.load", json!({"tags": {"host": ["web02"]}})),
        vec![json!([1_700_000_000_000i64, 6])]
    );
    assert_eq!(
        d.wait_metric("kairosd_points_rejected_total{protocol=\"graphite\"}", 1.0),
        1.0
    );
}

#[test]
fn templates_parser_with_invalid_metrics_and_drops() {
    let d = Daemon::start(&[
        ("kairosdb.carbon.tag_parser", "templates"),
        (
            "kairosdb.carbon.templates_tag_parser.templates",
            "^test.metric .metric.host.metric*; ^test2 .metric.host.metric* [.,_] dc=eu; ^drop.me; ^bench measurement.measurement.host.dc.svc",
        ),
    ]);
    let mut s = d.carbon();
    s.write_all(
        b"test.metric.host_name.name 1 1700000000\n\
          test2.cpu.web1.user.total 2 1700000000\n\
          drop.me.please 3 1700000000\n\
          bench.m3.h042.dc3.s1 4 1700000000\n\
          test.metric.short 5 1700000000\n\
          nothing.matches 6 1700000000\n",
    )
    .unwrap();
    assert_eq!(
        d.wait_for_points("metric.name", 1),
        vec![json!([1_700_000_000_000i64, 1])]
    );
    assert_eq!(d.tags_of("metric.name"), json!({"host": ["host_name"]}));
    assert_eq!(d.wait_for_points("cpu_user_total", 1).len(), 1);
    assert_eq!(d.tags_of("cpu_user_total"), json!({"dc": ["eu"], "host": ["web1"]}));
    assert_eq!(d.wait_for_points("bench.m3", 1).len(), 1);
    assert_eq!(
        d.tags_of("bench.m3"),
        json!({"dc": ["dc3"], "host": ["h042"], "svc": ["s1"]})
    );
    // Paths no template fits are kept under invalidMetrics, as KairosDB does.
    let v = d.wait_for("invalidMetrics", |v| v.len() >= 2);
    assert_eq!(v.len(), 2);
    let invalid = |tags: serde_json::Value| {
        let filter = json!({"tags": tags});
        let v = d.values("invalidMetrics", filter.clone());
        let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "invalidMetrics", "tags": filter["tags"]}]}));
        (pairs(&v), r["queries"][0]["results"][0]["tags"].clone())
    };
    assert_eq!(
        invalid(json!({"metricName": ["test.metric.short"]})),
        (
            vec![(1_700_000_000_000, 5.0)],
            json!({"cause": ["does not match metric name pattern"], "metricName": ["test.metric.short"], "templateFilter": ["^test.metric"]})
        )
    );
    assert_eq!(
        invalid(json!({"metricName": ["nothing.matches"]})),
        (
            vec![(1_700_000_000_000, 6.0)],
            json!({"cause": ["no matching template"], "metricName": ["nothing.matches"]})
        )
    );
    // The drop template counts what it drops.
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"graphite\"}"), 1.0);
    assert!(d.values("drop.me.please", json!({})).is_empty());
}

#[test]
fn bad_carbon_settings_refuse_to_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (sets, key) in [
        (
            vec![("kairosdb.carbon.tag_parser", "bogus")],
            "kairosdb.carbon.tag_parser",
        ),
        (
            vec![("kairosdb.carbon.host_tag_parser.metric_pattern", "([a-z")],
            "kairosdb.carbon.host_tag_parser.metric_pattern",
        ),
        (
            vec![("kairosdb.carbon.templates_tag_parser.templates", "^a .metric [ab]")],
            "kairosdb.carbon.templates_tag_parser.templates",
        ),
        // Checked when the parser is built: it needs the pattern to know its groups.
        (
            vec![
                ("kairosdb.carbon.tag_parser", "host"),
                ("kairosdb.carbon.host_tag_parser.host_replacement", "$7"),
            ],
            "kairosdb.carbon.host_tag_parser.host_replacement",
        ),
        (
            vec![("kairosdb.carbon.tag_parser", "templates")],
            "kairosdb.carbon.templates_tag_parser.templates",
        ),
    ] {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kairosd"));
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("kairosd.data_dir={}", dir.path().display()));
        for (k, v) in [
            ("kairosdb.telnetserver.port", "0"),
            ("kairosdb.jetty.port", "0"),
            ("kairosdb.carbon.text.port", "0"),
            ("kairosdb.carbon.pickle.port", "0"),
        ]
        .into_iter()
        .chain(sets.iter().copied())
        {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{sets:?} started");
        assert!(err.contains(key), "{sets:?}: {err}");
    }
}

#[test]
fn carbon_and_udp_can_be_turned_off() {
    let d = Daemon::start(&[("kairosd.carbon.udp.enabled", "false")]);
    assert!(d.carbon.is_some() && d.pickle.is_some());
    assert_eq!(d.carbon_udp, None);
    drop(d);
    let d = Daemon::start(&[("kairosdb.service.carbon", "<disabled>")]);
    assert_eq!((d.carbon, d.carbon_udp, d.pickle), (None, None, None));
    // Telnet and HTTP are unaffected.
    d.telnet().write_all(b"put still.here 1700000000 1 h=a\n").unwrap();
    assert_eq!(d.wait_for_points("still.here", 1).len(), 1);
}

/// collectd's write_graphite (plaintext TCP, CRLF, `nan` for a rate's first sample) and
/// write_tsdb (telnet `put`) feeding kairosd for a few seconds.
#[test]
fn collectd_write_graphite_and_write_tsdb() {
    let collectd = "/usr/sbin/collectd";
    if !client_available(
        std::path::Path::new(collectd).exists(),
        "collectd (Debian collectd-core)",
    ) {
        return;
    }
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("collectd.conf");
    std::fs::write(
        &conf,
        format!(
            r#"Hostname "kdtest"
FQDNLookup false
Interval 1
BaseDir "{dir}"
PIDFile "{dir}/collectd.pid"
PluginDir "/usr/lib/collectd"
TypesDB "/usr/share/collectd/types.db"
LoadPlugin logfile
<Plugin logfile>
  LogLevel info
  File STDOUT
</Plugin>
LoadPlugin load
LoadPlugin memory
LoadPlugin interface
<Plugin interface>
  Interface "lo"
</Plugin>
LoadPlugin write_graphite
LoadPlugin write_tsdb
<Plugin write_graphite>
  <Node "kairosd">
    Host "127.0.0.1"
    Port "{carbon}"
    Protocol "tcp"
    Prefix "cdg."
    StoreRates true
  </Node>
</Plugin>
<Plugin write_tsdb>
  <Node "kairosd">
    Host "127.0.0.1"
    Port "{telnet}"
    HostTags "source=collectd"
  </Node>
</Plugin>
"#,
            dir = dir.path().display(),
            carbon = d.carbon.unwrap().port(),
            telnet = d.telnet.port(),
        ),
    )
    .unwrap();
    let mut child = Command::new(collectd)
        .arg("-f")
        .arg("-C")
        .arg(&conf)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start collectd");
    let graphite = "cdg.kdtest.load.load.shortterm";
    let tsdb = "load.load.shortterm";
    let deadline = Instant::now() + Duration::from_secs(30);
    let (g, t) = loop {
        let g = d.values(graphite, json!({}));
        let t = d.values(tsdb, json!({}));
        if (g.len() >= 3 && t.len() >= 3) || Instant::now() > deadline {
            break (g, t);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = common::wait_timeout(&mut child, Duration::from_secs(10));
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let mut log = String::new();
    child.stdout.take().unwrap().read_to_string(&mut log).ok();
    assert!(
        g.len() >= 3 && t.len() >= 3,
        "graphite {g:?} tsdb {t:?}; collectd said:\n{log}"
    );
    // The same samples arrive through both protocols.
    let g = pairs(&g);
    for (ts, v) in pairs(&t) {
        if let Some(&(_, gv)) = g.iter().find(|(gts, _)| *gts == ts) {
            assert_eq!(gv, v, "load at {ts}");
        }
    }
    assert_eq!(d.tags_of(tsdb), json!({"fqdn": ["kdtest"], "source": ["collectd"]}));
    assert_eq!(d.tags_of(graphite), json!({}));
    let names = d.get("/api/v1/metricnames?prefix=cdg.kdtest.memory").json();
    assert!(
        names["results"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "cdg.kdtest.memory.memory-used"),
        "{names}"
    );
    // Interface rates start with a `nan` sample: skipped and counted, connection kept.
    let v = d.wait_for("cdg.kdtest.interface-lo.if_octets.rx", |v| !v.is_empty());
    assert!(!v.is_empty(), "no interface rates arrived; collectd said:\n{log}");
}
