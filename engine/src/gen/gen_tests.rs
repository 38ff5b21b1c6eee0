use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use chrono::NaiveDate;

use super::*;

fn generate_into(
    dir: &Path,
    patients: u64,
    seed: u64,
    threads: usize,
    tweak: impl FnOnce(&mut GenOptions),
) -> GenSummary {
    let mut options = GenOptions::new(patients, dir.to_path_buf());
    options.seed = seed;
    options.threads = threads;
    tweak(&mut options);
    generate(&options).unwrap()
}

/// Every file of a folder, by name.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            (path.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&path).unwrap())
        })
        .collect()
}

fn collect_references(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("reference", serde_json::Value::String(r)) => out.push(r.clone()),
                    _ => collect_references(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_references(v, out)),
        _ => {}
    }
}

#[test]
fn every_reference_resolves_and_ids_are_unique() {
    let dir = tempfile::tempdir().unwrap();
    let summary = generate_into(dir.path(), 25, 1, 2, |_| {});
    let (mut keys, mut ids, mut references) = (HashSet::new(), HashSet::new(), Vec::new());
    let mut patients = 0;
    for (name, content) in files(dir.path()) {
        if !name.ends_with(".ndjson") {
            continue;
        }
        for line in std::str::from_utf8(&content).unwrap().lines() {
            let resource: serde_json::Value = serde_json::from_str(line).unwrap();
            let (t, id) = (resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap());
            assert!(keys.insert(format!("{t}/{id}")), "{t}/{id} occurs twice");
            ids.insert(id.to_owned());
            patients += u64::from(t == "Patient");
            collect_references(&resource, &mut references);
        }
    }
    assert_eq!(patients, 25);
    assert_eq!(keys.len() as u64, summary.resources);
    assert!(references.len() > 10_000);
    for reference in references.iter().filter(|r| !r.starts_with('#')) {
        let resolved = match reference.strip_prefix("urn:uuid:") {
            Some(id) => ids.contains(id),
            None => keys.contains(reference),
        };
        assert!(resolved, "{reference} does not resolve");
    }
}

