//! The SQL stage: a warehouse's (or an export's) tables in Apache DataFusion, and what a
//! SQL front end needs around them.
//!
//! [`register_warehouse`] reads which load the warehouse has published (the
//! `_fhirhouse/current` link, or an object store's commit record) once, and registers each
//! table of that load's snapshot (`_fhirhouse/snapshots/<load id>/_tables/*.json`) as a
//! DataFusion listing table over its Parquet files, with its exact Arrow schema (recompiled
//! from the ViewDefinition stored in the metadata) and its Hive partition key as an `Int32`
//! column, so that filters on the key skip whole partitions. The session stays on that load
//! while later loads publish, and is told when its files are gone (`snapshot`). The mapping
//! tables (crosswalks, value sets, CMS-HCC) are registered beside them (`mappings`), with
//! the SQL functions fhirhouse adds (`icd10_in_range`, `age_in_years`).
//! [`ExportTables`] are the same tables computed straight from a raw export's NDJSON.
//!
//! [`Session`] is what `fhirhouse query` and `fhirhouse sql` run on: one function,
//! [`Session::open`], sets up every table a session sees. [`script`] cuts SQL text into
//! statements, [`diagnose`] turns DataFusion errors into messages with the SQL position.
//! [`analyses`] are the shipped SQL analyses (`queries/`: care gaps, CMS-HCC risk scores)
//! with their parameters, which `fhirhouse report` runs.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let ctx = datafusion::prelude::SessionContext::new();
//! let tables = fhirhouse::sql::register_warehouse(&ctx, std::path::Path::new("warehouse"))?;
//! let df = ctx.sql("SELECT gender, count(*) FROM patient GROUP BY gender").await?;
//! df.show().await?;
//! # Ok(()) }
//! ```

pub mod analyses;
pub mod diagnose;
mod export;
mod export_scan;
mod functions;
mod lint;
mod mappings;
pub mod script;
mod session;
mod snapshot;

pub use diagnose::SqlError;
pub use export::{ExportIssues, ExportTable, ExportTables};
pub use mappings::register_mappings;
pub use session::{Session, Tables};
pub use snapshot::SnapshotGone;

use std::sync::Arc;

use anyhow::anyhow;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::store::Address;

/// Registers every table of the warehouse at `root` (a folder or an object-store URL) in
/// `ctx`, then the shipped mapping tables ([`register_mappings`]); returns the warehouse's
/// table names, sorted.
///
/// The tables are those of the load published when this is called, all of them, and stay
/// so: a load that publishes later does not change what `ctx` reads. The files of a
/// replaced load are kept until the next load after it, and for at least
/// [`KEEP_REPLACED_FOR`](crate::sink::commit::KEEP_REPLACED_FOR) after it was replaced; a
/// query past that fails with an error that names the newer load, never with fewer rows.
///
/// # Errors
///
/// When `root` is not a warehouse with a published load, or a table's metadata is
/// unreadable.
pub fn register_warehouse(ctx: &SessionContext, root: impl Into<Address>) -> anyhow::Result<Vec<String>> {
    Ok(register_pinned(ctx, &root.into())?.0)
}

/// [`register_warehouse`], also returning the load the tables read.
fn register_pinned(ctx: &SessionContext, root: &Address) -> anyhow::Result<(Vec<String>, Arc<snapshot::Pin>)> {
    let registered = snapshot::register(ctx, root)?;
    register_mappings(ctx)?;
    Ok(registered)
}

/// Registers the table a `_tables/<table>.json` metadata record describes, over the Parquet
/// files under the URL `table_url` gives for its name; returns the name.
fn register_table(
    ctx: &SessionContext,
    meta: &serde_json::Value,
    table_url: impl FnOnce(&str) -> anyhow::Result<ListingTableUrl>,
) -> anyhow::Result<String> {
    let name = meta["table"].as_str().ok_or_else(|| anyhow!("no \"table\" name"))?.to_owned();
    let (schema, partition) = mappings::table_schema(meta)?;
    let mut options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if let Some(spec) = &partition {
        options = options.with_table_partition_cols(vec![spec.key_field()]);
    }
    let config = ListingTableConfig::new(table_url(&name)?).with_listing_options(options).with_schema(schema);
    ctx.register_table(name.as_str(), Arc::new(ListingTable::try_new(config)?))?;
    Ok(name)
}

/// Runs one SQL statement on a fresh multi-threaded runtime and returns its batches.
///
/// # Errors
///
/// Any DataFusion planning or execution error.
pub fn query_blocking(ctx: &SessionContext, sql: &str) -> anyhow::Result<Vec<arrow::record_batch::RecordBatch>> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async { Ok(ctx.sql(sql).await?.collect().await?) })
}
