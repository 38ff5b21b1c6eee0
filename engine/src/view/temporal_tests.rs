//! Tests for [`super::Temporal`]: parsing, Arrow conversions, FHIRPath boundaries and
//! comparison.

use super::*;
use std::cmp::Ordering::{Equal, Greater, Less};

fn date(text: &str) -> Temporal {
    Temporal::parse_date(text).unwrap_or_else(|| panic!("{text:?} should parse as date"))
}

fn dt(text: &str) -> Temporal {
    Temporal::parse_datetime(text).unwrap_or_else(|| panic!("{text:?} should parse as dateTime"))
}

fn time(text: &str) -> Temporal {
    Temporal::parse_time(text).unwrap_or_else(|| panic!("{text:?} should parse as time"))
}

fn low(t: Temporal, digits: Option<u32>) -> Option<String> {
    t.low_boundary(digits).map(|b| b.to_string())
}

fn high(t: Temporal, digits: Option<u32>) -> Option<String> {
    t.high_boundary(digits).map(|b| b.to_string())
}

fn some(text: &str) -> Option<String> {
    Some(text.to_string())
}

#[test]
fn parses_dates() {
    let t = date("2023");
    assert_eq!((t.kind, t.precision, t.year, t.month, t.day), (TemporalKind::Date, Precision::Year, 2023, 1, 1));
    let t = date("1970-06");
    assert_eq!((t.precision, t.year, t.month, t.day), (Precision::Month, 1970, 6, 1));
    let t = date("2024-02-29");
    assert_eq!((t.precision, t.year, t.month, t.day), (Precision::Day, 2024, 2, 29));
    assert_eq!(t.tz_offset_minutes, None);
    for ok in ["0001-01-01", "9999-12-31", "2000-02-29", "1900-02-28", "2023-04-30"] {
        assert!(Temporal::parse_date(ok).is_some(), "{ok}");
    }
}

#[test]
fn parses_datetimes() {
    let t = dt("2015-02-07T13:28:17.239+02:00");
    assert_eq!((t.kind, t.precision), (TemporalKind::DateTime, Precision::Millisecond));
    assert_eq!((t.hour, t.minute, t.second, t.nanos, t.frac_digits), (13, 28, 17, 239_000_000, 3));
    assert_eq!(t.tz_offset_minutes, Some(120));
    let t = dt("2010-10-10");
    assert_eq!((t.kind, t.precision), (TemporalKind::DateTime, Precision::Day));
    assert_eq!(dt("2005").precision, Precision::Year);
    assert_eq!(dt("2007-03").precision, Precision::Month);
    assert_eq!(dt("2014-01-01T08").precision, Precision::Hour);
    let t = dt("2018-03-15T21:43-05:00");
    assert_eq!((t.precision, t.tz_offset_minutes), (Precision::Minute, Some(-300)));
    assert_eq!(dt("2016-07-23T14:35Z").tz_offset_minutes, Some(0));
    assert_eq!(dt("2022-03-15T12:30:45-08:00").precision, Precision::Second);
    assert_eq!(dt("2014-01-01T08Z").tz_offset_minutes, Some(0));
    assert_eq!(dt("2010-10-10T11:45:50.12345-10:00").nanos, 123_450_000);
    let t = dt("2010-10-10T19:07:13.123456789123+09:00");
    assert_eq!((t.nanos, t.frac_digits), (123_456_789, 9));
    assert_eq!(dt("2016-12-31T23:59:60Z").second, 60);
    assert_eq!(dt("2000-01-01T00:00:00+14:00").tz_offset_minutes, Some(840));
    assert_eq!(dt("2000-01-01T00:00:00-14:00").tz_offset_minutes, Some(-840));
    assert_eq!(dt("2000-01-01T00:00:00+05:45").tz_offset_minutes, Some(345));
    assert_eq!(dt("2000-01-01T00:00:00-00:00").tz_offset_minutes, Some(0));
}

#[test]
fn parses_times() {
    let t = time("12:34:00");
    assert_eq!((t.kind, t.precision, t.hour, t.minute, t.second), (TemporalKind::Time, Precision::Second, 12, 34, 0));
    assert_eq!((t.year, t.month, t.day), (0, 0, 0));
    assert_eq!(time("12:34").precision, Precision::Minute);
    assert_eq!(time("12").precision, Precision::Hour);
    let t = time("12:34:59.00000036");
    assert_eq!((t.nanos, t.frac_digits), (360, 8));
    assert_eq!(time("23:59:60").second, 60);
}

