use serde_json::json;

use super::*;
use crate::eql::parse;

/// Whether `query` matches `doc`, checking that a prepared copy of `doc` gives the same answer.
fn matches(query: &str, doc: &Json) -> bool {
    let parsed = parse(query).expect("the test query parses");
    let mut slots = FieldSlots::new();
    let matcher =
        Matcher::with_slots(&parsed, &MatchOptions::default(), &mut slots).expect("compiles");
    let matched = matcher.matches(doc);
    assert_eq!(
        matcher.matches_prepared(&slots.prepare(doc)),
        matched,
        "{query} on the prepared {doc}"
    );
    matched
}

#[test]
fn category_matches_a_value_or_an_array_holding_it() {
    let doc = json!({"event": {"category": ["process", "network"]}});
    assert!(matches("process where true", &doc));
    assert!(matches("network where true", &doc));
    assert!(!matches("file where true", &doc));
    assert!(matches("any where true", &doc));
    assert!(matches(
        "\"process\" where true",
        &json!({"event.category": "process"})
    ));
    assert!(!matches(
        "Process where true",
        &json!({"event.category": "process"})
    ));
    let custom = MatchOptions {
        event_category_field: "kind".into(),
    };
    let query = parse("process where true").expect("parses");
    let matcher = Matcher::new(&query, &custom).expect("compiles");
    assert!(matcher.matches(&json!({"kind": "process"})));
    assert!(!matcher.matches(&json!({"event": {"category": "process"}})));
}

#[test]
fn missing_fields_fail_comparisons_and_equal_null() {
    let doc = json!({"a": 1, "n": null, "e": []});
    for query in [
        "any where x == 1",
        "any where x != 1",
        "any where x < 1",
        "any where x >= 1",
        "any where x : \"*\"",
        "any where x like \"*\"",
        "any where x in (1, 2)",
        "any where x not in (1, 2)",
        "any where x != null",
        "any where n != null",
        "any where e != null",
        "any where x + 1 == 1",
        "any where x == x",
    ] {
        assert!(!matches(query, &doc), "{query}");
    }
    for query in [
        "any where x == null",
        "any where ?x == null",
        "any where n == null",
        "any where e == null",
        "any where null == x",
        "any where a != null",
        "any where not x == 1",
    ] {
        assert!(matches(query, &doc), "{query}");
    }
}

#[test]
fn comparisons_are_case_sensitive_and_colon_is_not() {
    let doc = json!({"process": {"name": "CMD.EXE", "pid": 42, "args": ["-c", "whoami"]}});
    assert!(matches("any where process.name == \"CMD.EXE\"", &doc));
    assert!(!matches("any where process.name == \"cmd.exe\"", &doc));
    assert!(matches("any where process.name != \"cmd.exe\"", &doc));
    assert!(matches("any where process.name : \"cmd.exe\"", &doc));
    assert!(matches("any where process.name : \"c?d.*\"", &doc));
    assert!(matches("any where process.name : (\"x\", \"*.exe\")", &doc));
    assert!(!matches("any where process.name like \"*.exe\"", &doc));
    assert!(matches("any where process.name like~ \"*.exe\"", &doc));
    assert!(matches(
        "any where process.name in (\"a\", \"CMD.EXE\")",
        &doc
    ));
    assert!(!matches("any where process.name in (\"cmd.exe\")", &doc));
    assert!(matches("any where process.name in~ (\"cmd.exe\")", &doc));
    assert!(matches("any where process.name not in (\"cmd.exe\")", &doc));
    assert!(matches(
        "any where process.name regex \"CMD\\\\.[A-Z]+\"",
        &doc
    ));
    assert!(!matches("any where process.name regex \"CMD\"", &doc));
    assert!(matches(
        "any where process.name regex~ \"cmd\\\\..*\"",
        &doc
    ));
    assert!(matches("any where process.args == \"whoami\"", &doc));
    assert!(!matches("any where process.args != \"whoami\"", &doc));
    assert!(matches("any where process.args not in (\"x\")", &doc));
    assert!(!matches("any where process.args not in (\"-c\")", &doc));
}

#[test]
fn numbers_compare_numerically_and_numeric_strings_as_numbers() {
    let doc = json!({"pid": 42, "port": "443", "ratio": 0.5, "flag": true, "big": 18446744073709551615u64});
    assert!(matches("any where pid == 42.0", &doc));
    assert!(matches("any where pid > 41 and pid <= 42", &doc));
    assert!(matches("any where port == 443", &doc));
    assert!(matches("any where port > 100", &doc));
    assert!(matches("any where ratio < 1", &doc));
    assert!(matches("any where flag == true", &doc));
    assert!(!matches("any where flag == 1", &doc));
    assert!(matches("any where big > 1", &doc));
    assert!(matches("any where pid * 2 + 1 == 85", &doc));
    assert!(matches(
        "any where -pid == -42 and pid % 5 == 2 and pid / 5 == 8",
        &doc
    ));
    assert!(matches("any where pid / 0 == null", &doc));
    assert!(matches("any where \"b\" > \"a\"", &doc));
    assert!(!matches("any where \"abc\" > 1", &doc));
}

