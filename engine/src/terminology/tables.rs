//! Crosswalk rows and the crosswalk CSV format.
//!
//! One CSV per crosswalk, with exactly this header:
//!
//! ```text
//! source_system,source_code,source_display,target_system,target_code,target_display,relationship,note
//! ```
//!
//! `relationship` is a FHIR R4 ConceptMap equivalence (`equivalent`, `wider`, `narrower`,
//! `inexact`, ...; see [`Relationship`]). A source with several targets has one row per
//! target, the primary first. A row with relationship `unmatched` and no target says the
//! source has no counterpart; its note is the reason, reported in `_dq_unmapped_codes`.

use super::index::Relationship;
use super::MappingError;

/// The header of a crosswalk CSV.
pub const CSV_HEADER: [&str; 8] = [
    "source_system",
    "source_code",
    "source_display",
    "target_system",
    "target_code",
    "target_display",
    "relationship",
    "note",
];

/// One source code → target code row of any crosswalk format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapRow {
    /// The file line (or JSON element index) it came from, for errors.
    pub line: u64,
    /// The source system as written (normalised when indexed).
    pub source_system: String,
    /// The source code as written.
    pub source_code: String,
    /// The source display, if given.
    pub source_display: Option<String>,
    /// The target system as written.
    pub target_system: String,
    /// The target code; `None` for an `unmatched` row.
    pub target_code: Option<String>,
    /// The target display, if given.
    pub target_display: Option<String>,
    /// How the target relates to the source.
    pub relationship: Relationship,
    /// A note: the reason of an unmatched row, the assumption behind an inexact one.
    pub note: Option<String>,
}

impl MapRow {
    /// Checks the row's own consistency: codes present, a target unless unmatched.
    ///
    /// # Errors
    ///
    /// Naming `file` and the row's line.
    pub fn validate(&self, file: &str) -> Result<(), MappingError> {
        let fail = |m: &str| Err(MappingError::at(file, self.line, m));
        if self.source_system.trim().is_empty() || self.source_code.trim().is_empty() {
            return fail("source_system and source_code are required");
        }
        if self.target_system.trim().is_empty() {
            return fail("target_system is required");
        }
        // A code with a control character (a NUL from a bad export) matches no real code.
        let codes = [("source_code", Some(&self.source_code)), ("target_code", self.target_code.as_ref())];
        if let Some((field, _)) = codes.iter().find(|(_, c)| c.is_some_and(|c| c.chars().any(char::is_control))) {
            return fail(&format!("{field} holds a control character"));
        }
        match (&self.target_code, self.relationship) {
            (Some(_), Relationship::Unmatched) => fail("an unmatched row has no target_code"),
            (None, Relationship::Unmatched) if self.note.is_none() => fail("an unmatched row needs a note saying why"),
            (None, r) if r != Relationship::Unmatched => {
                fail("target_code is required unless relationship is unmatched")
            }
            _ => Ok(()),
        }
    }
}

/// A CSV reader over `bytes` that checks the header is exactly `header`.
///
/// # Errors
///
/// A header that differs, naming `file`.
pub fn csv_reader<'a>(bytes: &'a [u8], file: &str, header: &[&str]) -> Result<csv::Reader<&'a [u8]>, MappingError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(bytes);
    let found = reader.headers().map_err(|e| MappingError::at(file, 1, e))?;
    if found.iter().ne(header.iter().copied()) {
        let found: Vec<&str> = found.iter().collect();
        return Err(MappingError::at(file, 1, format!("header must be {:?}, found {found:?}", header.join(","))));
    }
    Ok(reader)
}

/// The line of a CSV record, for errors.
pub fn record_line(record: &csv::StringRecord) -> u64 {
    record.position().map_or(0, csv::Position::line)
}

/// Checks that `record` lies on one line. A line break inside a field is almost always a
/// stray opening quote, which swallows the rows after it into one field: with the right
/// number of fields after its closing quote, those rows would vanish without a word.
///
/// # Errors
///
/// Naming file, line and the field (by its `header` name).
pub fn one_line(record: &csv::StringRecord, file: &str, header: &[impl AsRef<str>]) -> Result<(), MappingError> {
    match record.iter().position(|f| f.contains(['\n', '\r'])) {
        None => Ok(()),
        Some(i) => {
            let name = header.get(i).map_or("a field", AsRef::as_ref);
            let message = format!("{name} runs over a line break (an unbalanced quote?): one row per line");
            Err(MappingError::at(file, record_line(record), message))
        }
    }
}

