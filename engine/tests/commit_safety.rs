//! `fhirhouse load` writes a warehouse only where one is meant to be, and `fhirhouse
//! history` survives a damaged run report.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn fhirhouse(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(args).current_dir(cwd).output().unwrap()
}

/// The names in `dir`.
fn listing(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn a_load_into_a_folder_that_is_not_a_warehouse_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let sample = sample();
    let sample = sample.to_str().unwrap();
    // A home folder, or the export folder itself (`--out .` where the files are).
    std::fs::create_dir(dir.path().join("home")).unwrap();
    std::fs::write(dir.path().join("home/notes.txt"), "mine").unwrap();
    std::fs::create_dir(dir.path().join("home/patient")).unwrap();
    std::fs::write(dir.path().join("Patient.000.ndjson"), "").unwrap();
    let before = listing(dir.path());

    for (out, named) in [("home", "home"), (".", "."), ("", "\"\"")] {
        let run = fhirhouse(&["-q", "load", sample, "--out", out], dir.path());
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "--out {out:?}: {stderr}");
        assert!(stderr.contains(&format!("{named}: ")), "--out {out:?} is named: {stderr}");
        assert!(stderr.contains("not a fhirhouse warehouse") || stderr.contains("empty"), "{stderr}");
    }
    assert_eq!(listing(dir.path()), before);
    assert_eq!(listing(&dir.path().join("home")), BTreeSet::from(["notes.txt".to_owned(), "patient".to_owned()]));

    // A new or empty folder, or a warehouse, is loaded.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    for _ in 0..2 {
        let run = fhirhouse(&["-q", "load", sample, "--out", "empty"], dir.path());
        assert_eq!(run.status.code(), Some(0), "{}", String::from_utf8_lossy(&run.stderr));
    }
}

#[test]
fn history_lists_the_loads_around_a_damaged_report_and_exits_with_1() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let first = load_with(&[sample()], &wh, |_| {}).report.load_id;
    let second = load_with(&[sample()], &wh, |_| {}).report.load_id;
    let damaged = wh.join(format!("_fhirhouse/loads/{first}.json"));
    let text = std::fs::read(&damaged).unwrap();
    std::fs::write(&damaged, &text[..text.len() / 2]).unwrap();

    let run = fhirhouse(&["history", wh.to_str().unwrap()], dir.path());
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert_eq!(run.status.code(), Some(1), "{stdout}{}", String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains(&format!("* {second}  committed")), "{stdout}");
    assert!(stdout.contains(&format!("unreadable run report {}", damaged.display())), "{stdout}");
}

#[test]
fn a_table_name_taken_in_the_warehouse_folder_is_refused_before_the_load_runs() {
    let dir = tempfile::tempdir().unwrap();
    let wh = dir.path().join("wh");
    let views = dir.path().join("views");
    std::fs::create_dir(&views).unwrap();
    std::fs::copy(root().join("schemas/patient.json"), views.join("patient.json")).unwrap();
    let sample = sample();
    let (sample, wh_arg) = (sample.to_str().unwrap(), wh.to_str().unwrap());
    let first = fhirhouse(&["-q", "load", sample, "--out", wh_arg, "--views", views.to_str().unwrap()], dir.path());
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    std::fs::create_dir(wh.join("procedure")).unwrap();
    let reports = listing(&wh.join("_fhirhouse/loads"));

    let run = fhirhouse(&["-q", "load", sample, "--out", wh_arg], dir.path());
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("procedure: exists and is not a table link"), "{stderr}");
    // Refused before it started: no run report, no dead letters, no staging left.
    assert_eq!(listing(&wh.join("_fhirhouse/loads")), reports);
    assert!(listing(&wh.join("_fhirhouse/staging")).is_empty());
}
