//! Parquet part files of partitioned tables, written under a memory budget.
//!
//! A [`PartWriters`] collects the record batches of some (table, partition) pairs in memory
//! and writes each pair's rows as one part file in one go: when the buffers together exceed
//! the memory budget (the largest pair is written), when one pair reaches the file size
//! target, and at the end. Only one Parquet writer is open at a time, so memory does not
//! grow with the number of partitions (an open Parquet writer holds a compression context
//! per column), and a partition gets as few files as the budget allows: one, unless the
//! data is larger than the budget.
//!
//! The final flush writes what is still buffered with several threads
//! ([`PartLimits::parallel_writes`]): at the end of a load the workers are done, and
//! encoding the last partitions one after another would leave the other cores idle.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use rayon::prelude::*;

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
    /// Part files the final flush writes at the same time (each on its own thread).
    pub parallel_writes: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits { target_file_bytes: 512 << 20, memory_budget: 256 << 20, parallel_writes: 1 }
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

    /// Writes every buffered pair, [`PartLimits::parallel_writes`] files at a time, and
    /// returns what was written per table (indexed like the layouts).
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error writing a file.
    pub fn finish(mut self) -> Result<Vec<TableOutput>, SinkError> {
        let mut keys: Vec<_> = self.pending.keys().copied().collect();
        keys.sort_unstable();
        let mut parts: Vec<Part> = keys.into_iter().filter_map(|key| self.take(key)).collect();
        // Largest first, so that no big file starts last and runs alone.
        parts.sort_by_key(|part| std::cmp::Reverse(part.pending.bytes));
        let pool = (self.limits.parallel_writes > 1 && parts.len() > 1)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(self.limits.parallel_writes).build().ok())
            .flatten();
        let written: Vec<Result<Written, SinkError>> = match pool {
            Some(pool) => pool.install(|| parts.into_par_iter().map(|part| part.write(&self.root)).collect()),
            None => parts.into_iter().map(|part| part.write(&self.root)).collect(),
        };
        for part in written {
            self.record(part?);
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
        if let Some(part) = self.take(key) {
            let written = part.write(&self.root)?;
            self.record(written);
        }
        Ok(())
    }

    /// Takes one pair's buffered rows out, naming the file they will go to.
    fn take(&mut self, key: (usize, PartitionValue)) -> Option<Part> {
        let pending = self.pending.remove(&key)?;
        self.buffered -= pending.bytes;
        let layout = &self.tables[key.0];
        self.sequence += 1;
        let file_name = format!("part-{}{}-{:05}.parquet", self.name_prefix, self.writer_id, self.sequence);
        let relative = match &layout.partition {
            Some(spec) => format!("{}/{file_name}", spec.directory(key.1)),
            None => file_name,
        };
        Some(Part { table: key.0, layout: layout.clone(), relative, pending })
    }

    fn record(&mut self, written: Written) {
        let output = &mut self.outputs[written.table];
        output.rows += written.rows;
        output.bytes += written.bytes;
        output.files.push(written.relative);
    }
}

/// One part file to write: a pair's rows and the file's path in its table.
struct Part {
    table: usize,
    layout: TableLayout,
    relative: String,
    pending: Pending,
}

/// A part file written.
struct Written {
    table: usize,
    relative: String,
    rows: u64,
    bytes: u64,
}

impl Part {
    fn write(self, root: &std::path::Path) -> Result<Written, SinkError> {
        let path = root.join(&self.layout.name).join(&self.relative);
        let io_error = |source| SinkError::File { path: path.clone(), source };
        fs::create_dir_all(path.parent().expect("part files sit in a table directory")).map_err(io_error)?;
        let file = File::create(&path).map_err(io_error)?;
        let properties = ParquetWriter::<File>::properties_for(&self.pending.batches[0]);
        let out = BufWriter::with_capacity(1 << 20, file);
        let mut writer = ParquetWriter::try_new_with(out, self.layout.schema.clone(), properties)?;
        let mut rows = 0;
        for batch in &self.pending.batches {
            writer.write(batch)?;
            rows += batch.num_rows() as u64;
        }
        let file = writer.finish()?.into_inner().map_err(|e| io_error(e.into_error()))?;
        // Durable before the load can publish it: a crash after the commit point must not
        // leave a published table pointing at data still in the page cache only.
        file.sync_all().map_err(io_error)?;
        let bytes = file.metadata().map_err(io_error)?.len();
        Ok(Written { table: self.table, relative: self.relative, rows, bytes })
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
    fn the_final_flush_writes_in_parallel_with_the_names_of_a_serial_one() {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
        let b = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
        let run = |parallel_writes| {
            let dir = tempfile::tempdir().unwrap();
            let limits = PartLimits { parallel_writes, ..PartLimits::default() };
            let mut writers = PartWriters::new(dir.path().to_path_buf(), tables.clone(), 0, limits);
            for (i, year) in [2001, 2002, 2003, 2001, 2004, 2005].into_iter().enumerate() {
                writers.write(0, Some(year), &b.slice(0, 1 + i % 3)).unwrap();
            }
            let mut out = writers.finish().unwrap();
            let rows: usize = out[0].files.iter().map(|f| read_rows(&dir.path().join("t").join(f))).sum();
            out[0].files.sort();
            (out, rows)
        };
        let (serial, serial_rows) = run(1);
        let (parallel, parallel_rows) = run(4);
        assert_eq!(serial, parallel);
        assert_eq!((serial[0].rows, serial_rows, parallel_rows), (12, 12, 12));
        assert_eq!(serial[0].files.len(), 5, "one file per partition: {:?}", serial[0].files);
    }

    #[test]
    fn memory_budget_writes_the_largest_partition_and_keeps_every_row() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
        let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
        let limits = PartLimits { target_file_bytes: usize::MAX, memory_budget: 1, ..PartLimits::default() };
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
