//! Compiles a FHIRPath AST into an evaluation plan ([`Op`]) once per view.
//!
//! Everything that can be decided without data is decided here, so evaluation never
//! re-parses or looks anything up by name: constants are inlined, function names resolve to
//! [`Func`] with their arity checked, `x.ofType(T)` on a choice element becomes a direct
//! lookup of `xT`, and each expression gets a static [`Kind`] used to reject non-boolean
//! `where` paths and to type untyped columns.

use std::collections::HashMap;

use super::ast::{BinaryOp, Expr, FunctionCall, Literal, SpecialVar, UnaryOp};
use super::navigate::{PathOp, RootIndex, Step};
use super::parser;
use crate::view::decimal::Decimal;

/// A literal or constant value, owned by the compiled view.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// boolean
    Bool(bool),
    /// integer
    Int(i64),
    /// decimal
    Dec(Decimal),
    /// string, code, id, uri, ...
    Str(String),
    /// date, kept as written
    Date(String),
    /// dateTime or instant, kept as written
    DateTime(String),
    /// time, kept as written
    Time(String),
}

/// What an expression is statically known to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Always boolean (or empty).
    Boolean,
    /// Always integer (or empty).
    Integer,
    /// Always decimal (or empty).
    Decimal,
    /// Always text (or empty).
    String,
    /// Not known without data.
    Unknown,
}

/// A compiled FHIRPath node. Paths with no explicit focus apply to the input collection.
#[derive(Debug, Clone)]
pub enum Op {
    /// A literal or inlined constant.
    Lit(Lit),
    /// `{}`
    Empty,
    /// `$this`: the input collection.
    This,
    /// `%rowIndex`: the index of the current forEach/repeat item.
    RowIndex,
    /// `%resource`, `%rootResource`, `%context`: the resource being evaluated.
    Resource,
    /// Navigation: a fused chain of member steps, `ofType` on choice elements and `[n]` /
    /// `first()`, applied to `focus` (or to the input collection).
    Path(Option<Box<Op>>, PathOp),
    /// `focus[index]`
    Index(Box<Op>, Box<Op>),
    /// A function applied to `focus` (or to the input collection).
    Call(Option<Box<Op>>, Func, Vec<Op>),
    /// A binary operator.
    Binary(BinaryOp, Box<Op>, Box<Op>),
    /// Unary minus.
    Negate(Box<Op>),
    /// `x is T`. When `x` is a path ending in a member, which may be a choice element
    /// (`value`), the third field is `x.ofType(T)`: whether it finds anything decides, so the
    /// JSON key's type suffix (`valueCodeableConcept`) gives the type as it does for `ofType`.
    Is(Box<Op>, Box<str>, Option<Box<Op>>),
    /// `x as T` (a path ending in a member compiles to `x.ofType(T)` instead).
    As(Box<Op>, Box<str>),
}

/// The FHIRPath functions fhirhouse evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// `where(criteria)`
    Where,
    /// `select(projection)`
    Select,
    /// `exists([criteria])`
    Exists,
    /// `all(criteria)`
    All,
    /// `empty()`
    Empty,
    /// `last()`
    Last,
    /// `tail()`
    Tail,
    /// `skip(n)`
    Skip,
    /// `take(n)`
    Take,
    /// `single()`
    Single,
    /// `count()`
    Count,
    /// `distinct()`
    Distinct,
    /// `not()`
    Not,
    /// `hasValue()`
    HasValue,
    /// `ofType(T)`
    OfType(Box<str>),
    /// `extension(url)`
    Extension,
    /// `join([separator])`
    Join,
    /// `lowBoundary([precision])`
    LowBoundary,
    /// `highBoundary([precision])`
    HighBoundary,
    /// `getResourceKey()`
    GetResourceKey,
    /// `getReferenceKey([Type])`
    GetReferenceKey(Option<Box<str>>),
    /// `iif(criterion, true-result [, otherwise-result])`
    Iif,
    /// `toString()`
    ToString,
    /// `toInteger()`
    ToInteger,
    /// `toDecimal()`
    ToDecimal,
    /// `startsWith(prefix)`
    StartsWith,
    /// `endsWith(suffix)`
    EndsWith,
    /// `contains(substring)` (the string function, not the operator)
    ContainsText,
    /// `lower()`
    Lower,
    /// `upper()`
    Upper,
    /// `trim()`
    Trim,
    /// `length()`
    Length,
    /// `substring(start [, length])`
    Substring,
}

