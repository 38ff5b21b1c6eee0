//! A load killed with SIGKILL at any point leaves the previous state readable, complete,
//! and without partial files; the next load cleans up and succeeds.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// Every file under a table folder, relative to it.
fn files_under(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.path().is_dir() {
            files_under(&entry.path(), &format!("{name}/"), out);
        } else {
            out.insert(name);
        }
    }
}

/// Checks that every table folder holds exactly the files its metadata lists.
fn assert_no_stray_files(out: &Path) {
    let tables = out.join("_fhirhouse/current/_tables");
    for entry in std::fs::read_dir(tables).unwrap() {
        let meta: serde_json::Value = serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
        let table = meta["table"].as_str().unwrap();
        let listed: BTreeSet<String> =
            meta["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_owned()).collect();
        let mut present = BTreeSet::new();
        files_under(&out.join(table), "", &mut present);
        assert_eq!(present, listed, "{table}: files on disk are exactly the published ones");
    }
}

#[test]
fn kill_9_mid_load_leaves_the_previous_state_intact() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("wh");
    load_with(&[sample()], &out, |_| {});
    let before = table_counts(&out);

    // A bigger export: the sample eight times over, so a load takes long enough to kill.
    let big = dir.path().join("big");
    std::fs::create_dir(&big).unwrap();
    for entry in std::fs::read_dir(sample()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".ndjson") {
            let data = std::fs::read(&path).unwrap();
            std::fs::write(big.join(&name), data.repeat(8)).unwrap();
        }
    }

    let mut interrupted = 0;
    for delay_ms in [30, 100, 250, 500, 1000, 2000] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fhirhouse"))
            .args(["-q", "load", "--threads", "2", "--out"])
            .arg(&out)
            .arg(&big)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let finished = child.try_wait().unwrap().is_some();
        child.kill().ok();
        child.wait().unwrap();
        let staging_left = std::fs::read_dir(out.join("_fhirhouse/staging")).unwrap().next().is_some();
        if !finished && staging_left {
            interrupted += 1;
        }
        // Killed before the commit point, the previous load is what readers see; after it,
        // the new one, whose eight copies of each resource collapse to the same tables.
        assert_eq!(table_counts(&out), before);
        assert_no_stray_files(&out);
        if finished {
            break;
        }
    }
    assert!(interrupted > 0, "no kill landed mid-load; the test proved nothing");

    // The next load removes the interrupted staging folders and publishes normally.
    let outcome = load_with(&[sample()], &out, |_| {});
    assert!(outcome.committed());
    assert_eq!(table_counts(&out), before);
    assert!(std::fs::read_dir(out.join("_fhirhouse/staging")).unwrap().next().is_none());
    assert_no_stray_files(&out);
}
