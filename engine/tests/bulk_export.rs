//! The Bulk Data client against the in-process test server (`bulk_support`): complete and
//! verified downloads, the IG's headers and parameters, retries of every transient fault,
//! terminal errors with the server's words, the shared Retry-After, resuming, Ctrl-C and
//! the deadline, error and deleted files, object-store output, the CLI.

mod bulk_support;
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bulk_support::{fast, lines_of, BulkServer};
use fhirhouse::bulk::{BulkError, ExportOutcome, ExportRequest, ExportSettings, Exporter, Level, Section};
use url::Url;

/// Resources the test server holds: the sample's 4142 and its Group `two`.
const SERVER_RESOURCES: u64 = 4143;

fn request(server: &BulkServer) -> ExportRequest {
    ExportRequest::new(Url::parse(&server.base).unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn exporter(server: &BulkServer, out: &Path, settings: ExportSettings) -> Exporter {
    Exporter::new(request(server), settings, &out.to_path_buf().into()).unwrap()
}

fn run(exporter: &Exporter) -> Result<ExportOutcome, BulkError> {
    runtime().block_on(exporter.run())
}

fn export(
    server: &BulkServer,
    out: &Path,
    tweak: impl FnOnce(&mut ExportRequest, &mut ExportSettings),
) -> Result<ExportOutcome, BulkError> {
    let (mut request, mut settings) = (request(server), fast());
    tweak(&mut request, &mut settings);
    run(&Exporter::new(request, settings, &out.to_path_buf().into()).unwrap())
}

fn resources(outcome: &ExportOutcome) -> u64 {
    outcome.files.iter().filter(|f| f.section == Section::Output).map(|f| f.lines).sum()
}

#[test]
fn a_full_export_is_verified_saved_with_a_relative_manifest_and_loads_as_it_is() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let outcome = export(&server, &out, |_, _| {}).unwrap();
    assert_eq!(resources(&outcome), SERVER_RESOURCES);
    assert_eq!(lines_of(&out).len() as u64, SERVER_RESOURCES);

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["requiresAccessToken"], false);
    let entries = manifest["output"].as_array().unwrap();
    assert_eq!(entries.len(), 18, "one file per type");
    for entry in entries {
        let url = entry["url"].as_str().unwrap();
        assert!(!url.contains("://") && out.join(url).is_file(), "{url} is relative and saved");
    }
    assert_eq!(manifest["transactionTime"], outcome.manifest.transaction_time);

    // The IG's headers; the job deleted once downloaded.
    let kickoff = &server.requests("/$export")[0];
    assert_eq!(kickoff.prefer.as_deref(), Some("respond-async"));
    assert_eq!(kickoff.accept.as_deref(), Some("application/fhir+json"));
    assert!(kickoff.query.contains("_outputFormat=application%2Ffhir%2Bndjson"), "{}", kickoff.query);
    assert!(server
        .requests("")
        .iter()
        .any(|r| r.path.starts_with("/files/") && r.accept.as_deref() == Some("application/fhir+ndjson")));
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1"]);

    // `fhirhouse load` reads the folder's manifest as it is, and gets the sample's tables.
    let warehouse = dir.path().join("wh");
    let loaded = common::load_with(&[out.join("manifest.json")], &warehouse, |_| {});
    assert!(loaded.committed());
    assert_eq!(loaded.report.totals.lines, SERVER_RESOURCES);
    let sample = dir.path().join("sample-wh");
    common::load_with(&[common::sample()], &sample, |_| {});
    assert_eq!(common::table_counts(warehouse.as_path()), common::table_counts(sample.as_path()));

    // A second run finds it complete and asks the server nothing.
    let before = server.requests("").len();
    let again = export(&server, &out, |_, _| {}).unwrap();
    assert!(again.already_complete);
    assert_eq!(server.requests("").len(), before);
}

