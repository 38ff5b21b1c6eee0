//! The sink stage: writes record batches out.
//!
//! A sink takes the record batches of one table, all with the same schema, and writes them
//! in one [`Format`]: [`NdjsonWriter`] and [`CsvWriter`] render rows as text (the renderings
//! are listed in [`rows`]; the NDJSON writer also writes one JSON array), [`TableWriter`]
//! draws a table for people to read, [`ParquetWriter`] writes a zstd-compressed Parquet
//! file. Each implements [`BatchWriter`], and [`open_writer`] picks one for a format and a
//! destination.
//!
//! For a warehouse, [`partition`] splits a table's rows by its declared Hive partition,
//! [`parts`] writes them as Parquet part files under a memory budget into a staging area
//! ([`shared_parts`] lets the threads making the rows share those writers and encode the
//! row groups themselves), and [`commit`] publishes a finished staging area in one atomic
//! step; [`remote`] does the same for a warehouse in an object store (one PUT of a commit
//! record), and [`destination`] picks between the two.
//!
//! [`Format`]: crate::sink::Format
//! [`NdjsonWriter`]: crate::sink::NdjsonWriter
//! [`CsvWriter`]: crate::sink::CsvWriter
//! [`ParquetWriter`]: crate::sink::ParquetWriter
//! [`TableWriter`]: crate::sink::TableWriter
//! [`BatchWriter`]: crate::sink::BatchWriter
//! [`open_writer`]: crate::sink::open_writer
//! [`rows`]: crate::sink::rows

pub mod commit;
pub mod destination;
mod encode;
#[cfg(test)]
mod fixtures;
pub mod parquet;
pub mod partition;
pub mod parts;
pub mod remote;
pub mod rows;
pub mod shared_parts;
pub mod table;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;

pub use self::parquet::ParquetWriter;
pub use self::rows::{CsvWriter, NdjsonWriter};
pub use self::table::TableWriter;

/// An output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per line, keyed by column name, every column present.
    Ndjson,
    /// A header line, then one comma-separated line per row (RFC 4180 quoting).
    Csv,
    /// A Parquet file, zstd-compressed, with statistics.
    Parquet,
    /// One JSON array of objects (the NDJSON rows, comma-separated, one per line).
    Json,
    /// A table drawn with borders for people to read: every row is held until the end.
    Table,
}

impl Format {
    /// The format a file name implies by its extension (`.ndjson`/`.jsonl`, `.csv`,
    /// `.parquet`, `.json`), if any.
    #[must_use]
    pub fn from_path(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            "parquet" => Some(Format::Parquet),
            "json" => Some(Format::Json),
            _ => None,
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Format::Ndjson => "ndjson",
            Format::Csv => "csv",
            Format::Parquet => "parquet",
            Format::Json => "json",
            Format::Table => "table",
        })
    }
}

