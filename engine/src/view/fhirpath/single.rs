//! Evaluation at one focus item, keeping a result of at most one item out of collections.
//!
//! A view evaluates every column, `where` criterion and `select` projection at a single
//! focus item (the resource, a `forEach` item, a coding), and nearly every result is zero or
//! one item. [`Expression::evaluate_at`] gives the same result as
//! [`Expression::evaluate`] over a one-item input, but walks paths with the single-item walk
//! and passes single results along as plain items ([`Found::One`]); operators and functions
//! still run the general code in [`super::eval`], fed from those items. Anything else is
//! evaluated the general way and returned as [`Found::Many`]. Before all that, the commonest
//! column expressions are tried with no machinery at all ([`Expression::single_item_at`]);
//! conditions are tested without building boolean items, and `a & b & c` fills one string.

use std::borrow::Cow;

use smallvec::smallvec;

use super::ast::BinaryOp;
use super::compile::{Expression, Func, Lit, Op};
use super::eval::{
    binary, call, lit_item, logic, reference_key_of, resource_key_of, singleton, to_boolean, EvalContext, EvalError,
};
use super::navigate::PathOp;
use super::value::{items_equal, Collection, Item};

/// The result of evaluating at one focus.
#[derive(Debug, Clone)]
pub enum Found<'a> {
    /// At most one item.
    One(Option<Item<'a>>),
    /// Any number of items, as the general evaluator returns them.
    Many(Collection<'a>),
}

impl<'a> Found<'a> {
    /// The items found, in order.
    pub fn as_slice(&self) -> &[Item<'a>] {
        match self {
            Found::One(item) => item.as_slice(),
            Found::Many(items) => items,
        }
    }

    /// The first item: the only one, once the caller has checked there are not several.
    pub fn into_single(self) -> Option<Item<'a>> {
        match self {
            Found::One(item) => item,
            Found::Many(mut items) => (!items.is_empty()).then(|| items.swap_remove(0)),
        }
    }

    /// The items as a collection.
    pub fn into_collection(self) -> Collection<'a> {
        match self {
            Found::One(None) => Collection::new(),
            Found::One(Some(item)) => smallvec![item],
            Found::Many(items) => items,
        }
    }
}

impl Expression {
    /// Evaluates the expression with the one item `focus` as its input: the same result as
    /// [`evaluate`](Expression::evaluate) with `&[focus]`, found with less machinery.
    pub fn evaluate_at<'a>(&'a self, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Result<Found<'a>, EvalError> {
        at(&self.op, ctx, focus).map_err(|e| self.locate(e))
    }

    /// The value at `focus` when it is at most one item found without collections or
    /// [`Found`]: a plain path, or a path from such a value; `getResourceKey()`,
    /// `getReferenceKey()` or `count()` of one; `where` and `select` over at most one item;
    /// `&`; a literal; a union of such values of which at most one is not empty. `None` for
    /// any other expression, when a walk meets several items, or on an error:
    /// [`evaluate_at`](Expression::evaluate_at) then gives the answer (or reports the error). Most columns of a view are such values,
    /// and they are evaluated for every resource.
    #[inline]
    pub fn single_item_at<'a>(&'a self, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Option<Option<Item<'a>>> {
        single_item(&self.op, ctx, focus)
    }
}

/// [`Expression::single_item_at`] of `op`.
fn single_item<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Option<Option<Item<'a>>> {
    let walk_one = |op: &'a Op| match op {
        Op::Path(None, path) => path.walk_one(focus, ctx.root),
        _ => None,
    };
    match op {
        Op::Path(None, path) => path.walk_one(focus, ctx.root),
        Op::Path(Some(inner), path) => match single_item(inner, ctx, focus)? {
            Some(item) => path.walk_one(&item, ctx.root),
            None => Some(None),
        },
        Op::Call(None, Func::GetResourceKey, _) => Some(resource_key_of(focus)),
        Op::Call(Some(inner), Func::GetReferenceKey(type_name), _) => {
            Some(walk_one(inner)?.and_then(|item| reference_key_of(&item, type_name.as_deref())))
        }
        Op::Call(Some(inner), Func::Count, _) => Some(Some(Item::Int(i64::from(walk_one(inner)?.is_some())))),
        // `where` and `select` over at most one item. An error in the criterion or the
        // projection goes the general route, which reports it.
        Op::Call(Some(inner), Func::Where, args) => match single_item(inner, ctx, focus)? {
            Some(item) => Some((test_at(&args[0], ctx, &item, "criteria").ok()? == Some(true)).then_some(item)),
            None => Some(None),
        },
        Op::Call(Some(inner), Func::Select, args) => match single_item(inner, ctx, focus)? {
            Some(item) => single_item(&args[0], ctx, &item),
            None => Some(None),
        },
        Op::Binary(BinaryOp::Concat, l, r) => Some(Some(concat_at(l, r, ctx, focus).ok()?)),
        Op::Lit(lit) => Some(Some(lit_item(lit))),
        Op::Binary(BinaryOp::Union, l, r) => match (single_item(l, ctx, focus)?, single_item(r, ctx, focus)?) {
            (None, one) | (one, None) => Some(one),
            // Two items may be equal, and a union keeps one of them: the general route.
            (Some(_), Some(_)) => None,
        },
        _ => None,
    }
}

