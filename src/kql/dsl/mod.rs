//! Translation to Elasticsearch Query DSL, exactly as Kibana's `toElasticsearchQuery` (query
//! level) and `buildEsQuery` (the detection engine's request body) produce it.

mod tree;

use serde_json::Value as Json;

use tree::{Body, Dsl, obj};

use super::ast::{Query, RangeOp, Value};
use super::fields::{FieldInfo, FieldTypes};
use super::parser::ParseOptions;

/// Translation options, named after Kibana's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DslOptions {
    /// `dateFormatTZ`: `time_zone` of ranges on date fields. The detection engine uses "Zulu".
    pub date_format_tz: Option<String>,
    /// `caseInsensitive`: adds `case_insensitive: true` to `term` and `wildcard` queries.
    pub case_insensitive: bool,
    /// `nestedIgnoreUnmapped`: adds `ignore_unmapped` to `nested` queries when set.
    pub nested_ignore_unmapped: Option<bool>,
}

impl DslOptions {
    /// What Kibana's detection engine passes: `dateFormatTZ: "Zulu"`, nothing else.
    pub fn detection_engine() -> Self {
        DslOptions {
            date_format_tz: Some("Zulu".to_string()),
            ..DslOptions::default()
        }
    }

    /// Options from a Kibana-style config object (`allowLeadingWildcards`, `dateFormatTZ`,
    /// `caseInsensitive`, `nestedIgnoreUnmapped`); unknown keys are ignored.
    pub fn from_kibana_config(config: &Json) -> (ParseOptions, DslOptions) {
        let parse = ParseOptions {
            allow_leading_wildcards: config
                .get("allowLeadingWildcards")
                .and_then(Json::as_bool)
                .unwrap_or(true),
        };
        let dsl = DslOptions {
            date_format_tz: config
                .get("dateFormatTZ")
                .and_then(Json::as_str)
                .map(str::to_string),
            case_insensitive: config
                .get("caseInsensitive")
                .and_then(Json::as_bool)
                .unwrap_or(false),
            nested_ignore_unmapped: config.get("nestedIgnoreUnmapped").and_then(Json::as_bool),
        };
        (parse, dsl)
    }
}

/// Why a parsed query cannot be translated with the given field metadata.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// A field and its nested mapping disagree (Kibana rejects these queries too).
    #[error("{0}")]
    Nested(String),
}

/// Translate the KQL part (what appears as `bool.filter[0]` of the detection engine's query).
/// `fields: None` (or an empty list) means no metadata: field names are used as written.
pub fn to_dsl(
    query: &Query,
    fields: Option<&FieldTypes>,
    options: &DslOptions,
) -> Result<Json, TranslateError> {
    Ok(translate(query, fields, options)?.into_json())
}

/// [`to_dsl`] as JSON text, the form a request body takes (cheaper than building a `Value`).
pub fn to_dsl_string(
    query: &Query,
    fields: Option<&FieldTypes>,
    options: &DslOptions,
) -> Result<String, TranslateError> {
    let tree = translate(query, fields, options)?;
    // Serialising strings, numbers and maps into a String cannot fail.
    Ok(serde_json::to_string(&tree).unwrap_or_default())
}

fn translate(
    query: &Query,
    fields: Option<&FieldTypes>,
    options: &DslOptions,
) -> Result<Dsl, TranslateError> {
    let translator = Translator {
        fields: fields.filter(|f| !f.is_empty()),
        options,
    };
    translator.query(query, None)
}

