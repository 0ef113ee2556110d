//! Row timestamps: RFC 3339, epoch numbers in a stated unit, strftime layouts, and
//! `auto`, all to milliseconds (finer units floored).
//!
//! `auto` decides a number's unit by its magnitude (below 1e10 seconds, 1e13
//! milliseconds, 1e16 microseconds, else nanoseconds: right for 1970-04-26..2286) and
//! the first timestamp of an import fixes it: a later one of another class is a
//! `unit_mismatch`, because a wrong unit lands points silently in 1970. RFC 3339 is
//! parsed by hand on the hot path; only IANA zones and custom layouts reach `jiff`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::quarantine::{cut_value, Kind};

/// How a source states its timestamps.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TimeFormat {
    /// Numbers by magnitude, text as RFC 3339; the first value fixes the class.
    #[default]
    Auto,
    Rfc3339,
    Unix(Unit),
    /// A strftime layout (`%d/%m/%Y %H:%M`), read in the source's timezone unless it has
    /// an offset (`%z`) or zone (`%Q`).
    Custom(String),
}

/// The unit of an epoch number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Seconds,
    Millis,
    Micros,
    Nanos,
}

impl Unit {
    /// log10 of the factor that turns this unit into milliseconds.
    fn ms_exponent(self) -> i32 {
        match self {
            Unit::Seconds => 3,
            Unit::Millis => 0,
            Unit::Micros => -3,
            Unit::Nanos => -6,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "unix_s",
            Unit::Millis => "unix_ms",
            Unit::Micros => "unix_us",
            Unit::Nanos => "unix_ns",
        }
    }

    fn words(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Millis => "milliseconds",
            Unit::Micros => "microseconds",
            Unit::Nanos => "nanoseconds",
        }
    }

    /// The `auto` rule: the unit a whole number of this magnitude most likely has.
    pub fn by_magnitude(int_part: u128) -> Unit {
        match int_part {
            0..10_000_000_000 => Unit::Seconds,
            10_000_000_000..10_000_000_000_000 => Unit::Millis,
            10_000_000_000_000..10_000_000_000_000_000 => Unit::Micros,
            _ => Unit::Nanos,
        }
    }
}

impl TimeFormat {
    pub fn parse(s: &str) -> Result<TimeFormat, String> {
        Ok(match s {
            "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "unix_s" => TimeFormat::Unix(Unit::Seconds),
            "unix_ms" => TimeFormat::Unix(Unit::Millis),
            "unix_us" => TimeFormat::Unix(Unit::Micros),
            "unix_ns" => TimeFormat::Unix(Unit::Nanos),
            _ => match s.strip_prefix("custom:") {
                Some(layout) => TimeFormat::Custom(layout.to_owned()),
                None => {
                    return Err(format!(
                        "{s:?} is not one of auto, rfc3339, unix_s, unix_ms, unix_us, unix_ns, custom:<strftime>"
                    ))
                }
            },
        })
    }

    pub fn name(&self) -> String {
        match self {
            TimeFormat::Auto => "auto".to_owned(),
            TimeFormat::Rfc3339 => "rfc3339".to_owned(),
            TimeFormat::Unix(u) => u.name().to_owned(),
            TimeFormat::Custom(l) => format!("custom:{l}"),
        }
    }

    /// Whether a custom layout is usable (every directive known, something to parse).
    pub fn check(&self) -> Result<(), String> {
        let TimeFormat::Custom(layout) = self else {
            return Ok(());
        };
        if layout.is_empty() {
            return Err("custom: needs a strftime layout, e.g. custom:%Y-%m-%d %H:%M:%S".to_owned());
        }
        let sample = jiff::Timestamp::UNIX_EPOCH.to_zoned_datetime(jiff::tz::TimeZone::UTC);
        jiff::fmt::strtime::format(layout.as_str(), &sample)
            .map(|_| ())
            .map_err(|e| format!("custom layout {layout:?} is not valid: {e}"))
    }
}

impl Serialize for TimeFormat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name())
    }
}

impl<'de> Deserialize<'de> for TimeFormat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TimeFormat::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Where a timestamp without an offset is read.
#[derive(Debug, Clone)]
pub enum Zone {
    /// UTC or a fixed offset, in seconds east.
    Fixed(i32),
    Named(jiff::tz::TimeZone),
}

