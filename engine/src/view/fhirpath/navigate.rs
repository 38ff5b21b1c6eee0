//! Navigation: fused chains of member steps, walked depth first without building the
//! intermediate collections.
//!
//! Most view columns are plain paths such as `code.coding.first().system` or
//! `value.ofType(Quantity).unit`. The compiler fuses every such chain into one [`PathOp`];
//! walking it visits the document depth first and pushes only the final items. `first()`
//! and `[n]` inside a chain stop the walk as soon as their item is found, so they cost
//! nothing for the items they skip. This is where a view spends most of its time.

use std::borrow::Cow;
use std::ops::ControlFlow;

use simd_json::{BorrowedValue as Json, StaticNode};

use super::value::{Collection, Item};

/// One step of a fused path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A child element by name; a missing name falls back to a choice element (`value`
    /// finds `valueQuantity`), and a leading type name (`Patient`) matches the resource.
    Member(Box<str>),
    /// `base.ofType(T)` on a choice element: the JSON key `choice_key` (`valueQuantity`),
    /// or `base` itself filtered by type when the element is not a choice.
    Choice {
        /// The element name as written (`value`).
        base: Box<str>,
        /// The JSON key of the typed choice (`valueQuantity`).
        choice_key: Box<str>,
        /// The type name (`Quantity`).
        type_name: Box<str>,
    },
    /// `[n]` on everything before it: the n-th item (so `first()` is `[0]`).
    Nth(usize),
}

/// A fused path: steps applied, in order, to each input item.
#[derive(Debug, Clone, PartialEq)]
pub struct PathOp {
    /// The steps, at least one.
    pub steps: Vec<Step>,
}

impl PathOp {
    /// Walks the path from every item of `input`, pushing what the last step reaches.
    pub fn walk<'a>(&'a self, input: &[Item<'a>], out: &mut Collection<'a>) {
        // Items seen so far by each `Nth` step, over the whole input in document order.
        let mut seen = [0usize; 8];
        let mut seen_heap;
        let seen: &mut [usize] = if self.steps.len() <= seen.len() {
            &mut seen[..]
        } else {
            seen_heap = vec![0; self.steps.len()];
            &mut seen_heap
        };
        for item in input {
            if self.step(0, item, seen, out).is_break() {
                break;
            }
        }
    }

    /// Applies step `i` to `item`. `Break` means an `Nth` step has its item: nothing more
    /// is needed from any earlier step.
    fn step<'a>(&'a self, i: usize, item: &Item<'a>, seen: &mut [usize], out: &mut Collection<'a>) -> ControlFlow<()> {
        let Some(step) = self.steps.get(i) else {
            out.push(item.clone());
            return ControlFlow::Continue(());
        };
        match step {
            Step::Nth(n) => {
                seen[i] += 1;
                if seen[i] - 1 < *n {
                    return ControlFlow::Continue(());
                }
                // The wanted item: finish the rest of the path from it, then stop.
                let _ = self.step(i + 1, item, seen, out);
                ControlFlow::Break(())
            }
            Step::Member(name) => {
                let Some(obj) = item.as_object() else { return ControlFlow::Continue(()) };
                if let Some(node) = obj.get(name.as_ref()) {
                    return self.each(i + 1, node, None, seen, out);
                }
                if is_resource_type_step(item, name) {
                    return self.step(i + 1, item, seen, out);
                }
                match find_choice(obj, name) {
                    Some((node, type_name)) => self.each(i + 1, node, Some(&type_name), seen, out),
                    None => ControlFlow::Continue(()),
                }
            }
            Step::Choice { base, choice_key, type_name } => {
                let Some(obj) = item.as_object() else { return ControlFlow::Continue(()) };
                if let Some(node) = obj.get(choice_key.as_ref()) {
                    return self.each(i + 1, node, Some(type_name), seen, out);
                }
                let Some(node) = obj.get(base.as_ref()) else { return ControlFlow::Continue(()) };
                for_each_item(node, None, |child| if is_type(&child, type_name) { self.step(i + 1, &child, seen, out) } else { ControlFlow::Continue(()) })
            }
        }
    }

    fn each<'a>(&'a self, i: usize, node: &'a Json<'a>, type_name: Option<&str>, seen: &mut [usize], out: &mut Collection<'a>) -> ControlFlow<()> {
        for_each_item(node, type_name, |child| self.step(i, &child, seen, out))
    }
}

