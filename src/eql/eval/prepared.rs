//! Documents prepared for many EQL matchers: the values of every field they read, looked up
//! once per document and copied into one compact block.
//!
//! Reading `event.action` from a `serde_json::Value` tree means comparing keys in a map at each
//! level, for every matcher and every stage that reads it. When several rules and stages test
//! the same documents (a scan, a sequence's stages), resolving their fields once into a
//! [`Prepared`] block and letting every matcher read values by slot number is several times
//! faster. Matchers built with [`Matcher::with_slots`](super::Matcher::with_slots) (or
//! [`SequenceMatcher::with_slots`](crate::eql::SequenceMatcher::with_slots)) read such blocks;
//! a block prepared for other slots, or a slot added after it was prepared, is read from the
//! document instead, so the answer never depends on which path was taken.
//!
//! The slot registry mirrors `kql`'s (`kql/eval/prepared.rs`): the language modules import
//! nothing of each other or of the crate, and what they store differs (EQL keeps scalars as
//! its evaluator's values; KQL keeps composites too, for `field: *`).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;
use serde_json::Value as Json;

use super::{Val, doc};

/// Identifies a `FieldSlots`, so that a matcher never reads a block prepared for other slots.
static NEXT_SLOTS_ID: AtomicU64 = AtomicU64::new(1);

/// The fields (dotted paths) a set of EQL matchers reads, each with a slot number.
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

    /// The slot of `path`, added if new; `None` once slot numbers run out (the field is then
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
    /// has grown to a document's size, preparing the next one allocates nothing.
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
            doc::each_value(doc, path, &mut |v| match store(v, &mut text) {
                Some(stored) => values.push(stored),
                None => fits = false,
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

/// A scalar copied out of the document; strings live in the block's text.
#[derive(Debug, Clone, Copy)]
enum Stored {
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A number that is neither an `i64` nor a finite `f64`: null, as when read from JSON.
    Null,
    Str {
        start: u32,
        end: u32,
    },
}

/// The storage of a [`Prepared`] block, kept to prepare the next document in.
#[derive(Debug, Clone, Default)]
pub struct PrepareBuffer {
    /// Where each slot's values end in `values` (they start where the previous slot's end).
    ends: Vec<u32>,
    values: Vec<Stored>,
    text: String,
}

/// A document with the values of its [`FieldSlots`] fields resolved. Matching a `Prepared`
/// gives the same answer as matching the document itself.
#[derive(Debug, Clone)]
pub struct Prepared<'d> {
    json: &'d Json,
    slots_id: u64,
    buffer: PrepareBuffer,
}

impl<'d> Prepared<'d> {
    /// The document itself.
    pub fn json(&self) -> &'d Json {
        self.json
    }

    /// Give the storage back, to prepare another document with.
    pub fn into_buffer(self) -> PrepareBuffer {
        self.buffer
    }

    /// The values of `slot`, or `None` if this block was not prepared for those slots or
    /// lacks the slot, and the document must be read instead.
    pub(super) fn values<'s>(
        &'s self,
        slots_id: u64,
        slot: u32,
    ) -> Option<impl ExactSizeIterator<Item = Val<'s>>> {
        if slots_id != self.slots_id {
            return None;
        }
        let PrepareBuffer { ends, values, text } = &self.buffer;
        let slot = slot as usize;
        let end = *ends.get(slot)?;
        let start = slot.checked_sub(1).map_or(0, |previous| ends[previous]);
        Some(
            values[start as usize..end as usize]
                .iter()
                .map(move |value| match *value {
                    Stored::Bool(b) => Val::Bool(b),
                    Stored::Int(n) => Val::Int(n),
                    Stored::Float(x) => Val::Float(x),
                    Stored::Null => Val::Null,
                    Stored::Str { start, end } => {
                        Val::Str(Cow::Borrowed(&text[start as usize..end as usize]))
                    }
                }),
        )
    }
}

/// `None` if the text block would outgrow 32-bit offsets.
fn store(value: &Json, text: &mut String) -> Option<Stored> {
    Some(match Val::from_json(value) {
        Val::Bool(b) => Stored::Bool(b),
        Val::Int(n) => Stored::Int(n),
        Val::Float(x) => Stored::Float(x),
        Val::Str(s) => {
            let start = u32::try_from(text.len()).ok()?;
            let end = u32::try_from(text.len() + s.len()).ok()?;
            text.push_str(&s);
            Stored::Str { start, end }
        }
        Val::Null | Val::Many(_) => Stored::Null,
    })
}
