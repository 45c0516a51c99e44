//! Documents prepared for many matchers: the values of every field the matchers read, looked up
//! once and copied into one compact block.
//!
//! A `serde_json::Value` tree scatters a document over dozens of heap blocks: finding
//! `event.provider` follows the root map, the key bytes, the inner map and the value bytes, and
//! each step is a cache miss when the document is not in cache. When several rules read the same
//! few fields of each document (a scan, or many documents kept in memory and matched later), it
//! pays to resolve those paths once per document into a [`Prepared`] block and let every
//! matcher read values straight from it. [`FieldSlots`] numbers the fields the matchers read;
//! matchers compiled with [`Matcher::with_slots`](super::Matcher::with_slots) refer to values by
//! that number.

use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use serde_json::{Number, Value as Json};

use super::doc;
use super::leaf::Leaf;

/// Identifies a `FieldSlots`, so that a matcher never reads a block prepared for other slots.
static NEXT_SLOTS_ID: AtomicU64 = AtomicU64::new(1);

/// The fields (dotted paths from the document root) that a set of matchers reads, each with a
/// slot number.
#[derive(Debug)]
pub struct FieldSlots {
    id: u64,
    paths: Vec<String>,
    index: FxHashMap<String, u32>,
}

impl Default for FieldSlots {
    fn default() -> Self {
        FieldSlots {
            id: NEXT_SLOTS_ID.fetch_add(1, Ordering::Relaxed),
            paths: Vec::new(),
            index: FxHashMap::default(),
        }
    }
}

impl FieldSlots {
    pub fn new() -> Self {
        Self::default()
    }

    /// The number of distinct fields read.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// The fields, in slot order.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.paths.iter().map(String::as_str)
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    /// The slot of `path`, added if new; `None` once slot numbers run out (that field is then
    /// read from the document).
    pub(super) fn slot(&mut self, path: &str) -> Option<u32> {
        if let Some(slot) = self.index.get(path) {
            return Some(*slot);
        }
        let slot = u32::try_from(self.paths.len()).ok()?;
        self.paths.push(path.to_string());
        self.index.insert(path.to_string(), slot);
        Some(slot)
    }

    /// Look up every field of `doc` into a new block.
    pub fn prepare<'d>(&self, doc: &'d Json) -> Prepared<'d> {
        self.prepare_in(PrepareBuffer::default(), doc)
    }

    /// Look up every field of `doc` into `buffer` (from [`Prepared::into_buffer`]): once it
    /// has grown to a document's size, preparing the next document allocates nothing.
    pub fn prepare_in<'d>(&self, buffer: PrepareBuffer, doc: &'d Json) -> Prepared<'d> {
        let PrepareBuffer {
            mut ends,
            mut values,
            mut text,
        } = buffer;
        ends.clear();
        values.clear();
        text.clear();
        let mut fits = true;
        for path in &self.paths {
            doc::any_value(doc, path, &mut |v| {
                match store(v, &mut text) {
                    Some(stored) => values.push(stored),
                    None => fits = false,
                }
                false
            });
            match u32::try_from(values.len()) {
                Ok(end) => ends.push(end),
                Err(_) => fits = false,
            }
        }
        Prepared {
            json: doc,
            // A block whose offsets would not fit is never read: matchers read the document.
            slots_id: if fits { self.id } else { 0 },
            buffer: PrepareBuffer { ends, values, text },
        }
    }
}

/// A value copied out of the document. Strings live in `Prepared::text`.
#[derive(Debug, Clone)]
enum Stored {
    Null,
    Bool(bool),
    Num(Number),
    Str { start: u32, end: u32 },
    Composite { has_value: bool },
}

/// The storage of a [`Prepared`] block, kept to prepare the next document in.
#[derive(Debug, Clone, Default)]
pub struct PrepareBuffer {
    /// Where each slot's values end in `values` (they start where the previous slot's end).
    ends: Vec<u32>,
    values: Vec<Stored>,
    text: String,
}

/// A document with the values of its [`FieldSlots`] fields resolved (arrays flattened, dotted
/// keys and nested objects merged, as for [`Matcher::matches`](super::Matcher::matches)).
/// Matching a `Prepared` gives the same answer as matching the document itself.
#[derive(Debug, Clone)]
pub struct Prepared<'d> {
    json: &'d Json,
    slots_id: u64,
    buffer: PrepareBuffer,
}

