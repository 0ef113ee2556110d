//! The Graphite pickle listener over real sockets: frames built by Python's `pickle`
//! exactly as carbon builds them (protocols 0 to 5), hostile pickles, frame limits,
//! carbon-relay itself and the graphitesend client from PyPI.

mod common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{client_available, have_program, have_python_module, pairs, python, Daemon};
use serde_json::json;

/// Python that frames a pickle the way carbon's clients do: `struct.pack('!L', len)`.
const FRAME: &str = r#"
import pickle, socket, struct, sys
def frame(data, protocol=2):
    payload = pickle.dumps(data, protocol=protocol)
    return struct.pack('!L', len(payload)) + payload
def connect():
    return socket.create_connection(('127.0.0.1', int(sys.argv[1])))
"#;

#[test]
fn python_pickle_protocols_0_to_5() {
    let d = Daemon::start(&[]);
    let port = d.pickle.unwrap().port().to_string();
    python(
        &format!(
            "{FRAME}
s = connect()
for proto in range(6):
    m = 'pk.p%d;proto=%d' % (proto, proto)
    # ints, floats (carbon-relay sends both as floats) and numeric strings
    s.sendall(frame([(m, (1700000000, 1)), (m, (1700000001.0, 2.5)), (m, ('1700000002', '3.25')),
                     (m, (1700000003.7, '1e3'))], protocol=proto))
s.close()
"
        ),
        &[port],
    );
    for proto in 0..6 {
        let metric = format!("pk.p{proto}");
        let v = d.wait_for_points(&metric, 4);
        assert_eq!(
            pairs(&v),
            vec![
                (1_700_000_000_000, 1.0),
                (1_700_000_001_000, 2.5),
                (1_700_000_002_000, 3.25),
                (1_700_000_003_000, 1000.0)
            ],
            "protocol {proto}"
        );
        assert_eq!(v[0][1], json!(1), "an int stays a long");
        assert_eq!(d.tags_of(&metric), json!({"proto": [proto.to_string()]}));
    }
    assert_eq!(d.metric("kairosd_points_accepted_total{protocol=\"pickle\"}"), 24.0);
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"pickle\"}"), 0.0);
}

#[test]
fn hostile_pickles_neither_run_nor_crash_anything() {
    let d = Daemon::start(&[]);
    let port = d.pickle.unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    let out = python(
        &format!(
            r#"{FRAME}
import os
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + sys.argv[2],))
def raw(payload):
    return struct.pack('!L', len(payload)) + payload
s = connect()
s.sendall(frame([('hostile.good', (1700000000, 1))]))
# GLOBAL + REDUCE: loading it would run os.system
s.sendall(frame([('hostile.evil', (1700000001, Evil()))], protocol=0))
s.sendall(frame([('hostile.evil', (1700000001, Evil()))], protocol=4))
# 10,000 nested lists (Python's own pickler refuses to write this; the bytes are hand-made)
s.sendall(raw(b'\x80\x02' + b']' * 10000 + b'a' * 9999 + b'.'))
# 100,000 memo references to a list
s.sendall(raw(b'\x80\x02]q\x00' + b'h\x00' * 100000 + b'.'))
# the same connection still works
s.sendall(frame([('hostile.good', (1700000002, 2))]))
s.close()
# a 4 GB length header: the connection is closed before any body is sent
s = connect()
s.sendall(frame([('hostile.before', (1700000003, 3))]))
s.sendall(struct.pack('!L', 0xFFFFFFFF) + b'\x80\x02')
s.settimeout(10)
print('closed' if s.recv(1) == b'' else 'open')
"#
        ),
        &[port, marker.display().to_string()],
    );
    assert_eq!(out.trim(), "closed");
    assert_eq!(
        pairs(&d.wait_for_points("hostile.good", 2)),
        vec![(1_700_000_000_000, 1.0), (1_700_000_002_000, 2.0)]
    );
    assert_eq!(
        d.wait_for_points("hostile.before", 1),
        vec![json!([1_700_000_003_000i64, 3])]
    );
    assert!(d.values("hostile.evil", json!({})).is_empty());
    assert!(!marker.exists(), "a pickled os.system ran");
    assert_eq!(
        d.wait_metric("kairosd_points_rejected_total{protocol=\"pickle\"}", 5.0),
        5.0
    );
    assert_eq!(d.metric("kairosd_frames_too_long_total{protocol=\"pickle\"}"), 1.0);
    // The daemon is alive and well.
    assert_eq!(d.get("/api/v1/health/check").status, 204);
}

