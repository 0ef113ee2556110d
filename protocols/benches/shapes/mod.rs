//! The load generator's data, as one of its four connections sends it: 2,500 of the
//! 10,000 series (series `s` goes to connection `s % 4`), every series once per 10 s
//! step, in the same order each step, as real agents do. Shared by the criterion bench
//! and the instruction-count example, so both measure the same bytes.

#![allow(dead_code)]

use std::fmt::Write as _;

/// Series of one connection (10,000 series over 4 connections).
pub const SERIES: usize = 2_500;
const CONNS: usize = 4;
const METRICS: usize = 10;
const BASE_TS: u64 = 1_795_258_810;

/// Metric, host, dc and svc of point `i` (`i / SERIES` is the step).
fn series(i: usize) -> (usize, usize, usize, usize, u64) {
    let s = (i % SERIES) * CONNS;
    let (metric, combo) = (s % METRICS, s / METRICS);
    let ts = BASE_TS + (i / SERIES) as u64 * 10;
    (metric, combo / 10, combo % 5, (combo / 5) % 2, ts)
}

/// Gauges (two decimals) for m0..m4, integer counters for m5..m9.
fn value(i: usize, metric: usize, out: &mut String) {
    if metric < METRICS / 2 {
        let _ = write!(out, "{}.{:02}", 20 + i % 61, i % 100);
    } else {
        let _ = write!(out, "{}", 100_000 + i * 7 % 1_000_000);
    }
}

/// `put bench.m3 1795258810 23.86 host=h042 dc=dc3 svc=s1`
pub fn telnet_lines(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let (m, host, dc, svc, ts) = series(i);
        let _ = write!(out, "put bench.m{m} {ts} ");
        value(i, m, &mut out);
        let _ = writeln!(out, " host=h{host:03} dc=dc{dc} svc=s{svc}");
    }
    out.into_bytes()
}

/// `bench.m3;host=h042;dc=dc3;svc=s1 23.86 1795258810` (Graphite 1.1 tags), or the
/// dotted `bench.m3.h042.dc3.s1 23.86 1795258810` that the side-by-side harness sends.
pub fn graphite_lines(n: usize, tagged: bool) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let (m, host, dc, svc, ts) = series(i);
        if tagged {
            let _ = write!(out, "bench.m{m};host=h{host:03};dc=dc{dc};svc=s{svc} ");
        } else {
            let _ = write!(out, "bench.m{m}.h{host:03}.dc{dc}.s{svc} ");
        }
        value(i, m, &mut out);
        let _ = writeln!(out, " {ts}");
    }
    out.into_bytes()
}

/// The template that maps the dotted paths to the same metric and tags.
pub const TEMPLATE: &str = ".* measurement.measurement.host.dc.svc";

pub const PICKLE_POINTS: usize = 500;

/// Length-prefixed frames of 500 points as carbon-relay pickles them: protocol 2,
/// float timestamps and values, a memo entry per string and tuple.
pub fn pickle_frames(n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for frame in 0..n.div_ceil(PICKLE_POINTS) {
        let mut p = b"\x80\x02]q\x00(".to_vec();
        let mut memo = 0u32;
        let mut put = |p: &mut Vec<u8>| {
            memo += 1;
            match u8::try_from(memo) {
                Ok(id) => p.extend_from_slice(&[b'q', id]),
                Err(_) => {
                    p.push(b'r');
                    p.extend_from_slice(&memo.to_le_bytes());
                }
            }
        };
        for i in frame * PICKLE_POINTS..((frame + 1) * PICKLE_POINTS).min(n) {
            let (m, host, dc, svc, ts) = series(i);
            let path = format!("bench.m{m};host=h{host:03};dc=dc{dc};svc=s{svc}");
            p.push(b'X');
            p.extend_from_slice(&(path.len() as u32).to_le_bytes());
            p.extend_from_slice(path.as_bytes());
            put(&mut p);
            let mut v = String::new();
            value(i, m, &mut v);
            for v in [ts as f64, v.parse().expect("generated number")] {
                p.push(b'G');
                p.extend_from_slice(&f64::to_be_bytes(v));
            }
            p.push(0x86);
            put(&mut p);
            p.push(0x86);
            put(&mut p);
        }
        p.extend_from_slice(b"e.");
        out.extend_from_slice(&(p.len() as u32).to_be_bytes());
        out.extend_from_slice(&p);
    }
    out
}

/// A `POST /api/v1/datapoints` body of `objects` metric objects of one datapoint each,
/// as the load generator sends them, starting at point `first`.
pub fn rest_body(first: usize, objects: usize) -> Vec<u8> {
    let mut out = String::from("[");
    for i in first..first + objects {
        if i > first {
            out.push(',');
        }
        let (m, host, dc, svc, ts) = series(i);
        let _ = write!(out, r#"{{"name":"bench.m{m}","datapoints":[[{ts}000,"#);
        value(i, m, &mut out);
        let _ = write!(
            out,
            r#"]],"tags":{{"host":"h{host:03}","dc":"dc{dc}","svc":"s{svc}"}}}}"#
        );
    }
    out.push(']');
    out.into_bytes()
}
