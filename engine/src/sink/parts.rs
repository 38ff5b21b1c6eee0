//! Parquet part files of partitioned tables, written under a memory budget.
//!
//! A [`PartWriters`] collects the record batches of (table, partition) pairs in memory and
//! appends them to one open part file per pair, a row group at a time: the largest pair's
//! rows when the buffers together exceed the memory budget, a pair's rows when they reach
//! the file size target (which also closes its file), and everything at the end.
//! [`PartWriters::write`] encodes those row groups as they fall due; a writer shared by
//! several threads instead hands them out ([`PartWriters::next_job`]) to be encoded
//! elsewhere, a pair at a time, and takes the file back ([`PartWriters::complete`]).
//!
//! Only the buffered rows take memory. Parquet's column writers, each with its compression
//! contexts, exist only while a row group is encoded; between row groups a file in progress
//! holds its footer metadata and not even a file descriptor (it is reopened to append the
//! next row group), so any number of partitions can be in progress under any `ulimit -n`.
//! The footers wait in memory until their files close (statistics and page indexes, about
//! 2 KB per column chunk), so they have a budget too
//! ([`PartLimits::max_open_column_chunks`]): past it, the file with the most row groups is
//! closed. Memory thus stays flat whatever the size of the input, and a partition gets one
//! file per load unless it is larger than the file size target or the footer budget.
//!
//! Small batches are concatenated as they arrive. A load of many tiny files hands over a
//! batch of a row or two per file and view, and such a batch costs far more than its rows:
//! every column is an array of its own with buffers of a minimum size, each behind its own
//! allocations, so a hundred thousand of them held one by one would take a gigabyte that
//! the buffer sizes say little of. A pair's last 16 batches (`SMALL_RUN`) of under 128 rows
//! (`SMALL_ROWS`) become one batch, and so do the last small batches of every pair once
//! there are 1,024 of them (`SMALL_BATCHES`: a load spread over many partitions gives each
//! only a few). Only small batches are ever copied (the batches of large files go on as they
//! are), and the memory budget also counts a fixed cost (`ARRAY_OVERHEAD`) per array of
//! every batch it holds.
//!
//! The final flush writes the last row groups and closes the files with several threads
//! ([`PartLimits::parallel_writes`]): at the end of a load the workers are done, and
//! encoding the last partitions one after another would leave the other cores idle. Every
//! file of the load is fsynced on threads of its own, each file as soon as the final flush
//! has closed it, since each fsync waits on the disk rather than using a core.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use parquet::errors::ParquetError;
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
    /// Close a pair's file once this much of its rows went into it (Arrow size; the Parquet
    /// file is several times smaller).
    pub target_file_bytes: usize,
    /// Write the largest pair's rows out when all buffers together exceed this.
    pub memory_budget: usize,
    /// Column chunks (row groups × columns) the files in progress may hold together: their
    /// footer metadata waits in memory until the file closes. Past this, the file with the
    /// most is closed (its partition's next rows start a new file).
    pub max_open_column_chunks: usize,
    /// Part files the final flush writes at the same time (each on its own thread).
    pub parallel_writes: usize,
}

