//! The parsed form of a KQL query, shaped like Kibana's node tree (`function` nodes `and`, `or`,
//! `not`, `is`, `range`, `exists`, `nested` over `literal` and `wildcard` nodes).

/// A KQL query (one node of the tree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// `a and b and c`: flattened, at least two children when produced by the parser.
    And(Vec<Query>),
    /// `a or b or c`: flattened, at least two children when produced by the parser.
    Or(Vec<Query>),
    /// `not a`.
    Not(Box<Query>),
    /// `field: value`, or free text (`value` alone) when `field` is `None`.
    Is { field: Option<Value>, value: Value },
    /// `field < value` and friends. The bound stays as written (a string, usually).
    Range {
        field: Value,
        op: RangeOp,
        value: Value,
    },
    /// Kibana's `exists` function. The parser never produces it (`f: *` is an `Is` with a lone
    /// wildcard, as in Kibana); it exists for programmatic queries.
    Exists { field: Value },
    /// `path: { query }`: the inner field names are relative to `path`.
    Nested { path: Value, query: Box<Query> },
}

/// A literal as KQL distinguishes them: quoted, plain, typed (`true`, `false`, `null`), or a
/// wildcard pattern. Escapes are already resolved in the stored text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `"..."`: a phrase; never a wildcard, never typed, not trimmed.
    Quoted(String),
    /// Unquoted text without unescaped `*` (an escaped `\*` is an ordinary `*` here).
    Text(String),
    /// Unquoted `true` / `false`.
    Bool(bool),
    /// Unquoted `null`.
    Null,
    /// Unquoted text with at least one unescaped `*`.
    Wildcard(Wildcard),
}

/// A wildcard pattern: literal pieces separated by `*` markers (so `pieces.len() >= 2`).
/// The pieces hold literal text: a `*` inside a piece came from an escaped `\*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wildcard {
    pub pieces: Vec<String>,
}

/// Range operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RangeOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

impl RangeOp {
    /// The Elasticsearch `range` key (`lt`, `lte`, `gt`, `gte`).
    pub fn es_key(self) -> &'static str {
        match self {
            RangeOp::Lt => "lt",
            RangeOp::Lte => "lte",
            RangeOp::Gt => "gt",
            RangeOp::Gte => "gte",
        }
    }

    /// The KQL operator text.
    pub fn symbol(self) -> &'static str {
        match self {
            RangeOp::Lt => "<",
            RangeOp::Lte => "<=",
            RangeOp::Gt => ">",
            RangeOp::Gte => ">=",
        }
    }
}

impl Wildcard {
    /// A pattern from its literal pieces; `None` unless there are at least two.
    pub fn new(pieces: Vec<String>) -> Option<Wildcard> {
        (pieces.len() >= 2).then_some(Wildcard { pieces })
    }

    /// Kibana's `isLoneWildcard`: only the first marker is removed before testing for emptiness,
    /// so `*` is lone but `**` is not.
    pub fn is_lone(&self) -> bool {
        self.pieces.len() == 2 && self.pieces.iter().all(String::is_empty)
    }

    /// Kibana's `hasLeadingWildcard`: starts with a marker and is not a lone wildcard.
    pub fn has_leading_wildcard(&self) -> bool {
        self.pieces[0].is_empty() && !self.is_lone()
    }

    /// The pattern with `*` markers and the literal pieces unescaped (Kibana's
    /// `wildcard.toElasticsearchQuery`, used for field names and range bounds).
    pub fn raw(&self) -> String {
        self.pieces.join("*")
    }

    /// The pattern rendered for `query_string` and `wildcard` queries: Lucene's reserved
    /// characters in the literal pieces are backslash-escaped, the markers become bare `*`.
    pub fn query_string(&self) -> String {
        let len: usize = self.pieces.iter().map(|p| p.len() + 1).sum();
        // Room for the markers and a few escapes, so that most patterns allocate once.
        let mut out = String::with_capacity(len + 8);
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.push('*');
            }
            let mut run = 0;
            for (at, c) in piece.char_indices() {
                if is_lucene_reserved(c) {
                    out.push_str(&piece[run..at]);
                    out.push('\\');
                    run = at;
                }
            }
            out.push_str(&piece[run..]);
        }
        out
    }

    /// Anchored match in which each marker matches any run of characters (Kibana's
    /// `wildcard.test`; also how field-name patterns are resolved).
    pub fn matches(&self, text: &str) -> bool {
        glob_match(&self.pieces, text)
    }
}

