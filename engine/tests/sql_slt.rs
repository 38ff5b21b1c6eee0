//! Runs the sqllogictest files of the SQL front end, `tests/sql/*.slt`, each on a fresh
//! [`Session`] over a warehouse loaded from the bundled sample. The session also has the
//! same tables computed straight from the sample's NDJSON (what `fhirhouse query --export`
//! reads) under the schema `export`, so a file can compare the two.
//!
//! The shipped analyses' files, `tests/sql/analyses/<name>.slt`, each run on a warehouse
//! loaded from their hand-written fixtures, `tests/data/analyses/<name>/` (or the folder
//! a first line `# fixtures: <folder>` names). A record
//! `REPORT <analysis> [--param value ...]` runs the analysis' SQL in the session as
//! `fhirhouse report` does (its parameters bound and its `@check` queries run the same
//! way, so `statement error` records test both), so that the records after it query the
//! views it makes.
//!
//! Values are Arrow's display form, `NULL` for null and `(empty)` for an empty string. An
//! error is the message `fhirhouse query` prints (with the caret under the token), so an
//! `.slt` file can hold it whole under `statement error` / `----`.
//!
//! Run one file with `SLT=<name> cargo test --test sql_slt`.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::common::TableReference;
use fhirhouse::load::Catalog;
use fhirhouse::sql::{script, ExportTables, Session, Tables};
use sqllogictest::{DBOutput, DefaultColumnType};

fn warehouse() -> &'static Path {
    static WAREHOUSE: OnceLock<tempfile::TempDir> = OnceLock::new();
    WAREHOUSE
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            assert!(common::load_with(&[common::sample()], dir.path(), |_| {}).committed());
            dir
        })
        .path()
}

/// A rendered SQL error, as the runner compares it.
#[derive(Debug)]
struct SqlFailure(String);

impl std::fmt::Display for SqlFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlFailure {}

struct Db {
    session: Session,
}

/// Loads `dir` into a fresh warehouse, which must take every line.
fn load_fixtures(dir: &Path) -> tempfile::TempDir {
    let warehouse = tempfile::tempdir().unwrap();
    let outcome = common::load_with(&[dir.to_path_buf()], warehouse.path(), |_| {});
    assert!(outcome.committed(), "{}: {:?}", dir.display(), outcome.report.failure);
    let totals = &outcome.report.totals;
    assert_eq!(totals.dead_letters, 0, "{}: fixture lines were dead-lettered", dir.display());
    warehouse
}

impl Db {
    fn over(warehouse: &Path) -> Db {
        Db { session: Session::open(&Tables::Warehouse(warehouse.into())).unwrap() }
    }

    /// `REPORT <analysis> [--param value ...]`: the analysis' scripts, run statement by
    /// statement.
    fn report(&mut self, command: &str) -> Result<DBOutput<DefaultColumnType>, SqlFailure> {
        let words: Vec<&str> = command.split_whitespace().skip(1).collect();
        let Some((name, rest)) = words.split_first() else {
            return Err(SqlFailure("REPORT needs an analysis".to_owned()));
        };
        if rest.len() % 2 != 0 {
            return Err(SqlFailure(format!("REPORT {name}: parameters are --name value pairs, got {rest:?}")));
        }
        let names: Vec<String> =
            rest.chunks(2).map(|pair| pair[0].trim_start_matches("--").replace('-', "_")).collect();
        let values: Vec<(&str, &str)> =
            names.iter().zip(rest.chunks(2)).map(|(n, pair)| (n.as_str(), pair[1])).collect();
        let failure = |e: anyhow::Error| SqlFailure(format!("{e:#}"));
        let analysis = fhirhouse::sql::analyses::find(name).map_err(failure)?;
        let bound = analysis.bind(&values).map_err(failure)?;
        bound.check(&self.session).map_err(failure)?;
        for script in bound.scripts().map_err(failure)? {
            for statement in script::split(&script.text) {
                let frame = self
                    .session
                    .plan(statement.text)
                    .map_err(|e| SqlFailure(e.render(&script.text, &statement, &script.source)))?;
                self.session.block_on(frame.collect()).map_err(|e| SqlFailure(format!("{}: {e}", script.source)))?;
            }
        }
        Ok(DBOutput::StatementComplete(0))
    }

