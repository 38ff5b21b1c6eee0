//! The FHIRPath abstract syntax tree produced by [`super::parser`].
//!
//! The tree is deliberately close to the grammar in the FHIRPath N1 specification
//! (<http://hl7.org/fhirpath/N1/grammar.html>) so that the compiler in
//! [`super::compile`] can be read side by side with it.

/// A parsed FHIRPath expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal value such as `'abc'`, `42`, `1.5`, `true`, `@2020-01-01` or `{}`.
    Literal(Literal),
    /// A bare identifier at the start of a path or after a dot, e.g. `name` in `name.family`.
    /// Backtick-delimited identifiers arrive here without their backticks.
    Member(String),
    /// `$this`, `$index` or `$total`.
    Invocation(SpecialVar),
    /// `%name`: an external constant, e.g. `%rowIndex`, `%resource` or a ViewDefinition constant.
    External(String),
    /// A function call with no explicit focus, e.g. `where(...)` at the start of an expression
    /// or `getResourceKey()`.
    Function(FunctionCall),
    /// `focus.member`: navigation from the result of `focus`.
    Path(Box<Expr>, String),
    /// `focus.function(args)`: a function applied to the result of `focus`.
    Method(Box<Expr>, FunctionCall),
    /// `focus[index]`.
    Index(Box<Expr>, Box<Expr>),
    /// A unary `+` or `-` applied to an expression.
    Unary(UnaryOp, Box<Expr>),
    /// A binary operator.
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `expr is Type` (type specifier kept verbatim, e.g. `FHIR.Quantity` or `string`).
    Is(Box<Expr>, String),
    /// `expr as Type`.
    As(Box<Expr>, String),
}

impl Expr {
    /// Whether an integer this expression yields is an `integer64` (FHIRPath's Long) rather
    /// than a 32-bit `integer`: it comes from a constant `is_long` names, or from a literal
    /// too big for 32 bits, through arithmetic, unions, indexing, `iif` and the functions
    /// that pass items through (`first()`, `where(...)`, ...).
    ///
    /// The compiler's static kind says only "integer"; an untyped column needs the width too,
    /// or every row of `%big` (from `valueInteger64`) would fail the 32-bit range check.
    ///
    /// ```
    /// use fhirhouse::view::fhirpath::parser::parse;
    /// let is_long = |name: &str| name == "big";
    /// assert!(parse("(%big + 1) * 2").unwrap().is_integer64(&is_long));
    /// assert!(!parse("name.count() + %small").unwrap().is_integer64(&is_long));
    /// ```
    pub fn is_integer64(&self, is_long: &dyn Fn(&str) -> bool) -> bool {
        use BinaryOp::*;
        match self {
            Expr::Literal(Literal::Integer(n)) => i32::try_from(*n).is_err(),
            Expr::External(name) => is_long(name),
            Expr::Binary(Add | Sub | Mul | IntDiv | Mod | Union, a, b) => {
                a.is_integer64(is_long) || b.is_integer64(is_long)
            }
            Expr::Unary(_, e) | Expr::Index(e, _) => e.is_integer64(is_long),
            Expr::Function(call) | Expr::Method(_, call) if call.name == "iif" => {
                call.args.iter().skip(1).any(|a| a.is_integer64(is_long))
            }
            Expr::Method(focus, call) => {
                const PASS_THROUGH: [&str; 11] =
                    ["first", "last", "single", "tail", "take", "skip", "where", "distinct", "abs", "union", "combine"];
                PASS_THROUGH.contains(&call.name.as_str())
                    && (focus.is_integer64(is_long)
                        || (matches!(call.name.as_str(), "union" | "combine")
                            && call.args.iter().any(|a| a.is_integer64(is_long))))
            }
            _ => false,
        }
    }
}

/// A function invocation: name plus argument expressions, unevaluated.
///
/// Arguments stay as expressions because several FHIRPath functions (`where`, `exists`,
/// `select`, `all`, `repeat`) evaluate them once per input item with `$this` rebound, and
/// `ofType`/`getReferenceKey` take a type specifier that is parsed as an identifier.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    /// The function name as written, e.g. `where`.
    pub name: String,
    /// The argument expressions, in order.
    pub args: Vec<Expr>,
}

/// The special invocation variables of FHIRPath.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialVar {
    /// `$this`
    This,
    /// `$index`
    Index,
    /// `$total`
    Total,
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// `+x`
    Plus,
    /// `-x`
    Minus,
}

/// Binary operators, by FHIRPath precedence group (highest first in the comments).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    // multiplicative
    /// `*`
    Mul,
    /// `/` (always decimal division)
    Div,
    /// `div` (integer division)
    IntDiv,
    /// `mod`
    Mod,
    // additive
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `&` (string concatenation treating empty as '')
    Concat,
    // union
    /// `|`
    Union,
    // inequality
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    // equality
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `~`
    Equiv,
    /// `!~`
    NotEquiv,
    // membership
    /// `in`
    In,
    /// `contains`
    Contains,
    // logical
    /// `and`
    And,
    /// `or`
    Or,
    /// `xor`
    Xor,
    /// `implies`
    Implies,
}

/// Literal values as written in the expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// `{}`: the empty collection.
    Empty,
    /// `true` / `false`.
    Boolean(bool),
    /// A string literal with escapes already resolved (`'it\'s'` → `it's`).
    String(String),
    /// An integer literal such as `42` (no decimal point).
    Integer(i64),
    /// A decimal literal kept as written (e.g. `"1.50"`) so precision is not lost.
    Decimal(String),
    /// `@2020-01-01`: the text after `@`.
    Date(String),
    /// `@2020-01-01T10:00:00Z` or `@2020T`: the text after `@`, trailing lone `T` removed.
    DateTime(String),
    /// `@T12:30`: the text after `@T`.
    Time(String),
    /// A quantity literal such as `4 'mg'` or `3 days`: number text and unit.
    Quantity(String, String),
}
