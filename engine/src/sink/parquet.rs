//! A single Parquet file from a stream of record batches.

use std::io::Write;

use std::collections::HashSet;
use std::hash::Hash;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Field, SchemaRef, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

/// Rows of a file's first batch sampled to decide each column's dictionary encoding (and to
/// size the dictionary of a column that keeps one): enough to tell codes from ids, few
/// enough to cost little next to encoding the column.
const DICTIONARY_SAMPLE_ROWS: usize = 256;

/// A column whose values take fewer bytes than this (as Parquet stores them before
/// compression, estimated from above) is stored uncompressed: see
/// [`ParquetWriter::properties_for`].
const SMALL_COLUMN_BYTES: usize = 4 << 10;

use super::{check_schema, BatchWriter, SinkError};

/// Writes batches to one Parquet file: zstd (level 1, parquet's default: most of the size
/// gain at close to snappy's speed), page and column-chunk statistics so that readers can
/// skip pages, and the Arrow schema embedded so that types such as `Dictionary` and
/// `Timestamp(.., "UTC")` read back exactly.
///
/// Rows are buffered into row groups by the underlying [`ArrowWriter`]; nothing readable
/// exists until [`ParquetWriter::finish`] writes the footer.
pub struct ParquetWriter<W: Write + Send> {
    schema: SchemaRef,
    inner: ArrowWriter<W>,
}

impl<W: Write + Send> ParquetWriter<W> {
    /// The writer properties used for every file.
    #[must_use]
    pub fn properties() -> WriterProperties {
        WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .set_statistics_enabled(EnabledStatistics::Page)
            .build()
    }

    /// The writer properties for a file whose rows are like `samples` (batches of one
    /// schema): those of [`properties`](Self::properties), with two changes per column.
    ///
    /// - Dictionary encoding is off for the text and timestamp columns whose values in the
    ///   first batch are mostly distinct (ids, references, instants). A dictionary of
    ///   unique values costs a hash lookup per value and makes the file larger; Parquet's
    ///   own fallback only starts once the dictionary page is full, which the files of a
    ///   partition often never reach.
    /// - A column (or list of scalars) with no value in any of the batches, or whose
    ///   values there take under 4 KiB as Parquet stores them before compression, is not
    ///   compressed. parquet's writer creates a zstd compressor and decompressor for every
    ///   compressed column of every row group; for such a column that costs more than
    ///   encoding it, to save at most a few KiB (an empty column's pages hold only
    ///   definition levels, which zstd does not shrink; a dictionary of one value and its
    ///   run of indexes come out of zstd larger than they went in). The size is estimated
    ///   from above, except for the text and timestamp columns that keep their
    ///   dictionary, whose dictionary is extrapolated from the first batch's first 256
    ///   values: a column whose values only start to vary after them may be stored
    ///   uncompressed at more than 4 KiB (still correct, only larger).
    ///   Most column chunks of a year-partitioned warehouse are this small: at 2,000
    ///   patients a third are empty, and most of the rest hold a few hundred rows of an
    ///   early year. The samples are a file's first row group, which is this small only
    ///   in a file of one row group; should more follow, they keep the setting (still
    ///   correct, only larger).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use arrow::array::{ArrayRef, StringArray};
    /// use arrow::record_batch::RecordBatch;
    /// use fhirhouse::sink::ParquetWriter;
    /// use parquet::basic::Compression;
    /// use parquet::schema::types::ColumnPath;
    ///
    /// let ids: StringArray = (0..1000).map(|i| Some(format!("observation-{i}"))).collect();
    /// let status = StringArray::from(vec!["final"; 1000]);
    /// let note = StringArray::new_null(1000);
    /// let batch = RecordBatch::try_from_iter([
    ///     ("id", Arc::new(ids) as ArrayRef),
    ///     ("status", Arc::new(status) as ArrayRef),
    ///     ("note", Arc::new(note) as ArrayRef),
    /// ])
    /// .unwrap();
    /// let properties = ParquetWriter::<Vec<u8>>::properties_for(&[batch.clone()]);
    /// let compression = |column: &str| properties.compression(&ColumnPath::from(column));
    /// assert!(matches!(compression("id"), Compression::ZSTD(_)));
    /// // 9 KB of Arrow text, but a dictionary of one value and 1,000 indexes in Parquet.
    /// assert_eq!(compression("status"), Compression::UNCOMPRESSED);
    /// assert_eq!(compression("note"), Compression::UNCOMPRESSED, "no value");
    /// // The first 100 rows alone are small enough to store as they are.
    /// let properties = ParquetWriter::<Vec<u8>>::properties_for(&[batch.slice(0, 100)]);
    /// assert_eq!(properties.compression(&ColumnPath::from("id")), Compression::UNCOMPRESSED);
    /// ```
    #[must_use]
    pub fn properties_for(samples: &[RecordBatch]) -> WriterProperties {
        let mut builder = Self::properties().into_builder();
        let Some(first) = samples.first() else { return builder.build() };
        for (index, field) in first.schema().fields().iter().enumerate() {
            let path = || ColumnPath::from(field.name().as_str());
            let sample = ValueSample::of(first.column(index).as_ref());
            let dictionary = !sample.as_ref().is_some_and(ValueSample::mostly_distinct);
            if !dictionary {
                builder = builder.set_column_dictionary_enabled(path(), false);
            }
            let Some(leaf) = leaf_path(field) else { continue };
            let columns = || samples.iter().map(|batch| batch.column(index));
            let empty = || columns().all(|column| column.null_count() == column.len());
            let bytes = || {
                let plain = columns().map(|column| encoded_size_bound(column.as_ref())).fold(0, usize::saturating_add);
                match &sample {
                    Some(sample) if dictionary => plain.min(sample.dictionary_size_estimate(columns())),
                    _ => plain,
                }
            };
            if empty() || bytes() < SMALL_COLUMN_BYTES {
                builder = builder.set_column_compression(leaf, Compression::UNCOMPRESSED);
            }
        }
        builder.build()
    }

