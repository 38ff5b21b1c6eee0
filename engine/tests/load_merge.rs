//! `fhirhouse load --merge` of export folders: a folder is read through its `manifest.json`
//! (its deletions and `transactionTime` apply), increments apply in order (an older one is
//! refused, the same one again changes nothing), and the bad lines of `deleted` files are
//! reported once and counted.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use fhirhouse::load::{load, LoadOptions};

/// A patient line in version `version`.
fn patient(id: &str, version: u32, gender: &str) -> String {
    serde_json::json!({"resourceType": "Patient", "id": id, "gender": gender,
        "meta": {"versionId": version.to_string(), "lastUpdated": format!("2024-0{version}-01T00:00:00Z")}})
    .to_string()
}

/// Writes an export folder: `patients` in one file, `deleted` lines (Bundles, or anything)
/// in a `deleted` file, and a manifest with `transaction_time` (none when `None`).
fn export(dir: &Path, transaction_time: Option<&str>, patients: &[String], deleted: &[String]) -> PathBuf {
    std::fs::create_dir_all(dir.join("deleted")).unwrap();
    std::fs::write(dir.join("Patient.000.ndjson"), patients.join("\n") + "\n").unwrap();
    let mut manifest = serde_json::json!({"request": "", "requiresAccessToken": false, "error": [],
        "output": [{"type": "Patient", "url": "Patient.000.ndjson"}]});
    if let Some(time) = transaction_time {
        manifest["transactionTime"] = time.into();
    }
    if !deleted.is_empty() {
        std::fs::write(dir.join("deleted/Bundle.000.ndjson"), deleted.join("\n") + "\n").unwrap();
        manifest["deleted"] = serde_json::json!([{"type": "Bundle", "url": "deleted/Bundle.000.ndjson"}]);
    }
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir.to_path_buf()
}

/// A deletion Bundle of `Patient/<id>` entries.
fn deletion(ids: &[&str]) -> String {
    let entries: Vec<_> = ids
        .iter()
        .map(|id| serde_json::json!({"request": {"method": "DELETE", "url": format!("Patient/{id}")}}))
        .collect();
    serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}).to_string()
}

/// `fhirhouse load <input> --out <warehouse> --merge`.
fn cli_merge(input: &Path, warehouse: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["load", input.to_str().unwrap(), "--out", warehouse.to_str().unwrap(), "--merge", "--threads", "2"])
        .output()
        .unwrap()
}

/// `id:gender` of every patient, sorted.
fn patients(warehouse: &Path) -> Vec<String> {
    common::query_rows(warehouse, "SELECT id, gender FROM patient ORDER BY id")
        .into_iter()
        .map(|row| row.replace('|', ":"))
        .collect()
}

fn current(warehouse: &Path) -> PathBuf {
    std::fs::read_link(warehouse.join("_fhirhouse/current")).unwrap()
}

/// base, inc1 (updates p0, deletes p1), inc2 (p1 again, deletes p0), in a new folder.
fn three_exports(dir: &Path) -> [PathBuf; 3] {
    [
        export(
            &dir.join("base"),
            Some("2024-01-01T00:00:00Z"),
            &[patient("p0", 1, "male"), patient("p1", 1, "male")],
            &[],
        ),
        export(&dir.join("inc1"), Some("2024-02-01T00:00:00Z"), &[patient("p0", 2, "female")], &[deletion(&["p1"])]),
        export(&dir.join("inc2"), Some("2024-03-01T00:00:00Z"), &[patient("p1", 3, "other")], &[deletion(&["p0"])]),
    ]
}

#[test]
fn a_folder_is_merged_through_its_manifest_with_its_deletions_and_transaction_time() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let [base, inc1, _] = three_exports(dir.path());
    assert!(cli_merge(&base, &wh).status.success());
    let out = cli_merge(&inc1, &wh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 inserted, 1 updated, 0 unchanged, 1 deleted"), "{stderr}");
    assert_eq!(patients(&wh), ["p0:female"]);
    let load_id = current(&wh).file_name().unwrap().to_string_lossy().into_owned();
    let report = std::fs::read(wh.join("_fhirhouse/loads").join(format!("{load_id}.json"))).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["transaction_time"], "2024-02-01T00:00:00Z");
    assert!(report["manifest"].as_str().unwrap().ends_with("manifest.json"), "{report}");
}

