//! FHIRPath values: what an expression yields when evaluated over a parsed resource.
//!
//! Most items are nodes of the parsed document ([`Item::Node`]: a place on simd-json's tape), so
//! navigating a resource copies nothing. Only computed values (literals, constants, arithmetic, `join`,
//! boundaries) own or borrow text from elsewhere. Equality and ordering follow the FHIRPath
//! rules for the types a JSON document can carry, with typed date/time values compared by
//! instant and precision rather than as text.

use std::borrow::Cow;
use std::cmp::Ordering;

use simd_json::StaticNode;
use smallvec::SmallVec;

use crate::view::decimal::Decimal;
use crate::view::json::{Json, Object};
use crate::view::temporal::Temporal;

/// A FHIRPath collection. Most results hold zero or one item, so two live inline.
pub type Collection<'a> = SmallVec<[Item<'a>; 2]>;

/// One FHIRPath value.
#[derive(Debug, Clone)]
pub enum Item<'a> {
    /// A node of the resource being evaluated (object, string, number, boolean).
    Node(Json<'a>),
    /// A computed boolean.
    Bool(bool),
    /// A computed integer.
    Int(i64),
    /// A computed decimal, boxed: decimals are rare in evaluation and an inline `i128`
    /// would make every item, and so every collection, half again as large.
    Dec(Box<Decimal>),
    /// A computed string.
    Str(Cow<'a, str>),
    /// A date literal or constant (`@2020-01-01`, `valueDate`), kept as written.
    Date(Cow<'a, str>),
    /// A dateTime or instant literal or constant, kept as written.
    DateTime(Cow<'a, str>),
    /// A time literal or constant, kept as written.
    Time(Cow<'a, str>),
}

/// A number extracted from an item for arithmetic and comparison.
#[derive(Debug, Clone, Copy)]
pub enum Number {
    /// An integer (JSON number without fraction or exponent).
    Int(i64),
    /// A decimal.
    Dec(Decimal),
}

impl Number {
    /// The number as a decimal, for mixed integer/decimal arithmetic.
    pub fn to_decimal(self) -> Decimal {
        match self {
            Number::Int(i) => Decimal::from_i64(i),
            Number::Dec(d) => d,
        }
    }
}

impl<'a> Item<'a> {
    /// A computed decimal item.
    pub fn decimal(value: Decimal) -> Item<'a> {
        Item::Dec(Box::new(value))
    }

    /// The item as a string, if it is one (JSON string, computed string or date/time text).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Item::Node(node) => node.as_str(),
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s),
            _ => None,
        }
    }

    /// The item as a boolean, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Item::Node(node) => node.as_bool(),
            Item::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The item as a number, if it is one.
    pub fn as_number(&self) -> Option<Number> {
        match self {
            Item::Int(i) => Some(Number::Int(*i)),
            Item::Dec(d) => Some(Number::Dec(**d)),
            Item::Node(node) => json_number(&node.as_static()?),
            _ => None,
        }
    }

    /// The item as a JSON object node, if it is one.
    pub fn as_object(&self) -> Option<Object<'a>> {
        match self {
            Item::Node(node) => node.as_object(),
            _ => None,
        }
    }

    /// The typed temporal value of a date/time literal or constant.
    fn as_typed_temporal(&self) -> Option<Temporal> {
        match self {
            Item::Date(s) => Temporal::parse_date(s),
            Item::DateTime(s) => Temporal::parse_datetime(s),
            Item::Time(s) => Temporal::parse_time(s),
            _ => None,
        }
    }

    /// A short name of the item's kind, for error messages.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Item::Node(node) => node.kind_name(),
            Item::Str(_) => "string",
            Item::Bool(_) => "boolean",
            Item::Dec(_) => "decimal",
            Item::Int(_) => "integer",
            Item::Date(_) => "date",
            Item::DateTime(_) => "dateTime",
            Item::Time(_) => "time",
        }
    }

    /// [`Item::to_text`], moving a computed string out instead of copying it.
    pub fn into_text(self) -> Cow<'a, str> {
        match self {
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => s,
            other => other.to_text(),
        }
    }

    /// The item rendered as text: strings as they are, numbers and booleans in their
    /// canonical form, objects as compact JSON. Used by `join`, `&`, `toString()` and
    /// string-typed columns fed non-string values.
    pub fn to_text(&self) -> Cow<'a, str> {
        match self {
            Item::Node(node) => match (node.as_str(), node.as_static()) {
                (Some(s), _) => Cow::Borrowed(s),
                (None, Some(scalar)) => match json_number(&scalar) {
                    Some(Number::Int(i)) => Cow::Owned(i.to_string()),
                    Some(Number::Dec(d)) => Cow::Owned(d.to_string()),
                    None => match scalar {
                        StaticNode::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
                        _ => Cow::Borrowed(""),
                    },
                },
                (None, None) => Cow::Owned(node.to_json()),
            },
            Item::Str(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => s.clone(),
            Item::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Item::Int(i) => Cow::Owned(i.to_string()),
            Item::Dec(d) => Cow::Owned(d.to_string()),
        }
    }
}

