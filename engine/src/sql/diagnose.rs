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

use datafusion::common::utils::datafusion_strsim::levenshtein;
use datafusion::common::{Column, SchemaError};
use datafusion::error::DataFusionError;

use super::script::Statement;

/// Columns listed in full in a "columns here" note; more are cut with a count.
const MAX_LISTED: usize = 40;

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
                    format!("column '{}' not found", field.flat_name())
                }
                other => other.to_string(),
            }
        } else if let Some(table) = missing_table(root) {
            table_notes(table, tables, &mut notes);
            format!("table '{table}' not found")
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

/// The span of a column reference, when the planner recorded one.
fn column_span(field: &Column) -> Option<((usize, usize), (usize, usize))> {
    let span = field.spans().first()?;
    let start = (span.start.line as usize, span.start.column as usize);
    Some((start, (span.end.line as usize, (span.end.column as usize).saturating_sub(1).max(start.1))))
}

/// The table an error says is missing (`table 'datafusion.public.x' not found`), without
/// its catalog and schema.
fn missing_table(err: &DataFusionError) -> Option<&str> {
    let DataFusionError::Plan(message) = err else { return None };
    let name = message.strip_prefix("table '")?.strip_suffix("' not found")?;
    Some(name.rsplit('.').next().unwrap_or(name))
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

fn table_notes(table: &str, tables: &[String], notes: &mut Vec<String>) {
    if let Some(best) = closest(table, tables.iter().map(String::as_str)) {
        notes.push(format!("did you mean '{best}'?"));
    }
    if tables.is_empty() {
        notes.push("the session has no tables".to_owned());
    } else {
        notes.push(format!("tables: {}", tables.join(", ")));
    }
}

fn column_notes(field: &Column, valid: &[Column], notes: &mut Vec<String>) {
    if let Some(best) = closest(&field.name, valid.iter().map(|c| c.name.as_str())) {
        notes.push(format!("did you mean '{best}'?"));
    }
    if let Some(same) = valid.iter().find(|c| c.name != field.name && c.name.eq_ignore_ascii_case(&field.name)) {
        notes.push(format!("names are case-sensitive once quoted: write \"{}\"", same.name));
    }
    if valid.is_empty() {
        return;
    }
    let mut listed: Vec<String> = valid.iter().take(MAX_LISTED).map(Column::flat_name).collect();
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

/// DataFusion's category prefixes ("Error during planning: ", "SQL error: ParserError(...)")
/// say nothing to an analyst; the position moves to the caret.
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
