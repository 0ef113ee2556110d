//! The staging log: each group commit's points as one record, so an acknowledged
//! write costs one RocksDB put, not one merge operand per series.
//!
//! A REST client that sends 1,000 points for 1,000 series and waits for its 204 would
//! otherwise make the writer insert 1,000 one-point operands per commit, and the
//! memtable's key comparisons would dominate ingest. Instead a commit appends its
//! points to the `staging` column family in arrival order; the writer keeps them in
//! memory too, and every `promote` interval turns everything staged into per-series
//! chunks in one atomic batch that also deletes the staging records. Queries read
//! the staging records beside the chunks (from the same snapshot, so a point is never
//! seen twice or missed), and a restart promotes whatever a crash left staged.
//!
//! Record layout, per point in arrival order: series id as a varint delta (zigzag)
//! from the previous point's, timestamp as a zigzag varint delta from the previous
//! point's, then a value tag byte — 0: long, zigzag varint; 1: double, 8 bytes little
//! endian. The record starts with a version byte (2; version 1 had no checksum) and
//! ends with the crc32c (Castagnoli) of every byte before it, 4 bytes little-endian. A
//! record that fails the check, or is cut short, is refused as a whole: it is reported
//! with its key and moved to the `quarantine` column family, never half applied.
//!
//! Value tags 2 and 3 are a long and a double with an expiry (a ttl; see
//! [`super::expiry`]): a zz varint of the expiry time in ms follows the value. Points
//! without one keep tags 0 and 1 and cost nothing extra. Tags 4 and 5 are reserved for
//! first-write-wins ("ledger") longs and doubles written by imports; this build refuses
//! them.

use kairos_protocols::Value;

use super::keys::SeriesId;

const VERSION: u8 = 2;

/// Appends one record holding `points` (series, timestamp, value) to `out`.
pub fn encode(points: impl IntoIterator<Item = (SeriesId, i64, Value)>, out: &mut Vec<u8>) {
    encode_expiring(points.into_iter().map(|(s, t, v)| (s, t, v, 0)), out)
}