fn optional(field: &str) -> Option<String> {
    let field = field.trim();
    (!field.is_empty()).then(|| field.to_owned())
}

/// Reads a crosswalk CSV (see the module docs).
///
/// # Errors
///
/// A bad header, a malformed row, an unknown relationship; naming file and line.
pub fn read_csv(bytes: &[u8], file: &str) -> Result<Vec<MapRow>, MappingError> {
    let mut reader = csv_reader(bytes, file, &CSV_HEADER)?;
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| MappingError::at(file, e.position().map_or(0, csv::Position::line), e))?;
        let line = record_line(&record);
        one_line(&record, file, &CSV_HEADER)?;
        let field = |i: usize| record.get(i).unwrap_or("");
        let relationship = Relationship::parse_for(field(6).trim(), !field(4).trim().is_empty())
            .ok_or_else(|| MappingError::at(file, line, format!("unknown relationship {:?}", field(6))))?;
        let row = MapRow {
            line,
            source_system: field(0).trim().to_owned(),
            source_code: field(1).trim().to_owned(),
            source_display: optional(field(2)),
            target_system: field(3).trim().to_owned(),
            target_code: optional(field(4)),
            target_display: optional(field(5)),
            relationship,
            note: optional(field(7)),
        };
        row.validate(file)?;
        rows.push(row);
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str =
        "source_system,source_code,source_display,target_system,target_code,target_display,relationship,note\n";

    #[test]
    fn reads_rows_with_quotes_and_unmatched_rows() {
        let text = format!(
            "{HEADER}SNOMED,44054006,Diabetes,http://hl7.org/fhir/sid/icd-10-cm,E11.9,\"Type 2 diabetes, no complications\",narrower,\n\
             SNOMED,160903007,Full-time employment,http://hl7.org/fhir/sid/icd-10-cm,,,unmatched,not a health problem\n"
        );
        let rows = read_csv(text.as_bytes(), "x.csv").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].target_display.as_deref(), Some("Type 2 diabetes, no complications"));
        assert_eq!(rows[0].relationship, Relationship::Narrower);
        assert_eq!(rows[0].line, 2);
        assert_eq!(rows[1].target_code, None);
        assert_eq!(rows[1].note.as_deref(), Some("not a health problem"));
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = read_csv(b"code,target\n1,2\n", "bad.csv").unwrap_err().to_string();
        assert!(err.starts_with("bad.csv:1: header must be"), "{err}");
        let text = format!("{HEADER}S,1,,T,2,,same,\n");
        assert_eq!(
            read_csv(text.as_bytes(), "r.csv").unwrap_err().to_string(),
            "r.csv:2: unknown relationship \"same\""
        );
        let text = format!("{HEADER}S,1,,T,,,equivalent,\n");
        assert!(read_csv(text.as_bytes(), "r.csv")
            .unwrap_err()
            .to_string()
            .contains("r.csv:2: target_code is required"));
        let text = format!("{HEADER}S,1,,T,,,unmatched,\n");
        assert!(read_csv(text.as_bytes(), "r.csv").unwrap_err().to_string().contains("needs a note"));
        let text = format!("{HEADER}S,1,,T,2,,equivalent\n");
        assert!(read_csv(text.as_bytes(), "r.csv").unwrap_err().to_string().starts_with("r.csv:2:"));
    }

    #[test]
    fn a_stray_quote_that_swallows_a_row_is_an_error() {
        let text = format!(
            "{HEADER}S,1,\"One,T,2,,equivalent,\r\nS,3,Three\",T,4,,equivalent,\r\nS,5,Five,T,6,,equivalent,\r\n"
        );
        assert_eq!(
            read_csv(text.as_bytes(), "r.csv").unwrap_err().to_string(),
            "r.csv:2: source_display runs over a line break (an unbalanced quote?): one row per line"
        );
    }

    #[test]
    fn a_code_with_a_control_character_is_an_error() {
        let text = format!("{HEADER}S,1,One,T,2,,equivalent,\nS,GLU\u{0},Glucose,T,4,,equivalent,\n");
        assert_eq!(
            read_csv(text.as_bytes(), "r.csv").unwrap_err().to_string(),
            "r.csv:3: source_code holds a control character"
        );
    }
}
