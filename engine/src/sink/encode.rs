//! Renders single Arrow values as JSON or as CSV cell text.
//!
//! arrow-json's writer is not used because it prints `Decimal128(38, 9)` with every scale
//! digit (`1.500000000`) and has no CSV counterpart for lists; one walker here serves both
//! row formats so that a value reads the same in either.
//!
//! Renderings (JSON form; the text form is the same without the quotes around strings):
//! - strings and dictionary strings: JSON strings;
//! - booleans, integers: JSON literals; floats: shortest round-trip form, non-finite as null;
//! - decimals: exact JSON numbers from the unscaled integer, trailing fraction zeros dropped
//!   (`1.5`, `5`, `-0.25`), never through `f64`;
//! - `Date32`/`Date64`: `"YYYY-MM-DD"`;
//! - timestamps: `"YYYY-MM-DDThh:mm:ss[.fff[fff[fff]]]Z"` in UTC (no `Z` when the type has no
//!   time zone): the fraction is omitted when zero, otherwise printed in the shortest of 3,
//!   6 or 9 digits that is exact, so FHIR's usual millisecond instants come back as written;
//! - times: `"hh:mm:ss[.fff[fff[fff]]]"` with the same fraction rule;
//! - lists: JSON arrays of the element renderings (also in the text form);
//! - nulls: `null` (the text form writes nothing).

use std::fmt::Display;
use std::io::Write;

use arrow::array::{
    Array, ArrayAccessor, ArrowPrimitiveType, AsArray, BooleanArray, GenericListArray, OffsetSizeTrait, PrimitiveArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type, DecimalType,
    Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type, Time32MillisecondType, Time32SecondType,
    Time64MicrosecondType, Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow::temporal_conversions::{date32_to_datetime, date64_to_datetime};
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Which rendering of a value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// A JSON value: strings quoted and escaped, null as `null`.
    Json,
    /// CSV cell text: strings raw, null as nothing, lists still as JSON text.
    Text,
}

/// A value that has no rendering, such as a date outside chrono's range.
#[derive(Debug)]
pub(crate) struct ValueError(pub(crate) String);

/// A data type with no rendering here (structs, maps, binary, ...).
#[derive(Debug)]
pub(crate) struct Unsupported(pub(crate) DataType);

type Result<T = (), E = ValueError> = std::result::Result<T, E>;

/// Writes the non-null value at one row; nulls are handled by [`ColumnEncoder`].
trait ValueEncoder {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result;
}

/// Renders every row of one array. Built once per batch and column.
pub(crate) struct ColumnEncoder<'a> {
    nulls: Option<NullBuffer>,
    values: Box<dyn ValueEncoder + 'a>,
}

impl<'a> ColumnEncoder<'a> {
    /// An encoder for `array`, or the unsupported type found in it (possibly nested).
    pub(crate) fn try_new(array: &'a dyn Array) -> Result<Self, Unsupported> {
        Ok(Self {
            // Logical nulls so that a Null-typed array and null dictionary values read as null.
            nulls: array.logical_nulls(),
            values: value_encoder(array)?,
        })
    }

    /// Appends the rendering of `row` to `out`.
    pub(crate) fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        if self.nulls.as_ref().is_some_and(|n| n.is_null(row)) {
            if style == Style::Json {
                out.extend_from_slice(b"null");
            }
            return Ok(());
        }
        self.values.encode(row, style, out)
    }
}