#[test]
fn frame_limits_and_a_frame_cut_off_by_the_close() {
    let d = Daemon::start(&[("kairosdb.carbon.pickle.max_size", "300")]);
    // Frames below the cap are taken; one over it closes the connection, the frames
    // before it kept.
    let big = format!("cap.big.{}", "x".repeat(300));
    let port = d.pickle.unwrap().port().to_string();
    let out = python(
        &format!(
            "{FRAME}
s = connect()
s.sendall(frame([('cap.small', (1700000000, 1))]))
s.sendall(frame([(sys.argv[2], (1700000001, 2))]))
s.settimeout(10)
print('closed' if s.recv(1) == b'' else 'open')
"
        ),
        &[port.clone(), big.clone()],
    );
    assert_eq!(out.trim(), "closed");
    assert_eq!(d.wait_for_points("cap.small", 1).len(), 1);
    assert!(d.values(&big, json!({})).is_empty());
    // A whole frame, then half of one, then the client closes: the whole one is kept.
    python(
        &format!(
            "{FRAME}
s = connect()
whole = frame([('cut.ok', (1700000000, 5))])
s.sendall(whole + struct.pack('!L', 100) + whole[4:20])
s.close()
"
        ),
        &[port],
    );
    assert_eq!(d.wait_for_points("cut.ok", 1), vec![json!([1_700_000_000_000i64, 5])]);
    assert_eq!(
        d.wait_metric("kairosd_points_rejected_total{protocol=\"pickle\"}", 2.0),
        2.0
    );
}

#[test]
fn bad_points_in_a_frame_are_skipped_and_the_rest_kept() {
    let d = Daemon::start(&[]);
    let port = d.pickle.unwrap().port().to_string();
    python(
        &format!(
            "{FRAME}
s = connect()
s.sendall(frame([('mix.ok', (1700000000, 1)), 'junk', ('mix.nan', (1700000001, float('nan'))),
                 ('mix.ok;bad', (1700000002, 2)), ('mix.ok', ('soon', 3)), ('mix.ok', (1700000004, 4)),
                 ('mix.ok', (1700000005, None))]))
s.close()
"
        ),
        &[port],
    );
    assert_eq!(
        pairs(&d.wait_for_points("mix.ok", 2)),
        vec![(1_700_000_000_000, 1.0), (1_700_000_004_000, 4.0)]
    );
    assert_eq!(
        d.wait_metric("kairosd_points_rejected_total{protocol=\"pickle\"}", 5.0),
        5.0
    );
    assert!(d.values("mix.nan", json!({})).is_empty());
}

#[test]
fn graphitesend_from_pypi_sends_string_values() {
    if !client_available(have_python_module("graphitesend"), "graphitesend (PyPI)") {
        return;
    }
    let d = Daemon::start(&[]);
    let port = d.pickle.unwrap().port().to_string();
    python(
        r#"
import sys, graphitesend
g = graphitesend.init(init_type='pickle', graphite_server='127.0.0.1', graphite_port=int(sys.argv[1]),
                      prefix='gs', system_name='')
g.send('one', 1.5, timestamp=1700000000)
g.send_list([('two', 2), ('three', 3.25)], timestamp=1700000001)
g.disconnect()
"#,
        &[port],
    );
    assert_eq!(d.wait_for_points("gs.one", 1), vec![json!([1_700_000_000_000i64, 1.5])]);
    assert_eq!(pairs(&d.wait_for_points("gs.two", 1)), vec![(1_700_000_001_000, 2.0)]);
    assert_eq!(
        pairs(&d.wait_for_points("gs.three", 1)),
        vec![(1_700_000_001_000, 3.25)]
    );
}

