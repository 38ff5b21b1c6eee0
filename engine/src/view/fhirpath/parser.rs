//! FHIRPath lexer and recursive-descent parser: turns the expression text found in a
//! ViewDefinition into the [`Expr`] tree of [`super::ast`], following the FHIRPath N1
//! grammar (<http://hl7.org/fhirpath/N1/grammar.html>), and reports malformed input as a
//! [`ParseError`] that points at the byte where the problem was found.

use std::fmt;

use super::ast::*;
use crate::view::temporal::Temporal;

/// Deepest parser recursion accepted: each parenthesis, bracket, argument list and
/// operand of a tighter-binding operator costs one level.
///
/// Without it `((((…` would overflow the stack instead of failing cleanly. An unoptimised
/// build spends about 10 KiB of stack per level, so 64 stays well inside a 2 MiB thread
/// stack while being far deeper than any real view expression.
const MAX_NESTING: usize = 64;

/// Tallest syntax tree accepted. Whatever walks the tree (the compiler, `Drop`, `Debug`)
/// recurses too, so a ten-thousand-link `a.b.c…` chain, which the parser itself builds in
/// a loop, must still be refused here.
const MAX_HEIGHT: usize = 256;

/// A FHIRPath expression could not be parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    /// What went wrong, phrased as what was expected and what was found.
    pub message: String,
    /// Byte offset into the input at which the problem was detected.
    pub offset: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at position {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for ParseError {}

fn fail<T>(offset: usize, message: impl Into<String>) -> Result<T, ParseError> {
    let message = message.into();
    Err(ParseError { message, offset })
}

/// Parses a FHIRPath expression into its syntax tree.
///
/// Names of functions and types are not checked here: that is the compiler's job.
///
/// # Errors
///
/// A [`ParseError`] at the first problem: a malformed token, a missing operand or
/// bracket, input left over after a complete expression, or nesting deeper than the
/// parser accepts (64 brackets or calls, or a 256-level tree).
///
/// # Example
///
/// ```
/// use fhirhouse::view::fhirpath::ast::Expr;
/// use fhirhouse::view::fhirpath::parser::parse;
///
/// let expr = parse("name.family").unwrap();
/// assert_eq!(expr, Expr::Path(Box::new(Expr::Member("name".into())), "family".into()));
///
/// let err = parse("name.family )").unwrap_err();
/// assert_eq!(err.offset, 12);
/// ```
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let toks = Lexer::tokenize(input)?;
    let (src, pos, depth) = (input, 0, 0);
    let mut parser = Parser { src, toks, pos, depth };
    let (expr, _) = parser.expr(0)?;
    let t = parser.peek();
    match &t.tok {
        Tok::Eof => Ok(expr),
        Tok::Punct(")") => fail(t.start, "unexpected ')' without a matching '('"),
        Tok::Punct("]") => fail(t.start, "unexpected ']' without a matching '['"),
        _ => Err(parser.unexpected("an operator or end of expression")),
    }
}

