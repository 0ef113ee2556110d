//! Any byte string as Graphite plaintext lines, through the default (Graphite 1.1 tags)
//! and the templates path parsers: no panic, at most one point per line, never a
//! non-finite value, every key readable back, and the series cache changes nothing (the
//! lines, then the same lines again, give what the uncached decoder gives).
#![no_main]

use std::sync::{Arc, OnceLock};

use kairos_protocols::decode::Decoder;
use kairos_protocols::graphite::host::HostTagConfig;
use kairos_protocols::graphite::{PathMapper, TagParserKind, TextDecoder};
use kairos_protocols::series_cache::CacheLimits;
use kairos_protocols::{PointBatch, Value};
use libfuzzer_sys::fuzz_target;

const TEMPLATES: &str = "^a .metric.host.metric* [.,_] dc=x; ^b.drop; .* metric.metric.host";

/// Built once: compiling the regexes per input would be most of the run.
static MAPPERS: OnceLock<[Arc<PathMapper>; 3]> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let mappers = MAPPERS.get_or_init(|| {
        [
            Arc::new(PathMapper::Graphite),
            Arc::new(PathMapper::new(TagParserKind::Templates, &HostTagConfig::default(), TEMPLATES).unwrap()),
            Arc::new(PathMapper::new(TagParserKind::Host, &HostTagConfig::default(), "").unwrap()),
        ]
    });
    for mapper in mappers {
        let run = |decoder: &mut TextDecoder| {
            let mut batch = PointBatch::new();
            let mut outcomes = Vec::new();
            for line in data.split(|&b| b == b'\n') {
                let before = batch.len();
                let mut error = None;
                let d = decoder.decode(line, &mut batch, &mut |e| error = Some(e.to_string()));
                assert_eq!(batch.len() - before, d.points as usize);
                assert!(d.points + d.rejected <= 1);
                outcomes.push((d, error));
            }
            let points: Vec<_> = batch
                .records()
                .iter()
                .map(|r| (batch.key(r).to_vec(), r.timestamp, r.value, r.ttl))
                .collect();
            (outcomes, points, batch)
        };
        let mut decoder = TextDecoder::new(Arc::clone(mapper)).with_cache_limits(CacheLimits::OFF);
        decoder.set_now(1_700_000_000_000);
        let (outcomes, points, batch) = run(&mut decoder);
        for record in batch.records() {
            if let Value::Double(v) = record.value {
                assert!(v.is_finite());
            }
        }
        let _ = batch.to_points();
        for limits in [CacheLimits::DEFAULT, CacheLimits { entries: 4, bytes: 512 }] {
            let mut cached = TextDecoder::new(Arc::clone(mapper)).with_cache_limits(limits);
            cached.set_now(1_700_000_000_000);
            for _ in 0..2 {
                let (o, p, _) = run(&mut cached);
                assert_eq!(o, outcomes);
                assert_eq!(p, points);
            }
        }
    }
});
