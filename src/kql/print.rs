//! [`Query`] back to KQL text. The output parses to the same tree: every character that could
//! be read differently is escaped, and compound children are parenthesised.

use std::fmt::Write;

use super::ast::{Query, Value};
use super::parser::is_special;

/// KQL text for `query` such that `parse(&to_kql(q)) == Ok(q)` for every tree the parser
/// produces. `Exists` (never produced by the parser) prints as `field: *`.
pub fn to_kql(query: &Query) -> String {
    let mut out = String::new();
    write_query(query, &mut out);
    out
}

fn write_query(query: &Query, out: &mut String) {
    match query {
        Query::And(items) => write_joined(items, " and ", out),
        Query::Or(items) => write_joined(items, " or ", out),
        Query::Not(inner) => {
            out.push_str("not ");
            write_child(inner, out);
        }
        Query::Is { field, value } => {
            if let Some(field) = field {
                write_value(field, out);
                out.push_str(": ");
            }
            write_value(value, out);
        }
        Query::Range { field, op, value } => {
            write_value(field, out);
            let _ = write!(out, " {} ", op.symbol());
            write_value(value, out);
        }
        Query::Exists { field } => {
            write_value(field, out);
            out.push_str(": *");
        }
        Query::Nested { path, query } => {
            write_value(path, out);
            out.push_str(": { ");
            write_query(query, out);
            out.push_str(" }");
        }
    }
}

fn write_joined(items: &[Query], separator: &str, out: &mut String) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(separator);
        }
        write_child(item, out);
    }
}

/// Operands of `and`, `or` and `not` that are themselves compound (or a `not`) go in parentheses.
fn write_child(query: &Query, out: &mut String) {
    if matches!(query, Query::And(_) | Query::Or(_) | Query::Not(_)) {
        out.push('(');
        write_query(query, out);
        out.push(')');
    } else {
        write_query(query, out);
    }
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Quoted(text) => {
            out.push('"');
            for c in text.chars() {
                if c == '"' || c == '\\' {
                    out.push('\\');
                }
                out.push(c);
            }
            out.push('"');
        }
        Value::Text(text) => {
            if text.is_empty() {
                // Only an escaped no-break space (trimmed away) parses to an empty unquoted value.
                out.push_str("\\u00A0");
            } else if matches!(text.as_str(), "true" | "false" | "null") {
                // Escape the first letter so the text does not turn into a typed literal.
                let mut chars = text.chars();
                if let Some(first) = chars.next() {
                    let _ = write!(out, "\\u{:04X}", first as u32);
                }
                out.push_str(chars.as_str());
            } else {
                write_unquoted(text, out);
            }
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null => out.push_str("null"),
        Value::Wildcard(w) => {
            for (i, piece) in w.pieces.iter().enumerate() {
                if i > 0 {
                    out.push('*');
                }
                write_unquoted(piece, out);
            }
        }
    }
}

/// Unquoted text with specials escaped, whitespace other than a plain space written as escapes,
/// and keywords escaped where they could be read as operators: `or`/`and` after a space, `not`
/// before a space or at the end (the printer may put a space after it).
fn write_unquoted(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let after_space = out.ends_with(' ');
        let word_at = |word: &str| {
            rest.get(..word.len())
                .filter(|w| w.eq_ignore_ascii_case(word))
                .map(|w| (w, &rest[word.len()..]))
        };
        if after_space {
            if let Some((w, tail)) = word_at("or").or_else(|| word_at("and")) {
                out.push('\\');
                out.push_str(w);
                rest = tail;
                continue;
            }
        }
        if let Some((_, tail)) = word_at("not") {
            if tail.is_empty() || tail.starts_with(' ') {
                let _ = write!(out, "\\u{:04X}", c as u32);
                rest = &rest[1..];
                continue;
            }
        }
        match c {
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\u{a0}' => out.push_str("\\u00A0"),
            c if is_special(c) => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
}