    fn open() -> Db {
        let session = Session::open(&Tables::Warehouse(warehouse().into())).unwrap();
        let catalog = Catalog::shipped_crosswalked().unwrap();
        let export = ExportTables::open(&[common::sample().into()], &catalog).unwrap();
        session.collect("CREATE SCHEMA export").unwrap();
        for (name, provider) in export.providers() {
            session.context().register_table(TableReference::partial("export", name), provider).unwrap();
        }
        Db { session }
    }
}

impl sqllogictest::DB for Db {
    type Error = SqlFailure;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlFailure> {
        if sql.trim_start().get(..7).is_some_and(|w| w.eq_ignore_ascii_case("REPORT ")) {
            return self.report(sql);
        }
        let statements = script::split(sql);
        let [statement] = statements.as_slice() else {
            return Err(SqlFailure(format!("one statement per record, got {}", statements.len())));
        };
        let fail = |e: fhirhouse::sql::SqlError| SqlFailure(e.render(sql, statement, ""));
        let frame = self.session.plan(statement.text).map_err(fail)?;
        if frame.schema().fields().is_empty() {
            return Ok(DBOutput::StatementComplete(0));
        }
        let batches = self.session.block_on(frame.collect()).map_err(|e| SqlFailure(e.to_string()))?;
        let options = FormatOptions::default().with_null("NULL");
        let mut rows = Vec::new();
        let mut columns = 0;
        for batch in &batches {
            columns = batch.num_columns();
            let formatters: Vec<ArrayFormatter<'_>> =
                batch.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap()).collect();
            for row in 0..batch.num_rows() {
                rows.push(
                    formatters
                        .iter()
                        .map(|f| match f.value(row).to_string() {
                            empty if empty.is_empty() => "(empty)".to_owned(),
                            value => value,
                        })
                        .collect(),
                );
            }
        }
        Ok(DBOutput::Rows { types: vec![DefaultColumnType::Any; columns], rows })
    }
}

fn slt_files(folder: &str) -> Vec<PathBuf> {
    let dir = common::root().join(folder);
    let only = std::env::var("SLT").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .filter(|p| only.as_deref().is_none_or(|o| p.file_stem().is_some_and(|s| s == o)))
        .collect();
    files.sort();
    files
}

/// Runs every `.slt` file of `folder` with `run`, and fails with all their failures.
fn check_all(folder: &str, run: impl Fn(&Path) -> Result<(), String>) {
    let files = slt_files(folder);
    assert!(!files.is_empty() || std::env::var("SLT").is_ok(), "no .slt files in {folder}");
    let failures: Vec<String> =
        files.iter().filter_map(|file| run(file).err().map(|e| format!("{}: {e}", file.display()))).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn sql_front_end_slt_files_pass() {
    check_all("tests/sql", |file| {
        let mut runner = sqllogictest::Runner::new(|| async { Ok(Db::open()) });
        runner.run_file(file).map_err(|e| e.to_string())
    });
}

#[test]
fn shipped_analyses_slt_files_pass() {
    check_all("tests/sql/analyses", |file| {
        let stem = file.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(file).unwrap();
        let folder = text.lines().next().and_then(|l| l.strip_prefix("# fixtures: ")).unwrap_or(&stem);
        let warehouse = load_fixtures(&common::root().join("tests/data/analyses").join(folder.trim()));
        let path = warehouse.path().to_path_buf();
        let mut runner = sqllogictest::Runner::new(move || {
            let path = path.clone();
            async move { Ok(Db::over(&path)) }
        });
        runner.run_file(file).map_err(|e| e.to_string())
    });
}
