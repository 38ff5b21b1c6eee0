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

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::{load, LoadOptions, LoadOutcome};
use crate::bulk::{self, ExportOutcome, ExportRequest, ExportSettings, Exporter};

/// Where a sync downloads, under the warehouse.
pub const DOWNLOAD_DIR: &str = "_fhirhouse/sync/export";

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
/// A warehouse synced from another server (without `full`), another sync running, and the
/// errors of the export and of the load.
pub fn sync(warehouse: &Path, options: &SyncOptions) -> anyhow::Result<SyncOutcome> {
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
    let exporter = Exporter::new(request, settings, &download.clone().into())?;
    let export = bulk::export_until_interrupted(&exporter)?;

    let mut load_options = options.load.clone();
    load_options.inputs = vec![download.join(bulk::MANIFEST_FILE).into()];
    load_options.out = warehouse.to_path_buf().into();
    load_options.merge = since.is_some();
    load_options.key_index = true;
    load_options.sync_server = Some(server);
    let outcome = load(&load_options)?;
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
