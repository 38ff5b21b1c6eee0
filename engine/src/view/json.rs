//! A parsed resource as views read it: simd-json's tape, walked in place.
//!
//! simd-json parses a line into a flat tape: a container node (object or array) followed by
//! its members, each container carrying the number of nodes beneath it. Building a tree of
//! maps and vectors from the tape costs as much again as the parse, and freeing the tree
//! per line more still; views only read, so they walk the tape itself. A [`Json`] is one
//! node and the nodes beneath it: `Copy`, and a member lookup steps over the values of the
//! keys it passes by their node counts.
//!
//! ```
//! use fhirhouse::view::json::Json;
//!
//! let mut line = br#"{"resourceType":"Patient","name":[{"family":"Smith"}],"active":true}"#.to_vec();
//! let tape = simd_json::to_tape(&mut line).unwrap();
//! let patient = Json::root(&tape);
//! assert_eq!(patient.get_str("resourceType"), Some("Patient"));
//! let family = patient.get("name").and_then(|n| n.as_array()?.iter().next()?.get_str("family"));
//! assert_eq!(family, Some("Smith"));
//! assert_eq!(patient.get("active").and_then(Json::as_bool), Some(true));
//! ```

use simd_json::{Node, StaticNode, Tape};

/// One JSON value of a parsed document: its node and every node beneath it.
#[derive(Clone, Copy, Debug)]
pub struct Json<'a>(&'a [Node<'a>]);

/// The members of a JSON object, in document order.
#[derive(Clone, Copy, Debug)]
pub struct Object<'a>(&'a [Node<'a>]);

/// The elements of a JSON array, in document order.
#[derive(Clone, Copy, Debug)]
pub struct Array<'a>(&'a [Node<'a>]);

/// The nodes a value spans on the tape: itself and, for a container, everything beneath.
#[inline]
fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        _ => 1,
    }
}

const NULL: &[Node<'static>] = &[Node::Static(StaticNode::Null)];

impl<'a> Json<'a> {
    /// The document a tape holds (JSON null for an empty tape).
    #[must_use]
    pub fn root(tape: &'a Tape<'a>) -> Json<'a> {
        match tape.0.first() {
            Some(head) => Json(&tape.0[..span(head).min(tape.0.len())]),
            None => Json(NULL),
        }
    }

    #[inline]
    fn head(self) -> &'a Node<'a> {
        // A `Json` is never empty: `root` and the iterators hand out whole values only.
        &self.0[0]
    }

    /// The string, if the value is one.
    #[inline]
    #[must_use]
    pub fn as_str(self) -> Option<&'a str> {
        match self.head() {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar (number, boolean or null), if the value is one.
    #[inline]
    #[must_use]
    pub fn as_static(self) -> Option<StaticNode> {
        match self.head() {
            Node::Static(node) => Some(*node),
            _ => None,
        }
    }

    /// The boolean, if the value is one.
    #[inline]
    #[must_use]
    pub fn as_bool(self) -> Option<bool> {
        match self.head() {
            Node::Static(StaticNode::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    /// Whether the value is JSON `null`.
    #[inline]
    #[must_use]
    pub fn is_null(self) -> bool {
        matches!(self.head(), Node::Static(StaticNode::Null))
    }

    /// The object's members, if the value is an object.
    #[inline]
    #[must_use]
    pub fn as_object(self) -> Option<Object<'a>> {
        matches!(self.head(), Node::Object { .. }).then_some(Object(self.0))
    }

    /// The array's elements, if the value is an array.
    #[inline]
    #[must_use]
    pub fn as_array(self) -> Option<Array<'a>> {
        matches!(self.head(), Node::Array { .. }).then_some(Array(self.0))
    }

    /// The member `key` of an object (the first, should a key repeat).
    #[inline]
    #[must_use]
    pub fn get(self, key: &str) -> Option<Json<'a>> {
        self.as_object()?.get(key)
    }

    /// The member `key` of an object when it is a string.
    #[inline]
    #[must_use]
    pub fn get_str(self, key: &str) -> Option<&'a str> {
        self.get(key)?.as_str()
    }

    /// A short name of the value's JSON kind, for messages.
    #[must_use]
    pub fn kind_name(self) -> &'static str {
        match self.head() {
            Node::Object { .. } => "object",
            Node::Array { .. } => "array",
            Node::String(_) => "string",
            Node::Static(StaticNode::Bool(_)) => "boolean",
            Node::Static(StaticNode::Null) => "null",
            Node::Static(StaticNode::F64(_)) => "decimal",
            Node::Static(_) => "integer",
        }
    }

    /// The value as compact JSON text.
    #[must_use]
    pub fn to_json(self) -> String {
        let mut out = String::new();
        self.write_json(&mut out);
        out
    }

    /// Writes the value as compact JSON. With a stack of its own, not by recursion: a value
    /// may nest as deep as its line allows (100,000 levels in 200 kB), far past what a
    /// worker thread's stack holds, and one such resource must not abort the load.
    fn write_json(self, out: &mut String) {
        /// A container being written, and whether its next item is its first.
        enum Open<'a> {
            Object(Members<'a>, bool),
            Array(Elements<'a>, bool),
        }
        let mut open: Vec<Open<'a>> = Vec::new();
        let mut next = Some(self);
        loop {
            if let Some(value) = next.take() {
                match value.head() {
                    Node::String(s) => write_json_str(out, s),
                    Node::Static(StaticNode::Null) => out.push_str("null"),
                    Node::Static(StaticNode::Bool(b)) => out.push_str(if *b { "true" } else { "false" }),
                    Node::Static(StaticNode::I64(i)) => out.push_str(&i.to_string()),
                    Node::Static(StaticNode::U64(u)) => out.push_str(&u.to_string()),
                    // Debug is the shortest text that reads back as the same f64, with an
                    // exponent where Display would spell out every zero.
                    Node::Static(StaticNode::F64(f)) => out.push_str(&format!("{f:?}")),
                    Node::Object { .. } => {
                        out.push('{');
                        open.push(Open::Object(Object(value.0).iter(), true));
                    }
                    Node::Array { .. } => {
                        out.push('[');
                        open.push(Open::Array(Array(value.0).iter(), true));
                    }
                }
            }
            match open.last_mut() {
                None => return,
                Some(Open::Object(members, first)) => match members.next() {
                    Some((key, value)) => {
                        if !std::mem::take(first) {
                            out.push(',');
                        }
                        write_json_str(out, key);
                        out.push(':');
                        next = Some(value);
                    }
                    None => {
                        out.push('}');
                        open.pop();
                    }
                },
                Some(Open::Array(elements, first)) => match elements.next() {
                    Some(value) => {
                        if !std::mem::take(first) {
                            out.push(',');
                        }
                        next = Some(value);
                    }
                    None => {
                        out.push(']');
                        open.pop();
                    }
                },
            }
        }
    }
}

/// Equal JSON values: objects with the same members in any order, arrays element by element.
impl PartialEq for Json<'_> {
    fn eq(&self, other: &Self) -> bool {
        match (self.as_object(), other.as_object()) {
            (Some(a), Some(b)) => {
                a.len() == b.len() && a.iter().all(|(key, value)| b.get(key).is_some_and(|v| v == value))
            }
            (None, None) => match (self.as_array(), other.as_array()) {
                (Some(a), Some(b)) => a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x == y),
                (None, None) => self.head() == other.head(),
                _ => false,
            },
            _ => false,
        }
    }
}

