//! Evaluates compiled FHIRPath ([`Op`]) over a parsed document (simd-json's tape).
//!
//! Every op takes the input collection (the focus, `$this`) and returns a new collection.
//! Navigation borrows nodes from the document; nothing is re-parsed and no name is looked up
//! beyond the JSON keys themselves.

use std::borrow::Cow;
use std::cmp::Ordering;

use crate::view::json::Json;
use smallvec::smallvec;

use super::ast::BinaryOp;
use super::compile::{Expression, Func, Lit, Op};
use super::navigate::{for_each_item, is_type, RootSlot};
use super::single::at;
use super::value::{collections_equivalent, items_compare, items_equal, Collection, Item, Number};
use crate::view::decimal::Decimal;
use crate::view::temporal::Temporal;

/// What an evaluation can see besides its input: the resource, `%rowIndex`, and the
/// resource's root prefetch (see [`RootIndex`](super::navigate::RootIndex)).
#[derive(Debug, Clone, Copy)]
pub struct EvalContext<'c, 'a> {
    /// The resource being evaluated (`%resource`).
    pub resource: Json<'a>,
    /// The index of the current `forEach`/`forEachOrNull`/`repeat` item (`%rowIndex`).
    pub row_index: i64,
    /// The prefetched root elements, one per slot of the view's root index.
    pub root: &'c [RootSlot<'a>],
}

impl<'c, 'a> EvalContext<'c, 'a> {
    /// A context for evaluating expressions that were not bound to a root index.
    pub fn new(resource: Json<'a>, row_index: i64) -> Self {
        EvalContext { resource, row_index, root: &[] }
    }
}

/// A FHIRPath run-time error, e.g. an operator applied to a collection of several items.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct EvalError(pub String);

type EvalResult<'a> = Result<Collection<'a>, EvalError>;

impl Expression {
    /// Evaluates the expression with `input` as its focus.
    pub fn evaluate<'a>(&'a self, ctx: &EvalContext<'_, 'a>, input: &[Item<'a>]) -> EvalResult<'a> {
        eval(&self.op, ctx, input).map_err(|e| self.locate(e))
    }

    /// An evaluation error with the expression it happened in.
    pub(super) fn locate(&self, e: EvalError) -> EvalError {
        EvalError(format!("{} (in '{}')", e.0, self.source))
    }
}

/// The general evaluator: `op` over the collection `input`.
pub(super) fn eval<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, input: &[Item<'a>]) -> EvalResult<'a> {
    Ok(match op {
        Op::Lit(lit) => smallvec![lit_item(lit)],
        Op::Empty => Collection::new(),
        Op::This => input.iter().cloned().collect(),
        Op::RowIndex => smallvec![Item::Int(ctx.row_index)],
        Op::Resource => smallvec![Item::Node(ctx.resource)],
        Op::Path(focus, path) => {
            let mut out = Collection::new();
            match focus {
                Some(focus) => path.walk(&eval(focus, ctx, input)?, ctx.root, &mut out),
                None => path.walk(input, ctx.root, &mut out),
            }
            out
        }
        Op::Index(focus, index) => {
            let base = eval(focus, ctx, input)?;
            let index = eval(index, ctx, input)?;
            match singleton(&index, "indexer")? {
                None => Collection::new(),
                Some(i) => match i.as_number() {
                    Some(Number::Int(n)) if n >= 0 => base.into_iter().nth(n as usize).into_iter().collect(),
                    Some(Number::Int(_)) => Collection::new(),
                    _ => return Err(EvalError(format!("an index must be an integer, found {}", i.kind_name()))),
                },
            }
        }
        Op::Call(Some(focus), func, args) => call(func, &eval(focus, ctx, input)?, args, ctx, input)?,
        Op::Call(None, func, args) => call(func, input, args, ctx, input)?,
        Op::Binary(op, l, r) => binary(*op, eval(l, ctx, input)?, eval(r, ctx, input)?)?,
        Op::Negate(inner) => {
            let v = eval(inner, ctx, input)?;
            match singleton(&v, "unary -")?.map(|i| i.as_number()) {
                None => Collection::new(),
                Some(Some(Number::Int(i))) => smallvec![Item::Int(i.checked_neg().ok_or_else(overflow)?)],
                Some(Some(Number::Dec(d))) => {
                    smallvec![Item::decimal(d.checked_neg().ok_or_else(overflow)?)]
                }
                Some(None) => return Err(EvalError("unary - needs a number".into())),
            }
        }
        Op::Is(inner, t, typed) => {
            let v = eval(inner, ctx, input)?;
            match (singleton(&v, "is")?, typed) {
                (None, _) => Collection::new(),
                (Some(_), Some(typed)) => smallvec![Item::Bool(!eval(typed, ctx, input)?.is_empty())],
                (Some(item), None) => smallvec![Item::Bool(type_matches(item, t))],
            }
        }
        Op::As(inner, t) => eval(inner, ctx, input)?.into_iter().filter(|i| type_matches(i, t)).collect(),
    })
}

/// `is`/`as`/`ofType` of a computed or document item: the document's type test, except
/// that a computed integer is no decimal (FHIRPath's Integer is not a subtype of Decimal;
/// a document number may be a FHIR decimal written `5`, so those stay both) and a computed
/// string (a literal, `&`, `toString()`) is no date or time.
fn type_matches(item: &Item<'_>, type_name: &str) -> bool {
    match (item, type_name) {
        (Item::Int(_), "decimal" | "Decimal") => false,
        (Item::Str(_), "date" | "Date" | "dateTime" | "DateTime" | "instant" | "time" | "Time") => false,
        _ => is_type(item, type_name),
    }
}

pub(super) fn lit_item(lit: &Lit) -> Item<'_> {
    match lit {
        Lit::Bool(b) => Item::Bool(*b),
        Lit::Int(i) => Item::Int(*i),
        Lit::Dec(d) => Item::decimal(*d),
        Lit::Str(s) => Item::Str(Cow::Borrowed(s)),
        Lit::Date(s) => Item::Date(Cow::Borrowed(s)),
        Lit::DateTime(s) => Item::DateTime(Cow::Borrowed(s)),
        Lit::Time(s) => Item::Time(Cow::Borrowed(s)),
    }
}

fn overflow() -> EvalError {
    EvalError("arithmetic overflow".into())
}

/// The single item of a collection; several items are an error naming `what` needed one.
pub(super) fn singleton<'c, 'a>(c: &'c [Item<'a>], what: &str) -> Result<Option<&'c Item<'a>>, EvalError> {
    match c.len() {
        0 => Ok(None),
        1 => Ok(c.first()),
        n => Err(EvalError(format!("{what} expects a single value, found a collection of {n}"))),
    }
}

