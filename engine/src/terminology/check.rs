//! `fhirhouse mappings check`: validates a mapping folder.
//!
//! Per table: it reads (header, fields, relationships: every reader's own checks); no key
//! occurs twice (crosswalks: source system, source code, target code; value sets: value set,
//! system, code; code lists: code; reference tables: their manifest `key`); a crosswalk
//! source is not both unmatched and mapped; crosswalk codes are in the code list of their
//! system where the folder ships one (ICD-10-CM FY2026). Bindings name known target
//! systems and, given the views, existing text columns. Value set codes missing from a code
//! list are warnings: value sets keep codes retired since they were published. So are what a
//! load would pass over without a word: crosswalk rows whose target system no binding
//! targets (a misspelt URI), source systems `systems.json` does not list, empty tables.

use std::collections::{HashMap, HashSet};

use arrow::datatypes::SchemaRef;

use super::bindings::Binding;
use super::index::Relationship;
use super::manifest::{MappingSource, Mappings, TableFormat, TableKind, MANIFEST};
use super::reference::{read_categories, read_code_list, read_reference, read_value_sets};
use super::systems::{SystemId, Systems};
use super::tables::MapRow;
use super::MappingError;

/// How many warnings of one kind are quoted.
const QUOTED: usize = 5;

/// What the check found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// The folder could not be opened at all (no manifest, systems or bindings to read):
    /// `errors` then holds that one error.
    pub unreadable: bool,
    /// (table, kind, rows) of every table that could be read.
    pub tables: Vec<(String, String, usize)>,
    /// Problems: the folder is not valid.
    pub errors: Vec<MappingError>,
    /// Remarks that do not make it invalid.
    pub warnings: Vec<String>,
}

