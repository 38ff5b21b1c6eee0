//! Hand-built batches shared by the sink tests.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Int32Array, Int64Array, ListBuilder,
    StringArray, StringBuilder, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use arrow::array::{Decimal128Builder, TimestampMicrosecondBuilder};
use arrow::datatypes::{Int32Type, Schema};
use arrow::record_batch::RecordBatch;

/// 2015-02-07T11:28:17Z in microseconds.
const INSTANT: i64 = 1_423_308_497_000_000;
/// 1.5 as `Decimal128(38, 9)`.
const ONE_AND_A_HALF: i128 = 1_500_000_000;

/// Three rows covering every type the views produce: a full row, an all-null row (with
/// empty, not null, lists in two list columns), and a row of edge values.
pub(super) fn all_types_batch() -> RecordBatch {
    let mut list_s = ListBuilder::new(StringBuilder::new());
    list_s.append_value([Some("x"), Some("y")]);
    list_s.append_null();
    list_s.append(true);

    let dec_type = Decimal128Builder::new().with_precision_and_scale(38, 9).unwrap();
    let mut list_dec = ListBuilder::new(dec_type);
    list_dec.append_value([Some(ONE_AND_A_HALF), None]);
    list_dec.append(true);
    list_dec.append_null();

    let ts_type = TimestampMicrosecondBuilder::new().with_timezone("UTC");
    let mut list_ts = ListBuilder::new(ts_type);
    list_ts.append_value([Some(INSTANT + 239_123)]);
    list_ts.append(true);
    list_ts.append_null();

    let columns: Vec<(&str, ArrayRef)> = vec![
        ("s", Arc::new(StringArray::from(vec![Some("a \"quoted\", text\nline"), None, Some("")]))),
        ("code", Arc::new([Some("male"), None, Some("female")].into_iter().collect::<DictionaryArray<Int32Type>>())),
        ("b", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]))),
        ("i32", Arc::new(Int32Array::from(vec![Some(1), None, Some(-7)]))),
        ("i64", Arc::new(Int64Array::from(vec![Some(9_007_199_254_740_993), None, Some(-1)]))),
        (
            "dec",
            Arc::new(
                Decimal128Array::from(vec![Some(ONE_AND_A_HALF), None, Some(5_000_000_000)])
                    .with_precision_and_scale(38, 9)
                    .unwrap(),
            ),
        ),
        ("date", Arc::new(Date32Array::from(vec![Some(0), None, Some(16_473)]))),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from(vec![Some(INSTANT + 239_000), None, Some(INSTANT)])
                    .with_timezone("UTC"),
            ),
        ),
        ("time", Arc::new(Time64MicrosecondArray::from(vec![Some(45_296_000_000), None, Some(45_296_500_000)]))),
        ("list_s", Arc::new(list_s.finish())),
        ("list_dec", Arc::new(list_dec.finish())),
        ("list_ts", Arc::new(list_ts.finish())),
    ];
    let fields: Vec<_> = columns
        .iter()
        .map(|(name, array)| arrow::datatypes::Field::new(*name, array.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, a)| a).collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
}
