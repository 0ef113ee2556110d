//! Any byte string as telnet lines: parsing must not panic, must add at most one point
//! per line, never a non-finite value, and the series cache must change nothing: the
//! lines, and the same lines again (now cached), give what the uncached parser gives.
#![no_main]

use kairos_protocols::series_cache::{CacheLimits, SeriesCache};
use kairos_protocols::telnet::{parse_line, parse_line_cached, Line, Scratch};
use kairos_protocols::{PointBatch, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut batch = PointBatch::new();
    let mut scratch = Scratch::default();
    let mut outcomes = Vec::new();
    // Several lines through one scratch, as a connection does.
    for line in data.split(|&b| b == b'\n') {
        let before = batch.len();
        let result = parse_line(line, &mut batch, &mut scratch);
        let added = batch.len() - before;
        assert_eq!(added, usize::from(matches!(result, Ok(Line::Point))));
        outcomes.push(result.map_err(|e| e.to_string()));
    }
    for record in batch.records() {
        if let Value::Double(v) = record.value {
            assert!(v.is_finite());
        }
    }
    let _ = batch.to_points();

    // Cached, with a cache small enough to rotate, twice over the same lines.
    for limits in [CacheLimits::DEFAULT, CacheLimits { entries: 4, bytes: 512 }] {
        let mut cache = SeriesCache::new(limits);
        for _ in 0..2 {
            let mut cached = PointBatch::new();
            for (line, want) in data.split(|&b| b == b'\n').zip(&outcomes) {
                let got = parse_line_cached(line, &mut cached, &mut scratch, &mut cache).map_err(|e| e.to_string());
                assert_eq!(&got, want);
            }
            assert_eq!(cached.len(), batch.len());
            for (a, b) in cached.records().iter().zip(batch.records()) {
                assert_eq!(cached.key(a), batch.key(b));
                assert_eq!((a.timestamp, a.value, a.ttl), (b.timestamp, b.value, b.ttl));
            }
        }
    }
});