#[test]
fn gzip_is_asked_for_and_the_files_are_kept_compressed() {
    let server = BulkServer::start();
    server.faults(|f| f.gzip = true);
    let dir = tempfile::tempdir().unwrap();
    let outcome = export(&server, dir.path(), |_, s| s.gzip = true).unwrap();
    assert!(outcome.files.iter().all(|f| f.gzip && f.name.ends_with(".ndjson.gz")), "{:?}", outcome.files[0]);
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
    let files = server.requests("").into_iter().filter(|r| r.path.starts_with("/files/")).collect::<Vec<_>>();
    assert!(files.iter().all(|r| r.accept_encoding.as_deref() == Some("gzip")));
    let loaded = common::load_with(&[dir.path().join("manifest.json")], &dir.path().join("wh"), |_| {});
    assert_eq!(loaded.report.totals.lines, SERVER_RESOURCES);
}

#[test]
fn transient_faults_are_retried_until_every_file_is_whole() {
    let server = BulkServer::start();
    server.faults(|f| {
        f.kickoff_429 = 1;
        f.retry_after_secs = Some(1);
        f.status_500 = 2;
        f.polls_before_done = 2;
        f.file_500 = 2;
        f.drop_mid_file = 2;
        f.truncate_file = 2;
        f.gzip = true;
    });
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let outcome = export(&server, dir.path(), |_, s| s.gzip = true).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "the kick-off's Retry-After: 1 was waited");
    assert_eq!(resources(&outcome), SERVER_RESOURCES);
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
    // 1 kick-off 429 + 2 status 500 + 2 file 500 + 2 dropped + 2 truncated.
    assert_eq!(outcome.retries, 9, "{outcome:?}");
    assert_eq!(outcome.throttled, 1);
    let kickoffs = server.requests("/$export");
    assert_eq!(kickoffs.len(), 2);
    assert!(kickoffs[1].at - kickoffs[0].at >= Duration::from_millis(990));
}

#[test]
fn a_truncated_plain_file_is_caught_by_the_count_and_by_the_cut_line() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    // With counts the short file is refused for its count; without, for its cut last line.
    for omit_counts in [false, true] {
        server.faults(|f| {
            f.truncate_file = 1;
            f.omit_counts = omit_counts;
        });
        let out = dir.path().join(format!("export-{omit_counts}"));
        let outcome = export(&server, &out, |_, s| s.concurrency = 1).unwrap();
        assert_eq!(outcome.retries, 1);
        assert_eq!(lines_of(&out).len() as u64, SERVER_RESOURCES);
    }
}

#[test]
fn terminal_errors_stop_at_once_with_the_servers_operation_outcome() {
    let server = BulkServer::start();
    server.faults(|f| f.kickoff_forbidden = true);
    let dir = tempfile::tempdir().unwrap();
    let err = export(&server, dir.path(), |_, _| {}).unwrap_err().to_string();
    assert!(err.starts_with("export kick-off"), "{err}");
    assert!(
        err.contains("HTTP 403 Forbidden: error (forbidden): the token's scopes do not allow a system export"),
        "{err}"
    );
    assert_eq!(server.requests("/$export").len(), 1, "a 403 is not retried");

    // A group the server does not know: 404 with its OperationOutcome.
    server.faults(|f| f.kickoff_forbidden = false);
    let err = export(&server, &dir.path().join("g"), |r, _| r.level = Level::Group("nope".into())).unwrap_err();
    assert!(err.to_string().contains("HTTP 404 Not Found: error (not-found): Group/nope is not known"), "{err}");
}

