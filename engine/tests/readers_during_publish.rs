//! What readers see while loads publish: a SQL session (a `query`, a `report`, a `sql`
//! shell) reads the load that was published when it opened, every statement of it, while
//! later loads, merges and object-store publishes go on; a replaced load's files stay until
//! the next load after it and for a grace period after it was replaced; a session that
//! outlives them gets an error saying so, never fewer rows or rows of another load.
//!
//! Nothing here sleeps: a session is held open across a publish through the API (or a
//! shell's standard input), and a grace period is made to have passed by back-dating the
//! time a load was replaced, where the warehouse records it.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use fhirhouse::sql::{Session, Tables};
use fhirhouse::store::{self, Address};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use url::Url;

/// An export folder `dir/name` of patients `(id, version, gender)`, with a manifest.
fn export(dir: &Path, name: &str, time: &str, patients: &[(&str, u32, &str)]) -> PathBuf {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let lines: Vec<String> = patients
        .iter()
        .map(|(id, version, gender)| {
            serde_json::json!({"resourceType": "Patient", "id": id, "gender": gender,
                "meta": {"versionId": version.to_string(), "lastUpdated": format!("2024-0{version}-01T00:00:00Z")}})
            .to_string()
        })
        .collect();
    std::fs::write(dir.join("Patient.000.ndjson"), lines.join("\n") + "\n").unwrap();
    let manifest = serde_json::json!({"transactionTime": time, "request": "", "requiresAccessToken": false,
        "error": [], "output": [{"type": "Patient", "url": "Patient.000.ndjson"}]});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir
}

/// Loads `input` into `out` (a folder or a URL), merging when `merge`; returns the load id.
fn load(input: &Path, out: impl Into<Address>, merge: bool) -> String {
    let mut options = fhirhouse::load::LoadOptions::new([input], out);
    options.threads = 2;
    options.merge = merge;
    let outcome = fhirhouse::load::load(&options).expect("the load runs");
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    outcome.report.load_id
}

fn open(warehouse: impl Into<Address>) -> Session {
    Session::open(&Tables::Warehouse(warehouse.into())).unwrap()
}

/// `id:gender` of the session's patients, sorted, or the error's text.
fn patients(session: &Session) -> Result<Vec<String>, String> {
    let batches = session.collect("SELECT id, gender FROM patient ORDER BY id").map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    for batch in batches {
        for row in 0..batch.num_rows() {
            let cell = |c: usize| arrow::util::display::array_value_to_string(batch.column(c), row).unwrap();
            rows.push(format!("{}:{}", cell(0), cell(1)));
        }
    }
    Ok(rows)
}

