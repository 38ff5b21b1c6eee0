//! Bad input never crashes the view core: arbitrary resources, built from the element names
//! the shipped views read (so evaluation goes deep, not just to "key missing"), either
//! produce rows or a row error naming the resource and view — never a panic — and a failed
//! resource leaves no rows behind.

use std::path::PathBuf;
use std::sync::Arc;

use fhirhouse::view::{CompiledView, ViewSet};
use proptest::prelude::*;
use serde_json::{Map, Value};

const KEYS: &[&str] = &[
    "id",
    "status",
    "code",
    "coding",
    "system",
    "display",
    "text",
    "value",
    "valueQuantity",
    "valueString",
    "valueBoolean",
    "valueCodeableConcept",
    "effectiveDateTime",
    "effectivePeriod",
    "start",
    "issued",
    "subject",
    "reference",
    "encounter",
    "category",
    "component",
    "interpretation",
    "name",
    "use",
    "family",
    "given",
    "birthDate",
    "gender",
    "extension",
    "url",
    "valueCoding",
    "valueCode",
    "address",
    "line",
    "meta",
    "lastUpdated",
    "deceasedBoolean",
    "deceasedDateTime",
    "identifier",
    "type",
    "communication",
    "language",
    "maritalStatus",
];

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        (-1e12f64..1e12).prop_map(Value::from),
        prop::sample::select(vec![
            "",
            "final",
            "official",
            "http://loinc.org",
            "Patient/p1",
            "urn:uuid:x",
            "Encounter/",
            "/",
            "2020",
            "2020-02-30",
            "2015-02-07T13:28:17.239+02:00",
            "2020-01-01T25:00:00Z",
            "1970-06",
            "MR",
            "é✓",
            "1e400",
        ])
        .prop_map(Value::from),
    ]
}

fn json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn resource() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec!["Patient", "Observation"]),
        prop::collection::vec((prop::sample::select(KEYS), json()), 0..12),
    )
        .prop_map(|(resource_type, entries)| {
            let mut obj: Map<String, Value> = entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            obj.insert("resourceType".into(), Value::from(resource_type));
            Value::Object(obj)
        })
}

fn shipped_views() -> Vec<Arc<CompiledView>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../schemas");
    ["patient.json", "observation.json"]
        .iter()
        .map(|f| Arc::new(CompiledView::from_json_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_resources_give_rows_or_named_errors(resource in resource()) {
        let mut views = ViewSet::new(shipped_views());
        let resource_type = resource["resourceType"].as_str().unwrap().to_string();
        let mut bytes = serde_json::to_vec(&resource).unwrap();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        match views.append(&resource_type, fhirhouse::view::Json::root(&tape)) {
            Ok(rows) => prop_assert_eq!(rows, 1, "one row per resource in the shipped views"),
            Err(e) => {
                prop_assert!(e.resource.starts_with(&format!("{resource_type}/")), "{}", e);
                let buffered: usize = views.builders_mut().iter().map(|b| b.len()).sum();
                prop_assert_eq!(buffered, 0, "a failed resource leaves no rows");
            }
        }
        for builder in views.builders_mut() {
            let batch = builder.finish();
            prop_assert!(batch.num_rows() <= 1);
        }
    }
}
