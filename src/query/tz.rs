//! Time zones and calendar fields for range aggregators, with Joda-Time's semantics as
//! KairosDB uses them: hours and shorter are elapsed time, days and longer are local
//! calendar time (a day across a DST change is 23 or 25 hours, a month is a month).

use super::time::{civil_from_days, days_from_civil, Unit};

const DAY_MS: i64 = 86_400_000;

/// A query's `time_zone`: UTC, a fixed offset (`+05:30`), or an IANA zone.
#[derive(Debug, Clone)]
pub enum Tz {
    Utc,
    Fixed(i64),
    Named(jiff::tz::TimeZone),
}

impl Tz {
    /// `""` is UTC, as in KairosDB; `None` for a name that is no time zone.
    pub fn parse(name: &str) -> Option<Tz> {
        let name = name.trim();
        match name {
            "" | "UTC" | "Z" | "GMT" | "Etc/UTC" | "Etc/GMT" => return Some(Tz::Utc),
            _ => {}
        }
        if let Some(ms) = fixed_offset(name) {
            return Some(if ms == 0 { Tz::Utc } else { Tz::Fixed(ms) });
        }
        jiff::tz::TimeZone::get(name).ok().map(Tz::Named)
    }

    /// Milliseconds to add to a UTC instant to get local time.
    pub fn offset(&self, utc: i64) -> i64 {
        match self {
            Tz::Utc => 0,
            Tz::Fixed(ms) => *ms,
            Tz::Named(tz) => match jiff::Timestamp::from_millisecond(utc) {
                Ok(t) => i64::from(tz.to_offset(t).seconds()) * 1000,
                // Outside jiff's range (years beyond ±9999): the nearest end's offset.
                Err(_) => {
                    let edge = if utc < 0 {
                        jiff::Timestamp::MIN
                    } else {
                        jiff::Timestamp::MAX
                    };
                    i64::from(tz.to_offset(edge).seconds()) * 1000
                }
            },
        }
    }

    pub fn to_local(&self, utc: i64) -> i64 {
        utc.saturating_add(self.offset(utc))
    }

    /// The instant of local time `local`; a local time skipped by a DST change maps
    /// past the gap, a repeated one to its first occurrence (as Joda's lenient
    /// conversion does).
    pub fn from_local(&self, local: i64) -> i64 {
        match self {
            Tz::Utc => local,
            Tz::Fixed(ms) => local.saturating_sub(*ms),
            Tz::Named(tz) => {
                let (y, m, d, in_day) = split(local);
                let ms = in_day;
                let civil = i16::try_from(y).ok().and_then(|y| {
                    jiff::civil::DateTime::new(
                        y,
                        m as i8,
                        d as i8,
                        (ms / 3_600_000) as i8,
                        (ms / 60_000 % 60) as i8,
                        (ms / 1000 % 60) as i8,
                        (ms % 1000) as i32 * 1_000_000,
                    )
                    .ok()
                });
                match civil.and_then(|dt| tz.to_ambiguous_timestamp(dt).compatible().ok()) {
                    Some(t) => t.as_millisecond(),
                    None => local.saturating_sub(self.offset(local)),
                }
            }
        }
    }
}

/// `+05:30`, `-0800`, `+05`, `UTC+01:00`: an offset in ms.
fn fixed_offset(s: &str) -> Option<i64> {
    let s = s.strip_prefix("UTC").or_else(|| s.strip_prefix("GMT")).unwrap_or(s);
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !(digits.len() == 2 || digits.len() == 4) {
        return None;
    }
    let h: i64 = digits[..2].parse().ok()?;
    let m: i64 = if digits.len() == 4 {
        digits[2..].parse().ok()?
    } else {
        0
    };
    if h > 23 || m > 59 {
        return None;
    }
    Some(sign * (h * 3_600_000 + m * 60_000))
}

/// Local time split into a civil date and the time of day.
fn split(local: i64) -> (i64, u32, u32, i64) {
    let days = local.div_euclid(DAY_MS);
    let (y, m, d) = civil_from_days(days);
    (y, m, d, local.rem_euclid(DAY_MS))
}

