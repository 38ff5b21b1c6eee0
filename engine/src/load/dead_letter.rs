//! Why a line was not loaded, and the dead-letter files that keep it.
//!
//! Every line that does not become rows is written to
//! `<warehouse>/_dead_letter/<load id>/<input number>-<input file name>` (`.gz` dropped), one JSON object per line:
//!
//! ```json
//! {"file": "export/Observation.000.ndjson", "line": 17, "offset": 40213,
//!  "reason": "invalid_json", "detail": "...", "raw": "{\"resourceType\": ..."}
//! ```
//!
//! `raw` holds the original line when it is valid UTF-8, otherwise `raw_base64` holds its
//! bytes; an oversized line keeps only its first bytes (`raw_truncated: true`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use base64::Engine as _;

use crate::source::is_r4_resource_type;
use crate::view::Json;

/// Why a line was not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The line is not valid UTF-8.
    InvalidUtf8,
    /// The line is not valid JSON; the parser's message.
    InvalidJson(String),
    /// The line is JSON but not an object.
    NotAnObject,
    /// The object has no `resourceType` string.
    MissingResourceType,
    /// `resourceType` names no FHIR R4 resource (and no view reads it).
    UnknownResourceType(String),
    /// A view failed on the resource; the message names view and column.
    View(String),
    /// The line is longer than `--max-line-bytes`.
    Oversized {
        /// Its length in bytes.
        len: u64,
        /// The limit.
        limit: usize,
    },
    /// The file could not be read past this point (e.g. corrupt gzip); the rest is lost.
    Read(String),
    /// The same resource occurs again in the load, newer; that occurrence is in the tables.
    SupersededDuplicate {
        /// `Type/id`.
        key: String,
        /// `file:line` of the occurrence that won.
        winner: String,
    },
}

impl Reason {
    /// A stable, content-free code: safe for logs and for grouping in reports.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Reason::InvalidUtf8 => "invalid_utf8",
            Reason::InvalidJson(_) => "invalid_json",
            Reason::NotAnObject => "not_an_object",
            Reason::MissingResourceType => "missing_resource_type",
            Reason::UnknownResourceType(_) => "unknown_resource_type",
            Reason::View(_) => "view_error",
            Reason::Oversized { .. } => "oversized_line",
            Reason::Read(_) => "read_error",
            Reason::SupersededDuplicate { .. } => "superseded_duplicate",
        }
    }

    /// Why a line the parser refused is not loaded: it is not UTF-8, or not JSON (with a hint
    /// when the line's shape says why). `line` is the line; as the parser left it will do,
    /// since a parse only rewrites the insides of strings and the hint looks outside them.
    #[must_use]
    pub(crate) fn unparsable(error: &simd_json::Error, line: &[u8]) -> Reason {
        if *error.error() == simd_json::ErrorType::InvalidUtf8 {
            Reason::InvalidUtf8
        } else {
            Reason::InvalidJson(format!("{error}{}", line_shape_hint(line)))
        }
    }

    /// The full explanation. View errors and parser messages can quote resource content,
    /// so this goes to the dead-letter file, and to logs only with `--log-phi`.
    #[must_use]
    pub fn detail(&self) -> String {
        match self {
            Reason::InvalidUtf8 => "line is not valid UTF-8".to_owned(),
            Reason::InvalidJson(e) => format!("invalid JSON: {e}"),
            Reason::NotAnObject => "JSON value is not an object".to_owned(),
            Reason::MissingResourceType => "no \"resourceType\" string".to_owned(),
            Reason::UnknownResourceType(t) => format!("unknown resourceType {t:?}"),
            Reason::View(e) => e.clone(),
            Reason::Oversized { len, limit } => format!("line of {len} bytes is over --max-line-bytes {limit}"),
            Reason::Read(e) => format!("read error, rest of file unreadable: {e}"),
            Reason::SupersededDuplicate { key, winner } => {
                format!("{key} occurs again in this load, newer ({winner}); that one is loaded")
            }
        }
    }
}

