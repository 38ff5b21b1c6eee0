//! SQL errors for people: where in the script, and what exists instead.
//!
//! DataFusion reports parse errors and unknown tables, columns and functions with the
//! span of the offending token (its planner collects spans when
//! `datafusion.sql_parser.collect_spans` is on, as [`super::Session`] sets it); parser errors
//! of the underlying `sqlparser` carry the position in their text only. [`SqlError`] takes
//! either, and for an unknown table or column adds the tables or columns that do exist
//! and the closest name. [`SqlError::render`] draws the statement's line with a caret under
//! the token, at its line and column in the whole script:
//!
//! ```text
//! error: column 'gendr' not found
//!  --> report.sql:3:8
//!   |
//! 3 | SELECT gendr, count(*) FROM patient GROUP BY 1
//!   |        ^^^^^
//!   = did you mean 'gender'?
//!   = columns here: patient.id, patient.gender, ...
//! ```

use std::fmt::Write as _;

use datafusion::catalog::information_schema::INFORMATION_SCHEMA_TABLES;
use datafusion::common::utils::datafusion_strsim::levenshtein;
use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;

use super::script::Statement;

/// Columns listed in full in a "columns here" note; more are cut with a count.
const MAX_LISTED: usize = 40;

/// The schema unqualified names are in (DataFusion's default).
const DEFAULT_SCHEMA: &str = "public";

/// The schema of DataFusion's metadata tables.
const INFORMATION_SCHEMA: &str = "information_schema";

