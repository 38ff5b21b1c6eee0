//! Evaluation at one focus item, keeping a result of at most one item out of collections.
//!
//! A view evaluates every column, `where` criterion and `select` projection at a single
//! focus item (the resource, a `forEach` item, a coding), and nearly every result is zero or
//! one item. [`Expression::evaluate_at`] gives the same result as
//! [`Expression::evaluate`] over a one-item input, but walks paths with the single-item walk
//! and passes single results along as plain items ([`Found::One`]); operators and functions
//! still run the general code in [`super::eval`], fed from those items. Anything else is
//! evaluated the general way and returned as [`Found::Many`].

use smallvec::smallvec;

use super::ast::BinaryOp;
use super::compile::{Expression, Func, Op};
use super::eval::{
    binary, call, concat_items, lit_item, logic, reference_key_of, resource_key_of, to_boolean, EvalContext, EvalError,
};
use super::navigate::PathOp;
use super::value::{Collection, Item};

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
    let (l, r) = (at(l, ctx, focus)?, at(r, ctx, focus)?);
    Ok(match (op, l, r) {
        // `a | b` where one side is empty is the other side, when that is one item
        // (a collection of several would still need its duplicates removed).
        (BinaryOp::Union, Found::One(None), one @ Found::One(_))
        | (BinaryOp::Union, one @ Found::One(_), Found::One(None)) => one,
        (BinaryOp::Concat, Found::One(l), Found::One(r)) => Found::One(Some(concat_items(l, r.as_ref()))),
        (BinaryOp::And | BinaryOp::Or | BinaryOp::Xor | BinaryOp::Implies, l, r) => {
            let (a, b) = (to_boolean(l.as_slice(), "and/or")?, to_boolean(r.as_slice(), "and/or")?);
            Found::One(logic(op, a, b).map(Item::Bool))
        }
        (op, l, r) => Found::Many(binary(op, l.into_collection(), r.into_collection())?),
    })
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
    let holds = |item: &Item<'a>| -> Result<bool, EvalError> {
        Ok(to_boolean(at(&args[0], ctx, item)?.as_slice(), "criteria")? == Some(true))
    };
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