/// The snapshot folders of a local warehouse, sorted.
fn snapshots(warehouse: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(warehouse.join("_fhirhouse/snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An instant two hours ago, past any grace period of the warehouse.
fn two_hours_ago() -> String {
    (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Makes the local snapshot of `load_id` look replaced two hours ago (if it is still there).
fn back_date(warehouse: &Path, load_id: &str) {
    let dir = warehouse.join("_fhirhouse/snapshots").join(load_id);
    if !dir.is_dir() {
        return;
    }
    let path = dir.join("_replaced.json");
    let mut record: serde_json::Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| serde_json::json!({}));
    record["replaced_at"] = two_hours_ago().into();
    std::fs::write(&path, record.to_string()).unwrap();
}

#[test]
fn a_session_reads_the_load_it_opened_while_later_loads_and_merges_publish() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let t = "2024-01-01T00:00:00Z";
    let a = load(&export(dir.path(), "a", t, &[("p0", 1, "male"), ("p1", 1, "male")]), &wh, false);
    let first = open(&wh);
    assert_eq!(first.load_id(), Some(a.as_str()));

    // Two loads publish while the session is open, before its first statement.
    load(&export(dir.path(), "b", t, &[("p2", 1, "female")]), &wh, false);
    load(&export(dir.path(), "c", t, &[("p3", 1, "other")]), &wh, false);
    assert_eq!(patients(&first).unwrap(), ["p0:male", "p1:male"], "the load the session opened");
    let third = open(&wh);
    assert_eq!(patients(&third).unwrap(), ["p3:other"]);

    // A merge rewrites the part file of p3; the sessions opened before it still read theirs.
    load(&export(dir.path(), "d", "2024-02-01T00:00:00Z", &[("p3", 2, "female")]), &wh, true);
    assert_eq!(patients(&third).unwrap(), ["p3:other"]);
    assert_eq!(patients(&first).unwrap(), ["p0:male", "p1:male"]);
    assert_eq!(patients(&open(&wh)).unwrap(), ["p3:female"]);
    assert_eq!(snapshots(&wh).len(), 4, "every load replaced within the grace period is kept");
}

#[test]
fn a_session_whose_load_was_removed_gets_an_error_not_fewer_rows() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let t = "2024-01-01T00:00:00Z";
    let a = load(&export(dir.path(), "a", t, &[("p0", 1, "male"), ("p1", 1, "male")]), &wh, false);
    let listed = open(&wh);
    assert_eq!(patients(&listed).unwrap(), ["p0:male", "p1:male"]);
    let unlisted = open(&wh);

    let b = load(&export(dir.path(), "b", t, &[("p2", 1, "female")]), &wh, false);
    back_date(&wh, &a);
    let c = load(&export(dir.path(), "c", t, &[("p3", 1, "other")]), &wh, false);
    let mut kept = vec![b, c.clone()];
    kept.sort();
    assert_eq!(snapshots(&wh), kept, "replaced two hours ago and not the previous load: removed");

    // Whether the session had listed the table's files before (DataFusion caches the
    // listing) or lists them now (an empty listing, once the folder is gone), it is told.
    for session in [&listed, &unlisted] {
        let err = patients(session).expect_err("the load's files are gone");
        assert!(
            err.contains(&format!("load {a}"))
                && err.contains(&format!("load {c}"))
                && err.contains("open the warehouse again"),
            "{err}"
        );
    }
    assert_eq!(patients(&open(&wh)).unwrap(), ["p3:other"]);
}

/// The store behind a `memory://` URL.
fn memory(name: &str) -> Arc<dyn ObjectStore> {
    store::resolve(&Url::parse(&format!("memory://{name}/")).unwrap()).unwrap().0
}

fn keys(store: &Arc<dyn ObjectStore>) -> Vec<String> {
    let store = Arc::clone(store);
    let mut keys: Vec<String> =
        store::run(async move { futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None)).await.unwrap() })
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
    keys.sort();
    keys
}

/// A session over the object-store warehouse at `url` (in `store`, under `wh/`) reads its
/// load while two loads publish, and is told once its files are removed.
fn object_store_session_reads_its_load_until_it_expires(store: &Arc<dyn ObjectStore>, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let t = "2024-01-01T00:00:00Z";
    let a = load(&export(dir.path(), "a", t, &[("p0", 1, "male"), ("p1", 1, "male")]), url, false);
    let first = open(url);

    load(&export(dir.path(), "b", t, &[("p2", 1, "female")]), url, false);
    assert_eq!(patients(&first).unwrap(), ["p0:male", "p1:male"], "the load the session opened");
    assert_eq!(patients(&open(url)).unwrap(), ["p2:female"]);
    let c = load(&export(dir.path(), "c", t, &[("p3", 1, "other")]), url, false);
    assert_eq!(patients(&first).unwrap(), ["p0:male", "p1:male"], "replaced within the grace period: kept");
    assert!(keys(store).iter().any(|k| k.contains(&format!("part-{a}-"))));

    // The grace period has passed: the next load removes load a's files and metadata.
    let current = ObjectPath::from("wh/_fhirhouse/current.json");
    let (reader, key) = (Arc::clone(store), current.clone());
    let bytes = store::run(async move { reader.get(&key).await.unwrap().bytes().await.unwrap() });
    let mut record: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for replaced in record["replaced"].as_array_mut().expect("the replaced loads are listed") {
        replaced["replaced_at"] = two_hours_ago().into();
    }
    let (writer, payload) = (Arc::clone(store), record.to_string());
    store::run(async move { writer.put(&current, payload.into()).await.unwrap() });
    let d = load(&export(dir.path(), "d", t, &[("p4", 1, "male")]), url, false);
    let left = keys(store);
    assert!(!left.iter().any(|k| k.contains(&a) && !k.contains("/loads/")), "{left:?}");
    assert!(left.iter().any(|k| k.contains(&format!("part-{c}-"))), "the previous load is kept: {left:?}");

    let err = patients(&first).expect_err("load a's files are gone");
    assert!(err.contains(&format!("load {a}")) && err.contains(&format!("load {d}")), "{err}");
    assert_eq!(patients(&open(url)).unwrap(), ["p4:male"]);
}

