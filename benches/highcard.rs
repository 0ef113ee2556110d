//! High cardinality, straight on a store (no HTTP): the loadgen's 1M-series shape
//! scaled down. `HIGHCARD_SERIES` series (default 100,000) of 3 tags get 4 points each,
//! 10 s apart, written one step at a time with a promotion after each, so every
//! (series, bucket) key holds four merge operands as right after an ingest.
//!
//! - `new_series`: committing and promoting one point for each of the series into an
//!   empty store (the dictionary, index and name entries of a first-seen series).
//! - `count_fresh`: a count over every series of the metric, its keys not yet compacted.
//! - `count_compacted`: the same count after a full compaction.
//!
//! For instruction counts, `HIGHCARD_ONCE=1` runs each shape once without criterion,
//! each in a function of its own; run it under callgrind with `--toggle-collect` on one
//! of them and divide by the series count:
//!
//! ```text
//! cargo bench --bench highcard --no-run     # prints the bench binary's path
//! HIGHCARD_ONCE=1 HIGHCARD_SERIES=20000 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!   --toggle-collect='highcard::count_fresh' target/release/deps/highcard-HASH
//! # or highcard::count_compacted, highcard::first_write
//! ```

use std::sync::Arc;

use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use kairos_protocols::{PointBatch, Value};
use kairosd::metrics::Metrics;
use kairosd::query::{self, request, Limits};
use kairosd::storage::Store;
use kairosd::writer::{Writer, WriterConfig};

const STEPS: i64 = 4;
const BASE: i64 = 1_795_000_000_000;

fn series() -> usize {
    std::env::var("HIGHCARD_SERIES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000)
}

fn writer(store: &Arc<Store>) -> Writer {
    let config = WriterConfig {
        batch_points: 1 << 20,
        linger: std::time::Duration::ZERO,
        promote_points: 1 << 24,
        promote_interval: std::time::Duration::from_secs(3600),
        sync: false,
    };
    Writer::new(Arc::clone(store), Arc::new(Metrics::default()), config).unwrap()
}

/// One point for each series at step `t`, as the loadgen names them.
fn step(series: usize, t: i64) -> PointBatch {
    let mut batch = PointBatch::new();
    for s in 0..series {
        // (s / 10, s % 2, s % 5) is unique per s: ten series a host, as in the loadgen.
        let (host, svc, dc) = (format!("h{:05}", s / 10), format!("s{}", s % 2), format!("dc{}", s % 5));
        batch.push_parts(
            "bench.hc",
            [("dc", dc.as_str()), ("host", host.as_str()), ("svc", svc.as_str())],
            BASE + t * 10_000,
            Value::Long((s as i64 * 7 + t) % 1000),
            0,
        );
    }
    batch
}

fn load(dir: &std::path::Path, series: usize) -> Arc<Store> {
    let store = Arc::new(Store::open(dir, 7_200_000).unwrap());
    let mut w = writer(&store);
    for t in 0..STEPS {
        w.write_batches(&[step(series, t)]).unwrap();
    }
    store
}

fn count_query() -> request::Query {
    let end = BASE + STEPS * 10_000;
    let body = format!(
        r#"{{"start_absolute":{BASE},"end_absolute":{end},"metrics":[{{"name":"bench.hc","aggregators":[{{"name":"count","sampling":{{"value":1000,"unit":"years"}}}}]}}]}}"#
    );
    request::parse(body.as_bytes(), BASE).unwrap()
}

fn limits() -> Limits {
    Limits {
        max_points: u64::MAX,
        now: i64::MAX,
        threads: 1,
    }
}

fn count(store: &Store, q: &request::Query, series: usize) -> usize {
    let answer = query::run(store, q, &limits()).unwrap();
    let v: serde_json::Value = serde_json::from_str(&answer.json).unwrap();
    let n = v["queries"][0]["sample_size"].as_u64().unwrap() as usize;
    assert_eq!(n, series * STEPS as usize, "every point counted");
    n
}

fn bench(c: &mut Criterion) {
    let series = series();
    let tmp = tempfile::tempdir().unwrap();
    let store = load(&tmp.path().join("fresh"), series);
    let compacted = load(&tmp.path().join("compacted"), series);
    compacted.compact();
    let q = count_query();
    let mut g = c.benchmark_group("highcard");
    g.sample_size(10);
    g.throughput(Throughput::Elements(series as u64));
    let first = step(series, 0);
    let mut n = 0;
    g.bench_function("new_series", |b| {
        b.iter_batched(
            || {
                n += 1;
                let store = Arc::new(Store::open(&tmp.path().join(format!("new{n}")), 7_200_000).unwrap());
                (writer(&store), store)
            },
            |(mut w, _store)| w.write_batches(std::slice::from_ref(&first)).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("count_fresh", |b| b.iter(|| count(&store, &q, series)));
    g.bench_function("count_compacted", |b| b.iter(|| count(&compacted, &q, series)));
    g.finish();
}

#[inline(never)]
fn first_write(w: &mut Writer, batch: &PointBatch) {
    w.write_batches(std::slice::from_ref(batch)).unwrap();
}

#[inline(never)]
fn count_fresh(store: &Store, q: &request::Query, series: usize) -> usize {
    count(store, q, series)
}

#[inline(never)]
fn count_compacted(store: &Store, q: &request::Query, series: usize) -> usize {
    // Not the same body as count_fresh, or the two could be folded into one symbol.
    std::hint::black_box(count(store, q, series)).wrapping_add(std::hint::black_box(0))
}

/// Each shape once, in functions of their own for `--toggle-collect`.
fn once() {
    let series = series();
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&tmp.path().join("s"), 7_200_000).unwrap());
    let mut w = writer(&store);
    let batches: Vec<PointBatch> = (0..STEPS).map(|t| step(series, t)).collect();
    first_write(&mut w, &batches[0]);
    for b in &batches[1..] {
        w.write_batches(std::slice::from_ref(b)).unwrap();
    }
    let q = count_query();
    count_fresh(&store, &q, series);
    store.compact();
    count_compacted(&store, &q, series);
    eprintln!("{series} series: first write, counted fresh and compacted");
}

criterion_group!(benches, bench);

fn main() {
    if std::env::var_os("HIGHCARD_ONCE").is_some() {
        once();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
