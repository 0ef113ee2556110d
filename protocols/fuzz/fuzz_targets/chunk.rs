//! The chunk codec and the merge operator's body on any bytes: decoding never panics or
//! allocates past its bound; a chunk that decodes re-encodes to the same points; any
//! list of points round-trips (sorted, last write of a timestamp winning); merging any
//! inputs either fails cleanly or yields exactly the fold of the decoded inputs; a
//! salvage envelope keeps its parts byte for byte.
//!
//! The body decoder sits behind a crc32c, so the input is tried both as is and with a
//! valid checksum appended (kind and flags bytes fixed), or the fuzzer would never get
//! past the checksum.
#![no_main]

#[allow(dead_code)]
#[path = "../../../src/storage/chunk.rs"]
mod chunk;

// The chunk codec reads and writes its expiry column through this sibling module.
#[allow(dead_code)]
#[path = "../../../src/storage/expiry.rs"]
mod expiry;

use kairos_protocols::Value;
use libfuzzer_sys::fuzz_target;

fn bits(p: &[(i64, Value)]) -> Vec<(i64, u8, u64)> {
    p.iter()
        .map(|&(t, v)| match v {
            Value::Long(l) => (t, 0, l as u64),
            Value::Double(d) => (t, 1, d.to_bits()),
        })
        .collect()
}

fn check_decoded(bytes: &[u8]) -> Option<Vec<(i64, Value)>> {
    let mut out = Vec::new();
    chunk::decode(bytes, &mut out).ok()?;
    assert!(out.len() <= 64 * bytes.len());
    assert!(out.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(chunk::count(bytes).ok(), Some(out.len()));
    let (n, first) = chunk::header(bytes).expect("header of a decodable chunk");
    assert_eq!(n, out.len());
    if let Some(p) = out.first() {
        assert_eq!(first, p.0);
    }
    let mut again = Vec::new();
    chunk::encode(&out, &mut again);
    let mut back = Vec::new();
    chunk::decode(&again, &mut back).expect("re-encoded chunk decodes");
    assert_eq!(bits(&back), bits(&out));
    Some(out)
}

fuzz_target!(|data: &[u8]| {
    let _ = check_decoded(data);
    let mut sealed = data.to_vec();
    if sealed.len() >= 2 {
        sealed[0] = if data[0] & 1 == 0 {
            chunk::KIND_POINTS
        } else {
            chunk::KIND_SALVAGE
        };
        sealed[1] = 0;
    }
    chunk::seal(&mut sealed);
    let decoded = check_decoded(&sealed);

    // Points straight from the bytes: 9 bytes each (tag, 8 bytes), timestamps small so
    // they collide.
    let points: Vec<(i64, Value)> = data
        .chunks_exact(9)
        .map(|c| {
            let raw = u64::from_le_bytes(c[1..9].try_into().unwrap());
            let ts = i64::from(c[0] >> 1) - 64;
            let v = if c[0] & 1 == 0 {
                Value::Long(raw as i64)
            } else {
                Value::Double(f64::from_bits(raw))
            };
            (ts, v)
        })
        .collect();
    let mut model = std::collections::BTreeMap::new();
    for &(t, v) in &points {
        model.insert(t, v);
    }
    let model: Vec<_> = model.into_iter().collect();
    let mut enc = Vec::new();
    chunk::encode(&points, &mut enc);
    let mut dec = Vec::new();
    chunk::decode(&enc, &mut dec).expect("encoded points decode");
    assert_eq!(bits(&dec), bits(&model));

    // Merge: the encoded points, then the input as an operand.
    let mut merged = Vec::new();
    match chunk::merge(Some(&enc), [&sealed[..]], &mut merged) {
        Ok(()) => {
            let ops = decoded.expect("merge succeeded, so the operand decodes");
            let mut want = std::collections::BTreeMap::new();
            for &(t, v) in model.iter().chain(&ops) {
                want.insert(t, v);
            }
            let want: Vec<_> = want.into_iter().collect();
            let mut got = Vec::new();
            chunk::decode(&merged, &mut got).unwrap();
            assert_eq!(bits(&got), bits(&want));
        }
        Err(_) => assert!(merged.is_empty(), "a failed merge leaves its output alone"),
    }

    // A salvage envelope keeps its unreadable parts exactly.
    let mut env = Vec::new();
    chunk::encode_salvage(&enc, &[data, &sealed], &mut env);
    let (good, bad) = chunk::salvaged(&env).expect("envelope reads back");
    assert_eq!(good, &enc[..]);
    assert_eq!(bad, [data, &sealed[..]]);
});