// ---- Lexer ----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A plain identifier. Keywords arrive here too: only the parser knows whether the
    /// position calls for an operator or a name.
    Ident(String),
    /// A backtick-delimited identifier; never a keyword.
    Delimited(String),
    /// Digits, with a fraction if any; the parser reads the text from the source span
    /// because a quantity keeps it verbatim.
    Number,
    /// A string, date, date-time or time literal, already decoded.
    Lit(Literal),
    Special(SpecialVar),
    External(String),
    Punct(&'static str),
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

/// Longest first, so `<=` wins over `<`.
const PUNCT: [&str; 22] =
    ["!=", "!~", "<=", ">=", ".", "[", "]", "(", ")", ",", "{", "}", "+", "-", "*", "/", "&", "|", "=", "~", "<", ">"];

const DATE_TIME_FORMS: &str =
    "expected @YYYY[-MM[-DD]], @YYYY-MM-DDThh[:mm[:ss[.fff]]][Z|+hh:mm] or @Thh[:mm[:ss[.fff]]]";

struct Lexer<'a> {
    src: &'a str,
    /// Always on a char boundary: the lexer only steps over ASCII bytes or whole chars.
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn tokenize(src: &'a str) -> Result<Vec<Token>, ParseError> {
        let mut lx = Lexer { src, pos: 0 };
        let mut out = Vec::new();
        loop {
            lx.skip_trivia()?;
            let start = lx.pos;
            let Some(c) = src[start..].chars().next() else {
                let (tok, end) = (Tok::Eof, start);
                out.push(Token { tok, start, end });
                return Ok(out);
            };
            let tok = lx.token(c, start)?;
            let end = lx.pos;
            out.push(Token { tok, start, end });
        }
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = &self.src[self.pos..];
            match rest.as_bytes() {
                [b' ' | b'\t' | b'\n' | b'\r', ..] => self.pos += 1,
                [b'/', b'/', ..] => self.pos += rest.find('\n').unwrap_or(rest.len()),
                [b'/', b'*', ..] => match rest.find("*/") {
                    Some(i) => self.pos += i + 2,
                    None => return fail(self.pos, "unterminated comment: expected '*/'"),
                },
                _ => return Ok(()),
            }
        }
    }

    fn token(&mut self, c: char, start: usize) -> Result<Tok, ParseError> {
        Ok(match c {
            'A'..='Z' | 'a'..='z' | '_' => Tok::Ident(self.word().to_string()),
            '`' => Tok::Delimited(self.quoted(b'`')?),
            '\'' => Tok::Lit(Literal::String(self.quoted(b'\'')?)),
            '0'..='9' => {
                let b = self.src.as_bytes();
                self.pos = skip_digits(b, self.pos);
                // `1.abs()` calls abs on 1: a dot is only a decimal point before a digit.
                if b.get(self.pos) == Some(&b'.') && digits(b, self.pos + 1, 1) {
                    self.pos = skip_digits(b, self.pos + 1);
                }
                Tok::Number
            }
            '@' => Tok::Lit(self.date_time(start)?),
            '$' => {
                self.pos += 1;
                match self.word() {
                    "this" => Tok::Special(SpecialVar::This),
                    "index" => Tok::Special(SpecialVar::Index),
                    "total" => Tok::Special(SpecialVar::Total),
                    other => {
                        let msg = format!("unknown variable '${other}'");
                        return fail(start, msg + ": expected $this, $index or $total");
                    }
                }
            }
            '%' => {
                self.pos += 1;
                match self.src.as_bytes().get(self.pos) {
                    Some(b'`') => Tok::External(self.quoted(b'`')?),
                    Some(b'\'') => Tok::External(self.quoted(b'\'')?),
                    Some(b'A'..=b'Z' | b'a'..=b'z' | b'_') => Tok::External(self.word().into()),
                    _ => return fail(start, "expected a constant name after '%', e.g. %resource"),
                }
            }
            _ => match PUNCT.iter().find(|p| self.src[start..].starts_with(**p)) {
                Some(p) => {
                    self.pos += p.len();
                    Tok::Punct(p)
                }
                None if c == '!' => return fail(start, "unexpected '!': did you mean '!='?"),
                None => return fail(start, format!("unexpected character '{c}'")),
            },
        })
    }

    /// Consumes `[A-Za-z0-9_]*`.
    fn word(&mut self) -> &'a str {
        let (src, start) = (self.src, self.pos);
        let is_word = |b: &&u8| b.is_ascii_alphanumeric() || **b == b'_';
        self.pos += src.as_bytes()[start..].iter().take_while(is_word).count();
        &src[start..self.pos]
    }

    /// Reads a `'string'` or `` `identifier` `` starting at the opening delimiter.
    fn quoted(&mut self, delim: u8) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.src[self.pos..].chars().next() else {
                let what = if delim == b'`' { "identifier" } else { "string" };
                let msg = format!("unterminated {what}: expected a closing {}", delim as char);
                return fail(start, msg);
            };
            if c == delim as char {
                self.pos += 1;
                return Ok(out);
            }
            if c == '\\' {
                out.push(self.escape()?);
            } else {
                out.push(c);
                self.pos += c.len_utf8();
            }
        }
    }

    fn escape(&mut self) -> Result<char, ParseError> {
        let at = self.pos;
        self.pos += 2;
        Ok(match self.src[at + 1..].chars().next() {
            Some(c @ ('\'' | '"' | '`' | '\\' | '/')) => c,
            Some('f') => '\u{c}',
            Some('n') => '\n',
            Some('r') => '\r',
            Some('t') => '\t',
            Some('u') => return self.unicode_escape(at),
            other => {
                let shown = other.map(String::from).unwrap_or_default();
                let msg = format!("invalid escape sequence '\\{shown}': expected one of ");
                return fail(at, msg + r#"\' \" \` \\ \/ \f \n \r \t \uXXXX"#);
            }
        })
    }

    fn unicode_escape(&mut self, at: usize) -> Result<char, ParseError> {
        let b = self.src.as_bytes();
        let bad = || fail(at, "invalid unicode escape: expected \\u and 4 hex digits");
        let Some(hi) = hex4(b, at + 2) else {
            return bad();
        };
        self.pos = at + 6;
        // Characters outside the BMP arrive as a surrogate pair of escapes, as JSON writes them.
        if (0xD800..0xDC00).contains(&hi) && b.get(at + 6..at + 8) == Some(b"\\u") {
            if let Some(lo) = hex4(b, at + 8).filter(|lo| (0xDC00..0xE000).contains(lo)) {
                self.pos = at + 12;
                let pair = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                return char::from_u32(pair).map_or_else(bad, Ok);
            }
        }
        char::from_u32(hi).map_or_else(bad, Ok)
    }

    /// Follows the N1 DATE / DATETIME / TIME lexer rules exactly.
    fn date_time(&mut self, start: usize) -> Result<Literal, ParseError> {
        let src = self.src;
        let b = src.as_bytes();
        let text = |from: usize, to: usize| src[from..to].to_string();
        let junk = |c: &u8| c.is_ascii_alphanumeric() || b"_-+:.".contains(c);
        let invalid = |end: usize| {
            let stop = end + b[end..].iter().take_while(|c| junk(c)).count();
            let msg = format!("invalid date/time literal '{}': ", &src[start..stop]);
            fail(start, msg + DATE_TIME_FORMS)
        };
        let (lit, end) = if b.get(start + 1) == Some(&b'T') {
            let Some(end) = time_format(b, start + 2) else {
                return invalid(start + 1);
            };
            (Literal::Time(text(start + 2, end)), end)
        } else if digits(b, start + 1, 4) {
            let mut p = start + 5;
            for _ in 0..2 {
                if b.get(p) == Some(&b'-') && digits(b, p + 1, 2) {
                    p += 3;
                }
            }
            match (b.get(p), time_format(b, p + 1)) {
                (Some(b'T'), Some(t)) => {
                    let end = timezone(b, t);
                    (Literal::DateTime(text(start + 1, end)), end)
                }
                // `@2015T`: a DateTime at year precision; the lone T is not part of the value.
                (Some(b'T'), None) => (Literal::DateTime(text(start + 1, p)), p + 1),
                _ => (Literal::Date(text(start + 1, p)), p),
            }
        } else {
            return invalid(start + 1);
        };
        // The grammar would happily split `@2020-01-0` into `@2020-01` minus `0`, or
        // `@2020-01-01T10:00+02` into a DateTime plus 2; those are typos, not arithmetic,
        // and arithmetic can always be written with a space before the operator.
        let next = b.get(end);
        let alnum = next.is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_');
        if alnum || (next.is_some_and(junk) && digits(b, end + 1, 1)) {
            return invalid(end);
        }
        // The shape is right; the values must be too. Checked here, once, so that
        // `@2020-13-01` is a syntax error rather than a value every comparison and
        // boundary computation must then cope with per resource.
        let valid = match &lit {
            Literal::Date(t) => Temporal::parse_date(t).is_some(),
            Literal::DateTime(t) => Temporal::parse_datetime(t).is_some(),
            Literal::Time(t) => Temporal::parse_time(t).is_some(),
            _ => true,
        };
        if !valid {
            const DATE: &str = "year 0001-9999, month 01-12, a day the month has";
            const TIME: &str = "hour 00-23, minute 00-59, second 00-60";
            let what = match lit {
                Literal::Time(_) => format!("time ({TIME})"),
                Literal::DateTime(_) => format!("dateTime ({DATE}, {TIME}, offset -14:00 to +14:00)"),
                _ => format!("date ({DATE})"),
            };
            return fail(start, format!("'{}' is not a valid {what}", &src[start..end]));
        }
        self.pos = end;
        Ok(lit)
    }
}

