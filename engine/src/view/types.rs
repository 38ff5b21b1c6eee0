//! FHIR column types → Arrow types, and FHIRPath items → typed cells.
//!
//! | column `type`                                   | Arrow type                          |
//! |-------------------------------------------------|-------------------------------------|
//! | `string`, `id`, `uri`, `url`, `canonical`, `oid`, `uuid`, `markdown`, `base64Binary`, `xhtml` | `Utf8` |
//! | `code`                                          | `Dictionary(Int32, Utf8)`           |
//! | `boolean`                                       | `Boolean`                           |
//! | `integer`, `positiveInt`, `unsignedInt`         | `Int32`                             |
//! | `integer64`                                     | `Int64`                             |
//! | `decimal`                                       | `Decimal128(38, 9)`                 |
//! | `date`                                          | `Date32` (partial dates → first day)|
//! | `dateTime`, `instant`                           | `Timestamp(µs, "UTC")` (low boundary; no zone → UTC) |
//! | `time`                                          | `Time64(µs)`                        |
//! | any complex type (`CodeableConcept`, ...)       | `Utf8` holding compact JSON         |
//! | no `type`                                       | inferred from the path where it is certain, else `Utf8` |
//!
//! `collection: true` wraps the type in `List`. A column tag `ansi/type` (e.g.
//! `DECIMAL(10,2)`, `BIGINT`, `VARCHAR`) overrides the mapping, as the spec suggests.
//!
//! A value must have the JSON type its column's FHIR type has, or its row is an error (a dead
//! letter in a load): a string is no boolean, decimal or integer, even when it reads as one.
//! The one exception is `integer64`, which R5 writes as a JSON string (see [`FhirInteger`]).
//! The integer types' ranges are checked too: `unsignedInt` is 0 or more, `positiveInt` 1 or
//! more (by the declared `type`, whatever width an `ansi/type` tag gives the column).

use std::borrow::Cow;

use arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::common::utils::datafusion_strsim::levenshtein;

use super::fhirpath::value::Number;
use super::fhirpath::{Item, Kind};
use super::temporal::Temporal;

/// Default precision and scale of `decimal` columns: 38 digits, 9 after the point. FHIR
/// decimals in practice carry at most 18 significant digits; a value with more than nine
/// non-zero fractional digits is a row error rather than a silent rounding.
pub const DECIMAL_PRECISION: u8 = 38;
/// See [`DECIMAL_PRECISION`].
pub const DECIMAL_SCALE: i8 = 9;

/// The FHIR primitive types a column may declare (R4, plus R5's `integer64`).
pub const FHIR_PRIMITIVE_TYPES: [&str; 21] = [
    "base64Binary",
    "boolean",
    "canonical",
    "code",
    "date",
    "dateTime",
    "decimal",
    "id",
    "instant",
    "integer",
    "integer64",
    "markdown",
    "oid",
    "positiveInt",
    "string",
    "time",
    "unsignedInt",
    "uri",
    "url",
    "uuid",
    "xhtml",
];

/// The FHIR R4 complex data types a column may declare (held as compact JSON text).
pub const FHIR_COMPLEX_TYPES: [&str; 43] = [
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "BackboneElement",
    "CodeableConcept",
    "Coding",
    "ContactDetail",
    "ContactPoint",
    "Contributor",
    "Count",
    "DataRequirement",
    "Distance",
    "Dosage",
    "Duration",
    "Element",
    "ElementDefinition",
    "Expression",
    "Extension",
    "HumanName",
    "Identifier",
    "MarketingStatus",
    "Meta",
    "Money",
    "MoneyQuantity",
    "Narrative",
    "ParameterDefinition",
    "Period",
    "Population",
    "ProdCharacteristic",
    "ProductShelfLife",
    "Quantity",
    "Range",
    "Ratio",
    "Reference",
    "RelatedArtifact",
    "SampledData",
    "Signature",
    "SimpleQuantity",
    "SubstanceAmount",
    "Timing",
    "TriggerDefinition",
    "UsageContext",
];