/// FHIRPath singleton evaluation of a collection as a boolean: empty is `None`; one boolean
/// is itself; any other single item counts as `true`; several items are an error.
pub fn to_boolean(c: &[Item<'_>], what: &str) -> Result<Option<bool>, EvalError> {
    Ok(singleton(c, what)?.map(|i| i.as_bool().unwrap_or(true)))
}

fn single_string<'a>(c: &[Item<'a>], what: &str) -> Result<Option<Cow<'a, str>>, EvalError> {
    match singleton(c, what)? {
        None => Ok(None),
        Some(i) => match i.as_str() {
            Some(_) => Ok(Some(i.to_text())),
            None => Err(EvalError(format!("{what} expects a string, found {}", i.kind_name()))),
        },
    }
}

fn bool_result<'a>(b: Option<bool>) -> Collection<'a> {
    b.map(|b| smallvec![Item::Bool(b)]).unwrap_or_default()
}

pub(super) fn binary<'a>(op: BinaryOp, l: Collection<'a>, r: Collection<'a>) -> EvalResult<'a> {
    use BinaryOp::*;
    Ok(match op {
        And | Or | Xor | Implies => bool_result(logic(op, to_boolean(&l, "and/or")?, to_boolean(&r, "and/or")?)),
        Eq | Ne => {
            if l.is_empty() || r.is_empty() {
                return Ok(Collection::new());
            }
            let equal = if l.len() != r.len() {
                Some(false)
            } else {
                // Any unequal pair makes the result false, even after an incomparable
                // (empty) pair; only without one is an incomparable pair empty.
                let mut equal = Some(true);
                for (a, b) in l.iter().zip(r.iter()) {
                    match items_equal(a, b) {
                        Some(false) => {
                            equal = Some(false);
                            break;
                        }
                        None => equal = None,
                        Some(true) => {}
                    }
                }
                equal
            };
            bool_result(equal.map(|e| e == (op == Eq)))
        }
        Equiv | NotEquiv => smallvec![Item::Bool(collections_equivalent(&l, &r).map_err(EvalError)? == (op == Equiv))],
        Lt | Le | Gt | Ge => {
            let (Some(a), Some(b)) = (singleton(&l, "comparison")?, singleton(&r, "comparison")?) else {
                return Ok(Collection::new());
            };
            let order = items_compare(a, b).map_err(EvalError)?;
            bool_result(order.map(|o| match op {
                Lt => o == Ordering::Less,
                Le => o != Ordering::Greater,
                Gt => o == Ordering::Greater,
                _ => o != Ordering::Less,
            }))
        }
        Union => {
            let mut out = Collection::new();
            for item in l.into_iter().chain(r) {
                if !out.iter().any(|o| items_equal(o, &item) == Some(true)) {
                    out.push(item);
                }
            }
            out
        }
        In | Contains => {
            let (needle, haystack) = if op == In { (l, r) } else { (r, l) };
            match singleton(&needle, "in/contains")? {
                None => Collection::new(),
                Some(n) => smallvec![Item::Bool(haystack.iter().any(|h| items_equal(n, h) == Some(true)))],
            }
        }
        Concat => {
            singleton(&l, "&")?;
            let r = singleton(&r, "&")?;
            smallvec![concat_items(l.into_iter().next(), r)]
        }
        Add | Sub | Mul | Div | IntDiv | Mod => {
            let (Some(a), Some(b)) = (singleton(&l, "arithmetic")?, singleton(&r, "arithmetic")?) else {
                return Ok(Collection::new());
            };
            arithmetic(op, a, b)?.into_iter().collect()
        }
    })
}

