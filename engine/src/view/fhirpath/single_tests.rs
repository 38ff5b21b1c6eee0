use super::*;
use crate::view::fhirpath::compile::bind_root;
use crate::view::fhirpath::navigate::{RootIndex, RootSlots};
use crate::view::fhirpath::CompileEnv;
use crate::view::json::Json;

const DOCS: &[&str] = &[
    r#"{"resourceType":"Observation","id":"o1","status":"final",
       "code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Height"}],"text":"Height"},
       "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2011-02-02T16:30:49-05:00",
       "valueQuantity":{"value":181.2,"unit":"cm"},"component":[{"code":{"text":"a"}},{"code":{"text":"b"}},{"code":{"text":"c"}}]}"#,
    r#"{"resourceType":"Observation","id":"o2","code":{"coding":[{"system":"s1","code":"a"},{"code":"b"},{"system":"s3","code":"c"}]},
       "effectivePeriod":{"start":"2012-01-01T00:00:00Z"},"valueString":"x","category":[{"coding":[{"code":"x"}]},{"coding":[{"code":"y"}]}]}"#,
    r#"{"resourceType":"Observation","code":{"coding":[null,{"system":"s","code":"c"}]},"value":"plain",
       "effectiveDateTime":"2020","effectiveInstant":"2020-01-01T00:00:00Z","subject":{"reference":"urn:uuid:u1"}}"#,
    r#"{"resourceType":"Patient","id":"p","name":[{"use":"official","family":"A","given":["x","y"]},{"family":"A"}],
       "deceasedBoolean":true,"extension":[{"url":"u","valueCode":"F"},{"url":"u","valueCode":"M"}]}"#,
];

const EXPRESSIONS: &[&str] = &[
    "getResourceKey()",
    "subject.getReferenceKey(Patient)",
    "subject.getReferenceKey(Encounter)",
    "status",
    "code.coding.first().system",
    "code.coding.code",
    "code.coding.code.first()",
    "category.coding.code.first()",
    "category.coding.code",
    "code.coding.where(system.exists() and code.exists()).select(system & '|' & code)",
    "code.coding.select(system & '|' & code)",
    "code.coding.where(system = 's1' or code = 'c').code",
    "effective.ofType(dateTime) | effective.ofType(Period).start | effective.ofType(instant)",
    "name.family | name.family",
    "name.family | {}",
    "{} | status",
    "'a' | 'a'",
    "value.ofType(Quantity).value",
    "value.ofType(string)",
    "value",
    "component.count()",
    "subject.count()",
    "{}.count()",
    "subject.getReferenceKey()",
    "code.coding.getReferenceKey()",
    "code.getResourceKey()",
    "%resource.getResourceKey()",
    "component.code.text",
    "component[1].code.text",
    "iif(deceased.ofType(boolean).exists(), deceased.ofType(boolean), false)",
    "(name.where(use = 'official') | name).first().given.join(' ')",
    "extension('u').value.ofType(code).first()",
    "extension('u').value",
    "name.given & 'x'",
    "$this.id",
    "%rowIndex + 1",
    "%resource.id",
    "Observation.code.text",
    "name.family > 'B'",
    "code.coding.where(system.exists() xor code.exists()).code",
    "name.where(given.empty() or family.exists()).family",
    "status.exists() implies code.coding.code.exists()",
    "name.given.exists() and name.family.empty()",
    "code.coding.where(code).code",
    "code.coding.first().system & '|' & code.coding.first().code & '|' & status",
    "status & {} & status",
    "name.given.first() & (name.family | name.family).first()",
    "name.given & 'x' & status",
    "code.coding.exists(system = 's1' and code = 'a')",
    "code.coding.exists(code = 'x' or system.empty())",
    "category.exists(coding.code = 'y')",
    "code.coding.exists(code)",
    "name.where(given = 'x').family",
    "name.where(family != 'A').given",
    "code.coding.where(system = {}).code",
    "code.coding.where(code = 'c' and system != 's3').system",
    "effective.ofType(dateTime) = @2011-02-02T16:30:49-05:00",
    "(code | status).coding.first().system",
    "(value | effective).start",
    "value is Quantity",
    "value is string",
    "value.is(CodeableConcept)",
    "(value as Quantity).value",
    "value.as(string)",
    "effective is dateTime",
    "code.coding ~ code.coding.tail() | code.coding.first()",
    "name[0] ~ name[1]",
    "'2020-01' = '2020-01-01'",
];

fn render(result: Result<Vec<Item<'_>>, EvalError>) -> Result<Vec<String>, String> {
    result.map(|items| items.iter().map(|i| format!("{}:{}", i.kind_name(), i.to_text())).collect()).map_err(|e| e.0)
}

#[test]
fn evaluation_at_one_focus_agrees_with_the_general_evaluator() {
    for doc in DOCS {
        let mut bytes = doc.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let doc = Json::root(&tape);
        let focus = Item::Node(doc);
        for source in EXPRESSIONS {
            let plain = Expression::compile(source, &CompileEnv::default()).unwrap();
            // Also bound to a root prefetch, as the view's top-level columns are.
            let mut bound = plain.clone();
            let mut index = RootIndex::default();
            bind_root(&mut bound.op, &mut index);
            let mut slots = RootSlots::new();
            index.prefetch(doc, &mut slots);
            for (expr, root) in [(&plain, &[][..]), (&bound, &slots[..])] {
                let ctx = EvalContext { resource: doc, row_index: 2, root };
                let general = render(expr.evaluate(&ctx, std::slice::from_ref(&focus)).map(|c| c.to_vec()));
                let single = render(expr.evaluate_at(&ctx, &focus).map(|f| f.as_slice().to_vec()));
                assert_eq!(single, general, "{source} over {doc:?}");
                if let Some(found) = expr.single_item_at(&ctx, &focus) {
                    let direct = render(Ok(found.into_iter().collect()));
                    assert_eq!(direct, general, "{source} over {doc:?}, single item");
                }
            }
        }
    }
}

#[test]
fn is_on_a_root_choice_element_reads_its_type_from_the_key() {
    // `value is T` bound to the root prefetch, as a top-level column is.
    let mut bytes = DOCS[0].as_bytes().to_vec();
    let tape = simd_json::to_tape(&mut bytes).unwrap();
    let doc = Json::root(&tape);
    for (source, expected) in
        [("value is Quantity", "true"), ("value is Period", "false"), ("value is string", "false")]
    {
        let mut expr = Expression::compile(source, &CompileEnv::default()).unwrap();
        let mut index = RootIndex::default();
        bind_root(&mut expr.op, &mut index);
        let mut slots = RootSlots::new();
        index.prefetch(doc, &mut slots);
        let ctx = EvalContext { resource: doc, row_index: 0, root: &slots };
        let found = expr.evaluate_at(&ctx, &Item::Node(doc)).unwrap();
        let got: Vec<String> = found.as_slice().iter().map(|i| i.to_text().into_owned()).collect();
        assert_eq!(got, [expected], "{source}");
    }
}
