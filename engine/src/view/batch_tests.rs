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
        b.append(Json::root(&simd_json::to_tape(&mut bytes).unwrap())).unwrap();
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
    assert!(set.append("Patient", Json::root(&simd_json::to_tape(&mut bad).unwrap())).is_err());
    let mut good = parse(r#"{"resourceType":"Patient","id":"b","name":[{"given":["X"]}]}"#);
    assert_eq!(set.append("Patient", Json::root(&simd_json::to_tape(&mut good).unwrap())).unwrap(), 2);
    let counts: Vec<usize> = set.builders_mut().iter().map(ViewBatchBuilder::len).collect();
    assert_eq!(counts, [1, 1], "the failed resource left no row in the first view");
}

/// Every line of a bundled sample file, parsed.
fn sample_lines(resource_type: &str) -> Vec<Vec<u8>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data/sample")
        .join(format!("{resource_type}.000.ndjson"));
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
}

#[test]
fn columns_beside_a_for_each_that_finds_nothing_are_not_evaluated() {
    // `given` fails on a patient with two given names, but only where there are rows.
    let v = view(
        r#"{"resource": "Patient", "select": [{"column": [{"name": "given", "path": "name.given"}]},
        {"forEach": "contact", "column": [{"name": "relationship", "path": "relationship.text"}]}]}"#,
    );
    let mut b = ViewBatchBuilder::new(v.clone());
    let two_names = r#""name":[{"given":["X","Y"]}]"#;
    let mut no_contact = parse(&format!(r#"{{"resourceType":"Patient","id":"a",{two_names}}}"#));
    let mut contacts = parse(&format!(
        r#"{{"resourceType":"Patient","id":"b",{two_names},"contact":[{{"relationship":[{{"text":"mother"}}]}}]}}"#
    ));
    let no_contact_tape = simd_json::to_tape(&mut no_contact).unwrap();
    let no_contact = Json::root(&no_contact_tape);
    assert_eq!(b.append(no_contact), Ok(0), "the straight route");
    assert!(v.rows(no_contact).unwrap().is_empty(), "the row algorithm");
    let contacts_tape = simd_json::to_tape(&mut contacts).unwrap();
    let contacts = Json::root(&contacts_tape);
    let error = b.append(contacts).unwrap_err();
    assert_eq!((error.column.as_deref(), error.resource.as_str()), (Some("given"), "Patient/b"));
    assert_eq!(v.rows(contacts).unwrap_err(), error);
    assert!(b.is_empty(), "the failed resource left no row");
}

#[test]
fn views_written_straight_to_builders_match_the_row_algorithm() {
    let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    let shipped = |file: &str| std::fs::read_to_string(schemas.join(file)).unwrap();
    let strict = r#"{"resource": "Observation", "name": "strict", "select": [{"column": [
        {"name": "id", "path": "id"},
        {"name": "codes", "path": "code.coding.code"},
        {"name": "when", "path": "effective.ofType(dateTime)", "type": "dateTime"},
        {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal", "tag": [{"name": "ansi/type", "value": "DECIMAL(6,1)"}]}]}]}"#;
    // One row per component, or a row of nulls for an Observation without any; `%rowIndex`
    // and a column that fails on some items.
    let strict_for_each = r#"{"resource": "Observation", "name": "strict_for_each", "select": [
        {"column": [{"name": "id", "path": "getResourceKey()"}, {"name": "n", "path": "component.count()"}]},
        {"forEachOrNull": "component", "column": [
            {"name": "i", "path": "%rowIndex", "type": "integer"},
            {"name": "code", "path": "code.coding.code"},
            {"name": "value", "path": "value.ofType(Quantity).value", "type": "decimal"}]}]}"#;
    let cases = [
        (shipped("patient.json"), "Patient"),
        (shipped("observation.json"), "Observation"),
        (strict.to_string(), "Observation"),
        (shipped("observation_component.json"), "Observation"),
        (shipped("explanation_of_benefit_item.json"), "ExplanationOfBenefit"),
        (shipped("explanation_of_benefit_diagnosis.json"), "ExplanationOfBenefit"),
        (strict_for_each.to_string(), "Observation"),
    ];
    for (json, resource_type) in cases {
        let view = view(&json);
        let direct_route = view.one_row_columns().is_some() || view.for_each_shape().is_some();
        assert!(direct_route, "{} takes a route straight to the builders", view.name());
        let mut direct = ViewBatchBuilder::new(view.clone());
        let mut general = ViewBatchBuilder::new(view.clone());
        let (mut ok, mut failed) = (0, 0);
        let mut lines = sample_lines(resource_type);
        // A resource of another type and a broken one, among the real ones.
        lines.insert(1, br#"{"resourceType":"Device","id":"d"}"#.to_vec());
        lines.insert(3, format!(r#"{{"resourceType":"{resource_type}","id":"x","effectiveDateTime":"soon","code":{{"coding":[{{"code":"a"}},{{"code":"b"}}]}},"birthDate":"1970-13"}}"#).into_bytes());
        // One that fails at its second item, after a first row was appended.
        lines.insert(5, format!(r#"{{"resourceType":"{resource_type}","id":"y","component":[{{"code":{{"coding":[{{"code":"a"}}]}}}},{{"code":{{"coding":[{{"code":"b"}},{{"code":"c"}}]}}}}],"item":[{{"sequence":1}},{{"sequence":"two"}}]}}"#).into_bytes());
        for line in lines {
            let text = String::from_utf8_lossy(&line).into_owned();
            let mut line = line;
            let tape = simd_json::to_tape(&mut line).unwrap();
            let doc = Json::root(&tape);
            let fast = direct.append(doc);
            let before = general.rows;
            let slow = append_rows(&view, &mut general.columns, doc);
            match &slow {
                Ok(rows) => general.rows += rows,
                Err(_) => general.truncate(before),
            }
            assert_eq!(fast, slow, "{}: {text}", view.name());
            if fast.is_ok() {
                ok += 1;
            } else {
                failed += 1;
            }
        }
        assert!(ok > 10, "{}: {ok} resources evaluated", view.name());
        assert_eq!(direct.finish(), general.finish(), "{}", view.name());
        if view.name().starts_with("strict") {
            assert!(failed > 0, "{} rejects some resources", view.name());
        }
    }
}

#[test]
fn a_root_element_that_is_no_choice_does_not_take_a_typed_sibling() {
    // The root prefetch decides the fallback as the walk does (`subscriber` is no choice).
    let v = view(
        r#"{"resource": "Coverage", "select": [{"column": [
        {"name": "subscriber", "path": "subscriber.reference"},
        {"name": "subscriber_json", "path": "subscriber", "type": "Reference"},
        {"name": "subscriber_id", "path": "subscriberId"}]}]}"#,
    );
    let mut b = ViewBatchBuilder::new(v);
    let mut bytes = parse(r#"{"resourceType":"Coverage","id":"c","subscriberId":"S-1"}"#);
    b.append(Json::root(&simd_json::to_tape(&mut bytes).unwrap())).unwrap();
    let batch = b.finish();
    assert!(batch.column(0).is_null(0));
    assert!(batch.column(1).is_null(0));
    assert_eq!(batch.column(2).as_string::<i32>().value(0), "S-1");
}
