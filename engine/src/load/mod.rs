//! The load: a whole Bulk Data export through every view into a warehouse, in parallel.
//!
//! This module wires the stages together and owns nothing else: the [`source`] cuts files
//! into line-aligned chunks, workers on a rayon pool parse each line once, run every
//! [`view`] of its type (`worker`) and hand the batches to part writers they share
//! ([`sink::shared_parts`]), which turn them into partitioned Parquet part files in a
//! staging folder; a collector orders the results and writes dead letters, and
//! [`sink::destination`] publishes the staging folder atomically (a local warehouse) or
//! uploads it and commits it (an object-store warehouse).
//!
//! Data flows one way. The workers encode the row groups their rows make due themselves
//! (no core idles while a lone writer thread encodes and the workers wait for it), and a
//! worker that finds a budget's worth of row groups already being encoded waits for one to
//! finish (back-pressure), so memory stays flat however large the export.
//!
//! [`source`]: crate::source
//! [`view`]: crate::view
//! [`sink::shared_parts`]: crate::sink::shared_parts
//! [`sink::destination`]: crate::sink::destination

mod catalog;
mod collect;
pub mod dead_letter;
mod dedup;
mod keys;
mod merge;
mod metadata;
mod raw;
pub mod report;
mod scan;
mod supersede;
pub mod sync;
mod unmapped;
mod worker;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, Context};

pub use catalog::Catalog;
pub use merge::{sync_record, MergeReport};
pub use report::LoadReport;
pub use scan::{scan, ScanReport};
pub use supersede::DuplicateReport;
pub(crate) use worker::first_resource_is_declared;

use crate::sink::destination::Destination;
use crate::sink::parts::{PartLimits, PartWriters, TableOutput};
use crate::sink::shared_parts::SharedPartWriters;
use crate::source::{open_export, Export};
use crate::store::Address;
use collect::Collector;
use dead_letter::DeadLetterWriter;
use worker::{Chunk, ChunkDone, Shared, WorkerState};

/// The size plain files are cut into for the workers: large enough that per-chunk costs
/// vanish, small enough that a few files keep every core busy.
pub const DEFAULT_CHUNK_BYTES: u64 = 16 << 20;

/// Settings of one load. [`LoadOptions::new`] gives the defaults of `fhirhouse load`.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The export: folders, a `manifest.json`, data files, or object-store URLs of any of
    /// these.
    pub inputs: Vec<Address>,
    /// The warehouse: a folder or an object-store URL.
    pub out: Address,
    /// Local staging folder for an object-store warehouse; `None` for a temporary one.
    pub staging: Option<PathBuf>,
    /// A folder of ViewDefinitions, one table each; `None` for the shipped views.
    pub views_dir: Option<PathBuf>,
    /// Worker threads; 0 for one per core.
    pub threads: usize,
    /// Rough ceiling on the memory the load uses, in bytes.
    pub memory_limit: u64,
    /// Lines longer than this are dead-lettered unread.
    pub max_line_bytes: usize,
    /// Fail the load (publishing nothing) when more lines than this are dead-lettered.
    pub max_errors: Option<u64>,
    /// Size of the pieces plain files are cut into for the workers.
    pub chunk_bytes: u64,
    /// Whether logs may quote resource content (dead-letter details).
    pub log_phi: bool,
    /// Whether to draw a progress bar (only ever drawn on a terminal).
    pub progress: bool,
    /// Keep every resource line, per type and gzip-compressed, in the snapshot's `_raw/`.
    pub keep_raw: bool,
    /// Parse every line, also in files whose declared type (from the manifest, or else the
    /// file's name: see [`type_from_name`](crate::source::type_from_name)) no view reads.
    /// Off by default: such files are only counted (`unread` in the report), which spares
    /// a load restricted to a few views the parse of the rest of the export; on, their
    /// resources are checked and bad lines dead-lettered. `keep_raw` implies it. Off, a
    /// file is still parsed when its first non-blank line is not a resource of its declared
    /// type.
    pub parse_all: bool,
    /// Crosswalk coded columns to standard systems (the bindings of the mappings).
    pub crosswalk: bool,
    /// A mapping folder replacing the shipped mappings; `None` for the shipped ones.
    pub mappings_dir: Option<PathBuf>,
    /// The NLM SNOMED CT → ICD-10-CM map (RF2 ExtendedMap), tried before the other tables.
    pub snomed_icd10_map: Option<PathBuf>,
    /// Apply the export as an increment to the warehouse's current load (upsert by resource
    /// id, newest version wins; `deleted` resources removed) instead of replacing it; see
    /// `load::merge`. Into an empty warehouse it is a full load.
    pub merge: bool,
    /// Write the key index (every resource's id and version) that later merges compare
    /// against. Merges always write it.
    pub key_index: bool,
    /// The FHIR server the export came from, recorded with its `transactionTime` for
    /// `fhirhouse sync` (`_sync.json` in the snapshot).
    pub sync_server: Option<String>,
}