/// The members or elements a container node holds (0 for anything else).
fn container_len(node: &Node<'_>) -> usize {
    match node {
        Node::Object { len, .. } | Node::Array { len, .. } => *len,
        _ => 0,
    }
}

impl<'a> Object<'a> {
    /// The number of members.
    #[must_use]
    pub fn len(self) -> usize {
        container_len(&self.0[0])
    }

    /// Whether the object has no members.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The members, key and value, in document order.
    #[inline]
    #[must_use]
    pub fn iter(self) -> Members<'a> {
        Members(&self.0[1..])
    }

    /// The value of the member `key` (the first, should a key repeat).
    #[inline]
    #[must_use]
    pub fn get(self, key: &str) -> Option<Json<'a>> {
        self.iter().find_map(|(k, value)| same_bytes(k.as_bytes(), key.as_bytes()).then_some(value))
    }

    /// Whether the object has a member `key`.
    #[must_use]
    pub fn contains_key(self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

impl<'a> Array<'a> {
    /// The number of elements.
    #[must_use]
    pub fn len(self) -> usize {
        container_len(&self.0[0])
    }

    /// Whether the array has no elements.
    #[must_use]
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The elements in document order.
    #[inline]
    #[must_use]
    pub fn iter(self) -> Elements<'a> {
        Elements(&self.0[1..])
    }
}

/// The members of an [`Object`]: `(key, value)` in document order.
#[derive(Clone, Debug)]
pub struct Members<'a>(&'a [Node<'a>]);

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Json<'a>);

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (Node::String(key), after_key) = self.0.split_first()? else { return None };
        let (value, rest) = after_key.split_at(span(after_key.first()?));
        self.0 = rest;
        Some((key, Json(value)))
    }
}

/// The elements of an [`Array`] in document order.
#[derive(Clone, Debug)]
pub struct Elements<'a>(&'a [Node<'a>]);

impl<'a> Iterator for Elements<'a> {
    type Item = Json<'a>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        let (element, rest) = self.0.split_at(span(self.0.first()?));
        self.0 = rest;
        Some(Json(element))
    }
}