impl Zone {
    /// `UTC`/`Z`, `+02:00`/`-0530`, or an IANA name from the bundled database.
    pub fn parse(s: &str) -> Result<Zone, String> {
        if s.eq_ignore_ascii_case("utc") || s == "Z" || s.is_empty() {
            return Ok(Zone::Fixed(0));
        }
        if let Some(off) = parse_offset(s.as_bytes()) {
            return Ok(Zone::Fixed(off));
        }
        jiff::tz::TimeZone::get(s)
            .map(Zone::Named)
            .map_err(|_| format!("{s:?} is not UTC, an offset such as +02:00, or an IANA time zone name"))
    }

    /// Milliseconds of a civil time read in this zone (an ambiguous or skipped local time
    /// resolves as the later/earlier offset, the usual "compatible" rule).
    fn civil_to_ms(&self, c: &Civil) -> Option<i64> {
        match self {
            Zone::Fixed(off) => Some(c.utc_ms()? - i64::from(*off) * 1000),
            Zone::Named(tz) => {
                let dt = jiff::civil::DateTime::new(
                    i16::try_from(c.year).ok()?,
                    c.month as i8,
                    c.day as i8,
                    c.hour as i8,
                    c.minute as i8,
                    c.second.min(59) as i8,
                    0,
                )
                .ok()?;
                let ts = tz.to_timestamp(dt).ok()?;
                Some(ts.as_millisecond() + i64::from(c.nanos / 1_000_000))
            }
        }
    }
}

/// `±HH:MM`, `±HHMM` or `±HH`, in seconds east.
fn parse_offset(s: &[u8]) -> Option<i32> {
    let (sign, rest) = match s.split_first()? {
        (b'+', r) => (1, r),
        (b'-', r) => (-1, r),
        _ => return None,
    };
    let two = |b: &[u8]| -> Option<i32> {
        if b.len() == 2 && b.iter().all(u8::is_ascii_digit) {
            Some(i32::from(b[0] - b'0') * 10 + i32::from(b[1] - b'0'))
        } else {
            None
        }
    };
    let (h, m) = match rest.len() {
        2 => (two(rest)?, 0),
        4 => (two(&rest[..2])?, two(&rest[2..])?),
        5 if rest[2] == b':' => (two(&rest[..2])?, two(&rest[3..])?),
        _ => return None,
    };
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60))
}

/// A calendar date and wall-clock time.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Civil {
    year: i32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    nanos: u32,
}

