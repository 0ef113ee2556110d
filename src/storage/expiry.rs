//! Per-point expiry: when a point stops being visible, how the writer computes it from
//! a client's ttl and KairosDB's three ttl keys, and how a chunk stores it.
//!
//! An expiry is a wall-clock time in milliseconds since the epoch; 0 means never. It
//! is fixed once, when the writer stages the point (a ttl counts from the time the
//! point is written, as Cassandra's TTL does in KairosDB), and then travels with the
//! point: in the staging record (value tags 2 and 3, see [`super::staging`]) and in
//! the chunk's expiry column (flag bit 0, see [`super::chunk`]). A point is hidden
//! from the moment `now >= expiry`; compaction drops a chunk once every point in it is
//! hidden. Rewriting a point replaces its expiry with the new write's (last write
//! wins), so a point first written forever and then with a ttl does expire.
//!
//! # Expiry column (chunk flag bit 0)
//!
//! Right after the chunk's flags byte: varint length of the column, then one mode byte
//! and the values, in whichever mode is shortest for the chunk:
//!
//! - 0, runs of expiries: a varint number of runs, and per run a varint length (≥ 1)
//!   and the zigzag varint difference of its value from the previous run's (the first
//!   from 0); the run lengths add up to the chunk's point count. Points of one commit
//!   share one expiry, so a backfill costs one run.
//! - 1, the same runs of `expiry - timestamp` (one run with
//!   `align_datapoint_ttl_with_timestamp`).
//! - 2, packed seconds, when every expiry is a whole second (the writer's are, as
//!   Cassandra's are): `vᵢ = expiryᵢ/1000 - ⌊tsᵢ/1000⌋`, stored as a zigzag varint
//!   base (the smallest `vᵢ`), one byte of width `w`, then `w` bits of `vᵢ - base` per
//!   point, LSB first. Points that arrive in real time have `vᵢ` = ttl plus their lag in
//!   whole seconds, so this costs a bit or two per point.
//!
//! A chunk without expiring points has no column at all (the flag stays clear).

use std::time::{SystemTime, UNIX_EPOCH};

use kairos_protocols::Value;

/// Milliseconds since the epoch, by the wall clock.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Whether a point with `expiry` is hidden at `now`.
#[inline(always)]
pub fn expired(expiry: i64, now: i64) -> bool {
    expiry != 0 && expiry <= now
}

/// Cassandra's largest ttl (20 years), past which KairosDB drops an aligned point.
pub const MAX_TTL_SECONDS: i64 = 630_720_000;

/// KairosDB's `kairosdb.datastore.cassandra.datapoint_ttl`,
/// `align_datapoint_ttl_with_timestamp` and `force_default_datapoint_ttl`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TtlPolicy {
    /// Seconds; 0 = forever.
    pub default_ttl: u32,
    /// The ttl counts from the point's timestamp instead of its arrival.
    pub align: bool,
    /// Ignore the client's ttl.
    pub force_default: bool,
}

impl TtlPolicy {
    /// Whether any point can get an expiry other than "never" without a client ttl.
    pub fn is_noop(&self) -> bool {
        self.default_ttl == 0 && !self.align
    }

    /// The expiry of a point with client ttl `ttl` (seconds, 0 = none given) and
    /// timestamp `ts`, written at `now`: `Some(0)` for never, `None` when the point is
    /// dead on arrival (aligned ttl ≤ 0, or over Cassandra's 20 years), as in
    /// KairosDB's batch handler.
    #[inline]
    pub fn expiry(&self, ttl: u32, ts: i64, now: i64) -> Option<i64> {
        let mut ttl = if self.force_default { self.default_ttl } else { ttl } as i64;
        if ttl == 0 {
            ttl = self.default_ttl as i64;
        }
        if self.align {
            // Java's long division truncates toward zero, as Rust's does.
            ttl -= now.saturating_sub(ts) / 1000;
            if ttl <= 0 || ttl > MAX_TTL_SECONDS {
                return None;
            }
        }
        if ttl == 0 {
            return Some(0);
        }
        // Whole seconds, as Cassandra counts a ttl (from the second it is written).
        let expiry = now.div_euclid(1000).saturating_add(ttl).saturating_mul(1000);
        Some(expiry.max(1000))
    }
}