impl Default for PartLimits {
    fn default() -> Self {
        PartLimits {
            target_file_bytes: 512 << 20,
            memory_budget: 256 << 20,
            max_open_column_chunks: 16 << 10,
            parallel_writes: 1,
        }
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

/// A (table index, partition) pair: the rows that go to the same part file.
type PairKey = (usize, PartitionValue);

/// A batch of fewer rows than this is small: its arrays cost more than its rows, and it may
/// be copied into one batch with the small batches next to it.
const SMALL_ROWS: usize = 128;

/// Small batches in a row at the end of a pair's rows that are concatenated into one. Each
/// row of a one-row batch is then copied about four times before it is part of a batch of
/// [`SMALL_ROWS`], and a pair holds at most this many small batches for every larger one.
const SMALL_RUN: usize = 16;

/// Small batches at the ends of all pairs together past which each pair's are
/// concatenated; or twice as many as were left the last time, when that is more (every
/// pair keeps one), so that the pairs are not all gone through again after a few batches.
const SMALL_BATCHES: usize = 1024;

/// Heap an array of a buffered batch takes beyond its buffers' capacity (what
/// `get_array_memory_size` counts): the allocations of the array itself and of the shared
/// owner of each buffer, and the allocator's own overhead on each. Negligible for a batch
/// of thousands of rows, most of it for one of a single row.
const ARRAY_OVERHEAD: usize = 256;

/// The rows of one pair waiting to be written.
#[derive(Default)]
struct Pending {
    batches: Vec<RecordBatch>,
    /// What the batches cost together ([`PartWriters::cost`]).
    bytes: usize,
    /// How many of the last batches are small ([`SMALL_ROWS`]).
    small_tail: usize,
}

/// The buffered rows and open part files of a load (shared by its workers through
/// [`SharedPartWriters`](super::shared_parts::SharedPartWriters)). Part files are named
/// `part-<writer>-<sequence>.parquet`, unique across writers of one load, or
/// `part-<load id>-<writer>-<sequence>.parquet` with [`PartWriters::with_load_id`].
pub struct PartWriters {
    root: PathBuf,
    name_prefix: String,
    tables: Arc<Vec<TableLayout>>,
    writer_id: usize,
    limits: PartLimits,
    pending: HashMap<PairKey, Pending>,
    open: HashMap<PairKey, OpenPart>,
    outputs: Vec<TableOutput>,
    /// Every file closed. Those closed before [`finish`](Self::finish) are made durable
    /// there, beside the ones its final flush closes.
    written_paths: Vec<PathBuf>,
    sequence: u64,
    /// Row groups written before the final flush, for the debug log.
    row_groups: u64,
    /// Column chunks of the files in `open`, against [`PartLimits::max_open_column_chunks`].
    open_column_chunks: usize,
    /// Pairs whose rows reached the file size target since they were last written.
    due: Vec<PairKey>,
    /// Pairs with a row group being encoded outside these writers (a [`RowGroupJob`] handed
    /// out and not yet [completed](Self::complete)), with the bytes of its rows.
    encoding: HashMap<PairKey, usize>,
    /// The bytes of `encoding` together.
    encoding_bytes: usize,
    buffered: usize,
    /// The most `buffered` has been, for the debug log.
    peak_buffered: usize,
    /// Arrays in a batch of each table (nested ones count their children), for
    /// [`ARRAY_OVERHEAD`].
    arrays: Vec<usize>,
    /// The small batches at the ends of the pairs' rows (their `small_tail`s together).
    small_batches: usize,
    /// `small_batches` at which every pair's are concatenated ([`SMALL_BATCHES`]).
    small_batches_limit: usize,
    /// Rows copied concatenating small batches, for the debug log.
    rows_copied: usize,
}

impl Pending {
    /// Concatenates the small batches at the end into one, and returns what they cost
    /// before and what the one costs, batches of the table having `arrays` arrays each.
    fn concat_small_tail(&mut self, arrays: usize) -> (usize, usize) {
        let tail = self.batches.split_off(self.batches.len() - self.small_tail);
        let before: usize = tail.iter().map(|batch| batch_cost(batch, arrays)).sum();
        let (kept, after) = match arrow::compute::concat_batches(&tail[0].schema(), &tail) {
            Ok(one) => {
                let cost = batch_cost(&one, arrays);
                (vec![one], cost)
            }
            // Only batches of different schemas fail to concatenate, and a pair's have one:
            // keep them as they are, should that ever change.
            Err(_) => (tail, before),
        };
        self.small_tail = match &kept[..] {
            [one] if one.num_rows() < SMALL_ROWS => 1,
            _ => 0,
        };
        self.batches.extend(kept);
        self.bytes = self.bytes - before + after;
        (before, after)
    }
}

/// What `batch` costs in memory while buffered, its table's batches having `arrays` arrays.
fn batch_cost(batch: &RecordBatch, arrays: usize) -> usize {
    batch.get_array_memory_size() + arrays * ARRAY_OVERHEAD
}

/// The arrays in a column of type `data_type`: one, and those of its children.
fn arrays_of(data_type: &DataType) -> usize {
    1 + match data_type {
        DataType::List(item)
        | DataType::LargeList(item)
        | DataType::ListView(item)
        | DataType::LargeListView(item)
        | DataType::FixedSizeList(item, _)
        | DataType::Map(item, _) => arrays_of(item.data_type()),
        DataType::Struct(fields) => fields.iter().map(|f| arrays_of(f.data_type())).sum(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| arrays_of(f.data_type())).sum(),
        DataType::Dictionary(_, values) => arrays_of(values),
        DataType::RunEndEncoded(ends, values) => arrays_of(ends.data_type()) + arrays_of(values.data_type()),
        _ => 0,
    }
}

impl PartWriters {
    /// Writers for `tables` under `root` (a staging directory); `writer_id` names the files.
    #[must_use]
    pub fn new(root: PathBuf, tables: Arc<Vec<TableLayout>>, writer_id: usize, limits: PartLimits) -> Self {
        let outputs = vec![TableOutput::default(); tables.len()];
        let arrays = tables.iter().map(|t| t.schema.fields().iter().map(|f| arrays_of(f.data_type())).sum()).collect();
        PartWriters {
            root,
            name_prefix: String::new(),
            tables,
            writer_id,
            limits,
            pending: HashMap::new(),
            open: HashMap::new(),
            outputs,
            written_paths: Vec::new(),
            sequence: 0,
            row_groups: 0,
            open_column_chunks: 0,
            due: Vec::new(),
            encoding: HashMap::new(),
            encoding_bytes: 0,
            buffered: 0,
            peak_buffered: 0,
            arrays,
            small_batches: 0,
            small_batches_limit: SMALL_BATCHES,
            rows_copied: 0,
        }
    }

    /// Puts the load id in every file name, so that files of different loads never share a
    /// name (object-store warehouses keep them side by side under the same prefix).
    #[must_use]
    pub fn with_load_id(mut self, load_id: &str) -> Self {
        self.name_prefix = format!("{load_id}-");
        self
    }

    /// Appends rows of one partition of table `table` (an index into the layouts), and
    /// writes the row groups that are then due.
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error; the files are then incomplete and the load must not publish.
    pub fn write(&mut self, table: usize, partition: PartitionValue, batch: &RecordBatch) -> Result<(), SinkError> {
        self.buffer(table, partition, batch);
        // Nothing is encoded elsewhere, so no job is ever to be waited for.
        while let NextJob::Encode(job) = self.next_job() {
            self.complete(job.encode())?;
        }
        Ok(())
    }

    /// Keeps rows of one partition of table `table` for a later row group, without writing
    /// any: [`next_job`](Self::next_job) says what is then due.
    pub fn buffer(&mut self, table: usize, partition: PartitionValue, batch: &RecordBatch) {
        if batch.num_rows() == 0 {
            return;
        }
        let key = (table, partition);
        let bytes = self.cost(table, batch);
        self.buffered += bytes;
        self.peak_buffered = self.peak_buffered.max(self.buffered);
        let arrays = self.arrays[table];
        let pending = self.pending.entry(key).or_default();
        let was_due = pending.bytes >= self.limits.target_file_bytes;
        pending.batches.push(batch.clone());
        pending.bytes += bytes;
        self.small_batches -= pending.small_tail;
        if batch.num_rows() >= SMALL_ROWS {
            pending.small_tail = 0;
        } else {
            pending.small_tail += 1;
            if pending.small_tail >= SMALL_RUN {
                let (before, after) = pending.concat_small_tail(arrays);
                self.buffered = self.buffered - before + after;
                self.rows_copied += pending.batches.last().map_or(0, RecordBatch::num_rows);
            }
        }
        self.small_batches += pending.small_tail;
        if !was_due && pending.bytes >= self.limits.target_file_bytes {
            self.due.push(key);
        }
        if self.small_batches >= self.small_batches_limit {
            self.concat_small_tails();
        }
    }

    /// Concatenates the small batches at the end of every pair's rows.
    fn concat_small_tails(&mut self) {
        for ((table, _), pending) in &mut self.pending {
            if pending.small_tail > 1 {
                self.small_batches -= pending.small_tail;
                let (before, after) = pending.concat_small_tail(self.arrays[*table]);
                self.buffered = self.buffered - before + after;
                self.small_batches += pending.small_tail;
                self.rows_copied += pending.batches.last().map_or(0, RecordBatch::num_rows);
            }
        }
        self.small_batches_limit = SMALL_BATCHES.max(2 * self.small_batches);
    }

    /// What `batch` of table `table` costs in memory while buffered: its buffers and
    /// [`ARRAY_OVERHEAD`] for each of its arrays.
    fn cost(&self, table: usize, batch: &RecordBatch) -> usize {
        batch_cost(batch, self.arrays[table])
    }

    /// The next row group to encode: a pair whose rows reached the file size target, else
    /// the largest pair while the buffers together exceed the memory budget. A pair whose
    /// row group is being encoded is never handed out again until it is
    /// [completed](Self::complete); while row groups of a budget's worth are being encoded,
    /// the caller is told to wait for them rather than take more rows out of the buffers.
    pub fn next_job(&mut self) -> NextJob {
        let free = |key: &PairKey| !self.encoding.contains_key(key);
        let key = if let Some(i) = self.due.iter().position(free) {
            self.due.swap_remove(i)
        } else if self.buffered <= self.limits.memory_budget {
            return NextJob::Idle;
        } else {
            let budget_being_encoded = self.encoding_bytes >= self.limits.memory_budget;
            let largest_free = self.pending.iter().filter(|(key, _)| free(key)).max_by_key(|(_, p)| p.bytes);
            match largest_free {
                Some((key, _)) if !budget_being_encoded || self.encoding.is_empty() => *key,
                // Over budget, and what is being encoded will bring it down: wait for it.
                _ if !self.encoding.is_empty() => return NextJob::Wait,
                _ => return NextJob::Idle,
            }
        };
        let pending = self.pending.remove(&key).expect("due and buffered pairs have rows");
        self.due.retain(|due| *due != key);
        self.buffered -= pending.bytes;
        self.small_batches -= pending.small_tail;
        self.encoding.insert(key, pending.bytes);
        self.encoding_bytes += pending.bytes;
        let (root, tables) = (self.root.clone(), Arc::clone(&self.tables));
        NextJob::Encode(RowGroupJob { key, file: self.part_file(key), pending, root, tables })
    }

    /// Takes back the file of a [`RowGroupJob`] once encoded: closes it once it reached the
    /// size target, and the files with the most row groups while the footers are over their
    /// budget.
    ///
    /// # Errors
    ///
    /// The job's error, or an I/O or Parquet error closing a file.
    pub fn complete(&mut self, encoded: EncodedRowGroup) -> Result<(), SinkError> {
        let EncodedRowGroup { key, result } = encoded;
        self.end_encoding(key);
        let (part, new_chunks) = result?;
        self.row_groups += 1;
        self.open_column_chunks += new_chunks;
        let reached_target = part.bytes >= self.limits.target_file_bytes;
        self.open.insert(key, *part);
        if reached_target {
            self.close_open(key)?;
        }
        while self.open_column_chunks > self.limits.max_open_column_chunks {
            let most = self.open.iter().max_by_key(|(_, part)| part.column_chunks()).map(|(key, _)| *key);
            match most {
                Some(key) => self.close_open(key)?,
                None => break,
            }
        }
        Ok(())
    }

    /// Forgets the [`RowGroupJob`] of pair `pair` (its [`RowGroupJob::pair`]), handed out
    /// and never to be completed: its rows are lost, so the load must fail, but no thread
    /// waits for it any longer.
    pub fn abandon(&mut self, pair: (usize, PartitionValue)) {
        self.end_encoding(pair);
    }

    /// Counts the job of `key` as no longer being encoded, whatever became of it.
    fn end_encoding(&mut self, key: PairKey) {
        if let Some(bytes) = self.encoding.remove(&key) {
            self.encoding_bytes -= bytes;
        }
    }

    /// Writes every buffered pair's last row group and closes every file,
    /// [`PartLimits::parallel_writes`] files at a time, and returns what was written per
    /// table (indexed like the layouts).
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error writing a file.
    pub fn finish(mut self) -> Result<Vec<TableOutput>, SinkError> {
        let mut keys: Vec<PairKey> = self.pending.keys().chain(self.open.keys()).copied().collect();
        keys.sort_unstable();
        keys.dedup();
        let mut last: Vec<LastWrite> = keys
            .into_iter()
            .map(|key| LastWrite { key, file: self.part_file(key), pending: self.pending.remove(&key) })
            .collect();
        // Largest first, so that no big file starts last and runs alone.
        last.sort_by_key(|write| std::cmp::Reverse(write.pending.as_ref().map_or(0, |p| p.bytes)));
        let pool = (self.limits.parallel_writes > 1 && last.len() > 1)
            .then(|| rayon::ThreadPoolBuilder::new().num_threads(self.limits.parallel_writes).build().ok())
            .flatten();
        let (root, tables, closed_before) = (&self.root, &self.tables, &self.written_paths);
        // Every file is made durable before the load can publish it: a crash after the
        // commit point must not leave a published table pointing at data still in the page
        // cache only. Each is synced in the background as soon as it is closed, so that the
        // disk waits overlap with writing the others.
        let written: Vec<Result<Written, SinkError>> = super::commit::syncing_while(|sync_later| {
            for path in closed_before {
                sync_later(path.clone());
            }
            let close = |write: LastWrite| {
                let written = write.close(root, tables)?;
                sync_later(written.path.clone());
                Ok(written)
            };
            match pool {
                // One file per job: rayon otherwise hands each thread a run of neighbouring
                // files to write in a row, and the thread given the largest ones (they are
                // sorted first) is left writing them alone while the others idle.
                Some(pool) => pool.install(|| last.into_par_iter().with_max_len(1).map(close).collect()),
                None => last.into_iter().map(close).collect(),
            }
        })?;
        for part in written {
            self.record(part?);
        }
        tracing::debug!(
            writer = self.writer_id,
            peak_buffered = self.peak_buffered,
            files = self.sequence,
            row_groups_before_the_end = self.row_groups,
            small_batch_rows_copied = self.rows_copied,
            "part files written"
        );
        Ok(self.outputs)
    }

    /// Closes the file in progress of `key`.
    fn close_open(&mut self, key: PairKey) -> Result<(), SinkError> {
        if let Some(part) = self.open.remove(&key) {
            self.open_column_chunks -= part.column_chunks();
            let written = part.close()?;
            self.record(written);
        }
        Ok(())
    }

    /// The file `key`'s next rows go to: its file in progress, or a new one, named now (so
    /// that names follow the order of this writer's calls, also when the final flush
    /// creates files in parallel).
    fn part_file(&mut self, key: PairKey) -> PartFile {
        match self.open.remove(&key) {
            Some(part) => PartFile::Open(Box::new(part)),
            None => PartFile::New(self.name_part(key)),
        }
    }

    /// The path, relative to its table, of a new part file of `key`.
    fn name_part(&mut self, key: PairKey) -> String {
        self.sequence += 1;
        let file_name = format!("part-{}{}-{:05}.parquet", self.name_prefix, self.writer_id, self.sequence);
        match &self.tables[key.0].partition {
            Some(spec) => format!("{}/{file_name}", spec.directory(key.1)),
            None => file_name,
        }
    }

    fn record(&mut self, written: Written) {
        let output = &mut self.outputs[written.table];
        output.rows += written.rows;
        output.bytes += written.bytes;
        output.files.push(written.relative);
        self.written_paths.push(written.path);
    }
}

/// A part file with row groups written and its footer not yet.
struct OpenPart {
    table: usize,
    relative: String,
    path: PathBuf,
    writer: ParquetWriter<ReopenedFile>,
    rows: u64,
    /// Arrow size of the rows written, against [`PartLimits::target_file_bytes`].
    bytes: usize,
}

impl OpenPart {
    /// Creates the file `relative` of table `table`, with the writer properties suited to
    /// `samples`, the rows of its first row group.
    fn create(
        root: &Path,
        tables: &[TableLayout],
        table: usize,
        relative: String,
        samples: &[RecordBatch],
    ) -> Result<Self, SinkError> {
        let layout = &tables[table];
        let path = root.join(&layout.name).join(&relative);
        let io_error = |source| SinkError::File { path: path.clone(), source };
        fs::create_dir_all(path.parent().expect("part files sit in a table directory")).map_err(io_error)?;
        let file = File::create(&path).map_err(io_error)?;
        let properties = ParquetWriter::<File>::properties_for(samples);
        // Parquet's writer buffers small writes itself.
        let out = ReopenedFile { path: path.clone(), file: Some(file) };
        let writer = ParquetWriter::try_new_with(out, layout.schema.clone(), properties).map_err(naming(&path))?;
        Ok(OpenPart { table, relative, path, writer, rows: 0, bytes: 0 })
    }

    /// Encodes `pending` and appends it as one row group (more for over a million rows).
    fn append(&mut self, pending: &Pending) -> Result<(), SinkError> {
        for batch in &pending.batches {
            self.writer.write(batch).map_err(naming(&self.path))?;
            self.rows += batch.num_rows() as u64;
        }
        self.bytes += pending.bytes;
        self.writer.flush_row_group().map_err(naming(&self.path))?;
        self.writer.get_mut().release();
        Ok(())
    }

    /// Column chunks written, whose metadata waits for the footer.
    fn column_chunks(&self) -> usize {
        self.writer.flushed_column_chunks()
    }

    /// Writes the footer (the file is made durable by [`PartWriters::finish`]).
    fn close(self) -> Result<Written, SinkError> {
        // Flushed, and its descriptor closed when dropped.
        drop(self.writer.finish().map_err(naming(&self.path))?);
        let bytes =
            fs::metadata(&self.path).map_err(|source| SinkError::File { path: self.path.clone(), source })?.len();
        Ok(Written { table: self.table, relative: self.relative, path: self.path, rows: self.rows, bytes })
    }
}

/// Names `path` in an error writing it: the Parquet writer's errors, a full disk among
/// them, do not say which file they are about.
fn naming(path: &Path) -> impl Fn(SinkError) -> SinkError + '_ {
    move |error| {
        let source = match error {
            SinkError::Io(e) => e,
            SinkError::Parquet(ParquetError::External(e)) => match e.downcast::<io::Error>() {
                Ok(e) => *e,
                Err(e) => io::Error::other(e),
            },
            SinkError::Parquet(e) => io::Error::other(e),
            other => return other,
        };
        SinkError::File { path: path.to_path_buf(), source }
    }
}

/// A file written through a descriptor that is closed between row groups
/// ([`release`](Self::release)) and reopened, appending, by the next write.
struct ReopenedFile {
    path: PathBuf,
    file: Option<File>,
}

impl ReopenedFile {
    /// Closes the descriptor; call only with every buffered write flushed.
    fn release(&mut self) {
        self.file = None;
    }

