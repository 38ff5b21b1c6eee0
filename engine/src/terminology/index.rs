//! The crosswalk index: every table's rows by (source system, target system) and normalised
//! source code, built once per load and then only read (shared by all workers in an `Arc`).
//!
//! Priority: tables are added in priority order (a user's `--snomed-icd10-map` first, then
//! the manifest's order). For one source code and target system, the first table that maps
//! it supplies all the targets; later tables are not mixed in. Within a table, targets keep
//! the table's order: the first is the primary target.

use std::collections::HashMap;
use std::ops::Range;

use super::systems::{SystemId, Systems};
use super::tables::MapRow;

/// How a target relates to its source: FHIR R4 `ConceptMapEquivalence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relationship {
    /// Related, with the exact relationship unknown.
    RelatedTo,
    /// Same meaning.
    Equivalent,
    /// Exactly the same concept (also what an already-standard code gets).
    Equal,
    /// The target is wider in meaning than the source.
    Wider,
    /// The target subsumes the source.
    Subsumes,
    /// The target is narrower in meaning than the source (an assumption was made).
    Narrower,
    /// The target specializes the source.
    Specializes,
    /// Overlapping meanings, neither contains the other.
    Inexact,
    /// No counterpart in the target system.
    Unmatched,
    /// Disjoint meanings.
    Disjoint,
}

impl Relationship {
    const ALL: [(Relationship, &'static str); 10] = [
        (Relationship::RelatedTo, "relatedto"),
        (Relationship::Equivalent, "equivalent"),
        (Relationship::Equal, "equal"),
        (Relationship::Wider, "wider"),
        (Relationship::Subsumes, "subsumes"),
        (Relationship::Narrower, "narrower"),
        (Relationship::Specializes, "specializes"),
        (Relationship::Inexact, "inexact"),
        (Relationship::Unmatched, "unmatched"),
        (Relationship::Disjoint, "disjoint"),
    ];

    /// Parses an R4 equivalence code, or an R5 relationship code (`related-to`,
    /// `source-is-narrower-than-target` = wider, `source-is-broader-than-target` = narrower,
    /// `not-related-to` = unmatched).
    #[must_use]
    pub fn parse(code: &str) -> Option<Relationship> {
        let r5 = match code {
            "related-to" => Some(Relationship::RelatedTo),
            "source-is-narrower-than-target" => Some(Relationship::Wider),
            "source-is-broader-than-target" => Some(Relationship::Narrower),
            "not-related-to" => Some(Relationship::Unmatched),
            _ => None,
        };
        r5.or_else(|| Relationship::ALL.iter().find(|(_, c)| *c == code).map(|(r, _)| *r))
    }

    /// [`Relationship::parse`] for a row that has a target code or not: R5's
    /// `not-related-to` says "no counterpart" without a target, but "not this target" (R4's
    /// `disjoint`) with one, which is valid R5 and must not be read as a mapping.
    #[must_use]
    pub fn parse_for(code: &str, has_target: bool) -> Option<Relationship> {
        match Relationship::parse(code)? {
            Relationship::Unmatched if has_target && code == "not-related-to" => Some(Relationship::Disjoint),
            r => Some(r),
        }
    }

    /// Whether a target with this relationship stands for the source: every relationship
    /// but `unmatched` and `disjoint`, which assert that the target is *not* the source.
    #[must_use]
    pub fn maps(self) -> bool {
        !matches!(self, Relationship::Unmatched | Relationship::Disjoint)
    }

    /// The R4 code.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        Relationship::ALL.iter().find(|(r, _)| *r == self).map(|(_, c)| *c).expect("every variant is listed")
    }
}

/// One target of a source code.
#[derive(Debug, Clone)]
pub struct Target {
    /// The target code in normal form; `None` for an unmatched source, and for a `disjoint`
    /// row (its code is what the source is *not*, so it must never fill a standard column).
    pub code: Option<Box<str>>,
    /// The target display.
    pub display: Option<Box<str>>,
    /// How it relates to the source.
    pub relationship: Relationship,
    /// The note (for an unmatched source: the reason).
    pub note: Option<Box<str>>,
}