/// The prefix the spec implies for a relative column `type` (a StructureDefinition URI).
const CORE_TYPE_PREFIX: &str = "http://hl7.org/fhir/StructureDefinition/";

/// Checks a column's declared `type` and returns the bare type name (the spec's full
/// `http://hl7.org/fhir/StructureDefinition/X` form becomes `X`).
///
/// Anything that is not a FHIR primitive, complex or R4 resource type is refused: an
/// unknown name would otherwise fall through to the complex-type rule and make a text
/// column without a word, so `"Boolean"` or `"interger"` would silently lose the type.
///
/// ```
/// use fhirhouse::view::types::check_column_type;
/// assert_eq!(check_column_type("http://hl7.org/fhir/StructureDefinition/boolean"), Ok("boolean"));
/// assert_eq!(check_column_type("interger").unwrap_err(), "'interger' is not a FHIR type; did you mean 'integer'?");
/// ```
pub fn check_column_type(type_name: &str) -> Result<&str, String> {
    let name = type_name.strip_prefix(CORE_TYPE_PREFIX).unwrap_or(type_name);
    let known = |n: &str| {
        FHIR_PRIMITIVE_TYPES.contains(&n) || FHIR_COMPLEX_TYPES.contains(&n) || crate::source::is_r4_resource_type(n)
    };
    if known(name) {
        return Ok(name);
    }
    let candidates = FHIR_PRIMITIVE_TYPES.iter().chain(&FHIR_COMPLEX_TYPES).chain(&crate::source::R4_RESOURCE_TYPES);
    Err(match closest_name(name, candidates.copied()) {
        Some(best) => format!("'{type_name}' is not a FHIR type; did you mean '{best}'?"),
        None => format!(
            "'{type_name}' is not a FHIR type (use a primitive type such as string, integer, boolean, decimal, date or dateTime, a complex type such as CodeableConcept, or a resource type)"
        ),
    })
}

/// The candidate a mistyped name most likely meant. Names are case-sensitive (`date` is a
/// primitive, `Date` nothing), so a case slip is the likeliest mistake; otherwise the
/// nearest name within a small edit distance.
pub(crate) fn closest_name<'c>(name: &str, candidates: impl Iterator<Item = &'c str> + Clone) -> Option<&'c str> {
    let lower = name.to_ascii_lowercase();
    candidates.clone().find(|c| c.eq_ignore_ascii_case(name)).or_else(|| {
        let limit = (name.len() / 3).clamp(1, 3);
        candidates
            .map(|c| (levenshtein(&lower, &c.to_ascii_lowercase()), c))
            .filter(|(d, _)| *d <= limit)
            .min_by_key(|(d, _)| *d)
            .map(|(_, c)| c)
    })
}

/// FHIRPath's own types (the `System` namespace), which `is`, `as` and `ofType` also accept.
const SYSTEM_TYPES: [&str; 9] =
    ["Boolean", "String", "Integer", "Long", "Decimal", "Date", "DateTime", "Time", "Quantity"];

/// Checks the type a FHIRPath `is`, `as` or `ofType` names (namespace removed): a FHIR type,
/// an R4 resource type (or `Resource`, `DomainResource`) or a FHIRPath system type.
///
/// A name that is none of these matches nothing, so a slip such as `ofType(datetime)` or
/// `ofType(Codng)` would make a column that is always empty without a word.
///
/// ```
/// use fhirhouse::view::types::check_type_specifier;
/// assert!(check_type_specifier("dateTime").is_ok() && check_type_specifier("DateTime").is_ok());
/// assert_eq!(check_type_specifier("datetime").unwrap_err(), "'datetime' is not a type; did you mean 'dateTime'?");
/// ```
pub fn check_type_specifier(name: &str) -> Result<(), String> {
    const ABSTRACT: [&str; 2] = ["Resource", "DomainResource"];
    let candidates = || {
        FHIR_PRIMITIVE_TYPES
            .iter()
            .chain(&FHIR_COMPLEX_TYPES)
            .chain(&crate::source::R4_RESOURCE_TYPES)
            .chain(&ABSTRACT)
            .chain(&SYSTEM_TYPES)
            .copied()
    };
    if candidates().any(|c| c == name) {
        return Ok(());
    }
    Err(match closest_name(name, candidates()) {
        Some(best) => format!("'{name}' is not a type; did you mean '{best}'?"),
        None => format!("'{name}' is not a FHIR or FHIRPath type"),
    })
}

