//! File import benchmark: writes a file of the benchmark's shape (10,000 series =
//! 2,000 host/dc/svc tag sets × 5 value columns, rows `time,host,dc,svc,m0..m4`) as
//! CSV, gzipped CSV, NDJSON and Parquet, imports each through `kairosd ingest` into a
//! fresh daemon, and the CSV into VictoriaMetrics' `/api/v1/import/csv` on the same
//! machine in the same run. Prints rows/s, points/s, the server's CPU seconds per
//! million points and its peak RSS (VmHWM), one JSON line per run.
//!
//! `kairosd-importbench --rows 1000000` (VictoriaMetrics from `victoria-metrics` on the
//! PATH; `--no-vm` skips it). Loopback only.

use kairosd::procstat::{cpu_seconds, status_kb};
use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kairosd::http::client::{self, Body, Url};
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

#[derive(Parser)]
#[command(about = "Import files of the benchmark's shape into kairosd and VictoriaMetrics")]
struct Args {
    #[arg(long, default_value_t = 1_000_000)]
    rows: usize,
    /// Formats to import through kairosd: csv, csv.gz, ndjson, parquet.
    #[arg(long, value_delimiter = ',', default_value = "csv,csv.gz,ndjson,parquet")]
    formats: Vec<String>,
    #[arg(long, default_value = "/tmp/kairosd-importbench")]
    work: PathBuf,
    /// The kairosd binary (default: beside this one).
    #[arg(long)]
    kairosd: Option<PathBuf>,
    #[arg(long, default_value = "victoria-metrics")]
    victoria_metrics: String,
    #[arg(long)]
    no_vm: bool,
    /// Keep the generated files (and reuse them next time).
    #[arg(long)]
    keep: bool,
}

const TAG_SETS: usize = 2000;
const VALUES: usize = 5;

const SOURCE: &str = r#"{"name":"bench","timestamp":{"column":"time","format":"unix_ms"},
 "metric":{"prefix":"bench.","value_columns":["m0","m1","m2","m3","m4"]},
 "tags":{"columns":["host","dc","svc"]}}"#;

struct Row {
    time: i64,
    set: usize,
    values: [f64; VALUES],
}

fn row(i: usize) -> Row {
    Row {
        time: 1_700_000_000_000 + (i / TAG_SETS) as i64 * 10_000,
        set: i % TAG_SETS,
        values: std::array::from_fn(|m| ((i * 7 + m * 13) % 10_000) as f64 / 100.0),
    }
}

fn tags(set: usize) -> (String, String, String) {
    (format!("h{set:04}"), format!("dc{}", set % 4), format!("s{}", set % 3))
}

fn write_csv(path: &Path, rows: usize, gzip: bool) {
    let f = std::fs::File::create(path).expect("create csv");
    let mut w: Box<dyn Write> = if gzip {
        Box::new(flate2::write::GzEncoder::new(
            BufWriter::new(f),
            flate2::Compression::fast(),
        ))
    } else {
        Box::new(BufWriter::with_capacity(1 << 20, f))
    };
    writeln!(w, "time,host,dc,svc,m0,m1,m2,m3,m4").unwrap();
    for i in 0..rows {
        let r = row(i);
        let (h, d, s) = tags(r.set);
        write!(w, "{},{h},{d},{s}", r.time).unwrap();
        for v in r.values {
            write!(w, ",{v:.2}").unwrap();
        }
        w.write_all(b"\n").unwrap();
    }
    w.flush().unwrap();
}

