//! What `fhirhouse query` and the `fhirhouse sql` shell share: the tables a session is
//! opened on, running a script statement by statement, and writing results.

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;

use crate::counted;
use crate::load::Catalog;
use crate::sink::{new_writer, open_writer, BatchWriter, Format};
use crate::sql::script::{self, Statement};
use crate::sql::{Session, SqlError, Tables};
use crate::store::Address;

/// Where a session's tables come from, as both commands take it.
#[derive(Debug, Args)]
pub struct SourceArgs {
    /// The warehouse (a folder or object-store URL); with --export, the Bulk Data export (a
    /// folder, its manifest.json, or a URL).
    #[arg(value_name = "WAREHOUSE|EXPORT")]
    pub source: Address,

    /// The first argument is a raw Bulk Data export (EXPORT), read through the
    /// ViewDefinitions, instead of a warehouse: no load needed for a quick look.
    #[arg(long)]
    pub export: bool,

    /// With --export: a folder of ViewDefinitions to use instead of the shipped ones.
    #[arg(long, value_name = "DIR", requires = "export")]
    pub views: Option<PathBuf>,
}

impl SourceArgs {
    /// Opens the session: the warehouse's tables, or the export's through the views.
    pub(super) fn open(&self) -> anyhow::Result<Session> {
        let tables = if self.export {
            let catalog = match &self.views {
                Some(dir) => Catalog::from_dir(dir)?,
                None => Catalog::shipped()?,
            };
            // Crosswalked with the shipped mappings, as a default load is, so that the
            // same SQL runs on an export and on a warehouse.
            let catalog = catalog.with_terminology(&crate::terminology::Terminology::shipped()?)?;
            Tables::Export { inputs: vec![self.source.clone()], catalog }
        } else {
            Tables::Warehouse(self.source.clone())
        };
        Session::open(&tables).context(if self.export { "cannot open the export" } else { "cannot open the warehouse" })
    }
}

/// A byte buffer several writers can share (the shell's output in tests).
#[cfg(test)]
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl SharedBuffer {
    /// What was written so far, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)).into_owned()
    }
}

#[cfg(test)]
impl Write for SharedBuffer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A text stream: standard output or error, or (in tests) a buffer.
#[derive(Debug, Clone)]
pub(crate) enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
    /// A shared buffer.
    #[cfg(test)]
    Buffer(SharedBuffer),
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Stdout => io::stdout().write(buf),
            Stream::Stderr => io::stderr().write(buf),
            #[cfg(test)]
            Stream::Buffer(b) => b.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Stdout => io::stdout().flush(),
            Stream::Stderr => io::stderr().flush(),
            #[cfg(test)]
            Stream::Buffer(b) => b.flush(),
        }
    }
}

/// Where results go, and in which format.
pub(crate) struct Results {
    /// The format of every result.
    pub format: Format,
    /// A stream gets every result in turn; a file exactly one.
    target: Target,
    /// The file's writer, open from its result to [`Results::finish`].
    file_writer: Option<Box<dyn BatchWriter>>,
}

enum Target {
    Stream(Stream),
    File(PathBuf),
}

impl Results {
    /// Every result written to `stream`, one after the other.
    pub(crate) fn to_stream(format: Format, stream: Stream) -> Results {
        Results { format, target: Target::Stream(stream), file_writer: None }
    }

    /// One result written to `path`, put in place by [`Results::finish`].
    pub(crate) fn to_file(format: Format, path: PathBuf) -> Results {
        Results { format, target: Target::File(path), file_writer: None }
    }

