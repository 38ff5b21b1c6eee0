//! What a load accepts as input: a `.json` file is a manifest only when it is one, a manifest
//! is never read as data, and streams (pipes, FIFOs, `/dev/stdin`) are read whole.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use fhirhouse::load::{load, LoadOptions};

/// Loads the sample into `out` and returns its patient rows, the state later failures must
/// leave alone.
fn load_sample(out: &Path) -> i64 {
    assert!(load_with(&[sample()], out, |_| {}).committed());
    table_rows(out, "patient")
}

/// The error of a load that must not run.
fn load_error(inputs: &[PathBuf], out: &Path) -> String {
    let options = LoadOptions::new(inputs.to_vec(), out.to_path_buf());
    let err = load(&options).expect_err("the load is refused");
    fhirhouse::error_text(err.as_ref())
}

#[test]
fn a_json_file_that_is_no_manifest_is_refused_and_the_warehouse_kept() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let patients = load_sample(&out);
    assert!(patients > 0);
    let first_patient = std::fs::read_to_string(sample().join("Patient.000.ndjson")).unwrap();
    let cases = [
        ("patient.json", first_patient.lines().next().unwrap().to_owned(), "a FHIR Patient resource"),
        ("bundle.json", r#"{"resourceType":"Bundle","type":"collection","entry":[]}"#.to_owned(), "Bundle"),
        ("empty.json", "{}".to_owned(), r#"no "output" array"#),
        ("list.json", "[]".to_owned(), "not a JSON object"),
        ("lines.json", first_patient.clone(), "not one JSON document"),
        ("bad-output.json", r#"{"output": {"url": "x.ndjson"}}"#.to_owned(), r#""output" is not an array"#),
    ];
    for (name, content, why) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, content).unwrap();
        let err = load_error(std::slice::from_ref(&file), &out);
        assert!(err.contains(&*file.to_string_lossy()), "{name}: {err}");
        assert!(err.contains("not a Bulk Data manifest") && err.contains(why), "{name}: {err}");
        assert!(err.contains(".ndjson name"), "{name}: says what to do: {err}");
        assert!(fhirhouse::load::scan(&[file.clone().into()], 1, 1 << 20).is_err(), "{name}: scan refuses it too");
        assert_eq!(table_rows(&out, "patient"), patients, "{name}: the warehouse is untouched");
    }
}

#[test]
fn a_manifest_without_the_optional_fields_real_exports_omit_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(sample().join("Patient.000.ndjson"), dir.path().join("p.ndjson")).unwrap();
    let manifest = dir.path().join("manifest.json");
    std::fs::write(&manifest, r#"{"output": [{"type": "Patient", "url": "p.ndjson"}]}"#).unwrap();
    let outcome = load_with(&[manifest], &dir.path().join("wh"), |_| {});
    assert!(outcome.committed());
    assert_eq!(outcome.report.totals.loaded, 10);
}

#[test]
fn a_manifest_among_other_inputs_is_refused_not_read_as_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let patients = load_sample(&out);
    let manifest = sample().join("manifest.json");
    for inputs in
        [vec![manifest.clone(), manifest.clone()], vec![sample().join("Patient.000.ndjson"), manifest.clone()]]
    {
        let err = load_error(&inputs, &out);
        assert!(err.contains(&*manifest.to_string_lossy()) && err.contains("must be the only input"), "{err}");
        assert_eq!(table_rows(&out, "patient"), patients, "the warehouse is untouched");
    }
    // A `.json` among other inputs that is no manifest gets the precise reason too.
    let stray = dir.path().join("patient.json");
    std::fs::write(&stray, "{}").unwrap();
    let err = load_error(&[sample(), stray], &out);
    assert!(err.contains("not a Bulk Data manifest"), "{err}");
}

/// The sample's patients and a repeat of the first one: duplicates are re-read by offset,
/// which a stream alone cannot serve.
fn patients_with_a_duplicate() -> Vec<u8> {
    let mut text = std::fs::read(sample().join("Patient.000.ndjson")).unwrap();
    let first = text.split(|&b| b == b'\n').next().unwrap().to_vec();
    text.extend_from_slice(&first);
    text.push(b'\n');
    text
}