#[test]
fn boolean_logic_and_functions() {
    let doc =
        json!({"process": {"name": "cmd.exe", "path": "C:\\Windows\\cmd.exe"}, "ip": "10.1.2.3"});
    assert!(matches(
        "any where process.name == \"cmd.exe\" and not process.name == \"x\"",
        &doc
    ));
    assert!(matches("any where process.name == \"x\" or true", &doc));
    assert!(!matches(
        "any where not (process.name == \"x\" or true)",
        &doc
    ));
    assert!(matches(
        "any where endsWith~(process.path, \"\\\\CMD.EXE\")",
        &doc
    ));
    assert!(!matches(
        "any where endsWith(process.path, \"\\\\CMD.EXE\")",
        &doc
    ));
    assert!(matches("any where length(process.name) == 7", &doc));
    assert!(matches("any where cidrMatch(ip, \"10.0.0.0/8\")", &doc));
    assert!(matches(
        "any where concat(process.name, \"/\", 1) == \"cmd.exe/1\"",
        &doc
    ));
    assert!(matches(
        "any where string(length(process.name)) == \"7\"",
        &doc
    ));
    assert!(matches("any where number(\"12\") + 1 == 13", &doc));
    assert!(matches("any where length(nope) == null", &doc));
    assert!(!matches("any where startsWith(nope, \"a\")", &doc));
    assert!(matches("any where not startsWith(nope, \"a\")", &doc));
}

#[test]
fn dotted_and_backquoted_names_read_the_same_field() {
    let doc = json!({"a.b": {"c d": 1}, "x": {"y": 2}});
    assert!(matches("any where `a.b`.`c d` == 1", &doc));
    assert!(matches("any where `x.y` == 2 and x.y == 2", &doc));
}

pub(crate) fn json_value() -> impl proptest::strategy::Strategy<Value = Json> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(Json::from),
        "\\PC{0,8}".prop_map(Json::String),
        "10\\.[0-9]{1,3}\\.0\\.1".prop_map(Json::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Json::Array),
            // Short keys, so that generated field names find something.
            prop::collection::vec(("[a-z_@][a-z0-9_]{0,1}", inner), 0..4)
                .prop_map(|entries| Json::Object(entries.into_iter().collect())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

    #[test]
    fn evaluation_never_panics(
        query in crate::eql::parser::tests::query(),
        doc in json_value(),
    ) {
        let mut slots = FieldSlots::new();
        let matcher = Matcher::with_slots(&query, &MatchOptions::default(), &mut slots);
        proptest::prop_assert!(matcher.is_ok());
        if let Ok(matcher) = matcher {
            let matched = matcher.matches(&doc);
            proptest::prop_assert_eq!(matcher.matches_prepared(&slots.prepare(&doc)), matched);
            // `any where C` and `any where not C` split every document between them.
            let negated = crate::eql::Query {
                category: Category::Any,
                condition: Expr::Not(Box::new(query.condition.clone())),
            };
            let any = crate::eql::Query {
                category: Category::Any,
                condition: query.condition.clone(),
            };
            let options = MatchOptions::default();
            let (Ok(negated), Ok(any)) = (Matcher::new(&negated, &options), Matcher::new(&any, &options)) else {
                return Err(proptest::test_runner::TestCaseError::fail("compiles"));
            };
            proptest::prop_assert_ne!(any.matches(&doc), negated.matches(&doc));
            proptest::prop_assert!(!matched || any.matches(&doc));
        }
    }
}

#[test]
fn a_block_prepared_for_other_slots_or_before_a_field_was_added_reads_the_document() {
    let doc = json!({"event": {"category": "process", "action": ["a", "b"]}, "n": 2});
    let mut slots = FieldSlots::new();
    let first = Matcher::with_slots(
        &parse("process where event.action == \"b\"").expect("parses"),
        &MatchOptions::default(),
        &mut slots,
    )
    .expect("compiles");
    let block = slots.prepare(&doc);
    assert_eq!(
        slots.paths().collect::<Vec<_>>(),
        ["event.category", "event.action"]
    );
    let later = Matcher::with_slots(
        &parse("any where n + 1 == 3").expect("parses"),
        &MatchOptions::default(),
        &mut slots,
    )
    .expect("compiles");
    assert!(first.matches_prepared(&block));
    assert!(
        later.matches_prepared(&block),
        "slot 2 was not in the block"
    );
    let unrelated = Matcher::new(
        &parse("any where n == 2").expect("parses"),
        &MatchOptions::default(),
    )
    .expect("compiles");
    assert!(unrelated.matches_prepared(&block));
    let other = json!({"n": 5});
    let next = slots.prepare_in(block.into_buffer(), &other);
    assert!(!first.matches_prepared(&next) && !later.matches_prepared(&next));
}
