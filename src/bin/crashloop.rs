//! A kill -9 crash loop with an expected-state oracle, in the style of RocksDB's crash
//! test: start kairosd, run mixed telnet + REST + Graphite load, SIGKILL the daemon at a
//! random moment, `kairosd check` the store, restart it, and verify against the oracle:
//!
//! - every point a REST request was acknowledged (204) for is there, with the last
//!   acknowledged value or a value sent after it (a write in flight at the kill may or
//!   may not have landed);
//! - no point appears that was never sent, and no telnet or Graphite point has a value
//!   other than the one sent (those are unacknowledged: they may be missing);
//! - the store passes `kairosd check` after every kill.
//!
//! REST writers overwrite earlier timestamps with new values as well as adding new
//! ones, so "last acknowledged value" is tested, not only presence. Every value is a
//! unique integer, so a stale or foreign value cannot pass for the right one.
//!
//! ```text
//! cargo build --release
//! target/release/kairosd-crashloop --cycles 20
//! ```
//!
//! Loopback only; each cycle's load is bounded in time. Exits non-zero on any violation.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use serde_json::json;

#[derive(Parser)]
#[command(about = "kill -9 kairosd under mixed load, N times, and check every acknowledged point")]
struct Args {
    /// Kill/restart cycles.
    #[arg(long, default_value_t = 20)]
    cycles: usize,
    /// Seed of the kill times and the load (the run prints it).
    #[arg(long)]
    seed: Option<u64>,
    /// The kairosd binary (default: next to this one).
    #[arg(long)]
    kairosd: Option<PathBuf>,
    /// Data directory (default: a fresh temporary one, removed after a clean run).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Shortest and longest load before the kill, in ms.
    #[arg(long, default_value_t = 200)]
    min_ms: u64,
    #[arg(long, default_value_t = 2500)]
    max_ms: u64,
    /// REST writer threads, telnet and Graphite connections.
    #[arg(long, default_value_t = 3)]
    rest: usize,
    #[arg(long, default_value_t = 2)]
    telnet: usize,
    #[arg(long, default_value_t = 1)]
    graphite: usize,
}

/// xorshift64*: reproducible from the seed, no dependency.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// What a REST key must hold: the last acknowledged value, and values sent since.
#[derive(Debug, Default, Clone)]
struct Expect {
    acked: Option<i64>,
    pending: Vec<i64>,
}

/// Series are identified by (metric, tag value); points by timestamp.
type SeriesName = (&'static str, String);

#[derive(Default)]
struct Oracle {
    rest: HashMap<SeriesName, BTreeMap<i64, Expect>>,
    /// Unacknowledged streams: the one value each timestamp was sent with.
    sent: HashMap<SeriesName, BTreeMap<i64, i64>>,
    acked_writes: u64,
}

const REST_METRIC: &str = "crash.rest";
const TELNET_METRIC: &str = "crash.telnet";
const GRAPHITE_METRIC: &str = "crash.graphite";
const SERIES_PER_WRITER: usize = 4;
const STEP_MS: i64 = 10_000;
const BASE_MS: i64 = 1_700_000_000_000;

struct Daemon {
    child: Child,
    telnet: SocketAddr,
    http: SocketAddr,
    carbon: SocketAddr,
}

fn start(bin: &Path, dir: &Path) -> Daemon {
    let mut cmd = Command::new(bin);
    cmd.arg("serve");
    for (k, v) in [
        ("kairosd.data_dir", dir.to_str().expect("UTF-8 data dir")),
        ("kairosdb.telnetserver.address", "127.0.0.1"),
        ("kairosdb.telnetserver.port", "0"),
        ("kairosdb.jetty.address", "127.0.0.1"),
        ("kairosdb.jetty.port", "0"),
        ("kairosdb.carbon.text.address", "127.0.0.1"),
        ("kairosdb.carbon.text.port", "0"),
        ("kairosdb.carbon.pickle.address", "127.0.0.1"),
        ("kairosdb.carbon.pickle.port", "0"),
        ("kairosd.carbon.udp.enabled", "false"),
        // Promote and flush often, so kills land in every phase of the write path.
        ("kairosd.writer.promote_interval_ms", "300"),
        ("kairosd.storage.idle_flush_ms", "500"),
    ] {
        cmd.arg("--set").arg(format!("{k}={v}"));
    }
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("RUST_LOG", "error");
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("ready line");
    let field = |name: &str| -> SocketAddr {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("kairosd did not start: {line:?}"))
    };
    Daemon {
        telnet: field("telnet="),
        http: field("http="),
        carbon: field("carbon="),
        child,
    }
}

