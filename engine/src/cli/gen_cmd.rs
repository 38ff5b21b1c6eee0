//! `fhirhouse gen`: a synthetic export of any size, for benchmarks and reliability runs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use crate::counted;
use crate::gen::{generate, GenOptions};

pub(super) const LONG_ABOUT: &str = "\
Write a realistic FHIR Bulk Data export of any size: the bundled Synthea sample (10 patients, \
18 resource types, embedded in the binary) used as a template, patient by patient.

Generated patient k is sample patient k mod 10 with every id rewritten to a new UUID, and every \
reference to it (Type/id, urn:uuid:id) rewritten the same way, so references resolve within the \
export; all dates shifted back by a per-patient number of days (up to four years, formats \
kept); and valueQuantity values jittered by up to 3 % (decimals kept). Organizations and \
Practitioners are a shared pool written once; Group resources list the patients. The resource \
mix and size per patient are the sample's (about 0.5 MB and 370 resources per patient).

--template DIR uses your own export instead: every <Type>[.<part>].ndjson[.gz] file in DIR, for \
example a Synthea run with longer histories (newer Synthea versions write about 1.3 MB per \
patient) or a de-identified extract shaped like your production data. Resources are assigned \
to the patient they reference (Type/id or urn:uuid:id, UUID ids as Synthea writes them); \
Organizations, Practitioners and anything that belongs to no patient are written once. A \
line that is not a resource of its file's type is refused with its file and line.

    fhirhouse gen --patients 5000 --template ~/synthea/output/fhir-bulk --out /tmp/export

    fhirhouse gen --patients 1000 --out /tmp/export
    fhirhouse gen --patients 100000 --out /tmp/export --gzip --seed 7
    fhirhouse load /tmp/export --out /tmp/warehouse

The folder gets one <Type>.000.ndjson (or .ndjson.gz) per type that has lines and a Bulk Data \
manifest.json. \
The same seed gives the same bytes, whatever the number of threads.

For reliability runs, --defects RATE replaces that fraction of patient resource lines with a \
broken line the loader must dead-letter: cut in half (invalid_json), a byte that is not UTF-8 \
(invalid_utf8), or the resource wrapped in a JSON array (not_an_object). The counts are printed \
and written to <out>/defects.json (also by type); a load of the export must report exactly as \
many dead letters, by reason. A load only counts the lines of types no view reads (unread), so \
with a --template holding such types, load with --parse-all to compare:

    fhirhouse gen --patients 200 --out /tmp/broken --defects 0.01
    fhirhouse load /tmp/broken --out /tmp/warehouse

A summary (patients, resources, bytes, seconds, MB/s) goes to standard error.";

/// Arguments of `fhirhouse gen`.
#[derive(Debug, Args)]
pub struct GenArgs {
    /// Number of patients to generate (at least 1).
    #[arg(short = 'n', long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub patients: u64,

    /// The export folder to write (created; NDJSON files and manifest there are replaced).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,

    /// The seed: the same seed gives the same export, byte for byte.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Write gzip-compressed .ndjson.gz files.
    #[arg(long)]
    pub gzip: bool,

    /// Fraction of patient resource lines (0 to 1) replaced by a line the loader must
    /// dead-letter; counts in <out>/defects.json.
    #[arg(long, value_name = "RATE", default_value_t = 0.0)]
    pub defects: f64,

    /// Worker threads [default: one per core].
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<usize>,

    /// Use this Bulk Data export folder as the template instead of the bundled sample.
    #[arg(long, value_name = "DIR")]
    pub template: Option<PathBuf>,
}

/// Runs `fhirhouse gen`.
pub(super) fn run(args: &GenArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let mut options = GenOptions::new(args.patients, args.out.clone());
    options.seed = args.seed;
    options.gzip = args.gzip;
    options.defects = args.defects;
    options.threads = args.threads.unwrap_or(0);
    options.template = args.template.clone();
    let summary = generate(&options)?;
    if !quiet {
        sayln!(
            "generated {}, {}, {:.1} MB of NDJSON ({:.1} MB on disk) in {:.2} s: {:.0} MB/s",
            counted(summary.patients, "patient", "patients"),
            counted(summary.resources, "resource", "resources"),
            summary.bytes as f64 / 1e6,
            summary.file_bytes as f64 / 1e6,
            summary.seconds,
            summary.mb_per_second()
        );
        if args.defects > 0.0 {
            let d = &summary.defects;
            sayln!(
                "  defects: {} ({} invalid_json, {} invalid_utf8, {} not_an_object); see {}",
                d.total,
                d.invalid_json,
                d.invalid_utf8,
                d.not_an_object,
                args.out.join("defects.json").display()
            );
        }
        sayln!("  export: {}", args.out.join("manifest.json").display());
    }
    Ok(ExitCode::SUCCESS)
}
