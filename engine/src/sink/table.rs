//! A bordered text table for people to read (`--format table`).
//!
//! Cells use the CSV renderings of [`rows`](super::rows) (decimals without trailing zeros,
//! instants in UTC with `Z`, infinities and NaN as `inf`, `-inf`, `NaN`, binary as hex,
//! lists, structs and maps as JSON), so a value reads the same in every text format. Null
//! is `NULL`, so that it differs from an empty string. The table is drawn by
//! Arrow's pretty printer once all rows are in, so this writer holds the whole result: it
//! is meant for results a person reads, not for exports.

use std::io::Write;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;

use super::encode::{ColumnEncoder, Style, Unsupported};
use super::{check_schema, BatchWriter, SinkError};

/// How null cells are shown.
const NULL: &str = "NULL";

/// Renders batches as one text table, written by [`TableWriter::finish`].
///
/// ```text
/// +----+--------+------------+
/// | id | gender | birth_date |
/// +----+--------+------------+
/// | p1 | female | 1970-01-02 |
/// | p2 | NULL   | NULL       |
/// +----+--------+------------+
/// ```
pub struct TableWriter<W: Write> {
    out: W,
    schema: SchemaRef,
    /// The rows so far, every column rendered to text.
    rendered: Vec<RecordBatch>,
    text_schema: SchemaRef,
}

impl<W: Write> TableWriter<W> {
    /// A writer of batches of `schema` to `out`.
    pub fn new(out: W, schema: SchemaRef) -> Self {
        let text_schema = Arc::new(Schema::new(
            schema.fields().iter().map(|f| Field::new(f.name(), DataType::Utf8, true)).collect::<Vec<_>>(),
        ));
        Self { out, schema, rendered: Vec::new(), text_schema }
    }

    /// Renders one batch's rows and keeps them for the table.
    ///
    /// # Errors
    ///
    /// [`SinkError::SchemaMismatch`] for a batch with other columns,
    /// [`SinkError::UnsupportedType`] or [`SinkError::Value`] for a column or value that has
    /// no rendering.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        check_schema(&self.schema, batch)?;
        let columns = batch
            .columns()
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| render_column(column.as_ref(), field.name()))
            .collect::<Result<Vec<_>, _>>()?;
        self.rendered.push(RecordBatch::try_new(self.text_schema.clone(), columns)?);
        Ok(())
    }

    /// Draws the table (just the header when there were no rows), flushes and returns the
    /// destination.
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] when the destination fails.
    pub fn finish(mut self) -> Result<W, SinkError> {
        if self.rendered.is_empty() {
            self.rendered.push(RecordBatch::new_empty(self.text_schema.clone()));
        }
        let options = FormatOptions::default().with_null(NULL);
        let table = arrow::util::pretty::pretty_format_batches_with_options(&self.rendered, &options)?;
        writeln!(self.out, "{table}")?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One column as text, in its CSV rendering.
fn render_column(column: &dyn Array, name: &str) -> Result<ArrayRef, SinkError> {
    let encoder = ColumnEncoder::try_new(column)
        .map_err(|Unsupported(data_type)| SinkError::UnsupportedType { column: name.to_owned(), data_type })?;
    let mut text = StringBuilder::with_capacity(column.len(), column.len() * 8);
    let mut cell = Vec::new();
    for row in 0..column.len() {
        if encoder.is_null(row) {
            text.append_null();
            continue;
        }
        cell.clear();
        encoder.encode(row, Style::Text, &mut cell).map_err(|e| SinkError::Value {
            column: name.to_owned(),
            row,
            reason: e.0,
        })?;
        text.append_value(String::from_utf8_lossy(&cell));
    }
    Ok(Arc::new(text.finish()))
}

impl<W: Write> BatchWriter for TableWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        TableWriter::write(self, batch)
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        TableWriter::finish(*self).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{BinaryArray, Float64Array, Int32Array, StructArray};
    use arrow::datatypes::Fields;

    use super::super::fixtures::all_types_batch;
    use super::*;

    fn table(batches: &[RecordBatch], schema: SchemaRef) -> String {
        let mut w = TableWriter::new(Vec::new(), schema);
        for b in batches {
            w.write(b).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    #[test]
    fn cells_read_as_in_csv_and_null_as_null() {
        let batch = all_types_batch();
        let text = table(std::slice::from_ref(&batch), batch.schema());
        let lines: Vec<&str> = text.lines().collect();
        // Borders and header, three rows (the first string spans two lines), the last border.
        assert_eq!(lines.len(), 3 + 4 + 1, "{text}");
        assert!(lines[1].starts_with("| s "), "{text}");
        for wanted in ["| 1.5 ", "2015-02-07T11:28:17.239Z", "[\"x\",\"y\"]", "| NULL "] {
            assert!(text.contains(wanted), "{wanted} missing from\n{text}");
        }
    }

    #[test]
    fn no_rows_draws_the_header() {
        let schema = Arc::new(Schema::new(vec![Field::new("only", DataType::Int32, true)]));
        assert_eq!(table(&[], schema), "+------+\n| only |\n+------+\n+------+\n");
    }

    #[test]
    fn nested_values_are_json_and_floats_keep_inf_and_nan() {
        let inner = Arc::new(Int32Array::from(vec![7, 8, 9, 10])) as ArrayRef;
        let st = StructArray::new(Fields::from(vec![Field::new("n", DataType::Int32, true)]), vec![inner], None);
        let floats = Float64Array::from(vec![Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(f64::NAN), None]);
        let bytes = BinaryArray::from(vec![Some(b"ab".as_slice()), None, None, None]);
        let columns: Vec<(&str, ArrayRef)> = vec![("s", Arc::new(st)), ("f", Arc::new(floats)), ("b", Arc::new(bytes))];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let text = table(std::slice::from_ref(&batch), batch.schema());
        let rows: Vec<&str> = text.lines().skip(3).take(4).collect();
        assert_eq!(
            rows,
            [
                "| {\"n\":7}  | inf  | 6162 |",
                "| {\"n\":8}  | -inf | NULL |",
                "| {\"n\":9}  | NaN  | NULL |",
                "| {\"n\":10} | NULL | NULL |",
            ],
            "{text}"
        );
    }
}