/// Kibana's `buildEsQuery` for one KQL query and the clauses of a rule's filters:
/// `{"bool":{"must":[],"filter":[<kql>, <filter>…],"should":[],"must_not":[<must_not>…]}}`.
///
/// Reading Kibana filter objects (disabled, negated, legacy shapes) is the rule loader's job
/// (`rule::filters::es_clauses`); this only places the clauses it produced.
pub fn build_es_query(
    query: &Query,
    filter: &[Json],
    must_not: &[Json],
    fields: Option<&FieldTypes>,
    options: &DslOptions,
) -> Result<Json, TranslateError> {
    let kql = translate(query, fields, options)?;
    let filter: Vec<Dsl> = std::iter::once(kql)
        .chain(filter.iter().cloned().map(Dsl::Json))
        .collect();
    let must_not: Vec<Dsl> = must_not.iter().cloned().map(Dsl::Json).collect();
    let body = obj([(
        "bool",
        obj([
            ("must", Dsl::Array(Vec::new())),
            ("filter", Dsl::Array(filter)),
            ("should", Dsl::Array(Vec::new())),
            ("must_not", Dsl::Array(must_not)),
        ]),
    )]);
    Ok(body.into_json())
}

/// A field reference after applying the nested prefix (Kibana's `getFullFieldNameNode`).
enum FieldName {
    /// Field-less (free text); also Kibana's reading of an unquoted `null` field name.
    None,
    Name(String),
    Pattern(Vec<String>),
}

impl FieldName {
    fn of(field: Option<&Value>, nested: Option<&str>) -> FieldName {
        let prefix = |s: &str| match nested {
            Some(p) => format!("{p}.{s}"),
            None => s.to_string(),
        };
        match field {
            // Free text is Kibana's `null` field; inside a nested group it becomes the field
            // `<path>.null`, as Kibana's string interpolation makes it.
            None | Some(Value::Null) if nested.is_none() => FieldName::None,
            None => FieldName::Name(prefix("null")),
            Some(Value::Wildcard(w)) => {
                let mut pieces = w.pieces.clone();
                pieces[0] = prefix(&pieces[0]);
                FieldName::Pattern(pieces)
            }
            Some(other) => match nested {
                Some(_) => FieldName::Name(prefix(&other.as_field_name())),
                None => FieldName::Name(other.as_field_name()),
            },
        }
    }

    fn is_lone_wildcard(&self) -> bool {
        matches!(self, FieldName::Pattern(p) if p.len() == 2 && p.iter().all(String::is_empty))
    }
}

/// A field a clause is built for: known metadata or a name used as written.
struct Resolved<'f> {
    name: String,
    info: Option<&'f FieldInfo>,
}

struct Translator<'a> {
    fields: Option<&'a FieldTypes>,
    options: &'a DslOptions,
}

impl<'a> Translator<'a> {
    fn query(&self, query: &Query, nested: Option<&str>) -> Result<Dsl, TranslateError> {
        Ok(match query {
            Query::And(items) => obj([(
                "bool",
                obj([("filter", Dsl::Array(self.all(items, nested)?))]),
            )]),
            Query::Or(items) => should(self.all(items, nested)?),
            Query::Not(inner) => obj([("bool", obj([("must_not", self.query(inner, nested)?)]))]),
            Query::Nested { path, query } => {
                let path = path.as_field_name();
                let full = match nested {
                    Some(outer) => format!("{outer}.{path}"),
                    None => path,
                };
                let inner = self.query(query, Some(&full))?;
                self.nested_wrap(&full, inner)
            }
            Query::Exists { field } => {
                let name = FieldName::of(Some(field), nested);
                let name = match name {
                    FieldName::Name(n) => n,
                    FieldName::Pattern(p) => p.join("*"),
                    FieldName::None => "null".to_string(),
                };
                obj([("exists", obj([("field", Dsl::String(name))]))])
            }
            Query::Is { field, value } => self.is(field.as_ref(), value, nested)?,
            Query::Range { field, op, value } => self.range(field, *op, value, nested)?,
        })
    }

    fn all(&self, items: &[Query], nested: Option<&str>) -> Result<Vec<Dsl>, TranslateError> {
        items.iter().map(|q| self.query(q, nested)).collect()
    }

