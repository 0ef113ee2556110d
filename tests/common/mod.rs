//! A real kairosd process on loopback ports with a temporary data directory, and the
//! small raw-socket clients the tests talk to it with.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Daemon {
    pub child: Child,
    pub telnet: SocketAddr,
    pub http: SocketAddr,
    /// Graphite plaintext (TCP; UDP on the same port unless turned off) and pickle.
    pub carbon: Option<SocketAddr>,
    pub carbon_udp: Option<SocketAddr>,
    pub pickle: Option<SocketAddr>,
    pub data_dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts kairosd on a fresh temporary data directory.
    pub fn start(extra: &[(&str, &str)]) -> Daemon {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("data");
        let mut d = Daemon::start_in(&dir, extra);
        d._tmp = Some(tmp);
        d
    }

    /// Starts kairosd on `dir` (which may hold an earlier run's store).
    pub fn start_in(dir: &Path, extra: &[(&str, &str)]) -> Daemon {
        Daemon::start_with_env(dir, extra, &[])
    }

    /// [`Daemon::start_in`] with environment variables for the daemon (e.g. `KAIROSD_FAULTS`).
    pub fn start_with_env(dir: &Path, extra: &[(&str, &str)], env: &[(&str, &str)]) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kairosd"));
        cmd.envs(env.iter().copied());
        cmd.arg("serve");
        let mut set = vec![
            ("kairosd.data_dir", dir.to_str().unwrap()),
            ("kairosdb.telnetserver.address", "127.0.0.1"),
            ("kairosdb.telnetserver.port", "0"),
            ("kairosdb.jetty.address", "127.0.0.1"),
            ("kairosdb.jetty.port", "0"),
            ("kairosdb.carbon.text.address", "127.0.0.1"),
            ("kairosdb.carbon.text.port", "0"),
            ("kairosdb.carbon.pickle.address", "127.0.0.1"),
            ("kairosdb.carbon.pickle.port", "0"),
        ];
        set.extend_from_slice(extra);
        for (k, v) in set {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "warn");
        let mut child = cmd.spawn().expect("spawn kairosd");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ready line");
        if !line.starts_with("kairosd ready") {
            let mut err = String::new();
            child.stderr.take().unwrap().read_to_string(&mut err).ok();
            panic!("kairosd did not start: {line:?} {err}");
        }
        let field = |name: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        let optional = |name: &str| -> Option<SocketAddr> {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .and_then(|a| a.parse().ok())
        };
        // Keep stderr drained so the daemon never blocks on a full pipe.
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("KAIROSD_TEST_LOG").is_some() {
                    eprintln!("[kairosd] {l}");
                }
            }
        });
        Daemon {
            telnet: field("telnet="),
            http: field("http="),
            carbon: optional("carbon="),
            carbon_udp: optional("carbon_udp="),
            pickle: optional("pickle="),
            child,
            data_dir: dir.to_path_buf(),
            _tmp: None,
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = wait_timeout(&mut self.child, Duration::from_secs(30)).expect("kairosd did not stop on SIGTERM");
        assert!(status.success(), "kairosd exited with {status}");
        (self.data_dir.clone(), self._tmp.take())
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill9(mut self) -> (PathBuf, Option<tempfile::TempDir>) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        (self.data_dir.clone(), self._tmp.take())
    }

    pub fn telnet(&self) -> TcpStream {
        let s = TcpStream::connect(self.telnet).expect("connect telnet");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    pub fn get(&self, path: &str) -> HttpResponse {
        http(self.http, "GET", path, &[], b"")
    }

    pub fn post(&self, path: &str, body: &str) -> HttpResponse {
        http(
            self.http,
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }

    /// Raw query: the JSON response of `POST /api/v1/datapoints/query`.
    pub fn query(&self, body: serde_json::Value) -> serde_json::Value {
        let r = self.post("/api/v1/datapoints/query", &body.to_string());
        assert_eq!(r.status, 200, "query failed: {}", r.text());
        r.json()
    }

    /// The values of the single result of a one-metric query.
    pub fn values(&self, metric: &str, extra: serde_json::Value) -> Vec<serde_json::Value> {
        let mut m = serde_json::json!({ "name": metric });
        if let serde_json::Value::Object(e) = extra {
            m.as_object_mut().unwrap().extend(e);
        }
        let r = self.query(serde_json::json!({ "start_absolute": i64::MIN / 2, "metrics": [m] }));
        r["queries"][0]["results"][0]["values"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Polls until `metric` has `n` points (telnet acknowledges nothing, so tests wait).
    pub fn wait_for_points(&self, metric: &str, n: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.values(metric, serde_json::json!({}));
            if v.len() >= n || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        let text = self.get("/metrics").text();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `errors` array of an error response.
    pub fn errors(&self) -> Vec<String> {
        self.json()["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors array: {}", self.text()))
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect()
    }
}

/// One HTTP/1.1 request on a fresh connection, read until the server closes it.
pub fn http(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut s = TcpStream::connect(addr).expect("connect http");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read response");
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("response head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    HttpResponse { status, headers, body }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(nl) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..nl]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[nl + 2..nl + 2 + size]);
        data = &data[nl + 4 + size..];
    }
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

impl Daemon {
    /// A TCP connection to the Graphite plaintext port.
    pub fn carbon(&self) -> TcpStream {
        let s = TcpStream::connect(self.carbon.expect("Graphite plaintext listener on")).expect("connect carbon");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// A TCP connection to the Graphite pickle port.
    pub fn pickle(&self) -> TcpStream {
        let s = TcpStream::connect(self.pickle.expect("pickle listener on")).expect("connect pickle");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// Polls `metric` until its values (any tags) satisfy `done`, for at most 20 s.
    pub fn wait_for(&self, metric: &str, done: impl Fn(&[serde_json::Value]) -> bool) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.values(metric, serde_json::json!({}));
            if done(&v) || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until the metric `name` (a /metrics line) reaches `at_least`.
    pub fn wait_metric(&self, name: &str, at_least: f64) -> f64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.metric(name);
            if v >= at_least || Instant::now() > deadline {
                return v;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The tags of `metric`'s result: every tag name with the values its series have.
    pub fn tags_of(&self, metric: &str) -> serde_json::Value {
        let r = self.query(serde_json::json!({ "start_absolute": i64::MIN / 2, "metrics": [{ "name": metric }] }));
        r["queries"][0]["results"][0]["tags"].clone()
    }
}

/// Whether `program` can be run (it answers `--version`/`-h` or at least starts).
pub fn have_program(program: &str) -> bool {
    Command::new(program)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether python3 can import `module`.
pub fn have_python_module(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `true` when `present`; otherwise says on stderr which client is missing, for a test
/// that then returns early. `./scripts/test.sh` installs every client, so this only
/// happens where one cannot be installed at all.
pub fn client_available(present: bool, what: &str) -> bool {
    if !present {
        eprintln!("SKIPPED: {what} is not installed and could not be (./scripts/test.sh installs it)");
    }
    present
}

/// Runs a Python 3 script (with `args` in `sys.argv[1:]`), returning its stdout; panics
/// with its stderr if it fails.
pub fn python(script: &str, args: &[String]) -> String {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (the README's test command installs it)");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python script failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        script
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A number from a query result (a long or a double) as f64.
pub fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// `[[ts, value], ...]` as pairs, values as f64.
pub fn pairs(values: &[serde_json::Value]) -> Vec<(i64, f64)> {
    values.iter().map(|p| (p[0].as_i64().unwrap(), num(&p[1]))).collect()
}
