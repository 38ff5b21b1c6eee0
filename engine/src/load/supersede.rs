//! Applies confirmed duplicates to a staged load: tables of the type drop every row of the
//! repeated keys and get the winners' rows back; losers become dead letters.
//!
//! Rows are found by the view's resource-key column (a top-level column whose path is
//! `getResourceKey()`). Every shipped view has one; a user's view without one keeps the
//! duplicates of its type, which the report says.
//!
//! Memory does not grow with the duplicates: only their positions are kept, and their lines
//! are read again a type at a time (each file in one pass), their rows built and written out
//! a bounded batch at a time, and the part files rewritten as they are read.

use std::collections::{HashMap, HashSet};
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
use super::dedup::{ids_by_type, read_lines, Duplicate};
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

/// Lines whose rows are built before they are written out (or, for losers, counted and
/// dropped): a batch of this many lines or [`BATCH_BYTES`] of them, whichever comes first,
/// so that memory does not grow with the number of duplicates.
const BATCH_LINES: usize = 4096;
/// See [`BATCH_LINES`].
const BATCH_BYTES: usize = 8 << 20;

/// Rows the winners' part writers buffer before writing a row group: duplicates are
/// usually few, and a smaller budget than the load's bounds memory when they are not.
const WINNERS_MEMORY_BUDGET: usize = 32 << 20;

/// Applies `duplicates` to the staged tables and the counts; see the module docs. The lines
/// are read again from `files`, a type at a time, each file in one pass.
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

    let limits = PartLimits { memory_budget: WINNERS_MEMORY_BUDGET, ..PartLimits::default() };
    let mut winners_writer = PartWriters::new(staging.to_path_buf(), catalog.layouts.clone(), 9999, limits);
    // Sorted for a deterministic order of the winners' rows and dead letters.
    let mut types: Vec<(&String, &HashSet<String>)> = ids.iter().collect();
    types.sort_by_key(|(resource_type, _)| *resource_type);
    for (resource_type, type_ids) in types {
        let tables = tables_of(resource_type);
        for &table in &tables {
            let column = resource_key_column(&catalog.views[table]).expect("checked above");
            let dir = staging.join(&catalog.layouts[table].name);
            drop_rows(&dir, &mut pipeline.outputs[table], column, type_ids, &mut |_| Ok(()))?;
        }
        // Every occurrence of the type's duplicates, and which duplicate it is the winner
        // (`None`) or a loser of.
        let mut roles: HashMap<(usize, u64), Option<usize>> = HashMap::new();
        let mut occurrences = Vec::new();
        for (i, d) in duplicates.iter().enumerate().filter(|(_, d)| &d.resource_type == resource_type) {
            roles.insert((d.winner.file, d.winner.offset), None);
            occurrences.push(d.winner);
            for loser in &d.losers {
                roles.insert((loser.file, loser.offset), Some(i));
                occurrences.push(*loser);
            }
        }
        let mut winners = LineRows::new(catalog, &tables);
        let mut losers = LineRows::new(catalog, &tables);
        let mut counted = UnmappedCounts::default();
        read_lines(files, &occurrences, &mut |occurrence, line| {
            let Some(i) = roles[&(occurrence.file, occurrence.offset)] else {
                winners.append(resource_type, line)?;
                if winners.full() {
                    // Not counted again for _dq_unmapped_codes: the winner's rows were
                    // counted when they were first loaded.
                    winners.write(&mut winners_writer)?;
                }
                return Ok(());
            };
            // The loser's rows were counted too, and are gone from the tables now: so are
            // their unmapped codes, and its rows come off its file's counts.
            let rows = losers.append(resource_type, line)?;
            if losers.full() {
                losers.count(&mut counted)?;
            }
            let d = &duplicates[i];
            let winner_at = format!("{}:{}", files[d.winner.file].location, d.winner.line);
            let file_report = &mut pipeline.collected.files[occurrence.file];
            file_report.loaded -= 1;
            file_report.rows -= rows;
            file_report.dead_letters += 1;
            let reason =
                Reason::SupersededDuplicate { key: format!("{}/{}", d.resource_type, d.id), winner: winner_at };
            *file_report.dead_by_reason.entry(reason.code().to_owned()).or_default() += 1;
            let file = &files[occurrence.file];
            let dead = DeadLine { index: 0, offset: occurrence.offset, reason, bytes: line.to_vec() };
            dead_letters.write(occurrence.file, &file.name(), &file.location, occurrence.line, &dead)?;
            report.superseded += 1;
            Ok(())
        })?;
        winners.write(&mut winners_writer)?;
        losers.count(&mut counted)?;
        pipeline.collected.unmapped.subtract(&counted);
    }
    for (total, added) in pipeline.outputs.iter_mut().zip(winners_writer.finish()?) {
        total.rows += added.rows;
        total.bytes += added.bytes;
        total.files.extend(added.files);
    }

    for d in duplicates.iter().filter(|d| ids.contains_key(&d.resource_type)).take(EXAMPLES) {
        let winner_at = format!("{}:{}", files[d.winner.file].location, d.winner.line);
        let losers: Vec<String> = d.losers.iter().map(|o| format!("{}:{}", files[o.file].location, o.line)).collect();
        report.examples.push(format!("{}/{}: {winner_at} wins over {}", d.resource_type, d.id, losers.join(", ")));
    }
    Ok(report)
}

