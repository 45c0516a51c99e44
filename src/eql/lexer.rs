//! Tokens of Elasticsearch's EQL grammar (`EqlBase.g4`): lower-case keywords, double-quoted
//! strings with escapes, `"""raw"""` strings, backquoted names, numbers and operators.

use super::error::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    /// A backquoted name, already unescaped (``` `` ``` stands for one backquote).
    Quoted(String),
    Str(String),
    Int(i64),
    Float(f64),
    And,
    Or,
    Not,
    Where,
    In,
    InInsensitive,
    Like,
    LikeInsensitive,
    Regex,
    RegexInsensitive,
    Any,
    True,
    False,
    Null,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    LParen,
    RParen,
    Comma,
    Dot,
    Question,
    Tilde,
    /// A lone `=`, only valid in `maxspan=`.
    Assign,
    LBracket,
    /// `!` right before `[`: a missing-event stage.
    Bang,
    RBracket,
    Pipe,
    /// An integer with a time unit, as in `maxspan=30s`.
    Duration(i64, String),
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Ident(name) => format!("\"{name}\""),
            Tok::Quoted(name) => format!("`{name}`"),
            Tok::Str(_) => "a string".into(),
            Tok::Int(_) | Tok::Float(_) => "a number".into(),
            Tok::Duration(n, unit) => format!("\"{n}{unit}\""),
            Tok::Eof => "end of input".into(),
            other => format!("\"{}\"", other.symbol()),
        }
    }

    fn symbol(&self) -> &'static str {
        match self {
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Not => "not",
            Tok::Where => "where",
            Tok::In => "in",
            Tok::InInsensitive => "in~",
            Tok::Like => "like",
            Tok::LikeInsensitive => "like~",
            Tok::Regex => "regex",
            Tok::RegexInsensitive => "regex~",
            Tok::Any => "any",
            Tok::True => "true",
            Tok::False => "false",
            Tok::Null => "null",
            Tok::Eq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Colon => ":",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::Comma => ",",
            Tok::Dot => ".",
            Tok::Question => "?",
            Tok::Tilde => "~",
            Tok::Assign => "=",
            Tok::LBracket => "[",
            Tok::Bang => "!",
            Tok::RBracket => "]",
            Tok::Pipe => "|",
            _ => "",
        }
    }
}

/// Words EQL keeps for syntax this module does not parse (sequences, joins, samples): they
/// cannot name a field unless backquoted, as in Elasticsearch.
pub(crate) const RESERVED: [&str; 8] = [
    "by", "join", "maxspan", "of", "sample", "sequence", "until", "with",
];

/// A token and the byte offset where it starts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub at: usize,
}

pub(crate) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

pub(crate) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '@'
}

