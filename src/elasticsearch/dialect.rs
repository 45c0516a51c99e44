//! Every difference between the engines rule-runner talks to, in one place.
//!
//! Elasticsearch 8 is the primary target: for it every request stays exactly as it was
//! before OpenSearch was supported. OpenSearch 2.x shares the query language, `_bulk`,
//! `_field_caps`, `search_after` and composable templates, and differs in the few points
//! below. The rest of the adapter asks the [`Dialect`] and never branches on the engine.
//!
//! | concern | Elasticsearch 8 | OpenSearch 2.x |
//! |---|---|---|
//! | open a point in time | `POST /<indices>/_pit`, reply `id` | `POST /<indices>/_search/point_in_time`, reply `pit_id` |
//! | close it | `DELETE /_pit` `{"id": …}` | `DELETE /_search/point_in_time` `{"pit_id": [...]}` |
//! | point in time over patterns matching nothing | an empty point in time | a 400 `invalid id: [null]`: read as empty |
//! | tiebreaker after the timestamp sort | `_shard_doc` | `_index`, `_id` (no `_shard_doc` in 2.x) |
//! | `flattened` fields | `flattened` | `flat_object` (same dotted-path queries; no `ignore_above`) |
//! | `constant_keyword` without a `value` | accepted, set by the first document | rejected: mapped `keyword` |
//! | `version` fields (Kibana's `kibana.version`) | `version` | none: mapped `keyword` |
//! | every field in a hit's `fields` | `{"field": "*", "include_unmapped": true}` | `{"field": "*"}` (no `include_unmapped`) |
//! | EQL (`_eql/search`) | yes | no |
//! | rollover of rule-runner's alerts index | an ILM policy (`_ilm`) | no ILM (ISM is a plugin): rule-runner asks `_rollover` with conditions |
//! | rollover on primary size | `max_primary_shard_size` | `max_size` (one primary shard: the same) |

use serde_json::{Map, Value, json};

/// Which engine answers, from `GET /`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distribution {
    Elasticsearch,
    OpenSearch,
}

/// An engine and its version, detected once per client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialect {
    pub distribution: Distribution,
    /// `major.minor.patch` as `GET /` reports it; `None` when it could not be read.
    pub version: Option<(u32, u32, u32)>,
}

/// The oldest OpenSearch with the point-in-time search API rule-runner pages with.
const MIN_OPENSEARCH: (u32, u32, u32) = (2, 4, 0);
/// Point in time and `_shard_doc` came with 7.10/7.12; rule-runner is built against 8.x.
const MIN_ELASTICSEARCH: (u32, u32, u32) = (7, 17, 0);

impl Dialect {
    /// What rule-runner assumes when `GET /` tells nothing (a restricted key may not read it).
    pub const ELASTICSEARCH: Dialect = Dialect {
        distribution: Distribution::Elasticsearch,
        version: None,
    };

    /// Read `GET /`'s reply: OpenSearch says `version.distribution: opensearch`.
    pub fn from_root(body: &Value) -> Dialect {
        let distribution = match body
            .pointer("/version/distribution")
            .and_then(Value::as_str)
        {
            Some("opensearch") => Distribution::OpenSearch,
            _ => Distribution::Elasticsearch,
        };
        let version = body
            .pointer("/version/number")
            .and_then(Value::as_str)
            .and_then(parse_version);
        Dialect {
            distribution,
            version,
        }
    }

    pub fn is_opensearch(&self) -> bool {
        self.distribution == Distribution::OpenSearch
    }

