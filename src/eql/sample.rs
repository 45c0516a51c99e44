//! Samples as Elasticsearch finds them: events, one per filter, that share their join key
//! values, whatever their order in time. Elasticsearch groups each filter's events by the
//! keys (a composite aggregation), keeps the key tuples every filter has, then per tuple
//! asks each filter for its first `filters + max_samples_per_key - 1` events and picks
//! distinct ones, one per filter, trying the earliest first (backtracking). Here the events
//! come in one at a time and the same first events are kept per tuple and filter, so the
//! memory a sample takes is bounded by the number of distinct key tuples, not of events.
//!
//! Keys: a multi-valued field puts the event under each of its values (as the terms of a
//! composite aggregation do); a null or missing key leaves the event out, unless the key is
//! an optional field `?f`, which then groups it under null. Samples come out in the order of
//! their key tuples (null first, then booleans, numbers, strings by their bytes), as the
//! composite aggregation sorts them.

use std::cmp::Ordering;
use std::collections::HashMap;

use serde_json::Value as Json;

use super::ast::{Expr, Sample};
use super::eval::{FieldSlots, MatchOptions, Matcher};
use super::sequence::SequenceHit;

/// Matches one sample over events fed in any order; the samples come out at the end.
#[derive(Debug, Clone)]
pub struct SampleMatcher {
    /// Each filter, compiled with the sample's join keys and then its own.
    filters: Vec<Matcher>,
    /// Per join key position, whether every filter's key there is an optional field.
    optional: Vec<Vec<bool>>,
    /// How many of its first events each filter keeps per key tuple.
    take: usize,
    max_samples_per_key: usize,
    /// Per key tuple (as JSON text): the tuple, and each filter's first events.
    groups: HashMap<String, (Vec<Json>, Vec<Vec<usize>>)>,
}

impl SampleMatcher {
    /// `max_samples_per_key`: how many samples one key tuple may give (Elasticsearch's
    /// request parameter of that name, 1 by default); at least 1.
    pub fn new(
        sample: &Sample,
        options: &MatchOptions,
        max_samples_per_key: usize,
    ) -> Result<Self, regex::Error> {
        let mut slots = FieldSlots::new();
        let mut filters = Vec::new();
        let mut optional = Vec::new();
        for stage in &sample.stages {
            let keys: Vec<Expr> = sample.by.iter().chain(&stage.by).cloned().collect();
            optional.push(
                keys.iter()
                    .map(|k| matches!(k, Expr::Field(f) if f.optional))
                    .collect(),
            );
            filters.push(Matcher::with_keys(
                &stage.query,
                &keys,
                options,
                &mut slots,
            )?);
        }
        let max_samples_per_key = max_samples_per_key.max(1);
        Ok(SampleMatcher {
            take: filters.len() + max_samples_per_key - 1,
            filters,
            optional,
            max_samples_per_key,
            groups: HashMap::new(),
        })
    }

    /// Feed the event known as `id` (events are tried in the order they are fed).
    pub fn push(&mut self, id: usize, doc: &Json) {
        let stages = self.filters.len();
        for (stage, filter) in self.filters.iter().enumerate() {
            if !filter.matches_doc(doc) {
                continue;
            }
            for tuple in key_tuples(filter.key_values(doc), &self.optional[stage]) {
                let text = Json::Array(tuple.clone()).to_string();
                let (_, firsts) = self
                    .groups
                    .entry(text)
                    .or_insert_with(|| (tuple, vec![Vec::new(); stages]));
                let kept = &mut firsts[stage];
                if kept.len() < self.take && kept.last() != Some(&id) {
                    kept.push(id);
                }
            }
        }
    }

    /// Every sample, by key tuple; within one, its events in filter order.
    pub fn finish(self) -> Vec<SequenceHit> {
        let mut groups: Vec<(Vec<Json>, Vec<Vec<usize>>)> = self
            .groups
            .into_values()
            .filter(|(_, firsts)| firsts.iter().all(|events| !events.is_empty()))
            .collect();
        groups.sort_by(|a, b| tuple_order(&a.0, &b.0));
        let mut hits = Vec::new();
        for (keys, firsts) in groups {
            let mut found = Vec::new();
            pick(
                &firsts,
                &mut Vec::new(),
                &mut found,
                self.max_samples_per_key,
            );
            hits.extend(found.into_iter().map(|events| SequenceHit {
                events,
                join_keys: keys.clone(),
                missing: Vec::new(),
            }));
        }
        hits
    }
}