/// Whether `n` ASCII digits start at `at`.
fn digits(b: &[u8], at: usize, n: usize) -> bool {
    matches!(b.get(at..at + n), Some(s) if s.iter().all(u8::is_ascii_digit))
}

fn skip_digits(b: &[u8], at: usize) -> usize {
    at + b[at..].iter().take_while(|c| c.is_ascii_digit()).count()
}

fn hex4(b: &[u8], at: usize) -> Option<u32> {
    let hex = |acc: u32, c: &u8| Some(acc * 16 + char::from(*c).to_digit(16)?);
    b.get(at..at + 4)?.iter().try_fold(0, hex)
}

/// `hh(:mm(:ss(.f+)?)?)?` at `at`; returns where it ends.
fn time_format(b: &[u8], at: usize) -> Option<usize> {
    if !digits(b, at, 2) {
        return None;
    }
    let mut p = at + 2;
    for _ in 0..2 {
        if b.get(p) == Some(&b':') && digits(b, p + 1, 2) {
            p += 3;
        }
    }
    if p == at + 8 && b.get(p) == Some(&b'.') && digits(b, p + 1, 1) {
        p = skip_digits(b, p + 1);
    }
    Some(p)
}

/// `Z` or `(+|-)hh:mm` at `at`, if present; returns where the literal ends.
fn timezone(b: &[u8], at: usize) -> usize {
    match &b[at..] {
        [b'Z', ..] => at + 1,
        [b'+' | b'-', h1, h2, b':', m1, m2, ..] if [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()) => at + 6,
        _ => at,
    }
}