/// Checks a name that must be an R4 resource type (a view's `resource`, the argument of
/// `getReferenceKey`), suggesting the closest one.
///
/// ```
/// use fhirhouse::view::types::check_resource_type;
/// assert!(check_resource_type("Patient").is_ok());
/// assert_eq!(check_resource_type("Pateint").unwrap_err(), "'Pateint' is not a FHIR R4 resource type; did you mean 'Patient'?");
/// ```
pub fn check_resource_type(name: &str) -> Result<(), String> {
    if crate::source::is_r4_resource_type(name) {
        return Ok(());
    }
    Err(match closest_name(name, crate::source::R4_RESOURCE_TYPES.iter().copied()) {
        Some(best) => format!("'{name}' is not a FHIR R4 resource type; did you mean '{best}'?"),
        None => format!(
            "'{name}' is not a FHIR R4 resource type (they are case-sensitive: \"Patient\", \"Observation\", ...)"
        ),
    })
}

/// Which FHIR integer type an integer column holds: what its values must look like beyond
/// fitting the column's width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhirInteger {
    /// `integer`, or a column that is an integer by its `ansi/type` tag or its path alone:
    /// any JSON integer of the width.
    Integer,
    /// `unsignedInt`: a JSON integer, 0 or more.
    UnsignedInt,
    /// `positiveInt`: a JSON integer, 1 or more.
    PositiveInt,
    /// `integer64`: a JSON integer, or a JSON string in FHIR's lexical form
    /// (`0|[-+]?[1-9][0-9]*`).
    ///
    /// R4 has no integer64; R5 added it and writes it as a JSON string, because many JSON
    /// readers turn numbers into doubles and lose digits beyond 2^53. A view that declares
    /// `integer64` is written for such data (or for a wide count, a number), so the string
    /// form is taken here and only here; every other integer type refuses a string as
    /// decimal and boolean columns do.
    Integer64,
}

impl FhirInteger {
    /// The integer type a column's declared FHIR `type` names (bare or as a core
    /// StructureDefinition URI); [`FhirInteger::Integer`] for every other name and none.
    fn of_declared(fhir_type: Option<&str>) -> FhirInteger {
        match fhir_type.map(|t| t.strip_prefix(CORE_TYPE_PREFIX).unwrap_or(t)) {
            Some("unsignedInt") => FhirInteger::UnsignedInt,
            Some("positiveInt") => FhirInteger::PositiveInt,
            Some("integer64") => FhirInteger::Integer64,
            _ => FhirInteger::Integer,
        }
    }

    /// The value of a JSON string (or a computed one) in an `integer64` column; `None` for
    /// any text not in FHIR's lexical form or outside 64 bits, and for every other type.
    fn value_of_text(self, item: &Item<'_>) -> Option<i64> {
        if self != FhirInteger::Integer64 {
            return None;
        }
        let text = match item {
            Item::Node(node) => node.as_str()?,
            Item::Str(text) => text,
            _ => return None,
        };
        let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
        // No leading zeros, and zero without a sign; `parse` checks that the rest are digits.
        let lexical = digits.starts_with(|c: char| ('1'..='9').contains(&c)) || text == "0";
        lexical.then(|| text.parse().ok()).flatten()
    }

    /// What a value of this type is, for a mismatch message.
    fn expected(self) -> &'static str {
        match self {
            FhirInteger::Integer64 => "an integer64 (a JSON number or a string of digits)",
            _ => "an integer",
        }
    }

    /// Checks the range FHIR gives the type beyond the column's width.
    #[inline]
    fn check_range(self, n: i64) -> Result<(), String> {
        let (min, name) = match self {
            FhirInteger::Integer | FhirInteger::Integer64 => return Ok(()),
            FhirInteger::UnsignedInt => (0, "unsignedInt"),
            FhirInteger::PositiveInt => (1, "positiveInt"),
        };
        if n < min {
            return Err(format!("{n} is not a valid {name} (FHIR requires {min} or more)"));
        }
        Ok(())
    }
}

