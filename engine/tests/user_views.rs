//! ViewDefinitions as analysts write and save them: files with a byte order mark, and rows
//! piped into `fhirhouse view` on standard input.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

const VIEW: &str = r#"{"resourceType": "ViewDefinition", "name": "pat", "resource": "Patient",
  "select": [{"column": [{"name": "id", "path": "getResourceKey()"}, {"name": "gender", "path": "gender"}]}]}"#;

const P1: &str = r#"{"resourceType":"Patient","id":"p1","gender":"female"}"#;
const P2: &str = r#"{"resourceType":"Patient","id":"p2"}"#;

/// Runs the binary with `args`, feeding `stdin` to it.
fn fhirhouse(args: &[&Path], stdin: &[u8]) -> Output {
    run_fhirhouse(args, stdin)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

/// A view saved by an editor that writes UTF-8 with a byte order mark (Notepad does) was
/// "not valid JSON: expected value at line 1 column 1", in `view` and in a load alike.
#[test]
fn a_view_file_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let views = dir.path().join("views");
    std::fs::create_dir(&views).unwrap();
    let view = views.join("pat.json");
    std::fs::write(&view, [b"\xEF\xBB\xBF".as_slice(), VIEW.as_bytes()].concat()).unwrap();
    let export = dir.path().join("Patient.ndjson");
    std::fs::write(&export, format!("{P1}\n{P2}\n")).unwrap();

    let out = fhirhouse(&[Path::new("view"), &view, &export], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"id\":\"p1\",\"gender\":\"female\"}\n{\"id\":\"p2\",\"gender\":null}\n");

    let wh = dir.path().join("wh");
    let outcome = load_with(&[export], &wh, |o| o.views_dir = Some(views));
    assert!(outcome.committed());
    assert_eq!(query_rows(&wh, "SELECT id, gender FROM pat ORDER BY id"), ["p1|female", "p2|"]);
}

/// `-` reads standard input, plain or gzip, in its place among the inputs; it was "no such
/// file or folder".
#[test]
fn a_dash_reads_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let view = dir.path().join("pat.json");
    std::fs::write(&view, VIEW).unwrap();
    let file = dir.path().join("Patient.ndjson");
    std::fs::write(&file, format!("{P2}\n")).unwrap();

    let out = fhirhouse(&[Path::new("view"), &view, Path::new("-"), &file], format!("{P1}\n{{bad\n").as_bytes());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"id\":\"p1\",\"gender\":\"female\"}\n{\"id\":\"p2\",\"gender\":null}\n");
    let err = text(&out.stderr);
    assert!(err.lines().any(|l| l.starts_with("<stdin>:2: invalid JSON")), "{err}");
    assert!(err.ends_with("3 resources read, 0 skipped, 2 rows written, 1 error\n"), "{err}");

    let out = fhirhouse(&[Path::new("view"), &view, Path::new("-")], &gzip(format!("{P1}\n").as_bytes()));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "{\"id\":\"p1\",\"gender\":\"female\"}\n");

    let out = fhirhouse(&[Path::new("view"), &view, Path::new("-"), Path::new("-")], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("given twice"), "{}", text(&out.stderr));
}

/// `fhirhouse view` is where a view is tried before a load: it ran views that a load then
/// refused, such as a partition tag on a text column, or a column named like the partition
/// key (whose table no query could then read).
#[test]
fn view_refuses_what_a_load_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("Encounter.ndjson");
    std::fs::write(&export, r#"{"resourceType":"Encounter","id":"e1","status":"finished","class":{"code":"AMB"},"period":{"start":"2020-01-01"}}"#)
        .unwrap();
    let tag = r#""tag": [{"name": "fhirhouse/partition", "value": "year"}]"#;
    for (columns, reason) in [
        (format!(r#"{{"name": "cls", "path": "class.code", {tag}}}"#), "fhirhouse/partition needs a date"),
        (
            format!(
                r#"{{"name": "start", "path": "period.start", "type": "dateTime", {tag}}},
                   {{"name": "start_year", "path": "period.start.toString().substring(0, 4)"}}"#
            ),
            "column start_year has the name of the partition key",
        ),
    ] {
        let view = dir.path().join("enc.json");
        let definition =
            format!(r#"{{"resource": "Encounter", "name": "enc", "select": [{{"column": [{columns}]}}]}}"#);
        std::fs::write(&view, definition).unwrap();
        let out = fhirhouse(&[Path::new("view"), &view, &export], b"");
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        let err = text(&out.stderr);
        assert!(err.contains("invalid view") && err.contains("enc.json") && err.contains(reason), "{err}");
        assert_eq!(text(&out.stdout), "");
    }
}
