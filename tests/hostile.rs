//! Hostile and careless clients: a cardinality explosion, request bodies that would
//! need more memory than allowed, an HTTP client trickling its headers, random bytes on
//! every port, and 20,000 connection attempts beyond the caps. The daemon keeps serving
//! and its memory stays bounded.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn a_cardinality_explosion_is_refused_with_a_clear_error() {
    let d = Daemon::start(&[("kairosd.series.max", "3")]);
    let body: Vec<_> = (0..5)
        .map(|i| json!({"name": "card", "tags": {"h": format!("h{i}")}, "datapoints": [[1000, i]]}))
        .collect();
    let r = d.post("/api/v1/datapoints", &json!(body).to_string());
    assert_eq!(r.status, 400, "{}", r.text());
    let errors = r.errors();
    assert!(
        errors
            .iter()
            .any(|e| e.contains("2 points of new series were refused") && e.contains("kairosd.series.max (3)")),
        "{errors:?}"
    );
    assert_eq!(
        d.values("card", json!({})).len(),
        3,
        "the first three series are stored"
    );
    // Existing series keep working, over every protocol; new ones are counted.
    let ok = json!([{"name": "card", "tags": {"h": "h0"}, "datapoints": [[2000, 9]]}]);
    assert_eq!(d.post("/api/v1/datapoints", &ok.to_string()).status, 204);
    let mut s = d.telnet();
    s.write_all(b"put card 3000 1 h=h1\nput card 3000 1 h=new\n").unwrap();
    d.wait_metric("kairosd_points_refused_series_limit_total", 3.0);
    assert_eq!(d.values("card", json!({})).len(), 5);
    assert_eq!(d.metric("kairosd_series_created_total"), 3.0);
}

/// Sends the head and the first `part` bytes of a `len`-byte body, and keeps the socket.
fn partial_post(addr: SocketAddr, body: &[u8], part: usize) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /api/v1/datapoints HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(&body[..part]).unwrap();
    s
}

