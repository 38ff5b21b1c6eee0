//! The shipped SQL analyses: the files under `queries/`, embedded in the binary, each a
//! documented script with its parameters declared in its header.
//!
//! An analysis is a top-level `queries/<name>.sql`; files under `queries/lib/` are shared
//! parts that analyses include. The header is ordinary SQL comments, and the lines that
//! start with `-- @` are read here:
//!
//! ```text
//! -- @title   Diabetes: glycemic status assessment > 9% (CMS122)
//! -- @include lib/ecqm.sql
//! -- @param   period_start date 2025-01-01  First day of the one-year measurement period.
//! -- @param   model V24|V28 V28             The CMS-HCC model.
//! -- @result  summary cms122_summary        One row: denominator, exclusions, numerator, rate.
//! ```
//!
//! A parameter has a type (`date`, `integer`, `decimal`, or a choice `a|b|c`) and a default
//! (`none` for an optional one, which is SQL `NULL` unless given). A `decimal` may name the
//! interval its values lie in, `decimal(0,)` (above 0) or `decimal[0,1)` (0 up to, not
//! including, 1), so that a value that would make the results meaningless is refused with
//! its flag named, not turned into null or negative scores. A date is `YYYY-MM-DD` with a
//! year from 1900 to 2999: chrono alone takes `19-01-01` (the year 19) and `-2019-01-01`. The SQL names it as
//! `{{period_start}}`; binding replaces every such placeholder with a typed SQL literal
//! (`DATE '2025-01-01'`, `2026`, `'V28'`), after the value is checked against the type, so a
//! value can never change the SQL around it. A result names the view, created by the script,
//! whose rows `fhirhouse report` writes.
//!
//! `-- @include lib/x.sql` runs that file at the place of the line (once per run, unless
//! the file's header has `-- @repeat`), so that shared definitions are written once.
//!
//! `-- @check lib/x.sql`, in any file an analysis runs, names queries run before it over the
//! session's tables, their placeholders filled in: each row they return is an error
//! message (its first column), and the analysis does not run. They say what the tables
//! decide and a type cannot: a payment year with no CMS-HCC tables, a warehouse loaded
//! without the crosswalks the SQL reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context};

include!(concat!(env!("OUT_DIR"), "/embedded_queries.rs"));

/// The type of an analysis parameter, which decides the values it takes and its SQL literal.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamKind {
    /// A calendar date `YYYY-MM-DD`; SQL `DATE 'YYYY-MM-DD'`.
    Date,
    /// A whole number; SQL integer literal.
    Integer,
    /// A number, within the interval if one is declared; SQL `DOUBLE`.
    Decimal(Option<Interval>),
    /// One of the listed words (matched without regard to case); SQL string literal.
    Choice(Vec<String>),
}

/// The interval a `decimal` parameter's values lie in: each end open or closed, or absent.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    /// The lower end and whether it is included.
    low: Option<(f64, bool)>,
    /// The upper end and whether it is included.
    high: Option<(f64, bool)>,
}

impl Interval {
    /// Reads `(0,)`, `[0,1)` and the like; `None` when `text` is not such an interval.
    fn parse(text: &str) -> Option<Interval> {
        let low_closed = match text.chars().next()? {
            '[' => true,
            '(' => false,
            _ => return None,
        };
        let high_closed = match text.chars().last()? {
            ']' => true,
            ')' => false,
            _ => return None,
        };
        let (low, high) = text.get(1..text.len() - 1)?.split_once(',')?;
        let end = |s: &str, closed: bool| -> Option<Option<(f64, bool)>> {
            match s.trim() {
                "" => Some(None),
                n => n.parse::<f64>().ok().filter(|n| n.is_finite()).map(|n| Some((n, closed))),
            }
        };
        Some(Interval { low: end(low, low_closed)?, high: end(high, high_closed)? })
    }

