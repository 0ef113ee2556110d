//! Any byte string as a `POST /api/v1/datapoints` body: decoding must not panic and
//! must never produce a non-finite value.
#![no_main]

use kairos_protocols::{rest, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = rest::decode(data);
    for record in decoded.batch.records() {
        if let Value::Double(v) = record.value {
            assert!(v.is_finite());
        }
    }
    // Every key in the batch must read back (canonical, UTF-8).
    let _ = decoded.batch.to_points();
});
