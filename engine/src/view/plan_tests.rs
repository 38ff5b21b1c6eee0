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

#[test]
fn union_all_branches_must_agree_on_types() {
    let union = |a: serde_json::Value, b: serde_json::Value| {
        compile(json!({"resource": "Patient", "select": [{"unionAll": [{"column": [a]}, {"column": [b]}]}]}))
    };
    let e = union(
        json!({"name": "a", "path": "id", "type": "string"}),
        json!({"name": "a", "path": "name.count()", "type": "integer"}),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "select[0].unionAll[1].column[0].type: unionAll branches must have the same column types; \
         'a' is string at select[0].unionAll[0].column[0] but integer here"
    );
    let e = union(json!({"name": "a", "path": "id"}), json!({"name": "a", "path": "name.count()"})).unwrap_err();
    assert!(
        e.ends_with(
            "'a' is untyped (inferred as Utf8) at select[0].unionAll[0].column[0] but untyped (inferred as Int32) here"
        ),
        "{e}"
    );
    let e = union(json!({"name": "a", "path": "name.given", "collection": true}), json!({"name": "a", "path": "id"}))
        .unwrap_err();
    assert!(e.contains("'a' is a collection of untyped (inferred as Utf8) at"), "{e}");
    // Types that are the same column type agree, declared or inferred.
    union(json!({"name": "a", "path": "id", "type": "id"}), json!({"name": "a", "path": "'x'", "type": "string"}))
        .unwrap();
    union(json!({"name": "a", "path": "name.count()"}), json!({"name": "a", "path": "1", "type": "integer"})).unwrap();
    // One Arrow type, but FHIR types with other rules (a positiveInt refuses 0, an integer
    // does not): one column cannot check both, so they do not agree.
    let e = union(
        json!({"name": "a", "path": "1", "type": "positiveInt"}),
        json!({"name": "a", "path": "0", "type": "integer"}),
    )
    .unwrap_err();
    assert!(e.ends_with("'a' is positiveInt at select[0].unionAll[0].column[0] but integer here"), "{e}");
}