/// Every combination of one value per key; a key without value gives none, unless it is
/// optional, when it stands as null.
fn key_tuples(values: Vec<Vec<Json>>, optional: &[bool]) -> Vec<Vec<Json>> {
    let mut tuples: Vec<Vec<Json>> = vec![Vec::new()];
    for (mut values, optional) in values.into_iter().zip(optional) {
        if values.is_empty() {
            if !optional {
                return Vec::new();
            }
            values.push(Json::Null);
        }
        values.dedup();
        tuples = tuples
            .into_iter()
            .flat_map(|tuple| {
                values.iter().map(move |value| {
                    let mut next = tuple.clone();
                    next.push(value.clone());
                    next
                })
            })
            .collect();
    }
    tuples
}

/// Distinct events, one per filter, earliest first: up to `max` such choices, in the order
/// a depth-first search over the filters' events finds them. A branch is entered only when
/// the filters after it can still each get an event of their own (a bipartite matching), so
/// the search finds the same choices without ever exploring a dead end, which plain
/// backtracking can do for factorially long when the events run short.
fn pick(firsts: &[Vec<usize>], chosen: &mut Vec<usize>, found: &mut Vec<Vec<usize>>, max: usize) {
    let Some(events) = firsts.get(chosen.len()) else {
        found.push(chosen.clone());
        return;
    };
    for &event in events {
        if found.len() >= max {
            return;
        }
        if chosen.contains(&event) {
            continue;
        }
        chosen.push(event);
        if completable(&firsts[chosen.len()..], chosen) {
            pick(firsts, chosen, found, max);
        }
        chosen.pop();
    }
}

/// Whether each of `filters` can take a distinct event of its own, none of them `used`
/// (Kuhn's augmenting paths).
fn completable(filters: &[Vec<usize>], used: &[usize]) -> bool {
    fn augment(
        filter: usize,
        filters: &[Vec<usize>],
        used: &[usize],
        owner: &mut HashMap<usize, usize>,
        seen: &mut Vec<usize>,
    ) -> bool {
        for &event in &filters[filter] {
            if used.contains(&event) || seen.contains(&event) {
                continue;
            }
            seen.push(event);
            let free = match owner.get(&event) {
                None => true,
                Some(&other) => augment(other, filters, used, owner, seen),
            };
            if free {
                owner.insert(event, filter);
                return true;
            }
        }
        false
    }
    let mut owner = HashMap::new();
    (0..filters.len()).all(|filter| augment(filter, filters, used, &mut owner, &mut Vec::new()))
}

fn tuple_order(a: &[Json], b: &[Json]) -> Ordering {
    a.iter()
        .zip(b)
        .map(|(x, y)| value_order(x, y))
        .find(|o| o.is_ne())
        .unwrap_or_else(|| a.len().cmp(&b.len()))
}

