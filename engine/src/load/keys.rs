//! The key index of a warehouse: which resources it holds, and how new each is.
//!
//! Incremental loads need the version of the copy a warehouse holds to let the newest win,
//! and the views' tables do not keep `meta`. So a load that later increments will merge into
//! (every `fhirhouse sync`, and every merge) writes, in its snapshot, one folder per
//! resource type of Parquet files with the columns `id`, `version` (numeric `versionId` + 1,
//! 0 for none) and `updated` (`lastUpdated` in µs, `i64::MIN` for none), in the order of
//! [`Version`]:
//!
//! ```text
//! _fhirhouse/snapshots/<load id>/_keys/<Type>/part-*.parquet
//! _fhirhouse/snapshots/<load id>/_keys/COMPLETE     every resource of the warehouse is listed
//! ```
//!
//! An id may appear in more than one file (a full export that repeats a resource); readers
//! take the newest. An index without `COMPLETE` (one begun by merging into a warehouse that
//! a plain `fhirhouse load` made) lists only the resources increments brought; for the
//! others, the increment wins unconditionally.
//!
//! The keys of an export are read by a pass of their own over its files (parse each line,
//! take `resourceType`, `id`, `meta`), in parallel over the files: for an increment this is
//! a small cost; for the full export of a first sync it is a second parse of the export.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, ArrayRef, Int64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use rayon::prelude::*;

use super::dedup::Version;
use crate::sink::ParquetWriter;
use crate::source::{Export, ExportFile, LineReader};
use crate::view::ResourceParser;

/// The key index folder in a snapshot.
pub const KEYS_DIR: &str = "_keys";
/// The marker of a complete key index.
pub const COMPLETE_MARKER: &str = "COMPLETE";
/// Rows per batch written.
const BATCH_ROWS: usize = 64 * 1024;

/// Resource keys by type, then id, with the newest version seen.
pub(crate) type KeyMap = HashMap<String, HashMap<String, Version>>;

/// The index's schema.
pub(crate) fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, false),
        Field::new("version", DataType::UInt64, false),
        Field::new("updated", DataType::Int64, false),
    ]))
}

/// Calls `each(type, id, version)` for every resource of `types` in one export file. Lines
/// that are not resources are skipped: the load dead-letters them.
fn read_keys(
    file: &ExportFile,
    types: &HashSet<String>,
    mut each: impl FnMut(&str, &str, Version),
) -> anyhow::Result<()> {
    let reader = file.open_at(0).with_context(|| format!("cannot read {}", file.location))?;
    let mut lines = LineReader::from_reader(file.location.to_string(), reader)?;
    let mut parser = ResourceParser::default();
    while let Some((_, line)) = lines.next_line()? {
        let Ok(parsed) = parser.parse(line) else { continue };
        let resource = parsed.doc();
        let (Some(resource_type), Some(id)) = (resource.get_str("resourceType"), resource.get_str("id")) else {
            continue;
        };
        if types.contains(resource_type) {
            each(resource_type, id, Version::of(resource));
        }
    }
    Ok(())
}

/// The keys of an increment, newest version per key, in memory (increments are small).
pub(crate) fn collect(export: &Export, types: &HashSet<String>) -> anyhow::Result<KeyMap> {
    let per_file: Vec<KeyMap> = export
        .files
        .par_iter()
        .map(|file| {
            let mut keys = KeyMap::new();
            read_keys(file, types, |t, id, v| {
                let entry = keys.entry(t.to_owned()).or_default().entry(id.to_owned()).or_insert(v);
                *entry = (*entry).max(v);
            })?;
            Ok(keys)
        })
        .collect::<anyhow::Result<_>>()?;
    let mut all = KeyMap::new();
    for keys in per_file {
        for (t, ids) in keys {
            let into = all.entry(t).or_default();
            for (id, v) in ids {
                let entry = into.entry(id).or_insert(v);
                *entry = (*entry).max(v);
            }
        }
    }
    Ok(all)
}

