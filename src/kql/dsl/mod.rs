//! Translation to Elasticsearch Query DSL, exactly as Kibana's `toElasticsearchQuery` (query
//! level) and `buildEsQuery` (the detection engine's request body) produce it.

mod writer;

use std::borrow::Cow;

use serde_json::Value as Json;

use writer::{DslWriter, JsonText, ValueBuilder};

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
    let mut out = ValueBuilder::default();
    Translator::new(fields, options).query(query, None, &mut out)?;
    Ok(out.finish())
}

/// [`to_dsl`] as JSON text, the form a request body takes (several times cheaper than building
/// a `Value`, since the text is written directly).
pub fn to_dsl_string(
    query: &Query,
    fields: Option<&FieldTypes>,
    options: &DslOptions,
) -> Result<String, TranslateError> {
    // Most queries translate to a kilobyte or two.
    let mut out = JsonText::with_capacity(2048);
    Translator::new(fields, options).query(query, None, &mut out)?;
    Ok(out.into_string())
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
    let out = &mut ValueBuilder::default();
    out.begin_entry("bool");
    out.begin_object();
    out.key("must");
    out.begin_array();
    out.end_array();
    out.key("filter");
    out.begin_array();
    Translator::new(fields, options).query(query, None, out)?;
    filter.iter().for_each(|clause| out.json(clause));
    out.end_array();
    out.key("should");
    out.begin_array();
    out.end_array();
    out.key("must_not");
    out.begin_array();
    must_not.iter().for_each(|clause| out.json(clause));
    out.end_array();
    out.end_object();
    out.end_object();
    Ok(std::mem::take(out).finish())
}

/// A field reference after applying the nested prefix (Kibana's `getFullFieldNameNode`).
enum FieldName<'q> {
    /// Field-less (free text); also Kibana's reading of an unquoted `null` field name.
    None,
    Name(Cow<'q, str>),
    Pattern(Vec<String>),
}

impl<'q> FieldName<'q> {
    fn of(field: Option<&'q Value>, nested: Option<&str>) -> FieldName<'q> {
        let prefix = |s: &str| match nested {
            Some(p) => format!("{p}.{s}"),
            None => s.to_string(),
        };
        match field {
            // Free text is Kibana's `null` field; inside a nested group it becomes the field
            // `<path>.null`, as Kibana's string interpolation makes it.
            None | Some(Value::Null) if nested.is_none() => FieldName::None,
            None => FieldName::Name(Cow::Owned(prefix("null"))),
            Some(Value::Wildcard(w)) => {
                let mut pieces = w.pieces.clone();
                pieces[0] = prefix(&pieces[0]);
                FieldName::Pattern(pieces)
            }
            Some(Value::Quoted(s) | Value::Text(s)) if nested.is_none() => {
                FieldName::Name(Cow::Borrowed(s))
            }
            Some(other) => FieldName::Name(Cow::Owned(prefix(&other.as_field_name()))),
        }
    }

    fn is_lone_wildcard(&self) -> bool {
        matches!(self, FieldName::Pattern(p) if p.len() == 2 && p.iter().all(String::is_empty))
    }

    /// The name as written (no metadata matched it).
    fn written(&self) -> Cow<'_, str> {
        match self {
            FieldName::Name(n) => Cow::Borrowed(n),
            FieldName::Pattern(p) => Cow::Owned(p.join("*")),
            FieldName::None => Cow::Borrowed("null"),
        }
    }
}

