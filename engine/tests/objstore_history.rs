//! `fhirhouse history` takes a warehouse as the other commands do: a folder, a `file://` URL
//! of one, or an object-store URL (those are covered with a real server in `load_s3.rs`).

use std::process::Command;

#[test]
fn history_reads_a_warehouse_named_by_a_file_url() {
    let warehouse = tempfile::tempdir().unwrap();
    let loads = warehouse.path().join("_fhirhouse/loads");
    std::fs::create_dir_all(&loads).unwrap();
    let id = "20261207T120000Z-0001";
    let report = serde_json::json!({"load_id": id, "status": "committed", "started": "2026-12-07T12:00:00+00:00",
        "totals": {"lines": 3}});
    std::fs::write(loads.join(format!("{id}.json")), report.to_string()).unwrap();
    std::os::unix::fs::symlink(format!("snapshots/{id}"), warehouse.path().join("_fhirhouse/current")).unwrap();

    let url = url::Url::from_directory_path(warehouse.path()).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_fhirhouse")).args(["history", url.as_str()]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains(&format!("* {id}")), "{stdout}");
}
