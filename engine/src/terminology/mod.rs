//! The terminology stage: code crosswalks, value sets and reference tables, declared as data.
//!
//! This module owns everything between a view's coded columns and a standard code:
//!
//! - [`systems`]: code-system aliases and OIDs → canonical URIs, and code normalisation
//!   (ICD-10 dots, NDC-10 → NDC-11), driven by `mappings/systems.json`;
//! - [`manifest`]: the mapping folder (`mappings/`, embedded in the binary, or a user's):
//!   its manifest, tables, licences and versions;
//! - [`tables`], [`fhir`], [`rf2`]: readers of the source formats — crosswalk CSV, FHIR
//!   ConceptMap and ValueSet JSON, the NLM SNOMED CT → ICD-10-CM RF2 ExtendedMap;
//! - [`index`]: the immutable hash index of every crosswalk, shared by all workers;
//! - [`bindings`]: which view columns are crosswalked to which system (`bindings.json`);
//! - [`stage`]: adds the standard columns to a view's record batches;
//! - [`unmapped`]: counts codes no table maps, for `_dq_unmapped_codes`;
//! - [`reference`](mod@reference): reference tables (value sets, categories, CMS-HCC) as
//!   Arrow batches for SQL;
//! - [`check`]: `fhirhouse mappings check`.
//!
//! Data flows one way: the load hands batches from the views to [`stage::TableStage`], and
//! passes the result to the sink. Nothing here reads resources or writes files.

pub mod bindings;
pub mod check;
pub mod fhir;
pub mod index;
pub mod manifest;
pub mod reference;
pub mod rf2;
pub mod stage;
pub mod systems;
pub mod tables;
pub mod unmapped;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use bindings::Binding;
pub use index::{CrosswalkIndex, Relationship};
pub use manifest::{MappingSource, Mappings};
pub use stage::TableStage;
pub use systems::{CodeForm, SystemId, Systems};
pub use unmapped::UnmappedCounts;

/// A problem with a mapping file: the file, the line (0 when not line-specific) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError {
    /// The file, relative to the mapping folder, or a path.
    pub file: String,
    /// The 1-based line, or 0.
    pub line: u64,
    /// What is wrong.
    pub message: String,
}

impl MappingError {
    /// An error in `file` at `line` (0 for none).
    pub fn at(file: impl Into<String>, line: u64, message: impl fmt::Display) -> MappingError {
        MappingError { file: file.into(), line, message: message.to_string() }
    }
}

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        }
    }
}

impl std::error::Error for MappingError {}

/// What a load crosswalks with: the systems, the index of every crosswalk table and the
/// bindings. Immutable once built; shared by the workers through an `Arc`.
#[derive(Debug)]
pub struct Terminology {
    /// The code systems.
    pub systems: Systems,
    /// Every crosswalk, by (source system, target system, source code).
    pub index: CrosswalkIndex,
    /// Which columns are crosswalked.
    pub bindings: Vec<Binding>,
}

impl Terminology {
    /// The crosswalks of `source`, with an NLM SNOMED CT → ICD-10-CM RF2 map first when
    /// one is given (it then wins over the shipped tables for the concepts it maps).
    ///
    /// # Errors
    ///
    /// Any unreadable or invalid table, naming file and line.
    pub fn load(source: &MappingSource, snomed_icd10_map: Option<&Path>) -> Result<Arc<Terminology>, MappingError> {
        let mappings = Mappings::open(source)?;
        let mut systems = mappings.systems.clone();
        let mut builder = index::IndexBuilder::default();
        if let Some(path) = snomed_icd10_map {
            let rows = rf2::read_extended_map(path)?;
            builder.add_table("nlm_snomed_icd10cm", &rows, &mut systems);
        }
        for table in mappings.crosswalk_tables(source)? {
            builder.add_table(&table.name, &table.rows, &mut systems);
        }
        // A binding's target must be a known system (systems.json or a table's target): a
        // misspelt one would otherwise leave every code unmapped without a word.
        for b in &mappings.bindings {
            if systems.resolve(&b.target).is_none() {
                let message = format!("binding {}.{}: unknown target system {}", b.table, b.code, b.target);
                return Err(MappingError::at(&mappings.bindings_file, 0, message));
            }
        }
        Ok(Arc::new(Terminology { index: builder.build(), systems, bindings: mappings.bindings }))
    }

    /// The shipped crosswalks (embedded in the binary).
    ///
    /// # Errors
    ///
    /// Only if a shipped table is broken, which the test suite rules out.
    pub fn shipped() -> Result<Arc<Terminology>, MappingError> {
        Terminology::load(&MappingSource::Embedded, None)
    }
}