impl Func {
    /// Resolves a function name and checks its argument count: (function, min, max args).
    fn resolve(name: &str) -> Option<(Func, usize, usize)> {
        Some(match name {
            "where" => (Func::Where, 1, 1),
            "select" => (Func::Select, 1, 1),
            "exists" => (Func::Exists, 0, 1),
            "all" => (Func::All, 1, 1),
            "empty" => (Func::Empty, 0, 0),
            "last" => (Func::Last, 0, 0),
            "tail" => (Func::Tail, 0, 0),
            "skip" => (Func::Skip, 1, 1),
            "take" => (Func::Take, 1, 1),
            "single" => (Func::Single, 0, 0),
            "count" => (Func::Count, 0, 0),
            "distinct" => (Func::Distinct, 0, 0),
            "not" => (Func::Not, 0, 0),
            "hasValue" => (Func::HasValue, 0, 0),
            "extension" => (Func::Extension, 1, 1),
            "join" => (Func::Join, 0, 1),
            "lowBoundary" => (Func::LowBoundary, 0, 1),
            "highBoundary" => (Func::HighBoundary, 0, 1),
            "getResourceKey" => (Func::GetResourceKey, 0, 0),
            "iif" => (Func::Iif, 2, 3),
            "toString" => (Func::ToString, 0, 0),
            "toInteger" => (Func::ToInteger, 0, 0),
            "toDecimal" => (Func::ToDecimal, 0, 0),
            "startsWith" => (Func::StartsWith, 1, 1),
            "endsWith" => (Func::EndsWith, 1, 1),
            "contains" => (Func::ContainsText, 1, 1),
            "lower" => (Func::Lower, 0, 0),
            "upper" => (Func::Upper, 0, 0),
            "trim" => (Func::Trim, 0, 0),
            "length" => (Func::Length, 0, 0),
            "substring" => (Func::Substring, 1, 2),
            _ => return None,
        })
    }
}

/// Every function name the compiler knows, for the closest one to a slip (`startswith`).
const FUNCTION_NAMES: [&str; 36] = [
    "where",
    "select",
    "exists",
    "all",
    "empty",
    "first",
    "last",
    "tail",
    "skip",
    "take",
    "single",
    "count",
    "distinct",
    "not",
    "hasValue",
    "ofType",
    "is",
    "as",
    "extension",
    "join",
    "lowBoundary",
    "highBoundary",
    "getResourceKey",
    "getReferenceKey",
    "iif",
    "toString",
    "toInteger",
    "toDecimal",
    "startsWith",
    "endsWith",
    "contains",
    "lower",
    "upper",
    "trim",
    "length",
    "substring",
];

/// An error found while parsing or compiling an expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

/// A compiled FHIRPath expression, ready to evaluate any number of times.
#[derive(Debug, Clone)]
pub struct Expression {
    /// The expression text as written in the ViewDefinition.
    pub source: String,
    /// The compiled plan.
    pub op: Op,
    /// What the expression is statically known to return.
    pub kind: Kind,
}

/// Names a compiler needs from its surroundings: the view's constants.
#[derive(Debug, Default)]
pub struct CompileEnv {
    /// ViewDefinition constants by name (without `%`).
    pub constants: HashMap<String, Lit>,
}