/// Converts a JSON scalar to a number. simd-json hands us an `f64` for any literal with a
/// fraction or exponent, so such numbers are decimals with at least one fractional digit.
pub fn json_number(node: &StaticNode) -> Option<Number> {
    match *node {
        StaticNode::I64(i) => Some(Number::Int(i)),
        StaticNode::U64(u) => match i64::try_from(u) {
            Ok(i) => Some(Number::Int(i)),
            Err(_) => Decimal::parse(&u.to_string()).map(Number::Dec),
        },
        StaticNode::F64(f) => Decimal::from_f64(f, true).map(Number::Dec),
        _ => None,
    }
}

/// FHIRPath `=` on two single items. `None` means "empty" (incomparable date precisions).
pub fn items_equal(left: &Item<'_>, right: &Item<'_>) -> Option<bool> {
    if let Some(order) = temporal_order(left, right) {
        return order.map(|o| o == Ordering::Equal);
    }
    if let (Some(a), Some(b)) = (left.as_number(), right.as_number()) {
        return Some(a.to_decimal() == b.to_decimal());
    }
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        return Some(a == b);
    }
    if let (Some(a), Some(b)) = (left.as_bool(), right.as_bool()) {
        return Some(a == b);
    }
    match (left, right) {
        (Item::Node(a), Item::Node(b)) => Some(a == b),
        _ => Some(false),
    }
}

/// FHIRPath `~` on two single items: strings ignore case and normalize whitespace, decimals
/// compare at the precision of the less precise, objects compare member by member
/// (recursively, by `~`), and incomparable values are not equivalent.
///
/// # Errors
///
/// Objects nested deeper than [`MAX_EQUIVALENCE_DEPTH`] levels (a resource may nest as deep
/// as its line allows; the comparison recurses, and must not overflow the stack).
pub fn items_equivalent(left: &Item<'_>, right: &Item<'_>) -> Result<bool, String> {
    items_equivalent_at(left, right, 0)
}

/// FHIRPath `~` on two collections: the same number of items, each equivalent to a
/// different item of the other, in any order.
///
/// # Errors
///
/// As [`items_equivalent`].
pub fn collections_equivalent(left: &[Item<'_>], right: &[Item<'_>]) -> Result<bool, String> {
    collections_equivalent_at(left, right, 0)
}

/// How deep `~` follows objects within objects.
pub const MAX_EQUIVALENCE_DEPTH: usize = 256;

