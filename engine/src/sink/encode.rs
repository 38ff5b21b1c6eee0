//! Renders single Arrow values as JSON or as CSV cell text.
//!
//! arrow-json's writer is not used because it prints `Decimal128(38, 9)` with every scale
//! digit (`1.500000000`) and has no CSV counterpart for lists; one walker here serves both
//! row formats so that a value reads the same in either.
//!
//! Renderings (JSON form; the text form is the same without the quotes around strings):
//! - strings and dictionary strings: JSON strings;
//! - booleans, integers: JSON literals; floats: shortest round-trip form; JSON has no
//!   infinities or NaN, so those are the strings `"inf"`, `"-inf"` and `"NaN"`;
//! - decimals: exact JSON numbers from the unscaled integer, trailing fraction zeros dropped
//!   (`1.5`, `5`, `-0.25`), never through `f64`;
//! - binary: lowercase hex (`"6162"`), as bytes need not be UTF-8;
//! - `Date32`/`Date64`: `"YYYY-MM-DD"`;
//! - timestamps: `"YYYY-MM-DDThh:mm:ss[.fff[fff[fff]]]Z"` in UTC (no `Z` when the type has no
//!   time zone): the fraction is omitted when zero, otherwise printed in the shortest of 3,
//!   6 or 9 digits that is exact, so FHIR's usual millisecond instants come back as written;
//! - times: `"hh:mm:ss[.fff[fff[fff]]]"` with the same fraction rule;
//! - lists of every kind (also fixed-size, large and view lists): JSON arrays; structs: JSON
//!   objects; maps: objects when the keys are strings, else arrays of `{"key":..,"value":..}`.
//!   Their members are rendered by these same rules in the JSON form, also in the text
//!   form, where the cell holds the value's JSON text;
//! - other types (durations, intervals, unions, ...): Arrow's display form, as a string;
//! - nulls: `null` (the text form writes nothing).

use std::fmt::Display;
use std::io::Write;
use std::ops::Range;

use arrow::array::{
    Array, ArrayAccessor, ArrowPrimitiveType, AsArray, BooleanArray, FixedSizeListArray, GenericListArray,
    GenericListViewArray, MapArray, OffsetSizeTrait, PrimitiveArray, StructArray,
};
use arrow::buffer::NullBuffer;
use arrow::datatypes::{
    ArrowNativeType, DataType, Date32Type, Date64Type, Decimal128Type, Decimal256Type, Decimal32Type, Decimal64Type,
    DecimalType, Float16Type, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Int8Type,
    Time32MillisecondType, Time32SecondType, Time64MicrosecondType, Time64NanosecondType, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt16Type,
    UInt32Type, UInt64Type, UInt8Type,
};
use arrow::temporal_conversions::{date32_to_datetime, date64_to_datetime};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::{DateTime, NaiveDate, NaiveTime, Timelike};

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Which rendering of a value to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// A JSON value: strings quoted and escaped, null as `null`.
    Json,
    /// CSV cell text: strings raw, null as nothing, nested values still as JSON text.
    Text,
}

/// A value that has no rendering, such as a date outside chrono's range.
#[derive(Debug)]
pub(crate) struct ValueError(pub(crate) String);