/// The fields a clause is built for: the known fields a name resolved to, or the name as
/// written when no metadata knows it.
enum Resolved<'n, 'f> {
    Written(Cow<'n, str>),
    One(&'f FieldInfo),
    Many(Vec<&'f FieldInfo>),
}

impl Resolved<'_, '_> {
    fn each(&self) -> impl Iterator<Item = (&str, Option<&FieldInfo>)> {
        let (written, known) = match self {
            Resolved::Written(name) => (Some(name.as_ref()), &[][..]),
            Resolved::One(info) => (None, std::slice::from_ref(info)),
            Resolved::Many(infos) => (None, infos.as_slice()),
        };
        let known = known.iter().map(|f| (f.name.as_str(), Some(*f)));
        written.map(|n| (n, None)).into_iter().chain(known)
    }
}

struct Translator<'a> {
    fields: Option<&'a FieldTypes>,
    options: &'a DslOptions,
}

impl<'a> Translator<'a> {
    fn new(fields: Option<&'a FieldTypes>, options: &'a DslOptions) -> Self {
        Translator {
            fields: fields.filter(|f| !f.is_empty()),
            options,
        }
    }

    fn query<W: DslWriter>(
        &self,
        query: &Query,
        nested: Option<&str>,
        out: &mut W,
    ) -> Result<(), TranslateError> {
        match query {
            Query::And(items) => {
                out.begin_entry("bool");
                out.begin_entry("filter");
                out.begin_array();
                for item in items {
                    self.query(item, nested, out)?;
                }
                out.end_array();
                out.end_object();
                out.end_object();
            }
            Query::Or(items) => {
                begin_should(out);
                for item in items {
                    self.query(item, nested, out)?;
                }
                end_should(out);
            }
            Query::Not(inner) => {
                out.begin_entry("bool");
                out.begin_entry("must_not");
                self.query(inner, nested, out)?;
                out.end_object();
                out.end_object();
            }
            Query::Nested { path, query } => {
                let path = path.as_field_name();
                let full = match nested {
                    Some(outer) => format!("{outer}.{path}"),
                    None => path,
                };
                begin_nested(&full, out);
                self.query(query, Some(&full), out)?;
                self.end_nested(out);
            }
            Query::Exists { field } => {
                exists(&FieldName::of(Some(field), nested).written(), out);
            }
            Query::Is { field, value } => self.is(field.as_ref(), value, nested, out)?,
            Query::Range { field, op, value } => self.range(field, *op, value, nested, out)?,
        }
        Ok(())
    }

    /// After the clause that `begin_nested` opened.
    fn end_nested<W: DslWriter>(&self, out: &mut W) {
        out.key("score_mode");
        out.string("none");
        if let Some(ignore) = self.options.nested_ignore_unmapped {
            out.key("ignore_unmapped");
            out.bool(ignore);
        }
        out.end_object();
        out.end_object();
    }

    /// Kibana's `getFields` plus the nested-group checks of `getFullFieldNameNode`.
    fn resolve<'n>(
        &self,
        name: &'n FieldName,
        nested: Option<&str>,
    ) -> Result<Resolved<'n, 'a>, TranslateError>
    where
        'a: 'n,
    {
        let found = match (self.fields, name) {
            (None, _) | (_, FieldName::None) => Resolved::Written(name.written()),
            (Some(types), FieldName::Name(n)) => match types.get(n) {
                Some(info) => Resolved::One(info),
                None => Resolved::Written(name.written()),
            },
            (Some(types), FieldName::Pattern(p)) => match types.matching(p) {
                infos if infos.is_empty() => Resolved::Written(name.written()),
                infos => Resolved::Many(infos),
            },
        };
        let checked = !(matches!(name, FieldName::Pattern(_)) && nested.is_none());
        if checked {
            let errors: Vec<String> = found
                .each()
                .filter_map(|(_, info)| info)
                .filter_map(|f| nested_mismatch(f, nested))
                .collect();
            if !errors.is_empty() {
                return Err(TranslateError::Nested(errors.join("\n")));
            }
        }
        Ok(found)
    }

    /// Wildcard field names that resolve into a nested mapping get a `nested` query for free:
    /// the path of that mapping, if so.
    fn auto_nest<'f>(
        name: &FieldName,
        info: Option<&'f FieldInfo>,
        nested: Option<&str>,
    ) -> Option<&'f str> {
        match (name, info.and_then(|f| f.nested_path.as_deref()), nested) {
            (FieldName::Pattern(_), Some(path), None) => Some(path),
            _ => None,
        }
    }

    fn is<W: DslWriter>(
        &self,
        field: Option<&Value>,
        value: &Value,
        nested: Option<&str>,
        out: &mut W,
    ) -> Result<(), TranslateError> {
        let name = FieldName::of(field, nested);
        let exists_query = value.is_lone_wildcard();
        if exists_query && name.is_lone_wildcard() {
            out.begin_entry("match_all");
            out.begin_object();
            out.end_object();
            out.end_object();
            return Ok(());
        }
        if let FieldName::None = name {
            match value {
                Value::Wildcard(w) => {
                    out.begin_entry("query_string");
                    out.begin_entry("query");
                    out.string(&w.query_string());
                    out.end_object();
                    out.end_object();
                }
                _ => {
                    let kind = if matches!(value, Value::Quoted(_)) {
                        "phrase"
                    } else {
                        "best_fields"
                    };
                    out.begin_entry("multi_match");
                    out.begin_object();
                    out.key("type");
                    out.string(kind);
                    out.key("query");
                    literal(value, out);
                    out.key("lenient");
                    out.bool(true);
                    out.end_object();
                    out.end_object();
                }
            }
            return Ok(());
        }
        // Rendered once for all the fields a pattern expands to.
        let pattern = match value {
            Value::Wildcard(w) if !exists_query => Some(w.query_string()),
            _ => None,
        };
        self.each_field(&name, nested, out, |out, f, info| {
            let keyword = info.is_some_and(FieldInfo::is_keyword_only);
            let date = info.is_some_and(FieldInfo::is_date);
            if exists_query {
                exists(f, out);
            } else if let Some(pattern) = &pattern {
                if keyword {
                    out.begin_entry("wildcard");
                    out.begin_field_entry(f);
                    out.begin_object();
                    out.key("value");
                    out.string(pattern);
                    self.case_insensitive(out);
                    out.end_object();
                    out.end_object();
                    out.end_object();
                } else {
                    out.begin_entry("query_string");
                    out.begin_object();
                    out.key("fields");
                    out.begin_array();
                    out.string(f);
                    out.end_array();
                    out.key("query");
                    out.string(pattern);
                    out.end_object();
                    out.end_object();
                }
            } else if date {
                out.begin_entry("range");
                out.begin_field_entry(f);
                out.begin_object();
                out.key("gte");
                literal(value, out);
                out.key("lte");
                literal(value, out);
                self.time_zone(value, out);
                out.end_object();
                out.end_object();
                out.end_object();
            } else if keyword {
                out.begin_entry("term");
                out.begin_field_entry(f);
                out.begin_object();
                out.key("value");
                literal(value, out);
                self.case_insensitive(out);
                out.end_object();
                out.end_object();
                out.end_object();
            } else {
                let kind = if matches!(value, Value::Quoted(_)) {
                    "match_phrase"
                } else {
                    "match"
                };
                out.begin_entry(kind);
                out.begin_field_entry(f);
                literal(value, out);
                out.end_object();
                out.end_object();
            }
        })
    }

    fn range<W: DslWriter>(
        &self,
        field: &Value,
        op: RangeOp,
        value: &Value,
        nested: Option<&str>,
        out: &mut W,
    ) -> Result<(), TranslateError> {
        let name = match FieldName::of(Some(field), nested) {
            // Only `is` reads a `null` field as "no field"; range uses the text.
            FieldName::None => FieldName::Name(Cow::Borrowed("null")),
            other => other,
        };
        self.each_field(&name, nested, out, |out, f, info| {
            out.begin_entry("range");
            out.begin_field_entry(f);
            out.begin_object();
            out.key(op.es_key());
            literal(value, out);
            if info.is_some_and(FieldInfo::is_date) {
                self.time_zone(value, out);
            }
            out.end_object();
            out.end_object();
            out.end_object();
        })
    }

    /// `should` over one clause per field `name` resolves to; a clause for a field that a
    /// pattern found in a nested mapping is wrapped in `nested`.
    fn each_field<W: DslWriter>(
        &self,
        name: &FieldName,
        nested: Option<&str>,
        out: &mut W,
        mut clause: impl FnMut(&mut W, &str, Option<&FieldInfo>),
    ) -> Result<(), TranslateError> {
        let resolved = self.resolve(name, nested)?;
        begin_should(out);
        for (f, info) in resolved.each() {
            let wrap = Self::auto_nest(name, info, nested);
            if let Some(path) = wrap {
                begin_nested(path, out);
            }
            clause(out, f, info);
            if wrap.is_some() {
                self.end_nested(out);
            }
        }
        end_should(out);
        Ok(())
    }

    fn case_insensitive<W: DslWriter>(&self, out: &mut W) {
        if self.options.case_insensitive {
            out.key("case_insensitive");
            out.bool(true);
        }
    }

    /// `time_zone` for date fields, except for epoch-millisecond values (newer Kibana).
    fn time_zone<W: DslWriter>(&self, value: &Value, out: &mut W) {
        let epoch = matches!(value, Value::Quoted(s) | Value::Text(s)
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
        if let (Some(tz), false) = (&self.options.date_format_tz, epoch) {
            out.key("time_zone");
            out.string(tz);
        }
    }
}

