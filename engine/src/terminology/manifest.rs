//! The mapping folder: `manifest.json` names every table with its kind, format, licence,
//! version and source; `systems.json` and `bindings.json` sit beside it.
//!
//! The shipped folder (`mappings/`) is embedded in the binary, so a fresh install needs no
//! files; `--mappings DIR` reads a folder laid out the same way instead.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::bindings::{Binding, BindingsFile};
use super::systems::Systems;
use super::tables::{self, MapRow};
use super::{fhir, MappingError};

include!(concat!(env!("OUT_DIR"), "/embedded_mappings.rs"));

/// The manifest's file name.
pub const MANIFEST: &str = "manifest.json";

/// Where mapping files are read from.
#[derive(Debug, Clone)]
pub enum MappingSource {
    /// The shipped `mappings/` folder, embedded in the binary.
    Embedded,
    /// A folder with a `manifest.json`.
    Dir(PathBuf),
}

impl MappingSource {
    /// The bytes of `relative` (a `/`-separated path inside the folder).
    ///
    /// # Errors
    ///
    /// The file does not exist or cannot be read.
    pub fn read(&self, relative: &str) -> Result<Cow<'static, [u8]>, MappingError> {
        match self {
            MappingSource::Embedded => EMBEDDED_MAPPINGS
                .iter()
                .find(|(name, _)| *name == relative)
                .map(|(_, bytes)| Cow::Borrowed(*bytes))
                .ok_or_else(|| MappingError::at(relative, 0, "no such file in the shipped mappings")),
            MappingSource::Dir(dir) => {
                let path = dir.join(relative);
                std::fs::read(&path).map(Cow::Owned).map_err(|e| MappingError::at(path.display().to_string(), 0, e))
            }
        }
    }

    /// The files directly in the folder `relative` whose names end with `suffix`, sorted.
    ///
    /// # Errors
    ///
    /// The folder cannot be listed.
    pub fn list(&self, relative: &str, suffix: &str) -> Result<Vec<String>, MappingError> {
        let prefix = format!("{}/", relative.trim_end_matches('/'));
        let mut files: Vec<String> = match self {
            MappingSource::Embedded => EMBEDDED_MAPPINGS
                .iter()
                .filter_map(|(name, _)| name.strip_prefix(&prefix).map(|rest| (name, rest)))
                .filter(|(_, rest)| !rest.contains('/') && rest.ends_with(suffix))
                .map(|(name, _)| (*name).to_owned())
                .collect(),
            MappingSource::Dir(dir) => {
                let path = dir.join(relative);
                std::fs::read_dir(&path)
                    .map_err(|e| MappingError::at(path.display().to_string(), 0, e))?
                    .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .filter(|name| name.ends_with(suffix))
                    .map(|name| format!("{prefix}{name}"))
                    .collect()
            }
        };
        files.sort();
        Ok(files)
    }

    /// How errors name the folder.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            MappingSource::Embedded => "the shipped mappings".to_owned(),
            MappingSource::Dir(dir) => dir.display().to_string(),
        }
    }
}

/// What a table of the manifest holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// Source code → target code(s).
    Crosswalk,
    /// Value set members.
    Valueset,
    /// The valid codes of one system.
    CodeList,
    /// Named code ranges of one system (`icd10cm_category`).
    Categories,
    /// A CSV table registered in SQL as it is (the CMS-HCC tables).
    Reference,
}

/// The file format of a crosswalk or value set table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableFormat {
    /// The crosswalk CSV header of [`tables::CSV_HEADER`].
    Csv,
    /// FHIR R4 JSON: a ConceptMap (crosswalk) or ValueSet files (value set).
    FhirJson,
}

/// One file of a reference table, with constant columns to add to its rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceFile {
    /// The CSV file.
    pub file: String,
    /// Columns added to every row of this file (e.g. the payment year in its name).
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// One table of the manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    /// The table's name: the `source` of the rows it maps, and its SQL name for references.
    pub name: String,
    /// What it holds.
    pub kind: TableKind,
    /// The format (crosswalks and value sets).
    #[serde(default)]
    pub format: Option<TableFormat>,
    /// The file.
    #[serde(default)]
    pub file: Option<String>,
    /// A folder of files (value sets: every `*.json`).
    #[serde(default)]
    pub dir: Option<String>,
    /// The files of a reference table.
    #[serde(default)]
    pub files: Vec<ReferenceFile>,
    /// The code system (code lists and categories).
    #[serde(default)]
    pub system: Option<String>,
    /// The columns that identify a row of a reference table (checked for duplicates).
    #[serde(default)]
    pub key: Vec<String>,
    /// The version of the source.
    pub version: String,
    /// The licence.
    pub licence: String,
    /// Where it comes from.
    pub source: String,
}

impl TableKind {
    /// The name the manifest uses.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Crosswalk => "crosswalk",
            TableKind::Valueset => "valueset",
            TableKind::CodeList => "code_list",
            TableKind::Categories => "categories",
            TableKind::Reference => "reference",
        }
    }
}

