//! Parquet part files of partitioned tables, written under a memory budget.
//!
//! A [`PartWriters`] owns the open part files of some (table, partition) pairs: one file per
//! pair at a time, rolled over when it reaches its size target, so a load writes a handful
//! of large files per partition rather than one per batch. Open files buffer their current
//! row group in memory; when the buffers together exceed the budget the largest is flushed
//! as a row group, and when too many files are open the least recently used is closed. Both
//! keep memory and file handles bounded however many partitions the data spreads over.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;

use super::partition::{PartitionSpec, PartitionValue};
use super::{ParquetWriter, SinkError};

/// A table as the part writers see it.
#[derive(Debug, Clone)]
pub struct TableLayout {
    /// Table name (the view's name): the directory under the warehouse.
    pub name: String,
    /// Schema of every part file.
    pub schema: SchemaRef,
    /// Partitioning, if the view declares it.
    pub partition: Option<PartitionSpec>,
}

/// Limits for [`PartWriters`].
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    /// Close a part file once it holds about this many bytes (written plus buffered).
    pub target_file_bytes: usize,
    /// Flush the largest buffered row group when all buffers together exceed this.
    pub memory_budget: usize,
    /// Close the least recently used file when more than this many are open.
    pub max_open_files: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits { target_file_bytes: 256 << 20, memory_budget: 256 << 20, max_open_files: 128 }
    }
}

/// What was written for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOutput {
    /// Rows written.
    pub rows: u64,
    /// Part files, relative to the table directory (`year=2019/part-0-00001.parquet`).
    pub files: Vec<String>,
    /// Bytes of the finished files.
    pub bytes: u64,
}

struct OpenPart {
    writer: ArrowWriter<BufWriter<File>>,
    relative: String,
    path: PathBuf,
    rows: u64,
    last_used: u64,
    buffered: usize,
}

/// The open part files of one writer thread. Part files are named
/// `part-<writer>-<sequence>.parquet`, unique across writers of one load, or
/// `part-<load id>-<writer>-<sequence>.parquet` with [`PartWriters::with_load_id`].
pub struct PartWriters {
    root: PathBuf,
    name_prefix: String,
    tables: Arc<Vec<TableLayout>>,
    writer_id: usize,
    limits: PartLimits,
    open: HashMap<(usize, PartitionValue), OpenPart>,
    outputs: Vec<TableOutput>,
    sequence: u64,
    clock: u64,
    buffered: usize,
}

impl PartWriters {
    /// Writers for `tables` under `root` (a staging directory); `writer_id` names the files.
    #[must_use]
    pub fn new(root: PathBuf, tables: Arc<Vec<TableLayout>>, writer_id: usize, limits: PartLimits) -> Self {
        let outputs = vec![TableOutput::default(); tables.len()];
        PartWriters {
            root,
            name_prefix: String::new(),
            tables,
            writer_id,
            limits,
            open: HashMap::new(),
            outputs,
            sequence: 0,
            clock: 0,
            buffered: 0,
        }
    }

    /// Puts the load id in every file name, so that files of different loads never share a
    /// name (object-store warehouses keep them side by side under the same prefix).
    #[must_use]
    pub fn with_load_id(mut self, load_id: &str) -> Self {
        self.name_prefix = format!("{load_id}-");
        self
    }

