use proptest::prelude::*;

use super::*;
use crate::eql::ast::{Maxspan, Sample, Sequence, Stage};

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

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        (0..=i64::MAX).prop_map(Literal::Int),
        any::<f64>()
            .prop_filter("finite, positive", |x| x.is_finite()
                && x.is_sign_positive())
            .prop_map(Literal::Float),
        any::<String>().prop_map(Literal::String),
    ]
}

fn field_name() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z_@][a-z0-9_]{0,6}",
        Just("by".to_string()),
        Just("true".to_string()),
        "[ -~]{1,4}",
    ];
    prop::collection::vec(segment, 1..4).prop_map(|s| s.join("."))
}

fn pattern(op: MatchOp) -> BoxedStrategy<String> {
    match op {
        // Any text is a wildcard pattern; regexes are kept valid.
        MatchOp::Regex => "[a-z.]{0,5}".boxed(),
        _ => any::<String>().boxed(),
    }
}

fn call() -> impl Strategy<Value = (String, bool, usize)> {
    (
        0..super::functions::SIGNATURES_LEN,
        any::<bool>(),
        0..3usize,
    )
        .prop_map(|(i, tilde, extra)| {
            let sig = super::functions::nth_signature(i);
            let count = sig
                .max
                .map_or(sig.min + extra, |max| (sig.min + extra).min(max));
            (sig.name.to_string(), tilde && sig.insensitive, count)
        })
}

pub(crate) fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![
        literal().prop_map(Expr::Literal),
        (field_name(), any::<bool>())
            .prop_map(|(name, optional)| Expr::Field(Field { name, optional })),
    ];
    leaf.prop_recursive(4, 32, 4, |inner| {
        let cmp = prop_oneof![
            Just(CmpOp::Eq),
            Just(CmpOp::Ne),
            Just(CmpOp::Lt),
            Just(CmpOp::Le),
            Just(CmpOp::Gt),
            Just(CmpOp::Ge)
        ];
        let arith = prop_oneof![
            Just(ArithOp::Add),
            Just(ArithOp::Sub),
            Just(ArithOp::Mul),
            Just(ArithOp::Div),
            Just(ArithOp::Mod)
        ];
        let matcher = (
            prop_oneof![
                Just(MatchOp::Colon),
                Just(MatchOp::Like),
                Just(MatchOp::Regex)
            ],
            any::<bool>(),
        )
            .prop_flat_map(|(op, insensitive)| {
                (
                    Just(op),
                    Just(insensitive || op == MatchOp::Colon),
                    prop::collection::vec(pattern(op), 1..3),
                    any::<bool>(),
                )
            });
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Expr::Or),
            inner.clone().prop_map(|e| Expr::Not(Box::new(e))),
            inner.clone().prop_map(|e| Expr::Neg(Box::new(e))),
            (cmp, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Compare {
                op,
                left: Box::new(l),
                right: Box::new(r)
            }),
            (arith, inner.clone(), inner.clone()).prop_map(|(op, l, r)| Expr::Arith {
                op,
                left: Box::new(l),
                right: Box::new(r)
            }),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..3),
                any::<bool>(),
                any::<bool>()
            )
                .prop_map(|(e, list, negated, insensitive)| Expr::In {
                    expr: Box::new(e),
                    list,
                    negated,
                    insensitive
                }),
            (inner.clone(), matcher).prop_map(|(e, (op, insensitive, patterns, list))| {
                Expr::Match {
                    expr: Box::new(e),
                    op,
                    insensitive,
                    list: list || patterns.len() > 1,
                    patterns,
                }
            }),
            (call(), prop::collection::vec(inner, 0..6)).prop_map(
                |((name, insensitive, count), mut args)| {
                    args.truncate(count);
                    while args.len() < count {
                        args.push(Expr::Literal(Literal::Null));
                    }
                    Expr::Call {
                        name,
                        insensitive,
                        args,
                    }
                }
            ),
        ]
    })
}

pub(crate) fn query() -> impl Strategy<Value = Query> {
    let category = prop_oneof![
        Just(Category::Any),
        any::<String>().prop_map(Category::Named),
        "[a-z]{1,8}".prop_map(Category::Named),
    ];
    (category, expr()).prop_map(|(category, condition)| Query {
        category,
        condition,
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn print_then_parse_gives_the_same_tree(query in query()) {
        let text = query.to_string();
        prop_assert_eq!(parse(&text), Ok(query), "{}", text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,60}") {
        let _ = parse(&text);
    }
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

pub(crate) fn statement() -> impl Strategy<Value = Statement> {
    let keys = |n: usize| prop::collection::vec(expr(), n..=n);
    let sequence =
        (0..3usize, 2..4usize, any::<bool>()).prop_flat_map(move |(n, stages, until)| {
            let stage = move || {
                (query(), keys(n), 1..4u32, prop::bool::weighted(0.3)).prop_map(
                    |(query, by, runs, missing)| Stage {
                        query,
                        by,
                        runs,
                        missing,
                    },
                )
            };
            (
                prop::collection::vec(expr(), 0..2),
                prop::option::of(
                    (
                        1..1000i64,
                        prop_oneof![Just("ms"), Just("s"), Just("m"), Just("h"), Just("d")],
                    )
                        .prop_map(|(amount, unit)| Maxspan {
                            amount,
                            unit: unit.to_string(),
                        }),
                ),
                prop::collection::vec(stage(), stages..=stages),
                if until {
                    stage()
                        .prop_map(|s| {
                            Some(Stage {
                                runs: 1,
                                missing: false,
                                ..s
                            })
                        })
                        .boxed()
                } else {
                    Just(None).boxed()
                },
            )
                .prop_map(|(by, maxspan, mut stages, until)| {
                    // Missing events need `maxspan` and a stage that is not one, and the
                    // stages must still add up to two.
                    let needs_fix = maxspan.is_none() || stages.iter().all(|s| s.missing);
                    if needs_fix {
                        for stage in &mut stages {
                            stage.missing = false;
                        }
                    }
                    Body::Sequence(Sequence {
                        by,
                        maxspan,
                        stages,
                        until,
                    })
                })
        });
    let key = || {
        (field_name(), any::<bool>())
            .prop_map(|(name, optional)| Expr::Field(Field { name, optional }))
    };
    let sample = (1..3usize, 2..4usize).prop_flat_map(move |(n, stages)| {
        let stage = move || {
            (query(), prop::collection::vec(key(), n..=n)).prop_map(|(query, by)| Stage {
                query,
                by,
                runs: 1,
                missing: false,
            })
        };
        (
            prop::collection::vec(key(), 0..2),
            prop::collection::vec(stage(), stages..=stages),
        )
            .prop_map(|(by, stages)| Body::Sample(Sample { by, stages }))
    });
    let body = prop_oneof![query().prop_map(Body::Event), sequence, sample];
    let pipe = prop_oneof![
        (0..=i64::MAX as u64).prop_map(Pipe::Head),
        (0..=i64::MAX as u64).prop_map(Pipe::Tail)
    ];
    (body, prop::collection::vec(pipe, 0..3)).prop_map(|(body, pipes)| Statement { body, pipes })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn statements_print_then_parse_to_the_same_tree(statement in statement()) {
        let text = statement.to_string();
        prop_assert_eq!(parse_statement(&text), Ok(statement), "{}", text);
    }
}
