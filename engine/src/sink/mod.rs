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
/// when `output` is `None` or `-`, to standard output.
///
/// A regular file (new, or existing, also through a symbolic link) is written under a
/// temporary name in the folder of the file itself and renamed over it only by
/// [`BatchWriter::finish`], so a run that fails or is killed never leaves a truncated file
/// where a complete one is expected (and never clobbers the previous one). A symbolic link
/// stays a link (its target is replaced), and an existing file keeps its permissions.
///
/// Anything else that exists (a device such as `/dev/null`, a FIFO) is opened and written
/// directly: renaming a file over it would replace it, not write to it. Such an output is
/// not atomic, and opening a FIFO waits for its reader.
///
/// Errors name `output` as given; writing errors ([`SinkError::File`]) name it too.
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
    let path = match output {
        Some(path) if path.as_os_str() != "-" => path,
        _ => return new_writer(format, schema, io::stdout()),
    };
    let create_error = |source| SinkError::Create { path: path.to_path_buf(), source };
    let (file, staged) = match open_output(path).map_err(create_error)? {
        Output::Direct(file) => (file, None),
        Output::Staged(staged) => (staged.file.try_clone().map_err(create_error)?, Some(staged)),
    };
    let inner = new_writer(format, schema, file)?;
    Ok(Box::new(FileWriter { inner, staged, path: path.to_path_buf() }))
}

/// Where [`open_writer`] writes a file.
enum Output {
    /// An existing file that is not a regular one (a device, a FIFO), written in place.
    Direct(std::fs::File),
    /// A temporary file, renamed over the target when complete.
    Staged(Staged),
}

/// Opens the output for `path`: see [`open_writer`]. Errors carry no path; the caller
/// names `path` as the user gave it, never the temporary name.
fn open_output(path: &Path) -> io::Result<Output> {
    let target = resolve_links(path)?;
    let existing = match std::fs::metadata(&target) {
        Ok(meta) if meta.is_file() => Some(meta.permissions()),
        // A directory fails here with "Is a directory", before any rows are computed.
        Ok(_) => return Ok(Output::Direct(std::fs::OpenOptions::new().write(true).open(&target)?)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let folder = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staged = Staged::create(&folder, target)?;
    if let Some(permissions) = existing {
        staged.file.set_permissions(permissions)?;
    }
    Ok(Output::Staged(staged))
}

/// `path` with symbolic links followed (also a dangling one, to the file it names), so that
/// the temporary file is made next to the file that gets replaced, not next to the link.
fn resolve_links(path: &Path) -> io::Result<PathBuf> {
    let mut path = path.to_path_buf();
    // As the kernel does, give up on a chain of links this long: it is surely a loop.
    for _ in 0..40 {
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = std::fs::read_link(&path)?;
                path = match path.parent() {
                    Some(parent) => parent.join(link),
                    None => link,
                };
            }
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => return Ok(path),
        }
    }
    Err(io::Error::other("too many levels of symbolic links"))
}

