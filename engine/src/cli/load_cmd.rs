//! `fhirhouse load`: a whole export into a Parquet warehouse.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::{EXIT_FATAL, EXIT_SOME_FAILED};
use crate::load::{load, LoadOptions, LoadOutcome};
use crate::store::Address;

pub(super) const LONG_ABOUT: &str = "\
Load a whole FHIR Bulk Data export into a Parquet warehouse that DataFusion, DuckDB, Spark \
or Trino can query.

The export is a folder of *.ndjson / *.ndjson.gz files or its manifest.json, on disk or in an \
object store (s3://, gs://, az://, http(s)://; the warehouse too). Every line is parsed once and run through every ViewDefinition of its resource type (the shipped views in \
schemas/, or your own with --views). Each view becomes a table:

    <out>/<table>/[<column>_year=<year>/]part-*.parquet

Large event tables are partitioned by year (declared in the view with the column tag \
fhirhouse/partition). Files are zstd-compressed, with statistics (a column with no \
value in a file, or under 4 KiB of values, is left uncompressed: zstd would save next \
to nothing there).

Examples:

    fhirhouse load tests/data/sample --out warehouse
    fhirhouse load export/manifest.json --out warehouse --max-errors 100
    fhirhouse load export/ --out warehouse --views my-views/ --threads 8
    fhirhouse load s3://bucket/export/manifest.json --out s3://bucket/warehouse

Object-store credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, \
AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP; GOOGLE_SERVICE_ACCOUNT; \
AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY; ...).

Nothing is lost: a line that cannot be loaded (invalid JSON or UTF-8, not a resource, a view \
error, longer than --max-line-bytes) goes to <out>/_dead_letter/<load id>/ with its file, \
line number, reason and original bytes. The run report (<out>/_fhirhouse/loads/<load id>.json, \
summarised on standard error) gives lines, resources, rows, dead letters, bytes and seconds per \
file and per table, and they reconcile. A resource that occurs more than once (same type and id) is \
loaded once: the newest copy (meta.versionId, then meta.lastUpdated, then the later line) wins, \
and the older copies are dead-lettered as superseded_duplicate.

Coded columns are crosswalked to standard systems as the mappings' bindings declare \
(Condition code -> ICD-10-CM, medication code -> RxNorm, Observation code -> LOINC, ...): \
each bound table gains <prefix>_system, _code, _display, _source, _relationship and _codes \
columns, and codes nothing maps are counted in the table _dq_unmapped_codes. The shipped \
mappings are built in; --mappings DIR replaces them, --snomed-icd10-map adds the NLM map:

    fhirhouse load export/ --out warehouse --snomed-icd10-map \\
        der2_iisssciRefset_ExtendedMapSnapshot_US1000124_20250901.txt

A load is atomic: it writes into a staging area and publishes with one rename (in an object \
store: uploads the new files, then replaces _fhirhouse/current.json with one PUT). Until then, \
and if it fails or is killed, readers see the previous load, complete. Re-running a load \
replaces the tables; it never appends duplicates. With --merge, the export is applied as an \
increment instead (see `fhirhouse sync`):

    fhirhouse load increment/manifest.json --out warehouse --merge

Exit status: 0 when every line loaded, 1 when the load was published but some lines were \
dead-lettered (or its run report could not be saved), 2 when nothing was published (a fatal error, or more dead letters than \
--max-errors).";

/// Arguments of `fhirhouse load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The export: a folder of NDJSON files, a Bulk Data manifest.json, or data files; a
    /// path or an object-store URL (s3://bucket/export/manifest.json).
    #[arg(required = true, value_name = "EXPORT")]
    pub inputs: Vec<Address>,

    /// The warehouse: a folder (created if missing) or an object-store URL. A folder must be
    /// new, empty or a warehouse already: one holding other files (a home folder, the
    /// export's own) is refused.
    #[arg(short, long, value_name = "DIR|URL")]
    pub out: Address,

    /// Local staging folder for an object-store warehouse [default: a temporary folder].
    #[arg(long, value_name = "DIR")]
    pub staging: Option<PathBuf>,

    /// A folder of ViewDefinitions to use instead of the shipped ones (one table per file).
    #[arg(long, value_name = "DIR")]
    pub views: Option<PathBuf>,

    /// Worker threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,

    /// Rough ceiling on memory use, e.g. 512MiB or 2GiB.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub memory_limit: u64,

    /// Lines longer than this are dead-lettered without being read into memory.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_line_bytes: u64,

    /// Fail the load, publishing nothing, when more than N lines are dead-lettered.
    #[arg(long, value_name = "N")]
    pub max_errors: Option<u64>,

    /// Also keep every resource line, per type and gzip-compressed, under
    /// <out>/_fhirhouse/current/_raw/<Type>/, to re-derive tables later without re-exporting.
    #[arg(long)]
    pub keep_raw: bool,

    /// Parse and check every line, also in files of a type no view reads (the type the
    /// manifest declares, or else the one the file's name carries: Claim.000.ndjson). By
    /// default such files are only counted ("not parsed" in the summary), so a load with a
    /// few --views skips the rest of the export; a file whose first resource is of another
    /// type than its name or entry says is always parsed.
    #[arg(long)]
    pub parse_all: bool,
    /// A mapping folder (manifest.json, systems.json, bindings.json and tables, laid out
    /// like the shipped mappings/) to use instead of the shipped mappings.
    #[arg(long, value_name = "DIR")]
    pub mappings: Option<PathBuf>,

    /// The NLM SNOMED CT to ICD-10-CM map in RF2 form (the ExtendedMap refset file); it is
    /// tried before the shipped tables. Group 1's unconditional rules are used (see README).
    #[arg(long, value_name = "PATH")]
    pub snomed_icd10_map: Option<PathBuf>,

    /// Do not crosswalk: the tables get only their views' columns.
    #[arg(long, conflicts_with_all = ["mappings", "snomed_icd10_map"])]
    pub no_crosswalk: bool,

    /// Let logs quote resource content (dead-letter details). Off by default: logs may
    /// leave the machine, patient data must not.
    #[arg(long)]
    pub log_phi: bool,

    /// Apply the export as an increment to the warehouse's current load instead of replacing
    /// it: upsert by resource id (newest meta.versionId / meta.lastUpdated wins), remove the
    /// resources of the manifest's deleted[] files. A local warehouse only.
    #[arg(long, conflicts_with = "keep_raw")]
    pub merge: bool,
}

