//! Bad input never crashes a load and never disappears: every kind of bad line ends in the
//! dead-letter output with file, line, reason and original bytes, and the counts reconcile.

mod common;

use std::path::Path;

use common::*;
use fhirhouse::load::report::FileReport;
use fhirhouse::load::LoadReport;

const GOOD_PATIENT: &str = r#"{"resourceType":"Patient","id":"ok","gender":"female","birthDate":"1970-01-01"}"#;

/// A new empty `export` folder in `dir`.
fn export_folder(dir: &Path) -> std::path::PathBuf {
    let export = dir.join("export");
    std::fs::create_dir(&export).unwrap();
    export
}

/// The report of the input file whose path ends with `name`.
fn file_report<'a>(report: &'a LoadReport, name: &str) -> &'a FileReport {
    report.files.iter().find(|f| f.path.ends_with(name)).unwrap_or_else(|| panic!("no file {name} in the report"))
}

/// (line content, expected reason code or None for a good/blank line).
fn corpus(long_line: &str) -> Vec<(String, Option<&'static str>)> {
    vec![
        (GOOD_PATIENT.to_owned(), None),
        (r#"{"resourceType":"Patient","id":"trunc""#.to_owned(), Some("invalid_json")),
        (String::new(), None),
        (r#"[1, 2, 3]"#.to_owned(), Some("not_an_object")),
        (r#"{"id":"no-type"}"#.to_owned(), Some("missing_resource_type")),
        (r#"{"resourceType":"Patinet","id":"typo"}"#.to_owned(), Some("unknown_resource_type")),
        (r#"{"resourceType":"Patient","id":"bad-date","birthDate":"yesterday"}"#.to_owned(), Some("view_error")),
        ("   ".to_owned(), None),
        (long_line.to_owned(), Some("oversized_line")),
        (r#"{"resourceType":"Basic","id":"no-view"}"#.to_owned(), None),
        (GOOD_PATIENT.replace("\"ok\"", "\"ok2\""), None),
    ]
}

fn write_export(dir: &Path) -> (std::path::PathBuf, Vec<(String, Option<&'static str>)>) {
    let long_line = format!(r#"{{"resourceType":"Patient","id":"big","text":"{}"}}"#, "x".repeat(10_000));
    let lines = corpus(&long_line);
    let mut bytes = Vec::new();
    for (line, _) in &lines {
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
    }
    // Invalid UTF-8 as the last line, without a final newline.
    bytes.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"\xff\xfe\"}");
    let export = dir.join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join("Patient.ndjson"), bytes).unwrap();
    (export, lines)
}

#[test]
fn every_bad_line_is_dead_lettered_with_its_line_number_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (export, lines) = write_export(dir.path());
    for chunk_bytes in [64, 1 << 20] {
        let out = dir.path().join(format!("wh-{chunk_bytes}"));
        let outcome = load_with(std::slice::from_ref(&export), &out, |o| {
            o.max_line_bytes = 4096;
            o.chunk_bytes = chunk_bytes;
        });
        let report = &outcome.report;
        assert!(outcome.committed(), "dead letters alone do not fail a load");
        report.check().unwrap();
        let file = &report.files[0];
        assert_eq!(file.lines, lines.len() as u64 + 1);
        assert_eq!(file.blank_lines, 2);
        assert_eq!(file.loaded, 2);
        assert_eq!(file.without_view, 1);
        assert_eq!(report.without_view_by_type.get("Basic"), Some(&1));
        // The Basic resource; the unknown "Patinet" is dead-lettered, no resource of another type.
        assert_eq!(file.type_mismatches, 1);
        assert!(
            report.summary().contains("\n  1 resource differs from its file's declared type ("),
            "{}",
            report.summary()
        );

        let mut want: Vec<(u64, &str)> =
            lines.iter().enumerate().filter_map(|(i, (_, r))| r.map(|r| (i as u64 + 1, r))).collect();
        want.push((lines.len() as u64 + 1, "invalid_utf8"));
        let records = dead_letters(&out, &report.load_id);
        let got: Vec<(u64, &str)> =
            records.iter().map(|r| (r["line"].as_u64().unwrap(), r["reason"].as_str().unwrap())).collect();
        assert_eq!(got, want, "chunk size {chunk_bytes}");
        for record in &records {
            let line = record["line"].as_u64().unwrap() as usize;
            match record["reason"].as_str().unwrap() {
                "invalid_utf8" => assert!(record["raw_base64"].is_string()),
                "oversized_line" => assert_eq!(record["raw_truncated"], true),
                _ => assert_eq!(record["raw"].as_str().unwrap(), lines[line - 1].0, "original bytes kept"),
            }
            assert!(record["file"].as_str().unwrap().ends_with("Patient.ndjson"));
        }
        let view_error = records.iter().find(|r| r["reason"] == "view_error").unwrap();
        assert!(view_error["detail"].as_str().unwrap().contains("birth_date"), "{view_error}");
        assert_eq!(table_rows(&out, "patient"), 2);
    }
}

#[test]
fn max_errors_fails_the_load_and_keeps_the_previous_state() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let first = load_with(&[sample()], &out, |_| {});
    assert!(first.committed());
    let before = table_counts(&out);

    let (export, _) = write_export(dir.path());
    let failed = load_with(&[export], &out, |o| {
        o.max_errors = Some(2);
        o.max_line_bytes = 4096;
    });
    assert!(!failed.committed());
    assert!(failed.report.failure.as_deref().unwrap().contains("--max-errors 2"), "{:?}", failed.report.failure);
    assert_eq!(table_counts(&out), before, "the previous load is still what readers see");
    assert!(std::fs::read_dir(out.join("_fhirhouse/staging")).unwrap().next().is_none(), "staging cleaned up");
    let saved: serde_json::Value = serde_json::from_slice(&std::fs::read(&failed.report_path).unwrap()).unwrap();
    assert_eq!(saved["status"], "failed");
}

#[test]
fn manifest_type_mismatches_are_counted_and_rows_follow_resource_type() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    std::fs::write(export.join("p.ndjson"), format!("{GOOD_PATIENT}\n")).unwrap();
    let manifest = serde_json::json!({"output": [{"type": "Observation", "url": "p.ndjson"}],
                                      "error": [{"type": "OperationOutcome", "url": "err.ndjson"}]});
    std::fs::write(export.join("manifest.json"), manifest.to_string()).unwrap();
    let outcome_line = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"Patient/9 could not be exported"}]}"#;
    std::fs::write(export.join("err.ndjson"), format!("{outcome_line}\n")).unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[export.join("manifest.json")], &out, |_| {});
    assert_eq!(outcome.report.files[0].type_mismatches, 1);
    assert_eq!(outcome.report.server_errors[0].outcomes, 1);
    assert!(outcome.report.server_errors[0].examples[0].contains("could not be exported"));
    assert!(outcome.report.summary().contains("1 resource differs from its file's declared type"));
    assert_eq!(table_rows(&out, "patient"), 1);
}

