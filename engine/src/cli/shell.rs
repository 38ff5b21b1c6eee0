//! The line handling of the `fhirhouse sql` shell, apart from the terminal so that tests
//! can drive it: statements collected over lines up to a `;`, and the dot commands.

use std::io::Write;
use std::time::Instant;

use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::sql_run::{run_script, Results, Script, Stream};
use crate::sink::{new_writer, Format};
use crate::sql::diagnose::closest;
use crate::sql::{script, Session};

/// What `.help` prints.
pub(crate) const HELP: &str = "\
SQL statements end with ';' and may span lines. Dot commands (at the start of a line, one
line each, a ';' at the end ignored):
  .tables             list the tables
  .schema [TABLE...]  columns and types of each TABLE (of every table without one)
  .timing [on|off]    print each statement's run time (toggles without an argument)
  .format [FORMAT]    output format: table, csv, json or ndjson (shows it without one)
  .help               this text
  .quit               leave (also .exit, or Ctrl-D)
Ctrl-C drops the statement being typed. SHOW TABLES and SHOW COLUMNS FROM t work as SQL too.
";

/// Whether the shell goes on after a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Read the next line.
    Continue,
    /// Leave the shell.
    Quit,
}

/// The shell's state: the statement being typed and the settings.
pub(crate) struct Shell<'s> {
    session: &'s Session,
    buffer: String,
    timing: bool,
    format: Format,
    out: Stream,
    err: Stream,
    /// Whether any statement or command failed.
    pub failed: bool,
}

impl<'s> Shell<'s> {
    /// A shell over `session`, writing results to `out` and messages to `err`.
    pub(crate) fn new(session: &'s Session, out: Stream, err: Stream) -> Self {
        Shell { session, buffer: String::new(), timing: false, format: Format::Table, out, err, failed: false }
    }