impl LoadOptions {
    /// The defaults: all cores, 1 GiB, 64 MiB lines, no error limit, 16 MiB chunks.
    #[must_use]
    pub fn new(inputs: impl IntoIterator<Item = impl Into<Address>>, out: impl Into<Address>) -> Self {
        LoadOptions {
            inputs: inputs.into_iter().map(Into::into).collect(),
            out: out.into(),
            staging: None,
            views_dir: None,
            threads: 0,
            memory_limit: 1 << 30,
            max_line_bytes: 64 << 20,
            max_errors: None,
            chunk_bytes: DEFAULT_CHUNK_BYTES,
            log_phi: false,
            progress: false,
            keep_raw: false,
            parse_all: false,
            crosswalk: true,
            mappings_dir: None,
            snomed_icd10_map: None,
            merge: false,
            key_index: false,
            sync_server: None,
        }
    }
}

/// The result of a load that ran to the end (committed or failed by `--max-errors`).
#[derive(Debug)]
pub struct LoadOutcome {
    /// The run report, also saved in the warehouse.
    pub report: LoadReport,
    /// Where the report was saved: a path, or a URL for an object-store warehouse.
    pub report_path: String,
    /// Why the report could not be saved, when it could not (a full disk): the load is
    /// published all the same, and `report` is all there is of its report.
    pub report_error: Option<String>,
}

impl LoadOutcome {
    /// Whether the load was published.
    #[must_use]
    pub fn committed(&self) -> bool {
        self.report.status == "committed"
    }
}

