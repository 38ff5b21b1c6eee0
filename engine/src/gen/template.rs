//! The template: the bundled Synthea sample, split per patient and pre-compiled into literal
//! bytes and substitution slots, so that emitting a generated patient is mostly `memcpy`.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use chrono::{Datelike, NaiveDate};

/// One bundled sample file: its resource type and content.
struct SampleFile {
    resource_type: &'static str,
    text: &'static [u8],
}

macro_rules! sample {
    ($($name:literal),* $(,)?) => {
        [$(SampleFile {
            resource_type: $name,
            text: include_bytes!(concat!("../../../tests/data/sample/", $name, ".000.ndjson")),
        }),*]
    };
}

/// The bundled sample (tests/data/sample), embedded so that the binary works anywhere.
const SAMPLE: [SampleFile; 18] = sample!(
    "AllergyIntolerance",
    "CarePlan",
    "CareTeam",
    "Claim",
    "Condition",
    "Device",
    "DiagnosticReport",
    "Encounter",
    "ExplanationOfBenefit",
    "Group",
    "ImagingStudy",
    "Immunization",
    "MedicationRequest",
    "Observation",
    "Organization",
    "Patient",
    "Practitioner",
    "Procedure",
);

/// Resource types written once, unchanged, whatever the number of patients: the pool of
/// providers that every generated patient's resources point to.
const SHARED_TYPES: [&str; 2] = ["Organization", "Practitioner"];

/// The Group type: regenerated with the generated patients as members (see `mod.rs`).
pub const GROUP_TYPE: &str = "Group";

/// What a slot of a [`CompiledLine`] is replaced with.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SlotKind {
    /// The id of the template patient's resource number `n`, rewritten for each generated patient.
    Id(u32),
    /// A `YYYY-MM-DD` date (alone or the start of a dateTime/instant): days from the Common
    /// Era, shifted by the generated patient's offset.
    Date(i32),
    /// A partial date, `YYYY` or `YYYY-MM`, as the value of a date element (see
    /// `partial_date_at`): its first day as days from the Common Era, shifted like a date
    /// and printed with the same precision.
    PartialDate {
        /// The first day of the year or month, as days from the Common Era.
        days: i32,
        /// Characters kept: 4 (`YYYY`) or 7 (`YYYY-MM`).
        len: u8,
    },
    /// A `valueQuantity.value`, jittered, printed with the same number of decimals.
    Number {
        /// The template's value.
        value: f64,
        /// Digits after the decimal point.
        decimals: u8,
    },
}

/// A byte range of a template line that is replaced on output.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slot {
    /// First byte replaced.
    pub start: u32,
    /// One past the last byte replaced.
    pub end: u32,
    /// The replacement.
    pub kind: SlotKind,
}

/// One template resource line: literal bytes with slots, sorted and disjoint.
#[derive(Debug, Clone)]
pub struct CompiledLine {
    /// Index into [`Template::types`].
    pub type_index: usize,
    /// The original line, without its newline.
    pub text: Vec<u8>,
    /// The ranges to replace, in order.
    pub slots: Vec<Slot>,
}

/// Everything one template patient owns: their Patient resource and every resource that
/// refers to them (directly, or through another resource of theirs).
#[derive(Debug, Clone, Default)]
pub struct PatientTemplate {
    /// How many distinct ids the patient's resources have (the `Id` slots' range).
    pub id_count: u32,
    /// Which of those ids is the Patient resource's.
    pub patient_id: u32,
    /// The resource lines, in sample order (by type, then line).
    pub lines: Vec<CompiledLine>,
}

/// The pre-compiled sample.
#[derive(Debug, Clone)]
pub struct Template {
    /// Resource types, sorted: one output file each.
    pub types: Vec<String>,
    /// Lines written once, verbatim (Organization, Practitioner, and anything that belongs to
    /// no patient), with their type index.
    pub shared: Vec<(usize, Vec<u8>)>,
    /// The template patients, in sample order.
    pub patients: Vec<PatientTemplate>,
}