fn join(y: i64, m: u32, d: u32, in_day: i64) -> i64 {
    days_from_civil(y, m, d).saturating_mul(DAY_MS).saturating_add(in_day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

pub fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Months past this are outside the i64 range anyway; keeps the arithmetic bounded.
const MAX_MONTHS: i64 = 12 * 300_000_000;

/// Local `local` plus `months` calendar months, the day clamped to the month's length.
fn add_months_local(local: i64, months: i64) -> i64 {
    let (y, m, d, in_day) = split(local);
    let total = (y * 12 + (m as i64 - 1)).saturating_add(months.clamp(-MAX_MONTHS, MAX_MONTHS));
    let (ny, nm) = (total.div_euclid(12), total.rem_euclid(12) as u32 + 1);
    join(ny, nm, d.min(days_in_month(ny, nm)), in_day)
}

/// Whole months from `sub` to `min` (local times), as Joda's month field counts them.
fn month_difference(min: i64, sub: i64) -> i64 {
    if min < sub {
        return -month_difference(sub, min);
    }
    let (my, mm, md, _) = split(min);
    let (sy, sm, sd, s_in_day) = split(sub);
    let mut diff = (my - sy) * 12 + mm as i64 - sm as i64;
    // A clamped end of month counts as reaching the later day of month.
    let mut sub = sub;
    if md == days_in_month(my, mm) && sd > md {
        sub = join(sy, sm, md, s_in_day);
    }
    let min_rem = min - join(my, mm, 1, 0);
    let sub_rem = sub - join(sy, sm, 1, 0);
    if min_rem < sub_rem {
        diff -= 1;
    }
    diff
}

/// Whole years from `sub` to `min` (local times), Feb 29 balanced as Joda does.
fn year_difference(min: i64, sub: i64) -> i64 {
    if min < sub {
        return -year_difference(sub, min);
    }
    let (my, ..) = split(min);
    let (sy, ..) = split(sub);
    let mut min_rem = min - join(my, 1, 1, 0);
    let mut sub_rem = sub - join(sy, 1, 1, 0);
    const FEB_29: i64 = (31 + 28) * DAY_MS;
    if sub_rem >= FEB_29 && is_leap(sy) {
        if !is_leap(my) {
            sub_rem -= DAY_MS;
        }
    } else if min_rem >= FEB_29 && is_leap(my) {
        min_rem -= DAY_MS;
    }
    let mut diff = my - sy;
    if min_rem < sub_rem {
        diff -= 1;
    }
    diff
}

/// Fixed length of the units measured as elapsed time.
pub fn elapsed_ms(unit: Unit) -> Option<i64> {
    match unit {
        Unit::Milliseconds => Some(1),
        Unit::Seconds => Some(1000),
        Unit::Minutes => Some(60_000),
        Unit::Hours => Some(3_600_000),
        _ => None,
    }
}

/// Joda's field arithmetic for one unit in one zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    pub unit: Unit,
    pub tz: Tz,
}

impl Calendar {
    pub fn new(unit: Unit, tz: Tz) -> Calendar {
        Calendar { unit, tz }
    }

    /// Whole units from `sub` to `min`, truncated toward zero.
    pub fn difference(&self, min: i64, sub: i64) -> i64 {
        if let Some(ms) = elapsed_ms(self.unit) {
            return (min as i128 - sub as i128).checked_div(ms as i128).unwrap_or(0) as i64;
        }
        let (lm, ls) = (self.tz.to_local(min), self.tz.to_local(sub));
        match self.unit {
            Unit::Days => ((lm as i128 - ls as i128) / DAY_MS as i128) as i64,
            Unit::Weeks => ((lm as i128 - ls as i128) / (7 * DAY_MS) as i128) as i64,
            Unit::Months => month_difference(lm, ls),
            _ => year_difference(lm, ls),
        }
    }

    /// `t` plus `n` units.
    pub fn add(&self, t: i64, n: i64) -> i64 {
        if let Some(ms) = elapsed_ms(self.unit) {
            return t.saturating_add(n.saturating_mul(ms));
        }
        let local = self.tz.to_local(t);
        let moved = match self.unit {
            Unit::Days => local.saturating_add(n.saturating_mul(DAY_MS)),
            Unit::Weeks => local.saturating_add(n.saturating_mul(7 * DAY_MS)),
            Unit::Months => add_months_local(local, n),
            _ => add_months_local(local, n.saturating_mul(12)),
        };
        self.tz.from_local(moved)
    }

    /// KairosDB's `align_sampling` origin: the start of the second (milliseconds), of
    /// the day (seconds to days), of the ISO week, month or year containing `t`.
    pub fn align(&self, t: i64) -> i64 {
        let local = self.tz.to_local(t);
        let (y, m, d, in_day) = split(local);
        let aligned = match self.unit {
            Unit::Milliseconds => local - in_day % 1000,
            Unit::Seconds | Unit::Minutes | Unit::Hours | Unit::Days => local - in_day,
            Unit::Weeks => {
                let days = local.div_euclid(DAY_MS);
                // 1970-01-01 was a Thursday: Monday is day 0 of (days + 3) mod 7.
                (days - (days + 3).rem_euclid(7)) * DAY_MS
            }
            Unit::Months => join(y, m, 1, 0),
            Unit::Years => join(y, 1, 1, 0),
        };
        let _ = d;
        self.tz.from_local(aligned)
    }

    /// The length in ms of `n` units starting at `t` (rate and sampler's unit).
    pub fn duration(&self, t: i64, n: i64) -> i64 {
        match self.unit {
            Unit::Milliseconds => n,
            _ => self.add(t, n).saturating_sub(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(y: i64, m: u32, d: u32, h: i64) -> i64 {
        join(y, m, d, h * 3_600_000)
    }

    #[test]
    fn zones_parse() {
        assert!(matches!(Tz::parse(""), Some(Tz::Utc)));
        assert!(matches!(Tz::parse("+05:30"), Some(Tz::Fixed(19_800_000))));
        assert!(matches!(Tz::parse("-0800"), Some(Tz::Fixed(-28_800_000))));
        assert!(matches!(Tz::parse("Asia/Kabul"), Some(Tz::Named(_))));
        assert!(Tz::parse("bogus").is_none());
        assert!(Tz::parse("+25:00").is_none());
    }

    #[test]
    fn berlin_offsets_and_dst_gap() {
        let tz = Tz::parse("Europe/Berlin").unwrap();
        assert_eq!(tz.offset(utc(2024, 1, 15, 12)), 3_600_000);
        assert_eq!(tz.offset(utc(2024, 7, 15, 12)), 7_200_000);
        // 2024-03-31 02:30 local does not exist: it maps past the gap.
        let gap = join(2024, 3, 31, 2 * 3_600_000 + 1_800_000);
        let t = tz.from_local(gap);
        assert_eq!(tz.to_local(t), gap + 3_600_000);
        // 2024-10-27 02:30 local happens twice: the first one.
        let fold = join(2024, 10, 27, 2 * 3_600_000 + 1_800_000);
        assert_eq!(tz.from_local(fold), fold - 7_200_000);
    }

    #[test]
    fn months_in_a_zone() {
        let tz = Tz::parse("America/New_York").unwrap();
        let cal = Calendar::new(Unit::Months, tz.clone());
        // Local midnight of Jan 31 plus one month is local midnight of Feb 29 (clamped).
        let jan31 = tz.from_local(join(2024, 1, 31, 0));
        let feb = cal.add(jan31, 1);
        assert_eq!(tz.to_local(feb), join(2024, 2, 29, 0));
        assert_eq!(cal.difference(feb, jan31), 1);
        assert_eq!(cal.difference(feb - 1, jan31), 0);
        // Across the March DST change a month is one hour shorter in elapsed time.
        let mar1 = tz.from_local(join(2024, 3, 1, 0));
        let apr1 = cal.add(mar1, 1);
        assert_eq!(apr1 - mar1, 31 * DAY_MS - 3_600_000);
        assert_eq!(cal.align(apr1 + 5 * DAY_MS), apr1);
    }

    #[test]
    fn alignment_per_unit() {
        let t = utc(2024, 5, 15, 13) + 61_234; // a Wednesday
        let at = |u| Calendar::new(u, Tz::Utc).align(t);
        assert_eq!(at(Unit::Milliseconds), t - 234);
        assert_eq!(at(Unit::Hours), utc(2024, 5, 15, 0));
        assert_eq!(at(Unit::Weeks), utc(2024, 5, 13, 0));
        assert_eq!(at(Unit::Months), utc(2024, 5, 1, 0));
        assert_eq!(at(Unit::Years), utc(2024, 1, 1, 0));
    }

    #[test]
    fn year_and_day_differences() {
        let cal = Calendar::new(Unit::Years, Tz::Utc);
        assert_eq!(cal.difference(utc(2025, 2, 28, 0), utc(2024, 2, 29, 0)), 1);
        assert_eq!(cal.difference(utc(2025, 2, 27, 0), utc(2024, 2, 29, 0)), 0);
        assert_eq!(cal.difference(utc(2020, 1, 1, 0), utc(2024, 1, 1, 0)), -4);
        let days = Calendar::new(Unit::Days, Tz::parse("Europe/Berlin").unwrap());
        let d0 = Tz::parse("Europe/Berlin").unwrap().from_local(join(2024, 3, 30, 0));
        let d1 = days.add(d0, 1);
        let d2 = days.add(d0, 2);
        assert_eq!(d2 - d1, DAY_MS - 3_600_000, "the day of the DST change is 23 hours");
        assert_eq!(days.difference(d2 - 1, d0), 1);
        assert_eq!(days.duration(d1, 1), DAY_MS - 3_600_000);
        assert_eq!(Calendar::new(Unit::Milliseconds, Tz::Utc).duration(0, 5), 5);
    }
}