    fn open(&mut self) -> io::Result<&mut File> {
        match &mut self.file {
            Some(file) => Ok(file),
            file @ None => Ok(file.insert(OpenOptions::new().append(true).open(&self.path)?)),
        }
    }
}

impl Write for ReopenedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.open()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.open()?.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().map_or(Ok(()), Write::flush)
    }
}

/// A pair's part file: open already, or still to be created under the name it holds.
enum PartFile {
    Open(Box<OpenPart>),
    New(String),
}

impl PartFile {
    /// The file in progress, created first if new, with the writer properties suited to
    /// `samples`, the rows of its first row group.
    fn open(
        self,
        root: &Path,
        tables: &[TableLayout],
        table: usize,
        samples: &[RecordBatch],
    ) -> Result<OpenPart, SinkError> {
        match self {
            PartFile::Open(part) => Ok(*part),
            PartFile::New(relative) => OpenPart::create(root, tables, table, relative, samples),
        }
    }
}

/// What the final flush does for one pair: write its last rows, if any, and close its file.
struct LastWrite {
    key: PairKey,
    file: PartFile,
    pending: Option<Pending>,
}

impl LastWrite {
    fn close(self, root: &Path, tables: &[TableLayout]) -> Result<Written, SinkError> {
        // A pair without a file in progress has rows: its file gets properties suited to them.
        let samples = self.pending.as_ref().map_or(&[][..], |pending| &pending.batches[..]);
        let mut part = self.file.open(root, tables, self.key.0, samples)?;
        if let Some(pending) = &self.pending {
            part.append(pending)?;
        }
        part.close()
    }
}

