//! A SQL session: a DataFusion context with every table registered, and the runtime that
//! executes its queries.

use std::future::Future;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNode;
use datafusion::dataframe::DataFrame;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::StreamExt;

use super::diagnose::SqlError;
use super::export::{ExportIssues, ExportTables};
use super::snapshot::Pin;
use crate::load::Catalog;
use crate::store::Address;
use crate::terminology::unmapped::TABLE as UNMAPPED;

/// Where a session's tables come from.
#[derive(Debug, Clone)]
pub enum Tables {
    /// A warehouse (a folder or an object-store URL): its published tables.
    Warehouse(Address),
    /// A raw Bulk Data export (a folder, a manifest, files or URLs), read through `views`.
    Export {
        /// What names the export, as for a load.
        inputs: Vec<Address>,
        /// The views, one table each, and their crosswalks.
        catalog: Catalog,
    },
}

/// A DataFusion session over a warehouse or an export, with the runtime its queries run on.
///
/// Identifiers are case-insensitive unless quoted (DataFusion's default), the
/// `information_schema` tables are on (`SHOW TABLES`, `SHOW COLUMNS FROM t`), and the
/// planner records the SQL position of every name so that errors can point at it.
///
/// The tables it opens with are read-only: `INSERT INTO patient ...` is refused, since
/// DataFusion would write a Parquet file into the published load, past its commit and its
/// counts. Tables a session creates itself (`CREATE TABLE t AS ...`) take rows as usual.
///
/// A warehouse session reads the load published when it opened, every statement of it,
/// whatever loads publish meanwhile ([`Session::load_id`]). Once a newer load has replaced
/// it and its files are removed (see [`super::register_warehouse`]), a statement that reads
/// the warehouse's tables fails with a [`SnapshotGone`](super::SnapshotGone) message.
pub struct Session {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    issues: Option<Arc<ExportIssues>>,
    /// The tables registered by [`Session::open`], which statements may only read.
    opened_with: Vec<Arc<dyn TableProvider>>,
    /// A warehouse session's load, and the tables that read it.
    pinned: Option<Pinned>,
}

/// A warehouse session's load, and the tables that read it.
type Pinned = (Arc<Pin>, Vec<Arc<dyn TableProvider>>);

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("session_id", &self.ctx.session_id()).finish_non_exhaustive()
    }
}

