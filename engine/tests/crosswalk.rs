//! Crosswalks at load time and in SQL: the bundled sample, the 100-patient Synthea export
//! (from `../shared`, skipped when absent), `--snomed-icd10-map`, `--mappings` with a FHIR
//! ConceptMap, and `fhirhouse mappings check` on the shipped tables.

mod common;

use std::path::Path;
use std::process::Command;

use arrow::array::{Array, AsArray, Int64Array};
use arrow::record_batch::RecordBatch;
use common::{load_with, root, sample};
use datafusion::prelude::SessionContext;
use fhirhouse::sql::{query_blocking, register_warehouse};

fn query(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
    query_blocking(ctx, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(ctx: &SessionContext, sql: &str) -> i64 {
    query(ctx, sql)[0].column(0).as_any().downcast_ref::<Int64Array>().unwrap().value(0)
}

fn strings(batches: &[RecordBatch], column: usize) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = arrow::compute::cast(batch.column(column), &arrow::datatypes::DataType::Utf8).unwrap();
        let array = array.as_string::<i32>();
        out.extend(
            (0..array.len()).map(|i| if array.is_null(i) { "NULL".to_owned() } else { array.value(i).to_owned() }),
        );
    }
    out
}

/// Loads `export` and checks that every Condition code maps to a billable FY2026
/// ICD-10-CM code or is listed in `_dq_unmapped_codes` with a reason; returns
/// (condition rows, distinct codes mapped, distinct codes listed unmapped).
fn every_condition_code_is_mapped_or_explained(export: &Path) -> (i64, i64, i64) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[export.to_path_buf()], &out, |_| {});
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    let ctx = SessionContext::new();
    let tables = register_warehouse(&ctx, &out).unwrap();
    assert!(tables.contains(&"_dq_unmapped_codes".to_owned()), "{tables:?}");

    let rows = count(&ctx, "SELECT count(*) FROM condition");
    assert!(rows > 0);
    // Mapped codes are billable FY2026 codes.
    let invalid = query(
        &ctx,
        "SELECT DISTINCT c.icd10cm_code FROM condition c
         LEFT JOIN code_list l ON l.list_name = 'icd10cm_fy2026' AND l.code = c.icd10cm_code
         WHERE c.icd10cm_code IS NOT NULL AND l.code IS NULL",
    );
    assert!(strings(&invalid, 0).is_empty(), "not billable in FY2026: {:?}", strings(&invalid, 0));
    // Every condition without a standard code is in the data-quality table with a reason.
    let unexplained = query(
        &ctx,
        "SELECT DISTINCT c.code_system, c.code, c.code_display FROM condition c
         LEFT JOIN _dq_unmapped_codes d ON d.\"table\" = 'condition' AND d.code = c.code AND d.reason IS NOT NULL
         WHERE c.code IS NOT NULL AND c.icd10cm_code IS NULL AND d.code IS NULL",
    );
    let unexplained: Vec<String> =
        strings(&unexplained, 1).into_iter().zip(strings(&unexplained, 2)).map(|(c, d)| format!("{c} {d}")).collect();
    assert!(unexplained.is_empty(), "Condition codes neither mapped nor explained: {unexplained:?}");
    let unmapped_rows = count(&ctx, "SELECT count(*) FROM condition WHERE code IS NOT NULL AND icd10cm_code IS NULL");
    let dq_rows = count(&ctx, "SELECT coalesce(sum(count), 0) FROM _dq_unmapped_codes WHERE \"table\" = 'condition'");
    assert_eq!(unmapped_rows, dq_rows, "every unmapped row is counted once");
    let mapped = count(&ctx, "SELECT count(DISTINCT code) FROM condition WHERE icd10cm_code IS NOT NULL");
    let listed = count(&ctx, "SELECT count(DISTINCT code) FROM _dq_unmapped_codes WHERE \"table\" = 'condition'");
    // Provenance and relationship are filled for every coded row.
    assert_eq!(count(&ctx, "SELECT count(*) FROM condition WHERE code IS NOT NULL AND icd10cm_source IS NULL"), 0);
    assert_eq!(
        count(&ctx, "SELECT count(*) FROM condition WHERE icd10cm_code IS NOT NULL AND (icd10cm_relationship IS NULL OR icd10cm_system <> 'http://hl7.org/fhir/sid/icd-10-cm')"),
        0
    );
    (rows, mapped, listed)
}