/// What a [`PartWriters`] wants done next ([`PartWriters::next_job`]).
pub enum NextJob {
    /// Encode this row group, then hand it back with [`PartWriters::complete`].
    Encode(RowGroupJob),
    /// Row groups of a budget's worth are being encoded: wait until one is completed.
    Wait,
    /// Nothing is due.
    Idle,
}

/// One pair's buffered rows and the part file they go to as a row group. Encoding needs no
/// access to the [`PartWriters`] that handed it out, so it can run while other threads keep
/// buffering rows there.
pub struct RowGroupJob {
    key: PairKey,
    file: PartFile,
    pending: Pending,
    /// The staging folder and the layouts of the writers that handed out the job.
    root: PathBuf,
    tables: Arc<Vec<TableLayout>>,
}

impl RowGroupJob {
    /// The (table index, partition) whose rows these are.
    #[must_use]
    pub fn pair(&self) -> (usize, PartitionValue) {
        self.key
    }

    /// Encodes the rows and appends them to the file (created first if new).
    #[must_use]
    pub fn encode(self) -> EncodedRowGroup {
        let RowGroupJob { key, file, pending, root, tables } = self;
        let result = file.open(&root, &tables, key.0, &pending.batches).and_then(|mut part| {
            let chunks_before = part.column_chunks();
            part.append(&pending)?;
            let new_chunks = part.column_chunks() - chunks_before;
            Ok((Box::new(part), new_chunks))
        });
        EncodedRowGroup { key, result }
    }
}

/// A [`RowGroupJob`] done: its file with the new row group and the column chunks it added,
/// or the error that stopped it.
pub struct EncodedRowGroup {
    key: PairKey,
    result: Result<(Box<OpenPart>, usize), SinkError>,
}

/// A part file written.
struct Written {
    table: usize,
    relative: String,
    path: PathBuf,
    rows: u64,
    bytes: u64,
}

#[cfg(test)]
#[path = "parts_tests.rs"]
mod tests;