fn zz(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzz(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(bytes: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes.split_first().ok_or("expiry column is truncated")?;
        *bytes = rest;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err("expiry column varint too long")
}

fn runs(values: impl Iterator<Item = i64>) -> usize {
    let mut n = 0;
    let mut prev = None;
    for v in values {
        if prev != Some(v) {
            n += 1;
            prev = Some(v);
        }
    }
    n
}

/// Appends the column (its length varint included) for `points` with `expiry`
/// (one per point; at least one not 0), in its shortest mode.
pub fn encode_column(points: &[(i64, Value)], expiry: &[i64], out: &mut Vec<u8>) {
    let mut col = Vec::new();
    encode_runs(points, expiry, &mut col);
    if let Some(packed) = encode_packed(points, expiry) {
        if packed.len() < col.len() {
            col = packed;
        }
    }
    put_varint(out, col.len() as u64);
    out.extend_from_slice(&col);
}

/// Mode 2 (see the module doc), if every expiry is a whole second.
fn encode_packed(points: &[(i64, Value)], expiry: &[i64]) -> Option<Vec<u8>> {
    if expiry.iter().any(|&e| e == 0 || e % 1000 != 0) {
        return None;
    }
    let v = |i: usize| (expiry[i] / 1000).wrapping_sub(points[i].0.div_euclid(1000));
    let base = (0..points.len()).map(v).min()?;
    let span = (0..points.len()).map(|i| v(i).wrapping_sub(base) as u64).max()?;
    let w = 64 - span.leading_zeros();
    let mut col = Vec::with_capacity(12 + (points.len() * w as usize).div_ceil(8));
    col.push(2);
    put_varint(&mut col, zz(base));
    col.push(w as u8);
    let (mut acc, mut n) = (0u128, 0u32);
    for i in 0..points.len() {
        acc |= ((v(i).wrapping_sub(base) as u64) as u128) << n;
        n += w;
        while n >= 8 {
            col.push(acc as u8);
            acc >>= 8;
            n -= 8;
        }
    }
    if n > 0 {
        col.push(acc as u8);
    }
    Some(col)
}

fn encode_runs(points: &[(i64, Value)], expiry: &[i64], col: &mut Vec<u8>) {
    debug_assert_eq!(points.len(), expiry.len());
    let absolute = runs(expiry.iter().copied());
    let relative = if expiry.contains(&0) {
        usize::MAX
    } else {
        runs(points.iter().zip(expiry).map(|(p, e)| e.wrapping_sub(p.0)))
    };
    let mode = u8::from(relative < absolute);
    col.reserve(8 + 4 * absolute.min(relative));
    col.push(mode);
    put_varint(col, absolute.min(relative) as u64);
    let value = |i: usize| {
        if mode == 1 {
            expiry[i].wrapping_sub(points[i].0)
        } else {
            expiry[i]
        }
    };
    let (mut prev, mut i) = (0i64, 0usize);
    while i < expiry.len() {
        let v = value(i);
        let mut j = i + 1;
        while j < expiry.len() && value(j) == v {
            j += 1;
        }
        put_varint(col, (j - i) as u64);
        put_varint(col, zz(v.wrapping_sub(prev)));
        prev = v;
        i = j;
    }
}

/// Splits the column (length varint included) off the front of `bytes`: (column, rest).
pub fn split_column(mut bytes: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    let len = usize::try_from(get_varint(&mut bytes)?).map_err(|_| "expiry column too long")?;
    if len > bytes.len() {
        return Err("expiry column is truncated");
    }
    Ok(bytes.split_at(len))
}

/// Appends one expiry per point of `points` (the chunk's decoded points) from `col`.
pub fn decode_column(mut col: &[u8], points: &[(i64, Value)], out: &mut Vec<i64>) -> Result<(), &'static str> {
    let (&mode, rest) = col.split_first().ok_or("expiry column is empty")?;
    col = rest;
    if mode == 2 {
        return decode_packed(col, points, out);
    }
    if mode > 2 {
        return Err("unknown expiry column mode");
    }
    let nruns = get_varint(&mut col)?;
    if nruns > points.len() as u64 {
        return Err("more expiry runs than points");
    }
    let before = out.len();
    let mut prev = 0i64;
    for _ in 0..nruns {
        let len = get_varint(&mut col)?;
        prev = prev.wrapping_add(unzz(get_varint(&mut col)?));
        let done = out.len() - before;
        if len == 0 || len > (points.len() - done) as u64 {
            out.truncate(before);
            return Err("expiry run lengths do not match the point count");
        }
        for p in &points[done..done + len as usize] {
            out.push(if mode == 1 { prev.wrapping_add(p.0) } else { prev });
        }
    }
    if out.len() - before != points.len() || !col.is_empty() {
        out.truncate(before);
        return Err("expiry run lengths do not match the point count");
    }
    Ok(())
}

fn decode_packed(mut col: &[u8], points: &[(i64, Value)], out: &mut Vec<i64>) -> Result<(), &'static str> {
    let base = unzz(get_varint(&mut col)?);
    let (&w, bits) = col.split_first().ok_or("expiry column is truncated")?;
    if w > 64 {
        return Err("expiry column width over 64 bits");
    }
    let w = u32::from(w);
    if bits.len() != (points.len() * w as usize).div_ceil(8) {
        return Err("expiry column length does not match the point count");
    }
    let mask = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let (mut acc, mut n, mut pos) = (0u128, 0u32, 0usize);
    let before = out.len();
    for p in points {
        while n < w {
            acc |= u128::from(bits[pos]) << n;
            pos += 1;
            n += 8;
        }
        let x = (acc as u64) & mask;
        acc = if w == 0 { acc } else { acc >> w };
        n -= w;
        let secs = base.wrapping_add(x as i64).wrapping_add(p.0.div_euclid(1000));
        out.push(secs.wrapping_mul(1000));
    }
    if acc != 0 {
        out.truncate(before);
        return Err("non-zero bits after the expiry column");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kairosdb_ttl_rules() {
        let now = 1_700_000_000_000;
        let plain = TtlPolicy::default();
        assert_eq!(plain.expiry(0, now, now), Some(0));
        assert_eq!(plain.expiry(60, now - 5_000, now), Some(now + 60_000));
        assert_eq!(
            plain.expiry(60, now, now + 999),
            Some(now + 60_000),
            "whole seconds, as Cassandra"
        );
        let default = TtlPolicy {
            default_ttl: 10,
            ..TtlPolicy::default()
        };
        assert_eq!(default.expiry(0, now, now), Some(now + 10_000));
        assert_eq!(
            default.expiry(60, now, now),
            Some(now + 60_000),
            "the client's ttl wins"
        );
        let forced = TtlPolicy {
            force_default: true,
            ..default
        };
        assert_eq!(forced.expiry(60, now, now), Some(now + 10_000));
        let aligned = TtlPolicy { align: true, ..default };
        assert_eq!(
            aligned.expiry(0, now - 4_500, now),
            Some(now + 6_000),
            "age 4 s (truncated)"
        );
        assert_eq!(aligned.expiry(0, now - 10_000, now), None, "dead on arrival");
        assert_eq!(
            aligned.expiry(0, now + 5_000, now),
            Some(now + 15_000),
            "a future point lives longer"
        );
        assert_eq!(aligned.expiry(0, i64::MIN / 2, now), None);
        assert!(expired(now, now) && !expired(now + 1, now) && !expired(0, now));
    }

    fn round_trip(points: &[(i64, Value)], expiry: &[i64]) -> (usize, Vec<i64>) {
        let mut col = Vec::new();
        encode_column(points, expiry, &mut col);
        let (c, rest) = split_column(&col).unwrap();
        assert!(rest.is_empty());
        let mut out = Vec::new();
        decode_column(c, points, &mut out).unwrap();
        (col.len(), out)
    }

    #[test]
    fn columns_round_trip_and_stay_small() {
        let pts: Vec<(i64, Value)> = (0..1000).map(|i| (i * 10_000, Value::Long(i))).collect();
        let same = vec![1_765_000_000_000i64; 1000];
        let (len, got) = round_trip(&pts, &same);
        assert_eq!(got, same);
        assert!(len <= 12, "one run: {len} bytes");
        let aligned: Vec<i64> = pts.iter().map(|p| p.0 + 86_400_000).collect();
        let (len, got) = round_trip(&pts, &aligned);
        assert_eq!(got, aligned);
        assert!(len <= 10, "relative mode, one run: {len} bytes");
        let mixed: Vec<i64> = (0..1000).map(|i| if i % 3 == 0 { 0 } else { i * 7 }).collect();
        assert_eq!(round_trip(&pts, &mixed).1, mixed);
        // Real-time arrival: each point 0-2 s late, a day's ttl, whole seconds.
        let arrived: Vec<i64> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| (p.0.div_euclid(1000) + (i as i64 * 7919) % 3 + 86_400) * 1000)
            .collect();
        let (len, got) = round_trip(&pts, &arrived);
        assert_eq!(got, arrived);
        assert!(len <= 1000 * 2 / 8 + 12, "packed, 2 bits a point: {len} bytes");
        let negative: Vec<(i64, Value)> = (0..50).map(|i| (-1_000_500 + i * 333, Value::Long(i))).collect();
        let exp: Vec<i64> = negative.iter().map(|p| (p.0.div_euclid(1000) + 5) * 1000).collect();
        assert_eq!(round_trip(&negative, &exp).1, exp);
    }

    #[test]
    fn bad_columns_are_errors() {
        let pts = [(1, Value::Long(1)), (2, Value::Long(2))];
        let mut out = Vec::new();
        assert!(decode_column(&[], &pts, &mut out).is_err());
        assert!(decode_column(&[3, 1, 2, 0], &pts, &mut out).is_err());
        assert!(decode_column(&[0, 1, 3, 0], &pts, &mut out).is_err());
        assert!(decode_column(&[0, 1, 1, 0], &pts, &mut out).is_err());
        assert!(decode_column(&[0, 1, 2, 0, 9], &pts, &mut out).is_err());
        assert!(out.is_empty());
        assert!(split_column(&[5, 1]).is_err());
        assert!(decode_column(&[2, 0, 65], &pts, &mut out).is_err());
        assert!(
            decode_column(&[2, 0, 3, 0xff], &pts, &mut out).is_err(),
            "bits past the points"
        );
        assert!(decode_column(&[2, 0, 4], &pts, &mut out).is_err());
        assert!(out.is_empty());
    }

    mod chunks {
        use super::super::super::chunk;
        use super::*;

        fn pts(n: i64) -> Vec<(i64, Value)> {
            (0..n).map(|i| (1_000 + i * 10_000, Value::Long(i))).collect()
        }

        #[test]
        fn a_chunk_without_expiry_is_byte_for_byte_the_plain_encoding() {
            let p = pts(100);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            chunk::encode(&p, &mut a);
            chunk::encode_expiring(&p, &[0; 100], &mut b);
            assert_eq!(a, b);
            assert!(!chunk::has_expiry(&b));
        }

        #[test]
        fn expiring_chunks_round_trip_and_hide_expired_points() {
            let p = pts(10);
            let exp: Vec<i64> = (0..10).map(|i| if i < 5 { 500 } else { 0 }).collect();
            let mut c = Vec::new();
            chunk::encode_expiring(&p, &exp, &mut c);
            assert!(chunk::has_expiry(&c));
            let (mut got, mut got_exp) = (Vec::new(), Vec::new());
            chunk::decode_expiring(&c, &mut got, &mut got_exp).unwrap();
            assert_eq!((got, got_exp), (p.clone(), exp));
            let mut all = Vec::new();
            chunk::decode(&c, &mut all).unwrap();
            assert_eq!(all, p, "decode ignores expiry");
            let mut live = Vec::new();
            chunk::decode_live(&c, 499, &mut live).unwrap();
            assert_eq!(live.len(), 10);
            live.clear();
            chunk::decode_live(&c, 500, &mut live).unwrap();
            assert_eq!(live, p[5..]);
            assert_eq!(chunk::header(&c).unwrap(), (10, 1_000));
            assert_eq!(chunk::max_expiry(&c), Ok(Some(0)));
            // Any damage is caught.
            for i in 0..c.len() {
                let mut bad = c.clone();
                bad[i] ^= 0x10;
                assert!(chunk::decode_live(&bad, 0, &mut Vec::new()).is_err(), "flip at {i}");
            }
        }

        #[test]
        fn a_rewrite_carries_its_own_expiry() {
            let p = pts(3);
            let (mut forever, mut ttl, mut merged) = (Vec::new(), Vec::new(), Vec::new());
            chunk::encode(&p, &mut forever);
            // Point 1 rewritten with a ttl that ran out at 100.
            chunk::encode_expiring(&p[1..2], &[100], &mut ttl);
            chunk::merge_expiring(&[&forever, &ttl], None, &mut merged).unwrap();
            let (mut got, mut exp) = (Vec::new(), Vec::new());
            chunk::decode_expiring(&merged, &mut got, &mut exp).unwrap();
            assert_eq!(got, p);
            assert_eq!(exp, [0, 100, 0], "the partial merge keeps the expired point");
            merged.clear();
            chunk::merge_expiring(&[&forever, &ttl], Some(200), &mut merged).unwrap();
            got.clear();
            chunk::decode(&merged, &mut got).unwrap();
            assert_eq!(
                got,
                [p[0], p[2]],
                "the full merge drops it; the forever version stays hidden"
            );
            // And back: rewritten without a ttl, the point lives again.
            let mut again = Vec::new();
            merged.clear();
            chunk::encode(&p[1..2], &mut again);
            chunk::merge_expiring(&[&forever, &ttl, &again], Some(200), &mut merged).unwrap();
            assert!(!chunk::has_expiry(&merged));
            got.clear();
            chunk::decode(&merged, &mut got).unwrap();
            assert_eq!(got, p);
        }
    }
}
