//! Any byte string as one pickle frame: the validator and the decoder must not panic,
//! overflow the stack or run away with memory; a refused frame adds nothing, and an
//! accepted one adds exactly the points it counts, none of them non-finite, and the
//! series cache changes nothing (decoded twice through one cache: the same points and
//! messages as without it).
#![no_main]

use kairos_protocols::graphite::pickle::{decode_frame, Limits};
use kairos_protocols::graphite::PathMapper;
use kairos_protocols::series_cache::{CacheLimits, SeriesCache};
use kairos_protocols::{PointBatch, Value};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mapper = PathMapper::Graphite;
    let mut batch = PointBatch::new();
    let mut scratch = mapper.scratch();
    let mut rejected = 0;
    let mut messages = Vec::new();
    let mut uncached = SeriesCache::new(CacheLimits::OFF);
    let result = decode_frame(
        data,
        Limits::default(),
        0,
        &mapper,
        &mut batch,
        &mut scratch,
        &mut uncached,
        &mut |e| {
            messages.push(e.to_string());
            rejected += 1;
        },
    );
    let mut cache = SeriesCache::default();
    for _ in 0..2 {
        let mut cached = PointBatch::new();
        let mut cached_messages = Vec::new();
        let r = decode_frame(
            data,
            Limits::default(),
            0,
            &mapper,
            &mut cached,
            &mut scratch,
            &mut cache,
            &mut |e| cached_messages.push(e.to_string()),
        );
        assert_eq!(r, result);
        assert_eq!(cached_messages, messages);
        assert_eq!(cached.to_points(), batch.to_points());
    }
    match result {
        Ok(d) => {
            assert_eq!(d.points as usize, batch.len());
            assert_eq!(d.rejected as usize, rejected);
        }
        Err(e) => {
            assert!(batch.is_empty());
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
