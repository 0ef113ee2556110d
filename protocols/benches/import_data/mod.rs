//! The benchmark's shape as import files: 10,000 series (2,000 host/dc/svc tag sets
//! times 5 metrics), rows `time,host,dc,svc,m0..m4`, in CSV, NDJSON and Parquet. Shared
//! by the criterion bench and the instruction-count example through `#[path]`.

use std::sync::Arc;

use kairos_protocols::import::Source;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::parser::parse_message_type;

pub const TAG_SETS: usize = 2000;
pub const METRICS: usize = 5;

pub fn source() -> Source {
    Source::from_json(
        br#"{"name":"bench","timestamp":{"column":"time","format":"unix_ms"},
        "metric":{"prefix":"bench.","value_columns":["m0","m1","m2","m3","m4"]},
        "tags":{"columns":["host","dc","svc"]}}"#,
    )
    .expect("the bench source is valid")
}

struct Row {
    time: i64,
    host: String,
    dc: String,
    svc: String,
    values: [f64; METRICS],
}

fn rows(n: usize) -> impl Iterator<Item = Row> {
    (0..n).map(|i| {
        let set = i % TAG_SETS;
        Row {
            time: 1_795_258_810_000 + (i / TAG_SETS) as i64 * 1000,
            host: format!("h{:04}", set),
            dc: format!("dc{}", set % 4),
            svc: format!("s{}", set % 3),
            values: std::array::from_fn(|m| ((i * 7 + m * 13) % 10_000) as f64 / 100.0),
        }
    })
}

pub fn csv(n: usize) -> Vec<u8> {
    let mut out = String::from("time,host,dc,svc,m0,m1,m2,m3,m4\n");
    for r in rows(n) {
        out.push_str(&format!("{},{},{},{}", r.time, r.host, r.dc, r.svc));
        for v in r.values {
            out.push_str(&format!(",{v:.2}"));
        }
        out.push('\n');
    }
    out.into_bytes()
}

pub fn ndjson(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for r in rows(n) {
        out.push_str(&format!(
            r#"{{"time":{},"host":"{}","dc":"{}","svc":"{}""#,
            r.time, r.host, r.dc, r.svc
        ));
        for (m, v) in r.values.iter().enumerate() {
            out.push_str(&format!(r#","m{m}":{v:.2}"#));
        }
        out.push_str("}\n");
    }
    out.into_bytes()
}

/// Snappy-compressed, one row group per 100,000 rows, as most writers do.
pub fn parquet(n: usize) -> Vec<u8> {
    let schema = Arc::new(
        parse_message_type(
            "message bench { REQUIRED INT64 time (TIMESTAMP(MILLIS,true)); REQUIRED BYTE_ARRAY host (UTF8);
             REQUIRED BYTE_ARRAY dc (UTF8); REQUIRED BYTE_ARRAY svc (UTF8); REQUIRED DOUBLE m0; REQUIRED DOUBLE m1;
             REQUIRED DOUBLE m2; REQUIRED DOUBLE m3; REQUIRED DOUBLE m4; }",
        )
        .expect("schema"),
    );
    let props = Arc::new(WriterProperties::builder().set_compression(Compression::SNAPPY).build());
    let mut buf = Vec::new();
    let mut writer = SerializedFileWriter::new(&mut buf, schema, props).expect("writer");
    let all: Vec<Row> = rows(n).collect();
    for group in all.chunks(100_000) {
        let mut rg = writer.next_row_group().expect("row group");
        let mut col = 0;
        while let Some(mut c) = rg.next_column().expect("column") {
            match col {
                0 => {
                    let v: Vec<i64> = group.iter().map(|r| r.time).collect();
                    c.typed::<Int64Type>().write_batch(&v, None, None).expect("write");
                }
                1..=3 => {
                    let v: Vec<ByteArray> = group
                        .iter()
                        .map(|r| ByteArray::from([&r.host, &r.dc, &r.svc][col - 1].as_str()))
                        .collect();
                    c.typed::<ByteArrayType>().write_batch(&v, None, None).expect("write");
                }
                _ => {
                    let v: Vec<f64> = group.iter().map(|r| r.values[col - 4]).collect();
                    c.typed::<DoubleType>().write_batch(&v, None, None).expect("write");
                }
            }
            c.close().expect("close");
            col += 1;
        }
        rg.close().expect("row group");
    }
    writer.close().expect("close");
    buf
}
