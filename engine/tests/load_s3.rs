//! Loads against a real S3-compatible server: moto's server, started by
//! `tests/s3/start-moto.sh` (it installs `moto[server]` from PyPI into a virtual
//! environment). `.ci/run` starts it and sets `FHIRHOUSE_S3_ENDPOINT`; without that variable
//! the test says so and passes without running.
//!
//! Credentials go the way a user's would: through the `AWS_*` environment variables.

mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::*;
use url::Url;

fn local_counts() -> BTreeMap<String, i64> {
    let dir = tempfile::tempdir().unwrap();
    load_with(&[sample()], &dir.path().join("wh"), |_| {});
    table_counts(dir.path().join("wh")).into_iter().collect()
}

#[test]
fn manifest_in_s3_loads_into_an_s3_warehouse_with_the_cli() {
    let Some(endpoint) = s3_environment() else { return };
    let bucket = new_bucket(&endpoint, "cli");
    let store = fhirhouse::store::resolve(&Url::parse(&format!("s3://{bucket}/")).unwrap()).unwrap().0;
    upload_sample(&store, "export");

    let run = |input: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
            .args(["-q", "load", "--threads", "2", input, "--out", &format!("s3://{bucket}/wh")])
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice::<serde_json::Value>(&get(&store, "wh/_fhirhouse/current.json")).unwrap()
    };
    let first = run(&format!("s3://{bucket}/export/manifest.json"));
    let load_id = first["load_id"].as_str().unwrap().to_owned();
    let report: serde_json::Value =
        serde_json::from_slice(&get(&store, &format!("wh/_fhirhouse/loads/{load_id}.json"))).unwrap();
    assert_eq!(report["status"], "committed");
    assert_eq!(report["totals"]["lines"], 4142);
    assert_eq!(report["totals"]["dead_letters"], 0);
    let rows: u64 = report["tables"].as_array().unwrap().iter().map(|t| t["rows"].as_u64().unwrap()).sum();
    assert_eq!(rows, report["totals"]["rows"].as_u64().unwrap(), "counts reconcile");

    let expected = local_counts();
    let counts: BTreeMap<String, i64> = table_counts(format!("s3://{bucket}/wh").as_str()).into_iter().collect();
    assert_eq!(counts, expected);

    // A second load from the prefix replaces the first, whose files are kept for the sessions
    // still reading it (until the next load after it, and for an hour).
    let second = run(&format!("s3://{bucket}/export/"));
    assert_ne!(second["load_id"], first["load_id"]);
    assert_eq!(second["replaced"][0]["load_id"], first["load_id"]);
    let parts: Vec<String> = keys(&store, "wh").into_iter().filter(|k| k.ends_with(".parquet")).collect();
    let second_id = second["load_id"].as_str().unwrap();
    assert!(parts.iter().all(|k| k.contains(&load_id) || k.contains(second_id)), "{parts:?}");
    assert!(parts.iter().any(|k| k.contains(&load_id)) && parts.iter().any(|k| k.contains(second_id)), "{parts:?}");
    let counts: BTreeMap<String, i64> = table_counts(format!("s3://{bucket}/wh").as_str()).into_iter().collect();
    assert_eq!(counts, expected);
}

#[test]
fn export_in_s3_loads_into_a_local_warehouse() {
    let Some(endpoint) = s3_environment() else { return };
    let bucket = new_bucket(&endpoint, "input");
    let store = fhirhouse::store::resolve(&Url::parse(&format!("s3://{bucket}/")).unwrap()).unwrap().0;
    upload_sample(&store, "deep/export");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[], &out, |o| o.inputs = vec![format!("s3://{bucket}/deep/export/manifest.json").into()]);
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    outcome.report.check().unwrap();
    assert_eq!(outcome.report.totals.lines, 4142);
    let counts: BTreeMap<String, i64> = table_counts(&out).into_iter().collect();
    assert_eq!(counts, local_counts());
}

