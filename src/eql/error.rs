//! Parse errors with a byte offset and a rendering that points at the offending character.

use std::fmt;

/// Why an EQL query was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the query where parsing could go no further.
    pub offset: usize,
    /// One-line explanation, e.g. `expected "where" but found "and"`.
    pub message: String,
}

impl ParseError {
    pub(crate) fn new(offset: usize, message: impl Into<String>) -> Self {
        ParseError {
            offset,
            message: message.into(),
        }
    }

    /// The 1-based line and column (in characters) of the offset in `query`.
    pub fn line_column(&self, query: &str) -> (usize, usize) {
        let offset = floor_char_boundary(query, self.offset.min(query.len()));
        let line_start = query[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line = query[..line_start].matches('\n').count() + 1;
        (line, query[line_start..offset].chars().count() + 1)
    }

    /// The message followed by the offending line of `query` and a caret under the character
    /// at the offset:
    ///
    /// ```text
    /// line 1, column 9: expected "where" but found "and"
    ///   process and true
    ///           ^
    /// ```
    pub fn render(&self, query: &str) -> String {
        let offset = floor_char_boundary(query, self.offset.min(query.len()));
        let line_start = query[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = query[offset..]
            .find('\n')
            .map_or(query.len(), |i| offset + i);
        let (line_no, column) = self.line_column(query);
        // Tabs and carriage returns would shift the caret in a terminal: show them as spaces.
        let shown: String = query[line_start..line_end]
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        format!(
            "line {line_no}, column {column}: {}\n  {shown}\n  {}^",
            self.message,
            " ".repeat(column - 1)
        )
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_offset_on_its_line() {
        let err = ParseError::new(8, "boom");
        assert_eq!(
            err.render("process and true"),
            "line 1, column 9: boom\n  process and true\n          ^"
        );
        let err = ParseError::new(17, "boom");
        assert_eq!(
            err.render("any where\n  a == ="),
            "line 2, column 8: boom\n    a == =\n         ^"
        );
        assert_eq!(err.line_column("any where\n  a == ="), (2, 8));
    }

    #[test]
    fn offsets_past_the_end_or_inside_a_character_do_not_panic() {
        assert_eq!(
            ParseError::new(99, "boom").render(""),
            "line 1, column 1: boom\n  \n  ^"
        );
        assert_eq!(
            ParseError::new(1, "boom").render("é"),
            "line 1, column 1: boom\n  é\n  ^"
        );
    }
}
