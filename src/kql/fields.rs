//! Field metadata: what `_field_caps` reports about each field, reduced to what KQL needs.

use rustc_hash::FxHashMap;
use std::sync::OnceLock;

use serde_json::Value as Json;

use super::ast::glob_match;

/// One field as the translator and the evaluator see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldInfo {
    pub name: String,
    /// Elasticsearch types across the queried indices (`["keyword"]`, `["keyword",
    /// "constant_keyword"]`, ...).
    pub es_types: Vec<String>,
    /// The `nested` mapping this field lives under, if any.
    pub nested_path: Option<String>,
    /// Keyword values longer than this many characters are not indexed, so never match.
    pub ignore_above: Option<usize>,
}

impl FieldInfo {
    /// Kibana's keyword-only test: the types are exactly `["keyword"]`.
    pub fn is_keyword_only(&self) -> bool {
        self.es_types.len() == 1 && self.es_types[0] == "keyword"
    }

    /// Kibana's `date` type: `date` or `date_nanos` in every index.
    pub fn is_date(&self) -> bool {
        !self.es_types.is_empty()
            && self
                .es_types
                .iter()
                .all(|t| t == "date" || t == "date_nanos")
    }

    /// Whether every index analyses this field as text (`text`, `match_only_text`).
    pub fn is_text(&self) -> bool {
        !self.es_types.is_empty()
            && self
                .es_types
                .iter()
                .all(|t| t == "text" || t == "match_only_text")
    }

    /// Whether every index maps this field as a number.
    pub fn is_numeric(&self) -> bool {
        !self.es_types.is_empty() && self.es_types.iter().all(|t| is_numeric_type(t))
    }

    /// Whether every index maps this field as an IP address.
    pub fn is_ip(&self) -> bool {
        !self.es_types.is_empty() && self.es_types.iter().all(|t| t == "ip")
    }
}

fn is_numeric_type(t: &str) -> bool {
    matches!(
        t,
        "long"
            | "integer"
            | "short"
            | "byte"
            | "double"
            | "float"
            | "half_float"
            | "scaled_float"
            | "unsigned_long"
    )
}

/// Why field metadata could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FieldTypesError {
    #[error("field metadata must be a JSON object mapping field names to types")]
    NotAnObject,
    #[error(
        "field `{field}`: expected a type name, a list of type names or \
         {{\"es_types\": [...], \"nested_path\": \"...\"}}, found {found}"
    )]
    BadEntry { field: String, found: String },
    #[error("field metadata is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Field name → Elasticsearch types, in the order given (field wildcards expand in this order).
#[derive(Debug, Clone, Default)]
pub struct FieldTypes {
    fields: Vec<FieldInfo>,
    /// Looked up for every field a query names; the names come from the cluster's own
    /// mappings, so a fast non-keyed hash is safe here.
    by_name: FxHashMap<String, usize>,
    /// Positions in `fields`, by name: a field-name pattern with a literal start (`process.*`)
    /// only tests the names in that range. Built on first use, dropped by `insert`.
    by_sorted_name: OnceLock<Vec<usize>>,
}

impl PartialEq for FieldTypes {
    fn eq(&self, other: &Self) -> bool {
        self.fields == other.fields
    }
}

impl Eq for FieldTypes {}

impl FieldTypes {
    /// No metadata: every field is used as written with an unknown type.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add (or replace) a field.
    pub fn insert(&mut self, info: FieldInfo) {
        self.by_sorted_name = OnceLock::new();
        match self.by_name.get(&info.name) {
            Some(&i) => self.fields[i] = info,
            None => {
                self.by_name.insert(info.name.clone(), self.fields.len());
                self.fields.push(info);
            }
        }
    }

