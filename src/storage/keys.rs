//! Byte layouts of the keys in each column family (see DESIGN.md, "Storage layout").
//!
//! Integers are big-endian so byte order is numeric order; timestamps have their sign
//! bit flipped for the same reason. Strings reuse the escaped, terminated form of
//! [`kairos_protocols::series_key`], so no name can forge another's prefix.

use kairos_protocols::series_key;

pub type SeriesId = u64;

/// An i64 whose big-endian bytes sort like the number.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn from_ordered_i64(b: [u8; 8]) -> i64 {
    (u64::from_be_bytes(b) ^ (1 << 63)) as i64
}

/// The start of the bucket holding `ts` (floor division, so negative times work).
///
/// The lowest bucket would start before `i64::MIN`; it starts at `i64::MIN` instead,
/// so a point at any representable time has a bucket that writes and reads agree on.
pub fn bucket_start(ts: i64, width: i64) -> i64 {
    ts.saturating_sub(ts.rem_euclid(width))
}

/// `points` key: series id, then bucket start.
pub fn point_key(series: SeriesId, bucket: i64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&series.to_be_bytes());
    key[8..].copy_from_slice(&ordered_i64(bucket));
    key
}

/// Splits a `points` key; `None` if it has the wrong length.
pub fn parse_point_key(key: &[u8]) -> Option<(SeriesId, i64)> {
    let key: &[u8; 16] = key.try_into().ok()?;
    let series = u64::from_be_bytes(key[..8].try_into().ok()?);
    Some((series, from_ordered_i64(key[8..].try_into().ok()?)))
}

/// `tag_index` key: metric, tag name, tag value, series id.
pub fn tag_index_key(metric: &str, name: &str, value: &str, series: SeriesId) -> Vec<u8> {
    let mut key = tag_index_prefix(metric, name, Some(value));
    key.extend_from_slice(&series.to_be_bytes());
    key
}

/// Prefix of every `tag_index` key of `metric` and tag `name` (and `value`, if given).
pub fn tag_index_prefix(metric: &str, name: &str, value: Option<&str>) -> Vec<u8> {
    let mut key = Vec::with_capacity(metric.len() + name.len() + 24);
    series_key::push_str(&mut key, metric);
    series_key::push_str(&mut key, name);
    if let Some(value) = value {
        series_key::push_str(&mut key, value);
    }
    key
}

/// A canonical series key split without decoding: the metric part and the (name,
/// value) parts, still escaped and without their terminators (escaping is one-to-one,
/// so equal parts are equal texts, and a part is the text itself unless it holds a
/// `0x01`). `None` unless the key is whole: a metric and complete pairs, each ended
/// by its `0x00` (escaping never writes a `0x00`, so counting them is enough).
pub fn split_series_key(key: &[u8]) -> Option<(&[u8], RawTags<'_>)> {
    if key.last() != Some(&0) || memchr::memchr_iter(0, key).count().is_multiple_of(2) {
        return None;
    }
    let end = memchr::memchr(0, key)?;
    Some((&key[..end], RawTags { rest: &key[end + 1..] }))
}

/// The (name, value) parts of a series key (see [`split_series_key`]).
pub struct RawTags<'a> {
    rest: &'a [u8],
}

