//! A user's mapping folder (`--mappings`) and NLM map (`--snomed-icd10-map`) that are
//! wrong in the ways real ones are: through a whole load and through `fhirhouse mappings
//! check`, as a user runs them.

mod common;

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, AsArray};
use common::load_with;
use datafusion::prelude::SessionContext;
use fhirhouse::sql::{query_blocking, register_warehouse};

const HEADER: &str =
    "source_system,source_code,source_display,target_system,target_code,target_display,relationship,note\n";

const SYSTEMS: &str = r#"{"systems": [
  {"canonical": "http://example.org/local", "name": "Local", "code_form": "plain", "aliases": ["LOCAL"]},
  {"canonical": "http://hl7.org/fhir/sid/icd-10-cm", "name": "ICD-10-CM", "code_form": "icd10", "aliases": ["ICD-10-CM"]}]}"#;

const BINDINGS: &str = r#"{"bindings": [{"table": "condition", "system": "code_system", "code": "code",
  "display": "code_display", "id": "id", "target": "ICD-10-CM", "output": "dx"}]}"#;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
}

/// A folder with one CSV crosswalk `local.csv` and one ConceptMap `cm.json`.
fn folder(dir: &Path, csv: &str, concept_map: &str) {
    write(
        dir,
        &[
            ("systems.json", SYSTEMS),
            ("bindings.json", BINDINGS),
            (
                "manifest.json",
                r#"{"systems": "systems.json", "bindings": "bindings.json", "tables": [
                  {"name": "local", "kind": "crosswalk", "format": "csv", "file": "local.csv", "version": "1", "licence": "test", "source": "test"},
                  {"name": "cm", "kind": "crosswalk", "format": "fhir_json", "file": "cm.json", "version": "1", "licence": "test", "source": "test"}]}"#,
            ),
            ("local.csv", csv),
            ("cm.json", concept_map),
        ],
    );
}

/// An export of conditions coded `http://example.org/local|<code>`, one per code.
fn export(dir: &Path, codes: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let lines: Vec<String> = codes
        .iter()
        .map(|c| {
            format!(
                r#"{{"resourceType":"Condition","id":"{c}","subject":{{"reference":"Patient/p"}},"code":{{"coding":[{{"system":"http://example.org/local","code":"{c}"}}]}}}}"#
            )
        })
        .collect();
    std::fs::write(dir.join("Condition.000.ndjson"), lines.join("\n") + "\n").unwrap();
}

fn rows(ctx: &SessionContext, sql: &str) -> Vec<String> {
    let batches = query_blocking(ctx, sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out = Vec::new();
    for batch in &batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8).unwrap())
            .collect();
        for row in 0..batch.num_rows() {
            let fields: Vec<&str> =
                columns.iter().map(|c| if c.is_null(row) { "NULL" } else { c.as_string::<i32>().value(row) }).collect();
            out.push(fields.join(" "));
        }
    }
    out
}

/// A `disjoint` row (and R5's `not-related-to` with a target) says what a code is *not*:
/// it must never fill the standard columns, and a repeated target is listed once.
#[test]
fn disjoint_targets_are_not_mappings_and_repeated_targets_are_listed_once() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    folder(
        &mappings,
        &format!(
            "{HEADER}LOCAL,L1,,ICD-10-CM,E11.9,,equivalent,\n\
             LOCAL,L1,,ICD-10-CM,E119,,equivalent,\n\
             LOCAL,L2,,ICD-10-CM,I10,,disjoint,explicitly not hypertension\n\
             LOCAL,L3,,ICD-10-CM,I10,,disjoint,\n\
             LOCAL,L3,,ICD-10-CM,I15.9,,wider,\n"
        ),
        r#"{"resourceType": "ConceptMap", "url": "http://example.org/cm", "group": [{"source": "LOCAL", "target": "ICD-10-CM",
            "element": [{"code": "L4", "target": [{"code": "J45.909", "relationship": "not-related-to"}]}]}]}"#,
    );
    let input = dir.path().join("export");
    export(&input, &["L1", "L2", "L3", "L4"]);
    let out = dir.path().join("wh");
    let outcome = load_with(&[input], &out, |o| o.mappings_dir = Some(mappings.clone()));
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    let ctx = SessionContext::new();
    register_warehouse(&ctx, &out).unwrap();
    assert_eq!(
        rows(
            &ctx,
            "SELECT id, dx_code, dx_source, dx_relationship, array_to_string(dx_codes, '+') FROM condition ORDER BY id"
        ),
        [
            "L1 E119 local equivalent E119",
            "L2 NULL local unmatched NULL",
            "L3 I159 local wider I159",
            "L4 NULL cm unmatched NULL",
        ]
    );
    assert_eq!(
        rows(&ctx, "SELECT code, count, reason FROM _dq_unmapped_codes ORDER BY code"),
        ["L2 1 explicitly not hypertension", "L4 1 disjoint with J45909"]
    );
}

/// Exit status 2 is for a folder that cannot be opened; a readable folder whose every table
/// is broken has errors (status 1), each of them listed.
#[test]
fn mappings_check_lists_every_broken_table_with_status_1() {
    let dir = tempfile::tempdir().unwrap();
    folder(dir.path(), "code,target\nL1,E11.9\n", r#"{"resourceType": "ConceptMap", "group": {"source": "a"}}"#);
    let out =
        Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(["mappings", "check"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("error: local.csv:1: header must be"), "{stderr}");
    assert!(stderr.contains("error: cm.json: group must be an array, found an object"), "{stderr}");
    assert!(stderr.contains(": 2 errors"), "{stderr}");
}

/// `mappings check` warns about a crosswalk whose target no binding uses (a misspelt URI):
/// the load would leave those codes unmapped without saying why.
#[test]
fn mappings_check_warns_about_rows_no_load_uses() {
    let dir = tempfile::tempdir().unwrap();
    folder(
        dir.path(),
        &format!("{HEADER}LOCAL,L1,,http://hl7.org/fhir/sid/icd-10-cn,E11.9,,equivalent,\n"),
        r#"{"resourceType": "ConceptMap", "url": "u", "group": [{"source": "LOCAL", "target": "ICD-10-CM", "element": [{"code": "L2", "target": [{"code": "I10", "equivalence": "equivalent"}]}]}]}"#,
    );
    let out =
        Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(["mappings", "check"]).arg(dir.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(
            "warning: local.csv:2: no binding targets http://hl7.org/fhir/sid/icd-10-cn: its 1 rows are not used by a load"
        ),
        "{stderr}"
    );
}

/// Another refset's file (the SNOMED CT → ICD-10 WHO map) given as the NLM map stops the
/// load instead of loading as nothing.
#[test]
fn an_rf2_file_of_another_refset_stops_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("der2_iisssciRefset_ExtendedMapSnapshot_INT.txt");
    std::fs::write(
        &map,
        "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tmapGroup\tmapPriority\tmapRule\tmapAdvice\tmapTarget\tcorrelationId\tmapCategoryId\n\
         a\t20240301\t1\t449080006\t447562003\t22298006\t1\t1\tTRUE\t\tI21.9\t447561005\t447637006\n",
    )
    .unwrap();
    let input = dir.path().join("export");
    export(&input, &["L1"]);
    let out = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["load", "-q", "--out"])
        .arg(dir.path().join("wh"))
        .arg("--snomed-icd10-map")
        .arg(&map)
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("no row of the SNOMED CT → ICD-10-CM map (refset 6011000124106); found refsets 447562003"),
        "{stderr}"
    );
}
