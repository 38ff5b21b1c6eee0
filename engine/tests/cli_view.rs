//! End-to-end tests of `fhirhouse view`: the built binary over small exports written to a
//! temporary folder.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use flate2::write::GzEncoder;
use flate2::Compression;

const PATIENT_VIEW: &str = r#"{
  "resourceType": "ViewDefinition",
  "name": "patient",
  "resource": "Patient",
  "status": "active",
  "select": [{
    "column": [
      {"name": "id", "path": "id", "type": "id"},
      {"name": "gender", "path": "gender", "type": "code"},
      {"name": "birth_date", "path": "birthDate", "type": "date"},
      {"name": "active", "path": "active", "type": "boolean"},
      {"name": "updated", "path": "meta.lastUpdated", "type": "instant"}
    ]
  }]
}"#;

const P1: &str = r#"{"resourceType":"Patient","id":"p1","meta":{"lastUpdated":"2015-02-07T13:28:17.239+02:00"},"gender":"female","birthDate":"1970-01-02","active":true}"#;
const P2: &str = r#"{"resourceType":"Patient","id":"p2"}"#;
const P3: &str = r#"{"resourceType":"Patient","id":"p3","gender":"male","active":false}"#;
const OBS: &str = r#"{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"x"}}"#;

const P1_ROW: &str =
    r#"{"id":"p1","gender":"female","birth_date":"1970-01-02","active":true,"updated":"2015-02-07T11:28:17.239Z"}"#;
const P2_ROW: &str = r#"{"id":"p2","gender":null,"birth_date":null,"active":null,"updated":null}"#;
const P3_ROW: &str = r#"{"id":"p3","gender":"male","birth_date":null,"active":false,"updated":null}"#;

/// A temporary folder holding a view file and an export folder.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Self {
        let fixture = Self { dir: tempfile::tempdir().unwrap() };
        fs::create_dir(fixture.export()).unwrap();
        fixture.file("patient.json", PATIENT_VIEW.as_bytes());
        fixture
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn export(&self) -> PathBuf {
        self.path("export")
    }

    fn view(&self) -> PathBuf {
        self.path("patient.json")
    }

    fn file(&self, name: &str, contents: &[u8]) -> PathBuf {
        let path = self.path(name);
        fs::write(&path, contents).unwrap();
        path
    }

    /// Writes `lines` (joined by `\n`) to `export/<name>`, gzip-compressed for `*.gz`.
    fn export_file(&self, name: &str, lines: &[&str]) -> PathBuf {
        let text = lines.join("\n") + "\n";
        let bytes = if name.ends_with(".gz") {
            let mut gz = GzEncoder::new(Vec::new(), Compression::fast());
            gz.write_all(text.as_bytes()).unwrap();
            gz.finish().unwrap()
        } else {
            text.into_bytes()
        };
        self.file(&format!("export/{name}"), &bytes)
    }
}

fn fhirhouse(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).unwrap()
}

fn last_line(text: &str) -> &str {
    text.lines().last().unwrap_or_default()
}

#[test]
fn ndjson_rows_of_the_views_type_with_every_column_and_a_summary() {
    let fx = Fixture::new();
    fx.export_file("Observation.ndjson", &[OBS]);
    fx.export_file("Patient.ndjson.gz", &[P1, P2]);

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &fx.export()]);

    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{P1_ROW}\n{P2_ROW}\n"));
    assert_eq!(last_line(stderr(&out)), "3 resources read, 1 skipped, 2 rows written, 0 errors");
}

#[test]
fn invalid_view_fails_before_any_input_is_read() {
    let fx = Fixture::new();
    let view = fx.file(
        "broken.json",
        br#"{"resourceType": "ViewDefinition", "status": "active",
             "select": [{"column": [{"name": "id", "path": "id"}]}]}"#,
    );
    let missing_input = fx.path("no-such-export");

    let out = fhirhouse(&[Path::new("view"), &view, &missing_input]);

    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains(&*view.to_string_lossy()), "{err}");
    assert!(err.contains("invalid view"), "{err}");
    assert!(!err.contains("no-such-export"), "input was looked at: {err}");
    assert_eq!(stdout(&out), "");
}

