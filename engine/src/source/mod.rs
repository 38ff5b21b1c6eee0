//! The source stage: finds input files and yields raw NDJSON lines with their file and line number.
//!
//! A FHIR Bulk Data export is a folder of NDJSON files, one resource per line, often one
//! file per resource type and sometimes gzip-compressed, described by a `manifest.json`.
//! [`open_export`] resolves a folder, a manifest or an object-store URL into an [`Export`]
//! whose files are [`Location`]s (local paths or objects) with the resource type each declares
//! (by the manifest, or by its name: [`type_from_name`]), [`discover_inputs`] turns
//! the paths a user named into the ordered list of files to read, [`LineReader`] reads one
//! file as numbered byte lines, and [`ChunkLines`] reads the lines of one byte range of a
//! file (see [`plan_ranges`]) so that a large file can be read by many threads at once. Nothing here parses JSON: a line is bytes, and what to do with
//! invalid UTF-8 or invalid JSON is the caller's decision.
//!
//! [`discover_inputs`]: crate::source::discover_inputs
//! [`LineReader`]: crate::source::LineReader
//! [`open_export`]: crate::source::open_export
//! [`Export`]: crate::source::Export
//! [`Location`]: crate::source::Location
//! [`ChunkLines`]: crate::source::ChunkLines
//! [`plan_ranges`]: crate::source::plan_ranges
//! [`type_from_name`]: crate::source::type_from_name

mod chunk;
mod export;
mod location;
mod ndjson;
mod resource_types;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use chunk::{plan_ranges, ChunkLine, ChunkLines, OVERSIZED_HEAD_BYTES};
pub use export::{open_export, Export};
pub use location::{ExportFile, Location};
pub use ndjson::{Line, LineReader};
pub use resource_types::{is_r4_resource_type, type_from_name, R4_RESOURCE_TYPES};

/// File name suffixes taken from a folder by [`discover_inputs`].
///
/// Bulk Data servers write `.ndjson`; `.jsonl` is the other common name for the same format.
pub const INPUT_SUFFIXES: [&str; 4] = [".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"];

/// An error of the source stage. Every variant names the file it concerns.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// A path given as input does not exist (or cannot be inspected).
    #[error("{}: no such file or folder ({source})", path.display())]
    NotFound {
        /// The path as given.
        path: PathBuf,
        /// The underlying error from the file system.
        source: io::Error,
    },
    /// A folder given as input holds no file with one of the [`INPUT_SUFFIXES`].
    #[error(
        "{}: folder has no *.ndjson, *.ndjson.gz, *.jsonl or *.jsonl.gz file",
        path.display()
    )]
    NoInputFiles {
        /// The folder as given.
        path: PathBuf,
    },
    /// A folder given as input could not be listed.
    #[error("{}: cannot list folder: {source}", path.display())]
    ReadDir {
        /// The folder as given.
        path: PathBuf,
        /// The underlying error from the file system.
        source: io::Error,
    },
    /// An input file could not be opened.
    #[error("{}: cannot open: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A Bulk Data manifest could not be read or used.
    #[error("{manifest}: {reason}")]
    Manifest {
        /// The manifest, as a path or URL.
        manifest: String,
        /// What is wrong, naming the manifest entry where there is one.
        reason: String,
    },
    /// An object store could not be used (listing, inspecting or reading an object).
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Reading (or decompressing) an input file failed part-way.
    #[error("{}:{line}: read error: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The 1-based number of the line being read when the error happened.
        line: u64,
        /// The underlying error; corrupt gzip data shows up here too.
        source: io::Error,
    },
}

/// Expands the paths a user named into the files to read, in order.
///
/// A path to a file is taken as it is, whatever its name. A path to a folder contributes
/// the files directly inside it (not in sub-folders) whose names end in one of
/// [`INPUT_SUFFIXES`], sorted by name so that runs are reproducible. Paths are expanded in
/// the order given.
///
/// # Errors
///
/// [`SourceError::NotFound`] for a path that does not exist, [`SourceError::NoInputFiles`]
/// for a folder without a matching file (most often the wrong folder was named), and
/// [`SourceError::ReadDir`] when a folder cannot be listed.
pub fn discover_inputs<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, SourceError> {
    let mut files = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let meta = fs::metadata(path).map_err(|source| SourceError::NotFound { path: path.to_path_buf(), source })?;
        if meta.is_dir() {
            files.extend(list_folder(path)?);
        } else {
            files.push(path.to_path_buf());
        }
    }
    Ok(files)
}

