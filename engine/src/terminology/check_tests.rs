use std::path::Path;

use super::*;

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

const SYSTEMS: &str = r#"{"systems": [
  {"canonical": "http://snomed.info/sct", "name": "SNOMED CT", "code_form": "plain", "aliases": ["SNOMED"]},
  {"canonical": "http://hl7.org/fhir/sid/icd-10-cm", "name": "ICD-10-CM", "code_form": "icd10", "aliases": []}]}"#;

const MANIFEST_JSON: &str = r#"{"systems": "systems.json", "bindings": "bindings.json", "tables": [
  {"name": "map", "kind": "crosswalk", "format": "csv", "file": "map.csv", "version": "1", "licence": "x", "source": "x"},
  {"name": "cm", "kind": "crosswalk", "format": "fhir_json", "file": "cm.json", "version": "1", "licence": "x", "source": "x"},
  {"name": "vs", "kind": "valueset", "format": "fhir_json", "dir": "vs", "version": "1", "licence": "x", "source": "x"},
  {"name": "icd", "kind": "code_list", "system": "http://hl7.org/fhir/sid/icd-10-cm", "file": "icd.txt", "version": "1", "licence": "x", "source": "x"},
  {"name": "cat", "kind": "categories", "system": "http://hl7.org/fhir/sid/icd-10-cm", "file": "cat.csv", "version": "1", "licence": "x", "source": "x"},
  {"name": "ref", "kind": "reference", "key": ["a", "year"], "files": [{"file": "r1.csv", "add": {"year": "1"}}, {"file": "r2.csv", "add": {"year": "2"}}], "version": "1", "licence": "x", "source": "x"}]}"#;

const HEADER: &str =
    "source_system,source_code,source_display,target_system,target_code,target_display,relationship,note\n";

fn valid_folder(dir: &Path) {
    write(
        dir,
        &[
            ("manifest.json", MANIFEST_JSON),
            ("systems.json", SYSTEMS),
            (
                "bindings.json",
                r#"{"bindings": [{"table": "condition", "system": "code_system", "code": "code", "target": "http://hl7.org/fhir/sid/icd-10-cm", "output": "icd10cm"}]}"#,
            ),
            ("map.csv", &format!("{HEADER}SNOMED,44054006,,http://hl7.org/fhir/sid/icd-10-cm,E11.9,,narrower,\n")),
            (
                "cm.json",
                r#"{"resourceType": "ConceptMap", "group": [{"source": "http://snomed.info/sct", "target": "http://hl7.org/fhir/sid/icd-10-cm", "element": [{"code": "59621000", "target": [{"code": "I10", "equivalence": "equivalent"}]}]}]}"#,
            ),
            (
                "vs/a.json",
                r#"{"resourceType": "ValueSet", "url": "http://x/vs", "expansion": {"contains": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11.9"}, {"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E11"}]}}"#,
            ),
            ("icd.txt", "code\nE119\nI10\n"),
            ("cat.csv", "category,range_start,range_end,description\ndiabetes,E08,E13,x\n"),
            ("r1.csv", "a,b\n1,x\n2,y\n"),
            ("r2.csv", "a,b\n1,x\n"),
        ],
    );
}

#[test]
fn a_valid_folder_passes_with_a_warning_for_retired_value_set_codes() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
    assert!(report.ok(), "{:?}", report.errors);
    assert_eq!(report.tables.len(), 6);
    assert_eq!(report.warnings.len(), 1);
    assert!(report.warnings[0].contains("E11 (not in icd)"), "{:?}", report.warnings);
}

