//! The document the normalizer builds: a JSON object addressed by dotted paths, with the
//! ingest pipeline's `set` and `append` semantics.

use serde_json::{Map, Value};

use super::fields::FieldMask;

/// A JSON object under construction, addressed by dotted paths; fields outside its mask are
/// not written.
pub(super) struct Doc(Map<String, Value>, FieldMask);

impl Doc {
    pub(super) fn new(mask: FieldMask) -> Doc {
        Doc(Map::new(), mask)
    }

    pub(super) fn into_value(self) -> Value {
        Value::Object(self.0)
    }

    /// Whether `path` is written (callers skip computing a value that would be dropped).
    pub(super) fn wants(&self, path: &str) -> bool {
        self.1.wants(path)
    }

    pub(super) fn set(&mut self, path: &str, value: Value) {
        if !self.1.wants(path) {
            return;
        }
        let mut map = &mut self.0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), value);
                return;
            }
            let slot = map
                .entry(part.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(inner) = slot else { return };
            map = inner;
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<&Value> {
        let mut parts = path.split('.');
        let first = self.0.get(parts.next()?)?;
        parts.try_fold(first, |v, p| v.get(p))
    }

    /// The `append` processor: add to a list, optionally skipping values already there.
    pub(super) fn append(&mut self, path: &str, value: Value, allow_duplicates: bool) {
        if !self.1.wants(path) {
            return;
        }
        let list = match self.get(path) {
            Some(Value::Array(items)) => {
                if !allow_duplicates && items.contains(&value) {
                    return;
                }
                let mut items = items.clone();
                items.push(value);
                items
            }
            Some(other) => {
                if !allow_duplicates && *other == value {
                    return;
                }
                vec![other.clone(), value]
            }
            None => vec![value],
        };
        self.set(path, Value::Array(list));
    }
}
