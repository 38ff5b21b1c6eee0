//! `fhirhouse sql`: the interactive SQL shell (line editing and history by rustyline; the
//! line handling itself is in [`super::shell`]).

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use rustyline::error::ReadlineError;

use super::shell::{Flow, Shell};
use super::sql_run::{SourceArgs, Stream};
use super::EXIT_SOME_FAILED;

/// `--help` text of the subcommand.
pub(super) const LONG_ABOUT: &str = "\
An interactive SQL shell over a warehouse (or, with --export, a raw Bulk Data export): \
every table registered with its partition key, as for `fhirhouse query`.

    $ fhirhouse sql warehouse
    fhirhouse> .tables
    fhirhouse> SELECT gender, count(*)
           ...> FROM patient
           ...> GROUP BY gender;
    fhirhouse> .schema observation
    fhirhouse> .timing on
    fhirhouse> .quit

Statements end with ';' and may span lines. Dot commands: .tables, .schema [TABLE], \
.timing [on|off], .format [table|csv|json|ndjson], .help, .quit. Up and down arrows walk \
the history, kept in ~/.fhirhouse_history (or $FHIRHOUSE_HISTORY). Ctrl-C drops the \
statement being typed, Ctrl-D leaves.

When standard input is not a terminal the shell reads it line by line without prompts, \
so a script can be piped in (`fhirhouse sql warehouse < script.sql`); the exit status is \
then 1 if a statement failed.

Exit status: 0 on leaving normally, 1 when piped input had a failing statement, 2 on a \
fatal error (no such warehouse).";

/// Arguments of `fhirhouse sql`.
#[derive(Debug, Args)]
pub struct SqlArgs {
    /// Where the tables come from.
    #[command(flatten)]
    pub source: SourceArgs,
}

/// Runs `fhirhouse sql`.
pub(super) fn run(args: &SqlArgs) -> anyhow::Result<ExitCode> {
    let session = args.source.open()?;
    let mut shell = Shell::new(&session, Stream::Stdout, Stream::Stderr);
    if std::io::stdin().is_terminal() {
        interactive(&mut shell)?;
        return Ok(ExitCode::SUCCESS);
    }
    for line in std::io::stdin().lock().lines() {
        if shell.handle_line(&line.context("reading standard input")?) == Flow::Quit {
            break;
        }
    }
    shell.finish();
    Ok(if shell.failed { ExitCode::from(EXIT_SOME_FAILED) } else { ExitCode::SUCCESS })
}

/// The history file: `$FHIRHOUSE_HISTORY`, else `~/.fhirhouse_history`.
fn history_file() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("FHIRHOUSE_HISTORY") {
        return Some(PathBuf::from(path));
    }
    std::env::home_dir().map(|home| home.join(".fhirhouse_history"))
}

fn interactive(shell: &mut Shell<'_>) -> anyhow::Result<()> {
    let mut editor = rustyline::DefaultEditor::new().context("cannot set up the terminal")?;
    let history = history_file();
    if let Some(path) = &history {
        // A first run has no history yet.
        let _ = editor.load_history(path);
    }
    sayln!("fhirhouse SQL shell: statements end with ';', .help for commands, .quit to leave");
    loop {
        match editor.readline(shell.prompt()) {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                }
                if shell.handle_line(&line) == Flow::Quit {
                    break;
                }
            }
            Err(ReadlineError::Interrupted) => shell.interrupt(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading the terminal"),
        }
    }
    if let Some(path) = &history {
        if let Err(e) = editor.save_history(path) {
            sayln!("warning: cannot save the history to {}: {e}", path.display());
        }
    }
    Ok(())
}
