//! End-to-end load generator: starts kairosd on a fresh data directory, pushes N
//! points over K telnet, Graphite plaintext or Graphite pickle connections or REST,
//! waits until every point is queryable,
//! and prints throughput, the daemon's CPU seconds per million points, its peak RSS,
//! and bytes per point on disk after a full compaction.
//!
//! Data shape (the one ../shared/bench uses): 10 metrics × 100 hosts × 5 dc × 2 svc =
//! 10,000 series of 3 tags, timestamps 10 s apart ending ~200 s ago, gauges
//! (2-decimal random walk) for m0..m4 and integer counters for m5..m9. Series `s`
//! always goes to connection `s % K`, so each series' points arrive in order. Graphite
//! paths carry the tags the Graphite 1.1 way (`bench.m3;host=h042;dc=dc3;svc=s1`), so
//! every protocol writes the same series; pickle frames are what carbon-relay sends
//! (protocol 2, 500 points a frame, float timestamps and values, memoized strings).
//!
//! Loopback only; every loop is bounded in time.

use kairosd::procstat::{cpu_seconds, status_kb};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

#[derive(Clone, Copy, ValueEnum, PartialEq)]
enum Proto {
    Telnet,
    Rest,
    /// Graphite plaintext over TCP.
    Graphite,
    /// Graphite pickle.
    Pickle,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Telnet => "telnet",
            Proto::Rest => "rest",
            Proto::Graphite => "graphite",
            Proto::Pickle => "pickle",
        }
    }
}

#[derive(Parser)]
#[command(about = "Load kairosd end to end and measure it")]
struct Args {
    #[arg(long, default_value_t = 2_000_000)]
    points: usize,
    #[arg(long, default_value_t = 10_000)]
    series: usize,
    #[arg(long, default_value_t = 4)]
    conns: usize,
    #[arg(long, value_enum, default_value_t = Proto::Telnet)]
    proto: Proto,
    /// Points per REST request.
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Where the run's data directory goes (a fresh subdirectory per run).
    #[arg(long, default_value = "/tmp/kairosd-loadgen")]
    work: PathBuf,
    /// The kairosd binary (default: beside this one).
    #[arg(long)]
    kairosd: Option<PathBuf>,
    /// Extra `--set KEY=VALUE` for the daemon.
    #[arg(long = "set")]
    sets: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
}

const METRICS: usize = 10;
const STEP_S: i64 = 10;