#[test]
fn rejects_invalid_values() {
    let dates = [
        "",
        "2023-13",
        "2023-00",
        "2023-04-31",
        "2023-02-29",
        "2100-02-29",
        "1900-02-29",
        "2024-02-30",
        "2023-01-00",
        "0000",
        "0000-01-01",
        "23",
        "12023",
        "2023-1",
        "2023-01-1",
        "2023/01/01",
        "2023-01-01T",
        "2023-",
        "2023-01-",
        " 2023",
        "2023 ",
        "-2023",
        "+2023",
        "２０２３",
        "2023-01-01Z",
    ];
    for bad in dates {
        assert_eq!(Temporal::parse_date(bad), None, "date {bad:?}");
        assert_eq!(Temporal::parse_datetime(bad), None, "dateTime {bad:?}");
    }
    for bad in [
        "2023-01-01T25:00:00Z",
        "2023-01-01T24:00",
        "2023-01-01T12:60",
        "2023-01-01T12:00:61",
        "2023-01-01T12:00:00+15:00",
        "2023-01-01T12:00:00-15:00",
        "2023-01-01T12:00:00+14:30",
        "2023-01-01T12:00:00+02:60",
        "2023-01-01T12:00:00.Z",
        "2023-01-01T12:00:00.",
        "2023T10",
        "2023-01T10",
        "2023-01-01 12:00",
        "2023-01-01T12:00:00+0200",
        "2023-01-01T12:00:00+02",
        "2023-01-01T12:00:00z",
        "2023-01-01t12:00",
        "2023-01-01T1",
        "2023-01-01T12:0",
        "2023-01-01T12:00:0",
        "2023-01-01T12:00:00ZZ",
        "2023-01-01T12:00:00Z ",
        "2023-04-31T12:00:00Z",
        "2023-01-01T12:00:00+02:00:00",
    ] {
        assert_eq!(Temporal::parse_datetime(bad), None, "dateTime {bad:?}");
    }
    for bad in [
        "",
        "25:00",
        "24:00:00",
        "12:60",
        "12:00:61",
        "12:00:00Z",
        "12:00:00+01:00",
        "1:00",
        "12:0",
        "12:",
        "12:00:",
        "12:00:00.",
        "T12:00",
        "12-00",
        "2023-01-01",
        "12:00:00 ",
    ] {
        assert_eq!(Temporal::parse_time(bad), None, "time {bad:?}");
    }
}

#[test]
fn parse_any_dispatches_on_shape() {
    assert_eq!(Temporal::parse_any("12:34").map(|t| t.kind), Some(TemporalKind::Time));
    assert_eq!(Temporal::parse_any("2012-04").map(|t| t.kind), Some(TemporalKind::DateTime));
    assert_eq!(Temporal::parse_any("2012-04-15T10:00:00Z").map(|t| t.kind), Some(TemporalKind::DateTime));
    assert_eq!(Temporal::parse_any("12"), None);
    assert_eq!(Temporal::parse_any("hello"), None);
    assert_eq!(Temporal::parse_any("é:"), None);
}

#[test]
fn display_writes_fhir_text() {
    for text in [
        "2023",
        "2023-06",
        "2023-06-15",
        "2023-06-15T10",
        "2023-06-15T10:30",
        "2023-06-15T10:30:05",
        "2023-06-15T10:30:05.1+05:30",
        "2023-06-15T10:30:05.123456789-10:00",
        "2023-06-15T10:30Z",
    ] {
        assert_eq!(dt(text).to_string(), text);
    }
    assert_eq!(dt("2023-06-15T10:30:05+00:00").to_string(), "2023-06-15T10:30:05Z");
    assert_eq!(date("2023-06-15").to_string(), "2023-06-15");
    for text in ["12", "12:34", "12:34:56", "12:34:56.7", "00:00:00.000001"] {
        assert_eq!(time(text).to_string(), text);
    }
    assert_eq!(format!("{:>12}", time("12:34")), "       12:34");
}

