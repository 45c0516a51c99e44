//! Parse errors with a byte offset and a rendering that points at the offending character.

use std::fmt;

/// Why a KQL query was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the query where parsing could go no further.
    pub offset: usize,
    /// One-line explanation, e.g. `Expected AND, OR, end of input or whitespace but "\" found`.
    pub message: String,
    /// What the parser would have accepted at `offset` (empty for errors that are not about
    /// syntax, such as the depth limit or disabled leading wildcards).
    pub expected: Vec<String>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

impl ParseError {
    /// The message followed by the offending line of `query` and a caret under the character
    /// at `offset`, e.g.
    ///
    /// ```text
    /// line 1, column 6: Expected AND, OR, end of input or whitespace but "\" found
    ///   a: b\=c
    ///        ^
    /// ```
    pub fn render(&self, query: &str) -> String {
        let offset = floor_char_boundary(query, self.offset.min(query.len()));
        let line_start = query[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = query[offset..]
            .find('\n')
            .map_or(query.len(), |i| offset + i);
        let line_no = query[..line_start].matches('\n').count() + 1;
        let line = &query[line_start..line_end];
        let column = query[line_start..offset].chars().count();
        // Tabs and carriage returns would shift the caret in a terminal: show them as spaces.
        let shown: String = line
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!(
            "line {line_no}, column {}: {}\n  {shown}\n  {}^",
            column + 1,
            self.message,
            " ".repeat(column)
        )
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(offset: usize) -> ParseError {
        ParseError {
            offset,
            message: "boom".into(),
            expected: vec![],
        }
    }

    #[test]
    fn caret_points_at_the_offset_on_its_line() {
        assert_eq!(
            err(4).render("a: b\\=c"),
            "line 1, column 5: boom\n  a: b\\=c\n      ^"
        );
        assert_eq!(
            err(8).render("a: b\n  and :"),
            "line 2, column 4: boom\n    and :\n     ^"
        );
    }

    #[test]
    fn caret_at_end_of_input_and_after_multibyte_characters() {
        assert_eq!(
            err(5).render("a: (b"),
            "line 1, column 6: boom\n  a: (b\n       ^"
        );
        assert_eq!(
            err(4).render("é: :"),
            "line 1, column 4: boom\n  é: :\n     ^"
        );
        // An offset inside a character snaps back to its start instead of panicking.
        assert_eq!(err(1).render("é"), "line 1, column 1: boom\n  é\n  ^");
        assert_eq!(err(99).render(""), "line 1, column 1: boom\n  \n  ^");
    }
}
