//! Incremental warehouses: `fhirhouse sync` against the in-process Bulk Data server, and
//! `load --merge`. The first sync is a full load; later ones merge `_since` increments
//! (updates, inserts, deletions) by resource id, newest version winning, with untouched
//! files carried over as hard links; re-applying an increment changes nothing; a failed sync
//! publishes nothing and a rerun resumes.

mod bulk_support;
mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use bulk_support::{fast, BulkServer};
use fhirhouse::bulk::ExportRequest;
use fhirhouse::load::sync::{sync, SyncOptions, SyncOutcome};
use fhirhouse::load::{LoadOptions, LoadOutcome};
use url::Url;

fn options(server: &BulkServer) -> SyncOptions {
    let mut load = LoadOptions::new(Vec::<fhirhouse::store::Address>::new(), PathBuf::new());
    load.threads = 2;
    load.chunk_bytes = 256 * 1024;
    SyncOptions {
        request: ExportRequest::new(Url::parse(&server.base).unwrap()),
        export: fast(),
        load,
        full: false,
        keep_export: false,
    }
}

fn run_sync(
    server: &BulkServer,
    warehouse: &Path,
    tweak: impl FnOnce(&mut SyncOptions),
) -> anyhow::Result<SyncOutcome> {
    let mut options = options(server);
    tweak(&mut options);
    sync(warehouse, &options)
}

/// A warehouse (in a new temporary folder) after its first sync from `server`.
fn first_sync(server: &BulkServer) -> (tempfile::TempDir, PathBuf, SyncOutcome) {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let first = run_sync(server, &wh, |_| {}).unwrap();
    (dir, wh, first)
}

/// `load --merge` of an export folder.
fn merge(export: &Path, warehouse: &Path) -> LoadOutcome {
    common::load_with(&[export.join("manifest.json")], warehouse, |o| o.merge = true)
}

/// The rows of a query, each as `a|b|c`.
fn rows(warehouse: &Path, sql: &str) -> Vec<String> {
    common::query_rows(warehouse, sql)
}

