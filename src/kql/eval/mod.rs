//! In-memory evaluation: a [`Query`] compiled once into a [`Matcher`] that tells whether a JSON
//! document would be returned by the query Elasticsearch runs for it.
//!
//! Field names are resolved, wildcard patterns split and date bounds computed at compile time;
//! [`Matcher::matches`] then walks the document without allocating (except for field-name
//! patterns that match no known field and free text, which walk every value).

mod date;
mod doc;
mod leaf;
mod prepared;
mod text;

use serde_json::Value as Json;

use super::ast::{Query, RangeOp, Value};
use super::fields::{FieldInfo, FieldTypes};
use leaf::{Bound, Leaf, RangeMode, Scalar, Test};
pub use prepared::{FieldSlots, PrepareBuffer, Prepared};

/// Evaluation options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// Kibana's `caseInsensitive` (term and wildcard compare case-insensitively).
    pub case_insensitive: bool,
    /// "now" for date math in range bounds, in epoch milliseconds; the compile time if unset.
    pub now_millis: Option<i64>,
}

/// A compiled query.
#[derive(Debug, Clone)]
pub struct Matcher {
    root: Node,
    /// The `FieldSlots` its field tests' slots number (0: compiled without).
    slots_id: u64,
}

#[derive(Debug, Clone)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    Const(bool),
    /// Any of the resolved fields passes its test.
    Fields(Vec<FieldTest>),
    /// A field-name pattern no known field matched: every document value whose dotted path
    /// matches the pattern.
    PathPattern {
        pieces: Vec<String>,
        test: Test,
    },
    /// Free text: any value anywhere in the document (approximates `multi_match` over `*`).
    AnyValue(Vec<Test>),
    /// Every condition inside holds for one and the same object under `path`.
    Nested {
        path: String,
        inner: Box<Node>,
    },
}

#[derive(Debug, Clone)]
struct FieldTest {
    /// Path relative to the enclosing nested object (or the document).
    path: String,
    /// Where a `Prepared` document holds this field's values (fields outside nested groups,
    /// when compiled with slots).
    slot: Option<u32>,
    ignore_above: Option<usize>,
    test: Test,
}

struct Compiler<'a> {
    fields: Option<&'a FieldTypes>,
    options: &'a MatchOptions,
    now: i64,
    /// Numbers the root-level fields as they are met. A `RefCell` because the compiler's
    /// methods take `&self` (they recurse and pass closures that read it).
    slots: Option<std::cell::RefCell<&'a mut FieldSlots>>,
}

impl Matcher {
    /// Compile `query`. With `fields`, each field gets the semantics of its mapping (keyword,
    /// text, date, numeric, ip, boolean); unknown fields behave as keyword.
    pub fn new(query: &Query, fields: Option<&FieldTypes>, options: &MatchOptions) -> Matcher {
        Self::compile(query, fields, options, None)
    }

    /// Compile `query` to read field values from documents prepared with `slots` (see
    /// [`Matcher::matches_prepared`]); the fields it reads are added to `slots`.
    pub fn with_slots(
        query: &Query,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Matcher {
        Self::compile(query, fields, options, Some(slots))
    }

    fn compile(
        query: &Query,
        fields: Option<&FieldTypes>,
        options: &MatchOptions,
        slots: Option<&mut FieldSlots>,
    ) -> Matcher {
        let slots_id = slots.as_ref().map_or(0, |s| s.id());
        let compiler = Compiler {
            fields: fields.filter(|f| !f.is_empty()),
            options,
            now: options
                .now_millis
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis()),
            slots: slots.map(std::cell::RefCell::new),
        };
        Matcher {
            root: compiler.node(query, None),
            slots_id,
        }
    }

    /// Whether `doc` matches.
    pub fn matches(&self, doc: &Json) -> bool {
        self.root.eval(&Plain(doc))
    }

    /// Whether the prepared document matches: the same answer as [`Matcher::matches`] on
    /// `doc.json()`, read from the prepared values when `doc` was prepared with the slots this
    /// matcher was compiled with (otherwise from the document).
    pub fn matches_prepared(&self, doc: &Prepared<'_>) -> bool {
        self.root.eval(&Slotted {
            doc,
            slots_id: self.slots_id,
        })
    }

    /// The fields whose values the query reads, or `None` when it may read any field (a
    /// field-name pattern, free text, a nested group): a document holding these fields gives
    /// the same answer as the whole document.
    pub fn fields_read(&self) -> Option<Vec<&str>> {
        let mut fields = Vec::new();
        self.root.fields_read(&mut fields).then_some(fields)
    }
}