impl LoadArgs {
    fn options(&self, quiet: bool) -> LoadOptions {
        let mut options = LoadOptions::new(self.inputs.clone(), self.out.clone());
        options.staging.clone_from(&self.staging);
        options.views_dir.clone_from(&self.views);
        options.threads = self.threads.unwrap_or(0);
        options.memory_limit = self.memory_limit;
        options.max_line_bytes = usize::try_from(self.max_line_bytes).unwrap_or(usize::MAX);
        options.max_errors = self.max_errors;
        options.log_phi = self.log_phi;
        options.keep_raw = self.keep_raw;
        options.parse_all = self.parse_all;
        options.crosswalk = !self.no_crosswalk;
        options.mappings_dir.clone_from(&self.mappings);
        options.snomed_icd10_map.clone_from(&self.snomed_icd10_map);
        options.progress = !quiet;
        options.merge = self.merge;
        options
    }
}

/// Runs `fhirhouse load`.
pub(super) fn run(args: &LoadArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let outcome = load(&args.options(quiet))?;
    Ok(finish(&outcome, quiet))
}

/// Prints the summary and picks the exit status of a finished load.
pub(super) fn finish(outcome: &LoadOutcome, quiet: bool) -> ExitCode {
    let report = &outcome.report;
    if !quiet || !outcome.committed() || outcome.report_error.is_some() {
        say!("{}", report.summary());
        match &outcome.report_error {
            Some(error) => sayln!("  report: not saved: {error}"),
            None => sayln!("  report: {}", outcome.report_path),
        }
    }
    if !outcome.committed() {
        ExitCode::from(EXIT_FATAL)
    } else if report.input_not_applied() > 0 || outcome.report_error.is_some() {
        ExitCode::from(EXIT_SOME_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

/// Parses a byte size: a number, fractions allowed, with an optional unit (B, K/KB/KiB,
/// M/MB/MiB, G/GB/GiB; all powers of 1024); a fraction of a byte is dropped.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let not_a_size = || format!("{text:?} is not a size like 512MiB or 1.5GiB");
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => return Err(format!("unknown size unit {other:?} (use KiB, MiB or GiB)")),
    };
    if let Ok(whole) = number.parse::<u64>() {
        return whole
            .checked_shl(shift)
            .filter(|v| v >> shift == whole)
            .ok_or_else(|| format!("{text:?} is too large"));
    }
    let fraction: f64 = number.parse().map_err(|_| not_a_size())?;
    let bytes = (fraction * (1u64 << shift) as f64).floor();
    // u64::MAX as f64 rounds up to 2^64, which is already too large.
    if bytes.is_finite() && bytes < u64::MAX as f64 {
        Ok(bytes as u64)
    } else {
        Err(format!("{text:?} is too large"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_load_whose_report_was_not_saved_exits_with_1() {
        let report = crate::load::report::LoadReport { status: "committed".into(), ..Default::default() };
        let outcome = LoadOutcome { report, report_path: String::new(), report_error: None };
        assert_eq!(finish(&outcome, true), ExitCode::SUCCESS);
        let outcome = LoadOutcome { report_error: Some("disk full".into()), ..outcome };
        assert_eq!(finish(&outcome, true), ExitCode::from(EXIT_SOME_FAILED));
    }

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("100"), Ok(100));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("0.5KiB"), Ok(512));
        assert_eq!(parse_size("1.5"), Ok(1));
        assert!(parse_size("1.2.3M").unwrap_err().contains("is not a size like"));
        assert!(parse_size(".M").is_err());
        assert!(parse_size("99999999999999999999G").unwrap_err().contains("too large"));
        assert!(parse_size("10TB").is_err());
    }
}