/// Three-valued `and`, `or`, `xor` and `implies` of two singleton booleans (`None` is
/// empty).
pub(super) fn logic(op: BinaryOp, a: Option<bool>, b: Option<bool>) -> Option<bool> {
    use BinaryOp::*;
    match op {
        And => match (a, b) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Or => match (a, b) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Xor => a.zip(b).map(|(a, b)| a != b),
        _ => match (a, b) {
            (Some(false), _) | (_, Some(true)) => Some(true),
            (Some(true), Some(false)) => Some(false),
            _ => None,
        },
    }
}

/// `l & r` of two singletons (`None` is empty, which counts as ''). `a & b & c` nests to
/// the left, so the string an inner `&` built is reused.
fn concat_items<'a>(l: Option<Item<'a>>, r: Option<&Item<'a>>) -> Item<'a> {
    let mut text = match l {
        Some(Item::Str(Cow::Owned(text))) => text,
        Some(item) => concat(&item.to_text(), ""),
        None => String::new(),
    };
    if let Some(r) = r {
        text.push_str(&r.to_text());
    }
    Item::Str(Cow::Owned(text))
}

/// `a` followed by `b`, allocating once (no formatting machinery on this per-row path),
/// with room for a short continuation such as the rest of `a & '|' & b`.
fn concat(a: &str, b: &str) -> String {
    let mut out = String::with_capacity(a.len() + b.len() + 16);
    out.push_str(a);
    out.push_str(b);
    out
}

fn arithmetic<'a>(op: BinaryOp, a: &Item<'a>, b: &Item<'a>) -> Result<Option<Item<'a>>, EvalError> {
    use BinaryOp::*;
    if op == Add {
        if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
            return Ok(Some(Item::Str(Cow::Owned(concat(x, y)))));
        }
    }
    let (Some(x), Some(y)) = (a.as_number(), b.as_number()) else {
        return Err(EvalError(format!("cannot apply {op:?} to {} and {}", a.kind_name(), b.kind_name())));
    };
    if let (Number::Int(x), Number::Int(y), false) = (x, y, op == Div) {
        let r = match op {
            Add => x.checked_add(y),
            Sub => x.checked_sub(y),
            Mul => x.checked_mul(y),
            // Division by zero is empty in FHIRPath, not an error.
            IntDiv => return Ok(x.checked_div(y).map(Item::Int)),
            _ => return Ok(x.checked_rem(y).map(Item::Int)),
        };
        return r.map(|v| Some(Item::Int(v))).ok_or_else(overflow);
    }
    let (x, y) = (x.to_decimal(), y.to_decimal());
    let r = match op {
        Add => x.checked_add(y),
        Sub => x.checked_sub(y),
        Mul => x.checked_mul(y),
        Div => return Ok(x.checked_div(y).map(Item::decimal)),
        IntDiv => return Ok(x.int_div(y).map(Item::decimal)),
        _ => return Ok(x.checked_rem(y).map(Item::decimal)),
    };
    r.map(|v| Some(Item::decimal(v))).ok_or_else(overflow)
}