/// Null first, then booleans (false first), numbers, and strings by their UTF-8 bytes: the
/// composite aggregation's order, which the in-memory search source also follows for its
/// groups (this module imports nothing of the crate, so it keeps its own copy).
fn value_order(a: &Json, b: &Json) -> Ordering {
    fn rank(value: &Json) -> u8 {
        match value {
            Json::Null => 0,
            Json::Bool(_) => 1,
            Json::Number(_) => 2,
            Json::String(_) => 3,
            Json::Array(_) | Json::Object(_) => 4,
        }
    }
    match (a, b) {
        (Json::Bool(x), Json::Bool(y)) => x.cmp(y),
        (Json::Number(x), Json::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Json::String(x), Json::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ => rank(a).cmp(&rank(b)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::eql::{Body, parse_statement};

    fn run(query: &str, events: &[Json], per_key: usize) -> Vec<(Vec<usize>, Vec<Json>)> {
        let Ok(Body::Sample(sample)) = parse_statement(query).map(|s| s.body) else {
            panic!("not a sample: {query}");
        };
        let mut matcher =
            SampleMatcher::new(&sample, &MatchOptions::default(), per_key).expect("compiles");
        for (id, doc) in events.iter().enumerate() {
            matcher.push(id, doc);
        }
        matcher
            .finish()
            .into_iter()
            .map(|hit| (hit.events, hit.join_keys))
            .collect()
    }

    #[test]
    fn samples_take_distinct_events_sharing_the_keys_in_key_order() {
        let events = [
            json!({"h": "b", "a": 1}),
            json!({"h": "a", "b": 1}),
            json!({"h": "a", "a": 1, "b": 1}),
            json!({"h": "b", "b": 1}),
            json!({"h": "c", "a": 1, "b": 1}),
        ];
        let hits = run(
            "sample by h [any where a == 1] [any where b == 1]",
            &events,
            1,
        );
        // `c` has one event matching both filters: no two distinct events, no sample.
        assert_eq!(
            hits,
            [
                (vec![2, 1], vec![json!("a")]),
                (vec![0, 3], vec![json!("b")])
            ]
        );
    }

    #[test]
    fn several_samples_per_key_and_backtracking() {
        let events = [
            json!({"h": "x", "a": 1, "b": 1}),
            json!({"h": "x", "a": 1}),
            json!({"h": "x", "b": 1}),
        ];
        let query = "sample by h [any where a == 1] [any where b == 1]";
        assert_eq!(run(query, &events, 1), [(vec![0, 2], vec![json!("x")])]);
        assert_eq!(
            run(query, &events, 3),
            [
                (vec![0, 2], vec![json!("x")]),
                (vec![1, 0], vec![json!("x")]),
                (vec![1, 2], vec![json!("x")]),
            ]
        );
    }

    #[test]
    fn too_few_distinct_events_end_the_search_at_once() {
        // Twelve filters that each match the same eleven events: no sample, and the search
        // must say so without trying the 11! orders of those events.
        let filters: Vec<String> = (0..12).map(|_| "[any where a == 1]".to_string()).collect();
        let query = format!("sample by h {}", filters.join(" "));
        let events: Vec<Json> = (0..11).map(|_| json!({"h": "x", "a": 1})).collect();
        assert!(run(&query, &events, 1).is_empty());
        let events: Vec<Json> = (0..12).map(|_| json!({"h": "x", "a": 1})).collect();
        assert_eq!(
            run(&query, &events, 1),
            [((0..12).collect(), vec![json!("x")])]
        );
    }

    #[test]
    fn null_keys_join_only_through_optional_fields() {
        let events = [json!({"a": 1}), json!({"b": 1}), json!({"k": null, "a": 1})];
        let plain = "sample by k [any where a == 1] [any where b == 1]";
        assert!(run(plain, &events, 1).is_empty());
        let optional = "sample by ?k [any where a == 1] [any where b == 1]";
        assert_eq!(run(optional, &events, 1), [(vec![0, 1], vec![Json::Null])]);
    }

    #[test]
    fn multi_valued_keys_group_under_each_value_and_filters_have_their_own_keys() {
        let events = [
            json!({"ips": ["10.0.0.1", "10.0.0.2"], "a": 1}),
            json!({"ip": "10.0.0.2", "b": 1}),
            json!({"ip": "10.0.0.1", "b": 1}),
        ];
        let hits = run(
            "sample [any where a == 1] by ips [any where b == 1] by ip",
            &events,
            1,
        );
        assert_eq!(
            hits,
            [
                (vec![0, 2], vec![json!("10.0.0.1")]),
                (vec![0, 1], vec![json!("10.0.0.2")]),
            ]
        );
    }

    #[test]
    fn key_order_is_null_booleans_numbers_strings() {
        let mut values = vec![
            json!("b"),
            json!(2),
            json!(true),
            Json::Null,
            json!("B"),
            json!(false),
            json!(10),
        ];
        values.sort_by(value_order);
        assert_eq!(
            values,
            [
                Json::Null,
                json!(false),
                json!(true),
                json!(2),
                json!(10),
                json!("B"),
                json!("b")
            ]
        );
    }
}