#[test]
fn files_no_view_reads_are_counted_unparsed_unless_parse_all() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    std::fs::write(export.join("p.ndjson"), format!("{GOOD_PATIENT}\n")).unwrap();
    std::fs::write(
        export.join("b.ndjson"),
        "{\"resourceType\":\"Basic\",\"id\":\"b1\"}\n\n{\"resourceType\":\"Basic\"\n",
    )
    .unwrap();
    let manifest = serde_json::json!({"output": [{"type": "Patient", "url": "p.ndjson"},
                                                 {"type": "Basic", "url": "b.ndjson"}]});
    std::fs::write(export.join("manifest.json"), manifest.to_string()).unwrap();
    let inputs = [export.join("manifest.json")];

    let skimmed = load_with(&inputs, &dir.path().join("wh1"), |_| {});
    skimmed.report.check().unwrap();
    let basic = file_report(&skimmed.report, "b.ndjson");
    assert_eq!((basic.lines, basic.blank_lines, basic.unread, basic.dead_letters), (3, 1, 2, 0));
    assert!(
        skimmed.report.summary().contains("2 lines not parsed: no view reads Basic, as the manifest declares them"),
        "{}",
        skimmed.report.summary()
    );
    assert_eq!(skimmed.report.totals.loaded, 1);

    let parsed = load_with(&inputs, &dir.path().join("wh2"), |o| o.parse_all = true);
    parsed.report.check().unwrap();
    let basic = file_report(&parsed.report, "b.ndjson");
    assert_eq!((basic.unread, basic.without_view, basic.dead_letters), (0, 1, 1));
    assert_eq!(dead_letters(&dir.path().join("wh2"), &parsed.report.load_id)[0]["reason"], "invalid_json");

    // An entry without `type` (against the specification) is typed by its name, and the
    // summary says so.
    std::fs::write(export.join("2.Group.ndjson"), "{\"resourceType\":\"Group\",\"id\":\"g1\"}\n").unwrap();
    let manifest = serde_json::json!({"output": [{"type": "Patient", "url": "p.ndjson"},
                                                 {"type": "Basic", "url": "b.ndjson"},
                                                 {"url": "2.Group.ndjson"}]});
    std::fs::write(export.join("manifest.json"), manifest.to_string()).unwrap();
    let mixed = load_with(&inputs, &dir.path().join("wh3"), |_| {});
    mixed.report.check().unwrap();
    let summary = mixed.report.summary();
    assert!(
        summary.contains(
            "3 lines not parsed: no view reads Basic, Group, as the manifest and their file names declare them"
        ),
        "{summary}"
    );
}

