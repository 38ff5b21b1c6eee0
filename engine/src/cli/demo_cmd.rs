//! `fhirhouse demo`: load the bundled sample export and query it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use crate::load::{load, LoadOptions};

pub(super) const LONG_ABOUT: &str = "\
Load the sample export bundled with fhirhouse (10 Synthea patients, tests/data/sample) into \
a warehouse, print the table row counts, and run an example SQL query on it with DataFusion.

    fhirhouse demo
    fhirhouse demo --out /tmp/warehouse

Afterwards, query the warehouse with any Parquet reader, e.g. DuckDB:

    SELECT * FROM read_parquet('warehouse/observation/*/*.parquet', hive_partitioning = true);";

/// The example query the demo runs.
pub const DEMO_QUERY: &str = "\
SELECT o.code_display AS observation, count(*) AS observations, count(DISTINCT o.patient_id) AS patients
FROM observation o JOIN patient p ON p.id = o.patient_id
WHERE o.effective_datetime_year >= 2015
GROUP BY o.code_display
ORDER BY observations DESC, observation
LIMIT 5";

/// Arguments of `fhirhouse demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// The warehouse folder to create or replace.
    #[arg(short, long, value_name = "DIR", default_value = "warehouse")]
    pub out: PathBuf,
}

/// Runs `fhirhouse demo`.
pub(super) fn run(args: &DemoArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let sample = sample_dir()?;
    let mut options = LoadOptions::new(vec![sample.join("manifest.json")], args.out.clone());
    options.progress = !quiet;
    let outcome = load(&options)?;
    let status = super::load_cmd::finish(&outcome, quiet);
    if !outcome.committed() {
        return Ok(status);
    }
    let ctx = datafusion::prelude::SessionContext::new();
    crate::sql::register_warehouse(&ctx, &args.out)?;
    let batches = crate::sql::query_blocking(&ctx, DEMO_QUERY).context("the demo query failed")?;
    outln!("{DEMO_QUERY};")?;
    outln!("{}", arrow::util::pretty::pretty_format_batches(&batches)?)?;
    Ok(status)
}

/// The bundled sample: `tests/data/sample` under the working directory (a checkout), else
/// where this binary was built from.
fn sample_dir() -> anyhow::Result<PathBuf> {
    let candidates =
        [PathBuf::from("tests/data/sample"), Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data/sample")];
    for dir in candidates {
        if dir.join("manifest.json").is_file() {
            return Ok(dir);
        }
    }
    bail!("the bundled sample (tests/data/sample) is not here; run the demo from a fhirhouse checkout")
}
