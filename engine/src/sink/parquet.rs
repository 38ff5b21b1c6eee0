//! A single Parquet file from a stream of record batches.

use std::io::Write;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

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

    /// Starts a Parquet file for batches of `schema` on `out`.
    ///
    /// # Errors
    ///
    /// [`SinkError::Parquet`] for a schema Parquet cannot hold.
    pub fn try_new(out: W, schema: SchemaRef) -> Result<Self, SinkError> {
        let inner = ArrowWriter::try_new(out, schema.clone(), Some(Self::properties()))?;
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
    fn empty_stream_is_a_valid_file_with_the_schema() {
        let schema = all_types_batch().schema();
        let w = ParquetWriter::try_new(tempfile::tempfile().unwrap(), schema.clone()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(w.finish().unwrap()).unwrap();
        assert_eq!(reader.schema(), &schema);
        assert_eq!(reader.metadata().file_metadata().num_rows(), 0);
    }
}
