use super::*;

mod properties;
pub(crate) use properties::{query, statement};

fn cond(query: &str) -> Expr {
    parse(query).expect("the test query parses").condition
}

fn field(name: &str) -> Expr {
    Expr::Field(Field {
        name: name.into(),
        optional: false,
    })
}

fn int(n: i64) -> Expr {
    Expr::Literal(Literal::Int(n))
}

fn err(query: &str) -> ParseError {
    parse(query).expect_err("the query is rejected")
}

#[test]
fn categories_and_precedence() {
    assert_eq!(
        parse("any where true").map(|q| q.category),
        Ok(Category::Any)
    );
    assert_eq!(
        parse("\"my cat\" where true").map(|q| q.category),
        Ok(Category::Named("my cat".into()))
    );
    // `not` binds tighter than `and`, which binds tighter than `or`.
    assert_eq!(
        cond("any where not a or b and c"),
        Expr::Or(vec![
            Expr::Not(Box::new(field("a"))),
            Expr::And(vec![field("b"), field("c")])
        ])
    );
    assert_eq!(
        cond("any where 1 + 2 * -3 == 4 - 5 - 6"),
        Expr::Compare {
            op: CmpOp::Eq,
            left: Box::new(Expr::Arith {
                op: ArithOp::Add,
                left: Box::new(int(1)),
                right: Box::new(Expr::Arith {
                    op: ArithOp::Mul,
                    left: Box::new(int(2)),
                    right: Box::new(Expr::Neg(Box::new(int(3)))),
                }),
            }),
            right: Box::new(Expr::Arith {
                op: ArithOp::Sub,
                left: Box::new(Expr::Arith {
                    op: ArithOp::Sub,
                    left: Box::new(int(4)),
                    right: Box::new(int(5)),
                }),
                right: Box::new(int(6)),
            }),
        }
    );
}

#[test]
fn predicates_fields_and_calls() {
    assert_eq!(
        cond("any where ?`my field`.x not in~ (\"a\", b)"),
        Expr::In {
            expr: Box::new(Expr::Field(Field {
                name: "my field.x".into(),
                optional: true
            })),
            list: vec![Expr::Literal(Literal::String("a".into())), field("b")],
            negated: true,
            insensitive: true,
        }
    );
    assert_eq!(
        cond("any where a : \"x*\""),
        Expr::Match {
            expr: Box::new(field("a")),
            op: MatchOp::Colon,
            insensitive: true,
            patterns: vec!["x*".into()],
            list: false,
        }
    );
    assert_eq!(
        cond("any where a regex~ (\"x.*\", \"\"\"y\\d\"\"\")"),
        Expr::Match {
            expr: Box::new(field("a")),
            op: MatchOp::Regex,
            insensitive: true,
            patterns: vec!["x.*".into(), "y\\d".into()],
            list: true,
        }
    );
    assert_eq!(
        cond("any where endsWith~(a, \"x\")"),
        Expr::Call {
            name: "endsWith".into(),
            insensitive: true,
            args: vec![field("a"), Expr::Literal(Literal::String("x".into()))],
        }
    );
}