/// A UUID-shaped token: 8-4-4-4-12 hex digits.
const UUID_LEN: usize = 36;

impl Template {
    /// The bundled sample, compiled.
    #[must_use]
    pub fn bundled() -> Template {
        Template::compile(SAMPLE.iter().map(|f| (f.resource_type, f.text))).expect("the bundled sample compiles")
    }

    /// A user's Bulk Data export used as the template (`fhirhouse gen --template DIR`): every
    /// `<Type>[.<part>].ndjson[.gz]` (or `<part>.<Type>.ndjson[.gz]`) file directly in `dir`,
    /// the parts of a type concatenated in name order. References must be `Type/id` or
    /// `urn:uuid:id` with UUID ids, as Synthea writes them: that is how resources are
    /// assigned to their patient.
    ///
    /// # Errors
    ///
    /// The folder or a file cannot be read, a line is not a JSON resource of its file's type,
    /// it holds no Patient resource, or a patient's resource has no UUID id.
    pub fn from_dir(dir: &Path) -> anyhow::Result<Template> {
        let mut by_type: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list template folder {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        paths.sort();
        for path in paths {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else { continue };
            let (stem, gzip) = match (name.strip_suffix(".ndjson"), name.strip_suffix(".ndjson.gz")) {
                (Some(stem), _) => (stem, false),
                (_, Some(stem)) => (stem, true),
                _ => continue,
            };
            // Named as a load names a file's type (`Patient.000.ndjson`, and `1.Patient.ndjson`
            // as the SMART bulk-data client writes it), else by the name's first part.
            let resource_type = crate::source::type_from_name(stem)
                .unwrap_or_else(|| stem.split('.').next().unwrap_or(stem))
                .to_owned();
            let file = std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
            let text = by_type.entry(resource_type.clone()).or_default();
            let start = text.len();
            let read = if gzip {
                flate2::read::MultiGzDecoder::new(file).read_to_end(text)
            } else {
                std::io::BufReader::new(file).read_to_end(text)
            };
            read.with_context(|| format!("cannot read {}", path.display()))?;
            // A load accepts a byte order mark at the start of a file, so a template may too.
            if text[start..].starts_with(b"\xEF\xBB\xBF") {
                text.drain(start..start + 3);
            }
            check_lines(&path, &resource_type, &text[start..])?;
            text.push(b'\n');
        }
        let template = Template::compile(by_type.iter().map(|(t, text)| (t.as_str(), text.as_slice())))
            .with_context(|| format!("template {}", dir.display()))?;
        if template.patients.is_empty() {
            bail!("{}: no Patient resources to use as a template (expected Patient.*.ndjson)", dir.display());
        }
        Ok(template)
    }

    /// Compiles sample files given as (resource type, NDJSON content). Lines of the Group type
    /// are dropped: the generator writes its own.
    ///
    /// A resource that belongs to a patient must have a UUID id: only UUID-shaped tokens are
    /// rewritten, so any other id would be repeated for every generated patient (duplicate
    /// resources, which a load dead-letters), or a Patient would not even find its own lines.
    fn compile<'t>(files: impl Iterator<Item = (&'t str, &'t [u8])>) -> anyhow::Result<Template> {
        let mut files: Vec<_> = files.collect();
        files.sort_by_key(|(t, _)| *t);
        let types: Vec<String> = files.iter().map(|(t, _)| (*t).to_owned()).collect();
        // (type index, line, own id) of every resource that may belong to a patient.
        let mut candidates = Vec::new();
        let mut shared = Vec::new();
        for (type_index, (resource_type, text)) in files.iter().enumerate() {
            for line in text.split(|&b| b == b'\n').filter(|l| !l.iter().all(u8::is_ascii_whitespace)) {
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                if SHARED_TYPES.contains(resource_type) {
                    shared.push((type_index, line.to_vec()));
                } else if *resource_type != GROUP_TYPE {
                    candidates.push((type_index, line, resource_id(line)));
                }
            }
        }
        // Owner of each resource id: the patient it names, found through references.
        let mut owner: HashMap<&[u8], usize> = HashMap::new();
        let mut patient_order = Vec::new();
        let mut line_owner: Vec<Option<usize>> = vec![None; candidates.len()];
        for (i, (type_index, _, id)) in candidates.iter().enumerate() {
            if types[*type_index] == "Patient" {
                let Some(id) = id else { bail!("a Patient resource has no id") };
                // A Patient line is its own patient's, even when it mentions another patient
                // first (Patient.link): otherwise one generated patient would get two Patients.
                line_owner[i] = Some(patient_order.len());
                owner.insert(id, patient_order.len());
                patient_order.push(*id);
            }
        }
        // A resource belongs to the patient of the first owned id it mentions; passes repeat
        // until none settles, for resources that only point at other owned resources (a
        // resource left unsettled would be written once, its references to the template
        // patient's rewritten ids dangling).
        loop {
            let mut changed = false;
            for (i, (_, line, id)) in candidates.iter().enumerate() {
                if line_owner[i].is_some() {
                    continue;
                }
                let found = uuid_tokens(line).find_map(|at| owner.get(&line[at..at + UUID_LEN]).copied());
                if let Some(p) = found {
                    line_owner[i] = Some(p);
                    if let Some(id) = id {
                        owner.insert(id, p);
                    }
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let mut patients: Vec<PatientTemplate> = vec![PatientTemplate::default(); patient_order.len()];
        let mut ids: Vec<HashMap<&[u8], u32>> = vec![HashMap::new(); patient_order.len()];
        for (p, id) in patient_order.iter().enumerate() {
            ids[p].insert(id, 0);
            patients[p].id_count = 1;
        }
        for ((type_index, line, id), line_owner) in candidates.iter().zip(&line_owner) {
            match line_owner {
                Some(p) => {
                    if !id.is_some_and(|id| id.len() == UUID_LEN && is_uuid(id)) {
                        let id = id.map(String::from_utf8_lossy).unwrap_or_default();
                        bail!(
                            "{} {id:?} is a patient's resource but its id is not a UUID: generating \
                             rewrites only UUID ids (as Synthea writes them), so this one would repeat \
                             for every generated patient",
                            types[*type_index]
                        );
                    }
                    let compiled = compile_line(*type_index, line, |token| {
                        if owner.get(token) != Some(p) {
                            return None;
                        }
                        let next = ids[*p].len() as u32;
                        Some(*ids[*p].entry(token).or_insert(next))
                    });
                    patients[*p].id_count = ids[*p].len() as u32;
                    patients[*p].lines.push(compiled);
                }
                None => shared.push((*type_index, line.to_vec())),
            }
        }
        Ok(Template { types, shared, patients })
    }

    /// Index of a resource type in [`Template::types`].
    #[must_use]
    pub fn type_index(&self, resource_type: &str) -> Option<usize> {
        self.types.iter().position(|t| t == resource_type)
    }
}

/// Refuses a template file with a line that is not a JSON object of the file's resource type.
/// Lines are copied as they are, so a broken one would be repeated for every generated
/// patient, and a load would dead-letter lines that `defects.json` does not count.
fn check_lines(path: &Path, resource_type: &str, text: &[u8]) -> anyhow::Result<()> {
    /// Parsing into this checks the whole line's JSON but keeps only `resourceType`.
    #[derive(serde::Deserialize)]
    struct Head<'a> {
        #[serde(rename = "resourceType", borrow)]
        resource_type: Option<std::borrow::Cow<'a, str>>,
    }
    for (n, line) in text.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue; // Skipped by `compile`, as a load skips blank lines.
        }
        // A struct also deserializes from a JSON array: only an object is a resource.
        let problem = if line.trim_ascii_start().first() != Some(&b'{') {
            Some("not a JSON object".to_owned())
        } else {
            match serde_json::from_slice::<Head>(line) {
                Err(e) => Some(format!("invalid JSON ({e})")),
                Ok(Head { resource_type: None }) => Some("no resourceType".to_owned()),
                Ok(Head { resource_type: Some(t) }) if t != resource_type => {
                    Some(format!("a {t} resource in a file of {resource_type} resources"))
                }
                Ok(_) => None,
            }
        };
        if let Some(problem) = problem {
            bail!("template file {}, line {}: {problem}", path.display(), n + 1);
        }
    }
    Ok(())
}

