//! Properties: printing any parser-shaped tree and parsing it back gives the same tree; the
//! translator and the evaluator never panic, whatever the query and the document; a prepared
//! document matches exactly as the document itself.

use proptest::prelude::*;
use rule_runner::kql::{
    self, DslOptions, FieldSlots, FieldTypes, MatchOptions, Matcher, PrepareBuffer, Query, RangeOp,
    Value, Wildcard,
};
use serde_json::{Value as Json, json};

/// Fragments chosen to hit every escape, keyword and whitespace rule of the printer.
const FRAGMENTS: &[&str] = &[
    "a", "B", "z9", "or", "and", "not", "NOT", "Or", "aNd", " ", "  ", "*", "\\", "(", ")", ":",
    "\"", "<", ">", "{", "}", "é", "1", "-", "=", "\t", "\n", "\r", "\u{a0}", "\u{2003}", "x y",
    "true", "null", "\\u0041", "@kuery", ".",
];

fn raw_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..6).prop_map(|parts| parts.concat())
}

fn js_space(c: char) -> bool {
    c.is_whitespace() && c != '\u{85}' || c == '\u{feff}'
}

/// Unquoted text as the parser leaves it: trimmed and not a typed literal.
fn unquoted_text() -> impl Strategy<Value = String> {
    raw_text().prop_filter("trimmed, untyped", |s| {
        s.trim_matches(js_space) == s && !matches!(s.as_str(), "true" | "false" | "null")
    })
}

fn wildcard() -> impl Strategy<Value = Value> {
    prop::collection::vec(raw_text(), 2..4)
        .prop_filter("trimmed at the ends", |pieces| {
            !pieces[0].starts_with(js_space) && !pieces[pieces.len() - 1].ends_with(js_space)
        })
        .prop_map(|pieces| Value::Wildcard(Wildcard::new(pieces).unwrap()))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => unquoted_text().prop_map(Value::Text),
        2 => raw_text().prop_map(Value::Quoted),
        2 => wildcard(),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
    ]
}

fn range_op() -> impl Strategy<Value = RangeOp> {
    prop::sample::select(vec![RangeOp::Lt, RangeOp::Lte, RangeOp::Gt, RangeOp::Gte])
}

fn query() -> impl Strategy<Value = Query> {
    let leaf = prop_oneof![
        (prop::option::of(value()), value()).prop_map(|(field, value)| Query::Is { field, value }),
        (value(), range_op(), value()).prop_map(|(field, op, value)| Query::Range {
            field,
            op,
            value
        }),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::And),
            prop::collection::vec(inner.clone(), 2..4).prop_map(Query::Or),
            inner.clone().prop_map(|q| Query::Not(Box::new(q))),
            (value(), inner).prop_map(|(path, q)| Query::Nested {
                path,
                query: Box::new(q)
            }),
        ]
    })
}

fn document() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        raw_text().prop_map(Json::String),
        prop::sample::select(vec![
            "2024-01-01T00:00:00Z",
            "10.0.0.1",
            "::1",
            "now",
            "1024"
        ])
        .prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "a", "b", "a.b", "event", "action", "f", "n", "x y", ""
                ]),
                inner,
                0..4
            )
            .prop_map(|m| Json::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn metadata() -> FieldTypes {
    FieldTypes::from_json(&json!({
        "a": "keyword", "b": "text", "a.b": "date", "event.action": "long", "f": "ip",
        "n.x": {"es_types": ["keyword"], "nested_path": "n"}, "action": "boolean",
        "x y": {"es_types": ["keyword"], "ignore_above": 3}
    }))
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn printing_then_parsing_gives_the_same_tree(q in query()) {
        let printed = kql::to_kql(&q);
        let reparsed = kql::parse(&printed).map_err(|e| TestCaseError::fail(e.render(&printed)))?;
        prop_assert_eq!(reparsed, q, "printed as {:?}", printed);
    }

    #[test]
    fn arbitrary_text_parses_or_fails_and_what_parses_round_trips(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..20)) {
        let text = parts.concat();
        if let Ok(q) = kql::parse(&text) {
            let printed = kql::to_kql(&q);
            prop_assert_eq!(kql::parse(&printed).ok(), Some(q), "{:?} printed as {:?}", text, printed);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn translation_and_evaluation_never_panic(q in query(), docs in prop::collection::vec(document(), 1..4)) {
        let fields = metadata();
        for types in [None, Some(&fields), Some(FieldTypes::ecs_cloudtrail())] {
            let _ = kql::to_dsl(&q, types, &DslOptions::detection_engine());
            let _ = kql::build_es_query(&q, &[], &[], types, &DslOptions::default());
            for case_insensitive in [false, true] {
                let options = MatchOptions { case_insensitive, now_millis: Some(0) };
                let matcher = Matcher::new(&q, types, &options);
                for doc in &docs {
                    let _ = matcher.matches(doc);
                }
            }
        }
    }

    #[test]
    fn not_is_the_complement_and_and_or_agree_with_their_parts(q in query(), doc in document()) {
        let options = MatchOptions { now_millis: Some(0), ..Default::default() };
        let m = |q: &Query| Matcher::new(q, None, &options).matches(&doc);
        prop_assert_eq!(m(&Query::Not(Box::new(q.clone()))), !m(&q));
        let pair = vec![q.clone(), Query::Is { field: Some(Value::Text("a".into())), value: Value::Text("b".into()) }];
        let (first, second) = (m(&pair[0]), m(&pair[1]));
        prop_assert_eq!(m(&Query::And(pair.clone())), first && second);
        prop_assert_eq!(m(&Query::Or(pair)), first || second);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn prepared_documents_match_exactly_as_the_documents(
        queries in prop::collection::vec(query(), 1..4),
        docs in prop::collection::vec(document(), 1..4),
    ) {
        let fields = metadata();
        let options = MatchOptions { now_millis: Some(0), ..Default::default() };
        for types in [None, Some(&fields)] {
            // Several matchers sharing one set of slots, as a scan compiles its rules.
            let mut slots = FieldSlots::new();
            let matchers: Vec<Matcher> = queries
                .iter()
                .map(|q| Matcher::with_slots(q, types, &options, &mut slots))
                .collect();
            let mut buffer = PrepareBuffer::default();
            for doc in &docs {
                let block = slots.prepare_in(buffer, doc);
                for (q, m) in queries.iter().zip(&matchers) {
                    let plain = Matcher::new(q, types, &options).matches(doc);
                    prop_assert_eq!(m.matches(doc), plain, "{} on {}", kql::to_kql(q), doc);
                    prop_assert_eq!(m.matches_prepared(&block), plain, "{} on {}", kql::to_kql(q), doc);
                    // A block prepared for other slots is never read as if it were this one's.
                    let other = FieldSlots::new().prepare(doc);
                    prop_assert_eq!(m.matches_prepared(&other), plain);
                }
                buffer = block.into_buffer();
            }
        }
    }
}