/// `{"nested":{"path":<path>,"query":` … then the clause, then `Translator::end_nested`.
fn begin_nested<W: DslWriter>(path: &str, out: &mut W) {
    out.begin_entry("nested");
    out.begin_object();
    out.key("path");
    out.string(path);
    out.key("query");
}

/// `{"bool":{"should":[` … clauses … `],"minimum_should_match":1}}` (with `end_should`).
fn begin_should<W: DslWriter>(out: &mut W) {
    out.begin_entry("bool");
    out.begin_object();
    out.key("should");
    out.begin_array();
}

fn end_should<W: DslWriter>(out: &mut W) {
    out.end_array();
    out.key("minimum_should_match");
    out.number(1);
    out.end_object();
    out.end_object();
}

/// `{"exists":{"field":<field>}}`
fn exists<W: DslWriter>(field: &str, out: &mut W) {
    out.begin_entry("exists");
    out.begin_entry("field");
    out.string(field);
    out.end_object();
    out.end_object();
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

/// A literal value as Kibana's `toElasticsearchQuery` gives it: strings as written (wildcards
/// with bare `*`), booleans and null typed.
fn literal<W: DslWriter>(value: &Value, out: &mut W) {
    match value {
        Value::Quoted(s) | Value::Text(s) => out.string(s),
        Value::Bool(b) => out.bool(*b),
        Value::Null => out.null(),
        Value::Wildcard(w) => out.string(&w.raw()),
    }
}
