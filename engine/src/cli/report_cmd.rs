//! `fhirhouse report`: runs a shipped SQL analysis (`queries/`) over a warehouse, with its
//! parameters from the command line, and writes one of its results.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::sql_run::{run_script, Results, Script, SourceArgs, Stream};
use super::EXIT_SOME_FAILED;
use crate::sink::Format;
use crate::sql::analyses::{self, Analysis, BoundAnalysis};
use crate::store::Address;

/// `--help` text of the subcommand.
pub(super) const LONG_ABOUT: &str = include_str!("report_help.txt");

/// The parameters analyses declare, as flags: each analysis takes the ones its header
/// declares (`fhirhouse report NAME` lists them) and refuses the others.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Analysis parameters (each analysis takes some; `fhirhouse report NAME` lists its own)")]
pub struct ParamArgs {
    /// Care gaps: first day of the one-year measurement period [default: 2025-01-01].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub period_start: Option<String>,
    /// Care gaps: qualifying visits by the shipped VSAC value sets only (vsac: without CPT,
    /// few visits qualify) or with the SNOMED CT stand-ins for the CPT visit codes
    /// (supplemented) [default: supplemented].
    #[arg(long, value_name = "vsac|supplemented")]
    pub encounter_codes: Option<String>,
    /// CMS-HCC: the payment year; its tables, factors and age date (1 February); one with
    /// tables for the model (V24: 2025-2026, V28: 2025-2027) [default: 2026].
    #[arg(long, value_name = "YEAR")]
    pub payment_year: Option<String>,
    /// CMS-HCC: the model, V24 or V28 [default: V28].
    #[arg(long, value_name = "V24|V28")]
    pub model: Option<String>,
    /// CMS-HCC: community-nondual, community-partial-dual, community-full-dual or
    /// institutional [default: community-nondual: CNA at 65 and over, CND under 65].
    #[arg(long, value_name = "SEGMENT")]
    pub segment: Option<String>,
    /// CMS-HCC: first day of service whose diagnoses count [default: 1 January of the year
    /// before the payment year].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub service_from: Option<String>,
    /// CMS-HCC: last day of service whose diagnoses count [default: 31 December of the year
    /// before the payment year].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub service_to: Option<String>,
    /// CMS-HCC: which Conditions give diagnoses besides claims: recorded (in the service
    /// window), active (at any time in it) or none [default: recorded].
    #[arg(long, value_name = "recorded|active|none")]
    pub conditions: Option<String>,
    /// CMS-HCC: normalisation factor to divide by, above 0 [default: CMS's for the year and
    /// model].
    #[arg(long, value_name = "NUMBER")]
    pub normalization: Option<String>,
    /// CMS-HCC: MA coding pattern adjustment, a fraction from 0 up to (not including) 1
    /// [default: CMS's for the year].
    #[arg(long, value_name = "NUMBER")]
    pub coding_adjustment: Option<String>,
}

impl ParamArgs {
    /// The parameters given, as (name in the SQL, value).
    fn given(&self) -> Vec<(&'static str, &str)> {
        let all = [
            ("period_start", &self.period_start),
            ("encounter_codes", &self.encounter_codes),
            ("payment_year", &self.payment_year),
            ("model", &self.model),
            ("segment", &self.segment),
            ("service_from", &self.service_from),
            ("service_to", &self.service_to),
            ("conditions", &self.conditions),
            ("normalization", &self.normalization),
            ("coding_adjustment", &self.coding_adjustment),
        ];
        all.into_iter().filter_map(|(name, value)| value.as_deref().map(|v| (name, v))).collect()
    }
}

/// Arguments of `fhirhouse report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The analysis (`fhirhouse report --list` shows them); alone, it describes the analysis.
    #[arg(value_name = "ANALYSIS")]
    pub name: Option<String>,

    /// The warehouse (a folder or object-store URL); with --export, a raw Bulk Data export.
    #[arg(value_name = "WAREHOUSE|EXPORT")]
    pub source: Option<Address>,

    /// Read the source as a raw Bulk Data export, through the ViewDefinitions.
    #[arg(long)]
    pub export: bool,

    /// List the shipped analyses with their parameters and results.
    #[arg(long, conflicts_with_all = ["name", "source"])]
    pub list: bool,

    /// Print the SQL that would run (parameters filled in, every file in order) instead of
    /// running it: it runs as it is with `fhirhouse query WAREHOUSE -f`.
    #[arg(long)]
    pub sql: bool,

    /// Which result to write (the analysis lists them) [default: its first, the summary].
    #[arg(long, value_name = "NAME")]
    pub result: Option<String>,

    /// Output format: table, csv, json, ndjson or parquet [default: from -o's extension, else table].
    #[arg(long, value_enum)]
    pub format: Option<Format>,

    /// Write the result to FILE instead of standard output (put in place once complete).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,

    /// The analysis' parameters (last: their help heading is their own).
    #[command(flatten)]
    pub params: ParamArgs,
}

impl ReportArgs {
    /// The options given that only a run uses (the parameters, --result, --format, -o,
    /// --export), as flags.
    fn run_options(&self) -> Vec<String> {
        let mut options: Vec<String> =
            self.params.given().iter().map(|(name, _)| format!("--{}", name.replace('_', "-"))).collect();
        let others = [
            (self.result.is_some(), "--result"),
            (self.format.is_some(), "--format"),
            (self.output.is_some(), "-o"),
            (self.export, "--export"),
        ];
        options.extend(others.into_iter().filter(|(given, _)| *given).map(|(_, flag)| flag.to_owned()));
        options
    }
}

