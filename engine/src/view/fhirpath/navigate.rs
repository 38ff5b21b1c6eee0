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

use crate::view::json::{same_bytes, Json, Object};

use super::choice::is_choice_element;
use super::value::{Collection, Item};

/// One step of a fused path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// A child element by name; a missing name that is a choice element falls back to its
    /// typed keys (`value` finds `valueQuantity`), and a leading type name (`Patient`)
    /// matches the resource. Made by [`Step::member`].
    Member {
        /// The element name.
        name: Box<str>,
        /// Whether the name is a choice element's ([`is_choice_element`]).
        choice: bool,
    },
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
    /// A leading [`Step::Member`] of a path evaluated on the resource itself, resolved by
    /// the per-resource [`RootIndex`] prefetch (slot number).
    Root(usize),
    /// A leading [`Step::Choice`] resolved by the prefetch: the typed key's slot, then the
    /// plain element's.
    RootChoice {
        /// Slot of the typed key (`valueQuantity`).
        choice_slot: usize,
        /// Slot of the element as written (`value`), for non-choice elements.
        base_slot: usize,
        /// The type name (`Quantity`).
        type_name: Box<str>,
    },
}

impl Step {
    /// The step to the child element `name`.
    #[must_use]
    pub fn member(name: &str) -> Step {
        Step::Member { name: name.into(), choice: is_choice_element(name) }
    }
}

/// What the prefetch found for one root name: the node and, for a choice element reached
/// by its base name, the date/time type tag (see [`for_each_item`]).
pub type RootSlot<'a> = Option<(Json<'a>, Option<&'static str>)>;

/// The element names a view reads straight off the resource, resolved for all columns in
/// one pass over the resource's keys.
///
/// A wide view reads a dozen or more root elements; looking each up is a scan of the root
/// object per column. The prefetch scans the keys once, finding each needed name (and
/// choice elements `name[x]`) among the few names that share the key's first byte.
#[derive(Debug, Clone, Default)]
pub struct RootIndex {
    /// How many slots there are.
    slots: usize,
    /// For each ASCII first byte, the names that start with it (other names never match).
    by_first_byte: Vec<Vec<RootName>>,
}

/// A name the prefetch looks for, kept beside its slot so the scan reads one list.
#[derive(Debug, Clone)]
struct RootName {
    name: Box<str>,
    slot: usize,
    /// Whether a choice element `name[x]` may stand in for the name.
    choice: bool,
}

impl RootIndex {
    /// The slot for `name`, added if new. `choice` lets `name[x]` keys fill it.
    pub fn slot(&mut self, name: &str, choice: bool) -> usize {
        let Some(&first) = name.as_bytes().first().filter(|b| b.is_ascii()) else {
            // No key can match: a slot that stays empty.
            self.slots += 1;
            return self.slots - 1;
        };
        if self.by_first_byte.is_empty() {
            self.by_first_byte = vec![Vec::new(); 128];
        }
        let names = &mut self.by_first_byte[usize::from(first)];
        if let Some(known) = names.iter().find(|n| *n.name == *name && n.choice == choice) {
            return known.slot;
        }
        names.push(RootName { name: name.into(), slot: self.slots, choice });
        self.slots += 1;
        self.slots - 1
    }

    /// Whether any path uses the index.
    pub fn is_empty(&self) -> bool {
        self.slots == 0
    }

    /// Fills `out` with one entry per slot, read from the resource's keys. (Filled in place:
    /// returning the inline array would copy it.)
    pub fn prefetch<'a>(&self, resource: Json<'a>, out: &mut RootSlots<'a>) {
        out.clear();
        if self.slots == 0 {
            return;
        }
        const EMPTY: [RootSlot<'static>; 32] = [None; 32];
        match EMPTY.get(..self.slots) {
            Some(empty) => out.extend_from_slice(empty),
            None => out.resize(self.slots, None),
        }
        let Some(obj) = resource.as_object() else { return };
        for (key, node) in obj.iter() {
            let bytes = key.as_bytes();
            let Some(names) = bytes.first().and_then(|&b| self.by_first_byte.get(usize::from(b))) else {
                continue;
            };
            for RootName { name, slot, choice } in names {
                let name = name.as_bytes();
                if bytes.len() == name.len() {
                    if same_bytes(bytes, name) {
                        out[*slot] = Some((node, None));
                    }
                } else if *choice && out[*slot].is_none() {
                    if let Some(suffix) = choice_suffix(key, name) {
                        out[*slot] = Some((node, temporal_tag(suffix)));
                    }
                }
            }
        }
    }
}