fn main() {
    let args = Args::parse();
    let deadline = Instant::now() + Duration::from_secs(args.max_seconds);
    let exe = args
        .kairosd
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("kairosd"));
    let run_dir = args.work.join(format!("run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).expect("create work dir");
    let data = run_dir.join("data");

    eprintln!("generating {} points for {} series...", args.points, args.series);
    let (bufs, base_ts, last_ts) = generate(&args);
    let bytes: usize = bufs.iter().map(|b| b.iter().map(Vec::len).sum::<usize>()).sum();

    let mut daemon = Daemon::start(&exe, &data, &args.sets);
    let cpu0 = cpu_seconds(daemon.pid());
    let started = Instant::now();
    let target = match args.proto {
        Proto::Telnet => daemon.telnet,
        Proto::Rest => daemon.http,
        Proto::Graphite => daemon.carbon,
        Proto::Pickle => daemon.pickle,
    };
    let proto = args.proto;
    let senders: Vec<_> = bufs
        .into_iter()
        .map(|chunks| std::thread::spawn(move || send(target, proto, chunks)))
        .collect();
    for s in senders {
        s.join().expect("sender thread");
    }
    let send_s = started.elapsed().as_secs_f64();
    // Visible = committed by the writer; then verified through the query API.
    let http = daemon.http;
    loop {
        if written(http) >= args.points as u64 {
            break;
        }
        assert!(Instant::now() < deadline, "timed out waiting for points to be written");
        std::thread::sleep(Duration::from_millis(20));
    }
    let e2e_s = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(daemon.pid()) - cpu0;
    let hwm_kb = status_kb(daemon.pid(), "VmHWM:");
    // The count reads every point back through the query API: timed on its own, as a
    // count over many series is a cost of its own (one query per metric).
    eprintln!("counting through the query API (kairosd pid {})...", daemon.pid());
    let count_started = Instant::now();
    let counted = count(http, base_ts * 1000, last_ts * 1000);
    let count_s = count_started.elapsed().as_secs_f64();
    let count_cpu = cpu_seconds(daemon.pid()) - cpu0 - cpu;
    daemon.stop();
    let disk_before = dir_bytes(&data);
    let status = Command::new(&exe)
        .arg("compact")
        .arg(&data)
        .status()
        .expect("run kairosd compact");
    assert!(status.success(), "kairosd compact failed");
    let disk = dir_bytes(&data);
    let n = args.points as f64;
    println!(
        "{{\"proto\":\"{}\",\"points\":{},\"series\":{},\"conns\":{},\"wire_bytes\":{bytes},\"send_s\":{send_s:.3},\"e2e_s\":{e2e_s:.3},\
\"e2e_pps\":{:.0},\"cpu_s\":{cpu:.3},\"cpu_s_per_million\":{:.3},\"peak_rss_mb\":{:.1},\"verified\":{counted},\
\"count_s\":{count_s:.3},\"count_cpu_s\":{count_cpu:.3},\"disk_bytes_before_compaction\":{disk_before},\"disk_bytes\":{disk},\"bytes_per_point\":{:.3}}}",
        proto.name(),
        args.points,
        args.series,
        args.conns,
        n / e2e_s,
        cpu / (n / 1e6),
        hwm_kb as f64 / 1024.0,
        disk as f64 / n,
    );
    if counted != args.points as u64 {
        eprintln!("verification failed: {counted} of {} points queryable", args.points);
        std::process::exit(1);
    }
    let _ = std::fs::remove_dir_all(&run_dir);
}

/// Per connection, the wire bytes to send, in chunks (one REST request each).
fn generate(args: &Args) -> (Vec<Vec<Vec<u8>>>, i64, i64) {
    let steps = args.points.div_ceil(args.series) as i64;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let base_ts = now - 200 - (steps - 1) * STEP_S;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut gauge: Vec<f64> = (0..args.series).map(|s| 20.0 + (s % 61) as f64).collect();
    let mut counter: Vec<u64> = (0..args.series).map(|_| next() % 1_000_000).collect();
    let mut bufs: Vec<Vec<Vec<u8>>> = vec![vec![Vec::with_capacity(1 << 20)]; args.conns];
    let mut in_request = vec![0usize; args.conns];
    let mut frames: Vec<PickleFrame> = (0..args.conns).map(|_| PickleFrame::default()).collect();
    let mut emitted = 0;
    'outer: for t in 0..steps {
        let ts = base_ts + t * STEP_S;
        for s in 0..args.series {
            if emitted == args.points {
                break 'outer;
            }
            emitted += 1;
            let metric = s % METRICS;
            let combo = s / METRICS;
            let (host, svc, dc) = (combo / 10, (combo / 5) % 2, combo % 5);
            let value = if metric < METRICS / 2 {
                gauge[s] = (gauge[s] + ((next() % 101) as f64 - 50.0) / 100.0).max(0.0);
                format!("{:.2}", gauge[s])
            } else {
                counter[s] += next() % 1000;
                counter[s].to_string()
            };
            let c = s % args.conns;
            let buf = bufs[c].last_mut().unwrap();
            match args.proto {
                Proto::Telnet => {
                    let _ = writeln!(
                        buf,
                        "put bench.m{metric} {ts} {value} host=h{host:03} dc=dc{dc} svc=s{svc}"
                    );
                    if buf.len() > 1 << 20 {
                        bufs[c].push(Vec::with_capacity(1 << 20));
                    }
                }
                Proto::Graphite => {
                    let _ = writeln!(buf, "bench.m{metric};host=h{host:03};dc=dc{dc};svc=s{svc} {value} {ts}");
                    if buf.len() > 1 << 20 {
                        bufs[c].push(Vec::with_capacity(1 << 20));
                    }
                }
                Proto::Pickle => {
                    let path = format!("bench.m{metric};host=h{host:03};dc=dc{dc};svc=s{svc}");
                    frames[c].push(&path, ts as f64, value.parse().expect("generated number"));
                    if frames[c].points == PICKLE_POINTS {
                        frames[c].finish_into(buf);
                        if buf.len() > 1 << 20 {
                            bufs[c].push(Vec::with_capacity(1 << 20));
                        }
                    }
                }
                Proto::Rest => {
                    buf.push(if in_request[c] == 0 { b'[' } else { b',' });
                    let _ = write!(
                        buf,
                        "{{\"name\":\"bench.m{metric}\",\"datapoints\":[[{ts}000,{value}]],\"tags\":{{\"host\":\"h{host:03}\",\"dc\":\"dc{dc}\",\"svc\":\"s{svc}\"}}}}"
                    );
                    in_request[c] += 1;
                    if in_request[c] == args.batch {
                        buf.push(b']');
                        in_request[c] = 0;
                        bufs[c].push(Vec::new());
                    }
                }
            }
        }
    }
    for (c, chunks) in bufs.iter_mut().enumerate() {
        if args.proto == Proto::Rest && in_request[c] > 0 {
            chunks.last_mut().unwrap().push(b']');
        }
        if args.proto == Proto::Pickle && frames[c].points > 0 {
            frames[c].finish_into(chunks.last_mut().unwrap());
        }
        chunks.retain(|b| !b.is_empty());
    }
    (bufs, base_ts, base_ts + (steps - 1) * STEP_S)
}