#[test]
fn bad_json_line_is_reported_as_file_and_line_and_the_run_goes_on() {
    let fx = Fixture::new();
    // Line 2 is blank: skipped, but line numbers still count it.
    let file = fx.export_file("Patient.ndjson", &[P1, "", r#"{"resourceType":"Patient","id":"#, P3]);

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &file]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{P1_ROW}\n{P3_ROW}\n"));
    let err = stderr(&out);
    let prefix = format!("{}:3: ", file.display());
    assert_eq!(err.lines().filter(|l| l.starts_with(&prefix)).count(), 1, "{err}");
    assert_eq!(last_line(err), "3 resources read, 0 skipped, 2 rows written, 1 error");
}

#[test]
fn lines_that_are_no_resource_are_reported_in_the_words_of_a_loads_dead_letters() {
    let fx = Fixture::new();
    let file =
        fx.export_file("Patient.ndjson", &[P1, "[1,2]", r#"{"id":"x"}"#, r#"{"resourceType":"Foo","id":"y"}"#, OBS]);

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &file]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{P1_ROW}\n"));
    let err = stderr(&out);
    let at = |line: u32, reason: &str| format!("{}:{line}: {reason}", file.display());
    let reported: Vec<&str> = err.lines().collect();
    assert_eq!(
        reported,
        [
            at(2, "JSON value is not an object").as_str(),
            at(3, "no \"resourceType\" string").as_str(),
            at(4, "unknown resourceType \"Foo\"").as_str(),
            "5 resources read, 1 skipped, 1 row written, 3 errors",
        ],
        "{err}"
    );
}

#[test]
fn row_error_names_file_line_and_resource() {
    let fx = Fixture::new();
    // `name.family` is not a collection column: two names are an error in the spec.
    let view = fx.file(
        "family.json",
        br#"{"resourceType": "ViewDefinition", "name": "family", "resource": "Patient",
             "status": "active",
             "select": [{"column": [{"name": "id", "path": "id", "type": "id"},
                                    {"name": "family", "path": "name.family", "type": "string"}]}]}"#,
    );
    let file = fx.export_file(
        "Patient.ndjson",
        &[
            r#"{"resourceType":"Patient","id":"one","name":[{"family":"A"}]}"#,
            r#"{"resourceType":"Patient","id":"two","name":[{"family":"A"},{"family":"B"}]}"#,
        ],
    );

    let out = fhirhouse(&[Path::new("view"), &view, &file]);

    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "{\"id\":\"one\",\"family\":\"A\"}\n");
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.starts_with(&format!("{}:2: ", file.display())))
        .unwrap_or_else(|| panic!("no file:line report in {err}"));
    assert!(line.contains("two") && line.contains("family"), "{line}");
    assert_eq!(last_line(err), "2 resources read, 0 skipped, 1 row written, 1 error");
}

#[test]
fn quiet_leaves_out_the_summary() {
    let fx = Fixture::new();
    let file = fx.export_file("Patient.ndjson", &[P2]);

    let out = fhirhouse(&[Path::new("-q"), Path::new("view"), &fx.view(), &file]);

    assert!(out.status.success());
    assert_eq!(stdout(&out), format!("{P2_ROW}\n"));
    assert_eq!(stderr(&out), "");
}

#[test]
fn csv_format_follows_the_output_extension() {
    let fx = Fixture::new();
    fx.export_file("Patient.ndjson", &[P1, P2]);
    let csv = fx.path("patient.csv");

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &fx.export(), Path::new("-o"), &csv]);

    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    assert_eq!(
        fs::read_to_string(&csv).unwrap(),
        "id,gender,birth_date,active,updated\n\
         p1,female,1970-01-02,true,2015-02-07T11:28:17.239Z\n\
         p2,,,,\n"
    );
}

#[test]
fn parquet_output_reads_back_and_needs_a_file() {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let fx = Fixture::new();
    fx.export_file("Patient.ndjson", &[P1, P2, P3]);
    let parquet = fx.path("patient.parquet");

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &fx.export(), Path::new("--format"), Path::new("parquet")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("-o FILE"), "{}", stderr(&out));

    let out = fhirhouse(&[Path::new("view"), &fx.view(), &fx.export(), Path::new("-o"), &parquet]);
    assert!(out.status.success(), "{}", stderr(&out));

    let reader = ParquetRecordBatchReaderBuilder::try_new(fs::File::open(&parquet).unwrap()).unwrap().build().unwrap();
    let batches: Vec<_> = reader.collect::<Result<_, _>>().unwrap();
    let rows: usize = batches.iter().map(arrow::record_batch::RecordBatch::num_rows).sum();
    assert_eq!(rows, 3);
    let names: Vec<String> = batches[0].schema().fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, ["id", "gender", "birth_date", "active", "updated"]);
}
