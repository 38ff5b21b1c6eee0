//! End-to-end tests of `fhirhouse query` and `fhirhouse sql`: the built binary over a
//! warehouse loaded from the bundled sample, and over raw exports.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The sample loaded once for every test of this file.
fn warehouse() -> &'static Path {
    static WAREHOUSE: OnceLock<tempfile::TempDir> = OnceLock::new();
    WAREHOUSE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let outcome = common::load_with(&[common::sample()], dir.path(), |_| {});
            assert!(outcome.committed());
            dir
        })
        .path()
}

fn fhirhouse(args: &[&str], stdin: Option<&str>) -> Output {
    common::run_fhirhouse(args, stdin.unwrap_or_default().as_bytes())
}

fn query(args: &[&str]) -> Output {
    let wh = warehouse().to_str().unwrap().to_owned();
    let mut all = vec!["query", wh.as_str()];
    all.extend_from_slice(args);
    fhirhouse(&all, None)
}

fn stdout(output: &Output) -> &str {
    std::str::from_utf8(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> &str {
    std::str::from_utf8(&output.stderr).unwrap()
}

/// A statement whose columns cover the renderings: integer, string, decimal, null, date,
/// list.
const LITERALS: &str = "SELECT 1 AS i, 'a,b' AS s, CAST(1.50 AS DECIMAL(10, 2)) AS d, NULL AS n, \
                        DATE '2020-01-02' AS dt, make_array(1, 2) AS l";

#[test]
fn table_is_the_default_format() {
    let out = query(&["SELECT gender, count(*) AS n FROM patient GROUP BY gender ORDER BY gender"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "+--------+---+\n| gender | n |\n+--------+---+\n| female | 5 |\n| male   | 5 |\n+--------+---+\n"
    );
    assert_eq!(stderr(&out), "");
}

#[test]
fn text_formats_render_values_in_their_natural_form() {
    let csv = query(&[LITERALS, "--format", "csv"]);
    assert!(csv.status.success(), "{}", stderr(&csv));
    assert_eq!(stdout(&csv), "i,s,d,n,dt,l\n1,\"a,b\",1.5,,2020-01-02,\"[1,2]\"\n");

    let row = r#"{"i":1,"s":"a,b","d":1.5,"n":null,"dt":"2020-01-02","l":[1,2]}"#;
    let ndjson = query(&[LITERALS, "--format", "ndjson"]);
    assert_eq!(stdout(&ndjson), format!("{row}\n"), "{}", stderr(&ndjson));
    let json = query(&[LITERALS, "--format", "json"]);
    assert_eq!(stdout(&json), format!("[{row}]\n"), "{}", stderr(&json));

    let table = query(&[LITERALS]);
    assert!(stdout(&table).contains("| 1 | a,b | 1.5 | NULL | 2020-01-02 | [1,2] |"), "{}", stdout(&table));
}

#[test]
fn output_files_take_their_format_from_the_extension() {
    let dir = tempfile::tempdir().unwrap();
    let parquet = dir.path().join("patients.parquet");
    let out = query(&["SELECT id, birth_date FROM patient", "-o", parquet.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
    let file = std::fs::File::open(&parquet).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    use parquet::file::reader::FileReader;
    assert_eq!(reader.metadata().file_metadata().num_rows(), 10);

    let json = dir.path().join("n.json");
    let out = query(&["SELECT count(*) AS n FROM observation", "-o", json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&json).unwrap(), "[{\"n\":1369}]\n");
}

#[test]
fn parquet_needs_a_file() {
    let out = query(&["SELECT 1", "--format", "parquet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("parquet output needs a file"), "{}", stderr(&out));
}

#[test]
fn a_script_runs_its_statements_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("report.sql");
    std::fs::write(
        &script,
        "-- women in the sample\nCREATE VIEW women AS SELECT * FROM patient WHERE gender = 'female';\n\
         SELECT count(*) AS women FROM women;\nSELECT 'done' AS status\n",
    )
    .unwrap();
    let out = query(&["-f", script.to_str().unwrap(), "--format", "csv"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "women\n5\nstatus\ndone\n");

    let piped =
        fhirhouse(&["query", warehouse().to_str().unwrap(), "-f", "-", "--format", "ndjson"], Some("SELECT 2 AS two;"));
    assert_eq!(stdout(&piped), "{\"two\":2}\n", "{}", stderr(&piped));
}

#[test]
fn one_output_file_takes_one_result() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("r.csv");
    let out = query(&["SELECT 1 AS a; SELECT 2 AS b", "-o", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("takes one result"), "{}", stderr(&out));
    assert!(!target.exists(), "no file is left behind");

    let out = query(&["CREATE VIEW v AS SELECT 1 AS a", "-o", target.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("nothing written"), "{}", stderr(&out));
}

#[test]
fn dash_is_standard_output_and_output_errors_name_the_path_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["query", warehouse().to_str().unwrap(), "SELECT 1 AS a", "--format", "csv", "-o", "-"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\n1\n");
    assert!(!dir.path().join("-").exists(), "no file named -");

    let missing = dir.path().join("nodir/x.csv");
    let out = query(&["SELECT 1 AS a", "-o", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        format!("error: {}: cannot create: No such file or directory (os error 2)\n", missing.display())
    );

    let out = query(&["SELECT 1 AS a", "-o", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), format!("error: {}: cannot create: Is a directory (os error 21)\n", dir.path().display()));
}

#[test]
fn sql_errors_point_into_the_script_and_exit_with_1() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.sql");
    std::fs::write(&script, "SELECT 1;\nSELECT id,\n       gendr FROM patient;\nSELECT 3;\n").unwrap();
    let out = query(&["-f", script.to_str().unwrap(), "--format", "csv"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Int64(1)\n1\n", "the script stops at the failing statement");
    let expected = format!(
        "error: column 'gendr' not found\n --> {}:3:8\n  |\n3 |        gendr FROM patient;\n  |        ^^^^^\n  = did you mean 'gender'?\n",
        script.display()
    );
    assert!(stderr(&out).starts_with(&expected), "{}", stderr(&out));
    assert!(stderr(&out).contains("in statement 2: SELECT id,"), "{}", stderr(&out));
}

#[test]
fn unknown_tables_list_what_exists() {
    let out = query(&["SELECT * FROM patients"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: table 'patients' not found\n --> 1:15\n"), "{err}");
    assert!(err.contains("= did you mean 'patient'?"), "{err}");
    assert!(err.contains("= tables: _dq_unmapped_codes, allergy_intolerance, care_plan,"), "{err}");
}

#[test]
fn the_load_only_table_is_explained_over_an_export() {
    // `_dq_unmapped_codes` is a load's tally of unmapped codes: over --export it is the one
    // warehouse table missing, and the error says why rather than only "not found".
    let sample = common::sample();
    let out =
        fhirhouse(&["query", "--export", sample.to_str().unwrap(), "SELECT count(*) FROM _dq_unmapped_codes"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: table '_dq_unmapped_codes' not found\n"), "{err}");
    assert!(
        err.contains("= _dq_unmapped_codes is written by a load (it counts the codes no crosswalk maps); a session over --export has no such table: load the export to see it\n"),
        "{err}"
    );
    // Over the warehouse the table is there.
    assert!(query(&["SELECT count(*) FROM _dq_unmapped_codes"]).status.success());
}

#[test]
fn syntax_errors_point_at_the_token() {
    let out = query(&["SELECT count(*) FORM patient"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(" --> 1:22\n"), "{err}");
    assert!(err.contains("1 | SELECT count(*) FORM patient\n  |                      ^"), "{err}");
}

/// The message of a run that must stop with status 2 for want of `path`, checking that it
/// names the path and the system's reason once each, though the errors that carry the
/// reason also write it into their own message.
fn fatal_for_missing(args: &[&str], path: &str) -> String {
    let out = fhirhouse(args, None);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out).to_owned();
    assert_eq!(err.matches(path).count(), 1, "{err}");
    assert_eq!(err.matches("(os error 2)").count(), 1, "{err}");
    err
}

#[test]
fn a_missing_warehouse_is_fatal() {
    let err = fatal_for_missing(&["query", "/nonexistent/warehouse", "SELECT 1"], "/nonexistent/warehouse");
    assert!(err.starts_with("error: cannot open the warehouse: /nonexistent/warehouse: not a warehouse"), "{err}");
}

#[test]
fn a_missing_export_is_named_once_with_its_reason_once() {
    let err = fatal_for_missing(&["query", "--export", "/nonexistent/export", "SELECT 1"], "/nonexistent/export");
    assert!(err.starts_with("error: cannot open the export: /nonexistent/export: no such file or folder"), "{err}");
}

#[test]
fn export_queries_run_over_the_raw_ndjson() {
    let sample = common::sample();
    let out = fhirhouse(
        &[
            "query",
            "--export",
            sample.to_str().unwrap(),
            "SELECT count(*) AS n, count(DISTINCT patient_id) AS patients FROM observation \
             WHERE effective_datetime_year >= 2015",
            "--format",
            "csv",
        ],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let from_warehouse = query(&[
        "SELECT count(*) AS n, count(DISTINCT patient_id) AS patients FROM observation \
         WHERE effective_datetime_year >= 2015",
        "--format",
        "csv",
    ]);
    assert_eq!(stdout(&out), stdout(&from_warehouse));
}

/// An export folder with one broken line, and a views folder with one view.
fn broken_export(dir: &Path) -> (PathBuf, PathBuf) {
    let export = dir.join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(
        export.join("Patient.ndjson"),
        "{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"female\"}\n{\"resourceType\":\"Patient\",\n\
         {\"resourceType\":\"Patient\",\"id\":\"b\"}\n",
    )
    .unwrap();
    let views = dir.join("views");
    std::fs::create_dir(&views).unwrap();
    std::fs::write(
        views.join("people.json"),
        r#"{"resourceType": "ViewDefinition", "name": "people", "resource": "Patient", "status": "active",
            "select": [{"column": [{"name": "id", "path": "id", "type": "id"},
                                   {"name": "gender", "path": "gender", "type": "code"}]}]}"#,
    )
    .unwrap();
    (export, views)
}

/// `SELECT id, gender FROM people` over `export` with the views of `views`, as CSV.
fn people_of(export: &Path, views: &Path) -> Output {
    fhirhouse(
        &[
            "query",
            "--export",
            export.to_str().unwrap(),
            "--views",
            views.to_str().unwrap(),
            "SELECT id, gender FROM people ORDER BY id",
            "--format",
            "csv",
        ],
        None,
    )
}

#[test]
fn export_lines_that_cannot_be_used_are_reported_and_exit_with_1() {
    let dir = tempfile::tempdir().unwrap();
    let (export, views) = broken_export(dir.path());
    let out = people_of(&export, &views);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "id,gender\na,female\nb,\n");
    let err = stderr(&out);
    assert!(err.contains("warning: 1 export line could not be used"), "{err}");
    assert!(err.contains(&format!("{}:2: invalid JSON", export.join("Patient.ndjson").display())), "{err}");
}

#[test]
fn export_lines_a_load_dead_letters_are_all_reported_with_the_loads_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let (export, views) = broken_export(dir.path());
    let file = export.join("Patient.ndjson");
    let mut lines = b"{\"resourceType\":\"Patient\",\"id\":\"a\",\"gender\":\"female\"}\n[1,2]\n{\"id\":\"x\"}\n\
        {\"resourceType\":\"Foo\",\"id\":\"y\"}\n{\"resourceType\":\"Patient\",\n\
        {\"resourceType\":\"Observation\",\"id\":\"o\"}\n\xff\xfe{\"a\"}\n"
        .to_vec();
    lines.extend_from_slice(b"{\"resourceType\":\"Patient\",\"id\":\"b\"}\n");
    std::fs::write(&file, lines).unwrap();
    // A file that declares no type: every table reads it, each the lines naming its type, and
    // the lines that are no resource at all.
    let undeclared = export.join("data.ndjson");
    std::fs::write(&undeclared, "{\"resourceType\":\"Observation\",\"id\":\"o2\"}\n[3]\n{\"id\":\"z\"}\n").unwrap();

    // A load of the same export, for the lines it dead-letters and why.
    let warehouse = dir.path().join("warehouse");
    let outcome = common::load_with(std::slice::from_ref(&export), &warehouse, |o| o.views_dir = Some(views.clone()));
    let mut dead: Vec<String> = common::dead_letters(&warehouse, &outcome.report.load_id)
        .iter()
        .map(|r| format!("{}:{}: ({})", r["file"].as_str().unwrap(), r["line"], r["reason"].as_str().unwrap()))
        .collect();
    dead.sort();
    assert_eq!(dead.len(), 7, "{dead:?}");

    // Two statements: each line is still reported once.
    let sql = "SELECT id, gender FROM people ORDER BY id; SELECT count(*) AS n FROM people";
    let args =
        ["query", "--export", export.to_str().unwrap(), "--views", views.to_str().unwrap(), sql, "--format", "csv"];
    let out = fhirhouse(&args, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "id,gender\na,female\nb,\nn\n2\n");
    let err = stderr(&out);
    assert!(err.starts_with("warning: 7 export lines could not be used"), "{err}");
    let mut reported: Vec<String> = err
        .lines()
        .skip(1)
        .map(|l| {
            let (place, reason) = l.trim().split_once(": ").unwrap();
            let code = &reason[reason.rfind('(').unwrap()..];
            format!("{place}: {code}")
        })
        .collect();
    reported.sort();
    assert_eq!(reported, dead, "{err}");
    // The wording is the dead letters' too.
    assert!(err.contains(":2: JSON value is not an object (not_an_object)"), "{err}");
    assert!(err.contains(":7: line is not valid UTF-8 (invalid_utf8)"), "{err}");
    assert!(!err.contains(":6:"), "an Observation in a Patient file is no error: {err}");
}

#[test]
fn a_bad_line_met_by_several_scans_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let (export, views) = broken_export(dir.path());
    let count = "SELECT count(*) AS n FROM people";
    let union = format!("{count} UNION ALL {count} UNION ALL {count}");
    let self_join = "SELECT count(*) AS n FROM people a JOIN people b ON a.id = b.id";
    let script = format!("{union}; {self_join}");
    let out = fhirhouse(
        &[
            "query",
            "--export",
            export.to_str().unwrap(),
            "--views",
            views.to_str().unwrap(),
            &script,
            "--format",
            "csv",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(stdout(&out), "n\n2\n2\n2\nn\n2\n");
    let err = stderr(&out);
    assert!(err.starts_with("warning: 1 export line could not be used"), "{err}");
    assert_eq!(err.matches("invalid JSON").count(), 1, "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "{err}");
}

#[test]
fn a_file_named_for_another_type_is_read_when_its_content_contradicts_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let (export, views) = broken_export(dir.path());
    let patient = |id: &str| format!("{{\"resourceType\":\"Patient\",\"id\":\"{id}\",\"gender\":\"male\"}}\n");
    let condition = "{\"resourceType\":\"Condition\",\"id\":\"c1\"}\n";
    // Misnamed: Patients in a file named for Observations.
    std::fs::write(export.join("Observation.000.ndjson"), patient("m1") + &patient("m2")).unwrap();
    // Named right: its first resource is a Condition, so the Patient after it is not seen.
    std::fs::write(export.join("Condition.000.ndjson"), condition.to_owned() + &patient("hidden")).unwrap();
    let out = people_of(&export, &views);
    assert_eq!(stdout(&out), "id,gender\na,female\nb,\nm1,male\nm2,male\n", "{}", stderr(&out));
}

#[test]
fn the_shell_reads_piped_input_without_prompts() {
    let input = ".tables\nSELECT count(*) AS n\n  FROM patient;\n.format csv\nSELECT 1 AS one;\n";
    let out = fhirhouse(&["sql", warehouse().to_str().unwrap()], Some(input));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("_dq_unmapped_codes\nallergy_intolerance\ncare_plan\n"), "{text}");
    assert!(text.contains("| n  |\n+----+\n| 10 |\n"), "{text}");
    assert!(text.ends_with("one\n1\n"), "{text}");

    let out = fhirhouse(&["sql", warehouse().to_str().unwrap()], Some("SELECT nothing;\n"));
    assert_eq!(out.status.code(), Some(1), "a failed statement in piped input");
    assert!(stderr(&out).contains("column 'nothing' not found"), "{}", stderr(&out));
}

/// Nested values, binary and non-finite floats: every one a value of its own in each format.
const NESTED: &str = "SELECT named_struct('d', CAST(1.50 AS DECIMAL(10, 2)), 'dt', DATE '2020-01-02') AS s, \
                      map(['a'], [1]) AS m, [named_struct('a', 1)] AS ls, \
                      arrow_cast(make_array(1, 2), 'FixedSizeList(2, Int64)') AS f, \
                      arrow_cast('ab', 'Binary') AS b, 1.0 / 0.0 AS inf, CAST('NaN' AS DOUBLE) AS nan";

#[test]
fn nested_binary_and_non_finite_values_render_in_every_text_format() {
    let row =
        r#"{"s":{"d":1.5,"dt":"2020-01-02"},"m":{"a":1},"ls":[{"a":1}],"f":[1,2],"b":"6162","inf":"inf","nan":"NaN"}"#;
    let json = query(&[NESTED, "--format", "json"]);
    assert_eq!(stdout(&json), format!("[{row}]\n"), "{}", stderr(&json));
    let ndjson = query(&[NESTED, "--format", "ndjson"]);
    assert_eq!(stdout(&ndjson), format!("{row}\n"), "{}", stderr(&ndjson));

    let csv = query(&[NESTED, "--format", "csv"]);
    let cells = r#""{""d"":1.5,""dt"":""2020-01-02""}","{""a"":1}","[{""a"":1}]","[1,2]",6162,inf,NaN"#;
    assert_eq!(stdout(&csv), format!("s,m,ls,f,b,inf,nan\n{cells}\n"), "{}", stderr(&csv));

    let table = query(&[NESTED]);
    let text = stdout(&table);
    for wanted in [r#"| {"d":1.5,"dt":"2020-01-02"} |"#, "| 6162 |", "| inf |", "| NaN |"] {
        assert!(text.contains(wanted), "{wanted} missing from\n{text}{}", stderr(&table));
    }
}

#[test]
fn export_help_names_the_argument_it_describes() {
    for command in ["query", "sql"] {
        let out = fhirhouse(&[command, "--help"], None);
        let help = stdout(&out);
        assert!(help.contains("<WAREHOUSE|EXPORT>"), "{command}: {help}");
        assert!(!help.contains("SOURCE"), "{command}: no argument is called SOURCE: {help}");
        assert!(help.contains("The first argument is a raw Bulk Data export (EXPORT)"), "{command}: {help}");
    }
}