    fn contains(&self, n: f64) -> bool {
        let above = self.low.is_none_or(|(low, closed)| if closed { n >= low } else { n > low });
        let below = self.high.is_none_or(|(high, closed)| if closed { n <= high } else { n < high });
        above && below
    }

    /// The interval in words: `greater than 0`, `at least 0 and less than 1`.
    fn describe(&self) -> String {
        let low = self.low.map(|(n, closed)| format!("{} {n}", if closed { "at least" } else { "greater than" }));
        let high = self.high.map(|(n, closed)| format!("{} {n}", if closed { "at most" } else { "less than" }));
        [low, high].into_iter().flatten().collect::<Vec<_>>().join(" and ")
    }
}

/// The lowest and highest years a date parameter takes: a wider year is a typing slip (the
/// year 19 for 2019), which would otherwise run over an empty period without a word.
const DATE_YEARS: std::ops::RangeInclusive<i32> = 1900..=2999;

/// `value` as a date, if it is written `YYYY-MM-DD` (four-digit year, two-digit month and
/// day) with a year in [`DATE_YEARS`].
fn parse_date(value: &str) -> Option<chrono::NaiveDate> {
    use chrono::Datelike as _;
    let shape = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| if i == 4 || i == 7 { b == b'-' } else { b.is_ascii_digit() });
    let date = chrono::NaiveDate::parse_from_str(value, "%Y-%m-%d").ok().filter(|_| shape)?;
    DATE_YEARS.contains(&date.year()).then_some(date)
}

impl ParamKind {
    fn parse(text: &str) -> anyhow::Result<ParamKind> {
        Ok(match text {
            "date" => ParamKind::Date,
            "integer" => ParamKind::Integer,
            "decimal" => ParamKind::Decimal(None),
            decimal if decimal.starts_with("decimal") => {
                let interval = &decimal["decimal".len()..];
                ParamKind::Decimal(Some(
                    Interval::parse(interval)
                        .ok_or_else(|| anyhow!("decimal{interval}: an interval is written (0,) or [0,1)"))?,
                ))
            }
            choices => ParamKind::Choice(choices.split('|').map(str::to_owned).collect()),
        })
    }

    /// How the type reads in help texts: `DATE`, `YEAR`-like words, or the choices.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            ParamKind::Date => "YYYY-MM-DD".to_owned(),
            ParamKind::Integer => "INTEGER".to_owned(),
            ParamKind::Decimal(_) => "NUMBER".to_owned(),
            ParamKind::Choice(choices) => choices.join("|"),
        }
    }

    /// The SQL literal of `value` (`None`: the type's `NULL`), or why the value is not one of
    /// this type.
    fn literal(&self, value: Option<&str>) -> Result<String, String> {
        let Some(value) = value else {
            return Ok(match self {
                ParamKind::Date => "CAST(NULL AS DATE)",
                ParamKind::Integer => "CAST(NULL AS BIGINT)",
                ParamKind::Decimal(_) => "CAST(NULL AS DOUBLE)",
                ParamKind::Choice(_) => "CAST(NULL AS VARCHAR)",
            }
            .to_owned());
        };
        match self {
            ParamKind::Date => parse_date(value).map(|d| format!("DATE '{}'", d.format("%Y-%m-%d"))).ok_or_else(|| {
                format!(
                    "'{value}' is not a date (YYYY-MM-DD, a year from {} to {})",
                    DATE_YEARS.start(),
                    DATE_YEARS.end()
                )
            }),
            ParamKind::Integer => {
                value.parse::<i64>().map(|n| n.to_string()).map_err(|_| format!("'{value}' is not a whole number"))
            }
            ParamKind::Decimal(interval) => match value.parse::<f64>() {
                Ok(n) if n.is_finite() => match interval {
                    Some(interval) if !interval.contains(n) => {
                        Err(format!("'{value}' is out of range: it must be {}", interval.describe()))
                    }
                    _ => Ok(format!("CAST({n:?} AS DOUBLE)")),
                },
                _ => Err(format!("'{value}' is not a number")),
            },
            ParamKind::Choice(choices) => choices
                .iter()
                .find(|c| c.eq_ignore_ascii_case(value))
                .map(|c| format!("'{c}'"))
                .ok_or_else(|| format!("'{value}' is not one of {}", choices.join(", "))),
        }
    }
}