/// One HTTP request on a fresh connection: status and body, or an error (daemon gone).
fn http(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no response head"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    Ok((status, body.to_string()))
}

/// Every point of one series, as the daemon has it now.
fn read_series(http_addr: SocketAddr, metric: &str, tag: &str, value: &str) -> BTreeMap<i64, i64> {
    let q = json!({
        "start_absolute": 0,
        "end_absolute": i64::MAX / 4,
        "metrics": [{"name": metric, "tags": {tag: [value]}, "limit": 0}]
    });
    let (status, body) = http(http_addr, "/api/v1/datapoints/query", &q.to_string()).expect("query");
    assert_eq!(status, 200, "query failed: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
    let mut out = BTreeMap::new();
    for r in v["queries"][0]["results"].as_array().into_iter().flatten() {
        for p in r["values"].as_array().into_iter().flatten() {
            let ts = p[0].as_i64().expect("timestamp");
            let value = p[1]
                .as_i64()
                .unwrap_or_else(|| panic!("{metric}: non-integer value {p}"));
            out.insert(ts, value);
        }
    }
    out
}

/// Compares the daemon with the oracle, then makes what it holds the new expectation
/// (a value in flight at the kill has landed or not, for good). Returns violations.
fn verify(d: &Daemon, oracle: &mut Oracle) -> (Vec<String>, u64) {
    let mut bad = Vec::new();
    let mut checked = 0u64;
    let http_addr = d.http;
    for ((metric, series), expect) in oracle.rest.iter_mut() {
        let stored = read_series(http_addr, metric, "w", series);
        for (ts, v) in &stored {
            if !expect.contains_key(ts) {
                bad.push(format!("{metric}{{w={series}}} @{ts} = {v}: never sent"));
            }
        }
        for (ts, e) in expect.iter_mut() {
            checked += 1;
            let got = stored.get(ts).copied();
            let ok = match (got, e.acked) {
                (Some(v), _) if e.pending.contains(&v) || e.acked == Some(v) => true,
                (None, None) => true,
                _ => false,
            };
            if !ok {
                bad.push(format!(
                    "{metric}{{w={series}}} @{ts}: stored {got:?}, acknowledged {:?}, sent since {:?}",
                    e.acked, e.pending
                ));
            }
            e.acked = got.or(e.acked);
            e.pending.clear();
        }
        expect.retain(|_, e| e.acked.is_some());
    }
    for ((metric, series), sent) in oracle.sent.iter_mut() {
        let tag = if *metric == TELNET_METRIC { "c" } else { "g" };
        let stored = read_series(http_addr, metric, tag, series);
        for (ts, v) in &stored {
            checked += 1;
            match sent.get(ts) {
                Some(want) if want == v => {}
                Some(want) => bad.push(format!("{metric}{{{tag}={series}}} @{ts} = {v}, sent {want}")),
                None => bad.push(format!("{metric}{{{tag}={series}}} @{ts} = {v}: never sent")),
            }
        }
        sent.retain(|ts, _| stored.contains_key(ts));
    }
    (bad, checked)
}

/// Unique values across every writer and cycle.
static NEXT_VALUE: AtomicI64 = AtomicI64::new(1);

fn value() -> i64 {
    NEXT_VALUE.fetch_add(1, Relaxed)
}

/// One REST writer: batches of new points and overwrites, each recorded as pending
/// before it is sent and as acknowledged on a 204.
fn rest_writer(addr: SocketAddr, w: usize, mut rng: Rng, oracle: Arc<Mutex<Oracle>>, stop: Arc<AtomicBool>) {
    while !stop.load(Relaxed) {
        let mut writes: Vec<(SeriesName, i64, i64)> = Vec::new();
        {
            let mut o = oracle.lock().unwrap();
            for _ in 0..1 + rng.below(200) {
                let series = format!("w{w}s{}", rng.below(SERIES_PER_WRITER as u64));
                let key: SeriesName = (REST_METRIC, series);
                let points = o.rest.entry(key.clone()).or_default();
                let ts = match points.last_key_value() {
                    // Mostly appends; one in five an overwrite of an earlier point.
                    Some((&last, _)) if rng.below(5) == 0 => {
                        BASE_MS + STEP_MS * rng.below(((last - BASE_MS) / STEP_MS + 1) as u64) as i64
                    }
                    Some((&last, _)) => last + STEP_MS,
                    None => BASE_MS,
                };
                let v = value();
                points.entry(ts).or_default().pending.push(v);
                writes.push((key, ts, v));
            }
        }
        // The last write of a key in a batch is the one that counts.
        let mut by_series: BTreeMap<&str, BTreeMap<i64, i64>> = BTreeMap::new();
        for ((_, s), ts, v) in &writes {
            by_series.entry(s).or_default().insert(*ts, *v);
        }
        let body: Vec<_> = by_series
            .iter()
            .map(|(s, pts)| {
                let dps: Vec<_> = pts.iter().map(|(t, v)| json!([t, v])).collect();
                json!({"name": REST_METRIC, "tags": {"w": s}, "datapoints": dps})
            })
            .collect();
        match http(addr, "/api/v1/datapoints", &serde_json::Value::Array(body).to_string()) {
            Ok((204, _)) => {
                let mut guard = oracle.lock().unwrap();
                let o = &mut *guard;
                for (s, pts) in &by_series {
                    let series = o.rest.get_mut(&(REST_METRIC, s.to_string())).expect("recorded");
                    for (ts, v) in pts {
                        let e = series.get_mut(ts).expect("recorded");
                        // Acknowledged: it is the value now; later sends stay pending.
                        if let Some(at) = e.pending.iter().position(|p| p == v) {
                            e.pending.drain(..=at);
                        }
                        e.acked = Some(*v);
                        o.acked_writes += 1;
                    }
                }
            }
            Ok((status, body)) => {
                if !stop.load(Relaxed) {
                    eprintln!("crashloop: REST write answered {status}: {body}");
                }
                return;
            }
            Err(_) => return, // the daemon is gone
        }
    }
}

/// One telnet or Graphite connection streaming new points (never acknowledged).
fn stream_writer(addr: SocketAddr, metric: &'static str, c: usize, oracle: Arc<Mutex<Oracle>>, stop: Arc<AtomicBool>) {
    let Ok(mut s) = TcpStream::connect(addr) else { return };
    let graphite = metric == GRAPHITE_METRIC;
    let series: Vec<SeriesName> = (0..SERIES_PER_WRITER).map(|i| (metric, format!("c{c}s{i}"))).collect();
    let mut next_ts: Vec<i64> = {
        let o = oracle.lock().unwrap();
        series
            .iter()
            .map(|k| {
                o.sent
                    .get(k)
                    .and_then(|m| m.last_key_value())
                    .map_or(BASE_MS, |(t, _)| t + 1000)
            })
            .collect()
    };
    let mut buf = String::new();
    while !stop.load(Relaxed) {
        buf.clear();
        {
            let mut o = oracle.lock().unwrap();
            for _ in 0..100 {
                for (i, key) in series.iter().enumerate() {
                    let ts = next_ts[i];
                    next_ts[i] += 1000;
                    let v = value();
                    o.sent.entry(key.clone()).or_default().insert(ts, v);
                    if graphite {
                        buf.push_str(&format!("{metric};g={} {v} {}\n", key.1, ts / 1000));
                    } else {
                        buf.push_str(&format!("put {metric} {ts} {v} c={}\n", key.1));
                    }
                }
            }
        }
        if s.write_all(buf.as_bytes()).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn run_check(bin: &Path, dir: &Path) -> Result<(), String> {
    let out = Command::new(bin)
        .arg("check")
        .arg(dir)
        .env("RUST_LOG", "error")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "kairosd check failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    let bin = args
        .kairosd
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("kairosd"));
    let tmp;
    let dir = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("kairosd-crashloop-{}-{seed}", std::process::id()));
            tmp.clone()
        }
    };
    let data = dir.join("data");
    eprintln!(
        "crashloop: seed {seed}, {} cycles, data in {}",
        args.cycles,
        data.display()
    );
    let mut rng = Rng(seed);
    let oracle = Arc::new(Mutex::new(Oracle::default()));
    let mut violations = Vec::new();
    let mut checked_total = 0u64;
    let started = Instant::now();
    for cycle in 0..args.cycles {
        let mut d = start(&bin, &data);
        if cycle > 0 {
            let (bad, checked) = verify(&d, &mut oracle.lock().unwrap());
            checked_total += checked;
            for b in &bad {
                eprintln!("crashloop: cycle {cycle}: {b}");
            }
            violations.extend(bad);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for w in 0..args.rest {
            let (o, s, r) = (Arc::clone(&oracle), Arc::clone(&stop), Rng(rng.next() | 1));
            let addr = d.http;
            threads.push(std::thread::spawn(move || rest_writer(addr, w, r, o, s)));
        }
        for c in 0..args.telnet {
            let (o, s, addr) = (Arc::clone(&oracle), Arc::clone(&stop), d.telnet);
            threads.push(std::thread::spawn(move || stream_writer(addr, TELNET_METRIC, c, o, s)));
        }
        for c in 0..args.graphite {
            let (o, s, addr) = (Arc::clone(&oracle), Arc::clone(&stop), d.carbon);
            threads.push(std::thread::spawn(move || {
                stream_writer(addr, GRAPHITE_METRIC, c, o, s)
            }));
        }
        let load = args.min_ms + rng.below(args.max_ms.saturating_sub(args.min_ms) + 1);
        std::thread::sleep(Duration::from_millis(load));
        let _ = d.child.kill(); // SIGKILL
        let _ = d.child.wait();
        stop.store(true, Relaxed);
        for t in threads {
            let _ = t.join();
        }
        if let Err(e) = run_check(&bin, &data) {
            eprintln!("crashloop: cycle {cycle}: {e}");
            violations.push(e);
        }
        let o = oracle.lock().unwrap();
        eprintln!(
            "crashloop: cycle {}/{} killed after {load} ms; {} acknowledged writes so far",
            cycle + 1,
            args.cycles,
            o.acked_writes
        );
    }
    // A last start verifies what the last kill left.
    let mut d = start(&bin, &data);
    let (bad, checked) = verify(&d, &mut oracle.lock().unwrap());
    checked_total += checked;
    for b in &bad {
        eprintln!("crashloop: final: {b}");
    }
    violations.extend(bad);
    let _ = d.child.kill();
    let _ = d.child.wait();
    if let Err(e) = run_check(&bin, &data) {
        violations.push(e);
    }
    let o = oracle.lock().unwrap();
    let lost = violations.len();
    println!(
        "crashloop: {lost} of {} acknowledged points lost or wrong over {} cycles ({} point checks, seed {seed}, {:.0} s)",
        o.acked_writes,
        args.cycles,
        checked_total,
        started.elapsed().as_secs_f64()
    );
    if violations.is_empty() {
        if args.dir.is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        std::process::ExitCode::SUCCESS
    } else {
        eprintln!("crashloop: data kept in {}", data.display());
        std::process::ExitCode::FAILURE
    }
}
