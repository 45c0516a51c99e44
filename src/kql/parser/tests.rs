//! One test per grammar rule, escape and quirk of kql.md §1–§4.

use super::*;
use crate::kql::ast::{Query as Q, RangeOp, Value as V, Wildcard};

fn p(query: &str) -> Q {
    parse(query).unwrap_or_else(|e| panic!("{}", e.render(query)))
}

fn text(s: &str) -> V {
    V::Text(s.to_string())
}

fn wild(pieces: &[&str]) -> V {
    V::Wildcard(Wildcard::new(pieces.iter().map(|s| s.to_string()).collect()).unwrap())
}

fn is(field: &str, value: V) -> Q {
    Q::Is {
        field: Some(text(field)),
        value,
    }
}

fn free(value: V) -> Q {
    Q::Is { field: None, value }
}

/// The value of `f: <value>`.
fn value_of(value_text: &str) -> V {
    match p(&format!("f: {value_text}")) {
        Q::Is { value, .. } => value,
        other => panic!("not an is: {other:?}"),
    }
}

fn err(query: &str) -> ParseError {
    parse(query).expect_err(query)
}

#[test]
fn blank_queries_match_everything() {
    for q in ["", "  ", "\n\t", "\u{a0}"] {
        assert_eq!(
            p(q),
            Q::Is {
                field: Some(wild(&["", ""])),
                value: wild(&["", ""])
            }
        );
    }
}

#[test]
fn keywords_any_case_and_precedence() {
    assert_eq!(
        p("a or b and c or d"),
        Q::Or(vec![
            free(text("a")),
            Q::And(vec![free(text("b")), free(text("c"))]),
            free(text("d"))
        ])
    );
    assert_eq!(p("a AND b"), Q::And(vec![free(text("a")), free(text("b"))]));
    assert_eq!(p("a Or b"), Q::Or(vec![free(text("a")), free(text("b"))]));
    assert_eq!(p("nOt a"), Q::Not(Box::new(free(text("a")))));
    assert_eq!(
        p("a and\u{a0}b"),
        Q::And(vec![free(text("a")), free(text("b"))])
    );
    assert_eq!(
        p("a\nand\n\tb"),
        Q::And(vec![free(text("a")), free(text("b"))])
    );
}

#[test]
fn chains_are_flattened_and_groups_override_precedence() {
    assert_eq!(
        p("a and b and c"),
        Q::And(vec![free(text("a")), free(text("b")), free(text("c"))])
    );
    assert_eq!(
        p("(a or b) and c"),
        Q::And(vec![
            Q::Or(vec![free(text("a")), free(text("b"))]),
            free(text("c"))
        ])
    );
    assert_eq!(p("( ( a ) )"), free(text("a")));
    assert_eq!(
        p("not (not a)"),
        Q::Not(Box::new(Q::Not(Box::new(free(text("a"))))))
    );
}

#[test]
fn not_needs_one_sub_query() {
    assert!(parse("not not a").is_err());
    assert!(parse("f: not x").is_err());
    assert!(parse("not").is_ok()); // the word alone is free text
    assert_eq!(p("not"), free(text("not")));
    assert_eq!(p("not f: x"), Q::Not(Box::new(is("f", text("x")))));
}

#[test]
fn field_values_and_value_lists() {
    assert_eq!(p("f:v"), is("f", text("v")));
    assert_eq!(p("  f : v  "), is("f", text("v")));
    assert_eq!(p("foo:bar baz"), is("foo", text("bar baz")));
    assert_eq!(p("f: (a b)"), is("f", text("a b")));
    assert_eq!(
        p("f: (a or b and not c)"),
        Q::Or(vec![
            is("f", text("a")),
            Q::And(vec![
                is("f", text("b")),
                Q::Not(Box::new(is("f", text("c"))))
            ])
        ])
    );
    assert_eq!(
        p("f:((a or b) and not c)"),
        Q::And(vec![
            Q::Or(vec![is("f", text("a")), is("f", text("b"))]),
            Q::Not(Box::new(is("f", text("c"))))
        ])
    );
    assert!(parse("f: ()").is_err());
    assert!(parse("f: (a or b) c").is_err());
    assert!(parse("f:").is_err());
}

#[test]
fn ranges_keep_strings() {
    for (q, op) in [
        ("b < 1", RangeOp::Lt),
        ("b <= 1", RangeOp::Lte),
        ("b > 1", RangeOp::Gt),
        ("b>=1", RangeOp::Gte),
    ] {
        assert_eq!(
            p(q),
            Q::Range {
                field: text("b"),
                op,
                value: text("1")
            }
        );
    }
    assert_eq!(
        p("@timestamp >= now-1d"),
        Q::Range {
            field: text("@timestamp"),
            op: RangeOp::Gte,
            value: text("now-1d")
        }
    );
    assert_eq!(
        p("d < \"2024-01-01T00:00\""),
        Q::Range {
            field: text("d"),
            op: RangeOp::Lt,
            value: V::Quoted("2024-01-01T00:00".into())
        }
    );
    assert!(parse("f > ").is_err());
    assert!(parse("f: >a").is_err());
}

