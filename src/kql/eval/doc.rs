//! Reading fields out of JSON documents the way Elasticsearch indexes them: `a.b` names the
//! same field whether written as nested objects or as a dotted key, and arrays (also arrays of
//! objects) contribute every element.

use serde_json::Value as Json;

/// Up to this many keys, comparing every key with the path beats hashing each candidate prefix.
const LINEAR_SCAN_MAX: usize = 24;

/// Call `hit` on each value stored under the dotted `path` of `doc` (array elements one by one)
/// until it returns true. No allocation: candidate keys are slices of `path`.
pub(crate) fn any_value<'v>(
    doc: &'v Json,
    path: &str,
    hit: &mut dyn FnMut(&'v Json) -> bool,
) -> bool {
    match doc {
        Json::Array(items) => items.iter().any(|item| any_value(item, path, hit)),
        Json::Object(map) if map.len() <= LINEAR_SCAN_MAX => {
            // Small objects (nearly all of them): one pass over the keys, no hashing.
            for (key, child) in map {
                // The key's length sits in the entry; its bytes are elsewhere on the heap.
                // Documents rarely fit in cache, so look at the bytes only when the length
                // lands on a segment boundary of the path.
                let on_boundary = match path.as_bytes().get(key.len()) {
                    Some(b) => *b == b'.',
                    None => key.len() == path.len(),
                };
                if !on_boundary {
                    continue;
                }
                let Some(rest) = path.strip_prefix(key.as_str()) else {
                    continue;
                };
                let found = if rest.is_empty() {
                    any_leaf(child, hit)
                } else if let Some(sub) = rest.strip_prefix('.') {
                    any_value(child, sub, hit)
                } else {
                    continue;
                };
                if found {
                    return true;
                }
            }
            false
        }
        Json::Object(map) => {
            let mut from = 0;
            loop {
                let end = path[from..].find('.').map_or(path.len(), |i| from + i);
                if let Some(child) = map.get(&path[..end]) {
                    let found = if end == path.len() {
                        any_leaf(child, hit)
                    } else {
                        any_value(child, &path[end + 1..], hit)
                    };
                    if found {
                        return true;
                    }
                }
                if end == path.len() {
                    return false;
                }
                from = end + 1;
            }
        }
        _ => false,
    }
}

/// `hit` on a value, or on each element of an array (flattened).
pub(crate) fn any_leaf<'v>(value: &'v Json, hit: &mut dyn FnMut(&'v Json) -> bool) -> bool {
    match value {
        Json::Array(items) => items.iter().any(|item| any_leaf(item, hit)),
        other => hit(other),
    }
}

/// Every scalar in the document with its dotted path, until `hit` returns true. `path` is a
/// scratch buffer (only field-name patterns and free text need this walk).
pub(crate) fn any_scalar_with_path<'v>(
    value: &'v Json,
    path: &mut String,
    hit: &mut dyn FnMut(&str, &'v Json) -> bool,
) -> bool {
    match value {
        Json::Array(items) => items
            .iter()
            .any(|item| any_scalar_with_path(item, path, hit)),
        Json::Object(map) => {
            for (key, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                let found = any_scalar_with_path(child, path, hit);
                path.truncate(len);
                if found {
                    return true;
                }
            }
            false
        }
        Json::Null => false,
        scalar => hit(path, scalar),
    }
}

/// Elasticsearch `exists`: at least one non-null value (objects count through their leaves).
pub(crate) fn has_value(value: &Json) -> bool {
    match value {
        Json::Null => false,
        Json::Array(items) => items.iter().any(has_value),
        Json::Object(map) => map.values().any(has_value),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn values(doc: &Json, path: &str) -> Vec<Json> {
        let mut out = Vec::new();
        any_value(doc, path, &mut |v| {
            out.push(v.clone());
            false
        });
        out
    }

    #[test]
    fn dotted_keys_and_nested_objects_are_the_same_field() {
        let a = json!({"event": {"action": "x"}});
        let b = json!({"event.action": "x"});
        let c = json!({"aws": {"cloudtrail.user_identity": {"type": "Root"}}});
        assert_eq!(values(&a, "event.action"), [json!("x")]);
        assert_eq!(values(&b, "event.action"), [json!("x")]);
        assert_eq!(
            values(&c, "aws.cloudtrail.user_identity.type"),
            [json!("Root")]
        );
        assert!(values(&a, "event").len() == 1 && values(&a, "event.act").is_empty());
    }

    #[test]
    fn large_objects_resolve_dotted_keys_too() {
        let mut map = serde_json::Map::new();
        for i in 0..40 {
            map.insert(format!("k{i}"), json!(i));
        }
        map.insert("a.b".into(), json!("dotted"));
        map.insert("a".into(), json!({"b": "nested"}));
        let doc = Json::Object(map);
        assert_eq!(values(&doc, "a.b"), [json!("nested"), json!("dotted")]);
        assert_eq!(values(&doc, "k39"), [json!(39)]);
    }

    #[test]
    fn arrays_contribute_each_element_including_arrays_of_objects() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, 3]}], "tags": ["x", ["y"]]});
        assert_eq!(values(&doc, "a.b"), [json!(1), json!(2), json!(3)]);
        assert_eq!(values(&doc, "tags"), [json!("x"), json!("y")]);
    }

    #[test]
    fn exists_ignores_nulls_and_empty_containers() {
        assert!(!has_value(&json!(null)));
        assert!(!has_value(&json!([])));
        assert!(!has_value(&json!([null])));
        assert!(!has_value(&json!({})));
        assert!(has_value(&json!({"a": [null, 0]})));
        assert!(has_value(&json!("")));
    }

    #[test]
    fn scalar_walk_reports_dotted_paths() {
        let doc = json!({"a": {"b": 1, "c": [true]}, "d.e": "x"});
        let mut seen = Vec::new();
        any_scalar_with_path(&doc, &mut String::new(), &mut |p, v| {
            seen.push(format!("{p}={v}"));
            false
        });
        assert_eq!(seen, ["a.b=1", "a.c=true", "d.e=\"x\""]);
    }
}
