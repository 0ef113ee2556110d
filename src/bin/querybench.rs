//! Query benchmark: kairosd beside VictoriaMetrics on the same data in the same run.
//!
//! Starts kairosd and VictoriaMetrics (Debian's `victoria-metrics`) on fresh data
//! directories on loopback, loads the same `put` lines into both over telnet (VM's
//! OpenTSDB listener), waits until every point is queryable in each, then times:
//!
//! - (a) one series' raw points (VM: `/api/v1/export`);
//! - (b) a sum over all series with 1-minute sampling (VM: `sum(sum_over_time(..[1m]))`);
//! - (c) group by the `dc` tag with a 1-minute avg (VM: `avg by (dc) (avg_over_time(..[1m]))`);
//! - (d) a count over everything (VM: `sum(count_over_time(..[span]))`);
//! - (e) one series out of `--big-series` (a second metric), with kairosd's
//!   `kairosd_query_points_scanned_total` proving it reads only that series.
//!
//! Each query runs once to warm up, then `--reps` times alternating between the two
//! daemons; the table shows median latencies and points in range per second.
//! Loopback only; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

#[derive(Parser)]
#[command(about = "Time KairosDB queries on kairosd and VictoriaMetrics over the same data")]
struct Args {
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    #[arg(long, default_value_t = 1_000)]
    points_per_series: usize,
    /// Series of the second metric, of which query (e) reads one.
    #[arg(long, default_value_t = 100_000)]
    big_series: usize,
    #[arg(long, default_value_t = 10)]
    big_points_per_series: usize,
    #[arg(long, default_value_t = 7)]
    reps: usize,
    #[arg(long, default_value = "/usr/bin/victoria-metrics")]
    vm: PathBuf,
    /// Only kairosd.
    #[arg(long)]
    no_vm: bool,
    #[arg(long, default_value = "/tmp/kairosd-querybench")]
    work: PathBuf,
    /// The kairosd binary (default: beside this one).
    #[arg(long)]
    kairosd: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Give up waiting for ingest after this many seconds.
    #[arg(long, default_value_t = 900)]
    max_seconds: u64,
    /// Idle time after loading, so neither daemon is still flushing or compacting
    /// what it just took in when the timing starts.
    #[arg(long, default_value_t = 30)]
    settle_seconds: u64,
}

const STEP_S: i64 = 10;
const VM_HTTP: u16 = 18_528;
const VM_OPENTSDB: u16 = 14_342;

