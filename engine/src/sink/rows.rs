//! Row-oriented text output: NDJSON and CSV.
//!
//! Both formats render each value the same way (one encoder serves both):
//!
//! | Arrow type | NDJSON | CSV cell |
//! |---|---|---|
//! | `Utf8`, `Dictionary(_, Utf8)` | `"text"` | `text` |
//! | `Boolean` | `true` | `true` |
//! | `Int32`, `Int64` | `42` | `42` |
//! | `Float64` | `0.5`, `"inf"`, `"-inf"`, `"NaN"` (JSON has no such numbers) | `0.5`, `inf` |
//! | `Decimal128(p, s)` | `1.5` (exact, no trailing zeros) | `1.5` |
//! | `Binary` | `"6162"` (hex) | `6162` |
//! | `Date32` | `"2015-02-07"` | `2015-02-07` |
//! | `Timestamp(_, Some(tz))` | `"2015-02-07T11:28:17.239Z"` | `2015-02-07T11:28:17.239Z` |
//! | `Time64` | `"12:34:56"`, `"12:34:56.500"` | `12:34:56` |
//! | `List<_>` | `["a","b"]`, `[]` | `"[""a"",""b""]"` (JSON text) |
//! | `Struct<a, b>` | `{"a":1,"b":"x"}` | `"{""a"":1,""b"":""x""}"` (JSON text) |
//! | `Map<Utf8, _>` | `{"k":1}` (other keys: `[{"key":1,"value":2}]`) | `"{""k"":1}"` |
//! | null | `null` | empty cell |
//!
//! Nested values hold their members in these same JSON renderings, to any depth. Timestamps
//! are UTC instants (the column's zone only adds the `Z`); the fraction of timestamps and
//! times is left out when zero and otherwise printed with the fewest of 3, 6 or 9 digits
//! that are exact, so millisecond FHIR instants keep their three digits. Types without a
//! rendering of their own (durations, intervals, ...) are Arrow's display form, as a string.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use super::encode::{json_key, ColumnEncoder, Style, Unsupported};
use super::{check_schema, BatchWriter, SinkError};

/// Rendered bytes are handed to the destination once this much has accumulated, so that a
/// large batch does not become one large allocation.
const FLUSH_AT: usize = 1 << 20;

/// The destination, the schema, and the bytes rendered but not yet written.
struct TextOutput<W: Write> {
    out: W,
    schema: SchemaRef,
    buf: Vec<u8>,
}

impl<W: Write> TextOutput<W> {
    fn new(out: W, schema: SchemaRef) -> Self {
        Self { out, schema, buf: Vec::with_capacity(FLUSH_AT) }
    }

