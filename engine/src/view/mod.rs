//! The view stage: SQL on FHIR v2 ViewDefinitions compiled to Arrow.
//!
//! This module owns everything between "a parsed FHIR resource" and "Arrow record batches
//! for one output table": reading ViewDefinition JSON ([`definition`]), the FHIRPath subset
//! the spec needs ([`fhirpath`]), the compiled select tree and the spec's row algorithm
//! ([`plan`]), FHIR → Arrow types ([`types`], with exact [`decimal`]s and FHIR
//! [`temporal`] values) and the Arrow builders ([`builders`], fed by [`batch`]). It reads no
//! files and writes none: the source stage hands it lines, parsed here ([`parse`]) into
//! documents read in place on simd-json's tape ([`json`]), and the sink stage takes its
//! batches.
//! [`conformance`] runs the official SQL on FHIR test suite against it.

pub mod batch;
pub mod builders;
pub mod conformance;
pub mod decimal;
pub mod definition;
pub mod fhirpath;
pub mod json;
pub mod parse;
pub mod plan;
pub mod temporal;
pub mod types;

pub use batch::{RowError, ViewBatchBuilder, ViewSet};
pub use json::Json;
pub use parse::{Parsed, ResourceParser};
pub use plan::{CompiledView, ViewError};