#[test]
fn requests_that_cannot_be_sent_fail_at_once() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    // A status URL of a scheme reqwest cannot send.
    server.faults(|f| f.status_location = Some("ftp://127.0.0.1/fhir/status/x".into()));
    let err = export(&server, &dir.path().join("a"), |_, _| {}).unwrap_err();
    assert!(matches!(err, BulkError::Unsendable { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "export status (ftp://127.0.0.1/fhir/status/x): cannot send the request: URL scheme is not allowed"
    );
    // A kick-off redirected in a loop: reqwest's redirects are followed once, not retried.
    server.faults(|f| {
        f.status_location = None;
        f.kickoff_redirect_loop = true;
    });
    let err = export(&server, &dir.path().join("b"), |_, _| {}).unwrap_err();
    assert!(matches!(err, BulkError::Unsendable { .. }), "{err}");
    assert!(err.to_string().contains("the redirects went wrong"), "{err}");
    assert_eq!(server.requests("/$export").len(), 1 + 1 + 10, "one kick-off, then ten redirects");

    // A server URL of another scheme is refused before anything is created.
    let mut request = request(&server);
    request.server = Url::parse("ftp://x/fhir").unwrap();
    let out = dir.path().join("ftp");
    let err = Exporter::new(request, fast(), &out.clone().into()).err().expect("an ftp server is refused");
    assert_eq!(err.to_string(), "ftp://x/fhir: a FHIR server's base URL must start with http:// or https://, not ftp:");
    assert!(!out.exists());
}

#[test]
fn transient_errors_give_up_after_the_policy_with_the_last_reason() {
    let server = BulkServer::start();
    server.faults(|f| f.status_500 = 100);
    let dir = tempfile::tempdir().unwrap();
    let err = export(&server, dir.path(), |_, s| s.retry.attempts = 3).unwrap_err().to_string();
    assert_eq!(err, "export status: gave up after 3 tries; the last: HTTP 500 Internal Server Error");
}

#[test]
fn a_retry_after_pauses_every_concurrent_download() {
    let server = BulkServer::start();
    server.faults(|f| {
        f.resources_per_file = 100;
        f.piece_delay = Some(Duration::from_millis(2));
    });
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let concurrency = 6;
    let exporter = exporter(&server, dir.path(), ExportSettings { concurrency, ..fast() });
    // Throttle once downloads are under way.
    let throttle = {
        let state = std::sync::Arc::clone(&server.state);
        std::thread::spawn(move || loop {
            let mut state = state.lock().unwrap();
            if state.log.iter().filter(|l| l.path.starts_with("/files/")).count() >= 8 {
                state.faults.file_429 = 1;
                state.faults.retry_after_secs = Some(1);
                return;
            }
            drop(state);
            std::thread::sleep(Duration::from_millis(1));
        })
    };
    let outcome = rt.block_on(exporter.run()).unwrap();
    throttle.join().unwrap();
    assert_eq!(resources(&outcome), SERVER_RESOURCES);
    let files: Vec<_> = server.requests("").into_iter().filter(|r| r.path.starts_with("/files/")).collect();
    let throttled = files.iter().find(|r| r.status == 429).expect("one 429").at;
    let after: Vec<Duration> = files.iter().filter(|r| r.at > throttled).map(|r| r.at - throttled).collect();
    assert!(after.len() > 10, "downloads went on after the 429");
    // The server logs a request when it arrives, so the other workers' requests
    // that were already on the wire when the 429 went out land just after it;
    // the client cannot have held those. Every later one waits the Retry-After.
    let in_flight = Duration::from_millis(100);
    let (sent_before_the_429_arrived, held): (Vec<Duration>, Vec<Duration>) =
        after.iter().partition(|d| **d < in_flight);
    assert!(
        sent_before_the_429_arrived.len() < concurrency,
        "more requests right after the 429 than other workers: {sent_before_the_429_arrived:?}"
    );
    assert!(
        held.iter().all(|d| *d >= Duration::from_millis(990)),
        "no download started within the Retry-After: {:?}",
        after.iter().take(8).collect::<Vec<_>>()
    );
    assert!(server.state.lock().unwrap().max_active_downloads > 1, "downloads ran in parallel");
}

#[test]
fn the_request_budget_spaces_requests() {
    let server = BulkServer::start();
    server.faults(|f| f.resources_per_file = 1000);
    let dir = tempfile::tempdir().unwrap();
    // 20 requests a second: kick-off, one poll and 20 files need at least a second.
    let started = Instant::now();
    let outcome = export(&server, dir.path(), |_, s| s.requests_per_second = Some(20.0)).unwrap();
    assert!(outcome.requests >= 20, "{}", outcome.requests);
    assert!(started.elapsed() >= Duration::from_millis(50 * (outcome.requests - 1)), "{:?}", started.elapsed());
}

#[test]
fn slow_progress_is_polled_with_the_servers_retry_after_and_x_progress() {
    let server = BulkServer::start();
    server.faults(|f| {
        f.polls_before_done = 2;
        f.poll_retry_after_secs = Some(1);
    });
    let dir = tempfile::tempdir().unwrap();
    export(&server, dir.path(), |_, s| s.poll.max = Duration::from_millis(400)).unwrap();
    let polls: Vec<_> = server.requests("/status/job1").into_iter().filter(|r| r.method == "GET").collect();
    assert_eq!(polls.len(), 3);
    // Retry-After 1 s, bounded by the policy's 400 ms maximum (plus up to 10 % jitter).
    for pair in polls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(400) && gap < Duration::from_millis(900), "{gap:?}");
    }

    server.faults(|f| f.poll_retry_after_secs = Some(1));
    let started = Instant::now();
    export(&server, &dir.path().join("b"), |_, _| {}).unwrap();
    assert!(started.elapsed() >= Duration::from_secs(2), "two Retry-After: 1 waits");
}