impl Expression {
    /// Parses and compiles `source`.
    ///
    /// ```
    /// use fhirhouse::view::fhirpath::{CompileEnv, Expression, Kind};
    /// let expr = Expression::compile("name.where(use = 'official').exists()", &CompileEnv::default()).unwrap();
    /// assert_eq!(expr.kind, Kind::Boolean);
    /// assert!(Expression::compile("name.family.frobnicate()", &CompileEnv::default()).is_err());
    /// ```
    pub fn compile(source: &str, env: &CompileEnv) -> Result<Expression, CompileError> {
        let ast = parser::parse(source).map_err(|e| CompileError(format!("invalid FHIRPath '{source}': {e}")))?;
        let op = compile(&ast, env).map_err(|e| CompileError(format!("in '{source}': {}", e.0)))?;
        let kind = kind_of(&op);
        Ok(Expression { source: source.to_string(), op, kind })
    }
}

fn compile(expr: &Expr, env: &CompileEnv) -> Result<Op, CompileError> {
    Ok(match expr {
        Expr::Literal(lit) => compile_literal(lit)?,
        Expr::Member(name) => extend_path(None, Step::member(name)),
        Expr::Invocation(SpecialVar::This) => Op::This,
        Expr::Invocation(other) => {
            let name = if *other == SpecialVar::Index { "$index" } else { "$total" };
            return Err(CompileError(format!("{name} is not supported (of the iteration variables, only $this is)")));
        }
        Expr::External(name) => compile_external(name, env)?,
        Expr::Function(call) => compile_call(None, call, env)?,
        Expr::Path(focus, name) => extend_path(Some(compile(focus, env)?), Step::member(name)),
        Expr::Method(focus, call) => compile_call(Some(compile(focus, env)?), call, env)?,
        Expr::Index(focus, index) => match compile(index, env)? {
            Op::Lit(Lit::Int(n)) if n >= 0 => extend_path(Some(compile(focus, env)?), Step::Nth(n as usize)),
            index => Op::Index(Box::new(compile(focus, env)?), Box::new(index)),
        },
        Expr::Unary(UnaryOp::Plus, inner) => compile(inner, env)?,
        Expr::Unary(UnaryOp::Minus, inner) => match compile(inner, env)? {
            Op::Lit(Lit::Int(i)) => Op::Lit(Lit::Int(-i)),
            Op::Lit(Lit::Dec(d)) => {
                Op::Lit(Lit::Dec(d.checked_neg().ok_or_else(|| CompileError("decimal overflow".into()))?))
            }
            op => Op::Negate(Box::new(op)),
        },
        Expr::Binary(op, l, r) => Op::Binary(*op, Box::new(compile(l, env)?), Box::new(compile(r, env)?)),
        Expr::Is(inner, t) => type_test(true, compile(inner, env)?, checked_type("is", strip_namespace(t))?),
        Expr::As(inner, t) => type_test(false, compile(inner, env)?, checked_type("as", strip_namespace(t))?),
    })
}

fn compile_literal(lit: &Literal) -> Result<Op, CompileError> {
    Ok(match lit {
        Literal::Empty => Op::Empty,
        Literal::Boolean(b) => Op::Lit(Lit::Bool(*b)),
        Literal::String(s) => Op::Lit(Lit::Str(s.clone())),
        Literal::Integer(i) => Op::Lit(Lit::Int(*i)),
        Literal::Decimal(text) => {
            Op::Lit(Lit::Dec(Decimal::parse(text).ok_or_else(|| CompileError(format!("invalid decimal {text}")))?))
        }
        Literal::Date(s) => Op::Lit(Lit::Date(s.clone())),
        Literal::DateTime(s) => Op::Lit(Lit::DateTime(s.clone())),
        Literal::Time(s) => Op::Lit(Lit::Time(s.clone())),
        Literal::Quantity(n, unit) => {
            return Err(CompileError(format!("quantity literals ({n} '{unit}') are not supported")))
        }
    })
}

