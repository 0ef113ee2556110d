//! Chunk codec throughput and size on the benchmark's data shape: 360 points per chunk,
//! 10 s apart in ms; gauges are a 2-decimal random walk in 20–80 with steps up to ±0.5,
//! counters grow by a random 0..1000 per point. Each measurement walks 100 different
//! chunks so the branch predictor cannot learn one chunk by heart.
//!
//! `cargo bench --bench chunk` (needs `[[bench]] name = "chunk" harness = false`).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kairos_protocols::Value;
use kairosd::storage::chunk::{decode, encode, encode_expiring, merge};

const CHUNKS: usize = 100;
const POINTS: usize = 360;
const STEP_MS: i64 = 10_000;
const START: i64 = 1_700_000_000_000;

/// splitmix64: reproducible data without a rand dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> i64 {
        (self.next() % n) as i64
    }
}

/// Gauges are built from integer hundredths and divided, which is what parsing "23.86"
/// off the wire yields.
fn gauges(rng: &mut Rng, start: i64, n: usize) -> Vec<(i64, Value)> {
    let mut m = 2000 + rng.below(6000);
    (0..n as i64)
        .map(|i| {
            m = (m + rng.below(101) - 50).clamp(2000, 8000);
            (start + i * STEP_MS, Value::Double(m as f64 / 100.0))
        })
        .collect()
}

fn counters(rng: &mut Rng, start: i64, n: usize) -> Vec<(i64, Value)> {
    let mut c = rng.below(1 << 40);
    (0..n as i64)
        .map(|i| {
            c += rng.below(1000);
            (start + i * STEP_MS, Value::Long(c))
        })
        .collect()
}

type Maker = fn(&mut Rng, i64, usize) -> Vec<(i64, Value)>;

/// A point's expiry from its timestamp (ms, 0 = never).
type ExpiryOf = fn(&mut Rng, i64) -> i64;

fn bench(c: &mut Criterion) {
    let shapes: [(&str, Maker); 2] = [("gauge", gauges), ("counter", counters)];
    for (name, make) in shapes {
        let mut rng = Rng(7);
        let chunks: Vec<Vec<(i64, Value)>> = (0..CHUNKS)
            .map(|i| make(&mut rng, START + i as i64 * 3_600_000, POINTS))
            .collect();
        let encoded: Vec<Vec<u8>> = chunks
            .iter()
            .map(|pts| {
                let mut buf = Vec::new();
                encode(pts, &mut buf);
                buf
            })
            .collect();
        let bytes: usize = encoded.iter().map(Vec::len).sum();
        println!(
            "{name}: {:.3} bytes/point ({} points per chunk)",
            bytes as f64 / (CHUNKS * POINTS) as f64,
            POINTS
        );

        // The expiry column (ttl): none (the flag stays clear, the bytes are those
        // above), one ttl for a whole chunk written at once (a backfill), and points
        // that arrived in real time, each up to 1.5 s after its timestamp, with a 1-day
        // ttl counted from arrival.
        let ttl_cases: [(&str, ExpiryOf); 4] = [
            ("no ttl", |_, _| 0),
            ("ttl, one write", |_, _| START + 86_400_000),
            ("ttl, aligned with the timestamp", |_, ts| ts + 86_400_000),
            // Whole seconds, as the writer computes them.
            ("ttl, real-time arrival", |rng, ts| {
                ((ts + rng.below(1500)).div_euclid(1000) + 86_400) * 1000
            }),
        ];
        for (case, expiry_of) in ttl_cases {
            let mut rng = Rng(11);
            let bytes: usize = chunks
                .iter()
                .map(|pts| {
                    let exp: Vec<i64> = pts.iter().map(|p| expiry_of(&mut rng, p.0)).collect();
                    let mut buf = Vec::new();
                    encode_expiring(pts, &exp, &mut buf);
                    buf.len()
                })
                .sum();
            println!(
                "{name}, {case}: {:.3} bytes/point",
                bytes as f64 / (CHUNKS * POINTS) as f64
            );
        }

        let mut g = c.benchmark_group(format!("chunk/{name}"));
        g.throughput(Throughput::Elements((CHUNKS * POINTS) as u64));
        g.bench_function("encode", |b| {
            let mut buf = Vec::with_capacity(4096);
            b.iter(|| {
                for pts in &chunks {
                    buf.clear();
                    encode(black_box(pts), &mut buf);
                    black_box(&buf);
                }
            })
        });
        g.bench_function("decode", |b| {
            let mut out = Vec::with_capacity(POINTS);
            b.iter(|| {
                for bytes in &encoded {
                    out.clear();
                    decode(black_box(bytes), &mut out).unwrap();
                    black_box(&out);
                }
            })
        });

        // The writer's common case: a full chunk plus ten small flushes of newer points.
        const OPS: usize = 10;
        const OP_POINTS: usize = 4;
        let operands: Vec<Vec<Vec<u8>>> = chunks
            .iter()
            .map(|pts| {
                let mut next = pts.last().unwrap().0 + STEP_MS;
                (0..OPS)
                    .map(|_| {
                        let op = make(&mut rng, next, OP_POINTS);
                        next += OP_POINTS as i64 * STEP_MS;
                        let mut buf = Vec::new();
                        encode(&op, &mut buf);
                        buf
                    })
                    .collect()
            })
            .collect();
        g.throughput(Throughput::Elements((CHUNKS * (POINTS + OPS * OP_POINTS)) as u64));
        g.bench_function("merge_10_appends", |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                for (existing, ops) in encoded.iter().zip(&operands) {
                    out.clear();
                    merge(Some(black_box(existing)), ops.iter().map(Vec::as_slice), &mut out).unwrap();
                    black_box(&out);
                }
            })
        });
        // An out-of-order operand: a rewrite of ten points in the middle of the chunk.
        let rewrites: Vec<Vec<u8>> = chunks
            .iter()
            .map(|pts| {
                let mut buf = Vec::new();
                encode(&make(&mut rng, pts[POINTS / 2].0, 10), &mut buf);
                buf
            })
            .collect();
        g.throughput(Throughput::Elements((CHUNKS * POINTS) as u64));
        g.bench_function("merge_overlap", |b| {
            let mut out = Vec::with_capacity(4096);
            b.iter(|| {
                for (existing, op) in encoded.iter().zip(&rewrites) {
                    out.clear();
                    merge(Some(black_box(existing)), [op.as_slice()], &mut out).unwrap();
                    black_box(&out);
                }
            })
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
