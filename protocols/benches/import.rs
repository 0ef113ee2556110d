//! Import decoding throughput on the benchmark's shape (10,000 series, 3 tags, 5 values
//! per row): CSV and NDJSON fed in 64 KiB chunks, Parquet from memory. Each is reported
//! in rows/s and points/s (criterion keeps one throughput unit per benchmark).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use kairos_protocols::import::{Format, Import, ImportOptions, Output, ParquetRows};

#[path = "import_data/mod.rs"]
mod import_data;

const ROWS: usize = 20_000;
const CHUNK: usize = 64 * 1024;

fn import_text(input: &[u8], format: Format, out: &mut Output) {
    out.batch.clear();
    out.rejected.clear();
    out.stats = Default::default();
    let options = ImportOptions {
        format: Some(format),
        ..ImportOptions::default()
    };
    let mut import = Import::new(Some(import_data::source()), options).expect("import");
    for chunk in input.chunks(CHUNK) {
        import.feed(black_box(chunk), out).expect("feed");
    }
    import.finish(out).expect("finish");
}

fn import_parquet(input: &bytes::Bytes, out: &mut Output) {
    out.batch.clear();
    out.stats = Default::default();
    let mut rows = ParquetRows::new(input.clone(), &import_data::source(), Default::default(), None).expect("open");
    while rows.read(out, CHUNK).expect("read") {}
}

fn bench(c: &mut Criterion) {
    let csv = import_data::csv(ROWS);
    let ndjson = import_data::ndjson(ROWS);
    let parquet = bytes::Bytes::from(import_data::parquet(ROWS));
    let mut out = Output::default();
    for (name, run) in [
        (
            "csv",
            Box::new(|out: &mut Output| import_text(&csv, Format::Csv, out)) as Box<dyn Fn(&mut Output)>,
        ),
        (
            "ndjson",
            Box::new(|out: &mut Output| import_text(&ndjson, Format::Ndjson, out)),
        ),
        ("parquet", Box::new(|out: &mut Output| import_parquet(&parquet, out))),
    ] {
        run(&mut out);
        assert_eq!(out.stats.rows_accepted, ROWS as u64, "{name}");
        assert_eq!(out.batch.len(), ROWS * import_data::METRICS, "{name}");
        for (unit, throughput) in [
            ("rows", Throughput::Elements(ROWS as u64)),
            ("points", Throughput::Elements((ROWS * import_data::METRICS) as u64)),
        ] {
            let mut group = c.benchmark_group(format!("import_{name}"));
            group.throughput(throughput);
            group.bench_function(BenchmarkId::new(unit, ROWS), |b| b.iter(|| run(&mut out)));
            group.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
