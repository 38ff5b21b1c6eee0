//! `fhirhouse history`: the loads of a warehouse, from their run reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::Value;
use url::Url;

use crate::sink::remote::CommitRecord;
use crate::store::{self, Address};

pub(super) const LONG_ABOUT: &str = "\
List the loads of a warehouse, oldest first, from their run reports \
(<warehouse>/_fhirhouse/loads/<load id>.json): status, kind (full, or merge for an increment \
of `fhirhouse sync` or `load --merge`), the export's transactionTime, lines read and \
dead-lettered, what a merge did (inserted, updated, unchanged, deleted) and the rows of all \
tables after it. The published load is marked with *. A failed load says why; nothing of it was \
published. The warehouse may be a folder or an object-store URL.

    fhirhouse history warehouse
    fhirhouse history s3://bucket/warehouse --json";

/// Arguments of `fhirhouse history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The warehouse: a folder or an object-store URL (`s3://bucket/warehouse`).
    #[arg(value_name = "DIR|URL")]
    pub warehouse: Address,

    /// Print one JSON object per load (the run reports' main fields) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One line of the history.
struct Entry {
    current: bool,
    load_id: String,
    status: String,
    kind: &'static str,
    started: String,
    transaction_time: String,
    lines: u64,
    dead_letters: u64,
    merge: Option<(u64, u64, u64, u64)>,
    rows: u64,
    failure: Option<String>,
    /// Why the history of this load is incomplete: its run report could not be read, or
    /// the published load has none.
    problem: Option<String>,
}

/// Runs `fhirhouse history`.
pub(super) fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let entries = read_history(&args.warehouse)?;
    // The loads that could be read are listed all the same; the status says some were not.
    let status = if entries.iter().any(|(e, _)| e.problem.is_some()) {
        ExitCode::from(super::EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    };
    if args.json {
        for (entry, report) in &entries {
            let mut line = serde_json::json!({
                "load_id": entry.load_id, "current": entry.current, "status": entry.status, "kind": entry.kind,
                "started": report["started"], "transaction_time": report["transaction_time"],
                "lines": entry.lines, "dead_letters": entry.dead_letters, "rows": entry.rows,
            });
            if !report["merge"].is_null() {
                line["merge"] = report["merge"].clone();
            }
            if let Some(failure) = &entry.failure {
                line["failure"] = Value::from(failure.as_str());
            }
            if let Some(problem) = &entry.problem {
                // Unknown, not zero.
                for count in ["lines", "dead_letters", "rows"] {
                    line[count] = Value::Null;
                }
                line["problem"] = Value::from(problem.as_str());
            }
            outln!("{line}")?;
        }
        return Ok(status);
    }
    out!("{}", render(&entries.into_iter().map(|(e, _)| e).collect::<Vec<_>>()))?;
    Ok(status)
}

/// The run reports of a warehouse as found, before they are read as reports.
struct Reports {
    /// Each report: where it is (a path or URL, for messages), the load id its name gives,
    /// and its content or why it could not be read.
    found: Vec<(String, String, anyhow::Result<Vec<u8>>)>,
    /// The published load.
    current: Option<String>,
    /// Where the reports are, for messages.
    dir: String,
}

