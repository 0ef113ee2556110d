//! Decodes ROWS rows of the benchmark's shape once, for instruction counts per row:
//!
//! ```text
//! cargo build --release -p kairos-protocols --example import_count
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/import_count csv 100000
//! ```
//!
//! Run it with two row counts and divide the difference in instructions by the
//! difference in rows: that is the cost per row without the setup (generating the file).

use kairos_protocols::import::{Format, Import, ImportOptions, Output, ParquetRows};

#[path = "../benches/import_data/mod.rs"]
mod import_data;

fn main() {
    let mut args = std::env::args().skip(1);
    let format = args.next().unwrap_or_else(|| "csv".to_owned());
    let rows: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    // Generate first; `--generate-only` measures the setup alone.
    let generate_only = args.next().as_deref() == Some("--generate-only");
    let input = match format.as_str() {
        "csv" => import_data::csv(rows),
        "ndjson" => import_data::ndjson(rows),
        "parquet" => import_data::parquet(rows),
        other => panic!("unknown format {other} (csv, ndjson, parquet)"),
    };
    if generate_only {
        println!("generated {} bytes", input.len());
        return;
    }
    let mut out = Output::default();
    if format == "parquet" {
        let mut r = ParquetRows::new(
            bytes::Bytes::from(input),
            &import_data::source(),
            Default::default(),
            None,
        )
        .expect("open");
        while r.read(&mut out, 65_536).expect("read") {
            out.batch.clear();
        }
    } else {
        let options = ImportOptions {
            format: Some(if format == "csv" { Format::Csv } else { Format::Ndjson }),
            ..ImportOptions::default()
        };
        let mut import = Import::new(Some(import_data::source()), options).expect("import");
        for chunk in input.chunks(64 * 1024) {
            import.feed(chunk, &mut out).expect("feed");
            // The daemon drains the batch as it goes; so does this.
            out.batch.clear();
        }
        import.finish(&mut out).expect("finish");
    }
    println!(
        "{format}: {} rows, {} points, {} rejected",
        out.stats.rows,
        out.stats.points,
        out.rejected.len()
    );
}