    /// Starts a Parquet file for batches of `schema` on `out`.
    ///
    /// # Errors
    ///
    /// [`SinkError::Parquet`] for a schema Parquet cannot hold.
    pub fn try_new(out: W, schema: SchemaRef) -> Result<Self, SinkError> {
        Self::try_new_with(out, schema, Self::properties())
    }

    /// Starts a Parquet file with the given properties (see
    /// [`properties_for`](Self::properties_for)).
    ///
    /// # Errors
    ///
    /// [`SinkError::Parquet`] for a schema Parquet cannot hold.
    pub fn try_new_with(out: W, schema: SchemaRef, properties: WriterProperties) -> Result<Self, SinkError> {
        let inner = ArrowWriter::try_new(out, schema.clone(), Some(properties))?;
        Ok(Self { schema, inner })
    }

    /// Buffers one batch, writing a row group when enough rows are buffered.
    ///
    /// # Errors
    ///
    /// [`SinkError::SchemaMismatch`] for a batch with other columns, or a Parquet or I/O
    /// error.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        check_schema(&self.schema, batch)?;
        self.inner.write(batch)?;
        Ok(())
    }

    /// Ends the row group in progress: encodes the rows written since the last one and writes
    /// them out, flushed to the destination. Until the next [`write`](Self::write) the
    /// writer then holds no column writers (nor their compression contexts), only the
    /// metadata of the row groups written.
    ///
    /// # Errors
    ///
    /// A Parquet or I/O error.
    pub fn flush_row_group(&mut self) -> Result<(), SinkError> {
        self.inner.flush()?;
        self.inner.sync()?;
        Ok(())
    }

    /// Column chunks (row groups × leaf columns) written so far: their metadata is held
    /// until [`finish`](Self::finish) writes the footer.
    #[must_use]
    pub fn flushed_column_chunks(&self) -> usize {
        self.inner.flushed_row_groups().iter().map(|group| group.num_columns()).sum()
    }

    /// The destination. Writing to it directly would corrupt the file; it is there for
    /// destinations that need a call between row groups (after
    /// [`flush_row_group`](Self::flush_row_group), everything written has reached it).
    pub fn get_mut(&mut self) -> &mut W {
        self.inner.inner_mut()
    }

    /// Writes the last row group and the footer, flushes, and returns the destination.
    ///
    /// # Errors
    ///
    /// A Parquet or I/O error.
    pub fn finish(self) -> Result<W, SinkError> {
        let mut out = self.inner.into_inner()?;
        out.flush()?;
        Ok(out)
    }
}

