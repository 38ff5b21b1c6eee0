//! fhirhouse
/// The `fhirhouse` command line: argument definitions and subcommands.
pub mod cli;
/// Record batch output: NDJSON, CSV and Parquet writers.
pub mod sink;
/// Input discovery and NDJSON line reading.
pub mod source;
pub mod view;