fn compile_external(name: &str, env: &CompileEnv) -> Result<Op, CompileError> {
    if let Some(value) = env.constants.get(name) {
        return Ok(Op::Lit(value.clone()));
    }
    Ok(match name {
        "rowIndex" => Op::RowIndex,
        "resource" | "rootResource" | "context" => Op::Resource,
        "ucum" => Op::Lit(Lit::Str("http://unitsofmeasure.org".into())),
        "sct" => Op::Lit(Lit::Str("http://snomed.info/sct".into())),
        "loinc" => Op::Lit(Lit::Str("http://loinc.org".into())),
        _ => {
            let mut known: Vec<&str> = env.constants.keys().map(String::as_str).collect();
            known.sort_unstable();
            let hint = if known.is_empty() {
                "the view defines no constants".to_string()
            } else {
                format!("defined constants: {}", known.join(", "))
            };
            return Err(CompileError(format!("undefined constant %{name} ({hint})")));
        }
    })
}

fn compile_call(focus: Option<Op>, call: &FunctionCall, env: &CompileEnv) -> Result<Op, CompileError> {
    let name = call.name.as_str();
    let argc = call.args.len();
    // Functions whose argument is a type name, not an expression.
    match name {
        "ofType" => {
            let type_name = type_argument(call)?;
            return Ok(match focus {
                Some(focus) if ends_in_member(&focus) => of_type_path(focus, &type_name),
                focus => Op::Call(focus.map(Box::new), Func::OfType(type_name.into()), vec![]),
            });
        }
        // Whether a path has any item needs only its first: stop the walk there.
        "exists" | "empty" if argc == 0 && matches!(focus, Some(Op::Path(..))) => {
            let func = if name == "exists" { Func::Exists } else { Func::Empty };
            return Ok(Op::Call(Some(Box::new(extend_path(focus, Step::Nth(0)))), func, vec![]));
        }
        "first" if argc > 0 => return Err(CompileError(format!("first() takes 0 argument(s), found {argc}"))),
        "first" => return Ok(extend_path(focus, Step::Nth(0))),
        "getReferenceKey" => {
            let type_name = if argc == 0 { None } else { Some(type_argument(call)?) };
            // A reference names a resource type: anything else would match no reference.
            if let Some(t) = &type_name {
                crate::view::types::check_resource_type(t)
                    .map_err(|e| CompileError(format!("getReferenceKey(): {e}")))?;
            }
            let type_name = type_name.map(Into::into);
            return Ok(Op::Call(focus.map(Box::new), Func::GetReferenceKey(type_name), vec![]));
        }
        "is" | "as" => {
            let type_name = type_argument(call)?;
            return Ok(type_test(name == "is", focus.unwrap_or(Op::This), &type_name));
        }
        _ => {}
    }
    let (func, min, max) = Func::resolve(name).ok_or_else(|| {
        let hint = crate::view::types::closest_name(name, FUNCTION_NAMES.iter().copied())
            .map(|best| format!("; did you mean {best}()?"))
            .unwrap_or_default();
        CompileError(format!("unknown or unsupported function {name}(){hint}"))
    })?;
    if argc < min || argc > max {
        let expected = if min == max { format!("{min}") } else { format!("{min} to {max}") };
        return Err(CompileError(format!("{name}() takes {expected} argument(s), found {argc}")));
    }
    let args = call.args.iter().map(|a| compile(a, env)).collect::<Result<Vec<_>, _>>()?;
    Ok(Op::Call(focus.map(Box::new), func, args))
}

/// Whether `op` is a path whose last step is a member that may be a choice element: not a
/// type name (`Patient`), as FHIR element names start in lower case.
fn ends_in_member(op: &Op) -> bool {
    matches!(op, Op::Path(_, path) if matches!(path.steps.last(), Some(Step::Member { name: m, .. }) if !m.starts_with(|c: char| c.is_ascii_uppercase())))
}

