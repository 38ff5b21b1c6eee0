//! The shipped ViewDefinitions in `schemas/`: each compiles, runs without a row error over
//! the bundled sample or a hand-written fixture, gives the expected number of rows and fills
//! the columns analysts rely on. A view file without a case here fails
//! `every_shipped_view_has_a_case`.
//!
//! The expected counts are of *missing* values: a null, or an empty list for a collection
//! column. Tests over `../shared` (the 100-patient export, Blue Button EOBs) skip with a
//! printed reason when it is absent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use fhirhouse::view::definition::{ColumnDef, SelectDef, ViewDefinition};
use fhirhouse::view::{CompiledView, Json, ViewBatchBuilder};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One shipped view over one data file (relative to the repository root).
struct Case {
    view: &'static str,
    data: &'static str,
    resources: usize,
    rows: usize,
    /// (column, rows where it is null or an empty list)
    missing: &'static [(&'static str, usize)],
}

/// What a view produced over one file.
struct Output {
    resources: usize,
    batch: RecordBatch,
}

fn compile(view_file: &str) -> Arc<CompiledView> {
    let text = std::fs::read_to_string(root().join("schemas").join(view_file)).unwrap();
    Arc::new(CompiledView::from_json_str(&text).unwrap_or_else(|e| panic!("{view_file}: {e}")))
}

/// Runs one shipped view over every line of `data` whose type is the view's; any row error
/// fails the test, naming the line.
fn run(view_file: &str, data: &Path) -> Output {
    let view = compile(view_file);
    let bytes = std::fs::read(data).unwrap_or_else(|e| panic!("{}: {e}", data.display()));
    let mut builder = ViewBatchBuilder::new(view.clone());
    let mut resources = 0;
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate().filter(|(_, l)| !l.is_empty()) {
        let mut line = line.to_vec();
        let tape = simd_json::to_tape(&mut line).unwrap();
        let doc = Json::root(&tape);
        let ours = doc.get_str("resourceType") == Some(view.resource_type());
        builder.append(doc).unwrap_or_else(|e| panic!("{view_file} over {}:{}: {e}", data.display(), i + 1));
        resources += usize::from(ours);
    }
    Output { resources, batch: builder.finish() }
}

/// Rows where `column` is null or, for a collection, an empty list.
fn missing(batch: &RecordBatch, column: &str) -> usize {
    let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
    match array.data_type() {
        DataType::List(_) => {
            let list = array.as_list::<i32>();
            (0..list.len()).filter(|&i| list.is_null(i) || list.value_length(i) == 0).count()
        }
        DataType::Dictionary(..) => arrow::compute::cast(array, &DataType::Utf8).unwrap().null_count(),
        _ => array.null_count(),
    }
}

fn check(case: &Case) {
    let out = run(case.view, &root().join(case.data));
    assert_eq!((out.resources, out.batch.num_rows()), (case.resources, case.rows), "{}: (resources, rows)", case.view);
    for (column, expected) in case.missing {
        assert_eq!(missing(&out.batch, column), *expected, "{}: rows missing {column}", case.view);
    }
}

/// Declares the cases: one `#[test]` each, and the list `CASES` for the coverage checks.
macro_rules! cases {
    ($($test:ident: $view:literal over $data:literal => $resources:literal resources, $rows:literal rows,
        missing [$(($col:literal, $n:literal)),* $(,)?];)*) => {
        const CASES: &[Case] = &[$(Case {
            view: $view, data: $data, resources: $resources, rows: $rows, missing: &[$(($col, $n)),*],
        }),*];
        $(
            #[test]
            fn $test() {
                check(&Case { view: $view, data: $data, resources: $resources, rows: $rows, missing: &[$(($col, $n)),*] });
            }
        )*
    };
}

