//! Every vector of `tests/data/kql/kibana_vectors.json` (Kibana's own unit tests and the
//! translation rules of kql.md), compared as JSON values.

use rule_runner::kql::{self, DslOptions, FieldTypes};
use serde_json::Value;

use crate::util::data;

fn vectors() -> Vec<Value> {
    let text = std::fs::read_to_string(data("kql/kibana_vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// The outcome for one vector: `Ok(dsl)` or `Err(message)`.
fn run(vector: &Value) -> Result<Value, String> {
    let query = vector["kql"].as_str().unwrap();
    let (parse_options, dsl_options) = DslOptions::from_kibana_config(&vector["config"]);
    let fields = match &vector["fields"] {
        Value::Null => None,
        json => Some(FieldTypes::from_json(json).unwrap()),
    };
    let ast = kql::parse_with(query, &parse_options).map_err(|e| e.render(query))?;
    let result = match vector["level"].as_str().unwrap() {
        "query" => {
            let value = kql::to_dsl(&ast, fields.as_ref(), &dsl_options);
            // The text form is written separately from the value: both must say the same.
            let text = kql::to_dsl_string(&ast, fields.as_ref(), &dsl_options);
            match (&value, &text) {
                (Ok(v), Ok(t)) => assert_eq!(&v.to_string(), t, "{query}"),
                (Err(v), Err(t)) => assert_eq!(v, t, "{query}"),
                _ => panic!("value and text disagree on success: {query}"),
            }
            value
        }
        "build_es_query" => kql::build_es_query(&ast, &[], &[], fields.as_ref(), &dsl_options),
        other => panic!("unknown level {other}"),
    };
    result.map_err(|e| e.to_string())
}

#[test]
fn all_kibana_vectors_pass() {
    let vectors = vectors();
    assert!(vectors.len() >= 150, "{} vectors", vectors.len());
    let mut failures = Vec::new();
    for (i, vector) in vectors.iter().enumerate() {
        let outcome = run(vector);
        let ok = if vector["error"] == Value::Bool(true) {
            outcome.is_err()
        } else {
            outcome.as_ref() == Ok(&vector["dsl"])
        };
        if !ok {
            failures.push(format!(
                "#{i} {:?} fields={} config={}\n  expected: {}\n  got:      {:?}",
                vector["kql"].as_str().unwrap(),
                vector["fields"],
                vector["config"],
                if vector["error"] == Value::Bool(true) {
                    "an error".to_string()
                } else {
                    vector["dsl"].to_string()
                },
                outcome.map(|v| v.to_string()),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors fail:\n{}",
        failures.len(),
        vectors.len(),
        failures.join("\n")
    );
}

#[test]
fn error_vectors_point_where_kibana_does() {
    // Kibana's messages are peggy's; ours follow the same scheme. Check the position and the
    // gist for the errors whose Kibana message names a found character.
    for vector in vectors().iter().filter(|v| v["error"] == Value::Bool(true)) {
        let query = vector["kql"].as_str().unwrap();
        let (parse_options, _) = DslOptions::from_kibana_config(&vector["config"]);
        let err = kql::parse_with(query, &parse_options).unwrap_err();
        let kibana = vector["kibana_message"].as_str().unwrap();
        if let Some(found) = kibana.split(" but ").nth(1) {
            assert!(
                err.message.ends_with(found),
                "{query:?}: {} vs Kibana's {kibana}",
                err.message
            );
        } else {
            assert_eq!(err.message, kibana, "{query:?}");
        }
        assert!(err.offset <= query.len());
    }
}

#[test]
fn free_text_inside_a_nested_group_queries_the_null_field_like_kibana() {
    let ast = kql::parse("n:{ foo }").unwrap();
    let dsl = kql::to_dsl(&ast, None, &DslOptions::default()).unwrap();
    assert_eq!(
        dsl,
        serde_json::json!({"nested": {"path": "n", "query":
            {"bool": {"should": [{"match": {"n.null": "foo"}}], "minimum_should_match": 1}},
            "score_mode": "none"}})
    );
    let top = kql::to_dsl(
        &kql::parse("null: foo").unwrap(),
        None,
        &DslOptions::default(),
    )
    .unwrap();
    assert_eq!(
        top,
        serde_json::json!({"multi_match": {"type": "best_fields", "query": "foo", "lenient": true}})
    );
}
