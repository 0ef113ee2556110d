//! Units, relative times and civil-date arithmetic for query ranges (relative times are
//! in UTC, as KairosDB computes them; zoned calendars are in [`super::tz`]).

/// A unit of `start_relative` / `end_relative` / `sampling`, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
    Weeks,
    Months,
    Years,
}

pub const UNIT_NAMES: &str = "MILLISECONDS,SECONDS,MINUTES,HOURS,DAYS,WEEKS,MONTHS,YEARS";

impl Unit {
    pub fn parse(s: &str) -> Option<Unit> {
        Some(match s.to_ascii_uppercase().as_str() {
            "MILLISECONDS" => Unit::Milliseconds,
            "SECONDS" => Unit::Seconds,
            "MINUTES" => Unit::Minutes,
            "HOURS" => Unit::Hours,
            "DAYS" => Unit::Days,
            "WEEKS" => Unit::Weeks,
            "MONTHS" => Unit::Months,
            "YEARS" => Unit::Years,
            _ => return None,
        })
    }

    /// The name KairosDB prints, e.g. in a time group-by's `range_size`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Milliseconds => "MILLISECONDS",
            Unit::Seconds => "SECONDS",
            Unit::Minutes => "MINUTES",
            Unit::Hours => "HOURS",
            Unit::Days => "DAYS",
            Unit::Weeks => "WEEKS",
            Unit::Months => "MONTHS",
            Unit::Years => "YEARS",
        }
    }
}

const DAY_MS: i64 = 86_400_000;

/// `now` minus `value` units; months and years follow the calendar (the day of month is
/// clamped, as Java's calendar does). Saturates instead of overflowing.
pub fn subtract(now: i64, value: i64, unit: Unit) -> i64 {
    let fixed = |ms: i64| now.saturating_sub(value.saturating_mul(ms));
    match unit {
        Unit::Milliseconds => fixed(1),
        Unit::Seconds => fixed(1000),
        Unit::Minutes => fixed(60_000),
        Unit::Hours => fixed(3_600_000),
        Unit::Days => fixed(DAY_MS),
        Unit::Weeks => fixed(7 * DAY_MS),
        Unit::Months => add_months(now, value.saturating_neg()),
        Unit::Years => add_months(now, value.saturating_neg().saturating_mul(12)),
    }
}

/// Months in 300 million years: past that, any result is outside the i64 millisecond
/// range anyway, and the calendar arithmetic below stays far from overflowing.
const MAX_MONTHS: i64 = 12 * 300_000_000;

fn add_months(ms: i64, months: i64) -> i64 {
    let days = ms.div_euclid(DAY_MS);
    let in_day = ms.rem_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    let total = (y * 12 + (m as i64 - 1)).saturating_add(months.clamp(-MAX_MONTHS, MAX_MONTHS));
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    let nd = d.min(days_in_month(ny, nm));
    days_from_civil(ny, nm, nd)
        .saturating_mul(DAY_MS)
        .saturating_add(in_day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number since 1970-01-01.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for z in [-800_000, -1, 0, 59, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
    }

    #[test]
    fn months_follow_the_calendar() {
        let mar31 = days_from_civil(2024, 3, 31) * DAY_MS + 5;
        assert_eq!(
            subtract(mar31, 1, Unit::Months),
            days_from_civil(2024, 2, 29) * DAY_MS + 5
        );
        assert_eq!(
            subtract(mar31, 1, Unit::Years),
            days_from_civil(2023, 3, 31) * DAY_MS + 5
        );
        assert_eq!(subtract(10_000, 2, Unit::Seconds), 8_000);
        assert_eq!(subtract(0, 1, Unit::Weeks), -7 * DAY_MS);
        assert_eq!(subtract(0, i64::MAX, Unit::Years), i64::MIN);
        assert_eq!(subtract(0, i64::MAX, Unit::Months), i64::MIN);
        assert!(subtract(0, i64::MAX, Unit::Days) <= i64::MIN + 1);
        assert_eq!(Unit::parse("hours"), Some(Unit::Hours));
        assert_eq!(Unit::parse("fortnights"), None);
    }
}
