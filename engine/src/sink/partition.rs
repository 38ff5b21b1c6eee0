//! Hive partitioning of a table, declared in its ViewDefinition with a column tag.
//!
//! A view opts in by tagging one `date`, `dateTime` or `instant` column:
//!
//! ```json
//! { "name": "effective_datetime", "path": "...", "type": "dateTime",
//!   "tag": [{ "name": "fhirhouse/partition", "value": "year" }] }
//! ```
//!
//! Rows are then written under `<table>/effective_datetime_year=2019/`, and rows without a
//! value under `effective_datetime_year=0/`. Zero rather than Hive's
//! `__HIVE_DEFAULT_PARTITION__` because DataFusion cannot read that name as an integer key,
//! and an integer key is what lets `WHERE effective_datetime_year >= 2020` prune; FHIR has
//! no year 0, so the value is unambiguous. The partition key is derived, so the tagged
//! column itself stays in the files (null where it is null) and keeps its full precision. A year is coarse on purpose: it prunes well for the date filters
//! analysts write, and keeps the number of files per table in the tens, not thousands.

use std::collections::BTreeMap;

use arrow::array::{Array, ArrayRef, Date32Array, Int32Array, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::{DataType, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, NaiveDate};

use crate::view::CompiledView;

/// The tag name that declares a partition column.
pub const PARTITION_TAG: &str = "fhirhouse/partition";

/// The partition key of rows whose partition column is null.
pub const NULL_PARTITION: i32 = 0;

/// A partition key value: the year, or `None` for rows without a date.
pub type PartitionValue = Option<i32>;

/// How one table is partitioned: by the year of one date or timestamp column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    column: String,
    column_index: usize,
}

impl PartitionSpec {
    /// Reads the partition declaration of a view, if it has one.
    ///
    /// # Errors
    ///
    /// A message naming the column when the tag is on a column that is not a scalar date or
    /// timestamp, names another granularity than `year`, or appears on more than one column.
    pub fn of_view(view: &CompiledView) -> Result<Option<PartitionSpec>, String> {
        let mut tagged = Vec::new();
        collect_tagged_columns(view.definition(), &mut tagged);
        // The branches of a `unionAll` fill one column, so each may tag it, alike.
        tagged.sort_unstable();
        tagged.dedup();
        let (column, granularity) = match tagged.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            _ => return Err(format!("{PARTITION_TAG} tags on several columns; a table has one partition column")),
        };
        if granularity != "year" {
            return Err(format!(
                "column {column}: {PARTITION_TAG} value {granularity:?} is not supported (use \"year\")"
            ));
        }
        let schema = view.schema();
        let (column_index, field) =
            schema.column_with_name(&column).ok_or_else(|| format!("{PARTITION_TAG}: no column named {column}"))?;
        if !matches!(field.data_type(), DataType::Date32 | DataType::Timestamp(TimeUnit::Microsecond, _)) {
            return Err(format!(
                "column {column}: {PARTITION_TAG} needs a date, dateTime or instant column, not {}",
                field.data_type()
            ));
        }
        Ok(Some(PartitionSpec { column, column_index }))
    }

    /// The tagged date column the key is derived from, e.g. `effective_datetime`.
    #[must_use]
    pub fn column(&self) -> &str {
        &self.column
    }

    /// The name of the derived partition key, e.g. `effective_datetime_year`.
    #[must_use]
    pub fn key_name(&self) -> String {
        format!("{}_year", self.column)
    }

    /// The partition key as a column for readers (DataFusion's `table_partition_cols`).
    #[must_use]
    pub fn key_field(&self) -> (String, DataType) {
        (self.key_name(), DataType::Int32)
    }

    /// The directory of one partition, e.g. `effective_datetime_year=2019`.
    #[must_use]
    pub fn directory(&self, value: PartitionValue) -> String {
        format!("{}={}", self.key_name(), value.unwrap_or(NULL_PARTITION))
    }

    /// Splits a batch into one batch per partition, in key order, rows kept in order.
    ///
    /// # Panics
    ///
    /// When `batch` does not have the schema of the view the spec came from.
    #[must_use]
    pub fn split(&self, batch: &RecordBatch) -> Vec<(PartitionValue, RecordBatch)> {
        let years = years_of(batch.column(self.column_index));
        let first = years.first().copied().flatten();
        if years.iter().all(|y| *y == first) {
            return vec![(first, batch.clone())];
        }
        let mut groups: BTreeMap<PartitionValue, Vec<u32>> = BTreeMap::new();
        for (row, year) in years.into_iter().enumerate() {
            groups.entry(year).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(year, rows)| {
                let part = take_record_batch(batch, &UInt32Array::from(rows)).expect("indices are in bounds");
                (year, part)
            })
            .collect()
    }

    /// The partition key of every row of `batch` (a batch of the view the spec came from):
    /// the year, or [`NULL_PARTITION`] where the date is null, as the warehouse's readers
    /// see it.
    ///
    /// # Panics
    ///
    /// When `batch` does not have the schema of the view the spec came from.
    #[must_use]
    pub fn key_array(&self, batch: &RecordBatch) -> ArrayRef {
        let years = years_of(batch.column(self.column_index));
        std::sync::Arc::new(Int32Array::from_iter_values(years.into_iter().map(|y| y.unwrap_or(NULL_PARTITION))))
    }

    /// The schema readers see: the file columns plus the partition key.
    #[must_use]
    pub fn reader_schema(&self, file_schema: &Schema) -> Schema {
        let (name, data_type) = self.key_field();
        let mut fields: Vec<_> = file_schema.fields().iter().cloned().collect();
        fields.push(std::sync::Arc::new(arrow::datatypes::Field::new(name, data_type, true)));
        Schema::new(fields)
    }
}