/// The inode of every part file of a table in a snapshot, by file name.
fn inodes(warehouse: &Path, load_id: &str, table: &str) -> Vec<(String, u64)> {
    let dir = warehouse.join("_fhirhouse/snapshots").join(load_id).join(table);
    let mut files = Vec::new();
    let mut pending = vec![dir.clone()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let name = path.strip_prefix(&dir).unwrap().display().to_string();
                files.push((name, std::fs::metadata(&path).unwrap().ino()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_first_sync_loads_in_full_and_the_next_ones_merge_updates_inserts_and_deletions() {
    let server = BulkServer::start();
    let (dir, wh, first) = first_sync(&server);
    assert_eq!(first.since, None);
    assert!(first.load.committed() && first.load.report.merge.is_none());
    assert!(first.kept_export.is_none() && !wh.join("_fhirhouse/sync/export").exists());
    let sample_wh = dir.path().join("sample");
    common::load_with(&[common::sample()], &sample_wh, |_| {});
    let full_counts = common::table_counts(sample_wh.as_path());
    assert_eq!(common::table_counts(wh.as_path()), full_counts);
    let record = fhirhouse::load::sync_record(&wh).unwrap();
    assert_eq!(record["transaction_time"], first.export.manifest.transaction_time);
    assert_eq!(record["server"], server.base);

    // Changes on the server: two updates, one new patient, two deletions.
    let patient = server.ids("Patient")[0].clone();
    server.update("Patient", &patient, |p| p["gender"] = "other".into());
    let with_components = server.find("Observation", |o| o["component"].as_array().is_some_and(|c| c.len() == 2));
    let components_before = common::table_rows(wh.as_path(), "observation_component");
    server.delete("Observation", &with_components);
    let observation = server.find("Observation", |o| o["valueQuantity"].is_object());
    server.update("Observation", &observation, |o| o["valueQuantity"]["value"] = 12345.5.into());
    let condition = server.ids("Condition")[0].clone();
    server.delete("Condition", &condition);
    server.create(serde_json::json!({"resourceType": "Patient", "id": "new-patient", "gender": "female", "birthDate": "2001-02-03"}));

    let second = run_sync(&server, &wh, |_| {}).unwrap();
    assert_eq!(second.since.as_deref(), Some(first.export.manifest.transaction_time.as_str()));
    let kickoff = server.requests("/$export").pop().unwrap();
    assert!(kickoff.query.contains("_since="), "{}", kickoff.query);
    let merged = second.load.report.merge.clone().expect("a merge");
    assert_eq!((merged.inserted, merged.updated, merged.unchanged, merged.deleted), (1, 2, 0, 2), "{merged:?}");
    assert_eq!(merged.base_load, first.load.report.load_id);

    let after = common::table_counts(wh.as_path());
    let counts = |table: &str| after.iter().find(|(t, _)| t == table).unwrap().1;
    let before = |table: &str| full_counts.iter().find(|(t, _)| t == table).unwrap().1;
    assert_eq!(counts("patient"), before("patient") + 1);
    assert_eq!(counts("observation"), before("observation") - 1);
    assert_eq!(counts("condition"), before("condition") - 1);
    assert_eq!(counts("observation_component"), components_before - 2);
    assert_eq!(counts("encounter"), before("encounter"));
    assert_eq!(rows(&wh, &format!("SELECT gender FROM patient WHERE id = '{patient}'")), ["other"]);
    assert_eq!(rows(&wh, "SELECT birth_date FROM patient WHERE id = 'new-patient'"), ["2001-02-03"]);
    let value = rows(&wh, &format!("SELECT value_quantity FROM observation WHERE id = '{observation}'"));
    assert_eq!(value, ["12345.500000000"]);
    let gone = format!("SELECT count(*) FROM observation_component WHERE observation_id = '{with_components}'");
    assert_eq!(rows(&wh, &gone), ["0"]);
    assert_eq!(rows(&wh, &format!("SELECT count(*) FROM condition WHERE id = '{condition}'")), ["0"]);

    // Untouched tables are the same files (hard links); only touched files were rewritten.
    let (load1, load2) = (&first.load.report.load_id, &second.load.report.load_id);
    assert_eq!(inodes(&wh, load1, "immunization"), inodes(&wh, load2, "immunization"));
    assert!(merged.files_linked > 100 && merged.files_rewritten <= 8, "{merged:?}");
    let report = second.load.report.summary();
    assert!(
        report.contains(&format!("merged into load {load1}: 1 inserted, 2 updated, 0 unchanged, 2 deleted")),
        "{report}"
    );

    // Nothing changed: an empty increment, the same tables.
    let third = run_sync(&server, &wh, |_| {}).unwrap();
    let merged = third.load.report.merge.clone().unwrap();
    assert_eq!((merged.inserted, merged.updated, merged.deleted, merged.files_rewritten), (0, 0, 0, 0));
    assert_eq!(common::table_counts(wh.as_path()), after);

    // The history lists the three loads.
    let output =
        Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(["history", wh.to_str().unwrap()]).output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].contains(load1.as_str()) && lines[1].contains("committed full"), "{text}");
    assert!(lines[2].contains(load2.as_str()) && lines[2].contains("committed merge"), "{text}");
    assert!(lines[3].starts_with('*'), "the last load is the published one: {text}");
}

#[test]
fn reapplying_an_increment_changes_nothing_and_an_older_copy_never_wins() {
    let server = BulkServer::start();
    let (dir, wh, _) = first_sync(&server);
    let patient = server.ids("Patient")[1].clone();
    server.update("Patient", &patient, |p| p["gender"] = "unknown".into());
    let condition = server.ids("Condition")[3].clone();
    server.delete("Condition", &condition);
    let second = run_sync(&server, &wh, |o| o.keep_export = true).unwrap();
    let export = second.kept_export.clone().expect("kept");
    let everything = "SELECT * FROM patient ORDER BY id";
    let conditions = "SELECT * FROM condition ORDER BY id";
    let (patients, conds) = (rows(&wh, everything), rows(&wh, conditions));

    let again = merge(&export, &wh);
    let merged = again.report.merge.clone().unwrap();
    assert_eq!((merged.unchanged, merged.updated, merged.deleted, merged.deleted_absent), (1, 0, 0, 1), "{merged:?}");
    assert_eq!((merged.files_rewritten, merged.base_rows_removed), (0, 0));
    assert_eq!(merged.increment_rows_dropped, 1);
    assert_eq!(rows(&wh, everything), patients);
    assert_eq!(rows(&wh, conditions), conds);

    // An export holding the patient's first version: the warehouse keeps the newer one.
    let old = dir.path().join("old");
    std::fs::create_dir_all(&old).unwrap();
    let line = std::fs::read_to_string(common::sample().join("Patient.000.ndjson"))
        .unwrap()
        .lines()
        .find(|l| l.contains(&patient))
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["meta"] = serde_json::json!({"versionId": "1", "lastUpdated": bulk_support::INITIAL_UPDATE});
            v.to_string()
        })
        .unwrap();
    std::fs::write(old.join("Patient.000.ndjson"), format!("{line}\n")).unwrap();
    let manifest = serde_json::json!({"transactionTime": "2024-01-02T00:00:00Z", "request": "", "requiresAccessToken": false,
        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}], "error": []});
    std::fs::write(old.join("manifest.json"), manifest.to_string()).unwrap();
    // As an export older than the warehouse it is refused whole: its deletions could not be
    // trusted either.
    let mut options = LoadOptions::new(vec![old.join("manifest.json")], wh.clone());
    options.merge = true;
    let err = fhirhouse::error_text(fhirhouse::load::load(&options).expect_err("refused").as_ref());
    assert!(err.contains("has transactionTime 2024-01-02T00:00:00Z, older than the warehouse's"), "{err}");
    // Dated later (a server that sends old versions): the version check keeps the newer one.
    let manifest = serde_json::json!({"transactionTime": "2099-01-01T00:00:00Z", "request": "", "requiresAccessToken": false,
        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}], "error": []});
    std::fs::write(old.join("manifest.json"), manifest.to_string()).unwrap();
    let stale = merge(&old, &wh).report.merge.unwrap();
    assert_eq!((stale.unchanged, stale.updated), (1, 0));
    assert_eq!(rows(&wh, &format!("SELECT gender FROM patient WHERE id = '{patient}'")), ["unknown"]);
}

