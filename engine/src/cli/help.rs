//! `--help` whose examples print as written.
//!
//! clap wraps help text at the terminal's width (100 columns when not at a terminal),
//! breaking lines at spaces, and an example wider than that was cut in two: a command that
//! no longer runs when copied, a row of sample output that is no longer one. No clap setting
//! keeps some lines whole (its width applies to all of a command's help, prose and options
//! too). So [`parse`] hands clap the long help with the spaces of its example lines (those
//! indented by four spaces or more) swapped for a character clap does not break at, and
//! swaps them back in the help it prints.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};

use clap::error::ErrorKind;
use clap::{Command, CommandFactory, FromArgMatches};

use super::Cli;

/// Stands for a space of an example while clap wraps the help around it (a private-use
/// character: no help text holds one).
const KEPT_SPACE: char = '\u{E000}';

/// Parses the command line as `Cli::parse` does: on an error it prints the message and exits
/// (with status 0 for `--help` and `--version`), but `--help` prints examples unwrapped.
#[must_use]
pub fn parse() -> Cli {
    parse_from(std::env::args_os())
}

/// [`parse`] of `args` (the program's name first).
pub fn parse_from(args: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> Cli {
    let mut command = keep_examples(Cli::command());
    let parsed = command.try_get_matches_from_mut(args).and_then(|matches| Cli::from_arg_matches(&matches));
    match parsed {
        Ok(cli) => cli,
        Err(e) if e.kind() == ErrorKind::DisplayHelp => {
            let help = e.render();
            let ansi = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let text = if ansi { help.ansi().to_string() } else { help.to_string() };
            // Nothing sensible is left to do if standard output is gone.
            let _ = std::io::stdout().write_all(restore(&text).as_bytes());
            std::process::exit(0)
        }
        Err(e) => e.format(&mut command).exit(),
    }
}

/// `command` and its subcommands with the spaces of their long help's examples kept from
/// clap's wrapping.
fn keep_examples(mut command: Command) -> Command {
    if let Some(text) = command.get_long_about() {
        let kept = protect(&text.to_string());
        command = command.long_about(kept);
    }
    let names: Vec<String> = command.get_subcommands().map(|s| s.get_name().to_owned()).collect();
    for name in names {
        command = command.mut_subcommand(name, keep_examples);
    }
    command
}

/// `text` with the spaces of each example line (indented by four spaces or more) after its
/// indentation replaced by [`KEPT_SPACE`]: clap then sees one long word, which it never breaks.
fn protect(text: &str) -> String {
    let lines: Vec<String> = text
        .split('\n')
        .map(|line| {
            let body = line.trim_start_matches(' ');
            let indent = &line[..line.len() - body.len()];
            if indent.len() >= 4 && !body.is_empty() {
                format!("{indent}{}", body.replace(' ', &KEPT_SPACE.to_string()))
            } else {
                line.to_owned()
            }
        })
        .collect();
    lines.join("\n")
}

/// The help clap rendered, with the examples' spaces back.
fn restore(help: &str) -> String {
    help.replace(KEPT_SPACE, " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_example_lines_are_protected_and_restoring_gives_the_text_back() {
        let text = "Some prose that clap may wrap as it likes.\n\n    fhirhouse query warehouse \"SELECT 1\"\n  two spaces: prose";
        let kept = protect(text);
        assert!(kept.starts_with("Some prose that clap may wrap"), "{kept}");
        assert!(kept.contains("    fhirhouse\u{E000}query\u{E000}warehouse\u{E000}\"SELECT\u{E000}1\""), "{kept}");
        assert!(kept.ends_with("\n  two spaces: prose"), "{kept}");
        assert_eq!(restore(&kept), text);
    }

    #[test]
    fn no_help_text_holds_the_kept_space() {
        let command = Cli::command();
        let texts = std::iter::once(&command).chain(command.get_subcommands()).filter_map(Command::get_long_about);
        for text in texts {
            assert!(!text.to_string().contains(KEPT_SPACE));
        }
    }
}
