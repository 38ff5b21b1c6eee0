//! The shipped views (`schemas/`) against the FHIR R4 definition of the elements they read,
//! over small hand-written resources for the variants the Synthea data does not have: each
//! test names the element and what R4 says of it.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use fhirhouse::view::{CompiledView, Json, ViewBatchBuilder};

fn view(file: &str) -> Arc<CompiledView> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas").join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    Arc::new(CompiledView::from_json_str(&text).unwrap_or_else(|e| panic!("{file}: {e}")))
}

/// Runs the shipped view `file` over resources given as JSON lines.
fn rows(file: &str, lines: &[&str]) -> RecordBatch {
    let mut builder = ViewBatchBuilder::new(view(file));
    for line in lines {
        let mut bytes = line.as_bytes().to_vec();
        builder.append(Json::root(&simd_json::to_tape(&mut bytes).unwrap())).unwrap_or_else(|e| panic!("{file}: {e}"));
    }
    builder.finish()
}

/// A `dateTime` column as RFC 3339 text in UTC (`None` for null).
fn timestamps(batch: &RecordBatch, column: &str) -> Vec<Option<String>> {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    let array = array.as_primitive::<TimestampMicrosecondType>();
    (0..array.len())
        .map(|i| {
            array.is_valid(i).then(|| {
                chrono::DateTime::from_timestamp_micros(array.value(i))
                    .unwrap()
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string()
            })
        })
        .collect()
}

fn booleans(batch: &RecordBatch, column: &str) -> Vec<Option<bool>> {
    batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")).as_boolean().iter().collect()
}

/// R4 ExplanationOfBenefit has no `hospitalization` (STU3 had); the admission period is a
/// `supportingInfo` whose category is CARIN Blue Button's `admissionperiod` (or the base
/// `claiminformationcategory` code `hospitalized`), with a `timingPeriod`. STU3-shaped data
/// (the Blue Button sample) keeps giving its `hospitalization`.
#[test]
fn eob_hospitalization_reads_r4_supporting_info() {
    let batch = rows(
        "explanation_of_benefit.json",
        &[
            r#"{"resourceType":"ExplanationOfBenefit","id":"carin","status":"active","use":"claim",
                "patient":{"reference":"Patient/p1"},"billablePeriod":{"start":"2020-01-01","end":"2020-01-05"},
                "supportingInfo":[
                  {"sequence":1,"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType","code":"clmrecvddate"}]},"timingDate":"2020-01-08"},
                  {"sequence":2,"category":{"coding":[{"system":"http://hl7.org/fhir/us/carin-bb/CodeSystem/C4BBSupportingInfoType","code":"admissionperiod"}]},
                   "timingPeriod":{"start":"2020-01-01T10:00:00-05:00","end":"2020-01-05"}}]}"#,
            r#"{"resourceType":"ExplanationOfBenefit","id":"base","status":"active","use":"claim",
                "patient":{"reference":"Patient/p1"},
                "supportingInfo":[{"sequence":1,"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claiminformationcategory","code":"hospitalized"}]},
                   "timingPeriod":{"start":"2021-02-03","end":"2021-02-04"}}]}"#,
            r#"{"resourceType":"ExplanationOfBenefit","id":"stu3","status":"active","patient":{"reference":"Patient/p1"},
                "hospitalization":{"start":"2014-10-11","end":"2014-10-12"}}"#,
            r#"{"resourceType":"ExplanationOfBenefit","id":"none","status":"active","patient":{"reference":"Patient/p1"},
                "supportingInfo":[{"sequence":1,"category":{"coding":[{"code":"clmrecvddate"}]},"timingDate":"2020-01-08"}]}"#,
        ],
    );
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        timestamps(&batch, "hospitalization_start"),
        [some("2020-01-01T15:00:00Z"), some("2021-02-03T00:00:00Z"), some("2014-10-11T00:00:00Z"), None]
    );
    assert_eq!(
        timestamps(&batch, "hospitalization_end"),
        [some("2020-01-05T00:00:00Z"), some("2021-02-04T00:00:00Z"), some("2014-10-12T00:00:00Z"), None]
    );
}

/// R4 Dosage.asNeeded[x] is boolean or CodeableConcept; a CodeableConcept is the
/// precondition for taking the medication as needed, so it means as needed (true).
#[test]
fn as_needed_codeable_concept_means_as_needed() {
    let requests = rows(
        "medication_request.json",
        &[
            r#"{"resourceType":"MedicationRequest","id":"cc","status":"active","intent":"order",
                "dosageInstruction":[{"text":"1 tablet for pain","asNeededCodeableConcept":{"text":"pain"}}]}"#,
            r#"{"resourceType":"MedicationRequest","id":"yes","status":"active","intent":"order",
                "dosageInstruction":[{"text":"1 tablet"},{"asNeededBoolean":true}]}"#,
            r#"{"resourceType":"MedicationRequest","id":"no","status":"active","intent":"order",
                "dosageInstruction":[{"asNeededBoolean":false}]}"#,
            r#"{"resourceType":"MedicationRequest","id":"unsaid","status":"active","intent":"order",
                "dosageInstruction":[{"text":"daily"}]}"#,
        ],
    );
    assert_eq!(booleans(&requests, "as_needed"), [Some(true), Some(true), Some(false), None]);

    let statements = rows(
        "medication_statement.json",
        &[
            r#"{"resourceType":"MedicationStatement","id":"cc","status":"active",
                "dosage":[{"asNeededCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"22253000"}]}}]}"#,
            r#"{"resourceType":"MedicationStatement","id":"no","status":"active","dosage":[{"asNeededBoolean":false}]}"#,
        ],
    );
    assert_eq!(booleans(&statements, "as_needed"), [Some(true), Some(false)]);
}

/// R4 Observation.value[x] may be an integer, and `dataAbsentReason` says why a value is
/// missing (US Core requires one or the other): the observation table keeps both, as its
/// component table does.
#[test]
fn observation_keeps_an_integer_value_and_why_a_value_is_absent() {
    let batch = rows(
        "observation.json",
        &[
            r#"{"resourceType":"Observation","id":"int","status":"final","code":{"text":"PHQ-9"},"valueInteger":7}"#,
            r#"{"resourceType":"Observation","id":"absent","status":"final","code":{"text":"HbA1c"},
                "dataAbsentReason":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/data-absent-reason","code":"unknown"}]}}"#,
        ],
    );
    let integers = batch.column_by_name("value_integer").expect("a value_integer column");
    let integers = integers.as_primitive::<arrow::datatypes::Int32Type>();
    assert_eq!((integers.is_valid(0), integers.value(0), integers.is_valid(1)), (true, 7, false));
    let reason =
        arrow::compute::cast(batch.column_by_name("data_absent_reason").unwrap(), &arrow::datatypes::DataType::Utf8)
            .unwrap();
    let reason = reason.as_string::<i32>();
    assert_eq!((reason.is_null(0), reason.value(1)), (true, "unknown"));
}