/// The Parquet path of a column's one leaf: the column's name, or `name.list.item` for a
/// list of scalars (how parquet's writer names a list's levels). `None` for other nested
/// columns, which keep the default compression.
fn leaf_path(field: &Field) -> Option<ColumnPath> {
    let name = field.name().clone();
    match field.data_type() {
        DataType::List(item) if !item.data_type().is_nested() => {
            Some(ColumnPath::new(vec![name, "list".to_owned(), item.name().clone()]))
        }
        data_type if !data_type.is_nested() => Some(ColumnPath::new(vec![name])),
        _ => None,
    }
}

/// About how many bytes a column's values take in Parquet before compression, or more.
/// Its memory size, except for two kinds of column that Parquet stores in much less:
/// - a dictionary column (codes): its distinct values and each row's index in as few bits
///   as they need; a thousand rows of a handful of codes take a few hundred bytes there,
///   against 4 KB of Arrow keys;
/// - a list column: its items, and each row's levels in two bits or less instead of an
///   Arrow offset of four bytes.
fn encoded_size_bound(column: &dyn Array) -> usize {
    if let Some(list) = column.as_list_opt::<i32>() {
        let offsets = list.value_offsets();
        let (first, last) = (offsets[0] as usize, offsets[offsets.len() - 1] as usize);
        let items = list.values().slice(first, last - first);
        return encoded_size_bound(items.as_ref()).saturating_add(list.len().div_ceil(4));
    }
    if let Some(dictionary) = column.as_any_dictionary_opt() {
        let bits = usize::BITS - dictionary.values().len().leading_zeros();
        let indexes = (column.len() * bits as usize).div_ceil(8);
        let values = dictionary.values().to_data().get_slice_memory_size().unwrap_or(usize::MAX);
        return values.saturating_add(indexes);
    }
    column.to_data().get_slice_memory_size().unwrap_or(usize::MAX)
}

/// The length prefix of each value of a `BYTE_ARRAY` column stored plain (as a dictionary
/// page stores its values).
const BYTE_ARRAY_LENGTH_BYTES: usize = 4;

/// A fast hash for the sample (SipHash would cost more than the decision saves on small files).
type FastHash = foldhash::fast::FixedState;

/// The first [`DICTIONARY_SAMPLE_ROWS`] values of a text or timestamp column (other types
/// keep Parquet's defaults): how many are present, how many distinct, and the distinct
/// values' bytes as a Parquet dictionary page stores them.
struct ValueSample {
    present: usize,
    distinct: usize,
    distinct_bytes: usize,
}