impl<'d> Prepared<'d> {
    /// The document itself (read for nested groups, field-name patterns and free text).
    pub fn json(&self) -> &'d Json {
        self.json
    }

    /// Give the storage back, to prepare another document with.
    pub fn into_buffer(self) -> PrepareBuffer {
        self.buffer
    }

    /// The values of `slot`, or `None` if this block was not prepared for those slots (the
    /// caller then reads the document).
    pub(super) fn slot(&self, slots_id: u64, slot: u32) -> Option<impl Iterator<Item = Leaf<'_>>> {
        if slots_id != self.slots_id {
            return None;
        }
        let PrepareBuffer { ends, values, text } = &self.buffer;
        let slot = slot as usize;
        let end = *ends.get(slot)? as usize;
        let start = match slot.checked_sub(1) {
            Some(previous) => ends[previous] as usize,
            None => 0,
        };
        Some(values[start..end].iter().map(|v| match v {
            Stored::Null => Leaf::Null,
            Stored::Bool(b) => Leaf::Bool(*b),
            Stored::Num(n) => Leaf::Num(n),
            Stored::Str { start, end } => Leaf::Str(&text[*start as usize..*end as usize]),
            Stored::Composite { has_value } => Leaf::Composite {
                has_value: *has_value,
            },
        }))
    }
}

/// `None` if the text block would outgrow 32-bit offsets.
fn store(value: &Json, text: &mut String) -> Option<Stored> {
    Some(match Leaf::of(value) {
        Leaf::Null => Stored::Null,
        Leaf::Bool(b) => Stored::Bool(b),
        Leaf::Num(n) => Stored::Num(n.clone()),
        Leaf::Str(s) => {
            let start = u32::try_from(text.len()).ok()?;
            let end = u32::try_from(text.len() + s.len()).ok()?;
            text.push_str(s);
            Stored::Str { start, end }
        }
        Leaf::Composite { has_value } => Stored::Composite { has_value },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kql::{MatchOptions, Matcher, parse};
    use serde_json::json;

    fn matcher(query: &str, slots: &mut FieldSlots) -> Matcher {
        let query = parse(query).expect("test query parses");
        Matcher::with_slots(&query, None, &MatchOptions::default(), slots)
    }

    #[test]
    fn matchers_share_slots_and_read_flattened_copies() {
        let mut slots = FieldSlots::new();
        let a = matcher(
            "event.action: Add* and not event.outcome: failure",
            &mut slots,
        );
        let b = matcher(
            "event.action: Publish and tags: (x or 3) and n > 2",
            &mut slots,
        );
        assert_eq!(
            slots.paths().collect::<Vec<_>>(),
            ["event.action", "event.outcome", "tags", "n"]
        );
        let doc = json!({"event": {"action": "AddPermission"}, "event.outcome": "success",
                         "tags": ["a", ["x"], {"y": 1}], "n": 3});
        let block = slots.prepare(&doc);
        assert!(a.matches_prepared(&block) && a.matches(&doc));
        assert!(!b.matches_prepared(&block) && !b.matches(&doc));
        let doc = json!({"event": {"action": "Publish"}, "tags": [1, 3], "n": [1, "5"]});
        let block = slots.prepare_in(block.into_buffer(), &doc);
        assert!(b.matches_prepared(&block));
        assert!(!a.matches_prepared(&block));
    }

    #[test]
    fn nested_groups_and_free_text_read_the_document() {
        let mut slots = FieldSlots::new();
        let m = matcher("items: { name: x and size > 1 } and error", &mut slots);
        assert_eq!(slots.len(), 0);
        let doc = json!({"items": [{"name": "x", "size": 2}], "message": "an error"});
        assert!(m.matches_prepared(&slots.prepare(&doc)));
        let doc = json!({"items": [{"name": "x"}, {"size": 2}], "message": "an error"});
        assert!(!m.matches_prepared(&slots.prepare(&doc)));
    }

    #[test]
    fn a_matcher_compiled_after_preparing_reads_the_document() {
        let mut slots = FieldSlots::new();
        let first = matcher("a: 1", &mut slots);
        let doc = json!({"a": 1, "b": 2});
        let block = slots.prepare(&doc);
        let second = matcher("b: 2", &mut slots);
        assert!(first.matches_prepared(&block));
        assert!(
            second.matches_prepared(&block),
            "slot 1 was not in the block"
        );
        assert!(
            Matcher::new(&parse("b: 2").unwrap(), None, &MatchOptions::default())
                .matches_prepared(&block)
        );
    }
}
