//! Part writers shared by the threads that make the rows, each encoding what it made due.
//!
//! A [`SharedPartWriters`] holds one [`PartWriters`] behind a lock. A thread hands it rows
//! ([`write_all`](SharedPartWriters::write_all)) and, when that makes a row group due (the
//! buffers over the memory budget, or a pair at the file size target), takes the row group
//! out and encodes it itself with the lock released, while the other threads go on making
//! rows and buffering them. So the threads that make the rows are the only ones that
//! encode: no extra thread competes with them for the cores, and no core idles while a
//! single writer thread encodes and the others wait for room in a channel to it.
//!
//! Memory stays bounded: rows wait in the buffers up to the memory budget, and once row
//! groups of a budget's worth are being encoded, a thread that finds more due waits for
//! one of them to finish instead of taking more out (back-pressure).

use std::sync::{Condvar, Mutex, MutexGuard};

use arrow::record_batch::RecordBatch;

use super::partition::PartitionValue;
use super::parts::{NextJob, PartWriters, TableOutput};
use super::SinkError;

/// A [`PartWriters`] that several threads write to at once, each encoding the row groups
/// its rows make due.
///
/// ```
/// use std::sync::Arc;
/// use arrow::array::Int32Array;
/// use arrow::datatypes::{DataType, Field, Schema};
/// use arrow::record_batch::RecordBatch;
/// use fhirhouse::sink::parts::{PartLimits, PartWriters, TableLayout};
/// use fhirhouse::sink::shared_parts::SharedPartWriters;
///
/// let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
/// let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
/// let batch = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
/// let dir = tempfile::tempdir().unwrap();
/// let writers = SharedPartWriters::new(PartWriters::new(dir.path().into(), tables, 0, PartLimits::default()));
/// std::thread::scope(|scope| {
///     for _ in 0..4 {
///         scope.spawn(|| writers.write_all(vec![(0, None, batch.clone())]).unwrap());
///     }
/// });
/// let outputs = writers.finish().unwrap();
/// assert_eq!(outputs[0].rows, 12);
/// ```
pub struct SharedPartWriters {
    writers: Mutex<PartWriters>,
    /// Signalled whenever a row group is handed back, for threads waiting under
    /// [`NextJob::Wait`].
    completed: Condvar,
}

impl SharedPartWriters {
    /// Shares `writers`.
    #[must_use]
    pub fn new(writers: PartWriters) -> Self {
        SharedPartWriters { writers: Mutex::new(writers), completed: Condvar::new() }
    }

    /// Buffers `batches` (table index, partition, rows), then encodes on this thread every
    /// row group they make due, and returns once none is.
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error writing a row group; the files are then incomplete and the
    /// load must not publish (nor call [`finish`](Self::finish)).
    pub fn write_all(&self, batches: Vec<(usize, PartitionValue, RecordBatch)>) -> Result<(), SinkError> {
        let mut writers = self.lock();
        for (table, partition, batch) in &batches {
            writers.buffer(*table, *partition, batch);
        }
        drop(batches);
        loop {
            match writers.next_job() {
                NextJob::Encode(job) => {
                    drop(writers);
                    let mut unwinding = Abandon { shared: self, pair: Some(job.pair()) };
                    let encoded = job.encode();
                    unwinding.pair = None;
                    writers = self.lock();
                    let completed = writers.complete(encoded);
                    self.completed.notify_all();
                    completed?;
                }
                NextJob::Wait => {
                    writers = self.completed.wait(writers).expect("never poisoned: no panics while held");
                }
                NextJob::Idle => return Ok(()),
            }
        }
    }

    /// Writes the last row groups and closes every file ([`PartWriters::finish`]), once no
    /// thread writes any more.
    ///
    /// # Errors
    ///
    /// An I/O or Parquet error writing a file.
    pub fn finish(self) -> Result<Vec<TableOutput>, SinkError> {
        self.writers.into_inner().expect("never poisoned: no panics while held").finish()
    }

    fn lock(&self) -> MutexGuard<'_, PartWriters> {
        self.writers.lock().expect("never poisoned: no panics while held")
    }
}

/// Abandons a row group whose encoding unwinds (a panic in the Parquet writer), unless
/// disarmed (`pair` taken) once it is encoded: the threads waiting for a row group to
/// finish are woken instead of waiting for ever, and the panic then fails the load.
struct Abandon<'a> {
    shared: &'a SharedPartWriters,
    pair: Option<(usize, PartitionValue)>,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        let Some(pair) = self.pair.take() else { return };
        if let Ok(mut writers) = self.shared.writers.lock() {
            writers.abandon(pair);
        }
        self.shared.completed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::Int32Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use std::sync::Arc;

    use super::*;
    use crate::sink::parts::{PartLimits, TableLayout};

    fn table() -> (Arc<Vec<TableLayout>>, RecordBatch) {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, false)]));
        let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
        let batch = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from((0..100).collect::<Vec<_>>()))]);
        (tables, batch.unwrap())
    }

    fn rows_and_row_groups(path: &std::path::Path) -> (i64, usize) {
        let reader = parquet::file::reader::SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
        let metadata = parquet::file::reader::FileReader::metadata(&reader);
        (metadata.file_metadata().num_rows(), metadata.num_row_groups())
    }

    /// Over budget at nearly every write, threads encode row groups of the partitions
    /// (several at once under a budget of a few batches; one at a time, the others waiting,
    /// under a budget of nothing), and each partition's rows still end in one file with
    /// every row, whatever the order in which the threads got there. No thread waits for
    /// ever.
    #[test]
    fn threads_encode_row_groups_under_any_budget_and_lose_no_rows() {
        let (tables, batch) = table();
        for memory_budget in [0, 3 * batch.get_array_memory_size()] {
            let dir = tempfile::tempdir().unwrap();
            let limits = PartLimits { memory_budget, ..PartLimits::default() };
            let writers = SharedPartWriters::new(PartWriters::new(dir.path().into(), tables.clone(), 0, limits));
            std::thread::scope(|scope| {
                for thread in 0..4 {
                    let (writers, batch) = (&writers, &batch);
                    scope.spawn(move || {
                        for round in 0..25 {
                            let year = 2000 + (thread + round) % 3;
                            writers.write_all(vec![(0, Some(year), batch.clone())]).unwrap();
                        }
                    });
                }
            });
            let outputs = writers.finish().unwrap();
            assert_eq!((outputs[0].rows, outputs[0].files.len()), (10_000, 3), "{:?}", outputs[0].files);
            let mut total = 0;
            for file in &outputs[0].files {
                let (rows, row_groups) = rows_and_row_groups(&dir.path().join("t").join(file));
                assert!(row_groups > 1, "{file}: rows were encoded before the end");
                total += rows;
            }
            assert_eq!(total, 10_000, "budget {memory_budget}");
        }
    }

    /// A row group that fails to encode fails the write that took it out, and leaves
    /// nothing waiting for it: later writes return instead of waiting forever.
    #[test]
    fn a_failed_row_group_is_reported_and_waits_for_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, batch) = table();
        // A file where the table's folder should be: every part file fails to be created.
        std::fs::write(dir.path().join("t"), b"").unwrap();
        let limits = PartLimits { memory_budget: 1, ..PartLimits::default() };
        let writers = SharedPartWriters::new(PartWriters::new(dir.path().into(), tables, 0, limits));
        let error = writers.write_all(vec![(0, Some(2001), batch.clone())]).unwrap_err();
        assert!(error.to_string().contains(&dir.path().join("t").display().to_string()), "{error}");
        assert!(writers.write_all(vec![(0, Some(2002), batch)]).is_err());
    }
}