/// An error of the sink stage.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The output file could not be created.
    #[error("{}: cannot create: {source}", path.display())]
    Create {
        /// The output file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing a named file of a warehouse failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// An object-store warehouse could not be read or written.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Writing to the destination failed (a full disk, a closed pipe, ...).
    #[error("write failed: {0}")]
    Io(#[from] io::Error),
    /// Arrow rejected a batch.
    #[error(transparent)]
    Arrow(#[from] ArrowError),
    /// The Parquet writer failed.
    #[error(transparent)]
    Parquet(#[from] ::parquet::errors::ParquetError),
    /// A column's type has no rendering in the text formats.
    #[error("column {column:?}: type {data_type} cannot be written as text")]
    UnsupportedType {
        /// The column name.
        column: String,
        /// Its type, or the nested type that is not supported.
        data_type: DataType,
    },
    /// One value has no rendering, such as a date outside the years chrono can represent.
    #[error("column {column:?}, row {row}: {reason}")]
    Value {
        /// The column name.
        column: String,
        /// The row within its batch, from 0.
        row: usize,
        /// What is wrong with the value.
        reason: String,
    },
    /// A batch's columns differ from the schema the writer was created with.
    #[error("batch schema does not match the output's: expected {expected}, got {actual}")]
    SchemaMismatch {
        /// The writer's columns, as `name: type` pairs.
        expected: String,
        /// The batch's columns.
        actual: String,
    },
}

/// Writes a stream of record batches of one schema, then finishes the output.
///
/// Output that needs the whole stream (a Parquet footer, buffered text) is only complete
/// after [`BatchWriter::finish`]; dropping a writer without it leaves a truncated file.
pub trait BatchWriter {
    /// Writes one batch. Its columns must match the schema the writer was created with.
    ///
    /// # Errors
    ///
    /// [`SinkError::SchemaMismatch`] for a batch with other columns, and any error of the
    /// format or the destination.
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;

    /// Completes the output (header of an empty CSV, Parquet footer) and flushes it.
    ///
    /// # Errors
    ///
    /// Any error of the format or the destination.
    fn finish(self: Box<Self>) -> Result<(), SinkError>;
}

/// Opens a writer of `format` for batches of `schema`, writing to the file `output` or,
/// when `output` is `None`, to standard output.
///
/// A file is written under a temporary name in its folder and renamed over `output` only
/// by [`BatchWriter::finish`], so a run that fails or is killed never leaves a truncated
/// file where a complete one is expected (and never clobbers the previous one).
///
/// Standard output is accepted for every format; refusing binary Parquet on a terminal is
/// the caller's policy.
///
/// # Errors
///
/// [`SinkError::Create`] when the file cannot be created, and any error of the format while
/// starting the output.
pub fn open_writer(
    format: Format,
    schema: SchemaRef,
    output: Option<&Path>,
) -> Result<Box<dyn BatchWriter>, SinkError> {
    let Some(path) = output else { return new_writer(format, schema, io::stdout()) };
    let create_error = |source| SinkError::Create { path: path.to_path_buf(), source };
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".fhirhouse-").suffix(".partial");
    // Temporary files are private by default; the published file is an ordinary output.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let temp = builder.tempfile_in(folder).map_err(create_error)?;
    let file = temp.as_file().try_clone().map_err(create_error)?;
    let inner = new_writer(format, schema, file)?;
    Ok(Box::new(PublishOnFinish { inner, temp, path: path.to_path_buf() }))
}

/// Writes into a temporary file and renames it into place when the output is complete;
/// dropped unfinished, the temporary file is removed.
struct PublishOnFinish {
    inner: Box<dyn BatchWriter>,
    temp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl BatchWriter for PublishOnFinish {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.inner.write(batch)
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        let PublishOnFinish { inner, temp, path } = *self;
        inner.finish()?;
        temp.as_file().sync_all()?;
        temp.persist(&path).map_err(|e| SinkError::Create { path, source: e.error })?;
        Ok(())
    }
}

/// A writer of `format` over any byte sink. Each writer buffers what it writes, so `out`
/// needs no `BufWriter`.
///
/// # Errors
///
/// Any error of the format while starting the output.
pub fn new_writer<W: Write + Send + 'static>(
    format: Format,
    schema: SchemaRef,
    out: W,
) -> Result<Box<dyn BatchWriter>, SinkError> {
    Ok(match format {
        Format::Ndjson => Box::new(NdjsonWriter::new(out, schema)),
        Format::Csv => Box::new(CsvWriter::new(out, schema)),
        Format::Parquet => Box::new(ParquetWriter::try_new(out, schema)?),
        Format::Json => Box::new(NdjsonWriter::json_array(out, schema)),
        Format::Table => Box::new(TableWriter::new(out, schema)),
    })
}

/// Whether the text formats (NDJSON, JSON, CSV) have a rendering for values of `data_type`
/// (see [`rows`]); callers writing arbitrary query results cast other columns to text first.
#[must_use]
pub fn has_text_rendering(data_type: &DataType) -> bool {
    encode::ColumnEncoder::try_new(arrow::array::new_empty_array(data_type).as_ref()).is_ok()
}

/// Checks that `batch` has the columns of `schema`: same names and types, in order.
/// Nullability is not compared; a batch may well be stricter than its table.
fn check_schema(schema: &SchemaRef, batch: &RecordBatch) -> Result<(), SinkError> {
    let same = schema.fields().len() == batch.num_columns()
        && schema
            .fields()
            .iter()
            .zip(batch.schema_ref().fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        return Ok(());
    }
    let describe = |s: &SchemaRef| {
        s.fields().iter().map(|f| format!("{}: {}", f.name(), f.data_type())).collect::<Vec<_>>().join(", ")
    };
    Err(SinkError::SchemaMismatch { expected: describe(schema), actual: describe(batch.schema_ref()) })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]))
    }

    #[test]
    fn format_from_path_uses_extension() {
        let f = |p: &str| Format::from_path(Path::new(p));
        assert_eq!(f("out/x.parquet"), Some(Format::Parquet));
        assert_eq!(f("x.csv"), Some(Format::Csv));
        assert_eq!(f("x.jsonl"), Some(Format::Ndjson));
        assert_eq!(f("x.ndjson"), Some(Format::Ndjson));
        assert_eq!(f("x.json"), Some(Format::Json));
        assert_eq!(f("x.txt"), None);
        assert_eq!(f("x"), None);
    }

    #[test]
    fn mismatched_batch_is_rejected_by_every_format() {
        let other = Arc::new(Schema::new(vec![Field::new("id", DataType::Int32, true)]));
        let batch = RecordBatch::try_new(other, vec![Arc::new(Int32Array::from(vec![1])) as ArrayRef]).unwrap();
        for format in [Format::Ndjson, Format::Csv, Format::Parquet, Format::Json, Format::Table] {
            let mut w = new_writer(format, schema(), io::sink()).unwrap();
            let err = w.write(&batch).unwrap_err();
            assert!(matches!(err, SinkError::SchemaMismatch { .. }), "{format}: {err}");
        }
    }

    #[test]
    fn open_writer_creates_the_file_and_names_it_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(StringArray::from(vec!["a"])) as ArrayRef]).unwrap();
        let mut w = open_writer(Format::Ndjson, schema(), Some(&path)).unwrap();
        w.write(&batch).unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":\"a\"}\n");

        let bad = dir.path().join("missing/out.ndjson");
        let err = open_writer(Format::Ndjson, schema(), Some(&bad)).err().unwrap();
        assert!(err.to_string().contains("missing/out.ndjson"), "{err}");
    }

    #[test]
    fn an_unfinished_file_never_replaces_the_previous_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.ndjson");
        std::fs::write(&path, "previous\n").unwrap();
        let batch = RecordBatch::try_new(schema(), vec![Arc::new(StringArray::from(vec!["a"])) as ArrayRef]).unwrap();
        let mut w = open_writer(Format::Ndjson, schema(), Some(&path)).unwrap();
        w.write(&batch).unwrap();
        drop(w);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "previous\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers, [std::ffi::OsString::from("out.ndjson")], "the temporary file is removed");
    }
}