impl CheckReport {
    /// Whether the folder is valid.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Code lists by system: the set of valid codes (normal form) and the list's name.
struct CodeLists(HashMap<SystemId, (String, HashSet<String>)>);

impl CodeLists {
    fn invalid(&self, system: SystemId, code: &str) -> Option<&str> {
        self.0.get(&system).filter(|(_, codes)| !codes.contains(code)).map(|(name, _)| name.as_str())
    }
}

/// Checks the folder `source`; `views` are the tables bindings may name, with their view
/// schemas (empty to skip that part).
#[must_use]
pub fn check(source: &MappingSource, views: &[(String, SchemaRef)]) -> CheckReport {
    let mut report = CheckReport::default();
    let mappings = match Mappings::open(source) {
        Ok(m) => m,
        Err(e) => {
            report.errors.push(e);
            report.unreadable = true;
            return report;
        }
    };
    let mut systems = mappings.systems.clone();
    let lists = code_lists(&mappings, source, &mut systems, &mut report);
    check_bindings(&mappings.bindings, &mappings.bindings_file, &systems, views, &mut report);
    crosswalks(&mappings, source, &mut systems, &lists, &mut report);
    for entry in mappings.of_kind(TableKind::Valueset) {
        match read_value_sets(entry, source) {
            Err(e) => report.errors.push(e),
            Ok(sets) => {
                let mut rows = 0;
                let mut retired = Vec::new();
                let mut scratch = String::new();
                // Across the table's files: two files of one value set would double its codes.
                let mut seen: HashMap<(String, SystemId, String), String> = HashMap::new();
                for (file, members) in sets {
                    for m in &members {
                        let system = systems.intern(&m.system);
                        let code = systems.normalise(system, &m.code, &mut scratch).to_owned();
                        if let Some(list) = lists.invalid(system, &code) {
                            retired.push(format!("{file}: {} {} (not in {list})", m.system, m.code));
                        }
                        if let Some(first) = seen.insert((m.valueset_url.clone(), system, code), file.clone()) {
                            let also = if first == file { String::new() } else { format!(" (also in {first})") };
                            report.errors.push(MappingError::at(
                                &file,
                                0,
                                format!("{} {} is listed twice{also}", m.system, m.code),
                            ));
                        }
                    }
                    rows += members.len();
                }
                if rows == 0 {
                    report.warnings.push(format!("table {} has no codes", entry.name));
                }
                if !retired.is_empty() {
                    report.warnings.push(format!(
                        "{}: {} value set codes are not in the shipped code list, e.g. {}",
                        entry.name,
                        retired.len(),
                        retired[..retired.len().min(QUOTED)].join("; ")
                    ));
                }
                report.tables.push((entry.name.clone(), "valueset".into(), rows));
            }
        }
    }
    for entry in mappings.of_kind(TableKind::Categories) {
        let read = entry
            .file()
            .and_then(|f| Ok((f, source.read(f)?)))
            .and_then(|(f, bytes)| read_categories(&bytes, f, &systems, entry.system()?));
        match read {
            Ok(categories) => report.tables.push((entry.name.clone(), "categories".into(), categories.len())),
            Err(e) => report.errors.push(e),
        }
    }
    for entry in mappings.of_kind(TableKind::Reference) {
        match read_reference(entry, source) {
            Err(e) => report.errors.push(e),
            Ok(table) => {
                let key: Result<Vec<usize>, _> =
                    entry.key.iter().map(|k| table.header.iter().position(|h| h == k).ok_or(k)).collect();
                match key {
                    Err(k) => report.errors.push(MappingError::at(
                        MANIFEST,
                        0,
                        format!("table {}: key column {k} is not in the header", entry.name),
                    )),
                    Ok(key) => {
                        let mut seen: HashMap<Vec<&str>, (&str, u64)> = HashMap::new();
                        for (file, line, fields) in &table.rows {
                            let k: Vec<&str> = key.iter().map(|&i| fields[i].as_str()).collect();
                            if let Some((first_file, first)) = seen.insert(k.clone(), (file, *line)) {
                                report.errors.push(MappingError::at(
                                    file,
                                    *line,
                                    format!("duplicate key {k:?} (first at {first_file}:{first})"),
                                ));
                            }
                        }
                    }
                }
                report.tables.push((entry.name.clone(), "reference".into(), table.rows.len()));
            }
        }
    }
    report
}

fn code_lists(
    mappings: &Mappings,
    source: &MappingSource,
    systems: &mut Systems,
    report: &mut CheckReport,
) -> CodeLists {
    let mut lists = HashMap::new();
    for entry in mappings.of_kind(TableKind::CodeList) {
        let read = entry.file().and_then(|f| Ok((f, read_code_list(&source.read(f)?, f)?)));
        let (file, codes) = match read {
            Ok(r) => r,
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        let system = match entry.system() {
            Ok(s) => systems.intern(s),
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        let mut set = HashSet::with_capacity(codes.len());
        let mut scratch = String::new();
        for (line, code) in &codes {
            let normal = systems.normalise(system, code, &mut scratch);
            if normal != code {
                report.errors.push(MappingError::at(file, *line, format!("{code} is not in normal form ({normal})")));
            }
            if !set.insert(normal.to_owned()) {
                report.errors.push(MappingError::at(file, *line, format!("{code} is listed twice")));
            }
        }
        report.tables.push((entry.name.clone(), "code_list".into(), set.len()));
        lists.insert(system, (entry.name.clone(), set));
    }
    CodeLists(lists)
}

fn check_bindings(
    bindings: &[Binding],
    file: &str,
    systems: &Systems,
    views: &[(String, SchemaRef)],
    report: &mut CheckReport,
) {
    let mut outputs = HashSet::new();
    for b in bindings {
        if systems.resolve(&b.target).is_none() {
            report.errors.push(MappingError::at(
                file,
                0,
                format!("binding {}.{}: unknown target system {}", b.table, b.code, b.target),
            ));
        }
        if !outputs.insert((b.table.as_str(), b.output.as_str())) {
            report.errors.push(MappingError::at(
                file,
                0,
                format!("table {}: output {} is used twice", b.table, b.output),
            ));
        }
        if views.is_empty() {
            continue;
        }
        match views.iter().find(|(t, _)| *t == b.table) {
            None => report.errors.push(MappingError::at(
                file,
                0,
                format!("binding {}.{}: no view makes table {}", b.table, b.code, b.table),
            )),
            Some((_, schema)) => {
                if let Err(e) = b.check_against(schema) {
                    report.errors.push(MappingError::at(file, 0, e));
                }
            }
        }
    }
}

fn crosswalks(
    mappings: &Mappings,
    source: &MappingSource,
    systems: &mut Systems,
    lists: &CodeLists,
    report: &mut CheckReport,
) {
    for entry in mappings.of_kind(TableKind::Crosswalk) {
        // Read one table at a time so that one broken table does not hide the others.
        let single = Mappings { tables: vec![entry.clone()], ..mappings.clone() };
        let table = match single.crosswalk_tables(source) {
            Ok(mut t) => t.remove(0),
            Err(e) => {
                report.errors.push(e);
                continue;
            }
        };
        let file = entry.file.clone().unwrap_or_default();
        // A ConceptMap row's `line` is its element's position, not a line of the file.
        let unit = if entry.format == Some(TableFormat::FhirJson) { "element" } else { "line" };
        let error = |line: u64, message: String| match unit {
            "line" => MappingError::at(&file, line, message),
            _ => MappingError::at(&file, 0, format!("element {line}: {message}")),
        };
        let mut keys: HashMap<(SystemId, String, SystemId, Option<String>), u64> = HashMap::new();
        let mut unmatched: HashMap<(SystemId, String, SystemId), SourceRows> = HashMap::new();
        let mut unused = SystemUse::default();
        let mut scratch = String::new();
        for row in &table.rows {
            unused.see(&mappings.systems, &mappings.bindings, systems, row);
            let from = systems.intern(&row.source_system);
            let to = systems.intern(&row.target_system);
            let code = systems.normalise(from, &row.source_code, &mut scratch).to_owned();
            let target = row.target_code.as_deref().map(|c| systems.normalise(to, c, &mut scratch).to_owned());
            if let Some(first) = keys.insert((from, code.clone(), to, target.clone()), row.line) {
                report.errors.push(error(
                    row.line,
                    format!(
                        "duplicate key {} {code} → {} (first at {unit} {first})",
                        row.source_system,
                        target.as_deref().unwrap_or("unmatched")
                    ),
                ));
            }
            let seen = unmatched
                .entry((from, code.clone(), to))
                .or_insert(SourceRows { first: row.line, ..SourceRows::default() });
            // A disjoint row ("not this code") is neither.
            if row.relationship == Relationship::Unmatched {
                seen.unmatched = true;
            } else if row.relationship.maps() {
                seen.mapped = true;
            }
            if seen.mapped && seen.unmatched && !seen.reported {
                seen.reported = true;
                report
                    .errors
                    .push(error(row.line, format!("{code} is both unmatched and mapped ({unit} {})", seen.first)));
            }
            if let Some(list) = lists.invalid(from, &code) {
                report.errors.push(error(row.line, format!("source code {} is not in {list}", row.source_code)));
            }
            if let Some(list) = target.as_deref().and_then(|t| lists.invalid(to, t)) {
                let code = row.target_code.as_deref().unwrap_or("");
                report.errors.push(error(row.line, format!("target code {code} is not in {list}")));
            }
        }
        if table.rows.is_empty() {
            report.warnings.push(format!("{file}: table {} has no rows", entry.name));
        }
        report.warnings.extend(unused.warnings(&file, unit, &mappings.systems_file));
        report.tables.push((entry.name.clone(), "crosswalk".into(), table.rows.len()));
    }
}

/// The systems of a crosswalk that the load cannot use as written: a target system no
/// binding targets (its rows are never used, a misspelt URI included), a source system
/// `systems.json` does not list (its codes only match as written). Both go unnoticed at
/// load time, where such codes simply come out unmapped.
#[derive(Default)]
struct SystemUse {
    /// Whether a binding targets a system, as found so far.
    targeted: HashMap<SystemId, bool>,
    /// (system as written, first line, rows) of each kind, in order of first use.
    untargeted: Vec<(String, u64, usize)>,
    unlisted: Vec<(String, u64, usize)>,
}

impl SystemUse {
    fn see(&mut self, listed: &Systems, bindings: &[Binding], systems: &mut Systems, row: &MapRow) {
        let to = systems.intern(&row.target_system);
        let targeted =
            *self.targeted.entry(to).or_insert_with(|| bindings.iter().any(|b| systems.resolve(&b.target) == Some(to)));
        if !targeted {
            Self::count(&mut self.untargeted, &row.target_system, row.line);
        }
        if listed.resolve(&row.source_system).is_none() {
            Self::count(&mut self.unlisted, &row.source_system, row.line);
        }
    }

    fn count(seen: &mut Vec<(String, u64, usize)>, system: &str, line: u64) {
        match seen.iter_mut().find(|(s, _, _)| s == system) {
            Some((_, _, rows)) => *rows += 1,
            None => seen.push((system.to_owned(), line, 1)),
        }
    }

    fn warnings(self, file: &str, unit: &str, systems_file: &str) -> Vec<String> {
        let at = |line: u64| if unit == "line" { format!("{file}:{line}") } else { format!("{file}: {unit} {line}") };
        let untargeted = self.untargeted.into_iter().map(|(system, line, rows)| {
            format!("{}: no binding targets {system}: its {rows} rows are not used by a load", at(line))
        });
        let unlisted = self.unlisted.into_iter().map(|(system, line, rows)| {
            format!(
                "{}: source system {system} is not in {systems_file}: its {rows} rows match codes only as written \
                 (no aliases, no code form)",
                at(line)
            )
        });
        untargeted.chain(unlisted).collect()
    }
}

/// What the rows of one source code of a crosswalk said so far, for the check that no
/// source is both unmatched and mapped (reported once).
#[derive(Debug, Default)]
struct SourceRows {
    mapped: bool,
    unmatched: bool,
    /// The first row's line (element, for a ConceptMap).
    first: u64,
    reported: bool,
}

#[cfg(test)]
#[path = "check_tests.rs"]
mod tests;