fn read_history(warehouse: impl Into<Address>) -> anyhow::Result<Vec<(Entry, Value)>> {
    let Reports { found, current, dir } = match warehouse.into() {
        Address::Local(path) => local_reports(&path)?,
        Address::Url(url) => remote_reports(&url)?,
    };
    let mut entries = Vec::with_capacity(found.len());
    for (place, stem, bytes) in found {
        // A report cut short (a load killed or a disk full while writing it) or edited by
        // hand is one line that says so, not the end of the history.
        let (mut entry, report) = match bytes.and_then(|bytes| read_report(&bytes)) {
            Ok(report) => (entry_of(&report), report),
            Err(e) => (unreadable(format!("unreadable run report {place}: {e:#}")), Value::Null),
        };
        if entry.load_id.is_empty() {
            entry.load_id = stem;
        }
        entry.current = current.as_deref() == Some(entry.load_id.as_str());
        entries.push((entry, report));
    }
    // A load killed between publishing and writing its report, or whose report was removed,
    // is still what readers see.
    if let Some(current) = current.filter(|c| !entries.iter().any(|(e, _)| e.load_id == *c)) {
        let mut entry = unreadable(format!("no run report (expected {dir}/{current}.json)"));
        entry.status = "published".into();
        entry.current = true;
        entry.load_id = current;
        entries.push((entry, Value::Null));
    }
    // Load ids sort by their start second only (the rest is random): order by the
    // report's full start time, or the id's when the report does not say.
    entries.sort_by_cached_key(|(entry, report)| {
        let started = report["started"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        (started.or_else(|| started_of_id(&entry.load_id)), entry.load_id.clone())
    });
    Ok(entries)
}

/// The reports of a warehouse folder; the published load is the one `_fhirhouse/current`
/// links to.
fn local_reports(warehouse: &Path) -> anyhow::Result<Reports> {
    let dir = warehouse.join("_fhirhouse/loads");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: not a warehouse (no _fhirhouse/loads)", warehouse.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let found = paths
        .into_iter()
        .map(|path| {
            let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let bytes = std::fs::read(&path).map_err(anyhow::Error::from);
            (path.display().to_string(), stem, bytes)
        })
        .collect();
    let current = std::fs::read_link(warehouse.join("_fhirhouse/current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
    Ok(Reports { found, current, dir: dir.display().to_string() })
}

/// The reports of a warehouse in an object store (`_fhirhouse/loads/*.json`); the published
/// load is the one its commit record (`_fhirhouse/current.json`) names.
fn remote_reports(url: &Url) -> anyhow::Result<Reports> {
    let (store, root) = store::resolve(url)?;
    let base = url.as_str().trim_end_matches('/');
    let prefix = store::child(&root, "_fhirhouse/loads");
    let lister = (Arc::clone(&store), prefix.clone());
    let mut keys: Vec<ObjectPath> = store::run(async move { lister.0.list_with_delimiter(Some(&lister.1)).await })
        .with_context(|| format!("{base}/_fhirhouse/loads: cannot list"))?
        .objects
        .into_iter()
        .map(|meta| meta.location)
        .filter(|key| store::file_name(key).ends_with(".json"))
        .collect();
    keys.sort();
    let current = CommitRecord::read(&store, &root, url.as_str())?.map(|record| record.load_id);
    if keys.is_empty() && current.is_none() {
        anyhow::bail!("{base}: not a warehouse (no _fhirhouse/loads, no _fhirhouse/current.json)");
    }
    let reads: Vec<_> = keys
        .iter()
        .map(|key| {
            let (store, key) = (Arc::clone(&store), key.clone());
            async move { Ok(store.get(&key).await?.bytes().await?.to_vec()) }
        })
        .collect();
    let contents: Vec<anyhow::Result<Vec<u8>>> = store::run(store::run_bounded(reads, 8));
    let found = keys
        .iter()
        .zip(contents)
        .map(|(key, bytes)| {
            let name = store::file_name(key);
            let stem = name.strip_suffix(".json").unwrap_or(&name).to_owned();
            (format!("{base}/_fhirhouse/loads/{name}"), stem, bytes)
        })
        .collect();
    Ok(Reports { found, current, dir: format!("{base}/_fhirhouse/loads") })
}

fn read_report(bytes: &[u8]) -> anyhow::Result<Value> {
    let report: Value = serde_json::from_slice(bytes)?;
    anyhow::ensure!(report.is_object(), "not a JSON object");
    Ok(report)
}

/// The history line of a run report.
fn entry_of(report: &Value) -> Entry {
    let number = |v: &Value| v.as_u64().unwrap_or(0);
    let merge = &report["merge"];
    Entry {
        current: false,
        status: report["status"].as_str().unwrap_or("?").to_owned(),
        kind: if merge.is_null() && report["incremental"] != true { "full" } else { "merge" },
        started: report["started"].as_str().unwrap_or_default().chars().take(19).collect(),
        transaction_time: report["transaction_time"].as_str().unwrap_or("-").to_owned(),
        lines: number(&report["totals"]["lines"]),
        dead_letters: number(&report["totals"]["dead_letters"]),
        merge: (!merge.is_null()).then(|| {
            (
                number(&merge["inserted"]),
                number(&merge["updated"]) + number(&merge["replaced_unchecked"]),
                number(&merge["unchanged"]),
                number(&merge["deleted"]),
            )
        }),
        rows: report["tables"].as_array().map_or(0, |t| t.iter().map(|t| number(&t["rows"])).sum()),
        failure: report["failure"].as_str().map(str::to_owned),
        problem: None,
        load_id: report["load_id"].as_str().unwrap_or_default().to_owned(),
    }
}

/// The line of a load whose report says nothing, for `problem`.
fn unreadable(problem: String) -> Entry {
    Entry {
        current: false,
        load_id: String::new(),
        status: "?".into(),
        kind: "?",
        started: String::new(),
        transaction_time: "-".into(),
        lines: 0,
        dead_letters: 0,
        merge: None,
        rows: 0,
        failure: None,
        problem: Some(problem),
    }
}

/// The start second a load id carries (`20261207T120000Z-ffff`).
fn started_of_id(load_id: &str) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    let second = chrono::NaiveDateTime::parse_from_str(load_id.get(..16)?, "%Y%m%dT%H%M%SZ").ok()?;
    Some(second.and_utc().fixed_offset())
}

fn render(entries: &[Entry]) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "  {:<22} {:<9} {:<5} {:<19} {:<25} {:>9} {:>6} {:>8} {:>8} {:>9} {:>8} {:>10}",
        "load",
        "status",
        "kind",
        "started (UTC)",
        "transactionTime",
        "lines",
        "dead",
        "inserted",
        "updated",
        "unchanged",
        "deleted",
        "rows"
    );
    for e in entries {
        let merged =
            |f: fn(&(u64, u64, u64, u64)) -> u64| e.merge.as_ref().map_or("-".to_owned(), |m| f(m).to_string());
        let rows = if e.status == "committed" { e.rows.to_string() } else { "-".to_owned() };
        let count = |n: u64| if e.problem.is_some() { "-".to_owned() } else { n.to_string() };
        let _ = writeln!(
            s,
            "{} {:<22} {:<9} {:<5} {:<19} {:<25} {:>9} {:>6} {:>8} {:>8} {:>9} {:>8} {:>10}",
            if e.current { "*" } else { " " },
            e.load_id,
            e.status,
            e.kind,
            e.started,
            e.transaction_time,
            count(e.lines),
            count(e.dead_letters),
            merged(|m| m.0),
            merged(|m| m.1),
            merged(|m| m.2),
            merged(|m| m.3),
            rows
        );
        if let Some(failure) = &e.failure {
            let _ = writeln!(s, "    failed: {failure}");
        }
        if let Some(problem) = &e.problem {
            let _ = writeln!(s, "    {problem}");
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_of_one_second_are_listed_in_the_order_they_started() {
        let warehouse = tempfile::tempdir().unwrap();
        let loads = warehouse.path().join("_fhirhouse/loads");
        std::fs::create_dir_all(&loads).unwrap();
        // The id's random suffix sorts the later load first.
        for (id, started) in [
            ("20261207T120000Z-ffff", "2026-12-07T12:00:00.1+00:00"),
            ("20261207T120000Z-0001", "2026-12-07T12:00:00.9+00:00"),
        ] {
            let report = serde_json::json!({"load_id": id, "status": "committed", "started": started});
            std::fs::write(loads.join(format!("{id}.json")), report.to_string()).unwrap();
        }
        let ids: Vec<String> = read_history(warehouse.path()).unwrap().into_iter().map(|(e, _)| e.load_id).collect();
        assert_eq!(ids, ["20261207T120000Z-ffff", "20261207T120000Z-0001"]);
    }

    #[test]
    fn an_unreadable_report_and_a_missing_one_are_listed_with_the_rest() {
        let warehouse = tempfile::tempdir().unwrap();
        let loads = warehouse.path().join("_fhirhouse/loads");
        std::fs::create_dir_all(&loads).unwrap();
        let report = serde_json::json!({"load_id": "20261207T120000Z-0001", "status": "committed",
            "started": "2026-12-07T12:00:00+00:00", "totals": {"lines": 5}});
        std::fs::write(loads.join("20261207T120000Z-0001.json"), report.to_string()).unwrap();
        // Cut short, as by a full disk or a kill while it was written.
        std::fs::write(loads.join("20261207T130000Z-0002.json"), r#"{"load_id": "2026"#).unwrap();
        // Published, but killed before its report was written.
        std::os::unix::fs::symlink("snapshots/20261207T140000Z-0003", warehouse.path().join("_fhirhouse/current"))
            .unwrap();

        let entries: Vec<Entry> = read_history(warehouse.path()).unwrap().into_iter().map(|(e, _)| e).collect();
        let ids: Vec<&str> = entries.iter().map(|e| e.load_id.as_str()).collect();
        assert_eq!(ids, ["20261207T120000Z-0001", "20261207T130000Z-0002", "20261207T140000Z-0003"]);
        assert_eq!((entries[0].lines, entries[0].problem.is_none()), (5, true));
        let problem = entries[1].problem.as_deref().unwrap();
        assert!(problem.contains("20261207T130000Z-0002.json") && problem.contains("EOF"), "{problem}");
        assert!(entries[2].current && entries[2].status == "published", "{:?}", entries[2].problem);
        assert!(render(&entries).contains("* 20261207T140000Z-0003"));
    }

    #[test]
    fn a_warehouse_in_an_object_store_or_behind_a_file_url_is_read() {
        let url = Url::parse("memory://history-tests/wh").unwrap();
        let (store, _) = store::resolve(&url).unwrap();
        let put = |key: &str, value: Value| {
            let (store, key) = (Arc::clone(&store), ObjectPath::from(key));
            store::run(async move { store.put(&key, value.to_string().into()).await.unwrap() });
        };
        for (id, started) in [("20261207T120000Z-0001", "2026-12-07T12:00:00+00:00"), ("20261207T130000Z-0002", "")] {
            let report = serde_json::json!({"load_id": id, "status": "committed", "started": started,
                "totals": {"lines": 7}});
            put(&format!("wh/_fhirhouse/loads/{id}.json"), report);
        }
        put("wh/_fhirhouse/current.json", serde_json::json!({"load_id": "20261207T120000Z-0001", "tables": {}}));
        let entries: Vec<Entry> = read_history(url.clone()).unwrap().into_iter().map(|(e, _)| e).collect();
        let seen: Vec<(&str, bool, u64)> = entries.iter().map(|e| (e.load_id.as_str(), e.current, e.lines)).collect();
        assert_eq!(seen, [("20261207T120000Z-0001", true, 7), ("20261207T130000Z-0002", false, 7)]);

        let err = read_history(Url::parse("memory://history-tests/nothing").unwrap()).err().unwrap().to_string();
        assert_eq!(
            err,
            "memory://history-tests/nothing: not a warehouse (no _fhirhouse/loads, no _fhirhouse/current.json)"
        );

        // A file:// URL is the folder.
        let warehouse = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(warehouse.path().join("_fhirhouse/loads")).unwrap();
        let report = serde_json::json!({"load_id": "20261207T120000Z-0001", "status": "failed"});
        std::fs::write(warehouse.path().join("_fhirhouse/loads/20261207T120000Z-0001.json"), report.to_string())
            .unwrap();
        let file_url = Url::from_directory_path(warehouse.path()).unwrap();
        let entries = read_history(Address::from(file_url.as_str())).unwrap();
        assert_eq!(entries[0].0.status, "failed");
    }
}
