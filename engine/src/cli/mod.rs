//! The command line: argument definitions (clap derive) and the subcommands behind them.
//!
//! `main.rs` only parses, sets up logging and maps the result to an exit status; each
//! subcommand lives in its own file and returns the [`ExitCode`] it wants.
//!
//! Exit statuses follow ripgrep's convention: 0 when all went well, 1 when the run completed
//! but some input lines (or conformance tests) failed, 2 on a fatal error.
//!
//! [`ExitCode`]: std::process::ExitCode

// The doc comments of the clap argument structs are the commands' --help text, printed as
// written: placeholders such as `<id>` and bare URLs are for the terminal, not rustdoc
// markup.
#![allow(rustdoc::invalid_html_tags, rustdoc::bare_urls, rustdoc::broken_intra_doc_links)]

/// `eprint!`/`eprintln!` for what a command says about its run (summaries, notes). A closed
/// standard error (`fhirhouse load ... 2>&1 | head -1`) is ignored: what the command did, a
/// committed load say, stands, and its exit status still says how it went.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}
/// [`say!`] with a newline.
macro_rules! sayln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
/// `print!`/`println!` for a command's output, as an `io::Result` to pass on with `?`: a
/// closed standard output (`fhirhouse scan ... | head`) then ends the run quietly
/// ([`exit_on_error`]) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout(), $($arg)*)
    }};
}
/// [`out!`] with a newline.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)
    }};
}

mod conformance_cmd;
mod demo_cmd;
mod export_cmd;
mod gen_cmd;
mod help;
mod history_cmd;
mod load_cmd;
mod mappings_cmd;
mod query_cmd;
mod report_cmd;
mod scan_cmd;
mod shell;
mod sql_cmd;
mod sql_run;
mod sync_cmd;
mod view_cmd;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use conformance_cmd::ConformanceArgs;
pub use demo_cmd::{DemoArgs, DEMO_QUERY};
pub use export_cmd::{ClientArgs, ExportArgs, RequestArgs};
pub use gen_cmd::GenArgs;
pub use help::{parse, parse_from};
pub use history_cmd::HistoryArgs;
pub use load_cmd::LoadArgs;
pub use mappings_cmd::{MappingsArgs, MappingsCommand};
pub use query_cmd::QueryArgs;
pub use report_cmd::{ParamArgs, ReportArgs};
pub use scan_cmd::ScanArgs;
pub use sql_cmd::SqlArgs;
pub use sql_run::SourceArgs;
pub use sync_cmd::SyncArgs;
pub use view_cmd::ViewArgs;

/// Exit status of a run that finished but had failing lines or tests.
pub const EXIT_SOME_FAILED: u8 = 1;
/// Exit status of a run stopped by a fatal error.
pub const EXIT_FATAL: u8 = 2;

const LONG_ABOUT: &str = "\
fhirhouse turns FHIR Bulk Data exports (folders of NDJSON files, one FHIR R4 resource \
per line) into tables, through SQL on FHIR v2 ViewDefinitions.

Load the bundled sample into ./warehouse and run an example query:

    fhirhouse demo

Export from a FHIR server (Bulk Data $export) into a folder, then load it:

    fhirhouse export https://fhir.example.org/r4 --out export/
    fhirhouse load export/manifest.json --out warehouse

Keep a warehouse up to date with a server (increments since the last sync), and list its loads:

    fhirhouse sync https://fhir.example.org/r4 --warehouse warehouse
    fhirhouse history warehouse

Query the warehouse with SQL, or open the SQL shell on it:

    fhirhouse query warehouse \"SELECT gender, count(*) FROM patient GROUP BY gender\"
    fhirhouse sql warehouse

Run a shipped analysis: care gaps (eCQM CMS122, CMS125, CMS130, CMS131, CMS165) or CMS-HCC \
risk scores:

    fhirhouse report --list
    fhirhouse report cms165 warehouse --period-start 2019-01-01
    fhirhouse report hcc warehouse --payment-year 2026 --model V24 --result patients -o hcc.csv