impl Civil {
    fn utc_ms(&self) -> Option<i64> {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        secs.checked_mul(1000)?.checked_add(i64::from(self.nanos / 1_000_000))
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// RFC 3339 and its common relatives: `T`, `t` or a space between date and time,
/// seconds optional, any number of fraction digits, `Z`/`±HH:MM`/`±HHMM`/`±HH` or no
/// offset (naive), or a date alone (midnight). Returns the civil time and its offset.
fn parse_rfc3339(s: &[u8]) -> Option<(Civil, Option<i32>)> {
    fn num(s: &[u8], at: usize, len: usize) -> Option<u32> {
        let b = s.get(at..at + len)?;
        let mut v = 0;
        for &d in b {
            if !d.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(d - b'0');
        }
        Some(v)
    }
    if s.len() < 10 || s[4] != b'-' || s[7] != b'-' {
        return None;
    }
    let year = num(s, 0, 4)? as i32;
    let month = num(s, 5, 2)?;
    let day = num(s, 8, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let mut c = Civil {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
    };
    if s.len() == 10 {
        return Some((c, None));
    }
    if !matches!(s[10], b'T' | b't' | b' ') || s.len() < 16 || s[13] != b':' {
        return None;
    }
    c.hour = num(s, 11, 2)?;
    c.minute = num(s, 14, 2)?;
    let mut i = 16;
    if s.get(i) == Some(&b':') {
        c.second = num(s, i + 1, 2)?;
        i += 3;
        if matches!(s.get(i), Some(b'.' | b',')) {
            i += 1;
            let start = i;
            let mut scale = 100_000_000;
            while let Some(d) = s.get(i).filter(|d| d.is_ascii_digit()) {
                c.nanos += u32::from(d - b'0') * scale;
                scale /= 10;
                i += 1;
            }
            if i == start {
                return None;
            }
        }
    }
    // 60 is a leap second; it is stored as :59.999 would be, at :59.
    if c.hour > 23 || c.minute > 59 || c.second > 60 {
        return None;
    }
    c.second = c.second.min(59);
    let rest = &s[i..];
    let offset = match rest {
        [] => None,
        [b'Z' | b'z'] => Some(0),
        _ => Some(parse_offset(rest)?),
    };
    Some((c, offset))
}

/// A decimal number as sign, digits and a power of ten, so no unit conversion rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Decimal {
    negative: bool,
    mantissa: u128,
    exp10: i32,
}

impl Decimal {
    /// `-?digits(.digits)?([eE][+-]?digits)?`, digits on at least one side of the point.
    fn parse(s: &[u8]) -> Option<Decimal> {
        let (negative, mut rest) = match s.split_first()? {
            (b'-', r) => (true, r),
            (b'+', r) => (false, r),
            _ => (false, s),
        };
        let mut mantissa: u128 = 0;
        let mut exp10: i32 = 0;
        let mut digits = 0;
        let mut push = |d: u8, fraction: bool, exp10: &mut i32| {
            if mantissa < 10u128.pow(36) {
                mantissa = mantissa * 10 + u128::from(d - b'0');
                if fraction {
                    *exp10 -= 1;
                }
            } else if !fraction {
                *exp10 += 1; // digits beyond 36 only scale (timestamps never need them)
            }
        };
        while let Some((&d, r)) = rest.split_first().filter(|(d, _)| d.is_ascii_digit()) {
            push(d, false, &mut exp10);
            digits += 1;
            rest = r;
        }
        if let Some((b'.', r)) = rest.split_first() {
            rest = r;
            while let Some((&d, r)) = rest.split_first().filter(|(d, _)| d.is_ascii_digit()) {
                push(d, true, &mut exp10);
                digits += 1;
                rest = r;
            }
        }
        if digits == 0 {
            return None;
        }
        if let Some((b'e' | b'E', r)) = rest.split_first() {
            let (eneg, r) = match r.split_first() {
                Some((b'-', r)) => (true, r),
                Some((b'+', r)) => (false, r),
                _ => (false, r),
            };
            if r.is_empty() || r.len() > 4 || !r.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let e: i32 = std::str::from_utf8(r).ok()?.parse().ok()?;
            exp10 += if eneg { -e } else { e };
            rest = &[];
        }
        rest.is_empty().then_some(Decimal {
            negative,
            mantissa,
            exp10,
        })
    }

    fn from_i64(v: i64) -> Decimal {
        Decimal {
            negative: v < 0,
            mantissa: u128::from(v.unsigned_abs()),
            exp10: 0,
        }
    }

    /// |integer part|, saturating.
    fn int_magnitude(&self) -> u128 {
        if self.exp10 >= 0 {
            10u128
                .checked_pow(self.exp10 as u32)
                .and_then(|p| self.mantissa.checked_mul(p))
                .unwrap_or(u128::MAX)
        } else if self.exp10 < -38 {
            0
        } else {
            self.mantissa / 10u128.pow((-self.exp10) as u32)
        }
    }

    /// This number of `unit`s as milliseconds, floored; `None` beyond i64.
    fn to_ms(self, unit: Unit) -> Option<i64> {
        let e = self.exp10 + unit.ms_exponent();
        let magnitude: i128 = if e >= 0 {
            let p = 10u128.checked_pow(e as u32)?;
            i128::try_from(self.mantissa.checked_mul(p)?).ok()?
        } else if e < -38 {
            i128::from(self.negative && self.mantissa != 0)
        } else {
            let p = 10u128.pow((-e) as u32);
            let (q, r) = (self.mantissa / p, self.mantissa % p);
            // Floor: a negative value with a fraction goes one further from zero.
            i128::try_from(q).ok()? + i128::from(self.negative && r != 0)
        };
        let v = if self.negative { -magnitude } else { magnitude };
        i64::try_from(v).ok()
    }
}

/// Why a cell is not a timestamp: the kind and a message to which the caller prefixes
/// the location and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsError {
    pub kind: Kind,
    pub message: String,
}

fn bad(text: &[u8], what: &str) -> TsError {
    TsError {
        kind: Kind::BadTimestamp,
        message: format!("value \"{}\" is not {what}", cut_value(text)),
    }
}

/// The class of timestamp an `auto` import settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Unix(Unit),
    Rfc3339,
}