/// One declared parameter of an analysis.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    /// The name, as the SQL writes it in `{{...}}` (`period_start`).
    pub name: String,
    /// Its type.
    pub kind: ParamKind,
    /// The default value as text; `None` for an optional parameter (SQL `NULL`).
    pub default: Option<String>,
    /// What it means.
    pub help: String,
}

impl Param {
    /// The command-line flag of the parameter: `--period-start`.
    #[must_use]
    pub fn flag(&self) -> String {
        format!("--{}", self.name.replace('_', "-"))
    }
}

/// One result of an analysis: a view the script creates, written by `fhirhouse report`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultView {
    /// The name `--result` takes (`summary`, `patients`).
    pub name: String,
    /// The view holding the rows.
    pub view: String,
    /// What a row is.
    pub help: String,
}

/// A shipped analysis: its header, parsed, and the SQL files it runs.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// The name `fhirhouse report` takes: the file name without `.sql`.
    pub name: String,
    /// One line saying what it computes.
    pub title: String,
    /// The file, relative to `queries/`.
    pub path: &'static str,
    /// The declared parameters, in header order.
    pub params: Vec<Param>,
    /// The results, the default first.
    pub results: Vec<ResultView>,
    /// What runs, in order: its own lines, and the files its `@include` lines name at their
    /// place.
    pub pieces: Vec<Piece>,
    /// The files of queries that must return no rows before it runs (`@check` lines of the
    /// files it runs), relative to `queries/`.
    pub checks: Vec<&'static str>,
}

/// A header line `-- @key rest`.
fn header_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.lines().filter_map(|line| {
        let rest = line.trim_start().strip_prefix("-- @")?;
        let (key, value) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        Some((key, value.trim()))
    })
}

/// The first `n` words of `text` and what follows them.
fn words<const N: usize>(text: &str) -> Option<([&str; N], &str)> {
    let mut rest = text.trim_start();
    let mut out = [""; N];
    for slot in &mut out {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        if end == 0 {
            return None;
        }
        *slot = &rest[..end];
        rest = rest[end..].trim_start();
    }
    Some((out, rest))
}

fn embedded(path: &str) -> Option<&'static str> {
    EMBEDDED_QUERIES.iter().find(|(p, _)| *p == path).map(|(_, text)| *text)
}

impl Analysis {
    /// Reads the header of the embedded file `path`.
    fn parse(path: &'static str, text: &str) -> anyhow::Result<Analysis> {
        let name = path.strip_suffix(".sql").unwrap_or(path).to_owned();
        let mut analysis = Analysis {
            name,
            title: String::new(),
            path,
            params: Vec::new(),
            results: Vec::new(),
            pieces: Vec::new(),
            checks: Vec::new(),
        };
        for (key, value) in header_lines(text) {
            match key {
                "title" => analysis.title = value.to_owned(),
                "include" | "repeat" | "check" => {}
                "param" => {
                    let ([name, kind, default], help) =
                        words::<3>(value).ok_or_else(|| anyhow!("@param needs a name, a type and a default"))?;
                    let default = (default != "none").then(|| default.to_owned());
                    let kind = ParamKind::parse(kind).with_context(|| format!("@param {name}"))?;
                    let param = Param { name: name.to_owned(), kind, default, help: help.to_owned() };
                    param.kind.literal(param.default.as_deref()).map_err(|e| anyhow!("@param {name}: default {e}"))?;
                    analysis.params.push(param);
                }
                "result" => {
                    let ([name, view], help) =
                        words::<2>(value).ok_or_else(|| anyhow!("@result needs a name and a view"))?;
                    analysis.results.push(ResultView {
                        name: name.to_owned(),
                        view: view.to_owned(),
                        help: help.to_owned(),
                    });
                }
                other => bail!("unknown header line @{other}"),
            }
        }
        if analysis.title.is_empty() || analysis.results.is_empty() {
            bail!("an analysis needs a @title and at least one @result");
        }
        analysis.pieces = pieces(path)?;
        for file in analysis.files() {
            for (key, target) in header_lines(embedded(file).unwrap_or_default()) {
                if key != "check" {
                    continue;
                }
                let (check, _) = EMBEDDED_QUERIES
                    .iter()
                    .find(|(p, _)| *p == target)
                    .ok_or_else(|| anyhow!("{file}: @check {target}: no file queries/{target}"))?;
                if !analysis.checks.contains(check) {
                    analysis.checks.push(check);
                }
            }
        }
        Ok(analysis)
    }