// ---- Parser ---------------------------------------------------------------------------

/// An expression and the height of its tree (a leaf is 1), so depth can be capped
/// while building rather than by walking the tree afterwards.
type Parsed = Result<(Expr, usize), ParseError>;

const KEYWORDS: [&str; 12] =
    ["and", "or", "xor", "implies", "div", "mod", "in", "contains", "is", "as", "true", "false"];

/// Calendar-duration units, in the singular or the plural.
fn is_calendar_unit(word: &str) -> bool {
    let units = ["year", "month", "week", "day", "hour", "minute", "second", "millisecond"];
    units.contains(&word.strip_suffix('s').unwrap_or(word))
}

fn is_keyword(word: &str) -> bool {
    KEYWORDS.contains(&word)
}

enum Infix {
    Binary(BinaryOp),
    Is,
    As,
}

/// The operator a token denotes in operator position, with its precedence (higher binds tighter).
///
/// Only here are keywords operators. In operand position (see [`Parser::term`]) a keyword
/// followed by `(` is a function name, `true`/`false` are literals, and `as`, `contains`,
/// `in`, `is` are plain member names (the N1 grammar lists those four as identifiers);
/// after a `.` every word is a member or method name. So `name.contains('x')` and
/// `contains('x')` are calls while `name contains 'x'` is the operator: one token of
/// lookahead decides, and a backtick-quoted word is never an operator.
fn infix(tok: &Tok) -> Option<(Infix, u8)> {
    use BinaryOp::*;
    let op = match tok {
        Tok::Punct(p) => *p,
        Tok::Ident(w) => w.as_str(),
        _ => return None,
    };
    let bin = |op, prec| Some((Infix::Binary(op), prec));
    match op {
        "*" => bin(Mul, 10),
        "/" => bin(Div, 10),
        "div" => bin(IntDiv, 10),
        "mod" => bin(Mod, 10),
        "+" => bin(Add, 9),
        "-" => bin(Sub, 9),
        "&" => bin(Concat, 9),
        "is" => Some((Infix::Is, 8)),
        "as" => Some((Infix::As, 8)),
        "|" => bin(Union, 7),
        "<" => bin(Lt, 6),
        "<=" => bin(Le, 6),
        ">" => bin(Gt, 6),
        ">=" => bin(Ge, 6),
        "=" => bin(Eq, 5),
        "~" => bin(Equiv, 5),
        "!=" => bin(Ne, 5),
        "!~" => bin(NotEquiv, 5),
        "in" => bin(In, 4),
        "contains" => bin(Contains, 4),
        "and" => bin(And, 3),
        "or" => bin(Or, 2),
        "xor" => bin(Xor, 2),
        "implies" => bin(Implies, 1),
        _ => None,
    }
}