/// A resource's prefetched root elements; inline for views reading up to 32 of them.
pub type RootSlots<'a> = smallvec::SmallVec<[RootSlot<'a>; 32]>;

/// A fused path: steps applied, in order, to each input item.
#[derive(Debug, Clone, PartialEq)]
pub struct PathOp {
    /// The steps, at least one.
    pub steps: Vec<Step>,
}

impl PathOp {
    /// Walks the path from every item of `input`, pushing what the last step reaches.
    /// `root` is the resource's prefetch, read by [`Step::Root`] steps.
    pub fn walk<'a>(&'a self, input: &[Item<'a>], root: &[RootSlot<'a>], out: &mut Collection<'a>) {
        if let [item] = input {
            if let Some(found) = self.walk_one(item, root) {
                out.extend(found);
                return;
            }
        }
        self.walk_all(input, root, out);
    }

    /// The general walk: depth first over every item, with `Nth` bookkeeping.
    fn walk_all<'a>(&'a self, input: &[Item<'a>], root: &[RootSlot<'a>], out: &mut Collection<'a>) {
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
            if self.step(0, item, root, seen, out).is_break() {
                break;
            }
        }
    }

    /// The common case, without recursion or bookkeeping: every step meets at most one item
    /// (a single element, or an array followed by `first()`). `None` when that does not hold
    /// and the general walk must run; `Some(None)` when the path reaches nothing.
    pub fn walk_one<'a>(&'a self, item: &Item<'a>, root: &[RootSlot<'a>]) -> Option<Option<Item<'a>>> {
        // Where the walk stands: the focus until a step moves off it (`None` when the focus
        // is a computed item, which has no members), then a node (never an array or a JSON
        // null) with its date/time tag. Items are made only at the end.
        let mut node: Option<Json<'a>> = match item {
            Item::Node(node) => Some(*node),
            _ => None,
        };
        let mut tag: Option<&str> = None;
        let mut moved = false;
        let mut rest = &self.steps[..];
        while let [step, after @ ..] = rest {
            rest = after;
            let (next, next_tag): (Json<'a>, Option<&str>) = match step {
                Step::Nth(0) => continue,
                Step::Nth(_) => return None,
                Step::Root(slot) => match root.get(*slot).copied().flatten() {
                    Some(found) => found,
                    None => return Some(None),
                },
                Step::Member { name, choice } => {
                    let Some(obj) = node.and_then(Json::as_object) else { return Some(None) };
                    match lookup(obj, name, *choice) {
                        Lookup::Exact(found) => (found, None),
                        Lookup::Choice(found, suffix) => (found, temporal_tag(suffix)),
                        Lookup::Missing if is_resource_type(obj, name) => continue,
                        Lookup::Missing => return Some(None),
                    }
                }
                Step::Choice { base, choice_key, type_name } => {
                    let Some(obj) = node.and_then(Json::as_object) else { return Some(None) };
                    match obj.get(choice_key.as_ref()) {
                        Some(found) => (found, Some(type_name.as_ref())),
                        // A plain element filtered by type: the general walk does that.
                        None if obj.contains_key(base.as_ref()) => return None,
                        None => return Some(None),
                    }
                }
                Step::RootChoice { choice_slot, base_slot, type_name } => {
                    match (root.get(*choice_slot).copied().flatten(), root.get(*base_slot).copied().flatten()) {
                        (Some((found, _)), _) => (found, Some(type_name.as_ref())),
                        (None, Some(_)) => return None,
                        (None, None) => return Some(None),
                    }
                }
            };
            let single = if let Some(elements) = next.as_array() {
                // The first element that is not null; a second one is fine only when the
                // next step takes the first.
                let takes_first = matches!(after.first(), Some(Step::Nth(0)));
                let mut first = None;
                for element in elements.iter() {
                    if element.is_null() {
                        continue;
                    }
                    if first.is_some() {
                        return None;
                    }
                    first = Some(element);
                    if takes_first {
                        break;
                    }
                }
                first
            } else {
                (!next.is_null()).then_some(next)
            };
            let Some(single) = single else { return Some(None) };
            (node, tag, moved) = (Some(single), next_tag, true);
        }
        Some(match node {
            Some(node) if moved => item_of(node, tag),
            _ => Some(item.clone()),
        })
    }

    /// Applies step `i` to `item`. `Break` means an `Nth` step has its item: nothing more
    /// is needed from any earlier step.
    fn step<'a>(
        &'a self,
        i: usize,
        item: &Item<'a>,
        root: &[RootSlot<'a>],
        seen: &mut [usize],
        out: &mut Collection<'a>,
    ) -> ControlFlow<()> {
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
                let _ = self.step(i + 1, item, root, seen, out);
                ControlFlow::Break(())
            }
            Step::Root(slot) => match root.get(*slot).copied().flatten() {
                Some((node, tag)) => self.each(i + 1, node, tag, root, seen, out),
                None => ControlFlow::Continue(()),
            },
            Step::RootChoice { choice_slot, base_slot, type_name } => {
                let typed = root.get(*choice_slot).copied().flatten().map(|(node, _)| node);
                let plain = || root.get(*base_slot).copied().flatten().map(|(node, _)| node);
                self.of_type(i, typed, plain, type_name, root, seen, out)
            }
            Step::Member { name, choice } => {
                let Some(obj) = item.as_object() else { return ControlFlow::Continue(()) };
                match lookup(obj, name, *choice) {
                    Lookup::Exact(node) => self.each(i + 1, node, None, root, seen, out),
                    Lookup::Choice(node, suffix) => self.each(i + 1, node, temporal_tag(suffix), root, seen, out),
                    Lookup::Missing if is_resource_type_step(item, name) => self.step(i + 1, item, root, seen, out),
                    Lookup::Missing => ControlFlow::Continue(()),
                }
            }
            Step::Choice { base, choice_key, type_name } => {
                let Some(obj) = item.as_object() else { return ControlFlow::Continue(()) };
                self.of_type(i, obj.get(choice_key.as_ref()), || obj.get(base.as_ref()), type_name, root, seen, out)
            }
        }
    }

    /// `base.ofType(T)` at step `i`: the typed choice key's node when present, else the
    /// plain element's items of type `T` (looked up only when needed).
    #[allow(clippy::too_many_arguments)]
    fn of_type<'a>(
        &'a self,
        i: usize,
        typed: Option<Json<'a>>,
        plain: impl FnOnce() -> Option<Json<'a>>,
        type_name: &str,
        root: &[RootSlot<'a>],
        seen: &mut [usize],
        out: &mut Collection<'a>,
    ) -> ControlFlow<()> {
        if let Some(node) = typed {
            return self.each(i + 1, node, Some(type_name), root, seen, out);
        }
        let Some(node) = plain() else { return ControlFlow::Continue(()) };
        for_each_item(node, None, |child| {
            if is_type(&child, type_name) {
                self.step(i + 1, &child, root, seen, out)
            } else {
                ControlFlow::Continue(())
            }
        })
    }

    fn each<'a>(
        &'a self,
        i: usize,
        node: Json<'a>,
        type_name: Option<&str>,
        root: &[RootSlot<'a>],
        seen: &mut [usize],
        out: &mut Collection<'a>,
    ) -> ControlFlow<()> {
        for_each_item(node, type_name, |child| self.step(i, &child, root, seen, out))
    }
}

