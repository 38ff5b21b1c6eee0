//! FHIR `date`, `dateTime`, `instant` and `time` values and the FHIRPath rules on them.
//!
//! FHIR dates and times are partial (`2012`, `2012-04`, `14:30`) and may or may not carry a
//! timezone offset, so a [`Temporal`] keeps the written precision beside its components.
//! This module owns parsing the FHIR and FHIRPath text forms
//! (<https://hl7.org/fhir/R4/datatypes.html>), converting values to the Arrow
//! representations (`Date32`, `Timestamp(µs)`, `Time64(µs)`), the FHIRPath `precision()`,
//! `lowBoundary()` and `highBoundary()` results, and FHIRPath comparison of values written
//! to different precisions. Calendar math is the proleptic Gregorian calendar, done here
//! with std only.

use std::cmp::Ordering;
use std::fmt::{self, Write as _};

/// The offset a `lowBoundary()` assumes for a dateTime written without one: +14:00 is the
/// furthest-east zone in use, so the local midnight it names is the earliest instant.
pub const LOW_BOUNDARY_OFFSET_MINUTES: i32 = 14 * 60;

/// The offset a `highBoundary()` assumes for a dateTime written without one: -12:00, the
/// furthest-west zone, whose local end of day is the latest instant.
pub const HIGH_BOUNDARY_OFFSET_MINUTES: i32 = -12 * 60;

const NANOS_PER_SECOND: u32 = 1_000_000_000;
const MICROS_PER_SECOND: i64 = 1_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Which FHIRPath type a [`Temporal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemporalKind {
    /// FHIR `date`, FHIRPath `Date`: a calendar date, possibly partial, no time or offset.
    Date,
    /// FHIR `dateTime` / `instant`, FHIRPath `DateTime`: a date, possibly with a time of day
    /// and an offset.
    DateTime,
    /// FHIR `time`, FHIRPath `Time`: a time of day, no date or offset.
    Time,
}

/// The finest component a value was written with, coarse to fine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Precision {
    /// `YYYY`.
    Year,
    /// `YYYY-MM`.
    Month,
    /// `YYYY-MM-DD`.
    Day,
    /// `…Thh` or `hh`.
    Hour,
    /// `…Thh:mm` or `hh:mm`.
    Minute,
    /// `…Thh:mm:ss` or `hh:mm:ss`.
    Second,
    /// Seconds with any number of fractional digits (see [`Temporal::frac_digits`]).
    Millisecond,
}

/// A FHIR / FHIRPath date, dateTime or time as written: components, precision and offset.
///
/// Components finer than [`precision`](Temporal::precision) hold their lowest value (month
/// and day 1, time fields 0) and are not part of the value; a `Time` has zero date fields.
/// `==` compares these fields, so `12:00` and `12:00:00` differ; use
/// [`compare`](Temporal::compare) for FHIRPath's comparison, which also equates one
/// instant written in two zones.
///
/// ```
/// use fhirhouse::view::temporal::{Precision, Temporal, TemporalKind};
///
/// let t = Temporal::parse_datetime("2015-02-07T13:28:17.239+02:00").unwrap();
/// assert_eq!((t.kind, t.precision), (TemporalKind::DateTime, Precision::Millisecond));
/// assert_eq!(t.tz_offset_minutes, Some(120));
/// // 2015-02-07T11:28:17.239Z as Arrow Timestamp(µs, UTC):
/// assert_eq!(t.to_timestamp_micros(), Some(1_423_308_497_239_000));
///
/// let d = Temporal::parse_datetime("2010-10-10").unwrap();
/// assert_eq!(d.low_boundary_string(), "2010-10-10T00:00:00.000+14:00");
/// assert_eq!(d.high_boundary_string(), "2010-10-10T23:59:59.999-12:00");
///
/// let y = Temporal::parse_date("2012").unwrap();
/// let ym = Temporal::parse_date("2013-01").unwrap();
/// assert_eq!(y.compare(&ym), Some(std::cmp::Ordering::Less));
/// assert_eq!(y.compare(&Temporal::parse_date("2012-01").unwrap()), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Temporal {
    /// Date, DateTime or Time.
    pub kind: TemporalKind,
    /// The finest component written.
    pub precision: Precision,
    /// Year, 1..=9999 when parsed.
    pub year: i32,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=28–31.
    pub day: u32,
    /// Hour, 0..=23.
    pub hour: u32,
    /// Minute, 0..=59.
    pub minute: u32,
    /// Second, 0..=60 (FHIR admits a leap second).
    pub second: u32,
    /// The fractional second in nanoseconds (written digits beyond the ninth are dropped).
    pub nanos: u32,
    /// How many fractional digits were written, 1..=9, when the precision is
    /// [`Precision::Millisecond`]; 0 otherwise (a hand-built 0 there reads as 3).
    pub frac_digits: u8,
    /// The written offset from UTC in minutes (`Z` is `Some(0)`); `None` when none was
    /// written, always for dates and times.
    pub tz_offset_minutes: Option<i32>,
}