fn value_encoder<'a>(array: &'a dyn Array) -> Result<Box<dyn ValueEncoder + 'a>, Unsupported> {
    fn boxed<'a>(e: impl ValueEncoder + 'a) -> Box<dyn ValueEncoder + 'a> {
        Box::new(e)
    }
    Ok(match array.data_type() {
        // Every row is null, so the value encoder is never reached.
        DataType::Null => boxed(AlwaysNull),
        DataType::Boolean => boxed(Plain(array.as_boolean())),
        DataType::Int8 => boxed(Plain(array.as_primitive::<Int8Type>())),
        DataType::Int16 => boxed(Plain(array.as_primitive::<Int16Type>())),
        DataType::Int32 => boxed(Plain(array.as_primitive::<Int32Type>())),
        DataType::Int64 => boxed(Plain(array.as_primitive::<Int64Type>())),
        DataType::UInt8 => boxed(Plain(array.as_primitive::<UInt8Type>())),
        DataType::UInt16 => boxed(Plain(array.as_primitive::<UInt16Type>())),
        DataType::UInt32 => boxed(Plain(array.as_primitive::<UInt32Type>())),
        DataType::UInt64 => boxed(Plain(array.as_primitive::<UInt64Type>())),
        DataType::Float32 => boxed(Float(array.as_primitive::<Float32Type>())),
        DataType::Float64 => boxed(Float(array.as_primitive::<Float64Type>())),
        DataType::Decimal32(_, s) => boxed(Decimal(array.as_primitive::<Decimal32Type>(), *s)),
        DataType::Decimal64(_, s) => boxed(Decimal(array.as_primitive::<Decimal64Type>(), *s)),
        DataType::Decimal128(_, s) => boxed(Decimal(array.as_primitive::<Decimal128Type>(), *s)),
        DataType::Decimal256(_, s) => boxed(Decimal(array.as_primitive::<Decimal256Type>(), *s)),
        DataType::Utf8 => boxed(Str(array.as_string::<i32>())),
        DataType::LargeUtf8 => boxed(Str(array.as_string::<i64>())),
        DataType::Utf8View => boxed(Str(array.as_string_view())),
        DataType::Date32 => boxed(Temporal(array.as_primitive::<Date32Type>(), date32)),
        DataType::Date64 => boxed(Temporal(array.as_primitive::<Date64Type>(), date64)),
        DataType::Time32(TimeUnit::Second) => {
            boxed(Temporal(array.as_primitive::<Time32SecondType>(), |v| time(i64::from(v), NANOS_PER_SECOND)))
        }
        DataType::Time32(TimeUnit::Millisecond) => {
            boxed(Temporal(array.as_primitive::<Time32MillisecondType>(), |v| time(i64::from(v), 1_000_000)))
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            boxed(Temporal(array.as_primitive::<Time64MicrosecondType>(), |v| time(v, 1_000)))
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            boxed(Temporal(array.as_primitive::<Time64NanosecondType>(), |v| time(v, 1)))
        }
        DataType::Timestamp(unit, tz) => {
            let zone = tz.is_some();
            match unit {
                TimeUnit::Second => {
                    boxed(Timestamp(array.as_primitive::<TimestampSecondType>(), NANOS_PER_SECOND, zone))
                }
                TimeUnit::Millisecond => {
                    boxed(Timestamp(array.as_primitive::<TimestampMillisecondType>(), 1_000_000, zone))
                }
                TimeUnit::Microsecond => {
                    boxed(Timestamp(array.as_primitive::<TimestampMicrosecondType>(), 1_000, zone))
                }
                TimeUnit::Nanosecond => boxed(Timestamp(array.as_primitive::<TimestampNanosecondType>(), 1, zone)),
            }
        }
        DataType::Dictionary(_, _) => {
            let dict = array.as_any_dictionary();
            // `normalized_keys` panics on an empty dictionary, which is what a column of
            // nothing but nulls has; its keys are then never looked up.
            let keys = if dict.values().is_empty() { vec![0; dict.len()] } else { dict.normalized_keys() };
            boxed(Dictionary { keys, values: ColumnEncoder::try_new(dict.values().as_ref())? })
        }
        DataType::List(_) => boxed(List::try_new(array.as_list::<i32>())?),
        DataType::LargeList(_) => boxed(List::try_new(array.as_list::<i64>())?),
        other => return Err(Unsupported(other.clone())),
    })
}

/// Values whose JSON and text forms are their `Display` form: booleans and integers.
struct Plain<A>(A);