    /// `Elasticsearch` or `OpenSearch`, for messages.
    pub fn product(&self) -> &'static str {
        match self.distribution {
            Distribution::Elasticsearch => "Elasticsearch",
            Distribution::OpenSearch => "OpenSearch",
        }
    }

    /// Refuse versions rule-runner cannot page or template on, saying what is needed.
    pub fn check_supported(&self) -> Result<(), String> {
        let Some(version) = self.version else {
            return Ok(());
        };
        let minimum = match self.distribution {
            Distribution::Elasticsearch => MIN_ELASTICSEARCH,
            Distribution::OpenSearch => MIN_OPENSEARCH,
        };
        if version < minimum {
            let (a, b, c) = version;
            let (x, y, z) = minimum;
            return Err(format!(
                "{} {a}.{b}.{c} is older than rule-runner supports: it needs {} {x}.{y}.{z} or \
                 newer (point-in-time search); upgrade the cluster",
                self.product(),
                self.product()
            ));
        }
        Ok(())
    }

    /// Whether index lifecycle management (ILM) rolls rule-runner's alerts index over.
    pub fn has_ilm(&self) -> bool {
        !self.is_opensearch()
    }

    /// The rollover conditions of `[alerts.rollover]` as this engine names them.
    pub fn rollover_conditions(&self, rollover: &super::config::Rollover) -> Value {
        let size = if self.is_opensearch() {
            "max_size"
        } else {
            "max_primary_shard_size"
        };
        let mut conditions = json!({ "max_age": rollover.max_age, size: rollover.max_size });
        if let Some(docs) = rollover.max_docs {
            conditions["max_docs"] = json!(docs);
        }
        conditions
    }

    /// Whether `_eql/search` exists.
    pub fn supports_eql(&self) -> bool {
        self.distribution == Distribution::Elasticsearch
    }

    /// The path that opens a point in time over `indices` (already joined and escaped).
    pub fn open_pit_path(&self, indices: &str) -> String {
        match self.distribution {
            Distribution::Elasticsearch => format!("/{indices}/_pit"),
            Distribution::OpenSearch => format!("/{indices}/_search/point_in_time"),
        }
    }

    /// The point in time's id in the reply that opened it.
    pub fn pit_id<'a>(&self, reply: &'a Value) -> Option<&'a str> {
        let key = match self.distribution {
            Distribution::Elasticsearch => "id",
            Distribution::OpenSearch => "pit_id",
        };
        reply.get(key).and_then(Value::as_str)
    }

    /// OpenSearch 2.x fails to open a point in time over patterns that match no index
    /// (`invalid id: [null]`, a 400) where Elasticsearch opens an empty one. Both mean the
    /// same to a search: nothing to find.
    pub fn pit_over_nothing(&self, status: u16, reply: &Value) -> bool {
        self.is_opensearch()
            && status == 400
            && reply
                .pointer("/error/reason")
                .and_then(Value::as_str)
                .is_some_and(|r| r == "invalid id: [null]")
    }

    /// Path and body that close the point in time `id`.
    pub fn close_pit(&self, id: &str) -> (&'static str, Value) {
        match self.distribution {
            Distribution::Elasticsearch => ("/_pit", json!({ "id": id })),
            Distribution::OpenSearch => ("/_search/point_in_time", json!({ "pit_id": [id] })),
        }
    }

    /// The `fields` entry asking for every field of a hit. `include_unmapped` (7.11+) keeps
    /// fields of `dynamic: false` indices; OpenSearch forked before it and rejects it.
    pub fn all_fields(&self) -> Value {
        match self.distribution {
            Distribution::Elasticsearch => json!({ "field": "*", "include_unmapped": true }),
            Distribution::OpenSearch => json!({ "field": "*" }),
        }
    }

    /// The sort keys after the timestamp that make `search_after` exact when events share a
    /// timestamp. OpenSearch 2.x has no `_shard_doc`; `_index` then `_id` is unique across
    /// every index a point in time covers.
    pub fn tiebreaker(&self) -> Vec<Value> {
        match self.distribution {
            Distribution::Elasticsearch => vec![json!({ "_shard_doc": "asc" })],
            Distribution::OpenSearch => vec![json!({ "_index": "asc" }), json!({ "_id": "asc" })],
        }
    }

    /// A composable index template (`{"template": {"mappings": …}}`) as this engine takes it.
    pub fn index_template(&self, mut template: Value) -> Value {
        if self.is_opensearch() {
            if let Some(mappings) = template.pointer_mut("/template/mappings") {
                opensearch_mappings(mappings);
            }
        }
        template
    }

    /// A mappings object (`{"properties": …}`, as `PUT /<index>/_mapping` takes it) as this
    /// engine takes it.
    pub fn mappings(&self, mut mappings: Value) -> Value {
        if self.is_opensearch() {
            opensearch_mappings(&mut mappings);
        }
        mappings
    }
}

fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    // `8.17.0`, `2.19.6`, `9.0.0-SNAPSHOT`: the numeric prefix of each part.
    let mut parts = text.split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

