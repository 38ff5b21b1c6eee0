//! The shell driven line by line over the bundled sample export (no terminal, no load).

use std::path::Path;

use super::super::sql_run::SharedBuffer;
use super::*;
use crate::load::Catalog;
use crate::sql::Tables;

fn session() -> Session {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sample");
    let catalog = Catalog::shipped_crosswalked().unwrap();
    Session::open(&Tables::Export { inputs: vec![sample.into()], catalog }).unwrap()
}

/// Feeds `lines` to a fresh shell; returns its output, its messages and the last flow.
fn drive(session: &Session, lines: &[&str]) -> (String, String, Flow, bool) {
    let (out, err) = (SharedBuffer::default(), SharedBuffer::default());
    let mut shell = Shell::new(session, Stream::Buffer(out.clone()), Stream::Buffer(err.clone()));
    let mut flow = Flow::Continue;
    for line in lines {
        flow = shell.handle_line(line);
        if flow == Flow::Quit {
            break;
        }
    }
    (out.text(), err.text(), flow, shell.failed)
}

#[test]
fn a_statement_runs_once_a_line_ends_it_and_the_prompt_says_so() {
    let session = session();
    let (out, err) = (SharedBuffer::default(), SharedBuffer::default());
    let mut shell = Shell::new(&session, Stream::Buffer(out.clone()), Stream::Buffer(err.clone()));
    assert_eq!(shell.prompt(), "fhirhouse> ");
    shell.handle_line("SELECT count(*) AS n");
    assert_eq!(shell.prompt(), "       ...> ");
    shell.handle_line("FROM patient -- the ten sample patients;");
    assert_eq!(out.text(), "", "a ';' in a comment does not end the statement");
    shell.handle_line(";");
    assert_eq!(shell.prompt(), "fhirhouse> ");
    assert_eq!(out.text(), "+----+\n| n  |\n+----+\n| 10 |\n+----+\n", "{}", err.text());
    assert!(!shell.failed);
}

#[test]
fn ctrl_c_drops_the_statement_being_typed() {
    let session = session();
    let (out, err) = (SharedBuffer::default(), SharedBuffer::default());
    let mut shell = Shell::new(&session, Stream::Buffer(out.clone()), Stream::Buffer(err.clone()));
    shell.handle_line("SELECT nonsense");
    shell.interrupt();
    assert_eq!(shell.prompt(), "fhirhouse> ");
    shell.handle_line(".format csv");
    shell.handle_line("SELECT 1 AS one;");
    assert_eq!(out.text(), "one\n1\n");
    assert_eq!(err.text(), "");
}

#[test]
fn tables_lists_every_table_and_quit_leaves() {
    let session = session();
    let (out, _, flow, failed) = drive(&session, &[".tables", ".quit", ".tables"]);
    assert_eq!(flow, Flow::Quit);
    assert!(!failed);
    let names: Vec<&str> = out.lines().collect();
    for table in Catalog::shipped().unwrap().layouts.iter() {
        assert!(names.contains(&table.name.as_str()), "{} missing from {out}", table.name);
    }
    // The reference tables of the crosswalks come with every session.
    assert!(names.contains(&"concept_map") && names.contains(&"hcc_dx_to_cc"), "{out}");
}

#[test]
fn schema_shows_columns_with_the_partition_key_and_suggests_on_a_typo() {
    let session = session();
    let (out, err, _, failed) = drive(&session, &[".format csv", ".schema observation"]);
    assert!(!failed, "{err}");
    assert!(out.starts_with("table,column,type\nobservation,id,Utf8\n"), "{out}");
    assert!(out.contains("observation,effective_datetime_year,Int32\n"), "{out}");

    let (_, err, _, failed) = drive(&session, &[".schema observaton"]);
    assert!(failed);
    assert!(err.starts_with("error: table 'observaton' not found\n  = did you mean 'observation'?\n"), "{err}");
    assert!(err.contains("  = tables: ") && err.contains("observation, "), "{err}");
}

#[test]
fn schema_errors_point_into_no_hidden_sql_and_take_several_tables() {
    let session = session();
    let (out, err, _, failed) = drive(&session, &[".schema nosuch"]);
    assert!(failed);
    assert_eq!(out, "");
    assert!(err.starts_with("error: table 'nosuch' not found\n"), "{err}");
    assert!(!err.contains("-->") && !err.contains("SELECT"), "no pointer into SQL never typed: {err}");
    assert!(err.contains("patient"), "what exists is listed: {err}");

    let (out, err, _, failed) = drive(&session, &[".format csv;", ".schema patient condition ;"]);
    assert!(!failed, "{err}");
    assert!(out.starts_with("table,column,type\npatient,id,Utf8\n"), "{out}");
    assert!(out.contains("\ncondition,id,Utf8\n"), "both tables: {out}");
}

#[test]
fn extra_arguments_are_refused_and_a_final_semicolon_is_ignored() {
    let session = session();
    let (out, err, _, failed) = drive(&session, &[".format csv extra", ".format", ".tables x", ".timing on;"]);
    assert!(failed);
    assert!(err.contains("error: .format takes one argument at most, not \"csv extra\""), "{err}");
    assert!(err.contains("error: .tables takes no argument, not \"x\""), "{err}");
    assert_eq!(out, "table\ntiming on\n", "the format is unchanged; .timing on; works");
}

#[test]
fn timing_prints_run_times_after_statements() {
    let session = session();
    let (out, err, _, _) = drive(&session, &[".timing", "SELECT 1;", ".timing off", "SELECT 2;"]);
    assert!(out.starts_with("timing on\n"), "{out}");
    assert!(out.contains("timing off\n"), "{out}");
    assert_eq!(err.matches("Run Time: ").count(), 1, "{err}");
    assert!(err.contains(", 1 row\n"), "{err}");
}

#[test]
fn sql_errors_point_at_the_token_and_the_shell_goes_on() {
    let session = session();
    let (out, err, flow, failed) =
        drive(&session, &[".format ndjson", "SELECT gendr FROM patient;", "SELECT 'ok' AS status;"]);
    assert_eq!(flow, Flow::Continue);
    assert!(failed);
    assert!(err.contains("error: column 'gendr' not found\n --> 1:8\n"), "{err}");
    assert!(err.contains("  |        ^^^^^\n"), "{err}");
    assert!(err.contains("did you mean 'gender'?"), "{err}");
    assert_eq!(out, "{\"status\":\"ok\"}\n");
}

#[test]
fn unknown_commands_and_formats_are_errors_and_help_lists_commands() {
    let session = session();
    let (out, err, _, failed) = drive(&session, &[".help", ".nope", ".format parquet", ".format"]);
    assert!(failed);
    assert!(out.starts_with(HELP), "{out}");
    assert!(out.ends_with("table\n"), "the format is unchanged: {out}");
    assert!(err.contains("unknown command: .nope"), "{err}");
    assert!(err.contains(".format takes table, csv, json or ndjson"), "{err}");
}

#[test]
fn blank_lines_and_lone_semicolons_do_nothing_and_finish_runs_the_rest() {
    let session = session();
    let (out, err) = (SharedBuffer::default(), SharedBuffer::default());
    let mut shell = Shell::new(&session, Stream::Buffer(out.clone()), Stream::Buffer(err.clone()));
    for line in ["", "  ", ";", "-- a comment;"] {
        shell.handle_line(line);
        assert_eq!(shell.prompt(), "fhirhouse> ", "after {line:?}");
    }
    shell.handle_line(".format csv");
    shell.handle_line("SELECT 3 AS three");
    shell.finish();
    assert_eq!(out.text(), "three\n3\n", "{}", err.text());
}
