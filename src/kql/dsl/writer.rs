//! Where the translator writes its output: straight into JSON text ([`JsonText`], what a
//! request body needs) or into a `serde_json::Value` ([`ValueBuilder`]).
//!
//! A query translates to many small objects with fixed keys. Building an intermediate tree of
//! them, then serialising it, was most of the translation time; writing events (begin object,
//! key, string, ...) into a growing buffer costs next to nothing per object.

use serde_json::{Map, Value as Json};

/// The sink of the translator's output, written in document order. A key is followed by
/// exactly one value; `begin_*` and `end_*` nest properly.
pub(crate) trait DslWriter {
    fn begin_object(&mut self);
    fn end_object(&mut self);
    fn begin_array(&mut self);
    fn end_array(&mut self);
    /// One of the translator's own keys (`bool`, `should`, ...): plain ASCII, never escaped.
    fn key(&mut self, key: &'static str);
    /// A key from the query (a field name).
    fn field_key(&mut self, key: &str);
    fn string(&mut self, value: &str);
    fn bool(&mut self, value: bool);
    fn null(&mut self);
    fn number(&mut self, value: i64);
    /// A value taken as it is (filter clauses written by users).
    fn json(&mut self, value: &Json);

    /// `{"key":` : an object with one entry whose value comes next; close with `end_object`.
    fn begin_entry(&mut self, key: &'static str) {
        self.begin_object();
        self.key(key);
    }

    /// [`DslWriter::begin_entry`] for a field name.
    fn begin_field_entry(&mut self, key: &str) {
        self.begin_object();
        self.field_key(key);
    }
}

/// JSON text under construction. Separators are implied: a comma goes before a key or a value
/// unless the text so far ends with `{`, `[` or `:` (the only places where nothing comes first).
/// `serde_json` writes strings and values, so the text is byte for byte what serialising the
/// equivalent `Value` gives.
#[derive(Debug, Default)]
pub(crate) struct JsonText {
    /// A `String` rather than bytes: everything written is whole UTF-8, and the finished text
    /// is handed over without a validation pass.
    buf: String,
}

impl JsonText {
    pub fn with_capacity(capacity: usize) -> Self {
        JsonText {
            buf: String::with_capacity(capacity),
        }
    }

    fn separate(&mut self) {
        if !matches!(self.buf.as_bytes().last(), None | Some(b'{' | b'[' | b':')) {
            self.buf.push(',');
        }
    }

    /// Serialise a value after a separator (strings that need escaping and users' filter
    /// clauses: rare). Every value written here is representable in JSON, so this cannot fail.
    fn write_value<T: serde::Serialize + ?Sized>(&mut self, value: &T) {
        self.separate();
        if let Ok(text) = serde_json::to_string(value) {
            self.buf.push_str(&text);
        }
    }

    pub fn into_string(self) -> String {
        self.buf
    }
}

impl DslWriter for JsonText {
    fn begin_object(&mut self) {
        self.separate();
        self.buf.push('{');
    }

    fn end_object(&mut self) {
        self.buf.push('}');
    }

    fn begin_array(&mut self) {
        self.separate();
        self.buf.push('[');
    }

    fn end_array(&mut self) {
        self.buf.push(']');
    }

    fn key(&mut self, key: &'static str) {
        self.separate();
        self.buf.push('"');
        self.buf.push_str(key);
        self.buf.push_str("\":");
    }

    fn field_key(&mut self, key: &str) {
        self.string(key);
        self.buf.push(':');
    }

    fn string(&mut self, value: &str) {
        // Nearly every string here needs no escaping; copy those as they are. (No early exit,
        // so the test compiles to vector instructions.)
        let plain = !value.bytes().fold(false, |bad, b| {
            bad | (b < 0x20) | (b == b'"') | (b == b'\\')
        });
        if plain {
            self.separate();
            self.buf.push('"');
            self.buf.push_str(value);
            self.buf.push('"');
        } else {
            self.write_value(value);
        }
    }

    fn bool(&mut self, value: bool) {
        self.separate();
        self.buf.push_str(if value { "true" } else { "false" });
    }

    fn null(&mut self) {
        self.separate();
        self.buf.push_str("null");
    }

    fn number(&mut self, value: i64) {
        use std::fmt::Write;
        self.separate();
        // Formatting into a `String` cannot fail.
        let _ = write!(self.buf, "{value}");
    }

    fn json(&mut self, value: &Json) {
        self.write_value(value);
    }
}

/// A `serde_json::Value` under construction: the open containers on a stack.
#[derive(Debug, Default)]
pub(crate) struct ValueBuilder {
    open: Vec<Open>,
    done: Option<Json>,
}

#[derive(Debug)]
enum Open {
    Object(Map<String, Json>, Option<String>),
    Array(Vec<Json>),
}

impl ValueBuilder {
    /// Place a finished value in the innermost open container (or make it the result).
    fn put(&mut self, value: Json) {
        match self.open.last_mut() {
            Some(Open::Object(map, key)) => {
                map.insert(key.take().unwrap_or_default(), value);
            }
            Some(Open::Array(items)) => items.push(value),
            None => self.done = Some(value),
        }
    }

    pub fn finish(self) -> Json {
        self.done.unwrap_or(Json::Null)
    }
}

impl DslWriter for ValueBuilder {
    fn begin_object(&mut self) {
        self.open.push(Open::Object(Map::new(), None));
    }

    fn end_object(&mut self) {
        if let Some(Open::Object(map, _)) = self.open.pop() {
            self.put(Json::Object(map));
        }
    }

    fn begin_array(&mut self) {
        self.open.push(Open::Array(Vec::new()));
    }

    fn end_array(&mut self) {
        if let Some(Open::Array(items)) = self.open.pop() {
            self.put(Json::Array(items));
        }
    }

    fn key(&mut self, key: &'static str) {
        self.field_key(key);
    }

    fn field_key(&mut self, key: &str) {
        if let Some(Open::Object(_, pending)) = self.open.last_mut() {
            *pending = Some(key.to_string());
        }
    }

    fn string(&mut self, value: &str) {
        self.put(Json::String(value.to_string()));
    }

    fn bool(&mut self, value: bool) {
        self.put(Json::Bool(value));
    }

    fn null(&mut self) {
        self.put(Json::Null);
    }

    fn number(&mut self, value: i64) {
        self.put(Json::from(value));
    }

    fn json(&mut self, value: &Json) {
        self.put(value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write_sample(out: &mut impl DslWriter) {
        out.begin_object();
        out.key("a");
        out.begin_array();
        out.number(1);
        out.null();
        out.bool(true);
        out.begin_object();
        out.end_object();
        out.begin_array();
        out.end_array();
        out.string("");
        out.end_array();
        out.key("b");
        out.begin_field_entry("f.x");
        out.string("v\"\\\n\u{1}:");
        out.end_object();
        out.key("c");
        out.json(&json!({"k": [1, "x"]}));
        out.field_key("\"q\"");
        out.bool(false);
        out.end_object();
    }

    #[test]
    fn text_and_value_agree_with_serde_json() {
        let expected = json!({"a": [1, null, true, {}, [], ""], "b": {"f.x": "v\"\\\n\u{1}:"},
                              "c": {"k": [1, "x"]}, "\"q\"": false});
        let mut text = JsonText::default();
        write_sample(&mut text);
        assert_eq!(text.into_string(), expected.to_string());
        let mut value = ValueBuilder::default();
        write_sample(&mut value);
        assert_eq!(value.finish(), expected);
    }
}
