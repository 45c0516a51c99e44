//! The evaluator against documents: the seed rules, Elasticsearch field semantics, metadata.

use rule_runner::kql::{self, FieldTypes, MatchOptions, Matcher};
use serde_json::{Value, json};

pub const LAYER_ADDED: &str = "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success\n  and event.action: (PublishLayerVersion* or UpdateFunctionConfiguration)\n";
pub const PUBLIC_INVOCATION: &str = "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success\n  and event.action: AddPermission*\n  and aws.cloudtrail.request_parameters: (*lambda\\:InvokeFunction* and *principal=\\**)\n";

fn matcher_with(query: &str, fields: Option<&FieldTypes>) -> Matcher {
    let ast = kql::parse(query).unwrap_or_else(|e| panic!("{}", e.render(query)));
    Matcher::new(&ast, fields, &MatchOptions::default())
}

fn matcher(query: &str) -> Matcher {
    matcher_with(query, None)
}

fn ecs() -> Option<&'static FieldTypes> {
    Some(FieldTypes::ecs_cloudtrail())
}

fn lambda_event(action: &str, request_parameters: &str) -> Value {
    json!({
        "@timestamp": "2024-05-01T10:00:00.000Z",
        "event": {"dataset": "aws.cloudtrail", "provider": "lambda.amazonaws.com",
                  "outcome": "success", "action": action},
        "aws": {"cloudtrail": {"request_parameters": request_parameters}}
    })
}

const PUBLIC_PARAMS: &str =
    "{functionName=backdoor, statementId=s1, action=lambda:InvokeFunction, principal=*}";
const SNS_PARAMS: &str =
    "{functionName=f, statementId=s1, action=lambda:InvokeFunction, principal=sns.amazonaws.com}";

#[test]
fn layer_added_seed_rule() {
    for fields in [None, ecs()] {
        let m = matcher_with(LAYER_ADDED, fields);
        assert!(m.matches(&lambda_event("PublishLayerVersion20181031", "{}")));
        assert!(m.matches(&lambda_event("UpdateFunctionConfiguration", "{}")));
        // Real CloudTrail names carry a version suffix: the exact branch never matches them.
        assert!(!m.matches(&lambda_event("UpdateFunctionConfiguration20150331v2", "{}")));
        assert!(!m.matches(&lambda_event("CreateFunction20150331", "{}")));
        let mut failed = lambda_event("PublishLayerVersion20181031", "{}");
        failed["event"]["outcome"] = json!("failure");
        assert!(!m.matches(&failed));
        let mut other = lambda_event("PublishLayerVersion20181031", "{}");
        other["event"]["dataset"] = json!("aws.s3access");
        assert!(!m.matches(&other));
        assert!(!m.matches(&json!({})));
    }
}

#[test]
fn public_invocation_seed_rule_needs_a_literal_star_principal() {
    for fields in [None, ecs()] {
        let m = matcher_with(PUBLIC_INVOCATION, fields);
        assert!(m.matches(&lambda_event("AddPermission20150331v2", PUBLIC_PARAMS)));
        // `\*` is a literal asterisk: a named principal does not match (the Python library
        // of detection-rules gets this wrong).
        assert!(!m.matches(&lambda_event("AddPermission20150331v2", SNS_PARAMS)));
        assert!(!m.matches(&lambda_event(
            "AddPermission20150331v2",
            "{action=lambda:GetFunction, principal=*}"
        )));
        assert!(!m.matches(&lambda_event("RemovePermission20150331v2", PUBLIC_PARAMS)));
    }
}

#[test]
fn escaped_star_is_literal_in_the_pattern() {
    let m = matcher("p: *principal=\\**");
    assert!(!m.matches(&json!({"p": "principal=sns.amazonaws.com"})));
    assert!(m.matches(&json!({"p": "principal=*"})));
    assert!(m.matches(&json!({"p": "x principal=*, y"})));
    assert!(!matcher("p: \\*").matches(&json!({"p": "anything"})));
    assert!(matcher("p: \\*").matches(&json!({"p": "*"})));
}

#[test]
fn keyword_matching_is_exact_and_case_sensitive() {
    let m = matcher("event.outcome: success");
    assert!(m.matches(&json!({"event": {"outcome": "success"}})));
    assert!(!m.matches(&json!({"event": {"outcome": "Success"}})));
    assert!(!m.matches(&json!({"event": {"outcome": "success "}})));
    assert!(!matcher("event.action: addpermission*").matches(&lambda_event("AddPermission", "")));
    let ast = kql::parse("event.outcome: success").unwrap();
    let ci = Matcher::new(
        &ast,
        None,
        &MatchOptions {
            case_insensitive: true,
            ..Default::default()
        },
    );
    assert!(ci.matches(&json!({"event": {"outcome": "SUCCESS"}})));
}