    /// Writes one statement's result; returns its row count.
    fn write(&mut self, session: &Session, frame: datafusion::dataframe::DataFrame) -> Result<u64, Failure> {
        let mut stream = session.execute(frame).map_err(Failure::Sql)?;
        let schema = stream.schema();
        let mut writer = match &self.target {
            Target::Stream(out) => new_writer(self.format, schema.clone(), out.clone()).map_err(fatal)?,
            Target::File(path) => {
                if self.file_writer.is_some() {
                    return Err(Failure::Fatal(anyhow::anyhow!(
                        "-o {} takes one result, but a second statement returns rows: keep one query \
                         in the script, or leave out -o",
                        path.display()
                    )));
                }
                open_writer(self.format, schema.clone(), Some(path)).map_err(fatal)?
            }
        };
        let mut rows = 0;
        while let Some(batch) = session.next_batch(&mut stream).map_err(Failure::Sql)? {
            rows += batch.num_rows() as u64;
            writer.write(&batch).map_err(fatal)?;
        }
        match self.target {
            Target::Stream(_) => writer.finish().map_err(fatal)?,
            Target::File(_) => self.file_writer = Some(writer),
        }
        Ok(rows)
    }

    /// Completes the output file, if there is one.
    ///
    /// # Errors
    ///
    /// When no statement returned rows for the file, or it cannot be written.
    pub(crate) fn finish(self) -> anyhow::Result<()> {
        match (self.target, self.file_writer) {
            // The sink's errors name the file already.
            (Target::File(_), Some(writer)) => Ok(writer.finish()?),
            (Target::File(path), None) => bail!("no statement returned rows: nothing written to {}", path.display()),
            (Target::Stream(_), _) => Ok(()),
        }
    }
}

fn fatal(e: impl Into<anyhow::Error>) -> Failure {
    Failure::Fatal(e.into())
}

/// Why a statement did not complete.
enum Failure {
    /// The SQL is wrong or failed: reported, the run fails with status 1.
    Sql(SqlError),
    /// The output cannot be written, or the like: the run stops with status 2.
    Fatal(anyhow::Error),
}

/// How a script went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Whether a statement failed (the script stopped there).
    pub sql_failed: bool,
    /// Export lines that could not be used.
    pub export_issues: u64,
}

/// One script to run: its text and a name for messages (a file, or empty).
pub(crate) struct Script<'a> {
    pub text: &'a str,
    pub source: &'a str,
}

/// Runs the statements of `script` in order, writing results to `results` and messages
/// (SQL errors with their position, export problems, timings when `timing`) to `messages`.
/// Stops at the first statement that fails.
///
/// # Errors
///
/// A fatal error: a result that cannot be written.
pub(crate) fn run_script(
    session: &Session,
    script: &Script<'_>,
    results: &mut Results,
    messages: &mut dyn Write,
    timing: bool,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    for statement in script::split(script.text) {
        let started = Instant::now();
        let result = run_statement(session, &statement, results);
        let (count, first) = session.take_issues();
        if count > 0 {
            outcome.export_issues += count;
            let lines = counted(count, "export line", "export lines");
            writeln!(messages, "warning: {lines} could not be used (their rows are missing):")?;
            for message in &first {
                writeln!(messages, "  {message}")?;
            }
            if count > first.len() as u64 {
                writeln!(messages, "  ... and {} more", count - first.len() as u64)?;
            }
        }
        match result {
            Ok(rows) => {
                if timing {
                    let rows = rows.map_or_else(String::new, |n| format!(", {}", counted(n, "row", "rows")));
                    writeln!(messages, "Run Time: {:.3} s{rows}", started.elapsed().as_secs_f64())?;
                }
            }
            Err(Failure::Sql(err)) => {
                write!(messages, "{}", err.render(script.text, &statement, script.source))?;
                if script::split(script.text).len() > 1 {
                    writeln!(messages, "  = in statement {}: {}", statement.number, statement.first_line())?;
                }
                outcome.sql_failed = true;
                return Ok(outcome);
            }
            Err(Failure::Fatal(err)) => return Err(err),
        }
    }
    Ok(outcome)
}

/// Plans one statement and writes its rows, if it returns any; the row count if it did.
fn run_statement(session: &Session, statement: &Statement<'_>, results: &mut Results) -> Result<Option<u64>, Failure> {
    let frame = session.plan(statement.text).map_err(Failure::Sql)?;
    // Statements with effects only (CREATE VIEW, SET, ...) ran while being planned and
    // leave a frame with no columns.
    if frame.schema().fields().is_empty() {
        return Ok(None);
    }
    results.write(session, frame).map(Some)
}
