//! `fhirhouse demo`, the README's first command: the bundled sample loaded and queried.

use std::process::Command;

fn demo(args: &[&str]) -> (i32, String, String) {
    let out =
        Command::new(env!("CARGO_BIN_EXE_fhirhouse")).arg("demo").args(args).env_remove("RUST_LOG").output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn the_demo_loads_the_sample_and_shows_a_query_and_its_result() {
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().join("warehouse");
    let (code, stdout, stderr) = demo(&["--out", warehouse.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains(" committed: 18 files"), "{stderr}");
    assert!(stderr.contains("4142 lines: 4141 loaded"), "{stderr}");
    assert!(stdout.starts_with(fhirhouse::cli::DEMO_QUERY), "{stdout}");
    // A table with a header and at least one row.
    assert!(stdout.contains("| observation ") && stdout.lines().filter(|l| l.starts_with('|')).count() > 2, "{stdout}");
    assert!(warehouse.join("patient").is_dir());

    // Quiet: the same result, nothing said about the load.
    let (code, quiet_stdout, stderr) = demo(&["--out", warehouse.to_str().unwrap(), "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stderr, "");
    assert_eq!(quiet_stdout, stdout);
}
