//! Any byte string as a `POST /api/v1/datapoints` body: decoding must not panic, must
//! never produce a non-finite value, and must give exactly what the general serde_json
//! reader gives, whether the hand-written scanner takes the body or hands it over, and
//! with a connection's series cache cold or warm.
#![no_main]

use kairos_protocols::{rest, PointBatch, Value};
use libfuzzer_sys::fuzz_target;

/// Records (with exact value bits) and their keys.
fn snapshot(batch: &PointBatch) -> Vec<(i64, u64, u32, Vec<u8>)> {
    batch
        .records()
        .iter()
        .map(|r| {
            let bits = match r.value {
                Value::Long(v) => v as u64,
                Value::Double(v) => {
                    assert!(v.is_finite());
                    v.to_bits()
                }
            };
            (r.timestamp, bits, r.ttl, batch.key(r).to_vec())
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut general = PointBatch::new();
    let want_errors = rest::decode_into_general(data, &mut general);
    let want = snapshot(&general);
    // Every key in the batch must read back (canonical, UTF-8).
    let _ = general.to_points();

    let mut batch = PointBatch::new();
    assert_eq!(rest::decode_into(data, &mut batch), want_errors);
    assert_eq!(snapshot(&batch), want);

    let mut batch = PointBatch::new();
    match rest::decode_into_scanner(data, &mut batch) {
        Some(errors) => {
            assert_eq!(errors, want_errors);
            assert_eq!(snapshot(&batch), want);
        }
        None => assert!(batch.is_empty()),
    }

    let mut decoder = rest::RestDecoder::default();
    for _ in 0..2 {
        let mut batch = PointBatch::new();
        assert_eq!(decoder.decode_into(data, &mut batch), want_errors);
        assert_eq!(snapshot(&batch), want);
    }
});