impl ValueSample {
    fn of(column: &dyn Array) -> Option<ValueSample> {
        let rows = column.len().min(DICTIONARY_SAMPLE_ROWS);
        let present = (0..rows).filter(|&i| column.is_valid(i));
        match column.data_type() {
            DataType::Utf8 => {
                let text = column.as_string::<i32>();
                Some(Self::of_values(present.map(|i| text.value(i)), |v| v.len() + BYTE_ARRAY_LENGTH_BYTES))
            }
            DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, _) => {
                let times = column.as_primitive::<TimestampMicrosecondType>();
                Some(Self::of_values(present.map(|i| times.value(i)), |_| size_of::<i64>()))
            }
            _ => None,
        }
    }

    /// The sample of `values` (the present ones), each stored in `stored_bytes` in a
    /// dictionary page.
    fn of_values<T: Hash + Eq>(values: impl Iterator<Item = T>, stored_bytes: impl Fn(&T) -> usize) -> ValueSample {
        let mut present = 0;
        let distinct: HashSet<T, FastHash> = values.inspect(|_| present += 1).collect();
        let distinct_bytes = distinct.iter().map(stored_bytes).sum();
        ValueSample { present, distinct: distinct.len(), distinct_bytes }
    }

    /// Whether most values differ from each other: such a column is stored without a
    /// dictionary. Below a few dozen values either choice costs next to nothing.
    fn mostly_distinct(&self) -> bool {
        self.present >= 32 && self.distinct * 2 > self.present
    }

    /// About how many bytes Parquet's dictionary encoding stores `columns` (the column of
    /// every sample batch) in before compression: the dictionary page, each present value's
    /// index in as few bits as the dictionary needs, and a definition level a row. The
    /// dictionary is extrapolated from the sample, as if every further
    /// [`DICTIONARY_SAMPLE_ROWS`] values brought as many new ones as the first did: an
    /// overestimate for the codes, systems and references a column repeats, whose
    /// dictionary stays small (a system URL in every row of a partition file takes about
    /// a hundred bytes, where the text would take 16 a row). `usize::MAX` without a sampled
    /// value to go by.
    fn dictionary_size_estimate<'a>(&self, columns: impl Iterator<Item = &'a ArrayRef>) -> usize {
        if self.present == 0 {
            return usize::MAX;
        }
        let (rows, present) = columns.fold((0, 0), |(rows, present), column| {
            (rows + column.len(), present + column.len() - column.null_count())
        });
        let scale = present.div_ceil(self.present);
        let distinct = present.min(self.distinct.saturating_mul(scale));
        let bits = (usize::BITS - distinct.leading_zeros()) as usize;
        self.distinct_bytes
            .saturating_mul(scale)
            .saturating_add((present * bits).div_ceil(8))
            .saturating_add(rows.div_ceil(8))
    }
}

impl<W: Write + Send> BatchWriter for ParquetWriter<W> {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        ParquetWriter::write(self, batch)
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        ParquetWriter::finish(*self).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Compression;

    use super::super::fixtures::all_types_batch;
    use super::*;

    #[test]
    fn round_trips_every_type_with_zstd_and_statistics() {
        let batch = all_types_batch();
        let mut w = ParquetWriter::try_new(tempfile::tempfile().unwrap(), batch.schema()).unwrap();
        w.write(&batch.slice(0, 2)).unwrap();
        w.write(&batch.slice(2, 1)).unwrap();
        let file = w.finish().unwrap();

        let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let row_group = &reader.metadata().row_groups()[0];
        for column in row_group.columns() {
            assert!(matches!(column.compression(), Compression::ZSTD(_)));
            assert!(column.statistics().is_some(), "{}", column.column_path());
        }
        let read: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        let read = arrow::compute::concat_batches(&read[0].schema(), &read).unwrap();
        assert_eq!(read.schema(), batch.schema());
        assert_eq!(read, batch);
    }