impl Node {
    fn fields_read<'a>(&'a self, out: &mut Vec<&'a str>) -> bool {
        match self {
            Node::And(items) | Node::Or(items) => items.iter().all(|n| n.fields_read(out)),
            Node::Not(inner) => inner.fields_read(out),
            Node::Const(_) => true,
            Node::Fields(tests) => {
                out.extend(tests.iter().map(|t| t.path.as_str()));
                true
            }
            Node::PathPattern { .. } | Node::AnyValue(_) | Node::Nested { .. } => false,
        }
    }
}

/// Where field values are read from.
trait Source {
    fn json(&self) -> &Json;
    /// Whether any value of the field passes its test.
    fn passes(&self, test: &FieldTest) -> bool;
}

/// The document tree itself.
struct Plain<'d>(&'d Json);

impl Source for Plain<'_> {
    fn json(&self) -> &Json {
        self.0
    }

    fn passes(&self, t: &FieldTest) -> bool {
        doc::any_value(self.0, &t.path, &mut |v| {
            t.test.matches(Leaf::of(v), t.ignore_above)
        })
    }
}

/// A prepared document, for a matcher compiled with the slots `slots_id`.
struct Slotted<'p, 'd> {
    doc: &'p Prepared<'d>,
    slots_id: u64,
}

impl Source for Slotted<'_, '_> {
    fn json(&self) -> &Json {
        self.doc.json()
    }

    fn passes(&self, t: &FieldTest) -> bool {
        if let Some(slot) = t.slot
            && let Some(mut values) = self.doc.slot(self.slots_id, slot)
        {
            return values.any(|v| t.test.matches(v, t.ignore_above));
        }
        Plain(self.doc.json()).passes(t)
    }
}

impl Node {
    fn eval(&self, source: &impl Source) -> bool {
        match self {
            Node::And(items) => items.iter().all(|n| n.eval(source)),
            Node::Or(items) => items.iter().any(|n| n.eval(source)),
            Node::Not(inner) => !inner.eval(source),
            Node::Const(b) => *b,
            Node::Fields(tests) => tests.iter().any(|t| source.passes(t)),
            Node::PathPattern { pieces, test } => {
                doc::any_scalar_with_path(source.json(), &mut String::new(), &mut |path, v| {
                    super::ast::glob_match(pieces, path) && test.matches(Leaf::of(v), None)
                })
            }
            Node::AnyValue(tests) => {
                doc::any_scalar_with_path(source.json(), &mut String::new(), &mut |_, v| {
                    tests.iter().any(|t| t.matches(Leaf::of(v), None))
                })
            }
            Node::Nested { path, inner } => doc::any_value(source.json(), path, &mut |v| {
                v.is_object() && inner.eval(&Plain(v))
            }),
        }
    }
}

/// Fields that name the data source: within the indices a rule queries they nearly always hold,
/// so they reject almost nothing and are best checked last.
const DATA_SOURCE_FIELDS: &[&str] = &[
    "event.dataset",
    "event.module",
    "data_stream.dataset",
    "data_stream.type",
    "data_stream.namespace",
];

impl Node {
    /// Rough cost of evaluating the node on a document where it rejects nothing: the order in
    /// which an `and` checks its conjuncts.
    fn cost(&self) -> u32 {
        match self {
            Node::Const(_) => 0,
            Node::Not(inner) => inner.cost(),
            Node::And(items) | Node::Or(items) => items.iter().map(Node::cost).sum(),
            Node::Fields(tests) => tests
                .iter()
                .map(|t| {
                    let unselective = DATA_SOURCE_FIELDS.contains(&t.path.as_str());
                    t.test.cost() + if unselective { 20 } else { 0 }
                })
                .sum(),
            Node::Nested { inner, .. } => 10 + inner.cost(),
            Node::PathPattern { .. } | Node::AnyValue(_) => 100,
        }
    }
}

/// What kind of comparison a field's mapping calls for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Keyword,
    Text,
    Date,
    Numeric,
    Ip,
    Boolean,
    Unknown,
}

fn kind_of(info: Option<&FieldInfo>) -> Kind {
    let Some(info) = info else {
        return Kind::Unknown;
    };
    if info.is_date() {
        Kind::Date
    } else if info.is_text() {
        Kind::Text
    } else if info.is_numeric() {
        Kind::Numeric
    } else if info.is_ip() {
        Kind::Ip
    } else if info.es_types.iter().all(|t| t == "boolean") && !info.es_types.is_empty() {
        Kind::Boolean
    } else {
        Kind::Keyword
    }
}

