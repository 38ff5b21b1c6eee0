//! The official SQL on FHIR v2 conformance suite, vendored in `tests/sql-on-fhir/`.
//!
//! Every case runs through the real engine path (simd-json → view → Arrow). The suite has
//! 144 cases; all must pass. A failure prints the file, the case and the reason.

use std::path::PathBuf;

use fhirhouse::view::conformance::{run_suite, SuiteReport};

fn report() -> SuiteReport {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/sql-on-fhir");
    run_suite(&dir).expect("the vendored suite is readable")
}

#[test]
fn every_conformance_case_passes() {
    let report = report();
    for (file, name, reason) in report.failures() {
        eprintln!("FAIL {file} :: {name}\n     {reason}");
    }
    eprintln!("SQL on FHIR conformance: {} passed, {} failed", report.passed(), report.failed());
    assert_eq!(report.passed() + report.failed(), 144, "the vendored suite has 144 cases");
    assert_eq!(report.failed(), 0, "conformance failures above");
}

#[test]
fn expect_error_cases_fail_for_the_right_reason() {
    let report = report();
    let reason = |file: &str, name: &str| -> String {
        let f = report.files.iter().find(|f| f.file == file).unwrap();
        f.tests.iter().find(|t| t.name == name).unwrap().reason.clone().unwrap_or_default()
    };
    let cases = [
        ("validate.json", "empty", "resource: is required"),
        ("validate.json", "missing resource", "resource: is required"),
        ("validate.json", "wrong fhirpath", "select[0].forEach: invalid FHIRPath"),
        ("validate.json", "wrong type in forEach", "select[0].forEach: must be a FHIRPath string"),
        ("validate.json", "where with path resolving to not boolean", "where[0].path"),
        ("constant.json", "accessing an undefined constant", "undefined constant %wrong_name"),
        ("constant.json", "incorrect constant definition", "has no value[x]"),
        ("union.json", "column mismatch", "unionAll branches must have the same columns"),
        ("union.json", "column order mismatch", "unionAll branches must have the same columns"),
        ("collection.json", "fail when 'collection' is not true", "returned 2 values"),
        ("view_resource.json", "resource not specified", "resource: is required"),
    ];
    for (file, name, needle) in cases {
        let got = reason(file, name);
        assert!(got.contains(needle), "{file} :: {name}: reason {got:?} should mention {needle:?}");
    }
}