cases! {
    patient: "patient.json" over "tests/data/sample/Patient.000.ndjson" => 10 resources, 10 rows,
        missing [("id", 0), ("gender", 0), ("birth_date", 0)];
    observation: "observation.json" over "tests/data/sample/Observation.000.ndjson" => 1369 resources, 1369 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("code", 0), ("codings", 0),
                 ("effective_datetime", 0), ("value_quantity", 178)];
    observation_component: "observation_component.json" over "tests/data/sample/Observation.000.ndjson"
        => 1369 resources, 178 rows,
        missing [("observation_id", 0), ("patient_id", 0), ("effective_datetime", 0), ("code", 0),
                 ("value_quantity", 0), ("value_ucum", 0)];
    encounter: "encounter.json" over "tests/data/sample/Encounter.000.ndjson" => 332 resources, 332 rows,
        missing [("id", 0), ("patient_id", 0), ("class_code", 0), ("code", 0), ("codings", 0), ("period_start", 0),
                 ("period_end", 0), ("practitioner_id", 0), ("service_provider_id", 0), ("reason_code", 284)];
    condition: "condition.json" over "tests/data/sample/Condition.000.ndjson" => 65 resources, 65 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("clinical_status", 0), ("code", 0),
                 ("codings", 0), ("onset_datetime", 0), ("abatement_datetime", 35), ("recorded_date", 0)];
    procedure: "procedure.json" over "tests/data/sample/Procedure.000.ndjson" => 224 resources, 224 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("code", 0), ("codings", 0),
                 ("performed_start", 0), ("performed_end", 0), ("reason_condition_id", 120)];
    medication_request: "medication_request.json" over "tests/data/sample/MedicationRequest.000.ndjson"
        => 404 resources, 404 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("code", 0), ("codings", 0),
                 ("authored_on", 0), ("requester_id", 0), ("reason_condition_id", 280)];
    medication_request_dosage: "medication_request.json" over "tests/data/fixtures/MedicationRequest.ndjson"
        => 2 resources, 2 rows,
        missing [("id", 0), ("patient_id", 0), ("code", 1), ("medication_id", 1), ("authored_on", 0),
                 ("dosage_text", 0), ("dose_quantity", 0), ("frequency", 0), ("dispense_quantity", 0),
                 ("days_supply", 0), ("refills", 1)];
    medication_statement: "medication_statement.json" over "tests/data/fixtures/MedicationStatement.ndjson"
        => 3 resources, 3 rows,
        missing [("id", 0), ("patient_id", 0), ("status", 0), ("code", 1), ("codings", 1), ("medication_id", 2),
                 ("effective_start", 0), ("effective_end", 2), ("date_asserted", 0), ("dose_quantity", 2)];
    allergy_intolerance: "allergy_intolerance.json" over "tests/data/sample/AllergyIntolerance.000.ndjson"
        => 5 resources, 5 rows,
        missing [("id", 0), ("patient_id", 0), ("clinical_status", 0), ("category", 0), ("criticality", 0),
                 ("code", 0), ("codings", 0), ("recorded_date", 0)];
    immunization: "immunization.json" over "tests/data/sample/Immunization.000.ndjson" => 120 resources, 120 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("code", 0), ("codings", 0),
                 ("occurrence_datetime", 0), ("primary_source", 0)];
    diagnostic_report: "diagnostic_report.json" over "tests/data/sample/DiagnosticReport.000.ndjson"
        => 77 resources, 77 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("category", 0), ("code", 0),
                 ("codings", 0), ("effective_datetime", 0), ("issued", 0), ("result_observation_ids", 0)];
    document_reference: "document_reference.json" over "tests/data/fixtures/DocumentReference.ndjson"
        => 3 resources, 3 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 2), ("status", 0), ("category", 1), ("code", 1),
                 ("codings", 1), ("document_date", 0), ("author_practitioner_id", 2), ("content_type", 0),
                 ("attachment_url", 0)];
    questionnaire_response: "questionnaire_response.json" over "tests/data/fixtures/QuestionnaireResponse.ndjson"
        => 3 resources, 3 rows,
        missing [("id", 0), ("patient_id", 0), ("status", 0), ("questionnaire", 0), ("authored", 0), ("item_count", 0)];
    questionnaire_response_item: "questionnaire_response_item.json"
        over "tests/data/fixtures/QuestionnaireResponse.ndjson" => 3 resources, 12 rows,
        missing [("questionnaire_response_id", 0), ("patient_id", 0), ("authored", 0), ("link_id", 0), ("text", 0),
                 ("answer_boolean", 11), ("answer_decimal", 11), ("answer_integer", 11), ("answer_date", 11),
                 ("answer_datetime", 11), ("answer_string", 10), ("answer_code", 9), ("answer_quantity", 11),
                 ("answer_reference", 11)];
    coverage: "coverage.json" over "tests/data/fixtures/Coverage.ndjson" => 3 resources, 3 rows,
        missing [("id", 0), ("patient_id", 0), ("status", 0), ("member_id", 2), ("subscriber_id", 0),
                 ("relationship", 0), ("type_code", 0), ("period_start", 0), ("period_end", 1),
                 ("payor_organization_id", 1), ("group_value", 2), ("plan_value", 1)];
    claim: "claim.json" over "tests/data/sample/Claim.000.ndjson" => 736 resources, 736 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("type_code", 0),
                 ("billable_period_start", 0), ("created", 0), ("provider_organization_id", 0),
                 ("prescription_id", 332), ("diagnosis_condition_ids", 678), ("total_amount", 0)];
    explanation_of_benefit: "explanation_of_benefit.json" over "tests/data/sample/ExplanationOfBenefit.000.ndjson"
        => 332 resources, 332 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("claim_id", 0), ("status", 0), ("type_code", 0),
                 ("billable_period_start", 0), ("created", 0), ("total_submitted_amount", 0), ("payment_amount", 0)];
    explanation_of_benefit_diagnosis: "explanation_of_benefit_diagnosis.json"
        over "tests/data/sample/ExplanationOfBenefit.000.ndjson" => 332 resources, 65 rows,
        missing [("explanation_of_benefit_id", 0), ("patient_id", 0), ("billable_period_start", 0), ("sequence", 0),
                 ("code", 65), ("condition_id", 0), ("diagnosis_type", 0)];
    explanation_of_benefit_item: "explanation_of_benefit_item.json"
        over "tests/data/sample/ExplanationOfBenefit.000.ndjson" => 332 resources, 741 rows,
        missing [("explanation_of_benefit_id", 0), ("patient_id", 0), ("billable_period_start", 0), ("sequence", 0),
                 ("code", 0), ("codings", 0), ("serviced_date", 0), ("net_amount", 397), ("allowed_amount", 397)];
    care_plan: "care_plan.json" over "tests/data/sample/CarePlan.000.ndjson" => 28 resources, 28 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("code", 0), ("codings", 0),
                 ("period_start", 0), ("period_end", 11), ("care_team_id", 0), ("addresses_condition_ids", 3)];
    care_team: "care_team.json" over "tests/data/sample/CareTeam.000.ndjson" => 28 resources, 28 rows,
        missing [("id", 0), ("patient_id", 0), ("status", 0), ("period_start", 0), ("practitioner_ids", 0),
                 ("managing_organization_id", 0)];
    device: "device.json" over "tests/data/sample/Device.000.ndjson" => 2 resources, 2 rows,
        missing [("id", 0), ("patient_id", 0), ("status", 0), ("code", 0), ("udi_device_identifier", 0),
                 ("manufacture_date", 0)];
    imaging_study: "imaging_study.json" over "tests/data/sample/ImagingStudy.000.ndjson" => 3 resources, 3 rows,
        missing [("id", 0), ("patient_id", 0), ("encounter_id", 0), ("status", 0), ("study_uid", 0), ("started", 0),
                 ("modalities", 0), ("number_of_instances", 0)];
    practitioner: "practitioner.json" over "tests/data/sample/Practitioner.000.ndjson" => 203 resources, 203 rows,
        missing [("id", 0), ("npi", 0), ("family_name", 0), ("given_names", 0), ("gender", 0), ("email", 0)];
    organization: "organization.json" over "tests/data/sample/Organization.000.ndjson" => 203 resources, 203 rows,
        missing [("id", 0), ("name", 0), ("type_code", 0), ("npi", 203), ("phone", 25), ("city", 0)];
}