pub(super) fn call<'a>(
    func: &'a Func,
    base: &[Item<'a>],
    args: &'a [Op],
    ctx: &EvalContext<'_, 'a>,
    input: &[Item<'a>],
) -> EvalResult<'a> {
    // Evaluates argument `i` against the original input, for non-iterating functions.
    let arg = |i: usize| -> EvalResult<'a> { eval(&args[i], ctx, input) };
    // Evaluates a criterion against one item, as `where`/`exists`/`all` do.
    let holds = |item: &Item<'a>| -> Result<bool, EvalError> {
        Ok(to_boolean(at(&args[0], ctx, item)?.as_slice(), "criteria")? == Some(true))
    };
    Ok(match func {
        Func::Where => {
            let mut out = Collection::new();
            for item in base {
                if holds(item)? {
                    out.push(item.clone());
                }
            }
            out
        }
        Func::Select => {
            let mut out = Collection::new();
            for item in base.iter() {
                out.extend(at(&args[0], ctx, item)?.into_collection());
            }
            out
        }
        Func::Exists if args.is_empty() => smallvec![Item::Bool(!base.is_empty())],
        Func::Exists => smallvec![Item::Bool(base.iter().map(holds).collect::<Result<Vec<_>, _>>()?.contains(&true))],
        Func::All => smallvec![Item::Bool(base.iter().map(holds).collect::<Result<Vec<_>, _>>()?.iter().all(|b| *b))],
        Func::Empty => smallvec![Item::Bool(base.is_empty())],
        Func::Last => base.last().cloned().into_iter().collect(),
        Func::Tail => base.iter().skip(1).cloned().collect(),
        Func::Skip | Func::Take => {
            let n = arg(0)?;
            let n = match singleton(&n, "skip/take")?.and_then(Item::as_number) {
                Some(Number::Int(n)) => n.max(0) as usize,
                _ => return Err(EvalError("skip()/take() need an integer".into())),
            };
            if *func == Func::Skip {
                base.iter().skip(n).cloned().collect()
            } else {
                base.iter().take(n).cloned().collect()
            }
        }
        Func::Single => singleton(base, "single()")?.cloned().into_iter().collect(),
        Func::Count => smallvec![Item::Int(base.len() as i64)],
        Func::Distinct => binary(BinaryOp::Union, base.iter().cloned().collect(), Collection::new())?,
        Func::Not => bool_result(to_boolean(base, "not()")?.map(|b| !b)),
        Func::HasValue => {
            smallvec![Item::Bool(matches!(singleton(base, "hasValue()"), Ok(Some(i)) if i.as_object().is_none()))]
        }
        Func::OfType(t) => base.iter().filter(|i| type_matches(i, t)).cloned().collect(),
        Func::Extension => {
            let url =
                single_string(&arg(0)?, "extension()")?.ok_or_else(|| EvalError("extension() needs a url".into()))?;
            let mut out = Collection::new();
            for extensions in base.iter().filter_map(|item| item.as_object()?.get("extension")) {
                let _ = for_each_item(extensions, None, |e| {
                    if e.as_object().and_then(|o| o.get("url")).is_some_and(|u| u.as_str() == Some(&*url)) {
                        out.push(e);
                    }
                    std::ops::ControlFlow::Continue(())
                });
            }
            out
        }
        Func::Join => {
            if base.is_empty() {
                return Ok(Collection::new());
            }
            let sep = if args.is_empty() { None } else { single_string(&arg(0)?, "join()")? };
            let parts: Vec<Cow<'a, str>> = base.iter().map(Item::to_text).collect();
            smallvec![Item::Str(Cow::Owned(parts.join(sep.as_deref().unwrap_or(""))))]
        }
        Func::LowBoundary | Func::HighBoundary => {
            let precision = if args.is_empty() {
                None
            } else {
                match singleton(&arg(0)?, "boundary precision")?.and_then(Item::as_number) {
                    Some(Number::Int(p)) if p >= 0 => Some(p as u32),
                    _ => return Err(EvalError("boundary precision must be a non-negative integer".into())),
                }
            };
            singleton(base, "boundary")?
                .and_then(|i| boundary(i, *func == Func::LowBoundary, precision))
                .into_iter()
                .collect()
        }
        // Loops rather than iterator chains: collecting a filtered iterator into a small
        // vector costs several times the lookup on these per-row functions.
        Func::GetResourceKey => {
            let mut out = Collection::new();
            for item in base {
                out.extend(resource_key_of(item));
            }
            out
        }
        Func::GetReferenceKey(type_name) => {
            let mut out = Collection::new();
            for item in base {
                out.extend(reference_key_of(item, type_name.as_deref()));
            }
            out
        }
        Func::Iif => {
            let condition = to_boolean(&eval(&args[0], ctx, base)?, "iif()")?;
            match (condition, args.get(2)) {
                (Some(true), _) => eval(&args[1], ctx, base)?,
                (_, Some(otherwise)) => eval(otherwise, ctx, base)?,
                _ => Collection::new(),
            }
        }
        // A complex value (an object) has no string form: empty.
        Func::ToString => singleton(base, "toString()")?
            .filter(|i| i.as_object().is_none())
            .map(|i| Item::Str(i.to_text()))
            .into_iter()
            .collect(),
        Func::ToInteger => singleton(base, "toInteger()")?
            .and_then(|i| match (i.as_number(), i.as_bool()) {
                (Some(Number::Int(n)), _) => Some(Item::Int(n)),
                (Some(Number::Dec(_)), _) => None,
                (None, Some(b)) => Some(Item::Int(i64::from(b))),
                (None, None) => i.as_str()?.trim().parse().ok().map(Item::Int),
            })
            .into_iter()
            .collect(),
        Func::ToDecimal => singleton(base, "toDecimal()")?
            .and_then(|i| match (i.as_number(), i.as_bool()) {
                (Some(n), _) => Some(Item::decimal(n.to_decimal())),
                (None, Some(b)) => Some(Item::decimal(Decimal::new(if b { 10 } else { 0 }, 1))),
                (None, None) => Decimal::parse(i.as_str()?.trim()).map(Item::decimal),
            })
            .into_iter()
            .collect(),
        Func::StartsWith | Func::EndsWith | Func::ContainsText => {
            let (Some(text), Some(part)) =
                (single_string(base, "string function")?, single_string(&arg(0)?, "string function")?)
            else {
                return Ok(Collection::new());
            };
            smallvec![Item::Bool(match func {
                Func::StartsWith => text.starts_with(part.as_ref()),
                Func::EndsWith => text.ends_with(part.as_ref()),
                _ => text.contains(part.as_ref()),
            })]
        }
        Func::Lower | Func::Upper | Func::Trim | Func::Length => match single_string(base, "string function")? {
            None => Collection::new(),
            Some(text) => smallvec![match func {
                Func::Lower => Item::Str(Cow::Owned(text.to_lowercase())),
                Func::Upper => Item::Str(Cow::Owned(text.to_uppercase())),
                Func::Trim => Item::Str(Cow::Owned(text.trim().to_string())),
                _ => Item::Int(text.chars().count() as i64),
            }],
        },
        Func::Substring => {
            let Some(text) = single_string(base, "substring()")? else { return Ok(Collection::new()) };
            let int_arg = |i: usize| -> Result<Option<i64>, EvalError> {
                match singleton(&arg(i)?, "substring()")?.map(Item::as_number) {
                    None => Ok(None),
                    Some(Some(Number::Int(n))) => Ok(Some(n)),
                    Some(_) => Err(EvalError("substring() needs integer arguments".into())),
                }
            };
            let Some(start) = int_arg(0)? else { return Ok(Collection::new()) };
            let len = if args.len() > 1 { int_arg(1)? } else { None };
            let chars: Vec<char> = text.chars().collect();
            if start < 0 || start as usize >= chars.len() {
                return Ok(Collection::new());
            }
            let end = len.map_or(chars.len(), |l| (start as usize).saturating_add(l.max(0) as usize).min(chars.len()));
            smallvec![Item::Str(Cow::Owned(chars[start as usize..end].iter().collect()))]
        }
    })
}

