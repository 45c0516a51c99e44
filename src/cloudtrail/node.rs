//! The value model of one parsed CloudTrail record: what Elasticsearch's `json` processor
//! builds before the pipeline touches it.
//!
//! `serde_json::Value` is not enough here, for two reasons the payload strings depend on
//! (docs/cloudtrail-ecs.md §3): the text must keep the integer/decimal distinction of the
//! source (`1` vs `1.0`), and a map must remember every key the parser inserted, including
//! keys the drop step later removes, because removal never shrinks a Java `HashMap`. So we
//! deserialize (with serde_json, borrowing strings from the input where possible) into this
//! small tree instead.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON number as the Java parser types it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// An integer literal (`Integer`, `Long` or `BigInteger` in Java; all print as digits).
    U64(u64),
    I64(i64),
    /// A literal with `.`, `e` or `E` (`Double` in Java). serde_json also lands integers
    /// beyond the 64-bit range here; CloudTrail never writes those.
    F64(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node<'a> {
    Null,
    Bool(bool),
    Num(Num),
    Str(Cow<'a, str>),
    List(Vec<Node<'a>>),
    Map(Obj<'a>),
}

/// One map entry. `dropped` marks an entry the integration's drop step removed: it no
/// longer prints, but it still sized the Java table.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry<'a> {
    pub key: Cow<'a, str>,
    pub value: Node<'a>,
    pub dropped: bool,
}

/// A JSON object: entries in source order, as the Java parser inserted them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Obj<'a> {
    pub entries: Vec<Entry<'a>>,
}

impl<'a> Obj<'a> {
    /// The live (not dropped) entries, in source order.
    pub fn live(&self) -> impl Iterator<Item = (&str, &Node<'a>)> {
        self.entries
            .iter()
            .filter(|e| !e.dropped)
            .map(|e| (e.key.as_ref(), &e.value))
    }

    pub fn live_len(&self) -> usize {
        self.entries.iter().filter(|e| !e.dropped).count()
    }

    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        self.entries
            .iter()
            .find(|e| !e.dropped && e.key == key)
            .map(|e| &e.value)
    }

    /// The first key that appears twice, if any (Elasticsearch's parser rejects those).
    pub fn duplicate_key(&self) -> Option<&str> {
        let keys = &self.entries;
        if keys.len() <= 32 {
            for (i, a) in keys.iter().enumerate() {
                if keys[..i].iter().any(|b| b.key == a.key) {
                    return Some(&a.key);
                }
            }
            None
        } else {
            let mut seen = std::collections::HashSet::with_capacity(keys.len());
            keys.iter()
                .find(|e| !seen.insert(e.key.as_ref()))
                .map(|e| e.key.as_ref())
        }
    }
}

impl<'a> Node<'a> {
    pub fn get(&self, key: &str) -> Option<&Node<'a>> {
        match self {
            Node::Map(obj) => obj.get(key),
            _ => None,
        }
    }

    /// Follow a path of keys through nested maps.
    pub fn path(&self, keys: &[&str]) -> Option<&Node<'a>> {
        keys.iter().try_fold(self, |node, key| node.get(key))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integration's drop step (docs §3.4): remove `null` and `""`, then maps and lists
    /// left empty, recursively. Returns whether this node itself should go.
    pub fn drop_empty(&mut self) -> bool {
        match self {
            Node::Null => true,
            Node::Str(s) => s.is_empty(),
            Node::Map(obj) => {
                let mut live = 0;
                for entry in obj.entries.iter_mut().filter(|e| !e.dropped) {
                    if entry.value.drop_empty() {
                        entry.dropped = true;
                    } else {
                        live += 1;
                    }
                }
                live == 0
            }
            Node::List(items) => {
                items.retain_mut(|item| !item.drop_empty());
                items.is_empty()
            }
            Node::Bool(_) | Node::Num(_) => false,
        }
    }

    /// The value as `_source` JSON (dropped entries left out, source key order).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Null => Value::Null,
            Node::Bool(b) => Value::Bool(*b),
            Node::Num(Num::U64(n)) => Value::from(*n),
            Node::Num(Num::I64(n)) => Value::from(*n),
            Node::Num(Num::F64(n)) => Value::from(*n),
            Node::Str(s) => Value::String(s.to_string()),
            Node::List(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Node::Map(obj) => Value::Object(
                obj.live()
                    .map(|(k, v)| (k.to_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// A short name of the JSON type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "null",
            Node::Bool(_) => "a boolean",
            Node::Num(_) => "a number",
            Node::Str(_) => "a string",
            Node::List(_) => "an array",
            Node::Map(_) => "an object",
        }
    }
}

/// Parse one record's JSON text.
pub fn parse(bytes: &[u8]) -> Result<Node<'_>, serde_json::Error> {
    from_json(bytes)
}

/// Deserialize JSON text, checking its UTF-8 once for the whole text rather than string by
/// string (serde_json's slice reader checks each string; its str reader trusts them). Text
/// that is not UTF-8 goes through the slice reader, for its error and position.
pub fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(NodeVisitor)
    }
}

/// A string that borrows from the input unless it had escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_str(NodeVisitor)
            .and_then(|n| match n {
                Node::Str(s) => Ok(Text(s)),
                other => Err(de::Error::custom(format!(
                    "expected a string key, found {}",
                    other.kind()
                ))),
            })
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Num(Num::U64(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Num(Num::I64(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Node::Num(Num::F64(v)))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::List(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut entries = Vec::new();
        while let Some(Text(key)) = map.next_key()? {
            let value = map.next_value()?;
            entries.push(Entry {
                key,
                value,
                dropped: false,
            });
        }
        Ok(Node::Map(Obj { entries }))
    }
}