/// The `resourceType` of a parsed line and whether `is_read` (some view reads it), or why a
/// load dead-letters the line whatever its views: it is no JSON object, has no
/// `resourceType` string, or names no FHIR R4 resource type. A type a view reads is R4 (a
/// ViewDefinition names one), so only the others are looked up in the R4 list: the lines a
/// load reads do not pay for it. A load asks this of every line it parses, and
/// `fhirhouse query --export` and `fhirhouse view` of every line they parse, so that all
/// three refuse the same lines for the same reasons.
pub(crate) fn resource_type_of(resource: Json<'_>, is_read: impl FnOnce(&str) -> bool) -> Result<LineType<'_>, Reason> {
    if resource.as_object().is_none() {
        return Err(Reason::NotAnObject);
    }
    let name = resource.get_str("resourceType").ok_or(Reason::MissingResourceType)?;
    let read = is_read(name);
    if !read && !is_r4_resource_type(name) {
        return Err(Reason::UnknownResourceType(name.to_owned()));
    }
    Ok(LineType { name, read })
}

/// The resource type of a line [`resource_type_of`] accepts.
pub(crate) struct LineType<'a> {
    /// Its `resourceType`: an R4 resource type.
    pub name: &'a str,
    /// Whether the caller reads this type (some view of a load, the table or view at hand).
    pub read: bool,
}

/// What a line that is no JSON may really be, when its shape says: a whole file in UTF-16,
/// or one with bare carriage returns for line ends (old Mac style), both of which read as
/// one long broken line and would otherwise be reported as a bare syntax error.
fn line_shape_hint(line: &[u8]) -> &'static str {
    let head = &line[..line.len().min(64)];
    let utf16 = head.starts_with(&[0xFF, 0xFE])
        || head.starts_with(&[0xFE, 0xFF])
        || (head.len() >= 8 && head.iter().skip(1).step_by(2).all(|&b| b == 0))
        || (head.len() >= 8 && head.iter().step_by(2).all(|&b| b == 0));
    if utf16 {
        "; the file looks like UTF-16: NDJSON is UTF-8 (convert it, e.g. with iconv -f UTF-16 -t UTF-8)"
    } else if line.windows(3).any(|w| w == b"}\r{") {
        "; the line holds carriage returns without line feeds: are the file's lines ended by \\r alone? (convert them to \\n)"
    } else {
        ""
    }
}

/// One dead line, as found by a worker (line index still relative to its chunk).
#[derive(Debug, Clone)]
pub struct DeadLine {
    /// 0-based line index within the chunk.
    pub index: u64,
    /// Byte offset of the line in the (decompressed) file.
    pub offset: u64,
    /// Why it was not loaded.
    pub reason: Reason,
    /// The line's bytes (only the head of an oversized line).
    pub bytes: Vec<u8>,
}

/// Writes dead lines, one file per input file, created on first use.
pub struct DeadLetterWriter {
    dir: PathBuf,
    files: HashMap<usize, BufWriter<File>>,
    log_phi: bool,
    /// Dead lines written so far.
    pub written: u64,
}

impl DeadLetterWriter {
    /// Writes into `dir` (created on the first dead line).
    #[must_use]
    pub fn new(dir: PathBuf, log_phi: bool) -> Self {
        DeadLetterWriter { dir, files: HashMap::new(), log_phi, written: 0 }
    }

    /// The folder dead letters go to.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records one dead line of input file `file_id` (named `file_name`, shown as `path`: a
    /// path or URL)
    /// at 1-based `line`, and logs it without content unless `--log-phi` was given.
    ///
    /// # Errors
    ///
    /// An I/O error creating or writing the dead-letter file.
    pub fn write(
        &mut self,
        file_id: usize,
        file_name: &str,
        path: &dyn std::fmt::Display,
        line: u64,
        dead: &DeadLine,
    ) -> anyhow::Result<()> {
        if self.log_phi {
            tracing::debug!(file = %path, line, reason = dead.reason.code(), detail = %dead.reason.detail(), "dead letter");
        } else {
            tracing::debug!(file = %path, line, reason = dead.reason.code(), "dead letter");
        }
        if !self.files.contains_key(&file_id) && self.files.len() >= MAX_OPEN_FILES {
            // One open file per input with a dead letter ran out of descriptors on an export
            // of thousands of files. Those written so far are made durable and closed; one
            // that gets another dead letter later is opened again, appending.
            self.close_all()?;
        }
        let out = match self.files.entry(file_id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                fs::create_dir_all(&self.dir).with_context(|| format!("cannot create {}", self.dir.display()))?;
                // Numbered so that two inputs of the same name (in different folders) stay apart.
                let name = format!("{file_id:03}-{}", shortened(file_name.trim_end_matches(".gz")));
                let path = self.dir.join(name);
                // Appending: duplicates found after the load add to the same file.
                let file = File::options()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .with_context(|| format!("cannot write dead letters to {}", path.display()))?;
                e.insert(BufWriter::new(file))
            }
        };
        let mut record = serde_json::json!({
            "file": path.to_string(),
            "line": line,
            "offset": dead.offset,
            "reason": dead.reason.code(),
            "detail": dead.reason.detail(),
        });
        match std::str::from_utf8(&dead.bytes) {
            Ok(text) => record["raw"] = text.into(),
            Err(_) => record["raw_base64"] = base64::engine::general_purpose::STANDARD.encode(&dead.bytes).into(),
        }
        if matches!(dead.reason, Reason::Oversized { .. }) {
            record["raw_truncated"] = true.into();
        }
        serde_json::to_writer(&mut *out, &record)?;
        out.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Flushes and syncs every file.
    ///
    /// # Errors
    ///
    /// An I/O error.
    pub fn finish(mut self) -> anyhow::Result<()> {
        self.close_all()
    }

