//! Parser throughput on the load generator's shapes (`shapes/`: one connection's 2,500
//! of the 10,000 series, repeated every step as agents do): telnet `put` lines (parsed
//! alone, and framed from 64 KiB reads as a connection does, through its series cache),
//! Graphite plaintext lines, pickle frames of 500 points as carbon-relay sends them, and
//! REST bodies of 1000 metric objects. Each is reported twice, in elements (lines or points) and in bytes, because
//! criterion keeps one throughput unit per benchmark.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kairos_protocols::decode::Decoder;
use kairos_protocols::framing::{Frame, Framer, LengthPrefixed, LineFramer};
use kairos_protocols::graphite::{PathMapper, PickleDecoder, TextDecoder};
use kairos_protocols::series_cache::CacheLimits;
use kairos_protocols::telnet::{self, Scratch, TelnetDecoder};
use kairos_protocols::{rest, PointBatch};

#[path = "shapes/mod.rs"]
mod shapes;

const LINES: usize = 10_000;
const OBJECTS: usize = 1000;

/// One connection's share of the load generator's telnet lines (2,500 series, 4 steps).
fn telnet_lines() -> Vec<u8> {
    shapes::telnet_lines(LINES)
}

fn graphite_lines() -> Vec<u8> {
    shapes::graphite_lines(LINES, true)
}

fn pickle_frames() -> Vec<u8> {
    shapes::pickle_frames(LINES)
}

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

    // The same without the series cache: every line fully parsed.
    let mut decoder = TelnetDecoder::new("KairosDB").with_cache_limits(CacheLimits::OFF);
    group.bench_function(BenchmarkId::new("telnet_lines_uncached", LINES), |b| {
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
    shapes::rest_body(0, OBJECTS)
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

    // The same body through serde_json alone (the general reader, as before the
    // scanner), and through one connection's decoder, whose series cache holds the
    // body's series after the first iteration (an agent posting every interval).
    let mut group = c.benchmark_group("rest_body");
    group.throughput(Throughput::Elements(OBJECTS as u64));
    let mut batch = PointBatch::with_capacity(OBJECTS, OBJECTS * 48);
    group.bench_function(BenchmarkId::new("general_points", OBJECTS), |b| {
        b.iter(|| {
            batch.clear();
            rest::decode_into_general(black_box(&body), &mut batch)
        })
    });
    let mut decoder = rest::RestDecoder::default();
    group.bench_function(BenchmarkId::new("cached_points", OBJECTS), |b| {
        b.iter(|| {
            batch.clear();
            decoder.decode_into(black_box(&body), &mut batch)
        })
    });
    group.finish();
}

criterion_group!(benches, bench_telnet, bench_framed, bench_rest);
criterion_main!(benches);