#[test]
fn sample_conditions_map_to_icd10cm_and_join_the_reference_tables() {
    let (rows, mapped, listed) = every_condition_code_is_mapped_or_explained(&sample());
    println!("sample: {rows} condition rows, {mapped} distinct codes mapped, {listed} listed unmapped");
    assert!(mapped > 10);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    load_with(&[sample()], &out, |_| {});
    let ctx = SessionContext::new();
    register_warehouse(&ctx, &out).unwrap();
    // The multi-target rule: the E. coli UTI concept gives N39.0 in the scalar columns and
    // both codes in the list; every mapped row's primary code is the list's first.
    let uti = query(
        &ctx,
        "SELECT DISTINCT icd10cm_code, array_to_string(icd10cm_codes, ',') FROM condition WHERE code = '301011002'",
    );
    assert_eq!((strings(&uti, 0), strings(&uti, 1)), (vec!["N390".to_owned()], vec!["N390,B9620".to_owned()]));
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM condition WHERE icd10cm_code IS NOT NULL AND icd10cm_codes[1] <> icd10cm_code"
        ),
        0
    );
    // Range categories through the UDF, and the HCC tables by join.
    let diabetes = count(
        &ctx,
        "SELECT count(*) FROM condition c JOIN icd10cm_category k
         ON icd10_in_range(c.icd10cm_code, k.range_start, k.range_end) WHERE k.category = 'diabetes'",
    );
    let e11 = count(&ctx, "SELECT count(*) FROM condition WHERE icd10cm_code LIKE 'E08%' OR icd10cm_code LIKE 'E09%' OR icd10cm_code LIKE 'E1%'");
    assert_eq!(diabetes, e11);
    assert!(count(&ctx, "SELECT count(*) FROM hcc_dx_to_cc WHERE diagnosis_code = 'E1121' AND model_name = 'CMS-HCC Model V28' AND payment_year = 2026") >= 1);
    assert!(count(&ctx, "SELECT count(*) FROM concept_map WHERE map_name = 'snomed_icd10cm'") > 100);
    assert!(count(&ctx, "SELECT count(*) FROM valueset WHERE valueset_name LIKE '%Diabetes%'") > 0);
    assert!(
        count(&ctx, "SELECT count(*) FROM hcc_labels") > 0 && count(&ctx, "SELECT count(*) FROM hcc_hierarchies") > 0
    );
    assert!(
        count(&ctx, "SELECT count(*) FROM hcc_coefficients") > 0
            && count(&ctx, "SELECT count(*) FROM hcc_dx_edits") > 0
    );
    // LOINC observations are already standard.
    assert_eq!(
        count(
            &ctx,
            "SELECT count(*) FROM observation WHERE code_system = 'http://loinc.org' AND loinc_source <> 'standard'"
        ),
        0
    );
    assert!(count(&ctx, "SELECT count(*) FROM medication_request WHERE rxnorm_source = 'standard'") > 0);
}

#[test]
fn synthea_100_patients_every_condition_code_maps_or_is_explained() {
    let export = root().join("../shared/data/synthea-100p");
    if !export.join("Condition.000.ndjson").exists() {
        println!("skipped: {} is absent (the ../shared reference data)", export.display());
        return;
    }
    let (rows, mapped, listed) = every_condition_code_is_mapped_or_explained(&export);
    println!("synthea-100p: {rows} condition rows, {mapped} distinct codes mapped, {listed} listed unmapped");
    assert_eq!(listed, 0, "the curated map covers every Condition code of the 100-patient sample");
}

