//! `fhirhouse conformance`: the SQL on FHIR v2 test suite against the view compiler.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::view::conformance::run_suite;

use super::EXIT_SOME_FAILED;

/// `--help` text of the subcommand.
pub(super) const LONG_ABOUT: &str = "\
Run the SQL on FHIR v2 conformance tests in a folder and report the results.

DIR holds the specification's test files (one JSON file per feature, each with resources, \
views and expected rows). The official suite ships in this repository as tests/sql-on-fhir. \
Every failing test is printed as FILE: TEST: REASON, then a last line with the counts:

    $ fhirhouse conformance tests/sql-on-fhir --report report.json
    144 passed, 0 failed

Rows are compared as multisets, as the reference runner does; an expectError test passes \
only if the view is rejected or a resource fails, and the report records why.

Exit status: 0 when all tests pass, 1 when some fail, 2 when the suite cannot be read.";

/// Arguments of `fhirhouse conformance`.
#[derive(Debug, Args)]
pub struct ConformanceArgs {
    /// Folder of SQL on FHIR test files (*.json).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,

    /// Also write the results to FILE as JSON, in the SQL on FHIR test-report format:
    /// `{"<file>": {"tests": [{"name": ..., "result": {"passed": true}}]}}`.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
}

/// Runs `fhirhouse conformance`.
pub(super) fn run(args: &ConformanceArgs) -> anyhow::Result<ExitCode> {
    let suite = run_suite(&args.dir).with_context(|| format!("cannot run the test suite in {}", args.dir.display()))?;
    for (file, test, reason) in suite.failures() {
        outln!("{file}: {test}: {reason}")?;
    }
    if let Some(path) = &args.report {
        let json = serde_json::to_vec_pretty(&suite.to_report_json())?;
        std::fs::write(path, json).with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    let failed = suite.failed();
    outln!("{} passed, {failed} failed", suite.passed())?;
    Ok(if failed > 0 { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}
