//! Applies confirmed duplicates to a staged load: tables of the type drop every row of the
//! repeated keys and get the winners' rows back; losers become dead letters.
//!
//! Rows are found by the view's resource-key column (a top-level column whose path is
//! `getResourceKey()`). Every shipped view has one; a user's view without one keeps the
//! duplicates of its type, which the report says.

use std::collections::HashSet;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arrow::array::{Array, BooleanArray, StringArray};
use arrow::compute::filter_record_batch;
use arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::ParquetRecordBatchReader;
use serde::Serialize;

use super::catalog::Catalog;
use super::dead_letter::{DeadLetterWriter, DeadLine, Reason};
use super::dedup::{ids_by_type, Duplicate};
use super::PipelineOutput;
use crate::sink::partition::PartitionValue;
use crate::sink::parts::{PartLimits, PartWriters, TableOutput};
use crate::sink::ParquetWriter;
use crate::source::ExportFile;
use crate::terminology::UnmappedCounts;
use crate::view::{CompiledView, Json, ViewSet};

/// How many duplicate keys the report lists by name.
const EXAMPLES: usize = 10;

/// What deduplication did, for the run report.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct DuplicateReport {
    /// Keys (type and id) that occurred more than once.
    pub keys: u64,
    /// Lines superseded by a newer occurrence (dead-lettered).
    pub superseded: u64,
    /// A few of them: `Patient/123: file:line wins over file:line`.
    pub examples: Vec<String>,
    /// Types whose duplicates were kept because a view of theirs has no resource-key column.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kept_in_types: Vec<String>,
}

/// Applies `duplicates` to the staged tables and the counts; see the module docs.
pub(crate) fn apply(
    duplicates: &[Duplicate],
    catalog: &Catalog,
    files: &[ExportFile],
    staging: &Path,
    pipeline: &mut PipelineOutput,
    dead_letters: &mut DeadLetterWriter,
) -> anyhow::Result<DuplicateReport> {
    let mut report = DuplicateReport { keys: duplicates.len() as u64, ..DuplicateReport::default() };
    let mut ids = ids_by_type(duplicates);
    let tables_of = |t: &str| -> Vec<usize> {
        (0..catalog.views.len()).filter(|&i| catalog.views[i].resource_type() == t).collect()
    };
    ids.retain(|resource_type, _| {
        let keyed = tables_of(resource_type).iter().all(|&i| resource_key_column(&catalog.views[i]).is_some());
        if !keyed {
            tracing::warn!(resource_type, "duplicates kept: a view of this type has no getResourceKey() column");
            report.kept_in_types.push(resource_type.clone());
        }
        keyed
    });
    report.kept_in_types.sort();

    let mut winners_writer =
        PartWriters::new(staging.to_path_buf(), catalog.layouts.clone(), 9999, PartLimits::default());
    // The rows each superseded line made, by duplicate (as `duplicates` orders them) and loser.
    let mut loser_rows: Vec<Vec<u64>> = vec![Vec::new(); duplicates.len()];
    for (resource_type, type_ids) in &ids {
        let tables = tables_of(resource_type);
        for &table in &tables {
            let column = resource_key_column(&catalog.views[table]).expect("checked above");
            let dir = staging.join(&catalog.layouts[table].name);
            drop_rows(&dir, &mut pipeline.outputs[table], column, type_ids, &mut |_| Ok(()))?;
        }
        let of_type: Vec<(usize, &Duplicate)> =
            duplicates.iter().enumerate().filter(|(_, d)| &d.resource_type == resource_type).collect();
        // Not counted again for _dq_unmapped_codes: the winner's rows were counted when
        // they were first loaded.
        let winners = of_type.iter().map(|(_, d)| d.winner_bytes.as_slice());
        for (table, partition, batch) in crosswalked_rows(catalog, &tables, resource_type, winners, None)?.1 {
            winners_writer.write(table, partition, &batch)?;
        }
        // The losers' rows were counted too, and are gone from the tables now: so are their
        // unmapped codes, and their rows come off their files' counts below.
        let mut counted = UnmappedCounts::default();
        let losers = of_type.iter().flat_map(|(_, d)| d.losers.iter().map(|(_, bytes)| bytes.as_slice()));
        let mut rows = crosswalked_rows(catalog, &tables, resource_type, losers, Some(&mut counted))?.0.into_iter();
        for (i, d) in &of_type {
            loser_rows[*i] = rows.by_ref().take(d.losers.len()).collect();
        }
        pipeline.collected.unmapped.subtract(&counted);
    }
    for (total, added) in pipeline.outputs.iter_mut().zip(winners_writer.finish()?) {
        total.rows += added.rows;
        total.bytes += added.bytes;
        total.files.extend(added.files);
    }

    for (i, d) in duplicates.iter().enumerate().filter(|(_, d)| ids.contains_key(&d.resource_type)) {
        let winner = &files[d.winner.file];
        let winner_at = format!("{}:{}", winner.location, d.winner.line);
        if report.examples.len() < EXAMPLES {
            let losers: Vec<String> =
                d.losers.iter().map(|(o, _)| format!("{}:{}", files[o.file].location, o.line)).collect();
            report.examples.push(format!("{}/{}: {winner_at} wins over {}", d.resource_type, d.id, losers.join(", ")));
        }
        for ((loser, bytes), &rows) in d.losers.iter().zip(&loser_rows[i]) {
            let file_report = &mut pipeline.collected.files[loser.file];
            file_report.loaded -= 1;
            file_report.rows -= rows;
            file_report.dead_letters += 1;
            let reason =
                Reason::SupersededDuplicate { key: format!("{}/{}", d.resource_type, d.id), winner: winner_at.clone() };
            *file_report.dead_by_reason.entry(reason.code().to_owned()).or_default() += 1;
            let file = &files[loser.file];
            let dead = DeadLine { index: 0, offset: loser.offset, reason, bytes: bytes.clone() };
            dead_letters.write(loser.file, &file.name(), &file.location, loser.line, &dead)?;
            report.superseded += 1;
        }
    }
    Ok(report)
}