/// Runs a load. See the module docs for how it works.
///
/// # Errors
///
/// Problems that stop the load before or while writing: invalid views, an export that
/// cannot be listed, a warehouse that cannot be written. Bad *lines* are never errors: they
/// are dead-lettered, and only `max_errors` turns them into a failed (unpublished) load.
pub fn load(options: &LoadOptions) -> anyhow::Result<LoadOutcome> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let catalog = match &options.views_dir {
        Some(dir) => Catalog::from_dir(dir)?,
        None => Catalog::shipped()?,
    };
    let catalog = if options.crosswalk { catalog.with_terminology(&terminology(options)?)? } else { catalog };
    let export = open_export(&options.inputs)?;
    let warehouse = Destination::open(&options.out, options.staging.as_deref()).context("cannot open the warehouse")?;
    let mut tables: Vec<String> = catalog.layouts.iter().map(|l| l.name.clone()).collect();
    if catalog.terminology().is_some() {
        tables.push(crate::terminology::unmapped::TABLE.to_owned());
    }
    warehouse.check_tables(&tables).context("cannot open the warehouse")?;
    let load_id = new_load_id(started_at);
    let mut incremental = merge::Incremental::prepare(options, &warehouse, &export)?;
    let staging = warehouse.begin(&load_id)?;
    // Object-store warehouses keep the files of two loads side by side for a moment, and
    // merged snapshots for good.
    let unique_names = matches!(warehouse, Destination::Remote(_)) || incremental.as_ref().is_some_and(|i| i.merges());
    let names = unique_names.then_some(load_id.as_str());
    let threads = crate::worker_threads(options.threads);
    tracing::info!(load_id, files = export.files.len(), views = catalog.views.len(), threads, "load starting");

    let dead_letter_dir = warehouse.dead_letter_dir(&load_id);
    let run = run_pipeline(options, &catalog, &export, (&staging, names), &dead_letter_dir, threads);
    let mut report = LoadReport {
        load_id: load_id.clone(),
        started: started_at.to_rfc3339(),
        threads,
        manifest: export.manifest.clone(),
        transaction_time: export.transaction_time.clone(),
        server_errors: metadata::read_server_errors(&export.error_files),
        incremental: incremental.as_ref().is_some_and(merge::Incremental::merges),
        ..LoadReport::default()
    };
    let result = run.and_then(|mut pipeline| {
        let mut dead_letters = pipeline.dead_letters.take().expect("set by the pipeline");
        report.duplicates = resolve_duplicates(&catalog, &export, &staging, threads, &mut pipeline, &mut dead_letters)?;
        if dead_letters.written > 0 {
            report.dead_letter_dir = Some(warehouse.dead_letter_location(&load_id));
        }
        dead_letters.finish()?;
        report.files = pipeline.collected.files.clone();
        report.without_view_by_type = pipeline.collected.without_view.clone();
        report.total_up();
        if let Some(max) = options.max_errors.filter(|max| report.totals.dead_letters > *max) {
            return Err(anyhow!("{} lines dead-lettered, over --max-errors {max}", report.totals.dead_letters));
        }
        if let Some(incremental) = &mut incremental {
            report.merge = incremental.apply(&catalog, &export, &staging, &mut pipeline, &load_id)?;
        }
        report.tables = metadata::table_reports(&catalog, &pipeline.outputs);
        report.status = "committed".into();
        report.check().map_err(|e| anyhow!("counts do not reconcile: {e}"))?;
        metadata::write_table_metadata(&staging, &catalog, &pipeline, &export, &load_id, &started_at)?;
        if let Some(terminology) = catalog.terminology() {
            let load = (load_id.as_str(), &started_at);
            let mut batch = pipeline.collected.unmapped.to_batch(&terminology.bindings);
            if let Some(incremental) = &incremental {
                batch = incremental.unmapped(batch)?;
            }
            // The table's size, which after a merge is the warehouse's, not the increment's.
            report.unmapped_codes = Some(report::UnmappedReport::of(&batch));
            metadata::write_unmapped(&staging, names, &batch, load)?;
        }
        if let Some(incremental) = &incremental {
            incremental.finish(&staging, export.transaction_time.as_deref(), &load_id)?;
        }
        warehouse.publish(&load_id, &tables)?;
        Ok(())
    });
    let _ = std::fs::remove_dir_all(ids_dir(&staging));
    if let Err(e) = result {
        warehouse.abandon(&load_id);
        report.status = "failed".into();
        report.failure = Some(crate::error_text(e.as_ref()));
        report.tables.clear();
    }
    report.seconds = started.elapsed().as_secs_f64();
    let json = serde_json::to_vec_pretty(&report).expect("reports serialise");
    match warehouse.save_report(&load_id, json) {
        Ok(report_path) => Ok(LoadOutcome { report, report_path, report_error: None }),
        // Published: what readers see is the new data, whatever the report's fate, so the
        // load is no failure (exit 2 says nothing was published).
        Err(e) if report.status == "committed" => {
            let error = crate::error_text(e.as_ref());
            tracing::warn!(load_id, error, "the load is published, but its run report could not be saved");
            Ok(LoadOutcome { report, report_path: String::new(), report_error: Some(error) })
        }
        // Both errors: the load's is the one that matters, the report's tells where it is not.
        Err(e) => Err(e.context(format!(
            "load {load_id} failed ({}), and its run report could not be saved",
            report.failure.as_deref().unwrap_or("no reason recorded")
        ))),
    }
}

