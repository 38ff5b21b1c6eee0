//! The NLM SNOMED CT → ICD-10-CM map in its RF2 release format (the ExtendedMap reference
//! set, `der2_iisssciRefset_ExtendedMap...txt`, refset 6011000124106), given with
//! `fhirhouse load --snomed-icd10-map PATH`.
//!
//! The map is rule based: for one concept, each map group yields one ICD-10-CM code, chosen
//! at run time by evaluating the group's rules in `mapPriority` order; the first rule that
//! holds applies. Rules test the patient's age or sex (`IFA 445518008 | Age at onset ... |
//! < 18.0 years`), another coded finding, or nothing (`TRUE`); the last rule of a group is
//! `OTHERWISE TRUE`, the default. A load has no patient context at this point, so fhirhouse
//! uses the **unconditional rules of map group 1**:
//!
//! 1. rows of refset 6011000124106 only; of several versions of one row `id` (a Full
//!    release), the latest `effectiveTime`; inactive rows (`active` = 0) dropped;
//! 2. `mapGroup` = 1 (further groups add secondary codes, such as the organism of an
//!    infection; they are not used);
//! 3. `mapRule` = `TRUE` or `OTHERWISE TRUE`; conditional (`IFA ...`) rules are skipped;
//! 4. of what is left, the lowest `mapPriority`: one target per concept.
//!
//! An empty `mapTarget` (the concept cannot be classified without more context, or is out
//! of scope) makes the concept *unmatched*, with `mapAdvice` as the reason. Targets get the
//! relationship `relatedto` (the map does not state an equivalence) and `mapAdvice` as note.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::index::Relationship;
use super::tables::MapRow;
use super::MappingError;

/// The refset id of the NLM SNOMED CT → ICD-10-CM map.
pub const SNOMED_ICD10CM_REFSET: &str = "6011000124106";

const COLUMNS: [&str; 11] = [
    "id",
    "effectiveTime",
    "active",
    "refsetId",
    "referencedComponentId",
    "mapGroup",
    "mapPriority",
    "mapRule",
    "mapAdvice",
    "mapTarget",
    "mapCategoryId",
];

struct Member {
    line: u64,
    effective_time: String,
    active: bool,
    concept: String,
    group: u32,
    priority: u32,
    rule: String,
    advice: String,
    target: String,
}

/// Reads the map at `path` and applies the rule of the module docs.
///
/// # Errors
///
/// An unreadable file, a header without the ExtendedMap columns, a row with too few fields
/// or a non-numeric group or priority; naming file and line.
pub fn read_extended_map(path: &Path) -> Result<Vec<MapRow>, MappingError> {
    let file = path.display().to_string();
    if path.is_dir() {
        // Opening a folder succeeds; reading its "first line" would then fail as line 1.
        return Err(MappingError::at(
            &file,
            0,
            "is a folder: name the ExtendedMap file itself (der2_iisssccRefset_ExtendedMapSnapshot_*.txt)",
        ));
    }
    let reader = std::fs::File::open(path).map_err(|e| MappingError::at(&file, 0, e))?;
    read_extended_map_from(BufReader::new(reader), &file)
}

