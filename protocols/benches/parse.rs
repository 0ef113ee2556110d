//! Parser throughput on the load generator's shapes: telnet `put` lines (parsed alone,
//! and framed from 64 KiB reads as a connection does), Graphite plaintext lines, pickle
//! frames of 500 points as carbon-relay sends them, and REST bodies of 1000 metric
//! objects. Each is reported twice, in elements (lines or points) and in bytes, because
//! criterion keeps one throughput unit per benchmark.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kairos_protocols::decode::Decoder;
use kairos_protocols::framing::{Frame, Framer, LengthPrefixed, LineFramer};
use kairos_protocols::graphite::{PathMapper, PickleDecoder, TextDecoder};
use kairos_protocols::telnet::{self, Scratch, TelnetDecoder};
use kairos_protocols::{rest, PointBatch};

const LINES: usize = 10_000;
const OBJECTS: usize = 1000;

/// `put bench.m3 1795258810 23.86 host=h042 dc=dc3 svc=s1`, varied like the load generator.
fn telnet_lines() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        let line = format!(
            "put bench.m{} {} {}.{:02} host=h{:03} dc=dc{} svc=s{}\n",
            i % 10,
            1_795_258_810 + i / 100,
            i % 97,
            i % 100,
            i % 1000,
            i % 4,
            i % 3
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// `bench.m3;host=h042;dc=dc3;svc=s1 23.86 1795258810`, the same series as the telnet lines.
fn graphite_lines() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..LINES {
        let line = format!(
            "bench.m{};host=h{:03};dc=dc{};svc=s{} {}.{:02} {}\n",
            i % 10,
            i % 1000,
            i % 4,
            i % 3,
            i % 97,
            i % 100,
            1_795_258_810 + i / 100,
        );
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// Frames of 500 points as carbon-relay pickles them: protocol 2, float timestamps and
/// values, a memo entry per string and tuple (see `kairosd-loadgen`).
fn pickle_frames() -> Vec<u8> {
    let mut out = Vec::new();
    for frame in 0..LINES / PICKLE_POINTS {
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
        for j in 0..PICKLE_POINTS {
            let i = frame * PICKLE_POINTS + j;
            let path = format!("bench.m{};host=h{:03};dc=dc{};svc=s{}", i % 10, i % 1000, i % 4, i % 3);
            p.push(b'X');
            p.extend_from_slice(&(path.len() as u32).to_le_bytes());
            p.extend_from_slice(path.as_bytes());
            put(&mut p);
            for v in [(1_795_258_810 + i / 100) as f64, (i % 97) as f64 + 0.25] {
                p.push(b'G');
                p.extend_from_slice(&v.to_be_bytes());
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

const PICKLE_POINTS: usize = 500;

/// What a connection does with its reads: frame 64 KiB at a time, decode each frame.
fn framed<F: Framer, D: Decoder>(input: &[u8], framer: &mut F, decoder: &mut D, batch: &mut PointBatch) {
    batch.clear();
    let mut held: Vec<u8> = Vec::with_capacity(1 << 17);
    for chunk in input.chunks(64 * 1024) {
        held.extend_from_slice(chunk);
        let used = framer
            .split(&held, false, |frame| {
                if let Frame::Data(data) = frame {
                    decoder.decode(black_box(data), batch, &mut |_| {});
                }
            })
            .unwrap();
        held.drain(..used);
    }
}

fn bench_framed(c: &mut Criterion) {
    let telnet_input = telnet_lines();
    let graphite_input = graphite_lines();
    let pickle_input = pickle_frames();
    let mapper = Arc::new(PathMapper::Graphite);
    let mut batch = PointBatch::with_capacity(LINES, LINES * 48);
    let mut group = c.benchmark_group("framed");
    group.throughput(Throughput::Elements(LINES as u64));

    let mut framer = LineFramer::new(1024);
    let mut decoder = TelnetDecoder::new("KairosDB");
    framed(&telnet_input, &mut framer, &mut decoder, &mut batch);
    assert_eq!(batch.len(), LINES);
    group.bench_function(BenchmarkId::new("telnet_lines", LINES), |b| {
        b.iter(|| framed(&telnet_input, &mut framer, &mut decoder, &mut batch))
    });

    let mut framer = LineFramer::new(4096);
    let mut decoder = TextDecoder::new(Arc::clone(&mapper));
    framed(&graphite_input, &mut framer, &mut decoder, &mut batch);
    assert_eq!(batch.len(), LINES);
    group.bench_function(BenchmarkId::new("graphite_lines", LINES), |b| {
        b.iter(|| framed(&graphite_input, &mut framer, &mut decoder, &mut batch))
    });

    let mut framer = LengthPrefixed::new(1 << 20);
    let mut decoder = PickleDecoder::new(mapper);
    framed(&pickle_input, &mut framer, &mut decoder, &mut batch);
    assert_eq!(batch.len(), LINES);
    group.bench_function(BenchmarkId::new("pickle_points", LINES), |b| {
        b.iter(|| framed(&pickle_input, &mut framer, &mut decoder, &mut batch))
    });
    group.finish();
}

fn rest_body() -> Vec<u8> {
    let mut out = String::from("[");
    for i in 0..OBJECTS {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"name":"bench.m{}","datapoints":[[{},{}.{:02}]],"tags":{{"host":"h{:03}","dc":"dc{}","svc":"s{}"}}}}"#,
            i % 10,
            1_795_258_810_000u64 + i as u64,
            i % 97,
            i % 100,
            i % 1000,
            i % 4,
            i % 3
        ));
    }
    out.push(']');
    out.into_bytes()
}

fn parse_all_lines(input: &[u8], batch: &mut PointBatch, scratch: &mut Scratch) {
    batch.clear();
    for line in input.split(|&b| b == b'\n') {
        let _ = telnet::parse_line(black_box(line), batch, scratch);
    }
}

fn bench_telnet(c: &mut Criterion) {
    let input = telnet_lines();
    let mut batch = PointBatch::with_capacity(LINES, LINES * 48);
    let mut scratch = Scratch::default();
    parse_all_lines(&input, &mut batch, &mut scratch);
    assert_eq!(batch.len(), LINES);

    for (unit, throughput) in [
        ("lines", Throughput::Elements(LINES as u64)),
        ("bytes", Throughput::Bytes(input.len() as u64)),
    ] {
        let mut group = c.benchmark_group("telnet_put");
        group.throughput(throughput);
        group.bench_function(BenchmarkId::new(unit, LINES), |b| {
            b.iter(|| parse_all_lines(&input, &mut batch, &mut scratch))
        });
        group.finish();
    }
}

fn bench_rest(c: &mut Criterion) {
    let body = rest_body();
    let decoded = rest::decode(&body);
    assert!(decoded.errors.is_empty(), "{:?}", decoded.errors);
    assert_eq!(decoded.batch.len(), OBJECTS);

    for (unit, throughput) in [
        ("points", Throughput::Elements(OBJECTS as u64)),
        ("bytes", Throughput::Bytes(body.len() as u64)),
    ] {
        let mut group = c.benchmark_group("rest_body");
        group.throughput(throughput);
        group.bench_function(BenchmarkId::new(unit, OBJECTS), |b| {
            b.iter(|| rest::decode(black_box(&body)))
        });
        group.finish();
    }
}

criterion_group!(benches, bench_telnet, bench_framed, bench_rest);
criterion_main!(benches);