#[test]
fn a_failed_file_fails_the_export_and_a_rerun_downloads_only_what_is_missing() {
    let server = BulkServer::start();
    server.faults(|f| f.truncate_file = 1);
    let dir = tempfile::tempdir().unwrap();
    let text = half_done(&server, dir.path());
    assert!(text.starts_with("1 of 18 files could not be downloaded (17 saved; running the export again resumes)"));
    assert!(!dir.path().join("manifest.json").exists(), "an incomplete export has no manifest");
    assert!(server.state.lock().unwrap().deleted_jobs.is_empty(), "the job is kept for the rerun");

    let before = server.requests("").len();
    let outcome = export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(outcome.resumed, 17);
    let rerun: Vec<_> = server.requests("").into_iter().skip(before).collect();
    let files = rerun.iter().filter(|r| r.path.starts_with("/files/")).count();
    assert_eq!(files, 1, "only the failed file");
    assert!(!rerun.iter().any(|r| r.path.ends_with("/$export")), "no new kick-off");
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
}

/// A first run into `out` that saves 17 of the 18 files (one is cut off and not tried
/// again) and keeps the job and its manifest for the next run; returns its error.
fn half_done(server: &BulkServer, out: &Path) -> String {
    server.faults(|f| f.truncate_file = 1);
    let err = export(server, out, |_, s| s.retry.attempts = 1).unwrap_err().to_string();
    assert!(err.starts_with("1 of 18 files could not be downloaded (17 saved"), "{err}");
    err
}

/// The names of the export files in `dir`.
fn export_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".ndjson"))
        .collect();
    names.sort();
    names
}

#[test]
fn an_expired_file_discards_the_export_and_says_the_next_run_starts_a_new_one() {
    let server = BulkServer::start();
    server.faults(|f| f.missing_file = Some("Condition.0.ndjson".into()));
    let dir = tempfile::tempdir().unwrap();
    let err = export(&server, dir.path(), |_, _| {}).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, BulkError::Expired { expired: 1, total: 18, .. }), "{text}");
    assert!(
        text.starts_with(
            "the server no longer has 1 of the export's 18 files (expired); the files saved were discarded, \
             and running the export again starts a new export:\n  file Condition.000.ndjson (http://127.0.0.1:"
        ),
        "{text}"
    );
    assert!(text.ends_with("/files/job1/Condition.0.ndjson): HTTP 404 Not Found: error (not-found): file expired"));
    assert_eq!(text.matches("Condition.000.ndjson").count(), 1, "the file is named once: {text}");
    // A job this run started is not replaced by the same run: its files would likely be gone
    // again, and a new export may take long. But the folder is ready for a new one.
    assert_eq!(server.requests("/$export").len(), 1);
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1"]);
    assert!(export_files(dir.path()).is_empty(), "the job's files are discarded: {:?}", export_files(dir.path()));
    assert!(!dir.path().join("manifest.json").exists());

    server.faults(|f| f.missing_file = None);
    let outcome = export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(server.requests("/$export").len(), 2, "a new kick-off");
    assert_eq!(outcome.resumed, 0);
    assert!(server.requests("/files/job2/Condition.0.ndjson").len() == 1);
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
}