impl Session {
    /// Opens a session over `tables`: every data table, with its partition key, and every
    /// reference table is registered here, so this is the one place to add kinds of tables.
    ///
    /// # Errors
    ///
    /// When the warehouse or export cannot be opened (see [`super::register_warehouse`] and
    /// [`ExportTables::open`]), or the runtime cannot start.
    pub fn open(tables: &Tables) -> anyhow::Result<Session> {
        let mut config = SessionConfig::new().with_information_schema(true);
        config.options_mut().sql_parser.collect_spans = true;
        let ctx = SessionContext::new_with_config(config);
        let mut pinned = None;
        let issues = match tables {
            Tables::Warehouse(root) => {
                pinned = Some(super::register_pinned(&ctx, root)?);
                None
            }
            Tables::Export { inputs, catalog } => {
                let export = ExportTables::open(inputs, catalog)?;
                export.register(&ctx)?;
                // A warehouse registers the reference tables (crosswalks, value sets, CMS-HCC)
                // with its own; an export session gets the same ones here.
                super::register_mappings(&ctx)?;
                Some(export.issues())
            }
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
        let mut session = Session { ctx, runtime, issues, opened_with: Vec::new(), pinned: None };
        let schema = session.ctx.catalog("datafusion").and_then(|catalog| catalog.schema("public"));
        let mut warehouse_tables = Vec::new();
        for name in session.table_names() {
            if let Some(table) = schema.as_ref().and_then(|schema| session.block_on(schema.table(&name)).ok().flatten())
            {
                if pinned.as_ref().is_some_and(|(names, _)| names.contains(&name)) {
                    warehouse_tables.push(Arc::clone(&table));
                }
                session.opened_with.push(table);
            }
        }
        session.pinned = pinned.map(|(_, pin)| (pin, warehouse_tables));
        Ok(session)
    }

    /// The load a warehouse session reads (`None` over an export).
    #[must_use]
    pub fn load_id(&self) -> Option<&str> {
        self.pinned.as_ref().map(|(pin, _)| pin.load_id())
    }

    /// The DataFusion context, e.g. to register more tables.
    #[must_use]
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The tables (and views) of the default schema, sorted.
    #[must_use]
    pub fn table_names(&self) -> Vec<String> {
        self.schema_table_names("public").unwrap_or_default()
    }

    /// Runs `future` to completion on the session's runtime.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// Plans one statement (without its `;`). Statements with effects on the session
    /// (`CREATE VIEW`, `SET`, ...) take effect here; a query's rows are produced by
    /// [`Session::execute`].
    ///
    /// # Errors
    ///
    /// The statement's [`SqlError`]: a parse or planning error, with its position in
    /// `sql` where DataFusion gives one.
    pub fn plan(&self, sql: &str) -> Result<DataFrame, SqlError> {
        let frame = self.block_on(self.ctx.sql(sql)).map_err(|e| self.explain(&e))?;
        if let Some(table) = self.written_table(frame.logical_plan()) {
            return Err(SqlError {
                message: format!("table '{table}' is read-only: the warehouse's tables change only by a load"),
                span: None,
                notes: vec!["CREATE TABLE name AS SELECT ... makes a table of this session that takes rows".into()],
            });
        }
        if let Some(error) = super::lint::date_compared_with_number(frame.logical_plan()) {
            return Err(error);
        }
        self.check_pinned(frame.logical_plan())?;
        Ok(frame)
    }

    /// Fails a statement that reads the warehouse's tables once their load is gone: parts of
    /// a removed load can still be answered from DataFusion's caches (a listing, a small
    /// file's footer), and a session should not work for some statements and not for others.
    fn check_pinned(&self, plan: &LogicalPlan) -> Result<(), SqlError> {
        let Some((pin, tables)) = &self.pinned else { return Ok(()) };
        if reads_any(plan, tables) && self.block_on(pin.is_gone()) {
            let gone = self.block_on(pin.gone(None));
            return Err(SqlError { message: gone.0, span: None, notes: Vec::new() });
        }
        Ok(())
    }

    /// The name of a table the session opened with that `plan` writes (`INSERT`, `UPDATE`,
    /// `DELETE`, also under `EXPLAIN ANALYZE`, which runs it).
    fn written_table(&self, plan: &LogicalPlan) -> Option<String> {
        let mut written = None;
        let _ = plan.apply(|node| {
            if let LogicalPlan::Dml(dml) = node {
                let provider = source_as_provider(&dml.target).ok();
                if provider.is_some_and(|p| self.opened_with.iter().any(|t| Arc::ptr_eq(t, &p))) {
                    written = Some(dml.table_name.to_string());
                }
            }
            Ok(if written.is_some() {
                datafusion::common::tree_node::TreeNodeRecursion::Stop
            } else {
                datafusion::common::tree_node::TreeNodeRecursion::Continue
            })
        });
        written
    }

    /// Starts executing a planned statement; the stream yields its batches.
    ///
    /// # Errors
    ///
    /// An error creating the physical plan.
    pub fn execute(&self, frame: DataFrame) -> Result<SendableRecordBatchStream, SqlError> {
        self.block_on(frame.execute_stream()).map_err(|e| self.explain(&e))
    }

    /// The next batch of a stream from [`Session::execute`], `None` at its end.
    ///
    /// # Errors
    ///
    /// An execution error.
    pub fn next_batch(&self, stream: &mut SendableRecordBatchStream) -> Result<Option<RecordBatch>, SqlError> {
        self.block_on(stream.next()).transpose().map_err(|e| self.explain(&e))
    }

    /// Plans and runs a query, returning all its batches (for tests and small results).
    ///
    /// # Errors
    ///
    /// The query's [`SqlError`].
    pub fn collect(&self, sql: &str) -> Result<Vec<RecordBatch>, SqlError> {
        let frame = self.plan(sql)?;
        self.block_on(frame.collect()).map_err(|e| self.explain(&e))
    }

    /// The problems met in an export's lines since the last call: their number and the
    /// first messages (always none for a warehouse).
    #[must_use]
    pub fn take_issues(&self) -> (u64, Vec<String>) {
        self.issues.as_ref().map(|i| i.take()).unwrap_or_default()
    }

    fn explain(&self, err: &datafusion::error::DataFusionError) -> SqlError {
        let mut error = SqlError::from_datafusion_in(err, &|schema| match schema {
            None => Some(self.table_names()),
            Some(schema) => self.schema_table_names(schema),
        });
        if self.issues.is_some() && error.message == format!("table '{UNMAPPED}' not found") {
            // The one warehouse table an export session lacks: it is a load's tally of what
            // its crosswalks left unmapped, not a view, so no scan of the export computes it.
            error.notes.insert(
                0,
                format!(
                    "{UNMAPPED} is written by a load (it counts the codes no crosswalk maps); a session \
                     over --export has no such table: load the export to see it"
                ),
            );
        }
        error
    }

    /// The tables of `schema` (of the default catalog), sorted; `None` when there is no
    /// such schema. `schema` is spelt as DataFusion's error names it, already normalised
    /// (an unquoted name lower-cased), so it matches the catalog's name exactly.
    fn schema_table_names(&self, schema: &str) -> Option<Vec<String>> {
        let mut names = self.ctx.catalog("datafusion")?.schema(schema)?.table_names();
        names.sort();
        Some(names)
    }
}

/// Whether `plan` scans one of `tables`, in a subquery or through a view too.
fn reads_any(plan: &LogicalPlan, tables: &[Arc<dyn TableProvider>]) -> bool {
    let mut reads = false;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let provider = source_as_provider(&scan.source).ok();
            reads = provider.is_some_and(|p| tables.iter().any(|t| Arc::ptr_eq(t, &p)))
                || scan.source.get_logical_plan().is_some_and(|view| reads_any(&view, tables));
        }
        Ok(if reads {
            datafusion::common::tree_node::TreeNodeRecursion::Stop
        } else {
            datafusion::common::tree_node::TreeNodeRecursion::Continue
        })
    });
    reads
}
