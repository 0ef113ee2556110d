//! Word scanning shared by the line protocols (telnet, Graphite plaintext), which both
//! split on runs of bytes <= 0x20. Lines are read word by word on every point, so the
//! end of a word is found eight bytes at a time.

/// The index of the first byte <= 0x20 at or after `from`, or `line.len()`.
#[inline]
pub(crate) fn word_end(line: &[u8], mut i: usize) -> usize {
    while i + 8 <= line.len() {
        let x = u64::from_le_bytes(line[i..i + 8].try_into().expect("8 bytes"));
        // The high bit of each byte below 0x21 (bytes of 0x80 and up are excluded by
        // `!x`); a borrow only ever marks bytes above the first such byte, so the lowest
        // mark is exact.
        let below = x.wrapping_sub(0x2121_2121_2121_2121) & !x & 0x8080_8080_8080_8080;
        if below != 0 {
            return i + (below.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < line.len() && line[i] > b' ' {
        i += 1;
    }
    i
}

/// The index of the first byte > 0x20 at or after `from`, or `line.len()` (separators
/// are short, usually one space).
#[inline]
pub(crate) fn space_end(line: &[u8], mut i: usize) -> usize {
    while i < line.len() && line[i] <= b' ' {
        i += 1;
    }
    i
}

/// `x == y` for the short names and keys of the hot path, compared a word at a time
/// inline instead of through a `memcmp` call (which costs more than the compare itself
/// at these lengths).
#[inline]
pub(crate) fn eq_bytes(x: &[u8], y: &[u8]) -> bool {
    let len = x.len();
    if len != y.len() {
        return false;
    }
    if len < 8 {
        if len >= 4 {
            let w = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
            return w(x, 0) == w(y, 0) && w(x, len - 4) == w(y, len - 4);
        }
        // 0 to 3 bytes (a Graphite path's empty second part): no call to `bcmp`.
        return x.iter().zip(y).all(|(a, b)| a == b);
    }
    let w = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let mut i = 0;
    while i + 8 < len {
        if w(x, i) != w(y, i) {
            return false;
        }
        i += 8;
    }
    // The last word, overlapping the previous one when the length is not a multiple.
    w(x, len - 8) == w(y, len - 8)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn eq_bytes_is_equality(x in proptest::collection::vec(0u8..3, 0..40), y in proptest::collection::vec(0u8..3, 0..40)) {
            prop_assert_eq!(eq_bytes(&x, &y), x == y);
            prop_assert!(eq_bytes(&x, &x.clone()));
        }

        #[test]
        fn word_end_is_the_first_separator(line in proptest::collection::vec(any::<u8>(), 0..40), from in 0usize..40) {
            let from = from.min(line.len());
            let want = line[from..].iter().position(|&b| b <= b' ').map_or(line.len(), |p| from + p);
            prop_assert_eq!(word_end(&line, from), want);
            let want = line[from..].iter().position(|&b| b > b' ').map_or(line.len(), |p| from + p);
            prop_assert_eq!(space_end(&line, from), want);
        }
    }
}