/// Calls `f` with each FHIRPath item of a JSON element: the elements of an array, or the
/// node itself; JSON nulls are no item. Date/time strings reached through a typed choice
/// element are tagged so boundaries and comparisons know their FHIR type.
pub fn for_each_item<'a>(
    node: Json<'a>,
    type_name: Option<&str>,
    mut f: impl FnMut(Item<'a>) -> ControlFlow<()>,
) -> ControlFlow<()> {
    match node.as_array() {
        Some(items) => {
            for item in items.iter().filter_map(|n| item_of(n, type_name)) {
                f(item)?;
            }
            ControlFlow::Continue(())
        }
        None => item_of(node, type_name).map_or(ControlFlow::Continue(()), f),
    }
}

/// The item of one JSON element that is not an array: none for JSON null, a tagged
/// date/time for a string of a date/time choice type, else the node.
#[inline]
fn item_of<'a>(node: Json<'a>, type_name: Option<&str>) -> Option<Item<'a>> {
    if node.is_null() {
        return None;
    }
    Some(match (node.as_str(), type_name) {
        (Some(s), Some("dateTime" | "instant")) => Item::DateTime(Cow::Borrowed(s)),
        (Some(s), Some("date")) => Item::Date(Cow::Borrowed(s)),
        (Some(s), Some("time")) => Item::Time(Cow::Borrowed(s)),
        _ => Item::Node(node),
    })
}