#[test]
fn an_older_increment_is_refused_and_the_same_one_again_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let [base, inc1, inc2] = three_exports(dir.path());
    for export in [&base, &inc1, &inc2] {
        let out = cli_merge(export, &wh);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(patients(&wh), ["p1:other"]);
    let published = current(&wh);

    let out = cli_merge(&inc1, &wh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("has transactionTime 2024-02-01T00:00:00Z, older than the warehouse's 2024-03-01T00:00:00Z")
            && stderr.contains("would undo the changes of the later increments"),
        "{stderr}"
    );
    assert_eq!(stderr.matches("older than").count(), 1, "said once: {stderr}");
    assert_eq!((current(&wh), patients(&wh)), (published, vec!["p1:other".to_owned()]), "nothing published");

    // The same increment again (the same transactionTime) is allowed and changes nothing.
    let out = cli_merge(&inc2, &wh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("0 inserted, 0 updated, 1 unchanged, 0 deleted (1 listed as deleted was not held)"),
        "{stderr}"
    );
    assert_eq!(patients(&wh), ["p1:other"]);
}

#[test]
fn increments_without_a_transaction_time_apply_updates_but_not_deletions() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let [base, _, _] = three_exports(dir.path());
    assert!(cli_merge(&base, &wh).status.success());
    let untimed = export(&dir.path().join("untimed"), None, &[patient("p0", 2, "female")], &[deletion(&["p1"])]);
    let mut options = LoadOptions::new(vec![untimed.clone()], wh.clone());
    options.merge = true;
    let err = fhirhouse::error_text(load(&options).expect_err("refused").as_ref());
    assert!(err.contains("lists deleted resources but has no transactionTime"), "{err}");
    assert_eq!(patients(&wh), ["p0:male", "p1:male"]);

    // A plain folder of NDJSON (no manifest, no deletions): the version check guards it.
    std::fs::remove_file(untimed.join("manifest.json")).unwrap();
    let outcome = common::load_with(&[untimed], &wh, |o| o.merge = true);
    assert_eq!(outcome.report.merge.unwrap().updated, 1);
    assert_eq!(patients(&wh), ["p0:female", "p1:male"]);
}

#[test]
fn bad_lines_of_deleted_files_are_reported_once_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let [base, _, _] = three_exports(dir.path());
    assert!(cli_merge(&base, &wh).status.success());
    let put = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"request": {"method": "DELETE", "url": "Patient/p1"}},
        {"request": {"method": "PUT", "url": "Patient/p0"}}]})
    .to_string();
    let inc = export(&dir.path().join("inc"), Some("2024-02-01T00:00:00Z"), &[], &[put, "not json".to_owned()]);
    let out = cli_merge(&inc, &wh);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("not valid JSON").count(), 1, "once: {stderr}");
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert!(
        stderr.contains("deleted files: 1 unreadable line, 1 entry that is no DELETE")
            && stderr.contains("entry[1] is a PUT, not a DELETE"),
        "{stderr}"
    );
    assert_eq!(patients(&wh), ["p0:male"], "the Bundle's DELETE applies");
    assert_eq!(out.status.code(), Some(1), "input not applied: {stderr}");

    let again = export(&dir.path().join("again"), Some("2024-02-01T00:00:00Z"), &[], &["not json".to_owned()]);
    let report = common::load_with(&[again], &wh, |o| o.merge = true).report;
    assert_eq!(report.totals.dead_letters, 0);
    assert_eq!(report.input_not_applied(), 1, "counts towards the exit status");
}

#[test]
fn a_failed_merge_is_listed_as_a_merge() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let [base, _, _] = three_exports(dir.path());
    assert!(cli_merge(&base, &wh).status.success());
    let broken = export(&dir.path().join("broken"), Some("2024-02-01T00:00:00Z"), &["{oops".to_owned()], &[]);
    let options = {
        let mut options = fhirhouse::load::LoadOptions::new(vec![broken], wh.clone());
        options.merge = true;
        options.max_errors = Some(0);
        options
    };
    let outcome = load(&options).unwrap();
    assert!(!outcome.committed());
    let history = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["history", wh.to_str().unwrap(), "--json"])
        .output()
        .unwrap();
    let last: serde_json::Value =
        serde_json::from_str(String::from_utf8(history.stdout).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!((last["status"].as_str(), last["kind"].as_str()), (Some("failed"), Some("merge")), "{last}");
}