#[test]
fn dotted_keys_arrays_and_exists() {
    let m = matcher("event.action: x");
    assert!(m.matches(&json!({"event": {"action": "x"}})));
    assert!(m.matches(&json!({"event.action": "x"})));
    assert!(m.matches(&json!({"event": {"action": ["y", "x"]}})));
    assert!(m.matches(&json!({"event": [{"action": "y"}, {"action": "x"}]})));
    let exists = matcher("host.name: *");
    assert!(exists.matches(&json!({"host": {"name": ""}})));
    assert!(!exists.matches(&json!({"host": {"name": null}})));
    assert!(!exists.matches(&json!({"host": {"name": []}})));
    assert!(!exists.matches(&json!({"host": {}})));
    assert!(matcher("*:*").matches(&json!({})));
    assert!(matcher("").matches(&json!({})));
}

#[test]
fn boolean_operators_and_value_lists() {
    let m = matcher("f: (a or b and not c)");
    assert!(m.matches(&json!({"f": "a"})));
    assert!(m.matches(&json!({"f": "b"})));
    assert!(!m.matches(&json!({"f": ["b", "c"]})));
    assert!(!m.matches(&json!({"f": "d"})));
    // `not` is plain negation: a document without the field matches.
    assert!(matcher("not f: x").matches(&json!({})));
}

#[test]
fn ranges_numbers_dates_and_strings() {
    assert!(matcher("source.port >= 1024").matches(&json!({"source": {"port": 8080}})));
    assert!(!matcher("source.port >= 1024").matches(&json!({"source": {"port": 80}})));
    let d = matcher("@timestamp < \"2024-05-02\"");
    assert!(d.matches(&lambda_event("x", "")));
    assert!(!matcher("@timestamp > 2024-05-01T11\\:00").matches(&lambda_event("x", "")));
    assert!(matcher_with("@timestamp <= 2024-05-01", ecs()).matches(&lambda_event("x", "")));
    assert!(matcher("name > b").matches(&json!({"name": "c"})));
    assert!(!matcher("name > b").matches(&json!({"name": "a"})));
}

#[test]
fn metadata_changes_semantics_like_the_mapping() {
    let fields = FieldTypes::from_json(&json!({
        "message": "text", "port": "long", "ip": "ip", "flag": "boolean", "d": "date",
        "k": {"es_types": ["keyword"], "ignore_above": 5}
    }))
    .unwrap();
    let m = |q: &str| matcher_with(q, Some(&fields));
    assert!(m("message: OPEN").matches(&json!({"message": "cannot open file"})));
    assert!(m("message: \"open file\"").matches(&json!({"message": "cannot open file"})));
    assert!(!m("message: \"file open\"").matches(&json!({"message": "cannot open file"})));
    assert!(m("port: 80").matches(&json!({"port": "80"})));
    assert!(m("port: 80").matches(&json!({"port": 80.0})));
    assert!(m("ip: 10.0.0.0/8").matches(&json!({"ip": "10.2.3.4"})));
    assert!(m("flag: true").matches(&json!({"flag": true})));
    assert!(m("d: 2024-05-01").matches(&json!({"d": "2024-05-01T23:00:00Z"})));
    assert!(m("k: abcde").matches(&json!({"k": "abcde"})));
    assert!(!m("k: abcdef").matches(&json!({"k": "abcdef"})));
    assert!(!m("k: *").matches(&json!({"k": "abcdef"})));
}

#[test]
fn field_wildcards_nested_groups_and_free_text() {
    let fields =
        FieldTypes::from_json(&json!({"agent.id": "keyword", "agent.name": "keyword"})).unwrap();
    let m = matcher_with("agent*: linux", Some(&fields));
    assert!(m.matches(&json!({"agent": {"name": "linux"}})));
    assert!(!m.matches(&json!({"host": {"name": "linux"}})));
    assert!(matcher("*name: linux").matches(&json!({"host": {"name": "linux"}})));
    let nested = matcher("users:{ first: a and last: b }");
    assert!(nested.matches(&json!({"users": [{"first": "a", "last": "b"}]})));
    assert!(
        !nested
            .matches(&json!({"users": [{"first": "a", "last": "x"}, {"first": "y", "last": "b"}]}))
    );
    assert!(matcher("linux").matches(&json!({"host": {"os": "linux"}})));
    assert!(!matcher("windows").matches(&json!({"host": {"os": "linux"}})));
}

#[test]
fn the_deepest_parseable_query_translates_evaluates_and_prints_on_a_small_stack() {
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(|| {
            // Each level opens two parentheses and a nested group (the first level no group):
            // 33 levels are 98 groups, just under the parser's limit.
            let depth = (kql::MAX_DEPTH + 1) / 3;
            let query = format!(
                "(not (x: 1 or {}y: 2{}))",
                "n:{ (not (x: 1 or ".repeat(depth - 1),
                ")) }".repeat(depth - 1)
            );
            let ast = kql::parse(&query).unwrap_or_else(|e| panic!("{}", e.render(&query)));
            for fields in [None, Some(FieldTypes::ecs_cloudtrail())] {
                kql::to_dsl(&ast, fields, &kql::DslOptions::detection_engine()).unwrap();
                kql::to_dsl_string(&ast, fields, &kql::DslOptions::default()).unwrap();
                let m = Matcher::new(&ast, fields, &MatchOptions::default());
                m.matches(&json!({"x": 1, "y": 2, "n": [{"x": 2}]}));
            }
            assert_eq!(kql::parse(&kql::to_kql(&ast)).unwrap(), ast);
        })
        .unwrap();
    handle.join().unwrap();
}
