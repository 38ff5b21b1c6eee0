//! Tables straight over a raw Bulk Data export: `fhirhouse query --export`.
//!
//! Each view becomes a DataFusion table whose rows are computed when a query reads it: the
//! export's NDJSON is read in line-aligned chunks, every line of the view's type parsed and
//! run through the compiled view into record batches of at most [`BATCH_ROWS`] rows, which
//! stream out through a small bounded channel ([`scan`](super::export_scan)). Memory stays
//! bounded whatever the export's size, and a `LIMIT` stops the reading early.
//!
//! The tables have the warehouse's schema, partition key included (`<column>_year`,
//! computed from the tagged date column, `0` for no date) and the standard-code columns of
//! the catalog's crosswalks (computed only when a query reads them), so the same SQL runs
//! on both.
//!
//! **Projection pushdown.** A scan compiles a copy of the view keeping only the columns the
//! query uses (in each `select` element that has columns, those used or else its first one,
//! so that `forEach`, `unionAll` and `repeat` still produce the same rows); unused columns
//! are never evaluated. One difference with a load remains: a resource that a load
//! dead-letters because an *unused* column fails on it (two values in a non-collection
//! column, a value of the wrong type) still gives rows here.
//!
//! **Duplicates** are not resolved: a resource that occurs twice in the export gives its
//! rows twice, where a load keeps only the newest copy.
//!
//! **No `_dq_unmapped_codes`**: that table is a load's tally of the codes no crosswalk maps,
//! not a view; naming it in a session over an export says so ([`super::Session`]).
//!
//! **Which files a table reads.** A file whose manifest entry declares a type, or whose
//! name carries one (`Patient.000.ndjson`, as Bulk Data servers name them; see
//! [`type_from_name`](crate::source::type_from_name)), is read by the tables of that type,
//! and by the others only when its first resource is not of that type (a misnamed file;
//! the first scan that meets the file reads its first line to find out, once per
//! session). Any other file is read by every table, and a line that does not contain the
//! type's name in quotes is skipped without being parsed. Unlike a load, a line of another
//! type further into a file whose first resource has the declared type is therefore not
//! seen by the tables of its own type.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use async_trait::async_trait;
use datafusion::catalog::{Session as DfSession, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::SessionContext;

use super::export_scan::{Declared, Piece, Projection, ScanPartition};
use crate::load::Catalog;
use crate::sink::partition::PartitionSpec;
use crate::source::{open_export, ExportFile};
use crate::store::Address;
use crate::terminology::TableStage;
use crate::view::CompiledView;

/// Rows a scan buffers per partition before it hands a batch on.
pub const BATCH_ROWS: usize = 8192;

/// Bytes per chunk of a plain file; chunks of one table are read in parallel.
const CHUNK_BYTES: u64 = 16 << 20;

/// Problems met in the export's lines are kept, up to this many messages.
const KEPT_MESSAGES: usize = 20;

/// Lines of an export that a query could not use (invalid JSON, a resource the view fails
/// on, an unreadable file), counted across every scan of a session. A query still returns
/// the other rows; the caller reports these.
///
/// Each place (a file's line, or a file that cannot be read) is counted and reported once
/// per session, the first time a scan meets it: a statement that scans a table twice (a
/// self-join, a `UNION`), or several statements over the same table, would otherwise
/// report the same line again and again.
#[derive(Debug, Default)]
pub struct ExportIssues {
    state: Mutex<IssueState>,
}

#[derive(Debug, Default)]
struct IssueState {
    /// New problems since the last [`ExportIssues::take`].
    count: u64,
    /// The first messages of those.
    messages: Vec<String>,
    /// Hashes of every place reported in the session (a hash, not the text, to keep an
    /// export with many bad lines small in memory).
    seen: HashSet<u64>,
}

impl ExportIssues {
    /// Counts one problem at `place` (a file and line or byte offset, or a file) unless it
    /// was counted before; `message` says where and why.
    pub(super) fn report(&self, place: &str, message: String) {
        let key = {
            let mut hasher = std::hash::DefaultHasher::new();
            place.hash(&mut hasher);
            hasher.finish()
        };
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !state.seen.insert(key) {
            return;
        }
        state.count += 1;
        if state.messages.len() < KEPT_MESSAGES {
            state.messages.push(message);
        }
    }

    /// The problems since the last call: their number and the first messages.
    pub fn take(&self) -> (u64, Vec<String>) {
        let mut state = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (std::mem::take(&mut state.count), std::mem::take(&mut state.messages))
    }
}

/// The tables of one export, one per view.
#[derive(Debug)]
pub struct ExportTables {
    tables: Vec<Arc<ExportTable>>,
    issues: Arc<ExportIssues>,
}

impl ExportTables {
    /// Resolves the export named by `inputs` (a folder, a `manifest.json`, files or URLs, as
    /// for a load) and makes a table of each view of `catalog`, crosswalked as the catalog
    /// says. Nothing is read yet but the manifest and the files' sizes.
    ///
    /// # Errors
    ///
    /// The errors of [`open_export`]; a view whose partition tag is invalid.
    pub fn open(inputs: &[Address], catalog: &Catalog) -> anyhow::Result<ExportTables> {
        let export = open_export(inputs)?;
        let files: Vec<Arc<ExportFile>> = export.files.into_iter().map(Arc::new).collect();
        let first_resources_declared: Vec<Arc<OnceLock<bool>>> = files.iter().map(|_| Arc::default()).collect();
        let issues = Arc::new(ExportIssues::default());
        let mut tables = Vec::with_capacity(catalog.views.len());
        for (view, layout) in catalog.views.iter().zip(catalog.layouts.iter()) {
            let partition = &layout.partition;
            let schema = Arc::new(match partition {
                Some(spec) => spec.reader_schema(&layout.schema),
                None => layout.schema.as_ref().clone(),
            });
            let mut pieces = Vec::new();
            for (file, first_is_declared) in files.iter().zip(&first_resources_declared) {
                let declared = match file.declared_type.as_deref() {
                    Some(kind) if kind == view.resource_type() => Declared::Same,
                    Some(_) => Declared::Other(Arc::clone(first_is_declared)),
                    None => Declared::Unknown,
                };
                pieces.extend(file.ranges(CHUNK_BYTES).into_iter().map(|range| Piece {
                    file: Arc::clone(file),
                    range,
                    declared: declared.clone(),
                }));
            }
            tables.push(Arc::new(ExportTable {
                view: Arc::clone(view),
                stage: catalog.stages[tables.len()].clone(),
                schema: with_key_not_null(&schema, partition.as_ref()),
                pieces,
                issues: Arc::clone(&issues),
            }));
        }
        Ok(ExportTables { tables, issues })
    }

    /// The tables, as (name, provider) pairs in view order, to register under any name.
    pub fn providers(&self) -> impl Iterator<Item = (&str, Arc<dyn TableProvider>)> {
        self.tables.iter().map(|t| (t.view.name(), Arc::clone(t) as Arc<dyn TableProvider>))
    }

    /// Registers every table in `ctx` under its view's name; returns the names, sorted.
    ///
    /// # Errors
    ///
    /// A DataFusion error registering a table.
    pub fn register(&self, ctx: &SessionContext) -> anyhow::Result<Vec<String>> {
        let mut names = Vec::with_capacity(self.tables.len());
        for (name, provider) in self.providers() {
            ctx.register_table(name, provider)?;
            names.push(name.to_owned());
        }
        names.sort();
        Ok(names)
    }

    /// The problems the tables' scans met so far.
    #[must_use]
    pub fn issues(&self) -> Arc<ExportIssues> {
        Arc::clone(&self.issues)
    }
}

/// The partition key is never null (rows without a date have key 0), as the warehouse's
/// listing tables declare it.
fn with_key_not_null(schema: &Schema, partition: Option<&PartitionSpec>) -> SchemaRef {
    let Some(spec) = partition else { return Arc::new(schema.clone()) };
    let key = spec.key_name();
    Arc::new(Schema::new(
        schema
            .fields()
            .iter()
            .map(|f| if *f.name() == key { Arc::new(Field::new(&key, DataType::Int32, false)) } else { Arc::clone(f) })
            .collect::<Vec<_>>(),
    ))
}

/// One view over an export, as a DataFusion table.
#[derive(Debug)]
pub struct ExportTable {
    view: Arc<CompiledView>,
    /// The table's crosswalk, if a binding names it.
    stage: Option<Arc<TableStage>>,
    schema: SchemaRef,
    /// The chunks of the files this table reads.
    pieces: Vec<Piece>,
    issues: Arc<ExportIssues>,
}

#[async_trait]
impl TableProvider for ExportTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn DfSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let all: Vec<usize> = (0..self.schema.fields().len()).collect();
        let projection = Projection::new(&self.view, self.stage.as_deref(), &self.schema, projection.unwrap_or(&all))
            .map_err(|e| DataFusionError::Plan(format!("table {}: {e}", self.view.name())))?;
        let projection = Arc::new(projection);
        let partitions = state.config().target_partitions().clamp(1, self.pieces.len().max(1));
        let mut groups: Vec<Vec<Piece>> = vec![Vec::new(); partitions];
        for (i, piece) in self.pieces.iter().enumerate() {
            groups[i % partitions].push(piece.clone());
        }
        let streams: Vec<Arc<dyn PartitionStream>> = groups
            .into_iter()
            .map(|pieces| {
                Arc::new(ScanPartition::new(Arc::clone(&projection), pieces, Arc::clone(&self.issues)))
                    as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(projection.schema(), streams, None, [], false, limit)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_place_is_counted_once_per_session() {
        let issues = ExportIssues::default();
        issues.report("p.ndjson:3", "p.ndjson:3: invalid JSON".into());
        issues.report("p.ndjson:3", "p.ndjson:3: invalid JSON".into());
        issues.report("p.ndjson:4", "p.ndjson:4: invalid JSON".into());
        assert_eq!(
            issues.take(),
            (2, vec!["p.ndjson:3: invalid JSON".to_owned(), "p.ndjson:4: invalid JSON".to_owned()])
        );
        // A later statement meeting the same line again does not report it again.
        issues.report("p.ndjson:3", "p.ndjson:3: another reason".into());
        assert_eq!(issues.take(), (0, vec![]));
    }
}