    /// Checks `batch` and builds one encoder per column.
    fn encoders<'a>(&self, batch: &'a RecordBatch) -> Result<Vec<(&'a str, ColumnEncoder<'a>)>, SinkError> {
        check_schema(&self.schema, batch)?;
        batch
            .schema_ref()
            .fields()
            .iter()
            .zip(batch.columns())
            .map(|(field, column)| {
                let encoder = ColumnEncoder::try_new(column.as_ref()).map_err(|Unsupported(data_type)| {
                    SinkError::UnsupportedType { column: field.name().clone(), data_type }
                })?;
                Ok((field.name().as_str(), encoder))
            })
            .collect()
    }

    /// Appends one cell's rendering, naming the column and row if it has none.
    fn encode(
        &mut self,
        (column, encoder): &(&str, ColumnEncoder<'_>),
        row: usize,
        style: Style,
    ) -> Result<(), SinkError> {
        encoder.encode(row, style, &mut self.buf).map_err(|e| SinkError::Value {
            column: (*column).to_owned(),
            row,
            reason: e.0,
        })
    }

    /// Writes out what has been rendered once there is enough of it (or always, if `force`).
    fn drain(&mut self, force: bool) -> Result<(), SinkError> {
        if force || self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }

    fn finish(mut self) -> Result<W, SinkError> {
        self.drain(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Writes batches as newline-delimited JSON: one object per row, keys in column order,
/// every column present (`null` when null). See the [module docs](self) for renderings.
///
/// ```text
/// {"id":"p1","gender":"female","birth_date":"1970-01-02","family":["Doe"]}
/// {"id":"p2","gender":null,"birth_date":null,"family":[]}
/// ```
///
/// [`NdjsonWriter::json_array`] writes the same objects as one JSON array instead, one
/// object per line:
///
/// ```text
/// [{"id":"p1","gender":"female"},
/// {"id":"p2","gender":null}]
/// ```
pub struct NdjsonWriter<W: Write> {
    output: TextOutput<W>,
    /// Per column, the JSON-escaped name and colon: the part of every row that never changes.
    keys: Vec<Vec<u8>>,
    /// `Some(rows so far)` when the rows form one JSON array rather than lines.
    array: Option<u64>,
}

impl<W: Write> NdjsonWriter<W> {
    /// A writer of batches of `schema` to `out`. Output is buffered: `out` needs no
    /// `BufWriter`.
    pub fn new(out: W, schema: SchemaRef) -> Self {
        let keys = schema.fields().iter().map(|field| json_key(field.name())).collect();
        Self { output: TextOutput::new(out, schema), keys, array: None }
    }

    /// A writer of the same objects as one JSON array (`[` and `]` around them, a comma
    /// between rows, still one row per line); no rows is `[]`.
    pub fn json_array(out: W, schema: SchemaRef) -> Self {
        Self { array: Some(0), ..Self::new(out, schema) }
    }

    /// Writes one batch's rows.
    ///
    /// # Errors
    ///
    /// [`SinkError::SchemaMismatch`], [`SinkError::UnsupportedType`] or
    /// [`SinkError::Value`] for a batch that cannot be rendered, [`SinkError::Io`] when the
    /// destination fails.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let encoders = self.output.encoders(batch)?;
        for row in 0..batch.num_rows() {
            if let Some(rows) = &mut self.array {
                self.output.buf.extend_from_slice(if *rows == 0 { b"[" } else { b",\n" });
                *rows += 1;
            }
            self.output.buf.push(b'{');
            for (i, (key, encoder)) in self.keys.iter().zip(&encoders).enumerate() {
                if i > 0 {
                    self.output.buf.push(b',');
                }
                self.output.buf.extend_from_slice(key);
                self.output.encode(encoder, row, Style::Json)?;
            }
            self.output.buf.extend_from_slice(if self.array.is_some() { b"}" } else { b"}\n" });
            self.output.drain(false)?;
        }
        Ok(())
    }

    /// Writes out the buffered rows, flushes, and returns the destination.
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] when the destination fails.
    pub fn finish(mut self) -> Result<W, SinkError> {
        match self.array {
            Some(0) => self.output.buf.extend_from_slice(b"[]\n"),
            Some(_) => self.output.buf.extend_from_slice(b"]\n"),
            None => {}
        }
        self.output.finish()
    }
}

impl<W: Write> BatchWriter for NdjsonWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        NdjsonWriter::write(self, batch)
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        NdjsonWriter::finish(*self).map(drop)
    }
}

/// Writes batches as CSV: a header line of column names, then one line per row, `\n`
/// terminated, fields quoted (RFC 4180) only when they hold `,`, `"`, `\r` or `\n`.
/// Values are rendered as in NDJSON without the quotes around strings; nested values
/// (lists, structs, maps) are their JSON text; null is an empty field, as is the empty
/// string.
///
/// ```text
/// id,gender,birth_date,family
/// p1,female,1970-01-02,"[""Doe""]"
/// p2,,,[]
/// ```
pub struct CsvWriter<W: Write> {
    output: TextOutput<W>,
    header_written: bool,
    /// One cell's text, rendered before it is quoted into the output.
    cell: Vec<u8>,
}

impl<W: Write> CsvWriter<W> {
    /// A writer of batches of `schema` to `out`. Output is buffered: `out` needs no
    /// `BufWriter`. The header is written with the first batch, or by
    /// [`CsvWriter::finish`] when there was none.
    pub fn new(out: W, schema: SchemaRef) -> Self {
        Self { output: TextOutput::new(out, schema), header_written: false, cell: Vec::new() }
    }

    fn write_header(&mut self) {
        if self.header_written {
            return;
        }
        self.header_written = true;
        let schema = self.output.schema.clone();
        let names = schema.fields().iter().map(|f| f.name().as_bytes());
        self.write_record(names);
    }

