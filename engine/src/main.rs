//! The `fhirhouse` binary: parses the command line and runs it; see [`fhirhouse::cli`].

use std::process::ExitCode;

use clap::Parser;
use fhirhouse::cli::{exit_on_error, init_tracing, run, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.quiet);
    run(&cli).unwrap_or_else(|err| exit_on_error(&err))
}