fn padded_body(bytes: usize, ts: i64) -> Vec<u8> {
    let mut b = format!(r#"[{{"name":"budget","tags":{{"h":"a"}},"datapoints":[[{ts},1]]}}"#).into_bytes();
    b.resize(bytes - 1, b' ');
    b.push(b']');
    b
}

#[test]
fn request_bodies_share_one_memory_budget() {
    let d = Daemon::start(&[
        ("kairosd.http.max_buffered_bytes", "1000000"),
        ("kairosd.writer.ack_timeout_ms", "1000"),
    ]);
    // One client holds most of the budget with a body it has not finished sending.
    let big = padded_body(2_000_000, 1);
    let mut holder = partial_post(d.http, &big, 950_000);
    // Until the daemon has read (and charged) all the holder's bytes, another body could
    // still fit; posting one then would also make the holder wait for room, and on a
    // loaded machine time out.
    let held = d.wait_metric("kairosd_http_buffered_body_bytes", 950_000.0);
    assert!(
        held >= 950_000.0,
        "the daemon holds {held} bytes of the unfinished body"
    );
    // Another body finds no room: a 503 saying why, after the wait.
    let r = d.post(
        "/api/v1/datapoints",
        std::str::from_utf8(&padded_body(200_000, 2)).unwrap(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.errors()[0].contains("kairosd.http.max_buffered_bytes"),
        "{:?}",
        r.errors()
    );
    // The holder finishes (its body may use the whole budget) and is stored; then there
    // is room again.
    holder.write_all(&big[950_000..]).unwrap();
    let mut raw = Vec::new();
    holder.read_to_end(&mut raw).unwrap();
    assert!(raw.starts_with(b"HTTP/1.1 204"), "{}", String::from_utf8_lossy(&raw));
    let r = d.post(
        "/api/v1/datapoints",
        std::str::from_utf8(&padded_body(200_000, 3)).unwrap(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let stored: Vec<i64> = d
        .values("budget", json!({}))
        .iter()
        .map(|v| v[0].as_i64().unwrap())
        .collect();
    assert!(stored.contains(&1) && stored.contains(&3), "{stored:?}");
}

#[test]
fn an_http_client_trickling_its_headers_is_closed() {
    let d = Daemon::start(&[("kairosd.http.header_read_timeout_ms", "500")]);
    let mut s = TcpStream::connect(d.http).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    s.write_all(b"GET /api/v1/version HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut closed = false;
    // A byte every 100 ms for up to 20 s: never a complete head.
    while started.elapsed() < Duration::from_secs(20) {
        if s.write_all(b"X").is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {} // a 408 before the close is fine
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(closed, "a client trickling its headers was never closed");
    assert_eq!(d.get("/api/v1/health/check").status, 204);
}

/// The first bytes `addr` answers to `request` with, on a fresh connection per try, each
/// try given 2 s, for up to 90 s; empty if it never answers.
fn answer_within(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            continue;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let mut buf = [0u8; 256];
        if s.write_all(request).is_ok() {
            if let Ok(n @ 1..) = s.read(&mut buf) {
                return buf[..n].to_vec();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Vec::new()
}

/// xorshift64*, so a failing run can be repeated.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_bytes_on_every_port_leave_the_daemon_serving() {
    let d = Daemon::start(&[]);
    let ports = [d.telnet, d.http, d.carbon.unwrap(), d.pickle.unwrap()];
    for (i, &addr) in ports.iter().enumerate() {
        for round in 0..4u64 {
            let garbage = random_bytes(i as u64 * 100 + round, 256 << 10);
            let Ok(mut s) = TcpStream::connect(addr) else { continue };
            let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
            let _ = s.write_all(&garbage);
            // With newlines too, so the line framers see many short "lines".
            let lines: Vec<u8> = garbage.iter().map(|&b| if b % 7 == 0 { b'\n' } else { b }).collect();
            let _ = s.write_all(&lines);
        }
    }
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for round in 0..64u64 {
        let _ = udp.send_to(&random_bytes(round, 8192), d.carbon_udp.unwrap());
    }
    // Everything still answers, and a good point over each protocol is stored.
    assert_eq!(d.get("/api/v1/health/check").status, 204);
    let mut t = d.telnet();
    t.write_all(b"put after.garbage 1700000000 1 p=telnet\n").unwrap();
    let mut c = d.carbon();
    c.write_all(b"after.garbage;p=carbon 2 1700000000\n").unwrap();
    let r = d.post(
        "/api/v1/datapoints",
        r#"[{"name":"after.garbage","tags":{"p":"rest"},"datapoints":[[1700000000000,3]]}]"#,
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        d.wait_for_points("after.garbage", 3).len(),
        3,
        "three series at one timestamp"
    );
    let q = d.query(json!({"start_absolute": 0, "metrics": [{"name": "after.garbage"}]}));
    assert_eq!(q["queries"][0]["sample_size"], 3);
}

/// A non-blocking connect from `from` to `to` (the three-way handshake is left to the
/// kernel); the descriptor, or `None` when the system refuses another socket.
fn connect_nonblocking(from: [u8; 4], to: SocketAddr) -> Option<i32> {
    let SocketAddr::V4(to) = to else { return None };
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(
            libc::AF_INET,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return None;
        }
        let local = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(from),
            },
            sin_zero: [0; 8],
        };
        let len = std::mem::size_of::<libc::sockaddr_in>() as u32;
        if libc::bind(fd, &local as *const _ as *const libc::sockaddr, len) != 0 {
            libc::close(fd);
            return None;
        }
        let remote = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: to.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes(to.ip().octets()),
            },
            sin_zero: [0; 8],
        };
        libc::connect(fd, &remote as *const _ as *const libc::sockaddr, len);
        Some(fd)
    }
}

#[test]
fn connections_beyond_the_caps_are_held_off_without_memory() {
    let d = Daemon::start(&[
        ("kairosd.telnet.max_connections", "10"),
        ("kairosd.carbon.max_connections", "10"),
        ("kairosd.http.max_connections", "10"),
        // Should a flood leave an accepted socket whose client is gone, keepalive
        // probes find it and give its slot back.
        ("kairosd.tcp.keepalive_ms", "2000"),
    ]);
    let limit = kairosd::listener::raise_fd_limit().unwrap_or(1024) as usize;
    // Leave room for the other tests of this binary and for reading /proc.
    let attempts = 20_000.min(limit.saturating_sub(512));
    let pid = d.child.id();
    let before = rss_kib(pid);
    let targets = [d.telnet, d.carbon.unwrap(), d.pickle.unwrap(), d.http];
    let mut fds = Vec::new();
    // Spread over many loopback source addresses, so the test never uses up the
    // machine's ephemeral ports.
    'outer: for i in 0..attempts as u32 {
        let from = [127, 0, 1 + (i / 1000) as u8, 1 + (i % 250) as u8];
        match connect_nonblocking(from, targets[i as usize % targets.len()]) {
            Some(fd) => fds.push(fd),
            None => break 'outer,
        }
    }
    assert!(
        fds.len() >= attempts.min(5_000),
        "could open only {} sockets",
        fds.len()
    );
    std::thread::sleep(Duration::from_millis(500));
    let during = rss_kib(pid);
    // The daemon still answers on a connection of its own once slots free up.
    // Each is reset rather than closed: a FIN leaves the kernel half-closed states
    // (FIN-WAIT-2 answers keepalive probes for tcp_fin_timeout, 60 s) that can hold the
    // daemon's ten slots per port long after the flood, with the accept queues full.
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    for fd in fds.drain(..) {
        // SAFETY: each descriptor was opened above and is closed once; the option value
        // is a `linger` whose size is passed with it.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
            libc::close(fd)
        };
    }
    // The accept queues still hold connections the kernel completed for the flood; a
    // new one may wait for a SYN-ACK retransmission (1, 2, 4, 8, 16 s...) before the
    // daemon sees it, so each probe is short and a new one is tried.
    let health = answer_within(
        d.http,
        b"GET /api/v1/health/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        health.starts_with(b"HTTP/1.1 204"),
        "{}",
        String::from_utf8_lossy(&health)
    );
    let version = answer_within(d.telnet, b"version\n");
    assert!(
        version.starts_with(b"KairosDB"),
        "{}",
        String::from_utf8_lossy(&version)
    );
    let mut t = d.telnet();
    t.write_all(b"put after.flood 1700000000 1 h=a\n").unwrap();
    assert_eq!(d.wait_for_points("after.flood", 1).len(), 1);
    let growth = during.saturating_sub(before);
    eprintln!("RSS before {before} KiB, with {attempts} connection attempts {during} KiB");
    assert!(
        growth < 32 * 1024,
        "20,000 connection attempts grew RSS by {growth} KiB"
    );
}
