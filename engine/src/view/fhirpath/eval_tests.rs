use super::*;
use crate::view::fhirpath::{CompileEnv, Expression};

/// Evaluates `expr` over `resource` and renders the result as text items.
fn run(resource: &str, expr: &str) -> Result<Vec<String>, String> {
    let mut bytes = resource.as_bytes().to_vec();
    let tape = simd_json::to_tape(&mut bytes).unwrap();
    let doc = Json::root(&tape);
    let compiled = Expression::compile(expr, &CompileEnv::default()).map_err(|e| e.0)?;
    let ctx = EvalContext::new(doc, 3);
    let out = compiled.evaluate(&ctx, &[Item::Node(doc)]).map_err(|e| e.0)?;
    Ok(out.iter().map(|i| i.to_text().into_owned()).collect())
}

const PATIENT: &str = r#"{"resourceType":"Patient","id":"p1","active":true,
  "name":[{"use":"official","family":"Smith","given":["Ann","Bea"]},{"use":"usual","family":"Jones"}],
  "deceasedBoolean":false,"birthDate":"1970-06",
  "extension":[{"url":"http://x/race","extension":[{"url":"ombCategory","valueCoding":{"code":"2106-3"}}]}],
  "link":[{"other":{"reference":"Patient/p1"}},{"other":{"reference":"http://srv/fhir/Patient/p9/_history/2"}}]}"#;

#[test]
fn navigation_flattens_and_indexes() {
    assert_eq!(run(PATIENT, "name.family").unwrap(), ["Smith", "Jones"]);
    assert_eq!(run(PATIENT, "name.given").unwrap(), ["Ann", "Bea"]);
    assert_eq!(run(PATIENT, "name[1].family").unwrap(), ["Jones"]);
    assert!(run(PATIENT, "name[5].family").unwrap().is_empty());
    assert_eq!(run(PATIENT, "Patient.name.first().family").unwrap(), ["Smith"]);
    assert_eq!(run(PATIENT, "name.where(use = 'usual').family").unwrap(), ["Jones"]);
    assert_eq!(run(PATIENT, "%rowIndex").unwrap(), ["3"]);
}

#[test]
fn choice_elements_and_of_type() {
    assert_eq!(run(PATIENT, "deceased").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "deceased.ofType(boolean)").unwrap(), ["false"]);
    assert!(run(PATIENT, "deceased.ofType(dateTime)").unwrap().is_empty());
    assert_eq!(run(PATIENT, "name.given.ofType(string).count()").unwrap(), ["2"]);
    assert_eq!(
        run(PATIENT, "extension('http://x/race').extension('ombCategory').value.ofType(Coding).code").unwrap(),
        ["2106-3"]
    );
}

#[test]
fn logic_is_three_valued() {
    assert_eq!(run(PATIENT, "active and name.exists()").unwrap(), ["true"]);
    assert!(run(PATIENT, "active and multipleBirth").unwrap().is_empty());
    assert_eq!(run(PATIENT, "multipleBirth or active").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "(gender = 'male').not()").unwrap(), Vec::<String>::new());
    assert_eq!(run(PATIENT, "active.not()").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "false implies multipleBirth").unwrap(), ["true"]);
}

#[test]
fn equality_and_ordering() {
    assert!(run(PATIENT, "name.family = 'Smith'").unwrap() == ["false"], "two items vs one are not equal");
    assert_eq!(run(PATIENT, "name.family.first() = 'Smith'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "name.family.first() != 'Smith'").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "name.family.first() ~ 'smith'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "birthDate < @1971").unwrap(), ["true"]);
    assert!(run(PATIENT, "birthDate = @1970-06-01").unwrap().is_empty(), "different precision is empty");
    assert!(run(PATIENT, "name.family > 'A'").unwrap_err().contains("single value"));
    assert_eq!(run(PATIENT, "'Jones' in name.family").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "name.family contains 'Kim'").unwrap(), ["false"]);
}

#[test]
fn arithmetic_is_exact() {
    assert_eq!(run(PATIENT, "2 + 3").unwrap(), ["5"]);
    assert_eq!(run(PATIENT, "3 / 2").unwrap(), ["1.5"]);
    assert_eq!(run(PATIENT, "0.1 + 0.2 = 0.3").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "7 div 2").unwrap(), ["3"]);
    assert_eq!(run(PATIENT, "7 mod 2").unwrap(), ["1"]);
    assert!(run(PATIENT, "1 / 0").unwrap().is_empty());
    assert_eq!(run(PATIENT, "-(2 * 3)").unwrap(), ["-6"]);
    assert_eq!(run(PATIENT, "'a' + 'b' & {}").unwrap(), ["ab"]);
}

#[test]
fn strings_join_and_keys() {
    assert_eq!(run(PATIENT, "name.given.join(', ')").unwrap(), ["Ann, Bea"]);
    assert!(run(PATIENT, "name.prefix.join(',')").unwrap().is_empty());
    assert_eq!(run(PATIENT, "getResourceKey()").unwrap(), ["p1"]);
    assert_eq!(run(PATIENT, "link.other.getReferenceKey(Patient)").unwrap(), ["p1", "p9"]);
    assert!(run(PATIENT, "link.other.getReferenceKey(Observation)").unwrap().is_empty());
    assert_eq!(run(PATIENT, "name.family.first().substring(1, 3).upper()").unwrap(), ["MIT"]);
    assert_eq!(run(PATIENT, "iif(active, 'yes', 'no')").unwrap(), ["yes"]);
}

#[test]
fn boundaries() {
    assert_eq!(run(PATIENT, "birthDate.lowBoundary()").unwrap(), ["1970-06-01"]);
    assert_eq!(run(PATIENT, "birthDate.highBoundary()").unwrap(), ["1970-06-30"]);
    let obs = r#"{"resourceType":"Observation","valueQuantity":{"value":1.0},"effectiveDateTime":"2010-10-10"}"#;
    assert_eq!(run(obs, "value.ofType(Quantity).value.lowBoundary() = 0.95").unwrap(), ["true"]);
    assert_eq!(run(obs, "effective.ofType(dateTime).lowBoundary()").unwrap(), ["2010-10-10T00:00:00.000+14:00"]);
    assert_eq!(run(obs, "effective.lowBoundary()").unwrap(), ["2010-10-10T00:00:00.000+14:00"]);
}

#[test]
fn reference_keys() {
    assert_eq!(reference_key("Patient/123", None), Some("123"));
    assert_eq!(reference_key("Patient/123", Some("Patient")), Some("123"));
    assert_eq!(reference_key("Patient/123", Some("Group")), None);
    assert_eq!(reference_key("https://x/fhir/Encounter/e1/_history/3", Some("Encounter")), Some("e1"));
    assert_eq!(reference_key("urn:uuid:abc", Some("Patient")), Some("abc"));
    assert_eq!(reference_key("#contained", None), None);
    // Forms that look like `Type/id` to the fast path but are not, taken the general way.
    assert_eq!(reference_key("Patient/123?x=1", Some("Patient")), Some("123"));
    assert_eq!(reference_key("Patient/p1/_history/2", Some("Patient")), Some("p1"));
    assert_eq!(reference_key("Patient/", Some("Patient")), None);
    assert_eq!(reference_key("PatientX/1", Some("Patient")), None);
    assert_eq!(reference_key("Patient/Group/1", Some("Patient")), None);
}