const RF2_HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tmapGroup\tmapPriority\tmapRule\tmapAdvice\tmapTarget\tcorrelationId\tmapCategoryId\n";

#[test]
fn the_nlm_rf2_map_wins_over_the_shipped_table() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("der2_iisssciRefset_ExtendedMapSnapshot.txt");
    std::fs::write(
        &map,
        format!(
            "{RF2_HEADER}a\t20250301\t1\t5991000124107\t6011000124106\t15777000\t1\t1\tIFA 248152002 | Female |\tADVICE\tR73.09\t447561005\t447637006\n\
             b\t20250301\t1\t5991000124107\t6011000124106\t15777000\t1\t2\tOTHERWISE TRUE\tALWAYS R73.01\tR73.01\t447561005\t447637006\n"
        ),
    )
    .unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[sample()], &out, |o| o.snomed_icd10_map = Some(map.clone()));
    assert!(outcome.committed());
    let ctx = SessionContext::new();
    register_warehouse(&ctx, &out).unwrap();
    let rows = query(
        &ctx,
        "SELECT DISTINCT icd10cm_code, icd10cm_source, icd10cm_relationship FROM condition WHERE code = '44054006'",
    );
    if strings(&rows, 0).is_empty() {
        println!("the sample has no 44054006 condition");
        return;
    }
    assert_eq!(
        (strings(&rows, 0), strings(&rows, 1), strings(&rows, 2)),
        (vec!["E1165".to_owned()], vec!["nlm_snomed_icd10cm".to_owned()], vec!["relatedto".to_owned()])
    );
    // Concepts the user's map does not list still come from the shipped table.
    assert!(count(&ctx, "SELECT count(*) FROM condition WHERE icd10cm_source = 'snomed_icd10cm'") > 0);
}

#[test]
fn a_mappings_folder_with_a_concept_map_replaces_the_shipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let mappings = dir.path().join("mappings");
    std::fs::create_dir(&mappings).unwrap();
    std::fs::copy(root().join("mappings/systems.json"), mappings.join("systems.json")).unwrap();
    std::fs::write(
        mappings.join("bindings.json"),
        r#"{"bindings": [{"table": "condition", "system": "code_system", "code": "code", "display": "code_display", "id": "id",
            "target": "ICD-10-CM", "output": "dx"}]}"#,
    )
    .unwrap();
    std::fs::write(
        mappings.join("manifest.json"),
        r#"{"systems": "systems.json", "bindings": "bindings.json", "tables": [
            {"name": "site_map", "kind": "crosswalk", "format": "fhir_json", "file": "site.json", "version": "1", "licence": "test", "source": "test"}]}"#,
    )
    .unwrap();
    std::fs::write(
        mappings.join("site.json"),
        r#"{"resourceType": "ConceptMap", "url": "http://example.org/site", "group": [{"source": "SNOMED", "target": "urn:oid:2.16.840.1.113883.6.90",
            "element": [{"code": "10509002", "target": [{"code": "J20.9", "equivalence": "equivalent"}]},
                        {"code": "444814009", "target": [{"equivalence": "unmatched", "comment": "site policy: not coded"}]}]}]}"#,
    )
    .unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[sample()], &out, |o| o.mappings_dir = Some(mappings.clone()));
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    let ctx = SessionContext::new();
    register_warehouse(&ctx, &out).unwrap();
    assert_eq!(count(&ctx, "SELECT count(*) FROM condition WHERE dx_source = 'site_map' AND dx_code <> 'J209' AND dx_relationship <> 'unmatched'"), 0);
    assert_eq!(count(&ctx, "SELECT count(*) FROM condition WHERE dx_code = 'J209'"), 3);
    let reasons = query(&ctx, "SELECT reason, count FROM _dq_unmapped_codes WHERE code = '444814009'");
    assert_eq!(
        (strings(&reasons, 0), strings(&reasons, 1)),
        (vec!["site policy: not coded".to_owned()], vec!["5".to_owned()])
    );
    // Only the folder's bindings apply: no other table is crosswalked.
    let observation = query(&ctx, "SELECT * FROM observation LIMIT 1");
    assert!(observation[0].schema().fields().iter().all(|f| !f.name().starts_with("loinc")));
}