impl Class {
    fn words(self) -> &'static str {
        match self {
            Class::Unix(u) => u.words(),
            Class::Rfc3339 => "RFC 3339 text",
        }
    }
}

/// Turns timestamp cells into milliseconds for one import (which is what `auto`'s
/// "first value fixes the unit" is scoped to).
#[derive(Debug, Clone)]
pub struct TimeParser {
    format: TimeFormat,
    zone: Zone,
    fixed: Option<Class>,
}

impl TimeParser {
    pub fn new(format: TimeFormat, zone: Zone) -> TimeParser {
        TimeParser {
            format,
            zone,
            fixed: None,
        }
    }

    /// The class `auto` settled on, once a first timestamp was read.
    pub fn settled(&self) -> Option<Class> {
        self.fixed
    }

    fn settle(&mut self, class: Class, text: &[u8]) -> Result<(), TsError> {
        match self.fixed {
            None => {
                self.fixed = Some(class);
                Ok(())
            }
            Some(f) if f == class => Ok(()),
            Some(f) => Err(TsError {
                kind: Kind::UnitMismatch,
                message: format!(
                    "value \"{}\" looks like {}, but this import's first timestamp was {} (format auto fixes \
                     the unit by the first value; state it with unix_s, unix_ms, unix_us or unix_ns)",
                    cut_value(text),
                    class.words(),
                    f.words()
                ),
            }),
        }
    }

    /// A text cell (CSV, a JSON string).
    pub fn text(&mut self, text: &[u8]) -> Result<i64, TsError> {
        let text = text.trim_ascii();
        match &self.format {
            TimeFormat::Rfc3339 => self.rfc3339(text),
            TimeFormat::Unix(unit) => {
                let d = Decimal::parse(text).ok_or_else(|| bad(text, &format!("a number of {}", unit.words())))?;
                d.to_ms(*unit).ok_or_else(|| out_of_range(text))
            }
            TimeFormat::Auto => match Decimal::parse(text) {
                Some(d) => self.auto_number(d, text),
                None => {
                    let ms = self
                        .rfc3339(text)
                        .map_err(|_| bad(text, "a timestamp (format auto reads epoch numbers and RFC 3339 text)"))?;
                    self.settle(Class::Rfc3339, text)?;
                    Ok(ms)
                }
            },
            TimeFormat::Custom(layout) => self.custom(layout, text),
        }
    }

    /// A JSON number's text.
    pub fn number_text(&mut self, text: &[u8]) -> Result<i64, TsError> {
        match &self.format {
            TimeFormat::Rfc3339 | TimeFormat::Custom(_) => Err(bad(text, "text in the source's timestamp format")),
            _ => self.text(text),
        }
    }

    /// A whole number (Parquet INT32/INT64 without a TIMESTAMP type).
    pub fn int(&mut self, v: i64) -> Result<i64, TsError> {
        let d = Decimal::from_i64(v);
        match &self.format {
            TimeFormat::Unix(unit) => d.to_ms(*unit).ok_or_else(|| out_of_range(v.to_string().as_bytes())),
            TimeFormat::Auto => self.auto_number(d, v.to_string().as_bytes()),
            _ => Err(bad(v.to_string().as_bytes(), "text in the source's timestamp format")),
        }
    }

    /// A floating-point number (Parquet FLOAT/DOUBLE).
    pub fn float(&mut self, v: f64) -> Result<i64, TsError> {
        if !v.is_finite() {
            return Err(bad(v.to_string().as_bytes(), "a finite number"));
        }
        // Through the shortest decimal text, so 1700000000.123 stays .123 and not .12299.
        self.number_text(format!("{v:?}").as_bytes())
    }

    /// A value in a declared unit (Parquet TIMESTAMP): the source's format does not apply.
    pub fn in_unit(v: i64, unit: Unit) -> Result<i64, TsError> {
        Decimal::from_i64(v)
            .to_ms(unit)
            .ok_or_else(|| out_of_range(v.to_string().as_bytes()))
    }

