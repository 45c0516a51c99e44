//! Sequences as a streaming matcher: events go in one at a time in timestamp order, completed
//! sequences come out. For each stage and join key at most one sequence is pending, the most
//! recent one (a new first-stage match for a key replaces the pending one, as a later start
//! can only make a shorter sequence); `until` drops every pending sequence of its key, and a
//! sequence that would last longer than `maxspan` is dropped.
//!
//! Missing events (`![...]`), as Elasticsearch's own tests of them define the result: one
//! between two stages drops the pending sequence of its key when it occurs in that gap; the
//! ones before the first stage and after the last count together: a sequence is dropped when
//! every such stage has an event of its key, in order, and the whole, those events included,
//! fits in `maxspan`. A sequence with trailing missing stages is held until `maxspan` after
//! its start has passed (or [`SequenceMatcher::finish`]), so results can come out later than
//! their last event.

use std::collections::{HashMap, VecDeque};

use serde_json::Value as Json;

use super::ast::{Expr, Sequence, Stage};
use super::eval::{Document, FieldSlots, MatchOptions, Matcher, Prepared};

/// A completed sequence: the ids of its events, first stage first, its join key values, and
/// the positions (among all its stages, `runs` counted out) of the missing events, for which
/// no event stands.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceHit {
    pub events: Vec<usize>,
    pub join_keys: Vec<Json>,
    pub missing: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Partial {
    first_nanos: i128,
    events: Vec<usize>,
    keys: Vec<Json>,
}

#[derive(Debug, Clone)]
struct CompiledStage {
    /// The stage's query, with the sequence's join keys and then its own.
    matcher: Matcher,
}

impl CompiledStage {
    fn new(
        shared: &[Expr],
        stage: &Stage,
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Result<Self, regex::Error> {
        let keys: Vec<Expr> = shared.iter().chain(&stage.by).cloned().collect();
        Ok(CompiledStage {
            matcher: Matcher::with_keys(&stage.query, &keys, options, slots)?,
        })
    }

    /// The join key values when `doc` matches this stage; `None` if it does not match or a
    /// key is multi-valued.
    fn matches<D: Document + ?Sized>(&self, doc: &D) -> Option<Vec<Json>> {
        if !self.matcher.matches_doc(doc) {
            return None;
        }
        self.matcher.keys(doc)
    }
}

/// A completed sequence waiting to see whether its trailing missing events occur.
#[derive(Debug, Clone)]
struct Waiting {
    hit: SequenceHit,
    key: String,
    /// After this time nothing can exclude it any more.
    deadline: i128,
    /// How many trailing missing stages have an event so far.
    filled: usize,
}

/// Matches one sequence over a stream of events.
#[derive(Debug, Clone)]
pub struct SequenceMatcher {
    stages: Vec<CompiledStage>,
    until: Option<CompiledStage>,
    maxspan: Option<i128>,
    /// `pending[i]`: sequences that have matched stages `0..=i`, by join key (as JSON text).
    pending: Vec<HashMap<String, Partial>>,
    /// `gaps[i]`: the missing stages between stage `i` and stage `i + 1`.
    gaps: Vec<Vec<CompiledStage>>,
    leading: Vec<CompiledStage>,
    trailing: Vec<CompiledStage>,
    /// Times of the recent events of each leading missing stage, by join key.
    leading_seen: Vec<HashMap<String, VecDeque<i128>>>,
    waiting: Vec<Waiting>,
    missing_positions: Vec<usize>,
}

fn key_text(keys: &[Json]) -> String {
    // A JSON array of the values: distinct values give distinct texts.
    Json::Array(keys.to_vec()).to_string()
}

impl SequenceMatcher {
    pub fn new(sequence: &Sequence, options: &MatchOptions) -> Result<Self, regex::Error> {
        Self::with_slots(sequence, options, &mut FieldSlots::new())
    }

