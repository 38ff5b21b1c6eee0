//! The shipped ViewDefinitions in `schemas/` compile and run cleanly over the bundled sample.

use std::path::PathBuf;
use std::sync::Arc;

use fhirhouse::view::{CompiledView, ViewBatchBuilder};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs one shipped view over the sample file of its type; returns (resources, rows).
fn run(view_file: &str) -> (usize, usize, arrow::record_batch::RecordBatch) {
    let text = std::fs::read_to_string(root().join("schemas").join(view_file)).unwrap();
    let view = Arc::new(CompiledView::from_json_str(&text).unwrap_or_else(|e| panic!("{view_file}: {e}")));
    let data = std::fs::read(root().join(format!("tests/data/sample/{}.000.ndjson", view.resource_type()))).unwrap();
    let mut builder = ViewBatchBuilder::new(view.clone());
    let mut resources = 0;
    for (i, line) in data.split(|b| *b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let mut line = line.to_vec();
        let doc = simd_json::to_borrowed_value(&mut line).unwrap();
        builder.append(&doc).unwrap_or_else(|e| panic!("{view_file}, line {}: {e}", i + 1));
        resources += 1;
    }
    let rows = builder.len();
    (resources, rows, builder.finish())
}

#[test]
fn patient_view_has_one_row_per_patient() {
    let (resources, rows, batch) = run("patient.json");
    assert_eq!((resources, rows), (10, 10));
    let gender =
        arrow::compute::cast(batch.column_by_name("gender").unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
    assert_eq!(gender.null_count(), 0, "every Synthea patient has a gender");
    assert_eq!(batch.column_by_name("birth_date").unwrap().null_count(), 0);
}

#[test]
fn observation_view_has_one_row_per_observation() {
    let (resources, rows, batch) = run("observation.json");
    assert_eq!((resources, rows), (1369, 1369));
    assert_eq!(batch.column_by_name("patient_id").unwrap().null_count(), 0, "every observation has a subject");
    assert_eq!(batch.column_by_name("effective_datetime").unwrap().null_count(), 0);
    let quantities = batch.column_by_name("value_quantity").unwrap();
    assert!(quantities.null_count() < rows, "vitals and labs carry quantities");
}

#[test]
fn patient_deceased_reads_either_choice_type() {
    let text = std::fs::read_to_string(root().join("schemas/patient.json")).unwrap();
    let view = Arc::new(CompiledView::from_json_str(&text).unwrap());
    let mut builder = ViewBatchBuilder::new(view);
    for line in [
        r#"{"resourceType":"Patient","id":"a","deceasedBoolean":true}"#,
        r#"{"resourceType":"Patient","id":"b","deceasedBoolean":false}"#,
        r#"{"resourceType":"Patient","id":"c","deceasedDateTime":"2020-01-01"}"#,
        r#"{"resourceType":"Patient","id":"d"}"#,
    ] {
        let mut bytes = line.as_bytes().to_vec();
        builder.append(&simd_json::to_borrowed_value(&mut bytes).unwrap()).unwrap();
    }
    let batch = builder.finish();
    let deceased = batch.column_by_name("deceased").unwrap();
    let deceased = deceased.as_any().downcast_ref::<arrow::array::BooleanArray>().unwrap();
    assert_eq!(deceased.iter().collect::<Vec<_>>(), [Some(true), Some(false), Some(true), Some(false)]);
}