#[test]
fn every_kind_of_problem_is_reported_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(
        dir.path(),
        &[
            (
                "map.csv",
                &format!(
                    "{HEADER}SNOMED,44054006,,http://hl7.org/fhir/sid/icd-10-cm,E11.9,,narrower,\n\
                     http://snomed.info/sct,44054006,,http://hl7.org/fhir/sid/icd-10-cm,E119,,narrower,\n\
                     SNOMED,1,,http://hl7.org/fhir/sid/icd-10-cm,E88.81,,equivalent,\n\
                     SNOMED,2,,http://hl7.org/fhir/sid/icd-10-cm,I10,,equivalent,\n\
                     SNOMED,2,,http://hl7.org/fhir/sid/icd-10-cm,,,unmatched,why\n"
                ),
            ),
            ("cm.json", r#"{"resourceType": "ConceptMap", "group": [{"source": "a"}]}"#),
            ("icd.txt", "code\nE119\nI10\nI10\ne11.9\n"),
            ("r1.csv", "a,b\n1,x\n1,z\n"),
            (
                "vs/b.json",
                r#"{"resourceType": "ValueSet", "url": "http://x/vs", "expansion": {"contains": [{"system": "s", "code": "1"}, {"system": "s", "code": "1"}]}}"#,
            ),
        ],
    );
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let expect = [
        "icd.txt:4: I10 is listed twice",
        "icd.txt:5: e11.9 is not in normal form (E119)",
        "icd.txt:5: e11.9 is listed twice",
        "map.csv:3: duplicate key http://snomed.info/sct 44054006 → E119 (first at line 2)",
        "map.csv:4: target code E88.81 is not in icd",
        "map.csv:6: 2 is both unmatched and mapped (line 5)",
        "cm.json: group[0]: source and target systems are required",
        "vs/b.json: s 1 is listed twice",
        "r1.csv:3: duplicate key [\"1\", \"1\"] (first at r1.csv:2)",
    ];
    for e in expect {
        assert!(errors.iter().any(|x| x.ends_with(e) || x == e), "missing {e:?} in {errors:#?}");
    }
    assert_eq!(errors.len(), expect.len(), "{errors:#?}");
}

#[test]
fn bindings_are_checked_against_the_views() {
    use arrow::datatypes::{DataType, Field, Schema};
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    let schema = std::sync::Arc::new(Schema::new(vec![
        Field::new("code_system", DataType::Utf8, true),
        Field::new("code", DataType::Int32, true),
    ]));
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[("condition".into(), schema)]);
    assert_eq!(report.errors.len(), 1);
    assert!(report.errors[0].to_string().contains("column code is Int32, not text"), "{:?}", report.errors);
    let report =
        check(&MappingSource::Dir(dir.path().to_owned()), &[("patient".into(), std::sync::Arc::new(Schema::empty()))]);
    assert!(report.errors[0].to_string().contains("no view makes table condition"));
}

#[test]
fn the_shipped_mappings_pass() {
    let views = crate::load::Catalog::shipped().unwrap();
    let views: Vec<(String, arrow::datatypes::SchemaRef)> =
        views.layouts.iter().zip(&views.views).map(|(l, v)| (l.name.clone(), v.schema())).collect();
    for source in
        [MappingSource::Embedded, MappingSource::Dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("../mappings"))]
    {
        let report = check(&source, &views);
        assert!(report.ok(), "{}: {:#?}", source.describe(), report.errors);
        let names: Vec<&str> = report.tables.iter().map(|t| t.0.as_str()).collect();
        for name in ["snomed_icd10cm", "ndc_rxnorm", "local_lab_loinc", "ecqm", "icd10cm_fy2026", "hcc_dx_to_cc"] {
            assert!(names.contains(&name), "{name} in {names:?}");
        }
    }
}

