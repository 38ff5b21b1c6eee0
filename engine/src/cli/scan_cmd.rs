//! `fhirhouse scan`: read and parse an export on all cores, write nothing.

use std::process::ExitCode;

use clap::Args;

use super::load_cmd::parse_size;
use super::EXIT_SOME_FAILED;
use crate::counted;
use crate::load::scan;
use crate::store::Address;

pub(super) const LONG_ABOUT: &str = "\
Read and parse every line of an export on all cores, and write nothing: a quick check \
before a load (lines, resources per type, lines that are not valid JSON) and the speed \
ceiling of a load on this machine, since it reads exactly as `fhirhouse load` does.

    fhirhouse scan export/
    fhirhouse scan export/manifest.json --json

Exit status: 0 when every line is a JSON value, 1 when some are not (or a file could not \
be read to the end), 2 on a fatal error.";

/// Arguments of `fhirhouse scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// The export: a folder of NDJSON files, a Bulk Data manifest.json, or data files; a
    /// path or an object-store URL.
    #[arg(required = true, value_name = "EXPORT")]
    pub inputs: Vec<Address>,

    /// Worker threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,

    /// Lines longer than this are counted as oversized, not parsed.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_line_bytes: u64,

    /// Print the result as one JSON object on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Runs `fhirhouse scan`.
pub(super) fn run(args: &ScanArgs) -> anyhow::Result<ExitCode> {
    let max_line = usize::try_from(args.max_line_bytes).unwrap_or(usize::MAX);
    let report = scan(&args.inputs, args.threads.unwrap_or(0), max_line)?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        let mb = report.bytes as f64 / 1e6;
        outln!(
            "{}, {:.1} MB, {} ({} blank) in {:.2} s ({:.1} MB/s, {:.0} lines/s, {})",
            counted(report.files as u64, "file", "files"),
            mb,
            counted(report.lines, "line", "lines"),
            report.blank_lines,
            report.seconds,
            mb / report.seconds.max(1e-9),
            report.lines as f64 / report.seconds.max(1e-9),
            counted(report.threads as u64, "thread", "threads")
        )?;
        outln!(
            "invalid JSON: {}, oversized: {}, unreadable files: {}",
            report.invalid_lines,
            report.oversized_lines,
            report.unreadable_files
        )?;
        for (resource_type, n) in &report.resources_by_type {
            outln!("  {resource_type:<28} {n:>10}")?;
        }
    }
    let clean = report.invalid_lines == 0 && report.oversized_lines == 0 && report.unreadable_files == 0;
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(EXIT_SOME_FAILED) })
}
