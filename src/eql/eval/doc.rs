//! Reading a field out of a JSON document the way Elasticsearch's `fields` retrieval sees it:
//! `a.b` names the same field whether written as nested objects or as a dotted key, arrays
//! (also arrays of objects) contribute each element, and nulls and objects are not values.

use serde_json::Value as Json;

/// Objects up to this size are searched key by key rather than by hashing.
const SCAN_KEYS: usize = 24;

/// Call `f` with every scalar stored under the dotted `path` of `doc`, in document order.
pub(crate) fn each_value<'v>(doc: &'v Json, path: &str, f: &mut dyn FnMut(&'v Json)) {
    match doc {
        Json::Array(items) => {
            for item in items {
                each_value(item, path, f);
            }
        }
        // Documents' objects are small: one pass over the keys, most rejected on their first
        // byte, costs less than hashing every prefix of the path (below).
        Json::Object(map) if map.len() <= SCAN_KEYS => {
            let mut first: Option<(usize, &'v Json)> = None;
            let mut more: Vec<(usize, &'v Json)> = Vec::new();
            for (key, child) in map {
                if key
                    .as_bytes()
                    .first()
                    .is_some_and(|b| Some(b) != path.as_bytes().first())
                {
                    continue;
                }
                let Some(rest) = path.strip_prefix(key.as_str()) else {
                    continue;
                };
                if !(rest.is_empty() || rest.starts_with('.')) {
                    continue;
                }
                match first {
                    None => first = Some((key.len(), child)),
                    Some(_) => more.push((key.len(), child)),
                }
            }
            let visit = |(len, child): (usize, &'v Json)| {
                if len == path.len() {
                    leaves(child, f);
                } else {
                    each_value(child, &path[len + 1..], f);
                }
            };
            if more.is_empty() {
                first.into_iter().for_each(visit);
            } else {
                // Several keys are prefixes of the path (`a` and `a.b` both stored): shorter
                // first, the order of the lookup below.
                more.extend(first);
                more.sort_by_key(|(len, _)| *len);
                more.into_iter().for_each(visit);
            }
        }
        Json::Object(map) => {
            // Try each prefix of the path that ends on a segment boundary as a key: `a.b.c` may
            // be stored as {"a": {"b.c": ..}}, {"a.b": {"c": ..}} or {"a.b.c": ..}.
            let mut from = 0;
            loop {
                let end = path[from..].find('.').map_or(path.len(), |i| from + i);
                if let Some(child) = map.get(&path[..end]) {
                    if end == path.len() {
                        leaves(child, f);
                    } else {
                        each_value(child, &path[end + 1..], f);
                    }
                }
                if end == path.len() {
                    return;
                }
                from = end + 1;
            }
        }
        _ => {}
    }
}

fn leaves<'v>(value: &'v Json, f: &mut dyn FnMut(&'v Json)) {
    match value {
        Json::Array(items) => {
            for item in items {
                leaves(item, f);
            }
        }
        Json::Null | Json::Object(_) => {}
        scalar => f(scalar),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get(doc: &Json, path: &str) -> Vec<Json> {
        let mut out = Vec::new();
        each_value(doc, path, &mut |value| out.push(value.clone()));
        out
    }

    #[test]
    fn dotted_keys_and_nested_objects_are_the_same_field() {
        let nested = json!({"process": {"name": "cmd.exe"}});
        let dotted = json!({"process.name": "cmd.exe"});
        let mixed = json!({"a": {"b.c": 1}, "a.b": {"c": 2}});
        assert_eq!(get(&nested, "process.name"), [json!("cmd.exe")]);
        assert_eq!(get(&dotted, "process.name"), [json!("cmd.exe")]);
        assert_eq!(get(&mixed, "a.b.c"), [json!(1), json!(2)]);
        assert!(get(&nested, "process.nam").is_empty());
        // Past `SCAN_KEYS` keys, the same answers by lookup.
        let mut wide = mixed.clone();
        for i in 0..SCAN_KEYS {
            wide[format!("k{i}")] = json!(i);
        }
        assert_eq!(get(&wide, "a.b.c"), [json!(1), json!(2)]);
        let reversed = json!({"a.b": {"c": 2}, "a": {"b.c": 1}, "": {"x": 3}});
        assert_eq!(get(&reversed, "a.b.c"), [json!(1), json!(2)]);
        assert_eq!(get(&reversed, ".x"), [json!(3)]);
    }

    #[test]
    fn arrays_flatten_and_nulls_and_objects_are_not_values() {
        let doc = json!({"a": [{"b": 1}, {"b": [2, null]}], "o": {"x": 1}, "n": null});
        assert_eq!(get(&doc, "a.b"), [json!(1), json!(2)]);
        assert!(get(&doc, "o").is_empty());
        assert!(get(&doc, "n").is_empty());
    }
}