type CodeMap = HashMap<Box<str>, (u16, Vec<Target>)>;

/// Collects tables in priority order; [`IndexBuilder::build`] freezes them.
#[derive(Debug, Default)]
pub struct IndexBuilder {
    tables: Vec<String>,
    pairs: HashMap<(SystemId, SystemId), CodeMap>,
}

impl IndexBuilder {
    /// Adds a table's rows (already validated), after every table added before it.
    pub fn add_table(&mut self, name: &str, rows: &[MapRow], systems: &mut Systems) {
        let table = u16::try_from(self.tables.len()).expect("fewer than 65536 tables");
        self.tables.push(name.to_owned());
        let mut scratch = String::new();
        for row in rows {
            let from = systems.intern(&row.source_system);
            let to = systems.intern(&row.target_system);
            let code: Box<str> = systems.normalise(from, &row.source_code, &mut scratch).into();
            let target_code: Option<Box<str>> =
                row.target_code.as_deref().map(|c| systems.normalise(to, c, &mut scratch).into());
            let target = if row.relationship.maps() {
                Target {
                    code: target_code,
                    display: row.target_display.as_deref().map(Into::into),
                    relationship: row.relationship,
                    note: row.note.as_deref().map(Into::into),
                }
            } else {
                // "Not this code": no target, and a reason for `_dq_unmapped_codes`.
                let why = match (&row.note, &target_code) {
                    (Some(note), _) => Some(note.as_str().into()),
                    (None, Some(code)) => Some(format!("disjoint with {code}").into()),
                    (None, None) => None,
                };
                Target { code: None, display: None, relationship: row.relationship, note: why }
            };
            let entry = self.pairs.entry((from, to)).or_default().entry(code).or_insert_with(|| (table, Vec::new()));
            // A row repeating a target (`mappings check` reports it) must not list it twice.
            let repeated = target.code.is_some() && entry.1.iter().any(|t| t.code == target.code);
            if entry.0 == table && !repeated {
                entry.1.push(target);
            }
        }
    }

    /// The frozen index.
    #[must_use]
    pub fn build(self) -> CrosswalkIndex {
        let mut targets = Vec::new();
        let pairs = self
            .pairs
            .into_iter()
            .map(|(pair, codes)| {
                let codes = codes
                    .into_iter()
                    .map(|(code, (table, list))| {
                        let start = targets.len() as u32;
                        targets.extend(list);
                        (code, Entry { table, targets: start..targets.len() as u32 })
                    })
                    .collect();
                (pair, codes)
            })
            .collect();
        CrosswalkIndex { tables: self.tables, pairs, targets }
    }
}

#[derive(Debug)]
struct Entry {
    table: u16,
    targets: Range<u32>,
}

/// What the index knows about one source code.
#[derive(Debug, Clone, Copy)]
pub struct Mapped<'a> {
    /// The table that mapped it.
    pub table: &'a str,
    /// Its targets, primary first (one unmatched target for a source without counterpart).
    pub targets: &'a [Target],
}

/// The frozen crosswalk index; see the module docs.
#[derive(Debug, Default)]
pub struct CrosswalkIndex {
    tables: Vec<String>,
    pairs: HashMap<(SystemId, SystemId), HashMap<Box<str>, Entry>>,
    targets: Vec<Target>,
}