/// True for Gregorian leap years (every 4th year, except centuries not divisible by 400).
pub fn is_leap_year(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// The number of days in `month` of `year`, or `None` for a month outside 1..=12.
pub fn days_in_month(year: i32, month: u32) -> Option<u32> {
    Some(match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => return None,
    })
}

/// The second and microsecond a value is stored at: a leap second (second 60, at any
/// fraction) is held at the last microsecond of its minute, 59.999999.
///
/// Arrow timestamps and times, like Unix time, have no 61st second, and counting it as
/// second 60 would make it the next minute's first instant: `2016-12-31T23:59:60Z` would be
/// stored as 2017-01-01 and land in the next day, year and year partition. Held at
/// 59.999999 it keeps its minute (and so its day and year, in UTC and in the offset it was
/// written in: a leap second is always 23:59:60 UTC) and still orders after every earlier
/// instant and before the next minute; what is lost is only the order of instants within
/// the leap second itself. Ordinary seconds pay one predictable comparison.
#[inline(always)]
fn hold_leap_second(second: u32, micros: u32) -> (u32, u32) {
    if second == 60 {
        (59, 999_999)
    } else {
        (second, micros)
    }
}

/// Days from 1970-01-01 to the given proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date `days` after 1970-01-01: the inverse of `days_from_civil`.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A byte cursor over the text being parsed; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        let hit = self.bytes.get(self.pos) == Some(&c);
        self.pos += usize::from(hit);
        hit
    }

    /// Exactly `n` ASCII digits as a number.
    fn digits(&mut self, n: usize) -> Option<u32> {
        let run = self.bytes.get(self.pos..self.pos.checked_add(n)?)?;
        let mut value = 0;
        for &c in run {
            if !c.is_ascii_digit() {
                return None;
            }
            value = value * 10 + u32::from(c - b'0');
        }
        self.pos += n;
        Some(value)
    }

    fn at_end(&self) -> bool {
        self.pos == self.bytes.len()
    }
}

impl Temporal {
    /// A value of `kind` with every component at its lowest, at year (or hour) precision.
    fn empty(kind: TemporalKind) -> Temporal {
        let (precision, date) = match kind {
            TemporalKind::Time => (Precision::Hour, 0),
            _ => (Precision::Year, 1),
        };
        Temporal {
            kind,
            precision,
            year: 0,
            month: date,
            day: date,
            hour: 0,
            minute: 0,
            second: 0,
            nanos: 0,
            frac_digits: 0,
            tz_offset_minutes: None,
        }
    }

    /// Parses a FHIR `date`: `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, year 0001–9999. Kind
    /// [`TemporalKind::Date`]. `None` for anything else, including impossible dates.
    pub fn parse_date(text: &str) -> Option<Temporal> {
        let mut c = Cursor { bytes: text.as_bytes(), pos: 0 };
        let t = Self::date_fields(&mut c, TemporalKind::Date)?;
        c.at_end().then_some(t)
    }

    /// Parses a FHIR `dateTime` or `instant`, or a FHIRPath DateTime: any `date` form, or
    /// `YYYY-MM-DDThh[:mm[:ss[.f+]]][Z|±hh:mm]`. FHIR itself requires seconds and an offset
    /// once a time is present; FHIRPath literals may stop at the hour or minute and omit the
    /// offset, so both are accepted. Kind [`TemporalKind::DateTime`] even for date-only text.
    /// Offsets range over FHIR's `-14:00..=+14:00` (minutes 00–59, `±14` only with `:00`).
    pub fn parse_datetime(text: &str) -> Option<Temporal> {
        let mut c = Cursor { bytes: text.as_bytes(), pos: 0 };
        let mut t = Self::date_fields(&mut c, TemporalKind::DateTime)?;
        if c.at_end() {
            return Some(t);
        }
        if !c.eat(b'T') || t.precision != Precision::Day {
            return None;
        }
        Self::time_fields(&mut c, &mut t)?;
        t.tz_offset_minutes = Self::offset(&mut c)?;
        c.at_end().then_some(t)
    }