/// `focus.ofType(T)` for a path ending in a member: the member becomes a choice lookup of
/// `memberT`, falling back to the member's items of type `T`.
fn of_type_path(focus: Op, type_name: &str) -> Op {
    let Op::Path(inner, mut path) = focus else { unreachable!("checked by ends_in_member") };
    let Some(Step::Member { name: base, .. }) = path.steps.pop() else { unreachable!("checked by ends_in_member") };
    let choice_key = format!("{base}{}", capitalize(type_name)).into();
    path.steps.push(Step::Choice { base, choice_key, type_name: type_name.into() });
    Op::Path(inner, path)
}

/// `focus is T` (`is`) or `focus as T`. On a path ending in a member these use the same
/// choice lookup as `ofType(T)`, so that all three agree on `valueCodeableConcept`, which
/// the JSON object alone cannot tell from a Quantity.
fn type_test(is: bool, focus: Op, type_name: &str) -> Op {
    let typed = ends_in_member(&focus).then(|| of_type_path(focus.clone(), type_name));
    match (is, typed) {
        (true, typed) => Op::Is(Box::new(focus), type_name.into(), typed.map(Box::new)),
        (false, Some(typed)) => typed,
        (false, None) => Op::As(Box::new(focus), type_name.into()),
    }
}

/// Rewrites the paths of `op` that start at its input to read the root prefetch, for an
/// expression that is always evaluated on the resource itself (columns of the top-level
/// select, `where` paths, top-level iterations). Arguments that iterating functions
/// evaluate per item (`where`, `select`, `exists`, `all`, `iif`) keep their own paths.
pub fn bind_root(op: &mut Op, index: &mut RootIndex) {
    match op {
        Op::Path(None, path) => {
            let Some(first) = path.steps.first_mut() else { return };
            let bound = match &*first {
                // `Patient.name` names the resource itself; leave such steps to the walk.
                Step::Member { name, choice } if !name.starts_with(|c: char| c.is_ascii_uppercase()) => {
                    Step::Root(index.slot(name, *choice))
                }
                Step::Choice { base, choice_key, type_name } => Step::RootChoice {
                    choice_slot: index.slot(choice_key, false),
                    base_slot: index.slot(base, false),
                    type_name: type_name.clone(),
                },
                _ => return,
            };
            *first = bound;
        }
        Op::Path(Some(focus), _) => bind_root(focus, index),
        Op::Call(focus, func, args) => {
            if let Some(focus) = focus {
                bind_root(focus, index);
            }
            if !matches!(func, Func::Where | Func::Select | Func::Exists | Func::All | Func::Iif) {
                args.iter_mut().for_each(|a| bind_root(a, index));
            }
        }
        Op::Binary(_, l, r) | Op::Index(l, r) => {
            bind_root(l, index);
            bind_root(r, index);
        }
        Op::Is(inner, _, typed) => {
            bind_root(inner, index);
            if let Some(typed) = typed {
                bind_root(typed, index);
            }
        }
        Op::Negate(inner) | Op::As(inner, _) => bind_root(inner, index),
        Op::Lit(_) | Op::Empty | Op::This | Op::RowIndex | Op::Resource => {}
    }
}

/// Appends a navigation step to `focus`, fusing it into `focus`'s path when it has one.
fn extend_path(focus: Option<Op>, step: Step) -> Op {
    match focus {
        Some(Op::Path(inner, mut path)) => {
            path.steps.push(step);
            Op::Path(inner, path)
        }
        focus => Op::Path(focus.map(Box::new), PathOp { steps: vec![step] }),
    }
}

/// Reads a type-specifier argument such as `Quantity`, `FHIR.Quantity` or `System.String`.
fn type_argument(call: &FunctionCall) -> Result<String, CompileError> {
    let name = match call.args.as_slice() {
        [Expr::Member(t)] => t.clone(),
        [Expr::Path(ns, t)] if matches!(ns.as_ref(), Expr::Member(n) if n == "FHIR" || n == "System") => t.clone(),
        _ => return Err(CompileError(format!("{}() takes one type name, e.g. {}(Quantity)", call.name, call.name))),
    };
    if call.name != "getReferenceKey" {
        checked_type(&format!("{}()", call.name), &name)?;
    }
    Ok(name)
}