/// What `field:*` tests in one value of a field of `kind`.
fn exists_test(kind: Kind, _: Option<&FieldInfo>) -> Test {
    match kind {
        Kind::Ip => Test::IpExists,
        _ => Test::Exists,
    }
}

impl Compiler<'_> {
    /// `nested`: the full path of the enclosing nested group (for metadata lookups).
    fn node(&self, query: &Query, nested: Option<&str>) -> Node {
        match query {
            Query::And(items) => {
                let mut nodes: Vec<Node> = items.iter().map(|q| self.node(q, nested)).collect();
                // Evaluation is pure, so conjunct order cannot change the result; checking
                // cheap, selective conjuncts first lets most documents be rejected early.
                nodes.sort_by_key(Node::cost);
                Node::And(nodes)
            }
            Query::Or(items) => Node::Or(items.iter().map(|q| self.node(q, nested)).collect()),
            Query::Not(inner) => Node::Not(Box::new(self.node(inner, nested))),
            Query::Nested { path, query } => {
                let relative = path.as_field_name();
                let full = match nested {
                    Some(outer) => format!("{outer}.{relative}"),
                    None => relative.clone(),
                };
                Node::Nested {
                    path: relative,
                    inner: Box::new(self.node(query, Some(&full))),
                }
            }
            Query::Exists { field } => self.field_node(Some(field), nested, exists_test),
            Query::Is { field, value } => self.is(field.as_ref(), value, nested),
            Query::Range { field, op, value } => {
                let bound = value.as_field_name();
                self.field_node(Some(field), nested, |kind, _| self.range(kind, *op, &bound))
            }
        }
    }

    fn is(&self, field: Option<&Value>, value: &Value, nested: Option<&str>) -> Node {
        let field_is_all = field.is_some_and(Value::is_lone_wildcard);
        if value.is_lone_wildcard() && field_is_all {
            return Node::Const(true);
        }
        // As in the translator, free text inside a nested group is the field `null` there.
        let free_text = matches!(field, None | Some(Value::Null)) && nested.is_none();
        if free_text {
            // Free text searches every field: keyword-exact or analysed, whichever matches.
            let tests = if value.is_lone_wildcard() {
                vec![Test::Exists]
            } else {
                vec![
                    self.equality(Kind::Keyword, value),
                    self.equality(Kind::Text, value),
                ]
            };
            return Node::AnyValue(tests);
        }
        if value.is_lone_wildcard() {
            return self.field_node(field, nested, exists_test);
        }
        self.field_node(field, nested, |kind, _| self.equality(kind, value))
    }

    /// Resolve `field` (relative name, nested prefix for metadata) and build one test per
    /// resolved field.
    fn field_node(
        &self,
        field: Option<&Value>,
        nested: Option<&str>,
        test: impl Fn(Kind, Option<&FieldInfo>) -> Test,
    ) -> Node {
        let full = |relative: &str| match nested {
            Some(p) => format!("{p}.{relative}"),
            None => relative.to_string(),
        };
        let strip = |name: &str| -> String {
            match nested {
                Some(p) => name
                    .strip_prefix(p)
                    .and_then(|r| r.strip_prefix('.'))
                    .unwrap_or(name)
                    .to_string(),
                None => name.to_string(),
            }
        };
        match field {
            Some(Value::Wildcard(w)) => {
                let mut pieces = w.pieces.clone();
                pieces[0] = full(&pieces[0]);
                let found = self.fields.map(|f| f.matching(&pieces)).unwrap_or_default();
                if found.is_empty() {
                    return Node::PathPattern {
                        pieces: w.pieces.clone(),
                        test: test(Kind::Unknown, None),
                    };
                }
                Node::Fields(
                    found
                        .into_iter()
                        .map(|info| FieldTest {
                            slot: self.slot_for(&strip(&info.name), nested),
                            path: strip(&info.name),
                            ignore_above: info.ignore_above,
                            test: test(kind_of(Some(info)), Some(info)),
                        })
                        .collect(),
                )
            }
            other => {
                let relative = other.map_or_else(|| "null".to_string(), Value::as_field_name);
                let info = self.fields.and_then(|f| f.get(&full(&relative)));
                Node::Fields(vec![FieldTest {
                    slot: self.slot_for(&relative, nested),
                    path: relative,
                    ignore_above: info.and_then(|i| i.ignore_above),
                    test: test(kind_of(info), info),
                }])
            }
        }
    }

    /// The slot of a field read from the document root (fields inside nested groups are read
    /// from each nested object instead).
    fn slot_for(&self, path: &str, nested: Option<&str>) -> Option<u32> {
        match (&self.slots, nested) {
            (Some(slots), None) => slots.borrow_mut().slot(path),
            _ => None,
        }
    }

    fn equality(&self, kind: Kind, value: &Value) -> Test {
        let ci = self.options.case_insensitive;
        let text = match value {
            Value::Null => return Test::Never,
            Value::Wildcard(w) => {
                return match kind {
                    Kind::Text => Test::AnalyzedGlob {
                        pieces: w.pieces.iter().map(|p| p.to_lowercase()).collect(),
                    },
                    _ => Test::Glob {
                        pieces: if ci {
                            w.pieces.iter().map(|p| p.to_lowercase()).collect()
                        } else {
                            w.pieces.clone()
                        },
                        ci,
                    },
                };
            }
            other => other.as_field_name(),
        };
        match kind {
            Kind::Text => Test::Analyzed {
                tokens: text::query_tokens(&text),
                phrase: matches!(value, Value::Quoted(_)),
            },
            Kind::Numeric => match Scalar::new(text).number {
                Some(n) => Test::NumberEq(n),
                None => Test::Never,
            },
            Kind::Boolean => match text.as_str() {
                "true" => Test::BoolEq(true),
                "false" => Test::BoolEq(false),
                _ => Test::Never,
            },
            Kind::Date => {
                match (
                    date::parse(&text, false, self.now),
                    date::parse(&text, true, self.now),
                ) {
                    (Some(lo), Some(hi)) => Test::DateBetween(lo, hi),
                    _ => Test::Never,
                }
            }
            Kind::Ip => match leaf::parse_ip_term(&text) {
                Some((net, prefix)) => Test::IpIn { net, prefix },
                None => Test::Never,
            },
            Kind::Keyword | Kind::Unknown => Test::Term {
                value: Scalar::new(if ci { text.to_lowercase() } else { text }),
                ci,
            },
        }
    }

    fn range(&self, kind: Kind, op: RangeOp, bound: &str) -> Test {
        let mode = match kind {
            Kind::Numeric => RangeMode::Numeric,
            Kind::Date => RangeMode::Date,
            Kind::Ip => RangeMode::Ip,
            Kind::Unknown => RangeMode::Dynamic,
            Kind::Keyword | Kind::Text | Kind::Boolean => RangeMode::Lexicographic,
        };
        Test::Range {
            op,
            bound: Bound::new(bound.to_string(), op, self.now),
            mode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn conjunct_paths(matcher: &Matcher) -> Vec<String> {
        let Node::And(items) = &matcher.root else {
            panic!("expected a conjunction");
        };
        items
            .iter()
            .map(|n| match n {
                Node::Fields(tests) => tests[0].path.clone(),
                Node::Not(inner) => match inner.as_ref() {
                    Node::Fields(tests) => format!("not {}", tests[0].path),
                    _ => "(group)".to_string(),
                },
                _ => "(group)".to_string(),
            })
            .collect()
    }

    #[test]
    fn conjunctions_check_data_source_fields_last_without_changing_results() {
        let query = crate::kql::parse(
            "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com \
             and event.action: (A* or B) and not event.outcome: failure",
        )
        .unwrap();
        let matcher = Matcher::new(&query, None, &MatchOptions::default());
        assert_eq!(
            conjunct_paths(&matcher),
            [
                "event.provider",
                "not event.outcome",
                "(group)",
                "event.dataset"
            ]
        );
        let doc = |dataset: &str, provider: &str, action: &str, outcome: &str| {
            json!({"event": {"dataset": dataset, "provider": provider, "action": action,
                             "outcome": outcome}})
        };
        let l = "lambda.amazonaws.com";
        assert!(matcher.matches(&doc("aws.cloudtrail", l, "Ax", "success")));
        assert!(matcher.matches(&doc("aws.cloudtrail", l, "B", "success")));
        assert!(!matcher.matches(&doc("aws.s3access", l, "B", "success")));
        assert!(!matcher.matches(&doc("aws.cloudtrail", "s3", "B", "success")));
        assert!(!matcher.matches(&doc("aws.cloudtrail", l, "C", "success")));
        assert!(!matcher.matches(&doc("aws.cloudtrail", l, "B", "failure")));
    }
}
