//! Import ids: 48 bits of milliseconds since the epoch and a 16-bit counter, so ids
//! sort by start time (jobs list newest first by key) and never repeat in a process.
//! Printed as 13 Crockford base-32 characters, like the time part of a ULID.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static LAST: AtomicU64 = AtomicU64::new(0);

/// A new id, greater than every id this process made before.
pub fn next() -> u64 {
    let now = (crate::http::response::now_millis().max(0) as u64) << 16;
    let mut last = LAST.load(Relaxed);
    loop {
        let id = now.max(last + 1);
        match LAST.compare_exchange(last, id, Relaxed, Relaxed) {
            Ok(_) => return id,
            Err(seen) => last = seen,
        }
    }
}

pub fn format(id: u64) -> String {
    let mut out = [0u8; 13];
    let mut v = id;
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(v & 31) as usize];
        v >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn parse(s: &str) -> Option<u64> {
    if s.len() != 13 {
        return None;
    }
    let mut v: u64 = 0;
    for b in s.bytes() {
        let b = b.to_ascii_uppercase();
        let d = match b {
            b'O' => 0,
            b'I' | b'L' => 1,
            _ => ALPHABET.iter().position(|&c| c == b)? as u64,
        };
        v = v.checked_mul(32)?.checked_add(d)?;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_round_trip_and_increase() {
        let a = super::next();
        let b = super::next();
        assert!(b > a);
        assert_eq!(super::parse(&super::format(a)), Some(a));
        assert!(super::format(a) < super::format(b));
        assert_eq!(super::parse("nope"), None);
    }
}