#[test]
fn errors_say_what_and_where() {
    let e = err("process and true");
    assert_eq!(
        e.render("process and true"),
        "line 1, column 9: expected \"where\" but found \"and\"\n  process and true\n          ^"
    );
    assert_eq!(
        err("any where a == 1 == 2").message,
        "comparisons do not chain: use parentheses or \"and\""
    );
    assert_eq!(err("any where a ==").offset, 14);
    assert_eq!(
        err("any where (a == 1").message,
        "expected \")\" but found end of input"
    );
    assert_eq!(
        err("any where a like b").message,
        "expected a string constant but found \"b\""
    );
    assert_eq!(err("any where nope(a)").message, "unknown function nope");
    assert_eq!(
        err("any where length~(a)").message,
        "length has no case-insensitive form length~"
    );
    assert_eq!(
        err("any where length(a, b)").message,
        "length takes 1 arguments, not 2"
    );
    assert_eq!(
        err("any where concat()").message,
        "concat takes at least 1 arguments, not 0"
    );
    assert!(
        err("any where a regex \"(\"")
            .message
            .starts_with("invalid regular expression")
    );
    assert_eq!(err("any where sequence == 1").offset, 10);
    assert_eq!(
        cond("any where `sequence` == 1"),
        Expr::Compare {
            op: CmpOp::Eq,
            left: Box::new(field("sequence")),
            right: Box::new(int(1)),
        }
    );
    let e = err("any where\n  a == 1 and\n  b ==");
    assert_eq!(e.line_column("any where\n  a == 1 and\n  b =="), (3, 7));
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    let deep = |open: &str, inner: &str, close: &str| {
        format!(
            "any where {}{inner}{}",
            open.repeat(100_000),
            close.repeat(100_000)
        )
    };
    for query in [
        deep("(", "true", ")"),
        deep("not ", "true", ""),
        deep("-", "1 == 1", ""),
        deep("length(", "a", ")"),
        deep("", "1", " + 1"),
        deep("", "1", " * 1"),
        deep("a in (", "1", ")"),
    ] {
        assert!(
            err(&query).message.contains("nests more than"),
            "{}",
            &query[..40]
        );
    }
    // Up to the limit parses.
    let ok = format!(
        "any where {}true{}",
        "(".repeat(MAX_DEPTH - 1),
        ")".repeat(MAX_DEPTH - 1)
    );
    assert!(parse(&ok).is_ok());
    // Long `and` chains are flat lists: no depth, and they print without recursion.
    let flat = format!("any where {}", vec!["a == 1"; 50_000].join(" and "));
    let parsed = parse(&flat).expect("a flat chain parses");
    assert_eq!(parsed.to_string(), flat);
    assert!(
        err(&"x".repeat(MAX_QUERY_BYTES + 1))
            .message
            .contains("longer than")
    );
}

#[test]
fn missing_event_stages_parse_print_and_are_checked() {
    let text = "sequence by user.name with maxspan=5m [any where a == 1] ![any where b == 2] [any where c == 3]";
    let statement = parse_statement(text).expect("parses");
    let Body::Sequence(sequence) = &statement.body else {
        panic!("a sequence");
    };
    let missing: Vec<bool> = sequence.stages.iter().map(|s| s.missing).collect();
    assert_eq!(missing, [false, true, false]);
    assert_eq!(statement.to_string(), text);
    assert_eq!(
        parse_statement(&statement.to_string()).expect("parses again"),
        statement
    );
    // `!=` still reads as one operator next to a stage.
    assert!(
        parse_statement("sequence with maxspan=1s [any where a != 1] ![any where true]").is_ok()
    );
    for (query, wanted) in [
        (
            "sequence [any where true] ![any where true]",
            "needs `with maxspan=...`",
        ),
        (
            "sequence with maxspan=1s ![any where true] ![any where true]",
            "at least one stage that is not a missing event",
        ),
        (
            "sequence with maxspan=1s [any where true] [any where true] until ![any where true]",
            "cannot be a missing event",
        ),
    ] {
        let error = parse_statement(query).expect_err(query);
        assert!(error.to_string().contains(wanted), "{query}: {error}");
    }
}

#[test]
fn printing_round_trips_awkward_text() {
    for query in [
        "any where a == \"quote \\\" backslash \\\\ tab \\t\"",
        "\"my-category\" where `weird name.with``tick` : (\"a*\", \"b\")",
        "process where not (a or b) and -(1 + 2) * 3 < 4 - (5 - 6)",
        "any where ?x.y like~ \"*.exe\" and z regex \"[a-z]+\" and f not in (1, 2.5, null)",
        "any where (a == 1) == true",
        "any where startsWith~(a, \"x\") or between(a, \"b\", \"c\", true) == \"\"",
    ] {
        let parsed = parse(query).expect("parses");
        assert_eq!(parsed.to_string(), query);
    }
    assert_eq!(
        parse("any where a:\"\"\"C:\\x\"\"\"").map(|q| q.to_string()),
        Ok("any where a : \"C:\\\\x\"".to_string())
    );
}