/// A Condition line in version `version` coded `system|code`.
fn condition(id: &str, version: u32, system: &str, code: &str) -> String {
    serde_json::json!({"resourceType": "Condition", "id": id,
        "meta": {"versionId": version.to_string(), "lastUpdated": format!("2024-0{version}-01T00:00:00Z")},
        "code": {"coding": [{"system": system, "code": code, "display": format!("code {code}")}]}})
    .to_string()
}

/// An export folder of `conditions` and a deletion Bundle of the Condition ids `deleted`.
fn condition_export(dir: &Path, transaction_time: &str, conditions: &[String], deleted: &[&str]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("Condition.000.ndjson"), conditions.join("\n") + "\n").unwrap();
    let mut manifest = serde_json::json!({"request": "", "requiresAccessToken": false, "error": [],
        "transactionTime": transaction_time, "output": [{"type": "Condition", "url": "Condition.000.ndjson"}]});
    if !deleted.is_empty() {
        let entries: Vec<_> = deleted
            .iter()
            .map(|id| serde_json::json!({"request": {"method": "DELETE", "url": format!("Condition/{id}")}}))
            .collect();
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
        std::fs::write(dir.join("deleted.ndjson"), bundle.to_string() + "\n").unwrap();
        manifest["deleted"] = serde_json::json!([{"type": "Bundle", "url": "deleted.ndjson"}]);
    }
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir.to_path_buf()
}

/// The rows of `_dq_unmapped_codes`, and the run report's size of it.
fn unmapped(warehouse: &Path) -> (Vec<String>, serde_json::Value) {
    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, warehouse).unwrap();
    let sql = r#"SELECT "table", "column", system, code, count, example_resource_id FROM _dq_unmapped_codes
                 ORDER BY "table", "column", system, code"#;
    let rows = common::query_rows(warehouse, sql);
    let load_id = current(warehouse).file_name().unwrap().to_string_lossy().into_owned();
    let report = std::fs::read(warehouse.join("_fhirhouse/loads").join(format!("{load_id}.json"))).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&report).unwrap();
    (rows, report["unmapped_codes"].clone())
}

#[test]
fn unmapped_codes_after_merges_count_what_the_warehouse_holds() {
    const SNOMED: &str = "http://snomed.info/sct";
    let dir = tempfile::tempdir().unwrap();
    let base = condition_export(
        &dir.path().join("base"),
        "2024-01-01T00:00:00Z",
        &[
            condition("c1", 1, SNOMED, "999999991"),
            condition("c2", 1, SNOMED, "999999991"),
            condition("c3", 1, "urn:local", "L1"),
        ],
        &[],
    );
    // c1 is recoded to a standard ICD-10-CM code, c2 comes again unchanged, c3 is deleted.
    let c2 = condition("c2", 1, SNOMED, "999999991");
    let increment = condition_export(
        &dir.path().join("inc"),
        "2024-02-01T00:00:00Z",
        &[condition("c1", 2, "http://hl7.org/fhir/sid/icd-10-cm", "E11.9"), c2.clone()],
        &["c3"],
    );
    let wh = dir.path().join("wh");
    for export in [&base, &increment] {
        let out = cli_merge(export, &wh);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let expected = ["condition|code|http://snomed.info/sct|999999991|1|c2"];
    let (rows, size) = unmapped(&wh);
    assert_eq!(rows, expected);
    assert_eq!(size, serde_json::json!({"rows": 1, "codes": 1}));

    // The same increment again changes nothing, its counts included.
    assert!(cli_merge(&increment, &wh).status.success());
    assert_eq!(unmapped(&wh).0, expected);

    // A full load of what the warehouse now holds counts the same.
    let full = condition_export(
        &dir.path().join("full"),
        "2024-02-01T00:00:00Z",
        &[condition("c1", 2, "http://hl7.org/fhir/sid/icd-10-cm", "E11.9"), c2],
        &[],
    );
    let full_wh = dir.path().join("full-wh");
    assert!(cli_merge(&full, &full_wh).status.success());
    assert_eq!(unmapped(&full_wh).0, expected);
}