    /// Appends rows of one partition of table `table` (an index into the layouts).
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error; the files are then incomplete and the load must not publish.
    pub fn write(&mut self, table: usize, partition: PartitionValue, batch: &RecordBatch) -> Result<(), SinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.clock += 1;
        let key = (table, partition);
        if !self.open.contains_key(&key) {
            if self.open.len() >= self.limits.max_open_files {
                self.close_least_recently_used()?;
            }
            let part = self.start_part(table, partition)?;
            self.open.insert(key, part);
        }
        let part = self.open.get_mut(&key).expect("inserted above");
        part.writer.write(batch)?;
        part.rows += batch.num_rows() as u64;
        part.last_used = self.clock;
        // Memory, not encoded size: dictionary keys and encoder state count too.
        let buffered = part.writer.memory_size();
        self.buffered = self.buffered - part.buffered + buffered;
        part.buffered = buffered;
        if part.writer.bytes_written() + part.writer.in_progress_size() >= self.limits.target_file_bytes {
            self.close(key)?;
        }
        while self.buffered > self.limits.memory_budget {
            self.flush_largest()?;
        }
        Ok(())
    }

    /// Closes every open file and returns what was written per table (indexed like the
    /// layouts).
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error closing a file.
    pub fn finish(mut self) -> Result<Vec<TableOutput>, SinkError> {
        let keys: Vec<_> = self.open.keys().copied().collect();
        for key in keys {
            self.close(key)?;
        }
        Ok(self.outputs)
    }

    fn start_part(&mut self, table: usize, partition: PartitionValue) -> Result<OpenPart, SinkError> {
        let layout = &self.tables[table];
        self.sequence += 1;
        let file_name = format!("part-{}{}-{:05}.parquet", self.name_prefix, self.writer_id, self.sequence);
        let relative = match &layout.partition {
            Some(spec) => format!("{}/{file_name}", spec.directory(partition)),
            None => file_name,
        };
        let path = self.root.join(&layout.name).join(&relative);
        let io_error = |source| SinkError::File { path: path.clone(), source };
        fs::create_dir_all(path.parent().expect("part files sit in a table directory")).map_err(io_error)?;
        let file = File::create(&path).map_err(io_error)?;
        let writer = ArrowWriter::try_new(
            // Small: up to `max_open_files` of these exist at once, and row groups are
            // written in large pieces anyway.
            BufWriter::with_capacity(64 * 1024, file),
            layout.schema.clone(),
            Some(ParquetWriter::<File>::properties()),
        )?;
        Ok(OpenPart { writer, relative, path, rows: 0, last_used: self.clock, buffered: 0 })
    }

    fn close(&mut self, key: (usize, PartitionValue)) -> Result<(), SinkError> {
        let part = self.open.remove(&key).expect("closing an open part");
        self.buffered -= part.buffered;
        let io_error = |source| SinkError::File { path: part.path.clone(), source };
        let file = part.writer.into_inner()?.into_inner().map_err(|e| io_error(e.into_error()))?;
        // Durable before the load can publish it: a crash after the commit point must not
        // leave a published table pointing at data still in the page cache only.
        file.sync_all().map_err(io_error)?;
        let bytes = file.metadata().map_err(io_error)?.len();
        let output = &mut self.outputs[key.0];
        output.rows += part.rows;
        output.bytes += bytes;
        output.files.push(part.relative);
        Ok(())
    }

    fn flush_largest(&mut self) -> Result<(), SinkError> {
        let Some(part) = self.open.values_mut().max_by_key(|p| p.buffered) else { return Ok(()) };
        part.writer.flush()?;
        self.buffered -= part.buffered;
        part.buffered = part.writer.memory_size();
        self.buffered += part.buffered;
        Ok(())
    }

    fn close_least_recently_used(&mut self) -> Result<(), SinkError> {
        match self.open.iter().min_by_key(|(_, p)| p.last_used).map(|(k, _)| *k) {
            Some(key) => self.close(key),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int32Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn layout() -> Arc<Vec<TableLayout>> {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Utf8, true)]));
        Arc::new(vec![TableLayout { name: "t".into(), schema, partition: None }])
    }

    fn batch(n: usize) -> RecordBatch {
        let ids: StringArray = (0..n).map(|i| Some(format!("id-{i:08}"))).collect();
        RecordBatch::try_new(layout()[0].schema.clone(), vec![Arc::new(ids)]).unwrap()
    }

    fn read_rows(path: &std::path::Path) -> usize {
        let file = File::open(path).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 1024).unwrap();
        reader.map(|b| b.unwrap().num_rows()).sum()
    }

    #[test]
    fn small_target_rolls_files_over_and_rows_add_up() {
        let dir = tempfile::tempdir().unwrap();
        let limits = PartLimits { target_file_bytes: 2000, ..PartLimits::default() };
        let mut writers = PartWriters::new(dir.path().to_path_buf(), layout(), 3, limits);
        for _ in 0..10 {
            writers.write(0, None, &batch(500)).unwrap();
        }
        let out = writers.finish().unwrap();
        assert_eq!(out[0].rows, 5000);
        assert!(out[0].files.len() > 1, "{:?}", out[0].files);
        assert!(out[0].files.iter().all(|f| f.starts_with("part-3-")));
        let total: usize = out[0].files.iter().map(|f| read_rows(&dir.path().join("t").join(f))).sum();
        assert_eq!(total, 5000);
    }

    #[test]
    fn memory_budget_and_open_file_cap_keep_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
        let limits = PartLimits { target_file_bytes: usize::MAX, memory_budget: 1, max_open_files: 2 };
        let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
        let b = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
        for year in [2001, 2002, 2003, 2001, 2004] {
            writers.write(0, Some(year), &b).unwrap();
        }
        let out = writers.finish().unwrap();
        assert_eq!(out[0].rows, 15);
        assert!(out[0].files.len() >= 5, "closing least recently used opens new files: {:?}", out[0].files);
    }
}