    /// Parses a FHIR `time` (`hh:mm:ss[.f+]`) or a FHIRPath Time, which may stop at `hh` or
    /// `hh:mm`. No offset. Kind [`TemporalKind::Time`].
    pub fn parse_time(text: &str) -> Option<Temporal> {
        let mut c = Cursor { bytes: text.as_bytes(), pos: 0 };
        let mut t = Self::empty(TemporalKind::Time);
        Self::time_fields(&mut c, &mut t)?;
        c.at_end().then_some(t)
    }

    /// Parses text of unknown type: a time when it looks like `hh:mm…`, else a dateTime
    /// (which includes the date forms).
    pub fn parse_any(text: &str) -> Option<Temporal> {
        if text.as_bytes().get(2) == Some(&b':') {
            Self::parse_time(text)
        } else {
            Self::parse_datetime(text)
        }
    }

    fn date_fields(c: &mut Cursor<'_>, kind: TemporalKind) -> Option<Temporal> {
        let year = c.digits(4)?;
        if year == 0 {
            return None;
        }
        let mut t = Self::empty(kind);
        t.year = year as i32;
        if c.eat(b'-') {
            t.month = c.digits(2)?;
            days_in_month(t.year, t.month)?;
            t.precision = Precision::Month;
            if c.eat(b'-') {
                t.day = c.digits(2)?;
                if t.day == 0 || t.day > days_in_month(t.year, t.month)? {
                    return None;
                }
                t.precision = Precision::Day;
            }
        }
        Some(t)
    }

    fn time_fields(c: &mut Cursor<'_>, t: &mut Temporal) -> Option<()> {
        t.hour = c.digits(2).filter(|&h| h <= 23)?;
        t.precision = Precision::Hour;
        if !c.eat(b':') {
            return Some(());
        }
        t.minute = c.digits(2).filter(|&m| m <= 59)?;
        t.precision = Precision::Minute;
        if !c.eat(b':') {
            return Some(());
        }
        t.second = c.digits(2).filter(|&s| s <= 60)?;
        t.precision = Precision::Second;
        if !c.eat(b'.') {
            return Some(());
        }
        let (mut nanos, mut kept, mut seen) = (0u32, 0u8, 0usize);
        while let Some(&d) = c.bytes.get(c.pos).filter(|d| d.is_ascii_digit()) {
            // Nanoseconds are the finest unit kept; further digits are read and dropped.
            if kept < 9 {
                nanos = nanos * 10 + u32::from(d - b'0');
                kept += 1;
            }
            seen += 1;
            c.pos += 1;
        }
        if seen == 0 {
            return None;
        }
        t.nanos = nanos * 10u32.pow(9 - u32::from(kept));
        t.frac_digits = kept;
        t.precision = Precision::Millisecond;
        Some(())
    }

    /// `Z` or `±hh:mm` if present: `Some(None)` when absent, `None` when malformed.
    fn offset(c: &mut Cursor<'_>) -> Option<Option<i32>> {
        if c.eat(b'Z') {
            return Some(Some(0));
        }
        let negative = if c.eat(b'-') {
            true
        } else if c.eat(b'+') {
            false
        } else {
            return Some(None);
        };
        let hours = c.digits(2)?;
        if !c.eat(b':') {
            return None;
        }
        let minutes = c.digits(2)?;
        if hours > 14 || minutes > 59 || (hours == 14 && minutes != 0) {
            return None;
        }
        let total = (hours * 60 + minutes) as i32;
        Some(Some(if negative { -total } else { total }))
    }

    /// Fractional digits shown for a [`Precision::Millisecond`] value.
    fn shown_digits(&self) -> u32 {
        match self.frac_digits {
            0 => 3,
            n => u32::from(n.min(9)),
        }
    }

