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

#[test]
fn a_urn_reference_has_the_type_its_type_element_declares() {
    // `urn:uuid:` says nothing of the target's type; `Reference.type` does, and a Group's
    // key must not turn up as a patient's.
    let obs = |reference: &str| {
        format!(r#"{{"resourceType":"Observation","id":"o","status":"final","subject":{reference}}}"#)
    };
    let typed = obs(r#"{"reference":"urn:uuid:g1","type":"Group"}"#);
    assert!(run(&typed, "subject.getReferenceKey(Patient)").unwrap().is_empty());
    assert_eq!(run(&typed, "subject.getReferenceKey(Group)").unwrap(), ["g1"]);
    assert_eq!(run(&typed, "subject.getReferenceKey()").unwrap(), ["g1"]);
    let url = obs(r#"{"reference":"urn:uuid:g1","type":"http://hl7.org/fhir/StructureDefinition/Group"}"#);
    assert!(run(&url, "subject.getReferenceKey(Patient)").unwrap().is_empty());
    assert_eq!(run(&url, "subject.getReferenceKey(Group)").unwrap(), ["g1"]);
    // Without a `type` it may be anything, as before.
    assert_eq!(run(&obs(r#"{"reference":"urn:uuid:g1"}"#), "subject.getReferenceKey(Patient)").unwrap(), ["g1"]);
    // The fast single-value route agrees (a column of one reference).
    assert!(run(&typed, "subject.getReferenceKey(Patient).first()").unwrap().is_empty());
}

#[test]
fn an_unknown_function_is_named_with_the_closest_known_one() {
    for (expr, message) in [
        (
            "name.family.first().startswith('S')",
            "unknown or unsupported function startswith(); did you mean startsWith()?",
        ),
        ("name.exist()", "did you mean exists()?"),
        ("link.other.getReferencekey()", "did you mean getReferenceKey()?"),
        ("birthDate.tostring()", "did you mean toString()?"),
    ] {
        let err = run(PATIENT, expr).unwrap_err();
        assert!(err.contains(message), "{expr}: {err}");
    }
    let err = run(PATIENT, "name.family.matches('^S')").unwrap_err();
    assert!(err.ends_with("unknown or unsupported function matches()"), "{err}");
}

#[test]
fn type_names_are_checked_when_the_path_is_compiled() {
    // An unknown type matches nothing: `ofType(datetime)` made a column that was always
    // empty, and `getReferenceKey(Organisation)` one that never found a key.
    for (expr, message) in [
        ("deceased.ofType(datetime)", "ofType(): 'datetime' is not a type; did you mean 'dateTime'?"),
        ("deceased.ofType(Codng)", "ofType(): 'Codng' is not a type; did you mean 'Coding'?"),
        ("deceased is datetime", "is: 'datetime' is not a type; did you mean 'dateTime'?"),
        ("(deceased as Bolean)", "as: 'Bolean' is not a type; did you mean 'boolean'?"),
        ("deceased.is(FHIR.booleen)", "is(): 'booleen' is not a type; did you mean 'boolean'?"),
        (
            "link.other.getReferenceKey(Pateint)",
            "getReferenceKey(): 'Pateint' is not a FHIR R4 resource type; did you mean 'Patient'?",
        ),
        ("link.other.getReferenceKey(Quantity)", "getReferenceKey(): 'Quantity' is not a FHIR R4 resource type"),
    ] {
        let err = run(PATIENT, expr).unwrap_err();
        assert!(err.contains(message), "{expr}: {err}");
    }
    for ok in [
        "deceased.ofType(boolean)",
        "deceased.ofType(System.Boolean)",
        "deceased.ofType(FHIR.boolean)",
        "deceased is DateTime",
        "contained.ofType(Medication)",
        "contained.ofType(Resource)",
        "extension.value.ofType(Coding)",
        "link.other.getReferenceKey(Patient)",
    ] {
        assert!(run(PATIENT, ok).is_ok(), "{ok}");
    }
}

const CONCEPT: &str = r#"{"resourceType":"Observation","id":"o1","status":"final","valueCodeableConcept":{"text":"Positive"},
  "component":[{"valueString":"2020-01-01"},{"valueQuantity":{"value":5,"unit":"mg"}}]}"#;

#[test]
fn is_and_as_agree_with_of_type_on_choice_elements() {
    assert_eq!(run(CONCEPT, "value is CodeableConcept").unwrap(), ["true"]);
    assert_eq!(run(CONCEPT, "value is Quantity").unwrap(), ["false"]);
    assert_eq!(run(CONCEPT, "value is Period").unwrap(), ["false"]);
    assert_eq!(run(CONCEPT, "value.is(Quantity)").unwrap(), ["false"]);
    assert_eq!(run(CONCEPT, "value.ofType(Quantity).exists()").unwrap(), ["false"]);
    assert!(run(CONCEPT, "(value as Quantity).text").unwrap().is_empty());
    assert!(run(CONCEPT, "value.as(Quantity).text").unwrap().is_empty());
    assert_eq!(run(CONCEPT, "(value as CodeableConcept).text").unwrap(), ["Positive"]);
    assert_eq!(run(CONCEPT, "component[0].value is date").unwrap(), ["false"]);
    assert_eq!(run(CONCEPT, "component[0].value is string").unwrap(), ["true"]);
    assert!(run(CONCEPT, "component[0].value.ofType(date)").unwrap().is_empty());
    assert_eq!(run(CONCEPT, "component[1].value is Quantity").unwrap(), ["true"]);
    // Unchanged: an absent value is empty, several are an error, a resource type is a type.
    assert!(run(CONCEPT, "effective is dateTime").unwrap().is_empty());
    assert!(run(CONCEPT, "component.value is Quantity").unwrap_err().contains("single value"));
    assert_eq!(run(CONCEPT, "Observation is Observation").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "birthDate is date").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "deceased is boolean").unwrap(), ["true"]);
}

#[test]
fn equivalence_follows_n1() {
    assert_eq!(run(PATIENT, "(1 | 2) ~ (2 | 1)").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "(1 | 2) ~ (2 | 3)").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "(1 | 2) !~ (2 | 1)").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "{} ~ {}").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "'a\tb' ~ 'a b'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "' a \n\n b ' ~ 'A B'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "'ab' ~ 'a b'").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "'É' ~ 'é'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "1.2 ~ 1.24").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "1.2 ~ 1.25").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "1.20 ~ 1.2").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "-1.2 ~ -1.15").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "1 ~ 1.0").unwrap(), ["true"]);
    let names = r#"{"resourceType":"Patient","name":[{"family":"Doe","given":["A","b"]},{"given":["B","a"],"family":"doe"},{"family":"Roe"}]}"#;
    assert_eq!(run(names, "name[0] ~ name[1]").unwrap(), ["true"]);
    assert_eq!(run(names, "name[0] ~ name[2]").unwrap(), ["false"]);
    assert_eq!(run(names, "name[0] = name[1]").unwrap(), ["false"]);
}