fn write_ndjson(path: &Path, rows: usize) {
    let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create ndjson"));
    for i in 0..rows {
        let r = row(i);
        let (h, d, s) = tags(r.set);
        write!(w, r#"{{"time":{},"host":"{h}","dc":"{d}","svc":"{s}""#, r.time).unwrap();
        for (m, v) in r.values.iter().enumerate() {
            write!(w, r#","m{m}":{v:.2}"#).unwrap();
        }
        w.write_all(b"}\n").unwrap();
    }
    w.flush().unwrap();
}

fn write_parquet(path: &Path, rows: usize) {
    let schema = Arc::new(
        parse_message_type(
            "message bench { REQUIRED INT64 time (TIMESTAMP(MILLIS,true)); REQUIRED BYTE_ARRAY host (UTF8);
             REQUIRED BYTE_ARRAY dc (UTF8); REQUIRED BYTE_ARRAY svc (UTF8); REQUIRED DOUBLE m0; REQUIRED DOUBLE m1;
             REQUIRED DOUBLE m2; REQUIRED DOUBLE m3; REQUIRED DOUBLE m4; }",
        )
        .expect("schema"),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let f = std::fs::File::create(path).expect("create parquet");
    let mut writer = SerializedFileWriter::new(f, schema, props).expect("writer");
    let mut start = 0;
    while start < rows {
        let group: Vec<Row> = (start..rows.min(start + 100_000)).map(row).collect();
        start += group.len();
        let mut rg = writer.next_row_group().expect("row group");
        let mut col = 0;
        while let Some(mut c) = rg.next_column().expect("column") {
            match col {
                0 => {
                    let v: Vec<i64> = group.iter().map(|r| r.time).collect();
                    c.typed::<Int64Type>().write_batch(&v, None, None).expect("write");
                }
                1..=3 => {
                    let v: Vec<ByteArray> = group
                        .iter()
                        .map(|r| {
                            let (h, d, s) = tags(r.set);
                            ByteArray::from([h, d, s][col - 1].as_str())
                        })
                        .collect();
                    c.typed::<ByteArrayType>().write_batch(&v, None, None).expect("write");
                }
                _ => {
                    let v: Vec<f64> = group.iter().map(|r| r.values[col - 4]).collect();
                    c.typed::<DoubleType>().write_batch(&v, None, None).expect("write");
                }
            }
            c.close().expect("close");
            col += 1;
        }
        rg.close().expect("row group");
    }
    writer.close().expect("close");
}

fn main() {
    let args = Args::parse();
    let exe = args
        .kairosd
        .clone()
        .unwrap_or_else(|| std::env::current_exe().expect("own path").with_file_name("kairosd"));
    std::fs::create_dir_all(&args.work).expect("work dir");
    let points = args.rows * VALUES;
    let mut results = Vec::new();
    for format in &args.formats {
        let path = args.work.join(format!("bench-{}.{format}", args.rows));
        if !path.exists() {
            eprintln!("writing {}...", path.display());
            match format.as_str() {
                "csv" => write_csv(&path, args.rows, false),
                "csv.gz" => write_csv(&path, args.rows, true),
                "ndjson" => write_ndjson(&path, args.rows),
                "parquet" => write_parquet(&path, args.rows),
                other => panic!("unknown format {other}"),
            }
        }
        let data = args.work.join(format!("kairosd-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut d = Server::kairosd(&exe, &data);
        let url = format!("http://{}", d.http);
        let r = client::request(
            &Url::parse(&format!("{url}/api/v1/sources")).unwrap(),
            "POST",
            &[],
            Body::Bytes(SOURCE.as_bytes()),
            None,
        )
        .expect("create source");
        assert_eq!(r.status, 201, "creating the source failed");
        let cpu0 = cpu_seconds(d.child.id());
        let kids0 = children_cpu();
        let started = Instant::now();
        let out = Command::new(&exe)
            .args(["ingest", "bench", path.to_str().unwrap(), "--json", "-q", "--url", &url])
            .output()
            .expect("kairosd ingest");
        let secs = started.elapsed().as_secs_f64();
        let client_cpu = children_cpu() - kids0;
        let cpu = cpu_seconds(d.child.id()) - cpu0;
        let hwm = status_kb(d.child.id(), "VmHWM:");
        let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let written = body["points_written"].as_u64().unwrap_or(0);
        if written != points as u64 {
            eprintln!(
                "kairosd wrote {written} of {points} points: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        d.stop();
        let _ = std::fs::remove_dir_all(&data);
        results.push(serde_json::json!({
            "server": "kairosd", "format": format, "rows": args.rows, "points": points,
            "file_bytes": std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0),
            "seconds": round(secs), "rows_per_s": (args.rows as f64 / secs).round(),
            "points_per_s": (points as f64 / secs).round(),
            "server_cpu_s_per_million_points": round(cpu / (points as f64 / 1e6)),
            "client_cpu_s": round(client_cpu), "server_peak_rss_mb": round(hwm as f64 / 1024.0),
            "points_written": written,
        }));
        println!("{}", results.last().unwrap());
    }
    if !args.no_vm {
        let path = args.work.join(format!("bench-{}.csv", args.rows));
        if !path.exists() {
            write_csv(&path, args.rows, false);
        }
        let data = args.work.join(format!("vm-data-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&data);
        let mut vm = Server::victoria_metrics(&args.victoria_metrics, &data);
        let descriptor = "1:time:unix_ms,2:label:host,3:label:dc,4:label:svc,5:metric:m0,6:metric:m1,7:metric:m2,\
                          8:metric:m3,9:metric:m4";
        let url = Url::parse(&format!("http://{}/api/v1/import/csv?format={descriptor}", vm.http)).unwrap();
        let mut file = std::fs::File::open(&path).unwrap();
        // The header line is data to VictoriaMetrics: skip it.
        let mut first = [0u8; 1];
        let mut header = Vec::new();
        while file.read(&mut first).unwrap() == 1 && first[0] != b'\n' {
            header.push(first[0]);
        }
        let cpu0 = cpu_seconds(vm.child.id());
        let started = Instant::now();
        let r = client::request(
            &url,
            "POST",
            &[],
            Body::Stream(&mut BufReader::with_capacity(1 << 20, file)),
            None,
        )
        .expect("VictoriaMetrics import");
        let status = r.status;
        let _ = r.text();
        let posted = started.elapsed().as_secs_f64();
        // VictoriaMetrics answers before the rows are searchable: wait until they are.
        let count_url = Url::parse(&format!("http://{}/api/v1/series/count", vm.http)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        let _ = client::request(
            &Url::parse(&format!("http://{}/internal/force_flush", vm.http)).unwrap(),
            "GET",
            &[],
            Body::Empty,
            None,
        );
        loop {
            let n = client::request(&count_url, "GET", &[], Body::Empty, None)
                .ok()
                .and_then(|r| r.text().ok())
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|j| j["data"][0].as_u64())
                .unwrap_or(0);
            if n >= (TAG_SETS * VALUES).min(points) as u64 || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let secs = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds(vm.child.id()) - cpu0;
        let hwm = status_kb(vm.child.id(), "VmHWM:");
        vm.stop();
        let _ = std::fs::remove_dir_all(&data);
        results.push(serde_json::json!({
            "server": "victoria-metrics", "format": "csv", "rows": args.rows, "points": points, "status": status,
            "seconds_to_answer": round(posted), "seconds": round(secs),
            "rows_per_s": (args.rows as f64 / posted).round(), "points_per_s": (points as f64 / posted).round(),
            "server_cpu_s_per_million_points": round(cpu / (points as f64 / 1e6)),
            "server_peak_rss_mb": round(hwm as f64 / 1024.0),
        }));
        println!("{}", results.last().unwrap());
    }
    if !args.keep {
        for format in &args.formats {
            let _ = std::fs::remove_file(args.work.join(format!("bench-{}.{format}", args.rows)));
        }
        let _ = std::fs::remove_file(args.work.join(format!("bench-{}.csv", args.rows)));
    }
}

fn round(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

struct Server {
    child: Child,
    http: SocketAddr,
}

impl Server {
    fn kairosd(exe: &Path, data: &Path) -> Server {
        let mut child = Command::new(exe)
            .arg("serve")
            .args(["--set", &format!("kairosd.data_dir={}", data.display())])
            .args([
                "--set",
                "kairosdb.jetty.address=127.0.0.1",
                "--set",
                "kairosdb.jetty.port=0",
            ])
            .args([
                "--set",
                "kairosdb.telnetserver.address=127.0.0.1",
                "--set",
                "kairosdb.telnetserver.port=0",
            ])
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
        Server { child, http }
    }

    fn victoria_metrics(exe: &str, data: &Path) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = Command::new(exe)
            .arg(format!("-storageDataPath={}", data.display()))
            .arg(format!("-httpListenAddr={http}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(http).is_err() {
            assert!(Instant::now() < deadline, "victoria-metrics did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child, http }
    }

    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// CPU seconds of reaped children (the `kairosd ingest` client).
fn children_cpu() -> f64 {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}
