//! Any byte string as one telnet line: parsing must not panic, must add at most one
//! point, and never a non-finite value.
#![no_main]

use kairos_protocols::telnet::{parse_line, Line, Scratch};
use kairos_protocols::{PointBatch, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut batch = PointBatch::new();
    let mut scratch = Scratch::default();
    // Several lines through one scratch, as a connection does.
    for line in data.split(|&b| b == b'\n') {
        let before = batch.len();
        let result = parse_line(line, &mut batch, &mut scratch);
        let added = batch.len() - before;
        assert_eq!(added, usize::from(matches!(result, Ok(Line::Point))));
        if let Err(e) = result {
            let _ = e.to_string();
        }
    }
    for record in batch.records() {
        if let Value::Double(v) = record.value {
            assert!(v.is_finite());
        }
    }
    let _ = batch.to_points();
});
