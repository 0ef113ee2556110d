//! Writer throughput: points per second from decoded batches into RocksDB (one group
//! commit per iteration), on the benchmark's shape of 10,000 series with 3 tags.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kairos_protocols::{PointBatch, Value};
use kairosd::metrics::Metrics;
use kairosd::storage::Store;
use kairosd::writer::{Writer, WriterConfig};

const SERIES: usize = 10_000;
const POINTS_PER_FLUSH: usize = 100_000;

/// One flush worth of points, split into telnet-sized batches of ~1000 points.
fn batches(step: i64) -> Vec<PointBatch> {
    let mut out = Vec::new();
    let mut b = PointBatch::new();
    for i in 0..POINTS_PER_FLUSH {
        let s = i % SERIES;
        let t = 1_795_000_000_000 + (step * (POINTS_PER_FLUSH / SERIES) as i64 + (i / SERIES) as i64) * 10_000;
        let (host, dc, svc) = (
            format!("h{:03}", s / 10 / 10),
            format!("dc{}", (s / 10) % 5),
            format!("s{}", (s / 50) % 2),
        );
        let metric = format!("bench.m{}", s % 10);
        let value = if s % 10 < 5 {
            Value::Double(20.0 + (i % 100) as f64 / 100.0)
        } else {
            Value::Long(i as i64)
        };
        b.push_parts(
            &metric,
            [("dc", dc.as_str()), ("host", host.as_str()), ("svc", svc.as_str())],
            t,
            value,
            0,
        );
        if b.len() == 1000 {
            out.push(std::mem::take(&mut b));
        }
    }
    out
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(dir.path(), 7_200_000).unwrap());
    let config = WriterConfig {
        batch_points: POINTS_PER_FLUSH,
        linger: std::time::Duration::ZERO,
        promote_points: POINTS_PER_FLUSH,
        promote_interval: std::time::Duration::from_secs(1),
        sync: false,
    };
    let mut w = Writer::new(store, Arc::new(Metrics::default()), config).unwrap();
    let flushes: Vec<Vec<PointBatch>> = (0..20).map(batches).collect();
    let mut g = c.benchmark_group("writer");
    g.throughput(Throughput::Elements(POINTS_PER_FLUSH as u64));
    g.sample_size(20);
    let mut i = 0;
    g.bench_function("group_commit_100k_points_10k_series", |b| {
        b.iter(|| {
            w.write_batches(&flushes[i % flushes.len()]).unwrap();
            i += 1;
        })
    });
    g.finish();
}

criterion_group!(benches, writer);
criterion_main!(benches);