/// The matching files directly inside `dir`, sorted by file name.
fn list_folder(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let read_dir_error = |source| SourceError::ReadDir { path: dir.to_path_buf(), source };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        if !has_input_suffix(&entry.file_name().to_string_lossy()) {
            continue;
        }
        // `fs::metadata` follows symlinks, so a link to an export file is read like the file.
        let path = entry.path();
        match fs::metadata(&path) {
            Ok(m) if m.is_file() => files.push(path),
            // A sub-folder named like a data file is a layout, not a lost input.
            Ok(m) if m.is_dir() => {}
            // A dangling or looping link, a FIFO, a socket or a device file is named like
            // data but cannot be loaded (a FIFO would block the load for ever): say so
            // rather than let it vanish from the load unseen.
            Ok(_) => {
                tracing::warn!(path = %path.display(), "not a regular file: skipped (name it as an input to read a pipe)")
            }
            Err(e) => tracing::warn!(path = %path.display(), "cannot be read, skipped: {e}"),
        }
    }
    if files.is_empty() {
        return Err(SourceError::NoInputFiles { path: dir.to_path_buf() });
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

pub(crate) fn has_input_suffix(name: &str) -> bool {
    INPUT_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, b"{}\n").unwrap();
        path
    }

    #[test]
    fn folder_yields_matching_files_sorted_and_non_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let want = [
            touch(d, "Condition.jsonl.gz"),
            touch(d, "Encounter.jsonl"),
            touch(d, "Observation.ndjson.gz"),
            touch(d, "Patient.ndjson"),
        ];
        touch(d, "README.md");
        touch(d, "Patient.ndjson.bak");
        touch(d, "manifest.json");
        fs::create_dir(d.join("nested.ndjson")).unwrap();
        touch(&d.join("nested.ndjson"), "Inner.ndjson");

        assert_eq!(discover_inputs(&[d]).unwrap(), want);
    }

    #[test]
    #[cfg(unix)]
    fn unloadable_entries_named_like_data_are_skipped_with_a_warning() {
        // Before, a dangling link, a link loop or a FIFO named `*.ndjson` vanished from the
        // load without a word: the user's data was missing and nothing said so.
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let good = touch(d, "Patient.ndjson");
        std::os::unix::fs::symlink(d.join("gone.ndjson"), d.join("Dangling.ndjson")).unwrap();
        std::os::unix::fs::symlink(d.join("Loop.ndjson"), d.join("Loop.ndjson")).unwrap();
        assert!(std::process::Command::new("mkfifo").arg(d.join("Pipe.ndjson")).status().unwrap().success());
        fs::create_dir(d.join("nested.ndjson")).unwrap();

        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        let writer = {
            let log = std::sync::Arc::clone(&log);
            move || LogWriter(std::sync::Arc::clone(&log))
        };
        let subscriber = tracing_subscriber::fmt().with_writer(writer).with_ansi(false).finish();
        let found = tracing::subscriber::with_default(subscriber, || discover_inputs(&[d]).unwrap());
        assert_eq!(found, [good]);
        let log = String::from_utf8(log.lock().unwrap().clone()).unwrap();
        for name in ["Dangling.ndjson", "Loop.ndjson", "Pipe.ndjson"] {
            assert!(log.contains(name), "no warning names {name}: {log}");
        }
        assert!(!log.contains("nested.ndjson"), "a sub-folder is no lost input: {log}");
    }

    /// Collects log output for [`unloadable_entries_named_like_data_are_skipped_with_a_warning`].
    struct LogWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl io::Write for LogWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn explicit_file_is_taken_whatever_its_name_and_order_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let odd = touch(d, "export.txt");
        let sub = d.join("sub");
        fs::create_dir(&sub).unwrap();
        let inner = touch(&sub, "A.ndjson");

        assert_eq!(discover_inputs(&[odd.clone(), sub.clone()]).unwrap(), [odd.clone(), inner.clone()]);
        assert_eq!(discover_inputs(&[sub, odd.clone()]).unwrap(), [inner, odd]);
    }

    #[test]
    fn missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.ndjson");
        let err = discover_inputs(&[&missing]).unwrap_err();
        assert!(matches!(err, SourceError::NotFound { .. }), "{err:?}");
        assert!(err.to_string().contains(&*missing.to_string_lossy()), "{err}");
    }

    #[test]
    fn folder_without_inputs_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        touch(dir.path(), "notes.txt");
        let err = discover_inputs(&[dir.path()]).unwrap_err();
        assert!(matches!(err, SourceError::NoInputFiles { .. }), "{err:?}");
        assert!(err.to_string().contains(&*dir.path().to_string_lossy()), "{err}");
    }
}