#[test]
fn sequences_and_pipes_print_back_as_read() {
    for query in [
        "sequence by user.name with maxspan=30s [process where true] by e [file where a == 1] by f until [network where true] by g",
        "sequence [process where true] by a, b [file where true] by c, d | tail 3",
        "process where true | head 5 | tail 2",
    ] {
        let parsed = parse_statement(query).expect("parses");
        assert_eq!(parsed.to_string(), query);
    }
    // `with maxspan` may come before `by`.
    let parsed = parse_statement("sequence with maxspan=5m by u [a where true] [b where true]")
        .expect("parses");
    assert_eq!(
        parsed.to_string(),
        "sequence by u with maxspan=5m [a where true] [b where true]"
    );
    let Body::Sequence(seq) = parsed.body else {
        panic!("a sequence");
    };
    assert_eq!(seq.maxspan.map(|m| m.nanos()), Some(300_000_000_000));
}

#[test]
fn stage_runs_repeat_a_stage_and_are_bounded() {
    let Ok(Body::Sequence(seq)) =
        parse_statement("sequence [any where a] with runs=3 [any where b]").map(|s| s.body)
    else {
        panic!("parses");
    };
    assert_eq!(seq.stages[0].runs, 3);
    assert_eq!(seq.stages[1].runs, 1);
    // One stage run twice is a sequence of two.
    assert!(parse_statement("sequence [any where a] with runs=2").is_ok());
    assert!(parse_statement("sequence [any where a]").is_err());
    for bad in [
        "sequence [any where a] with runs=0 [any where b]",
        "sequence [any where a] with runs=101 [any where b]",
        "sequence [any where a] with maxspan=1m [any where b]",
        "sequence [any where a] [any where b] until [any where c] with runs=2",
    ] {
        assert!(parse_statement(bad).is_err(), "{bad}");
    }
}

#[test]
fn samples_parse_print_and_are_checked() {
    let text = "sample by host [any where uptime > 0] by os [any where port > 100] by ?op_sys";
    let statement = parse_statement(text).expect("parses");
    let Body::Sample(sample) = &statement.body else {
        panic!("a sample");
    };
    assert_eq!(sample.by, [field("host")]);
    assert_eq!(sample.stages.len(), 2);
    assert_eq!(sample.stages[0].by, [field("os")]);
    assert_eq!(statement.to_string(), text);
    let err = |q: &str| parse_statement(q).expect_err(q).message;
    for (query, wanted) in [
        ("sample by h [any where true]", "at least two filters"),
        (
            "sample [any where true] [any where true]",
            "a sample needs join keys",
        ),
        (
            "sample by h [any where true] by x [any where true]",
            "the same number of join keys",
        ),
        (
            "sample by h [any where true] ![any where true]",
            "no missing events",
        ),
        (
            "sample by h [any where true] with runs=2 [any where true]",
            "takes no `with`",
        ),
        (
            "sample by length(h) [any where true] [any where true]",
            "join keys are fields, not `length(h)`",
        ),
        (
            "sample by h [any where true] [any where true] until [any where true]",
            "end of input",
        ),
        (
            &format!("sample by h {}", "[any where true] ".repeat(33)),
            "at most 32 filters",
        ),
    ] {
        let message = err(query);
        assert!(message.contains(wanted), "{query}: {message}");
    }
}

#[test]
fn sequence_errors() {
    let err = |q: &str| parse_statement(q).expect_err("rejected").message;
    assert_eq!(
        err("sequence [a where true]"),
        "expected \"[\" (a sequence needs at least two stages) but found end of input"
    );
    assert_eq!(
        err("sequence [a where true] by x [b where true]"),
        "every stage of a sequence needs the same number of join keys"
    );
    assert_eq!(
        err("sequence with maxspan=0s [a where true] [b where true]"),
        "expected a time span such as 30s (units ms, s, m, h, d) but found \"0s\""
    );
    assert_eq!(
        err("a where true | sort x"),
        "expected \"head\" or \"tail\" after \"|\""
    );
    assert_eq!(
        err("a where true | head -1"),
        "expected a number of results but found \"-\""
    );
    assert_eq!(err("any where a = 1"), "use == instead of =");
    // The event-query parser takes no pipes.
    assert!(parse("a where true | head 1").is_err());
}