#[test]
fn precision_digits_follow_fhirpath() {
    // FHIRPath precision(): @2014 → 4, @2014-01-05T10:30:00.000 → 17, @T10:30 → 4,
    // @T10:30:00.000 → 9.
    assert_eq!(date("2014").precision_digits(), 4);
    assert_eq!(date("2014-01").precision_digits(), 6);
    assert_eq!(date("2014-01-05").precision_digits(), 8);
    assert_eq!(dt("2014-01-05T10").precision_digits(), 10);
    assert_eq!(dt("2014-01-05T10:30").precision_digits(), 12);
    assert_eq!(dt("2014-01-05T10:30:00").precision_digits(), 14);
    assert_eq!(dt("2014-01-05T10:30:00.000").precision_digits(), 17);
    assert_eq!(time("10").precision_digits(), 2);
    assert_eq!(time("10:30").precision_digits(), 4);
    assert_eq!(time("10:30:00").precision_digits(), 6);
    assert_eq!(time("10:30:00.000").precision_digits(), 9);
}

/// Every non-null expectation of `fn_boundary.json` in the SQL-on-FHIR v2 suite.
#[test]
fn boundaries_match_the_sql_on_fhir_suite() {
    let v = dt("2010-10-10");
    assert_eq!(v.low_boundary_string(), "2010-10-10T00:00:00.000+14:00");
    assert_eq!(v.high_boundary_string(), "2010-10-10T23:59:59.999-12:00");
    let v = date("1970-06");
    assert_eq!(v.low_boundary_string(), "1970-06-01");
    assert_eq!(v.high_boundary_string(), "1970-06-30");
    let v = time("12:34:00");
    assert_eq!(v.low_boundary_string(), "12:34:00.000");
    assert_eq!(v.high_boundary_string(), "12:34:00.999");
}

#[test]
fn date_boundaries_know_month_lengths() {
    let cases = [
        ("1970-06", "1970-06-01", "1970-06-30"),
        ("1999-08", "1999-08-01", "1999-08-31"),
        ("2003", "2003-01-01", "2003-12-31"),
        ("2023", "2023-01-01", "2023-12-31"),
        ("2000-02", "2000-02-01", "2000-02-29"),
        ("2001-02", "2001-02-01", "2001-02-28"),
        ("2024-02", "2024-02-01", "2024-02-29"),
        ("2100-02", "2100-02-01", "2100-02-28"),
        ("1900-02", "1900-02-01", "1900-02-28"),
        ("1994-05-18", "1994-05-18", "1994-05-18"),
    ];
    for (value, lo, hi) in cases {
        let v = date(value);
        assert_eq!((v.low_boundary_string(), v.high_boundary_string()), (lo.into(), hi.into()), "{value}");
        assert_eq!(v.low_boundary(None).unwrap().kind, TemporalKind::Date);
    }
}

#[test]
fn datetime_boundaries() {
    let cases = [
        ("2015-02-07T13:28:17+02:00", "2015-02-07T13:28:17.000+02:00", "2015-02-07T13:28:17.999+02:00"),
        ("2005", "2005-01-01T00:00:00.000+14:00", "2005-12-31T23:59:59.999-12:00"),
        ("2007-03", "2007-03-01T00:00:00.000+14:00", "2007-03-31T23:59:59.999-12:00"),
        ("2010-10-10T15:21", "2010-10-10T15:21:00.000+14:00", "2010-10-10T15:21:59.999-12:00"),
        ("2010-10-10T15:21:18", "2010-10-10T15:21:18.000+14:00", "2010-10-10T15:21:18.999-12:00"),
        ("2010-10-10T13:41:01.898998", "2010-10-10T13:41:01.898998+14:00", "2010-10-10T13:41:01.898998-12:00"),
        ("2010-10-10T11:45:50.12345-10:00", "2010-10-10T11:45:50.12345-10:00", "2010-10-10T11:45:50.12345-10:00"),
        ("2010-10-10T07:39:01.5+05:00", "2010-10-10T07:39:01.500+05:00", "2010-10-10T07:39:01.599+05:00"),
        ("2020-05-17T18:19:43.6789Z", "2020-05-17T18:19:43.6789Z", "2020-05-17T18:19:43.6789Z"),
        ("2018-03-15T21:43-05:00", "2018-03-15T21:43:00.000-05:00", "2018-03-15T21:43:59.999-05:00"),
        ("2016-07-23T14:35Z", "2016-07-23T14:35:00.000Z", "2016-07-23T14:35:59.999Z"),
        ("2024-02", "2024-02-01T00:00:00.000+14:00", "2024-02-29T23:59:59.999-12:00"),
    ];
    for (value, lo, hi) in cases {
        let v = dt(value);
        assert_eq!((v.low_boundary_string(), v.high_boundary_string()), (lo.into(), hi.into()), "{value}");
    }
}