/// The `id` of a resource line, when it is the usual `{"resourceType":"X","id":"..."` start.
fn resource_id(line: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(line, b"\"id\":\"")? + 6;
    let len = memchr::memchr(b'"', &line[at..])?;
    Some(&line[at..at + len])
}

/// Start offsets of UUID-shaped tokens not embedded in a longer run of hex digits.
fn uuid_tokens(line: &[u8]) -> impl Iterator<Item = usize> + '_ {
    let last = line.len().saturating_sub(UUID_LEN);
    (0..=last).filter(move |&at| {
        line.len() >= UUID_LEN
            && is_uuid(&line[at..at + UUID_LEN])
            && (at == 0 || !line[at - 1].is_ascii_alphanumeric())
            && line.get(at + UUID_LEN).is_none_or(|b| !b.is_ascii_alphanumeric())
    })
}

fn is_uuid(token: &[u8]) -> bool {
    token.iter().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => *b == b'-',
        // Upper case too: the hex digits of a UUID are case-insensitive (RFC 9562).
        _ => b.is_ascii_hexdigit(),
    })
}

/// Splits a line into literals and slots: owned ids (`id_slot` says which tokens and their
/// index), dates at the start of a string, and `valueQuantity` values.
fn compile_line<'a>(
    type_index: usize,
    line: &'a [u8],
    mut id_slot: impl FnMut(&'a [u8]) -> Option<u32>,
) -> CompiledLine {
    let mut slots = Vec::new();
    for at in uuid_tokens(line) {
        if let Some(n) = id_slot(&line[at..at + UUID_LEN]) {
            slots.push(Slot { start: at as u32, end: (at + UUID_LEN) as u32, kind: SlotKind::Id(n) });
        }
    }
    for at in memchr::memchr_iter(b'"', line) {
        if let Some(days) = date_at(line, at + 1) {
            slots.push(Slot { start: at as u32 + 1, end: at as u32 + 11, kind: SlotKind::Date(days) });
        } else if let Some((days, len)) = partial_date_at(line, at + 1) {
            let kind = SlotKind::PartialDate { days, len };
            slots.push(Slot { start: at as u32 + 1, end: (at + 1 + usize::from(len)) as u32, kind });
        }
    }
    const QUANTITY: &[u8] = b"\"valueQuantity\":{\"value\":";
    for at in memchr::memmem::find_iter(line, QUANTITY) {
        let start = at + QUANTITY.len();
        let len = line[start..].iter().take_while(|b| b.is_ascii_digit() || **b == b'.' || **b == b'-').count();
        let number = std::str::from_utf8(&line[start..start + len]).ok();
        if let Some(value) = number.and_then(|n| n.parse::<f64>().ok()) {
            let decimals = number.and_then(|n| n.split_once('.')).map_or(0, |(_, d)| d.len()) as u8;
            let kind = SlotKind::Number { value, decimals };
            slots.push(Slot { start: start as u32, end: (start + len) as u32, kind });
        }
    }
    slots.sort_by_key(|s| s.start);
    CompiledLine { type_index, text: line.to_vec(), slots }
}