fn send(addr: SocketAddr, proto: Proto, chunks: Vec<Vec<u8>>) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    match proto {
        Proto::Telnet | Proto::Graphite | Proto::Pickle => {
            for c in &chunks {
                s.write_all(c).expect("send");
            }
            s.shutdown(std::net::Shutdown::Write).ok();
            let mut sink = Vec::new();
            let _ = s.read_to_end(&mut sink);
        }
        Proto::Rest => {
            let mut reader = BufReader::new(s.try_clone().expect("clone socket"));
            for body in &chunks {
                let head = format!(
                    "POST /api/v1/datapoints HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                s.write_all(head.as_bytes()).expect("send");
                s.write_all(body).expect("send");
                let status = read_response(&mut reader);
                assert_eq!(status, 204, "REST write refused");
            }
        }
    }
}

/// Reads one response (status line, headers, Content-Length body); returns the status.
fn read_response(r: &mut BufReader<TcpStream>) -> u16 {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    status
}

fn http_get(addr: SocketAddr, path: &str, body: Option<&str>) -> String {
    let mut s = TcpStream::connect(addr).expect("connect http");
    let (method, body) = match body {
        Some(b) => ("POST", b),
        None => ("GET", ""),
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn written(http: SocketAddr) -> u64 {
    http_get(http, "/metrics", None)
        .lines()
        .find_map(|l| l.strip_prefix("kairosd_points_written_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Points queryable in [start, end] over every bench metric, summed from sample_size
/// (a count over one range reads every point and answers one per metric).
fn count(http: SocketAddr, start: i64, end: i64) -> u64 {
    (0..METRICS)
        .map(|m| {
            let q = format!(
                "{{\"start_absolute\":{start},\"end_absolute\":{},\"metrics\":[{{\"name\":\"bench.m{m}\",\"aggregators\":[{{\"name\":\"count\",\"sampling\":{{\"value\":1000,\"unit\":\"years\"}}}}]}}]}}",
                end + 999
            );
            let body = http_get(http, "/api/v1/datapoints/query", Some(&q));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            v["queries"][0]["sample_size"].as_u64().unwrap_or(0)
        })
        .sum()
}

/// Points per pickle frame: carbon-relay's MAX_DATAPOINTS_PER_MESSAGE.
const PICKLE_POINTS: usize = 500;

/// One pickle frame being built the way CPython's pickler (protocol 2) writes a list of
/// `(path, (timestamp, value))`: BINUNICODE strings, BINFLOAT numbers, TUPLE2, a memo
/// entry for every string and tuple, and the items appended in one MARK ... APPENDS.
#[derive(Default)]
struct PickleFrame {
    body: Vec<u8>,
    points: usize,
    memo: u32,
}

impl PickleFrame {
    fn memoize(&mut self) {
        self.memo += 1;
        match u8::try_from(self.memo) {
            Ok(id) => self.body.extend_from_slice(&[b'q', id]),
            Err(_) => {
                self.body.push(b'r');
                self.body.extend_from_slice(&self.memo.to_le_bytes());
            }
        }
    }

    fn push(&mut self, path: &str, ts: f64, value: f64) {
        self.body.push(b'X');
        self.body.extend_from_slice(&(path.len() as u32).to_le_bytes());
        self.body.extend_from_slice(path.as_bytes());
        self.memoize();
        for v in [ts, value] {
            self.body.push(b'G');
            self.body.extend_from_slice(&v.to_be_bytes());
        }
        self.body.push(0x86);
        self.memoize();
        self.body.push(0x86);
        self.memoize();
        self.points += 1;
    }

    /// Appends the length-prefixed frame to `out` and starts a new one.
    fn finish_into(&mut self, out: &mut Vec<u8>) {
        let mut pickle = b"\x80\x02]q\x00(".to_vec();
        pickle.append(&mut self.body);
        pickle.extend_from_slice(b"e.");
        out.extend_from_slice(&(pickle.len() as u32).to_be_bytes());
        out.extend_from_slice(&pickle);
        *self = PickleFrame::default();
    }
}

struct Daemon {
    child: Child,
    telnet: SocketAddr,
    http: SocketAddr,
    carbon: SocketAddr,
    pickle: SocketAddr,
}

impl Daemon {
    fn start(exe: &Path, data: &Path, sets: &[String]) -> Daemon {
        let mut cmd = Command::new(exe);
        cmd.arg("serve")
            .arg("--set")
            .arg(format!("kairosd.data_dir={}", data.display()))
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
            .args([
                "--set",
                "kairosdb.carbon.text.address=127.0.0.1",
                "--set",
                "kairosdb.carbon.text.port=0",
                "--set",
                "kairosdb.carbon.pickle.address=127.0.0.1",
                "--set",
                "kairosdb.carbon.pickle.port=0",
            ]);
        for s in sets {
            cmd.arg("--set").arg(s);
        }
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("start kairosd");
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
        Daemon {
            telnet: addr("telnet="),
            http: addr("http="),
            carbon: addr("carbon="),
            pickle: addr("pickle="),
            child,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}
