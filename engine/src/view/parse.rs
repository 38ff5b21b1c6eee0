//! Parses NDJSON lines into the borrowed documents views evaluate, reusing every buffer.
//!
//! simd-json's `to_borrowed_value_with_buffers` reuses its scratch buffers but allocates a
//! fresh tape for every document and frees it after building the DOM. The tape of a typical
//! resource is a few kilobytes: too large for the allocator's per-thread caches, so every
//! line paid the allocator's slow path, more so once the Arrow builders of a load had
//! fragmented the heap. [`ResourceParser`] keeps one tape for all lines.

use simd_json::{BorrowedValue, Buffers, Tape};

/// A reusable parser of one document at a time: parse buffers and the tape kept between
/// lines.
///
/// ```
/// let mut parser = fhirhouse::view::ResourceParser::default();
/// for line in [r#"{"resourceType":"Patient","id":"a"}"#, r#"{"resourceType":"Patient","id":"b"}"#] {
///     let mut bytes = line.as_bytes().to_vec();
///     let doc = parser.parse(&mut bytes).unwrap();
///     assert_eq!(doc["resourceType"], "Patient");
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
    /// Parses `line` (in place, as simd-json does) into a document that borrows it.
    pub fn parse<'s>(&mut self, line: &'s mut [u8]) -> simd_json::Result<BorrowedValue<'s>> {
        let mut tape: Tape<'s> = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
        let parsed = simd_json::fill_tape(line, &mut self.buffers, &mut tape)
            .map(|()| simd_json::value::lazy::Value::from_tape(tape.as_value()).into_value());
        self.tape = tape.reset();
        parsed
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
        let expected = simd_json::to_borrowed_value(&mut copy).unwrap();
        assert_eq!(parser.parse(&mut first).unwrap(), expected);
        let capacity = parser.tape.0.capacity();
        assert!(capacity > 0, "the tape is kept");
        let (mut second, mut copy) = (br#"{"x":1}"#.to_vec(), br#"{"x":1}"#.to_vec());
        assert_eq!(parser.parse(&mut second).unwrap(), simd_json::to_borrowed_value(&mut copy).unwrap());
        assert_eq!(parser.tape.0.capacity(), capacity, "and reused, not reallocated");
        assert!(parser.parse(&mut br#"{"x":"#.to_vec()).is_err());
        assert!(parser.parse(&mut br#"[1,2]"#.to_vec()).is_ok());
    }
}
