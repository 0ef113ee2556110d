//! Any byte string as Graphite plaintext lines, through the default (Graphite 1.1 tags)
//! and the templates path parsers: no panic, at most one point per line, never a
//! non-finite value, and every key readable back.
#![no_main]

use std::sync::{Arc, OnceLock};

use kairos_protocols::decode::Decoder;
use kairos_protocols::graphite::host::HostTagConfig;
use kairos_protocols::graphite::{PathMapper, TagParserKind, TextDecoder};
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
        let mut decoder = TextDecoder::new(Arc::clone(mapper));
        decoder.set_now(1_700_000_000_000);
        let mut batch = PointBatch::new();
        for line in data.split(|&b| b == b'\n') {
            let before = batch.len();
            let d = decoder.decode(line, &mut batch, &mut |e| {
                let _ = e.to_string();
            });
            assert_eq!(batch.len() - before, d.points as usize);
            assert!(d.points + d.rejected <= 1);
        }
        for record in batch.records() {
            if let Value::Double(v) = record.value {
                assert!(v.is_finite());
            }
        }
        let _ = batch.to_points();
    }
});
