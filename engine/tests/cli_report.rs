//! End-to-end tests of `fhirhouse report`: the built binary running the shipped analyses
//! over a warehouse loaded from the CMS-HCC fixtures (tests/data/analyses/hcc; what the
//! scores are is tested in tests/sql/analyses/hcc.slt, this is about the command).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

fn warehouse() -> &'static Path {
    static WAREHOUSE: OnceLock<tempfile::TempDir> = OnceLock::new();
    WAREHOUSE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let fixtures = common::root().join("tests/data/analyses/hcc");
            assert!(common::load_with(&[fixtures], dir.path(), |_| {}).committed());
            dir
        })
        .path()
}

fn fhirhouse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(args).env_remove("RUST_LOG").output().unwrap()
}

fn report(args: &[&str]) -> Output {
    let wh = warehouse().to_str().unwrap();
    let mut all = vec!["report"];
    all.extend(args.iter().take(1));
    all.push(wh);
    all.extend(args.iter().skip(1));
    fhirhouse(&all)
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn list_names_every_analysis_with_its_parameters() {
    let out = fhirhouse(&["report", "--list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = text(&out.stdout);
    for name in ["care_gaps", "cms122", "cms125", "cms130", "cms131", "cms165", "hcc"] {
        assert!(list.lines().any(|l| l.starts_with(name)), "{name} missing:\n{list}");
    }
    assert!(list.contains("--payment-year INTEGER [2026]"), "{list}");
    assert_eq!(text(&fhirhouse(&["report"]).stdout), list, "no name lists too");
}

#[test]
fn a_name_alone_describes_the_analysis() {
    let out = fhirhouse(&["report", "cms165"]);
    assert!(out.status.success());
    let description = text(&out.stdout);
    assert!(description.starts_with("cms165: Controlling high blood pressure"), "{description}");
    assert!(description.contains("--period-start YYYY-MM-DD [default: 2025-01-01]"), "{description}");
    assert!(description.contains("queries/cms165.sql, queries/lib/ecqm.sql"), "{description}");
}

#[test]
fn run_options_without_a_warehouse_are_an_error_not_a_description() {
    for args in [&["cms165", "--period-start", "2019-01-01"][..], &["hcc", "--result", "patients", "-o", "x.csv"]] {
        let out = fhirhouse(&[&["report"][..], args].concat());
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(text(&out.stdout), "", "{args:?}");
        let stderr = text(&out.stderr);
        assert!(stderr.starts_with("error: the WAREHOUSE argument is missing"), "{args:?}: {stderr}");
        assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    }
    let out = fhirhouse(&["report", "cms165", "--period-start", "2019-01-01"]);
    assert!(text(&out.stderr).contains("--period-start is for a run"), "{}", text(&out.stderr));
    // --sql needs no warehouse: the parameters fill in the SQL it prints.
    let out = fhirhouse(&["report", "cms165", "--period-start", "2019-01-01", "--sql"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("DATE '2019-01-01'"));
}

#[test]
fn a_warehouse_loaded_without_crosswalks_is_refused_before_the_sql_runs() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = common::root().join("tests/data/analyses/hcc");
    assert!(common::load_with(&[fixtures], dir.path(), |options| options.crosswalk = false).committed());
    let wh = dir.path().to_str().unwrap();
    for analysis in ["cms165", "care_gaps", "hcc"] {
        let out = fhirhouse(&["report", analysis, wh]);
        assert_eq!(out.status.code(), Some(2), "{analysis}");
        assert_eq!(
            text(&out.stderr),
            "error: the analyses need a warehouse loaded with the crosswalks (they read condition.icd10cm_code, \
             condition.icd10cm_codes); this one was loaded with --no-crosswalk: load it again without it\n",
            "{analysis}"
        );
    }
}

#[test]
fn a_result_is_written_in_the_format_asked_for() {
    let out = report(&["hcc", "--result", "patients", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    assert!(csv.starts_with("patient_id,payment_year,model,segment,age,sex,"), "{csv}");
    let dm_hf = csv.lines().find(|l| l.starts_with("dm_hf,")).unwrap();
    assert!(dm_hf.starts_with("dm_hf,2026,V28,CNA,70,F,false,F70_74,0.395,3,\"[38,226,280]\""), "{dm_hf}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("summary.json");
    let out = report(&["hcc", "--model", "V24", "-o", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(rows[0]["model"], "V24");
    assert_eq!(rows[0]["patients"], 19);
    assert_eq!(text(&out.stdout), "");
}

#[test]
fn the_printed_sql_runs_as_it_is_and_gives_the_same_rows() {
    let args = ["hcc", "--payment-year", "2026", "--result", "patients", "--format", "csv"];
    let direct = report(&args);
    let sql = fhirhouse(&["report", "hcc", "--payment-year", "2026", "--result", "patients", "--sql"]);
    assert!(sql.status.success());
    let script = text(&sql.stdout);
    assert!(script.starts_with("-- fhirhouse report hcc: "), "{script}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hcc.sql");
    std::fs::write(&file, script).unwrap();
    let wh = warehouse().to_str().unwrap();
    let via_query = fhirhouse(&["query", wh, "-f", file.to_str().unwrap(), "--format", "csv"]);
    assert!(via_query.status.success(), "{}", text(&via_query.stderr));
    assert_eq!(text(&via_query.stdout), text(&direct.stdout));
}

#[test]
fn mistakes_are_named_and_exit_with_status_2() {
    let cases: [(&[&str], &str); 11] = [
        (&["cms12"], "error: no analysis 'cms12' (did you mean 'cms122'?)"),
        (&["cms122", "--model", "V28"], "error: cms122 has no parameter --model; its parameters: --period-start"),
        (&["hcc", "--payment-year", "next"], "error: --payment-year: 'next' is not a whole number"),
        (&["hcc", "--result", "score"], "error: hcc has no result 'score'; its results: summary, patients"),
        (&["hcc", "--format", "parquet"], "error: parquet output needs a file: pass -o FILE"),
        (
            &["cms165", "--period-start", "19-01-01"],
            "error: --period-start: '19-01-01' is not a date (YYYY-MM-DD, a year",
        ),
        (&["cms165", "--period-start=-2019-01-01"], "error: --period-start: '-2019-01-01' is not a date"),
        (
            &["hcc", "--payment-year", "2028", "--normalization", "1", "--coding-adjustment", "0"],
            "error: --payment-year 2028: no CMS-HCC V28 tables (ICD-10-CM to CC map and coefficients) for that \
             year; the payment years with tables: V24 2025, 2026; V28 2025, 2026, 2027\n",
        ),
        (&["hcc", "--normalization", "0"], "error: --normalization: '0' is out of range: it must be greater than 0\n"),
        (
            &["hcc", "--coding-adjustment", "2"],
            "error: --coding-adjustment: '2' is out of range: it must be at least 0",
        ),
        (
            &["hcc", "--service-from", "2020-01-01", "--service-to", "2019-01-01"],
            "error: --service-from 2020-01-01 is after --service-to 2019-01-01: the service window is empty\n",
        ),
    ];
    for (args, message) in cases {
        let out = report(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).starts_with(message), "{args:?}: {}", text(&out.stderr));
    }
    let out = fhirhouse(&["report", "hcc", "/nonexistent/warehouse"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("not a warehouse with a published load"), "{}", text(&out.stderr));
}

#[test]
fn an_export_can_be_reported_on_without_a_load() {
    let fixtures = common::root().join("tests/data/analyses/hcc");
    let out = fhirhouse(&[
        "report",
        "hcc",
        fixtures.to_str().unwrap(),
        "--export",
        "--result",
        "patients",
        "--format",
        "csv",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let loaded = report(&["hcc", "--result", "patients", "--format", "csv"]);
    assert_eq!(text(&out.stdout), text(&loaded.stdout));
}

/// Every example of every command's `--help` (a line indented by four spaces or more in its
/// long help) is printed whole however narrow the help is wrapped, so it can be copied.
#[test]
fn every_commands_help_prints_its_examples_whole() {
    use clap::CommandFactory;

    let cli = fhirhouse::cli::Cli::command();
    let commands = std::iter::once((None, &cli)).chain(cli.get_subcommands().map(|c| (Some(c.get_name()), c)));
    for (name, command) in commands {
        let about = command.get_long_about().map(ToString::to_string).unwrap_or_default();
        let out = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
            .args(name.into_iter().chain(["--help"]))
            .env("COLUMNS", "60")
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{name:?}");
        let help = text(&out.stdout);
        assert!(help.lines().any(|l| l.len() <= 60 && l.contains(' ')), "{name:?}: prose is still wrapped: {help}");
        for example in about.lines().filter(|l| l.starts_with("    ") && !l.trim().is_empty()) {
            assert!(help.lines().any(|l| l == example), "{name:?}: {example:?} is not printed whole in\n{help}");
        }
    }
}

#[test]
fn a_help_example_continued_on_the_next_line_says_so() {
    let out = fhirhouse(&["load", "--help"]);
    let help = text(&out.stdout);
    assert!(
        help.contains("    fhirhouse load export/ --out warehouse --snomed-icd10-map \\\n        der2_iisssci"),
        "{help}"
    );
}