impl CrosswalkIndex {
    /// The targets in system `to` of `code` (in normal form) of system `from`.
    #[must_use]
    pub fn lookup(&self, from: SystemId, to: SystemId, code: &str) -> Option<Mapped<'_>> {
        let entry = self.pairs.get(&(from, to))?.get(code)?;
        Some(Mapped {
            table: &self.tables[usize::from(entry.table)],
            targets: &self.targets[entry.targets.start as usize..entry.targets.end as usize],
        })
    }

    /// The table names, in priority order.
    #[must_use]
    pub fn tables(&self) -> &[String] {
        &self.tables
    }

    /// How many source codes are indexed.
    #[must_use]
    pub fn len(&self) -> usize {
        self.pairs.values().map(HashMap::len).sum()
    }

    /// Whether no source code is indexed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(system: &str, code: &str, target: Option<&str>, relationship: Relationship) -> MapRow {
        MapRow {
            line: 2,
            source_system: system.into(),
            source_code: code.into(),
            source_display: None,
            target_system: "http://hl7.org/fhir/sid/icd-10-cm".into(),
            target_code: target.map(Into::into),
            target_display: None,
            relationship,
            note: None,
        }
    }

    #[test]
    fn relationships_parse_r4_and_r5_codes() {
        assert_eq!(Relationship::parse("wider"), Some(Relationship::Wider));
        assert_eq!(Relationship::parse("source-is-narrower-than-target"), Some(Relationship::Wider));
        assert_eq!(Relationship::parse("source-is-broader-than-target"), Some(Relationship::Narrower));
        assert_eq!(Relationship::parse("not-related-to"), Some(Relationship::Unmatched));
        assert_eq!(Relationship::parse("same"), None);
        assert_eq!(Relationship::Inexact.as_str(), "inexact");
    }

    #[test]
    fn first_table_wins_and_targets_keep_their_order() {
        let mut systems = Systems::default();
        let mut builder = IndexBuilder::default();
        builder.add_table(
            "first",
            &[
                row("http://snomed.info/sct", "301011002", Some("N39.0"), Relationship::Wider),
                row("http://snomed.info/sct", "301011002", Some("B96.20"), Relationship::Wider),
            ],
            &mut systems,
        );
        builder.add_table(
            "second",
            &[
                row("http://snomed.info/sct", "301011002", Some("N30.00"), Relationship::Wider),
                row("http://snomed.info/sct", "44054006", Some("E11.9"), Relationship::Narrower),
            ],
            &mut systems,
        );
        let index = builder.build();
        let sct = systems.resolve("http://snomed.info/sct").unwrap();
        let icd = systems.resolve("http://hl7.org/fhir/sid/icd-10-cm").unwrap();
        let mapped = index.lookup(sct, icd, "301011002").unwrap();
        assert_eq!(mapped.table, "first");
        let codes: Vec<_> = mapped.targets.iter().map(|t| t.code.as_deref().unwrap()).collect();
        assert_eq!(codes, ["N39.0", "B96.20"], "an unregistered system keeps its codes as written");
        assert_eq!(index.lookup(sct, icd, "44054006").unwrap().table, "second");
        assert!(index.lookup(icd, sct, "44054006").is_none());
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn disjoint_targets_are_never_mappings_and_repeated_targets_are_listed_once() {
        let mut systems = Systems::default();
        let mut builder = IndexBuilder::default();
        let mut not_i10 = row("L", "2", Some("I10"), Relationship::Disjoint);
        not_i10.note = Some("explicitly not I10".into());
        builder.add_table(
            "t",
            &[
                row("L", "1", Some("E11.9"), Relationship::Equivalent),
                row("L", "1", Some("E11.9"), Relationship::Equivalent),
                not_i10,
                row("L", "3", Some("I10"), Relationship::Disjoint),
                row("L", "3", Some("I15.9"), Relationship::Wider),
            ],
            &mut systems,
        );
        let index = builder.build();
        let (l, icd) = (systems.resolve("L").unwrap(), systems.resolve("http://hl7.org/fhir/sid/icd-10-cm").unwrap());
        let codes = |code: &str| -> Vec<Option<String>> {
            index.lookup(l, icd, code).unwrap().targets.iter().map(|t| t.code.as_deref().map(str::to_owned)).collect()
        };
        assert_eq!(codes("1"), [Some("E11.9".to_owned())]);
        assert_eq!(codes("2"), [None]);
        assert_eq!(index.lookup(l, icd, "2").unwrap().targets[0].note.as_deref(), Some("explicitly not I10"));
        assert_eq!(codes("3"), [None, Some("I15.9".to_owned())]);
        assert_eq!(index.lookup(l, icd, "3").unwrap().targets[0].note.as_deref(), Some("disjoint with I10"));
        assert_eq!(Relationship::parse_for("not-related-to", true), Some(Relationship::Disjoint));
        assert_eq!(Relationship::parse_for("not-related-to", false), Some(Relationship::Unmatched));
        assert_eq!(Relationship::parse_for("unmatched", true), Some(Relationship::Unmatched));
    }
}
