//! Generated trees: the strategies that build random queries and statements (also used by
//! the evaluator's and the sequence matcher's properties), and the print-then-parse
//! properties over them.

use proptest::prelude::*;

use super::*;
use crate::eql::ast::{Maxspan, Sample, Sequence, Stage};

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