/// A batch of one table (by index) and one partition.
type TableBatch = (usize, PartitionValue, RecordBatch);

/// The rows of the views `tables` (all of `resource_type`) for `lines`: how many each line
/// made, and the rows crosswalked (counting unmapped codes into `counts` when given) and
/// split by partition.
fn crosswalked_rows<'a>(
    catalog: &Catalog,
    tables: &[usize],
    resource_type: &str,
    lines: impl Iterator<Item = &'a [u8]>,
    mut counts: Option<&mut UnmappedCounts>,
) -> anyhow::Result<(Vec<u64>, Vec<TableBatch>)> {
    let mut views = ViewSet::new(tables.iter().map(|&i| catalog.views[i].clone()));
    let mut per_line = Vec::new();
    for line in lines {
        let mut bytes = line.to_vec();
        let tape = simd_json::to_tape(&mut bytes).context("re-reading a duplicate")?;
        let rows = views
            .append(resource_type, Json::root(&tape))
            .map_err(|e| anyhow::anyhow!("re-reading a duplicate: {e}"))?;
        per_line.push(rows as u64);
    }
    let mut rows = Vec::new();
    for (builder, &table) in views.builders_mut().iter_mut().zip(tables) {
        for (partition, batch) in catalog.finish_batch(table, builder.finish(), counts.as_deref_mut())? {
            rows.push((table, partition, batch));
        }
    }
    Ok((per_line, rows))
}

