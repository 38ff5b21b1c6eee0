//! `fhirhouse sync`: keep a warehouse up to date with a FHIR server, one increment at a time.
//!
//! A sync exports from the server everything changed since the `transactionTime` of the
//! warehouse's last successful sync (recorded in its snapshot, `_sync.json`), then merges
//! that increment into the warehouse (`load::merge`), in one atomic publish. The
//! first sync (a warehouse without a sync record) is a full export and a full load.
//!
//! The export is downloaded into `<warehouse>/_fhirhouse/sync/export/`, a resumable export
//! folder: a sync that fails or is killed while downloading resumes there when run again; one
//! killed while loading loads the finished download again (the warehouse still shows the
//! previous load); one killed after publishing starts the next increment (the folder's
//! request no longer matches). Merging is idempotent, so applying an increment twice changes
//! nothing. One sync at a time per warehouse (`_fhirhouse/sync.lock`).
//!
//! An increment is only complete for the selection it was exported with: had the last sync
//! exported `--type Patient`, a `_since` export of `Patient,Condition` would bring only the
//! Conditions changed since, and the others would never reach the warehouse. So each
//! published sync records its selection (level, types, type filters, elements) in
//! `_fhirhouse/sync/request.json`, and a sync asking for another one is refused without
//! `--full`.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{load, LoadOptions, LoadOutcome};
use crate::bulk::{self, ExportOutcome, ExportRequest, ExportSettings, Exporter, Level};
use crate::store::Address;

/// Where a sync downloads, under the warehouse.
pub const DOWNLOAD_DIR: &str = "_fhirhouse/sync/export";

/// The selection of the last published sync, under the warehouse: `{"load_id", "scope"}`.
pub const REQUEST_FILE: &str = "_fhirhouse/sync/request.json";

/// Settings of one sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// What to export; its `since` is set by the sync.
    pub request: ExportRequest,
    /// How to export.
    pub export: ExportSettings,
    /// How to load; its inputs, output and incremental fields are set by the sync.
    pub load: LoadOptions,
    /// Ignore the warehouse's sync record: a full export, replacing the warehouse.
    pub full: bool,
    /// Keep the downloaded export after a successful load.
    pub keep_export: bool,
}

/// What a sync did.
#[derive(Debug)]
pub struct SyncOutcome {
    /// The `_since` of the export; `None` for a full export.
    pub since: Option<String>,
    /// The export.
    pub export: ExportOutcome,
    /// The load (a merge for an increment).
    pub load: LoadOutcome,
    /// Where the download was kept, if it was.
    pub kept_export: Option<PathBuf>,
}

/// Runs one sync of `warehouse` (a local folder); see the module docs.
///
/// # Errors
///
/// A folder that is no warehouse ([`check_warehouse_folder`](crate::sink::commit::check_warehouse_folder)),
/// a warehouse synced from another server (without `full`), another sync running, and the
/// errors of the export and of the load.
pub fn sync(warehouse: &Path, options: &SyncOptions) -> anyhow::Result<SyncOutcome> {
    // Before its `_fhirhouse/` is made, which would let a later load write there too.
    crate::sink::commit::check_warehouse_folder(warehouse).context("cannot open the warehouse")?;
    std::fs::create_dir_all(warehouse.join("_fhirhouse"))
        .with_context(|| format!("cannot create the warehouse {}", warehouse.display()))?;
    let lock_path = warehouse.join("_fhirhouse/sync.lock");
    let lock = File::options().create(true).truncate(false).write(true).open(&lock_path)?;
    lock.try_lock().map_err(|e| anyhow::anyhow!("{}: another sync is running ({e})", lock_path.display()))?;

    let server = options.request.server.as_str().trim_end_matches('/').to_owned();
    let record = super::sync_record(warehouse);
    let since = match &record {
        _ if options.full => None,
        Some(record) => {
            let synced_from = record["server"].as_str().unwrap_or_default();
            if synced_from.trim_end_matches('/') != server {
                bail!(
                    "{} is synced from {synced_from}, not {server}: use --full to replace it with a full export of {server}, or another warehouse",
                    warehouse.display()
                );
            }
            check_scope(warehouse, record, &options.request)?;
            record["transaction_time"].as_str().map(str::to_owned)
        }
        None => None,
    };

    let mut request = options.request.clone();
    request.since.clone_from(&since);
    let download = warehouse.join(DOWNLOAD_DIR);
    let mut settings = options.export.clone();
    // A download left by an earlier sync is resumed only if it is this very request.
    let left = bulk::folder_request(&download);
    settings.restart |=
        left.is_some_and(|left| left != request.kickoff_url().map(|u| u.to_string()).unwrap_or_default());
    if let Some(since) = &since {
        tracing::info!(since, "exporting the increment");
    }
    // Paths stay paths: parsed as addresses, `file:/x/wh` or a folder named like a URL
    // would load somewhere else than where the sync record and the lock are.
    let exporter = Exporter::new(request, settings, &Address::Local(download.clone()))?;
    let export = bulk::export_until_interrupted(&exporter)?;

    let mut load_options = options.load.clone();
    load_options.inputs = vec![Address::Local(download.join(bulk::MANIFEST_FILE))];
    load_options.out = Address::Local(warehouse.to_path_buf());
    load_options.merge = since.is_some();
    load_options.key_index = true;
    load_options.sync_server = Some(server);
    let outcome = load(&load_options)?;
    if outcome.committed() {
        save_scope(warehouse, &outcome.report.load_id, &options.request);
    }
    let kept_export = if outcome.committed() && !options.keep_export {
        if let Err(e) = std::fs::remove_dir_all(&download) {
            tracing::warn!(path = %download.display(), error = %e, "could not remove the downloaded export");
        }
        None
    } else {
        Some(download)
    };
    Ok(SyncOutcome { since, export, load: outcome, kept_export })
}