/// A data type with no rendering, not even Arrow's display form.
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

    /// Whether `row` is null, also through a dictionary or in a `Null`-typed array.
    pub(crate) fn is_null(&self, row: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(row))
    }

    /// Appends the rendering of `row` to `out`.
    pub(crate) fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        if self.is_null(row) {
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
        // f32 holds every f16 exactly, and prints it as shortly as f16 allows.
        DataType::Float16 => boxed(Float(array.as_primitive::<Float16Type>(), f32::from)),
        DataType::Float32 => boxed(Float(array.as_primitive::<Float32Type>(), std::convert::identity)),
        DataType::Float64 => boxed(Float(array.as_primitive::<Float64Type>(), std::convert::identity)),
        DataType::Decimal32(_, s) => boxed(Decimal(array.as_primitive::<Decimal32Type>(), *s)),
        DataType::Decimal64(_, s) => boxed(Decimal(array.as_primitive::<Decimal64Type>(), *s)),
        DataType::Decimal128(_, s) => boxed(Decimal(array.as_primitive::<Decimal128Type>(), *s)),
        DataType::Decimal256(_, s) => boxed(Decimal(array.as_primitive::<Decimal256Type>(), *s)),
        DataType::Utf8 => boxed(Str(array.as_string::<i32>())),
        DataType::LargeUtf8 => boxed(Str(array.as_string::<i64>())),
        DataType::Utf8View => boxed(Str(array.as_string_view())),
        DataType::Binary => boxed(Hex(array.as_binary::<i32>())),
        DataType::LargeBinary => boxed(Hex(array.as_binary::<i64>())),
        DataType::BinaryView => boxed(Hex(array.as_binary_view())),
        DataType::FixedSizeBinary(_) => boxed(Hex(array.as_fixed_size_binary())),
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
        DataType::FixedSizeList(_, _) => boxed(List::try_new(array.as_fixed_size_list())?),
        DataType::ListView(_) => boxed(List::try_new(array.as_list_view::<i32>())?),
        DataType::LargeListView(_) => boxed(List::try_new(array.as_list_view::<i64>())?),
        DataType::Struct(_) => boxed(Struct::try_new(array.as_struct())?),
        DataType::Map(_, _) => boxed(Map::try_new(array.as_map())?),
        other => boxed(Displayed(
            ArrayFormatter::try_new(array, &FormatOptions::default()).map_err(|_| Unsupported(other.clone()))?,
        )),
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

/// A float column and the conversion of its native values to the `f32` or `f64` printed.
struct Float<'a, T: ArrowPrimitiveType, F>(&'a PrimitiveArray<T>, fn(T::Native) -> F);

impl<T, F> ValueEncoder for Float<'_, T, F>
where
    T: ArrowPrimitiveType,
    F: serde::Serialize + Into<f64> + Copy,
{
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        let value = (self.1)(self.0.value(row));
        let wide: f64 = value.into();
        // serde_json would write null for these, which JSON cannot express, and null must
        // stay distinct from them.
        let special = match wide {
            v if v.is_nan() => "NaN",
            v if v == f64::INFINITY => "inf",
            v if v == f64::NEG_INFINITY => "-inf",
            // serde_json prints the shortest string that reads back to the same float.
            _ => return serde_json::to_writer(out, &value).map_err(|e| ValueError(e.to_string())),
        };
        write_quoted(out, style, |out| out.extend_from_slice(special.as_bytes()));
        Ok(())
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

/// `name` as a JSON object key: quoted, escaped, and followed by the colon.
pub(crate) fn json_key(name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 3);
    write_json_str(&mut key, name);
    key.push(b':');
    key
}

/// Binary values, any of the four layouts.
struct Hex<A>(A);

impl<'a, A: ArrayAccessor<Item = &'a [u8]>> ValueEncoder for Hex<A> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let bytes = self.0.value(row);
        write_quoted(out, style, |out| {
            out.reserve(bytes.len() * 2);
            for b in bytes {
                out.extend_from_slice(&[DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0xf)]]);
            }
        });
        Ok(())
    }
}

/// Types without a rendering of their own: Arrow's display form, as a string.
struct Displayed<'a>(ArrayFormatter<'a>);

impl ValueEncoder for Displayed<'_> {
    fn encode(&self, row: usize, style: Style, out: &mut Vec<u8>) -> Result {
        let text = self.0.value(row).try_to_string().map_err(|e| ValueError(e.to_string()))?;
        match style {
            Style::Json => write_json_str(out, &text),
            Style::Text => out.extend_from_slice(text.as_bytes()),
        }
        Ok(())
    }
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

/// The rows of a list's child array that make up one of its rows; offsets index into the
/// whole child array, also for a sliced list, so one child encoder serves every row.
trait Elements<'a>: Copy {
    fn values(self) -> &'a dyn Array;
    fn range(self, row: usize) -> Range<usize>;
}

impl<'a, O: OffsetSizeTrait> Elements<'a> for &'a GenericListArray<O> {
    fn values(self) -> &'a dyn Array {
        GenericListArray::values(self).as_ref()
    }

    fn range(self, row: usize) -> Range<usize> {
        let offsets = self.value_offsets();
        offsets[row].as_usize()..offsets[row + 1].as_usize()
    }
}

impl<'a> Elements<'a> for &'a FixedSizeListArray {
    fn values(self) -> &'a dyn Array {
        FixedSizeListArray::values(self).as_ref()
    }

    fn range(self, row: usize) -> Range<usize> {
        let start = self.value_offset(row) as usize;
        start..start + self.value_length() as usize
    }
}