#[test]
fn an_object_store_session_reads_its_load_until_it_expires_and_then_is_told() {
    object_store_session_reads_its_load_until_it_expires(&memory("readers-publish"), "memory://readers-publish/wh");
}

/// The same against a real S3-compatible server (moto, as `engine/tests/load_s3.rs` uses
/// it): skipped without `FHIRHOUSE_S3_ENDPOINT`.
#[test]
fn an_s3_session_reads_its_load_until_it_expires_and_then_is_told() {
    let Some(endpoint) = common::s3_environment() else { return };
    let bucket = common::new_bucket(&endpoint, "readers");
    let store = store::resolve(&Url::parse(&format!("s3://{bucket}/")).unwrap()).unwrap().0;
    object_store_session_reads_its_load_until_it_expires(&store, &format!("s3://{bucket}/wh"));
}

#[test]
fn a_file_missing_from_an_object_store_snapshot_is_an_error_not_fewer_rows() {
    let store = memory("readers-missing");
    let url = "memory://readers-missing/wh";
    let dir = tempfile::tempdir().unwrap();
    let a = load(&export(dir.path(), "a", "2024-01-01T00:00:00Z", &[("p0", 1, "male")]), url, false);
    let session = open(url);
    let part = keys(&store).into_iter().find(|k| k.starts_with("wh/patient/part-")).unwrap();
    let (deleter, key) = (Arc::clone(&store), ObjectPath::from(part.as_str()));
    store::run(async move { deleter.delete(&key).await.unwrap() });
    let err = patients(&session).expect_err("a listed file is missing");
    assert!(err.contains(&format!("load {a}")) && err.contains("patient/part-"), "{err}");
}

/// Reads a shell's standard output up to the line holding `marker`; returns what came before.
fn read_until(out: &mut impl BufRead, marker: &str) -> String {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert_ne!(out.read_line(&mut line).unwrap(), 0, "the shell ended before {marker}: {text}");
        if line.contains(marker) {
            return text;
        }
        text.push_str(&line);
    }
}

/// Asks the shell for its patients, then for a marker; returns what it printed before the marker.
fn ask(stdin: &mut impl Write, stdout: &mut impl BufRead, n: usize) -> String {
    // The marker on a line of its own: the statements after a failed one on its line are skipped.
    writeln!(stdin, "SELECT id FROM patient ORDER BY id;\nSELECT 'end-{n}' AS marker;").unwrap();
    stdin.flush().unwrap();
    read_until(stdout, &format!("end-{n}"))
}

#[test]
fn a_shell_open_across_loads_keeps_its_load_and_says_when_it_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let t = "2024-01-01T00:00:00Z";
    let a = load(&export(dir.path(), "a", t, &[("p0", 1, "male")]), &wh, false);
    let mut shell = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["sql", wh.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = shell.stdin.take().unwrap();
    let mut stdout = BufReader::new(shell.stdout.take().unwrap());
    writeln!(stdin, ".format csv").unwrap();
    // Its answer shows that the shell has opened the warehouse before the loads below.
    assert!(ask(&mut stdin, &mut stdout, 1).contains("p0"));
    let b = load(&export(dir.path(), "b", t, &[("p1", 1, "female")]), &wh, false);
    load(&export(dir.path(), "c", t, &[("p2", 1, "female")]), &wh, false);
    let second = ask(&mut stdin, &mut stdout, 2);
    assert!(second.contains("p0") && !second.contains("p2"), "{second}");

    back_date(&wh, &a);
    back_date(&wh, &b);
    let d = load(&export(dir.path(), "d", t, &[("p3", 1, "other")]), &wh, false);
    let third = ask(&mut stdin, &mut stdout, 3);
    assert!(!third.contains("p0") && !third.contains("p3"), "no rows of any load: {third}");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = shell.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("load {a}")) && stderr.contains(&format!("load {d}")), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}