#[test]
fn a_warehouse_in_a_missing_bucket_is_refused_before_loading() {
    let Some(_endpoint) = s3_environment() else { return };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let bucket = format!("fhirhouse-missing-{}-{nanos}", std::process::id());
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["-q", "load", "--threads", "2", sample().to_str().unwrap(), "--out", &format!("s3://{bucket}/wh")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    // Not found out at the first upload, after the whole load (a GET of the commit record
    // answers 404 for a missing bucket just as for a new warehouse).
    assert!(stderr.contains(&format!("cannot open the warehouse: s3://{bucket}/wh: cannot list it")), "{stderr}");
    assert!(stderr.contains("NoSuchBucket"), "{stderr}");
}

#[test]
fn of_concurrent_loads_into_one_warehouse_one_publishes_and_the_others_fail_naming_it() {
    let Some(endpoint) = s3_environment() else { return };
    let bucket = new_bucket(&endpoint, "race");
    let store = fhirhouse::store::resolve(&Url::parse(&format!("s3://{bucket}/")).unwrap()).unwrap().0;
    let out = format!("s3://{bucket}/wh");
    let loads: Vec<_> = (0..4)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
                .args(["-q", "load", "--threads", "1", sample().to_str().unwrap(), "--out", &out])
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<_> = loads.into_iter().map(|load| load.wait_with_output().unwrap()).collect();

    let current: serde_json::Value = serde_json::from_slice(&get(&store, "wh/_fhirhouse/current.json")).unwrap();
    let winner = current["load_id"].as_str().unwrap();
    let mut failed = 0;
    for output in &outputs {
        let stderr = String::from_utf8_lossy(&output.stderr);
        if output.status.success() {
            continue;
        }
        failed += 1;
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        // Loads that began together: the one that published first is the one published.
        assert!(stderr.contains(&format!("load {winner} was published while this load ran")), "{stderr}");
    }
    assert!(failed >= 1, "four loads begun at once all published");
    // Readable, whole, and holding only the published load's files: the others removed theirs.
    let counts: BTreeMap<String, i64> = table_counts(out.as_str()).into_iter().collect();
    assert_eq!(counts, local_counts());
    let stray: Vec<String> = keys(&store, "wh")
        .into_iter()
        .filter(|k| (k.ends_with(".parquet") || k.contains("/snapshots/")) && !k.contains(winner))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");

    // The history reads the warehouse in place: every load, the winner published.
    let history = Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(["history", &out]).output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&history.stdout), String::from_utf8_lossy(&history.stderr));
    assert!(history.status.success(), "{stderr}");
    assert!(stdout.contains(&format!("* {winner}")), "{stdout}");
    assert_eq!(stdout.matches("failed: ").count(), failed, "{stdout}");
}

#[test]
fn objects_with_odd_names_are_reported_by_urls_that_name_them() {
    let Some(endpoint) = s3_environment() else { return };
    let bucket = new_bucket(&endpoint, "odd");
    let store = fhirhouse::store::resolve(&Url::parse(&format!("s3://{bucket}/")).unwrap()).unwrap().0;
    // Keys with a literal `%2F`, a space and a lone `%`; one line of each is not JSON.
    for (key, kind) in [("odd/Encounter%2F.ndjson", "Encounter"), ("odd/Observation 100%.ndjson", "Observation")] {
        let (store, path) = (std::sync::Arc::clone(&store), object_store::path::Path::parse(key).unwrap());
        let body = format!("{{\"resourceType\": \"{kind}\", \"id\": \"x\"}}\nnot json\n");
        fhirhouse::store::run(async move { object_store::ObjectStoreExt::put(&*store, &path, body.into()).await })
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let outcome = load_with(&[], &dir.path().join("wh"), |o| o.inputs = vec![format!("s3://{bucket}/odd/").into()]);
    let mut named: Vec<String> = outcome.report.files.iter().map(|f| f.path.clone()).collect();
    let dead: Vec<serde_json::Value> = dead_letters(&dir.path().join("wh"), &outcome.report.load_id);
    named.extend(dead.iter().map(|d| d["file"].as_str().unwrap_or_default().to_owned()));
    named.sort();
    named.dedup();
    let expected = ["Encounter%252F.ndjson", "Observation%20100%25.ndjson"].map(|n| format!("s3://{bucket}/odd/{n}"));
    assert_eq!(named, expected);
    // Resolved again, each names its own object.
    for (url, key) in named.iter().zip(["odd/Encounter%2F.ndjson", "odd/Observation 100%.ndjson"]) {
        assert_eq!(fhirhouse::store::resolve(&Url::parse(url).unwrap()).unwrap().1.as_ref(), key);
    }
}
