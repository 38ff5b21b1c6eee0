//! Micro-benchmarks that guard the stages of a load in review: every shipped view by
//! resource type, the code crosswalks, and Parquet encoding of the tables.
//!
//! ```text
//! cargo bench -p fhirhouse --bench micro              # all groups
//! cargo bench -p fhirhouse --bench micro -- views/    # one group
//! ```
//!
//! Reads `../shared/data/synthea-100p` when present, otherwise the bundled sample.
//! - `views/<Type>`: each line parsed and fed to every shipped view of its type through a
//!   [`ViewSet`], as a load's workers do (throughput in input bytes), next to
//!   `parse/<Type>`, the parse alone;
//! - `crosswalk/<table>`: the shipped crosswalk stage of a bound table (hash lookups of
//!   every code, the standard columns built, unmapped codes counted) over the table's
//!   batches (throughput in rows);
//! - `parquet/<table>`: the table's record batches, crosswalked, written to one zstd
//!   Parquet file in memory with the warehouse's writer settings (throughput in rows).

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use fhirhouse::load::Catalog;
use fhirhouse::sink::ParquetWriter;
use fhirhouse::terminology::{TableStage, UnmappedCounts};
use fhirhouse::view::ViewSet;

#[path = "common.rs"]
mod common;
use common::{export_dir, lines, parse};

/// Batches are cut at this many rows, as the load does.
const BATCH_ROWS: usize = 8192;

/// The export's lines by resource type (from `<Type>.000.ndjson` file names).
fn lines_by_type() -> BTreeMap<String, Vec<Vec<u8>>> {
    let dir = export_dir("micro");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).expect("export folder") {
        let path = entry.expect("folder entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some(resource_type) = name.strip_suffix(".000.ndjson") {
            out.insert(resource_type.to_owned(), lines(&path));
        }
    }
    out
}

fn views(c: &mut Criterion) {
    let catalog = Catalog::shipped().expect("shipped views compile");
    let mut scratch = Vec::new();
    let mut parser = fhirhouse::view::ResourceParser::default();
    for (resource_type, lines) in lines_by_type().into_iter().filter(|(t, _)| catalog.reads(t)) {
        let bytes: usize = lines.iter().map(Vec::len).sum();
        let mut set = ViewSet::new(catalog.views.iter().filter(|v| v.resource_type() == resource_type).cloned());
        let mut group = c.benchmark_group("views");
        group.throughput(Throughput::Bytes(bytes as u64));
        group.sample_size(10);
        group.bench_function(format!("parse/{resource_type}"), |b| {
            b.iter(|| {
                lines.iter().filter(|line| parse(&mut scratch, &mut parser, line).doc().as_object().is_some()).count()
            })
        });
        group.bench_function(format!("views/{resource_type}"), |b| {
            b.iter(|| {
                let mut rows = 0;
                for line in &lines {
                    let parsed = parse(&mut scratch, &mut parser, line);
                    rows += set.append(&resource_type, parsed.doc()).expect("shipped views evaluate");
                    cut_full_batches(&mut set, BATCH_ROWS);
                }
                cut_full_batches(&mut set, 0);
                rows
            })
        });
        group.finish();
    }
}

/// Finishes (and drops) every builder holding more than `rows` rows.
fn cut_full_batches(set: &mut ViewSet, rows: usize) -> Vec<RecordBatch> {
    set.builders_mut().iter_mut().filter(|b| b.len() > rows).map(|b| b.finish()).collect()
}

/// Every table's rows over the export, in batches of [`BATCH_ROWS`], with the crosswalk
/// stage of the shipped mappings when the table has one.
fn table_batches() -> Vec<(String, Option<Arc<TableStage>>, Vec<RecordBatch>)> {
    let catalog = Catalog::shipped_crosswalked().expect("shipped views and mappings compile");
    let mut set = ViewSet::new(catalog.views.iter().cloned());
    let mut scratch = Vec::new();
    let mut parser = fhirhouse::view::ResourceParser::default();
    for (resource_type, lines) in lines_by_type() {
        for line in &lines {
            let parsed = parse(&mut scratch, &mut parser, line);
            set.append(&resource_type, parsed.doc()).expect("shipped views evaluate");
        }
    }
    let mut tables = Vec::new();
    for (i, builder) in set.builders_mut().iter_mut().enumerate() {
        let batch = builder.finish();
        if batch.num_rows() == 0 {
            continue;
        }
        let batches = (0..batch.num_rows())
            .step_by(BATCH_ROWS)
            .map(|start| batch.slice(start, BATCH_ROWS.min(batch.num_rows() - start)))
            .collect();
        tables.push((catalog.layouts[i].name.clone(), catalog.stages[i].clone(), batches));
    }
    tables
}

fn rows(batches: &[RecordBatch]) -> u64 {
    batches.iter().map(|b| b.num_rows() as u64).sum()
}

fn crosswalk(c: &mut Criterion) {
    let mut group = c.benchmark_group("crosswalk");
    group.sample_size(10);
    for (table, stage, batches) in table_batches() {
        let Some(stage) = stage else { continue };
        group.throughput(Throughput::Elements(rows(&batches)));
        group.bench_function(table, |b| {
            b.iter(|| {
                let mut counts = UnmappedCounts::default();
                let out: Vec<RecordBatch> =
                    batches.iter().map(|batch| stage.apply(batch, Some(&mut counts)).expect("bound columns")).collect();
                (out, counts)
            })
        });
    }
    group.finish();
}

fn parquet(c: &mut Criterion) {
    let mut group = c.benchmark_group("parquet");
    group.sample_size(10);
    for (table, stage, batches) in table_batches() {
        let batches: Vec<RecordBatch> = match &stage {
            Some(stage) => batches.iter().map(|b| stage.apply(b, None).expect("bound columns")).collect(),
            None => batches,
        };
        let schema = batches[0].schema();
        group.throughput(Throughput::Elements(rows(&batches)));
        group.bench_function(table, |b| {
            b.iter(|| {
                let mut writer = ParquetWriter::try_new(Vec::new(), Arc::clone(&schema)).expect("schema fits Parquet");
                for batch in &batches {
                    writer.write(batch).expect("batch follows the schema");
                }
                writer.finish().expect("in-memory write").len()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, views, crosswalk, parquet);
criterion_main!(benches);