#[test]
fn in_a_folder_a_files_name_declares_its_type() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    let basic = "{\"resourceType\":\"Basic\",\"id\":\"b1\"}\n{\"resourceType\":\"Basic\"\n";
    std::fs::write(export.join("Patient.000.ndjson"), format!("{GOOD_PATIENT}\n")).unwrap();
    std::fs::write(export.join("1.Basic.ndjson"), basic).unwrap();
    // No type in the name: parsed, whatever it holds.
    std::fs::write(export.join("more.ndjson"), basic).unwrap();

    let outcome = load_with(&[export], &dir.path().join("wh"), |_| {});
    outcome.report.check().unwrap();
    let file = |name: &str| file_report(&outcome.report, name).clone();
    let named = file("1.Basic.ndjson");
    assert_eq!(named.declared_type.as_deref(), Some("Basic"));
    assert_eq!((named.lines, named.unread, named.without_view, named.dead_letters), (2, 2, 0, 0));
    let unnamed = file("more.ndjson");
    assert_eq!(unnamed.declared_type, None);
    assert_eq!((unnamed.unread, unnamed.without_view, unnamed.dead_letters), (0, 1, 1));
    assert_eq!(file("Patient.000.ndjson").loaded, 1);
    let summary = outcome.report.summary();
    assert!(summary.contains("2 lines not parsed: no view reads Basic, as their file names declare them"), "{summary}");
}

#[test]
fn a_file_whose_content_contradicts_its_name_is_parsed() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    std::fs::write(export.join("Patient.000.ndjson"), format!("{GOOD_PATIENT}\n")).unwrap();
    // Misnamed: Patients in a file named for a type no view reads.
    let other_patient = GOOD_PATIENT.replace("\"id\":\"", "\"id\":\"other-");
    std::fs::write(export.join("1.Basic.ndjson"), format!("\n{other_patient}\n{{\"resourceType\":\"Basic\"}}\n"))
        .unwrap();
    // A first line that is no resource: the rest is not taken on the name's word either.
    std::fs::write(export.join("2.Basic.ndjson"), "{\"resourceType\":\n{\"resourceType\":\"Basic\",\"id\":\"b\"}\n")
        .unwrap();
    // Agrees with its name: counted, not parsed.
    std::fs::write(export.join("3.Basic.ndjson"), "{\"resourceType\":\"Basic\",\"id\":\"c\"}\n{bad\n").unwrap();

    let outcome = load_with(&[export], &dir.path().join("wh"), |_| {});
    outcome.report.check().unwrap();
    let file = |name: &str| file_report(&outcome.report, name).clone();
    let misnamed = file("1.Basic.ndjson");
    assert_eq!(
        (misnamed.unread, misnamed.loaded, misnamed.without_view, misnamed.type_mismatches),
        (0, 1, 1, 1),
        "{misnamed:?}"
    );
    let bad_start = file("2.Basic.ndjson");
    assert_eq!((bad_start.unread, bad_start.without_view, bad_start.dead_letters), (0, 1, 1), "{bad_start:?}");
    let agreeing = file("3.Basic.ndjson");
    assert_eq!((agreeing.unread, agreeing.dead_letters), (2, 0), "{agreeing:?}");
    assert_eq!(table_rows(dir.path().join("wh"), "patient"), 2);
    assert!(
        outcome.report.summary().contains("1 resource differs from its file's declared type"),
        "{}",
        outcome.report.summary()
    );
}