/// Calls `f` with each FHIRPath item of a JSON element: the elements of an array, or the
/// node itself; JSON nulls are no item. Date/time strings reached through a typed choice
/// element are tagged so boundaries and comparisons know their FHIR type.
pub fn for_each_item<'a>(node: &'a Json<'a>, type_name: Option<&str>, mut f: impl FnMut(Item<'a>) -> ControlFlow<()>) -> ControlFlow<()> {
    let tag = |n: &'a Json<'a>| -> Option<Item<'a>> {
        match n {
            Json::Static(StaticNode::Null) => None,
            Json::String(s) => Some(match type_name {
                Some("dateTime" | "instant") => Item::DateTime(Cow::Borrowed(s)),
                Some("date") => Item::Date(Cow::Borrowed(s)),
                Some("time") => Item::Time(Cow::Borrowed(s)),
                _ => Item::Node(n),
            }),
            _ => Some(Item::Node(n)),
        }
    };
    match node {
        Json::Array(items) => {
            for item in items.iter().filter_map(tag) {
                f(item)?;
            }
            ControlFlow::Continue(())
        }
        other => tag(other).map_or(ControlFlow::Continue(()), f),
    }
}

/// Whether `name` is the resource type of `item` (FHIRPath allows `Patient.name`).
fn is_resource_type_step(item: &Item<'_>, name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase())
        && matches!(item.as_object().and_then(|o| o.get("resourceType")), Some(Json::String(rt)) if rt == name)
}

/// The choice element `name[x]` of an object, with its type (`valueQuantity` → `Quantity`,
/// `effectiveDateTime` → `dateTime`), if present.
fn find_choice<'a>(obj: &'a simd_json::value::borrowed::Object<'a>, name: &str) -> Option<(&'a Json<'a>, String)> {
    obj.iter().find_map(|(key, node)| {
        let suffix = key.strip_prefix(name)?;
        if !suffix.starts_with(|c: char| c.is_ascii_uppercase()) || !CHOICE_TYPE_SUFFIXES.contains(&suffix) {
            return None;
        }
        // Primitive type names start lower case (`dateTime`), complex ones upper (`Quantity`).
        let primitive = suffix.len() > 1 && PRIMITIVE_SUFFIXES.contains(&suffix);
        let type_name = if primitive { suffix[..1].to_ascii_lowercase() + &suffix[1..] } else { suffix.to_string() };
        Some((node, type_name))
    })
}

const PRIMITIVE_SUFFIXES: &[&str] = &[
    "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant", "Integer", "Integer64", "Markdown",
    "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid",
];

/// FHIR data types that can follow a choice element's base name (`value[x]` → `valueCoding`).
const CHOICE_TYPE_SUFFIXES: &[&str] = &[
    "Base64Binary", "Boolean", "Canonical", "Code", "Date", "DateTime", "Decimal", "Id", "Instant", "Integer", "Integer64", "Markdown",
    "Oid", "PositiveInt", "String", "Time", "UnsignedInt", "Uri", "Url", "Uuid", "Address", "Age", "Annotation", "Attachment",
    "CodeableConcept", "CodeableReference", "Coding", "ContactPoint", "Count", "Distance", "Duration", "HumanName", "Identifier",
    "Money", "Period", "Quantity", "Range", "Ratio", "RatioRange", "Reference", "SampledData", "Signature", "Timing",
    "ContactDetail", "Contributor", "DataRequirement", "Expression", "ParameterDefinition", "RelatedArtifact",
    "TriggerDefinition", "UsageContext", "Dosage", "Meta",
];