/// `type_name` if it names a type (see [`check_type_specifier`]); an unknown name would
/// match nothing, and so make an empty column or a false test without a word.
///
/// [`check_type_specifier`]: crate::view::types::check_type_specifier
fn checked_type<'t>(what: &str, type_name: &'t str) -> Result<&'t str, CompileError> {
    crate::view::types::check_type_specifier(type_name).map_err(|e| CompileError(format!("{what}: {e}")))?;
    Ok(type_name)
}

fn strip_namespace(t: &str) -> &str {
    t.strip_prefix("FHIR.").or_else(|| t.strip_prefix("System.")).unwrap_or(t)
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    chars.next().map(|c| c.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// Infers what an op returns, where that is knowable without data.
pub fn kind_of(op: &Op) -> Kind {
    use BinaryOp::*;
    match op {
        Op::Lit(Lit::Bool(_)) => Kind::Boolean,
        Op::Lit(Lit::Int(_)) | Op::RowIndex => Kind::Integer,
        Op::Lit(Lit::Dec(_)) => Kind::Decimal,
        Op::Lit(_) => Kind::String,
        Op::Binary(Eq | Ne | Equiv | NotEquiv | Lt | Le | Gt | Ge | And | Or | Xor | Implies | In | Contains, _, _)
        | Op::Is(..) => Kind::Boolean,
        Op::Binary(Concat, _, _) => Kind::String,
        Op::Binary(Div, _, _) => Kind::Decimal,
        Op::Binary(Add | Sub | Mul | IntDiv | Mod, l, r) => match (kind_of(l), kind_of(r)) {
            (Kind::Integer, Kind::Integer) => Kind::Integer,
            (Kind::String, Kind::String) => Kind::String,
            (Kind::Integer | Kind::Decimal, Kind::Integer | Kind::Decimal) => Kind::Decimal,
            _ => Kind::Unknown,
        },
        Op::Call(focus, func, _) => match func {
            Func::Exists
            | Func::All
            | Func::Empty
            | Func::Not
            | Func::HasValue
            | Func::StartsWith
            | Func::EndsWith
            | Func::ContainsText => Kind::Boolean,
            Func::Count | Func::Length | Func::ToInteger => Kind::Integer,
            Func::ToDecimal => Kind::Decimal,
            Func::Join
            | Func::GetResourceKey
            | Func::GetReferenceKey(_)
            | Func::ToString
            | Func::Lower
            | Func::Upper
            | Func::Trim
            | Func::Substring => Kind::String,
            Func::Where | Func::Last | Func::Tail | Func::Skip | Func::Take | Func::Single | Func::Distinct => {
                focus.as_deref().map(kind_of).unwrap_or(Kind::Unknown)
            }
            Func::OfType(t) => kind_of_type_name(t),
            _ => Kind::Unknown,
        },
        Op::Path(focus, path) => match path.steps.iter().rev().find(|s| !matches!(s, Step::Nth(_))) {
            Some(Step::Choice { type_name, .. }) => kind_of_type_name(type_name),
            Some(Step::Member { name, .. }) if KNOWN_TEXT_ELEMENTS.contains(&name.as_ref()) => Kind::String,
            Some(_) => Kind::Unknown,
            None => focus.as_deref().map(kind_of).unwrap_or(Kind::Unknown),
        },
        Op::Index(focus, _) => kind_of(focus),
        _ => Kind::Unknown,
    }
}

fn kind_of_type_name(t: &str) -> Kind {
    match t {
        "boolean" => Kind::Boolean,
        "integer" | "positiveInt" | "unsignedInt" => Kind::Integer,
        "decimal" => Kind::Decimal,
        "string" | "code" | "id" | "uri" | "url" | "canonical" | "oid" | "uuid" | "markdown" | "base64Binary" => {
            Kind::String
        }
        _ => Kind::Unknown,
    }
}

/// Element names that hold text in every FHIR R4 datatype and resource that defines them.
/// Lets validation reject `where: name.family` before any data is read; anything not listed
/// is still checked per row at run time.
const KNOWN_TEXT_ELEMENTS: &[&str] = &[
    "family",
    "given",
    "prefix",
    "suffix",
    "text",
    "display",
    "system",
    "code",
    "reference",
    "id",
    "linkId",
    "line",
    "city",
    "state",
    "postalCode",
    "country",
    "district",
    "unit",
    "url",
    "status",
    "gender",
    "birthDate",
    "div",
    "version",
    "title",
    "description",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn compile_str(s: &str) -> Result<Expression, CompileError> {
        let mut env = CompileEnv::default();
        env.constants.insert("name_use".into(), Lit::Str("official".into()));
        Expression::compile(s, &env)
    }

    #[test]
    fn constants_are_inlined_and_unknown_ones_rejected() {
        let e = compile_str("name.where(use = %name_use)").unwrap();
        let Op::Call(_, Func::Where, args) = e.op else { panic!("{:?}", e.op) };
        assert!(
            matches!(&args[0], Op::Binary(BinaryOp::Eq, _, r) if matches!(r.as_ref(), Op::Lit(Lit::Str(s)) if s == "official"))
        );
        let err = compile_str("name.where(use = %wrong)").unwrap_err();
        assert!(err.0.contains("undefined constant %wrong"), "{err}");
        assert!(err.0.contains("name_use"), "{err}");
    }

    #[test]
    fn of_type_on_a_member_becomes_a_choice_lookup() {
        let e = compile_str("value.ofType(Quantity).value").unwrap();
        let Op::Path(None, path) = e.op else { panic!("{:?}", e.op) };
        assert!(matches!(&path.steps[0], Step::Choice { choice_key, .. } if choice_key.as_ref() == "valueQuantity"));
        assert_eq!(path.steps[1], Step::member("value"));
        let e = compile_str("deceased.ofType(FHIR.boolean)").unwrap();
        assert!(
            matches!(&e.op, Op::Path(None, p) if matches!(&p.steps[0], Step::Choice { choice_key, .. } if choice_key.as_ref() == "deceasedBoolean"))
        );
        assert_eq!(e.kind, Kind::Boolean);
    }

    #[test]
    fn navigation_chains_fuse_into_one_path() {
        let e = compile_str("code.coding.first().system").unwrap();
        let Op::Path(None, path) = e.op else { panic!("{:?}", e.op) };
        let names = Step::member;
        assert_eq!(path.steps, vec![names("code"), names("coding"), Step::Nth(0), names("system")]);
        let e = compile_str("name[1].family").unwrap();
        assert!(matches!(&e.op, Op::Path(None, p) if p.steps[1] == Step::Nth(1)));
        let e = compile_str("name.where(use = 'official').family").unwrap();
        assert!(
            matches!(&e.op, Op::Path(Some(focus), p) if matches!(focus.as_ref(), Op::Call(_, Func::Where, _)) && p.steps.len() == 1)
        );
    }

    #[test]
    fn kinds_and_arity() {
        assert_eq!(compile_str("name.family").unwrap().kind, Kind::String);
        assert_eq!(compile_str("active").unwrap().kind, Kind::Unknown);
        assert_eq!(compile_str("%rowIndex").unwrap().kind, Kind::Integer);
        assert_eq!(compile_str("a.b > 1 and c.exists()").unwrap().kind, Kind::Boolean);
        assert!(compile_str("first(1)").unwrap_err().0.contains("takes 0 argument"));
        assert!(compile_str("@@").is_err());
        assert!(compile_str("ofType('x')").is_err());
    }
}