/// `op` evaluated with input `[focus]`. Plain paths, most of a view's columns, are walked
/// here; literals, function calls and operators have their own small functions, the rest
/// goes through [`at_op`].
#[inline]
pub(super) fn at<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Result<Found<'a>, EvalError> {
    match op {
        Op::Path(None, path) => Ok(walk(path, focus, ctx)),
        Op::Lit(lit) => Ok(Found::One(Some(lit_item(lit)))),
        Op::Call(inner, func, args) => {
            let base = match inner {
                Some(inner) => at(inner, ctx, focus)?,
                None => Found::One(Some(focus.clone())),
            };
            call_at(func, base, args, ctx, std::slice::from_ref(focus))
        }
        Op::Binary(op, l, r) => binary_at(*op, l, r, ctx, focus),
        op => at_op(op, ctx, focus),
    }
}

/// The rarer ops. Kept apart from [`at`] (as [`call_at`] and [`binary_at`] are) so that the
/// dispatch the common ops go through stays small.
fn at_op<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Result<Found<'a>, EvalError> {
    Ok(match op {
        Op::This => Found::One(Some(focus.clone())),
        Op::Path(Some(inner), path) => match at(inner, ctx, focus)? {
            Found::One(None) => Found::One(None),
            Found::One(Some(item)) => walk(path, &item, ctx),
            Found::Many(items) => {
                let mut out = Collection::new();
                path.walk(&items, ctx.root, &mut out);
                Found::Many(out)
            }
        },
        _ => Found::Many(super::eval::eval(op, ctx, std::slice::from_ref(focus))?),
    })
}

/// `l op r` at one focus.
fn binary_at<'a>(
    op: BinaryOp,
    l: &'a Op,
    r: &'a Op,
    ctx: &EvalContext<'_, 'a>,
    focus: &Item<'a>,
) -> Result<Found<'a>, EvalError> {
    if matches!(op, BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies) {
        return Ok(Found::One(logic_at(op, l, r, ctx, focus)?.map(Item::Bool)));
    }
    if op == BinaryOp::Concat {
        return Ok(Found::One(Some(concat_at(l, r, ctx, focus)?)));
    }
    let (l, r) = (at(l, ctx, focus)?, at(r, ctx, focus)?);
    Ok(match (op, l, r) {
        // `a | b` where one side is empty is the other side, when that is one item
        // (a collection of several would still need its duplicates removed).
        (BinaryOp::Union, Found::One(None), one @ Found::One(_))
        | (BinaryOp::Union, one @ Found::One(_), Found::One(None)) => one,
        (op, l, r) => Found::Many(binary(op, l.into_collection(), r.into_collection())?),
    })
}

/// `l & r` at one focus: one string, however long the chain of `&`.
fn concat_at<'a>(l: &'a Op, r: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Result<Item<'a>, EvalError> {
    // Room for a typical `system & '|' & code` without growing.
    let mut text = String::with_capacity(64);
    concat_into(l, ctx, focus, &mut text)?;
    concat_into(r, ctx, focus, &mut text)?;
    Ok(Item::Str(Cow::Owned(text)))
}

/// Appends `op` at `focus`, an operand of `&`, to `out`: the text of its one item, or
/// nothing when it is empty. The operands of a chain `a & b & c` all go into one string.
/// (An operand of several items is an error as soon as it is found, before the operands
/// after it are evaluated.)
fn concat_into<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>, out: &mut String) -> Result<(), EvalError> {
    let found = match op {
        Op::Binary(BinaryOp::Concat, l, r) => {
            concat_into(l, ctx, focus, out)?;
            return concat_into(r, ctx, focus, out);
        }
        Op::Lit(Lit::Str(text)) => {
            out.push_str(text);
            return Ok(());
        }
        Op::Path(None, path) => walk(path, focus, ctx),
        op => at(op, ctx, focus)?,
    };
    if let Some(item) = singleton(found.as_slice(), "&")? {
        out.push_str(&item.to_text());
    }
    Ok(())
}