/// Rewrite the field types OpenSearch lacks, everywhere in a mappings tree (properties,
/// multi-fields and dynamic templates).
fn opensearch_mappings(mappings: &mut Value) {
    match mappings {
        Value::Object(map) => {
            rewrite_field(map);
            for value in map.values_mut() {
                opensearch_mappings(value);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(opensearch_mappings),
        _ => {}
    }
}

fn rewrite_field(field: &mut Map<String, Value>) {
    match field.get("type").and_then(Value::as_str) {
        Some("flattened") => {
            // flat_object answers the same term, prefix, wildcard, range and exists queries
            // on `field.sub.path`; it takes none of flattened's parameters.
            field.clear();
            field.insert("type".into(), json!("flat_object"));
        }
        Some("constant_keyword") if !field.contains_key("value") => {
            field.insert("type".into(), json!("keyword"));
        }
        // Kibana's alerts mapping types `kibana.version` as `version`, which OpenSearch lacks;
        // a keyword holds the same text (its ordering is lexical, not by version).
        Some("version") => {
            field.insert("type".into(), json!("keyword"));
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opensearch() -> Dialect {
        Dialect::from_root(&json!({"version": {"distribution": "opensearch", "number": "2.19.6"}}))
    }

    #[test]
    fn the_root_endpoint_names_the_engine() {
        assert_eq!(opensearch().distribution, Distribution::OpenSearch);
        assert_eq!(opensearch().version, Some((2, 19, 6)));
        let es = Dialect::from_root(
            &json!({"version": {"number": "8.17.0", "build_flavor": "default"}}),
        );
        assert_eq!(es.distribution, Distribution::Elasticsearch);
        assert_eq!(es.version, Some((8, 17, 0)));
        assert_eq!(
            Dialect::from_root(&json!("forbidden")),
            Dialect::ELASTICSEARCH
        );
        assert_eq!(parse_version("9.1.0-SNAPSHOT"), Some((9, 1, 0)));
    }

    #[test]
    fn old_versions_are_refused_with_what_is_needed() {
        let old = Dialect::from_root(
            &json!({"version": {"distribution": "opensearch", "number": "2.3.0"}}),
        );
        let err = old.check_supported().unwrap_err();
        assert!(
            err.contains("OpenSearch 2.3.0") && err.contains("2.4.0"),
            "{err}"
        );
        assert!(opensearch().check_supported().is_ok());
        assert!(Dialect::ELASTICSEARCH.check_supported().is_ok());
    }

    #[test]
    fn elasticsearch_templates_pass_unchanged() {
        let template = json!({"template": {"mappings": {"properties": {
            "p": {"type": "flattened", "ignore_above": 4096},
            "n": {"type": "constant_keyword"}
        }}}});
        assert_eq!(
            Dialect::ELASTICSEARCH.index_template(template.clone()),
            template
        );
    }

    #[test]
    fn opensearch_templates_get_flat_object_and_keyword() {
        let template = json!({"template": {"mappings": {
            "dynamic_templates": [{"x": {"mapping": {"type": "flattened"}}}],
            "properties": {
                "p": {"type": "flattened", "ignore_above": 4096},
                "d": {"type": "constant_keyword", "value": "aws.cloudtrail"},
                "n": {"type": "constant_keyword"},
                "o": {"properties": {"deep": {"type": "flattened"}}}
            }
        }}});
        let got = opensearch().index_template(template);
        let m = &got["template"]["mappings"];
        assert_eq!(m["properties"]["p"], json!({"type": "flat_object"}));
        assert_eq!(
            m["properties"]["d"],
            json!({"type": "constant_keyword", "value": "aws.cloudtrail"})
        );
        assert_eq!(m["properties"]["n"], json!({"type": "keyword"}));
        assert_eq!(
            m["properties"]["o"]["properties"]["deep"],
            json!({"type": "flat_object"})
        );
        assert_eq!(
            m["dynamic_templates"][0]["x"]["mapping"],
            json!({"type": "flat_object"})
        );
    }

    #[test]
    fn point_in_time_calls_differ_by_engine() {
        let es = Dialect::ELASTICSEARCH;
        assert_eq!(es.open_pit_path("a,b"), "/a,b/_pit");
        assert_eq!(
            opensearch().open_pit_path("a,b"),
            "/a,b/_search/point_in_time"
        );
        assert_eq!(es.pit_id(&json!({"id": "x"})), Some("x"));
        assert_eq!(opensearch().pit_id(&json!({"pit_id": "y"})), Some("y"));
        assert_eq!(es.close_pit("x"), ("/_pit", json!({"id": "x"})));
        assert_eq!(
            opensearch().close_pit("y"),
            ("/_search/point_in_time", json!({"pit_id": ["y"]}))
        );
        assert_eq!(es.tiebreaker(), [json!({"_shard_doc": "asc"})]);
        assert_eq!(
            opensearch().tiebreaker(),
            [json!({"_index": "asc"}), json!({"_id": "asc"})]
        );
        let nothing = json!({"error": {"type": "illegal_argument_exception", "reason": "invalid id: [null]"}});
        assert!(opensearch().pit_over_nothing(400, &nothing));
        assert!(!es.pit_over_nothing(400, &nothing));
        assert!(!opensearch().supports_eql() && es.supports_eql());
        assert_eq!(
            es.all_fields(),
            json!({"field": "*", "include_unmapped": true})
        );
        assert_eq!(opensearch().all_fields(), json!({"field": "*"}));
    }
}