    /// Read `{"field": "type" | ["type", ...] | {"es_types": [...], "nested_path": "...",
    /// "ignore_above": N}}` (the shape `_field_caps` reduces to).
    pub fn from_json(json: &Json) -> Result<Self, FieldTypesError> {
        let object = json.as_object().ok_or(FieldTypesError::NotAnObject)?;
        let mut types = FieldTypes::new();
        for (name, entry) in object {
            let bad = || FieldTypesError::BadEntry {
                field: name.clone(),
                found: entry.to_string(),
            };
            let string_list = |v: &Json| -> Option<Vec<String>> {
                v.as_array()?
                    .iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect()
            };
            let info = match entry {
                Json::String(t) => FieldInfo {
                    name: name.clone(),
                    es_types: vec![t.clone()],
                    nested_path: None,
                    ignore_above: None,
                },
                Json::Array(_) => FieldInfo {
                    name: name.clone(),
                    es_types: string_list(entry).ok_or_else(bad)?,
                    nested_path: None,
                    ignore_above: None,
                },
                Json::Object(o) => {
                    if o.keys()
                        .any(|k| !matches!(k.as_str(), "es_types" | "nested_path" | "ignore_above"))
                    {
                        return Err(bad());
                    }
                    let es_types = match o.get("es_types") {
                        Some(Json::String(t)) => vec![t.clone()],
                        Some(list) => string_list(list).ok_or_else(bad)?,
                        None => return Err(bad()),
                    };
                    let nested_path = match o.get("nested_path") {
                        None | Some(Json::Null) => None,
                        Some(Json::String(p)) => Some(p.clone()),
                        Some(_) => return Err(bad()),
                    };
                    let ignore_above = match o.get("ignore_above") {
                        None | Some(Json::Null) => None,
                        Some(n) => Some(n.as_u64().ok_or_else(bad)? as usize),
                    };
                    FieldInfo {
                        name: name.clone(),
                        es_types,
                        nested_path,
                        ignore_above,
                    }
                }
                _ => return Err(bad()),
            };
            types.insert(info);
        }
        Ok(types)
    }

    /// Parse field metadata from JSON text.
    pub fn from_json_str(text: &str) -> Result<Self, FieldTypesError> {
        Self::from_json(&serde_json::from_str(text)?)
    }

