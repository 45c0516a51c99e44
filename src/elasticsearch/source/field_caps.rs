//! Field metadata from `_field_caps` over a rule's index patterns: the mapped types of the
//! fields a query names (so keyword-only fields compile to `term`/`wildcard`, as the newest
//! Kibana does), which concrete indices match at all, and which lack the timestamp field.

use ::elasticsearch::http::Method;
use serde_json::{Map, Value, json};

use crate::elasticsearch::client::{Call, EsClient, index_list};
use crate::elasticsearch::error::EsError;

/// What one `_field_caps` call says about a rule's indices.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldCapsInfo {
    /// Concrete indices the patterns matched; empty when none did.
    pub indices: Vec<String>,
    /// `{"field": {"es_types": [...], "nested_path": "..."|null}}`: the reduced shape
    /// `kql::FieldTypes::from_json` reads.
    pub field_types: Value,
    /// For each timestamp field asked about: the indices where it is not mapped.
    pub timestamp_unmapped: Vec<(String, Vec<String>)>,
}

/// Ask `_field_caps` about `fields` (plus every parent path, to find `nested` parents)
/// across `patterns`; a pattern that matches nothing is not an error.
pub async fn fetch(
    client: &EsClient,
    patterns: &[String],
    fields: &[String],
    timestamp_fields: &[&str],
) -> Result<FieldCapsInfo, EsError> {
    let mut asked: Vec<String> = Vec::new();
    for field in fields
        .iter()
        .map(String::as_str)
        .chain(timestamp_fields.iter().copied())
    {
        let mut prefix = String::new();
        for part in field.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(part);
            if !asked.contains(&prefix) {
                asked.push(prefix.clone());
            }
        }
    }
    let call = Call::new(
        format!("read field types of {}", patterns.join(", ")),
        Method::Post,
        format!("/{}/_field_caps", index_list(patterns)),
    )
    .param("fields", asked.join(","))
    .param("ignore_unavailable", "true")
    .param("allow_no_indices", "true")
    .param("include_unmapped", "true");
    let body = client.send_ok(&call).await?;
    Ok(reduce(&body, timestamp_fields))
}

/// Reduce a `_field_caps` reply.
pub fn reduce(body: &Value, timestamp_fields: &[&str]) -> FieldCapsInfo {
    let indices: Vec<String> = body
        .get("indices")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let empty = Map::new();
    let caps = body
        .get("fields")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    let nested: Vec<&str> = caps
        .iter()
        .filter(|(_, by_type)| by_type.get("nested").is_some())
        .map(|(name, _)| name.as_str())
        .collect();
    let mut field_types = Map::new();
    for (name, by_type) in caps {
        let Some(by_type) = by_type.as_object() else {
            continue;
        };
        // Only leaf fields with a real mapping somewhere count; "unmapped" marks the indices
        // without the field and says nothing about its type.
        let es_types: Vec<&str> = by_type
            .keys()
            .map(String::as_str)
            .filter(|t| !matches!(*t, "unmapped" | "object" | "nested"))
            .collect();
        if es_types.is_empty() {
            continue;
        }
        let nested_path = nested
            .iter()
            .filter(|p| {
                name.len() > p.len() && name.starts_with(*p) && name.as_bytes()[p.len()] == b'.'
            })
            .max_by_key(|p| p.len());
        field_types.insert(
            name.clone(),
            json!({ "es_types": es_types, "nested_path": nested_path }),
        );
    }

    let timestamp_unmapped = timestamp_fields
        .iter()
        .filter_map(|field| {
            let missing: Vec<String> = match caps.get(*field).and_then(Value::as_object) {
                None => indices.clone(),
                Some(by_type) => match by_type.get("unmapped") {
                    None => Vec::new(),
                    // One type only: the field is unmapped in every index.
                    Some(_) if by_type.len() == 1 => indices.clone(),
                    Some(unmapped) => unmapped
                        .get("indices")
                        .and_then(Value::as_array)
                        .map(|l| {
                            l.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                },
            };
            (!missing.is_empty()).then(|| (field.to_string(), missing))
        })
        .collect();

    FieldCapsInfo {
        indices,
        field_types: Value::Object(field_types),
        timestamp_unmapped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduces_types_nested_paths_and_unmapped_timestamps() {
        let body = json!({
            "indices": ["filebeat-8.17.0", ".ds-logs-aws.cloudtrail-default-2025.01.01-000001"],
            "fields": {
                "event.dataset": {
                    "keyword": {"type": "keyword", "metadata_field": false, "searchable": true,
                        "aggregatable": true, "indices": ["filebeat-8.17.0"]},
                    "constant_keyword": {"type": "constant_keyword", "metadata_field": false,
                        "searchable": true, "aggregatable": true,
                        "indices": [".ds-logs-aws.cloudtrail-default-2025.01.01-000001"]}
                },
                "event": {"object": {"type": "object", "metadata_field": false,
                    "searchable": false, "aggregatable": false}},
                "a": {"nested": {"type": "nested", "metadata_field": false, "searchable": false, "aggregatable": false}},
                "a.b": {"keyword": {"type": "keyword", "metadata_field": false, "searchable": true, "aggregatable": true}},
                "event.ingested": {
                    "date": {"type": "date", "metadata_field": false, "searchable": true,
                        "aggregatable": true, "indices": [".ds-logs-aws.cloudtrail-default-2025.01.01-000001"]},
                    "unmapped": {"type": "unmapped", "metadata_field": false, "searchable": false,
                        "aggregatable": false, "indices": ["filebeat-8.17.0"]}
                },
                "@timestamp": {"date": {"type": "date", "metadata_field": false, "searchable": true, "aggregatable": true}}
            }
        });
        let info = reduce(&body, &["event.ingested", "@timestamp"]);
        assert_eq!(info.indices.len(), 2);
        assert_eq!(
            info.field_types["event.dataset"],
            json!({"es_types": ["keyword", "constant_keyword"], "nested_path": null})
        );
        assert_eq!(info.field_types["a.b"]["nested_path"], "a");
        assert!(info.field_types.get("event").is_none());
        assert_eq!(
            info.field_types["event.ingested"]["es_types"],
            json!(["date"])
        );
        assert_eq!(
            info.timestamp_unmapped,
            vec![(
                "event.ingested".to_string(),
                vec!["filebeat-8.17.0".to_string()]
            )]
        );
    }
}
