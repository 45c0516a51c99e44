//! The search bodies of both shipped rules, compared with `kibana-detection-engine.md` §5.2
//! and `kql.md` §11 (scenario C field metadata), and the parts that vary with the rule.

use rule_runner::elasticsearch::source::{compile, request};
use rule_runner::rule::Rule;
use serde_json::{Value, json};

use super::source::{LAYER_ADDED, PUBLIC_INVOCATION, field_caps_reply, shipped, window};

fn reduced_types() -> Value {
    rule_runner::elasticsearch::source::field_caps::reduce(
        &field_caps_reply(),
        &["event.ingested", "@timestamp"],
    )
    .field_types
}

fn time_filter() -> Value {
    json!({ "bool": { "minimum_should_match": 1, "should": [
      { "range": { "event.ingested": { "gte": "2025-01-01T11:00:00.000Z", "lte": "2025-01-01T12:00:00.000Z", "format": "strict_date_optional_time" } } },
      { "bool": { "filter": [
        { "range": { "@timestamp": { "gte": "2025-01-01T11:00:00.000Z", "lte": "2025-01-01T12:00:00.000Z", "format": "strict_date_optional_time" } } },
        { "bool": { "must_not": { "exists": { "field": "event.ingested" } } } } ] } } ] } })
}

pub fn fields_and_sort() -> (Value, Value) {
    (
        json!([ { "field": "*", "include_unmapped": true },
                { "field": "event.ingested", "format": "strict_date_optional_time" },
                { "field": "@timestamp", "format": "strict_date_optional_time" } ]),
        json!([ { "event.ingested": { "order": "asc", "unmapped_type": "date" } },
                { "@timestamp": { "order": "asc", "unmapped_type": "date" } } ]),
    )
}

fn should(clause: Value) -> Value {
    json!({ "bool": { "should": [clause], "minimum_should_match": 1 } })
}

/// The Public Invocation rule's KQL part, as in §5.2 of the detection-engine doc.
pub fn public_invocation_kql() -> Value {
    json!({ "bool": { "filter": [
        should(json!({ "match": { "event.dataset": "aws.cloudtrail" } })),
        should(json!({ "term": { "event.provider": { "value": "lambda.amazonaws.com" } } })),
        should(json!({ "term": { "event.outcome": { "value": "success" } } })),
        should(json!({ "wildcard": { "event.action": { "value": "AddPermission*" } } })),
        { "bool": { "filter": [
            should(json!({ "wildcard": { "aws.cloudtrail.request_parameters": { "value": "*lambda\\:InvokeFunction*" } } })),
            should(json!({ "wildcard": { "aws.cloudtrail.request_parameters": { "value": "*principal\\=\\**" } } }))
        ] } }
    ] } })
}

/// The Layer Added rule's KQL part: `kql.md` §11 scenario C, with the shipped rule's
/// `UpdateFunctionConfiguration*` (a wildcard, see the rule file) in place of the seed's
/// exact value.
fn layer_added_kql() -> Value {
    json!({ "bool": { "filter": [
        should(json!({ "match": { "event.dataset": "aws.cloudtrail" } })),
        should(json!({ "term": { "event.provider": { "value": "lambda.amazonaws.com" } } })),
        should(json!({ "term": { "event.outcome": { "value": "success" } } })),
        { "bool": { "should": [
            should(json!({ "wildcard": { "event.action": { "value": "PublishLayerVersion*" } } })),
            should(json!({ "wildcard": { "event.action": { "value": "UpdateFunctionConfiguration*" } } }))
        ], "minimum_should_match": 1 } }
    ] } })
}

/// The §5.2 first-page body around a KQL translation.
pub fn kibana_first_page(kql: Value) -> Value {
    let (fields, sort) = fields_and_sort();
    json!({
      "allow_no_indices": true,
      "index": ["filebeat-*", "logs-aws.cloudtrail-*"],
      "ignore_unavailable": true,
      "size": 100,
      "query": { "bool": { "filter": [
        { "bool": { "must": [], "filter": [kql], "should": [], "must_not": [] } },
        time_filter()
      ] } },
      "fields": fields,
      "sort": sort
    })
}

fn compiled_body(rule: &Rule) -> Value {
    let query = compile::parse(rule).unwrap();
    let rule_query = compile::rule_query(rule, &query, &reduced_types()).unwrap();
    request::kibana_body(rule_query, rule, window(), 100)
}

#[test]
fn public_invocation_body_is_the_documented_one() {
    let rule = shipped(PUBLIC_INVOCATION);
    assert_eq!(
        compiled_body(&rule),
        kibana_first_page(public_invocation_kql())
    );
}

#[test]
fn layer_added_body_is_the_documented_one() {
    let rule = shipped(LAYER_ADDED);
    assert_eq!(compiled_body(&rule), kibana_first_page(layer_added_kql()));
}

#[test]
fn without_the_override_only_timestamp_is_used() {
    let mut rule = (*shipped(PUBLIC_INVOCATION)).clone();
    rule.timestamp_override = None;
    assert_eq!(
        request::time_filter(&rule, window()),
        json!({ "range": { "@timestamp": { "gte": "2025-01-01T11:00:00.000Z",
            "lte": "2025-01-01T12:00:00.000Z", "format": "strict_date_optional_time" } } })
    );
    assert_eq!(
        request::sort(&rule),
        [json!({ "@timestamp": { "order": "asc", "unmapped_type": "date" } })]
    );
    rule.timestamp_override = Some("event.ingested".into());
    rule.timestamp_override_fallback_disabled = true;
    assert_eq!(
        request::time_filter(&rule, window())["range"]["event.ingested"]["gte"],
        "2025-01-01T11:00:00.000Z"
    );
}

#[test]
fn rule_filters_go_beside_the_kql_and_negated_ones_into_must_not() {
    let mut rule = (*shipped(PUBLIC_INVOCATION)).clone();
    rule.filters = vec![
        json!({"meta": {"negate": false, "disabled": false}, "query": {"match_phrase": {"cloud.region": "us-east-1"}}}),
        json!({"meta": {"negate": true, "disabled": false}, "query": {"match_phrase": {"user.name": "terraform"}}}),
        json!({"meta": {"negate": false, "disabled": true}, "query": {"match_phrase": {"x": "y"}}}),
    ];
    let body = compiled_body(&rule);
    let outer = &body["query"]["bool"]["filter"][0]["bool"];
    assert_eq!(outer["filter"][0], public_invocation_kql());
    assert_eq!(
        outer["filter"][1],
        json!({"match_phrase": {"cloud.region": "us-east-1"}})
    );
    assert_eq!(
        outer["filter"].as_array().unwrap().len(),
        2,
        "disabled filters are dropped"
    );
    assert_eq!(
        outer["must_not"],
        json!([{"match_phrase": {"user.name": "terraform"}}])
    );
}