/// Writes the complete key index of a whole export into `dir` (one file per export file and
/// type, streamed: memory stays flat).
pub(crate) fn write_all(export: &Export, types: &HashSet<String>, dir: &Path) -> anyhow::Result<()> {
    export.files.par_iter().enumerate().try_for_each(|(n, file)| -> anyhow::Result<()> {
        let mut writers: HashMap<String, KeyWriter> = HashMap::new();
        let mut failure = None;
        read_keys(file, types, |t, id, v| {
            if failure.is_some() {
                return;
            }
            let writer = writers
                .entry(t.to_owned())
                .or_insert_with(|| KeyWriter::new(dir.join(t).join(format!("part-{n:05}.parquet"))));
            if let Err(e) = writer.push(id, v) {
                failure = Some(e);
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        writers.into_values().try_for_each(KeyWriter::finish)
    })?;
    mark_complete(dir)
}

/// Writes `keys` (one type's) as a new part file of the index in `dir/<type>/`.
pub(crate) fn write_part(
    dir: &Path,
    resource_type: &str,
    name: &str,
    keys: &[(&String, &Version)],
) -> anyhow::Result<()> {
    let mut writer = KeyWriter::new(dir.join(resource_type).join(name));
    for (id, version) in keys {
        writer.push(id, **version)?;
    }
    writer.finish()
}

/// Marks the index in `dir` as listing every resource.
pub(crate) fn mark_complete(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(COMPLETE_MARKER), b"").with_context(|| format!("cannot write {}", dir.display()))
}

/// Whether the index in `dir` lists every resource.
pub(crate) fn is_complete(dir: &Path) -> bool {
    dir.join(COMPLETE_MARKER).is_file()
}

/// The newest version the index in `dir/<type>` holds for each of `ids` (absent ids are
/// left out). Reads the `id` column of every file, and the rest only where an id matches.
pub(crate) fn versions_of(
    dir: &Path,
    resource_type: &str,
    ids: &HashMap<String, Version>,
) -> anyhow::Result<HashMap<String, Version>> {
    let mut found: HashMap<String, Version> = HashMap::new();
    for path in parquet_files(&dir.join(resource_type))? {
        let file = File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?.with_batch_size(BATCH_ROWS).build()?;
        for batch in reader {
            let batch = batch?;
            let column = |i: usize| batch.column(i).clone();
            let (id, version, updated) = (column(0), column(1), column(2));
            let id = id.as_any().downcast_ref::<StringArray>().context("key index: id is not text")?;
            let version = version.as_any().downcast_ref::<UInt64Array>().context("key index: version")?;
            let updated = updated.as_any().downcast_ref::<Int64Array>().context("key index: updated")?;
            for row in 0..batch.num_rows() {
                let key = id.value(row);
                if ids.contains_key(key) {
                    let v = Version { version: version.value(row), updated: updated.value(row) };
                    let entry = found.entry(key.to_owned()).or_insert(v);
                    *entry = (*entry).max(v);
                }
            }
        }
    }
    Ok(found)
}

/// The number of rows of a Parquet file, from its footer.
pub(crate) fn rows_in(path: &Path) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let rows = ParquetRecordBatchReaderBuilder::try_new(file)?.metadata().file_metadata().num_rows();
    Ok(u64::try_from(rows).unwrap_or(0))
}

/// The `*.parquet` files under `dir`, at any depth, sorted; none when it does not exist.
pub(crate) fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", dir.display())),
        };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Writes key rows to one Parquet file, created on the first row.
struct KeyWriter {
    path: PathBuf,
    writer: Option<ParquetWriter<BufWriter<File>>>,
    ids: Vec<String>,
    versions: Vec<Version>,
}

impl KeyWriter {
    fn new(path: PathBuf) -> KeyWriter {
        KeyWriter { path, writer: None, ids: Vec::new(), versions: Vec::new() }
    }

    fn push(&mut self, id: &str, version: Version) -> anyhow::Result<()> {
        self.ids.push(id.to_owned());
        self.versions.push(version);
        if self.ids.len() >= BATCH_ROWS {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> anyhow::Result<()> {
        if self.ids.is_empty() {
            return Ok(());
        }
        if self.writer.is_none() {
            std::fs::create_dir_all(self.path.parent().expect("index files sit in a type folder"))?;
            let file = File::create(&self.path).with_context(|| format!("cannot create {}", self.path.display()))?;
            self.writer = Some(ParquetWriter::try_new(BufWriter::new(file), schema())?);
        }
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(std::mem::take(&mut self.ids))),
            Arc::new(self.versions.iter().map(|v| v.version).collect::<UInt64Array>()),
            Arc::new(self.versions.iter().map(|v| v.updated).collect::<Int64Array>()),
        ];
        self.versions.clear();
        let batch = RecordBatch::try_new(schema(), columns)?;
        self.writer.as_mut().expect("created above").write(&batch)?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        self.flush()?;
        if let Some(writer) = self.writer.take() {
            let file = writer.finish()?.into_inner().map_err(std::io::IntoInnerError::into_error)?;
            file.sync_all().with_context(|| format!("cannot write {}", self.path.display()))?;
        }
        Ok(())
    }
}