#[test]
fn equality_of_collections_is_false_when_any_pair_differs() {
    assert_eq!(run(PATIENT, "(@2012 | 1) = (@2012-01 | 2)").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "(@2012 | 1) != (@2012-01 | 2)").unwrap(), ["true"]);
    assert!(run(PATIENT, "(@2012 | 1) = (@2012-01 | 1)").unwrap().is_empty());
    assert_eq!(run(PATIENT, "(1 | 2) = (1 | 2)").unwrap(), ["true"]);
}

#[test]
fn conversions_follow_n1() {
    assert_eq!(run(PATIENT, "true.toInteger()").unwrap(), ["1"]);
    assert_eq!(run(PATIENT, "false.toInteger()").unwrap(), ["0"]);
    assert_eq!(run(PATIENT, "active.toInteger()").unwrap(), ["1"]);
    assert_eq!(run(PATIENT, "true.toDecimal()").unwrap(), ["1.0"]);
    assert_eq!(run(PATIENT, "false.toDecimal() = 0").unwrap(), ["true"]);
    assert!(run(PATIENT, "'true'.toInteger()").unwrap().is_empty());
    assert_eq!(run(PATIENT, "1 is Decimal").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "1 is Integer").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "1.0 is Decimal").unwrap(), ["true"]);
    assert!(run(PATIENT, "1.ofType(Decimal)").unwrap().is_empty());
    assert!(run(PATIENT, "(1 as Decimal)").unwrap().is_empty());
    assert_eq!(run(PATIENT, "1.ofType(Integer)").unwrap(), ["1"]);
    // A FHIR decimal may be written without a fraction in JSON: still a decimal.
    assert_eq!(run(CONCEPT, "component.value.ofType(Quantity).value.ofType(decimal)").unwrap(), ["5"]);
    assert_eq!(run(CONCEPT, "component[1].value.ofType(Quantity).value is decimal").unwrap(), ["true"]);
    assert!(run(PATIENT, "name.first().toString()").unwrap().is_empty());
    assert_eq!(run(PATIENT, "name.first().family.toString()").unwrap(), ["Smith"]);
    assert_eq!(run(PATIENT, "birthDate.toString()").unwrap(), ["1970-06"]);
    assert_eq!(run(PATIENT, "2.toString()").unwrap(), ["2"]);
}