#[test]
fn a_failed_sync_publishes_nothing_and_running_it_again_resumes_the_download() {
    let server = BulkServer::start();
    let (_dir, wh, first) = first_sync(&server);
    let patient = server.ids("Patient")[2].clone();
    server.update("Patient", &patient, |p| p["gender"] = "other".into());
    let observation = server.ids("Observation")[0].clone();
    server.update("Observation", &observation, |o| o["status"] = "amended".into());
    // A file cut short, and no second try: it fails, the other is saved. (A file the server
    // no longer has would start a new export instead of resuming.)
    server.faults(|f| f.truncate_file = 1);
    let err = run_sync(&server, &wh, |o| o.export.retry.attempts = 1).unwrap_err().to_string();
    assert!(err.contains("1 of 2 files could not be downloaded"), "{err}");
    let current = std::fs::read_link(wh.join("_fhirhouse/current")).unwrap();
    assert!(current.ends_with(&first.load.report.load_id), "the warehouse still shows the first load");
    assert_eq!(rows(&wh, &format!("SELECT gender FROM patient WHERE id = '{patient}'")), ["male"]);

    let kickoffs = server.requests("/$export").len();
    let files_before = server.requests("").iter().filter(|r| r.path.starts_with("/files/")).count();
    let resumed = run_sync(&server, &wh, |_| {}).unwrap();
    assert_eq!(server.requests("/$export").len(), kickoffs, "the rerun resumed the same job");
    let files_after = server.requests("").iter().filter(|r| r.path.starts_with("/files/")).count();
    assert_eq!(files_after - files_before, 1, "only the missing file was downloaded");
    assert_eq!(resumed.export.resumed, 1);
    assert_eq!(resumed.load.report.merge.as_ref().unwrap().updated, 2);
    assert_eq!(rows(&wh, &format!("SELECT gender FROM patient WHERE id = '{patient}'")), ["other"]);
}