#[test]
fn the_line_limit_applies_to_the_content_without_its_crlf() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    let at_limit = format!(r#"{{"resourceType":"Patient","id":"crlf","text":"{}"}}"#, "x".repeat(1000));
    let over = format!(r#"{{"resourceType":"Patient","id":"over","text":"{}"}}"#, "x".repeat(1001));
    std::fs::write(export.join("Patient.ndjson"), format!("{at_limit}\r\n{over}\r\n")).unwrap();
    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |o| o.max_line_bytes = at_limit.len());
    assert_eq!(outcome.report.totals.loaded, 1, "a CRLF line of exactly the limit loads");
    let dead = dead_letters(&out, &outcome.report.load_id);
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!((dead[0]["line"].as_u64(), dead[0]["reason"].as_str()), (Some(2), Some("oversized_line")), "{dead:?}");
}

#[test]
fn resources_nested_far_deeper_than_a_stack_do_not_abort_the_load() {
    // A worker recursing once per level overflowed its stack at a few thousand levels and
    // aborted the whole process (no report, nothing published).
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    let depth = 100_000;
    let deep_gender = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let patients = [format!(r#"{{"resourceType":"Patient","id":"deep","gender":{deep_gender}}}"#), GOOD_PATIENT.into()];
    std::fs::write(export.join("Patient.ndjson"), patients.join("\n") + "\n").unwrap();
    let mut item = r#"{"linkId":"leaf","answer":[{"valueString":"x"}]}"#.to_owned();
    for i in 0..20_000 {
        item = format!(r#"{{"linkId":"{i}","item":[{item}]}}"#);
    }
    let response =
        format!(r#"{{"resourceType":"QuestionnaireResponse","id":"q","status":"completed","item":[{item}]}}"#);
    std::fs::write(export.join("QuestionnaireResponse.ndjson"), response + "\n").unwrap();

    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |_| {});
    assert!(outcome.committed(), "{:?}", outcome.report.failure);
    assert_eq!(table_rows(out.as_path(), "patient"), 2);
    assert_eq!(table_rows(out.as_path(), "questionnaire_response_item"), 1, "the leaf's answer");
}

#[test]
fn a_file_in_utf16_or_with_bare_carriage_returns_is_dead_lettered_naming_the_likely_cause() {
    let dir = tempfile::tempdir().unwrap();
    let export = export_folder(dir.path());
    let utf16: Vec<u8> = GOOD_PATIENT.encode_utf16().flat_map(u16::to_le_bytes).chain([b'\n', 0]).collect();
    std::fs::write(export.join("Patient.utf16.ndjson"), utf16).unwrap();
    let old_mac = format!("{GOOD_PATIENT}\r{}\r", GOOD_PATIENT.replace("\"ok\"", "\"ok2\""));
    std::fs::write(export.join("Patient.mac.ndjson"), old_mac).unwrap();

    let out = dir.path().join("wh");
    let outcome = load_with(&[export], &out, |_| {});
    let details: Vec<String> = dead_letters(&out, &outcome.report.load_id)
        .iter()
        .map(|d| format!("{} {}", d["file"].as_str().unwrap(), d["detail"].as_str().unwrap()))
        .collect();
    assert!(details.iter().any(|d| d.contains("utf16") && d.contains("looks like UTF-16")), "{details:#?}");
    assert!(
        details.iter().any(|d| d.contains("mac") && d.contains("carriage returns without line feeds")),
        "{details:#?}"
    );
}