    /// The files it runs, each once, in the order they first run.
    #[must_use]
    pub fn files(&self) -> Vec<&'static str> {
        let mut files: Vec<&'static str> = Vec::new();
        for piece in &self.pieces {
            if !files.contains(&piece.path) {
                files.push(piece.path);
            }
        }
        files
    }

    /// The result called `name`, or the default (first) one.
    ///
    /// # Errors
    ///
    /// No result has that name; the message lists them.
    pub fn result(&self, name: Option<&str>) -> anyhow::Result<&ResultView> {
        let Some(name) = name else { return Ok(&self.results[0]) };
        self.results.iter().find(|r| r.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.results.iter().map(|r| r.name.as_str()).collect();
            anyhow!("{} has no result '{name}'; its results: {}", self.name, names.join(", "))
        })
    }

    /// The analysis with its parameters set: `values` are (name, value) pairs; the others
    /// take their defaults.
    ///
    /// # Errors
    ///
    /// A name the analysis does not declare, or a value that is not of its parameter's type.
    pub fn bind(&self, values: &[(&str, &str)]) -> anyhow::Result<BoundAnalysis<'_>> {
        let mut literals = BTreeMap::new();
        for (name, value) in values {
            let param = self.params.iter().find(|p| p.name == *name).ok_or_else(|| {
                let flags: Vec<String> = self.params.iter().map(Param::flag).collect();
                let flag = format!("--{}", name.replace('_', "-"));
                match flags.is_empty() {
                    true => anyhow!("{} takes no parameters, not {flag}", self.name),
                    false => anyhow!("{} has no parameter {flag}; its parameters: {}", self.name, flags.join(", ")),
                }
            })?;
            let literal = param.kind.literal(Some(value)).map_err(|e| anyhow!("{}: {e}", param.flag()))?;
            if literals.insert(param.name.clone(), literal).is_some() {
                bail!("{} given twice", param.flag());
            }
        }
        for param in &self.params {
            if !literals.contains_key(&param.name) {
                let literal = param.kind.literal(param.default.as_deref()).map_err(|e| anyhow!(e))?;
                literals.insert(param.name.clone(), literal);
            }
        }
        Ok(BoundAnalysis { analysis: self, literals })
    }
}

/// A run of lines of one file: what a file contributes between its `@include` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    /// The file, relative to `queries/`.
    pub path: &'static str,
    /// The 0-based line the piece starts at.
    first_line: usize,
    /// The 0-based line just after it.
    end_line: usize,
}