/// What an export selects besides `_since`, in a canonical form (order and repeats of
/// `--type` and the like do not matter).
fn scope(request: &ExportRequest) -> Value {
    let sorted = |items: &[String]| {
        let mut items = items.to_vec();
        items.sort();
        items.dedup();
        items
    };
    let level = match &request.level {
        Level::System => "system".to_owned(),
        Level::Patient => "patient".to_owned(),
        Level::Group(id) => format!("group {id}"),
    };
    json!({
        "level": level,
        "types": sorted(&request.types),
        "type_filters": sorted(&request.type_filters),
        "elements": sorted(&request.elements),
    })
}

/// A scope in words, for messages.
fn describe(scope: &Value) -> String {
    let list = |key: &str, none: &str| {
        let items: Vec<&str> = scope[key].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if items.is_empty() {
            none.to_owned()
        } else {
            items.join(",")
        }
    };
    format!(
        "{} level, types {}, type filters {}, elements {}",
        scope["level"].as_str().unwrap_or("?"),
        list("types", "all"),
        list("type_filters", "none"),
        list("elements", "all")
    )
}

/// Refuses an increment whose selection differs from the one the warehouse was synced with
/// (see the module docs). The saved selection counts only when it is that of the sync that
/// wrote the warehouse's sync record (`record`): one of an older warehouse, or of a sync
/// killed between its publish and saving it, says nothing about the current snapshot.
fn check_scope(warehouse: &Path, record: &Value, request: &ExportRequest) -> anyhow::Result<()> {
    let path = warehouse.join(REQUEST_FILE);
    let Some(saved) = std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok()) else {
        return Ok(());
    };
    if saved["load_id"].is_null() || saved["load_id"] != record["load_id"] {
        tracing::debug!(path = %path.display(), "the saved export selection is not the current sync's: not compared");
        return Ok(());
    }
    let wanted = scope(request);
    if saved["scope"] == wanted {
        return Ok(());
    }
    bail!(
        "{} was synced with {}; this sync asks for {}: an increment would only hold what changed since the last sync, so what the new selection adds would never be loaded (and what it leaves out would go stale). Use --full to export and load the new selection in full, or keep the options of the last sync",
        warehouse.display(),
        describe(&saved["scope"]),
        describe(&wanted)
    )
}

/// Saves the selection of the sync that published `load_id` (see [`check_scope`]). A failure
/// is logged, not returned: the load is published, and without the file the next sync only
/// cannot check its selection.
fn save_scope(warehouse: &Path, load_id: &str, request: &ExportRequest) {
    let path = warehouse.join(REQUEST_FILE);
    let bytes = serde_json::to_vec_pretty(&json!({ "load_id": load_id, "scope": scope(request) }))
        .expect("a JSON value serialises");
    let saved = std::fs::create_dir_all(path.parent().unwrap_or(warehouse))
        .and_then(|()| crate::sink::commit::write_file_atomically(&path, &bytes));
    if let Err(e) = saved {
        tracing::warn!(path = %path.display(), error = %e, "could not save the export selection of the sync");
    }
}