/// The crosswalks of a load: the shipped mappings or `--mappings`, with `--snomed-icd10-map`.
fn terminology(options: &LoadOptions) -> anyhow::Result<std::sync::Arc<crate::terminology::Terminology>> {
    let source = match &options.mappings_dir {
        Some(dir) => crate::terminology::MappingSource::Dir(dir.clone()),
        None => crate::terminology::MappingSource::Embedded,
    };
    crate::terminology::Terminology::load(&source, options.snomed_icd10_map.as_deref()).with_context(|| {
        let map = if options.snomed_icd10_map.is_some() { " and --snomed-icd10-map" } else { "" };
        format!("cannot load the crosswalks of {}{map}", source.describe())
    })
}

/// What the pipeline produced before publishing.
pub(crate) struct PipelineOutput {
    pub collected: collect::Collected,
    pub outputs: Vec<TableOutput>,
    /// Taken by the duplicate resolution, which may add dead letters.
    pub dead_letters: Option<DeadLetterWriter>,
    /// The spilled resource keys.
    pub ids_dir: PathBuf,
}

/// Where a load spills resource keys: beside its staging folder, never published, and
/// removed with the staging area if the load is interrupted.
fn ids_dir(staging: &Path) -> PathBuf {
    staging.with_extension("ids")
}

/// Finds repeated resources and, when there are any, applies them to the staged tables.
fn resolve_duplicates(
    catalog: &Catalog,
    export: &Export,
    staging: &Path,
    threads: usize,
    pipeline: &mut PipelineOutput,
    dead_letters: &mut DeadLetterWriter,
) -> anyhow::Result<Option<DuplicateReport>> {
    let groups = dedup::repeated_keys(&pipeline.ids_dir, threads).context("reading the spilled resource keys")?;
    if groups.is_empty() {
        return Ok(None);
    }
    // Only positions are kept: the lines are read again, each file in one pass, when
    // needed (a compressed file cannot seek to them one at a time).
    let read_lines =
        |occurrences: &[dedup::Occurrence], f: &mut dedup::OnLine<'_>| dedup::read_lines(&export.files, occurrences, f);
    let duplicates = dedup::confirm(groups, &read_lines).context("re-reading duplicate resources")?;
    if duplicates.is_empty() {
        return Ok(None);
    }
    let report = supersede::apply(&duplicates, catalog, &export.files, staging, pipeline, dead_letters)?;
    Ok(Some(report))
}