impl TableEntry {
    /// Checks that the entry gives nothing its kind does not read: a `files` list on a
    /// crosswalk, or a `dir` beside a `file`, would otherwise be ignored without a word.
    ///
    /// # Errors
    ///
    /// Naming the table and the field.
    pub fn check_fields(&self) -> Result<(), MappingError> {
        let given = [
            ("format", self.format.is_some()),
            ("file", self.file.is_some()),
            ("dir", self.dir.is_some()),
            ("files", !self.files.is_empty()),
            ("system", self.system.is_some()),
            ("key", !self.key.is_empty()),
        ];
        let read: &[&str] = match self.kind {
            TableKind::Crosswalk => &["format", "file"],
            TableKind::Valueset => &["format", "file", "dir"],
            TableKind::CodeList | TableKind::Categories => &["file", "system"],
            TableKind::Reference => &["files", "key"],
        };
        let fail = |m: String| Err(MappingError::at(MANIFEST, 0, format!("table {}: {m}", self.name)));
        if let Some((name, _)) = given.iter().find(|(name, present)| *present && !read.contains(name)) {
            return fail(format!("\"{name}\" does not apply to a {} table", self.kind.as_str()));
        }
        if self.file.is_some() && self.dir.is_some() {
            return fail("give \"file\" or \"dir\", not both".to_owned());
        }
        Ok(())
    }

    /// The `file` of a kind that needs one.
    ///
    /// # Errors
    ///
    /// The entry has no `file`.
    pub fn file(&self) -> Result<&str, MappingError> {
        self.file.as_deref().ok_or_else(|| MappingError::at(MANIFEST, 0, format!("table {}: no \"file\"", self.name)))
    }

    /// The `system` of a kind that needs one.
    ///
    /// # Errors
    ///
    /// The entry has no `system`.
    pub fn system(&self) -> Result<&str, MappingError> {
        self.system
            .as_deref()
            .ok_or_else(|| MappingError::at(MANIFEST, 0, format!("table {}: no \"system\"", self.name)))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    systems: String,
    bindings: String,
    tables: Vec<TableEntry>,
}

/// A crosswalk table's rows.
#[derive(Debug, Clone)]
pub struct CrosswalkTable {
    /// The table's name.
    pub name: String,
    /// Its rows, in file order.
    pub rows: Vec<MapRow>,
}

/// An opened mapping folder: the manifest, the systems and the bindings. Tables are read
/// on demand, so a load does not parse what only SQL uses.
#[derive(Debug, Clone)]
pub struct Mappings {
    /// The code systems of `systems.json`.
    pub systems: Systems,
    /// The bindings of `bindings.json`.
    pub bindings: Vec<Binding>,
    /// The tables, in manifest order (the order crosswalks are tried in).
    pub tables: Vec<TableEntry>,
    /// The file `systems.json` was read from.
    pub systems_file: String,
    /// The file `bindings.json` was read from.
    pub bindings_file: String,
}

impl Mappings {
    /// Reads the manifest, systems and bindings of `source`.
    ///
    /// # Errors
    ///
    /// A missing or invalid file, a table named twice.
    pub fn open(source: &MappingSource) -> Result<Mappings, MappingError> {
        let manifest: ManifestFile =
            serde_json::from_slice(&source.read(MANIFEST)?).map_err(|e| MappingError::at(MANIFEST, 0, e))?;
        for (i, t) in manifest.tables.iter().enumerate() {
            if manifest.tables[..i].iter().any(|o| o.name == t.name) {
                return Err(MappingError::at(MANIFEST, 0, format!("table {} is listed twice", t.name)));
            }
            if !t.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
                return Err(MappingError::at(MANIFEST, 0, format!("table name {:?}: use a-z, 0-9 and _", t.name)));
            }
            t.check_fields()?;
        }
        let systems = Systems::from_json(&source.read(&manifest.systems)?, &manifest.systems)?;
        let bindings: BindingsFile = serde_json::from_slice(&source.read(&manifest.bindings)?)
            .map_err(|e| MappingError::at(&manifest.bindings, 0, e))?;
        Ok(Mappings {
            systems,
            bindings: bindings.bindings,
            tables: manifest.tables,
            systems_file: manifest.systems,
            bindings_file: manifest.bindings,
        })
    }

    /// The tables of `kind`, in manifest order.
    pub fn of_kind(&self, kind: TableKind) -> impl Iterator<Item = &TableEntry> {
        self.tables.iter().filter(move |t| t.kind == kind)
    }

    /// Reads every crosswalk table, in manifest order.
    ///
    /// # Errors
    ///
    /// An unreadable or invalid table.
    pub fn crosswalk_tables(&self, source: &MappingSource) -> Result<Vec<CrosswalkTable>, MappingError> {
        self.of_kind(TableKind::Crosswalk)
            .map(|t| {
                let file = t.file()?;
                let bytes = source.read(file)?;
                let rows = match t.format {
                    Some(TableFormat::Csv) => tables::read_csv(&bytes, file)?,
                    Some(TableFormat::FhirJson) => fhir::read_concept_map(&bytes, file)?,
                    None => return Err(MappingError::at(MANIFEST, 0, format!("table {}: no \"format\"", t.name))),
                };
                Ok(CrosswalkTable { name: t.name.clone(), rows })
            })
            .collect()
    }
}