impl<T> ValueEncoder for Plain<&PrimitiveArray<T>>
where
    T: ArrowPrimitiveType,
    T::Native: Display,
{
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        write_display(out, self.0.value(row));
        Ok(())
    }
}

impl ValueEncoder for Plain<&BooleanArray> {
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        write_display(out, self.0.value(row));
        Ok(())
    }
}

/// A `Null`-typed column: [`ColumnEncoder`] sees every row as null and never calls this.
struct AlwaysNull;

impl ValueEncoder for AlwaysNull {
    fn encode(&self, _: usize, style: Style, out: &mut Vec<u8>) -> Result {
        if style == Style::Json {
            out.extend_from_slice(b"null");
        }
        Ok(())
    }
}

struct Float<'a, T: ArrowPrimitiveType>(&'a PrimitiveArray<T>);

impl<T> ValueEncoder for Float<'_, T>
where
    T: ArrowPrimitiveType,
    T::Native: serde::Serialize,
{
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        // serde_json prints the shortest string that reads back to the same float, and null
        // for NaN and infinities, which JSON cannot express.
        serde_json::to_writer(out, &self.0.value(row)).map_err(|e| ValueError(e.to_string()))
    }
}

struct Decimal<'a, T: DecimalType>(&'a PrimitiveArray<T>, i8);

impl<T> ValueEncoder for Decimal<'_, T>
where
    T: DecimalType,
    T::Native: Display,
{
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        write_decimal(out, &self.0.value(row).to_string(), self.1);
        Ok(())
    }
}

/// Writes the unscaled integer `unscaled` (decimal digits, optional leading `-`) divided by
/// 10^`scale` exactly, without trailing fraction zeros.
fn write_decimal(out: &mut Vec<u8>, unscaled: &str, scale: i8) {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, unscaled),
    };
    if negative {
        out.push(b'-');
    }
    if scale <= 0 {
        out.extend_from_slice(digits.as_bytes());
        if digits != "0" {
            out.extend(std::iter::repeat_n(b'0', usize::from(scale.unsigned_abs())));
        }
        return;
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded;
    let digits = if digits.len() <= scale {
        padded = format!("{digits:0>width$}", width = scale + 1);
        padded.as_str()
    } else {
        digits
    };
    let (int, frac) = digits.split_at(digits.len() - scale);
    out.extend_from_slice(int.as_bytes());
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        out.push(b'.');
        out.extend_from_slice(frac.as_bytes());
    }
}

struct Str<A>(A);

impl<'a, A: ArrayAccessor<Item = &'a str>> ValueEncoder for Str<A> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        let s = self.0.value(row);
        match style {
            Style::Json => write_json_str(out, s),
            Style::Text => out.extend_from_slice(s.as_bytes()),
        }
        Ok(())
    }
}

/// Writes `s` as a quoted, escaped JSON string.
pub(crate) fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a &str to a Vec cannot fail.
    serde_json::to_writer(out, s).expect("serialising a str to a Vec");
}

/// Dates and times: a conversion from the native value to something with the right
/// `Display`, or an error for values chrono cannot represent.
struct Temporal<'a, T: ArrowPrimitiveType, D>(&'a PrimitiveArray<T>, fn(T::Native) -> Result<D>);

impl<T: ArrowPrimitiveType, D: Display> ValueEncoder for Temporal<'_, T, D> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        let value = (self.1)(self.0.value(row))?;
        write_quoted(out, style, |out| write_display(out, value));
        Ok(())
    }
}

fn date32(days: i32) -> Result<NaiveDate> {
    date32_to_datetime(days).map(|dt| dt.date()).ok_or_else(|| out_of_range("Date32", days))
}

fn date64(millis: i64) -> Result<NaiveDate> {
    date64_to_datetime(millis).map(|dt| dt.date()).ok_or_else(|| out_of_range("Date64", millis))
}

