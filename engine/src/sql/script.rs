//! SQL text cut into statements, each knowing where it starts in its script.
//!
//! A script (a `-f` file, a command-line argument, what was typed into the shell) may hold
//! several statements separated by `;`. The cut is lexical: a `;` inside a string literal
//! (`'a;b'`), a quoted identifier (`"a;b"`), a `-- line comment` or a `/* block comment */`
//! does not end a statement. Each [`Statement`] keeps its line and column in the script, so
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
    let mut chars = script.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|&(_, n)| n);
        let ends = scan.step(c, next);
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
    let mut chars = buffer.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let code_before = scan.has_code;
        if scan.step(c, next) {
            ended = code_before;
            scan.has_code = false;
        } else if scan.has_code {
            ended = false;
        }
    }
    ended && scan.state != State::Single && scan.state != State::Double && scan.state != State::BlockComment
}

/// The lexer: one character at a time, it says whether a `;` ends a statement.
#[derive(Debug)]
struct Scanner {
    state: State,
    /// Whether the current statement holds anything but blanks and comments.
    has_code: bool,
    /// Characters of a two-character token to skip (`--`, `/*`, `*/`).
    skip: usize,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner { state: State::Code, has_code: false, skip: 0 }
    }
}

impl Scanner {
    /// Takes `c` (followed by `next`); true when `c` is a `;` that ends a statement.
    fn step(&mut self, c: char, next: Option<char>) -> bool {
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        match self.state {
            State::Code => match (c, next) {
                (';', _) => return true,
                ('-', Some('-')) => (self.state, self.skip) = (State::LineComment, 1),
                ('/', Some('*')) => (self.state, self.skip) = (State::BlockComment, 1),
                ('\'', _) => (self.state, self.has_code) = (State::Single, true),
                ('"', _) => (self.state, self.has_code) = (State::Double, true),
                (c, _) if c.is_whitespace() => {}
                _ => self.has_code = true,
            },
            // A doubled quote inside a literal closes and reopens it: the same state after.
            State::Single if c == '\'' => self.state = State::Code,
            State::Double if c == '"' => self.state = State::Code,
            State::LineComment if c == '\n' => self.state = State::Code,
            State::BlockComment if c == '*' && next == Some('/') => (self.state, self.skip) = (State::Code, 1),
            State::Single | State::Double | State::LineComment | State::BlockComment => {}
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
