//! SQL text cut into statements, each knowing where it starts in its script.
//!
//! A script (a `-f` file, a command-line argument, what was typed into the shell) may hold
//! several statements separated by `;`. The cut is lexical: a `;` inside a string literal
//! (`'a;b'`, `E'a\';b'` with backslash escapes, `$$a;b$$` or `$tag$a;b$tag$` dollar-quoted),
//! a quoted identifier (`"a;b"`), a `-- line comment` or a `/* block comment */` does not
//! end a statement. The rules follow the tokenizer of DataFusion's SQL parser, so that the
//! cut agrees with what the parser then reads. Each [`Statement`] keeps its line and column in the script, so
//! that an error found by the parser or planner in one statement is reported at its place
//! in the whole script.

/// One statement of a script: its text (without the closing `;`) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement<'a> {
    /// The text, from just after the previous statement's `;` (leading blanks and comments
    /// included, so that positions within it map back exactly) to just before its own `;`.
    pub text: &'a str,
    /// The 1-based line of the script where `text` starts.
    pub line: usize,
    /// The 1-based column (in characters) of the script where `text` starts.
    pub column: usize,
    /// The 1-based position of the statement among the script's statements.
    pub number: usize,
}

impl Statement<'_> {
    /// The script position of a 1-based `(line, column)` within [`Statement::text`].
    #[must_use]
    pub fn script_position(&self, line: usize, column: usize) -> (usize, usize) {
        if line <= 1 {
            (self.line, self.column + column.saturating_sub(1))
        } else {
            (self.line + line - 1, column)
        }
    }

    /// The first line of the statement's SQL, leading blank lines and comments skipped, for
    /// messages that name a statement.
    #[must_use]
    pub fn first_line(&self) -> &str {
        self.text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("--")).unwrap_or_default()
    }
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    /// In `'...'`.
    Single,
    /// In `E'...'`, where a backslash escapes the next character.
    Escaped,
    /// In `$tag$...$tag$` (the tag, possibly empty, is [`Scanner::tag`]).
    Dollar,
    /// In `"..."`.
    Double,
    /// After `--`, to the end of the line.
    LineComment,
    /// In `/* ... */`.
    BlockComment,
}

/// Cuts `script` into its statements, in order. Text after the last `;` is a statement too
/// (the `;` may be left out at the end); statements that hold only blanks and comments are
/// dropped.
#[must_use]
pub fn split(script: &str) -> Vec<Statement<'_>> {
    let mut statements = Vec::new();
    let mut scan = Scanner::default();
    let (mut start, mut start_line, mut start_column) = (0, 1, 1);
    let (mut line, mut column) = (1, 1);
    for (at, c) in script.char_indices() {
        let ends = scan.step(c, &script[at + c.len_utf8()..]);
        if c == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
        if ends {
            push(&mut statements, &script[start..at], start_line, start_column, scan.has_code);
            scan.has_code = false;
            (start, start_line, start_column) = (at + 1, line, column);
        }
    }
    push(&mut statements, &script[start..], start_line, start_column, scan.has_code);
    statements
}

fn push<'a>(statements: &mut Vec<Statement<'a>>, text: &'a str, line: usize, column: usize, has_code: bool) {
    if has_code {
        statements.push(Statement { text, line, column, number: statements.len() + 1 });
    }
}

/// Whether `buffer` ends a statement: it holds code and its last code character is a `;`
/// outside strings and comments. The shell keeps reading lines until this holds.
#[must_use]
pub fn is_complete(buffer: &str) -> bool {
    let mut scan = Scanner::default();
    let mut ended = false;
    for (at, c) in buffer.char_indices() {
        let code_before = scan.has_code;
        if scan.step(c, &buffer[at + c.len_utf8()..]) {
            ended = code_before;
            scan.has_code = false;
        } else if scan.has_code {
            ended = false;
        }
    }
    ended && matches!(scan.state, State::Code | State::LineComment)
}

/// The lexer: one character at a time, it says whether a `;` ends a statement.
#[derive(Debug)]
struct Scanner {
    state: State,
    /// Whether the current statement holds anything but blanks and comments.
    has_code: bool,
    /// Characters of a token to skip (`--`, `/*`, `*/`, `$tag$`, an escaped character).
    skip: usize,
    /// The tag of the dollar-quoted string being read, without its `$`s.
    tag: String,
    /// The character before, in code: a quote or `$` right after a word character belongs
    /// to that word (`e'` in `some'`, `$` in `a$b`), as the SQL tokenizer reads it.
    after_word: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { state: State::Code, has_code: false, skip: 0, tag: String::new(), after_word: false }
    }
}

/// Whether `c` may continue an identifier (the generic SQL dialect's rule).
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '$' | '#' | '@')
}