    /// Appends one line of already rendered cells, quoting where needed.
    fn write_record<'c>(&mut self, cells: impl ExactSizeIterator<Item = &'c [u8]>) {
        // A line holding one empty field would read as a blank line, which readers skip.
        let lone = cells.len() == 1;
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                self.output.buf.push(b',');
            }
            write_csv_field(&mut self.output.buf, cell, lone);
        }
        self.output.buf.push(b'\n');
    }

    /// Writes one batch's rows (and the header before the first).
    ///
    /// # Errors
    ///
    /// As [`NdjsonWriter::write`].
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let encoders = self.output.encoders(batch)?;
        self.write_header();
        let lone = encoders.len() == 1;
        for row in 0..batch.num_rows() {
            for (i, encoder) in encoders.iter().enumerate() {
                if i > 0 {
                    self.output.buf.push(b',');
                }
                // Render into the output, then move it to `cell` only if it needs quoting:
                // the common unquoted cell is copied once.
                let start = self.output.buf.len();
                self.output.encode(encoder, row, Style::Text)?;
                if needs_quotes(&self.output.buf[start..], lone) {
                    self.cell.clear();
                    self.cell.extend(self.output.buf.drain(start..));
                    write_csv_field(&mut self.output.buf, &self.cell, lone);
                }
            }
            self.output.buf.push(b'\n');
            self.output.drain(false)?;
        }
        Ok(())
    }

    /// Writes the header if no batch came, writes out the buffered rows, flushes, and
    /// returns the destination.
    ///
    /// # Errors
    ///
    /// [`SinkError::Io`] when the destination fails.
    pub fn finish(mut self) -> Result<W, SinkError> {
        self.write_header();
        self.output.finish()
    }
}

impl<W: Write> BatchWriter for CsvWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        CsvWriter::write(self, batch)
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        CsvWriter::finish(*self).map(drop)
    }
}

fn needs_quotes(field: &[u8], lone: bool) -> bool {
    (lone && field.is_empty()) || field.iter().any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
}