#[test]
fn time_boundaries() {
    let cases = [
        ("12:34", "12:34:00.000", "12:34:59.999"),
        ("12:34:01", "12:34:01.000", "12:34:01.999"),
        ("12:34:00.01", "12:34:00.010", "12:34:00.019"),
        ("12:34:00.000001", "12:34:00.000001", "12:34:00.000001"),
        ("12:34:15.4621", "12:34:15.4621", "12:34:15.4621"),
        ("12:34:08.7", "12:34:08.700", "12:34:08.799"),
        ("12", "12:00:00.000", "12:59:59.999"),
    ];
    for (value, lo, hi) in cases {
        let v = time(value);
        assert_eq!((v.low_boundary_string(), v.high_boundary_string()), (lo.into(), hi.into()), "{value}");
    }
}

/// Worked examples and official test cases of
/// <http://hl7.org/fhirpath/N1/#lowboundaryprecision-integer-decimal--date--datetime--time>.
#[test]
fn boundaries_at_explicit_precisions() {
    assert_eq!(low(date("2014"), Some(6)), some("2014-01"));
    assert_eq!(high(date("2014"), Some(6)), some("2014-12"));
    assert_eq!(high(date("2019-02"), Some(8)), some("2019-02-28"));
    assert_eq!(low(date("2014-05-17"), Some(4)), some("2014"));
    // The spec prints this one without an offset; FHIR's definition of the functions, which
    // the SQL-on-FHIR suite follows, adds the widest one.
    assert_eq!(low(dt("2014-01-01T08"), Some(17)), some("2014-01-01T08:00:00.000+14:00"));
    assert_eq!(high(dt("2014-01-01T08"), Some(17)), some("2014-01-01T08:59:59.999-12:00"));
    assert_eq!(low(dt("2014-01-01T08:05+08:00"), Some(17)), some("2014-01-01T08:05:00.000+08:00"));
    assert_eq!(low(dt("2014-01-01T08"), Some(8)), some("2014-01-01"));
    assert_eq!(low(dt("2014"), Some(12)), some("2014-01-01T00:00+14:00"));
    assert_eq!(high(dt("2014"), Some(10)), some("2014-12-31T23-12:00"));
    assert_eq!(high(dt("2014-06-30T10:00:00Z"), Some(6)), some("2014-06"));
    assert_eq!(low(time("10:30"), Some(9)), some("10:30:00.000"));
    assert_eq!(high(time("10:30"), Some(6)), some("10:30:59"));
    assert_eq!(high(time("10:30:15.5"), Some(2)), some("10"));
    // Precisions the type does not have: empty.
    assert_eq!(low(date("2014"), Some(5)), None);
    assert_eq!(low(date("2014"), Some(10)), None);
    assert_eq!(high(dt("2014-01-01T08"), Some(16)), None);
    assert_eq!(high(dt("2014-01-01T08"), Some(18)), None);
    assert_eq!(low(time("10:30"), Some(8)), None);
    assert_eq!(low(time("10:30"), Some(10)), None);
}

#[test]
fn converts_to_date32() {
    assert_eq!(date("1970-01-02").to_date32(), Some(1));
    assert_eq!(date("1970-01-01").to_date32(), Some(0));
    assert_eq!(date("1969-12-31").to_date32(), Some(-1));
    assert_eq!(date("2000-03-01").to_date32(), Some(11017));
    assert_eq!(date("2024-02-29").to_date32(), Some(19782));
    assert_eq!(date("1900-03-01").to_date32(), Some(-25508));
    assert_eq!(date("1970-06").to_date32(), Some(151));
    assert_eq!(date("1970").to_date32(), Some(0));
    assert_eq!(date("0001-01-01").to_date32(), Some(-719_162));
    assert_eq!(date("9999-12-31").to_date32(), Some(2_932_896));
    // A dateTime's calendar date as written, not shifted to UTC.
    assert_eq!(dt("1970-01-02T01:00:00+14:00").to_date32(), Some(1));
    assert_eq!(time("12:00").to_date32(), None);
}

