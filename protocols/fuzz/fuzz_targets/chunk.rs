//! The chunk codec and the merge operator's body on any bytes: decoding never panics or
//! allocates past its bound; a chunk that decodes re-encodes to the same points; any
//! list of points round-trips (sorted, last write of a timestamp winning); merging any
//! inputs either fails cleanly or yields exactly the fold of the decoded inputs; a
//! salvage envelope keeps its parts byte for byte.
//!
//! The expiry column too: any decodable chunk gives one expiry per point, hides at
//! `now` exactly the points whose expiry has passed, reports the latest expiry and
//! re-encodes to the same points and expiries; points with expiries round-trip with the
//! last write of a timestamp winning point and expiry together; and an expiring merge
//! is the fold of its inputs, without the points expired at `now` when given one.
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

type Expiring = Vec<(i64, u8, u64, i64)>;

fn with_expiry(p: &[(i64, Value)], e: &[i64]) -> Expiring {
    bits(p).into_iter().zip(e).map(|((t, k, v), &e)| (t, k, v, e)).collect()
}

/// The expiry column's view of a chunk that decodes; `None` if its column is corrupt.
fn check_expiry(bytes: &[u8], now: i64) -> Option<Expiring> {
    let (mut pts, mut exp) = (Vec::new(), Vec::new());
    if chunk::decode_expiring(bytes, &mut pts, &mut exp).is_err() {
        assert!(
            pts.is_empty() && exp.is_empty(),
            "a failed decode leaves its output alone"
        );
        return None;
    }
    assert_eq!(pts.len(), exp.len());
    let mut plain = Vec::new();
    chunk::decode(bytes, &mut plain).expect("decode_expiring succeeded");
    assert_eq!(bits(&plain), bits(&pts));
    let mut live = Vec::new();
    chunk::decode_live(bytes, now, &mut live).expect("decode_expiring succeeded");
    let want: Vec<_> = pts
        .iter()
        .zip(&exp)
        .filter(|(_, &e)| !expiry::expired(e, now))
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(bits(&live), bits(&want));
    let max = chunk::max_expiry(bytes).expect("decodes");
    if !chunk::has_expiry(bytes) && bytes.first() != Some(&chunk::KIND_SALVAGE) {
        assert_eq!(max, None);
        assert!(exp.iter().all(|&e| e == 0));
    } else if exp.contains(&0) {
        assert_eq!(max, Some(0));
    } else if let Some(&m) = exp.iter().max() {
        assert_eq!(max, Some(m));
    }
    let mut again = Vec::new();
    chunk::encode_expiring(&pts, &exp, &mut again);
    let (mut back, mut back_exp) = (Vec::new(), Vec::new());
    chunk::decode_expiring(&again, &mut back, &mut back_exp).expect("re-encoded chunk decodes");
    assert_eq!(with_expiry(&back, &back_exp), with_expiry(&pts, &exp));
    Some(with_expiry(&pts, &exp))
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
        // Half of the points chunks get the expiry flag, so the column is reached too.
        sealed[1] = if sealed[0] == chunk::KIND_POINTS && data[0] & 2 != 0 {
            chunk::FLAG_EXPIRY
        } else {
            0
        };
    }
    chunk::seal(&mut sealed);
    let decoded = check_decoded(&sealed);
    // A clock somewhere among the small expiries the points below get.
    let now = i64::from(data.last().copied().unwrap_or(0)) * 4;
    if decoded.is_some() {
        check_expiry(&sealed, now);
    }

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

    // Points with expiries: 10 bytes each (tag, 8 bytes, expiry byte; 0 = never).
    let triples: Vec<(i64, Value, i64)> = data
        .chunks_exact(10)
        .map(|c| {
            let raw = u64::from_le_bytes(c[1..9].try_into().unwrap());
            let ts = i64::from(c[0] >> 1) - 64;
            let v = if c[0] & 1 == 0 {
                Value::Long(raw as i64)
            } else {
                Value::Double(f64::from_bits(raw))
            };
            (ts, v, i64::from(c[9]) * 4)
        })
        .collect();
    let mut model = std::collections::BTreeMap::new();
    for &(t, v, e) in &triples {
        model.insert(t, (v, e));
    }
    let (mut sorted, mut sorted_exp) = (Vec::new(), Vec::new());
    for (&t, &(v, e)) in &model {
        sorted.push((t, v));
        sorted_exp.push(e);
    }
    let mut enc_exp = Vec::new();
    chunk::encode_expiring(&sorted, &sorted_exp, &mut enc_exp);
    let got = check_expiry(&enc_exp, now).expect("encoded points with expiries decode");
    assert_eq!(got, with_expiry(&sorted, &sorted_exp));

    // An expiring merge of those and the input: the later input wins point and expiry.
    let operand = check_expiry(&sealed, now);
    for clock in [None, Some(now)] {
        let mut merged = Vec::new();
        match chunk::merge_expiring(&[&enc_exp, &sealed], clock, &mut merged) {
            Ok(()) => {
                let ops = operand.clone().expect("merge succeeded, so the operand decodes");
                let mut want = std::collections::BTreeMap::new();
                for &(t, k, v, e) in got.iter().chain(&ops) {
                    want.insert(t, (k, v, e));
                }
                let want: Expiring = want
                    .into_iter()
                    .map(|(t, (k, v, e))| (t, k, v, e))
                    .filter(|&(.., e)| clock.is_none_or(|n| !expiry::expired(e, n)))
                    .collect();
                let (mut m, mut me) = (Vec::new(), Vec::new());
                chunk::decode_expiring(&merged, &mut m, &mut me).expect("a merge's output decodes");
                assert_eq!(with_expiry(&m, &me), want);
            }
            Err(_) => assert!(
                merged.is_empty() && operand.is_none(),
                "a merge fails only on an unreadable input, and leaves its output alone"
            ),
        }
    }

    // A salvage envelope keeps its unreadable parts exactly.
    let mut env = Vec::new();
    chunk::encode_salvage(&enc, &[data, &sealed], &mut env);
    let (good, bad) = chunk::salvaged(&env).expect("envelope reads back");
    assert_eq!(good, &enc[..]);
    assert_eq!(bad, [data, &sealed[..]]);
});
