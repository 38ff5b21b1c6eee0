use super::*;
use serde_json::json;

fn compile(view: serde_json::Value) -> Result<CompiledView, String> {
    CompiledView::from_json_value(&view).map_err(|e| e.to_string())
}

fn rows(view: &CompiledView, resource: &str) -> Result<Vec<Vec<Cell<'static>>>, String> {
    let mut bytes = resource.as_bytes().to_vec();
    let tape = simd_json::to_tape(&mut bytes).unwrap();
    let doc = Json::root(&tape);
    let rows = view.rows(doc).map_err(|e| e.to_string())?;
    Ok(rows
        .into_iter()
        .map(|r| r.into_iter().map(|c| format!("{c:?}")).map(|s| Cell::Str(s.into())).collect())
        .collect())
}

#[test]
fn column_order_is_depth_first_with_union_branches_sharing_slots() {
    let view = compile(json!({"resource": "Patient", "select": [
        {"column": [{"name": "a", "path": "'A'"}],
         "select": [{"forEach": "name", "column": [{"name": "c", "path": "family"}]}],
         "unionAll": [{"column": [{"name": "e", "path": "'E1'"}]}, {"column": [{"name": "e", "path": "'E2'"}]}]},
        {"column": [{"name": "g", "path": "'G'"}]}]}))
    .unwrap();
    let names: Vec<&str> = view.columns().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["a", "c", "e", "g"]);
    let out = rows(&view, r#"{"resourceType":"Patient","name":[{"family":"X"},{"family":"Y"}]}"#).unwrap();
    assert_eq!(out.len(), 4, "2 names x 2 union branches");
}

#[test]
fn invalid_views_are_rejected_with_the_element() {
    let e = compile(json!({"resource": "Patient", "select": [{"unionAll": [
        {"column": [{"name": "a", "path": "id"}, {"name": "b", "path": "id"}]},
        {"column": [{"name": "b", "path": "id"}, {"name": "a", "path": "id"}]}]}]}))
    .unwrap_err();
    assert!(e.starts_with("select[0].unionAll[1].column[0].name: unionAll branches must have the same columns"), "{e}");
    let e = compile(json!({"resource": "Patient", "select": [{"unionAll": [
        {"column": [{"name": "a", "path": "id"}, {"name": "b", "path": "id"}]},
        {"column": [{"name": "a", "path": "id"}]}]}]}))
    .unwrap_err();
    assert!(e.contains("lacks 'b'"), "{e}");
    let e = compile(json!({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "id"}, {"name": "id", "path": "id"}]}]})).unwrap_err();
    assert!(e.contains("already defined"), "{e}");
    let e = compile(json!({"resource": "Patient", "where": [{"path": "name.family"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
    assert!(e.starts_with("where[0].path:"), "{e}");
    let e = compile(
        json!({"resource": "Patient", "select": [{"forEach": "@@", "column": [{"name": "id", "path": "id"}]}]}),
    )
    .unwrap_err();
    assert!(e.starts_with("select[0].forEach: invalid FHIRPath"), "{e}");
    let e = compile(json!({"resource": "Patient", "constant": [{"name": "n", "valueInteger": "x"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap_err();
    assert!(e.contains("not a valid Integer"), "{e}");
}

#[test]
fn row_errors_name_resource_view_and_column() {
    let view = compile(json!({"resource": "Patient", "name": "pt", "select": [{"column": [{"name": "family", "path": "name.family"}]}]})).unwrap();
    let e = rows(&view, r#"{"resourceType":"Patient","id":"x1","name":[{"family":"A"},{"family":"B"}]}"#).unwrap_err();
    assert!(e.starts_with("Patient/x1: view 'pt', column 'family': 'name.family' returned 2 values"), "{e}");
    let view = compile(json!({"resource": "Patient", "where": [{"path": "identifier.value.first()"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap();
    let e = rows(&view, r#"{"resourceType":"Patient","id":"x2","identifier":[{"value":"v"}]}"#).unwrap_err();
    assert!(e.contains("returned a string, not a boolean"), "{e}");
    let view = compile(
        json!({"resource": "Patient", "select": [{"column": [{"name": "b", "path": "birthDate", "type": "date"}]}]}),
    )
    .unwrap();
    let e = rows(&view, r#"{"resourceType":"Patient","id":"x3","birthDate":"1970-13"}"#).unwrap_err();
    assert!(e.contains("column 'b': '1970-13' is not a valid date"), "{e}");
}

#[test]
fn other_resource_types_and_where_filters_yield_nothing() {
    let view = compile(json!({"resource": "Patient", "where": [{"path": "active"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap();
    assert!(rows(&view, r#"{"resourceType":"Observation","id":"o"}"#).unwrap().is_empty());
    assert!(rows(&view, r#"{"resourceType":"Patient","id":"p","active":false}"#).unwrap().is_empty());
    assert_eq!(rows(&view, r#"{"resourceType":"Patient","id":"p","active":true}"#).unwrap().len(), 1);
}