/// The Arrow representation of one value of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    /// `Utf8`
    Utf8,
    /// `Dictionary(Int32, Utf8)`, for low-cardinality codes.
    Code,
    /// `Boolean`
    Boolean,
    /// `Int32`, holding values of the FHIR integer type.
    Int32(FhirInteger),
    /// `Int64`, holding values of the FHIR integer type.
    Int64(FhirInteger),
    /// `Decimal128(precision, scale)`
    Decimal(u8, i8),
    /// `Date32`
    Date32,
    /// `Timestamp(Microsecond, "UTC")`
    Timestamp,
    /// `Time64(Microsecond)`
    Time64,
}

impl ValueType {
    /// Picks the Arrow type for a column from its declared FHIR `type` (checked with
    /// [`check_column_type`]), the static kind of its path (for untyped columns) and an
    /// optional `ansi/type` tag. A declared FHIR integer type keeps its rules
    /// ([`FhirInteger`]) under a tag that sets the column's width.
    pub fn for_column(fhir_type: Option<&str>, kind: Kind, ansi_type: Option<&str>) -> Result<ValueType, String> {
        if let Some(ansi) = ansi_type {
            return ValueType::from_ansi(ansi, FhirInteger::of_declared(fhir_type)).ok_or_else(|| format!("unsupported ansi/type tag '{ansi}' (use VARCHAR, BOOLEAN, INTEGER, BIGINT, DECIMAL(p,s), DATE, TIMESTAMP or TIME)"));
        }
        let fhir_type = fhir_type.map(check_column_type).transpose()?;
        Ok(match fhir_type {
            Some("boolean") => ValueType::Boolean,
            Some(name @ ("integer" | "positiveInt" | "unsignedInt")) => {
                ValueType::Int32(FhirInteger::of_declared(Some(name)))
            }
            Some("integer64") => ValueType::Int64(FhirInteger::Integer64),
            Some("decimal") => ValueType::Decimal(DECIMAL_PRECISION, DECIMAL_SCALE),
            Some("date") => ValueType::Date32,
            Some("dateTime" | "instant") => ValueType::Timestamp,
            Some("time") => ValueType::Time64,
            Some("code") => ValueType::Code,
            // Every other checked name: a text primitive, or a complex or resource type as JSON.
            Some(_) => ValueType::Utf8,
            None => match kind {
                Kind::Boolean => ValueType::Boolean,
                Kind::Integer => ValueType::Int32(FhirInteger::Integer),
                Kind::Decimal => ValueType::Decimal(DECIMAL_PRECISION, DECIMAL_SCALE),
                Kind::String | Kind::Unknown => ValueType::Utf8,
            },
        })
    }

    fn from_ansi(text: &str, integer: FhirInteger) -> Option<ValueType> {
        let upper = text.trim().to_ascii_uppercase();
        let (base, args) = match upper.split_once('(') {
            Some((b, rest)) => (b.trim(), Some(rest.trim_end_matches(')'))),
            None => (upper.as_str(), None),
        };
        Some(match base {
            "VARCHAR" | "CHAR" | "TEXT" | "STRING" | "CHARACTER VARYING" => ValueType::Utf8,
            "BOOLEAN" => ValueType::Boolean,
            "INTEGER" | "INT" | "SMALLINT" => ValueType::Int32(integer),
            "BIGINT" => ValueType::Int64(integer),
            "DECIMAL" | "NUMERIC" => {
                let (p, s) = match args {
                    Some(a) => {
                        let (p, s) = a.split_once(',').unwrap_or((a, "0"));
                        (p.trim().parse().ok()?, s.trim().parse().ok()?)
                    }
                    None => (DECIMAL_PRECISION, DECIMAL_SCALE),
                };
                if !(1..=38).contains(&p) || s < 0 || s as u8 > p {
                    return None;
                }
                ValueType::Decimal(p, s)
            }
            "DATE" => ValueType::Date32,
            "TIMESTAMP" | "TIMESTAMP WITH TIME ZONE" | "TIMESTAMPTZ" => ValueType::Timestamp,
            "TIME" => ValueType::Time64,
            _ => return None,
        })
    }

