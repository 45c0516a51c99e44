//! The document the normalizer builds: a JSON object addressed by dotted paths, with the
//! ingest pipeline's `set` and `append` semantics.

use serde_json::{Map, Value};

use super::fields::FieldMask;

/// A JSON object under construction, addressed by dotted paths; fields outside its mask are
/// not written.
///
/// A whole document nests its objects (`{"event": {"action": ..}}`), as Elasticsearch's
/// `_source` would. A partial one (some fields left out) is only read by the scan's matchers,
/// which read dotted keys as Elasticsearch does, so it stays flat (`{"event.action": ..}`):
/// one map instead of one per object level, which is most of the cost of building it.
pub(super) struct Doc(Map<String, Value>, FieldMask);

impl Doc {
    pub(super) fn new(mask: FieldMask) -> Doc {
        // A flat document's map is sized once: growing it insert by insert was a tenth of
        // building it.
        let capacity = if mask.is_all() { 0 } else { mask.count() };
        Doc(Map::with_capacity(capacity), mask)
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
        if !self.1.is_all() {
            self.0.insert(path.to_string(), value);
            return;
        }
        let mut map = &mut self.0;
        let mut parts = path.split('.').peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                map.insert(part.to_string(), value);
                return;
            }
            // Most parents already exist: look them up before allocating a key. Replacing a
            // non-object keeps the key's place, as the processor does.
            if !matches!(map.get(part), Some(Value::Object(_))) {
                map.insert(part.to_string(), Value::Object(Map::new()));
            }
            let Some(Value::Object(inner)) = map.get_mut(part) else {
                return;
            };
            map = inner;
        }
    }

    pub(super) fn get(&self, path: &str) -> Option<&Value> {
        if !self.1.is_all() {
            return self.0.get(path);
        }
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