The same SQL straight over an export, without loading it:

    fhirhouse query --export export/ \"SELECT count(*) FROM observation\"

Run a view over an export folder and print its rows as NDJSON:

    fhirhouse view schemas/patient.json tests/data/sample/

The same table as CSV, or as a Parquet file:

    fhirhouse view schemas/patient.json tests/data/sample/ --format csv
    fhirhouse view schemas/patient.json tests/data/sample/ -o patient.parquet

Generate a synthetic export of 1,000 patients (templated from the bundled sample):

    fhirhouse gen --patients 1000 --out /tmp/export

Validate the shipped code crosswalks, value sets and CMS-HCC tables:

    fhirhouse mappings check

Check the view compiler against the SQL on FHIR test suite:

    fhirhouse conformance tests/sql-on-fhir --report report.json

Diagnostics go to standard error. Logging is off below warnings unless RUST_LOG says \
otherwise, e.g. RUST_LOG=fhirhouse=debug.

Exit status: 0 on success, 1 when some input lines or tests failed, 2 on a fatal error.";

/// `fhirhouse`: FHIR Bulk Data exports to tables through SQL on FHIR views.
#[derive(Debug, Parser)]
#[command(
    name = "fhirhouse",
    version,
    about = "FHIR Bulk Data exports to tables through SQL on FHIR v2 ViewDefinitions.",
    long_about = LONG_ABOUT,
    propagate_version = true
)]
pub struct Cli {
    /// Print no summary or informational messages on standard error.
    ///
    /// Errors are still reported, and the exit status is unchanged. Logging is limited to
    /// errors unless RUST_LOG is set.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a Bulk Data export (folder or manifest) into a partitioned Parquet warehouse.
    #[command(long_about = load_cmd::LONG_ABOUT)]
    Load(LoadArgs),
    /// Export from a FHIR server with Bulk Data $export into a folder that `load` reads.
    #[command(long_about = export_cmd::LONG_ABOUT)]
    Export(ExportArgs),
    /// Export what changed on a FHIR server since the last sync and merge it into a warehouse.
    #[command(long_about = sync_cmd::LONG_ABOUT)]
    Sync(SyncArgs),
    /// List the loads of a warehouse with their counts.
    #[command(long_about = history_cmd::LONG_ABOUT)]
    History(HistoryArgs),
    /// Run SQL over a warehouse (or, with --export, a raw export) and write the results.
    #[command(long_about = query_cmd::LONG_ABOUT)]
    Query(QueryArgs),
    /// Interactive SQL shell over a warehouse (or, with --export, a raw export).
    #[command(long_about = sql_cmd::LONG_ABOUT)]
    Sql(SqlArgs),
    /// Run a shipped analysis (care gaps CMS122/125/130/131/165, CMS-HCC risk scores) over a
    /// warehouse.
    #[command(long_about = report_cmd::LONG_ABOUT)]
    Report(ReportArgs),
    /// Read and parse every line of an export on all cores, write nothing: a check and the
    /// speed ceiling of a load.
    #[command(long_about = scan_cmd::LONG_ABOUT)]
    Scan(ScanArgs),
    /// Load the bundled sample export into ./warehouse and run an example query.
    #[command(long_about = demo_cmd::LONG_ABOUT)]
    Demo(DemoArgs),
    /// Run one ViewDefinition over NDJSON input and write its rows (NDJSON, CSV, Parquet).
    // The long text sits here: a variant's doc comment would override one set on the struct.
    #[command(long_about = view_cmd::LONG_ABOUT)]
    View(ViewArgs),
    /// Run the SQL on FHIR v2 conformance tests in a folder and report the results.
    #[command(long_about = conformance_cmd::LONG_ABOUT)]
    Conformance(ConformanceArgs),
    /// Write a synthetic Bulk Data export of any size, templated from the bundled sample.
    #[command(long_about = gen_cmd::LONG_ABOUT)]
    Gen(GenArgs),
    /// Validate mapping tables: crosswalks, value sets, code lists, CMS-HCC tables.
    #[command(long_about = mappings_cmd::LONG_ABOUT)]
    Mappings(MappingsArgs),
}