impl<'a> RawTags<'a> {
    /// The tag parts of `key`, trusting it to be whole (a stored key; a damaged one
    /// just yields fewer pairs).
    pub fn of(key: &'a [u8]) -> RawTags<'a> {
        let rest = memchr::memchr(0, key).map_or(&[][..], |end| &key[end + 1..]);
        RawTags { rest }
    }
}

impl<'a> Iterator for RawTags<'a> {
    type Item = (&'a [u8], &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let k_end = memchr::memchr(0, self.rest)?;
        let (k, after) = (&self.rest[..k_end], &self.rest[k_end + 1..]);
        let v_end = memchr::memchr(0, after)?;
        self.rest = &after[v_end + 1..];
        Some((k, &after[..v_end]))
    }
}

/// Appends the unescaped bytes of a key part (`0x01 0x01` → `0x00`, `0x01 0x02` →
/// `0x01`; a stray `0x01` is kept as it is).
pub fn unescape_into(part: &[u8], out: &mut Vec<u8>) {
    if !part.contains(&1) {
        out.extend_from_slice(part);
        return;
    }
    let mut i = 0;
    while i < part.len() {
        match (part[i], part.get(i + 1)) {
            (1, Some(&1)) => {
                out.push(0);
                i += 2;
            }
            (1, Some(&2)) => {
                out.push(1);
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

/// What a `names` entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum NameKind {
    Metric = b'm',
    TagName = b'k',
    TagValue = b'v',
}

/// `names` key: kind byte, then the raw UTF-8 name (so a byte prefix is a string prefix).
pub fn name_key(kind: NameKind, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 1);
    key.push(kind as u8);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The smallest key greater than every key starting with `prefix`, if any.
pub fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordered_i64_sorts_numerically() {
        let vals = [i64::MIN, -5000, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        for w in vals.windows(2) {
            assert!(ordered_i64(w[0]) < ordered_i64(w[1]));
            assert_eq!(from_ordered_i64(ordered_i64(w[0])), w[0]);
        }
    }

    #[test]
    fn buckets_floor_negative_times() {
        assert_eq!(bucket_start(7_199_999, 7_200_000), 0);
        assert_eq!(bucket_start(7_200_000, 7_200_000), 7_200_000);
        assert_eq!(bucket_start(-1, 7_200_000), -7_200_000);
        assert_eq!(bucket_start(i64::MIN, 7_200_000), i64::MIN);
        assert_eq!(bucket_start(i64::MIN + 1, 7_200_000), i64::MIN);
        assert_eq!(bucket_start(i64::MAX, 7_200_000) % 7_200_000, 0);
    }

    #[test]
    fn point_keys_round_trip_and_sort_by_series_then_time() {
        let a = point_key(1, -7_200_000);
        let b = point_key(1, 0);
        let c = point_key(2, i64::MIN);
        assert!(a < b && b < c);
        assert_eq!(parse_point_key(&a), Some((1, -7_200_000)));
        assert_eq!(parse_point_key(b"short"), None);
    }

    #[test]
    fn split_series_key_reads_what_decode_reads_and_refuses_cut_keys() {
        let key = series_key::encode("m\u{1}", [("a", "x\u{0}"), ("b", "")]);
        let (metric, tags) = split_series_key(&key).unwrap();
        let mut m = Vec::new();
        unescape_into(metric, &mut m);
        assert_eq!(m, "m\u{1}".as_bytes());
        let tags: Vec<(Vec<u8>, Vec<u8>)> = tags
            .map(|(k, v)| {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                unescape_into(k, &mut a);
                unescape_into(v, &mut b);
                (a, b)
            })
            .collect();
        assert_eq!(tags, [(b"a".to_vec(), b"x\0".to_vec()), (b"b".to_vec(), Vec::new())]);
        assert!(split_series_key(&key[..key.len() - 1]).is_none());
        assert!(split_series_key(b"m\0a\0").is_none(), "a name without a value");
        assert!(split_series_key(b"").is_none());
        // The tag index key from the raw parts (as `Commit::add_series_key` builds it)
        // is the one `tag_index_key` builds from the texts.
        let (metric, tags) = split_series_key(&key).unwrap();
        for ((k, v), (tk, tv)) in tags.zip([("a", "x\u{0}"), ("b", "")]) {
            let mut raw = Vec::new();
            for part in [metric, k, v] {
                raw.extend_from_slice(part);
                raw.push(0);
            }
            raw.extend_from_slice(&7u64.to_be_bytes());
            assert_eq!(raw, tag_index_key("m\u{1}", tk, tv, 7));
        }
    }

    #[test]
    fn prefix_end_is_exclusive_upper_bound() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(b"a\xff"), Some(b"b".to_vec()));
        assert_eq!(prefix_end(b"\xff\xff"), None);
    }
}
