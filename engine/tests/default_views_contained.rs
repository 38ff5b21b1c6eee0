//! The medication views with contained Medications: R4 MedicationRequest.medication[x] and
//! MedicationStatement.medication[x] may be a `medicationReference` to a Medication contained
//! in the resource (`"reference": "#med1"`, R4 §2.34 "Contained Resources"), as real EHR
//! exports often give them. The code columns take that Medication's `code`, and the RxNorm
//! crosswalk treats it as it treats a `medicationCodeableConcept`; a reference to anything
//! else gives no code. Fixtures: `tests/data/contained-medications/`.

mod common;

use std::path::PathBuf;

use common::{load_with, query_rows, root};

/// Loads the fixtures into a fresh warehouse; the warehouse's folder lives as long as the
/// returned guard.
fn load_fixtures() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[root().join("tests/data/contained-medications")], &out, |_| {});
    assert!(outcome.committed() && outcome.report.totals.dead_letters == 0, "{:?}", outcome.report.failure);
    (dir, out)
}

/// Every code column, the Medication key and the RxNorm crosswalk of `table`, one line a
/// row (`id|code_system|code|code_display|code_text|codings|medication_id|rxnorm_code|rxnorm_source`).
fn code_columns(out: &PathBuf, table: &str) -> Vec<String> {
    query_rows(
        out,
        &format!(
            "SELECT id, code_system, code, code_display, code_text, array_to_string(codings, ' '), medication_id, \
             rxnorm_code, rxnorm_source FROM {table} ORDER BY id"
        ),
    )
}

const NDC: &str = "http://hl7.org/fhir/sid/ndc";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

#[test]
fn medication_request_codes_come_from_a_referenced_contained_medication() {
    let (_dir, out) = load_fixtures();
    let ibuprofen = format!(
        "{NDC}|47682-0609-33|Ibuprofen 200 mg oral tablet|Ibuprofen 200 mg tablet|{NDC}|47682-0609-33||310965|ndc_rxnorm"
    );
    assert_eq!(
        code_columns(&out, "medication_request"),
        [
            format!(
                "concept-and-contained|{RXNORM}|314076|lisinopril 10 MG Oral Tablet||{RXNORM}|314076||314076|standard"
            ),
            format!("concept-ndc|{ibuprofen}"),
            format!("contained-ndc|{ibuprofen}"),
            format!(
                "contained-rxnorm|{RXNORM}|314076|lisinopril 10 MG Oral Tablet|Lisinopril 10 mg tablet|\
                 {RXNORM}|314076 {NDC}|00093-7339-01||314076|standard"
            ),
            // `#x` names no contained resource; `#med1` names a Substance, not a Medication.
            "dangling||||||||".to_string(),
            "external||||||123||".to_string(),
            "other-type||||||||".to_string(),
        ]
    );
}

#[test]
fn medication_statement_codes_come_from_a_referenced_contained_medication() {
    let (_dir, out) = load_fixtures();
    // The system as written (`NDC`), which the crosswalk knows as an alias.
    let ibuprofen =
        "NDC|47682-609-33|Ibuprofen 200 mg oral tablet|Ibuprofen 200 mg tablet|NDC|47682-609-33||310965|ndc_rxnorm";
    assert_eq!(
        code_columns(&out, "medication_statement"),
        [
            format!("concept-ndc|{ibuprofen}"),
            format!("contained-ndc|{ibuprofen}"),
            format!(
                "contained-rxnorm|{RXNORM}|314076|lisinopril 10 MG Oral Tablet|Lisinopril 10 mg tablet|\
                 {RXNORM}|314076||314076|standard"
            ),
            "dangling||||||||".to_string(),
            "external||||||123||".to_string(),
            "organization-same-id||||||||".to_string(),
            "other-type||||||||".to_string(),
        ]
    );
}

/// A contained Medication coded with NDC is crosswalked exactly as the same code given as a
/// `medicationCodeableConcept`: every crosswalk column agrees.
#[test]
fn a_contained_ndc_is_crosswalked_like_a_codeable_concept() {
    let (_dir, out) = load_fixtures();
    for table in ["medication_request", "medication_statement"] {
        let rows = query_rows(
            &out,
            &format!(
                "SELECT id, rxnorm_system, rxnorm_code, rxnorm_display, rxnorm_source, rxnorm_relationship, \
                 array_to_string(rxnorm_codes, ' ') FROM {table} WHERE id IN ('concept-ndc', 'contained-ndc') ORDER BY id"
            ),
        );
        let [concept, contained] = rows.as_slice() else { panic!("{table}: {rows:?}") };
        assert_eq!(concept.strip_prefix("concept-ndc|"), contained.strip_prefix("contained-ndc|"), "{table}");
        assert!(concept.contains("|310965|"), "{table}: {concept}");
    }
}