    fn nested_wrap(&self, path: &str, query: Dsl) -> Dsl {
        let mut body = Vec::new();
        body.push(("path".into(), Dsl::String(path.to_string())));
        body.push(("query".into(), query));
        body.push(("score_mode".into(), Dsl::String("none".into())));
        if let Some(ignore) = self.options.nested_ignore_unmapped {
            body.push(("ignore_unmapped".into(), Dsl::Bool(ignore)));
        }
        obj([("nested", Dsl::Object(body))])
    }

    /// Kibana's `getFields` plus the nested-group checks of `getFullFieldNameNode`.
    fn resolve(
        &self,
        name: &FieldName,
        nested: Option<&str>,
    ) -> Result<Vec<Resolved<'a>>, TranslateError> {
        let found: Vec<&'a FieldInfo> = match (self.fields, name) {
            (None, _) | (_, FieldName::None) => Vec::new(),
            (Some(types), FieldName::Name(n)) => types.get(n).into_iter().collect(),
            (Some(types), FieldName::Pattern(p)) => types.matching(p),
        };
        let checked = !(matches!(name, FieldName::Pattern(_)) && nested.is_none());
        if checked {
            let errors: Vec<String> = found
                .iter()
                .filter_map(|f| nested_mismatch(f, nested))
                .collect();
            if !errors.is_empty() {
                return Err(TranslateError::Nested(errors.join("\n")));
            }
        }
        if found.is_empty() {
            let written = match name {
                FieldName::Name(n) => n.clone(),
                FieldName::Pattern(p) => p.join("*"),
                FieldName::None => "null".to_string(),
            };
            return Ok(vec![Resolved {
                name: written,
                info: None,
            }]);
        }
        Ok(found
            .into_iter()
            .map(|f| Resolved {
                name: f.name.clone(),
                info: Some(f),
            })
            .collect())
    }

    /// Wildcard field names that resolve into a nested mapping get a `nested` query for free.
    fn auto_nest(
        &self,
        name: &FieldName,
        info: Option<&FieldInfo>,
        nested: Option<&str>,
        q: Dsl,
    ) -> Dsl {
        match (name, info.and_then(|f| f.nested_path.as_deref()), nested) {
            (FieldName::Pattern(_), Some(path), None) => self.nested_wrap(path, q),
            _ => q,
        }
    }

    fn is(
        &self,
        field: Option<&Value>,
        value: &Value,
        nested: Option<&str>,
    ) -> Result<Dsl, TranslateError> {
        let name = FieldName::of(field, nested);
        let exists = value.is_lone_wildcard();
        if exists && name.is_lone_wildcard() {
            return Ok(obj([("match_all", Dsl::Object(Vec::new()))]));
        }
        if let FieldName::None = name {
            return Ok(match value {
                Value::Wildcard(w) => obj([(
                    "query_string",
                    obj([("query", Dsl::String(w.query_string()))]),
                )]),
                _ => {
                    let kind = if matches!(value, Value::Quoted(_)) {
                        "phrase"
                    } else {
                        "best_fields"
                    };
                    obj([(
                        "multi_match",
                        obj([
                            ("type", Dsl::String(kind.into())),
                            ("query", literal(value)),
                            ("lenient", Dsl::Bool(true)),
                        ]),
                    )])
                }
            });
        }
        let mut clauses = Vec::new();
        for Resolved { name: f, info } in self.resolve(&name, nested)? {
            let keyword = info.is_some_and(FieldInfo::is_keyword_only);
            let date = info.is_some_and(FieldInfo::is_date);
            let clause = if exists {
                obj([("exists", obj([("field", Dsl::String(f))]))])
            } else if let Value::Wildcard(w) = value {
                let pattern = w.query_string();
                if keyword {
                    let mut body = Vec::new();
                    body.push(("value".into(), Dsl::String(pattern)));
                    self.case_insensitive(&mut body);
                    obj([("wildcard", obj([(f, Dsl::Object(body))]))])
                } else {
                    obj([(
                        "query_string",
                        obj([
                            ("fields", Dsl::Array(vec![Dsl::String(f)])),
                            ("query", Dsl::String(pattern)),
                        ]),
                    )])
                }
            } else if date {
                let v = literal(value);
                let mut body = Vec::new();
                body.push(("gte".into(), v.clone()));
                body.push(("lte".into(), v.clone()));
                self.time_zone(&mut body, &v);
                obj([("range", obj([(f, Dsl::Object(body))]))])
            } else if keyword {
                let mut body = Vec::new();
                body.push(("value".into(), literal(value)));
                self.case_insensitive(&mut body);
                obj([("term", obj([(f, Dsl::Object(body))]))])
            } else if matches!(value, Value::Quoted(_)) {
                obj([("match_phrase", obj([(f, literal(value))]))])
            } else {
                obj([("match", obj([(f, literal(value))]))])
            };
            clauses.push(self.auto_nest(&name, info, nested, clause));
        }
        Ok(should(clauses))
    }

    fn range(
        &self,
        field: &Value,
        op: RangeOp,
        value: &Value,
        nested: Option<&str>,
    ) -> Result<Dsl, TranslateError> {
        let name = match FieldName::of(Some(field), nested) {
            // Only `is` reads a `null` field as "no field"; range uses the text.
            FieldName::None => FieldName::Name("null".to_string()),
            other => other,
        };
        let v = literal(value);
        let mut clauses = Vec::new();
        for resolved in self.resolve(&name, nested)? {
            let mut body = Vec::new();
            body.push((op.es_key().into(), v.clone()));
            if resolved.info.is_some_and(FieldInfo::is_date) {
                self.time_zone(&mut body, &v);
            }
            let clause = obj([("range", obj([(resolved.name.clone(), Dsl::Object(body))]))]);
            clauses.push(self.auto_nest(&name, resolved.info, nested, clause));
        }
        Ok(should(clauses))
    }

    fn case_insensitive(&self, body: &mut Body) {
        if self.options.case_insensitive {
            body.push(("case_insensitive".into(), Dsl::Bool(true)));
        }
    }

    /// `time_zone` for date fields, except for epoch-millisecond values (newer Kibana).
    fn time_zone(&self, body: &mut Body, value: &Dsl) {
        let epoch = matches!(value, Dsl::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if let (Some(tz), false) = (&self.options.date_format_tz, epoch) {
            body.push(("time_zone".into(), Dsl::String(tz.clone())));
        }
    }
}