    /// As [`SequenceMatcher::new`], reading field values from documents prepared with `slots`
    /// (see [`SequenceMatcher::push_prepared`]).
    pub fn with_slots(
        sequence: &Sequence,
        options: &MatchOptions,
        slots: &mut FieldSlots,
    ) -> Result<Self, regex::Error> {
        // A stage `with runs=N` is N consecutive stages.
        let expanded: Vec<&Stage> = sequence
            .stages
            .iter()
            .flat_map(|s| std::iter::repeat_n(s, s.runs.max(1) as usize))
            .collect();
        let mut compile = |s: &Stage| CompiledStage::new(&sequence.by, s, options, slots);
        let (mut stages, mut gaps, mut leading, mut trailing) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut missing_positions = Vec::new();
        for (position, stage) in expanded.iter().enumerate() {
            if !stage.missing {
                stages.push(compile(stage)?);
                gaps.push(std::mem::take(&mut trailing));
                continue;
            }
            missing_positions.push(position);
            if stages.is_empty() {
                leading.push(compile(stage)?);
            } else {
                trailing.push(compile(stage)?);
            }
        }
        // `gaps[0]` collected nothing (the leading ones went apart); shift so that
        // `gaps[i]` is what lies between stage `i` and stage `i + 1`.
        if !gaps.is_empty() {
            gaps.remove(0);
        }
        let until = match &sequence.until {
            Some(s) => Some(compile(s)?),
            None => None,
        };
        Ok(SequenceMatcher {
            pending: vec![HashMap::new(); stages.len()],
            leading_seen: vec![HashMap::new(); leading.len()],
            stages,
            until,
            maxspan: sequence.maxspan.as_ref().map(|m| m.nanos()),
            gaps,
            leading,
            trailing,
            waiting: Vec::new(),
            missing_positions,
        })
    }

    /// Feed the next event (`id` is the caller's handle for it, `nanos` its time, never
    /// earlier than the previous event's). Returns the sequences now known to be complete.
    pub fn push(&mut self, id: usize, nanos: i128, doc: &Json) -> Vec<SequenceHit> {
        self.push_doc(id, nanos, doc)
    }

    /// As [`SequenceMatcher::push`], on a prepared document.
    pub fn push_prepared(
        &mut self,
        id: usize,
        nanos: i128,
        doc: &Prepared<'_>,
    ) -> Vec<SequenceHit> {
        self.push_doc(id, nanos, doc)
    }

    fn push_doc<D: Document + ?Sized>(
        &mut self,
        id: usize,
        nanos: i128,
        doc: &D,
    ) -> Vec<SequenceHit> {
        let mut done = self.release(Some(nanos));
        if let Some(keys) = self.until.as_ref().and_then(|u| u.matches(doc)) {
            let key = key_text(&keys);
            for pending in &mut self.pending {
                pending.remove(&key);
            }
        }
        self.missing_events(nanos, doc);
        // A parsed sequence has a stage or more; a hand-built one may have none.
        let Some(last) = self.stages.len().checked_sub(1) else {
            return done;
        };
        // Last stage first, so that an event matching several stages does not advance the
        // sequence it has just advanced.
        for i in (0..self.stages.len()).rev() {
            let Some(keys) = self.stages[i].matches(doc) else {
                continue;
            };
            let key = key_text(&keys);
            let partial = if i == 0 {
                Partial {
                    first_nanos: nanos,
                    events: vec![id],
                    keys,
                }
            } else {
                let Some(mut partial) = self.pending[i - 1].remove(&key) else {
                    continue;
                };
                if self
                    .maxspan
                    .is_some_and(|span| nanos - partial.first_nanos > span)
                {
                    continue;
                }
                partial.events.push(id);
                partial
            };
            if i == last {
                done.extend(self.completed(partial, key, nanos));
            } else {
                self.pending[i].insert(key, partial);
            }
        }
        done
    }

    /// The end of the input: the sequences still waiting on trailing missing events.
    pub fn finish(&mut self) -> Vec<SequenceHit> {
        self.release(None)
    }

    /// Record what a missing stage's event means: it drops the pending sequences of its gap,
    /// is remembered for leading stages, and fills the trailing stages of waiting ones.
    fn missing_events<D: Document + ?Sized>(&mut self, nanos: i128, doc: &D) {
        for (i, gap) in self.gaps.iter().enumerate() {
            for stage in gap {
                if let Some(keys) = stage.matches(doc) {
                    self.pending[i].remove(&key_text(&keys));
                }
            }
        }
        let span = self.maxspan.unwrap_or(i128::MAX);
        for (stage, seen) in self.leading.iter().zip(&mut self.leading_seen) {
            for times in seen.values_mut() {
                while times.front().is_some_and(|&t| nanos - t > span) {
                    times.pop_front();
                }
            }
            seen.retain(|_, times| !times.is_empty());
            if let Some(keys) = stage.matches(doc) {
                seen.entry(key_text(&keys)).or_default().push_back(nanos);
            }
        }
        if self.trailing.is_empty() || self.waiting.is_empty() {
            return;
        }
        let trailing = &self.trailing;
        self.waiting.retain_mut(|w| {
            let Some(keys) = trailing[w.filled].matches(doc) else {
                return true;
            };
            if key_text(&keys) != w.key {
                return true;
            }
            w.filled += 1;
            w.filled < trailing.len()
        });
    }