/// carbon-relay (Debian graphite-carbon) takes plaintext and relays it to kairosd's
/// pickle port the way it relays to carbon-cache: protocol 2, float timestamps and
/// values, up to 500 points a frame, one long-lived connection.
#[test]
fn carbon_relay_relays_plaintext_to_the_pickle_port() {
    if !client_available(have_program("carbon-relay"), "carbon-relay (Debian graphite-carbon)") {
        return;
    }
    let d = Daemon::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let relay_port = free_port();
    let conf = dir.path().join("carbon.conf");
    let p = dir.path().display();
    std::fs::write(
        &conf,
        format!(
            "[cache]\nSTORAGE_DIR = {p}/storage/\nLOCAL_DATA_DIR = {p}/storage/whisper/\nCONF_DIR = {p}/\n\
             LOG_DIR = {p}/log/\nPID_DIR = {p}/\nUSER =\n\
             [relay]\nLINE_RECEIVER_INTERFACE = 127.0.0.1\nLINE_RECEIVER_PORT = {relay_port}\n\
             PICKLE_RECEIVER_INTERFACE = 127.0.0.1\nPICKLE_RECEIVER_PORT = {pickle_in}\n\
             RELAY_METHOD = consistent-hashing\nDESTINATIONS = 127.0.0.1:{dest}\n\
             MAX_DATAPOINTS_PER_MESSAGE = 500\nMAX_QUEUE_SIZE = 100000\nUSE_FLOW_CONTROL = True\n",
            pickle_in = free_port(),
            dest = d.pickle.unwrap().port(),
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 60s:1d\n",
    )
    .unwrap();
    let mut relay = Command::new("carbon-relay")
        .arg(format!("--config={}", conf.display()))
        .arg(format!("--pidfile={p}/relay.pid"))
        .arg(format!("--logdir={p}/log"))
        .args(["--nodaemon", "start"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start carbon-relay");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut s = loop {
        match std::net::TcpStream::connect(("127.0.0.1", relay_port)) {
            Ok(s) => break s,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => panic!("carbon-relay did not listen on {relay_port}: {e}"),
        }
    };
    let mut lines = String::new();
    for i in 0..1200 {
        lines.push_str(&format!("relay.m;h=h{} {i}.5 {}\n", i % 3, 1_700_000_000 + i));
    }
    s.write_all(lines.as_bytes()).unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(30);
    let got = loop {
        let r = d.query(json!({"start_absolute": 0, "metrics": [{"name": "relay.m", "limit": 0}]}));
        let got = r["queries"][0]["sample_size"].as_u64().unwrap();
        if got >= 1200 || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    unsafe { libc::kill(relay.id() as i32, libc::SIGTERM) };
    if common::wait_timeout(&mut relay, Duration::from_secs(10)).is_none() {
        let _ = relay.kill();
        let _ = relay.wait();
    }
    let mut log = String::new();
    relay.stdout.take().unwrap().read_to_string(&mut log).ok();
    assert_eq!(got, 1200, "carbon-relay said:\n{log}");
    let v = d.values("relay.m", json!({"tags": {"h": ["h1"]}}));
    assert_eq!(v.len(), 400);
    assert_eq!(pairs(&v)[0], (1_700_000_001_000, 1.5));
    assert_eq!(d.metric("kairosd_points_rejected_total{protocol=\"pickle\"}"), 0.0);
}

/// A port nobody listens on right now (for the programs under test that need a fixed one).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