#[test]
fn mappings_check_passes_on_the_shipped_tables_and_fails_on_a_broken_folder() {
    let bin = env!("CARGO_BIN_EXE_fhirhouse");
    for args in [&["mappings", "check"][..], &["mappings", "check", &root().join("mappings").to_string_lossy()]] {
        let out = Command::new(bin).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains("valid") && stderr.contains("snomed_icd10cm"), "{stderr}");
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("m");
    std::fs::create_dir_all(copy.join("crosswalks")).unwrap();
    for file in [
        "manifest.json",
        "systems.json",
        "bindings.json",
        "icd10cm-categories.csv",
        "crosswalks/ndc-rxnorm.csv",
        "crosswalks/local-lab-loinc.csv",
    ] {
        std::fs::copy(root().join("mappings").join(file), copy.join(file)).unwrap();
    }
    let manifest = std::fs::read_to_string(copy.join("manifest.json")).unwrap();
    let value: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let mut value = value;
    value["tables"]
        .as_array_mut()
        .unwrap()
        .retain(|t| ["ndc_rxnorm", "local_lab_loinc", "icd10cm_category"].contains(&t["name"].as_str().unwrap()));
    std::fs::write(copy.join("manifest.json"), value.to_string()).unwrap();
    let mut lab = std::fs::read_to_string(copy.join("crosswalks/local-lab-loinc.csv")).unwrap();
    lab.push_str(
        "http://example.org/fhir/CodeSystem/local-lab,GLU,Glucose,http://loinc.org,2345-7,Glucose,equivalent,again\n",
    );
    std::fs::write(copy.join("crosswalks/local-lab-loinc.csv"), lab).unwrap();
    let out = Command::new(bin).args(["mappings", "check"]).arg(&copy).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("crosswalks/local-lab-loinc.csv:16: duplicate key"), "{stderr}");
    let out = Command::new(bin).args(["mappings", "check", "/nonexistent"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Hand-built resources: every normalisation, through a whole load.
#[test]
fn hand_built_resources_cover_every_normalisation() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let coded = |resource: &str, id: &str, element: &str, system: &str, code: &str| {
        format!(
            r#"{{"resourceType":"{resource}","id":"{id}","status":"active","subject":{{"reference":"Patient/p1"}},"{element}":{{"coding":[{{"system":"{system}","code":"{code}","display":"shown {code}"}}]}}}}"#
        )
    };
    let conditions = [
        coded("Condition", "alias", "code", "SNOMED", "44054006"),
        coded("Condition", "oid", "code", "urn:oid:2.16.840.1.113883.6.96", "59621000"),
        coded("Condition", "slash", "code", "http://snomed.info/sct/", "301011002"),
        coded("Condition", "icd-dotted", "code", "http://hl7.org/fhir/sid/icd-10-cm", "E11.9"),
        coded("Condition", "icd-alias-lower", "code", "ICD10CM", "i10"),
        coded("Condition", "unmatched", "code", "http://snomed.info/sct", "160903007"),
        coded("Condition", "local", "code", "http://example.org/local", "X1"),
        r#"{"resourceType":"Condition","id":"text-only","code":{"text":"something"}}"#.to_owned(),
    ];
    let medications = [
        coded("MedicationRequest", "ndc-10", "medicationCodeableConcept", "NDC", "47682-609-33"),
        coded(
            "MedicationRequest",
            "ndc-11-hyphens",
            "medicationCodeableConcept",
            "http://hl7.org/fhir/sid/ndc",
            "47682-0609-33",
        ),
        coded(
            "MedicationRequest",
            "rxnorm-oid",
            "medicationCodeableConcept",
            "urn:oid:2.16.840.1.113883.6.88",
            "310965",
        ),
    ];
    let observations = [
        coded("Observation", "local-lab", "code", "http://example.org/fhir/CodeSystem/local-lab", "HBA1C"),
        coded("Observation", "ln", "code", "LN", "4548-4"),
    ];
    let immunizations = [coded("Immunization", "cvx-oid", "vaccineCode", "urn:oid:2.16.840.1.113883.12.292", "140")];
    for (name, lines) in [
        ("Condition", &conditions[..]),
        ("MedicationRequest", &medications[..]),
        ("Observation", &observations[..]),
        ("Immunization", &immunizations[..]),
    ] {
        std::fs::write(export.join(format!("{name}.000.ndjson")), lines.join("\n") + "\n").unwrap();
    }
    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |_| {});
    assert!(outcome.committed() && outcome.report.totals.dead_letters == 0, "{:?}", outcome.report.failure);
    let unmapped = outcome.report.unmapped_codes.as_ref().unwrap();
    assert_eq!((unmapped.rows, unmapped.codes), (2, 2));
    let ctx = SessionContext::new();
    register_warehouse(&ctx, &out).unwrap();
    let rows = |sql: &str| {
        let batches = query(&ctx, sql);
        let columns = batches[0].num_columns();
        let mut out: Vec<String> = vec![String::new(); batches.iter().map(RecordBatch::num_rows).sum()];
        for c in 0..columns {
            for (row, value) in strings(&batches, c).into_iter().enumerate() {
                out[row] += &if c == 0 { value } else { format!(" {value}") };
            }
        }
        out
    };
    assert_eq!(
        rows("SELECT id, icd10cm_code, icd10cm_source, icd10cm_relationship, array_to_string(icd10cm_codes, '+') FROM condition ORDER BY id"),
        [
            "alias E119 snomed_icd10cm narrower E119",
            "icd-alias-lower I10 standard equal I10",
            "icd-dotted E119 standard equal E119",
            "local NULL unmapped NULL NULL",
            "oid I10 snomed_icd10cm equivalent I10",
            "slash N390 snomed_icd10cm wider N390+B9620",
            "text-only NULL NULL NULL NULL",
            "unmatched NULL snomed_icd10cm unmatched NULL",
        ]
    );
    assert_eq!(
        rows("SELECT id, rxnorm_code, rxnorm_source, rxnorm_display FROM medication_request ORDER BY id"),
        [
            "ndc-10 310965 ndc_rxnorm Ibuprofen 200 MG Oral Tablet",
            "ndc-11-hyphens 310965 ndc_rxnorm Ibuprofen 200 MG Oral Tablet",
            "rxnorm-oid 310965 standard shown 310965",
        ]
    );
    assert_eq!(
        rows("SELECT id, loinc_system, loinc_code, loinc_source FROM observation ORDER BY id"),
        ["ln http://loinc.org 4548-4 standard", "local-lab http://loinc.org 4548-4 local_lab_loinc"]
    );
    assert_eq!(rows("SELECT cvx_code, cvx_source FROM immunization"), ["140 standard"]);
    assert_eq!(
        rows("SELECT \"table\", \"column\", system, code, display, count, example_resource_id, target_system, reason FROM _dq_unmapped_codes ORDER BY code"),
        [
            "condition code http://snomed.info/sct 160903007 shown 160903007 1 unmatched http://hl7.org/fhir/sid/icd-10-cm employment is not a health problem; Z56 covers only problems related to employment",
            "condition code http://example.org/local X1 shown X1 1 local http://hl7.org/fhir/sid/icd-10-cm NULL",
        ]
    );
}
