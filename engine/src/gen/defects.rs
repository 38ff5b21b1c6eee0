//! Injected defects (`--defects RATE`): lines broken on purpose, each in a way the loader
//! must dead-letter, for reliability runs that check nothing is silently lost.

use std::collections::BTreeMap;

use serde::Serialize;

/// One kind of broken line, and the dead-letter reason the loader gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Defect {
    /// The line cut in half: never valid JSON (`invalid_json`).
    Truncated,
    /// The first byte of the resource id replaced by `0xFF`: not UTF-8 (`invalid_utf8`).
    InvalidUtf8,
    /// The resource wrapped in a JSON array: valid JSON of the wrong type (`not_an_object`).
    WrongType,
}

impl Defect {
    /// Every kind, in the order their counts are reported.
    pub const ALL: [Defect; 3] = [Defect::Truncated, Defect::InvalidUtf8, Defect::WrongType];

    /// The defect for a uniform hash: the three kinds equally likely.
    #[must_use]
    pub fn pick(h: u64) -> Defect {
        Defect::ALL[(h % 3) as usize]
    }

    /// The loader's dead-letter reason code for such a line.
    #[must_use]
    pub fn reason(self) -> &'static str {
        match self {
            Defect::Truncated => "invalid_json",
            Defect::InvalidUtf8 => "invalid_utf8",
            Defect::WrongType => "not_an_object",
        }
    }

    /// Breaks the line `out[start..]` (a resource, no newline yet) in place.
    pub fn apply(self, out: &mut Vec<u8>, start: usize) {
        let len = out.len() - start;
        match self {
            // A proper prefix of an object misses at least its closing brace. The cut backs off
            // to a character boundary: a line cut inside a multi-byte character would be bad
            // UTF-8 too, and which reason a load gave it would depend on the parser's order.
            Defect::Truncated => {
                let mut cut = (len / 2).max(1);
                while cut > 1 && out[start + cut] & 0xC0 == 0x80 {
                    cut -= 1;
                }
                out.truncate(start + cut);
            }
            Defect::InvalidUtf8 => {
                let line = &out[start..];
                // Inside the id string, so the JSON structure is intact and only UTF-8 fails.
                let at = memchr::memmem::find(line, b"\"id\":\"").map_or(len / 2, |i| i + 6);
                out[start + at] = 0xFF;
            }
            Defect::WrongType => {
                out.insert(start, b'[');
                out.push(b']');
            }
        }
    }
}

/// Counts of injected defects, as written to `<out>/defects.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DefectCounts {
    /// Every injected defect.
    pub total: u64,
    /// Truncated lines (dead-lettered as `invalid_json`).
    pub invalid_json: u64,
    /// Lines with a byte that is not UTF-8 (`invalid_utf8`).
    pub invalid_utf8: u64,
    /// Lines that are JSON arrays instead of objects (`not_an_object`).
    pub not_an_object: u64,
    /// Every injected defect by the resource type of its file. A load does not parse the
    /// files of a type no view reads (it counts their lines as unread), so it dead-letters
    /// only the defects of the types its views read, unless it parses all (`--parse-all`).
    pub by_type: BTreeMap<String, u64>,
}

impl DefectCounts {
    /// Counts one defect, in a file of `resource_type`.
    pub fn add(&mut self, defect: Defect, resource_type: &str) {
        match self.by_type.get_mut(resource_type) {
            Some(n) => *n += 1,
            None => {
                self.by_type.insert(resource_type.to_owned(), 1);
            }
        }
        self.total += 1;
        match defect {
            Defect::Truncated => self.invalid_json += 1,
            Defect::InvalidUtf8 => self.invalid_utf8 += 1,
            Defect::WrongType => self.not_an_object += 1,
        }
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &DefectCounts) {
        self.total += other.total;
        self.invalid_json += other.invalid_json;
        self.invalid_utf8 += other.invalid_utf8;
        self.not_an_object += other.not_an_object;
        for (resource_type, n) in &other.by_type {
            *self.by_type.entry(resource_type.clone()).or_default() += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_defect_breaks_the_line() {
        let line = br#"{"resourceType":"Patient","id":"p1"}"#;
        for defect in Defect::ALL {
            let mut out = b"x\n".to_vec();
            out.extend_from_slice(line);
            defect.apply(&mut out, 2);
            let broken = &out[2..];
            let parsed =
                std::str::from_utf8(broken).ok().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
            assert!(parsed.is_none_or(|v| !v.is_object()), "{defect:?}");
        }
    }

    #[test]
    fn a_truncated_line_stays_utf8_whatever_the_characters_at_the_cut() {
        // A two-byte character at every offset around the middle.
        for pad in 0..4 {
            let line =
                format!(r#"{{"resourceType":"Patient","id":"p1","name":"{}{}"}}"#, "x".repeat(pad), "é".repeat(30));
            let mut out = line.into_bytes();
            Defect::Truncated.apply(&mut out, 0);
            let text = std::str::from_utf8(&out).unwrap_or_else(|e| panic!("pad {pad}: {e}"));
            assert!(serde_json::from_str::<serde_json::Value>(text).is_err());
        }
    }
}
