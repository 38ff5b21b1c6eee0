//! Scalar SQL functions fhirhouse adds to every session, beside the mapping tables:
//! `age_in_years(birth_date, on_date)`, the whole years between two dates as clinical
//! measures and risk models count them (the CQL `AgeInYearsAt`, CMS's age on February 1).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int32Array};
use arrow::datatypes::{DataType, Date32Type};
use datafusion::common::types::{logical_date, logical_string, NativeType};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionImplementation, ScalarUDF, Signature, SimpleScalarUDF, TypeSignatureClass,
    Volatility,
};

/// Whole years from `birth` to `on`: the year difference, less one when `on` falls before the
/// birthday in its year (someone born on 29 February is a year older on 1 March in a common
/// year). Negative when `on` is before `birth`.
#[must_use]
pub fn age_in_years(birth: chrono::NaiveDate, on: chrono::NaiveDate) -> i32 {
    use chrono::Datelike;
    let years = on.year() - birth.year();
    if (on.month(), on.day()) < (birth.month(), birth.day()) {
        years - 1
    } else {
        years
    }
}

/// `age_in_years(birth_date, on_date)`: [`age_in_years`] over dates; null when either date
/// is null.
///
/// Each argument is a `DATE`, or is cast to one: a date string (`'2025-12-31'`, as written
/// for a date elsewhere in SQL) or a timestamp, such as the warehouse's instants
/// (`effective_datetime`, its UTC date). Without that, the age at an observation or
/// encounter would need a cast an analyst does not expect for a function of dates.
pub(super) fn age_in_years_udf() -> ScalarUDF {
    let date = || {
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_date()),
            vec![TypeSignatureClass::Native(logical_string()), TypeSignatureClass::Timestamp],
            NativeType::Date,
        )
    };
    let signature = Signature::coercible(vec![date(), date()], Volatility::Immutable);
    let implementation: ScalarFunctionImplementation = Arc::new(|args: &[ColumnarValue]| {
        // The coercion leaves a `Date64` as it is.
        let args = args.iter().map(|a| a.cast_to(&DataType::Date32, None)).collect::<Result<Vec<_>, _>>()?;
        over_arrays(&args, |arrays| {
            let [birth, on] = [&arrays[0], &arrays[1]].map(|a| a.as_primitive::<Date32Type>());
            let ages: Int32Array = (0..birth.len())
                .map(|i| {
                    if birth.is_null(i) || on.is_null(i) {
                        return None;
                    }
                    Some(age_in_years(birth.value_as_date(i)?, on.value_as_date(i)?))
                })
                .collect();
            Arc::new(ages)
        })
    });
    ScalarUDF::from(SimpleScalarUDF::new_with_signature("age_in_years", signature, DataType::Int32, implementation))
}

/// Calls `f` with a scalar UDF's arguments as arrays of one length, and returns its array,
/// or a scalar when every argument was one (so that constant folding keeps working).
///
/// # Errors
///
/// An argument that cannot be made an array, or a result that cannot be made a scalar.
pub(super) fn over_arrays(
    args: &[ColumnarValue],
    f: impl Fn(&[ArrayRef]) -> ArrayRef,
) -> datafusion::error::Result<ColumnarValue> {
    let rows = args.iter().find_map(|a| match a {
        ColumnarValue::Array(a) => Some(a.len()),
        ColumnarValue::Scalar(_) => None,
    });
    let arrays: Vec<ArrayRef> =
        args.iter().map(|a| a.clone().into_array(rows.unwrap_or(1))).collect::<Result<_, _>>()?;
    let result = f(&arrays);
    Ok(match rows {
        Some(_) => ColumnarValue::Array(result),
        None => ColumnarValue::Scalar(datafusion::scalar::ScalarValue::try_from_array(&result, 0)?),
    })
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;

    fn date(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_year_is_complete_on_the_birthday() {
        assert_eq!(age_in_years(date("1950-12-31"), date("2025-12-31")), 75);
        assert_eq!(age_in_years(date("1951-01-01"), date("2025-12-31")), 74);
        assert_eq!(age_in_years(date("2007-12-31"), date("2025-12-31")), 18);
        assert_eq!(age_in_years(date("2008-01-01"), date("2025-12-31")), 17);
    }

    #[test]
    fn leap_day_birthdays_count_from_the_first_of_march_in_common_years() {
        assert_eq!(age_in_years(date("1960-02-29"), date("2025-02-28")), 64);
        assert_eq!(age_in_years(date("1960-02-29"), date("2025-03-01")), 65);
        assert_eq!(age_in_years(date("1960-02-29"), date("2024-02-29")), 64);
    }

    #[test]
    fn before_birth_is_negative() {
        assert_eq!(age_in_years(date("2025-06-01"), date("2025-01-01")), -1);
    }
}
