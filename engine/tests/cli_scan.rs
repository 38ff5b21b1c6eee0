//! `fhirhouse scan` on the bundled sample and on a dirty file.

use std::process::Command;

fn scan(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fhirhouse")).arg("scan").args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap())
}

#[test]
fn sample_scans_clean_with_every_type_counted() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sample/manifest.json");
    let (code, stdout) = scan(&[sample, "--json"]);
    assert_eq!(code, 0, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["lines"], 4142);
    assert_eq!(report["invalid_lines"], 0);
    assert_eq!(report["resources_by_type"].as_object().unwrap().len(), 18);
}

#[test]
fn invalid_lines_are_counted_and_set_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.ndjson");
    std::fs::write(&file, "{\"resourceType\":\"Patient\"}\n{oops\n").unwrap();
    let (code, stdout) = scan(&[file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(stdout.contains("invalid JSON: 1"), "{stdout}");
}

#[test]
fn lines_are_counted_as_a_load_counts_them_blank_ones_included() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("x.ndjson");
    std::fs::write(&file, "{\"resourceType\":\"Patient\"}\n\n{\"resourceType\":\"Patient\"}\n").unwrap();
    let (code, stdout) = scan(&[file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    // `fhirhouse load` says "3 lines: 2 loaded, ..., 1 blank" of this file.
    assert!(stdout.starts_with("1 file, 0.0 MB, 3 lines (1 blank) in "), "{stdout}");
    let (_, json) = scan(&[file.to_str().unwrap(), "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!((report["lines"].as_u64(), report["blank_lines"].as_u64()), (Some(3), Some(1)), "{json}");
}

#[test]
fn a_closed_output_ends_the_run_quietly() {
    // Both ends of the pipe are made before the run and the reading end closed at once, as
    // `fhirhouse scan ... | head -0` leaves it: every write fails.
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/sample");
    for (args, closed) in [(&["scan", sample][..], "stdout"), (&["gen", "-n", "1", "-o"][..], "stderr")] {
        let dir = tempfile::tempdir().unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let mut command = Command::new(env!("CARGO_BIN_EXE_fhirhouse"));
        command.args(args);
        if closed == "stdout" {
            command.stdout(writer);
        } else {
            command.arg(dir.path().join("export")).stderr(writer);
        }
        let out = command.output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
}