/// Every `schemas/*.json` file, by file name.
fn shipped_views() -> BTreeSet<String> {
    std::fs::read_dir(root().join("schemas"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json"))
        .collect()
}

fn definition(view_file: &str) -> (serde_json::Value, ViewDefinition) {
    let text = std::fs::read_to_string(root().join("schemas").join(view_file)).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let def = ViewDefinition::from_json(&json).unwrap_or_else(|e| panic!("{view_file}: {e}"));
    (json, def)
}

fn all_columns(selects: &[SelectDef]) -> Vec<&ColumnDef> {
    selects
        .iter()
        .flat_map(|s| s.column.iter().chain(all_columns(&s.select)).chain(all_columns(&s.union_all)))
        .collect()
}

#[test]
fn every_shipped_view_has_a_case() {
    let tested: BTreeSet<String> = CASES.iter().map(|c| c.view.to_string()).collect();
    let shipped = shipped_views();
    assert_eq!(shipped, tested, "every schemas/*.json needs a case in engine/tests/default_views.rs (and vice versa)");
    for file in &shipped {
        let (json, def) = definition(file);
        assert_eq!(
            def.name.map(|n| n + ".json").as_deref(),
            Some(file.as_str()),
            "{file}: file name is the view's name"
        );
        assert!(json["title"].as_str().is_some_and(|t| !t.is_empty()), "{file}: needs a title");
    }
}

const PARTITION_TAG: &str = "fhirhouse/partition";

/// The large event tables, partitioned by year; child views partition like their parent.
const PARTITIONED: &[(&str, Option<&str>)] = &[
    ("observation.json", None),
    ("observation_component.json", Some("observation.json")),
    ("encounter.json", None),
    ("condition.json", None),
    ("procedure.json", None),
    ("medication_request.json", None),
    ("immunization.json", None),
    ("diagnostic_report.json", None),
    ("claim.json", None),
    ("explanation_of_benefit.json", None),
    ("explanation_of_benefit_diagnosis.json", Some("explanation_of_benefit.json")),
    ("explanation_of_benefit_item.json", Some("explanation_of_benefit.json")),
];

#[test]
fn partition_tags_name_year_on_one_date_column() {
    let mut partitioned = BTreeMap::new();
    for file in shipped_views() {
        let (_, def) = definition(&file);
        let tagged: Vec<&ColumnDef> =
            all_columns(&def.select).into_iter().filter(|c| c.tags.iter().any(|(n, _)| n == PARTITION_TAG)).collect();
        assert!(tagged.len() <= 1, "{file}: at most one partition column");
        let Some(column) = tagged.first() else { continue };
        let values: Vec<&str> =
            column.tags.iter().filter(|(n, _)| n == PARTITION_TAG).map(|(_, v)| v.as_str()).collect();
        assert_eq!(values, ["year"], "{file}: {} partition tag", column.name);
        assert!(
            matches!(column.type_name.as_deref(), Some("date" | "dateTime")),
            "{file}: partition column {} must be a date or dateTime",
            column.name
        );
        let schema = compile(&file).schema();
        let field = schema.field_with_name(&column.name).unwrap();
        assert!(matches!(field.data_type(), DataType::Date32 | DataType::Timestamp(..)), "{file}: {field:?}");
        partitioned.insert(file, (column.name.clone(), column.path.clone()));
    }
    let expected: BTreeSet<&str> = PARTITIONED.iter().map(|(v, _)| *v).collect();
    assert_eq!(partitioned.keys().map(String::as_str).collect::<BTreeSet<_>>(), expected);
    for (child, parent) in PARTITIONED {
        if let Some(parent) = parent {
            assert_eq!(partitioned[*child], partitioned[*parent], "{child} partitions by its parent's column");
        }
    }
}

#[test]
fn questionnaire_items_are_found_at_any_depth() {
    let out = run("questionnaire_response_item.json", &root().join("tests/data/fixtures/QuestionnaireResponse.ndjson"));
    let link_ids = out.batch.column_by_name("link_id").unwrap();
    let link_ids: Vec<_> = link_ids.as_string::<i32>().iter().map(Option::unwrap).collect();
    // Groups without answers give no row; items nested in groups and under answers do; an
    // item with two answers gives two rows.
    assert_eq!(
        link_ids,
        [
            "44250-9",
            "44255-8",
            "44259-0",
            "sleep-hours",
            "44261-6",
            "smoker",
            "packs",
            "quit-date",
            "allergies",
            "allergies",
            "last-visit",
            "gp"
        ]
    );
}

#[test]
fn patient_deceased_reads_either_choice_type() {
    let mut builder = ViewBatchBuilder::new(compile("patient.json"));
    for line in [
        r#"{"resourceType":"Patient","id":"a","deceasedBoolean":true}"#,
        r#"{"resourceType":"Patient","id":"b","deceasedBoolean":false}"#,
        r#"{"resourceType":"Patient","id":"c","deceasedDateTime":"2020-01-01"}"#,
        r#"{"resourceType":"Patient","id":"d"}"#,
    ] {
        let mut bytes = line.as_bytes().to_vec();
        builder.append(Json::root(&simd_json::to_tape(&mut bytes).unwrap())).unwrap();
    }
    let batch = builder.finish();
    let deceased = batch.column_by_name("deceased").unwrap().as_boolean();
    assert_eq!(deceased.iter().collect::<Vec<_>>(), [Some(true), Some(false), Some(true), Some(false)]);
}

/// `../shared/<relative>`, or `None` after printing why the test is skipped.
fn shared(relative: &str) -> Option<PathBuf> {
    let path = root().join("../shared").join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is absent (reference data outside the repository)", path.display());
        None
    }
}

/// Every view whose case reads the bundled sample also runs cleanly over the 100-patient
/// export, and the columns the sample fills completely are filled completely there too.
#[test]
fn synthea_100p_runs_every_sample_view_cleanly() {
    let Some(dir) = shared("data/synthea-100p") else { return };
    for case in CASES.iter().filter(|c| c.data.starts_with("tests/data/sample/")) {
        let file = dir.join(Path::new(case.data).file_name().unwrap());
        let out = run(case.view, &file);
        assert!(out.resources >= case.resources, "{}: {} resources", case.view, out.resources);
        for (column, _) in case.missing.iter().filter(|(_, n)| *n == 0) {
            assert_eq!(missing(&out.batch, column), 0, "{} over synthea-100p: rows missing {column}", case.view);
        }
        eprintln!("{}: {} resources, {} rows", case.view, out.resources, out.batch.num_rows());
    }
}

/// Blue Button EOBs code their diagnoses (ICD-10) inline, unlike Synthea's Condition
/// references; the data is STU3-shaped, which the item view's `service` fallback reads.
#[test]
fn blue_button_eobs_give_coded_diagnoses_and_items() {
    let Some(file) = shared("cms-hcc/samples/sample_eob_200.ndjson") else { return };
    let eob = run("explanation_of_benefit.json", &file);
    assert_eq!((eob.resources, eob.batch.num_rows()), (200, 200));
    assert_eq!(missing(&eob.batch, "billable_period_start"), 0);

    let diagnoses = run("explanation_of_benefit_diagnosis.json", &file);
    assert_eq!(diagnoses.batch.num_rows(), 686);
    for column in ["explanation_of_benefit_id", "patient_id", "billable_period_start", "sequence", "code", "codings"] {
        assert_eq!(missing(&diagnoses.batch, column), 0, "diagnosis {column}");
    }
    let systems =
        arrow::compute::cast(diagnoses.batch.column_by_name("code_system").unwrap(), &DataType::Utf8).unwrap();
    assert!(systems.as_string::<i32>().iter().all(|s| s == Some("http://hl7.org/fhir/sid/icd-10")));

    let items = run("explanation_of_benefit_item.json", &file);
    assert_eq!(items.batch.num_rows(), 200);
    assert_eq!(missing(&items.batch, "quantity"), 0);
    assert_eq!(missing(&items.batch, "code"), 162, "only 38 STU3 items code their service");
}