/// `(line index, date)` of every `"YYYY-MM-DD` string start.
fn dates(text: &str) -> Vec<NaiveDate> {
    let bytes = text.as_bytes();
    memchr::memchr_iter(b'"', bytes)
        .filter_map(|at| text.get(at + 1..at + 11).filter(|_| matches!(bytes.get(at + 11), Some(b'"' | b'T'))))
        .filter_map(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
        .collect()
}

#[test]
fn dates_shift_by_one_offset_per_patient() {
    let template = Template::bundled();
    let mut shifts = HashSet::new();
    for k in [2, 12, 22, 37] {
        let patient = &template.patients[(k % 10) as usize];
        let shift = PatientRewrite::new(5, k, patient).shift_days();
        shifts.insert(shift);
        let mut out = vec![Vec::new(); template.types.len()];
        let mut lines = vec![0; template.types.len()];
        emit_patient(&template, 5, k, 0.0, &mut out, &mut lines, &mut DefectCounts::default());
        let generated: Vec<NaiveDate> =
            template.types.iter().enumerate().flat_map(|(t, _)| dates(std::str::from_utf8(&out[t]).unwrap())).collect();
        let mut original = Vec::new();
        for t in 0..template.types.len() {
            for line in patient.lines.iter().filter(|l| l.type_index == t) {
                original.extend(dates(std::str::from_utf8(&line.text).unwrap()));
            }
        }
        assert_eq!(generated.len(), original.len());
        assert!(original.len() > 100);
        for (g, o) in generated.iter().zip(&original) {
            assert_eq!((*g - *o).num_days(), i64::from(shift), "patient {k}: {o} became {g}");
        }
    }
    assert!(shifts.len() > 1, "patients get different shifts");
}

#[test]
fn the_same_seed_gives_the_same_bytes_whatever_the_threads() {
    let (a, b, c) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let defects = |o: &mut GenOptions| {
        o.defects = 0.05;
        o.gzip = true;
    };
    let one = generate_into(a.path(), 21, 9, 1, defects);
    generate_into(b.path(), 21, 9, 3, defects);
    generate_into(c.path(), 21, 10, 2, defects);
    assert_eq!(files(a.path()), files(b.path()));
    assert!(one.defects.total > 0);
    let (first, other) = (files(a.path()), files(c.path()));
    assert_eq!(first.keys().collect::<Vec<_>>(), other.keys().collect::<Vec<_>>());
    assert_ne!(first["Patient.000.ndjson.gz"], other["Patient.000.ndjson.gz"], "another seed, other data");
}

#[test]
fn quantities_are_jittered_with_their_decimals() {
    let template = Template::bundled();
    let patient = &template.patients[0];
    let line = patient
        .lines
        .iter()
        .find(|l| l.slots.iter().any(|s| matches!(s.kind, template::SlotKind::Number { decimals: 1, .. })))
        .unwrap();
    let mut out = Vec::new();
    PatientRewrite::new(3, 10, patient).emit(line, &mut out);
    let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let original: serde_json::Value = serde_json::from_slice(&line.text).unwrap();
    let (new, old) =
        (value["valueQuantity"]["value"].as_f64().unwrap(), original["valueQuantity"]["value"].as_f64().unwrap());
    assert!((new - old).abs() <= 0.03 * old.abs() + 0.05, "{old} became {new}");
    let text = value["valueQuantity"]["value"].to_string();
    assert_eq!(text.split_once('.').map(|(_, d)| d.len()), Some(1), "{text}");
}

#[test]
fn a_template_folder_with_the_bundled_sample_generates_the_same_bytes() {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sample");
    let (bundled, from_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    generate_into(bundled.path(), 23, 5, 2, |_| {});
    generate_into(from_dir.path(), 23, 5, 2, |o| o.template = Some(sample.clone()));
    assert_eq!(files(bundled.path()), files(from_dir.path()));
}

#[test]
fn a_template_folder_splits_into_its_own_patients_and_reads_gzip_parts() {
    let dir = tempfile::tempdir().unwrap();
    let patient = |id: &str| format!(r#"{{"resourceType":"Patient","id":"{id}","birthDate":"1970-01-02"}}"#);
    let a = "0b3c0a5e-1111-4c2b-9d7e-000000000001";
    let b = "0b3c0a5e-1111-4c2b-9d7e-000000000002";
    std::fs::write(dir.path().join("Patient.000.ndjson"), format!("{}\n", patient(a))).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, format!("{}\n", patient(b)).as_bytes()).unwrap();
    std::fs::write(dir.path().join("Patient.001.ndjson.gz"), gz.finish().unwrap()).unwrap();
    let condition = format!(
        r#"{{"resourceType":"Condition","id":"0b3c0a5e-1111-4c2b-9d7e-00000000000c","subject":{{"reference":"Patient/{a}"}},"onsetDateTime":"2001-05-06T07:08:09+00:00"}}"#
    );
    std::fs::write(dir.path().join("Condition.ndjson"), format!("{condition}\n")).unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a resource file").unwrap();

    let template = Template::from_dir(dir.path()).unwrap();
    assert_eq!(template.types, ["Condition", "Patient"]);
    assert_eq!(template.patients.len(), 2);
    assert_eq!(template.patients.iter().map(|p| p.lines.len()).collect::<Vec<_>>(), [2, 1]);

    let out = tempfile::tempdir().unwrap();
    let summary = generate_into(out.path(), 4, 1, 1, |o| o.template = Some(dir.path().to_path_buf()));
    // Patients 0 and 2 are template patient a (a Patient and a Condition), 1 and 3 are b.
    assert_eq!(summary.resources, 6);
    let conditions = std::fs::read_to_string(out.path().join("Condition.000.ndjson")).unwrap();
    assert_eq!(conditions.lines().count(), 2);
    assert!(!conditions.contains(a), "ids are rewritten");
}

#[test]
fn a_template_folder_without_patients_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("Observation.ndjson"), "{\"resourceType\":\"Observation\",\"id\":\"o\"}\n").unwrap();
    let err = Template::from_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("no Patient resources"), "{err}");
}