impl<'a, O: OffsetSizeTrait> Elements<'a> for &'a GenericListViewArray<O> {
    fn values(self) -> &'a dyn Array {
        GenericListViewArray::values(self).as_ref()
    }

    fn range(self, row: usize) -> Range<usize> {
        let start = self.value_offsets()[row].as_usize();
        start..start + self.value_sizes()[row].as_usize()
    }
}

impl<'a> Elements<'a> for &'a MapArray {
    fn values(self) -> &'a dyn Array {
        self.entries()
    }

    fn range(self, row: usize) -> Range<usize> {
        let offsets = self.value_offsets();
        offsets[row].as_usize()..offsets[row + 1].as_usize()
    }
}

/// Writes `items` separated by commas between `open` and `close`.
fn write_joined(
    out: &mut Vec<u8>,
    (open, close): (u8, u8),
    items: impl IntoIterator<Item = usize>,
    mut item: impl FnMut(usize, &mut Vec<u8>) -> Result,
) -> Result {
    out.push(open);
    for (n, i) in items.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        item(i, out)?;
    }
    out.push(close);
    Ok(())
}

struct List<'a, L> {
    array: L,
    elements: ColumnEncoder<'a>,
}

impl<'a, L: Elements<'a>> List<'a, L> {
    fn try_new(array: L) -> Result<Self, Unsupported> {
        Ok(Self { array, elements: ColumnEncoder::try_new(array.values())? })
    }
}

impl<'a, L: Elements<'a>> ValueEncoder for List<'a, L> {
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        // Elements are always JSON, also in CSV: the cell holds the array's JSON text.
        write_joined(out, (b'[', b']'), self.array.range(row), |i, out| self.elements.encode(i, Style::Json, out))
    }
}

/// A struct's fields: each one's JSON key and encoder.
struct Struct<'a>(Vec<(Vec<u8>, ColumnEncoder<'a>)>);

impl<'a> Struct<'a> {
    fn try_new(array: &'a StructArray) -> Result<Self, Unsupported> {
        let fields = array.fields().iter().zip(array.columns());
        Ok(Self(
            fields
                .map(|(f, c)| Ok((json_key(f.name()), ColumnEncoder::try_new(c.as_ref())?)))
                .collect::<Result<_, _>>()?,
        ))
    }
}

impl ValueEncoder for Struct<'_> {
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        // The field arrays line up with the struct's rows, also when it is sliced.
        write_joined(out, (b'{', b'}'), 0..self.0.len(), |i, out| {
            let (key, encoder) = &self.0[i];
            out.extend_from_slice(key);
            encoder.encode(row, Style::Json, out)
        })
    }
}

struct Map<'a> {
    array: &'a MapArray,
    /// Whether the entries are written as an object rather than `{"key":..,"value":..}`s.
    string_keys: bool,
    keys: ColumnEncoder<'a>,
    values: ColumnEncoder<'a>,
}

impl<'a> Map<'a> {
    fn try_new(array: &'a MapArray) -> Result<Self, Unsupported> {
        let is_string = |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
        let string_keys = match array.key_type() {
            DataType::Dictionary(_, values) => is_string(values),
            other => is_string(other),
        };
        let keys = ColumnEncoder::try_new(array.keys().as_ref())?;
        let values = ColumnEncoder::try_new(array.values().as_ref())?;
        Ok(Self { array, string_keys, keys, values })
    }
}

