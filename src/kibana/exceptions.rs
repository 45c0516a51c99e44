//! Exceptions added in Kibana to a registered rule ("Add rule exception" in the alert flyout,
//! or the rule's Exceptions tab), read back and turned into the filter Kibana's detection
//! engine puts beside the rule's query: an event matching any item is left out.
//!
//! As Kibana's `buildExceptionFilter` (`@kbn/securitysolution-list-utils`): the entries of one
//! item are AND-ed, the items OR-ed, and the whole is negated. Entry kinds:
//!
//! | kind | included | excluded |
//! | --- | --- | --- |
//! | `match` | `match_phrase` of the value | not that |
//! | `match_any` | any of the values, `match_phrase` each | none of them |
//! | `exists` | `exists` | not `exists` |
//! | `wildcard` | `wildcard` query (`*`, `?`) | not that |
//! | `nested` | a `nested` query on the path, its entries inside | (per entry) |
//!
//! Value lists (`list` entries) need Kibana's lists index, which rule-runner does not read:
//! an item with one is reported and the others still apply. Endpoint items' `os_types` add a
//! `host.os.type` condition, as Kibana's endpoint exceptions do; expired items
//! (`expire_time` in the past) are skipped, as Kibana skips them.

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde_json::{Value, json};

use super::{ApiCall, Kibana, KibanaError};

/// Items per page of the exception items API (its maximum is 10,000; pages keep answers small).
const PER_PAGE: usize = 500;

/// What a rule's exception lists say, translated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuleExceptions {
    /// The lists the Kibana rule references (`exceptions_list`), as Kibana writes them.
    pub lists: Vec<Value>,
    /// Items applied.
    pub applied: usize,
    /// The Kibana filter (negated) leaving out every event an item matches; `None` without
    /// applicable items.
    pub filter: Option<Value>,
    /// Items that could not be applied, each with why.
    pub unsupported: Vec<String>,
}