#[test]
fn string_literals_compare_as_strings_and_document_dates_as_dates() {
    assert_eq!(run(PATIENT, "'2020-01-01T00:00:00Z' = '2020-01-01T00:00:00+00:00'").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "'2020-01' = '2020-01-01'").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "'2020-01' < '2020-01-01'").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "'2020-01-01' is date").unwrap(), ["false"]);
    assert_eq!(run(PATIENT, "'2020-01-01' is string").unwrap(), ["true"]);
    // Typed literals, and document dates against them or each other, are still dates.
    assert_eq!(run(PATIENT, "@2020-01-01T00:00:00Z = @2020-01-01T00:00:00+00:00").unwrap(), ["true"]);
    assert!(run(PATIENT, "@2020-01 = @2020-01-01").unwrap().is_empty());
    let obs = r#"{"resourceType":"Observation","effectiveDateTime":"2021-03-04T10:00:00+02:00",
      "effectivePeriod":{"start":"2020-01-01T00:00:00Z","end":"2020-01-01T01:00:00+01:00"},"issued":"2021-03-04T08:00:00Z"}"#;
    assert_eq!(run(obs, "effectiveDateTime > @2020").unwrap(), ["true"]);
    assert_eq!(run(obs, "effectiveDateTime = @2021-03-04T08:00:00Z").unwrap(), ["true"]);
    assert_eq!(run(obs, "effective.ofType(dateTime) = issued").unwrap(), ["true"]);
    assert_eq!(run(obs, "effectiveDateTime = issued").unwrap(), ["true"]);
    assert_eq!(run(obs, "effectivePeriod.start = effectivePeriod.end").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "birthDate = @1970-06").unwrap(), ["true"]);
    assert_eq!(run(PATIENT, "birthDate > @1970-01-01").unwrap(), ["true"]);
    assert!(run(PATIENT, "birthDate > @1970-06-15").unwrap().is_empty());
}

#[test]
fn unsupported_iteration_variables_are_named_as_written() {
    let err = run(PATIENT, "name.given.where($index = 0)").unwrap_err();
    assert!(err.contains("$index is not supported (of the iteration variables, only $this is)"), "{err}");
    let err = run(PATIENT, "name.select($total)").unwrap_err();
    assert!(err.contains("$total is not supported"), "{err}");
}

#[test]
fn only_choice_elements_fall_back_to_typed_keys() {
    // Coverage has `subscriber` (a Reference) beside `subscriberId` (a string): when the
    // subscriber is absent, `subscriber` is empty, not the id.
    let coverage = r#"{"resourceType":"Coverage","subscriberId":"S-1","payor":[{"display":"P"}],
      "costToBeneficiary":[{"valueMoney":{"value":10}}]}"#;
    assert!(run(coverage, "subscriber").unwrap().is_empty());
    assert!(run(coverage, "Coverage.subscriber.reference").unwrap().is_empty());
    assert_eq!(run(coverage, "subscriberId").unwrap(), ["S-1"]);
    assert_eq!(run(coverage, "costToBeneficiary.value.value").unwrap(), ["10"]);
    let eob = r#"{"resourceType":"ExplanationOfBenefit","preAuthRefPeriod":[{"start":"2020-01-01"}]}"#;
    assert!(run(eob, "preAuthRef").unwrap().is_empty());
    assert_eq!(run(r#"{"onsetDateTime":"2020-01-01"}"#, "onset").unwrap(), ["2020-01-01"]);
}

#[test]
fn equivalence_of_objects_nested_too_deep_is_an_error_not_a_crash() {
    let deep = |depth: usize| format!(r#"{{"a":{}1{}}}"#, r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let resource = format!(r#"{{"resourceType":"Basic","x":{},"y":{}}}"#, deep(100_000), deep(100_000));
    let err = run(&resource, "x ~ y").unwrap_err();
    assert!(err.contains("nested at most 256 levels"), "{err}");
    let shallow = format!(r#"{{"resourceType":"Basic","x":{},"y":{}}}"#, deep(100), deep(100));
    assert_eq!(run(&shallow, "x ~ y").unwrap(), ["true"]);
}