/// Whether `name` is the resource type of `item` (FHIRPath allows `Patient.name`).
fn is_resource_type_step(item: &Item<'_>, name: &str) -> bool {
    item.as_object().is_some_and(|obj| is_resource_type(obj, name))
}

/// Whether `name` is the resource type of `obj`.
fn is_resource_type(obj: Object<'_>, name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_uppercase()) && obj.get("resourceType").and_then(Json::as_str) == Some(name)
}

enum Lookup<'a> {
    Exact(Json<'a>),
    /// A choice element `name[x]`, with its type suffix (`Quantity`, `DateTime`).
    Choice(Json<'a>, &'a str),
    Missing,
}

/// Finds `name`, or failing that (when `choice`) the choice element `name[x]`, in one pass
/// over the keys. (Always inlined into its two callers: a call costs a fifth of a typical
/// lookup.)
#[inline(always)]
fn lookup<'a>(obj: Object<'a>, name: &str, may_be_choice: bool) -> Lookup<'a> {
    let name = name.as_bytes();
    let mut choice = Lookup::Missing;
    for (key, node) in obj.iter() {
        let bytes = key.as_bytes();
        if bytes.len() == name.len() {
            if same_bytes(bytes, name) {
                return Lookup::Exact(node);
            }
        } else if may_be_choice && matches!(choice, Lookup::Missing) {
            if let Some(suffix) = choice_suffix(key, name) {
                choice = Lookup::Choice(node, suffix);
            }
        }
    }
    choice
}

/// The type suffix of `key` when it is the choice element `name[x]` (`valueQuantity` for
/// `value`: `Quantity`), for a key longer than `name`. Inlined into the member lookup and
/// the root prefetch, which test every key they pass.
#[inline(always)]
fn choice_suffix<'k>(key: &'k str, name: &[u8]) -> Option<&'k str> {
    let bytes = key.as_bytes();
    // A choice key continues with an upper-case type name: test that byte first, it rules
    // out nearly every other key without comparing.
    let is_choice =
        bytes.len() > name.len() && bytes[name.len()].is_ascii_uppercase() && same_bytes(&bytes[..name.len()], name);
    let suffix = is_choice.then(|| &key[name.len()..])?;
    CHOICE_TYPE_SUFFIXES.contains(&suffix).then_some(suffix)
}

/// The tag [`for_each_item`] needs for a choice element's type suffix: only dates and times
/// are told apart from plain strings.
fn temporal_tag(suffix: &str) -> Option<&'static str> {
    match suffix {
        "DateTime" => Some("dateTime"),
        "Instant" => Some("instant"),
        "Date" => Some("date"),
        "Time" => Some("time"),
        _ => None,
    }
}

/// FHIR data types that can follow a choice element's base name (`value[x]` → `valueCoding`).
const CHOICE_TYPE_SUFFIXES: &[&str] = &[
    "Base64Binary",
    "Boolean",
    "Canonical",
    "Code",
    "Date",
    "DateTime",
    "Decimal",
    "Id",
    "Instant",
    "Integer",
    "Integer64",
    "Markdown",
    "Oid",
    "PositiveInt",
    "String",
    "Time",
    "UnsignedInt",
    "Uri",
    "Url",
    "Uuid",
    "Address",
    "Age",
    "Annotation",
    "Attachment",
    "CodeableConcept",
    "CodeableReference",
    "Coding",
    "ContactPoint",
    "Count",
    "Distance",
    "Duration",
    "HumanName",
    "Identifier",
    "Money",
    "Period",
    "Quantity",
    "Range",
    "Ratio",
    "RatioRange",
    "Reference",
    "SampledData",
    "Signature",
    "Timing",
    "ContactDetail",
    "Contributor",
    "DataRequirement",
    "Expression",
    "ParameterDefinition",
    "RelatedArtifact",
    "TriggerDefinition",
    "UsageContext",
    "Dosage",
    "Meta",
];