/// An error in one SQL statement: the message, where it is, and hints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlError {
    /// What is wrong, in one line.
    pub message: String,
    /// Start and end `(line, column)` of the offending text within the statement (1-based,
    /// columns in characters, end inclusive), when known.
    pub span: Option<((usize, usize), (usize, usize))>,
    /// Hints: the closest name, what exists.
    pub notes: Vec<String>,
}

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        for note in &self.notes {
            write!(f, "; {note}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SqlError {}

impl SqlError {
    /// Explains a DataFusion error of a statement; `tables` are the tables the session has,
    /// listed when the statement names another.
    #[must_use]
    pub fn from_datafusion(err: &DataFusionError, tables: &[String]) -> SqlError {
        SqlError::from_datafusion_in(err, &|schema| schema.is_none().then(|| tables.to_vec()))
    }

    /// [`SqlError::from_datafusion`], with the tables of any schema: `tables_in(None)` are
    /// the default schema's, `tables_in(Some(s))` those of schema `s` (`None` when there is
    /// no such schema). A statement that names a missing table in another schema
    /// (`export.patinet`, `information_schema.colums`) is told that schema's tables, not
    /// the default one's, which would offer no close name or a wrong one.
    #[must_use]
    pub fn from_datafusion_in(
        err: &DataFusionError,
        tables_in: &dyn Fn(Option<&str>) -> Option<Vec<String>>,
    ) -> SqlError {
        if let Some(gone) = snapshot_gone(err) {
            // Its own sentence: the wrapping (parquet, object store) says nothing more.
            return SqlError { message: gone.0.clone(), span: None, notes: Vec::new() };
        }
        let diagnostic = err.diagnostic();
        let mut span = diagnostic.and_then(|d| d.span).map(|s| {
            let at = |l: datafusion::common::Location| (l.line as usize, l.column as usize);
            // DataFusion's end is exclusive.
            let (start, end) = (at(s.start), at(s.end));
            (start, if end.0 == start.0 && end.1 > start.1 { (end.0, end.1 - 1) } else { start })
        });
        let root = err.find_root();
        let mut notes = Vec::new();
        let message = if let DataFusionError::SchemaError(schema_error, _) = root {
            match schema_error.as_ref() {
                SchemaError::FieldNotFound { field, valid_fields } => {
                    span = span.or_else(|| column_span(field));
                    column_notes(field, valid_fields, &mut notes);
                    if written_quoted(field, span) && !names_a_column(field, valid_fields) {
                        // `WHERE gender = "female"`: double quotes name a column in SQL, as
                        // they do not in some other dialects and spreadsheets.
                        let text = field.name.replace('\'', "''");
                        notes
                            .insert(0, format!("a string takes single quotes: '{text}' (double quotes name a column)"));
                    }
                    format!("column '{}' not found", field.flat_name())
                }
                other => other.to_string(),
            }
        } else if let Some((schema, table)) = missing_table(root) {
            let tables = match schema {
                // Not a schema of the catalog: DataFusion makes its tables up on demand.
                Some(s) if s.eq_ignore_ascii_case(INFORMATION_SCHEMA) => {
                    Some(INFORMATION_SCHEMA_TABLES.iter().map(|t| (*t).to_owned()).collect())
                }
                _ => tables_in(schema),
            };
            match tables {
                Some(tables) => table_notes(table, schema, &tables, &mut notes),
                None => {
                    notes.push(format!("there is no schema '{}'", schema.unwrap_or_default()));
                    table_notes(table, None, &tables_in(None).unwrap_or_default(), &mut notes);
                }
            }
            match schema {
                Some(schema) => format!("table '{schema}.{table}' not found"),
                None => format!("table '{table}' not found"),
            }
        } else {
            let text = diagnostic.map_or_else(|| root.strip_backtrace(), |d| d.message.clone());
            if span.is_none() {
                span = position_in_text(&text).map(|at| (at, at));
            }
            if let Some(d) = diagnostic {
                // DataFusion's own hints: the candidates of an ambiguous name, a fix to try.
                notes.extend(d.notes.iter().map(|n| n.message.clone()));
                notes.extend(d.helps.iter().map(|h| h.message.clone()));
            }
            match no_matching_signature(&text) {
                Some((message, candidates)) => {
                    notes.push(candidates);
                    message
                }
                None => strip_prefixes(&text),
            }
        };
        SqlError { message, span, notes }
    }

    /// The error as shown to a person: the message, then, when the position is known, the
    /// script's line with a caret under the offending text (`statement` is the statement of
    /// `script` that failed; `source` names the script, e.g. its file, or is empty), then
    /// the notes.
    #[must_use]
    pub fn render(&self, script: &str, statement: &Statement<'_>, source: &str) -> String {
        let mut out = format!("error: {}\n", self.message);
        if let Some(((line, column), (end_line, end_column))) = self.span {
            let (script_line, script_column) = statement.script_position(line, column);
            let where_ = if source.is_empty() { String::new() } else { format!("{source}:") };
            let _ = writeln!(out, " --> {where_}{script_line}:{script_column}");
            if let Some(text) = script.lines().nth(script_line - 1) {
                let width = script_line.to_string().len();
                let carets = if end_line == line && end_column >= column { end_column - column + 1 } else { 1 };
                let _ = writeln!(out, "{:width$} |", "");
                let _ = writeln!(out, "{script_line} | {}", text.trim_end());
                let _ = writeln!(out, "{:width$} | {}{}", "", " ".repeat(script_column - 1), "^".repeat(carets));
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "  = {note}");
        }
        out
    }
}

/// Whether `field` is close to a valid column (a slip, or another case of one): then it
/// meant a column, not a string.
fn names_a_column(field: &Column, valid: &[Column]) -> bool {
    closest(&field.name, valid.iter().map(|c| c.name.as_str())).is_some()
        || valid.iter().any(|c| c.name.eq_ignore_ascii_case(&field.name))
}

/// Whether the unqualified name `field` was written in double quotes: its span, on one
/// line, is two characters longer than the name.
fn written_quoted(field: &Column, span: Option<((usize, usize), (usize, usize))>) -> bool {
    let Some(((line, start), (end_line, end))) = span else { return false };
    field.relation.is_none() && line == end_line && (end + 1).saturating_sub(start) == field.name.chars().count() + 2
}

/// The span of a column reference, when the planner recorded one.
fn column_span(field: &Column) -> Option<((usize, usize), (usize, usize))> {
    let span = field.spans().first()?;
    let start = (span.start.line as usize, span.start.column as usize);
    Some((start, (span.end.line as usize, (span.end.column as usize).saturating_sub(1).max(start.1))))
}

/// The table an error says is missing (`table 'datafusion.public.x' not found`): its schema
/// (`None` for the default one, `public`) and its name.
fn missing_table(err: &DataFusionError) -> Option<(Option<&str>, &str)> {
    let DataFusionError::Plan(message) = err else { return None };
    let name = message.strip_prefix("table '")?.strip_suffix("' not found")?;
    let mut parts = name.rsplitn(3, '.');
    let table = parts.next().unwrap_or(name);
    let schema = parts.next().filter(|schema| *schema != DEFAULT_SCHEMA);
    Some((schema, table))
}

/// The closest of `candidates` to `name`, if it is close enough to be a likely slip (less
/// than half of the longer name edited).
pub(crate) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let name = name.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (levenshtein(&name, &c.to_lowercase()), c))
        .filter(|(distance, c)| *distance > 0 && distance * 2 < name.chars().count().max(c.chars().count()))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

/// The closest of `tables` (those of `schema`, `None` for the default one) and all of them.
fn table_notes(table: &str, schema: Option<&str>, tables: &[String], notes: &mut Vec<String>) {
    let qualify = schema.map(|s| format!("{s}.")).unwrap_or_default();
    if let Some(best) = closest(table, tables.iter().map(String::as_str)) {
        notes.push(format!("did you mean '{qualify}{best}'?"));
    }
    match schema {
        _ if !tables.is_empty() => {
            let label = schema.map_or_else(|| "tables".to_owned(), |s| format!("tables in {s}"));
            notes.push(format!("{label}: {}", tables.join(", ")));
        }
        Some(schema) => notes.push(format!("schema '{schema}' has no tables")),
        None => notes.push("the session has no tables".to_owned()),
    }
}

fn column_notes(field: &Column, valid: &[Column], notes: &mut Vec<String>) {
    if let Some(best) = closest(&field.name, valid.iter().map(|c| c.name.as_str())) {
        notes.push(format!("did you mean '{best}'?"));
    }
    if let Some(same) = valid.iter().find(|c| c.name != field.name && c.name.eq_ignore_ascii_case(&field.name)) {
        notes.push(format!("names are case-sensitive once quoted: write \"{}\"", same.name));
    }
    // A column can be valid twice over, as the table's and as the output of the SELECT it
    // is in (`SELECT gender ... GROUP BY gendr`); it is listed once.
    let mut seen = std::collections::HashSet::new();
    let valid: Vec<String> = valid.iter().map(Column::flat_name).filter(|name| seen.insert(name.clone())).collect();
    if valid.is_empty() {
        return;
    }
    let mut listed: Vec<String> = valid.iter().take(MAX_LISTED).cloned().collect();
    if valid.len() > MAX_LISTED {
        listed.push(format!("... ({} more)", valid.len() - MAX_LISTED));
    }
    notes.push(format!("columns here: {}", listed.join(", ")));
}

/// `(line, column)` from a sqlparser message ending `... at Line: 1, Column: 8`.
fn position_in_text(text: &str) -> Option<(usize, usize)> {
    let at = text.rfind("at Line: ")?;
    let rest = &text[at + "at Line: ".len()..];
    let (line, rest) = rest.split_once(", Column: ")?;
    let column: String = rest.chars().take_while(char::is_ascii_digit).collect();
    Some((line.trim().parse().ok()?, column.parse().ok()?))
}

/// The [`SnapshotGone`](super::SnapshotGone) that caused `err`, however deep.
fn snapshot_gone(err: &DataFusionError) -> Option<&super::SnapshotGone> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(gone) = e.downcast_ref::<super::SnapshotGone>() {
            return Some(gone);
        }
        next = e.source();
    }
    None
}