    /// The embedded default: every ECS 9.5.0 field plus the `aws.cloudtrail.*` fields of
    /// Elastic's AWS integration, with the integration's `ignore_above` of 8191 on
    /// `request_parameters` and `response_elements` (see `src/kql/data/LICENSE-NOTE.md`).
    pub fn ecs_cloudtrail() -> &'static FieldTypes {
        static TYPES: OnceLock<FieldTypes> = OnceLock::new();
        TYPES.get_or_init(|| {
            let text = include_str!("data/ecs-and-aws-cloudtrail-field-types.json");
            // The file is part of the build and tested; a broken copy is a build defect.
            let mut types = FieldTypes::from_json_str(text)
                .unwrap_or_else(|e| panic!("embedded field types are invalid: {e}"));
            for name in [
                "aws.cloudtrail.request_parameters",
                "aws.cloudtrail.response_elements",
            ] {
                if let Some(&i) = types.by_name.get(name) {
                    types.fields[i].ignore_above = Some(8191);
                }
            }
            types
        })
    }

    /// No fields known (Kibana then uses field names as written, with unknown types).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// The field called exactly `name`.
    pub fn get(&self, name: &str) -> Option<&FieldInfo> {
        self.by_name.get(name).map(|&i| &self.fields[i])
    }

    /// All fields, in order.
    pub fn iter(&self) -> impl Iterator<Item = &FieldInfo> {
        self.fields.iter()
    }

    /// Fields whose names match a glob (literal `pieces` separated by `*`, which matches any
    /// run including dots), in list order.
    pub fn matching<S: AsRef<str>>(&self, pieces: &[S]) -> Vec<&FieldInfo> {
        let prefix = pieces.first().map_or("", AsRef::as_ref);
        if prefix.is_empty() {
            return self
                .fields
                .iter()
                .filter(|f| glob_match(pieces, &f.name))
                .collect();
        }
        let sorted = self.by_sorted_name.get_or_init(|| {
            let mut order: Vec<usize> = (0..self.fields.len()).collect();
            order.sort_by(|&a, &b| self.fields[a].name.cmp(&self.fields[b].name));
            order
        });
        // Names starting with `prefix` form one run of the sorted order.
        let from = sorted.partition_point(|&i| self.fields[i].name.as_str() < prefix);
        let mut found: Vec<usize> = sorted[from..]
            .iter()
            .copied()
            .take_while(|&i| self.fields[i].name.starts_with(prefix))
            .filter(|&i| glob_match(pieces, &self.fields[i].name))
            .collect();
        found.sort_unstable();
        found.into_iter().map(|i| &self.fields[i]).collect()
    }

    pub fn is_keyword_only(&self, name: &str) -> bool {
        self.get(name).is_some_and(FieldInfo::is_keyword_only)
    }

    pub fn is_date(&self, name: &str) -> bool {
        self.get(name).is_some_and(FieldInfo::is_date)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_all_three_entry_shapes_in_order() {
        let types = FieldTypes::from_json(&json!({
            "b": "keyword",
            "a": ["keyword", "constant_keyword"],
            "n.x": {"es_types": ["text"], "nested_path": "n", "ignore_above": 10}
        }))
        .unwrap();
        let names: Vec<_> = types.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "n.x"]);
        assert!(types.is_keyword_only("b"));
        assert!(!types.is_keyword_only("a"));
        let n = types.get("n.x").unwrap();
        assert_eq!(n.nested_path.as_deref(), Some("n"));
        assert_eq!(n.ignore_above, Some(10));
        assert!(n.is_text());
    }

    #[test]
    fn rejects_bad_entries_naming_the_field() {
        let err = FieldTypes::from_json(&json!({"f": 3})).unwrap_err();
        assert!(err.to_string().contains("field `f`"), "{err}");
        assert!(FieldTypes::from_json(&json!({"f": {"es_type": "x"}})).is_err());
        assert!(FieldTypes::from_json(&json!(["f"])).is_err());
    }

    #[test]
    fn type_tests_follow_kibana() {
        let types = FieldTypes::from_json(&json!({
            "k": "keyword", "ck": "constant_keyword", "w": "wildcard", "mot": "match_only_text",
            "d": "date", "dn": ["date", "date_nanos"], "mixed": ["date", "keyword"], "l": "long"
        }))
        .unwrap();
        assert!(types.is_keyword_only("k"));
        for f in ["ck", "w", "mot", "d", "unknown"] {
            assert!(!types.is_keyword_only(f), "{f}");
        }
        assert!(types.is_date("d") && types.is_date("dn"));
        assert!(!types.is_date("mixed") && !types.is_date("k"));
        assert!(types.get("l").unwrap().is_numeric());
    }

    #[test]
    fn globs_expand_in_list_order_across_dots() {
        let types = FieldTypes::from_json(&json!({
            "agent.id": "keyword", "event.dataset": "keyword", "agent.name": "keyword"
        }))
        .unwrap();
        let names: Vec<_> = types
            .matching(&["agent", ""])
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert_eq!(names, ["agent.id", "agent.name"]);
        assert_eq!(types.matching(&["", "dataset"]).len(), 1);
        assert_eq!(types.matching(&["", "nothing", ""]).len(), 0);
    }

    #[test]
    fn prefixed_globs_keep_list_order_and_see_inserted_fields() {
        let names = |types: &FieldTypes, pieces: &[&str]| -> Vec<String> {
            types
                .matching(pieces)
                .iter()
                .map(|f| f.name.clone())
                .collect()
        };
        let mut types = FieldTypes::from_json(&json!({
            "process.pid": "long", "agent": "keyword", "process.args": "keyword",
            "process": "keyword", "processor": "keyword", "process.parent.name": "keyword"
        }))
        .unwrap();
        assert_eq!(
            names(&types, &["process.", ""]),
            ["process.pid", "process.args", "process.parent.name"]
        );
        assert_eq!(names(&types, &["process", "name"]), ["process.parent.name"]);
        assert_eq!(names(&types, &["proc", ""]).len(), 5);
        assert!(names(&types, &["zzz", ""]).is_empty());
        types.insert(FieldInfo {
            name: "process.name".into(),
            es_types: vec!["keyword".into()],
            nested_path: None,
            ignore_above: None,
        });
        assert_eq!(
            names(&types, &["process", "name"]),
            ["process.parent.name", "process.name"]
        );
    }

    #[test]
    fn embedded_ecs_cloudtrail_types_load() {
        let types = FieldTypes::ecs_cloudtrail();
        assert!(types.len() > 2700);
        assert!(types.is_keyword_only("event.action"));
        assert!(types.is_date("@timestamp"));
        let rp = types.get("aws.cloudtrail.request_parameters").unwrap();
        assert!(rp.is_keyword_only());
        assert_eq!(rp.ignore_above, Some(8191));
    }
}
