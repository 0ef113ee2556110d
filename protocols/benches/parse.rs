//! Parser throughput on the load generator's shapes: telnet `put` lines and REST bodies
//! of 1000 metric objects. Each is reported twice, in elements (lines or points) and in
//! bytes, because criterion keeps one throughput unit per benchmark.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kairos_protocols::telnet::{self, Scratch};
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

criterion_group!(benches, bench_telnet, bench_rest);
criterion_main!(benches);
