//! The Bulk Data client: `$export` from a FHIR server into a folder that `fhirhouse load`
//! reads as it is (FHIR Bulk Data Access IG 2.0).
//!
//! An [`Exporter`] runs one export: kick-off (`job`), polling the status URL until the
//! manifest is ready, downloading its files in parallel, verified (`download`), into a
//! local folder or an object-store prefix (`output`), and finally writing the folder's own
//! `manifest.json` (relative URLs) and deleting the job on the server. Every request goes
//! through one [`Http`](http) layer: retries of transient failures, one request budget per
//! server honouring `Retry-After` across all downloads ([`limiter`]), and SMART Backend
//! Services tokens ([`auth`], keys in [`keys`]).
//!
//! **Resuming.** The output folder holds a small state file, `.fhirhouse-export.json`: the
//! kick-off request, the status URL, the server's manifest once known, and every file
//! finished. An export run again into the same folder (after a crash, a network outage, a
//! deadline) picks up where it stopped: it polls the same job, or downloads only the files
//! not finished yet. A run interrupted by Ctrl-C deletes the job on the server, so the next
//! run starts a new one. A file the server no longer has (404 or 410: servers keep an
//! export's files for a limited time) can only come back from a new job, whose files need not
//! match the old ones: the folder is then discarded and a new export started, by the same run
//! when the old job came from an earlier run (once), else by the next run. `manifest.json` is
//! written last: its presence means the export is complete.
//!
//! Layout of a finished export:
//!
//! ```text
//! out/manifest.json                      the Bulk Data manifest, urls relative to it
//! out/<Type>.<nnn>.ndjson[.gz]           output[] files (gzip when the server sent gzip)
//! out/error/OperationOutcome.<nnn>.ndjson  error[] files
//! out/deleted/Bundle.<nnn>.ndjson        deleted[] files (exports with _since)
//! out/.fhirhouse-export.json             the resume state
//! ```

pub mod auth;
mod download;
mod error;
pub mod http;
mod job;
pub mod keys;
pub mod limiter;
pub mod outcome;
mod output;
mod request;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use url::Url;

pub use auth::{BackendServices, Secret};
pub use download::{SavedFile, Section};
pub use error::BulkError;
pub use http::{RequestStats, RetryPolicy};
pub use job::{Manifest, ManifestEntry, PollPolicy};
pub use keys::SigningKey;
pub use outcome::ErrorSummary;
pub use request::{ExportRequest, Level};

use crate::store::Address;
use download::{DownloadSettings, FileFailure, FileTask};
use http::{redact, Http};
use job::Poll;
use output::Output;
pub(crate) use request::join;

/// The name of the resume state file in an export folder.
pub const STATE_FILE: &str = ".fhirhouse-export.json";
/// The name of the manifest in an export folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// How an export runs.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Files downloaded at once.
    pub concurrency: usize,
    /// The whole export (kick-off to the last file) must finish within this.
    pub deadline: Duration,
    /// Retries of transient failures.
    pub retry: RetryPolicy,
    /// Status polling.
    pub poll: PollPolicy,
    /// Time to connect.
    pub connect_timeout: Duration,
    /// Longest silence while reading a response.
    pub read_timeout: Duration,
    /// Requests per second to one server (`None`: no limit but `Retry-After`).
    pub requests_per_second: Option<f64>,
    /// Ask for gzip-compressed files.
    pub gzip: bool,
    /// SMART Backend Services; `None` for an open server.
    pub auth: Option<BackendServices>,
    /// Discard an unfinished or finished export in the output folder and start anew.
    pub restart: bool,
    /// Print progress on standard error.
    pub progress: bool,
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            concurrency: 4,
            deadline: Duration::from_secs(24 * 3600),
            retry: RetryPolicy::default(),
            poll: PollPolicy::default(),
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(300),
            requests_per_second: Some(10.0),
            gzip: true,
            auth: None,
            restart: false,
            progress: false,
        }
    }
}