struct Parser<'a> {
    src: &'a str,
    /// Never empty: always ends with `Tok::Eof`.
    toks: Vec<Token>,
    /// Never moves past the final `Eof`.
    pos: usize,
    /// Current recursion depth of [`Parser::expr`].
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.toks[self.pos].clone();
        self.pos = (self.pos + 1).min(self.toks.len() - 1);
        t
    }

    fn at(&self, punct: &str) -> bool {
        matches!(self.peek().tok, Tok::Punct(p) if p == punct)
    }

    fn eat(&mut self, punct: &str) -> bool {
        let found = self.at(punct);
        if found {
            self.next();
        }
        found
    }

    fn describe(&self, t: &Token) -> String {
        let full = &self.src[t.start..t.end];
        let mut text: String = full.chars().take(40).collect();
        if text.len() < full.len() {
            text.push('…');
        }
        match &t.tok {
            Tok::Eof => "end of expression".to_string(),
            Tok::Ident(w) if is_keyword(w) => format!("keyword '{text}'"),
            Tok::Ident(_) | Tok::Delimited(_) => format!("identifier '{text}'"),
            Tok::Lit(Literal::String(_)) => format!("string {text}"),
            Tok::Lit(_) => format!("date/time literal {text}"),
            Tok::Number => format!("number {text}"),
            _ => format!("'{text}'"),
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.peek();
        let message = format!("expected {expected} but found {}", self.describe(t));
        let offset = t.start;
        ParseError { message, offset }
    }

    fn too_deep<T>(&self, why: &str) -> Result<T, ParseError> {
        let msg = format!("expression is nested too deeply ({why})");
        fail(self.peek().start, msg)
    }

    /// Height of a new node over children of height `child`, refused past [`MAX_HEIGHT`].
    fn grow(&self, child: usize) -> Result<usize, ParseError> {
        if child >= MAX_HEIGHT {
            return self.too_deep(&format!("its syntax tree would exceed {MAX_HEIGHT} levels"));
        }
        Ok(child + 1)
    }

    /// Precedence climbing: parses operators binding at least as tightly as `min_prec`.
    fn expr(&mut self, min_prec: u8) -> Parsed {
        if self.depth >= MAX_NESTING {
            let why = format!("more than {MAX_NESTING} levels of brackets, arguments and operators");
            return self.too_deep(&why);
        }
        self.depth += 1;
        let result = self.binary(min_prec);
        self.depth -= 1;
        result
    }

    fn binary(&mut self, min_prec: u8) -> Parsed {
        let (mut lhs, mut height) = self.unary()?;
        while let Some((op, prec)) = infix(&self.peek().tok) {
            if prec < min_prec {
                break;
            }
            self.next();
            let lhs_box = Box::new(lhs);
            lhs = match op {
                Infix::Binary(op) => {
                    // `prec + 1` makes every level left-associative.
                    let (rhs, h) = self.expr(prec + 1)?;
                    height = height.max(h);
                    Expr::Binary(op, lhs_box, Box::new(rhs))
                }
                Infix::Is => Expr::Is(lhs_box, self.type_specifier("is")?),
                Infix::As => Expr::As(lhs_box, self.type_specifier("as")?),
            };
            height = self.grow(height)?;
        }
        Ok((lhs, height))
    }

    /// `Qualified.Identifier` after `is` / `as`, dots kept.
    fn type_specifier(&mut self, op: &str) -> Result<String, ParseError> {
        let mut name = self.identifier(&format!("a type name after '{op}'"))?;
        while self.eat(".") {
            name.push('.');
            name.push_str(&self.identifier("a type name after '.'")?);
        }
        Ok(name)
    }

    fn identifier(&mut self, expected: &str) -> Result<String, ParseError> {
        match &self.peek().tok {
            Tok::Ident(s) | Tok::Delimited(s) => {
                let s = s.clone();
                self.next();
                Ok(s)
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    /// Signs bind looser than postfix (`-a.b` is `-(a.b)`); collected iteratively so a run
    /// of signs cannot recurse.
    fn unary(&mut self) -> Parsed {
        use UnaryOp::{Minus, Plus};
        let mut signs = Vec::new();
        while let Tok::Punct(sign @ ("+" | "-")) = self.peek().tok {
            signs.push(if sign == "-" { Minus } else { Plus });
            self.next();
        }
        let (mut expr, mut height) = self.postfix()?;
        for op in signs.into_iter().rev() {
            height = self.grow(height)?;
            expr = Expr::Unary(op, Box::new(expr));
        }
        Ok((expr, height))
    }

    fn postfix(&mut self) -> Parsed {
        let (mut expr, mut height) = self.term()?;
        loop {
            expr = if self.eat(".") {
                let name = self.identifier("a member or function name after '.'")?;
                if self.at("(") {
                    let (args, h) = self.arguments(&name)?;
                    height = height.max(h);
                    Expr::Method(Box::new(expr), FunctionCall { name, args })
                } else {
                    Expr::Path(Box::new(expr), name)
                }
            } else if self.at("[") {
                let open = self.next();
                let (index, h) = self.expr(0)?;
                self.close("]", &open)?;
                height = height.max(h);
                Expr::Index(Box::new(expr), Box::new(index))
            } else {
                return Ok((expr, height));
            };
            height = self.grow(height)?;
        }
    }

    fn close(&mut self, punct: &str, open: &Token) -> Result<(), ParseError> {
        if self.eat(punct) {
            return Ok(());
        }
        let expected = format!("'{punct}' to close the one at position {}", open.start);
        Err(self.unexpected(&expected))
    }

    /// A parenthesised argument list; the current token is the `(`.
    fn arguments(&mut self, name: &str) -> Result<(Vec<Expr>, usize), ParseError> {
        let open = self.next();
        let (mut args, mut height) = (Vec::new(), 0);
        if self.eat(")") {
            return Ok((args, height));
        }
        loop {
            let (arg, h) = self.expr(0)?;
            args.push(arg);
            height = height.max(h);
            if self.eat(")") {
                return Ok((args, height));
            }
            if !self.eat(",") {
                let at = open.start;
                let expected = format!("',' or ')' after an argument of {name}( at position {at}");
                return Err(self.unexpected(&expected));
            }
        }
    }

    fn term(&mut self) -> Parsed {
        let tok = self.next();
        let lit = |l| Ok((Expr::Literal(l), 1));
        match tok.tok {
            Tok::Ident(name) | Tok::Delimited(name) if self.at("(") => {
                let (args, h) = self.arguments(&name)?;
                Ok((Expr::Function(FunctionCall { name, args }), self.grow(h)?))
            }
            Tok::Ident(w) if w == "true" || w == "false" => lit(Literal::Boolean(w == "true")),
            // The N1 grammar also accepts these four operators as identifiers.
            Tok::Ident(w) if !is_keyword(&w) || matches!(&*w, "as" | "contains" | "in" | "is") => {
                Ok((Expr::Member(w), 1))
            }
            Tok::Delimited(name) => Ok((Expr::Member(name), 1)),
            Tok::Number => {
                let text = self.src[tok.start..tok.end].to_string();
                let unit = match &self.peek().tok {
                    Tok::Lit(Literal::String(u)) => Some(u.clone()),
                    Tok::Ident(u) if is_calendar_unit(u) => Some(u.clone()),
                    _ => None,
                };
                if let Some(unit) = unit {
                    self.next();
                    lit(Literal::Quantity(text, unit))
                } else if text.contains('.') {
                    lit(Literal::Decimal(text))
                } else if let Ok(i) = text.parse() {
                    lit(Literal::Integer(i))
                } else {
                    let msg = format!("integer {text} is out of range; write {text}.0 for a decimal");
                    fail(tok.start, msg)
                }
            }
            Tok::Lit(l) => lit(l),
            Tok::Special(v) => Ok((Expr::Invocation(v), 1)),
            Tok::External(name) => Ok((Expr::External(name), 1)),
            Tok::Punct("{") if self.eat("}") => lit(Literal::Empty),
            Tok::Punct("{") => Err(self.unexpected("'}' (a collection literal must be empty)")),
            Tok::Punct("(") => {
                let inner = self.expr(0)?;
                self.close(")", &tok)?;
                Ok(inner)
            }
            Tok::Ident(_) | Tok::Punct(_) | Tok::Eof => {
                let msg = format!("expected an expression but found {}", self.describe(&tok));
                fail(tok.start, msg)
            }
        }
    }
}

#[cfg(test)]
#[path = "parser_tests.rs"]
mod tests;
