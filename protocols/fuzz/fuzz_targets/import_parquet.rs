//! Any bytes as a Parquet file: opening and reading must not panic, errors are
//! `ImportError`s, counts add up and values are finite.
#![no_main]

use kairos_protocols::import::{Clock, Output, ParquetRows, Source};
use kairos_protocols::Value;
use libfuzzer_sys::fuzz_target;

/// Panics inside the `parquet` crate are known (corrupt files) and turned into errors
/// by the decoder; any other panic is a finding. libFuzzer's own hook would abort on
/// either, so this one tells them apart first.
fn hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let fuzzer_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let in_parquet = info.location().is_some_and(|l| l.file().contains("/parquet-"));
            if !in_parquet {
                fuzzer_hook(info);
            }
        }));
    });
}

fuzz_target!(|data: &[u8]| {
    hook();
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
