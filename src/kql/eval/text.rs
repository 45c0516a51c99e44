//! An approximation of Elasticsearch's `standard` analyzer for `text` fields: lower-cased word
//! tokens (letters, digits and `_`, joined across a single `.` or `'` between word characters,
//! as Unicode word segmentation does). Tokens are produced as slices, without allocation.

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The tokens of `text`, as byte ranges (not yet lower-cased).
pub(crate) struct Tokens<'a> {
    text: &'a str,
    at: usize,
}

pub(crate) fn tokens(text: &str) -> Tokens<'_> {
    Tokens { text, at: 0 }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let rest = &self.text[self.at..];
        let start = self.at + rest.find(is_word)?;
        let mut end = start;
        let mut chars = self.text[start..].char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if is_word(c) {
                end = start + i + c.len_utf8();
            } else if matches!(c, '.' | '\'') && chars.peek().is_some_and(|(_, n)| is_word(*n)) {
                continue;
            } else {
                break;
            }
        }
        self.at = end;
        Some(&self.text[start..end])
    }
}

/// Case-insensitive token equality (`query` is already lower-case).
pub(crate) fn token_eq(token: &str, query: &str) -> bool {
    token.chars().flat_map(char::to_lowercase).eq(query.chars())
}

/// Lower-cased tokens of a query string (compiled once).
pub(crate) fn query_tokens(text: &str) -> Vec<String> {
    tokens(text).map(|t| t.to_lowercase()).collect()
}

/// `match`: any query token occurs in `text`.
pub(crate) fn matches_any(text: &str, query: &[String]) -> bool {
    tokens(text).any(|t| query.iter().any(|q| token_eq(t, q)))
}

/// `match_phrase`: the query tokens occur consecutively in `text`.
pub(crate) fn matches_phrase(text: &str, query: &[String]) -> bool {
    if query.is_empty() {
        return false;
    }
    let mut at = 0;
    while let Some(first) = tokens(&text[at..]).next() {
        let start = first.as_ptr() as usize - text.as_ptr() as usize;
        if tokens(&text[start..])
            .take(query.len())
            .zip(query)
            .filter(|(t, q)| token_eq(t, q))
            .count()
            == query.len()
        {
            return true;
        }
        at = start + first.len();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizes_like_the_standard_analyzer_roughly() {
        let all: Vec<_> =
            tokens("Hello, World! lambda.amazonaws.com don't x_y 3.14 end.").collect();
        assert_eq!(
            all,
            [
                "Hello",
                "World",
                "lambda.amazonaws.com",
                "don't",
                "x_y",
                "3.14",
                "end"
            ]
        );
        assert_eq!(tokens("  ").count(), 0);
    }

    #[test]
    fn match_and_phrase_are_case_insensitive() {
        let q = query_tokens("Open FILE");
        assert!(matches_any("could not open", &q));
        assert!(!matches_any("closed", &q));
        assert!(matches_phrase("Cannot OPEN file now", &q));
        assert!(!matches_phrase("file open", &q));
        assert!(!matches_phrase("open the file", &q));
        assert!(!matches_phrase("anything", &[]));
    }
}