#[test]
fn converts_to_timestamp_micros() {
    assert_eq!(dt("2015-02-07T13:28:17.239+02:00").to_timestamp_micros(), Some(1_423_308_497_239_000));
    assert_eq!(dt("2015-02-07T11:28:17.239Z").to_timestamp_micros(), Some(1_423_308_497_239_000));
    // No offset: taken as UTC.
    assert_eq!(dt("2015-02-07T11:28:17.239").to_timestamp_micros(), Some(1_423_308_497_239_000));
    assert_eq!(dt("1970-01-01").to_timestamp_micros(), Some(0));
    assert_eq!(date("1970-01-02").to_timestamp_micros(), Some(86_400_000_000));
    assert_eq!(dt("1970").to_timestamp_micros(), Some(0));
    assert_eq!(dt("1970-01-01T00:00:00+14:00").to_timestamp_micros(), Some(-14 * 3_600_000_000));
    assert_eq!(dt("1970-01-01T00:00:00.0000019Z").to_timestamp_micros(), Some(1));
    assert_eq!(dt("2017-11-05T01:30:00.0-04:00").to_timestamp_micros(), Some(1_509_859_800_000_000));
    assert_eq!(dt("9999-12-31T23:59:59.999999Z").to_timestamp_micros(), Some(253_402_300_799_999_999));
    assert_eq!(dt("0001-01-01T00:00:00Z").to_timestamp_micros(), Some(-62_135_596_800_000_000));
    assert_eq!(dt("2016-12-31T23:59:60Z").to_timestamp_micros(), Some(1_483_228_799_999_999));
    assert_eq!(time("12:00").to_timestamp_micros(), None);
}

#[test]
fn converts_to_time_micros() {
    assert_eq!(time("00:00:00").to_time_micros(), Some(0));
    assert_eq!(time("12:34:56.789").to_time_micros(), Some(45_296_789_000));
    assert_eq!(time("12:34").to_time_micros(), Some(45_240_000_000));
    assert_eq!(time("12").to_time_micros(), Some(43_200_000_000));
    assert_eq!(time("23:59:59.9999999").to_time_micros(), Some(86_399_999_999));
    assert_eq!(time("23:59:60").to_time_micros(), Some(86_399_999_999));
    assert_eq!(time("10:59:60.5").to_time_micros(), time("10:59:59.999999").to_time_micros());
    assert_eq!(dt("2015-02-07T13:28:17").to_time_micros(), None);
    assert_eq!(date("2015-02-07").to_time_micros(), None);
}

/// Examples of <http://hl7.org/fhirpath/N1/#comparison> and #equals.
#[test]
fn compares_like_fhirpath() {
    let c = |a: Temporal, b: Temporal| a.compare(&b);
    assert_eq!(c(date("2012"), date("2013-01")), Some(Less));
    assert_eq!(c(date("2012"), date("2012-01")), None);
    assert_eq!(c(date("2012-01"), date("2012")), None);
    assert_eq!(c(date("2012-04-15"), date("2012-04-16")), Some(Less));
    assert_eq!(c(date("2012-04-15"), date("2012-04-15")), Some(Equal));
    assert_eq!(c(dt("2012-04-15T15:30:31"), dt("2012-04-15T15:30:31.0")), Some(Equal));
    assert_eq!(c(dt("2012-04-15T15:30:31"), dt("2012-04-15T15:30:31.1")), Some(Less));
    assert_eq!(c(dt("2012-04-15T15:30"), dt("2012-04-15T15:30:31")), None);
    assert_eq!(c(dt("2012-04-15T15:30"), dt("2012-04-15T15:31:31")), Some(Less));
    assert_eq!(c(dt("2017-11-05T01:30:00.0-04:00"), dt("2017-11-05T01:15:00.0-05:00")), Some(Less));
    assert_eq!(c(dt("2017-11-05T01:30:00.0-04:00"), dt("2017-11-05T00:30:00.0-05:00")), Some(Equal));
    assert_eq!(c(dt("2012-04-15T23:00:00-02:00"), dt("2012-04-16T01:00:00Z")), Some(Equal));
    assert_eq!(c(dt("2012-04-16T01:00:00Z"), dt("2012-04-15T23:00:00")), Some(Greater));
    assert_eq!(c(dt("2012-04-15"), date("2012-04-15")), Some(Equal));
    assert_eq!(c(dt("2012-04-15T10:00"), date("2012-04-15")), None);
    assert_eq!(c(dt("2012-04-15T10:00"), date("2012-04-14")), Some(Greater));
    assert_eq!(c(time("10:30"), time("10:30:00")), None);
    assert_eq!(c(time("10:30"), time("10:31:00")), Some(Less));
    assert_eq!(c(time("10:30:00"), time("10:30:00.000")), Some(Equal));
    assert_eq!(c(time("10:30:00.5"), time("10:30:00.25")), Some(Greater));
    assert_eq!(c(time("10:30"), date("2012")), None);
    assert_eq!(c(dt("2012-04-15T10:00"), time("10:00")), None);
}