#[test]
fn an_untyped_column_of_an_integer64_constant_is_int64() {
    let view = compile(json!({"resource": "Patient",
        "constant": [{"name": "i64", "valueInteger64": "9007199254740993"}, {"name": "n", "valueInteger": 2}],
        "select": [{"column": [{"name": "x", "path": "%i64"}, {"name": "y", "path": "%i64 - %n"},
                               {"name": "z", "path": "%n + 1"}]}]}))
    .unwrap();
    let types: Vec<ValueType> = view.columns().iter().map(|c| c.value_type).collect();
    let int = FhirInteger::Integer;
    assert_eq!(types, [ValueType::Int64(int), ValueType::Int64(int), ValueType::Int32(int)]);
    let out = rows(&view, r#"{"resourceType":"Patient","id":"p1"}"#).unwrap();
    assert_eq!(
        out[0],
        ["Int(9007199254740993)", "Int(9007199254740991)", "Int(3)"].map(|s| Cell::Str(s.into())).to_vec()
    );
}

#[test]
fn where_errors_use_the_right_article() {
    let view = compile(
        json!({"resource": "Patient", "where": [{"path": "name.count()"}], "select": [{"column": [{"name": "id", "path": "id"}]}]}),
    );
    // `count()` is statically an integer, so that view is refused at compile time; a
    // where path whose type is known only per resource fails per row.
    assert!(view.is_err());
    let view = compile(json!({"resource": "Patient", "where": [{"path": "multipleBirth"}], "select": [{"column": [{"name": "id", "path": "id"}]}]})).unwrap();
    let e = rows(&view, r#"{"resourceType":"Patient","id":"x","multipleBirth":2}"#).unwrap_err();
    assert!(e.contains("returned an integer, not a boolean"), "{e}");
    let e = rows(&view, r#"{"resourceType":"Patient","id":"x","multipleBirth":{"a":1}}"#).unwrap_err();
    assert!(e.contains("returned an object, not a boolean"), "{e}");
}

#[test]
fn repeat_walks_any_depth_in_document_order_and_refuses_a_path_that_never_ends() {
    let view = compile(json!({"resource": "QuestionnaireResponse", "select": [
        {"repeat": ["item", "answer.item"], "column": [{"name": "id", "path": "linkId"}]}]}))
    .unwrap();
    // Each cell comes back as its Debug text, `Str("1.2")`: the text between the quotes.
    let ids = |resource: &str| -> Vec<String> {
        let text = |cell: &Cell<'_>| match cell {
            Cell::Str(debug) => debug.split('"').nth(1).unwrap_or_default().to_owned(),
            other => panic!("{other:?}"),
        };
        rows(&view, resource).unwrap().iter().map(|r| text(&r[0])).collect()
    };
    // Depth first, siblings in order, through both paths.
    let small = r#"{"resourceType":"QuestionnaireResponse","item":[
        {"linkId":"1","item":[{"linkId":"1.1"},{"linkId":"1.2","answer":[{"item":[{"linkId":"1.2.a"}]}]}]},
        {"linkId":"2"}]}"#;
    assert_eq!(ids(small), ["1", "1.1", "1.2", "1.2.a", "2"]);

    // Far deeper than a worker's stack could recurse (a 1 MB line).
    let depth = 50_000;
    let mut item = r#"{"linkId":"leaf"}"#.to_owned();
    for i in 0..depth {
        item = format!(r#"{{"linkId":"{i}","item":[{item}]}}"#);
    }
    let deep = format!(r#"{{"resourceType":"QuestionnaireResponse","item":[{item}]}}"#);
    assert_eq!(ids(&deep).len(), depth + 1);

    let forever = compile(json!({"resource": "Patient", "select": [
        {"repeat": ["$this"], "column": [{"name": "id", "path": "id"}]}]}))
    .unwrap();
    let err = rows(&forever, r#"{"resourceType":"Patient","id":"p"}"#).unwrap_err();
    assert!(err.contains("repeat reached more than"), "{err}");
}

#[test]
fn constants_outside_their_fhir_type_are_refused() {
    // Before: an integer constant took any 64-bit value and a temporal constant any text,
    // so `%since` of "last year" compared as text and a positiveInt of 0 was used as given.
    let view_with = |constant: serde_json::Value| {
        compile(
            json!({"resource": "Patient", "constant": [constant], "select": [{"column": [{"name": "id", "path": "id"}]}]}),
        )
    };
    for (constant, expected) in [
        (json!({"name": "n", "valuePositiveInt": 0}), "valuePositiveInt 0 is not a valid PositiveInt"),
        (json!({"name": "n", "valueUnsignedInt": -1}), "valueUnsignedInt -1 is not a valid UnsignedInt"),
        (json!({"name": "n", "valueInteger": 2147483648_i64}), "valueInteger 2147483648 is not a valid Integer"),
        (json!({"name": "n", "valuePositiveInt": 2147483648_i64}), "valuePositiveInt 2147483648 is not a valid"),
        (json!({"name": "d", "valueDate": "last year"}), "valueDate \"last year\" is not a valid Date"),
        (json!({"name": "d", "valueDate": "2023-02-29"}), "valueDate \"2023-02-29\" is not a valid Date"),
        (json!({"name": "d", "valueDateTime": "2023-01-01 10:00"}), "is not a valid DateTime"),
        (json!({"name": "d", "valueInstant": "yesterday"}), "is not a valid Instant"),
        (json!({"name": "t", "valueTime": "25:00:00"}), "valueTime \"25:00:00\" is not a valid Time"),
    ] {
        let e = view_with(constant.clone()).map(|_| ()).unwrap_err();
        assert!(e.contains(&format!("constant %{}", constant["name"].as_str().unwrap())), "{e}");
        assert!(e.contains(expected), "{constant}: {e}");
    }
    for constant in [
        json!({"name": "n", "valuePositiveInt": 1}),
        json!({"name": "n", "valueUnsignedInt": 0}),
        json!({"name": "n", "valueInteger": -2147483648_i64}),
        json!({"name": "n", "valueInteger64": "-9223372036854775808"}),
        json!({"name": "d", "valueDate": "2024-02-29"}),
        json!({"name": "d", "valueDate": "2024"}),
        json!({"name": "d", "valueDateTime": "2016-11-12"}),
        json!({"name": "d", "valueInstant": "2015-02-07T13:28:17.239+02:00"}),
        json!({"name": "t", "valueTime": "18:12:00"}),
    ] {
        view_with(constant.clone()).unwrap_or_else(|e| panic!("{constant}: {e}"));
    }
}

#[test]
fn column_names_differing_only_in_case_are_one_name() {
    // Both were kept, and `SELECT Gender FROM t` then read the column `gender` without a word.
    let e = compile(json!({"resource": "Patient", "select": [
        {"column": [{"name": "Gender", "path": "gender"}]},
        {"forEach": "name", "column": [{"name": "gender", "path": "family"}]}]}))
    .unwrap_err();
    assert_eq!(
        e,
        "select[1].column[0].name: column 'gender' is already defined as 'Gender' at select[0].column[0] (names ignore case in SQL)"
    );
}