/// The exceptions of Kibana rule `rule` (its body as the rules API returns it).
pub async fn read(
    kibana: &Kibana,
    rule: &Value,
    now: DateTime<Utc>,
) -> Result<RuleExceptions, KibanaError> {
    let lists: Vec<Value> = rule["exceptions_list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut items = Vec::new();
    for list in &lists {
        let (Some(list_id), namespace) = (
            list["list_id"].as_str(),
            list["namespace_type"].as_str().unwrap_or("single"),
        ) else {
            continue;
        };
        let mut page = 1;
        loop {
            let call = ApiCall::new(
                format!("read the items of exception list `{list_id}`"),
                Method::GET,
                "api/exception_lists/items/_find",
            )
            .param("list_id", list_id)
            .param("namespace_type", namespace)
            .param("per_page", PER_PAGE.to_string())
            .param("page", page.to_string())
            .needs("the Security feature's Read privilege (exceptions)");
            let reply = kibana.call(&call).await?;
            let data = reply.body["data"].as_array().cloned().ok_or_else(|| {
                KibanaError::UnexpectedResponse(format!(
                    "{}: no `data` list in the answer",
                    call.what
                ))
            })?;
            let total = reply.body["total"].as_u64().unwrap_or(0) as usize;
            let got = data.len();
            items.extend(data);
            if got == 0 || page * PER_PAGE >= total {
                break;
            }
            page += 1;
        }
    }
    let mut exceptions = translate(&items, now);
    exceptions.lists = lists;
    Ok(exceptions)
}

/// The filter of `items` (what [`read`] fetched), with what could not be applied.
pub fn translate(items: &[Value], now: DateTime<Utc>) -> RuleExceptions {
    let mut should = Vec::new();
    let mut unsupported = Vec::new();
    for item in items {
        let name = item["name"]
            .as_str()
            .or(item["item_id"].as_str())
            .unwrap_or("unnamed");
        if let Some(expiry) = item["expire_time"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        {
            if expiry.with_timezone(&Utc) <= now {
                continue;
            }
        }
        match item_clause(item) {
            Ok(clause) => should.push(clause),
            Err(why) => unsupported.push(format!("exception `{name}`: {why}")),
        }
    }
    let applied = should.len();
    let filter = (!should.is_empty()).then(|| {
        json!({
            "meta": {"alias": "Kibana exceptions", "negate": true, "disabled": false},
            "query": {"bool": {"should": should, "minimum_should_match": 1}},
        })
    });
    RuleExceptions {
        lists: Vec::new(),
        applied,
        filter,
        unsupported,
    }
}

fn item_clause(item: &Value) -> Result<Value, String> {
    let entries = item["entries"]
        .as_array()
        .filter(|e| !e.is_empty())
        .ok_or("no entries")?;
    let mut clauses = entries
        .iter()
        .map(|entry| entry_clause(entry, None))
        .collect::<Result<Vec<_>, _>>()?;
    let os: Vec<Value> = item["os_types"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|os| json!({"match_phrase": {"host.os.type": os}}))
        .collect();
    if !os.is_empty() {
        clauses.push(json!({"bool": {"should": os, "minimum_should_match": 1}}));
    }
    Ok(if clauses.len() == 1 {
        clauses.remove(0)
    } else {
        json!({"bool": {"filter": clauses}})
    })
}

fn entry_clause(entry: &Value, parent: Option<&str>) -> Result<Value, String> {
    let field = entry["field"]
        .as_str()
        .filter(|f| !f.is_empty())
        .ok_or("an entry without a field")?;
    let field = match parent {
        Some(path) => format!("{path}.{field}"),
        None => field.to_string(),
    };
    let kind = entry["type"].as_str().unwrap_or("");
    let clause = match kind {
        "match" => {
            let value = entry["value"]
                .as_str()
                .ok_or_else(|| format!("`{field}`: a match without a value"))?;
            any_phrase(&field, &[value])
        }
        "match_any" => {
            let values: Vec<&str> = entry["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if values.is_empty() {
                return Err(format!("`{field}`: match_any without values"));
            }
            any_phrase(&field, &values)
        }
        "exists" => {
            json!({"bool": {"should": [{"exists": {"field": field}}], "minimum_should_match": 1}})
        }
        "wildcard" => {
            let value = entry["value"]
                .as_str()
                .ok_or_else(|| format!("`{field}`: a wildcard without a value"))?;
            json!({"bool": {"filter": [{"wildcard": {field.clone(): {"value": value}}}]}})
        }
        "nested" if parent.is_none() => {
            let inner = entry["entries"]
                .as_array()
                .filter(|e| !e.is_empty())
                .ok_or_else(|| format!("`{field}`: a nested entry without entries"))?
                .iter()
                .map(|e| entry_clause(e, Some(&field)))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(json!({"nested": {
                "path": field,
                "query": {"bool": {"filter": inner}},
                "score_mode": "none",
            }}));
        }
        "list" => {
            return Err(format!(
                "`{field}` is compared with the value list `{}`, and rule-runner does not read Kibana's value lists; the other exceptions still apply",
                entry["list"]["id"].as_str().unwrap_or("?")
            ));
        }
        other => {
            return Err(format!(
                "`{field}`: entry type `{other}` is not one rule-runner knows"
            ));
        }
    };
    Ok(match entry["operator"].as_str() {
        Some("excluded") => json!({"bool": {"must_not": [clause]}}),
        _ => clause,
    })
}

fn any_phrase(field: &str, values: &[&str]) -> Value {
    let should: Vec<Value> = values
        .iter()
        .map(|v| json!({"match_phrase": {field: v}}))
        .collect();
    json!({"bool": {"should": should, "minimum_should_match": 1}})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-07T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn item(entries: Value) -> Value {
        json!({"name": "n", "item_id": "i", "entries": entries, "os_types": []})
    }

    fn only_clause(items: &[Value]) -> Value {
        let exceptions = translate(items, now());
        assert!(
            exceptions.unsupported.is_empty(),
            "{:?}",
            exceptions.unsupported
        );
        let filter = exceptions.filter.expect("a filter");
        assert_eq!(filter["meta"]["negate"], true);
        filter["query"]["bool"]["should"][0].clone()
    }

    #[test]
    fn match_included_and_excluded() {
        let included = only_clause(&[item(
            json!([{"field": "user.name", "operator": "included", "type": "match", "value": "ci-bot"}]),
        )]);
        assert_eq!(
            included,
            json!({"bool": {"should": [{"match_phrase": {"user.name": "ci-bot"}}], "minimum_should_match": 1}})
        );
        let excluded = only_clause(&[item(
            json!([{"field": "user.name", "operator": "excluded", "type": "match", "value": "ci-bot"}]),
        )]);
        assert_eq!(excluded["bool"]["must_not"][0], included);
    }

    #[test]
    fn match_any_is_any_of_the_values() {
        let clause = only_clause(&[item(
            json!([{"field": "source.ip", "operator": "included", "type": "match_any", "value": ["10.0.0.1", "10.0.0.2"]}]),
        )]);
        assert_eq!(
            clause["bool"]["should"],
            json!([{"match_phrase": {"source.ip": "10.0.0.1"}}, {"match_phrase": {"source.ip": "10.0.0.2"}}])
        );
    }

    #[test]
    fn exists_and_wildcard() {
        let exists = only_clause(&[item(
            json!([{"field": "aws.cloudtrail.error_code", "operator": "excluded", "type": "exists"}]),
        )]);
        assert_eq!(
            exists,
            json!({"bool": {"must_not": [{"bool": {"should": [{"exists": {"field": "aws.cloudtrail.error_code"}}], "minimum_should_match": 1}}]}})
        );
        let wildcard = only_clause(&[item(
            json!([{"field": "user.name", "operator": "included", "type": "wildcard", "value": "svc-*"}]),
        )]);
        assert_eq!(
            wildcard,
            json!({"bool": {"filter": [{"wildcard": {"user.name": {"value": "svc-*"}}}]}})
        );
    }

    #[test]
    fn nested_entries_are_queried_under_their_path() {
        let clause = only_clause(&[item(
            json!([{"field": "threat.enrichments", "type": "nested", "entries": [
                {"field": "indicator.type", "operator": "included", "type": "match", "value": "ipv4-addr"}
            ]}]),
        )]);
        assert_eq!(clause["nested"]["path"], "threat.enrichments");
        assert_eq!(
            clause["nested"]["query"]["bool"]["filter"][0]["bool"]["should"][0],
            json!({"match_phrase": {"threat.enrichments.indicator.type": "ipv4-addr"}})
        );
    }

    #[test]
    fn entries_of_an_item_are_anded_and_items_ored() {
        let items = [
            item(json!([
                {"field": "user.name", "operator": "included", "type": "match", "value": "a"},
                {"field": "event.action", "operator": "included", "type": "match", "value": "b"}
            ])),
            item(
                json!([{"field": "user.name", "operator": "included", "type": "match", "value": "c"}]),
            ),
        ];
        let exceptions = translate(&items, now());
        assert_eq!(exceptions.applied, 2);
        let should = &exceptions.filter.unwrap()["query"]["bool"]["should"];
        assert_eq!(should[0]["bool"]["filter"].as_array().unwrap().len(), 2);
        assert!(should[1]["bool"]["should"].is_array());
    }

    #[test]
    fn value_lists_are_reported_and_expired_items_skipped() {
        let items = [
            item(
                json!([{"field": "source.ip", "operator": "included", "type": "list", "list": {"id": "blocked-ips", "type": "ip"}}]),
            ),
            json!({"name": "old", "expire_time": "2020-01-01T00:00:00Z", "entries": [
                {"field": "user.name", "operator": "included", "type": "match", "value": "x"}]}),
        ];
        let exceptions = translate(&items, now());
        assert_eq!(exceptions.applied, 0);
        assert!(exceptions.filter.is_none());
        assert_eq!(exceptions.unsupported.len(), 1);
        assert!(
            exceptions.unsupported[0].contains("blocked-ips"),
            "{:?}",
            exceptions.unsupported
        );
    }

    #[test]
    fn endpoint_items_hold_for_their_operating_systems() {
        let mut endpoint = item(
            json!([{"field": "process.name", "operator": "included", "type": "match", "value": "x"}]),
        );
        endpoint["os_types"] = json!(["linux"]);
        let clause = only_clause(&[endpoint]);
        assert_eq!(
            clause["bool"]["filter"][1]["bool"]["should"][0],
            json!({"match_phrase": {"host.os.type": "linux"}})
        );
    }
}