/// FHIRPath `is`/`ofType` against the types a JSON document can reveal. Complex types cannot
/// be told apart in JSON, so any object matches them; resources match by `resourceType`.
pub fn is_type(item: &Item<'_>, type_name: &str) -> bool {
    use super::value::Number;
    use crate::view::temporal::Temporal;
    match type_name {
        "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid" | "markdown" | "base64Binary" | "xhtml" | "String" => {
            matches!(item, Item::Node(Json::String(_)) | Item::Str(_))
        }
        "boolean" | "Boolean" => item.as_bool().is_some(),
        "integer" | "positiveInt" | "unsignedInt" | "integer64" | "Integer" => matches!(item.as_number(), Some(Number::Int(_))),
        "decimal" | "Decimal" => item.as_number().is_some(),
        "date" | "Date" => matches!(item, Item::Date(_)) || item.as_str().is_some_and(|s| Temporal::parse_date(s).is_some()),
        "dateTime" | "instant" | "DateTime" => {
            matches!(item, Item::DateTime(_)) || matches!(item, Item::Node(Json::String(s)) if Temporal::parse_datetime(s).is_some())
        }
        "time" | "Time" => matches!(item, Item::Time(_)) || matches!(item, Item::Node(Json::String(s)) if Temporal::parse_time(s).is_some()),
        t if t.starts_with(|c: char| c.is_ascii_uppercase()) => match item.as_object() {
            Some(obj) => match obj.get("resourceType") {
                Some(Json::String(rt)) => rt == t || t == "Resource" || t == "DomainResource",
                _ => true,
            },
            None => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(doc: &str, steps: Vec<Step>) -> Vec<String> {
        let mut bytes = doc.as_bytes().to_vec();
        let doc = simd_json::to_borrowed_value(&mut bytes).unwrap();
        let path = PathOp { steps };
        let mut out = Collection::new();
        path.walk(&[Item::Node(&doc)], &mut out);
        out.iter().map(|i| i.to_text().into_owned()).collect()
    }

    fn member(n: &str) -> Step {
        Step::Member(n.into())
    }

    const DOC: &str = r#"{"resourceType":"Patient","name":[{"given":["a","b"]},{"given":["c"]},{"family":"f"}],"deceasedDateTime":"2020-01-01"}"#;

    #[test]
    fn nth_stops_at_its_item_in_document_order() {
        assert_eq!(walk(DOC, vec![member("name"), member("given")]), ["a", "b", "c"]);
        assert_eq!(walk(DOC, vec![member("name"), member("given"), Step::Nth(0)]), ["a"]);
        assert_eq!(walk(DOC, vec![member("name"), member("given"), Step::Nth(2)]), ["c"]);
        assert_eq!(walk(DOC, vec![member("name"), Step::Nth(1), member("given")]), ["c"]);
        assert!(walk(DOC, vec![member("name"), Step::Nth(7)]).is_empty());
        assert_eq!(walk(DOC, vec![member("name"), Step::Nth(0), member("given"), Step::Nth(1)]), ["b"]);
    }

    #[test]
    fn choices_and_type_names() {
        assert_eq!(walk(DOC, vec![member("deceased")]), ["2020-01-01"]);
        assert_eq!(walk(DOC, vec![member("Patient"), member("name"), member("family")]), ["f"]);
        let choice = |t: &str| Step::Choice { base: "deceased".into(), choice_key: format!("deceased{}", &(t[..1].to_uppercase() + &t[1..])).into(), type_name: t.into() };
        assert_eq!(walk(DOC, vec![choice("dateTime")]), ["2020-01-01"]);
        assert!(walk(DOC, vec![choice("boolean")]).is_empty());
    }
}