/// A `YYYY-MM-DD` date starting at `at`, directly after a quote and followed by a quote or
/// `T` (a date, dateTime or instant value), as days from the Common Era.
fn date_at(line: &[u8], at: usize) -> Option<i32> {
    let d = line.get(at..at + 11)?;
    let digits = [0, 1, 2, 3, 5, 6, 8, 9].iter().all(|&i| d[i].is_ascii_digit());
    if !digits || d[4] != b'-' || d[7] != b'-' || !(d[10] == b'"' || d[10] == b'T') {
        return None;
    }
    let number = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0'));
    let date = NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))?;
    Some(date.num_days_from_ce())
}

/// A partial date (`YYYY` or `YYYY-MM`, as a de-identified birth date or a vague onset is
/// written) starting at `at`, directly after a quote and followed by one, as the value of a
/// date element: its first day as days from the Common Era, and its length. Left unshifted,
/// it would stay years after the patient's other, shifted dates (a birth year after the
/// first encounter, a `Period.start` after its end). The key is checked because such short
/// strings are also postal codes, codes and identifiers: only a key that names a date
/// (`...Date`, `...DateTime`, `date`, `start`, `end`) counts.
fn partial_date_at(line: &[u8], at: usize) -> Option<(i32, u8)> {
    let len = line.get(at..)?.iter().take(8).position(|&b| b == b'"')?;
    let d = &line[at..at + len];
    let month = match len {
        4 => None,
        7 if d[4] == b'-' => Some(&d[5..7]),
        _ => return None,
    };
    let number = |digits: &[u8]| {
        digits.iter().all(u8::is_ascii_digit).then(|| digits.iter().fold(0u32, |n, b| n * 10 + u32::from(b - b'0')))
    };
    let year = number(&d[..4]).filter(|y| *y >= 1)?;
    let month = match month {
        Some(m) => number(m)?,
        None => 1,
    };
    let date = NaiveDate::from_ymd_opt(year as i32, month, 1)?;
    // Back from the opening quote over `"key":` (spaces allowed around the colon).
    let before = line[..at.checked_sub(1)?].trim_ascii_end().strip_suffix(b":")?.trim_ascii_end();
    let before = before.strip_suffix(b"\"")?;
    let key = &before[memchr::memrchr(b'"', before)? + 1..];
    let date_key = key.ends_with(b"Date") || key.ends_with(b"DateTime") || matches!(key, b"date" | b"start" | b"end");
    date_key.then_some((date.num_days_from_ce(), len as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bundled_sample_splits_into_ten_patients_and_a_shared_pool() {
        let template = Template::bundled();
        assert_eq!(template.types.len(), 18);
        assert_eq!(template.patients.len(), 10);
        let shared: std::collections::BTreeSet<_> =
            template.shared.iter().map(|(t, _)| template.types[*t].as_str()).collect();
        assert_eq!(shared.into_iter().collect::<Vec<_>>(), ["Organization", "Practitioner"]);
        let owned: usize = template.patients.iter().map(|p| p.lines.len()).sum();
        // 4,142 resources: 203 + 203 shared, 1 Group.
        assert_eq!(owned, 4142 - 406 - 1);
    }

    #[test]
    fn dates_need_a_full_date_after_a_quote() {
        assert!(date_at(b"\"2011-02-02T16:30:49-05:00\"", 1).is_some());
        assert!(date_at(b"\"1985-06-18\"", 1).is_some());
        assert!(date_at(b"\"2011-02\"", 1).is_none());
        assert!(date_at(b"\"2011-02-30\"", 1).is_none());
    }

    #[test]
    fn partial_dates_need_a_date_key() {
        let at = |line: &str| partial_date_at(line.as_bytes(), line.find(":\"").unwrap() + 2).map(|(_, len)| len);
        assert_eq!(at(r#"{"birthDate":"1970"}"#), Some(4));
        assert_eq!(at(r#"{"onsetDateTime":"2019-05"}"#), Some(7));
        assert_eq!(at(r#"{"period":{"start":"2019-05","end":"2019-06"}}"#), Some(7));
        assert_eq!(at(r#"{"postalCode":"1060"}"#), None);
        assert_eq!(at(r#"{"code":"2019"}"#), None);
        assert_eq!(at(r#"{"birthDate":"2019-13"}"#), None);
        assert_eq!(at(r#"{"birthDate":"19700"}"#), None);
        assert_eq!(at(r#"{"birthDate":"0000"}"#), None);
    }
}
