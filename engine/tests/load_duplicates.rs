//! The same resource twice in one load: reported, the newest (versionId, then lastUpdated,
//! then position) is what the tables hold, and the older copies are dead letters.

mod common;

use std::io::Write;

use common::*;

fn patient(id: &str, version: Option<&str>, updated: Option<&str>, gender: &str) -> String {
    let mut meta = serde_json::Map::new();
    if let Some(v) = version {
        meta.insert("versionId".into(), v.into());
    }
    if let Some(u) = updated {
        meta.insert("lastUpdated".into(), u.into());
    }
    serde_json::json!({"resourceType": "Patient", "id": id, "meta": meta, "gender": gender}).to_string()
}

#[test]
fn newest_copy_wins_and_older_copies_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let first = [
        patient("a", Some("1"), None, "male"),
        patient("b", None, Some("2024-01-01T00:00:00Z"), "male"),
        patient("c", None, None, "male"),
        patient("unique", None, None, "other"),
    ];
    let second = [
        patient("a", Some("2"), None, "female"),                         // newer version
        patient("b", None, Some("2023-06-01T00:00:00+00:00"), "female"), // older update
        patient("c", None, None, "female"),                              // later position
    ];
    std::fs::write(export.join("Patient.1.ndjson"), first.join("\n")).unwrap();
    std::fs::write(export.join("Patient.2.ndjson.gz"), common::gzip(second.join("\n").as_bytes())).unwrap();

    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |o| o.chunk_bytes = 100);
    let report = &outcome.report;
    assert!(outcome.committed(), "{:?}", report.failure);
    report.check().unwrap();
    let dups = report.duplicates.as_ref().expect("duplicates reported");
    assert_eq!((dups.keys, dups.superseded), (3, 3));
    assert!(
        dups.examples.iter().any(|e| e.starts_with("Patient/a: ") && e.contains("Patient.2.ndjson.gz:1 wins")),
        "{:?}",
        dups.examples
    );
    assert_eq!(report.totals.loaded, 4);
    assert_eq!(report.totals.dead_by_reason.get("superseded_duplicate"), Some(&3));

    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, &out).unwrap();
    let batches =
        fhirhouse::sql::query_blocking(&ctx, "SELECT id, CAST(gender AS VARCHAR) FROM patient ORDER BY id").unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("| ") && !l.contains(" id ")).collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (id, gender) in [("a", "female"), ("b", "male"), ("c", "female"), ("unique", "other")] {
        assert!(
            rows.iter().any(|r| r.contains(&format!("| {id} ")) && r.contains(gender)),
            "{id} should be {gender}:\n{text}"
        );
    }

    let dead = dead_letters(&out, &report.load_id);
    let superseded: Vec<(String, u64)> = dead
        .iter()
        .filter(|r| r["reason"] == "superseded_duplicate")
        .map(|r| (r["raw"].as_str().unwrap().to_owned(), r["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(superseded.len(), 3);
    assert!(superseded.contains(&(first[0].clone(), 1)), "{superseded:?}");
    assert!(superseded.contains(&(second[1].clone(), 2)), "{superseded:?}");
    assert!(superseded.contains(&(first[2].clone(), 3)), "{superseded:?}");
}

#[test]
fn unmapped_codes_are_counted_for_the_rows_the_tables_keep() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    // SNOMED CT codes no map has: each copy of c1 has its own, and only the winner's row stays.
    let condition = |id: &str, version: &str, code: &str| {
        serde_json::json!({"resourceType": "Condition", "id": id, "meta": {"versionId": version},
            "subject": {"reference": "Patient/p"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]}})
        .to_string()
    };
    let lines = [
        condition("c1", "2", "999999997"),
        condition("c1", "10", "999999998"),
        condition("c1", "3", "999999999"),
        condition("c2", "1", "999999990"),
    ];
    std::fs::write(export.join("Condition.ndjson"), lines.join("\n")).unwrap();

    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |_| {});
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    assert_eq!(outcome.report.duplicates.as_ref().unwrap().superseded, 2);
    assert_eq!(outcome.report.unmapped_codes.as_ref().unwrap().rows, 2);
    let ctx = datafusion::prelude::SessionContext::new();
    fhirhouse::sql::register_warehouse(&ctx, &out).unwrap();
    let sql = "SELECT CAST(code AS VARCHAR), count FROM _dq_unmapped_codes ORDER BY 1";
    let batches = fhirhouse::sql::query_blocking(&ctx, sql).unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("| 9"))
        .map(|l| l.split('|').map(str::trim).filter(|c| !c.is_empty()).collect())
        .collect();
    assert_eq!(rows, [["999999990", "1"], ["999999998", "1"]], "{text}");
}

#[test]
fn a_compressed_file_listed_twice_supersedes_every_line_of_its_first_copy() {
    // Its duplicate lines are read in one pass per file (a .gz cannot seek to them).
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let lines: Vec<String> = (0..300).map(|i| patient(&format!("p{i}"), None, None, "female")).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all((lines.join("\r\n") + "\r\n").as_bytes()).unwrap();
    std::fs::write(export.join("Patient.000.ndjson.gz"), gz.finish().unwrap()).unwrap();
    let entry = serde_json::json!({"type": "Patient", "url": "Patient.000.ndjson.gz"});
    let manifest = serde_json::json!({"transactionTime": "2024-01-01T00:00:00Z", "request": "x",
        "requiresAccessToken": false, "error": [], "output": [entry, entry]});
    std::fs::write(export.join("manifest.json"), manifest.to_string()).unwrap();

    let out = dir.path().join("wh");
    let outcome = load_with(&[export.join("manifest.json")], &out, |_| {});
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    assert_eq!(outcome.report.duplicates.as_ref().map(|d| d.superseded), Some(300));
    assert_eq!(table_rows(out.as_path(), "patient"), 300);
    let dead = dead_letters(&out, &outcome.report.load_id);
    assert_eq!(dead.len(), 300);
    // Every dead letter is the first copy's line, byte for byte.
    for record in &dead {
        let line = record["line"].as_u64().unwrap() as usize;
        assert_eq!(record["raw"], lines[line - 1], "{record}");
    }
}