/// Appends one record holding `points` (series, timestamp, value, expiry in ms with 0
/// for never) to `out`.
pub fn encode_expiring(points: impl IntoIterator<Item = (SeriesId, i64, Value, i64)>, out: &mut Vec<u8>) {
    let start = out.len();
    out.push(VERSION);
    let (mut prev_series, mut prev_ts) = (0u64, 0i64);
    for (series, ts, value, expiry) in points {
        put_varint(out, zigzag(series.wrapping_sub(prev_series) as i64));
        put_varint(out, zigzag(ts.wrapping_sub(prev_ts)));
        let tag_offset = if expiry != 0 { 2 } else { 0 };
        match value {
            Value::Long(l) => {
                out.push(tag_offset);
                put_varint(out, zigzag(l));
            }
            Value::Double(d) => {
                out.push(1 + tag_offset);
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        if expiry != 0 {
            put_varint(out, zigzag(expiry));
        }
        (prev_series, prev_ts) = (series, ts);
    }
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

/// Appends the checksum trailer to `bytes` (tests and fuzzers build records by hand).
pub fn seal(bytes: &mut Vec<u8>) {
    let crc = crc32c::crc32c(bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
}

/// A staging record that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt staging record: {0}")]
pub struct StagingError(&'static str);

/// Calls `f` for every point of a record, in the order they were written.
///
/// The checksum is verified first, so `f` sees no point of a damaged record.
pub fn decode(bytes: &[u8], mut f: impl FnMut(SeriesId, i64, Value)) -> Result<(), StagingError> {
    decode_expiring(bytes, |s, t, v, _| f(s, t, v))
}

/// [`decode`], also giving each point's expiry (ms, 0 = never).
pub fn decode_expiring(bytes: &[u8], mut f: impl FnMut(SeriesId, i64, Value, i64)) -> Result<(), StagingError> {
    let Some((data, crc)) = bytes.split_last_chunk::<4>() else {
        return Err(StagingError("truncated record"));
    };
    if crc32c::crc32c(data).to_le_bytes() != *crc {
        return Err(StagingError("checksum (crc32c) mismatch"));
    }
    let mut bytes = match data.split_first() {
        Some((&VERSION, rest)) => rest,
        _ => return Err(StagingError("unknown version")),
    };
    let (mut series, mut ts) = (0u64, 0i64);
    while !bytes.is_empty() {
        series = series.wrapping_add(unzigzag(get_varint(&mut bytes)?) as u64);
        ts = ts.wrapping_add(unzigzag(get_varint(&mut bytes)?));
        let (&tag, rest) = bytes.split_first().ok_or(StagingError("truncated value"))?;
        bytes = rest;
        let value = match tag {
            0 | 2 => Value::Long(unzigzag(get_varint(&mut bytes)?)),
            1 | 3 => {
                let (raw, rest) = bytes.split_first_chunk::<8>().ok_or(StagingError("truncated double"))?;
                bytes = rest;
                Value::Double(f64::from_le_bytes(*raw))
            }
            _ => return Err(StagingError("unknown value tag")),
        };
        let expiry = if tag >= 2 {
            match unzigzag(get_varint(&mut bytes)?) {
                0 => return Err(StagingError("expiry tag with no expiry")),
                e => e,
            }
        } else {
            0
        };
        f(series, ts, value, expiry);
    }
    Ok(())
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, StagingError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or(StagingError("truncated varint"))?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(StagingError("varint too long"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(points: &[(u64, i64, Value)]) -> Vec<(u64, i64, Value)> {
        let mut buf = Vec::new();
        encode(points.iter().copied(), &mut buf);
        let mut out = Vec::new();
        decode(&buf, |s, t, v| out.push((s, t, v))).unwrap();
        out
    }

    #[test]
    fn extremes_round_trip() {
        let pts = vec![
            (u64::MAX, i64::MIN, Value::Long(i64::MIN)),
            (0, i64::MAX, Value::Double(-0.0)),
            (7, 0, Value::Long(i64::MAX)),
            (7, -1, Value::Double(f64::MIN_POSITIVE)),
        ];
        let got = round_trip(&pts);
        assert_eq!(got.len(), pts.len());
        for (a, b) in got.iter().zip(&pts) {
            assert_eq!((a.0, a.1), (b.0, b.1));
            match (a.2, b.2) {
                (Value::Double(x), Value::Double(y)) => assert_eq!(x.to_bits(), y.to_bits()),
                (x, y) => assert_eq!(x, y),
            }
        }
        assert!(round_trip(&[]).is_empty());
    }

    fn sealed(bytes: &[u8]) -> Vec<u8> {
        let mut v = bytes.to_vec();
        seal(&mut v);
        v
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode(&[], |_, _, _| {}).is_err());
        assert!(decode(&sealed(&[9]), |_, _, _| {}).is_err());
        assert!(decode(&sealed(&[2, 2, 2, 1, 0]), |_, _, _| {}).is_err());
        assert!(decode(
            &sealed(&[2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            |_, _, _| {}
        )
        .is_err());
        assert_eq!(
            decode(&sealed(&[2, 2, 2, 4, 0]), |_, _, _| {}),
            Err(StagingError("unknown value tag")),
            "reserved tags are refused"
        );
        assert_eq!(
            decode(&sealed(&[2, 2, 2, 5, 0]), |_, _, _| {}),
            Err(StagingError("unknown value tag")),
            "reserved tags are refused"
        );
    }

    #[test]
    fn any_damage_is_caught_by_the_checksum_before_a_point_is_seen() {
        let mut buf = Vec::new();
        encode([(1, 10, Value::Long(5)), (2, 11, Value::Double(0.5))], &mut buf);
        for i in 0..buf.len() {
            for bit in 0..8 {
                let mut bad = buf.clone();
                bad[i] ^= 1 << bit;
                let mut seen = 0;
                assert!(
                    decode(&bad, |_, _, _| seen += 1).is_err(),
                    "flip at {i}.{bit} undetected"
                );
                assert_eq!(seen, 0);
            }
        }
        assert!(decode(&buf[..buf.len() - 1], |_, _, _| {}).is_err());
    }

    #[test]
    fn expiries_round_trip_beside_plain_points() {
        let pts = [
            (1u64, 10i64, Value::Long(5), 0i64),
            (2, 11, Value::Double(0.5), 1_700_000_000_000),
            (2, 12, Value::Long(-7), 1_700_000_000_001),
            (3, 13, Value::Double(1.5), 0),
        ];
        let mut buf = Vec::new();
        encode_expiring(pts.iter().copied(), &mut buf);
        let mut got = Vec::new();
        decode_expiring(&buf, |s, t, v, e| got.push((s, t, v, e))).unwrap();
        assert_eq!(got, pts);
        let mut plain = Vec::new();
        encode(pts.iter().map(|p| (p.0, p.1, p.2)), &mut plain);
        assert!(plain.len() < buf.len(), "points without expiry pay nothing");
    }

    proptest! {
        #[test]
        fn any_points_round_trip(pts in prop::collection::vec((any::<u64>(), any::<i64>(), any::<bool>(), any::<i64>()), 0..200)) {
            let pts: Vec<_> = pts.into_iter().map(|(s, t, d, v)| {
                (s, t, if d { Value::Double(f64::from_bits(v as u64)) } else { Value::Long(v) })
            }).collect();
            let got = round_trip(&pts);
            prop_assert_eq!(got.len(), pts.len());
            for (a, b) in got.iter().zip(&pts) {
                prop_assert_eq!((a.0, a.1), (b.0, b.1));
                let bits = |v: Value| match v { Value::Long(l) => (0, l as u64), Value::Double(d) => (1, d.to_bits()) };
                prop_assert_eq!(bits(a.2), bits(b.2));
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(&bytes, |_, _, _| {});
            let _ = decode(&sealed(&bytes), |_, _, _| {});
        }
    }
}