/// `lowBoundary()`/`highBoundary()` of one item: decimals widen by half a unit of their last
/// digit; dates and times extend to the first or last instant their precision allows.
fn boundary<'a>(item: &Item<'a>, low: bool, precision: Option<u32>) -> Option<Item<'a>> {
    if let Some(n) = item.as_number() {
        let d = n.to_decimal();
        return (if low { d.low_boundary(precision) } else { d.high_boundary(precision) }).map(Item::decimal);
    }
    let text = item.as_str()?;
    let (temporal, wrap): (Temporal, fn(Cow<'a, str>) -> Item<'a>) = match item {
        Item::DateTime(_) => (Temporal::parse_datetime(text)?, Item::DateTime),
        Item::Time(_) => (Temporal::parse_time(text)?, Item::Time),
        // Untyped strings: a date-shaped value is a date, anything longer a dateTime.
        _ => match Temporal::parse_date(text) {
            Some(date) => (date, Item::Date),
            None => (Temporal::parse_any(text)?, Item::DateTime),
        },
    };
    let s = if low { temporal.low_boundary_string() } else { temporal.high_boundary_string() };
    Some(wrap(Cow::Owned(s)))
}

/// `getResourceKey()` of one item: its `id`, when it is an object with a text `id`.
pub(super) fn resource_key_of<'a>(item: &Item<'a>) -> Option<Item<'a>> {
    item.as_object()?.get("id")?.as_str().map(|s| Item::Str(Cow::Borrowed(s)))
}

