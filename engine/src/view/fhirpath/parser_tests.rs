use super::*;
use BinaryOp::*;

fn p(s: &str) -> Expr {
    parse(s).unwrap_or_else(|e| panic!("{s:?} failed: {e}"))
}

fn err(s: &str) -> ParseError {
    match parse(s) {
        Ok(e) => panic!("{s:?} should fail but parsed as {e:?}"),
        Err(e) => e,
    }
}

fn m(name: &str) -> Expr {
    Expr::Member(name.into())
}

fn path(e: Expr, name: &str) -> Expr {
    Expr::Path(Box::new(e), name.into())
}

fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    Expr::Binary(op, Box::new(l), Box::new(r))
}

fn lit(l: Literal) -> Expr {
    Expr::Literal(l)
}

fn int(i: i64) -> Expr {
    lit(Literal::Integer(i))
}

fn s(v: &str) -> Expr {
    lit(Literal::String(v.into()))
}

fn call(name: &str, args: Vec<Expr>) -> FunctionCall {
    FunctionCall { name: name.into(), args }
}

fn func(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(call(name, args))
}

fn method(e: Expr, name: &str, args: Vec<Expr>) -> Expr {
    Expr::Method(Box::new(e), call(name, args))
}

#[test]
fn precedence_each_adjacent_pair() {
    // Each pair: the looser operator on the outside whichever side it is written on.
    let levels: [(&str, BinaryOp); 10] = [
        ("implies", Implies),
        ("or", Or),
        ("and", And),
        ("in", In),
        ("=", Eq),
        ("<", Lt),
        ("|", Union),
        ("+", Add),
        ("*", Mul),
        ("div", IntDiv),
    ];
    for w in levels.windows(2) {
        let ((lo, lo_op), (hi, hi_op)) = (w[0], w[1]);
        if lo_op == Mul && hi_op == IntDiv {
            continue; // same level
        }
        let e = p(&format!("a {lo} b {hi} c"));
        assert_eq!(e, bin(lo_op, m("a"), bin(hi_op, m("b"), m("c"))), "{lo} vs {hi}");
        let e = p(&format!("a {hi} b {lo} c"));
        assert_eq!(e, bin(lo_op, bin(hi_op, m("a"), m("b")), m("c")), "{hi} vs {lo}");
    }
}

#[test]
fn precedence_type_operators() {
    // Type operators sit between union and additive.
    let e = p("a | b is Quantity");
    assert_eq!(e, bin(Union, m("a"), Expr::Is(Box::new(m("b")), "Quantity".into())));
    let e = p("a + b as FHIR.Quantity");
    assert_eq!(e, Expr::As(Box::new(bin(Add, m("a"), m("b"))), "FHIR.Quantity".into()));
    assert_eq!(p("x is System.String"), Expr::Is(Box::new(m("x")), "System.String".into()));
    assert_eq!(p("x is `FHIR`.code"), Expr::Is(Box::new(m("x")), "FHIR.code".into()));
    let e = p("(x as Quantity).value");
    assert_eq!(e, path(Expr::As(Box::new(m("x")), "Quantity".into()), "value"));
}

#[test]
fn every_operator_maps() {
    let cases = [
        ("*", Mul),
        ("/", Div),
        ("div", IntDiv),
        ("mod", Mod),
        ("+", Add),
        ("-", Sub),
        ("&", Concat),
        ("|", Union),
        ("<", Lt),
        ("<=", Le),
        (">", Gt),
        (">=", Ge),
        ("=", Eq),
        ("!=", Ne),
        ("~", Equiv),
        ("!~", NotEquiv),
        ("in", In),
        ("contains", Contains),
        ("and", And),
        ("or", Or),
        ("xor", Xor),
        ("implies", Implies),
    ];
    for (text, op) in cases {
        assert_eq!(p(&format!("a {text} b")), bin(op, m("a"), m("b")), "{text}");
    }
    // Same-level operators mix left to right.
    assert_eq!(p("a or b xor c"), bin(Xor, bin(Or, m("a"), m("b")), m("c")));
    assert_eq!(p("a = b != c"), bin(Ne, bin(Eq, m("a"), m("b")), m("c")));
    assert_eq!(p("a * b mod c"), bin(Mod, bin(Mul, m("a"), m("b")), m("c")));
    assert_eq!(p("a & b - c"), bin(Sub, bin(Concat, m("a"), m("b")), m("c")));
}

