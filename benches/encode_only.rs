//! The Parquet encoding of a load, measured alone: every part file of a warehouse is read
//! into memory, then written again (to memory) with the settings a load uses, and only the
//! writing is timed. Beside `fhirhouse scan` (the parse alone) it bounds what a load could
//! reach if its views, crosswalks and partitioning cost nothing: the end-to-end harness
//! uses the two to report that bound.
//!
//! ```text
//! cargo bench -p fhirhouse --bench encode_only -- <warehouse> [--json]
//! ```
//!
//! One thread, so its seconds are CPU seconds. Each file is written as one writer writes it
//! (its properties chosen from its rows by [`ParquetWriter::properties_for`]), but
//! in as few row groups as Parquet allows, so the figure is a floor: the load cuts row
//! groups where its memory budget says.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use fhirhouse::sink::ParquetWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Rows per batch handed to the writer, as a load's workers cut them.
const BATCH_ROWS: usize = 16 * 1024;

/// What was re-encoded, and how long the encoding took.
#[derive(Default)]
struct Totals {
    files: usize,
    rows: usize,
    bytes: usize,
    encoding: Duration,
}

fn main() {
    // `cargo bench` passes `--bench`; with no warehouse there is nothing to measure.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let Some(warehouse) = args.iter().find(|a| !a.starts_with("--")) else {
        eprintln!(
            "encode_only: no warehouse given (cargo bench -p fhirhouse --bench encode_only -- <warehouse>); skipped"
        );
        return;
    };
    let mut files = Vec::new();
    collect_part_files(Path::new(warehouse), &mut files);
    files.sort();
    let mut totals = Totals::default();
    for path in &files {
        let batches = read_batches(path);
        if batches.is_empty() {
            continue;
        }
        let started = Instant::now();
        let encoded = encode(&batches);
        totals.encoding += started.elapsed();
        totals.files += 1;
        totals.rows += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        totals.bytes += encoded;
    }
    let seconds = totals.encoding.as_secs_f64();
    if json {
        println!(
            "{{\"files\":{},\"rows\":{},\"parquet_bytes\":{},\"encode_seconds\":{seconds:.4}}}",
            totals.files, totals.rows, totals.bytes
        );
    } else {
        println!(
            "{} part files, {} rows, {:.1} MB of Parquet: encoded in {seconds:.3} s on one thread",
            totals.files,
            totals.rows,
            totals.bytes as f64 / 1e6
        );
    }
}

/// The Parquet files of every table of `warehouse` (table folders are links into the
/// current snapshot; the engine's own `_fhirhouse` folder is skipped).
fn collect_part_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("folder entry").path();
        if path.file_name().is_some_and(|name| name == "_fhirhouse") {
            continue;
        }
        if path.is_dir() {
            collect_part_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "parquet") {
            out.push(path);
        }
    }
}

fn read_batches(path: &Path) -> Vec<RecordBatch> {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    ParquetRecordBatchReaderBuilder::try_new(file)
        .and_then(|builder| builder.with_batch_size(BATCH_ROWS).build())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `batches` as one Parquet file in memory; returns its size.
fn encode(batches: &[RecordBatch]) -> usize {
    let properties = ParquetWriter::<Vec<u8>>::properties_for(batches);
    let mut writer = ParquetWriter::try_new_with(Vec::new(), batches[0].schema(), properties)
        .expect("the schema was read from Parquet");
    for batch in batches {
        writer.write(batch).expect("writing to memory");
    }
    writer.finish().expect("writing to memory").len()
}