/// The rows of the views `tables` (all of one resource type) for a batch of lines, built as
/// the lines come and taken out before the batch grows past [`BATCH_LINES`] or
/// [`BATCH_BYTES`].
struct LineRows<'a> {
    catalog: &'a Catalog,
    tables: &'a [usize],
    views: ViewSet,
    lines: usize,
    bytes: usize,
    /// A copy of the line being parsed (the parser writes into it), kept for the next.
    scratch: Vec<u8>,
}

impl<'a> LineRows<'a> {
    fn new(catalog: &'a Catalog, tables: &'a [usize]) -> Self {
        let views = ViewSet::new(tables.iter().map(|&i| catalog.views[i].clone()));
        LineRows { catalog, tables, views, lines: 0, bytes: 0, scratch: Vec::new() }
    }

    /// Adds the rows of `line`; returns how many it made.
    fn append(&mut self, resource_type: &str, line: &[u8]) -> anyhow::Result<u64> {
        self.scratch.clear();
        self.scratch.extend_from_slice(line);
        let tape = simd_json::to_tape(&mut self.scratch).context("re-reading a duplicate")?;
        let rows = self
            .views
            .append(resource_type, Json::root(&tape))
            .map_err(|e| anyhow::anyhow!("re-reading a duplicate: {e}"))?;
        self.lines += 1;
        self.bytes += line.len();
        Ok(rows as u64)
    }

    /// Whether the batch is due to be taken out.
    fn full(&self) -> bool {
        self.lines >= BATCH_LINES || self.bytes >= BATCH_BYTES
    }

    /// Takes the rows out, crosswalked (counting unmapped codes into `counts` when given)
    /// and split by partition, and starts a new batch.
    fn take(&mut self, mut counts: Option<&mut UnmappedCounts>) -> anyhow::Result<Vec<TableBatch>> {
        let mut rows = Vec::new();
        for (builder, &table) in self.views.builders_mut().iter_mut().zip(self.tables) {
            for (partition, batch) in self.catalog.finish_batch(table, builder.finish(), counts.as_deref_mut())? {
                rows.push((table, partition, batch));
            }
        }
        (self.lines, self.bytes) = (0, 0);
        Ok(rows)
    }

    /// Writes the batch's rows out to `writer`.
    fn write(&mut self, writer: &mut PartWriters) -> anyhow::Result<()> {
        for (table, partition, batch) in self.take(None)? {
            writer.write(table, partition, &batch)?;
        }
        Ok(())
    }

    /// Counts the batch's unmapped codes into `counts`, and drops its rows.
    fn count(&mut self, counts: &mut UnmappedCounts) -> anyhow::Result<()> {
        self.take(Some(counts)).map(drop)
    }
}

/// A batch of one table (by index) and one partition.
type TableBatch = (usize, PartitionValue, RecordBatch);

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
        // The rows kept go to the new file as they are read, not held: a part file holds up
        // to 512 MB of rows. It is created with the first row kept.
        let tmp = path.with_extension("parquet.tmp");
        let mut writer = None;
        let mut removed_rows = 0;
        for batch in reader {
            let batch = batch?;
            let keep = keep_mask(batch.column(key_column), ids)?;
            if keep.false_count() > 0 {
                removed_rows += keep.false_count() as u64;
                removed(&filter_record_batch(&batch, &arrow::compute::not(&keep)?)?)?;
            }
            let kept = filter_record_batch(&batch, &keep)?;
            if kept.num_rows() == 0 {
                continue;
            }
            if writer.is_none() {
                writer = Some(ParquetWriter::try_new(File::create(&tmp)?, Arc::clone(&schema))?);
            }
            writer.as_mut().expect("created above").write(&kept)?;
        }
        stats.rows += removed_rows;
        stats.files_rewritten += 1;
        output.rows -= removed_rows;
        output.bytes -= std::fs::metadata(&path)?.len();
        let Some(writer) = writer else {
            std::fs::remove_file(&path)?;
            continue;
        };
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