#[test]
fn a_resumed_job_whose_files_expired_is_replaced_by_a_new_export_once() {
    // The earlier run's job expired before this one: one new export, in the same run.
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    half_done(&server, dir.path());
    server.faults(|f| f.gone_jobs = vec!["job1".into()]);
    let outcome = export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(server.requests("/$export").len(), 2);
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1", "job2"]);
    assert_eq!(outcome.resumed, 0, "nothing of the expired job is kept");
    let job1_files: Vec<_> = server.requests("").into_iter().filter(|r| r.path.starts_with("/files/job1/")).collect();
    assert_eq!(job1_files.iter().filter(|r| r.status == 410).count(), 1);
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
    assert_eq!(export_files(dir.path()).len(), 18, "no file of the old job is left");

    // The new job's files are gone too: no second new export in the same run.
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    half_done(&server, dir.path());
    server.faults(|f| f.gone_jobs = vec!["job1".into(), "job2".into()]);
    let err = export(&server, dir.path(), |_, _| {}).unwrap_err().to_string();
    // (Downloads not started yet once a file is gone are skipped: the count is of those tried.)
    assert!(
        err.starts_with("the server no longer has ") && err.contains(" of the export's 18 files (expired)"),
        "{err}"
    );
    assert!(err.contains("HTTP 410 Gone: error (expired): the export's files have expired"), "{err}");
    assert_eq!(server.requests("/$export").len(), 2);
    let job2_files = server.requests("").into_iter().filter(|r| r.path.starts_with("/files/job2/")).count();
    assert!(job2_files < 18, "downloads are skipped once a file is gone: {job2_files}");
    // ... and the next run starts a third.
    server.faults(|f| f.gone_jobs.clear());
    export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(server.requests("/$export").len(), 3);
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
}

#[test]
fn a_crashed_export_resumes_its_job_without_downloading_finished_files_again() {
    let server = BulkServer::start();
    server.faults(|f| {
        f.resources_per_file = 200;
        f.piece_delay = Some(Duration::from_millis(3));
    });
    let dir = tempfile::tempdir().unwrap();
    let exporter = exporter(&server, dir.path(), ExportSettings { concurrency: 2, ..fast() });
    let rt = runtime();
    // The process "dies" part-way through the downloads: the export's future is dropped
    // where it is, once a few files are saved.
    let state_file = dir.path().join(".fhirhouse-export.json");
    let saved_files = || -> usize {
        std::fs::read(&state_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map_or(0, |s| s["saved"].as_object().map_or(0, serde_json::Map::len))
    };
    rt.block_on(async {
        tokio::select! {
            _ = exporter.run() => panic!("the export finished before the crash"),
            () = async { while saved_files() < 3 { tokio::time::sleep(Duration::from_millis(2)).await } } => {}
        }
    });
    drop(rt);
    let saved = saved_files();
    assert!(saved < 20, "the crash came before the end: {saved} saved");

    server.faults(|f| f.piece_delay = None);
    let before = server.requests("").len();
    let outcome = export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(outcome.resumed, saved);
    let rerun: Vec<_> = server.requests("").into_iter().skip(before).collect();
    assert!(!rerun.iter().any(|r| r.path.ends_with("/$export")), "the same job was resumed");
    let downloads = rerun.iter().filter(|r| r.path.starts_with("/files/")).count();
    assert_eq!(downloads + saved, outcome.files.len());
    assert_eq!(lines_of(dir.path()).len() as u64, SERVER_RESOURCES);
    let leftovers: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "half-written files of the crash were replaced: {leftovers:?}");
}