    /// A sequence whose stages all matched: out now, dropped, or held for trailing stages.
    fn completed(&mut self, partial: Partial, key: String, nanos: i128) -> Option<SequenceHit> {
        let hit = SequenceHit {
            events: partial.events,
            join_keys: partial.keys,
            missing: self.missing_positions.clone(),
        };
        if self.leading.is_empty() && self.trailing.is_empty() {
            return Some(hit);
        }
        let span = self.maxspan.unwrap_or(i128::MAX);
        let mut start = partial.first_nanos;
        if !self.leading.is_empty() {
            // The latest event of each leading stage before the next: the tightest fit.
            for seen in self.leading_seen.iter().rev() {
                let before = seen
                    .get(&key)
                    .and_then(|times| times.iter().rev().find(|&&t| t < start).copied());
                match before {
                    Some(t) => start = t,
                    // A leading stage without an event: nothing at the edges can drop it.
                    None => return Some(hit),
                }
            }
            if nanos - start > span {
                return Some(hit);
            }
        }
        if self.trailing.is_empty() {
            return None;
        }
        self.waiting.push(Waiting {
            hit,
            key,
            deadline: start.saturating_add(span),
            filled: 0,
        });
        None
    }

    /// The waiting sequences whose time is up at `now` (all of them at the end).
    fn release(&mut self, now: Option<i128>) -> Vec<SequenceHit> {
        if self.waiting.is_empty() {
            return Vec::new();
        }
        let (out, keep): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| now.is_none_or(|now| now > w.deadline));
        self.waiting = keep;
        out.into_iter().map(|w| w.hit).collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::eql::{Body, parse_statement};

    fn run(query: &str, events: &[(i128, Json)]) -> Vec<SequenceHit> {
        let Ok(Body::Sequence(seq)) = parse_statement(query).map(|s| s.body) else {
            panic!("not a sequence: {query}");
        };
        let mut matcher = SequenceMatcher::new(&seq, &MatchOptions::default()).expect("compiles");
        let mut hits: Vec<SequenceHit> = events
            .iter()
            .enumerate()
            .flat_map(|(id, (t, doc))| matcher.push(id, *t, doc))
            .collect();
        hits.extend(matcher.finish());
        // Prepared documents give the same sequences.
        let mut slots = FieldSlots::new();
        let mut prepared = SequenceMatcher::with_slots(&seq, &MatchOptions::default(), &mut slots)
            .expect("compiles");
        let mut again: Vec<SequenceHit> = events
            .iter()
            .enumerate()
            .flat_map(|(id, (t, doc))| prepared.push_prepared(id, *t, &slots.prepare(doc)))
            .collect();
        again.extend(prepared.finish());
        assert_eq!(again, hits, "{query} over prepared documents");
        hits
    }

    fn ev(category: &str, user: &str) -> Json {
        json!({"event": {"category": category}, "user": user})
    }

    #[test]
    fn a_stage_with_runs_takes_that_many_consecutive_matches() {
        let events = [
            (1, json!({"a": 1, "u": "x"})),
            (2, json!({"a": 1, "u": "x"})),
            (3, json!({"b": 1, "u": "x"})),
            (4, json!({"a": 1, "u": "y"})),
            (5, json!({"b": 1, "u": "y"})),
        ];
        let hits = run(
            "sequence by u [any where a == 1] with runs=2 [any where b == 1]",
            &events,
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].events, [0, 1, 2]);
        assert_eq!(hits[0].join_keys, [json!("x")]);
    }

