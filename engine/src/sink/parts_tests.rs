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
    let (tables, b) = int_table();
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

fn row_groups(path: &std::path::Path) -> usize {
    let reader = parquet::file::reader::SerializedFileReader::new(File::open(path).unwrap()).unwrap();
    parquet::file::reader::FileReader::metadata(&reader).num_row_groups()
}

fn int_table() -> (Arc<Vec<TableLayout>>, RecordBatch) {
    let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int32, true)]));
    let tables = Arc::new(vec![TableLayout { name: "t".into(), schema: schema.clone(), partition: None }]);
    let b = RecordBatch::try_new(schema, vec![Arc::new(Int32Array::from(vec![1, 2, 3]))]).unwrap();
    (tables, b)
}

#[test]
fn over_budget_rows_go_out_as_row_groups_of_one_file_per_partition() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let limits = PartLimits { target_file_bytes: usize::MAX, memory_budget: 1, ..PartLimits::default() };
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
    for year in [2001, 2002, 2003, 2001, 2004, 2001] {
        writers.write(0, Some(year), &b).unwrap();
    }
    let mut out = writers.finish().unwrap();
    out[0].files.sort();
    assert_eq!(out[0].rows, 18);
    assert_eq!(out[0].files.len(), 4, "one file per partition: {:?}", out[0].files);
    // Files are numbered as they are opened: 2001's is the first.
    let path = |i: usize| dir.path().join("t").join(&out[0].files[i]);
    assert_eq!(out[0].files[0], "part-0-00001.parquet");
    assert_eq!((read_rows(&path(0)), row_groups(&path(0))), (9, 3), "every write of 2001 is a row group");
    let total: usize = (0..4).map(|i| read_rows(&path(i))).sum();
    assert_eq!(total, 18);
}

#[test]
fn a_part_file_that_cannot_be_written_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let limits = PartLimits { target_file_bytes: usize::MAX, memory_budget: 1, ..PartLimits::default() };
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
    writers.write(0, None, &b).unwrap();
    // The file in progress is reopened for the next row group: make that fail.
    let path = dir.path().join("t/part-0-00001.parquet");
    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    let err = match writers.write(0, None, &b) {
        Err(e) => e,
        Ok(()) => writers.finish().unwrap_err(),
    };
    assert!(matches!(&err, SinkError::File { path: p, .. } if *p == path), "{err}");
}

#[test]
fn a_pair_being_encoded_is_not_handed_out_twice_and_an_abandoned_one_is_not_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let size = batch_cost(&b, 1);
    let limits = PartLimits { memory_budget: 5 * size / 2, ..PartLimits::default() };
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
    for year in [2001, 2001, 2002] {
        writers.buffer(0, Some(year), &b);
    }
    let NextJob::Encode(first) = writers.next_job() else { panic!("over budget: a row group is due") };
    assert_eq!(first.pair(), (0, Some(2001)), "the largest pair");
    // 2001 is again the largest, but it is being encoded: 2002 goes next.
    writers.buffer(0, Some(2001), &b);
    writers.buffer(0, Some(2001), &b);
    let NextJob::Encode(second) = writers.next_job() else { panic!("over budget, 2002 is free") };
    assert_eq!(second.pair(), (0, Some(2002)));
    // Over budget again, with a budget's worth being encoded: wait.
    writers.buffer(0, Some(2001), &b);
    assert!(matches!(writers.next_job(), NextJob::Wait));
    writers.abandon(first.pair());
    writers.abandon(second.pair());
    let NextJob::Encode(again) = writers.next_job() else { panic!("nothing to wait for") };
    writers.complete(again.encode()).unwrap();
    assert!(matches!(writers.next_job(), NextJob::Idle));
    assert_eq!(writers.finish().unwrap()[0].rows, 9, "the abandoned jobs' rows are lost");
}

#[test]
fn past_the_footer_budget_the_file_with_the_most_row_groups_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let limits = PartLimits { memory_budget: 1, max_open_column_chunks: 3, ..PartLimits::default() };
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, limits);
    // One column, so a row group is one column chunk: the fourth row group in progress
    // (2001's third) closes 2001's file, and its next rows start a new one.
    for year in [2001, 2002, 2001, 2001, 2001] {
        writers.write(0, Some(year), &b).unwrap();
    }
    let mut out = writers.finish().unwrap();
    assert_eq!(out[0].files[0], "part-0-00001.parquet", "closed before the end: {:?}", out[0].files);
    let path = |f: &str| dir.path().join("t").join(f);
    assert_eq!((read_rows(&path("part-0-00001.parquet")), row_groups(&path("part-0-00001.parquet"))), (9, 3));
    out[0].files.sort();
    assert_eq!(out[0].files, ["part-0-00001.parquet", "part-0-00002.parquet", "part-0-00003.parquet"]);
    let total: usize = out[0].files.iter().map(|f| read_rows(&path(f))).sum();
    assert_eq!((out[0].rows, total), (15, 15));
}