/// What an export did.
#[derive(Debug, Clone)]
pub struct ExportOutcome {
    /// Where the folder's manifest is.
    pub manifest_path: String,
    /// The saved manifest (relative URLs, verified counts).
    pub manifest: Manifest,
    /// Every file of the export.
    pub files: Vec<SavedFile>,
    /// Files already saved by an earlier run (not downloaded again).
    pub resumed: usize,
    /// The export was already complete in the folder: nothing was asked of the server.
    pub already_complete: bool,
    /// What the `error[]` files say.
    pub errors: ErrorSummary,
    /// Requests sent, retries, throttled answers, tokens obtained.
    pub requests: u64,
    /// Requests retried.
    pub retries: u64,
    /// 429/503 answers.
    pub throttled: u64,
    /// Access tokens obtained.
    pub tokens: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

impl ExportOutcome {
    /// The human summary.
    #[must_use]
    pub fn summary(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let count = |section: Section| self.files.iter().filter(move |f| f.section == section);
        let files = |n: usize| crate::counted(n as u64, "file", "files");
        let resources: u64 = count(Section::Output).map(|f| f.lines).sum();
        let bytes: u64 = self.files.iter().map(|f| f.bytes).sum();
        let _ = writeln!(
            s,
            "export {}: {}, {}, {:.1} MB in {:.1} s (transactionTime {})",
            if self.already_complete { "already complete" } else { "complete" },
            files(count(Section::Output).count()),
            crate::counted(resources, "resource", "resources"),
            bytes as f64 / 1e6,
            self.seconds,
            self.manifest.transaction_time
        );
        let mut by_type: BTreeMap<&str, u64> = BTreeMap::new();
        for f in count(Section::Output) {
            *by_type.entry(f.resource_type.as_str()).or_default() += f.lines;
        }
        let types: Vec<String> = by_type.iter().map(|(t, n)| format!("{t} {n}")).collect();
        if !types.is_empty() {
            let _ = writeln!(s, "  {}", types.join(", "));
        }
        let deleted: u64 = count(Section::Deleted).map(|f| f.lines).sum();
        if deleted > 0 {
            let bundles = crate::counted(deleted, "Bundle", "Bundles");
            let _ = writeln!(s, "  deleted: {bundles} in {}", files(count(Section::Deleted).count()));
        }
        if self.errors.outcomes + self.errors.unreadable > 0 {
            let _ =
                writeln!(s, "  server errors: {} in {}", self.errors.headline(), files(count(Section::Error).count()));
            for example in &self.errors.examples {
                let _ = writeln!(s, "    {example}");
            }
        }
        if self.resumed > 0 {
            let resumed = crate::counted(self.resumed as u64, "file was", "files were");
            let _ = writeln!(s, "  resumed: {resumed} already saved");
        }
        if !self.already_complete {
            let _ = writeln!(
                s,
                "  {} requests, {} retried, {} throttled, {} tokens",
                self.requests, self.retries, self.throttled, self.tokens
            );
        }
        let _ = writeln!(s, "  manifest: {}", self.manifest_path);
        s
    }
}

/// The resume state (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    /// The kick-off URL: the identity of the export.
    request: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    manifest: Option<Manifest>,
    /// Finished files, by their URL on the server.
    #[serde(default)]
    saved: BTreeMap<String, SavedFile>,
    #[serde(default)]
    complete: bool,
    #[serde(default)]
    job_deleted: bool,
    /// The job was deleted before the export finished: the next run starts anew.
    #[serde(default)]
    abandoned: bool,
}

/// One export; see the module docs.
pub struct Exporter {
    kickoff: Url,
    settings: ExportSettings,
    http: Http,
    output: Output,
    state: Mutex<State>,
}

