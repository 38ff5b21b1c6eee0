//! Warehouse metadata of a load: one `_tables/<table>.json` per table in the snapshot, the
//! per-table report lines, and the manifest's server error files.
//!
//! A table's metadata file holds its schema (Arrow types as text, the partition key), the
//! ViewDefinition it came from, its row count and part files, the input files that fed it,
//! and the load it belongs to: enough to re-register the table in any engine and to trace
//! every row back to its export.

use std::path::Path;

use anyhow::Context;
use serde_json::json;

use super::report::{ServerErrors, TableReport};
use super::{Catalog, PipelineOutput};
use crate::source::{Export, LineReader, Location, SourceError};

/// The folder in a snapshot that holds the table metadata files.
pub const TABLES_DIR: &str = "_tables";

/// How many diagnostics of a server error file the report quotes.
const ERROR_EXAMPLES: usize = 5;

pub(crate) fn table_reports(catalog: &Catalog, outputs: &[crate::sink::parts::TableOutput]) -> Vec<TableReport> {
    catalog
        .layouts
        .iter()
        .zip(outputs)
        .zip(catalog.views.iter().zip(&catalog.files))
        .map(|((layout, output), (view, file))| TableReport {
            table: layout.name.clone(),
            view: file.display().to_string(),
            resource_type: view.resource_type().to_owned(),
            partition_key: layout.partition.as_ref().map(|p| p.key_name()),
            rows: output.rows,
            files: output.files.len() as u64,
            bytes: output.bytes,
        })
        .collect()
}

pub(crate) fn write_table_metadata(
    staging: &Path,
    catalog: &Catalog,
    pipeline: &PipelineOutput,
    export: &Export,
    load_id: &str,
    started_at: &chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    let dir = staging.join(TABLES_DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (i, layout) in catalog.layouts.iter().enumerate() {
        let view = &catalog.views[i];
        let output = &pipeline.outputs[i];
        // Tables without rows still get their folder, so readers find an empty table.
        let table_dir = staging.join(&layout.name);
        std::fs::create_dir_all(&table_dir).with_context(|| format!("cannot create {}", table_dir.display()))?;
        let sources: Vec<String> = export
            .files
            .iter()
            .zip(&pipeline.collected.loaded_by_type)
            .filter(|(_, by_type)| by_type.iter().any(|(t, n)| t == view.resource_type() && *n > 0))
            .map(|(f, _)| f.location.to_string())
            .collect();
        let columns: Vec<serde_json::Value> = layout
            .schema
            .fields()
            .iter()
            .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
            .collect();
        let mut files = output.files.clone();
        files.sort();
        let crosswalk: Vec<&crate::terminology::Binding> =
            catalog.stages[i].as_ref().map(|s| s.bindings().collect()).unwrap_or_default();
        let mut meta = json!({
            "table": layout.name,
            "resource_type": view.resource_type(),
            "view_file": catalog.files[i].display().to_string(),
            "view": view.definition(),
            "columns": columns,
            "partition_key": layout.partition.as_ref().map(|p| p.key_name()),
            "rows": output.rows,
            "bytes": output.bytes,
            "files": files,
            "source_files": sources,
            "load_id": load_id,
            "loaded_at": started_at.to_rfc3339(),
        });
        if !crosswalk.is_empty() {
            // What the SQL stage needs to rebuild the schema: the view's columns, then these.
            meta["crosswalk"] = json!(crosswalk);
        }
        let path = dir.join(format!("{}.json", layout.name));
        std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// Writes the `_dq_unmapped_codes` table (one Parquet file) and its metadata; `names`
/// carries the load id when part files need unique names (object-store warehouses).
pub(crate) fn write_unmapped(
    staging: &Path,
    names: Option<&str>,
    batch: &arrow::record_batch::RecordBatch,
    (load_id, started_at): (&str, &chrono::DateTime<chrono::Utc>),
) -> anyhow::Result<()> {
    use crate::terminology::unmapped::TABLE;
    let table_dir = staging.join(TABLE);
    std::fs::create_dir_all(&table_dir).with_context(|| format!("cannot create {}", table_dir.display()))?;
    let file = match names {
        Some(load_id) => format!("part-{load_id}-0.parquet"),
        None => "part-0.parquet".to_owned(),
    };
    let path = table_dir.join(&file);
    let mut writer = crate::sink::ParquetWriter::try_new(std::fs::File::create(&path)?, batch.schema())?;
    writer.write(batch)?;
    writer.finish()?.sync_all().with_context(|| format!("cannot write {}", path.display()))?;
    let columns: Vec<serde_json::Value> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    let meta = json!({
        "table": TABLE,
        "kind": "data_quality",
        "description": "codes the crosswalks did not map in this load: table, column, system, code, display, count, example resource id",
        "columns": columns,
        "partition_key": null,
        "rows": batch.num_rows(),
        "bytes": std::fs::metadata(&path)?.len(),
        "files": [file],
        "load_id": load_id,
        "loaded_at": started_at.to_rfc3339(),
    });
    let path = staging.join(TABLES_DIR).join(format!("{TABLE}.json"));
    std::fs::write(&path, serde_json::to_vec_pretty(&meta)?)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Counts the OperationOutcomes of the manifest's error files and quotes a few diagnostics.
/// Lines that are no OperationOutcome are counted apart, and an unreadable file is reported
/// as such rather than failing the load: the server's errors are reported, never loaded.
pub(crate) fn read_server_errors(files: &[Location]) -> Vec<ServerErrors> {
    files
        .iter()
        .map(|location| {
            let mut report = ServerErrors { path: location.to_string(), ..ServerErrors::default() };
            let opened =
                location.open(0).map_err(|source| SourceError::Open { path: report.path.clone().into(), source });
            let lines = match opened.and_then(|reader| LineReader::from_reader(report.path.clone(), reader)) {
                Ok(lines) => lines,
                Err(e) => {
                    report.unreadable = Some(e.to_string());
                    return report;
                }
            };
            for line in lines {
                let line = match line {
                    Ok(line) => line,
                    Err(e) => {
                        report.unreadable = Some(e.to_string());
                        break;
                    }
                };
                match serde_json::from_slice::<serde_json::Value>(&line.bytes) {
                    Ok(outcome) if outcome["resourceType"] == "OperationOutcome" => {
                        report.outcomes += 1;
                        if report.examples.len() < ERROR_EXAMPLES {
                            report.examples.push(crate::bulk::outcome::describe(&outcome));
                        }
                    }
                    _ => {
                        report.other_lines += 1;
                        if report.examples.len() < ERROR_EXAMPLES {
                            report.examples.push(format!("line {}: not an OperationOutcome", line.number));
                        }
                    }
                }
            }
            report
        })
        .collect()
}
