//! The lexical half of the parser: the parser state, peggy-style failure tracking, keywords,
//! whitespace and the literal rules (quoted strings, unquoted values and their escapes).

use super::{MAX_DEPTH, ParseOptions};
use crate::kql::ast::{Value, Wildcard};
use crate::kql::error::ParseError;

/// KQL whitespace: space, TAB, CR, LF and no-break space.
pub(crate) const fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n' | '\u{a0}')
}

/// Characters that must be escaped outside quotes.
pub(crate) const fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '(' | ')' | ':' | '<' | '>' | '"' | '*' | '{' | '}'
    )
}

/// JavaScript's `String.prototype.trim` whitespace (differs from Rust's `char::is_whitespace`:
/// it includes U+FEFF and excludes U+0085).
pub(crate) fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\u{9}'..='\u{d}'
            | ' '
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
            | '\u{feff}'
    )
}

pub(super) struct Parser<'a> {
    pub(super) src: &'a str,
    pub(super) pos: usize,
    pub(super) allow_leading_wildcards: bool,
    pub(super) depth: usize,
    /// Set by errors that stop the parse at once (peggy's `error()`); every rule then fails.
    pub(super) fatal: Option<ParseError>,
    /// Peggy-style failure tracking: furthest failure position and what was expected there.
    pub(super) max_fail: usize,
    pub(super) expected: Vec<&'static str>,
    /// Inside a named rule, failures of its parts are not reported.
    pub(super) silent: u32,
}

impl<'a> Parser<'a> {
    pub(super) fn new(src: &'a str, options: &ParseOptions) -> Self {
        Parser {
            src,
            pos: 0,
            allow_leading_wildcards: options.allow_leading_wildcards,
            depth: 0,
            fatal: None,
            max_fail: 0,
            expected: Vec::new(),
            silent: 0,
        }
    }

    // ---- primitives ----

    pub(super) fn peek(&self) -> Option<char> {
        if self.fatal.is_some() {
            return None;
        }
        self.peek_at(self.pos)
    }

    pub(super) fn peek_at(&self, at: usize) -> Option<char> {
        match self.src.as_bytes().get(at) {
            Some(&b) if b.is_ascii() => Some(char::from(b)),
            _ => self.src.get(at..).and_then(|s| s.chars().next()),
        }
    }

    pub(super) fn fail(&mut self, expected: &'static str) {
        self.fail_at(self.pos, expected);
    }

    pub(super) fn fail_at(&mut self, pos: usize, expected: &'static str) {
        if self.silent > 0 || pos < self.max_fail {
            return;
        }
        if pos > self.max_fail {
            self.max_fail = pos;
            self.expected.clear();
        }
        self.expected.push(expected);
    }