fn run_pipeline(
    options: &LoadOptions,
    catalog: &Catalog,
    export: &Export,
    (staging, names): (&Path, Option<&str>),
    dead_letter_dir: &Path,
    threads: usize,
) -> anyhow::Result<PipelineOutput> {
    let chunks = plan_chunks(export, options.chunk_bytes);
    // A quarter of the limit for rows waiting to be written: they go out as row groups of
    // open part files, so a larger buffer only makes larger row groups. The rest is for the
    // workers' batches, the row groups being encoded and allocator slack.
    let limits = PartLimits {
        memory_budget: (options.memory_limit / 4) as usize,
        // The final flush runs once the workers are done: every thread can encode then.
        parallel_writes: threads,
        ..PartLimits::default()
    };
    let mut part_writers = PartWriters::new(staging.to_path_buf(), catalog.layouts.clone(), 0, limits);
    if let Some(load_id) = names {
        part_writers = part_writers.with_load_id(load_id);
    }
    let writers = SharedPartWriters::new(part_writers);
    let abort = AtomicBool::new(false);
    let failure = std::sync::Mutex::new(None);
    let dead_count = AtomicU64::new(0);
    let first_resource_declared: Vec<std::sync::OnceLock<bool>> =
        export.files.iter().map(|_| std::sync::OnceLock::new()).collect();
    let total_bytes = export.files.iter().map(|f| f.size).sum();
    let progress = progress_bar(options.progress, total_bytes);

    std::thread::scope(|scope| {
        let (done_tx, done_rx) = mpsc::channel::<ChunkDone>();
        let ids = dedup::IdSpill::create(ids_dir(staging)).context("cannot create the resource key spill")?;
        let mut collector =
            Collector::new(&export.files, DeadLetterWriter::new(dead_letter_dir.to_path_buf(), options.log_phi), ids);
        let collector_handle = scope.spawn(move || -> anyhow::Result<_> {
            for done in done_rx {
                collector.accept(done)?;
            }
            collector.finish()
        });

        let shared = Shared {
            catalog,
            files: &export.files,
            writers: &writers,
            collector: done_tx,
            abort: &abort,
            dead_count: &dead_count,
            max_errors: options.max_errors,
            max_line_bytes: options.max_line_bytes,
            progress: &progress,
            raw_dir: options.keep_raw.then(|| staging.join(raw::RAW_DIR)),
            parse_all: options.parse_all || options.keep_raw,
            first_resource_declared: &first_resource_declared,
            failure: &failure,
        };
        run_workers(&shared, &chunks, threads)?;
        drop(shared);
        if let Some(message) = failure.lock().expect("workers are done").take() {
            // Drain the collector before failing, so nothing is left running.
            let _ = collector_handle.join();
            return Err(anyhow!(message));
        }
        progress.finish_and_clear();

        let outputs = writers.finish().context("writing the tables")?;
        let (collected, dead_letters, ids_dir) =
            collector_handle.join().map_err(|_| anyhow!("the collector panicked"))??;
        if abort.load(Ordering::Relaxed) && options.max_errors.is_none() {
            return Err(anyhow!("the load was stopped"));
        }
        Ok(PipelineOutput { collected, outputs, dead_letters: Some(dead_letters), ids_dir })
    })
}

/// Runs every chunk on a pool of `threads`, in file order (FIFO), each worker thread
/// reusing one [`WorkerState`].
fn run_workers(shared: &Shared<'_>, chunks: &[Chunk], threads: usize) -> anyhow::Result<()> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("fhirhouse-worker-{i}"))
        .build()
        .context("cannot start worker threads")?;
    let states: std::sync::Mutex<Vec<WorkerState>> = std::sync::Mutex::new(Vec::new());
    pool.scope_fifo(|scope| {
        for chunk in chunks {
            let states = &states;
            scope.spawn_fifo(move |_| {
                let state = states.lock().expect("no worker panics holding it").pop();
                let mut state = state.unwrap_or_else(|| WorkerState::new(shared.catalog));
                worker::process_chunk(shared, &mut state, chunk);
                states.lock().expect("no worker panics holding it").push(state);
            });
        }
    });
    Ok(())
}

/// Plain files are cut into ranges; compressed files (and files behind HTTP) are one chunk each.
fn plan_chunks(export: &Export, chunk_bytes: u64) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    for (file, f) in export.files.iter().enumerate() {
        let ranges = f.ranges(chunk_bytes);
        chunks.extend(ranges.into_iter().enumerate().map(|(index, range)| Chunk { file, index: index as u32, range }));
    }
    chunks
}

/// A unique load id: the UTC start second and a random suffix. Ids sort by their second
/// only: loads started within one second are ordered by their reports' start times.
fn new_load_id(at: chrono::DateTime<chrono::Utc>) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{}-{:04x}", at.format("%Y%m%dT%H%M%SZ"), (nanos ^ std::process::id()) & 0xffff)
}

fn progress_bar(enabled: bool, total: u64) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    // indicatif draws nothing when standard error is not a terminal.
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template"),
    );
    bar
}
