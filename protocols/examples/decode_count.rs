//! Decodes the benchmark's data PASSES times through the framer and decoder a connection
//! uses, for instruction counts per line or point:
//!
//! ```text
//! cargo build --release -p kairos-protocols --example decode_count
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/decode_count telnet 2
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/decode_count telnet 12
//! ```
//!
//! The difference in instructions divided by the difference in points (10 passes of
//! 10,000) is the steady-state cost per point: one connection's 2,500 series seen
//! before, as an agent's are after its first interval. Paths: `telnet`, `graphite`
//! (Graphite 1.1 tags), `graphite-plain` (dotted paths, no tags), `graphite-template`
//! (dotted paths through the side-by-side harness's template), `pickle`, `rest` (bodies of
//! 1,000 objects through one connection's `RestDecoder`). A third argument `uncached`
//! turns the series cache off (every line fully parsed, as for a series the connection
//! has not sent before; for `rest`, what `rest::decode_into` costs), and `general` reads
//! REST bodies with serde_json alone, as before the scanner.

use std::hint::black_box;
use std::sync::Arc;

use kairos_protocols::decode::Decoder;
use kairos_protocols::framing::{Frame, Framer, LengthPrefixed, LineFramer};
use kairos_protocols::graphite::host::HostTagConfig;
use kairos_protocols::graphite::{PathMapper, PickleDecoder, TagParserKind, TextDecoder};
use kairos_protocols::series_cache::CacheLimits;
use kairos_protocols::telnet::TelnetDecoder;
use kairos_protocols::{rest, PointBatch};

#[path = "../benches/shapes/mod.rs"]
mod shapes;

const POINTS: usize = 10_000;

/// What a connection does with its reads: each read appends up to 64 KiB to the
/// buffer, the framer splits what is buffered, each frame is decoded, the frames used
/// are dropped from the front and the batch is handed on (here: cleared). The input is
/// framed in place, as the transport frames its `BytesMut` and advances it: the
/// kernel's copy into the buffer is no user-space instruction.
fn framed<F: Framer, D: Decoder>(input: &[u8], framer: &mut F, decoder: &mut D, batch: &mut PointBatch) -> usize {
    let (mut start, mut end) = (0, 0);
    let mut points = 0;
    while end < input.len() {
        end = (end + 64 * 1024).min(input.len());
        let used = framer
            .split(&input[start..end], false, |frame| {
                if let Frame::Data(data) = frame {
                    points += decoder.decode(black_box(data), batch, &mut |_| {}).points as usize;
                }
            })
            .expect("framing");
        start += used;
        batch.clear();
    }
    points
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "telnet".to_owned());
    let passes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    let mode = args.next();
    let cache = match mode.as_deref() {
        Some("uncached" | "general") => CacheLimits::OFF,
        _ => CacheLimits::DEFAULT,
    };
    let mut batch = PointBatch::with_capacity(POINTS, POINTS * 48);
    let mut points = 0;
    let mapper =
        |kind, templates| Arc::new(PathMapper::new(kind, &HostTagConfig::default(), templates).expect("mapper"));
    match path.as_str() {
        "telnet" => {
            let input = shapes::telnet_lines(POINTS);
            let (mut framer, mut decoder) = (
                LineFramer::new(1024),
                TelnetDecoder::new("KairosDB").with_cache_limits(cache),
            );
            for _ in 0..passes {
                points += framed(&input, &mut framer, &mut decoder, &mut batch);
            }
        }
        "graphite" | "graphite-plain" | "graphite-template" => {
            let input = shapes::graphite_lines(POINTS, path == "graphite");
            let m = match path.as_str() {
                "graphite-template" => mapper(TagParserKind::Templates, shapes::TEMPLATE),
                _ => mapper(TagParserKind::Graphite, ""),
            };
            let (mut framer, mut decoder) = (LineFramer::new(4096), TextDecoder::new(m).with_cache_limits(cache));
            decoder.set_now(1_795_258_810_000);
            for _ in 0..passes {
                points += framed(&input, &mut framer, &mut decoder, &mut batch);
            }
        }
        "pickle" => {
            let input = shapes::pickle_frames(POINTS);
            let m = mapper(TagParserKind::Graphite, "");
            let (mut framer, mut decoder) = (
                LengthPrefixed::new(1 << 20),
                PickleDecoder::new(m).with_cache_limits(cache),
            );
            for _ in 0..passes {
                points += framed(&input, &mut framer, &mut decoder, &mut batch);
            }
        }
        "rest" => {
            // Bodies of 1,000 objects, as the load generator posts them.
            // One connection's decoder, its series cache kept from body to body.
            let bodies: Vec<Vec<u8>> = (0..POINTS / 1000).map(|b| shapes::rest_body(b * 1000, 1000)).collect();
            let mut decoder = rest::RestDecoder::new(cache);
            for _ in 0..passes {
                for body in &bodies {
                    let errors = if mode.as_deref() == Some("general") {
                        rest::decode_into_general(black_box(body), &mut batch)
                    } else {
                        decoder.decode_into(black_box(body), &mut batch)
                    };
                    assert!(errors.is_empty(), "{errors:?}");
                    points += batch.len();
                    batch.clear();
                }
            }
        }
        other => panic!("unknown path {other} (telnet, graphite, graphite-plain, graphite-template, pickle, rest)"),
    }
    assert_eq!(points, passes * POINTS, "every point decoded");
    println!("{path}: {points} points in {passes} passes");
}