impl Scanner {
    /// Takes `c`, followed by the text `rest`; true when `c` is a `;` that ends a statement.
    fn step(&mut self, c: char, rest: &str) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        let next = rest.chars().next();
        match self.state {
            State::Code => {
                let after_word = std::mem::replace(&mut self.after_word, is_word(c));
                match (c, next) {
                    (';', _) => return true,
                    ('-', Some('-')) => (self.state, self.skip) = (State::LineComment, 1),
                    ('/', Some('*')) => (self.state, self.skip) = (State::BlockComment, 1),
                    ('\'', _) => (self.state, self.has_code) = (State::Single, true),
                    ('"', _) => (self.state, self.has_code) = (State::Double, true),
                    ('e' | 'E', Some('\'')) if !after_word => {
                        (self.state, self.skip, self.has_code) = (State::Escaped, 1, true);
                    }
                    ('$', _) if !after_word => {
                        self.has_code = true;
                        // `$tag$` opens a string; `$1` or `$name` alone is a placeholder.
                        let tag: String = rest.chars().take_while(|&t| t.is_alphanumeric() || t == '_').collect();
                        if rest[tag.len()..].starts_with('$') {
                            self.skip = tag.chars().count() + 1;
                            (self.state, self.tag, self.after_word) = (State::Dollar, tag, false);
                        }
                    }
                    (c, _) if c.is_whitespace() => {}
                    _ => self.has_code = true,
                }
            }
            // A doubled quote inside a literal closes and reopens it: the same state after.
            State::Single if c == '\'' => self.state = State::Code,
            State::Double if c == '"' => self.state = State::Code,
            State::Escaped if c == '\\' || (c == '\'' && next == Some('\'')) => self.skip = 1,
            State::Escaped if c == '\'' => self.state = State::Code,
            State::Dollar if c == '$' && rest.strip_prefix(self.tag.as_str()).is_some_and(|r| r.starts_with('$')) => {
                (self.state, self.skip) = (State::Code, self.tag.chars().count() + 1);
            }
            State::LineComment if c == '\n' => self.state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => (self.state, self.skip) = (State::Code, 1),
            State::Single
            | State::Double
            | State::Escaped
            | State::Dollar
            | State::LineComment
            | State::BlockComment => {}
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(script: &str) -> Vec<&str> {
        split(script).into_iter().map(|s| s.text.trim()).collect()
    }

    #[test]
    fn splits_on_semicolons_outside_strings_and_comments() {
        let script = "SELECT 'a;b' AS \"c;d\"; -- x; y\nSELECT 2 /* ; */;\n\nSELECT 3";
        assert_eq!(texts(script), ["SELECT 'a;b' AS \"c;d\"", "-- x; y\nSELECT 2 /* ; */", "SELECT 3"]);
        assert_eq!(texts("SELECT 'it''s;';"), ["SELECT 'it''s;'"]);
    }

    #[test]
    fn dollar_quoted_and_escaped_strings_hold_semicolons() {
        assert_eq!(texts("SELECT $$a;b$$ AS d; SELECT 2"), ["SELECT $$a;b$$ AS d", "SELECT 2"]);
        assert_eq!(texts("SELECT $x$a;$$;b$x$ AS d;SELECT 2"), ["SELECT $x$a;$$;b$x$ AS d", "SELECT 2"]);
        assert_eq!(texts(r"SELECT E'a\';b' AS e; SELECT e'\\';x"), [r"SELECT E'a\';b' AS e", r"SELECT e'\\'", "x"]);
        assert_eq!(texts("SELECT E'it''s;\\';' AS e"), ["SELECT E'it''s;\\';' AS e"]);
        // Not strings: placeholders, and a quote or `$` that ends a word.
        assert_eq!(texts("SELECT $1; SELECT $a;"), ["SELECT $1", "SELECT $a"]);
        assert_eq!(texts(r"SELECT some'a\';b'"), [r"SELECT some'a\'", "b'"]);
        assert!(!is_complete("SELECT $$a;"));
        assert!(!is_complete(r"SELECT E'a\';"));
        assert!(is_complete(r"SELECT E'a\';b';"));
        assert!(is_complete("SELECT $t$;$t$;"));
    }

    #[test]
    fn blank_and_comment_only_statements_are_dropped() {
        assert_eq!(texts(" ; -- only a comment\n;/* c */;\n"), Vec::<&str>::new());
        let numbers: Vec<usize> = split(";SELECT 1;;SELECT 2").iter().map(|s| s.number).collect();
        assert_eq!(numbers, [1, 2]);
    }

    #[test]
    fn positions_map_back_into_the_script() {
        let script = "SELECT 1;\n  SELECT x\nFROM t;  SELECT y";
        let statements = split(script);
        assert_eq!((statements[1].line, statements[1].column), (1, 10));
        // `x` is at line 2, column 10 of statement 2's text (which starts with "\n  ").
        assert_eq!(statements[1].script_position(2, 10), (2, 10));
        assert_eq!(statements[2].script_position(1, 3), (3, 10));
        assert_eq!(statements[1].first_line(), "SELECT x");
    }

    #[test]
    fn completeness_needs_a_final_semicolon_in_code() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("SELECT\n1\n;  "));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 -- ;"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(!is_complete("/* ; */"));
        assert!(!is_complete(";"));
        assert!(!is_complete(""));
    }
}