#[test]
fn left_associative() {
    assert_eq!(p("1 - 2 - 3"), bin(Sub, bin(Sub, int(1), int(2)), int(3)));
    assert_eq!(p("8 / 4 / 2"), bin(Div, bin(Div, int(8), int(4)), int(2)));
    assert_eq!(p("a implies b implies c"), bin(Implies, bin(Implies, m("a"), m("b")), m("c")));
    assert_eq!(p("a | b | c"), bin(Union, bin(Union, m("a"), m("b")), m("c")));
    let e = p("x as A as B");
    assert_eq!(e, Expr::As(Box::new(Expr::As(Box::new(m("x")), "A".into())), "B".into()));
}

#[test]
fn unary_and_postfix() {
    let neg = |e| Expr::Unary(UnaryOp::Minus, Box::new(e));
    assert_eq!(p("-1"), neg(int(1)));
    assert_eq!(p("+1"), Expr::Unary(UnaryOp::Plus, Box::new(int(1))));
    assert_eq!(p("- -1"), neg(neg(int(1))));
    assert_eq!(p("-a.b"), neg(path(m("a"), "b")));
    assert_eq!(p("-a * b"), bin(Mul, neg(m("a")), m("b")));
    assert_eq!(p("a - -1"), bin(Sub, m("a"), neg(int(1))));
    assert_eq!(p("-1.5"), neg(lit(Literal::Decimal("1.5".into()))));
    assert_eq!(p("1.abs()"), method(int(1), "abs", vec![]));
    let e = p("a[0].b[1]");
    let idx = |e, i| Expr::Index(Box::new(e), Box::new(int(i)));
    assert_eq!(e, idx(path(idx(m("a"), 0), "b"), 1));
}

#[test]
fn literals() {
    assert_eq!(p("{}"), lit(Literal::Empty));
    assert_eq!(p("{ }"), lit(Literal::Empty));
    assert_eq!(p("true"), lit(Literal::Boolean(true)));
    assert_eq!(p("false"), lit(Literal::Boolean(false)));
    assert_eq!(p("'abc'"), s("abc"));
    assert_eq!(p("''"), s(""));
    assert_eq!(p("'héllo ☃'"), s("héllo ☃"));
    assert_eq!(p("42"), int(42));
    assert_eq!(p("007"), int(7));
    assert_eq!(p("9223372036854775807"), int(i64::MAX));
    assert_eq!(p("1.0"), lit(Literal::Decimal("1.0".into())));
    assert_eq!(p("1.50"), lit(Literal::Decimal("1.50".into())));
    assert_eq!(p("@2020-01-01"), lit(Literal::Date("2020-01-01".into())));
    assert_eq!(p("@2020-01"), lit(Literal::Date("2020-01".into())));
    assert_eq!(p("@2020"), lit(Literal::Date("2020".into())));
    let dt = |v: &str| lit(Literal::DateTime(v.into()));
    assert_eq!(p("@2015-02-07T13:28:17.239+02:00"), dt("2015-02-07T13:28:17.239+02:00"));
    assert_eq!(p("@2020-01-01T10:00:00.000+02:00"), dt("2020-01-01T10:00:00.000+02:00"));
    assert_eq!(p("@2020-01-01T10:00:00Z"), dt("2020-01-01T10:00:00Z"));
    assert_eq!(p("@2020-01-01T10:00-05:00"), dt("2020-01-01T10:00-05:00"));
    assert_eq!(p("@2020-01-01T10"), dt("2020-01-01T10"));
    assert_eq!(p("@2020-01T"), dt("2020-01"));
    assert_eq!(p("@2015T"), dt("2015"));
    assert_eq!(p("@T12:30:00.123"), lit(Literal::Time("12:30:00.123".into())));
    assert_eq!(p("@T12"), lit(Literal::Time("12".into())));
    let q = |n: &str, u: &str| lit(Literal::Quantity(n.into(), u.into()));
    assert_eq!(p("4 'mg'"), q("4", "mg"));
    assert_eq!(p("1.5 'kg/m2'"), q("1.5", "kg/m2"));
    assert_eq!(p("3 days"), q("3", "days"));
    let units = ["year", "month", "week", "day", "hour", "minute", "second", "millisecond"];
    for unit in units.iter().flat_map(|u| [u.to_string(), format!("{u}s")]) {
        assert_eq!(p(&format!("2 {unit}")), q("2", &unit));
    }
    assert_eq!(p("@2020-01-01 + 1 day"), bin(Add, lit(Literal::Date("2020-01-01".into())), q("1", "day")));
    assert_eq!(p("-5 'mg'"), Expr::Unary(UnaryOp::Minus, Box::new(q("5", "mg"))));
}

