//! Sequences as a streaming matcher: events go in one at a time in timestamp order, completed
//! sequences come out. For each stage and join key at most one sequence is pending, the most
//! recent one (a new first-stage match for a key replaces the pending one, as a later start
//! can only make a shorter sequence); `until` drops every pending sequence of its key, and a
//! sequence that would last longer than `maxspan` is dropped.

use std::collections::HashMap;

use serde_json::Value as Json;

use super::ast::{Expr, Sequence, Stage};
use super::eval::{MatchOptions, Matcher};

/// A completed sequence: the ids of its events, first stage first, and its join key values.
#[derive(Debug, Clone, PartialEq)]
pub struct SequenceHit {
    pub events: Vec<usize>,
    pub join_keys: Vec<Json>,
}

#[derive(Debug, Clone)]
struct Partial {
    first_nanos: i128,
    events: Vec<usize>,
    keys: Vec<Json>,
}

#[derive(Debug, Clone)]
struct CompiledStage {
    matcher: Matcher,
    keys: Vec<Expr>,
}

impl CompiledStage {
    fn new(shared: &[Expr], stage: &Stage, options: &MatchOptions) -> Result<Self, regex::Error> {
        let keys: Vec<Expr> = shared.iter().chain(&stage.by).cloned().collect();
        Ok(CompiledStage {
            matcher: Matcher::with_keys(&stage.query, &keys, options)?,
            keys,
        })
    }

    /// The join key values when `doc` matches this stage; `None` if it does not match or a
    /// key is multi-valued.
    fn matches(&self, doc: &Json) -> Option<Vec<Json>> {
        if !self.matcher.matches(doc) {
            return None;
        }
        self.keys.iter().map(|k| self.matcher.key(k, doc)).collect()
    }
}

/// Matches one sequence over a stream of events.
#[derive(Debug, Clone)]
pub struct SequenceMatcher {
    stages: Vec<CompiledStage>,
    until: Option<CompiledStage>,
    maxspan: Option<i128>,
    /// `pending[i]`: sequences that have matched stages `0..=i`, by join key (as JSON text).
    pending: Vec<HashMap<String, Partial>>,
}

fn key_text(keys: &[Json]) -> String {
    // A JSON array of the values: distinct values give distinct texts.
    Json::Array(keys.to_vec()).to_string()
}

impl SequenceMatcher {
    pub fn new(sequence: &Sequence, options: &MatchOptions) -> Result<Self, regex::Error> {
        // A stage `with runs=N` is N consecutive stages.
        let stages = sequence
            .stages
            .iter()
            .flat_map(|s| std::iter::repeat_n(s, s.runs.max(1) as usize))
            .map(|s| CompiledStage::new(&sequence.by, s, options))
            .collect::<Result<Vec<_>, _>>()?;
        let until = match &sequence.until {
            Some(s) => Some(CompiledStage::new(&sequence.by, s, options)?),
            None => None,
        };
        Ok(SequenceMatcher {
            pending: vec![HashMap::new(); stages.len()],
            stages,
            until,
            maxspan: sequence.maxspan.as_ref().map(|m| m.nanos()),
        })
    }

    /// Feed the next event (`id` is the caller's handle for it, `nanos` its time, never
    /// earlier than the previous event's). Returns the sequences it completes.
    pub fn push(&mut self, id: usize, nanos: i128, doc: &Json) -> Vec<SequenceHit> {
        if let Some(keys) = self.until.as_ref().and_then(|u| u.matches(doc)) {
            let key = key_text(&keys);
            for pending in &mut self.pending {
                pending.remove(&key);
            }
        }
        let mut done = Vec::new();
        // A parsed sequence has two stages or more; a hand-built one may have none.
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
            if i == 0 {
                let start = Partial {
                    first_nanos: nanos,
                    events: vec![id],
                    keys,
                };
                if last == 0 {
                    done.push(SequenceHit {
                        events: start.events,
                        join_keys: start.keys,
                    });
                } else {
                    self.pending[0].insert(key, start);
                }
                continue;
            }
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
            if i == last {
                done.push(SequenceHit {
                    events: partial.events,
                    join_keys: partial.keys,
                });
            } else {
                self.pending[i].insert(key, partial);
            }
        }
        done
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
        events
            .iter()
            .enumerate()
            .flat_map(|(id, (t, doc))| matcher.push(id, *t, doc))
            .collect()
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
                    join_keys: vec![json!("b")]
                },
                SequenceHit {
                    events: vec![0, 3],
                    join_keys: vec![json!("a")]
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
                join_keys: vec![]
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
            // A stage `with runs=N` takes N events.
            let events_per_hit: usize = seq.stages.iter().map(|s| s.runs as usize).sum();
            for (id, doc) in docs.iter().enumerate() {
                for hit in matcher.push(id, 0, doc) {
                    proptest::prop_assert_eq!(hit.events.len(), events_per_hit);
                    proptest::prop_assert!(hit.events.windows(2).all(|w| w[0] < w[1]));
                    proptest::prop_assert_eq!(hit.events.last(), Some(&id));
                }
            }
        }
    }
}
