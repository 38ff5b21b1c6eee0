//! Parses NDJSON lines into the documents views evaluate, reusing every buffer.
//!
//! simd-json's `to_tape` allocates a fresh tape for every document. The tape of a typical
//! resource is a few kilobytes: too large for the allocator's per-thread caches, so every
//! line paid the allocator's slow path, more so once the Arrow builders of a load had
//! fragmented the heap. [`ResourceParser`] keeps one tape for all lines, and views read
//! the tape itself ([`Json`]): no tree is built, and nothing is freed per line.

use simd_json::{Buffers, Tape};

use super::json::Json;

/// Lines up to this long leave their parse scratch with the parser for the next line; a
/// longer one gives it back as soon as it is parsed (see [`ResourceParser::parse`]).
pub const SCRATCH_KEPT_BYTES: usize = 1 << 20;

/// A reusable parser of one document at a time: parse buffers and the tape kept between
/// lines.
///
/// ```
/// let mut parser = fhirhouse::view::ResourceParser::default();
/// for line in [r#"{"resourceType":"Patient","id":"a"}"#, r#"{"resourceType":"Patient","id":"b"}"#] {
///     let mut bytes = line.as_bytes().to_vec();
///     let parsed = parser.parse(&mut bytes).unwrap();
///     assert_eq!(parsed.doc().get_str("resourceType"), Some("Patient"));
/// }
/// assert!(parser.parse(&mut b"{not json".to_vec()).is_err());
/// ```
pub struct ResourceParser {
    buffers: Buffers,
    /// The tape, empty between parses. Its nodes borrow the line being parsed, so it is
    /// kept empty at the `'static` lifetime and lent to each parse at that line's
    /// ([`Tape::reset`]).
    tape: Tape<'static>,
}

impl Default for ResourceParser {
    fn default() -> Self {
        ResourceParser { buffers: Buffers::default(), tape: Tape(Vec::new()) }
    }
}

impl ResourceParser {
    /// Parses `line` (in place, as simd-json does) into a document that borrows it and
    /// the parser's tape, until the [`Parsed`] is dropped.
    ///
    /// # Errors
    ///
    /// simd-json's error when the line is not one JSON value in UTF-8.
    pub fn parse<'p, 's>(&'p mut self, line: &'s mut [u8]) -> simd_json::Result<Parsed<'p, 's>> {
        let len = line.len();
        let tape = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        // Made before filling so that the tape comes back to the parser on errors too.
        let mut parsed = Parsed { slot: &mut self.tape, tape };
        let filled = simd_json::fill_tape(line, &mut self.buffers, &mut parsed.tape);
        if len > SCRATCH_KEPT_BYTES {
            // The tape borrows only the line, so the scratch can go before the views run:
            // for a line of small values (a 64 MiB Observation of 3,000,000 components) it
            // is a copy of the line, a string buffer its size and four bytes for each of
            // its 30,000,000 structural characters, which the rows would otherwise pile on.
            self.buffers = Buffers::default();
        }
        filled?;
        Ok(parsed)
    }
}

/// One parsed line: the tape lent by a [`ResourceParser`], handed back when dropped.
pub struct Parsed<'p, 's> {
    slot: &'p mut Tape<'static>,
    tape: Tape<'s>,
}

impl Parsed<'_, '_> {
    /// The document.
    #[must_use]
    pub fn doc(&self) -> Json<'_> {
        Json::root(&self.tape)
    }
}

impl Drop for Parsed<'_, '_> {
    fn drop(&mut self) {
        *self.slot = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_its_tape_between_lines() {
        let mut parser = ResourceParser::default();
        let mut first = br#"{"a":[1,2,{"b":"c"}],"d":"e"}"#.to_vec();
        let mut copy = first.clone();
        let expected = simd_json::to_tape(&mut copy).unwrap();
        assert_eq!(parser.parse(&mut first).unwrap().doc(), Json::root(&expected));
        let capacity = parser.tape.0.capacity();
        assert!(capacity > 0, "the tape is kept");
        let (mut second, mut copy) = (br#"{"x":1}"#.to_vec(), br#"{"x":1}"#.to_vec());
        assert_eq!(parser.parse(&mut second).unwrap().doc(), Json::root(&simd_json::to_tape(&mut copy).unwrap()));
        assert_eq!(parser.tape.0.capacity(), capacity, "and reused, not reallocated");
        assert!(parser.parse(&mut br#"{"x":"#.to_vec()).is_err());
        assert_eq!(parser.tape.0.capacity(), capacity, "a failed parse hands the tape back");
        assert!(parser.parse(&mut br#"[1,2]"#.to_vec()).is_ok());
    }
}