/// Runs `fhirhouse report`.
pub(super) fn run(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let Some(name) = &args.name else {
        out!("{}", list(analyses::shipped()?))?;
        return Ok(ExitCode::SUCCESS);
    };
    let analysis = analyses::find(name)?;
    let bound = analysis.bind(&args.params.given())?;
    let result = analysis.result(args.result.as_deref())?;
    if args.sql {
        out!("{}", bound.script_text(result)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(source) = &args.source else {
        // `report NAME` alone describes the analysis; anything meant for a run, without
        // the tables to run it on, would be dropped without a word.
        let options = args.run_options();
        if !options.is_empty() {
            bail!(
                "the WAREHOUSE argument is missing (EXPORT with --export): {} {} for a run, which is \
                 `fhirhouse report {name} WAREHOUSE [--PARAM VALUE ...]`; `fhirhouse report {name}` alone \
                 describes the analysis",
                options.join(", "),
                if options.len() == 1 { "is" } else { "are" },
                name = analysis.name,
            );
        }
        out!("{}", describe(analysis))?;
        return Ok(ExitCode::SUCCESS);
    };
    let format = args.format.or_else(|| args.output.as_deref().and_then(Format::from_path)).unwrap_or(Format::Table);
    if format == Format::Parquet && args.output.is_none() {
        bail!("parquet output needs a file: pass -o FILE");
    }
    let session =
        SourceArgs { source: source.clone(), export: args.export, views: None }.open().context("opening the tables")?;
    bound.check(&session)?;
    let mut results = match &args.output {
        Some(path) => Results::to_file(format, path.clone()),
        None => Results::to_stream(format, Stream::Stdout),
    };
    let mut export_issues = 0;
    let query = analyses::result_query(result);
    for script in bound_scripts(&bound)?.iter().chain([&(String::new(), query)]) {
        let outcome = run_script(
            &session,
            &Script { text: &script.1, source: &script.0 },
            &mut results,
            &mut Stream::Stderr,
            false,
        )?;
        export_issues += outcome.export_issues;
        if outcome.sql_failed {
            return Ok(ExitCode::from(EXIT_SOME_FAILED));
        }
    }
    results.finish()?;
    Ok(if export_issues > 0 { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}

fn bound_scripts(bound: &BoundAnalysis<'_>) -> anyhow::Result<Vec<(String, String)>> {
    Ok(bound.scripts()?.into_iter().map(|s| (s.source, s.text)).collect())
}

/// `fhirhouse report --list`: every analysis, its parameters and results.
fn list(all: &[Analysis]) -> String {
    let mut text = String::new();
    for analysis in all {
        let _ = writeln!(text, "{:<10} {}", analysis.name, analysis.title);
        for param in &analysis.params {
            let default = param.default.as_deref().map_or_else(String::new, |d| format!(" [{d}]"));
            let _ = writeln!(text, "{:<10}   {} {}{default}", "", param.flag(), param.kind.describe());
        }
        let results: Vec<&str> = analysis.results.iter().map(|r| r.name.as_str()).collect();
        let _ = writeln!(text, "{:<10}   --result {}", "", results.join("|"));
    }
    text.push_str("\nfhirhouse report NAME describes one; fhirhouse report NAME WAREHOUSE runs it.\n");
    text
}

/// `fhirhouse report NAME`: what the analysis computes, its parameters and results.
fn describe(analysis: &Analysis) -> String {
    let mut text = format!("{}: {}\n\nParameters:\n", analysis.name, analysis.title);
    if analysis.params.is_empty() {
        text.push_str("  (none)\n");
    }
    for param in &analysis.params {
        let default = param.default.as_deref().unwrap_or("see the description");
        let _ =
            writeln!(text, "  {} {} [default: {default}]\n      {}", param.flag(), param.kind.describe(), param.help);
    }
    text.push_str("\nResults (--result NAME; the first is the default):\n");
    for result in &analysis.results {
        let _ = writeln!(text, "  {:<10} {}", result.name, result.help);
    }
    let files: Vec<String> = analysis.files().iter().map(|f| format!("queries/{f}")).collect();
    let _ = writeln!(
        text,
        "\nThe SQL: {} (fhirhouse report {} --sql prints it with the parameters filled in).",
        files.join(", "),
        analysis.name
    );
    text
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn report_args(args: &[&str]) -> Result<ReportArgs, clap::Error> {
        let argv = ["fhirhouse", "report"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Report(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn every_declared_parameter_has_a_flag() {
        for analysis in analyses::shipped().unwrap() {
            for param in &analysis.params {
                let flag = param.flag();
                let args = report_args(&[analysis.name.as_str(), "wh", &flag, "x"])
                    .unwrap_or_else(|e| panic!("{}: {flag}: {e}", analysis.name));
                assert_eq!(args.params.given(), [(param.name.as_str(), "x")]);
            }
        }
    }

    #[test]
    fn flags_reach_the_parameters_by_name() {
        let args = report_args(&["cms122", "wh", "--period-start", "2026-01-01", "-o", "x.csv"]).unwrap();
        assert_eq!(args.params.given(), [("period_start", "2026-01-01")]);
        assert_eq!(args.source.unwrap().to_string(), "wh");
        assert!(report_args(&["--list", "cms122"]).is_err());
    }

    #[test]
    fn list_and_describe_name_parameters_and_results() {
        let all = analyses::shipped().unwrap();
        let text = list(all);
        assert!(text.contains("cms122") && text.contains("--period-start YYYY-MM-DD [2025-01-01]"), "{text}");
        let hcc = analyses::find("hcc").unwrap();
        let text = describe(hcc);
        assert!(text.contains("--model V24|V28 [default: V28]"), "{text}");
        assert!(text.contains("queries/hcc.sql"), "{text}");
    }
}