/// The index of the view's top-level `getResourceKey()` column, if it has one.
pub(crate) fn resource_key_column(view: &CompiledView) -> Option<usize> {
    let selects = view.definition().get("select")?.as_array()?;
    let iterates = |s: &serde_json::Value| ["forEach", "forEachOrNull", "repeat"].iter().any(|k| s.get(k).is_some());
    let name = selects.iter().filter(|s| !iterates(s)).find_map(|s| {
        s.get("column")?
            .as_array()?
            .iter()
            .find_map(|c| (c.get("path")?.as_str()?.trim() == "getResourceKey()").then(|| c.get("name")?.as_str())?)
    })?;
    view.schema().index_of(name).ok()
}

/// What [`drop_rows`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct DropStats {
    /// Rows removed.
    pub rows: u64,
    /// Files rewritten without those rows (or removed, when no row was left).
    pub files_rewritten: u64,
}

/// Rewrites the part files of one table without the rows whose key is in `ids`. Only the key
/// column is read first; a file without such a key is left as it is. The rows taken out are
/// handed to `removed`, a batch at a time.
pub(crate) fn drop_rows(
    dir: &Path,
    output: &mut TableOutput,
    key_column: usize,
    ids: &HashSet<String>,
    removed: &mut dyn FnMut(&RecordBatch) -> anyhow::Result<()>,
) -> anyhow::Result<DropStats> {
    let mut stats = DropStats::default();
    if ids.is_empty() {
        return Ok(stats);
    }
    let mut kept_files = Vec::with_capacity(output.files.len());
    for relative in std::mem::take(&mut output.files) {
        let path = dir.join(&relative);
        if !holds_any(&path, key_column, ids)? {
            kept_files.push(relative);
            continue;
        }
        let reader = ParquetRecordBatchReader::try_new(File::open(&path)?, 64 * 1024)?;
        let schema = reader.schema();
        let mut batches = Vec::new();
        let mut removed_rows = 0;
        for batch in reader {
            let batch = batch?;
            let keep = keep_mask(batch.column(key_column), ids)?;
            if keep.false_count() > 0 {
                removed_rows += keep.false_count() as u64;
                removed(&filter_record_batch(&batch, &arrow::compute::not(&keep)?)?)?;
            }
            batches.push(filter_record_batch(&batch, &keep)?);
        }
        stats.rows += removed_rows;
        stats.files_rewritten += 1;
        output.rows -= removed_rows;
        output.bytes -= std::fs::metadata(&path)?.len();
        let rows: usize = batches.iter().map(arrow::record_batch::RecordBatch::num_rows).sum();
        if rows == 0 {
            std::fs::remove_file(&path)?;
            continue;
        }
        let tmp = path.with_extension("parquet.tmp");
        let mut writer = ParquetWriter::try_new(File::create(&tmp)?, Arc::clone(&schema))?;
        for batch in &batches {
            writer.write(batch)?;
        }
        writer.finish()?.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        output.bytes += std::fs::metadata(&path)?.len();
        kept_files.push(relative);
    }
    output.files = kept_files;
    Ok(stats)
}

/// `false` for the rows whose key is in `ids`.
fn keep_mask(keys: &arrow::array::ArrayRef, ids: &HashSet<String>) -> anyhow::Result<BooleanArray> {
    let keys = arrow::compute::cast(keys, &arrow::datatypes::DataType::Utf8)?;
    let keys = keys.as_any().downcast_ref::<StringArray>().expect("cast to Utf8");
    Ok(keys.iter().map(|k| Some(!k.is_some_and(|k| ids.contains(k)))).collect())
}

/// Whether the file at `path` has a row whose key is in `ids`, reading only the key column.
fn holds_any(path: &Path, key_column: usize, ids: &HashSet<String>) -> anyhow::Result<bool> {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(File::open(path)?)?;
    let mask = parquet::arrow::ProjectionMask::roots(builder.parquet_schema(), [key_column]);
    for batch in builder.with_projection(mask).with_batch_size(64 * 1024).build()? {
        if keep_mask(batch?.column(0), ids)?.false_count() > 0 {
            return Ok(true);
        }
    }
    Ok(false)
}