impl ValueEncoder for Map<'_> {
    fn encode(&self, row: usize, _: Style, out: &mut Vec<u8>) -> Result {
        let range = self.array.range(row);
        if !self.string_keys {
            return write_joined(out, (b'[', b']'), range, |i, out| {
                out.extend_from_slice(br#"{"key":"#);
                self.keys.encode(i, Style::Json, out)?;
                out.extend_from_slice(br#","value":"#);
                self.values.encode(i, Style::Json, out)?;
                out.push(b'}');
                Ok(())
            });
        }
        write_joined(out, (b'{', b'}'), range, |i, out| {
            // Arrow keeps physical nulls out of map keys, but a dictionary key can still point
            // at a null value, and `null` is no object key.
            if self.keys.is_null(i) {
                return Err(ValueError("a map key is null".to_owned()));
            }
            self.keys.encode(i, Style::Json, out)?;
            out.push(b':');
            self.values.encode(i, Style::Json, out)
        })
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

    use arrow::array::ArrayRef;
    use arrow::array::{
        BinaryViewArray, DictionaryArray, DurationSecondArray, FixedSizeBinaryArray, FixedSizeListArray, Float64Array,
        Int32Array, LargeBinaryArray, LargeListArray, ListViewArray, MapBuilder, NullArray, StringArray,
        StringDictionaryBuilder, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };
    use arrow::buffer::{OffsetBuffer, ScalarBuffer};
    use arrow::datatypes::Field;

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

    fn render(array: &dyn Array, style: Style) -> Vec<String> {
        let encoder = ColumnEncoder::try_new(array).unwrap();
        (0..array.len())
            .map(|row| {
                let mut out = Vec::new();
                encoder.encode(row, style, &mut out).unwrap();
                String::from_utf8(out).unwrap()
            })
            .collect()
    }

    fn render_json(array: &dyn Array) -> Vec<String> {
        render(array, Style::Json)
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
        let floats = Float64Array::from(vec![1.5, 5.0, f64::NAN, 1e300, f64::INFINITY, f64::NEG_INFINITY]);
        assert_eq!(render_json(&floats), ["1.5", "5.0", "\"NaN\"", "1e+300", "\"inf\"", "\"-inf\""]);
        assert_eq!(render(&floats, Style::Text), ["1.5", "5.0", "NaN", "1e+300", "inf", "-inf"]);
        let singles = arrow::array::Float32Array::from(vec![1.5, f32::NEG_INFINITY]);
        let halves = arrow::compute::cast(&singles, &DataType::Float16).unwrap();
        assert_eq!(render_json(&halves), ["1.5", "\"-inf\""]);
    }

    #[test]
    fn binary_is_hex_in_every_layout() {
        let bytes: &[u8] = &[0x00, 0xff, b'a'];
        let arrays: [&dyn Array; 3] = [
            &LargeBinaryArray::from(vec![bytes]),
            &BinaryViewArray::from(vec![bytes]),
            &FixedSizeBinaryArray::try_from_iter([bytes].into_iter()).unwrap(),
        ];
        for array in arrays {
            assert_eq!(render_json(array), ["\"00ff61\""], "{}", array.data_type());
            assert_eq!(render(array, Style::Text), ["00ff61"], "{}", array.data_type());
        }
    }

    #[test]
    fn every_list_kind_is_an_array_also_when_sliced() {
        let values = Arc::new(Float64Array::from(vec![0.5, f64::NAN, 2.0, 3.0])) as ArrayRef;
        let field = Arc::new(Field::new_list_field(DataType::Float64, true));
        let fixed = FixedSizeListArray::new(field.clone(), 2, values.clone(), None);
        assert_eq!(render(&fixed, Style::Text), ["[0.5,\"NaN\"]", "[2.0,3.0]"]);
        assert_eq!(render_json(&fixed.slice(1, 1)), ["[2.0,3.0]"]);
        let large = LargeListArray::new(field.clone(), OffsetBuffer::from_lengths([1, 3]), values.clone(), None);
        assert_eq!(render_json(&large.slice(1, 1)), ["[\"NaN\",2.0,3.0]"]);
        let (offsets, sizes) = (ScalarBuffer::from(vec![3, 0]), ScalarBuffer::from(vec![1, 2]));
        let view = ListViewArray::new(field, offsets, sizes, values, None);
        assert_eq!(render_json(&view), ["[3.0]", "[0.5,\"NaN\"]"]);
    }

    #[test]
    fn maps_with_dictionary_string_keys_are_objects() {
        let mut map = MapBuilder::new(None, StringDictionaryBuilder::<Int32Type>::new(), Int32Array::builder(2));
        map.keys().append_value("a");
        map.values().append_value(1);
        map.append(true).unwrap();
        assert_eq!(render_json(&map.finish()), ["{\"a\":1}"]);
    }

    #[test]
    fn other_types_use_arrows_display_form_as_a_string() {
        let durations = DurationSecondArray::from(vec![90]);
        let text = render(&durations, Style::Text);
        assert_eq!(text, [arrow::util::display::array_value_to_string(&durations, 0).unwrap()]);
        assert_eq!(render_json(&durations), [serde_json::to_string(&text[0]).unwrap()]);
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