#[test]
fn a_folder_whose_every_table_is_broken_is_readable_and_lists_every_error() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    let manifest = MANIFEST_JSON.replace(r#""file": "cm.json""#, r#""file": "missing.json""#);
    let manifest = manifest.split("\n").filter(|l| !l.contains(r#""kind": "valueset""#)).collect::<Vec<_>>();
    let manifest: String = manifest.join("\n");
    write(dir.path(), &[("manifest.json", &manifest), ("map.csv", "code,target\n"), ("icd.txt", "codes\n")]);
    write(dir.path(), &[("cat.csv", "category\n"), ("r1.csv", "a,b\n1\n")]);
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
    assert!(report.tables.is_empty(), "{:?}", report.tables);
    assert!(!report.unreadable);
    assert_eq!(report.errors.len(), 5, "{:#?}", report.errors);
    let report = check(&MappingSource::Dir(dir.path().join("nowhere")), &[]);
    assert!(report.unreadable && report.errors.len() == 1);
}

#[test]
fn systems_no_load_can_use_are_warnings() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(
        dir.path(),
        &[(
            "map.csv",
            &format!(
                "{HEADER}SNOMED,44054006,,http://hl7.org/fhir/sid/icd-10-cm,E11.9,,narrower,\n\
                 SNOMED,38341003,,http://hl7.org/fhir/sid/icd-10-cn,I10,,equivalent,\n\
                 http://example.org/local,L1,,http://hl7.org/fhir/sid/icd-10-cm,I10,,equivalent,\n\
                 http://example.org/local,L2,,http://hl7.org/fhir/sid/icd-10-cm,E11.9,,equivalent,\n"
            ),
        )],
    );
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
    assert!(report.ok(), "{:?}", report.errors);
    let expect = [
        "map.csv:3: no binding targets http://hl7.org/fhir/sid/icd-10-cn: its 1 rows are not used by a load",
        "map.csv:4: source system http://example.org/local is not in systems.json: its 2 rows match codes only as \
         written (no aliases, no code form)",
    ];
    for e in expect {
        assert!(report.warnings.iter().any(|w| w.ends_with(e)), "missing {e:?} in {:#?}", report.warnings);
    }
    assert_eq!(report.warnings.len(), 3, "{:#?}", report.warnings);
}

#[test]
fn concept_map_problems_name_the_element_not_a_line_and_value_sets_are_checked_across_files() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    write(
        dir.path(),
        &[
            (
                "cm.json",
                r#"{"resourceType": "ConceptMap", "group": [{"source": "http://snomed.info/sct", "target": "http://hl7.org/fhir/sid/icd-10-cm", "element": [
                    {"code": "59621000", "target": [{"code": "I10", "equivalence": "equivalent"}]},
                    {"code": "1", "target": [{"code": "I10", "equivalence": "disjoint"}]},
                    {"code": "1", "target": [{"equivalence": "unmatched", "comment": "none"}]},
                    {"code": "59621000", "target": [{"code": "I10", "equivalence": "wider"}]}]}]}"#,
            ),
            (
                "vs/b.json",
                r#"{"resourceType": "ValueSet", "url": "http://x/vs", "expansion": {"contains": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "E119"}]}}"#,
            ),
        ],
    );
    let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
    let errors: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        [
            "cm.json: element 4: duplicate key http://snomed.info/sct 59621000 → I10 (first at element 1)",
            "vs/b.json: http://hl7.org/fhir/sid/icd-10-cm E119 is listed twice (also in vs/a.json)",
        ]
    );
}

#[test]
fn manifest_fields_a_kind_does_not_read_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    valid_folder(dir.path());
    for (from, to, expect) in [
        (
            r#""file": "map.csv""#,
            r#""file": "map.csv", "files": [{"file": "x.csv"}]"#,
            r#"table map: "files" does not apply to a crosswalk table"#,
        ),
        (r#""dir": "vs""#, r#""dir": "vs", "file": "vs/a.json""#, r#"table vs: give "file" or "dir", not both"#),
    ] {
        write(dir.path(), &[("manifest.json", &MANIFEST_JSON.replace(from, to))]);
        let report = check(&MappingSource::Dir(dir.path().to_owned()), &[]);
        assert!(report.unreadable);
        assert_eq!(report.errors[0].to_string(), format!("manifest.json: {expect}"));
    }
}
