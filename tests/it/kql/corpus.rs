//! The 801 KQL queries of Elastic's prebuilt detection rules (detection-rules, ELv2; see
//! `tests/data/kql/LICENSE-detection-rules.txt`) all parse, translate and print back.

use rule_runner::kql::{self, DslOptions, FieldTypes};
use serde_json::Value;

use crate::util::data;

pub fn corpus() -> Vec<String> {
    let text = std::fs::read_to_string(data("kql/detection_rules_kql_queries.json")).unwrap();
    let rules: Vec<Value> = serde_json::from_str(&text).unwrap();
    rules
        .iter()
        .map(|r| r["query"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_prebuilt_rule_query_parses_translates_and_round_trips() {
    let queries = corpus();
    assert_eq!(queries.len(), 801);
    let ecs = FieldTypes::ecs_cloudtrail();
    let options = DslOptions::detection_engine();
    for query in &queries {
        let ast = kql::parse(query).unwrap_or_else(|e| panic!("{}\n{query}", e.render(query)));
        let dsl = kql::to_dsl(&ast, None, &options).unwrap();
        let text = kql::to_dsl_string(&ast, None, &options).unwrap();
        assert_eq!(
            text,
            dsl.to_string(),
            "the text form is the value, serialised"
        );
        // ECS has nested fields none of these rules query; a mismatch would be reported here.
        if let Err(e) = kql::to_dsl(&ast, Some(ecs), &options) {
            panic!("{e}\n{query}");
        }
        let printed = kql::to_kql(&ast);
        let reparsed =
            kql::parse(&printed).unwrap_or_else(|e| panic!("{}\n{printed}", e.render(&printed)));
        assert_eq!(reparsed, ast, "{printed}");
    }
}