/// Runs the parsed command line.
///
/// # Errors
///
/// A fatal error, with context for the user; see [`exit_on_error`].
pub fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Load(args) => load_cmd::run(args, cli.quiet),
        Command::Export(args) => export_cmd::run(args, cli.quiet),
        Command::Sync(args) => sync_cmd::run(args, cli.quiet),
        Command::History(args) => history_cmd::run(args),
        Command::Demo(args) => demo_cmd::run(args, cli.quiet),
        Command::Scan(args) => scan_cmd::run(args),
        Command::Query(args) => query_cmd::run(args),
        Command::Sql(args) => sql_cmd::run(args),
        Command::Report(args) => report_cmd::run(args),
        Command::View(args) => view_cmd::run(args, cli.quiet),
        Command::Conformance(args) => conformance_cmd::run(args),
        Command::Gen(args) => gen_cmd::run(args, cli.quiet),
        Command::Mappings(args) => mappings_cmd::run(args, cli.quiet),
    }
}

/// Sets up `tracing` output on standard error, filtered by `RUST_LOG` when set and
/// otherwise at `warn` (`error` with `--quiet`).
pub fn init_tracing(quiet: bool) {
    use tracing_subscriber::EnvFilter;

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(if quiet { "error" } else { "warn" }));
    // Colours only for a person at a terminal: a nightly job's log file or a pipe gets the
    // text without escape codes (and NO_COLOR is honoured).
    let ansi = io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Only fails when a subscriber is already set (tests calling twice): keep that one.
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(io::stderr).with_ansi(ansi).try_init();
}

/// Reports a fatal error on standard error as `error: ...` with its causes, and returns
/// [`EXIT_FATAL`]. A closed standard output (`fhirhouse view ... | head`) is not an error:
/// the reader has what it wanted, so the run ends quietly with success.
pub fn exit_on_error(err: &anyhow::Error) -> ExitCode {
    let broken_pipe = err
        .chain()
        .filter_map(|cause| cause.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe);
    if broken_pipe {
        return ExitCode::SUCCESS;
    }
    sayln!("error: {}", crate::error_text(err.as_ref()));
    ExitCode::from(EXIT_FATAL)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn gen_needs_at_least_one_patient() {
        // With none it would write an export of the shared practitioners and organisations.
        let err = Cli::try_parse_from(["fhirhouse", "gen", "-n", "0", "-o", "x"]).unwrap_err().to_string();
        assert!(err.contains("invalid value '0' for '--patients <N>': 0 is not in 1.."), "{err}");
        assert!(Cli::try_parse_from(["fhirhouse", "gen", "-n", "1", "-o", "x"]).is_ok());
    }

    #[test]
    fn quiet_is_accepted_before_and_after_the_subcommand() {
        for args in
            [&["fhirhouse", "-q", "view", "v.json", "in/"][..], &["fhirhouse", "view", "v.json", "in/", "--quiet"][..]]
        {
            assert!(Cli::try_parse_from(args).unwrap().quiet);
        }
    }

    #[test]
    fn broken_pipe_exits_successfully_and_others_fatally() {
        let pipe =
            anyhow::Error::from(io::Error::from(io::ErrorKind::BrokenPipe)).context("writing to standard output");
        assert_eq!(exit_on_error(&pipe), ExitCode::SUCCESS);
        let other = anyhow::anyhow!("boom");
        assert_eq!(exit_on_error(&other), ExitCode::from(EXIT_FATAL));
    }
}