    /// A wall-clock time in a declared unit (Parquet TIMESTAMP not adjusted to UTC),
    /// read in the source's timezone.
    pub fn local(&self, v: i64, unit: Unit) -> Result<i64, TsError> {
        let naive = Self::in_unit(v, unit)?;
        let days = naive.div_euclid(86_400_000);
        let in_day = naive.rem_euclid(86_400_000);
        let mut c = civil_from_days(days);
        c.hour = (in_day / 3_600_000) as u32;
        c.minute = (in_day / 60_000 % 60) as u32;
        c.second = (in_day / 1000 % 60) as u32;
        c.nanos = (in_day % 1000) as u32 * 1_000_000;
        self.zone
            .civil_to_ms(&c)
            .ok_or_else(|| out_of_range(v.to_string().as_bytes()))
    }

    /// A date (Parquet DATE, days since the epoch): midnight in the source's timezone.
    pub fn days(&self, days: i32) -> Result<i64, TsError> {
        let c = civil_from_days(i64::from(days));
        self.zone
            .civil_to_ms(&c)
            .ok_or_else(|| out_of_range(days.to_string().as_bytes()))
    }

    fn auto_number(&mut self, d: Decimal, text: &[u8]) -> Result<i64, TsError> {
        let unit = Unit::by_magnitude(d.int_magnitude());
        self.settle(Class::Unix(unit), text)?;
        d.to_ms(unit).ok_or_else(|| out_of_range(text))
    }

    fn rfc3339(&self, text: &[u8]) -> Result<i64, TsError> {
        let (civil, offset) = parse_rfc3339(text).ok_or_else(|| {
            bad(
                text,
                "an RFC 3339 timestamp (e.g. 2024-01-01T00:00:00Z, 2024-01-01 12:00:00+02:00, 2024-01-01)",
            )
        })?;
        match offset {
            Some(off) => civil.utc_ms().map(|ms| ms - i64::from(off) * 1000),
            None => self.zone.civil_to_ms(&civil),
        }
        .ok_or_else(|| out_of_range(text))
    }

    fn custom(&self, layout: &str, text: &[u8]) -> Result<i64, TsError> {
        let fail = || bad(text, &format!("a timestamp in the layout \"{layout}\""));
        let tm = jiff::fmt::strtime::parse(layout, text).map_err(|_| fail())?;
        if let Ok(ts) = tm.to_timestamp() {
            return Ok(ts.as_millisecond());
        }
        if tm.iana_time_zone().is_some() {
            if let Ok(z) = tm.to_zoned_datetime() {
                return Ok(z.timestamp().as_millisecond());
            }
        }
        let dt = match tm.to_datetime() {
            Ok(dt) => dt,
            Err(_) => tm
                .to_date()
                .map_err(|_| fail())?
                .to_datetime(jiff::civil::Time::midnight()),
        };
        let civil = Civil {
            year: i32::from(dt.year()),
            month: dt.month() as u32,
            day: dt.day() as u32,
            hour: dt.hour() as u32,
            minute: dt.minute() as u32,
            second: dt.second() as u32,
            nanos: dt.subsec_nanosecond() as u32,
        };
        self.zone.civil_to_ms(&civil).ok_or_else(fail)
    }
}

fn out_of_range(text: &[u8]) -> TsError {
    TsError {
        kind: Kind::BadTimestamp,
        message: format!("value \"{}\" is out of the range of timestamps", cut_value(text)),
    }
}

/// The inverse of [`days_from_civil`], at midnight.
fn civil_from_days(z: i64) -> Civil {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    Civil {
        year,
        month,
        day,
        hour: 0,
        minute: 0,
        second: 0,
        nanos: 0,
    }
}