    /// `None` unless every component is in range, so hand-built values cannot produce
    /// nonsense conversions.
    fn check(&self) -> Option<()> {
        let date_ok = self.kind == TemporalKind::Time
            || days_in_month(self.year, self.month).is_some_and(|n| (1..=n).contains(&self.day));
        let tz_ok = self.tz_offset_minutes.is_none_or(|o| o.abs() <= 14 * 60);
        (date_ok && tz_ok && self.hour <= 23 && self.minute <= 59 && self.second <= 60 && self.nanos < NANOS_PER_SECOND)
            .then_some(())
    }

    /// The value cut to `precision`: finer components reset to their lowest, and the offset
    /// dropped when no time of day is left.
    fn truncated(&self, precision: Precision) -> Temporal {
        let mut t = *self;
        t.precision = precision;
        if t.kind != TemporalKind::Time {
            if precision < Precision::Month {
                t.month = 1;
            }
            if precision < Precision::Day {
                t.day = 1;
            }
            if precision < Precision::Hour {
                t.hour = 0;
                t.tz_offset_minutes = None;
            }
        }
        if precision < Precision::Minute {
            t.minute = 0;
        }
        if precision < Precision::Second {
            t.second = 0;
        }
        if precision < Precision::Millisecond {
            t.nanos = 0;
            t.frac_digits = 0;
        } else {
            let shown = t.shown_digits();
            t.nanos -= t.nanos % 10u32.pow(9 - shown);
        }
        t
    }

    /// Days since 1970-01-01 of the value's first day (`1970-06` → 1970-06-01), for Arrow
    /// `Date32`. A dateTime gives its calendar date as written, in its own offset. `None`
    /// for a time or an invalid hand-built value.
    pub fn to_date32(&self) -> Option<i32> {
        if self.kind == TemporalKind::Time {
            return None;
        }
        self.check()?;
        let t = self.truncated(self.precision);
        i32::try_from(days_from_civil(i64::from(t.year), t.month, t.day)).ok()
    }

    /// Microseconds since the Unix epoch, UTC, of the value's first instant, for Arrow
    /// `Timestamp(Microsecond, "UTC")`. A value with no offset (every date, and a dateTime
    /// written without one) is taken as UTC: the warehouse has no local zone to apply.
    /// Fractions below a microsecond are truncated; a leap second is held at its minute's
    /// last microsecond (see `hold_leap_second`), so `2016-12-31T23:59:60Z` is stored as
    /// `2016-12-31T23:59:59.999999Z`, in its own year. `None` for a time or an invalid
    /// hand-built value.
    pub fn to_timestamp_micros(&self) -> Option<i64> {
        if self.kind == TemporalKind::Time {
            return None;
        }
        self.check()?;
        let t = self.truncated(self.precision);
        let (second, micros) = hold_leap_second(t.second, t.nanos / 1000);
        let days = days_from_civil(i64::from(t.year), t.month, t.day);
        let offset = i64::from(t.tz_offset_minutes.unwrap_or(0)) * 60;
        let seconds = days
            .checked_mul(SECONDS_PER_DAY)?
            .checked_add(i64::from(t.hour * 3600 + t.minute * 60 + second) - offset)?;
        seconds.checked_mul(MICROS_PER_SECOND)?.checked_add(i64::from(micros))
    }

    /// [`parse_datetime`](Self::parse_datetime) then
    /// [`to_timestamp_micros`](Self::to_timestamp_micros), with a fast path for the form
    /// bulk exports write every dateTime and instant in, `YYYY-MM-DDThh:mm:ss[.f+](Z|±hh:mm)`:
    /// read in one pass, with the same range checks, straight to microseconds. Any other
    /// text, or one the fast path cannot vouch for, takes the general route.
    pub fn timestamp_micros_of(text: &str) -> Option<i64> {
        match Self::full_datetime_micros(text.as_bytes()) {
            Some(micros) => Some(micros),
            None => Self::parse_datetime(text)?.to_timestamp_micros(),
        }
    }

