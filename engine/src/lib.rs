//! fhirhouse
pub mod view;
/// Input discovery and NDJSON line reading.
pub mod source;
/// Record batch output: NDJSON, CSV and Parquet writers.
pub mod sink;
/// The `fhirhouse` command line: argument definitions and subcommands.
pub mod cli;
