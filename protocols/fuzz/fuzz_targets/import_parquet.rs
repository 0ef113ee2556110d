//! Any bytes as a Parquet file: opening and reading must not panic, errors are
//! `ImportError`s, counts add up and values are finite.
#![no_main]

use kairos_protocols::import::{Clock, Output, ParquetRows, Source};
use kairos_protocols::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let source = Source::from_json(
        br#"{"name":"f","timestamp":{"column":"time"},"metric":{"value_columns":"*"},"tags":{"columns":["station"]}}"#,
    )
    .expect("valid");
    let Ok(mut rows) = ParquetRows::new(bytes::Bytes::copy_from_slice(data), &source, Clock::default(), None) else {
        return;
    };
    let mut out = Output::default();
    loop {
        match rows.read(&mut out, 1000) {
            Ok(true) if out.stats.rows < 1_000_000 => {}
            Ok(_) | Err(_) => break,
        }
    }
    let s = out.stats;
    assert_eq!(s.rows, s.rows_accepted + s.invalid_lines + s.quarantine_rows);
    for r in out.batch.records() {
        if let Value::Double(v) = r.value {
            assert!(v.is_finite());
        }
    }
});