    /// The fast path of [`timestamp_micros_of`](Self::timestamp_micros_of): `None` for any
    /// text not in the full form or out of range (which the general route then judges).
    fn full_datetime_micros(b: &[u8]) -> Option<i64> {
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
            return None;
        }
        // Two ASCII digits at `at`: every field but the year is two digits, read without a
        // loop (this runs for every timestamp of every row).
        #[inline(always)]
        fn two(b: &[u8], at: usize) -> Option<u32> {
            let (tens, ones) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
            (tens < 10 && ones < 10).then(|| u32::from(tens) * 10 + u32::from(ones))
        }
        let year = two(b, 0)? * 100 + two(b, 2)?;
        let (month, day) = (two(b, 5)?, two(b, 8)?);
        let (hour, minute, second) = (two(b, 11)?, two(b, 14)?, two(b, 17)?);
        if year == 0 || day == 0 || day > days_in_month(year as i32, month)? || hour > 23 || minute > 59 || second > 60
        {
            return None;
        }
        let mut pos = 19;
        let mut micros = 0u32;
        if b[pos] == b'.' {
            pos += 1;
            let start = pos;
            while pos < b.len() && b[pos].is_ascii_digit() {
                // Microseconds are what Arrow keeps; further digits are read and dropped.
                if pos - start < 6 {
                    micros = micros * 10 + u32::from(b[pos] - b'0');
                }
                pos += 1;
            }
            let digits = pos - start;
            if digits == 0 {
                return None;
            }
            micros *= 10u32.pow(6u32.saturating_sub(digits as u32));
        }
        let offset_minutes = match &b[pos..] {
            [b'Z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (hours, minutes) = (two(b, pos + 1)?, two(b, pos + 4)?);
                if hours > 14 || minutes > 59 || (hours == 14 && minutes != 0) {
                    return None;
                }
                let total = i64::from(hours * 60 + minutes);
                if *sign == b'-' {
                    -total
                } else {
                    total
                }
            }
            _ => return None,
        };
        let (second, micros) = hold_leap_second(second, micros);
        let days = days_from_civil(i64::from(year), month, day);
        let seconds = days * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
        Some(seconds * MICROS_PER_SECOND + i64::from(micros))
    }

    /// Microseconds since midnight of a time, for Arrow `Time64(Microsecond)`; partial
    /// times take their first instant (`12:34` → 12:34:00). A leap second is held at its
    /// minute's last microsecond, as in [`to_timestamp_micros`](Self::to_timestamp_micros)
    /// (`23:59:60` → 23:59:59.999999, inside Time64's range). `None` unless the kind is
    /// [`TemporalKind::Time`].
    pub fn to_time_micros(&self) -> Option<i64> {
        if self.kind != TemporalKind::Time {
            return None;
        }
        self.check()?;
        let t = self.truncated(self.precision);
        let (second, micros) = hold_leap_second(t.second, t.nanos / 1000);
        let seconds = i64::from(t.hour * 3600 + t.minute * 60 + second);
        Some(seconds * MICROS_PER_SECOND + i64::from(micros))
    }

    /// FHIRPath `precision()`: the digits the value is written to. Dates and dateTimes
    /// count 4 (year), 6, 8, 10, 12, 14 and 17 (milliseconds or any fraction); times count
    /// 2 (hour), 4, 6 and 9.
    pub fn precision_digits(&self) -> u32 {
        let time_digits = match self.precision {
            Precision::Year => return 4,
            Precision::Month => return 6,
            Precision::Day => return 8,
            Precision::Hour => 2,
            Precision::Minute => 4,
            Precision::Second => 6,
            Precision::Millisecond => 9,
        };
        match self.kind {
            TemporalKind::Time => time_digits,
            _ if time_digits == 9 => 17,
            _ => 8 + time_digits,
        }
    }

    /// The precision FHIRPath's boundary functions name by `digits` for this kind.
    fn precision_for_digits(&self, digits: u32) -> Option<Precision> {
        let p = match (self.kind, digits) {
            (TemporalKind::Time, 2) => Precision::Hour,
            (TemporalKind::Time, 4) => Precision::Minute,
            (TemporalKind::Time, 6) => Precision::Second,
            (TemporalKind::Time, 9) => Precision::Millisecond,
            (TemporalKind::Time, _) => return None,
            (_, 4) => Precision::Year,
            (_, 6) => Precision::Month,
            (_, 8) => Precision::Day,
            (TemporalKind::Date, _) => return None,
            (_, 10) => Precision::Hour,
            (_, 12) => Precision::Minute,
            (_, 14) => Precision::Second,
            (_, 17) => Precision::Millisecond,
            _ => return None,
        };
        Some(p)
    }

    /// FHIRPath `lowBoundary([precision])`: the earliest value this one can stand for,
    /// written to `precision` digits (see [`precision_digits`](Temporal::precision_digits)).
    ///
    /// Missing components take their lowest value. A dateTime with no offset takes +14:00,
    /// the earliest zone, as FHIR's definition shows (`2010-10-10` →
    /// `2010-10-10T00:00:00.000+14:00`). Without `precision` a date is given to the day,
    /// a dateTime and a time to the millisecond, or to all their fractional digits when
    /// more were written. `None` for a precision the kind does not have (FHIRPath: empty)
    /// and for an invalid hand-built value.
    pub fn low_boundary(&self, precision: Option<u32>) -> Option<Temporal> {
        self.boundary(precision, false)
    }

    /// FHIRPath `highBoundary([precision])`: the latest value this one can stand for.
    /// Missing components take their highest value (the month's real last day, leap years
    /// included), unwritten fractional digits are 9s, and a dateTime with no offset takes
    /// -12:00, the latest zone. Otherwise as [`low_boundary`](Temporal::low_boundary).
    pub fn high_boundary(&self, precision: Option<u32>) -> Option<Temporal> {
        self.boundary(precision, true)
    }

    /// [`low_boundary`](Temporal::low_boundary) at the default precision, as text:
    /// `1970-06` → `1970-06-01`, `12:34` → `12:34:00.000`,
    /// `2015-02-07T13:28:17+02:00` → `2015-02-07T13:28:17.000+02:00`. Empty only for an
    /// invalid hand-built value.
    pub fn low_boundary_string(&self) -> String {
        self.low_boundary(None).map(|t| t.to_string()).unwrap_or_default()
    }

    /// [`high_boundary`](Temporal::high_boundary) at the default precision, as text:
    /// `1970-06` → `1970-06-30`, `12:34` → `12:34:59.999`,
    /// `2010-10-10` → `2010-10-10T23:59:59.999-12:00`. Empty only for an invalid hand-built
    /// value.
    pub fn high_boundary_string(&self) -> String {
        self.high_boundary(None).map(|t| t.to_string()).unwrap_or_default()
    }

    fn boundary(&self, precision: Option<u32>, high: bool) -> Option<Temporal> {
        self.check()?;
        let target = match precision {
            None if self.kind == TemporalKind::Date => Precision::Day,
            None => Precision::Millisecond,
            Some(digits) => self.precision_for_digits(digits)?,
        };
        let pick = |low: u32, high_value: u32| if high { high_value } else { low };
        let mut full = self.truncated(self.precision);
        if self.kind != TemporalKind::Time {
            if self.precision < Precision::Month {
                full.month = pick(1, 12);
            }
            if self.precision < Precision::Day {
                full.day = pick(1, days_in_month(full.year, full.month)?);
            }
            if self.precision < Precision::Hour {
                full.hour = pick(0, 23);
            }
        }
        if self.precision < Precision::Minute {
            full.minute = pick(0, 59);
        }
        if self.precision < Precision::Second {
            full.second = pick(0, 59);
        }
        let written = if self.precision == Precision::Millisecond { self.shown_digits() } else { 0 };
        let shown = written.max(3);
        if high {
            // The written digits allow anything up to 9 in each digit shown beyond them.
            full.nanos += 10u32.pow(9 - written) - 10u32.pow(9 - shown);
        }
        full.frac_digits = shown as u8;
        full.precision = Precision::Millisecond;
        if self.kind == TemporalKind::DateTime && full.tz_offset_minutes.is_none() {
            full.tz_offset_minutes =
                Some(if high { HIGH_BOUNDARY_OFFSET_MINUTES } else { LOW_BOUNDARY_OFFSET_MINUTES });
        }
        Some(full.truncated(target))
    }

    /// FHIRPath comparison (<http://hl7.org/fhirpath/N1/#comparison>).
    ///
    /// Values are compared component by component from the year (the hour for times) down
    /// to the coarser of the two precisions, seconds and fractional seconds counting as one.
    /// The first difference decides; if the two agree on every component both have but one
    /// was written to a finer precision, the result is unknown: `None` (FHIRPath's empty),
    /// so `@2012 < @2013-01` is `Less` but `@2012` against `@2012-01` is `None`. Values
    /// with an offset are first moved to UTC, so one instant written in two zones is
    /// `Equal`; a dateTime without an offset is taken as UTC, as in
    /// [`to_timestamp_micros`](Temporal::to_timestamp_micros). Dates and dateTimes compare
    /// with each other; a time against either is `None`, as is an invalid hand-built value.
    pub fn compare(&self, other: &Self) -> Option<Ordering> {
        if (self.kind == TemporalKind::Time) != (other.kind == TemporalKind::Time) {
            return None;
        }
        let (a, a_len) = self.comparison_key()?;
        let (b, b_len) = other.comparison_key()?;
        let common = a_len.min(b_len);
        match a[..common].cmp(&b[..common]) {
            Ordering::Equal => (a_len == b_len).then_some(Ordering::Equal),
            unequal => Some(unequal),
        }
    }

    /// The components FHIRPath compares, most significant first, in UTC when an offset is
    /// known, with how many of them the value's precision covers. Seconds and the fraction
    /// form one component.
    fn comparison_key(&self) -> Option<([i64; 6], usize)> {
        self.check()?;
        let t = self.truncated(self.precision);
        let fine_second = i64::from(t.second) * i64::from(NANOS_PER_SECOND) + i64::from(t.nanos);
        let time_len = match t.precision {
            Precision::Year | Precision::Month | Precision::Day => 0,
            Precision::Hour => 1,
            Precision::Minute => 2,
            Precision::Second | Precision::Millisecond => 3,
        };
        if t.kind == TemporalKind::Time {
            let key = [i64::from(t.hour), i64::from(t.minute), fine_second, 0, 0, 0];
            return Some((key, time_len));
        }
        let date_len = match t.precision {
            Precision::Year => 1,
            Precision::Month => 2,
            _ => 3,
        };
        let (mut year, mut month, mut day) = (i64::from(t.year), t.month, t.day);
        let (mut hour, mut minute) = (t.hour, t.minute);
        if let Some(offset) = t.tz_offset_minutes.filter(|&o| o != 0) {
            let local = days_from_civil(year, month, day) * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60);
            let utc = local - i64::from(offset) * 60;
            (year, month, day) = civil_from_days(utc.div_euclid(SECONDS_PER_DAY));
            let in_day = utc.rem_euclid(SECONDS_PER_DAY);
            hour = (in_day / 3600) as u32;
            minute = (in_day % 3600 / 60) as u32;
        }
        let key = [year, i64::from(month), i64::from(day), i64::from(hour), i64::from(minute), fine_second];
        Some((key, date_len + time_len))
    }
}