/// Writes `field` as a CSV field, quoted and with `"` doubled when needed.
fn write_csv_field(out: &mut Vec<u8>, field: &[u8], lone: bool) {
    if !needs_quotes(field, lone) {
        out.extend_from_slice(field);
        return;
    }
    out.push(b'"');
    for &b in field {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        Array, ArrayRef, BinaryArray, Date32Array, Decimal128Array, FixedSizeListBuilder, Float64Array, Float64Builder,
        Int32Array, Int32Builder, ListArray, MapBuilder, StringArray, StringBuilder, StructArray,
        TimestampMillisecondArray,
    };
    use arrow::buffer::OffsetBuffer;
    use arrow::datatypes::{DataType, Field, Fields, Schema};

    use super::super::fixtures::all_types_batch;
    use super::*;

    fn ndjson(batches: &[RecordBatch]) -> String {
        let mut w = NdjsonWriter::new(Vec::new(), batches[0].schema());
        for b in batches {
            w.write(b).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    fn csv(schema: SchemaRef, batches: &[RecordBatch]) -> String {
        let mut w = CsvWriter::new(Vec::new(), schema);
        for b in batches {
            w.write(b).unwrap();
        }
        String::from_utf8(w.finish().unwrap()).unwrap()
    }

    const ALL_TYPES_NDJSON: &str = concat!(
        r#"{"s":"a \"quoted\", text\nline","code":"male","b":true,"i32":1,"i64":9007199254740993,"#,
        r#""dec":1.5,"date":"1970-01-01","ts":"2015-02-07T11:28:17.239Z","time":"12:34:56","#,
        r#""list_s":["x","y"],"list_dec":[1.5,null],"list_ts":["2015-02-07T11:28:17.239123Z"]}"#,
        "\n",
        r#"{"s":null,"code":null,"b":null,"i32":null,"i64":null,"dec":null,"date":null,"ts":null,"#,
        r#""time":null,"list_s":null,"list_dec":[],"list_ts":[]}"#,
        "\n",
        r#"{"s":"","code":"female","b":false,"i32":-7,"i64":-1,"dec":5,"date":"2015-02-07","#,
        r#""ts":"2015-02-07T11:28:17Z","time":"12:34:56.500","list_s":[],"list_dec":null,"#,
        r#""list_ts":null}"#,
        "\n",
    );

    #[test]
    fn ndjson_renders_every_type_nulls_and_empty_lists() {
        assert_eq!(ndjson(&[all_types_batch()]), ALL_TYPES_NDJSON);
    }

    #[test]
    fn json_array_holds_the_ndjson_objects() {
        let batch = all_types_batch();
        let mut w = NdjsonWriter::json_array(Vec::new(), batch.schema());
        w.write(&batch.slice(0, 1)).unwrap();
        w.write(&batch.slice(1, 2)).unwrap();
        let text = String::from_utf8(w.finish().unwrap()).unwrap();
        let array: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let lines: Vec<serde_json::Value> =
            ALL_TYPES_NDJSON.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(array, lines);
        assert_eq!(text.lines().count(), 3, "one row per line: {text}");

        let empty = NdjsonWriter::json_array(Vec::new(), batch.schema()).finish().unwrap();
        assert_eq!(empty, b"[]\n");
    }

    #[test]
    fn ndjson_lines_are_valid_json() {
        for line in ndjson(&[all_types_batch()]).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v.as_object().unwrap().len(), 12);
        }
    }

    #[test]
    fn ndjson_of_sliced_batches_matches_whole() {
        let batch = all_types_batch();
        let parts = [batch.slice(0, 1), batch.slice(1, 2)];
        assert_eq!(ndjson(&parts), ALL_TYPES_NDJSON);
        // Slices whose list offsets do not start at 0 render only their own rows.
        assert_eq!(ndjson(&[batch.slice(2, 1)]), ALL_TYPES_NDJSON.lines().nth(2).unwrap().to_owned() + "\n");
    }

    #[test]
    fn csv_renders_every_type_with_quoting() {
        let batch = all_types_batch();
        let expected = concat!(
            "s,code,b,i32,i64,dec,date,ts,time,list_s,list_dec,list_ts\n",
            "\"a \"\"quoted\"\", text\nline\",male,true,1,9007199254740993,1.5,1970-01-01,",
            "2015-02-07T11:28:17.239Z,12:34:56,\"[\"\"x\"\",\"\"y\"\"]\",\"[1.5,null]\",",
            "\"[\"\"2015-02-07T11:28:17.239123Z\"\"]\"\n",
            ",,,,,,,,,,[],[]\n",
            ",female,false,-7,-1,5,2015-02-07,2015-02-07T11:28:17Z,12:34:56.500,[],,\n",
        );
        assert_eq!(csv(batch.schema(), &[batch]), expected);
    }

    #[test]
    fn csv_without_batches_is_just_the_header() {
        assert_eq!(
            csv(all_types_batch().schema(), &[]).lines().collect::<Vec<_>>(),
            ["s,code,b,i32,i64,dec,date,ts,time,list_s,list_dec,list_ts"]
        );
    }

    #[test]
    fn csv_single_column_empty_cell_is_quoted() {
        let schema = Arc::new(Schema::new(vec![Field::new("a,b", DataType::Utf8, true)]));
        let col = Arc::new(StringArray::from(vec![Some(""), None, Some("x")])) as ArrayRef;
        let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        assert_eq!(csv(schema, &[batch]), "\"a,b\"\n\"\"\n\"\"\nx\n");
    }

    #[test]
    fn ndjson_escapes_column_names() {
        let schema = Arc::new(Schema::new(vec![Field::new("we\"ird", DataType::Date32, true)]));
        let col = Arc::new(Date32Array::from(vec![Some(-719_162)])) as ArrayRef;
        let batch = RecordBatch::try_new(schema, vec![col]).unwrap();
        assert_eq!(ndjson(&[batch]), "{\"we\\\"ird\":\"0001-01-01\"}\n");
    }

    /// A struct of a decimal and an instant, a list of structs, maps with string and with
    /// other keys, a fixed-size list of floats and binary: a full row and a null row.
    fn nested_batch() -> RecordBatch {
        let decimals = Decimal128Array::from(vec![Some(150), None]).with_precision_and_scale(10, 2).unwrap();
        let instants = TimestampMillisecondArray::from(vec![Some(1_423_308_497_239), None]).with_timezone("UTC");
        let s = StructArray::new(
            Fields::from(vec![
                Field::new("d", decimals.data_type().clone(), true),
                Field::new("t", instants.data_type().clone(), true),
            ]),
            vec![Arc::new(decimals), Arc::new(instants)],
            Some(vec![true, false].into()),
        );
        let a = StructArray::from(vec![(
            Arc::new(Field::new("a", DataType::Int32, true)),
            Arc::new(Int32Array::from(vec![1, 2])) as ArrayRef,
        )]);
        let item = Arc::new(Field::new_list_field(a.data_type().clone(), true));
        let ls = ListArray::new(item, OffsetBuffer::from_lengths([2, 0]), Arc::new(a), None);
        let mut m = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        m.keys().append_value("k");
        m.values().append_value(1);
        m.keys().append_value("x\"y");
        m.values().append_null();
        m.append(true).unwrap();
        m.append(false).unwrap();
        let mut mi = MapBuilder::new(None, Int32Builder::new(), StringBuilder::new());
        mi.keys().append_value(1);
        mi.values().append_value("a");
        mi.append(true).unwrap();
        mi.append(true).unwrap();
        let mut fl = FixedSizeListBuilder::new(Float64Builder::new(), 2);
        fl.values().append_slice(&[f64::INFINITY, f64::NAN]);
        fl.append(true);
        fl.values().append_value(0.5);
        fl.values().append_null();
        fl.append(true);
        let b = BinaryArray::from(vec![Some(b"ab".as_slice()), None]);
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("s", Arc::new(s)),
            ("ls", Arc::new(ls)),
            ("m", Arc::new(m.finish())),
            ("mi", Arc::new(mi.finish())),
            ("fl", Arc::new(fl.finish())),
            ("b", Arc::new(b)),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn nested_values_render_their_members_as_top_level_values() {
        let batch = nested_batch();
        let expected = concat!(
            r#"{"s":{"d":1.5,"t":"2015-02-07T11:28:17.239Z"},"ls":[{"a":1},{"a":2}],"m":{"k":1,"x\"y":null},"#,
            r#""mi":[{"key":1,"value":"a"}],"fl":["inf","NaN"],"b":"6162"}"#,
            "\n",
            r#"{"s":null,"ls":[],"m":null,"mi":[],"fl":[0.5,null],"b":null}"#,
            "\n",
        );
        assert_eq!(ndjson(std::slice::from_ref(&batch)), expected);
        assert_eq!(ndjson(&[batch.slice(1, 1)]), expected.lines().nth(1).unwrap().to_owned() + "\n");

        // A CSV cell holds the JSON text of a nested value.
        let text = csv(batch.schema(), &[batch]);
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("s,ls,m,mi,fl,b"));
        let cells = concat!(
            r#""{""d"":1.5,""t"":""2015-02-07T11:28:17.239Z""}","[{""a"":1},{""a"":2}]","#,
            r#""{""k"":1,""x\""y"":null}","[{""key"":1,""value"":""a""}]","[""inf"",""NaN""]",6162"#,
        );
        assert_eq!(lines.next(), Some(cells));
        assert_eq!(lines.next(), Some(",[],,[],\"[0.5,null]\","));
    }

    #[test]
    fn non_finite_floats_are_not_null() {
        let schema = Arc::new(Schema::new(vec![Field::new("f", DataType::Float64, true)]));
        let col =
            Arc::new(Float64Array::from(vec![Some(f64::INFINITY), Some(f64::NEG_INFINITY), Some(f64::NAN), None]));
        let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        assert_eq!(csv(schema, std::slice::from_ref(&batch)), "f\ninf\n-inf\nNaN\n\"\"\n");
        assert_eq!(ndjson(&[batch]), "{\"f\":\"inf\"}\n{\"f\":\"-inf\"}\n{\"f\":\"NaN\"}\n{\"f\":null}\n");
    }

    #[test]
    fn out_of_range_value_names_column_and_row() {
        let schema = Arc::new(Schema::new(vec![Field::new("d", DataType::Date32, true)]));
        let col = Arc::new(Date32Array::from(vec![Some(0), Some(i32::MAX)])) as ArrayRef;
        let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        let err = CsvWriter::new(Vec::new(), schema).write(&batch).unwrap_err();
        assert!(matches!(err, SinkError::Value { ref column, row: 1, .. } if column == "d"), "{err}");
    }
}