#[test]
fn standard_input_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["load", "-q", "/dev/stdin", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(sample().join("Patient.000.ndjson")).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &data).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(table_rows(&out, "patient"), 10, "{stderr}");
}

#[test]
fn a_named_pipe_is_read_whole_and_reported_by_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("Patient.pipe.ndjson");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let data = patients_with_a_duplicate();
    let bytes = data.len() as u64;
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
    };
    // A load that opens the pipe twice waits for a second writer for ever: fail, not hang.
    let (done, finished) = std::sync::mpsc::channel();
    let (input, out) = (fifo.clone(), dir.path().join("wh"));
    std::thread::spawn(move || done.send(load_with(&[input], &out, |o| o.chunk_bytes = 1024)).unwrap());
    let outcome = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("the load reads the pipe once");
    writer.join().unwrap();
    let report = &outcome.report;
    assert!(outcome.committed(), "{:?}", report.failure);
    report.check().unwrap();
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path, fifo.to_string_lossy(), "named as given, not by its temporary copy");
    assert_eq!((report.files[0].lines, report.files[0].bytes), (11, bytes));
    assert_eq!(report.duplicates.as_ref().map(|d| d.superseded), Some(1), "{:?}", report.duplicates);
    assert_eq!(table_rows(dir.path().join("wh"), "patient"), 10);
}

#[test]
fn per_file_bytes_are_the_file_sizes_however_files_are_split() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = load_with(&[sample()], &dir.path().join("wh"), |o| o.chunk_bytes = 1000);
    for file in &outcome.report.files {
        assert_eq!(file.bytes, std::fs::metadata(&file.path).unwrap().len(), "{}", file.path);
    }
}

#[test]
fn server_error_files_count_only_operation_outcomes_and_say_when_missing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(sample().join("Patient.000.ndjson"), d.join("p.ndjson")).unwrap();
    let outcome = r#"{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing","diagnostics":"boom"}]}"#;
    std::fs::write(d.join("err.ndjson"), format!("{outcome}\ngarbage\n")).unwrap();
    let manifest = serde_json::json!({
        "transactionTime": "2024-01-01T00:00:00Z",
        "output": [{"type": "Patient", "url": "p.ndjson"}],
        "error": [{"type": "OperationOutcome", "url": "err.ndjson"},
                  {"type": "OperationOutcome", "url": "missing-err.ndjson"}],
    });
    std::fs::write(d.join("manifest.json"), manifest.to_string()).unwrap();
    let outcome = load_with(&[d.join("manifest.json")], &d.join("wh"), |_| {});
    let errors = &outcome.report.server_errors;
    assert_eq!(errors.len(), 2);
    assert_eq!((errors[0].outcomes, errors[0].other_lines, errors[0].unreadable.is_none()), (1, 1, true));
    assert_eq!(errors[1].outcomes, 0);
    assert!(errors[1].unreadable.as_deref().is_some_and(|why| why.contains("missing-err.ndjson")), "{errors:?}");
    let summary = outcome.report.summary();
    assert!(
        summary.contains("server reported 1 OperationOutcome in") && summary.contains("1 other line is"),
        "{summary}"
    );
    assert!(summary.contains("missing-err.ndjson could not be read"), "{summary}");
}

#[test]
fn a_thread_count_far_over_the_cores_is_lowered_and_logs_carry_no_colour_codes() {
    // Idle workers spin before they sleep: 100,000 of them on a few cores took minutes for a
    // load of a second. The run is given a minute, and killed (failing the test) after it.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
        .args(["load", sample().to_str().unwrap(), "--out", dir.path().join("wh").to_str().unwrap()])
        .args(["--threads", "100000"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("a load with --threads 100000 ran for over a minute");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("--threads 100000 is far more than the"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "escape codes in a log that is no terminal: {stderr:?}");
}