impl Exporter {
    /// An export of `request` into `out` (a folder or an object-store URL).
    ///
    /// # Errors
    ///
    /// [`BulkError::Invalid`] for an unusable request or output, [`BulkError::Io`] when the
    /// output folder cannot be created.
    pub fn new(request: ExportRequest, settings: ExportSettings, out: &Address) -> Result<Exporter, BulkError> {
        // Before the output is created: a request that cannot be sent must leave nothing behind.
        check_server_url(&request.server)?;
        let kickoff = request.kickoff_url()?;
        let client = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .read_timeout(settings.read_timeout)
            .user_agent(concat!("fhirhouse/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| BulkError::Invalid(format!("cannot set up the HTTP client: {e}")))?;
        let auth = settings.auth.clone().map(|config| Arc::new(auth::TokenSource::new(config, &request.server)));
        let http = Http {
            client,
            limiter: Arc::new(limiter::RateLimiter::new(settings.requests_per_second)),
            retry: settings.retry,
            auth,
            stats: Arc::new(RequestStats::default()),
        };
        let output = Output::open(out)?;
        Ok(Exporter { kickoff, settings, http, output, state: Mutex::new(State::default()) })
    }

    /// Runs the export to the end (or resumes it); see the module docs.
    ///
    /// # Errors
    ///
    /// A [`BulkError`] saying what stopped it. After a transient failure or a failed file,
    /// running it again resumes; after an expired file ([`BulkError::Expired`]) it starts a
    /// new export.
    pub async fn run(&self) -> Result<ExportOutcome, BulkError> {
        let started = Instant::now();
        match tokio::time::timeout(self.settings.deadline, self.run_to_end(started)).await {
            Ok(outcome) => outcome,
            Err(_) => {
                self.abandon().await;
                Err(BulkError::Deadline(self.settings.deadline))
            }
        }
    }

    /// Deletes the job on the server, if one is running, and marks the folder's state so
    /// that the next run starts a new export. For Ctrl-C.
    pub async fn abandon(&self) {
        let mut state = self.state.lock().await;
        if state.complete {
            return;
        }
        if let Some(url) = state.status_url.as_deref().and_then(|u| Url::parse(u).ok()) {
            if !state.job_deleted {
                state.job_deleted = job::delete(&self.http, &url).await;
            }
            state.abandoned = true;
            let _ = self.save(&state).await;
        }
    }

    async fn run_to_end(&self, started: Instant) -> Result<ExportOutcome, BulkError> {
        let request = self.kickoff.to_string();
        let mut state = self.load_state().await?;
        let manifest_saved = self.output.read(MANIFEST_FILE).await?.is_some();
        if state.request == request && state.complete && manifest_saved && !self.settings.restart {
            self.say("export already complete in the output folder; nothing to download");
            let manifest = state.manifest.clone().expect("a complete state has its manifest");
            *self.state.lock().await = state.clone();
            return Ok(self.outcome(&state, written_manifest(&manifest, &state)?, 0, true, started));
        }
        let different = !state.request.is_empty() && state.request != request;
        // A kick-off the server never accepted leaves only its request behind: no job to
        // delete and no file to lose, so a corrected request (a mistyped URL) takes its place.
        let begun = state.status_url.is_some() || state.manifest.is_some() || !state.saved.is_empty();
        if different && begun && !self.settings.restart && !state.abandoned {
            return Err(BulkError::Invalid(format!(
                "{} holds {} of another request ({}); use --restart to discard it, or another folder",
                self.output.describe(""),
                if state.complete { "the export" } else { "an unfinished export" },
                state.request
            )));
        }
        if different || self.settings.restart || state.abandoned || (state.complete && !manifest_saved) {
            state = self.discard(state).await;
        }
        state.request = request;
        *self.state.lock().await = state.clone();
        self.save(&state).await?;

        // The files of a job from an earlier run may have expired in the meantime: that job is
        // replaced by a new one, once. Files of a job this run started that are gone already
        // would most likely be gone again, and a new export may take hours: the user decides.
        let mut own_job = false;
        let mut restarted = false;
        let (manifest, resumed) = loop {
            let known = self.state.lock().await.manifest.clone();
            let manifest = match known {
                Some(manifest) => manifest,
                None => {
                    let (manifest, kicked_off) = self.wait_for_manifest().await?;
                    own_job = kicked_off;
                    manifest
                }
            };
            let resumed = self.state.lock().await.saved.len();
            if resumed > 0 {
                self.say(&format!("resuming: {resumed} files already saved"));
            }
            match self.download_all(&manifest).await {
                Ok(()) => break (manifest, resumed),
                Err(BulkError::Expired { expired, total, .. }) if !own_job && !restarted => {
                    self.say(&format!(
                        "the server no longer has {expired} of the {total} files of the earlier export (expired); starting a new export"
                    ));
                    restarted = true;
                    self.start_over().await?;
                }
                Err(e @ BulkError::Expired { .. }) => {
                    self.start_over().await?;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        };

        let mut state = self.state.lock().await;
        let saved = written_manifest(&manifest, &state)?;
        let json = serde_json::to_vec_pretty(&saved).expect("manifests serialise");
        self.output.write(MANIFEST_FILE, json).await?;
        state.complete = true;
        self.save(&state).await?;
        if let Some(url) = state.status_url.as_deref().and_then(|u| Url::parse(u).ok()) {
            state.job_deleted = job::delete(&self.http, &url).await;
            self.save(&state).await?;
        }
        let errors = self.summarise_errors(&state).await;
        let mut outcome = self.outcome(&state, saved, resumed, false, started);
        outcome.errors = errors;
        Ok(outcome)
    }

    /// Kicks off (or finds the running job) and polls until the manifest is ready; says
    /// whether the job is one this call started.
    async fn wait_for_manifest(&self) -> Result<(Manifest, bool), BulkError> {
        let mut kicked_off_here = false;
        loop {
            let status_url = {
                let mut state = self.state.lock().await;
                match state.status_url.as_deref().map(Url::parse) {
                    Some(Ok(url)) => url,
                    _ => {
                        // The kick-off URL holds the user's own parameters, no credentials.
                        self.say(&format!("kick-off: {}", self.kickoff));
                        let url = job::kick_off(&self.http, &self.kickoff).await?;
                        kicked_off_here = true;
                        state.status_url = Some(url.to_string());
                        self.save(&state).await?;
                        url
                    }
                }
            };
            let mut backoff = self.settings.poll.initial;
            let mut last_progress = None;
            let gone = loop {
                match job::poll(&self.http, &status_url, &self.settings.poll, backoff).await? {
                    Poll::Running { progress, wait } => {
                        if progress.is_some() && progress != last_progress {
                            self.say(&format!("export in progress: {}", progress.as_deref().unwrap_or_default()));
                            last_progress = progress;
                        }
                        let jitter = wait.mul_f64(0.1 * rand::random::<f64>());
                        tokio::time::sleep(wait + jitter).await;
                        backoff = (backoff * 2).min(self.settings.poll.max);
                    }
                    Poll::Done(manifest) => {
                        let mut state = self.state.lock().await;
                        state.manifest = Some((*manifest).clone());
                        self.save(&state).await?;
                        break false;
                    }
                    Poll::Gone => break true,
                }
            };
            if !gone {
                return Ok((self.state.lock().await.manifest.clone().expect("just set"), kicked_off_here));
            }
            if kicked_off_here {
                return Err(BulkError::Refused {
                    what: "export status".into(),
                    reason: format!("{} no longer knows the job it just started", redact(&status_url)),
                });
            }
            // A resumed job the server forgot (expired or deleted): start a new one.
            self.say("the server no longer knows the earlier export job; starting a new one");
            self.start_over().await?;
        }
    }

    /// Discards the folder's export (see [`Exporter::discard`]) and keeps only its request, so
    /// that what comes next, in this run or the next, is a new kick-off.
    async fn start_over(&self) -> Result<(), BulkError> {
        let mut state = self.state.lock().await;
        let discarded = self.discard(std::mem::take(&mut *state)).await;
        *state = State { request: self.kickoff.to_string(), ..discarded };
        self.save(&state).await
    }

    /// Downloads every file of `manifest` not saved yet, `concurrency` at a time.
    async fn download_all(&self, manifest: &Manifest) -> Result<(), BulkError> {
        let tasks = file_tasks(manifest)?;
        let total = tasks.len();
        let pending: Vec<FileTask> = {
            let state = self.state.lock().await;
            tasks.into_iter().filter(|t| !state.saved.contains_key(t.url.as_str())).collect()
        };
        if !pending.is_empty() {
            self.say(&format!(
                "downloading {} files with {} connections",
                pending.len(),
                self.settings.concurrency.max(1)
            ));
        }
        let settings = DownloadSettings { gzip: self.settings.gzip };
        // Once one file is gone the whole job will be discarded: downloads not started yet are
        // skipped (those under way finish, so that no half-written file is left behind).
        let gone = AtomicBool::new(false);
        // The futures are made by an iterator, not by `StreamExt::map`: that keeps `run`'s
        // future `Send` (a closure over borrowed tasks is not general enough for it).
        let downloads = pending.iter().map(|task| {
            let download = download::download(&self.http, &self.output, task, settings);
            let gone = &gone;
            async move {
                if gone.load(Ordering::Relaxed) {
                    return (task, None);
                }
                let result = download.await;
                if matches!(result, Err(FileFailure::Gone(_))) {
                    gone.store(true, Ordering::Relaxed);
                }
                (task, Some(result))
            }
        });
        let mut results = futures::stream::iter(downloads).buffer_unordered(self.settings.concurrency.max(1));
        let (mut failures, mut expired) = (Vec::new(), 0);
        while let Some((task, result)) = results.next().await {
            match result {
                None => {}
                Some(Ok(saved)) => {
                    tracing::info!(file = saved.name, lines = saved.lines, "saved");
                    let mut state = self.state.lock().await;
                    state.saved.insert(task.url.to_string(), saved);
                    self.save(&state).await?;
                }
                Some(Err(FileFailure::Gone(reason))) => {
                    expired += 1;
                    failures.push(reason);
                }
                Some(Err(FileFailure::Other(e))) => failures.push(failure_line(task, &e)),
            }
        }
        if failures.is_empty() {
            return Ok(());
        }
        failures.sort();
        let details = failures.join("\n  ");
        if expired > 0 {
            return Err(BulkError::Expired { expired, total, details });
        }
        let saved = self.state.lock().await.saved.len();
        Err(BulkError::Files { failed: failures.len(), total, saved, details })
    }

    /// Deletes the job of `state` if it still runs, removes its files; returns a fresh state.
    async fn discard(&self, state: State) -> State {
        if let Some(url) = state.status_url.as_deref().and_then(|u| Url::parse(u).ok()) {
            if !state.job_deleted && !state.complete {
                job::delete(&self.http, &url).await;
            }
        }
        for file in state.saved.values() {
            self.output.remove(&file.name).await;
        }
        self.output.remove(MANIFEST_FILE).await;
        State::default()
    }

    async fn load_state(&self) -> Result<State, BulkError> {
        match self.output.read(STATE_FILE).await? {
            None => Ok(State::default()),
            Some(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                BulkError::Invalid(format!(
                    "{}: not an export state file ({e}); remove it to start anew",
                    self.output.describe(STATE_FILE)
                ))
            }),
        }
    }

    async fn save(&self, state: &State) -> Result<(), BulkError> {
        self.output.write(STATE_FILE, serde_json::to_vec_pretty(state).expect("states serialise")).await
    }

    async fn summarise_errors(&self, state: &State) -> ErrorSummary {
        let mut summary = ErrorSummary::default();
        for file in state.saved.values().filter(|f| f.section == Section::Error) {
            let bytes = match self.output.read(&file.name).await {
                Ok(Some(bytes)) => bytes,
                _ => continue,
            };
            let text = if file.gzip {
                let mut text = Vec::new();
                let decoded = std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut text);
                if decoded.is_err() {
                    continue;
                }
                text
            } else {
                bytes
            };
            for line in text.split(|b| *b == b'\n').filter(|l| l.iter().any(|b| !b.is_ascii_whitespace())) {
                summary.add_line(line);
            }
        }
        summary
    }

    fn outcome(
        &self,
        state: &State,
        manifest: Manifest,
        resumed: usize,
        already: bool,
        started: Instant,
    ) -> ExportOutcome {
        let stats = &self.http.stats;
        let mut files: Vec<SavedFile> = state.saved.values().cloned().collect();
        files.sort_by(|a, b| a.name.cmp(&b.name));
        ExportOutcome {
            manifest_path: self.output.describe(MANIFEST_FILE),
            manifest,
            files,
            resumed,
            already_complete: already,
            errors: ErrorSummary::default(),
            requests: stats.requests.load(Ordering::Relaxed),
            retries: stats.retries.load(Ordering::Relaxed),
            throttled: stats.throttled.load(Ordering::Relaxed),
            tokens: stats.tokens.load(Ordering::Relaxed),
            seconds: started.elapsed().as_secs_f64(),
        }
    }

    fn say(&self, message: &str) {
        tracing::info!("{message}");
        if self.settings.progress {
            // A closed standard error must not stop a download.
            let _ = writeln!(std::io::stderr(), "{message}");
        }
    }

    /// The request counts so far.
    #[must_use]
    pub fn stats(&self) -> &RequestStats {
        &self.http.stats
    }
}

/// Refuses a server base URL that no request could be sent to, before anything is done with
/// it.
///
/// # Errors
///
/// [`BulkError::Invalid`] for a scheme other than http and https (which always have a host).
pub fn check_server_url(server: &Url) -> Result<(), BulkError> {
    if matches!(server.scheme(), "http" | "https") {
        return Ok(());
    }
    Err(BulkError::Invalid(format!(
        "{}: a FHIR server's base URL must start with http:// or https://, not {}:",
        redact(server),
        server.scheme()
    )))
}

/// One line of [`BulkError::Files`]: the error, naming the file once (most errors name it
/// already, in the request's description or the local path; a failed token request does not).
fn failure_line(task: &FileTask, error: &BulkError) -> String {
    let text = error.to_string();
    if text.contains(&task.name) {
        text
    } else {
        format!("{}: {text}", task.name)
    }
}

/// The download tasks of a manifest, with their file names in the output folder.
fn file_tasks(manifest: &Manifest) -> Result<Vec<FileTask>, BulkError> {
    let mut numbers: BTreeMap<(Section, String), u32> = BTreeMap::new();
    let mut tasks = Vec::new();
    let sections =
        [(Section::Output, &manifest.output), (Section::Error, &manifest.error), (Section::Deleted, &manifest.deleted)];
    for (section, entries) in sections {
        for entry in entries {
            let url = Url::parse(&entry.url)
                .map_err(|e| BulkError::Invalid(format!("manifest file URL {:?} is not absolute: {e}", entry.url)))?;
            let default_type = match section {
                Section::Output => "Resource",
                Section::Error => "OperationOutcome",
                Section::Deleted => "Bundle",
            };
            let resource_type =
                if !entry.resource_type.is_empty() && entry.resource_type.chars().all(|c| c.is_ascii_alphanumeric()) {
                    entry.resource_type.clone()
                } else {
                    default_type.to_owned()
                };
            let number = numbers.entry((section, resource_type.clone())).or_default();
            let folder = match section {
                Section::Output => "",
                Section::Error => "error/",
                Section::Deleted => "deleted/",
            };
            let name = format!("{folder}{resource_type}.{number:03}.ndjson");
            *number += 1;
            tasks.push(FileTask {
                section,
                resource_type,
                url,
                name,
                count: entry.count,
                authorised: manifest.requires_access_token,
            });
        }
    }
    Ok(tasks)
}

/// The output folder's manifest: the server's, with relative URLs and verified counts.
fn written_manifest(server: &Manifest, state: &State) -> Result<Manifest, BulkError> {
    let entry = |e: &ManifestEntry| -> Result<ManifestEntry, BulkError> {
        let saved = state
            .saved
            .get(Url::parse(&e.url).map(|u| u.to_string()).unwrap_or_default().as_str())
            .ok_or_else(|| BulkError::Invalid(format!("{} was not saved", e.url)))?;
        Ok(ManifestEntry { resource_type: e.resource_type.clone(), url: saved.name.clone(), count: Some(saved.lines) })
    };
    let section = |entries: &[ManifestEntry]| entries.iter().map(entry).collect::<Result<Vec<_>, _>>();
    Ok(Manifest {
        transaction_time: server.transaction_time.clone(),
        request: server.request.clone(),
        requires_access_token: false,
        output: section(&server.output)?,
        error: section(&server.error)?,
        deleted: section(&server.deleted)?,
    })
}

/// The kick-off request of the export a local folder holds (finished or not), if any.
#[must_use]
pub fn folder_request(dir: &std::path::Path) -> Option<String> {
    let state: State = serde_json::from_slice(&std::fs::read(dir.join(STATE_FILE)).ok()?).ok()?;
    Some(state.request)
}

/// Runs an export on a runtime of its own, deleting the job on the server when the user
/// presses Ctrl-C.
///
/// # Errors
///
/// The export's [`BulkError`], or [`BulkError::Cancelled`].
pub fn export_until_interrupted(exporter: &Exporter) -> Result<ExportOutcome, BulkError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fhirhouse-bulk")
        .enable_all()
        .build()
        .map_err(|e| BulkError::io("the export's runtime", e))?;
    runtime.block_on(async {
        tokio::select! {
            outcome = exporter.run() => outcome,
            _ = tokio::signal::ctrl_c() => {
                let _ = writeln!(std::io::stderr(), "interrupted: deleting the export job on the server");
                exporter.abandon().await;
                Err(BulkError::Cancelled)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_named_by_type_and_number_in_manifest_order() {
        let entry = |t: &str, u: &str| ManifestEntry { resource_type: t.into(), url: u.into(), count: None };
        let manifest = Manifest {
            transaction_time: "2024-01-01T00:00:00Z".into(),
            request: String::new(),
            requires_access_token: true,
            output: vec![
                entry("Patient", "https://s/1"),
                entry("Patient", "https://s/2"),
                entry("../x", "https://s/3"),
            ],
            error: vec![entry("OperationOutcome", "https://s/e")],
            deleted: vec![entry("", "https://s/d")],
        };
        let names: Vec<String> = file_tasks(&manifest).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(
            names,
            [
                "Patient.000.ndjson",
                "Patient.001.ndjson",
                "Resource.000.ndjson",
                "error/OperationOutcome.000.ndjson",
                "deleted/Bundle.000.ndjson"
            ]
        );
    }
}