/// The pieces `path` runs, in order: an `@include` line runs the included file at that
/// place; a file runs once (at its first include) unless its header says `@repeat`, for
/// parts that work on what the including file defined just before.
fn pieces(path: &'static str) -> anyhow::Result<Vec<Piece>> {
    fn visit(
        path: &'static str,
        out: &mut Vec<Piece>,
        seen: &mut Vec<&'static str>,
        stack: &mut Vec<&'static str>,
    ) -> anyhow::Result<()> {
        let text = embedded(path).ok_or_else(|| anyhow!("no file queries/{path}"))?;
        let repeat = header_lines(text).any(|(key, _)| key == "repeat");
        if (seen.contains(&path) && !repeat) || stack.contains(&path) {
            if stack.contains(&path) {
                bail!("{path} includes itself");
            }
            return Ok(());
        }
        seen.push(path);
        stack.push(path);
        let mut first_line = 0;
        for (n, line) in text.lines().enumerate() {
            let Some(rest) = line.trim_start().strip_prefix("-- @include") else { continue };
            let target = rest.trim();
            let (included, _) = EMBEDDED_QUERIES
                .iter()
                .find(|(p, _)| *p == target)
                .ok_or_else(|| anyhow!("{path}:{}: @include {target}: no file queries/{target}", n + 1))?;
            out.push(Piece { path, first_line, end_line: n });
            visit(included, out, seen, stack)?;
            first_line = n + 1;
        }
        out.push(Piece { path, first_line, end_line: text.lines().count() });
        stack.pop();
        Ok(())
    }
    let mut out = Vec::new();
    visit(path, &mut out, &mut Vec::new(), &mut Vec::new())?;
    Ok(out)
}

/// An analysis with every parameter set, ready to run.
#[derive(Debug, Clone)]
pub struct BoundAnalysis<'a> {
    analysis: &'a Analysis,
    /// The SQL literal of every parameter.
    literals: BTreeMap<String, String>,
}

/// One file of a bound analysis, its placeholders replaced: what a session runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalysisScript {
    /// Where it comes from, for messages: `queries/lib/ecqm.sql`.
    pub source: String,
    /// The SQL, statements separated by `;`.
    pub text: String,
}

impl BoundAnalysis<'_> {
    /// The analysis.
    #[must_use]
    pub fn analysis(&self) -> &Analysis {
        self.analysis
    }

    /// The SQL literal every parameter is bound to, by name.
    #[must_use]
    pub fn literals(&self) -> &BTreeMap<String, String> {
        &self.literals
    }

    /// The scripts to run, in order, their placeholders replaced. A piece keeps its line
    /// numbers (it starts with as many empty lines as precede it), so that an error points
    /// at the file's line.
    ///
    /// # Errors
    ///
    /// A placeholder that names no parameter of the analysis.
    pub fn scripts(&self) -> anyhow::Result<Vec<AnalysisScript>> {
        self.analysis
            .pieces
            .iter()
            .map(|piece| {
                let text = embedded(piece.path).expect("pieces are of embedded files");
                let lines: Vec<&str> = text.lines().collect();
                let mut body = "\n".repeat(piece.first_line);
                for line in &lines[piece.first_line..piece.end_line] {
                    body.push_str(line);
                    body.push('\n');
                }
                let text = self.substitute(&body).with_context(|| format!("queries/{}", piece.path))?;
                Ok(AnalysisScript { source: format!("queries/{}", piece.path), text })
            })
            .filter(|script| script.as_ref().map_or(true, |s| !crate::sql::script::split(&s.text).is_empty()))
            .collect()
    }

    /// Runs the analysis' `@check` queries over `session`, before its scripts: the tables
    /// decide whether the parameters make sense (the payment years with CMS-HCC tables) and
    /// whether the warehouse has the columns the SQL reads, and an analysis run anyway would
    /// give nulls or a column error from deep inside a shared file.
    ///
    /// # Errors
    ///
    /// The messages of the first check query that returns rows, one a line; or a check that
    /// does not run.
    pub fn check(&self, session: &super::Session) -> anyhow::Result<()> {
        for path in &self.analysis.checks {
            let text = embedded(path).expect("checks are embedded files");
            let text = self.substitute(text).with_context(|| format!("queries/{path}"))?;
            for statement in super::script::split(&text) {
                let mut messages = Vec::new();
                let batches =
                    session.collect(statement.text).map_err(|e| anyhow!("queries/{path}: the check failed: {e}"))?;
                for batch in batches.iter().filter(|b| b.num_columns() > 0) {
                    let column = arrow::compute::cast(batch.column(0), &arrow::datatypes::DataType::Utf8)?;
                    let column = column.as_any().downcast_ref::<arrow::array::StringArray>().expect("cast to Utf8");
                    messages.extend(column.iter().flatten().map(str::to_owned));
                }
                // The first check that fails is the one to fix; the later ones may rest on
                // it (an empty window of a payment year that has no tables).
                if !messages.is_empty() {
                    return Err(anyhow!(messages.join("\n")));
                }
            }
        }
        Ok(())
    }

    fn substitute(&self, text: &str) -> anyhow::Result<String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let end = rest[start..].find("}}").ok_or_else(|| anyhow!("unclosed {{{{"))? + start;
            let name = rest[start + 2..end].trim();
            let literal = self.literals.get(name).ok_or_else(|| {
                anyhow!("{{{{{name}}}}} is not a parameter of {} (add a @param line)", self.analysis.name)
            })?;
            out.push_str(&rest[..start]);
            out.push_str(literal);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The whole script as one text: every file under a comment naming it, then the query
    /// of `result`, so that it runs as it is with `fhirhouse query -f`.
    ///
    /// # Errors
    ///
    /// As [`BoundAnalysis::scripts`].
    pub fn script_text(&self, result: &ResultView) -> anyhow::Result<String> {
        let mut text = String::new();
        let values: Vec<String> = self.literals.iter().map(|(name, literal)| format!("{name} = {literal}")).collect();
        writeln!(text, "-- fhirhouse report {}: {}", self.analysis.name, values.join(", "))?;
        for script in self.scripts()? {
            writeln!(text, "\n-- ==== {} ====\n{}", script.source, script.text.trim())?;
            if !script.text.trim_end().ends_with(';') {
                text.push(';');
            }
        }
        writeln!(text, "\n{};", result_query(result))?;
        Ok(text)
    }
}