/// Whether two byte strings are equal, for the short member names of FHIR JSON: compared
/// in two machine words at most, inline. Slice equality calls `memcmp`, whose call costs more
/// than comparing a name of a few bytes, and views compare names for every member they pass.
///
/// ```
/// use fhirhouse::view::json::same_bytes;
///
/// assert!(same_bytes(b"valueQuantity", b"valueQuantity"));
/// assert!(!same_bytes(b"code", b"text"));
/// assert!(!same_bytes(b"system", b"systems"));
/// ```
#[inline]
#[must_use]
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    // Two overlapping words cover the first and the last bytes: every byte for n up to twice
    // the word size.
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("eight bytes"));
    let half = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("four bytes"));
    match n {
        0..=3 => a.iter().zip(b).all(|(x, y)| x == y),
        4..=7 => half(a, 0) == half(b, 0) && half(a, n - 4) == half(b, n - 4),
        8..=16 => word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8),
        _ => a == b,
    }
}

/// Appends `s` as a JSON string literal.
fn write_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_text_of_a_value_nested_far_deeper_than_a_stack() {
        let depth = 200_000;
        let text = format!(r#"{{"a":[{}{}],"b":{{"c":[1,2.5,"x",null,true]}}}}"#, "[".repeat(depth), "]".repeat(depth));
        let mut bytes = text.clone().into_bytes();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        assert_eq!(Json::root(&tape).to_json(), text);
    }

    fn with_doc(text: &str, f: impl FnOnce(Json<'_>)) {
        let mut bytes = text.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        f(Json::root(&tape));
    }

    #[test]
    fn members_and_elements_step_over_nested_values() {
        with_doc(r#"{"a":{"x":[1,{"y":2}],"z":null},"b":[[],{},"s"],"c":"last"}"#, |doc| {
            let keys: Vec<&str> = doc.as_object().unwrap().iter().map(|(k, _)| k).collect();
            assert_eq!(keys, ["a", "b", "c"]);
            assert_eq!(doc.get_str("c"), Some("last"));
            let b = doc.get("b").unwrap().as_array().unwrap();
            assert_eq!(b.len(), 3);
            let kinds: Vec<&str> = b.iter().map(Json::kind_name).collect();
            assert_eq!(kinds, ["array", "object", "string"]);
            assert!(doc.get("a").unwrap().get("z").unwrap().is_null());
            assert_eq!(doc.get("missing"), None);
            assert_eq!(doc.get("c").unwrap().get("c"), None);
        });
    }

    #[test]
    fn equality_ignores_member_order_and_text_reads_back() {
        with_doc(r#"[{"a":1,"b":[true,"x"]},{"b":[true,"x"],"a":1},{"a":1,"b":[true]}]"#, |doc| {
            let items: Vec<Json<'_>> = doc.as_array().unwrap().iter().collect();
            assert_eq!(items[0], items[1]);
            assert_ne!(items[0], items[2]);
            assert_eq!(items[0].to_json(), r#"{"a":1,"b":[true,"x"]}"#);
        });
        with_doc(r#"{"s":"q\"\\\n\u0001","f":1.5,"e":1e300,"n":-3,"z":null}"#, |doc| {
            let text = doc.to_json();
            assert_eq!(text, r#"{"s":"q\"\\\n\u0001","f":1.5,"e":1e300,"n":-3,"z":null}"#);
            let reparsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(reparsed["s"], "q\"\\\n\u{1}");
        });
    }

    #[test]
    fn scalars_and_an_empty_tape() {
        with_doc("42", |doc| {
            assert_eq!(doc.as_static(), Some(StaticNode::I64(42)));
            assert_eq!(doc.kind_name(), "integer");
            assert!(doc.as_object().is_none());
        });
        let empty = Tape(Vec::new());
        assert!(Json::root(&empty).is_null());
    }

    proptest::proptest! {
        #[test]
        fn same_bytes_agrees_with_slice_equality(a in proptest::collection::vec(proptest::num::u8::ANY, 0..40),
                                                 b in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            proptest::prop_assert_eq!(same_bytes(&a, &b), a == b);
        }

        #[test]
        fn same_bytes_sees_a_difference_at_any_position(a in proptest::collection::vec(proptest::num::u8::ANY, 1..40),
                                                        at in proptest::num::usize::ANY,
                                                        flip in 1u8..=255) {
            // Equal strings, then the same with one byte changed: every length class and every
            // byte position a word comparison could miss.
            proptest::prop_assert!(same_bytes(&a, &a));
            let mut b = a.clone();
            let at = at % b.len();
            b[at] ^= flip;
            proptest::prop_assert!(!same_bytes(&a, &b));
        }
    }
}