impl fmt::Display for TimeFormat {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// What analyze reports for a sample of timestamp texts: the format that reads all of
/// them, if one does.
pub fn detect_format(samples: &[&[u8]]) -> Option<TimeFormat> {
    if samples.is_empty() {
        return None;
    }
    if samples.iter().all(|s| parse_rfc3339(s.trim_ascii()).is_some()) {
        return Some(TimeFormat::Rfc3339);
    }
    let mut unit = None;
    for s in samples {
        let d = Decimal::parse(s.trim_ascii())?;
        let m = d.int_magnitude();
        // Epoch numbers of this century or so, not small counters.
        if !(100_000_000..100_000_000_000_000_000_000).contains(&m) {
            return None;
        }
        let u = Unit::by_magnitude(m);
        if unit.is_some_and(|x| x != u) {
            return None;
        }
        unit = Some(u);
    }
    unit.map(TimeFormat::Unix)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parser(format: &str, zone: &str) -> TimeParser {
        TimeParser::new(TimeFormat::parse(format).unwrap(), Zone::parse(zone).unwrap())
    }

    fn ms(format: &str, text: &str) -> Result<i64, TsError> {
        parser(format, "UTC").text(text.as_bytes())
    }

    #[test]
    fn rfc3339_forms() {
        // Spec §8 case 4.
        assert_eq!(ms("auto", "2024-01-01T00:00:00+02:00"), Ok(1_704_060_000_000));
        assert_eq!(ms("auto", "2024-01-01"), Ok(1_704_067_200_000));
        assert_eq!(ms("rfc3339", "2024-01-01T00:00:00Z"), Ok(1_704_067_200_000));
        assert_eq!(ms("rfc3339", "2024-01-01 00:00:00.123456Z"), Ok(1_704_067_200_123));
        assert_eq!(ms("rfc3339", "2024-01-01t01:00:00-0100"), Ok(1_704_074_400_000));
        assert_eq!(ms("rfc3339", "2024-01-01T00:00"), Ok(1_704_067_200_000));
        assert_eq!(ms("rfc3339", "1969-12-31T23:59:59.999Z"), Ok(-1));
        assert_eq!(ms("rfc3339", "2016-12-31T23:59:60Z"), Ok(1_483_228_799_000));
        for bad in [
            "2024-02-30",
            "2024-13-01",
            "2024-01-01T25:00:00Z",
            "2024-01-01T00:00:00+2",
            "2024-1-1",
            "x",
            "",
        ] {
            assert_eq!(ms("rfc3339", bad).map_err(|e| e.kind), Err(Kind::BadTimestamp), "{bad}");
        }
        assert_eq!(ms("rfc3339", "2024-02-29"), Ok(1_709_164_800_000));
    }

    #[test]
    fn naive_times_read_in_the_timezone() {
        let mut p = parser("rfc3339", "Europe/Berlin");
        assert_eq!(p.text(b"2024-01-01T01:00:00"), Ok(1_704_067_200_000));
        assert_eq!(p.text(b"2024-07-01"), Ok(1_719_784_800_000)); // CEST, +02:00
        assert_eq!(p.text(b"2024-01-01T01:00:00Z"), Ok(1_704_070_800_000)); // an offset wins
        let mut p = parser("rfc3339", "+05:30");
        assert_eq!(p.text(b"2024-01-01T05:30:00"), Ok(1_704_067_200_000));
        assert!(Zone::parse("Mars/Olympus").is_err());
    }

    #[test]
    fn epoch_units_floor_to_millis() {
        assert_eq!(ms("unix_s", "1700000000"), Ok(1_700_000_000_000));
        assert_eq!(ms("unix_s", "1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(ms("unix_s", "1.7e9"), Ok(1_700_000_000_000));
        assert_eq!(ms("unix_ms", "1700000000123.9"), Ok(1_700_000_000_123));
        assert_eq!(ms("unix_us", "1700000000123456"), Ok(1_700_000_000_123));
        assert_eq!(ms("unix_ns", "1700000000123456789"), Ok(1_700_000_000_123));
        assert_eq!(ms("unix_ms", "-1.5"), Ok(-2));
        assert_eq!(ms("unix_ns", "-1"), Ok(-1));
        assert_eq!(ms("unix_s", " 5 "), Ok(5000));
        assert_eq!(ms("unix_s", "abc").map_err(|e| e.kind), Err(Kind::BadTimestamp));
        assert_eq!(
            ms("unix_s", "99999999999999999999").map_err(|e| e.kind),
            Err(Kind::BadTimestamp)
        );
    }

    #[test]
    fn auto_fixes_the_unit_by_the_first_value() {
        // Spec §8 case 5.
        let mut p = parser("auto", "UTC");
        assert_eq!(p.text(b"1700000000000"), Ok(1_700_000_000_000));
        let e = p.text(b"1700000001").unwrap_err();
        assert_eq!(e.kind, Kind::UnitMismatch);
        assert!(
            e.message.contains("seconds") && e.message.contains("milliseconds"),
            "{}",
            e.message
        );
        assert_eq!(p.text(b"1700000002000"), Ok(1_700_000_002_000));
        assert_eq!(p.text(b"2024-01-01").map_err(|e| e.kind), Err(Kind::UnitMismatch));
        assert_eq!(ms("auto", "1700000000123456789"), Ok(1_700_000_000_123));
        assert_eq!(ms("auto", "1700000000123456"), Ok(1_700_000_000_123));
        assert_eq!(ms("auto", "1700000000"), Ok(1_700_000_000_000));
        assert_eq!(ms("auto", "9999999999"), Ok(9_999_999_999_000));
        assert_eq!(ms("auto", "10000000000"), Ok(10_000_000_000));
        let mut p = parser("auto", "UTC");
        assert_eq!(p.int(1_700_000_000), Ok(1_700_000_000_000));
        assert_eq!(p.float(1_700_000_000.25), Ok(1_700_000_000_250));
        assert_eq!(p.settled(), Some(Class::Unix(Unit::Seconds)));
    }

    #[test]
    fn custom_layouts() {
        let mut p = parser("custom:%d/%m/%Y %H:%M", "UTC");
        assert_eq!(p.text(b"01/01/2024 00:00"), Ok(1_704_067_200_000));
        assert_eq!(p.text(b"2024-01-01").map_err(|e| e.kind), Err(Kind::BadTimestamp));
        let mut p = parser("custom:%Y%m%d", "+01:00");
        assert_eq!(p.text(b"20240101"), Ok(1_704_067_200_000 - 3_600_000));
        let mut p = parser("custom:%Y-%m-%d %H:%M:%S %z", "Europe/Berlin");
        assert_eq!(p.text(b"2024-01-01 02:00:00 +0200"), Ok(1_704_067_200_000));
        let mut p = parser("custom:%s", "UTC");
        assert_eq!(p.text(b"1700000000"), Ok(1_700_000_000_000));
        assert!(TimeFormat::parse("custom:%Y-%m-%d %Q").unwrap().check().is_ok());
        assert!(TimeFormat::Custom("%Y %!".into()).check().is_err());
        assert!(TimeFormat::parse("unix").is_err());
    }

    #[test]
    fn parquet_units_and_dates() {
        assert_eq!(
            TimeParser::in_unit(1_700_000_000_123_456, Unit::Micros),
            Ok(1_700_000_000_123)
        );
        assert_eq!(TimeParser::in_unit(-1, Unit::Nanos), Ok(-1));
        let p = parser("auto", "Europe/Berlin");
        assert_eq!(p.local(1_704_067_200_123, Unit::Millis), Ok(1_704_063_600_123));
        assert_eq!(parser("auto", "UTC").local(-1, Unit::Millis), Ok(-1));
        let p = parser("auto", "UTC");
        assert_eq!(p.days(19723), Ok(1_704_067_200_000));
        assert_eq!(p.days(-1), Ok(-86_400_000));
    }

    #[test]
    fn civil_round_trip() {
        for days in [-800_000i64, -1, 0, 1, 59, 60, 10_957, 19_723, 2_932_896] {
            let c = civil_from_days(days);
            assert_eq!(days_from_civil(c.year, c.month, c.day), days);
        }
    }

    #[test]
    fn detects_formats() {
        assert_eq!(
            detect_format(&[b"2024-01-01T00:00:00Z", b"2024-01-02"]),
            Some(TimeFormat::Rfc3339)
        );
        assert_eq!(
            detect_format(&[b"1700000000", b"1700000060"]),
            Some(TimeFormat::Unix(Unit::Seconds))
        );
        assert_eq!(detect_format(&[b"1700000000000"]), Some(TimeFormat::Unix(Unit::Millis)));
        assert_eq!(detect_format(&[b"20.5"]), None);
        assert_eq!(detect_format(&[b"1700000000", b"1700000000000"]), None);
    }
}