#[test]
fn calendar_helpers() {
    assert!(is_leap_year(2000) && is_leap_year(2024) && !is_leap_year(1900) && !is_leap_year(2023));
    assert_eq!(days_in_month(2023, 2), Some(28));
    assert_eq!(days_in_month(2024, 2), Some(29));
    assert_eq!(days_in_month(2023, 4), Some(30));
    assert_eq!(days_in_month(2023, 0), None);
    assert_eq!(days_in_month(2023, 13), None);
    for days in [-800_000, -719_162, -1, 0, 1, 11_017, 19_782, 2_932_896] {
        let (y, m, d) = civil_from_days(days);
        assert_eq!(days_from_civil(y, m, d), days);
    }
}

#[test]
fn hand_built_invalid_values_do_not_convert() {
    let mut t = date("2023-04-30");
    t.day = 31;
    assert_eq!(t.to_date32(), None);
    assert_eq!(t.low_boundary_string(), "");
    assert_eq!(t.compare(&date("2023")), None);
    let mut t = dt("2023-04-30T10:00:00Z");
    t.tz_offset_minutes = Some(100_000);
    assert_eq!(t.to_timestamp_micros(), None);
    let mut t = time("10:00:00.5");
    t.frac_digits = 0;
    assert_eq!(t.to_string(), "10:00:00.500");
    t.nanos = u32::MAX;
    assert_eq!(t.to_time_micros(), None);
    let _ = t.to_string();
}

/// Deterministic xorshift so the property test needs no extra crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_text_never_panics_and_round_trips() {
    let seeds = [
        "2015-02-07T13:28:17.239+02:00",
        "2024-02-29",
        "1970-06",
        "12:34:59.00000036",
        "2016-12-31T23:59:60Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59.999-14:00",
    ];
    let alphabet = b"0123456789-:T.Z+ 9120";
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    let mut parsed = 0;
    for round in 0..30_000 {
        let mut bytes: Vec<u8> = if round % 3 == 0 {
            (0..rng.below(32)).map(|_| rng.next() as u8).collect()
        } else {
            seeds[rng.below(seeds.len())].as_bytes().to_vec()
        };
        for _ in 0..rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            let byte = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = byte,
                1 if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, byte),
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        let parsers: [fn(&str) -> Option<Temporal>; 4] =
            [Temporal::parse_date, Temporal::parse_datetime, Temporal::parse_time, Temporal::parse_any];
        for (i, parse) in parsers.iter().enumerate() {
            let Some(t) = parse(&text) else { continue };
            parsed += 1;
            let back = parse(&t.to_string());
            assert_eq!(back.map(|b| b.compare(&t)), Some(Some(Equal)), "{text:?} via parser {i}");
            let (lo, hi) = (t.low_boundary(None).unwrap(), t.high_boundary(None).unwrap());
            assert_ne!(lo.compare(&hi), Some(Greater), "{text:?}");
            for digits in 0..20 {
                let _ = (t.low_boundary(Some(digits)), t.high_boundary(Some(digits)));
            }
            if t.kind == TemporalKind::Time {
                let (l, v, h) = (lo.to_time_micros(), t.to_time_micros(), hi.to_time_micros());
                assert!(l <= v && v <= h, "{text:?}");
            } else {
                let (l, v, h) = (lo.to_timestamp_micros(), t.to_timestamp_micros(), hi.to_timestamp_micros());
                assert!(l.is_some() && l <= v && v <= h, "{text:?}");
                assert!(t.to_date32().is_some());
            }
            let other = Temporal::parse_any(seeds[rng.below(seeds.len())]).unwrap();
            assert_eq!(t.compare(&other).map(Ordering::reverse), other.compare(&t));
        }
    }
    assert!(parsed > 1000, "only {parsed} random strings parsed");
}