#[test]
fn a_sync_killed_after_its_download_loads_that_download_when_run_again() {
    let server = BulkServer::start();
    let (_dir, wh, first) = first_sync(&server);
    let patient = server.ids("Patient")[4].clone();
    server.update("Patient", &patient, |p| p["gender"] = "other".into());
    // What the killed sync had done: the increment's download, complete; no load.
    let mut request = ExportRequest::new(Url::parse(&server.base).unwrap());
    request.since = Some(first.export.manifest.transaction_time.clone());
    let download = wh.join(fhirhouse::load::sync::DOWNLOAD_DIR);
    let exporter = fhirhouse::bulk::Exporter::new(request, fast(), &download.clone().into()).unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(exporter.run()).unwrap();
    let kickoffs = server.requests("/$export").len();

    let rerun = run_sync(&server, &wh, |_| {}).unwrap();
    assert!(rerun.export.already_complete);
    assert_eq!(server.requests("/$export").len(), kickoffs);
    assert_eq!(rerun.load.report.merge.unwrap().updated, 1);
    assert_eq!(rows(&wh, &format!("SELECT gender FROM patient WHERE id = '{patient}'")), ["other"]);
}

#[test]
fn a_warehouse_synced_from_one_server_is_not_merged_with_another() {
    let server = BulkServer::start();
    let other = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    run_sync(&server, &wh, |_| {}).unwrap();
    let err = run_sync(&other, &wh, |_| {}).unwrap_err().to_string();
    assert!(err.contains(&format!("is synced from {}, not {}: use --full", server.base, other.base)), "{err}");
    let full = run_sync(&other, &wh, |o| o.full = true).unwrap();
    assert!(full.since.is_none() && full.load.report.merge.is_none());
    assert_eq!(fhirhouse::load::sync_record(&wh).unwrap()["server"], other.base);
}

#[test]
fn deleted_files_are_read_as_bundles_and_bad_lines_are_counted_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    common::load_with(&[common::sample()], &wh, |_| {});
    let patient = server_free_patient_id();
    let increment = dir.path().join("inc");
    std::fs::create_dir_all(increment.join("deleted")).unwrap();
    let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"request": {"method": "DELETE", "url": format!("Patient/{patient}")}}]});
    std::fs::write(increment.join("deleted/Bundle.000.ndjson"), format!("{bundle}\nnot json\n")).unwrap();
    let manifest = serde_json::json!({"transactionTime": "2025-01-01T00:00:00Z", "request": "", "requiresAccessToken": false,
        "output": [], "error": [], "deleted": [{"type": "Bundle", "url": "deleted/Bundle.000.ndjson"}]});
    std::fs::write(increment.join("manifest.json"), manifest.to_string()).unwrap();
    // A warehouse made by a plain load has no key index: deletions still apply by id.
    let merged = merge(&increment, &wh).report.merge.unwrap();
    assert_eq!((merged.deleted, merged.deleted_unreadable), (1, 1), "{merged:?}");
    assert!(
        merged.deleted_examples[0].ends_with("Bundle.000.ndjson:2: not valid JSON: expected ident at line 1 column 2"),
        "{merged:?}"
    );
    assert_eq!(common::table_rows(wh.as_path(), "patient"), 9);
    assert_eq!(rows(&wh, &format!("SELECT count(*) FROM patient WHERE id = '{patient}'")), ["0"]);
}