#[test]
fn typed_literals_only_for_true_false_null() {
    assert_eq!(value_of("true"), V::Bool(true));
    assert_eq!(value_of("false"), V::Bool(false));
    assert_eq!(value_of("null"), V::Null);
    assert_eq!(value_of("\"true\""), V::Quoted("true".into()));
    for s in ["3", "-4", ".3", "070", "0.0", "96565646732345", "True"] {
        assert_eq!(value_of(s), text(s));
    }
}

#[test]
fn quoted_strings_keep_unknown_escapes_and_do_not_trim() {
    assert_eq!(value_of(r#""a\*b""#), V::Quoted(r"a\*b".into()));
    assert_eq!(value_of(r#""a\qb""#), V::Quoted(r"a\qb".into()));
    assert_eq!(value_of(r#""\\():<>\"*""#), V::Quoted(r#"\():<>"*"#.into()));
    assert_eq!(value_of(r#""\t\r\n\u0041""#), V::Quoted("\t\r\nA".into()));
    assert_eq!(value_of(r#"" a ""#), V::Quoted(" a ".into()));
    assert_eq!(value_of(r#""""#), V::Quoted(String::new()));
    assert_eq!(value_of(r#""a or b""#), V::Quoted("a or b".into()));
    assert!(parse(r#"f: "abc"#).is_err());
    assert!(parse(r#"f: "abc\""#).is_err());
}

#[test]
fn every_unquoted_escape() {
    assert_eq!(value_of(r#"\\\(\)\:\<\>\"\*\{\}"#), text(r#"\():<>"*{}"#));
    assert_eq!(value_of(r"a\tb\rc\nd"), text("a\tb\rc\nd"));
    assert_eq!(value_of(r"\u0041b"), text("Ab"));
    assert_eq!(value_of(r"\uD83D\uDE00"), text("😀"));
    assert_eq!(value_of(r"\uD83Dx"), text("\u{fffd}x"));
    assert_eq!(value_of(r"a \or b"), text("a or b"));
    assert_eq!(value_of(r"a \AND b"), text("a AND b"));
    assert_eq!(value_of(r"a \NOT b"), text("a NOT b"));
    assert_eq!(value_of(r"a \Not b"), text("a Not b"));
    // `\n` wins over the escaped keyword: `\not` is a newline and `ot`.
    assert_eq!(value_of(r"a \not b"), text("a \not b"));
    for bad in [
        r"a\=b",
        r"a\ b",
        r"C\:\Windows",
        r"a\x",
        r"\unless",
        r"\u00G0",
        r"a\U0041",
    ] {
        assert!(parse(&format!("f: {bad}")).is_err(), "{bad}");
    }
}

#[test]
fn unquoted_values_trim_like_javascript() {
    assert_eq!(value_of(r"\u00A0"), text(""));
    assert_eq!(value_of(r"\ta\t"), text("a"));
    assert_eq!(value_of("a\u{2003}"), text("a"));
    assert_eq!(value_of(r"\\u00A0"), text(r"\u00A0"));
    assert_eq!(value_of(r"\t*"), wild(&["", ""]));
    assert_eq!(value_of("a \u{a0} b"), text("a \u{a0} b"));
}

#[test]
fn keyword_boundaries_inside_values() {
    assert_eq!(value_of("a and"), text("a and"));
    assert_eq!(value_of("a or"), text("a or"));
    assert_eq!(value_of("or a"), text("or a"));
    assert_eq!(value_of("knot"), text("knot"));
    assert_eq!(value_of("android"), text("android"));
    assert!(parse("f: a or ").is_err());
    assert!(parse("f: cannot x").is_err());
    assert!(parse("message: Cannot open").is_err());
    assert!(parse("f: a not b").is_err());
    assert_eq!(
        p("f: a or b"),
        Q::Or(vec![is("f", text("a")), free(text("b"))])
    );
}

#[test]
fn wildcards_and_escaped_stars() {
    assert_eq!(value_of("*"), wild(&["", ""]));
    assert_eq!(value_of("**"), wild(&["", "", ""]));
    assert_eq!(value_of(r"\*"), text("*"));
    assert_eq!(value_of(r"\**"), wild(&["*", ""]));
    assert_eq!(value_of(r"a\*"), text("a*"));
    assert_eq!(value_of(r"*principal=\**"), wild(&["", "principal=*", ""]));
    assert_eq!(
        value_of(r"*lambda\:InvokeFunction*"),
        wild(&["", "lambda:InvokeFunction", ""])
    );
    assert_eq!(value_of("*S3 Browser*"), wild(&["", "S3 Browser", ""]));
    assert_eq!(value_of(r"C\:\\Windows\\*"), wild(&["C:\\Windows\\", ""]));
}

#[test]
fn field_wildcards_quoted_fields_and_match_all() {
    assert_eq!(
        p("machine*: osx"),
        Q::Is {
            field: Some(wild(&["machine", ""])),
            value: text("osx")
        }
    );
    assert_eq!(
        p("\"a b\": c"),
        Q::Is {
            field: Some(V::Quoted("a b".into())),
            value: text("c")
        }
    );
    assert_eq!(
        p("*:*"),
        Q::Is {
            field: Some(wild(&["", ""])),
            value: wild(&["", ""])
        }
    );
    assert!(parse(":a").is_err());
}

#[test]
fn nested_groups() {
    assert_eq!(
        p("n:{ c: foo }"),
        Q::Nested {
            path: text("n"),
            query: Box::new(is("c", text("foo")))
        }
    );
    assert_eq!(
        p("n : { m:{ c:foo or c:bar } }"),
        Q::Nested {
            path: text("n"),
            query: Box::new(Q::Nested {
                path: text("m"),
                query: Box::new(Q::Or(vec![is("c", text("foo")), is("c", text("bar"))]))
            })
        }
    );
    assert!(parse("n:{ c: foo").is_err());
    assert!(parse("n:{}").is_err());
}

#[test]
fn specials_end_values() {
    assert!(parse("f: a:b").is_err());
    assert!(parse(r"f: C:\\Windows").is_err());
    assert!(parse("f: a)").is_err());
    assert!(parse("f: a}").is_err());
    assert_eq!(
        value_of("b=c/d?e,f!g@h#i$j'k.l-m"),
        text("b=c/d?e,f!g@h#i$j'k.l-m")
    );
}

#[test]
fn leading_wildcards_can_be_refused() {
    let strict = ParseOptions {
        allow_leading_wildcards: false,
    };
    let e = parse_with("a: *b", &strict).unwrap_err();
    assert!(e.message.starts_with("Leading wildcards are disabled"));
    assert_eq!(e.offset, 3);
    assert!(parse_with("a: *", &strict).is_ok());
    assert!(parse_with("*b: c", &strict).is_ok());
    assert!(parse_with("a: b*", &strict).is_ok());
    assert!(parse_with("*b", &strict).is_err());
}

#[test]
fn errors_name_the_furthest_position_like_peggy() {
    let e = err(r"a: b\=c");
    assert_eq!(e.offset, 4);
    assert_eq!(
        e.message,
        r#"Expected AND, OR, end of input, or whitespace but "\\" found."#
    );
    let e = err("a: (b");
    assert_eq!(e.offset, 5);
    assert_eq!(
        e.message,
        r#"Expected ")", AND, OR, or whitespace but end of input found."#
    );
    let e = err(":a");
    assert_eq!(e.offset, 0);
    assert_eq!(
        e.message,
        r#"Expected "(", NOT, end of input, fieldName, value, or whitespace but ":" found."#
    );
    assert_eq!(
        err("f > ").message,
        "Expected literal or whitespace but end of input found."
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    // A small stack, as a debug build on a secondary thread would have.
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            let parens = format!("{}a{}", "(".repeat(10_000), ")".repeat(10_000));
            let e = parse(&parens).unwrap_err();
            assert!(e.message.contains("nests more than"), "{}", e.message);
            let lists = format!("f:{}a{}", "(".repeat(10_000), ")".repeat(10_000));
            assert!(parse(&lists).is_err());
            let nested = format!("{}x{}", "a:{".repeat(10_000), "}".repeat(10_000));
            assert!(parse(&nested).is_err());
            let nots = "not (".repeat(5_000);
            assert!(parse(&nots).is_err());
            let ok = format!("{}a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
            assert!(parse(&ok).is_ok());
        })
        .unwrap();
    handle.join().unwrap();
}

#[test]
fn a_megabyte_of_input_parses_or_fails_cleanly() {
    let long_value = format!("f: {}", "a".repeat(1 << 20));
    assert!(parse(&long_value).is_ok());
    let many = vec!["f: x"; 50_000].join(" or ");
    assert!(parse(&many).is_ok());
    let junk: String = (0..(1 << 20))
        .map(|i| ['(', ')', ':', '\\', '"', '*', ' ', 'a', '{', 'é'][i % 10])
        .collect();
    let _ = parse(&junk);
}