/// Characters `wildcard.toQueryStringQuery` escapes (kql.md §5.4). Whitespace is not escaped.
///
/// Kibana's source writes this set as the JavaScript class `/[+-=&|><!(){}[\]^"~*?:\\/]/`, in
/// which `+-=` is a range that also covers `, . / 0-9 ; <`; kql.md (the project's reference)
/// lists the characters one by one, and that is what is implemented. Escaping a digit or a dot
/// does not change what Elasticsearch matches, only the text of the query.
fn is_lucene_reserved(c: char) -> bool {
    matches!(
        c,
        '+' | '-'
            | '='
            | '&'
            | '|'
            | '>'
            | '<'
            | '!'
            | '('
            | ')'
            | '{'
            | '}'
            | '['
            | ']'
            | '^'
            | '"'
            | '~'
            | '*'
            | '?'
            | ':'
            | '\\'
            | '/'
    )
}

/// Anchored glob over literal pieces separated by "match anything" markers. Leftmost-first
/// search of the middle pieces is enough: with only `*` there is nothing to backtrack over.
pub(crate) fn glob_match<S: AsRef<str>>(pieces: &[S], text: &str) -> bool {
    let (first, rest) = match pieces.split_first() {
        Some(split) => split,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first.as_ref()) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for piece in middle {
        match remaining.find(piece.as_ref()) {
            Some(at) => remaining = &remaining[at + piece.as_ref().len()..],
            None => return false,
        }
    }
    remaining.len() >= last.as_ref().len() && remaining.ends_with(last.as_ref())
}

impl Value {
    /// Whether this is a wildcard value consisting of a single `*` (exists / all fields).
    pub fn is_lone_wildcard(&self) -> bool {
        matches!(self, Value::Wildcard(w) if w.is_lone())
    }

    /// The value as Kibana's `toElasticsearchQuery` gives it for a literal or wildcard node:
    /// strings as written (wildcards with bare `*`), booleans and null typed.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Quoted(s) | Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Null => serde_json::Value::Null,
            Value::Wildcard(w) => serde_json::Value::String(w.raw()),
        }
    }

    /// The value as a field name (JavaScript string conversion: `null`, `true`, pattern text).
    pub fn as_field_name(&self) -> String {
        match self {
            Value::Quoted(s) | Value::Text(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Null => "null".to_string(),
            Value::Wildcard(w) => w.raw(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(pieces: &[&str]) -> Wildcard {
        Wildcard::new(pieces.iter().map(|s| s.to_string()).collect()).unwrap()
    }

    #[test]
    fn lone_and_leading_wildcards_follow_kibana() {
        assert!(w(&["", ""]).is_lone());
        assert!(!w(&["", "", ""]).is_lone());
        assert!(w(&["", "", ""]).has_leading_wildcard());
        assert!(w(&["", "b"]).has_leading_wildcard());
        assert!(!w(&["a", ""]).has_leading_wildcard());
        assert!(!w(&["", ""]).has_leading_wildcard());
    }

    #[test]
    fn query_string_rendering_escapes_reserved_characters_only() {
        assert_eq!(
            w(&["", "principal=*", ""]).query_string(),
            r"*principal\=\**"
        );
        assert_eq!(
            w(&["", "lambda:InvokeFunction", ""]).query_string(),
            r"*lambda\:InvokeFunction*"
        );
        assert_eq!(w(&["", r"\", ""]).query_string(), r"*\\*");
        assert_eq!(w(&["C:\\Windows\\", ""]).query_string(), r"C\:\\Windows\\*");
        assert_eq!(w(&["", "S3 Browser", ""]).query_string(), "*S3 Browser*");
        assert_eq!(w(&["a?b", ""]).query_string(), r"a\?b*");
    }

    /// kql.md's list of the characters, one by one.
    const LUCENE_RESERVED: &str = "+-=&|><!(){}[]^\"~*?:\\/";

    #[test]
    fn reserved_set_and_its_test_agree() {
        for c in (0u32..0x250).filter_map(char::from_u32) {
            assert_eq!(is_lucene_reserved(c), LUCENE_RESERVED.contains(c), "{c:?}");
        }
    }

    #[test]
    fn glob_is_anchored_and_literal_between_markers() {
        let p = w(&["", "principal=*", ""]);
        assert!(p.matches("{principal=*, action=x}"));
        assert!(!p.matches("{principal=sns.amazonaws.com, action=x}"));
        assert!(w(&["ab", ""]).matches("ab"));
        assert!(!w(&["ab", ""]).matches("xab"));
        assert!(w(&["a", "a"]).matches("aa"));
        assert!(!w(&["a", "a"]).matches("a"));
        assert!(w(&["", "x", "y", ""]).matches("--x--y--"));
        assert!(!w(&["", "y", "x", ""]).matches("--x--y--"));
        assert!(w(&["", "\n", ""]).matches("a\nb"));
    }
}