fn nested_mismatch(field: &FieldInfo, nested: Option<&str>) -> Option<String> {
    let name = &field.name;
    match (nested, field.nested_path.as_deref()) {
        (Some(group), None) => Some(format!(
            "{name} is not a nested field but is in nested group \"{group}\" in the KQL expression."
        )),
        (None, Some(_)) => Some(format!(
            "{name} is a nested field, but is not in a nested group in the KQL expression."
        )),
        (Some(group), Some(path)) if group != path => Some(format!(
            "Nested field {name} is being queried with the incorrect nested path. The correct path is {path}."
        )),
        _ => None,
    }
}

/// `{"bool":{"should":[..],"minimum_should_match":1}}`
fn should(clauses: Vec<Dsl>) -> Dsl {
    obj([(
        "bool",
        obj([
            ("should", Dsl::Array(clauses)),
            ("minimum_should_match", Dsl::Number(1)),
        ]),
    )])
}

/// A literal value as Kibana's `toElasticsearchQuery` gives it: strings as written (wildcards
/// with bare `*`), booleans and null typed.
fn literal(value: &Value) -> Dsl {
    match value {
        Value::Quoted(s) | Value::Text(s) => Dsl::String(s.clone()),
        Value::Bool(b) => Dsl::Bool(*b),
        Value::Null => Dsl::Null,
        Value::Wildcard(w) => Dsl::String(w.raw()),
    }
}
