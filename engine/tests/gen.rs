//! `fhirhouse gen` exports load cleanly, and injected defects are exactly the dead letters.

mod common;

use std::collections::BTreeMap;

use common::{load_with, table_counts};
use fhirhouse::gen::{generate, GenOptions};

#[test]
fn a_generated_export_loads_without_dead_letters() {
    let (export, warehouse) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut options = GenOptions::new(30, export.path().to_path_buf());
    options.seed = 3;
    let summary = generate(&options).unwrap();
    // Every line parsed, also those of types no shipped view reads (Group).
    let outcome = load_with(&[export.path().join("manifest.json")], warehouse.path(), |o| o.parse_all = true);
    assert!(outcome.committed());
    assert_eq!(outcome.report.totals.dead_letters, 0, "{}", outcome.report.summary());
    assert_eq!(outcome.report.totals.loaded + outcome.report.totals.without_view, summary.resources);
    let counts: BTreeMap<String, i64> = table_counts(warehouse.path()).into_iter().collect();
    assert_eq!(counts["patient"], 30);
}

#[test]
fn injected_defects_are_exactly_the_dead_letters() {
    let (export, warehouse) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut options = GenOptions::new(30, export.path().to_path_buf());
    options.defects = 0.05;
    options.gzip = true;
    generate(&options).unwrap();
    let defects: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.path().join("defects.json")).unwrap()).unwrap();
    let outcome = load_with(&[export.path().to_path_buf()], warehouse.path(), |_| {});
    assert!(outcome.committed());
    let totals = &outcome.report.totals;
    assert!(defects["total"].as_u64().unwrap() > 100);
    assert_eq!(totals.dead_letters, defects["total"].as_u64().unwrap());
    for reason in ["invalid_json", "invalid_utf8", "not_an_object"] {
        assert_eq!(totals.dead_by_reason.get(reason).copied(), defects[reason].as_u64(), "{reason}");
    }
}