/// A time of day, `nanos_per_unit` nanoseconds to the unit of `value`.
fn time(value: i64, nanos_per_unit: i64) -> Result<TimeOfDay> {
    let nanos = i128::from(value) * i128::from(nanos_per_unit);
    let day = i128::from(SECONDS_PER_DAY) * i128::from(NANOS_PER_SECOND);
    if !(0..day).contains(&nanos) {
        return Err(out_of_range("time of day", value));
    }
    let (secs, frac) = (nanos / 1_000_000_000, nanos % 1_000_000_000);
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs as u32, frac as u32)
        .ok_or_else(|| out_of_range("time of day", value))?;
    Ok(TimeOfDay(time))
}

/// `hh:mm:ss` plus the shortest exact fraction of 3, 6 or 9 digits.
struct TimeOfDay(NaiveTime);

impl Display for TimeOfDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.0;
        write!(f, "{:02}:{:02}:{:02}", t.hour(), t.minute(), t.second())?;
        match t.nanosecond() {
            0 => Ok(()),
            n if n % 1_000_000 == 0 => write!(f, ".{:03}", n / 1_000_000),
            n if n % 1_000 == 0 => write!(f, ".{:06}", n / 1_000),
            n => write!(f, ".{n:09}"),
        }
    }
}

/// A timestamp column: the native value, its nanoseconds per unit, and whether it has a
/// time zone (values are UTC instants either way; a zone only adds the `Z`).
struct Timestamp<'a, T: ArrowPrimitiveType<Native = i64>>(&'a PrimitiveArray<T>, i64, bool);

impl<T: ArrowPrimitiveType<Native = i64>> ValueEncoder for Timestamp<'_, T> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        let value = self.0.value(row);
        let units_per_second = NANOS_PER_SECOND / self.1;
        let secs = value.div_euclid(units_per_second);
        let nanos = value.rem_euclid(units_per_second) * self.1;
        let instant =
            DateTime::from_timestamp(secs, nanos as u32).ok_or_else(|| out_of_range("timestamp", value))?.naive_utc();
        write_quoted(out, style, |out| {
            write_display(out, instant.date());
            out.push(b'T');
            write_display(out, TimeOfDay(instant.time()));
            if self.2 {
                out.push(b'Z');
            }
        });
        Ok(())
    }
}

struct Dictionary<'a> {
    keys: Vec<usize>,
    values: ColumnEncoder<'a>,
}

impl ValueEncoder for Dictionary<'_> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        self.values.encode(self.keys[row], style, out)
    }
}

struct List<'a, O: OffsetSizeTrait> {
    array: &'a GenericListArray<O>,
    elements: ColumnEncoder<'a>,
}

impl<'a, O: OffsetSizeTrait> List<'a, O> {
    fn try_new(array: &'a GenericListArray<O>) -> Result<Self, Unsupported> {
        // Offsets index into the whole child array, also for a sliced list, so one encoder
        // over it serves every row.
        Ok(Self { array, elements: ColumnEncoder::try_new(array.values().as_ref())? })
    }
}

impl<O: OffsetSizeTrait> ValueEncoder for List<'_, O> {
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        let offsets = self.array.value_offsets();
        let (start, end) = (offsets[row].as_usize(), offsets[row + 1].as_usize());
        out.push(b'[');
        for (n, element) in (start..end).enumerate() {
            if n > 0 {
                out.push(b',');
            }
            // Elements are always JSON, also in CSV: the cell holds the array's JSON text.
            self.elements.encode(element, Style::Json, out)?;
        }
        out.push(b']');
        Ok(())
    }
}

fn write_display(out: &mut Vec<u8>, value: impl Display) {
    // io::Write for Vec<u8> never fails.
    write!(out, "{value}").expect("formatting into a Vec");
}

/// Runs `body` between double quotes in the JSON style. Only for renderings that need no
/// escaping (digits, `-`, `:`, `.`, `T`, `Z`).
fn write_quoted(out: &mut Vec<u8>, style: Style, body: impl FnOnce(&mut Vec<u8>)) {
    let quote = style == Style::Json;
    if quote {
        out.push(b'"');
    }
    body(out);
    if quote {
        out.push(b'"');
    }
}

