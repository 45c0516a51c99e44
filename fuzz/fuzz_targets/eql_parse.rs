//! Arbitrary bytes through the EQL reader: parse a statement, render the error, print a parsed
//! statement and parse it again (the same tree), evaluate event queries and feed sequences.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rule_runner::eql::{self, Body, JoinMatcher, MatchOptions, Matcher};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let statement = match eql::parse_statement(text) {
        Err(e) => {
            assert!(e.offset <= text.len());
            let _ = e.render(text);
            return;
        }
        Ok(statement) => statement,
    };
    let printed = statement.to_string();
    let again = eql::parse_statement(&printed).expect("a printed statement parses");
    assert_eq!(again, statement, "print then parse changed the tree: {printed}");
    let docs = [
        serde_json::json!({"event": {"category": "process"}, "a": {"b": ["c", 1, null]}, "d.e": true}),
        serde_json::json!({"@timestamp": "2024-01-01T00:00:00Z", "x": -1.5, "y": "10.0.0.1"}),
    ];
    let options = MatchOptions::default();
    match &statement.body {
        Body::Event(query) => {
            if let Ok(matcher) = Matcher::new(query, &options) {
                for doc in &docs {
                    let _ = matcher.matches(doc);
                }
            }
        }
        joined => {
            if let Some(Ok(mut matcher)) = JoinMatcher::new(joined, &options, 2) {
                for (i, doc) in docs.iter().enumerate() {
                    let _ = matcher.push(i, i as i128, doc);
                }
                let _ = matcher.finish();
            }
        }
    }
});
