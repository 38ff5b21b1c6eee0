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

/// A template folder holding `files` (name, lines).
fn template_dir(files: &[(&str, Vec<String>)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, lines) in files {
        std::fs::write(dir.path().join(name), lines.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
    }
    dir
}

/// References of the NDJSON files in `dir` that name no resource there.
fn unresolved_references(dir: &Path) -> Vec<String> {
    let (mut keys, mut references) = (HashSet::new(), Vec::new());
    for (name, content) in files(dir) {
        if !name.ends_with(".ndjson") {
            continue;
        }
        for line in std::str::from_utf8(&content).unwrap().lines() {
            let resource: serde_json::Value = serde_json::from_str(line).unwrap();
            keys.insert(format!("{}/{}", resource["resourceType"].as_str().unwrap(), resource["id"].as_str().unwrap()));
            collect_references(&resource, &mut references);
        }
    }
    references.retain(|r| !keys.contains(r));
    references
}

const PATIENT_A: &str = "0b3c0a5e-1111-4c2b-9d7e-00000000000a";
const PATIENT_B: &str = "0b3c0a5e-1111-4c2b-9d7e-00000000000b";

fn patient_line(id: &str) -> String {
    format!(r#"{{"resourceType":"Patient","id":"{id}","birthDate":"1970-01-02"}}"#)
}

fn condition_line(id: &str, patient: &str) -> String {
    format!(r#"{{"resourceType":"Condition","id":"{id}","subject":{{"reference":"Patient/{patient}"}}}}"#)
}

#[test]
fn a_template_whose_patient_resources_have_other_ids_than_uuids_is_refused() {
    // A Patient id that is not a UUID: its lines were copied once, unrewritten, whatever N.
    let dir = template_dir(&[("Patient.ndjson", vec![patient_line("pat-1")])]);
    let err = format!("{:#}", Template::from_dir(dir.path()).unwrap_err());
    assert!(err.contains("\"pat-1\"") && err.contains("not a UUID"), "{err}");
    // A patient's Condition with such an id: every generated patient repeated it.
    let dir = template_dir(&[
        ("Patient.ndjson", vec![patient_line(PATIENT_A)]),
        ("Condition.ndjson", vec![condition_line("cond-1", PATIENT_A)]),
    ]);
    let err = format!("{:#}", Template::from_dir(dir.path()).unwrap_err());
    assert!(err.contains("Condition \"cond-1\"") && err.contains("not a UUID"), "{err}");
}

#[test]
fn a_template_with_upper_case_uuids_generates_resolving_references() {
    let (a, c) = (PATIENT_A.to_uppercase(), "0B3C0A5E-1111-4C2B-9D7E-00000000000C");
    let dir =
        template_dir(&[("Patient.ndjson", vec![patient_line(&a)]), ("Condition.ndjson", vec![condition_line(c, &a)])]);
    let out = tempfile::tempdir().unwrap();
    let summary = generate_into(out.path(), 3, 1, 1, |o| o.template = Some(dir.path().to_path_buf()));
    assert_eq!(summary.resources, 6);
    assert_eq!(unresolved_references(out.path()), Vec::<String>::new());
}

#[test]
fn a_template_line_that_is_not_a_resource_of_its_file_is_refused() {
    for (line, expected) in [
        ("not json at all".to_owned(), "not a JSON object"),
        (format!(r#"[{}]"#, patient_line(PATIENT_B)), "not a JSON object"),
        (patient_line(PATIENT_B).replace('}', ""), "invalid JSON"),
        (r#"{"id":"x"}"#.to_owned(), "no resourceType"),
        (condition_line(PATIENT_B, PATIENT_A), "a Condition resource in a file of Patient resources"),
    ] {
        let dir = template_dir(&[("Patient.000.ndjson", vec![patient_line(PATIENT_A), String::new(), line])]);
        let err = Template::from_dir(dir.path()).unwrap_err().to_string();
        assert!(err.contains("Patient.000.ndjson, line 3") && err.contains(expected), "{err}");
    }
}

#[test]
fn a_template_file_with_a_byte_order_mark_and_blank_lines_generates_valid_lines() {
    let dir = template_dir(&[(
        "Patient.ndjson",
        vec![format!("\u{feff}{}", patient_line(PATIENT_A)), "  ".to_owned(), patient_line(PATIENT_B)],
    )]);
    let out = tempfile::tempdir().unwrap();
    let summary = generate_into(out.path(), 4, 1, 1, |o| o.template = Some(dir.path().to_path_buf()));
    assert_eq!(summary.resources, 4);
    let patients = std::fs::read_to_string(out.path().join("Patient.000.ndjson")).unwrap();
    for line in patients.lines() {
        assert!(serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v.is_object()), "{line:?}");
    }
}

#[test]
fn generating_into_the_template_folder_is_refused() {
    let dir = template_dir(&[("Patient.ndjson", vec![patient_line(PATIENT_A)])]);
    let mut options = GenOptions::new(2, dir.path().join("."));
    options.template = Some(dir.path().to_path_buf());
    let err = generate(&options).unwrap_err().to_string();
    assert!(err.contains("is the --template folder"), "{err}");
    // The template is untouched.
    assert_eq!(files(dir.path()).keys().collect::<Vec<_>>(), ["Patient.ndjson"]);
}

#[test]
fn resources_reaching_their_patient_through_a_long_chain_belong_to_the_patient() {
    // Each type refers only to the one before it, and sorts before it: the sample's order
    // settles one link of the chain per pass.
    let chain = ["Zeta", "Yankee", "Xray", "Whiskey", "Victor", "Uniform"];
    let mut files = vec![("Patient.ndjson".to_owned(), vec![patient_line(PATIENT_A)])];
    let mut previous = format!("Patient/{PATIENT_A}");
    for (i, t) in chain.iter().enumerate() {
        let id = format!("0b3c0a5e-2222-4c2b-9d7e-00000000000{i}");
        let line = format!(r#"{{"resourceType":"{t}","id":"{id}","focus":{{"reference":"{previous}"}}}}"#);
        files.push((format!("{t}.ndjson"), vec![line]));
        previous = format!("{t}/{id}");
    }
    let files: Vec<(&str, Vec<String>)> = files.iter().map(|(n, l)| (n.as_str(), l.clone())).collect();
    let dir = template_dir(&files);
    let template = Template::from_dir(dir.path()).unwrap();
    assert!(template.shared.is_empty(), "every resource is the patient's");
    let out = tempfile::tempdir().unwrap();
    let summary = generate_into(out.path(), 3, 1, 1, |o| o.template = Some(dir.path().to_path_buf()));
    assert_eq!(summary.resources, 3 * 7);
    assert_eq!(unresolved_references(out.path()), Vec::<String>::new());
}

#[test]
fn a_patient_line_belongs_to_its_own_patient_even_when_it_names_another_first() {
    let linked = format!(
        r#"{{"resourceType":"Patient","link":[{{"other":{{"reference":"Patient/{PATIENT_B}"}},"type":"seealso"}}],"id":"{PATIENT_A}"}}"#
    );
    let dir = template_dir(&[("Patient.ndjson", vec![linked, patient_line(PATIENT_B)])]);
    let template = Template::from_dir(dir.path()).unwrap();
    assert_eq!(template.patients.iter().map(|p| p.lines.len()).collect::<Vec<_>>(), [1, 1]);
}

#[test]
fn a_type_without_lines_gets_no_file() {
    // An empty Condition file in the template: the export had a 0-byte Condition.000.ndjson.gz,
    // which is no gzip file, and which the manifest did not list.
    let dir = template_dir(&[("Patient.ndjson", vec![patient_line(PATIENT_A)]), ("Condition.ndjson", vec![])]);
    let out = tempfile::tempdir().unwrap();
    generate_into(out.path(), 2, 1, 1, |o| {
        o.template = Some(dir.path().to_path_buf());
        o.gzip = true;
    });
    assert_eq!(files(out.path()).keys().collect::<Vec<_>>(), ["Patient.000.ndjson.gz", "manifest.json"]);

    // The bundled sample's first patient has no Device: one patient gets no Device file.
    let out = tempfile::tempdir().unwrap();
    generate_into(out.path(), 1, 1, 1, |o| o.gzip = true);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("manifest.json")).unwrap()).unwrap();
    let listed: Vec<&str> = manifest["output"].as_array().unwrap().iter().map(|o| o["url"].as_str().unwrap()).collect();
    let data = files(out.path());
    let on_disk: Vec<&str> = data.keys().map(String::as_str).filter(|n| n.ends_with(".gz")).collect();
    assert_eq!(on_disk, listed);
    assert!(!on_disk.contains(&"Device.000.ndjson.gz"));
}

#[test]
fn a_patient_id_alone_is_the_one_of_the_whole_rewrite() {
    let template = Template::bundled();
    for k in [0, 7, 13, 99_999] {
        let patient = &template.patients[(k % 10) as usize];
        let rewrite = PatientRewrite::new(3, k, patient);
        for n in [patient.patient_id, 1, patient.id_count - 1] {
            assert_eq!(PatientRewrite::id_alone(3, k, n), rewrite.id(n), "patient {k}, id {n}");
        }
    }
}

#[test]
fn partial_dates_shift_with_the_patient_and_keep_their_precision() {
    // A de-identified birth year and a month-precision start: they stayed put while the full
    // dates moved back, so a Period started after it ended and encounters preceded birth.
    let dir = template_dir(&[
        (
            "Patient.ndjson",
            vec![format!(
                r#"{{"resourceType":"Patient","id":"{PATIENT_A}","birthDate":"2019","address":[{{"postalCode":"2019"}}]}}"#
            )],
        ),
        (
            "Encounter.ndjson",
            vec![format!(
                r#"{{"resourceType":"Encounter","id":"0b3c0a5e-1111-4c2b-9d7e-00000000000e","subject":{{"reference":"Patient/{PATIENT_A}"}},"type":[{{"coding":[{{"code":"2019"}}]}}],"period":{{"start":"2019-05","end":"2019-05-20T10:00:00Z"}}}}"#
            )],
        ),
    ]);
    let out = tempfile::tempdir().unwrap();
    generate_into(out.path(), 20, 4, 1, |o| o.template = Some(dir.path().to_path_buf()));
    let read = |name: &str| -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(out.path().join(name)).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let (patients, encounters) = (read("Patient.000.ndjson"), read("Encounter.000.ndjson"));
    let mut shifted = 0;
    for (patient, encounter) in patients.iter().zip(&encounters) {
        let birth = patient["birthDate"].as_str().unwrap();
        let (start, end) =
            (encounter["period"]["start"].as_str().unwrap(), encounter["period"]["end"].as_str().unwrap());
        assert_eq!((birth.len(), start.len()), (4, 7), "precision kept: {birth}, {start}");
        assert!(birth <= &start[..4] && start <= &end[..7], "{birth} <= {start} <= {end}");
        assert_eq!(patient["address"][0]["postalCode"], "2019", "not a date");
        assert_eq!(encounter["type"][0]["coding"][0]["code"], "2019", "not a date");
        shifted += usize::from(birth != "2019");
    }
    assert!(shifted > 10, "birth years move back with the patient's other dates");
}

#[test]
fn a_template_file_may_carry_its_type_after_a_part_number() {
    // As the SMART bulk-data client names files; a load reads them so, and so does a template.
    let dir = template_dir(&[
        ("1.Patient.ndjson", vec![patient_line(PATIENT_A)]),
        ("2.Condition.ndjson", vec![condition_line("0b3c0a5e-1111-4c2b-9d7e-00000000000c", PATIENT_A)]),
    ]);
    let template = Template::from_dir(dir.path()).unwrap();
    assert_eq!(template.types, ["Condition", "Patient"]);
    assert_eq!(template.patients.len(), 1);
}