/// FHIRPath `is`/`ofType` against the types a JSON document can reveal. Complex types cannot
/// be told apart in JSON, so any object matches them; resources match by `resourceType`.
pub fn is_type(item: &Item<'_>, type_name: &str) -> bool {
    use super::value::Number;
    use crate::view::temporal::Temporal;
    match type_name {
        "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid" | "markdown" | "base64Binary"
        | "xhtml" | "String" => {
            matches!(item, Item::Str(_)) || matches!(item, Item::Node(node) if node.as_str().is_some())
        }
        "boolean" | "Boolean" => item.as_bool().is_some(),
        "integer" | "positiveInt" | "unsignedInt" | "integer64" | "Integer" => {
            matches!(item.as_number(), Some(Number::Int(_)))
        }
        "decimal" | "Decimal" => item.as_number().is_some(),
        "date" | "Date" => {
            matches!(item, Item::Date(_)) || item.as_str().is_some_and(|s| Temporal::parse_date(s).is_some())
        }
        "dateTime" | "instant" | "DateTime" => {
            matches!(item, Item::DateTime(_))
                || matches!(item, Item::Node(node) if node.as_str().is_some_and(|s| Temporal::parse_datetime(s).is_some()))
        }
        "time" | "Time" => {
            matches!(item, Item::Time(_))
                || matches!(item, Item::Node(node) if node.as_str().is_some_and(|s| Temporal::parse_time(s).is_some()))
        }
        t if t.starts_with(|c: char| c.is_ascii_uppercase()) => match item.as_object() {
            Some(obj) => match obj.get("resourceType").and_then(Json::as_str) {
                Some(rt) => rt == t || t == "Resource" || t == "DomainResource",
                None => true,
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
        let tape = simd_json::to_tape(&mut bytes).unwrap();
        let path = PathOp { steps };
        let mut out = Collection::new();
        path.walk(&[Item::Node(Json::root(&tape))], &[], &mut out);
        out.iter().map(|i| i.to_text().into_owned()).collect()
    }

    fn member(n: &str) -> Step {
        Step::member(n)
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
    fn the_single_item_walk_agrees_with_the_general_one() {
        let docs = [
            DOC,
            r#"{"code":{"coding":[{"system":"s1","code":"a"},{"system":"s2","code":"b"}],"text":"t"},"valueQuantity":{"value":1.5}}"#,
            r#"{"code":{"coding":[null,{"code":"c"}]},"value":"plain","category":[{"coding":[{"code":"x"}]},{"coding":[{"code":"y"}]}]}"#,
            r#"{"code":{"coding":{"code":"not-an-array"}},"name":[]}"#,
        ];
        let m = Step::member;
        let choice = |base: &str, t: &str| Step::Choice {
            base: base.into(),
            choice_key: format!("{base}{}{}", t[..1].to_uppercase(), &t[1..]).into(),
            type_name: t.into(),
        };
        let paths = [
            vec![m("code"), m("coding"), Step::Nth(0), m("system")],
            vec![m("code"), m("coding"), m("code")],
            vec![m("code"), m("coding"), Step::Nth(1), m("code")],
            vec![m("code"), m("text")],
            vec![m("category"), m("coding"), m("code"), Step::Nth(0)],
            vec![m("category"), Step::Nth(0), m("coding"), m("code")],
            vec![choice("value", "Quantity"), m("value")],
            vec![choice("value", "string")],
            vec![m("name"), m("given")],
            vec![m("name"), Step::Nth(0), m("given"), Step::Nth(1)],
            vec![m("deceased")],
            vec![m("Patient"), m("name"), m("family")],
        ];
        for doc in docs {
            let mut bytes = doc.as_bytes().to_vec();
            let tape = simd_json::to_tape(&mut bytes).unwrap();
            let doc = Json::root(&tape);
            for steps in &paths {
                let path = PathOp { steps: steps.clone() };
                let (mut fast, mut general) = (Collection::new(), Collection::new());
                path.walk(&[Item::Node(doc)], &[], &mut fast);
                path.walk_all(&[Item::Node(doc)], &[], &mut general);
                let text = |c: &Collection<'_>| c.iter().map(|i| i.to_text().into_owned()).collect::<Vec<_>>();
                assert_eq!(text(&fast), text(&general), "{steps:?}");
            }
        }
    }

    #[test]
    fn choices_and_type_names() {
        assert_eq!(walk(DOC, vec![member("deceased")]), ["2020-01-01"]);
        assert_eq!(walk(DOC, vec![member("Patient"), member("name"), member("family")]), ["f"]);
        let choice = |t: &str| Step::Choice {
            base: "deceased".into(),
            choice_key: format!("deceased{}", &(t[..1].to_uppercase() + &t[1..])).into(),
            type_name: t.into(),
        };
        assert_eq!(walk(DOC, vec![choice("dateTime")]), ["2020-01-01"]);
        assert!(walk(DOC, vec![choice("boolean")]).is_empty());
    }
}