/// [`read_extended_map`] over any reader; `file` names it in errors.
///
/// # Errors
///
/// As [`read_extended_map`].
pub fn read_extended_map_from(reader: impl BufRead, file: &str) -> Result<Vec<MapRow>, MappingError> {
    let mut lines = reader.lines();
    let header = lines
        .next()
        .ok_or_else(|| MappingError::at(file, 1, "empty file"))?
        .map_err(|e| MappingError::at(file, 1, e))?;
    // A UTF-8 BOM (files saved by Windows tools) would hide the first column, `id`.
    let header: Vec<&str> = header.trim_start_matches('\u{feff}').trim_end_matches('\r').split('\t').collect();
    let mut at = [0usize; COLUMNS.len()];
    for (slot, name) in at.iter_mut().zip(COLUMNS) {
        *slot = header.iter().position(|h| *h == name).ok_or_else(|| {
            MappingError::at(file, 1, format!("not an RF2 ExtendedMap file: no {name} column in the header"))
        })?;
    }
    let width = at.iter().max().copied().unwrap_or(0) + 1;
    let mut latest: HashMap<String, Member> = HashMap::new();
    // Refsets of the rows skipped, for the error when none is the NLM map's.
    let mut other_refsets: Vec<String> = Vec::new();
    for (i, line) in lines.enumerate() {
        let number = i as u64 + 2;
        let line = line.map_err(|e| MappingError::at(file, number, e))?;
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() < width {
            return Err(MappingError::at(
                file,
                number,
                format!("{} fields, the header has {}", fields.len(), header.len()),
            ));
        }
        let field = |c: usize| fields[at[c]];
        if field(3) != SNOMED_ICD10CM_REFSET {
            if other_refsets.len() < 3 && !other_refsets.iter().any(|r| r == field(3)) {
                other_refsets.push(field(3).to_owned());
            }
            continue;
        }
        let number_at = |c: usize| {
            field(c)
                .parse::<u32>()
                .map_err(|_| MappingError::at(file, number, format!("{} is not a number: {:?}", COLUMNS[c], field(c))))
        };
        let member = Member {
            line: number,
            effective_time: field(1).to_owned(),
            active: field(2) == "1",
            concept: field(4).to_owned(),
            group: number_at(5)?,
            priority: number_at(6)?,
            rule: field(7).trim().to_owned(),
            advice: field(8).trim().to_owned(),
            target: field(9).trim().to_owned(),
        };
        match latest.get(field(0)) {
            Some(seen) if seen.effective_time >= member.effective_time => {}
            _ => {
                latest.insert(field(0).to_owned(), member);
            }
        }
    }
    if latest.is_empty() {
        // Another map (the SNOMED CT → ICD-10 WHO map is 447562003) would otherwise load
        // as nothing at all, leaving every code to the shipped tables without a word.
        let found = if other_refsets.is_empty() {
            "no rows".to_owned()
        } else {
            format!("refsets {}", other_refsets.join(", "))
        };
        return Err(MappingError::at(
            file,
            0,
            format!("no row of the SNOMED CT → ICD-10-CM map (refset {SNOMED_ICD10CM_REFSET}); found {found}"),
        ));
    }
    let mut chosen: HashMap<String, Member> = HashMap::new();
    for member in latest.into_values() {
        let unconditional = member.rule == "TRUE" || member.rule == "OTHERWISE TRUE";
        if !member.active || member.group != 1 || !unconditional {
            continue;
        }
        // Equal priorities (a malformed map) go to the earlier line, not to hash order.
        match chosen.get(&member.concept) {
            Some(best) if (best.priority, best.line) <= (member.priority, member.line) => {}
            _ => {
                chosen.insert(member.concept.clone(), member);
            }
        }
    }
    let mut members: Vec<Member> = chosen.into_values().collect();
    members.sort_by_key(|m| m.line);
    Ok(members
        .into_iter()
        .map(|m| {
            let matched = !m.target.is_empty();
            let note = (!m.advice.is_empty()).then_some(m.advice);
            MapRow {
                line: m.line,
                source_system: "http://snomed.info/sct".to_owned(),
                source_code: m.concept,
                source_display: None,
                target_system: "http://hl7.org/fhir/sid/icd-10-cm".to_owned(),
                target_code: matched.then_some(m.target),
                target_display: None,
                relationship: if matched { Relationship::RelatedTo } else { Relationship::Unmatched },
                note: if matched {
                    note
                } else {
                    Some(note.unwrap_or_else(|| "no ICD-10-CM target in the NLM map".into()))
                },
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "id\teffectiveTime\tactive\tmoduleId\trefsetId\treferencedComponentId\tmapGroup\tmapPriority\tmapRule\tmapAdvice\tmapTarget\tcorrelationId\tmapCategoryId\n";

    /// One refset row: id, effectiveTime, active, concept, (group, priority), rule, target.
    fn line(
        id: &str,
        time: &str,
        active: &str,
        concept: &str,
        (group, priority): (u32, u32),
        rule: &str,
        target: &str,
    ) -> String {
        format!("{id}\t{time}\t{active}\t5991000124107\t6011000124106\t{concept}\t{group}\t{priority}\t{rule}\tADVICE {target}\t{target}\t447561005\t447637006\n")
    }

    fn read(text: &str) -> Vec<MapRow> {
        read_extended_map_from(text.as_bytes(), "map.txt").unwrap()
    }

    #[test]
    fn unconditional_rules_of_group_one_in_priority_order() {
        let text = [
            HEADER.to_owned(),
            // Conditional rule first, then the default: the default is taken.
            line(
                "a1",
                "20240301",
                "1",
                "195967001",
                (1, 1),
                "IFA 445518008 | Age at onset of clinical finding (observable entity) | < 18.0 years",
                "J45.909",
            ),
            line("a2", "20240301", "1", "195967001", (1, 2), "OTHERWISE TRUE", "J45.90"),
            // Group 2 (secondary code) is ignored.
            line("b1", "20240301", "1", "301011002", (1, 1), "TRUE", "N39.0"),
            line("b2", "20240301", "1", "301011002", (2, 1), "TRUE", "B96.20"),
            // Two unconditional rules: the lower priority wins.
            line("c2", "20240301", "1", "44054006", (1, 2), "TRUE", "E11.8"),
            line("c1", "20240301", "1", "44054006", (1, 1), "TRUE", "E11.9"),
            // No target: unmatched with the advice as reason.
            line("d1", "20240301", "1", "160903007", (1, 1), "TRUE", ""),
            // Inactive in its latest version (Full release): dropped.
            line("e1", "20200301", "1", "38341003", (1, 1), "TRUE", "I10"),
            line("e1", "20230301", "0", "38341003", (1, 1), "TRUE", "I10"),
            // Another refset: ignored.
            "x1\t20240301\t1\t1\t447562003\t22298006\t1\t1\tTRUE\t\tI21.9\t1\t1\n".to_owned(),
        ]
        .concat();
        let rows = read(&text);
        let got: Vec<(&str, Option<&str>)> =
            rows.iter().map(|r| (r.source_code.as_str(), r.target_code.as_deref())).collect();
        assert_eq!(
            got,
            [
                ("195967001", Some("J45.90")),
                ("301011002", Some("N39.0")),
                ("44054006", Some("E11.9")),
                ("160903007", None)
            ]
        );
        assert_eq!(rows[0].relationship, Relationship::RelatedTo);
        assert_eq!(rows[3].relationship, Relationship::Unmatched);
        assert_eq!(rows[3].note.as_deref(), Some("ADVICE"));
    }

    #[test]
    fn malformed_files_are_errors_with_lines() {
        let err = read_extended_map_from("id\tactive\n".as_bytes(), "m.txt").unwrap_err().to_string();
        assert!(err.starts_with("m.txt:1: not an RF2 ExtendedMap file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let err = read_extended_map(dir.path()).unwrap_err().to_string();
        assert!(
            err.ends_with(
                ": is a folder: name the ExtendedMap file itself (der2_iisssccRefset_ExtendedMapSnapshot_*.txt)"
            ),
            "{err}"
        );
        assert!(!err.contains(":1:"), "{err}");
        let text = format!("{HEADER}a\t2024\t1\n");
        assert!(read_extended_map_from(text.as_bytes(), "m.txt").unwrap_err().to_string().starts_with("m.txt:2:"));
        let text = format!(
            "{HEADER}{}",
            line("a", "2024", "1", "1", (1, 1), "TRUE", "I10").replace("\t1\t1\tTRUE", "\tx\t1\tTRUE")
        );
        assert!(read_extended_map_from(text.as_bytes(), "m.txt")
            .unwrap_err()
            .to_string()
            .contains("mapGroup is not a number"));
    }

    #[test]
    fn a_file_without_rows_of_the_nlm_refset_is_an_error() {
        let who = line("a", "2024", "1", "1", (1, 1), "TRUE", "I10").replace("6011000124106", "447562003");
        let err = read_extended_map_from(format!("{HEADER}{who}").as_bytes(), "m.txt").unwrap_err().to_string();
        assert_eq!(
            err,
            "m.txt: no row of the SNOMED CT → ICD-10-CM map (refset 6011000124106); found refsets 447562003"
        );
        assert!(read_extended_map_from(HEADER.as_bytes(), "m.txt").unwrap_err().to_string().ends_with("found no rows"));
    }

    #[test]
    fn a_bom_and_crlf_are_read_and_ties_go_to_the_earlier_line() {
        let rows = [
            line("a", "2024", "1", "22298006", (1, 1), "TRUE", "I21.9"),
            line("b", "2024", "1", "22298006", (1, 1), "TRUE", "I22.9"),
            line("c", "2024", "1", "1", (1, 1), "TRUE", "I10"),
        ];
        let text = format!("\u{feff}{HEADER}{}", rows.concat()).replace('\n', "\r\n");
        for _ in 0..8 {
            let got = read(&text);
            assert_eq!(got[0].target_code.as_deref(), Some("I21.9"));
            assert_eq!(got[1].target_code.as_deref(), Some("I10"));
        }
    }
}