#[test]
fn abandoning_deletes_the_job_and_the_next_run_starts_a_new_one() {
    let server = BulkServer::start();
    server.faults(|f| f.polls_before_done = 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let exporter = exporter(&server, dir.path(), fast());
    let rt = runtime();
    rt.block_on(async {
        // What Ctrl-C does: the run is dropped, then the job is abandoned. (The test server
        // takes a moment, in a debug build, to cut the sample into files at kick-off.)
        let _ = tokio::time::timeout(Duration::from_millis(1500), exporter.run()).await;
        exporter.abandon().await;
    });
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1"]);
    server.faults(|f| f.polls_before_done = 0);
    export(&server, dir.path(), |_, _| {}).unwrap();
    assert_eq!(server.requests("/$export").len(), 2, "a new job");
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1", "job2"]);
}

#[test]
fn the_deadline_stops_the_export_and_deletes_the_job() {
    let server = BulkServer::start();
    server.faults(|f| f.polls_before_done = 1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let err = export(&server, dir.path(), |_, s| s.deadline = Duration::from_millis(1500)).unwrap_err();
    assert!(matches!(err, BulkError::Deadline(_)), "{err}");
    assert!(err.to_string().contains("deadline of 1.5s; the job was deleted"), "{err}");
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1"]);
}

#[test]
fn error_files_are_saved_and_summarised() {
    let server = BulkServer::start();
    server.faults(|f| f.error_file = true);
    let dir = tempfile::tempdir().unwrap();
    let outcome = export(&server, dir.path(), |_, _| {}).unwrap();
    assert!(dir.path().join("error/OperationOutcome.000.ndjson").is_file());
    assert_eq!(outcome.errors.outcomes, 2);
    assert_eq!(outcome.errors.examples[0], "error (processing): Patient/x could not be exported");
    let summary = outcome.summary();
    assert!(summary.contains("server errors: 2 OperationOutcomes (error 2) in 1 file\n"), "{summary}");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["error"][0]["url"], "error/OperationOutcome.000.ndjson");
    // The load reports them too.
    let loaded = common::load_with(&[dir.path().join("manifest.json")], &dir.path().join("wh"), |_| {});
    assert_eq!(loaded.report.server_errors[0].outcomes, 2);
}

#[test]
fn levels_and_parameters_reach_the_server_and_since_brings_deletions() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let group = export(&server, &dir.path().join("group"), |r, _| {
        r.level = Level::Group("two".into());
        r.types = vec!["Patient".into(), "Condition".into()];
        r.elements = vec!["id".into(), "code".into()];
        r.type_filters = vec!["Patient?gender=female".into()];
    })
    .unwrap();
    let patients: u64 = group.files.iter().filter(|f| f.resource_type == "Patient").map(|f| f.lines).sum();
    assert!(patients <= 2 && patients > 0, "{patients}");
    assert!(group.files.iter().all(|f| ["Patient", "Condition"].contains(&f.resource_type.as_str())));
    let kickoff = server.requests("/Group/two/$export").pop().unwrap();
    for expected in ["_type=Patient%2CCondition", "_elements=id%2Ccode", "_typeFilter=Patient%3Fgender%3Dfemale"] {
        assert!(kickoff.query.contains(expected), "{expected} in {}", kickoff.query);
    }
    export(&server, &dir.path().join("patients"), |r, _| r.level = Level::Patient).unwrap();
    assert_eq!(server.requests("/Patient/$export").len(), 1);

    let since = group.manifest.transaction_time.clone();
    let patient = server.ids("Patient")[0].clone();
    server.update("Patient", &patient, |p| p["gender"] = "other".into());
    let condition = server.ids("Condition")[0].clone();
    server.delete("Condition", &condition);
    let increment = export(&server, &dir.path().join("increment"), |r, _| r.since = Some(since.clone())).unwrap();
    assert_eq!(resources(&increment), 1);
    let deleted: Vec<_> = increment.files.iter().filter(|f| f.section == Section::Deleted).collect();
    assert_eq!((deleted.len(), deleted[0].lines), (1, 1));
    let text = std::fs::read_to_string(dir.path().join("increment/deleted/Bundle.000.ndjson")).unwrap();
    assert!(text.contains(&format!("\"url\":\"Condition/{condition}\"")), "{text}");
    assert!(increment.summary().contains("deleted: 1 Bundle in 1 file"));
}

#[test]
fn an_export_can_go_to_an_object_store() {
    let server = BulkServer::start();
    let url = "memory://bulk-export-test/exports/first";
    let (request, settings) = (request(&server), fast());
    let outcome = run(&Exporter::new(request, settings, &url.into()).unwrap()).unwrap();
    assert_eq!(outcome.manifest_path, format!("{url}/manifest.json"));
    let dir = tempfile::tempdir().unwrap();
    let loaded = common::load_with(&[format!("{url}/manifest.json").into()], &dir.path().join("wh"), |_| {});
    assert_eq!(loaded.report.totals.lines, SERVER_RESOURCES);
}

