//! Parquet part files of partitioned tables, written under a memory budget.
//!
//! A [`PartWriters`] collects the record batches of some (table, partition) pairs in memory
//! and writes each pair's rows as one part file in one go: when the buffers together exceed
//! the memory budget (the largest pair is written), when one pair reaches the file size
//! target, and at the end. Only one Parquet writer is open at a time, so memory does not
//! grow with the number of partitions (an open Parquet writer holds a compression context
//! per column), and a partition gets as few files as the budget allows: one, unless the
//! data is larger than the budget.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

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

impl TableLayout {
    /// Splits a batch of this table into one batch per partition (the whole batch under
    /// `None` when the table is not partitioned).
    #[must_use]
    pub fn split(&self, batch: RecordBatch) -> Vec<(PartitionValue, RecordBatch)> {
        match &self.partition {
            Some(spec) => spec.split(&batch),
            None => vec![(None, batch)],
        }
    }
}

/// Limits for [`PartWriters`].
#[derive(Debug, Clone, Copy)]
pub struct PartLimits {
    /// Write a pair's rows out once they take this much memory (Arrow size; the Parquet
    /// file is several times smaller).
    pub target_file_bytes: usize,
    /// Write the largest pair out when all buffers together exceed this.
    pub memory_budget: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits { target_file_bytes: 512 << 20, memory_budget: 256 << 20 }
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

/// The rows of one (table, partition) pair waiting to be written.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    bytes: usize,
}

/// The buffered rows of one writer thread. Part files are named
/// `part-<writer>-<sequence>.parquet`, unique across writers of one load, or
/// `part-<load id>-<writer>-<sequence>.parquet` with [`PartWriters::with_load_id`].
pub struct PartWriters {
    root: PathBuf,
    name_prefix: String,
    tables: Arc<Vec<TableLayout>>,
    writer_id: usize,
    limits: PartLimits,
    pending: HashMap<(usize, PartitionValue), Pending>,
    outputs: Vec<TableOutput>,
    sequence: u64,
    buffered: usize,
    /// The most `buffered` has been, for the debug log.
    peak_buffered: usize,
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
            pending: HashMap::new(),
            outputs,
            sequence: 0,
            buffered: 0,
            peak_buffered: 0,
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
        let key = (table, partition);
        let bytes = batch.get_array_memory_size();
        let pending = self.pending.entry(key).or_default();
        pending.batches.push(batch.clone());
        pending.bytes += bytes;
        self.buffered += bytes;
        self.peak_buffered = self.peak_buffered.max(self.buffered);
        if pending.bytes >= self.limits.target_file_bytes {
            self.write_out(key)?;
        }
        while self.buffered > self.limits.memory_budget {
            let largest = self.pending.iter().max_by_key(|(_, p)| p.bytes).map(|(k, _)| *k);
            match largest {
                Some(key) => self.write_out(key)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Writes every buffered pair and returns what was written per table (indexed like the
    /// layouts).
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error writing a file.
    pub fn finish(mut self) -> Result<Vec<TableOutput>, SinkError> {
        let mut keys: Vec<_> = self.pending.keys().copied().collect();
        keys.sort_unstable();
        for key in keys {
            self.write_out(key)?;
        }
        tracing::debug!(
            writer = self.writer_id,
            peak_buffered = self.peak_buffered,
            files = self.sequence,
            "part files written"
        );
        Ok(self.outputs)
    }

    /// Writes one pair's buffered rows as a new part file.
    fn write_out(&mut self, key: (usize, PartitionValue)) -> Result<(), SinkError> {
        let Some(pending) = self.pending.remove(&key) else { return Ok(()) };
        self.buffered -= pending.bytes;
        let layout = &self.tables[key.0];
        self.sequence += 1;
        let file_name = format!("part-{}{}-{:05}.parquet", self.name_prefix, self.writer_id, self.sequence);
        let relative = match &layout.partition {
            Some(spec) => format!("{}/{file_name}", spec.directory(key.1)),
            None => file_name,
        };
        let path = self.root.join(&layout.name).join(&relative);
        let io_error = |source| SinkError::File { path: path.clone(), source };
        fs::create_dir_all(path.parent().expect("part files sit in a table directory")).map_err(io_error)?;
        let file = File::create(&path).map_err(io_error)?;
        let mut writer = ParquetWriter::try_new(BufWriter::with_capacity(1 << 20, file), layout.schema.clone())?;
        let mut rows = 0;
        for batch in &pending.batches {
            writer.write(batch)?;
            rows += batch.num_rows() as u64;
        }
        let file = writer.finish()?.into_inner().map_err(|e| io_error(e.into_error()))?;
        // Durable before the load can publish it: a crash after the commit point must not
        // leave a published table pointing at data still in the page cache only.
        file.sync_all().map_err(io_error)?;
        let bytes = file.metadata().map_err(io_error)?.len();
        let output = &mut self.outputs[key.0];
        output.rows += rows;
        output.bytes += bytes;
        output.files.push(relative);
        Ok(())
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
    fn under_budget_each_partition_gets_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut writers = PartWriters::new(dir.path().to_path_buf(), layout(), 0, PartLimits::default());
        for _ in 0..20 {
            writers.write(0, None, &batch(100)).unwrap();
        }
        let out = writers.finish().unwrap();
        assert_eq!((out[0].rows, out[0].files.len()), (2000, 1));
    }

    #[test]
    fn memory_budget_writes_the_largest_partition_and_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
        let limits = PartLimits { target_file_bytes: usize::MAX, memory_budget: 1 };
        let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
        let b = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
        for year in [2001, 2002, 2003, 2001, 2004] {
            writers.write(0, Some(year), &b).unwrap();
        }
        let out = writers.finish().unwrap();
        assert_eq!(out[0].rows, 15);
        assert_eq!(out[0].files.len(), 5, "over budget, every write goes out: {:?}", out[0].files);
    }
}
