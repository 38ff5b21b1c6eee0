//! FHIR OperationOutcomes, as servers send them: in error responses and in an export's
//! `error[]` files. One rendering for both, so that a user reads the server's words the same
//! way wherever they come from; the load's run report uses it too.

use std::collections::BTreeMap;

use serde::Serialize;

/// How many diagnostics a summary quotes.
const EXAMPLES: usize = 5;

/// The issues of an OperationOutcome as one line: `error (processing): text; warning: ...`.
/// Each issue gives its severity, its code in parentheses, and its `diagnostics` (or
/// `details.text`).
#[must_use]
pub fn describe(outcome: &serde_json::Value) -> String {
    let issues = outcome["issue"].as_array().map(Vec::as_slice).unwrap_or_default();
    if issues.is_empty() {
        return "OperationOutcome without issues".to_owned();
    }
    let texts: Vec<String> = issues
        .iter()
        .map(|issue| {
            let severity = issue["severity"].as_str().unwrap_or("?");
            let text = issue["diagnostics"]
                .as_str()
                .or_else(|| issue["details"]["text"].as_str())
                .unwrap_or("(no diagnostics)");
            match issue["code"].as_str() {
                Some(code) => format!("{severity} ({code}): {text}"),
                None => format!("{severity}: {text}"),
            }
        })
        .collect();
    texts.join("; ")
}

/// [`describe`] of a response body that is an OperationOutcome; `None` for anything else.
#[must_use]
pub fn describe_body(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    (value["resourceType"] == "OperationOutcome").then(|| describe(&value))
}

/// What an export's `error[]` files say, summed up.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorSummary {
    /// OperationOutcome lines read.
    pub outcomes: u64,
    /// Issues by severity (`error`, `warning`, ...).
    pub by_severity: BTreeMap<String, u64>,
    /// Lines that were not OperationOutcomes.
    pub unreadable: u64,
    /// The first few outcomes, described.
    pub examples: Vec<String>,
}

impl ErrorSummary {
    /// Adds one line of an error file.
    pub fn add_line(&mut self, line: &[u8]) {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(line) else {
            self.unreadable += 1;
            return;
        };
        if value["resourceType"] != "OperationOutcome" {
            self.unreadable += 1;
            return;
        }
        self.outcomes += 1;
        for issue in value["issue"].as_array().map(Vec::as_slice).unwrap_or_default() {
            *self.by_severity.entry(issue["severity"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
        }
        if self.examples.len() < EXAMPLES {
            self.examples.push(describe(&value));
        }
    }

    /// `3 OperationOutcomes (error 2, warning 1)`.
    #[must_use]
    pub fn headline(&self) -> String {
        let severities: Vec<String> = self.by_severity.iter().map(|(s, n)| format!("{s} {n}")).collect();
        let mut text = crate::counted(self.outcomes, "OperationOutcome", "OperationOutcomes");
        if !severities.is_empty() {
            text.push_str(&format!(" ({})", severities.join(", ")));
        }
        if self.unreadable > 0 {
            let lines = crate::counted(self.unreadable, "line that is", "lines that are");
            text.push_str(&format!(", {lines} not OperationOutcomes"));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_described_by_severity_code_and_text() {
        let outcome = serde_json::json!({"resourceType": "OperationOutcome", "issue": [
            {"severity": "error", "code": "forbidden", "diagnostics": "scope system/Patient.rs required"},
            {"severity": "warning", "details": {"text": "slow"}}]});
        assert_eq!(describe(&outcome), "error (forbidden): scope system/Patient.rs required; warning: slow");
        assert_eq!(describe_body(outcome.to_string().as_bytes()).unwrap(), describe(&outcome));
        assert_eq!(describe_body(b"<html>bad gateway</html>"), None);

        let mut summary = ErrorSummary::default();
        summary.add_line(outcome.to_string().as_bytes());
        summary.add_line(b"{\"resourceType\":\"Patient\"}");
        summary.add_line(b"not json");
        assert_eq!(
            summary.headline(),
            "1 OperationOutcome (error 1, warning 1), 2 lines that are not OperationOutcomes"
        );
    }
}
