use std::sync::Arc;

use arrow::array::{Array, AsArray, DictionaryArray, ListArray, StringArray};
use arrow::datatypes::{DataType, Field, Int32Type, Schema};

use super::*;
use crate::terminology::index::IndexBuilder;
use crate::terminology::tables::read_csv;
use crate::terminology::{Binding, Systems, Terminology, UnmappedCounts};

const SYSTEMS: &[u8] = br#"{"systems": [
  {"canonical": "http://snomed.info/sct", "name": "SNOMED CT", "code_form": "plain", "aliases": ["urn:oid:2.16.840.1.113883.6.96", "SNOMED", "SCT"]},
  {"canonical": "http://hl7.org/fhir/sid/icd-10-cm", "name": "ICD-10-CM", "code_form": "icd10", "aliases": ["urn:oid:2.16.840.1.113883.6.90", "ICD10CM"]},
  {"canonical": "http://hl7.org/fhir/sid/ndc", "name": "NDC", "code_form": "ndc", "aliases": ["NDC"]},
  {"canonical": "http://www.nlm.nih.gov/research/umls/rxnorm", "name": "RxNorm", "code_form": "plain", "aliases": ["RXNORM"]}
]}"#;

const MAP: &str = "source_system,source_code,source_display,target_system,target_code,target_display,relationship,note
http://snomed.info/sct,44054006,Diabetes,http://hl7.org/fhir/sid/icd-10-cm,E11.9,Type 2 diabetes mellitus without complications,narrower,
http://snomed.info/sct,301011002,E. coli UTI,http://hl7.org/fhir/sid/icd-10-cm,N39.0,UTI,wider,
http://snomed.info/sct,301011002,E. coli UTI,http://hl7.org/fhir/sid/icd-10-cm,B96.20,E. coli,wider,
http://snomed.info/sct,160903007,Full-time employment,http://hl7.org/fhir/sid/icd-10-cm,,,unmatched,not a health problem
http://hl7.org/fhir/sid/ndc,00071-0155-23,Atorvastatin,http://www.nlm.nih.gov/research/umls/rxnorm,617310,atorvastatin 20 MG,equivalent,
";

fn binding(table: &str, target: &str, output: &str) -> Binding {
    Binding {
        table: table.into(),
        system: "code_system".into(),
        code: "code".into(),
        display: Some("code_display".into()),
        id: Some("id".into()),
        target: target.into(),
        output: output.into(),
    }
}

fn terminology() -> Arc<Terminology> {
    let mut systems = Systems::from_json(SYSTEMS, "systems.json").unwrap();
    let mut builder = IndexBuilder::default();
    builder.add_table("curated", &read_csv(MAP.as_bytes(), "map.csv").unwrap(), &mut systems);
    let bindings = vec![
        binding("condition", "http://hl7.org/fhir/sid/icd-10-cm", "icd10cm"),
        binding("medication_request", "RXNORM", "rxnorm"),
    ];
    Arc::new(Terminology { systems, index: builder.build(), bindings })
}

/// A batch like the condition view's: id, code_system (Utf8), code (dictionary), display.
fn batch(rows: &[(&str, Option<&str>, Option<&str>)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Utf8, true),
        Field::new("code_system", DataType::Utf8, true),
        Field::new("code", DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)), true),
        Field::new("code_display", DataType::Utf8, true),
    ]));
    let ids: StringArray = rows.iter().enumerate().map(|(i, _)| Some(format!("r{i}"))).collect();
    let systems: StringArray = rows.iter().map(|r| r.1).collect();
    let codes: DictionaryArray<Int32Type> = rows.iter().map(|r| r.2).collect();
    let displays: StringArray = rows.iter().map(|r| r.2.map(|c| format!("display of {c}"))).collect();
    RecordBatch::try_new(schema, vec![Arc::new(ids), Arc::new(systems), Arc::new(codes), Arc::new(displays)]).unwrap()
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Vec<Option<&'a str>> {
    let array = batch.column_by_name(name).unwrap().as_string::<i32>();
    (0..array.len()).map(|i| array.is_valid(i).then(|| array.value(i))).collect()
}

