//! `fhirhouse sync`: export what changed on a FHIR server since the last sync and merge it
//! into a warehouse.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use url::Url;

use super::export_cmd::{parse_server, ClientArgs, RequestArgs};
use crate::load::sync::{sync, SyncOptions};
use crate::load::LoadOptions;
use crate::store::Address;

pub(super) const LONG_ABOUT: &str = "\
Keep a warehouse up to date with a FHIR server: export (Bulk Data $export) everything changed \
since the last sync, and merge it into the warehouse.

The first sync of a warehouse is a full export and a full load. Each later one exports with \
_since = the transactionTime of the last successful sync (recorded in the warehouse) and \
merges the increment: a resource is upserted by its type and id (the newest meta.versionId, \
then meta.lastUpdated, wins; the same version again changes nothing), and the resources the \
export lists as deleted are removed from every table made from them. Untouched part files \
are carried over as hard links; only files holding changed resources are rewritten.

    fhirhouse sync https://fhir.example.org/r4 --warehouse warehouse
    fhirhouse sync https://fhir.example.org/r4 --warehouse warehouse \\
        --client-id my-client --key private.pem --kid key-2025
    fhirhouse history warehouse

Readers never see a half-merged warehouse: the merge is published with the same atomic \
commit as a full load. A sync that fails or is killed can be run again: the download \
(<warehouse>/_fhirhouse/sync/export/) resumes where it stopped, and a finished download is \
loaded again. The export options (--type, --group, auth, retries) are those of `fhirhouse \
export`; keep them the same from one sync to the next (a sync asking for other types, \
filters, elements or level than the last one is refused: its increment would miss what the \
new selection adds). --full replaces the warehouse with a \
full export (after changing views, or to compact the files increments add).

Exit status: 0 when the warehouse was updated and every line loaded, 1 when some lines were \
dead-lettered, 2 when nothing was published.";

/// Arguments of `fhirhouse sync`.
#[derive(Debug, Args)]
pub struct SyncArgs {
    /// The FHIR server's base URL, e.g. https://fhir.example.org/r4.
    #[arg(value_name = "FHIR_BASE_URL", value_parser = parse_server)]
    pub server: Url,

    /// The warehouse folder (created on the first sync); a `file://` URL names one too.
    #[arg(short, long, value_name = "DIR")]
    pub warehouse: PathBuf,

    /// A full export replacing the warehouse, whatever its last sync.
    #[arg(long)]
    pub full: bool,

    /// Keep the downloaded export (<warehouse>/_fhirhouse/sync/export/) after loading it.
    #[arg(long)]
    pub keep_export: bool,

    /// A folder of ViewDefinitions to use instead of the shipped ones (the same at every sync).
    #[arg(long, value_name = "DIR")]
    pub views: Option<PathBuf>,

    /// Worker threads of the load [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,

    /// Publish nothing when more than N lines are dead-lettered.
    #[arg(long, value_name = "N")]
    pub max_errors: Option<u64>,

    /// What to export.
    #[command(flatten)]
    pub what: RequestArgs,

    /// How to talk to the server.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The folder `--warehouse` names: a folder, or a `file://` URL of one. Any other URL is
/// refused here, before anything is exported: taken as a path, `s3://b/wh` would be a local
/// folder `s3:/b/wh` (and `file:///x` one under the working directory, where the next sync
/// would not look).
fn local_warehouse(text: &OsStr) -> anyhow::Result<PathBuf> {
    match Address::parse(text) {
        Address::Local(path) => Ok(path),
        Address::Url(url) => bail!(
            "--warehouse {url}: fhirhouse sync merges into a local warehouse folder only (to fill an object-store warehouse: `fhirhouse export --out DIR`, then `fhirhouse load DIR --out {url}`)"
        ),
    }
}

/// Runs `fhirhouse sync`.
pub(super) fn run(args: &SyncArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let warehouse = local_warehouse(args.warehouse.as_os_str())?;
    let mut load = LoadOptions::new(Vec::<Address>::new(), warehouse.clone());
    load.views_dir.clone_from(&args.views);
    load.threads = args.threads.unwrap_or(0);
    load.max_errors = args.max_errors;
    load.progress = !quiet;
    let options = SyncOptions {
        request: args.what.request(&args.server)?,
        export: args.client.settings(quiet)?,
        load,
        full: args.full,
        keep_export: args.keep_export,
    };
    if !quiet {
        sayln!("sync {} into {}", args.server, warehouse.display());
    }
    let outcome = sync(&warehouse, &options)?;
    if !quiet {
        match &outcome.since {
            Some(since) => sayln!("increment since {since}"),
            None => sayln!("full export (the warehouse had no earlier sync, or --full)"),
        }
        say!("{}", outcome.export.summary());
        if let Some(kept) = &outcome.kept_export {
            sayln!("  export kept in {}", kept.display());
        }
    }
    Ok(super::load_cmd::finish(&outcome.load, quiet))
}