/// A function called with arguments none of its signatures takes, as one line and the
/// candidates. DataFusion reports it as an internal error asking for a bug report, after
/// one failed match per signature, though it is the statement's mistake.
fn no_matching_signature(text: &str) -> Option<(String, String)> {
    let at = text.find("No function matches the given name and argument types")?;
    let (head, candidates) = text[at..].split_once("Candidate functions:")?;
    let head = head.split(". You might need").next().unwrap_or(head).trim();
    // The warehouse's text columns are dictionary-encoded; the user wrote text.
    let message = format!("n{}: cast the arguments", &head[1..]).replace("Dictionary(Int32, Utf8)", "Utf8");
    let candidates: Vec<&str> = candidates.split_whitespace().collect();
    Some((message, format!("candidates: {}", candidates.join(" ").replace(") ", "), "))))
}

/// DataFusion's category prefixes ("Error during planning: ", "SQL error: ParserError(...)")
/// say nothing to an analyst; the position moves to the caret.
fn strip_prefixes(text: &str) -> String {
    let mut text = text.trim();
    for prefix in ["Error during planning: ", "SQL error: ", "Schema error: ", "Execution error: "] {
        text = text.strip_prefix(prefix).unwrap_or(text);
    }
    if let Some(inner) = text.strip_prefix("ParserError(\"").and_then(|t| t.strip_suffix("\")")) {
        text = inner;
    }
    if let Some(inner) = text.strip_prefix("TokenizerError(\"").and_then(|t| t.strip_suffix("\")")) {
        text = inner;
    }
    let text = match text.rfind(" at Line: ") {
        Some(at) => &text[..at],
        None => text,
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlparser_positions_are_read_from_the_text() {
        assert_eq!(position_in_text("Expected: end of statement, found: x at Line: 2, Column: 15"), Some((2, 15)));
        assert_eq!(position_in_text("no position"), None);
        assert_eq!(
            strip_prefixes("SQL error: ParserError(\"Expected: an expression, found: EOF at Line: 1, Column: 7\")"),
            "Expected: an expression, found: EOF"
        );
    }

    #[test]
    fn closest_names_are_slips_only() {
        let tables = ["patient", "observation", "encounter"];
        assert_eq!(closest("patinet", tables), Some("patient"));
        assert_eq!(closest("Observaton", tables), Some("observation"));
        assert_eq!(closest("claims_xyz", tables), None);
        assert_eq!(closest("effective_year", ["effective_datetime_year", "id"]), Some("effective_datetime_year"));
        assert_eq!(closest("patient", tables), None, "an exact name is not a suggestion");
    }

    #[test]
    fn render_puts_the_caret_under_the_token_at_its_script_position() {
        let script = "SELECT 1;\nSELECT nme FROM patient";
        let statements = super::super::script::split(script);
        let err = SqlError {
            message: "column 'nme' not found".into(),
            span: Some(((2, 8), (2, 10))),
            notes: vec!["did you mean 'name'?".into()],
        };
        let expected = "error: column 'nme' not found\n --> q.sql:2:8\n  |\n2 | SELECT nme FROM patient\n  |        ^^^\n  = did you mean 'name'?\n";
        assert_eq!(err.render(script, &statements[1], "q.sql"), expected);

        let script = "SELECT 1; SELECT nme";
        let second = super::super::script::split(script)[1].clone();
        let err = SqlError { span: Some(((1, 9), (1, 11))), ..err };
        let shown = err.render(script, &second, "");
        assert!(shown.contains(" --> 1:18\n  |\n1 | SELECT 1; SELECT nme\n  |                  ^^^\n"), "{shown}");
    }
}