fn out_of_range(what: &str, value: impl Display) -> ValueError {
    ValueError(format!("{what} value {value} is out of the representable range"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        DictionaryArray, Float64Array, Int32Array, NullArray, StringArray, TimestampMillisecondArray,
        TimestampNanosecondArray, TimestampSecondArray,
    };

    use super::*;

    fn decimal(unscaled: &str, scale: i8) -> String {
        let mut out = Vec::new();
        write_decimal(&mut out, unscaled, scale);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn decimals_are_exact_and_trimmed() {
        assert_eq!(decimal("1500000000", 9), "1.5");
        assert_eq!(decimal("5000000000", 9), "5");
        assert_eq!(decimal("0", 9), "0");
        assert_eq!(decimal("-250000000", 9), "-0.25");
        assert_eq!(decimal("1", 9), "0.000000001");
        assert_eq!(decimal("-1", 3), "-0.001");
        assert_eq!(decimal("12345", 0), "12345");
        assert_eq!(decimal("12", -3), "12000");
        assert_eq!(decimal("0", -3), "0");
        assert_eq!(decimal("-99999999999999999999999999999999999999", 9), "-99999999999999999999999999999.999999999");
    }

    fn render_json(array: &dyn Array) -> Vec<String> {
        let encoder = ColumnEncoder::try_new(array).unwrap();
        (0..array.len())
            .map(|row| {
                let mut out = Vec::new();
                encoder.encode(row, Style::Json, &mut out).unwrap();
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    #[test]
    fn all_null_dictionary_renders_nulls() {
        let array: DictionaryArray<Int32Type> = [None::<&str>, None].into_iter().collect();
        assert!(array.values().is_empty());
        assert_eq!(render_json(&array), ["null", "null"]);
    }

    #[test]
    fn null_dictionary_values_render_as_null() {
        let values = StringArray::from(vec![Some("a"), None]);
        let keys = Int32Array::from(vec![Some(1), Some(0), None]);
        let array = DictionaryArray::new(keys, Arc::new(values));
        assert_eq!(render_json(&array), ["null", "\"a\"", "null"]);
    }

    #[test]
    fn null_typed_column_and_floats() {
        assert_eq!(render_json(&NullArray::new(2)), ["null", "null"]);
        let floats = Float64Array::from(vec![1.5, 5.0, f64::NAN, 1e300]);
        assert_eq!(render_json(&floats), ["1.5", "5.0", "null", "1e+300"]);
    }

    #[test]
    fn timestamp_units_and_zones() {
        let nanos = TimestampNanosecondArray::from(vec![1_423_308_497_000_000_001]);
        assert_eq!(render_json(&nanos), ["\"2015-02-07T11:28:17.000000001\""]);
        let secs = TimestampSecondArray::from(vec![-1]).with_timezone("+02:00");
        assert_eq!(render_json(&secs), ["\"1969-12-31T23:59:59Z\""]);
        let millis = TimestampMillisecondArray::from(vec![-1]).with_timezone("UTC");
        assert_eq!(render_json(&millis), ["\"1969-12-31T23:59:59.999Z\""]);
    }

    #[test]
    fn time_fraction_uses_shortest_exact_group() {
        let t = |v, per| time(v, per).unwrap().to_string();
        assert_eq!(t(0, 1_000), "00:00:00");
        assert_eq!(t(45_296_000_000, 1_000), "12:34:56");
        assert_eq!(t(45_296_500_000, 1_000), "12:34:56.500");
        assert_eq!(t(45_296_000_250, 1_000), "12:34:56.000250");
        assert_eq!(t(45_296_000_000_007, 1), "12:34:56.000000007");
        assert!(time(86_400_000_000, 1_000).is_err());
        assert!(time(-1, 1_000).is_err());
    }
}