impl fmt::Display for Temporal {
    /// The FHIR text form at the value's precision: `2012-04`, `2015-02-07T13:28:17.239+02:00`,
    /// `12:34:00.000`. A zero offset is written `Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(32);
        if self.kind != TemporalKind::Time {
            write!(s, "{:04}", self.year)?;
            if self.precision >= Precision::Month {
                write!(s, "-{:02}", self.month)?;
            }
            if self.precision >= Precision::Day {
                write!(s, "-{:02}", self.day)?;
            }
            if self.kind == TemporalKind::Date || self.precision < Precision::Hour {
                return f.pad(&s);
            }
            s.push('T');
        }
        write!(s, "{:02}", self.hour)?;
        if self.precision >= Precision::Minute {
            write!(s, ":{:02}", self.minute)?;
        }
        if self.precision >= Precision::Second {
            write!(s, ":{:02}", self.second)?;
        }
        if self.precision == Precision::Millisecond {
            let digits = self.shown_digits();
            let fraction = self.nanos % NANOS_PER_SECOND / 10u32.pow(9 - digits);
            write!(s, ".{fraction:0width$}", width = digits as usize)?;
        }
        match (self.kind, self.tz_offset_minutes) {
            (TemporalKind::DateTime, Some(0)) => s.push('Z'),
            (TemporalKind::DateTime, Some(offset)) => {
                let sign = if offset < 0 { '-' } else { '+' };
                let abs = offset.unsigned_abs();
                write!(s, "{sign}{:02}:{:02}", abs / 60, abs % 60)?;
            }
            _ => {}
        }
        f.pad(&s)
    }
}

#[cfg(test)]
#[path = "temporal_tests.rs"]
mod tests;