/// The calendar year (UTC) of every value of a date or timestamp column.
fn years_of(column: &ArrayRef) -> Vec<Option<i32>> {
    if let Some(dates) = column.as_any().downcast_ref::<Date32Array>() {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
        return dates
            .iter()
            .map(|d| {
                d.and_then(|days| epoch.checked_add_signed(chrono::TimeDelta::days(days.into()))).map(|d| d.year())
            })
            .collect();
    }
    if let Some(times) = column.as_any().downcast_ref::<TimestampMicrosecondArray>() {
        return times.iter().map(|t| t.and_then(DateTime::from_timestamp_micros).map(|t| t.year())).collect();
    }
    vec![None; column.len()]
}

/// Every (column name, tag value) with the partition tag, anywhere in the select tree.
fn collect_tagged_columns(node: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match node {
        serde_json::Value::Object(map) => {
            if let (Some(name), Some(serde_json::Value::Array(tags))) =
                (map.get("name").and_then(|n| n.as_str()), map.get("tag"))
            {
                for tag in tags {
                    if tag.get("name").and_then(|n| n.as_str()) == Some(PARTITION_TAG) {
                        let value = tag.get("value").and_then(|v| v.as_str()).unwrap_or_default();
                        out.push((name.to_owned(), value.to_owned()));
                    }
                }
            }
            for key in ["select", "column", "unionAll"] {
                if let Some(child) = map.get(key) {
                    collect_tagged_columns(child, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| collect_tagged_columns(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(column_type: &str, tag_value: &str) -> CompiledView {
        CompiledView::from_json_value(&serde_json::json!({
            "resource": "Observation", "name": "obs",
            "select": [{"column": [
                {"name": "id", "path": "id", "type": "id"},
                {"name": "when", "path": "effective.ofType(dateTime)", "type": column_type,
                 "tag": [{"name": PARTITION_TAG, "value": tag_value}]}
            ]}]
        }))
        .unwrap()
    }

    #[test]
    fn union_branches_may_each_tag_their_shared_column() {
        // Before: tagging the column in every branch, the natural way to write it, was
        // refused as "tags on several columns".
        let branch = |path: &str| {
            serde_json::json!({"column": [
                {"name": "id", "path": "id", "type": "id"},
                {"name": "when", "path": path, "type": "dateTime",
                 "tag": [{"name": PARTITION_TAG, "value": "year"}]}]})
        };
        let union = |second_tag: &str| {
            let mut second = branch("issued");
            second["column"][1]["tag"][0]["value"] = second_tag.into();
            CompiledView::from_json_value(&serde_json::json!({
                "resource": "Observation", "name": "obs",
                "select": [{"unionAll": [branch("effective.ofType(dateTime)"), second]}]
            }))
            .unwrap()
        };
        let spec = PartitionSpec::of_view(&union("year")).unwrap().expect("partitioned");
        assert_eq!(spec.key_name(), "when_year");
        // Tags that disagree are still refused.
        assert!(PartitionSpec::of_view(&union("month")).is_err());
    }

    fn batch_of(view: &CompiledView, lines: &[&str]) -> RecordBatch {
        let mut builder = crate::view::ViewBatchBuilder::new(std::sync::Arc::new(view.clone()));
        for line in lines {
            let mut bytes = line.as_bytes().to_vec();
            builder.append(crate::view::Json::root(&simd_json::to_tape(&mut bytes).unwrap())).unwrap();
        }
        builder.finish()
    }

    #[test]
    fn splits_by_year_with_nulls_in_partition_zero() {
        let view = view("dateTime", "year");
        let spec = PartitionSpec::of_view(&view).unwrap().unwrap();
        assert_eq!(spec.key_name(), "when_year");
        let batch = batch_of(
            &view,
            &[
                r#"{"resourceType":"Observation","id":"a","effectiveDateTime":"2019-05-01T10:00:00Z"}"#,
                r#"{"resourceType":"Observation","id":"b","effectiveDateTime":"2020-01-01"}"#,
                r#"{"resourceType":"Observation","id":"c"}"#,
                r#"{"resourceType":"Observation","id":"d","effectiveDateTime":"2019"}"#,
            ],
        );
        let parts = spec.split(&batch);
        let summary: Vec<(PartitionValue, usize)> = parts.iter().map(|(k, b)| (*k, b.num_rows())).collect();
        assert_eq!(summary, [(None, 1), (Some(2019), 2), (Some(2020), 1)]);
        let keys = spec.key_array(&batch);
        assert_eq!(keys.as_any().downcast_ref::<Int32Array>().unwrap().values(), &[2019, 2020, 0, 2019]);
        assert_eq!(spec.directory(None), "when_year=0");
        assert_eq!(spec.directory(Some(2019)), "when_year=2019");
    }

    #[test]
    fn date_columns_partition_too_and_one_year_is_not_copied() {
        let view = view("date", "year");
        let spec = PartitionSpec::of_view(&view).unwrap().unwrap();
        let batch = batch_of(&view, &[r#"{"resourceType":"Observation","id":"a","effectiveDateTime":"1999-12-31"}"#]);
        assert_eq!(spec.split(&batch)[0].0, Some(1999));
    }

    #[test]
    fn bad_declarations_are_rejected_naming_the_column() {
        let err = PartitionSpec::of_view(&view("string", "year")).unwrap_err();
        assert!(err.contains("column when") && err.contains("date"), "{err}");
        let err = PartitionSpec::of_view(&view("dateTime", "month")).unwrap_err();
        assert!(err.contains("\"month\""), "{err}");
    }
}