/// A leap second (`23:59:60` UTC, or the same instant written in another offset) is held at
/// the last microsecond of its minute, so it stays in its own day and year (and partition).
#[test]
fn a_leap_second_is_held_at_the_last_microsecond_of_its_minute() {
    let last_of_2016 = Some(1_483_228_799_999_999);
    assert_eq!(Temporal::timestamp_micros_of("2016-12-31T23:59:59.999999Z"), last_of_2016);
    for text in [
        "2016-12-31T23:59:60Z",
        "2016-12-31T23:59:60.000Z",
        "2016-12-31T23:59:60.5Z",
        "2016-12-31T23:59:60.9999999Z",
        "2016-12-31T18:59:60-05:00",
        "2017-01-01T08:59:60.25+09:00",
    ] {
        assert_eq!(Temporal::timestamp_micros_of(text), last_of_2016, "{text}");
        assert_eq!(general_micros(text), last_of_2016, "{text}");
    }
    assert!(
        Temporal::timestamp_micros_of("2016-12-31T23:59:60Z") < Temporal::timestamp_micros_of("2017-01-01T00:00:00Z")
    );
    assert_eq!(
        Temporal::timestamp_micros_of("2015-06-30T23:59:60Z"),
        Temporal::timestamp_micros_of("2015-06-30T23:59:59.999999Z")
    );
}

/// The general route [`Temporal::timestamp_micros_of`] must agree with.
fn general_micros(text: &str) -> Option<i64> {
    Temporal::parse_datetime(text)?.to_timestamp_micros()
}

#[test]
fn the_timestamp_fast_path_agrees_with_the_general_route_on_edge_cases() {
    let cases = [
        "2011-02-02T16:30:49-05:00",
        "2011-02-02T16:30:49.825-05:00",
        "2011-02-02T16:30:49.8251234567+14:00",
        "2011-02-02T16:30:49.1Z",
        "2016-12-31T23:59:60Z",
        "2016-02-29T00:00:00Z",
        "2015-02-29T00:00:00Z",
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59.999999-12:00",
        "2011-02-02T16:30:49+14:01",
        "2011-02-02T16:30:49+15:00",
        "2011-02-02T16:30:49-05:60",
        "2011-02-02T24:00:00Z",
        "2011-13-02T16:30:49Z",
        "2011-02-00T16:30:49Z",
        "0000-02-02T16:30:49Z",
        "2011-02-02T16:30:49.Z",
        "2011-02-02T16:30:49",
        "2011-02-02T16:30Z",
        "2011-02-02T16:30:49Zx",
        "2011-02-02T16:30:49-0500",
        "2011-02-02 16:30:49Z",
        "2011-02-02",
        "2011",
        "2011-02-02T16:30:4a+01:00",
    ];
    for text in cases {
        assert_eq!(Temporal::timestamp_micros_of(text), general_micros(text), "{text}");
    }
    assert!(Temporal::full_datetime_micros(b"2011-02-02T16:30:49.825-05:00").is_some(), "the common form is fast");
}

proptest::proptest! {
    #[test]
    fn the_timestamp_fast_path_agrees_with_the_general_route(
        fields in proptest::collection::vec(0u32..100, 8),
        year in 0u32..10_000,
        frac in proptest::option::of("[0-9]{0,11}"),
        zone in "(Z|[+-][0-9]{2}:[0-9]{2}|[+-]1[0-5]:[0-6]0|)",
        cut in proptest::option::of(0usize..40),
    ) {
        let mut text = format!(
            "{year:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            fields[0] % 14, fields[1] % 33, fields[2] % 26, fields[3] % 62, fields[4] % 62
        );
        if let Some(frac) = frac {
            text.push('.');
            text.push_str(&frac);
        }
        text.push_str(&zone);
        if let Some(cut) = cut {
            text.truncate(cut.min(text.len()));
        }
        proptest::prop_assert_eq!(Temporal::timestamp_micros_of(&text), general_micros(&text), "{}", text);
    }
}
