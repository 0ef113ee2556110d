//! What every TCP source shares: a connection idle with half a line is closed, and a
//! SIGTERM drains what clients are still sending instead of cutting them off.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::Daemon;
use serde_json::json;

/// Waits for the server to close `s`: a read that returns 0 (or a reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut b = [0u8; 64];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn a_connection_idle_with_half_a_line_is_closed() {
    let d = Daemon::start(&[("kairosd.telnet.idle_timeout_ms", "300")]);
    // An agent that keeps its connection open between complete lines is left alone.
    let mut quiet = d.telnet();
    quiet.write_all(b"put idle.quiet 1700000000 1 h=a\n").unwrap();
    assert_eq!(d.wait_for_points("idle.quiet", 1).len(), 1);

    let mut telnet = d.telnet();
    telnet.write_all(b"put idle.half 1700000000 1 h=").unwrap();
    let mut carbon = d.carbon();
    carbon
        .write_all(b"idle.half;h=a 1 1700000000\nidle.half;h=b 2 17000")
        .unwrap();
    let mut pickle = d.pickle();
    pickle.write_all(&[0, 0, 0, 100, 0x80, 0x02]).unwrap();
    assert!(
        closed_by_server(&mut telnet),
        "telnet connection with half a line left open"
    );
    assert!(
        closed_by_server(&mut carbon),
        "Graphite connection with half a line left open"
    );
    assert!(
        closed_by_server(&mut pickle),
        "pickle connection with half a frame left open"
    );
    assert_eq!(d.metric("kairosd_connections_idle_closed_total"), 3.0);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"telnet\"}"), 1.0);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"graphite\"}"), 1.0);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"pickle\"}"), 1.0);
    // The complete line before the half one was kept.
    assert_eq!(d.values("idle.half", json!({})), vec![json!([1_700_000_000_000i64, 1])]);
    // The quiet connection has been idle at least as long, and still works.
    quiet.write_all(b"put idle.quiet 1700000001 2 h=a\n").unwrap();
    assert_eq!(d.wait_for_points("idle.quiet", 2).len(), 2);
}

/// Sends `lines` one every few milliseconds, then closes its side; returns how many
/// writes succeeded.
fn trickle(mut s: TcpStream, lines: Vec<String>) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut sent = 0;
        for line in &lines {
            if s.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent += 1;
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = s.shutdown(Shutdown::Write);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        sent
    })
}

#[test]
fn sigterm_reads_what_clients_are_still_sending() {
    let d = Daemon::start(&[("kairosd.shutdown.drain_timeout_ms", "60000")]);
    let n = 200;
    let telnet = trickle(
        d.telnet(),
        (0..n)
            .map(|i| format!("put drain.t {} {i} h=a\n", 1_700_000_000 + i))
            .collect(),
    );
    let carbon = trickle(
        d.carbon(),
        (0..n)
            .map(|i| format!("drain.g;h=a {i} {}\n", 1_700_000_000 + i))
            .collect(),
    );
    // SIGTERM while both are still sending: about a second of lines is yet to come.
    let deadline = Instant::now() + Duration::from_secs(20);
    while d.values("drain.t", json!({})).is_empty() || d.values("drain.g", json!({})).is_empty() {
        assert!(Instant::now() < deadline, "no lines arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let (dir, tmp) = d.stop();
    assert_eq!(telnet.join().unwrap(), n as usize);
    assert_eq!(carbon.join().unwrap(), n as usize);
    let d = Daemon::start_in(&dir, &[]);
    assert_eq!(
        d.values("drain.t", json!({})).len(),
        n as usize,
        "telnet lines lost in the shutdown"
    );
    assert_eq!(
        d.values("drain.g", json!({})).len(),
        n as usize,
        "Graphite lines lost in the shutdown"
    );
    drop(tmp);
}
