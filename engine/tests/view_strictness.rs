//! A value of the wrong JSON type or out of its FHIR type's range is a row error, not a
//! silently converted value, and a leap second stays in its own year: through a whole load,
//! dead letters and partitions included.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// A view over ImagingStudy with a column of every FHIR integer type, a decimal and a
/// boolean (the types that already refused strings) and a year-partitioned dateTime.
const VIEW: &str = r#"{"resourceType": "ViewDefinition", "resource": "ImagingStudy", "name": "strict_study",
  "status": "active", "select": [{"column": [
    {"name": "id", "path": "id", "type": "id"},
    {"name": "series", "path": "numberOfSeries", "type": "unsignedInt"},
    {"name": "instances", "path": "numberOfInstances", "type": "integer"},
    {"name": "position", "path": "extension.where(url = 'pos').value", "type": "positiveInt"},
    {"name": "big", "path": "extension.where(url = 'big').value", "type": "integer64"},
    {"name": "weight", "path": "extension.where(url = 'dec').value", "type": "decimal"},
    {"name": "flag", "path": "extension.where(url = 'bool').value", "type": "boolean"},
    {"name": "started", "path": "started", "type": "dateTime",
     "tag": [{"name": "fhirhouse/partition", "value": "year"}]}
  ]}]}"#;

/// (id, line, the words the dead letter's detail must hold, or None for a loaded line).
fn corpus() -> Vec<(&'static str, String, Option<&'static str>)> {
    let line = |id: &str, rest: &str| format!(r#"{{"resourceType":"ImagingStudy","id":"{id}"{rest}}}"#);
    let ext = |url: &str, value: &str| format!(r#","extension":[{{"url":"{url}",{value}}}]"#);
    vec![
        ("ok", line("ok", r#","numberOfSeries":0,"numberOfInstances":5,"started":"2016-12-31T23:59:59Z""#), None),
        ("str-int", line("str-int", r#","numberOfInstances":"3""#), Some("expected an integer, found string '3'")),
        ("str-uint", line("str-uint", r#","numberOfSeries":"2""#), Some("expected an integer, found string '2'")),
        ("neg-uint", line("neg-uint", r#","numberOfSeries":-1"#), Some("-1 is not a valid unsignedInt")),
        ("zero-pos", line("zero-pos", &ext("pos", r#""valuePositiveInt":0"#)), Some("0 is not a valid positiveInt")),
        ("one-pos", line("one-pos", &ext("pos", r#""valuePositiveInt":1"#)), None),
        ("str-dec", line("str-dec", &ext("dec", r#""valueDecimal":"1.5""#)), Some("expected a decimal, found string")),
        (
            "str-bool",
            line("str-bool", &ext("bool", r#""valueBoolean":"true""#)),
            Some("expected a boolean, found string"),
        ),
        // R5 writes integer64 as a JSON string (R4 has none): an integer64 column takes that
        // form, in FHIR's lexical form only (no leading zeros), as well as a number.
        ("big-text", line("big-text", &ext("big", r#""valueInteger64":"9007199254740993""#)), None),
        ("big-num", line("big-num", &ext("big", r#""valueInteger64":-42"#)), None),
        ("big-junk", line("big-junk", &ext("big", r#""valueInteger64":"12a""#)), Some("expected an integer64")),
        ("big-zeros", line("big-zeros", &ext("big", r#""valueInteger64":"007""#)), Some("expected an integer64")),
        ("leap", line("leap", r#","started":"2016-12-31T23:59:60Z""#), None),
        ("leap-east", line("leap-east", r#","started":"2017-01-01T08:59:60.5+09:00""#), None),
    ]
}

/// Loads the corpus with the view into a warehouse in `dir`; returns the warehouse and the
/// load's id.
fn load_corpus(dir: &Path) -> (PathBuf, String) {
    let export = dir.join("export");
    std::fs::create_dir(&export).unwrap();
    let text: String = corpus().iter().map(|(_, line, _)| format!("{line}\n")).collect();
    std::fs::write(export.join("ImagingStudy.ndjson"), text).unwrap();
    let views = dir.join("views");
    std::fs::create_dir(&views).unwrap();
    std::fs::write(views.join("strict_study.json"), VIEW).unwrap();
    let out = dir.join("wh");
    let outcome = load_with(&[export], &out, |o| o.views_dir = Some(views));
    assert!(outcome.committed(), "dead letters alone do not fail a load");
    (out, outcome.report.load_id)
}

#[test]
fn integer_columns_refuse_strings_and_values_out_of_their_fhir_range_as_decimals_and_booleans_refuse_strings() {
    let dir = tempfile::tempdir().unwrap();
    let (out, load_id) = load_corpus(dir.path());
    let corpus = corpus();
    let records = dead_letters(&out, &load_id);
    let got: Vec<(u64, &str)> =
        records.iter().map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap())).collect();
    let want: Vec<(u64, &str)> = corpus
        .iter()
        .enumerate()
        .filter(|(_, (_, _, detail))| detail.is_some())
        .map(|(i, _)| (i as u64 + 1, "view_error"))
        .collect();
    assert_eq!(got, want);
    for record in &records {
        let (id, _, detail) = &corpus[record["line"].as_u64().unwrap() as usize - 1];
        let text = record["detail"].as_str().unwrap();
        assert!(text.contains(detail.unwrap()), "{id}: {text}");
    }
    let rows = query_rows(&out, "SELECT id, series, position, big FROM strict_study ORDER BY id");
    assert_eq!(
        rows,
        ["big-num|||-42", "big-text|||9007199254740993", "leap|||", "leap-east|||", "ok|0||", "one-pos||1|",]
    );
}

#[test]
fn a_leap_second_is_held_in_its_own_minute_day_and_year() {
    let dir = tempfile::tempdir().unwrap();
    let (out, _) = load_corpus(dir.path());
    let rows = query_rows(
        &out,
        "SELECT id, started, started_year FROM strict_study WHERE started IS NOT NULL ORDER BY started, id",
    );
    assert_eq!(
        rows,
        [
            "ok|2016-12-31T23:59:59Z|2016",
            "leap|2016-12-31T23:59:59.999999Z|2016",
            "leap-east|2016-12-31T23:59:59.999999Z|2016",
        ]
    );
    let table = out.join("strict_study");
    assert!(table.join("started_year=2016").is_dir());
    assert!(!table.join("started_year=2017").exists(), "no row belongs to 2017");
}