    pub(super) fn eat(&mut self, c: char, described: &'static str) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            self.fail(described);
            false
        }
    }

    /// Case-insensitive ASCII word at `at`; returns the position after it.
    pub(super) fn word_at(&self, at: usize, word: &str) -> Option<usize> {
        let end = at + word.len();
        let text = self.src.get(at..end)?;
        text.eq_ignore_ascii_case(word).then_some(end)
    }

    pub(super) fn spaces_at(&self, mut at: usize) -> usize {
        let bytes = self.src.as_bytes();
        loop {
            match bytes.get(at..) {
                Some([b' ' | b'\t' | b'\r' | b'\n', ..]) => at += 1,
                // U+00A0 NO-BREAK SPACE in UTF-8.
                Some([0xC2, 0xA0, ..]) => at += 2,
                _ => return at,
            }
        }
    }

    /// `Space*`
    pub(super) fn spaces(&mut self) {
        if self.fatal.is_some() {
            return;
        }
        self.pos = self.spaces_at(self.pos);
        // The repetition stops on a non-space, which peggy records as an expectation.
        self.fail("whitespace");
    }

    /// `Space+ 'kw'i Space+` (Or, And) or `'not'i Space+` (Not), matched at `at`.
    pub(super) fn keyword_at(&self, at: usize, word: &str, leading_space: bool) -> Option<usize> {
        let mut p = at;
        if leading_space {
            let after = self.spaces_at(p);
            if after == p {
                return None;
            }
            p = after;
        }
        let p = self.word_at(p, word)?;
        let after = self.spaces_at(p);
        (after > p).then_some(after)
    }

    pub(super) fn keyword(&mut self, word: &str, leading_space: bool, name: &'static str) -> bool {
        if self.fatal.is_some() {
            return false;
        }
        match self.keyword_at(self.pos, word, leading_space) {
            Some(end) => {
                self.pos = end;
                true
            }
            None => {
                self.fail(name);
                false
            }
        }
    }

    pub(super) fn or_kw(&mut self) -> bool {
        self.keyword("or", true, "OR")
    }

    pub(super) fn and_kw(&mut self) -> bool {
        self.keyword("and", true, "AND")
    }

    pub(super) fn not_kw(&mut self) -> bool {
        self.keyword("not", false, "NOT")
    }

    /// The `Keyword` look-ahead that ends an unquoted value.
    pub(super) fn keyword_ahead(&self, at: usize) -> bool {
        // `not` needs no leading space, `or` and `and` need one: at most one of them can apply
        // at a given position.
        if matches!(self.src.as_bytes().get(at), Some(b'n' | b'N')) {
            return self.keyword_at(at, "not", false).is_some();
        }
        self.keyword_at(at, "or", true).is_some() || self.keyword_at(at, "and", true).is_some()
    }

    pub(super) fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH && self.fatal.is_none() {
            self.fatal = Some(ParseError {
                offset: self.pos,
                message: format!(
                    "Query nests more than {MAX_DEPTH} groups of parentheses or braces."
                ),
                expected: Vec::new(),
            });
        }
        self.fatal.is_none()
    }

    pub(super) fn leave(&mut self) {
        self.depth -= 1;
    }

    // ---- literals ----

    /// `Literal = QuotedString / UnquotedLiteral`.
    pub(super) fn literal(&mut self) -> Option<Value> {
        let start = self.pos;
        let value = match self.quoted_string() {
            Some(text) => Value::Quoted(text),
            None => {
                self.pos = start;
                self.unquoted_literal()?
            }
        };
        Some(value)
    }

    pub(super) fn quoted_string(&mut self) -> Option<String> {
        if !self.eat('"', "\"\\\"\"") {
            return None;
        }
        let mut text = String::new();
        loop {
            // Copy the run up to the next quote or backslash in one piece.
            let rest = self.src.get(self.pos..)?;
            let run = rest.find(['"', '\\']).unwrap_or(rest.len());
            text.push_str(&rest[..run]);
            self.pos += run;
            let c = self.peek()?;
            match c {
                '"' => {
                    self.pos += 1;
                    return Some(text);
                }
                '\\' => {
                    let next = self.peek_at(self.pos + 1);
                    if let Some(esc) = next.and_then(escaped_whitespace) {
                        text.push(esc);
                        self.pos += 2;
                    } else if let Some((decoded, len)) = self.unicode_escape(self.pos) {
                        text.push(decoded);
                        self.pos += len;
                    } else if matches!(next, Some('\\' | '"')) {
                        text.push(next.unwrap_or('\\'));
                        self.pos += 2;
                    } else {
                        // Any other backslash is kept as written.
                        text.push('\\');
                        self.pos += 1;
                    }
                }
                c => {
                    text.push(c);
                    self.pos += c.len_utf8();
                }
            }
        }
    }

    /// `\uXXXX` at `at` (exactly four hex digits). JavaScript strings are UTF-16, so a surrogate
    /// pair written as two escapes is one character; a lone surrogate becomes U+FFFD.
    pub(super) fn unicode_escape(&self, at: usize) -> Option<(char, usize)> {
        let unit = self.hex4(at)?;
        if (0xD800..0xDC00).contains(&unit) {
            if let Some(low) = self.hex4(at + 6).filter(|u| (0xDC00..0xE000).contains(u)) {
                let code = 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00);
                return Some((char::from_u32(code).unwrap_or('\u{fffd}'), 12));
            }
        }
        Some((char::from_u32(unit).unwrap_or('\u{fffd}'), 6))
    }

    pub(super) fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.src.get(at..at + 6)?.strip_prefix("\\u")?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u32::from_str_radix(digits, 16).ok()
    }

    pub(super) fn unquoted_literal(&mut self) -> Option<Value> {
        if self.fatal.is_some() {
            return None;
        }
        let mut text = String::new();
        // Byte offsets into `text` where an unescaped `*` stood.
        let mut markers: Vec<usize> = Vec::new();
        let start = self.pos;
        // Start of the ordinary characters not yet copied into `text`.
        let mut run = self.pos;
        let bytes = self.src.as_bytes();
        loop {
            // Skip ordinary characters byte by byte: the table holds only ASCII bytes and a
            // lead byte, so this stops on a character boundary.
            while bytes
                .get(self.pos)
                .is_some_and(|&b| !STOPS_UNQUOTED[usize::from(b)])
            {
                self.pos += 1;
            }
            let Some(c) = self.peek() else {
                break;
            };
            if c == '\\' {
                text.push_str(&self.src[run..self.pos]);
                match self.escape_in_unquoted() {
                    Some((decoded, len)) => {
                        text.push_str(&decoded);
                        self.pos += len;
                    }
                    None => break,
                }
                run = self.pos;
            } else if c == '*' {
                text.push_str(&self.src[run..self.pos]);
                markers.push(text.len());
                self.pos += 1;
                run = self.pos;
            } else if is_special(c)
                // Only a space (before `or`/`and`) or an `n` (of `not`) can start a keyword.
                || ((is_space(c) || c == 'n' || c == 'N') && self.keyword_ahead(self.pos))
            {
                break;
            } else {
                self.pos += c.len_utf8();
            }
        }
        text.push_str(&self.src[run..self.pos]);
        if self.pos == start {
            self.fail("literal");
            return None;
        }
        Some(finish_unquoted(text, markers))
    }

    /// The escapes allowed outside quotes, in the grammar's order: whitespace (`\t \r \n`,
    /// which is why `\not` is a newline then `ot`), special characters, `\uXXXX`, keywords.
    pub(super) fn escape_in_unquoted(&self) -> Option<(std::borrow::Cow<'a, str>, usize)> {
        use std::borrow::Cow;
        let next = self.peek_at(self.pos + 1)?;
        if let Some(ws) = escaped_whitespace(next) {
            return Some((Cow::Owned(ws.to_string()), 2));
        }
        if is_special(next) {
            return Some((Cow::Owned(next.to_string()), 2));
        }
        if let Some((decoded, len)) = self.unicode_escape(self.pos) {
            return Some((Cow::Owned(decoded.to_string()), len));
        }
        for word in ["or", "and", "not"] {
            if let Some(end) = self.word_at(self.pos + 1, word) {
                return Some((Cow::Borrowed(&self.src[self.pos + 1..end]), end - self.pos));
            }
        }
        None
    }

    pub(super) fn syntax_error(&self) -> ParseError {
        let mut expected: Vec<&str> = self.expected.clone();
        expected.sort_unstable();
        expected.dedup();
        let found = match self.peek_at(self.max_fail) {
            Some(c) => format!("\"{}\"", c.escape_default()),
            None => "end of input".to_string(),
        };
        let list = match expected.as_slice() {
            [] => "valid KQL".to_string(),
            [one] => one.to_string(),
            [a, b] => format!("{a} or {b}"),
            [init @ .., last] => format!("{}, or {last}", init.join(", ")),
        };
        ParseError {
            offset: self.max_fail,
            message: format!("Expected {list} but {found} found."),
            expected: expected.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// Bytes at which an unquoted literal may end or change: special characters (escapes and
/// wildcards among them), whitespace (0xC2 starts U+00A0), and `n`/`N`, which may begin `not`.
static STOPS_UNQUOTED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0u8;
    while b < 0x80 {
        let c = b as char;
        table[b as usize] = is_special(c) || is_space(c) || b == b'n' || b == b'N';
        b += 1;
    }
    table[0xC2] = true;
    table
};

fn escaped_whitespace(c: char) -> Option<char> {
    match c {
        't' => Some('\t'),
        'r' => Some('\r'),
        'n' => Some('\n'),
        _ => None,
    }
}

/// Trim (JavaScript `trim()`, which cannot cross a wildcard marker), then type the value:
/// `true`/`false`/`null`, a wildcard if a marker is present, else plain text.
fn finish_unquoted(text: String, markers: Vec<usize>) -> Value {
    let first_marker = markers.first().copied().unwrap_or(text.len());
    let last_marker = markers.last().copied().unwrap_or(0);
    let lead = text[..first_marker]
        .char_indices()
        .find(|(_, c)| !is_js_space(*c))
        .map_or(first_marker, |(i, _)| i);
    let tail = text[last_marker..]
        .char_indices()
        .rev()
        .find(|(_, c)| !is_js_space(*c))
        .map_or(last_marker, |(i, c)| last_marker + i + c.len_utf8());
    let tail = tail.max(lead);
    if markers.is_empty() {
        return match &text[lead..tail] {
            "null" => Value::Null,
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => {
                let mut text = text;
                text.truncate(tail);
                text.drain(..lead);
                Value::Text(text)
            }
        };
    }
    let mut pieces = Vec::with_capacity(markers.len() + 1);
    let mut from = lead;
    for &m in &markers {
        pieces.push(text[from..m].to_string());
        from = m;
    }
    pieces.push(text[from..tail].to_string());
    Value::Wildcard(Wildcard { pieces })
}