    /// The Arrow data type of one value.
    pub fn data_type(self) -> DataType {
        match self {
            ValueType::Utf8 => DataType::Utf8,
            ValueType::Code => DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            ValueType::Boolean => DataType::Boolean,
            ValueType::Int32(_) => DataType::Int32,
            ValueType::Int64(_) => DataType::Int64,
            ValueType::Decimal(p, s) => DataType::Decimal128(p, s),
            ValueType::Date32 => DataType::Date32,
            ValueType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ValueType::Time64 => DataType::Time64(TimeUnit::Microsecond),
        }
    }

    /// The Arrow field of a column of this type, wrapped in `List` for collections.
    pub fn field(self, name: &str, collection: bool) -> Field {
        if collection {
            Field::new(name, DataType::List(std::sync::Arc::new(Field::new("item", self.data_type(), true))), true)
        } else {
            Field::new(name, self.data_type(), true)
        }
    }

    /// Converts one FHIRPath item into a cell of this type, or says why it cannot.
    pub fn convert<'a>(self, item: Item<'a>) -> Result<Cell<'a>, String> {
        let mismatch = |item: &Item<'_>, expected: &str| {
            format!("expected {expected}, found {} {}", item.kind_name(), preview(item))
        };
        // Text of the right shape with an impossible value (month 13, hour 25).
        let invalid = |item: &Item<'_>, expected: &str| format!("{} is not a valid {expected}", preview(item));
        Ok(match self {
            // By value, so a computed string (`join`, `&`) moves into the cell uncopied.
            ValueType::Utf8 | ValueType::Code => Cell::Str(item.into_text()),
            ValueType::Boolean => Cell::Bool(item.as_bool().ok_or_else(|| mismatch(&item, "a boolean"))?),
            ValueType::Int32(integer) | ValueType::Int64(integer) => {
                let n = match item.as_number() {
                    Some(Number::Int(n)) => n,
                    // Only integer64 travels as a JSON string (see `FhirInteger::Integer64`).
                    _ => integer.value_of_text(&item).ok_or_else(|| mismatch(&item, integer.expected()))?,
                };
                if matches!(self, ValueType::Int32(_)) && i32::try_from(n).is_err() {
                    return Err(format!("integer {n} does not fit a 32-bit FHIR integer"));
                }
                integer.check_range(n)?;
                Cell::Int(n)
            }
            ValueType::Decimal(p, s) => {
                let d = item.as_number().ok_or_else(|| mismatch(&item, "a decimal"))?.to_decimal();
                Cell::Dec(d.to_decimal128(p, s).map_err(|e| e.to_string())?)
            }
            ValueType::Date32 => {
                let text = item.as_str().ok_or_else(|| mismatch(&item, "a date"))?;
                // A dateTime in a date column keeps the calendar date as written.
                let date = Temporal::parse_date(text.get(..10).filter(|_| text.len() > 10).unwrap_or(text));
                Cell::Date(date.and_then(|d| d.to_date32()).ok_or_else(|| invalid(&item, "date"))?)
            }
            ValueType::Timestamp => {
                let text = item.as_str().ok_or_else(|| mismatch(&item, "a dateTime"))?;
                Cell::Timestamp(Temporal::timestamp_micros_of(text).ok_or_else(|| invalid(&item, "dateTime"))?)
            }
            ValueType::Time64 => {
                let text = item.as_str().ok_or_else(|| mismatch(&item, "a time"))?;
                Cell::Time(
                    Temporal::parse_time(text)
                        .and_then(|t| t.to_time_micros())
                        .ok_or_else(|| invalid(&item, "time"))?,
                )
            }
        })
    }
}

