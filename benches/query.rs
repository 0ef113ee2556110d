//! Query engine cost on the query benchmark's data (10,000 series × 1,000 points 10 s
//! apart, tags host and dc), straight on a store: no HTTP, no JSON parsing. The same
//! four query shapes as `kairosd-querybench`: (a) one series raw, (b) sum per minute
//! over everything, (c) group by dc with a per-minute avg, (d) one count over
//! everything. `QUERY_BENCH_SERIES` shrinks the data (e.g. for callgrind);
//! `QUERY_BENCH_DIR` keeps the loaded store there and reuses it on the next run, so a
//! profiler sees queries only.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kairos_protocols::{PointBatch, Value};
use kairosd::metrics::Metrics;
use kairosd::query::{self, request, Limits};
use kairosd::storage::Store;
use kairosd::writer::{Writer, WriterConfig};

const POINTS: usize = 1_000;
const BASE: i64 = 1_795_000_000_000;

fn load(dir: &std::path::Path, series: usize) -> Arc<Store> {
    let store = Arc::new(Store::open(dir, 7_200_000).unwrap());
    if store.next_series_id().unwrap() > 1 {
        return store;
    }
    let config = WriterConfig {
        batch_points: 1 << 20,
        linger: std::time::Duration::ZERO,
        promote_points: 1 << 24,
        promote_interval: std::time::Duration::from_secs(3600),
        sync: false,
    };
    let mut w = Writer::new(Arc::clone(&store), Arc::new(Metrics::default()), config).unwrap();
    for chunk in 0..POINTS / 100 {
        let mut batch = PointBatch::new();
        for i in chunk * 100..(chunk + 1) * 100 {
            for s in 0..series {
                let (host, dc) = (format!("h{s}"), format!("dc{}", s % 10));
                let v = ((s * 31 + i * 17) % 10_000) as f64 / 100.0;
                batch.push_parts(
                    "bench.q",
                    [("dc", dc.as_str()), ("host", host.as_str())],
                    BASE + i as i64 * 10_000,
                    Value::Double(v),
                    0,
                );
            }
        }
        w.write_batches(&[batch]).unwrap();
    }
    store.compact();
    store
}

fn bench(c: &mut Criterion) {
    let series: usize = std::env::var("QUERY_BENCH_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var_os("QUERY_BENCH_DIR").map_or_else(|| tmp.path().to_path_buf(), Into::into);
    let store = load(&dir, series);
    let end = BASE + POINTS as i64 * 10_000 - 1;
    let metric = |m: &str| format!(r#"{{"start_absolute":{BASE},"end_absolute":{end},"metrics":[{m}]}}"#);
    let shapes = [
        (
            "a_one_series_raw",
            metric(r#"{"name":"bench.q","tags":{"host":"h42"}}"#),
            POINTS,
        ),
        (
            "b_sum_per_minute",
            metric(r#"{"name":"bench.q","aggregators":[{"name":"sum","sampling":{"value":1,"unit":"minutes"}}]}"#),
            series * POINTS,
        ),
        (
            "c_group_by_dc_avg",
            metric(
                r#"{"name":"bench.q","group_by":[{"name":"tag","tags":["dc"]}],"aggregators":[{"name":"avg","sampling":{"value":1,"unit":"minutes"}}]}"#,
            ),
            series * POINTS,
        ),
        (
            "d_count_everything",
            metric(
                r#"{"name":"bench.q","aggregators":[{"name":"count","align_sampling":false,"sampling":{"value":1,"unit":"days"}}]}"#,
            ),
            series * POINTS,
        ),
    ];
    let limits = Limits {
        max_points: u64::MAX,
        now: i64::MAX,
        // QUERY_BENCH_THREADS=1 for instruction counts of one reader.
        threads: std::env::var("QUERY_BENCH_THREADS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0),
    };
    let mut g = c.benchmark_group("query");
    g.sample_size(10);
    for (name, body, points) in shapes {
        let q = request::parse(body.as_bytes(), BASE).unwrap();
        g.throughput(Throughput::Elements(points as u64));
        g.bench_function(name, |b| b.iter(|| query::run(&store, &q, &limits).unwrap().json.len()));
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