fn server_free_patient_id() -> String {
    let text = std::fs::read_to_string(common::sample().join("Patient.000.ndjson")).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    first["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_merge_refuses_views_whose_columns_changed() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    common::load_with(&[common::sample()], &wh, |_| {});
    let views = dir.path().join("views");
    std::fs::create_dir_all(&views).unwrap();
    let mut patient: serde_json::Value =
        serde_json::from_slice(&std::fs::read(common::root().join("schemas/patient.json")).unwrap()).unwrap();
    patient["select"][0]["column"].as_array_mut().unwrap().pop();
    std::fs::write(views.join("patient.json"), patient.to_string()).unwrap();
    let mut options = LoadOptions::new(vec![common::sample()], wh.clone());
    options.views_dir = Some(views);
    options.merge = true;
    let outcome = fhirhouse::load::load(&options).unwrap();
    assert!(!outcome.committed());
    let failure = outcome.report.failure.unwrap();
    assert!(failure.contains("table patient has other columns than in load"), "{failure}");
}

/// A merge with `patient.json` changed by `change`, into a warehouse fully loaded with the
/// shipped views; the merge's failure, `None` when it committed.
fn merge_with_changed_patient_view(change: impl FnOnce(&mut serde_json::Value)) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    common::load_with(&[common::sample()], &wh, |_| {});
    let views = dir.path().join("views");
    std::fs::create_dir_all(&views).unwrap();
    for entry in std::fs::read_dir(common::root().join("schemas")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, views.join(path.file_name().unwrap())).unwrap();
    }
    let mut patient: serde_json::Value =
        serde_json::from_slice(&std::fs::read(views.join("patient.json")).unwrap()).unwrap();
    change(&mut patient);
    std::fs::write(views.join("patient.json"), patient.to_string()).unwrap();
    let mut options = LoadOptions::new(vec![common::sample()], wh.clone());
    options.views_dir = Some(views);
    options.merge = true;
    let outcome = fhirhouse::load::load(&options).unwrap();
    if outcome.committed() {
        None
    } else {
        Some(outcome.report.failure.unwrap())
    }
}

#[test]
fn a_merge_refuses_views_whose_rows_are_computed_otherwise() {
    // Same columns, another path: the held rows would keep the old path's values.
    let failure = merge_with_changed_patient_view(|patient| {
        let columns = patient["select"][0]["column"].as_array_mut().unwrap();
        let gender = columns.iter_mut().find(|c| c["name"] == "gender").unwrap();
        gender["path"] = "gender.upper()".into();
    })
    .expect("refused");
    assert!(failure.contains("table patient's view computes its rows otherwise than in load"), "{failure}");
    assert!(failure.contains("its 'select' changed"), "{failure}");
    assert!(failure.ends_with("load in full (fhirhouse sync --full)"), "{failure}");
    // A `where` added: rows the held load kept would stay.
    let failure = merge_with_changed_patient_view(|patient| {
        patient["where"] = serde_json::json!([{"path": "active = true"}]);
    })
    .expect("refused");
    assert!(failure.contains("its 'where' changed"), "{failure}");
    // What only describes the view changes nothing its rows hold.
    let committed = merge_with_changed_patient_view(|patient| {
        patient["description"] = "another description".into();
        patient["select"][0]["column"][0]["description"] = "another column description".into();
    });
    assert_eq!(committed, None);
}