/// The query that reads a result's rows, in the order of its first two columns (the
/// measure or patient, then the patient, HCC or code).
#[must_use]
pub fn result_query(result: &ResultView) -> String {
    format!("SELECT * FROM {} ORDER BY 1, 2", result.view)
}

/// Every shipped analysis, sorted by name.
///
/// # Errors
///
/// A shipped file with a broken header (the test suite rules it out).
pub fn shipped() -> anyhow::Result<&'static [Analysis]> {
    static ANALYSES: OnceLock<Result<Vec<Analysis>, String>> = OnceLock::new();
    ANALYSES
        .get_or_init(|| {
            let mut list = Vec::new();
            for (path, text) in EMBEDDED_QUERIES {
                if path.contains('/') {
                    continue;
                }
                list.push(
                    Analysis::parse(path, text)
                        .map_err(|e| format!("queries/{path}: {}", crate::error_text(e.as_ref())))?,
                );
            }
            list.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(list)
        })
        .as_deref()
        .map_err(|e| anyhow!("shipped analyses: {e}"))
}

/// The shipped analysis called `name`.
///
/// # Errors
///
/// No analysis has that name; the message offers the closest and lists them.
pub fn find(name: &str) -> anyhow::Result<&'static Analysis> {
    let all = shipped()?;
    if let Some(analysis) = all.iter().find(|a| a.name.eq_ignore_ascii_case(name)) {
        return Ok(analysis);
    }
    let names: Vec<&str> = all.iter().map(|a| a.name.as_str()).collect();
    let hint = super::diagnose::closest(name, names.iter().copied())
        .map(|c| format!(" (did you mean '{c}'?)"))
        .unwrap_or_default();
    Err(anyhow!("no analysis '{name}'{hint}; the shipped ones: {}", names.join(", ")))
}

#[cfg(test)]
#[path = "analyses_tests.rs"]
mod tests;
