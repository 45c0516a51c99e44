//! Arbitrary bytes through the whole KQL pipeline: parse (both leading-wildcard settings),
//! render the error, translate with and without metadata (as a value and as text, which must
//! agree), print and re-parse, evaluate.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rule_runner::kql::{self, DslOptions, FieldTypes, MatchOptions, Matcher, ParseOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for allow_leading_wildcards in [true, false] {
        let options = ParseOptions { allow_leading_wildcards };
        match kql::parse_with(text, &options) {
            Err(e) => {
                assert!(e.offset <= text.len());
                let _ = e.render(text);
            }
            Ok(query) => {
                for fields in [None, Some(FieldTypes::ecs_cloudtrail())] {
                    let options = DslOptions::detection_engine();
                    let value = kql::to_dsl(&query, fields, &options);
                    let text = kql::to_dsl_string(&query, fields, &options);
                    // The two outputs are written separately; they must say the same.
                    assert_eq!(value.map(|v| v.to_string()), text);
                    let matcher = Matcher::new(&query, fields, &MatchOptions::default());
                    let _ = matcher.matches(&serde_json::json!({"a": {"b": ["c", 1, null]}, "d.e": true}));
                }
                let printed = kql::to_kql(&query);
                let reparsed = kql::parse_with(&printed, &options);
                assert_eq!(reparsed.as_ref().ok(), Some(&query), "{printed:?}");
            }
        }
    }
});
