//! Writer throughput: points per second from decoded batches into RocksDB (one group
//! commit per iteration), on the benchmark's shape of 10,000 series with 3 tags.
//!
//! For instruction counts, `WRITER_ONCE=N` writes N flushes of 100,000 points (commit
//! to the staging log, then promotion) without criterion; run it under callgrind and
//! read the inclusive cost of `Writer::commit` and `Writer::promote` per point:
//!
//! ```text
//! cargo bench --bench writer --no-run     # prints the bench binary's path
//! WRITER_ONCE=10 valgrind --tool=callgrind --callgrind-out-file=/tmp/writer.cg target/release/deps/writer-HASH
//! callgrind_annotate --inclusive=yes /tmp/writer.cg | grep -E 'Writer::(commit|promote)|encode'
//! ```

use std::sync::Arc;

use criterion::{criterion_group, Criterion, Throughput};
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

fn new_writer(dir: &std::path::Path) -> Writer {
    let store = Arc::new(Store::open(dir, 7_200_000).unwrap());
    let config = WriterConfig {
        batch_points: POINTS_PER_FLUSH,
        linger: std::time::Duration::ZERO,
        promote_points: POINTS_PER_FLUSH,
        promote_interval: std::time::Duration::from_secs(1),
        sync: false,
    };
    Writer::new(store, Arc::new(Metrics::default()), config).unwrap()
}

fn writer(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let mut w = new_writer(dir.path());
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

fn main() {
    if let Some(n) = std::env::var("WRITER_ONCE").ok().and_then(|n| n.parse::<i64>().ok()) {
        let dir = tempfile::tempdir().unwrap();
        let mut w = new_writer(dir.path());
        // The first flush creates the 10,000 series; the others only add points.
        for step in 0..n {
            w.write_batches(&batches(step)).unwrap();
        }
        println!("wrote {} points", n as usize * POINTS_PER_FLUSH);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