    /// Flushes, syncs and closes every open file.
    fn close_all(&mut self) -> anyhow::Result<()> {
        for (_, out) in self.files.drain() {
            out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        }
        Ok(())
    }
}

/// The most dead-letter files open at once.
const MAX_OPEN_FILES: usize = 128;

/// `name` cut to [`MAX_NAME_BYTES`] (on a character boundary): a dead-letter file is named
/// after its input, and an input may be named up to the file system's limit (255 bytes on
/// most), which the added number would then pass. The records name the input in full.
fn shortened(name: &str) -> &str {
    if name.len() <= MAX_NAME_BYTES {
        return name;
    }
    let mut end = MAX_NAME_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

/// The most bytes of an input's name a dead-letter file name keeps.
const MAX_NAME_BYTES: usize = 200;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_keep_bytes_and_reason_without_content_in_the_code() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DeadLetterWriter::new(dir.path().join("dl"), false);
        let dead = |reason, bytes: &[u8]| DeadLine { index: 0, offset: 7, reason, bytes: bytes.to_vec() };
        w.write(0, "a.ndjson", &"in/a.ndjson", 3, &dead(Reason::InvalidJson("x".into()), b"{oops")).unwrap();
        w.write(0, "a.ndjson", &"in/a.ndjson", 4, &dead(Reason::InvalidUtf8, b"\xff")).unwrap();
        w.finish().unwrap();
        let text = fs::read_to_string(dir.path().join("dl/000-a.ndjson")).unwrap();
        let records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records[0]["line"], 3);
        assert_eq!(records[0]["reason"], "invalid_json");
        assert_eq!(records[0]["raw"], "{oops");
        assert_eq!(records[1]["raw_base64"], "/w==");
    }

    #[test]
    fn an_input_named_up_to_the_file_system_limit_gets_a_dead_letter_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DeadLetterWriter::new(dir.path().join("dl"), false);
        // 254 bytes, a 2-byte character straddling the cut: the input itself can exist, its
        // dead-letter file named in full could not (258 bytes).
        let name = format!("{}é{}.ndjson", "P".repeat(199), "x".repeat(46));
        let dead = DeadLine { index: 0, offset: 0, reason: Reason::InvalidUtf8, bytes: b"\xff".to_vec() };
        w.write(0, &name, &name, 1, &dead).unwrap();
        w.finish().unwrap();
        let written: Vec<String> = fs::read_dir(dir.path().join("dl"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(written, [format!("000-{}", "P".repeat(199))]);
        let record: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(dir.path().join("dl").join(&written[0])).unwrap()).unwrap();
        assert_eq!(record["file"], name, "the record names the input in full");
    }

    #[test]
    fn dead_letters_of_more_inputs_than_may_be_open_at_once_are_all_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DeadLetterWriter::new(dir.path().join("dl"), false);
        let dead = |n: u64| DeadLine { index: 0, offset: n, reason: Reason::InvalidUtf8, bytes: vec![b'x'] };
        let inputs = MAX_OPEN_FILES as u64 * 2 + 1;
        // Twice through every input: the second dead letter of each reopens its file.
        for round in 0..2 {
            for file in 0..inputs {
                w.write(file as usize, &format!("f{file}.ndjson"), &"in", round + 1, &dead(round)).unwrap();
                assert!(w.files.len() <= MAX_OPEN_FILES);
            }
        }
        w.finish().unwrap();
        for file in 0..inputs {
            let text = fs::read_to_string(dir.path().join(format!("dl/{file:03}-f{file}.ndjson"))).unwrap();
            let lines: Vec<u64> = text
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap())
                .collect();
            assert_eq!(lines, [1, 2], "file {file}");
        }
    }
}