    /// The prompt for the next line: a continuation prompt inside a statement.
    pub(crate) fn prompt(&self) -> &'static str {
        if self.buffer.is_empty() {
            "fhirhouse> "
        } else {
            "       ...> "
        }
    }

    /// Takes one line of input: a dot command, or part of a statement, which runs once a
    /// line ends it with `;`.
    pub(crate) fn handle_line(&mut self, line: &str) -> Flow {
        if self.buffer.is_empty() && line.trim_start().starts_with('.') {
            return self.command(line.trim());
        }
        if self.buffer.is_empty() && line.trim().is_empty() {
            return Flow::Continue;
        }
        self.buffer.push_str(line);
        self.buffer.push('\n');
        if script::is_complete(&self.buffer) {
            let text = std::mem::take(&mut self.buffer);
            self.run(&text);
        } else if script::split(&self.buffer).is_empty() && self.buffer.trim_end().ends_with(';') {
            // Only blanks, comments and semicolons: nothing to run.
            self.buffer.clear();
        }
        Flow::Continue
    }

    /// Drops the statement being typed (Ctrl-C).
    pub(crate) fn interrupt(&mut self) {
        self.buffer.clear();
    }

    /// Runs what is left at the end of the input, even without its `;`.
    pub(crate) fn finish(&mut self) {
        let text = std::mem::take(&mut self.buffer);
        if !script::split(&text).is_empty() {
            self.run(&text);
        }
    }

    fn run(&mut self, text: &str) {
        let mut results = Results::to_stream(self.format, self.out.clone());
        match run_script(self.session, &Script { text, source: "" }, &mut results, &mut self.err, self.timing) {
            Ok(outcome) => self.failed |= outcome.sql_failed,
            Err(e) => self.fail(format_args!("error: {}", crate::error_text(e.as_ref()))),
        }
    }

    fn fail(&mut self, message: std::fmt::Arguments<'_>) {
        self.failed = true;
        let _ = writeln!(self.err, "{message}");
    }

    fn command(&mut self, line: &str) -> Flow {
        // A `;` typed out of SQL habit ends nothing here: it is dropped.
        let line = line.trim().trim_end_matches(|c: char| c == ';' || c.is_whitespace());
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some((&name, arguments)) = words.split_first() else { return Flow::Continue };
        let most = match name {
            ".quit" | ".exit" | ".help" | ".tables" => 0,
            ".timing" | ".format" => 1,
            ".schema" => usize::MAX,
            _ => {
                self.fail(format_args!("error: unknown command: {name} (.help lists the commands)"));
                return Flow::Continue;
            }
        };
        if arguments.len() > most {
            let takes = if most == 0 { "no argument" } else { "one argument at most" };
            self.fail(format_args!("error: {name} takes {takes}, not {:?}", arguments.join(" ")));
            return Flow::Continue;
        }
        let argument = arguments.first().copied();
        match (name, argument) {
            (".quit" | ".exit", _) => return Flow::Quit,
            (".help", _) => {
                let _ = self.out.write_all(HELP.as_bytes());
            }
            (".tables", _) => {
                let names = self.session.table_names();
                let _ = writeln!(self.out, "{}", names.join("\n"));
            }
            (".schema", _) => self.schema(arguments),
            (".timing", None) => self.timing = !self.timing,
            (".timing", Some("on")) => self.timing = true,
            (".timing", Some("off")) => self.timing = false,
            (".format", None) => {
                let _ = writeln!(self.out, "{}", self.format);
            }
            (".format", Some(name)) => match <Format as clap::ValueEnum>::from_str(name, true) {
                Ok(Format::Parquet) | Err(_) => {
                    self.fail(format_args!("error: .format takes table, csv, json or ndjson, not {name:?}"));
                }
                Ok(format) => self.format = format,
            },
            _ => self.fail(format_args!("error: unknown argument: {line} (.help lists the commands)")),
        }
        if name == ".timing" && argument.is_none_or(|a| a == "on" || a == "off") {
            let _ = writeln!(self.out, "timing {}", if self.timing { "on" } else { "off" });
        }
        Flow::Continue
    }

    /// `.schema [TABLE...]`: one row per column: table, column, type.
    fn schema(&mut self, wanted: &[&str]) {
        let started = Instant::now();
        let all = self.session.table_names();
        let mut tables = Vec::with_capacity(wanted.len());
        for &table in wanted {
            // Unquoted, as in SQL, a name is folded to lower case.
            let lower = table.to_lowercase();
            let found = [table, lower.as_str()].into_iter().find(|t| all.iter().any(|a| a == t)).map(str::to_owned);
            match found {
                Some(found) => tables.push(found),
                None => {
                    // Said plainly: pointing into the hidden `SELECT` would show SQL the
                    // user never typed.
                    let mut message = format!("error: table '{table}' not found\n");
                    if let Some(best) = closest(table, all.iter().map(String::as_str)) {
                        message.push_str(&format!("  = did you mean '{best}'?\n"));
                    }
                    message.push_str(&format!("  = tables: {}\n", all.join(", ")));
                    self.failed = true;
                    let _ = self.err.write_all(message.as_bytes());
                    return;
                }
            }
        }
        if wanted.is_empty() {
            tables = all;
        }
        let (mut names, mut columns, mut types) = (Vec::new(), Vec::new(), Vec::new());
        for table in &tables {
            let sql = format!("SELECT * FROM \"{}\"", table.replace('"', "\"\""));
            match self.session.plan(&sql) {
                Ok(frame) => {
                    for field in frame.schema().fields() {
                        names.push(table.clone());
                        columns.push(field.name().clone());
                        types.push(field.data_type().to_string());
                    }
                }
                Err(e) => {
                    self.fail(format_args!("error: table '{table}': {}", e.message));
                    return;
                }
            }
        }
        let schema = std::sync::Arc::new(Schema::new(
            ["table", "column", "type"].map(|n| Field::new(n, DataType::Utf8, false)).to_vec(),
        ));
        let arrays: Vec<ArrayRef> =
            [names, columns, types].map(|v| std::sync::Arc::new(StringArray::from(v)) as ArrayRef).to_vec();
        let written = RecordBatch::try_new(schema.clone(), arrays).map_err(anyhow::Error::from).and_then(|batch| {
            let mut writer = new_writer(self.format, schema, self.out.clone())?;
            writer.write(&batch)?;
            writer.finish()?;
            Ok(())
        });
        if let Err(e) = written {
            self.fail(format_args!("error: {}", crate::error_text(e.as_ref())));
        }
        if self.timing {
            let _ = writeln!(self.err, "Run Time: {:.3} s", started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
#[path = "shell_tests.rs"]
mod tests;
