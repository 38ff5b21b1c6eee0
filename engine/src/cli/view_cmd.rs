//! `fhirhouse view`: one ViewDefinition over NDJSON input, rows out.

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;

use crate::counted;
use crate::load::dead_letter::{resource_type_of, Reason};
use crate::load::Catalog;
use crate::sink::{open_writer, BatchWriter, Format};
use crate::source::{discover_inputs, LineReader};
use crate::view::{CompiledView, ResourceParser, ViewBatchBuilder};

use super::EXIT_SOME_FAILED;

/// Rows buffered before a batch goes to the writer: large enough for Arrow's columnar work
/// to pay off, small enough to keep memory flat and output flowing.
const BATCH_ROWS: usize = 8192;

/// `--help` text of the subcommand.
pub(super) const LONG_ABOUT: &str = "\
Run one ViewDefinition over NDJSON input and write the rows it produces.

The view is read and compiled first: an invalid view is a fatal error, reported with the \
view's path before any input is read. Then every line of every input is parsed as one FHIR \
resource. Resources of the view's type go through the view; resources of other types are \
skipped and counted. A line that is not valid JSON, or that the view cannot evaluate, is \
reported on standard error as FILE:LINE: REASON and counted; the run goes on and exits \
with status 1 at the end.

With the shipped Patient view over the bundled sample export (rows shortened here):

    $ fhirhouse view schemas/patient.json tests/data/sample/
    {\"id\":\"6c5d9ca9-54d7-42f5-bfae-a7c19cd217f2\",…,\"gender\":\"male\",\"birth_date\":\"1965-01-13\",…}
    {\"id\":\"58c297c4-d684-4677-8024-01131d93835e\",…,\"gender\":\"female\",\"birth_date\":\"1971-04-05\",…}
    …
    4142 resources read, 4132 skipped, 10 rows written, 0 errors

The last line is the summary, on standard error (--quiet leaves it out).

Exit status: 0 when every line was read, 1 when some lines failed, 2 on a fatal error \
(unreadable or invalid view, missing input, output that cannot be written).";

const INPUT_HELP: &str = "\
NDJSON files or export folders to read, in order (- for standard input).

A file is read whatever its name, gzip-compressed or not (decided by a .gz suffix or the \
gzip magic bytes); - reads standard input (plain or gzip), named <stdin> in reports. A \
folder contributes its *.ndjson, *.ndjson.gz, *.jsonl and *.jsonl.gz \
files in name order, not those of sub-folders; a folder with none is an error. Blank \
lines are skipped but counted, so reported line numbers match an editor's.";

const FORMAT_HELP: &str = "\
Output format [default: from the extension of -o (.ndjson, .jsonl, .csv, .parquet, \
.json), otherwise ndjson].

ndjson: one JSON object per row, every column present, keys in column order:
    {\"id\":\"p1\",\"active\":true,\"born\":\"1970-01-02\",\"seen\":\"2015-02-07T11:28:17.239Z\",\"kg\":72.5,\"family\":[\"Doe\"]}
    {\"id\":\"p2\",\"active\":null,\"born\":null,\"seen\":null,\"kg\":null,\"family\":[]}
Strings and codes are JSON strings; decimals exact JSON numbers (1.5, never 1.500000000); \
dates \"YYYY-MM-DD\"; instants in UTC ending in Z, with 0, 3, 6 or 9 fraction digits, the \
fewest that are exact; times \"hh:mm:ss[.fff]\"; collections JSON arrays; no value is null.

csv: a header line, then one line per row, with the same renderings minus the quotes around \
strings; collections are their JSON text; no value is an empty field:
    id,active,born,seen,kg,family
    p1,true,1970-01-02,2015-02-07T11:28:17.239Z,72.5,\"[\"\"Doe\"\"]\"

parquet: one zstd-compressed file with column statistics and the Arrow types kept \
(codes dictionary-encoded, instants as UTC microseconds, decimals as decimal(38, 9)). \
Needs -o.

json: the ndjson objects as one JSON array. table: a bordered table for reading (NULL for \
null), drawn once every row is in.";

/// Arguments of `fhirhouse view`.
#[derive(Debug, Args)]
pub struct ViewArgs {
    /// The ViewDefinition, a JSON file (e.g. schemas/patient.json).
    #[arg(value_name = "VIEW")]
    pub view: PathBuf,

    /// NDJSON files or export folders to read (plain or gzip; - for standard input).
    #[arg(value_name = "INPUT", required = true, long_help = INPUT_HELP)]
    pub inputs: Vec<PathBuf>,

    /// Output format [default: from -o's extension, else ndjson].
    #[arg(short, long, value_enum, long_help = FORMAT_HELP)]
    pub format: Option<Format>,

    /// Write to FILE instead of standard output (moved into place only once complete).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl ViewArgs {
    /// The format asked for, implied by the output file's extension, or NDJSON.
    fn format(&self) -> Format {
        self.format.or_else(|| self.output.as_deref().and_then(Format::from_path)).unwrap_or(Format::Ndjson)
    }
}

/// What one run read and wrote, printed as its summary.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    /// Non-blank input lines.
    resources: u64,
    /// Resources of another type than the view's.
    skipped: u64,
    /// Rows handed to the writer.
    rows: u64,
    /// Lines (or files) that could not be read, parsed or evaluated.
    errors: u64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {} skipped, {}, {}",
            counted(self.resources, "resource read", "resources read"),
            self.skipped,
            counted(self.rows, "row written", "rows written"),
            counted(self.errors, "error", "errors")
        )
    }
}

/// Runs `fhirhouse view`.
pub(super) fn run(args: &ViewArgs, quiet: bool) -> anyhow::Result<ExitCode> {
    let format = args.format();
    if format == Format::Parquet && args.output.is_none() {
        bail!("parquet output needs a file: pass -o FILE");
    }
    let view = load_view(&args.view)?;
    let inputs = inputs(&args.inputs)?;
    tracing::info!(
        view = view.name(),
        resource = view.resource_type(),
        files = inputs.len(),
        %format,
        "running view"
    );

    // A file's errors name it already (see `open_writer`); standard output's do not.
    let to_stdout = args.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    let writer = open_writer(format, view.schema(), args.output.as_deref())?;
    let mut run = ViewRun::new(view, writer);
    for input in &inputs {
        on_stdout(run.read_input(input.as_deref()), to_stdout)?;
    }
    let summary = on_stdout(run.finish(), to_stdout)?;

    if !quiet {
        sayln!("{summary}");
    }
    Ok(if summary.errors > 0 { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}

/// `result`, its error saying it was writing to standard output when `to_stdout`.
fn on_stdout<T>(result: anyhow::Result<T>, to_stdout: bool) -> anyhow::Result<T> {
    if to_stdout {
        result.context("writing to standard output")
    } else {
        result
    }
}

/// How reports name standard input.
const STDIN_LABEL: &str = "<stdin>";

/// The files to read, in order: each file given, each folder's data files, and `None` for
/// standard input (`-`, as `-o -` is standard output), which may be given once.
fn inputs(args: &[PathBuf]) -> anyhow::Result<Vec<Option<PathBuf>>> {
    let mut inputs = Vec::new();
    for arg in args {
        if arg.as_os_str() == "-" {
            if inputs.contains(&None) {
                bail!("- (standard input) is given twice: it can be read only once");
            }
            inputs.push(None);
        } else {
            inputs.extend(discover_inputs(std::slice::from_ref(arg))?.into_iter().map(Some));
        }
    }
    Ok(inputs)
}

/// Reads and compiles the view file; errors name the file. It goes through the checks a
/// load makes of its views (its partition tag among them), so that a view this command
/// runs is one `fhirhouse load --views` takes too.
fn load_view(path: &Path) -> anyhow::Result<Arc<CompiledView>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read view {}", path.display()))?;
    let catalog = Catalog::from_sources([(path.to_path_buf(), text)])?;
    Ok(Arc::clone(&catalog.views[0]))
}

/// The state of one `view` run: the compiled view, the rows being batched, the writer and
/// the counts. Input problems are reported and counted here; only output errors escape.
struct ViewRun {
    view: Arc<CompiledView>,
    builder: ViewBatchBuilder,
    writer: Box<dyn BatchWriter>,
    parser: ResourceParser,
    summary: Summary,
    stderr: io::Stderr,
}

impl ViewRun {
    fn new(view: Arc<CompiledView>, writer: Box<dyn BatchWriter>) -> Self {
        Self {
            builder: ViewBatchBuilder::new(view.clone()),
            view,
            writer,
            parser: ResourceParser::default(),
            summary: Summary::default(),
            stderr: io::stderr(),
        }
    }

    /// Runs every line of `path` (standard input for `None`) through the view. A file that
    /// cannot be opened or read to the end is reported and counted like a bad line, and the
    /// run moves on to the next.
    fn read_input(&mut self, path: Option<&Path>) -> anyhow::Result<()> {
        let opened = match path {
            Some(path) => {
                tracing::debug!(file = %path.display(), "reading");
                LineReader::open(path)
            }
            None => LineReader::from_reader(STDIN_LABEL, io::stdin()),
        };
        let mut lines = match opened {
            Ok(lines) => lines,
            Err(e) => {
                self.report(format_args!("{e}"));
                return Ok(());
            }
        };
        loop {
            match lines.next_line() {
                Ok(Some((number, bytes))) => {
                    self.summary.resources += 1;
                    if let Err(reason) = self.process_line(bytes) {
                        let detail = reason.detail();
                        self.report(format_args!("{}:{number}: {detail}", lines.path().display()));
                    }
                    if self.builder.len() >= BATCH_ROWS {
                        self.flush()?;
                    }
                }
                Ok(None) => return Ok(()),
                Err(e) => {
                    self.report(format_args!("{e}"));
                    return Ok(());
                }
            }
        }
    }

    /// Parses one line and appends its rows; `Err` holds the reason the line failed, as a
    /// load would dead-letter it.
    fn process_line(&mut self, bytes: &mut [u8]) -> Result<(), Reason> {
        let error = match self.parser.parse(bytes) {
            Ok(parsed) => {
                let resource = parsed.doc();
                // Checked here rather than left to `append` (which would return 0 rows) so
                // that other types count as skipped, not as filtered out by the view's `where`.
                let view_type = self.view.resource_type();
                if !resource_type_of(resource, |t| t == view_type)?.read {
                    self.summary.skipped += 1;
                    return Ok(());
                }
                return self.builder.append(resource).map(drop).map_err(|e| Reason::View(e.to_string()));
            }
            Err(error) => error,
        };
        Err(Reason::unparsable(&error, bytes))
    }

    /// Counts a failed line or file and prints it on standard error.
    fn report(&mut self, message: fmt::Arguments<'_>) {
        self.summary.errors += 1;
        // Nothing sensible is left to do if standard error itself is gone.
        let _ = writeln!(self.stderr.lock(), "{message}");
    }

    /// Hands the buffered rows to the writer as one batch.
    fn flush(&mut self) -> anyhow::Result<()> {
        if self.builder.is_empty() {
            return Ok(());
        }
        let batch = self.builder.finish();
        self.summary.rows += batch.num_rows() as u64;
        self.writer.write(&batch)?;
        Ok(())
    }

    /// Writes the last rows, completes the output and returns the counts.
    fn finish(mut self) -> anyhow::Result<Summary> {
        self.flush()?;
        self.writer.finish()?;
        Ok(self.summary)
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};
    use super::*;

    fn view_args(args: &[&str]) -> ViewArgs {
        let argv = ["fhirhouse", "view"].iter().chain(args);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::View(args) => args,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn format_defaults_to_output_extension_then_ndjson() {
        assert_eq!(view_args(&["v.json", "in"]).format(), Format::Ndjson);
        assert_eq!(view_args(&["v.json", "in", "-o", "t.parquet"]).format(), Format::Parquet);
        assert_eq!(view_args(&["v.json", "in", "-o", "t.csv"]).format(), Format::Csv);
        assert_eq!(view_args(&["v.json", "in", "-o", "t.out"]).format(), Format::Ndjson);
        assert_eq!(view_args(&["v.json", "in", "-o", "t.parquet", "--format", "csv"]).format(), Format::Csv);
    }

    #[test]
    fn at_least_one_input_is_required() {
        assert!(Cli::try_parse_from(["fhirhouse", "view", "v.json"]).is_err());
    }

    #[test]
    fn parquet_to_stdout_is_refused_before_reading_the_view() {
        let args = view_args(&["/nonexistent/view.json", "in", "--format", "parquet"]);
        let err = run(&args, true).unwrap_err();
        assert!(err.to_string().contains("needs a file"), "{err}");
    }

    #[test]
    fn summary_reads_as_documented() {
        let s = Summary { resources: 5, skipped: 1, rows: 3, errors: 2 };
        assert_eq!(s.to_string(), "5 resources read, 1 skipped, 3 rows written, 2 errors");
        let s = Summary { resources: 1, skipped: 0, rows: 1, errors: 1 };
        assert_eq!(s.to_string(), "1 resource read, 0 skipped, 1 row written, 1 error");
    }
}