#[test]
fn the_cli_exports_and_says_what_it_did_or_why_not() {
    let server = BulkServer::start();
    server.faults(|f| f.error_file = true);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("export");
    let fast_flags = ["--poll-initial", "5ms", "--retry-initial", "5ms", "--requests-per-second", "0"];
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["export", &server.base, "--out", out.to_str().unwrap(), "--type", " Patient, Condition,"])
        .args(fast_flags)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The items of a comma list are trimmed, and a stray comma adds nothing.
    let kickoff = server.requests("/$export").pop().unwrap();
    assert!(kickoff.query.ends_with("&_type=Patient%2CCondition"), "{}", kickoff.query);
    assert!(stderr.contains("kick-off: http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("export complete: 2 files, 75 resources"), "{stderr}");
    assert!(stderr.contains("  Condition 65, Patient 10\n"), "{stderr}");
    assert!(stderr.contains("server errors: 2 OperationOutcomes (error 2) in 1 file\n"), "{stderr}");
    assert!(stderr.contains(&format!("manifest: {}", out.join("manifest.json").display())), "{stderr}");

    server.faults(|f| f.kickoff_forbidden = true);
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["export", &server.base, "--out", dir.path().join("other").to_str().unwrap()])
        .args(fast_flags)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("error: export kick-off (http://127.0.0.1:"), "{stderr}");
    assert!(stderr.contains("HTTP 403 Forbidden: error (forbidden)"), "{stderr}");

    // The refused kick-off started nothing, so another request may use its folder.
    server.faults(|f| f.kickoff_forbidden = false);
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["export", &server.base, "--out", dir.path().join("other").to_str().unwrap(), "--type", "Patient"])
        .args(fast_flags)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("export complete: 1 file, 10 resources"), "{stderr}");

    // A folder holding another request's unfinished export is not silently discarded.
    let state = r#"{"request": "http://elsewhere.example/fhir/$export", "status_url": "http://elsewhere.example/jobs/1", "saved": {}}"#;
    std::fs::create_dir_all(dir.path().join("busy")).unwrap();
    std::fs::write(dir.path().join("busy/.fhirhouse-export.json"), state).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["export", &server.base, "--out", dir.path().join("busy").to_str().unwrap()])
        .args(fast_flags)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "holds an unfinished export of another request (http://elsewhere.example/fhir/$export); use --restart"
        ),
        "{stderr}"
    );
}

#[test]
fn the_cli_refuses_unusable_arguments_at_once_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let fhirhouse = |args: &[&str]| {
        let started = Instant::now();
        let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(args).output().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "not retried: {:?}", started.elapsed());
        assert_eq!(output.status.code(), Some(2));
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    for command in [["export", "ftp://x/fhir", "--out"], ["sync", "ftp://x/fhir", "--warehouse"]] {
        let stderr = fhirhouse(&[&command[..], &[out.to_str().unwrap()]].concat());
        assert!(
            stderr.contains(
                "invalid value 'ftp://x/fhir' for '<FHIR_BASE_URL>': must start with http:// or https://, not ftp:"
            ),
            "{stderr}"
        );
        assert!(!out.exists(), "{command:?} created {}", out.display());
    }
    let server = "http://127.0.0.1:9/fhir";
    let stderr = fhirhouse(&["export", server, "--out", out.to_str().unwrap(), "--type", "Patient Observation"]);
    assert!(
        stderr.contains(
            r#"error: --type "Patient Observation": a resource type cannot contain whitespace; separate several with commas"#
        ),
        "{stderr}"
    );
    let stderr = fhirhouse(&["sync", server, "--warehouse", out.to_str().unwrap(), "--elements", " , "]);
    assert!(stderr.contains("error: --elements was given without any element"), "{stderr}");
    assert!(!out.exists());
}

#[test]
fn ctrl_c_deletes_the_job_on_the_server() {
    use std::io::BufRead;
    let server = BulkServer::start();
    server.faults(|f| {
        f.polls_before_done = 1_000_000;
        f.poll_retry_after_secs = Some(1);
    });
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["export", &server.base, "--out", dir.path().to_str().unwrap(), "--poll-max", "50ms"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("export in progress") {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "the export ended early: {seen}");
        seen.push_str(&line);
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(2), "{seen}{rest}");
    assert!(rest.contains("interrupted: deleting the export job on the server"), "{rest}");
    assert!(rest.contains("error: interrupted; the export job was deleted on the server"), "{rest}");
    assert_eq!(server.state.lock().unwrap().deleted_jobs, ["job1"]);
}