fn preview(item: &Item<'_>) -> String {
    let text = item.to_text();
    let short: String = text.chars().take(40).collect();
    if short.len() < text.len() {
        format!("'{short}…'")
    } else {
        format!("'{short}'")
    }
}

/// One typed output value, ready to append to an Arrow builder.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// SQL NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Int32 or Int64 (range already checked).
    Int(i64),
    /// Decimal128 mantissa at the column's scale.
    Dec(i128),
    /// Utf8 or dictionary text.
    Str(Cow<'a, str>),
    /// Date32: days since 1970-01-01.
    Date(i32),
    /// Timestamp: microseconds since the epoch, UTC.
    Timestamp(i64),
    /// Time64: microseconds since midnight.
    Time(i64),
    /// A collection column's values (possibly empty, which is not NULL).
    List(Vec<Cell<'a>>),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Item<'_> {
        Item::Str(Cow::Borrowed(text))
    }

    #[test]
    fn maps_fhir_types_and_tags() {
        assert_eq!(
            ValueType::for_column(Some("positiveInt"), Kind::Unknown, None),
            Ok(ValueType::Int32(FhirInteger::PositiveInt))
        );
        assert_eq!(ValueType::for_column(None, Kind::Boolean, None), Ok(ValueType::Boolean));
        assert_eq!(
            ValueType::for_column(Some("decimal"), Kind::Unknown, Some("decimal(10, 2)")),
            Ok(ValueType::Decimal(10, 2))
        );
        assert!(ValueType::for_column(None, Kind::Unknown, Some("BLOB")).is_err());
        assert_eq!(
            ValueType::for_column(Some("http://hl7.org/fhir/StructureDefinition/boolean"), Kind::Unknown, None),
            Ok(ValueType::Boolean)
        );
        assert_eq!(ValueType::for_column(Some("Quantity"), Kind::Unknown, None), Ok(ValueType::Utf8));
        assert!(ValueType::for_column(Some("Boolean"), Kind::Unknown, None)
            .unwrap_err()
            .contains("did you mean 'boolean'"));
        assert_eq!(ValueType::Timestamp.data_type(), DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
    }

    #[test]
    fn converts_dates_times_and_decimals() {
        assert_eq!(ValueType::Date32.convert(s("1970-01-02")), Ok(Cell::Date(1)));
        assert_eq!(ValueType::Date32.convert(s("1970-02")), Ok(Cell::Date(31)));
        assert_eq!(ValueType::Date32.convert(s("1970-01-02T23:00:00-05:00")), Ok(Cell::Date(1)));
        assert_eq!(ValueType::Timestamp.convert(s("1970-01-01T00:00:01.5Z")), Ok(Cell::Timestamp(1_500_000)));
        assert_eq!(ValueType::Time64.convert(s("00:01:00")), Ok(Cell::Time(60_000_000)));
        assert_eq!(ValueType::Timestamp.convert(s("yesterday")).unwrap_err(), "'yesterday' is not a valid dateTime");
        assert_eq!(
            ValueType::Timestamp.convert(s("2020-01-01T25:00:00Z")).unwrap_err(),
            "'2020-01-01T25:00:00Z' is not a valid dateTime"
        );
        assert_eq!(ValueType::Date32.convert(s("2020-13-01")).unwrap_err(), "'2020-13-01' is not a valid date");
        assert!(ValueType::Timestamp
            .convert(Item::Bool(true))
            .unwrap_err()
            .starts_with("expected a dateTime, found boolean"));
        let d = Item::decimal(crate::view::decimal::Decimal::parse("1.5").unwrap());
        assert_eq!(ValueType::Decimal(38, 9).convert(d.clone()), Ok(Cell::Dec(1_500_000_000)));
        let d = Item::decimal(crate::view::decimal::Decimal::parse("1.25").unwrap());
        assert!(ValueType::Decimal(10, 1).convert(d).is_err());
        assert!(ValueType::Int32(FhirInteger::Integer).convert(Item::Int(1 << 40)).is_err());
        assert_eq!(ValueType::Int64(FhirInteger::Integer64).convert(s("1099511627776")), Ok(Cell::Int(1 << 40)));
    }

    /// The column type a view declares, with an optional `ansi/type` tag.
    fn column(fhir_type: &str, ansi: Option<&str>) -> ValueType {
        ValueType::for_column(Some(fhir_type), Kind::Unknown, ansi).unwrap()
    }

    /// A JSON value as the view meets it in a document.
    fn json_item(json: &str, check: impl FnOnce(Item<'_>)) {
        let mut bytes = json.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        check(Item::Node(crate::view::Json::root(&tape)));
    }

    #[test]
    fn integer_columns_refuse_strings_as_decimal_and_boolean_ones_do() {
        for (fhir_type, ansi) in
            [("integer", None), ("unsignedInt", None), ("positiveInt", None), ("string", Some("BIGINT"))]
        {
            let int = column(fhir_type, ansi);
            json_item("3", |item| assert_eq!(int.convert(item), Ok(Cell::Int(3)), "{fhir_type}"));
            json_item(r#""3""#, |item| {
                assert_eq!(int.convert(item).unwrap_err(), "expected an integer, found string '3'", "{fhir_type}");
            });
            assert!(int.convert(s("3")).is_err(), "{fhir_type}: a computed string is no integer either");
        }
        json_item(r#""1.5""#, |item| assert!(column("decimal", None).convert(item).is_err()));
        json_item(r#""true""#, |item| assert!(column("boolean", None).convert(item).is_err()));
    }

    #[test]
    fn integer64_columns_take_r5s_string_of_digits() {
        for ansi in [None, Some("BIGINT")] {
            let long = column("integer64", ansi);
            let good = [
                (r#""9007199254740993""#, 9_007_199_254_740_993),
                (r#""-42""#, -42),
                (r#""+7""#, 7),
                (r#""0""#, 0),
                ("12", 12),
            ];
            for (json, value) in good {
                json_item(json, |item| assert_eq!(long.convert(item), Ok(Cell::Int(value)), "{json}"));
            }
            let bad = [
                r#""12a""#,
                r#""007""#,
                r#""-0""#,
                r#""""#,
                r#"" 1""#,
                r#""1e3""#,
                r#""9223372036854775808""#,
                "1.5",
                "true",
            ];
            for json in bad {
                json_item(json, |item| {
                    let error = long.convert(item).unwrap_err();
                    assert!(
                        error.starts_with("expected an integer64 (a JSON number or a string of digits), found"),
                        "{json}: {error}"
                    );
                });
            }
        }
    }

    #[test]
    fn unsigned_and_positive_int_columns_refuse_values_out_of_range() {
        let (unsigned, positive, integer) =
            (column("unsignedInt", None), column("positiveInt", None), column("integer", None));
        assert_eq!(unsigned.convert(Item::Int(0)), Ok(Cell::Int(0)));
        assert_eq!(
            unsigned.convert(Item::Int(-1)).unwrap_err(),
            "-1 is not a valid unsignedInt (FHIR requires 0 or more)"
        );
        assert_eq!(positive.convert(Item::Int(1)), Ok(Cell::Int(1)));
        assert_eq!(
            positive.convert(Item::Int(0)).unwrap_err(),
            "0 is not a valid positiveInt (FHIR requires 1 or more)"
        );
        assert!(positive.convert(Item::Int(-5)).is_err());
        assert_eq!(integer.convert(Item::Int(-1)), Ok(Cell::Int(-1)), "integer has no such bound");
        // The bound is the declared FHIR type's, whatever width an ansi/type tag gives it.
        let wide = column("http://hl7.org/fhir/StructureDefinition/unsignedInt", Some("BIGINT"));
        assert_eq!(wide.data_type(), DataType::Int64);
        assert!(wide.convert(Item::Int(-1)).is_err());
        assert_eq!(wide.convert(Item::Int(1 << 40)), Ok(Cell::Int(1 << 40)));
        assert!(column("integer", Some("BIGINT")).convert(Item::Int(-1)).is_ok());
    }
}
