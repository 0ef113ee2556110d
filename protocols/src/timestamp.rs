//! The one place where a timestamp's unit is decided.

/// KairosDB's rule for telnet `put`: a value below 3,000,000,000 is seconds (this
/// includes zero and negatives), anything else is already milliseconds. Saturates
/// instead of overflowing for absurd negative inputs.
pub const SECONDS_THRESHOLD: i64 = 3_000_000_000;

/// How a protocol states its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Telnet `put`: seconds or milliseconds, told apart by [`SECONDS_THRESHOLD`].
    SecondsOrMillis,
    /// Telnet `putm`, REST: always milliseconds.
    Millis,
    /// Graphite: always seconds.
    Seconds,
}

/// Converts a timestamp stated in `unit` to milliseconds; `None` if it overflows.
pub fn to_millis(ts: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Millis => Some(ts),
        TimeUnit::Seconds => ts.checked_mul(1000),
        TimeUnit::SecondsOrMillis if ts < SECONDS_THRESHOLD => ts.checked_mul(1000),
        TimeUnit::SecondsOrMillis => Some(ts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_is_exact() {
        let u = TimeUnit::SecondsOrMillis;
        assert_eq!(to_millis(2_999_999_999, u), Some(2_999_999_999_000));
        assert_eq!(to_millis(3_000_000_000, u), Some(3_000_000_000));
        assert_eq!(to_millis(0, u), Some(0));
        assert_eq!(to_millis(-5, u), Some(-5000));
        assert_eq!(to_millis(i64::MIN, u), None);
        assert_eq!(to_millis(1_700_000_000_000, TimeUnit::Millis), Some(1_700_000_000_000));
        assert_eq!(to_millis(1_700_000_000, TimeUnit::Seconds), Some(1_700_000_000_000));
    }
}
