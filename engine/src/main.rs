//! The `fhirhouse` binary: parses the command line and runs it; see [`fhirhouse::cli`].

use std::process::ExitCode;

use fhirhouse::cli::{exit_on_error, init_tracing, parse, run};

fn main() -> ExitCode {
    // Not `Cli::parse`: `parse` prints `--help` with its examples unwrapped.
    let cli = parse();
    init_tracing(cli.quiet);
    run(&cli).unwrap_or_else(|err| exit_on_error(&err))
}
