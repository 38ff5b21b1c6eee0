//! `fhirhouse history`: the loads of a warehouse, from their run reports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::Value;

pub(super) const LONG_ABOUT: &str = "\
List the loads of a warehouse, oldest first, from their run reports \
(<warehouse>/_fhirhouse/loads/<load id>.json): status, kind (full, or merge for an increment \
of `fhirhouse sync` or `load --merge`), the export's transactionTime, lines read and \
dead-lettered, what a merge did (inserted, updated, unchanged, deleted) and the rows of all \
tables after it. The published load is marked with *. A failed load says why; nothing of it was \
published.

    fhirhouse history warehouse
    fhirhouse history warehouse --json";

/// Arguments of `fhirhouse history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The warehouse folder.
    #[arg(value_name = "WAREHOUSE")]
    pub warehouse: PathBuf,

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
}

/// Runs `fhirhouse history`.
pub(super) fn run(args: &HistoryArgs) -> anyhow::Result<ExitCode> {
    let entries = read_history(&args.warehouse)?;
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
            outln!("{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    out!("{}", render(&entries.into_iter().map(|(e, _)| e).collect::<Vec<_>>()))?;
    Ok(ExitCode::SUCCESS)
}

fn read_history(warehouse: &Path) -> anyhow::Result<Vec<(Entry, Value)>> {
    let dir = warehouse.join("_fhirhouse/loads");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: not a warehouse (no _fhirhouse/loads)", warehouse.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    let current = std::fs::read_link(warehouse.join("_fhirhouse/current"))
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
    let mut entries = Vec::with_capacity(paths.len());
    for path in paths {
        let report: Value = serde_json::from_slice(&std::fs::read(&path)?)
            .with_context(|| format!("{} is not a run report", path.display()))?;
        let number = |v: &Value| v.as_u64().unwrap_or(0);
        let load_id = report["load_id"].as_str().unwrap_or_default().to_owned();
        let merge = &report["merge"];
        let entry = Entry {
            current: current.as_deref() == Some(load_id.as_str()),
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
            load_id,
        };
        entries.push((entry, report));
    }
    // Load ids sort by their start second only (the rest is random): order by the
    // report's full start time.
    entries.sort_by_cached_key(|(entry, report)| {
        let started = report["started"].as_str().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        (started, entry.load_id.clone())
    });
    Ok(entries)
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
        let _ = writeln!(
            s,
            "{} {:<22} {:<9} {:<5} {:<19} {:<25} {:>9} {:>6} {:>8} {:>8} {:>9} {:>8} {:>10}",
            if e.current { "*" } else { " " },
            e.load_id,
            e.status,
            e.kind,
            e.started,
            e.transaction_time,
            e.lines,
            e.dead_letters,
            merged(|m| m.0),
            merged(|m| m.1),
            merged(|m| m.2),
            merged(|m| m.3),
            rows
        );
        if let Some(failure) = &e.failure {
            let _ = writeln!(s, "    failed: {failure}");
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
}