    #[test]
    fn dictionaries_are_kept_for_repeated_values_and_dropped_for_distinct_ones() {
        use arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
        use parquet::basic::Encoding;
        let ids: StringArray = (0..500).map(|i| Some(format!("id-{i}"))).collect();
        let codes: StringArray = (0..500).map(|i| Some(["final", "amended"][i % 2])).collect();
        let times = TimestampMicrosecondArray::from((0..500).map(|i| i * 1_000_000).collect::<Vec<i64>>());
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as ArrayRef),
            ("status", Arc::new(codes) as ArrayRef),
            ("at", Arc::new(times) as ArrayRef),
        ])
        .unwrap();
        let properties = ParquetWriter::<Vec<u8>>::properties_for(std::slice::from_ref(&batch));
        let mut w = ParquetWriter::try_new_with(Vec::new(), batch.schema(), properties).unwrap();
        w.write(&batch).unwrap();
        let bytes = bytes::Bytes::from(w.finish().unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        let columns = reader.metadata().row_groups()[0].columns();
        let dictionary = |i: usize| columns[i].dictionary_page_offset().is_some();
        assert_eq!((dictionary(0), dictionary(1), dictionary(2)), (false, true, false));
        assert!(columns[1].encodings().any(|e| e == Encoding::RLE_DICTIONARY));
        let read: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(read, vec![batch]);
    }

    #[test]
    fn columns_too_small_to_pay_for_compression_are_stored_uncompressed() {
        use arrow::array::{ArrayRef, BooleanArray, DictionaryArray, ListBuilder, StringArray, StringBuilder};
        use arrow::datatypes::Int32Type;
        // 2,000 rows in two samples. Distinct ids take 30 KB, and so do the lists of
        // `tags`: zstd. Flags take 500 bytes; notes have no value at all (8 KB of offsets);
        // three codes take 8 KB of Arrow keys but 500 bytes of 2-bit indexes in Parquet; the
        // lists of `codes` hold one value: all four stored as they are. A system URL in
        // every row is 40 KB of Arrow text, but a dictionary of one value in Parquet: as it
        // is. A hundred distinct displays repeated make a dictionary of 3 KB and 2 KB of
        // indexes (and are estimated larger, from the first 256 rows): zstd.
        let rows = 2000;
        let ids: StringArray = (0..rows).map(|i| Some(format!("patient-{i:05}"))).collect();
        let system = StringArray::from(vec!["http://loinc.org"; rows]);
        let displays: StringArray =
            (0..rows).map(|i| Some(format!("display of the code number {:03}", i % 100))).collect();
        let flags = BooleanArray::from_iter((0..rows).map(|i| Some(i % 3 == 0)));
        let status: DictionaryArray<Int32Type> = (0..rows).map(|i| ["final", "amended", "draft"][i % 3]).collect();
        let mut codes = ListBuilder::new(StringBuilder::new());
        codes.append_value([Some("a")]);
        (1..rows).for_each(|_| codes.append_null());
        let mut tags = ListBuilder::new(StringBuilder::new());
        (0..rows).for_each(|i| tags.append_value([Some(format!("tag-{i}"))]));
        let batch = RecordBatch::try_from_iter([
            ("id", Arc::new(ids) as ArrayRef),
            ("flag", Arc::new(flags) as ArrayRef),
            ("note", Arc::new(StringArray::new_null(rows)) as ArrayRef),
            ("status", Arc::new(status) as ArrayRef),
            ("codes", Arc::new(codes.finish()) as ArrayRef),
            ("tags", Arc::new(tags.finish()) as ArrayRef),
            ("system", Arc::new(system) as ArrayRef),
            ("display", Arc::new(displays) as ArrayRef),
        ])
        .unwrap();
        let schema = batch.schema();
        let samples = [batch.slice(0, 1500), batch.slice(1500, 500)];
        let properties = ParquetWriter::<Vec<u8>>::properties_for(&samples);
        let mut w = ParquetWriter::try_new_with(Vec::new(), schema.clone(), properties).unwrap();
        samples.iter().for_each(|b| w.write(b).unwrap());
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(w.finish().unwrap())).unwrap();
        let stored: Vec<(String, bool)> = reader.metadata().row_groups()[0]
            .columns()
            .iter()
            .map(|c| (c.column_path().string(), c.compression() == Compression::UNCOMPRESSED))
            .collect();
        let expected = [
            ("id", false),
            ("flag", true),
            ("note", true),
            ("status", true),
            ("codes.list.item", true),
            ("tags.list.item", false),
            ("system", true),
            ("display", false),
        ];
        assert_eq!(stored, expected.map(|(path, plain)| (path.to_owned(), plain)));
        let read: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(arrow::compute::concat_batches(&schema, &read).unwrap(), batch);
    }

    #[test]
    fn empty_stream_is_a_valid_file_with_the_schema() {
        let schema = all_types_batch().schema();
        let w = ParquetWriter::try_new(tempfile::tempfile().unwrap(), schema.clone()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(w.finish().unwrap()).unwrap();
        assert_eq!(reader.schema(), &schema);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }
}