/// A temporary `.fhirhouse-*.partial` file next to its target; removed when dropped
/// unless [`Staged::publish`] renamed it.
struct Staged {
    file: std::fs::File,
    temp: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staged {
    /// Creates a fresh temporary file in `folder`. Made here rather than with `tempfile`
    /// so that a failure is the plain OS error, without the temporary name in it.
    fn create(folder: &Path, target: PathBuf) -> io::Result<Staged> {
        use std::hash::{BuildHasher, Hasher};
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        // An ordinary output file (the umask applies), not a private temporary one.
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o644);
        let mut attempt = 0;
        loop {
            let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
            let temp = folder.join(format!(".fhirhouse-{:012x}.partial", random & 0xffff_ffff_ffff));
            match options.open(&temp) {
                Ok(file) => return Ok(Staged { file, temp, target, published: false }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
                Err(e) => return Err(e),
            }
        }
    }

    /// Makes the complete file durable and renames it over the target.
    fn publish(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        std::fs::rename(&self.temp, &self.target)?;
        self.published = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// A writer into a file: its errors name the file, and a staged file is renamed into place
/// when the output is complete (dropped unfinished, the temporary file is removed).
struct FileWriter {
    inner: Box<dyn BatchWriter>,
    staged: Option<Staged>,
    path: PathBuf,
}

/// Names the file in a plain I/O error, which otherwise says nothing of where.
fn naming(path: &Path) -> impl Fn(SinkError) -> SinkError + '_ {
    move |e| match e {
        SinkError::Io(source) => SinkError::File { path: path.to_path_buf(), source },
        other => other,
    }
}

impl BatchWriter for FileWriter {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.inner.write(batch).map_err(naming(&self.path))
    }

    fn finish(self: Box<Self>) -> Result<(), SinkError> {
        let FileWriter { inner, staged, path } = *self;
        inner.finish().map_err(naming(&path))?;
        match staged {
            Some(staged) => staged.publish().map_err(|source| SinkError::Create { path, source }),
            None => Ok(()),
        }
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

    fn batch() -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(StringArray::from(vec!["a"])) as ArrayRef]).unwrap()
    }

    /// Writes one CSV batch to `path`.
    fn write_csv(path: &Path) -> Result<(), SinkError> {
        let mut w = open_writer(Format::Csv, schema(), Some(path))?;
        w.write(&batch())?;
        w.finish()
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        names.sort();
        names
    }

    #[test]
    fn errors_name_the_path_once_and_never_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nodir/x.csv");
        let err = write_csv(&missing).unwrap_err().to_string();
        assert_eq!(err, format!("{}: cannot create: No such file or directory (os error 2)", missing.display()));

        // A folder is refused when the output is opened, not after the rows are computed.
        let err = open_writer(Format::Csv, schema(), Some(dir.path())).err().unwrap().to_string();
        assert_eq!(err, format!("{}: cannot create: Is a directory (os error 21)", dir.path().display()));
        assert!(names_in(dir.path()).is_empty(), "{:?}", names_in(dir.path()));
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_is_followed_and_stays_a_link() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (real_dir, links) = (dir.path().join("real"), dir.path().join("links"));
        std::fs::create_dir_all(&real_dir).unwrap();
        std::fs::create_dir_all(&links).unwrap();
        let real = real_dir.join("r.csv");
        std::fs::write(&real, "old\n").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        let link = links.join("link.csv");
        std::os::unix::fs::symlink("../real/r.csv", &link).unwrap();

        write_csv(&link).unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink(), "the link is kept");
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "id\na\n");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "an existing file keeps its permissions");
        assert_eq!(names_in(&links), ["link.csv"]);
        assert_eq!(names_in(&real_dir), ["r.csv"]);

        // A dangling link gets its target created.
        let dangling = links.join("new.csv");
        std::os::unix::fs::symlink("../real/new.csv", &dangling).unwrap();
        write_csv(&dangling).unwrap();
        assert!(std::fs::symlink_metadata(&dangling).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(real_dir.join("new.csv")).unwrap(), "id\na\n");
    }

    /// Makes a special file with the `mknod`/`mkfifo` commands; false when not allowed.
    #[cfg(unix)]
    fn make_node(command: &str, args: &[&str]) -> bool {
        std::process::Command::new(command).args(args).status().is_ok_and(|s| s.success())
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_or_a_device_is_written_in_place() {
        use std::os::unix::fs::FileTypeExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        assert!(make_node("mkfifo", &[fifo.to_str().unwrap()]), "mkfifo");
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
        };
        write_csv(&fifo).unwrap();
        // Checked first: a FIFO replaced by a file would leave the reader waiting forever.
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo(), "still a FIFO");
        assert_eq!(reader.join().unwrap(), "id\na\n");

        // A null device (needs root or CAP_MKNOD; skipped without).
        let null = dir.path().join("mynull");
        if make_node("mknod", &[null.to_str().unwrap(), "c", "1", "3"]) {
            write_csv(&null).unwrap();
            assert!(std::fs::metadata(&null).unwrap().file_type().is_char_device(), "still a device");
        }
        assert_eq!(names_in(dir.path()).iter().filter(|n| n.ends_with(".partial")).count(), 0);
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