/// Every pair's cost is its batches' costs, and the buffers' the pairs', however the batches
/// were concatenated.
fn assert_costs_add_up(writers: &PartWriters) {
    let mut total = 0;
    for ((table, _), pending) in &writers.pending {
        let cost: usize = pending.batches.iter().map(|b| batch_cost(b, writers.arrays[*table])).sum();
        assert_eq!(pending.bytes, cost);
        total += cost;
    }
    assert_eq!(writers.buffered, total);
}

#[test]
fn one_row_batches_are_concatenated_as_they_arrive_and_keep_their_order() {
    // Before: every batch was kept as it came, so an export of 100,000 one-line files left
    // 100,000 batches of a row each waiting here, each costing far more than its row.
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, PartLimits::default());
    let rows = 20_000;
    for i in 0..rows {
        let year = [2001, 2002][i % 2];
        writers.buffer(0, Some(year), &b.slice(i % 3, 1));
    }
    let batches: usize = writers.pending.values().map(|p| p.batches.len()).sum();
    assert!(batches <= rows / 64, "{batches} batches held for {rows} one-row batches");
    let smallest = writers
        .pending
        .values()
        .flat_map(|p| &p.batches[..p.batches.len() - p.small_tail])
        .map(RecordBatch::num_rows)
        .min();
    assert!(smallest >= Some(SMALL_ROWS), "no small batches before the last run: {smallest:?}");
    assert_costs_add_up(&writers);
    assert!(writers.buffered < rows * 64, "{} bytes buffered for {rows} rows of an int", writers.buffered);
    let out = writers.finish().unwrap();
    assert_eq!(out[0].rows, rows as u64);
    // The rows of each partition in the order they came.
    for (i, file) in out[0].files.iter().enumerate() {
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(
            File::open(dir.path().join("t").join(file)).unwrap(),
            4096,
        )
        .unwrap();
        let values: Vec<i32> = reader
            .flat_map(|b| b.unwrap().column(0).as_any().downcast_ref::<Int32Array>().unwrap().values().to_vec())
            .collect();
        let expected: Vec<i32> = (0..rows).filter(|r| r % 2 == i).map(|r| [1, 2, 3][r % 3]).collect();
        assert_eq!(values, expected, "{file}");
    }
}

#[test]
fn large_batches_are_kept_as_they_came_and_small_ones_between_them_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let limits = PartLimits::default();
    let mut writers = PartWriters::new(dir.path().to_path_buf(), layout(), 0, limits);
    let big = batch(SMALL_ROWS);
    let mut expected = Vec::new();
    for round in 0..3 {
        writers.buffer(0, None, &big);
        expected.push(big.clone());
        for i in 0..SMALL_RUN + 3 {
            let small = batch(1 + (round + i) % 4);
            writers.buffer(0, None, &small);
            expected.push(small);
        }
    }
    let pending = &writers.pending[&(0, None)];
    // The large ones are the very batches handed in, not copies, and each run of small ones
    // after them is down to a batch and the few since.
    let rows: Vec<usize> = pending.batches.iter().map(RecordBatch::num_rows).collect();
    let runs = rows.split(|&n| n == SMALL_ROWS).map(<[usize]>::len).collect::<Vec<_>>();
    assert_eq!(runs, [0, 4, 4, 4], "{rows:?}");
    let large = pending.batches.iter().filter(|b| b.num_rows() == SMALL_ROWS);
    assert!(large.map(|b| Arc::ptr_eq(b.column(0), big.column(0))).eq([true; 3]));
    let kept = arrow::compute::concat_batches(&big.schema(), &pending.batches).unwrap();
    let expected = arrow::compute::concat_batches(&big.schema(), &expected).unwrap();
    assert_eq!(kept, expected);
    assert_costs_add_up(&writers);
}

#[test]
fn small_batches_spread_over_many_partitions_are_concatenated_too() {
    // Each of 500 partitions gets ten one-row batches, too few for a run of its own, but
    // together they are five thousand.
    let dir = tempfile::tempdir().unwrap();
    let (tables, b) = int_table();
    let mut writers = PartWriters::new(dir.path().to_path_buf(), tables, 0, PartLimits::default());
    let mut most = 0;
    for _ in 0..10 {
        for year in 0..500 {
            writers.buffer(0, Some(year), &b.slice(0, 1));
            most = most.max(writers.pending.values().map(|p| p.batches.len()).sum::<usize>());
        }
    }
    assert!(most <= SMALL_BATCHES, "{most} batches held at once");
    assert!(writers.pending.values().all(|p| p.batches.len() <= 2));
    assert_eq!(writers.small_batches, writers.pending.values().map(|p| p.small_tail).sum::<usize>());
    assert_costs_add_up(&writers);
    let out = writers.finish().unwrap();
    assert_eq!((out[0].rows, out[0].files.len()), (5000, 500));
}