fn items_equivalent_at(left: &Item<'_>, right: &Item<'_>, depth: usize) -> Result<bool, String> {
    if let Some(order) = temporal_order(left, right) {
        return Ok(order == Some(Ordering::Equal));
    }
    if let (Some(a), Some(b)) = (left.as_number(), right.as_number()) {
        return Ok(numbers_equivalent(a.to_decimal(), b.to_decimal()));
    }
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        return Ok(a == b || normalized(a).eq(normalized(b)));
    }
    if let (Some(a), Some(b)) = (left.as_bool(), right.as_bool()) {
        return Ok(a == b);
    }
    match (left.as_object(), right.as_object()) {
        (Some(_), Some(_)) if depth >= MAX_EQUIVALENCE_DEPTH => {
            Err(format!("'~' compares objects nested at most {MAX_EQUIVALENCE_DEPTH} levels deep"))
        }
        (Some(a), Some(b)) => {
            if a.len() != b.len() {
                return Ok(false);
            }
            for (key, value) in a.iter() {
                let Some(other) = b.get(key) else { return Ok(false) };
                if !elements_equivalent(value, other, depth + 1)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        _ => Ok(false),
    }
}

fn collections_equivalent_at(left: &[Item<'_>], right: &[Item<'_>], depth: usize) -> Result<bool, String> {
    if left.len() != right.len() {
        return Ok(false);
    }
    if let ([a], [b]) = (left, right) {
        return items_equivalent_at(a, b, depth);
    }
    let mut used = vec![false; right.len()];
    for a in left {
        let mut found = None;
        for (j, b) in right.iter().enumerate() {
            if !used[j] && items_equivalent_at(a, b, depth)? {
                found = Some(j);
                break;
            }
        }
        match found {
            Some(j) => used[j] = true,
            None => return Ok(false),
        }
    }
    Ok(true)
}

/// `~` of two members of objects compared by `~`: an array is a collection, null is empty.
fn elements_equivalent(left: Json<'_>, right: Json<'_>, depth: usize) -> Result<bool, String> {
    fn items(node: Json<'_>) -> Collection<'_> {
        match node.as_array() {
            Some(elements) => elements.iter().filter(|e| !e.is_null()).map(Item::Node).collect(),
            None if node.is_null() => Collection::new(),
            None => smallvec::smallvec![Item::Node(node)],
        }
    }
    collections_equivalent_at(&items(left), &items(right), depth)
}

/// Decimals rounded to the precision of the less precise (trailing zeros do not count), then
/// compared: `1.2 ~ 1.24`.
fn numbers_equivalent(a: Decimal, b: Decimal) -> bool {
    let (a, b) = (a.normalized(), b.normalized());
    let scale = a.scale.min(b.scale);
    match (round_to(a, scale), round_to(b, scale)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The mantissa of `d` rounded (half away from zero) to `scale` fractional digits, no more
/// than it has.
fn round_to(d: Decimal, scale: u32) -> Option<i128> {
    let factor = 10i128.checked_pow(d.scale - scale)?;
    let (q, r) = (d.mantissa / factor, d.mantissa % factor);
    Some(if r.unsigned_abs() * 2 >= factor.unsigned_abs() { q + d.mantissa.signum() } else { q })
}

/// A string as `~` compares it: trimmed, each run of whitespace one space, lower case
/// (Unicode, not only ASCII).
fn normalized(s: &str) -> impl Iterator<Item = char> + '_ {
    let mut after_space = false;
    s.trim()
        .chars()
        .filter_map(move |c| {
            let space = c.is_whitespace();
            let keep = !(space && after_space);
            after_space = space;
            keep.then_some(if space { ' ' } else { c })
        })
        .flat_map(char::to_lowercase)
}

/// FHIRPath ordering (`<`, `>`, ...) of two single items.
///
/// `Ok(None)` is the empty result of comparing dates of different precision;
/// `Err` names the kinds when the items cannot be ordered at all.
pub fn items_compare(left: &Item<'_>, right: &Item<'_>) -> Result<Option<Ordering>, String> {
    if let Some(order) = temporal_order(left, right) {
        return Ok(order);
    }
    if let (Some(a), Some(b)) = (left.as_number(), right.as_number()) {
        return Ok(Some(a.to_decimal().cmp(&b.to_decimal())));
    }
    if let (Some(a), Some(b)) = (left.as_str(), right.as_str()) {
        return Ok(Some(a.cmp(b)));
    }
    Err(format!("cannot compare {} with {}", left.kind_name(), right.kind_name()))
}

/// Compares two items as dates/times when at least one is a typed date/time, or when both
/// are document strings that read as FHIR dates/times. The outer `None` means "not temporal"; the
/// inner `None` is FHIRPath's empty result for incomparable precisions.
fn temporal_order(left: &Item<'_>, right: &Item<'_>) -> Option<Option<Ordering>> {
    let (l, r) = match (left.as_typed_temporal(), right.as_typed_temporal()) {
        (Some(l), Some(r)) => (l, r),
        (Some(l), None) => (l, parse_like(&l, right.as_str()?)?),
        (None, Some(r)) => (parse_like(&r, left.as_str()?)?, r),
        // A computed string (a literal, `&`, `toString()`) is a String, compared by its
        // characters. Two document strings may be FHIR dates, which JSON writes as strings.
        (None, None) if matches!(left, Item::Str(_)) || matches!(right, Item::Str(_)) => return None,
        (None, None) => {
            let (a, b) = (left.as_str()?, right.as_str()?);
            if !looks_temporal(a) || !looks_temporal(b) {
                return None;
            }
            (Temporal::parse_any(a)?, Temporal::parse_any(b)?)
        }
    };
    Some(l.compare(&r))
}

/// Parses `text` as the same kind of temporal value as `like` (a time stays a time).
fn parse_like(like: &Temporal, text: &str) -> Option<Temporal> {
    use crate::view::temporal::TemporalKind;
    match like.kind {
        TemporalKind::Time => Temporal::parse_time(text),
        _ => Temporal::parse_datetime(text),
    }
}

/// A cheap pre-check so ordinary strings skip the temporal parser: `YYYY-` or `hh:mm`.
fn looks_temporal(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    (digits(0..4) && b.get(4) == Some(&b'-')) || (digits(0..2) && b.get(2) == Some(&b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Item<'_> {
        Item::Str(Cow::Borrowed(text))
    }

    #[test]
    fn numbers_compare_across_integer_and_decimal() {
        let two = Item::Int(2);
        let two_dec = Item::decimal(Decimal::parse("2.0").unwrap());
        assert_eq!(items_equal(&two, &two_dec), Some(true));
        assert_eq!(items_compare(&two, &Item::decimal(Decimal::parse("1.5").unwrap())), Ok(Some(Ordering::Greater)));
    }

    #[test]
    fn typed_dates_compare_by_precision() {
        let date = Item::Date(Cow::Borrowed("1978-03-12"));
        assert_eq!(items_equal(&s("1978-03-12"), &date), Some(true));
        assert_eq!(items_equal(&s("1978-03"), &date), None);
        let instant = Item::DateTime(Cow::Borrowed("2015-02-07T13:28:17.239+02:00"));
        assert_eq!(items_equal(&s("2015-02-07T11:28:17.239Z"), &instant), Some(true));
    }

    #[test]
    fn plain_strings_compare_as_text() {
        assert_eq!(items_equal(&s("official"), &s("official")), Some(true));
        assert_eq!(items_compare(&s("a"), &s("b")), Ok(Some(Ordering::Less)));
        assert_eq!(items_equivalent(&s(" Official"), &s("official ")), Ok(true));
        assert!(items_compare(&s("a"), &Item::Bool(true)).is_err());
    }
}