#[test]
fn every_outcome_of_the_condition_binding() {
    let terminology = terminology();
    let input = batch(&[
        ("canonical", Some("http://snomed.info/sct"), Some("44054006")),
        ("alias", Some("SNOMED"), Some("44054006")),
        ("oid", Some("urn:oid:2.16.840.1.113883.6.96"), Some("44054006")),
        ("standard dotted", Some("http://hl7.org/fhir/sid/icd-10-cm"), Some("e11.9")),
        ("standard by oid", Some("urn:oid:2.16.840.1.113883.6.90"), Some("I10")),
        ("two targets", Some("SCT"), Some("301011002")),
        ("unmatched", Some("http://snomed.info/sct"), Some("160903007")),
        ("unknown code", Some("http://snomed.info/sct"), Some("999")),
        ("unknown system", Some("http://example.org/local"), Some("X1")),
        ("no system", None, Some("X2")),
        ("no code", Some("http://snomed.info/sct"), None),
    ]);
    let stage = TableStage::for_table(&terminology, "condition", &input.schema()).unwrap().unwrap();
    let mut counts = UnmappedCounts::default();
    let out = stage.apply(&input, Some(&mut counts)).unwrap();
    assert_eq!(out.schema(), *stage.schema());
    assert_eq!(out.num_columns(), 4 + 6, "the original columns are kept");
    let icd = Some("http://hl7.org/fhir/sid/icd-10-cm");
    assert_eq!(column(&out, "icd10cm_system"), [icd, icd, icd, icd, icd, icd, None, None, None, None, None]);
    assert_eq!(
        column(&out, "icd10cm_code"),
        [
            Some("E119"),
            Some("E119"),
            Some("E119"),
            Some("E119"),
            Some("I10"),
            Some("N390"),
            None,
            None,
            None,
            None,
            None
        ]
    );
    assert_eq!(column(&out, "icd10cm_display")[0], Some("Type 2 diabetes mellitus without complications"));
    assert_eq!(column(&out, "icd10cm_display")[3], Some("display of e11.9"), "a standard code keeps its display");
    let source = column(&out, "icd10cm_source");
    assert_eq!(
        source,
        [
            Some("curated"),
            Some("curated"),
            Some("curated"),
            Some("standard"),
            Some("standard"),
            Some("curated"),
            Some("curated"),
            Some("unmapped"),
            Some("unmapped"),
            Some("unmapped"),
            None
        ]
    );
    let relationship = column(&out, "icd10cm_relationship");
    assert_eq!(
        relationship[..7],
        [
            Some("narrower"),
            Some("narrower"),
            Some("narrower"),
            Some("equal"),
            Some("equal"),
            Some("wider"),
            Some("unmatched")
        ]
    );
    assert_eq!(relationship[7], None);

    let lists = out.column_by_name("icd10cm_codes").unwrap().as_any().downcast_ref::<ListArray>().unwrap();
    let list = |i: usize| -> Vec<String> {
        let values = lists.value(i);
        values.as_string::<i32>().iter().map(|v| v.unwrap().to_owned()).collect()
    };
    assert_eq!(list(5), ["N390", "B9620"], "every target, primary first");
    assert_eq!(list(0), ["E119"]);
    assert!(lists.is_null(7) && lists.is_null(10));

    // Unmatched and unmapped rows are counted; the row without a code is not.
    assert_eq!((counts.total(), counts.distinct()), (4, 4));
    let dq = counts.to_batch(&terminology.bindings);
    let reasons = column(&dq, "reason");
    let codes = column(&dq, "code");
    let at = codes.iter().position(|c| *c == Some("160903007")).unwrap();
    assert_eq!(reasons[at], Some("not a health problem"));
    let at = codes.iter().position(|c| *c == Some("X2")).unwrap();
    assert_eq!(column(&dq, "system")[at], None);
    assert_eq!(column(&dq, "example_resource_id")[at], Some("r9"));
}

#[test]
fn hyphenated_ndc_10_maps_to_rxnorm() {
    let terminology = terminology();
    let input = batch(&[
        ("ndc-10 5-4-1 form", Some("NDC"), Some("00071-0155-23")),
        ("ndc-10 4-4-2 form", Some("http://hl7.org/fhir/sid/ndc"), Some("0071-0155-23")),
        ("ndc-11 digits", Some("http://hl7.org/fhir/sid/ndc"), Some("00071015523")),
        ("rxnorm", Some("http://www.nlm.nih.gov/research/umls/rxnorm"), Some("617310")),
    ]);
    let stage = TableStage::for_table(&terminology, "medication_request", &input.schema()).unwrap().unwrap();
    let out = stage.apply(&input, None).unwrap();
    assert_eq!(column(&out, "rxnorm_code"), [Some("617310"); 4]);
    assert_eq!(column(&out, "rxnorm_source"), [Some("curated"), Some("curated"), Some("curated"), Some("standard")]);
}

#[test]
fn tables_without_bindings_and_bad_bindings() {
    let terminology = terminology();
    let input = batch(&[]);
    assert!(TableStage::for_table(&terminology, "patient", &input.schema()).unwrap().is_none());

    let mut bad = terminology.bindings.clone();
    bad[0].code = "missing".into();
    let broken = Arc::new(Terminology {
        systems: terminology.systems.clone(),
        index: IndexBuilder::default().build(),
        bindings: bad,
    });
    let err = TableStage::for_table(&broken, "condition", &input.schema()).unwrap_err();
    assert!(err.contains("no column missing"), "{err}");

    let mut bad = terminology.bindings.clone();
    bad[0].code = "id".into();
    bad[0].output = "code".into();
    let mut schema: Vec<Field> = input.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
    schema.push(Field::new("code_codes", DataType::Utf8, true));
    let broken = Arc::new(Terminology {
        systems: terminology.systems.clone(),
        index: IndexBuilder::default().build(),
        bindings: bad,
    });
    let err = TableStage::for_table(&broken, "condition", &Arc::new(Schema::new(schema))).unwrap_err();
    assert!(err.contains("already has a column code_"), "{err}");
}