#[test]
fn the_cli_syncs_twice_and_lists_the_history() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let sync_cli = || {
        Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
            .args(["sync", &server.base, "--warehouse", wh.to_str().unwrap(), "--threads", "2"])
            .args(["--poll-initial", "5ms", "--retry-initial", "5ms", "--requests-per-second", "0"])
            .output()
            .unwrap()
    };
    let first = sync_cli();
    let stderr = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{stderr}");
    assert!(stderr.contains("full export (the warehouse had no earlier sync"), "{stderr}");
    let patient = server.ids("Patient")[0].clone();
    server.update("Patient", &patient, |p| p["gender"] = "other".into());
    let second = sync_cli();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{stderr}");
    assert!(stderr.contains("increment since 2024-06-01T00:00:"), "{stderr}");
    assert!(stderr.contains("export complete: 1 file, 1 resource"), "{stderr}");
    assert!(stderr.contains(": 0 inserted, 1 updated, 0 unchanged, 0 deleted"), "{stderr}");
    let history = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["history", wh.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(history.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    assert_eq!((lines[0]["kind"].as_str(), lines[1]["kind"].as_str()), (Some("full"), Some("merge")));
    assert_eq!(lines[1]["merge"]["updated"], 1);
    assert_eq!(lines[1]["current"], true);
}

#[test]
fn a_sync_asking_for_another_selection_than_the_last_one_is_refused_without_full() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let types = |names: &[&str]| names.iter().map(|&n| n.to_owned()).collect::<Vec<_>>();
    run_sync(&server, &wh, |o| o.request.types = types(&["Patient"])).unwrap();
    assert_eq!(common::table_rows(wh.as_path(), "condition"), 0);

    // An increment of Patient,Condition would bring only the Conditions changed since the
    // first sync, none: every Condition of the server would be missing, silently.
    let err = run_sync(&server, &wh, |o| o.request.types = types(&["Condition", "Patient"])).unwrap_err().to_string();
    assert!(err.contains("was synced with system level, types Patient,"), "{err}");
    assert!(
        err.contains("this sync asks for system level, types Condition,Patient,") && err.contains("--full"),
        "{err}"
    );
    let kickoffs = server.requests("/$export").len();
    assert_eq!(kickoffs, 1, "nothing was exported for the refused sync");

    // The same selection written otherwise is the same selection.
    let again = run_sync(&server, &wh, |o| o.request.types = types(&["Patient", "Patient"])).unwrap();
    assert!(again.since.is_some());
    let full = run_sync(&server, &wh, |o| {
        o.request.types = types(&["Condition", "Patient"]);
        o.full = true;
    })
    .unwrap();
    assert!(full.since.is_none());
    let sample_conditions =
        std::fs::read_to_string(common::sample().join("Condition.000.ndjson")).unwrap().lines().count();
    assert_eq!(common::table_rows(wh.as_path(), "condition") as usize, sample_conditions);
    let next = run_sync(&server, &wh, |o| o.request.types = types(&["Patient", "Condition"])).unwrap();
    assert!(next.since.is_some() && next.load.committed());
}

#[test]
fn the_cli_takes_a_file_url_warehouse_as_its_folder_and_refuses_object_store_ones() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let wh = dir.path().join("w h");
    let url = Url::from_directory_path(&wh).unwrap().to_string();
    let sync_cli = |warehouse: &str| {
        Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
            .args(["sync", &server.base, "--warehouse", warehouse, "--threads", "2"])
            .args(["--poll-initial", "5ms", "--retry-initial", "5ms", "--requests-per-second", "0"])
            .current_dir(&cwd)
            .output()
            .unwrap()
    };
    let first = sync_cli(&url);
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(fhirhouse::load::sync_record(&wh).is_some(), "the sync went into the folder the URL names");
    let second = sync_cli(&url);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success() && stderr.contains("increment since "), "{stderr}");

    let kickoffs = server.requests("/$export").len();
    let refused = sync_cli("memory://sync-cli/wh");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--warehouse memory://sync-cli/wh: fhirhouse sync merges into a local warehouse folder only"),
        "{stderr}"
    );
    assert_eq!(server.requests("/$export").len(), kickoffs, "refused before exporting");
    let left: Vec<_> = std::fs::read_dir(&cwd).unwrap().collect();
    assert!(left.is_empty(), "no folder named like the URL: {left:?}");
}

#[test]
fn a_sync_into_a_folder_that_is_no_warehouse_writes_nothing_there() {
    let server = BulkServer::start();
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::fs::write(home.join("notes.txt"), "mine").unwrap();
    let err = fhirhouse::error_text(run_sync(&server, &home, |_| {}).unwrap_err().as_ref());
    assert!(err.contains("not a fhirhouse warehouse"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&home).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["notes.txt"], "a later load would take the folder for a warehouse");
}
