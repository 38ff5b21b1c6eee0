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

#[test]
fn defects_json_counts_by_type_which_a_load_reads_and_which_it_only_counts() {
    // A template with a type no shipped view reads: a load counts its lines as unread.
    let template = tempfile::tempdir().unwrap();
    let (mut patients, mut provenances) = (String::new(), String::new());
    for p in 0..5 {
        let patient = format!("0b3c0a5e-1111-4c2b-9d7e-{p:012}");
        patients.push_str(&format!("{{\"resourceType\":\"Patient\",\"id\":\"{patient}\",\"gender\":\"female\"}}\n"));
        for n in 0..20 {
            provenances.push_str(&format!(
                "{{\"resourceType\":\"Provenance\",\"id\":\"0b3c0a5e-2222-4c2b-9d7e-{:012}\",\"target\":[{{\"reference\":\"Patient/{patient}\"}}],\"recorded\":\"2001-05-06T07:08:09+00:00\",\"agent\":[{{\"who\":{{\"display\":\"x\"}}}}]}}\n",
                100 * p + n
            ));
        }
    }
    std::fs::write(template.path().join("Patient.ndjson"), patients).unwrap();
    std::fs::write(template.path().join("Provenance.ndjson"), provenances).unwrap();
    let export = tempfile::tempdir().unwrap();
    let mut options = GenOptions::new(40, export.path().to_path_buf());
    options.defects = 0.2;
    options.template = Some(template.path().to_path_buf());
    generate(&options).unwrap();
    let defects: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.path().join("defects.json")).unwrap()).unwrap();
    let by_type = |t: &str| defects["by_type"][t].as_u64().unwrap();
    assert_eq!(by_type("Patient") + by_type("Provenance"), defects["total"].as_u64().unwrap());
    assert!(by_type("Patient") > 0 && by_type("Provenance") > 0);

    let warehouse = tempfile::tempdir().unwrap();
    let outcome = load_with(&[export.path().to_path_buf()], warehouse.path(), |_| {});
    assert_eq!(outcome.report.totals.dead_letters, by_type("Patient"), "{}", outcome.report.summary());
    let warehouse = tempfile::tempdir().unwrap();
    let outcome = load_with(&[export.path().to_path_buf()], warehouse.path(), |o| o.parse_all = true);
    assert_eq!(outcome.report.totals.dead_letters, defects["total"].as_u64().unwrap());
}