    #[test]
    fn a_missing_stage_with_runs_is_that_many_missing_stages() {
        let events = [
            (1, json!({"a": 1, "u": "x"})),
            (2, json!({"m": 1, "u": "x"})),
            (3, json!({"b": 1, "u": "x"})),
            (10, json!({"a": 1, "u": "y"})),
            (11, json!({"b": 1, "u": "y"})),
        ];
        let written = "sequence by u with maxspan=1s [any where a == 1] ![any where m == 1] with runs=2 [any where b == 1]";
        let spelled = "sequence by u with maxspan=1s [any where a == 1] ![any where m == 1] ![any where m == 1] [any where b == 1]";
        let hits = run(written, &events);
        assert_eq!(hits, run(spelled, &events));
        // `x` saw a missing event in its gap; `y` did not.
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].events, [3, 4]);
        assert_eq!(hits[0].missing, [1, 2]);
    }

    #[test]
    fn stages_join_by_key_in_order() {
        let events = [
            (1, ev("process", "a")),
            (2, ev("process", "b")),
            (3, ev("file", "b")),
            (4, ev("file", "a")),
            (5, ev("file", "a")),
        ];
        let hits = run(
            "sequence by user [process where true] [file where true]",
            &events,
        );
        assert_eq!(
            hits,
            [
                SequenceHit {
                    events: vec![1, 2],
                    join_keys: vec![json!("b")],
                    missing: vec![],
                },
                SequenceHit {
                    events: vec![0, 3],
                    join_keys: vec![json!("a")],
                    missing: vec![],
                },
            ]
        );
        // Per-stage keys name different fields holding the same value.
        let events = [
            (1, json!({"event": {"category": "process"}, "pid": 7})),
            (
                2,
                json!({"event": {"category": "file"}, "process": {"pid": 7}}),
            ),
        ];
        let hits = run(
            "sequence [process where true] by pid [file where true] by process.pid",
            &events,
        );
        assert_eq!(hits.len(), 1);
        assert_eq!(hits[0].join_keys, [json!(7)]);
    }

    #[test]
    fn maxspan_and_until_drop_pending_sequences() {
        let events = [(0, ev("process", "a")), (2_000_000_000, ev("file", "a"))];
        assert!(
            run(
                "sequence by user with maxspan=1s [process where true] [file where true]",
                &events
            )
            .is_empty()
        );
        assert_eq!(
            run(
                "sequence by user with maxspan=2s [process where true] [file where true]",
                &events
            )
            .len(),
            1
        );
        let events = [
            (1, ev("process", "a")),
            (2, ev("network", "a")),
            (3, ev("file", "a")),
        ];
        assert!(run("sequence by user [process where true] [file where true] until [network where true]", &events).is_empty());
        assert_eq!(run("sequence by user [process where true] [file where true] until [network where user == \"b\"]", &events).len(), 1);
    }

    #[test]
    fn an_event_matching_two_stages_is_not_used_twice_at_once() {
        let events = [(1, ev("process", "a")), (2, ev("process", "a"))];
        let hits = run(
            "sequence [process where true] [process where true]",
            &events,
        );
        assert_eq!(
            hits,
            [SequenceHit {
                events: vec![0, 1],
                join_keys: vec![],
                missing: vec![],
            }]
        );
    }

    #[test]
    fn multi_valued_join_keys_do_not_join() {
        let events = [
            (
                1,
                json!({"event": {"category": "process"}, "user": ["a", "b"]}),
            ),
            (2, ev("file", "a")),
        ];
        assert!(
            run(
                "sequence by user [process where true] [file where true]",
                &events
            )
            .is_empty()
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(200))]

        #[test]
        fn hits_take_one_event_per_stage_in_feed_order(
            statement in crate::eql::parser::tests::statement(),
            docs in proptest::collection::vec(crate::eql::eval::tests::json_value(), 0..12),
        ) {
            let Body::Sequence(seq) = statement.body else {
                return Ok(());
            };
            let matcher = SequenceMatcher::new(&seq, &MatchOptions::default());
            proptest::prop_assert!(matcher.is_ok());
            let Ok(mut matcher) = matcher else {
                return Ok(());
            };
            // A stage `with runs=N` takes N events; a missing stage takes none and is listed
            // among the hit's missing positions instead.
            let runs = |missing: bool| -> usize {
                seq.stages.iter().filter(|s| s.missing == missing).map(|s| s.runs as usize).sum()
            };
            let (events_per_hit, missing_per_hit) = (runs(false), runs(true));
            let mut hits = Vec::new();
            for (id, doc) in docs.iter().enumerate() {
                for hit in matcher.push(id, 0, doc) {
                    // A hit waiting on trailing missing stages is released later than its
                    // last event, so its last event is this one or an earlier one.
                    proptest::prop_assert!(hit.events.last().is_some_and(|last| *last <= id));
                    hits.push(hit);
                }
            }
            hits.extend(matcher.finish());
            for hit in hits {
                proptest::prop_assert_eq!(hit.events.len(), events_per_hit);
                proptest::prop_assert_eq!(hit.missing.len(), missing_per_hit);
                proptest::prop_assert!(hit.events.windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