/// Split `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lexer = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        let token = lexer.next()?;
        let end = token.tok == Tok::Eof;
        out.push(token);
        if end {
            return Ok(out);
        }
    }
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, skip: usize) -> Option<char> {
        self.src[self.pos..].chars().nth(skip)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = &self.src[self.pos..];
            if let Some(c) = self.peek().filter(|c| c.is_whitespace()) {
                self.pos += c.len_utf8();
            } else if rest.starts_with("//") {
                self.pos += rest.find('\n').unwrap_or(rest.len());
            } else if let Some(body) = rest.strip_prefix("/*") {
                let Some(end) = body.find("*/") else {
                    return Err(ParseError::new(self.pos, "unterminated comment"));
                };
                self.pos += end + 4;
            } else {
                return Ok(());
            }
        }
    }

    fn next(&mut self) -> Result<Token, ParseError> {
        self.skip_trivia()?;
        let at = self.pos;
        let Some(c) = self.bump() else {
            return Ok(Token { tok: Tok::Eof, at });
        };
        let tok = match c {
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            ',' => Tok::Comma,
            '.' => Tok::Dot,
            '?' => Tok::Question,
            '~' => Tok::Tilde,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            '|' => Tok::Pipe,
            ':' => Tok::Colon,
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Star,
            '/' => Tok::Slash,
            '%' => Tok::Percent,
            '=' if self.peek() == Some('=') => {
                self.pos += 1;
                Tok::Eq
            }
            '=' => Tok::Assign,
            '!' if self.peek() == Some('=') => {
                self.pos += 1;
                Tok::Ne
            }
            '!' if self.peek() == Some('[') => Tok::Bang,
            '<' if self.peek() == Some('=') => {
                self.pos += 1;
                Tok::Le
            }
            '<' => Tok::Lt,
            '>' if self.peek() == Some('=') => {
                self.pos += 1;
                Tok::Ge
            }
            '>' => Tok::Gt,
            '"' => Tok::Str(self.string(at)?),
            '\'' => {
                return Err(ParseError::new(
                    at,
                    "single quotes are not supported, use double quotes",
                ));
            }
            '`' => Tok::Quoted(self.backquoted(at)?),
            c if c.is_ascii_digit() => self.number(at)?,
            c if is_ident_start(c) => self.word(at),
            other => {
                return Err(ParseError::new(
                    at,
                    format!("unexpected character {other:?}"),
                ));
            }
        };
        Ok(Token { tok, at })
    }

    fn word(&mut self, at: usize) -> Tok {
        while self.peek().is_some_and(is_ident_char) {
            self.pos += 1;
        }
        let word = &self.src[at..self.pos];
        // `in~`, `like~` and `regex~` are single tokens: the tilde must follow directly.
        let tilde = self.peek() == Some('~');
        let insensitive = |plain: Tok, folded: Tok, pos: &mut usize| {
            if tilde {
                *pos += 1;
                folded
            } else {
                plain
            }
        };
        match word {
            "and" => Tok::And,
            "or" => Tok::Or,
            "not" => Tok::Not,
            "where" => Tok::Where,
            "any" => Tok::Any,
            "true" => Tok::True,
            "false" => Tok::False,
            "null" => Tok::Null,
            "in" => insensitive(Tok::In, Tok::InInsensitive, &mut self.pos),
            "like" => insensitive(Tok::Like, Tok::LikeInsensitive, &mut self.pos),
            "regex" => insensitive(Tok::Regex, Tok::RegexInsensitive, &mut self.pos),
            _ => Tok::Ident(word.to_string()),
        }
    }

    fn number(&mut self, at: usize) -> Result<Tok, ParseError> {
        let digits = |lexer: &mut Self| {
            while lexer.peek().is_some_and(|c| c.is_ascii_digit()) {
                lexer.pos += 1;
            }
        };
        digits(self);
        let mut float = false;
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            self.pos += 1;
            digits(self);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if self.peek_at(1 + sign).is_some_and(|c| c.is_ascii_digit()) {
                float = true;
                self.pos += 1 + sign;
                digits(self);
            }
        }
        if self.peek().is_some_and(is_ident_char) {
            let unit_at = self.pos;
            while self.peek().is_some_and(is_ident_char) {
                self.pos += 1;
            }
            let unit = &self.src[unit_at..self.pos];
            return match self.src[at..unit_at].parse::<i64>() {
                Ok(n) if !float && matches!(unit, "ms" | "s" | "m" | "h" | "d") => {
                    Ok(Tok::Duration(n, unit.to_string()))
                }
                _ => Err(ParseError::new(unit_at, "a number runs into a name")),
            };
        }
        let text = &self.src[at..self.pos];
        if !float {
            if let Ok(n) = text.parse::<i64>() {
                return Ok(Tok::Int(n));
            }
        }
        // Integers beyond i64 become doubles, as Elasticsearch reads them.
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok(Tok::Float(f)),
            _ => Err(ParseError::new(
                at,
                format!("number {text} is out of range"),
            )),
        }
    }

    fn string(&mut self, at: usize) -> Result<String, ParseError> {
        if self.src[self.pos..].starts_with("\"\"") {
            // `"""raw"""`: no escapes, ends at the first triple quote.
            let body = self.pos + 2;
            let Some(len) = self.src[body..].find("\"\"\"") else {
                return Err(ParseError::new(at, "unterminated raw string"));
            };
            self.pos = body + len + 3;
            return Ok(self.src[body..body + len].to_string());
        }
        let mut out = String::new();
        loop {
            let here = self.pos;
            match self.bump() {
                None | Some('\n') => return Err(ParseError::new(at, "unterminated string")),
                Some('"') => return Ok(out),
                Some('\\') => match self.bump() {
                    Some('"') => out.push('"'),
                    Some('\\') => out.push('\\'),
                    Some('n') => out.push('\n'),
                    Some('r') => out.push('\r'),
                    Some('t') => out.push('\t'),
                    Some('u') => out.push(self.unicode_escape(here)?),
                    _ => return Err(ParseError::new(here, "unknown escape sequence")),
                },
                Some(c) => out.push(c),
            }
        }
    }

    /// `\u{X}` to `\u{XXXXXXXX}` (hexadecimal code point), after the `u`.
    fn unicode_escape(&mut self, at: usize) -> Result<char, ParseError> {
        let bad = || ParseError::new(at, "expected \\u{hex code point}");
        if self.bump() != Some('{') {
            return Err(bad());
        }
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.pos += 1;
        }
        let hex = &self.src[start..self.pos];
        if hex.is_empty() || hex.len() > 8 || self.bump() != Some('}') {
            return Err(bad());
        }
        u32::from_str_radix(hex, 16)
            .ok()
            .and_then(char::from_u32)
            .ok_or_else(|| ParseError::new(at, "not a Unicode code point"))
    }

    fn backquoted(&mut self, at: usize) -> Result<String, ParseError> {
        let mut out = String::new();
        loop {
            match self.bump() {
                None => return Err(ParseError::new(at, "unterminated backquoted name")),
                Some('`') if self.peek() == Some('`') => {
                    self.pos += 1;
                    out.push('`');
                }
                Some('`') if out.is_empty() => {
                    return Err(ParseError::new(at, "empty backquoted name"));
                }
                Some('`') => return Ok(out),
                Some(c) => out.push(c),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        tokenize(src)
            .expect("lexes")
            .into_iter()
            .map(|t| t.tok)
            .collect()
    }

    #[test]
    fn keywords_operators_and_insensitive_forms() {
        assert_eq!(
            toks("a in~ (1) like~ regex ==!=<=>=:"),
            [
                Tok::Ident("a".into()),
                Tok::InInsensitive,
                Tok::LParen,
                Tok::Int(1),
                Tok::RParen,
                Tok::LikeInsensitive,
                Tok::Regex,
                Tok::Eq,
                Tok::Ne,
                Tok::Le,
                Tok::Ge,
                Tok::Colon,
                Tok::Eof
            ]
        );
        // Keywords are lower case only, as in Elasticsearch's lexer.
        assert_eq!(toks("AND")[0], Tok::Ident("AND".into()));
    }

    #[test]
    fn strings_escapes_raw_and_backquotes() {
        assert_eq!(
            toks(r#""a\"b\\c\n\u{e9}""#)[0],
            Tok::Str("a\"b\\c\né".into())
        );
        assert_eq!(toks(r#""""C:\x"y""""#)[0], Tok::Str(r#"C:\x"y"#.into()));
        assert_eq!(toks("`a b``c`")[0], Tok::Quoted("a b`c".into()));
        assert_eq!(toks(r#""""#)[0], Tok::Str(String::new()));
    }

    #[test]
    fn durations_and_sequence_punctuation() {
        assert_eq!(
            toks("maxspan=30s [a] | 5ms"),
            [
                Tok::Ident("maxspan".into()),
                Tok::Assign,
                Tok::Duration(30, "s".into()),
                Tok::LBracket,
                Tok::Ident("a".into()),
                Tok::RBracket,
                Tok::Pipe,
                Tok::Duration(5, "ms".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn numbers_and_comments() {
        assert_eq!(
            toks("1 2.5 1e3 9223372036854775808 /* x */ // y"),
            [
                Tok::Int(1),
                Tok::Float(2.5),
                Tok::Float(1000.0),
                Tok::Float(9.223372036854776e18),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn errors_point_at_the_problem() {
        let err = |src: &str| tokenize(src).expect_err("rejected");
        assert_eq!(
            err("a == 'x'").message,
            "single quotes are not supported, use double quotes"
        );
        assert_eq!(err("\"abc").offset, 0);
        assert_eq!(err(r#""\q""#).offset, 1);
        assert_eq!(err("12ab").offset, 2);
        assert_eq!(err("1.5s").offset, 3);
        assert_eq!(err("a # b").offset, 2);
        assert_eq!(err("/* open").offset, 0);
    }
}