fn main() {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let run_dir = args.work.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).expect("create work dir");
    let exe = args
        .kairosd
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("kairosd"));

    let now_s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let span_s = args.points_per_series as i64 * STEP_S;
    let base = now_s - span_s - 300;
    let (start_ms, end_ms) = (base * 1000, (base + span_s) * 1000 - 1);
    eprintln!(
        "generating {} x {} points and {} x {} points...",
        args.series, args.points_per_series, args.big_series, args.big_points_per_series
    );
    let main_lines = lines("bench.q", args.series, args.points_per_series, base, args.conns);
    let big_lines = lines(
        "bench.big",
        args.big_series,
        args.big_points_per_series,
        base,
        args.conns,
    );
    let n_main = (args.series * args.points_per_series) as u64;
    let n_big = (args.big_series * args.big_points_per_series) as u64;

    let mut kairosd = Kairosd::start(&exe, &run_dir.join("kairosd"));
    let mut vm = (!args.no_vm).then(|| Vm::start(&args.vm, &run_dir.join("vm")));

    for (name, target) in std::iter::once(("kairosd", kairosd.telnet)).chain(vm.as_ref().map(|v| ("vm", v.opentsdb))) {
        let t = Instant::now();
        send(target, &main_lines);
        send(target, &big_lines);
        eprintln!("{name}: sent {} points in {:.1?}", n_main + n_big, t.elapsed());
    }
    let wait = |what: &str, mut done: Box<dyn FnMut() -> bool + '_>| {
        while !done() {
            assert!(Instant::now() < deadline, "{what} did not settle in time");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    wait(
        "kairosd",
        Box::new(|| {
            kairosd.count("bench.q", start_ms, end_ms) == n_main
                && kairosd.count("bench.big", start_ms, end_ms) == n_big
        }),
    );
    if let Some(v) = vm.as_ref() {
        wait(
            "VictoriaMetrics",
            Box::new(|| {
                v.flush();
                v.count("bench.q", base, span_s) == n_main && v.count("bench.big", base, span_s) == n_big
            }),
        );
    }
    eprintln!("both hold every point; settling {} s", args.settle_seconds);
    std::thread::sleep(Duration::from_secs(args.settle_seconds));
    if let Some(v) = vm.as_ref() {
        v.flush();
    }
    eprintln!("timing {} reps per query", args.reps);

    let k_query =
        |metric: String| format!("{{\"start_absolute\":{start_ms},\"end_absolute\":{end_ms},\"metrics\":[{metric}]}}");
    let one = "h4242".to_string();
    let (vs, ve) = (base, base + span_s - 1);
    let sel = "{__name__=\"bench.q\"}";
    let queries: Vec<(&str, String, String, u64)> = vec![
        (
            "(a) one series, raw",
            k_query(format!("{{\"name\":\"bench.q\",\"tags\":{{\"host\":\"{one}\"}}}}")),
            format!(
                "/api/v1/export?{}",
                qs(&[
                    ("match[]", &format!("{{__name__=\"bench.q\",host=\"{one}\"}}")),
                    ("start", &vs.to_string()),
                    ("end", &ve.to_string())
                ])
            ),
            args.points_per_series as u64,
        ),
        (
            "(b) sum, 1-minute sampling",
            k_query(
                "{\"name\":\"bench.q\",\"aggregators\":[{\"name\":\"sum\",\"sampling\":{\"value\":1,\"unit\":\"minutes\"}}]}"
                    .into(),
            ),
            range_query(&format!("sum(sum_over_time({sel}[1m]))"), vs, ve),
            n_main,
        ),
        (
            "(c) group by dc, 1-minute avg",
            k_query("{\"name\":\"bench.q\",\"group_by\":[{\"name\":\"tag\",\"tags\":[\"dc\"]}],\"aggregators\":[{\"name\":\"avg\",\"sampling\":{\"value\":1,\"unit\":\"minutes\"}}]}".into()),
            range_query(&format!("avg by (dc) (avg_over_time({sel}[1m]))"), vs, ve),
            n_main,
        ),
        (
            "(d) count over everything",
            k_query(format!(
                "{{\"name\":\"bench.q\",\"aggregators\":[{{\"name\":\"count\",\"align_sampling\":false,\"sampling\":{{\"value\":{span_s},\"unit\":\"seconds\"}}}}]}}"
            )),
            format!(
                "/api/v1/query?{}",
                qs(&[
                    ("query", &format!("sum(count_over_time({sel}[{span_s}s]))")),
                    ("time", &ve.to_string()),
                    ("nocache", "1")
                ])
            ),
            n_main,
        ),
        (
            "(e) one series of 100k",
            k_query(format!("{{\"name\":\"bench.big\",\"tags\":{{\"host\":\"h{}\"}}}}", args.big_series / 2)),
            format!(
                "/api/v1/export?{}",
                qs(&[
                    ("match[]", &format!("{{__name__=\"bench.big\",host=\"h{}\"}}", args.big_series / 2)),
                    ("start", &vs.to_string()),
                    ("end", &ve.to_string())
                ])
            ),
            args.big_points_per_series as u64,
        ),
    ];

    println!("| query | kairosd ms | VictoriaMetrics ms | kairosd points/s | VictoriaMetrics points/s | kairosd points scanned |");
    println!("|---|---|---|---|---|---|");
    for (name, kq, vq, points) in &queries {
        // Warm-up, and a check that both answer.
        let (status, body) = http(kairosd.http, "POST", "/api/v1/datapoints/query", kq);
        assert_eq!(status, 200, "kairosd {name}: {body}");
        if let Some(v) = vm.as_ref() {
            let (status, body) = http(v.http, "GET", vq, "");
            assert_eq!(status, 200, "VictoriaMetrics {name}: {body}");
        }
        let mut kt = Vec::new();
        let mut vt = Vec::new();
        let mut scanned = Vec::new();
        for _ in 0..args.reps {
            let before = kairosd.scanned();
            let t = Instant::now();
            let (status, _) = http(kairosd.http, "POST", "/api/v1/datapoints/query", kq);
            kt.push(t.elapsed().as_secs_f64());
            assert_eq!(status, 200);
            scanned.push(kairosd.scanned() - before);
            if let Some(v) = vm.as_ref() {
                let t = Instant::now();
                let (status, _) = http(v.http, "GET", vq, "");
                vt.push(t.elapsed().as_secs_f64());
                assert_eq!(status, 200);
            }
        }
        let (km, vmed) = (median(&mut kt), (!vt.is_empty()).then(|| median(&mut vt)));
        let rate = |s: f64| format!("{:.0}", *points as f64 / s);
        println!(
            "| {name} | {:.1} | {} | {} | {} | {} |",
            km * 1e3,
            vmed.map_or("-".into(), |v| format!("{:.1}", v * 1e3)),
            rate(km),
            vmed.map_or("-".into(), rate),
            scanned.iter().max().unwrap_or(&0)
        );
    }
    kairosd.stop();
    if let Some(v) = vm.as_mut() {
        v.stop();
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn range_query(q: &str, start: i64, end: i64) -> String {
    format!(
        "/api/v1/query_range?{}",
        qs(&[
            ("query", q),
            ("start", &start.to_string()),
            ("end", &end.to_string()),
            ("step", "60"),
            ("nocache", "1")
        ])
    )
}

fn qs(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `put` lines for `series` × `points`, one buffer per connection; series `s` goes to
/// connection `s % conns`, so each series' points arrive in order.
fn lines(metric: &str, series: usize, points: usize, base: i64, conns: usize) -> Vec<Vec<u8>> {
    let conns = conns.max(1);
    let mut bufs = vec![Vec::new(); conns];
    for i in 0..points {
        let ts = base + i as i64 * STEP_S;
        for s in 0..series {
            let v = ((s * 31 + i * 17) % 10_000) as f64 / 100.0;
            let _ = writeln!(bufs[s % conns], "put {metric} {ts} {v} host=h{s} dc=dc{}", s % 10);
        }
    }
    bufs
}

fn send(addr: SocketAddr, bufs: &[Vec<u8>]) {
    std::thread::scope(|scope| {
        for b in bufs {
            scope.spawn(move || {
                let mut s = TcpStream::connect(addr).expect("connect telnet");
                s.write_all(b).expect("send");
                s.shutdown(std::net::Shutdown::Write).ok();
                let _ = s.read_to_end(&mut Vec::new());
            });
        }
    });
}

/// One request on a fresh connection, read to the end; (status, body).
fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect http");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    let text = String::from_utf8_lossy(&out);
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    let body = if text.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        dechunk(&body)
    } else {
        body
    };
    (status, body)
}

fn dechunk(mut data: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = data.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        data = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

struct Kairosd {
    child: Child,
    telnet: SocketAddr,
    http: SocketAddr,
}

impl Kairosd {
    fn start(exe: &Path, data: &Path) -> Kairosd {
        let mut child = Command::new(exe)
            .arg("serve")
            .args(["--set", &format!("kairosd.data_dir={}", data.display())])
            .args([
                "--set",
                "kairosdb.telnetserver.address=127.0.0.1",
                "--set",
                "kairosdb.telnetserver.port=0",
            ])
            .args([
                "--set",
                "kairosdb.jetty.address=127.0.0.1",
                "--set",
                "kairosdb.jetty.port=0",
            ])
            .args(["--set", "kairosd.query.max_points=100000000"])
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start kairosd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("ready line");
        let addr = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("kairosd did not start: {line:?}"))
        };
        Kairosd {
            telnet: addr("telnet="),
            http: addr("http="),
            child,
        }
    }

    fn count(&self, metric: &str, start: i64, end: i64) -> u64 {
        let q = format!(
            "{{\"start_absolute\":{start},\"end_absolute\":{end},\"metrics\":[{{\"name\":\"{metric}\",\"aggregators\":[{{\"name\":\"count\",\"sampling\":{{\"value\":100,\"unit\":\"years\"}}}}]}}]}}"
        );
        let (_, body) = http(self.http, "POST", "/api/v1/datapoints/query", &q);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["queries"][0]["sample_size"].as_u64().unwrap_or(0)
    }

    fn scanned(&self) -> u64 {
        let (_, body) = http(self.http, "GET", "/metrics", "");
        body.lines()
            .find_map(|l| l.strip_prefix("kairosd_query_points_scanned_total "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

struct Vm {
    child: Child,
    http: SocketAddr,
    opentsdb: SocketAddr,
}

impl Vm {
    fn start(exe: &Path, data: &Path) -> Vm {
        let child = Command::new(exe)
            .arg(format!("-storageDataPath={}", data.display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{VM_HTTP}"))
            .arg(format!("-opentsdbListenAddr=127.0.0.1:{VM_OPENTSDB}"))
            .args([
                "-search.latencyOffset=0s",
                "-search.disableCache",
                "-retentionPeriod=100y",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); install victoria-metrics or pass --no-vm",
                    exe.display()
                )
            });
        let vm = Vm {
            child,
            http: SocketAddr::from(([127, 0, 0, 1], VM_HTTP)),
            opentsdb: SocketAddr::from(([127, 0, 0, 1], VM_OPENTSDB)),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(vm.opentsdb).is_err() || TcpStream::connect(vm.http).is_err() {
            assert!(Instant::now() < deadline, "VictoriaMetrics did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        vm
    }

    fn flush(&self) {
        let _ = http(self.http, "GET", "/internal/force_flush", "");
    }

    fn count(&self, metric: &str, base: i64, span_s: i64) -> u64 {
        let q = format!(
            "/api/v1/query?{}",
            qs(&[
                (
                    "query",
                    &format!("sum(count_over_time({{__name__=\"{metric}\"}}[{span_s}s]))")
                ),
                ("time", &(base + span_s - 1).to_string()),
                ("nocache", "1")
            ])
        );
        let (_, body) = http(self.http, "GET", &q, "");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        v["data"]["result"][0]["value"][1]
            .as_str()
            .and_then(|s| s.parse::<f64>().ok())
            .unwrap_or(0.0) as u64
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