/// `op` at one focus as a condition (a `where` criterion, an operand of `and`): FHIRPath's
/// singleton evaluation of its result as a boolean, with `what` naming the condition in the
/// error for several items. Conditions are mostly `exists()`, `empty()` and logic over them,
/// which need no items at all: only whether a path reaches any.
fn test_at<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>, what: &str) -> Result<Option<bool>, EvalError> {
    match op {
        Op::Call(Some(inner), func @ (Func::Exists | Func::Empty), args) if args.is_empty() => {
            Ok(Some(reaches_any(inner, ctx, focus)? == (*func == Func::Exists)))
        }
        Op::Binary(op @ (BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies), l, r) => {
            logic_at(*op, l, r, ctx, focus)
        }
        // `a = b` of two single items: compared as they are, with no collections.
        Op::Binary(cmp @ (BinaryOp::Eq | BinaryOp::Ne), l, r) => {
            match (single_item(l, ctx, focus), single_item(r, ctx, focus)) {
                (Some(Some(a)), Some(Some(b))) => Ok(items_equal(&a, &b).map(|equal| equal == (*cmp == BinaryOp::Eq))),
                (Some(None), Some(_)) | (Some(_), Some(None)) => Ok(None),
                _ => to_boolean(at(op, ctx, focus)?.as_slice(), what),
            }
        }
        // `x.exists(criteria)`: whether any item of `x` meets it, every item tested as the
        // general `exists` does (so that an error in any of them is still reported).
        Op::Call(Some(inner), Func::Exists, args) if args.len() == 1 => {
            let mut any = false;
            for item in at(inner, ctx, focus)?.as_slice() {
                any |= test_at(&args[0], ctx, item, "criteria")? == Some(true);
            }
            Ok(Some(any))
        }
        op => to_boolean(at(op, ctx, focus)?.as_slice(), what),
    }
}

/// `l op r` for a logic operator at one focus: both operands tested as conditions.
fn logic_at<'a>(
    op: BinaryOp,
    l: &'a Op,
    r: &'a Op,
    ctx: &EvalContext<'_, 'a>,
    focus: &Item<'a>,
) -> Result<Option<bool>, EvalError> {
    Ok(logic(op, test_at(l, ctx, focus, "and/or")?, test_at(r, ctx, focus, "and/or")?))
}

/// Whether `op` at `focus` yields any item.
fn reaches_any<'a>(op: &'a Op, ctx: &EvalContext<'_, 'a>, focus: &Item<'a>) -> Result<bool, EvalError> {
    if let Op::Path(None, path) = op {
        if let Some(found) = path.walk_one(focus, ctx.root) {
            return Ok(found.is_some());
        }
    }
    Ok(!at(op, ctx, focus)?.as_slice().is_empty())
}

/// `func` applied to `base`. The functions a view's columns chain most (`where`, `select`,
/// `exists()`, `empty()`, `count()`, `getResourceKey()`, `getReferenceKey()`) keep a single
/// item out of collections, and iterate a collection of one as that item; the others run
/// the general [`call`].
fn call_at<'a>(
    func: &'a Func,
    base: Found<'a>,
    args: &'a [Op],
    ctx: &EvalContext<'_, 'a>,
    input: &[Item<'a>],
) -> Result<Found<'a>, EvalError> {
    let holds =
        |item: &Item<'a>| -> Result<bool, EvalError> { Ok(test_at(&args[0], ctx, item, "criteria")? == Some(true)) };
    Ok(match (func, base) {
        (Func::Exists, base) if args.is_empty() => Found::One(Some(Item::Bool(!base.as_slice().is_empty()))),
        (Func::Empty, base) => Found::One(Some(Item::Bool(base.as_slice().is_empty()))),
        (Func::Count, base) => Found::One(Some(Item::Int(base.as_slice().len() as i64))),
        (Func::GetResourceKey, Found::One(item)) => Found::One(item.as_ref().and_then(resource_key_of)),
        (Func::GetReferenceKey(type_name), Found::One(item)) => {
            Found::One(item.as_ref().and_then(|item| reference_key_of(item, type_name.as_deref())))
        }
        (Func::Where, Found::One(item)) => Found::One(match item {
            Some(item) if holds(&item)? => Some(item),
            _ => None,
        }),
        (Func::Select, Found::One(None)) => Found::One(None),
        (Func::Select, Found::One(Some(item))) => at(&args[0], ctx, &item)?,
        (Func::Select, Found::Many(items)) if items.len() == 1 => at(&args[0], ctx, &items[0])?,
        (Func::Where, Found::Many(mut items)) => {
            let mut kept = 0;
            for i in 0..items.len() {
                if holds(&items[i])? {
                    items.swap(kept, i);
                    kept += 1;
                }
            }
            items.truncate(kept);
            Found::Many(items)
        }
        (func, base) => Found::Many(call(func, base.as_slice(), args, ctx, input)?),
    })
}

/// `path` walked from `item`: the single-item walk when every step meets one item.
#[inline]
fn walk<'a>(path: &'a PathOp, item: &Item<'a>, ctx: &EvalContext<'_, 'a>) -> Found<'a> {
    match path.walk_one(item, ctx.root) {
        Some(found) => Found::One(found),
        None => {
            let mut out = Collection::new();
            path.walk(std::slice::from_ref(item), ctx.root, &mut out);
            Found::Many(out)
        }
    }
}

#[cfg(test)]
#[path = "single_tests.rs"]
mod tests;
