//! The SQL stage: a warehouse's (or an export's) tables in Apache DataFusion, and what a
//! SQL front end needs around them.
//!
//! [`register_warehouse`] reads the table metadata of the warehouse's current snapshot
//! (`_fhirhouse/current/_tables/*.json`) and registers each table as a DataFusion listing
//! table over its Parquet files, with its exact Arrow schema (recompiled from the
//! ViewDefinition stored in the metadata) and its Hive partition key as an `Int32` column,
//! so that filters on the key skip whole partitions. A warehouse in an object store is read
//! through its commit record instead (`snapshot`): exactly the files it lists. The mapping
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
mod mappings;
pub mod script;
mod session;
mod snapshot;

pub use diagnose::SqlError;
pub use export::{ExportIssues, ExportTable, ExportTables};
pub use mappings::register_mappings;
pub use session::{Session, Tables};

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::prelude::SessionContext;

use crate::store::Address;

/// Registers every table of the warehouse at `root` (a folder or an object-store URL) in
/// `ctx`, then the shipped mapping tables ([`register_mappings`]); returns the warehouse's
/// table names, sorted. The tables are those of the load published when this
/// is called, even if a later load publishes while the session runs (until that load's
/// cleanup removes the files).
///
/// # Errors
///
/// When `root` is not a warehouse with a published load, or a table's metadata is
/// unreadable.
pub fn register_warehouse(ctx: &SessionContext, root: impl Into<Address>) -> anyhow::Result<Vec<String>> {
    let root = match root.into() {
        Address::Local(root) => root,
        Address::Url(url) => {
            let names = snapshot::register(ctx, &url)?;
            register_mappings(ctx)?;
            return Ok(names);
        }
    };
    let tables_dir = root.join("_fhirhouse/current/_tables");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&tables_dir)
        .with_context(|| format!("{}: not a warehouse with a published load", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut names = Vec::with_capacity(files.len());
    for file in files {
        let register = || {
            let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(&file)?)?;
            register_table(ctx, &meta, |name| {
                // Resolved through the table link now: the session keeps reading the snapshot
                // that was current when it started, even if a load publishes a new one meanwhile.
                let dir = std::fs::canonicalize(root.join(name)).with_context(|| format!("table folder of {name}"))?;
                Ok(ListingTableUrl::parse(format!("{}/", dir.display()))?)
            })
        };
        names.push(register().with_context(|| format!("cannot register {}", file.display()))?);
    }
    register_mappings(ctx)?;
    Ok(names)
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
