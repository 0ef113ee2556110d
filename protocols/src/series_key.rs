//! The canonical byte form of a series identity (metric plus sorted tags).
//!
//! It is the writer's cache key, the `series` column family's key and the prefix that
//! metric-scoped scans use, so it must be unambiguous and prefix-free: every string is
//! escaped (`0x00` → `0x01 0x01`, `0x01` → `0x01 0x02`) and terminated by `0x00`. No
//! name can then forge a tag boundary, byte order follows string order, and the encoded
//! metric followed by its terminator is a prefix of exactly that metric's series.
//!
//! Layout: `metric 0x00 (tag_name 0x00 tag_value 0x00)*`, tags sorted by name.

/// Appends the escaped, terminated form of `s`.
#[inline]
pub fn push_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !has_escapable(bytes) {
        out.extend_from_slice(bytes);
    } else {
        for &b in bytes {
            match b {
                0 => out.extend_from_slice(&[1, 1]),
                1 => out.extend_from_slice(&[1, 2]),
                _ => out.push(b),
            }
        }
    }
    out.push(0);
}

/// Whether `bytes` holds a 0x00 or 0x01 (which the key escapes), eight bytes at a time.
#[inline(always)]
fn has_escapable(bytes: &[u8]) -> bool {
    const LOW: u64 = 0x0101_0101_0101_0101;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // The high bit of each byte below 2 (a borrow only marks bytes above one).
        if x.wrapping_sub(LOW * 2) & !x & (LOW << 7) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b <= 1)
}

/// Appends the key for `metric` and `tags` (which must be sorted by name and unique).
pub fn encode_into<'a>(out: &mut Vec<u8>, metric: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) {
    push_str(out, metric);
    for (k, v) in tags {
        push_str(out, k);
        push_str(out, v);
    }
}

/// The key of `metric` and `tags` as a new vector.
pub fn encode<'a>(metric: &str, tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    encode_into(&mut out, metric, tags);
    out
}

/// The prefix shared by every series of `metric`.
pub fn metric_prefix(metric: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(metric.len() + 1);
    push_str(&mut out, metric);
    out
}

/// Why a stored key could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("series key is truncated")]
    Truncated,
    #[error("series key has a bad escape")]
    BadEscape,
    #[error("series key is not UTF-8")]
    NotUtf8,
    #[error("series key has a tag name without a value")]
    OddTags,
}

/// Reads one escaped string from the front of `input`, returning it and the rest.
pub fn read_str(input: &[u8]) -> Result<(String, &[u8]), KeyError> {
    let end = memchr::memchr(0, input).ok_or(KeyError::Truncated)?;
    let raw = &input[..end];
    let rest = &input[end + 1..];
    let bytes = if raw.contains(&1) {
        let mut out = Vec::with_capacity(raw.len());
        let mut it = raw.iter();
        while let Some(&b) = it.next() {
            if b == 1 {
                match it.next() {
                    Some(1) => out.push(0),
                    Some(2) => out.push(1),
                    _ => return Err(KeyError::BadEscape),
                }
            } else {
                out.push(b);
            }
        }
        out
    } else {
        raw.to_vec()
    };
    let s = String::from_utf8(bytes).map_err(|_| KeyError::NotUtf8)?;
    Ok((s, rest))
}

/// Splits a canonical key into its metric and tags.
pub fn decode(key: &[u8]) -> Result<(String, Vec<(String, String)>), KeyError> {
    let (metric, mut rest) = read_str(key)?;
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (k, r) = read_str(rest)?;
        if r.is_empty() {
            return Err(KeyError::OddTags);
        }
        let (v, r) = read_str(r)?;
        tags.push((k, v));
        rest = r;
    }
    Ok((metric, tags))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_escapes() {
        let key = encode("m\u{0}x", [("a\u{1}", "b"), ("c", "")]);
        assert_eq!(key, b"m\x01\x01x\0a\x01\x02\0b\0c\0\0");
        let (m, t) = decode(&key).unwrap();
        assert_eq!(m, "m\u{0}x");
        assert_eq!(
            t,
            vec![
                ("a\u{1}".to_string(), "b".to_string()),
                ("c".to_string(), String::new())
            ]
        );
    }

    #[test]
    fn metric_prefix_does_not_match_longer_metric() {
        let p = metric_prefix("cpu");
        assert!(encode("cpu", [("h", "a")]).starts_with(&p));
        assert!(!encode("cpu2", [("h", "a")]).starts_with(&p));
    }

    #[test]
    fn escapes_wherever_the_byte_sits() {
        for len in 0..20 {
            for at in 0..len {
                for b in [0u8, 1] {
                    let mut s = vec![b'a'; len];
                    s[at] = b;
                    let s = String::from_utf8(s).unwrap();
                    assert!(has_escapable(s.as_bytes()), "{len} {at}");
                    let (m, _) = decode(&encode(&s, [])).unwrap();
                    assert_eq!(m, s);
                }
            }
            let plain: String = (0..len).map(|i| char::from(b'\x02' + (i as u8 * 37) % 120)).collect();
            assert!(!has_escapable(plain.as_bytes()), "{plain:?}");
        }
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decode(b"abc"), Err(KeyError::Truncated));
        assert_eq!(decode(b"m\0k\0"), Err(KeyError::OddTags));
        assert_eq!(decode(b"m\x01\x03\0"), Err(KeyError::BadEscape));
    }
}