#[test]
fn string_escapes() {
    assert_eq!(p(r"'it\'s'"), s("it's"));
    assert_eq!(p(r#"'\"\`\\\/'"#), s("\"`\\/"));
    assert_eq!(p(r"'\f\n\r\t'"), s("\u{c}\n\r\t"));
    assert_eq!(p(r"'\u00e9\u00E9'"), s("éé"));
    assert_eq!(p(r"'\uD83D\uDE00'"), s("😀"));
    assert_eq!(p(r"`a\`b`"), m("a`b"));
    assert!(err(r"'\x'").message.contains("invalid escape"));
    assert_eq!(err(r"'ab\u12'").offset, 3);
    assert!(err(r"'\uD83D'").message.contains("unicode"));
    assert_eq!(err(r"'abc\").offset, 4);
}

#[test]
fn identifiers_and_specials() {
    assert_eq!(p("`given name`"), m("given name"));
    assert_eq!(p("name.`given name`"), path(m("name"), "given name"));
    assert_eq!(p("_x1"), m("_x1"));
    assert_eq!(p("%rowIndex"), Expr::External("rowIndex".into()));
    assert_eq!(p("%`vs-name`"), Expr::External("vs-name".into()));
    assert_eq!(p("%'us-zip'"), Expr::External("us-zip".into()));
    assert_eq!(p("$this"), Expr::Invocation(SpecialVar::This));
    assert_eq!(p("$index"), Expr::Invocation(SpecialVar::Index));
    assert_eq!(p("$total"), Expr::Invocation(SpecialVar::Total));
    assert_eq!(p("$this.given"), path(Expr::Invocation(SpecialVar::This), "given"));
    assert_eq!(p("getResourceKey()"), func("getResourceKey", vec![]));
    assert_eq!(p("`where`(x)"), func("where", vec![m("x")]));
}

#[test]
fn keywords_as_names() {
    assert_eq!(p("name.contains('x')"), method(m("name"), "contains", vec![s("x")]));
    assert_eq!(p("name contains 'x'"), bin(Contains, m("name"), s("x")));
    assert_eq!(p("contains('x')"), func("contains", vec![s("x")]));
    assert_eq!(p("a.div"), path(m("a"), "div"));
    assert_eq!(p("a.and.or"), path(path(m("a"), "and"), "or"));
    assert_eq!(p("x.is(Quantity)"), method(m("x"), "is", vec![m("Quantity")]));
    assert_eq!(p("x.as(Quantity)"), method(m("x"), "as", vec![m("Quantity")]));
    assert_eq!(p("contains"), m("contains"));
    assert_eq!(p("`and` and `or`"), bin(And, m("and"), m("or")));
    assert_eq!(p("a contains (b)"), bin(Contains, m("a"), m("b")));
    assert_eq!(err("and").message, "expected an expression but found keyword 'and'");
}

#[test]
fn view_definition_expressions() {
    let e = p("name.where(use = %name_use).family");
    let cond = bin(Eq, m("use"), Expr::External("name_use".into()));
    assert_eq!(e, path(method(m("name"), "where", vec![cond]), "family"));

    let e = p("name[%name_index].family");
    let idx = Expr::Index(Box::new(m("name")), Box::new(Expr::External("name_index".into())));
    assert_eq!(e, path(idx, "family"));

    let e = p("extension('http://x').extension('ombCategory').value.ofType(Coding).code.first()");
    let ext = method(func("extension", vec![s("http://x")]), "extension", vec![s("ombCategory")]);
    let coding = method(path(ext, "value"), "ofType", vec![m("Coding")]);
    assert_eq!(e, method(path(coding, "code"), "first", vec![]));

    let e = p("getResourceKey() = link.other.getReferenceKey(Patient)");
    let rhs = method(path(m("link"), "other"), "getReferenceKey", vec![m("Patient")]);
    assert_eq!(e, bin(Eq, func("getResourceKey", vec![]), rhs));

    let e = p("(gender = 'male').not()");
    assert_eq!(e, method(bin(Eq, m("gender"), s("male")), "not", vec![]));

    let e = p("where(value.ofType(integer) > 11).exists()");
    let cond = bin(Gt, method(m("value"), "ofType", vec![m("integer")]), int(11));
    assert_eq!(e, method(func("where", vec![cond]), "exists", vec![]));

    let e = p("value.ofType(Range).low.value + value.ofType(Range).high.value");
    let side = |bound| path(path(method(m("value"), "ofType", vec![m("Range")]), bound), "value");
    assert_eq!(e, bin(Add, side("low"), side("high")));

    assert_eq!(p("telecom.where(false)"), method(m("telecom"), "where", vec![lit(Literal::Boolean(false))]));
    assert_eq!(p("name.given.join(',')"), method(path(m("name"), "given"), "join", vec![s(",")]));
    let e = p("iif(a, 'x', 'y')");
    assert_eq!(e, func("iif", vec![m("a"), s("x"), s("y")]));
}

#[test]
fn whitespace_and_comments() {
    let want = bin(Add, m("a"), m("b"));
    assert_eq!(p(" \t\r\na\n+\tb "), want);
    assert_eq!(p("a // trailing comment\n + b // end"), want);
    assert_eq!(p("/* lead */ a /* mid\n */ + b/**/"), want);
    assert_eq!(p("a.where ( x )"), method(m("a"), "where", vec![m("x")]));
    assert_eq!(err("a /* open").offset, 2);
    assert_eq!(err("// only a comment").offset, 17);
}

#[test]
fn errors_carry_offsets_and_messages() {
    let e = err("name.family )");
    assert_eq!((e.offset, e.message.as_str()), (12, "unexpected ')' without a matching '('"));
    assert_eq!(e.to_string(), "at position 12: unexpected ')' without a matching '('");
    let e = err("(name.family");
    assert_eq!(e.offset, 12);
    assert_eq!(e.message, "expected ')' to close the one at position 0 but found end of expression");
    let e = err("");
    assert_eq!((e.offset, e.message.as_str()), (0, "expected an expression but found end of expression"));
    assert_eq!(err("   ").offset, 3);
    let e = err("@@");
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("date/time"), "{}", e.message);
    let e = err("name..family");
    assert_eq!(e.offset, 5);
    assert_eq!(e.message, "expected a member or function name after '.' but found '.'");
    let e = err("1 +");
    assert_eq!((e.offset, e.message.as_str()), (3, "expected an expression but found end of expression"));
    let e = err("9223372036854775808");
    assert_eq!(e.offset, 0);
    assert!(e.message.contains("out of range"));
    let e = err("a b");
    assert_eq!(e.message, "expected an operator or end of expression but found identifier 'b'");
    assert_eq!(err("a[0").message, "expected ']' to close the one at position 1 but found end of expression");
    assert_eq!(err("a]").offset, 1);
    assert_eq!(
        err("f(a b)").message,
        "expected ',' or ')' after an argument of f( at position 1 but found identifier 'b'"
    );
    assert_eq!(err("f(a,)").offset, 4);
    assert_eq!(err("x is").message, "expected a type name after 'is' but found end of expression");
    assert_eq!(err("x is A.").offset, 7);
    assert_eq!(err("{1}").offset, 1);
    assert_eq!(err("'open").message, "unterminated string: expected a closing '");
    assert_eq!(err("`open").message, "unterminated identifier: expected a closing `");
    assert_eq!(err("a ! b").offset, 2);
    assert_eq!(err("a # b").message, "unexpected character '#'");
    assert_eq!(err("é").message, "unexpected character 'é'");
    assert!(err("$foo").message.contains("$this, $index or $total"));
    assert_eq!(err("%").offset, 0);
    assert_eq!(err("%1").offset, 0);
    assert_eq!(err("a.$this").offset, 2);
    assert_eq!(err("x 'mg'").message, "expected an operator or end of expression but found string 'mg'");
    assert!(err("@2020-01-0").message.contains("invalid date/time literal '@2020-01-0'"));
    assert_eq!(err("@2020-01-01T10:00+02").offset, 0);
    assert_eq!(err("@2020x").offset, 0);
    assert_eq!(err("@T").offset, 0);
    assert_eq!(err("@T1").offset, 0);
    assert_eq!(err("@202").offset, 0);
    assert_eq!(err("1 + @@").offset, 4);
    assert_eq!(err("a = = b").offset, 4);
}

#[test]
fn impossible_date_time_values_are_syntax_errors() {
    let e = err("@2020-13-01 < @2021-01-01");
    assert_eq!((e.offset, e.message.starts_with("'@2020-13-01' is not a valid date (")), (0, true), "{e}");
    assert!(err("x = @2020-02-30").to_string().starts_with("at position 4: '@2020-02-30' is not a valid date"));
    assert!(err("@2019-02-29").message.contains("a day the month has"));
    assert_eq!(err("@2020-00").offset, 0);
    assert_eq!(err("@0000").offset, 0);
    let e = err("now() > @T25:00");
    assert_eq!(e.offset, 8);
    assert!(e.message.starts_with("'@T25:00' is not a valid time (hour 00-23"), "{e}");
    assert!(err("@T10:60").message.contains("not a valid time"));
    let e = err("@2020-01-01T10:00+25:00");
    assert!(e.message.starts_with("'@2020-01-01T10:00+25:00' is not a valid dateTime ("), "{e}");
    assert!(e.message.contains("offset -14:00 to +14:00"), "{e}");
    assert!(err("@2020-01-01T24:00").message.contains("not a valid dateTime"));
    assert!(err("@2021-02-29T").message.contains("not a valid dateTime"));
    // The edges of each range are still fine.
    assert_eq!(p("@2020-02-29"), lit(Literal::Date("2020-02-29".into())));
    assert_eq!(p("@T23:59:60"), lit(Literal::Time("23:59:60".into())));
    assert_eq!(p("@2020-12-31T00:00-14:00"), lit(Literal::DateTime("2020-12-31T00:00-14:00".into())));
}

#[test]
fn nesting_limits_are_errors_not_crashes() {
    let parens = |n: usize| format!("{}a{}", "(".repeat(n), ")".repeat(n));
    assert_eq!(p(&parens(MAX_NESTING - 1)), m("a"));
    assert!(err(&parens(MAX_NESTING)).message.contains("more than 64 levels"));
    assert!(err(&parens(100_000)).message.contains("nested too deeply"));
    assert!(parse(&format!("a{}", ".b".repeat(MAX_HEIGHT - 1))).is_ok());
    let e = err(&format!("a{}", ".b".repeat(MAX_HEIGHT)));
    assert!(e.message.contains("exceed 256 levels"), "{}", e.message);
    for deep in [
        format!("a{}", ".b".repeat(100_000)),
        format!("a{}", " + a".repeat(100_000)),
        format!("a{}", "[0]".repeat(100_000)),
        format!("{}a", "-".repeat(100_000)),
        format!("{}a", "f(".repeat(100_000)),
        format!("{}a", "a.f(".repeat(100_000)),
        format!("{}a", "a[".repeat(100_000)),
    ] {
        assert!(err(&deep).message.contains("nested too deeply"));
    }
    // Climbing the precedence levels inside every parenthesis is the costliest recursion;
    // running it here checks it fits the 2 MiB stack of a test thread.
    let mixed = "(a implies b or c and d in e = f < g | h is T + -i * f(j[k.l(".repeat(30);
    assert!(err(&mixed).message.contains("nested too deeply"));
}

/// Deterministic xorshift so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn fuzz_never_panics() {
    const SEEDS: [&str; 6] = [
        "name.where(use = %name_use).family",
        "extension('http://x').extension('ombCategory').value.ofType(Coding).code.first()",
        "@2015-02-07T13:28:17.239+02:00 + 4 'mg' - 3 days",
        "(a is FHIR.Quantity) implies `b c`[$index] xor %'x' | {} /* c */ // d",
        "'\\u00e9\\n' & -1.5 div 2 mod 3 ~ @T12:30 !~ true",
        "getResourceKey() = link.other.getReferenceKey(Patient)",
    ];
    const ALPHABET: &[u8] = b"abcT019 .()[]{}'`\\%$@+-*/&|=~!<>,:_Z\n\t\"u";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..20_000 {
        let len = rng.below(40);
        let bytes: Vec<u8> = (0..len)
            .map(|_| if rng.below(8) == 0 { rng.next() as u8 } else { ALPHABET[rng.below(ALPHABET.len())] })
            .collect();
        let _ = parse(&String::from_utf8_lossy(&bytes));
    }
    for _ in 0..20_000 {
        let mut bytes = SEEDS[rng.below(SEEDS.len())].as_bytes().to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() + 1);
            match rng.below(3) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
                _ if at < bytes.len() => bytes[at] = rng.next() as u8,
                _ => {}
            }
        }
        let text = String::from_utf8_lossy(&bytes);
        if let Err(e) = parse(&text) {
            assert!(e.offset <= text.len(), "{text:?}: offset {} out of range", e.offset);
        }
    }
}