/// `getReferenceKey([type])` of one item: the key of its `reference`, when it is a
/// Reference whose target has that type (or any type when none is given).
///
/// A `urn:uuid:`/`urn:oid:` reference carries no type in its text; its Reference's `type`
/// element (`Patient`, or the StructureDefinition URL), when present, does, so that
/// `subject.getReferenceKey(Patient)` does not take a Group's key.
pub(super) fn reference_key_of<'a>(item: &Item<'a>, type_name: Option<&str>) -> Option<Item<'a>> {
    let object = item.as_object()?;
    let reference = object.get("reference")?.as_str()?;
    let key = reference_key(reference, type_name)?;
    if let Some(wanted) = type_name.filter(|_| reference.starts_with("urn:")) {
        let declared = object.get("type").and_then(|t| t.as_str());
        if declared.is_some_and(|declared| declared.rsplit('/').next() != Some(wanted)) {
            return None;
        }
    }
    Some(Item::Str(Cow::Borrowed(key)))
}

/// The key a reference points at: the id of `Type/id`, `http://base/Type/id`,
/// `Type/id/_history/v` or `urn:uuid:id`. With `type_name`, a reference to another type
/// yields nothing; `urn:` references carry no type and match any.
pub fn reference_key<'s>(reference: &'s str, type_name: Option<&str>) -> Option<&'s str> {
    if let Some(rest) = reference.strip_prefix("urn:uuid:").or_else(|| reference.strip_prefix("urn:oid:")) {
        return Some(rest);
    }
    // Runs for every reference column of every row, so plain byte scans, no searchers.
    // The common form first: `Type/id` of the wanted type, one scan over the id.
    if let Some(id) = type_name.filter(|t| *t != "_history").and_then(|t| reference.strip_prefix(t)?.strip_prefix('/'))
    {
        if !id.is_empty() && memchr::memchr3(b'/', b'?', b'#', id.as_bytes()).is_none() {
            return Some(id);
        }
    }
    let end = memchr::memchr2(b'?', b'#', reference.as_bytes()).unwrap_or(reference.len());
    let mut segments = SegmentsFromEnd { text: Some(&reference[..end]) };
    let (mut id, mut ty) = (segments.next()?, segments.next()?);
    if ty == "_history" {
        (id, ty) = (segments.next()?, segments.next()?);
    }
    if id.is_empty() {
        return None;
    }
    match type_name {
        Some(t) if t != ty => None,
        _ => Some(id),
    }
}

/// `/`-separated segments of a path, last first, as `rsplit('/')` yields them. Written out
/// because `rsplit`'s general pattern searcher measured ~10 M instructions slower over the
/// benchmark's 32,000 references (callgrind).
struct SegmentsFromEnd<'s> {
    text: Option<&'s str>,
}

impl<'s> Iterator for SegmentsFromEnd<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        let text = self.text?;
        match memchr::memrchr(b'/', text.as_bytes()) {
            Some(slash) => {
                self.text = Some(&text[..slash]);
                Some(&text[slash + 1..])
            }
            None => self.text.take(),
        }
    }
}

#[cfg(test)]
#[path = "eval_tests.rs"]
mod tests;
