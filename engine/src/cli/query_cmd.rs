//! `fhirhouse query`: SQL over a warehouse (or a raw export), results out.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use super::sql_run::{run_script, Results, Script, SourceArgs, Stream};
use super::EXIT_SOME_FAILED;
use crate::sink::Format;

/// `--help` text of the subcommand.
pub(super) const LONG_ABOUT: &str = "\
Run SQL (Apache DataFusion's dialect) over a warehouse and write the results.

Every table of the warehouse is there under its name, with its partition key column \
(e.g. observation.effective_datetime_year: filters on it skip whole partitions). SHOW \
TABLES and SHOW COLUMNS FROM <table> list them.

    fhirhouse query warehouse \"SELECT gender, count(*) AS n FROM patient GROUP BY gender\"
    +--------+---+
    | gender | n |
    +--------+---+
    | female | 5 |
    | male   | 5 |
    +--------+---+

Several statements separated by ; run in order; CREATE VIEW and SET take effect for the \
ones after. A script file (or - for standard input) works the same:

    fhirhouse query warehouse -f report.sql --format csv -o report.csv

With --export the same SQL runs straight over a raw Bulk Data export (a folder or its \
manifest.json), each table computed from the NDJSON through its ViewDefinition while the \
query reads it, in bounded memory, evaluating only the columns the query uses:

    fhirhouse query --export tests/data/sample \"SELECT count(*) FROM observation\"

Lines of the export that cannot be used, those a load would dead-letter (invalid JSON or UTF-8, \
not a resource, a resource a view fails on), are reported on standard error with the load's \
reason, and the run exits with status 1.

An error in the SQL points at its place and, for an unknown table or column, lists what \
exists:

    error: column 'gendr' not found
     --> 1:8
      |
    1 | SELECT gendr FROM patient
      |        ^^^^^
      = did you mean 'gender'?

Exit status: 0 on success, 1 when a statement failed (the script stops there) or export \
lines could not be used, 2 on a fatal error (no such warehouse, output not writable, \
usage).";

const FORMAT_HELP: &str = "\
Output format [default: from the extension of -o (.csv, .json, .ndjson, .jsonl, .parquet), \
otherwise table].

table: a bordered table for reading; NULL marks nulls. csv: a header line, then RFC 4180 \
rows. json: one JSON array of row objects. ndjson: one JSON object per line. parquet: one \
zstd Parquet file with the Arrow types kept; needs -o.

Values read the same in every text format: decimals exact without trailing zeros (1.5), \
dates YYYY-MM-DD, instants in UTC ending in Z, lists as JSON arrays; JSON values are \
their natural JSON types (numbers, booleans, null). See `fhirhouse view --help`.

To standard output, every statement that returns rows writes its result in turn (a CSV \
header each, a JSON array each). With -o, the script must have exactly one such \
statement.

-o FILE is written under a temporary name next to FILE (next to its target, for a \
symbolic link) and renamed over it once complete, keeping an existing file's permissions; \
a device or FIFO is written directly; -o - is standard output.";

/// Arguments of `fhirhouse query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// Where the tables come from.
    #[command(flatten)]
    pub source: SourceArgs,

    /// The SQL: one statement, or several separated by ';'.
    #[arg(value_name = "SQL", required_unless_present = "file", conflicts_with = "file")]
    pub sql: Option<String>,

    /// Read the SQL from FILE (several statements separated by ';'), or standard input for -.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Output format: table, csv, json, ndjson or parquet [default: from -o's extension, else table].
    #[arg(long, value_enum, long_help = FORMAT_HELP)]
    pub format: Option<Format>,

    /// Write the result to FILE instead of standard output (put in place once complete; a
    /// device or FIFO is written directly; - is standard output).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl QueryArgs {
    /// The format asked for, implied by the output file's extension, or a table.
    fn format(&self) -> Format {
        self.format.or_else(|| self.output.as_deref().and_then(Format::from_path)).unwrap_or(Format::Table)
    }

    /// The SQL text and the name errors give it.
    fn script(&self) -> anyhow::Result<(String, String)> {
        match (&self.sql, &self.file) {
            (Some(sql), _) => Ok((sql.clone(), String::new())),
            (None, Some(path)) if path.as_os_str() == "-" => {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("cannot read SQL from standard input")?;
                Ok((text, "<stdin>".to_owned()))
            }
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read SQL script {}", path.display()))?;
                Ok((text, path.display().to_string()))
            }
            (None, None) => bail!("no SQL: pass it as an argument or with -f FILE"),
        }
    }
}

/// Runs `fhirhouse query`.
pub(super) fn run(args: &QueryArgs) -> anyhow::Result<ExitCode> {
    let format = args.format();
    if format == Format::Parquet && args.output.is_none() {
        bail!("parquet output needs a file: pass -o FILE");
    }
    let (text, source) = args.script()?;
    if crate::sql::script::split(&text).is_empty() {
        bail!("no SQL statement in {}", if source.is_empty() { "the argument" } else { &source });
    }
    let session = args.source.open()?;
    let mut results = match &args.output {
        Some(path) => Results::to_file(format, path.clone()),
        None => Results::to_stream(format, Stream::Stdout),
    };
    let outcome =
        run_script(&session, &Script { text: &text, source: &source }, &mut results, &mut Stream::Stderr, false)?;
    if outcome.sql_failed {
        return Ok(ExitCode::from(EXIT_SOME_FAILED));
    }
    results.finish()?;
    Ok(if outcome.export_issues > 0 { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn query_args(args: &[&str]) -> Result<QueryArgs, clap::Error> {
        let argv = ["fhirhouse", "query"].iter().chain(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Query(args) => Ok(args),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn format_defaults_to_output_extension_then_table() {
        assert_eq!(query_args(&["wh", "SELECT 1"]).unwrap().format(), Format::Table);
        assert_eq!(query_args(&["wh", "SELECT 1", "-o", "r.json"]).unwrap().format(), Format::Json);
        assert_eq!(query_args(&["wh", "SELECT 1", "-o", "r.csv"]).unwrap().format(), Format::Csv);
        assert_eq!(
            query_args(&["wh", "SELECT 1", "-o", "r.txt", "--format", "ndjson"]).unwrap().format(),
            Format::Ndjson
        );
    }

    #[test]
    fn sql_or_file_is_required_and_not_both() {
        assert!(query_args(&["wh"]).is_err());
        assert!(query_args(&["wh", "SELECT 1", "-f", "x.sql"]).is_err());
        assert!(query_args(&["wh", "-f", "x.sql"]).is_ok());
    }

    #[test]
    fn views_need_export() {
        assert!(query_args(&["wh", "SELECT 1", "--views", "dir"]).is_err());
        let args = query_args(&["--export", "dir", "SELECT 1", "--views", "v"]).unwrap();
        assert!(args.source.export);
    }
}
