//! The translator's output before it becomes `serde_json::Value`: objects as vectors with
//! mostly static keys. Building `serde_json::Value`s directly costs an ordered hash map (two
//! allocations and a hashed insert per key) for every one of the many small objects a query
//! translates to; this tree is built cheaply and serialised or converted once.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_json::Value as Json;

/// Entries of an object, in output order.
pub(crate) type Body = Vec<(Cow<'static, str>, Dsl)>;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Dsl {
    Object(Body),
    Array(Vec<Dsl>),
    String(String),
    Bool(bool),
    Number(i64),
    Null,
    /// A value taken as is (filters, typed literals).
    Json(Json),
}

impl Dsl {
    pub fn into_json(self) -> Json {
        match self {
            Dsl::Object(body) => Json::Object(
                body.into_iter()
                    .map(|(k, v)| (k.into_owned(), v.into_json()))
                    .collect(),
            ),
            Dsl::Array(items) => Json::Array(items.into_iter().map(Dsl::into_json).collect()),
            Dsl::String(s) => Json::String(s),
            Dsl::Bool(b) => Json::Bool(b),
            Dsl::Number(n) => Json::from(n),
            Dsl::Null => Json::Null,
            Dsl::Json(v) => v,
        }
    }
}

impl Serialize for Dsl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Dsl::Object(body) => {
                let mut map = serializer.serialize_map(Some(body.len()))?;
                for (k, v) in body {
                    map.serialize_entry(k.as_ref(), v)?;
                }
                map.end()
            }
            Dsl::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Dsl::String(s) => serializer.serialize_str(s),
            Dsl::Bool(b) => serializer.serialize_bool(*b),
            Dsl::Number(n) => serializer.serialize_i64(*n),
            Dsl::Null => serializer.serialize_unit(),
            Dsl::Json(v) => v.serialize(serializer),
        }
    }
}

/// An object from its entries.
pub(crate) fn obj<K: Into<Cow<'static, str>>, const N: usize>(entries: [(K, Dsl); N]) -> Dsl {
    Dsl::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn serialises_and_converts_to_the_same_json() {
        let tree = obj([
            (
                "a",
                Dsl::Array(vec![Dsl::Number(1), Dsl::Null, Dsl::Bool(true)]),
            ),
            ("b", obj([(String::from("f.x"), Dsl::String("v\"".into()))])),
            ("c", Dsl::Json(json!({"k": [1]}))),
        ]);
        let expected = json!({"a": [1, null, true], "b": {"f.x": "v\""}, "c": {"k": [1]}});
        assert_eq!(serde_json::to_string(&tree).unwrap(), expected.to_string());
        assert_eq!(tree.into_json(), expected);
    }
}
