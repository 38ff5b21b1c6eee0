use super::*;
use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Int32Type};

fn view(json: &str) -> Arc<CompiledView> {
    Arc::new(CompiledView::from_json_str(json).unwrap())
}

fn parse(line: &str) -> Vec<u8> {
    line.as_bytes().to_vec()
}

#[test]
fn typed_columns_and_lists() {
    let v = view(
        r#"{"resource": "Patient", "select": [{"column": [
        {"name": "id", "path": "id", "type": "id"},
        {"name": "gender", "path": "gender", "type": "code"},
        {"name": "born", "path": "birthDate", "type": "date"},
        {"name": "given", "path": "name.given", "type": "string", "collection": true},
        {"name": "n", "path": "name.count()"}]}]}"#,
    );
    let mut b = ViewBatchBuilder::new(v);
    for line in [
        r#"{"resourceType":"Patient","id":"a","gender":"female","birthDate":"1970-01-02","name":[{"given":["X","Y"]}]}"#,
        r#"{"resourceType":"Patient","id":"b"}"#,
    ] {
        let mut bytes = parse(line);
        b.append(&simd_json::to_borrowed_value(&mut bytes).unwrap()).unwrap();
    }
    let batch = b.finish();
    assert_eq!(batch.num_rows(), 2);
    assert!(matches!(batch.column(1).data_type(), DataType::Dictionary(_, _)));
    assert_eq!(batch.column(2).as_primitive::<arrow::datatypes::Date32Type>().value(0), 1);
    let given = batch.column(3).as_list::<i32>();
    assert_eq!(given.value(0).len(), 2);
    assert_eq!(given.value(1).len(), 0, "no names is an empty list, not null");
    assert!(!given.is_null(1));
    assert_eq!(batch.column(4).as_primitive::<Int32Type>().value(1), 0);
    assert!(b.is_empty(), "finish resets the builder");
}

#[test]
fn view_set_is_all_or_nothing_across_views() {
    let ok = view(r#"{"resource": "Patient", "name": "ok", "select": [{"column": [{"name": "id", "path": "id"}]}]}"#);
    let strict = view(
        r#"{"resource": "Patient", "name": "strict", "select": [{"column": [{"name": "g", "path": "name.given"}]}]}"#,
    );
    let mut set = ViewSet::new([ok, strict]);
    assert!(set.reads("Patient") && !set.reads("Observation"));
    let mut bad = parse(r#"{"resourceType":"Patient","id":"a","name":[{"given":["X","Y"]}]}"#);
    assert!(set.append("Patient", &simd_json::to_borrowed_value(&mut bad).unwrap()).is_err());
    let mut good = parse(r#"{"resourceType":"Patient","id":"b","name":[{"given":["X"]}]}"#);
    assert_eq!(set.append("Patient", &simd_json::to_borrowed_value(&mut good).unwrap()).unwrap(), 2);
    let counts: Vec<usize> = set.builders_mut().iter().map(ViewBatchBuilder::len).collect();
    assert_eq!(counts, [1, 1], "the failed resource left no row in the first view");
}
