//! EQL test suites run through `rule-runner eql match`: the endgame EQL suite (the `eql`
//! package on PyPI: `etc/test_queries.toml` over `etc/test_data.json`, in
//! `tests/data/eql/endgame/`) with Elasticsearch's semantics, queries that are not
//! Elasticsearch EQL excluded (the parser must refuse them) and the results Elasticsearch's
//! semantics change listed with their reason in `differences.toml`; and Elasticsearch's own
//! tests of missing events (`tests/data/eql/elasticsearch/`).
//!
//! The suite is written in endgame's dialect; two spellings are translated to
//! Elasticsearch's before anything runs, since they say the same thing: `=` is `==`, and
//! single-quoted strings are double-quoted (`?'raw'` becomes `"""raw"""`). Its events carry
//! Windows FILETIME timestamps, given to rule-runner as `@timestamp` in epoch milliseconds;
//! `serial_event_id` breaks ties, as the suite's event order does.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use crate::util::{data, run_cli};

#[derive(Deserialize)]
struct Suite {
    queries: Vec<SuiteQuery>,
}

#[derive(Deserialize)]
struct SuiteQuery {
    query: String,
    expected_event_ids: Vec<u64>,
}

#[derive(Deserialize)]
struct Differences {
    excluded: Vec<Excluded>,
    changed: Vec<Changed>,
}

#[derive(Deserialize)]
struct Excluded {
    index: usize,
    reason: String,
    parses: bool,
}

#[derive(Deserialize)]
struct Changed {
    index: usize,
    expected_event_ids: Vec<u64>,
    reason: String,
}

/// Endgame's spellings of what Elasticsearch writes otherwise: `=` for `==` and single
/// quotes for double ones (raw `?'...'` for `"""..."""`).
fn translate(query: &str) -> String {
    let chars: Vec<char> = query.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let raw_quote = c == '?' && matches!(chars.get(i + 1), Some('\'') | Some('"'));
        if raw_quote {
            let quote = chars[i + 1];
            let end = (i + 2..chars.len())
                .find(|&j| chars[j] == quote)
                .unwrap_or(chars.len());
            out.push_str("\"\"\"");
            out.extend(&chars[i + 2..end]);
            out.push_str("\"\"\"");
            i = end + 1;
        } else if c == '\'' || c == '"' {
            let mut j = i + 1;
            let mut text = String::new();
            while j < chars.len() && chars[j] != c {
                if chars[j] == '\\' && j + 1 < chars.len() {
                    text.push(chars[j]);
                    j += 1;
                } else if chars[j] == '"' {
                    text.push('\\');
                }
                text.push(chars[j]);
                j += 1;
            }
            out.push('"');
            out.push_str(&text);
            out.push('"');
            i = j + 1;
        } else if c == '='
            && !matches!(chars.get(i + 1), Some('='))
            && !matches!(out.chars().last(), Some('=' | '!' | '<' | '>' | '~'))
            && !out.trim_end().ends_with("maxspan")
            && !out.trim_end().ends_with("runs")
        {
            out.push_str("==");
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The `serial_event_id`s `eql match` prints for `query`, sequences flattened.
fn matched(query: &str, events: &std::path::Path) -> Vec<u64> {
    let events = events.to_str().expect("a UTF-8 path");
    let out = run_cli(&[
        "eql",
        "match",
        "--event-category-field",
        "event_type",
        "--tiebreaker-field",
        "serial_event_id",
        "--size",
        "10000",
        query,
        events,
    ]);
    assert_exit!(out, 0);
    let id = |event: &Value| event["serial_event_id"].as_u64().expect("an id");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|line| {
            let result: Value = serde_json::from_str(line).expect("a JSON line");
            match result.get("sequence").and_then(Value::as_array) {
                Some(sequence) => sequence.iter().map(id).collect::<Vec<_>>(),
                None => vec![id(&result)],
            }
        })
        .collect()
}

#[test]
fn translation_keeps_strings_and_comparisons_apart() {
    assert_eq!(
        translate("process where a = 'x = y' and b != \"q\" and c >= 2"),
        "process where a == \"x = y\" and b != \"q\" and c >= 2"
    );
    assert_eq!(
        translate("sequence with maxspan=1d"),
        "sequence with maxspan=1d"
    );
    assert_eq!(
        translate(r"x where match(a, ?'\w+')"),
        r#"x where match(a, """\w+""")"#
    );
    assert_eq!(
        translate(r#"x where a == 'say "hi"'"#),
        r#"x where a == "say \"hi\"""#
    );
}

#[test]
fn the_endgame_eql_suite_holds_under_elasticsearch_semantics() {
    let dir = data("eql/endgame");
    let suite: Suite =
        toml::from_str(&std::fs::read_to_string(dir.join("test_queries.toml")).expect("the suite"))
            .expect("the suite parses");
    let differences: Differences = toml::from_str(
        &std::fs::read_to_string(dir.join("differences.toml")).expect("the differences"),
    )
    .expect("the differences parse");
    let events: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("test_data.json")).expect("the events"),
    )
    .expect("the events parse");
    let temp = tempfile::tempdir().expect("a directory");
    let events_file = temp.path().join("events.ndjson");
    let lines: Vec<String> = events
        .into_iter()
        .map(|mut event| {
            // FILETIME: 100 ns steps since 1601-01-01.
            let filetime = event["timestamp"].as_i64().expect("a FILETIME");
            event["@timestamp"] = Value::from(filetime / 10_000 - 11_644_473_600_000);
            event.to_string()
        })
        .collect();
    std::fs::write(&events_file, lines.join("\n")).expect("events written");

    let excluded: BTreeMap<usize, &Excluded> =
        differences.excluded.iter().map(|e| (e.index, e)).collect();
    let changed: BTreeMap<usize, &Changed> =
        differences.changed.iter().map(|c| (c.index, c)).collect();
    let (mut as_endgame, mut failures) = (0, Vec::new());
    for (index, case) in suite.queries.iter().enumerate() {
        let query = translate(&case.query);
        if let Some(excluded) = excluded.get(&index) {
            assert!(!excluded.reason.is_empty(), "query {index}: no reason");
            if !excluded.parses {
                let out = run_cli(&["eql", "check", &query]);
                if out.status.code() != Some(1) {
                    failures.push(format!("query {index} should be refused: {query}"));
                }
            }
            continue;
        }
        let expected = match changed.get(&index) {
            Some(change) => {
                assert!(!change.reason.is_empty(), "query {index}: no reason");
                &change.expected_event_ids
            }
            None => &case.expected_event_ids,
        };
        let found = matched(&query, &events_file);
        if &found != expected {
            failures.push(format!(
                "query {index}: {query}\n  found    {found:?}\n  expected {expected:?}"
            ));
        } else if !changed.contains_key(&index) {
            as_endgame += 1;
        }
    }
    println!(
        "endgame EQL suite: {} queries; {as_endgame} give endgame's expected events, {} give \
         Elasticsearch's (listed, with the reason), {} are not Elasticsearch EQL",
        suite.queries.len(),
        changed.len(),
        excluded.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(suite.queries.len(), 241);
    assert_eq!(as_endgame + changed.len() + excluded.len(), 241);
}

#[derive(Deserialize)]
struct MissingEventQueries {
    queries: Vec<MissingEventQuery>,
}

#[derive(Deserialize)]
struct MissingEventQuery {
    name: String,
    query: String,
    expected_event_ids: Vec<i64>,
}

/// Elasticsearch's own tests of missing events (`![...]`), over its events: each sequence's
/// events by their `sequence` number, a missing event as -1.
#[test]
fn elasticsearchs_missing_event_tests_hold() {
    let dir = data("eql/elasticsearch");
    let suite: MissingEventQueries = toml::from_str(
        &std::fs::read_to_string(dir.join("missing-events.toml")).expect("the queries"),
    )
    .expect("the queries parse");
    let events = dir.join("missing-events.ndjson");
    let mut failures = Vec::new();
    for case in &suite.queries {
        let out = run_cli(&[
            "eql",
            "match",
            "--event-category-field",
            "event_type",
            "--tiebreaker-field",
            "sequence",
            "--size",
            "100",
            &case.query,
            events.to_str().expect("a UTF-8 path"),
        ]);
        assert_exit!(out, 0);
        let found: Vec<i64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .flat_map(|line| {
                let result: Value = serde_json::from_str(line).expect("a JSON line");
                result["sequence"]
                    .as_array()
                    .expect("a sequence")
                    .iter()
                    .map(|event| match event.get("missing") {
                        Some(Value::Bool(true)) => -1,
                        _ => event["sequence"].as_i64().expect("a sequence number"),
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
        if found != case.expected_event_ids {
            failures.push(format!(
                "{}: found {found:?}, expected {:?}",
                case.name, case.expected_event_ids
            ));
        }
    }
    println!(
        "Elasticsearch's missing-event tests: {} of {} hold",
        suite.queries.len() - failures.len(),
        suite.queries.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(suite.queries.len(), 17);
}

#[derive(Deserialize)]
struct SampleQueries {
    queries: Vec<SampleQuery>,
}

#[derive(Deserialize)]
struct SampleQuery {
    name: String,
    query: String,
    expected_event_ids: ExpectedIds,
    join_keys: Vec<String>,
}

/// One answer, or (where Elasticsearch's pick depends on shard order) any of several.
#[derive(Deserialize)]
#[serde(untagged)]
enum ExpectedIds {
    One(Vec<i64>),
    AnyOf(Vec<Vec<i64>>),
}

/// Elasticsearch's tests of samples that need an index mapping rule-runner does not have:
/// `@timestamp_pretty` is a date field (formatted `dd-MM-yyyy` in one index, the default in
/// another) and `date` epoch milliseconds, so Elasticsearch joins them as the same instant
/// and returns the key as epoch milliseconds; here they are the strings in the documents.
/// And in `optionalFieldAsQueryKeysOnly`, `x` and `y` are in no index's mapping, so
/// Elasticsearch reads `?x == ?y` as a comparison of two null constants, true by its expected
/// result; here both fields are read from each document, and a null equals nothing.
const SAMPLES_NEEDING_A_MAPPING: [&str; 4] = [
    "customDateFormatAsKey_SameIndexResults",
    "customDateFormatsAsKey_DifferentIndicesResults",
    "customDateFormatsAsKey_DifferentKeyNames",
    "optionalFieldAsQueryKeysOnly",
];

/// Elasticsearch's own tests of samples, over its `sample1` to `sample3` indices' events
/// (in that order, as its index order would give them): each sample's events by `id`, and
/// their join keys as text.
#[test]
fn elasticsearchs_sample_tests_hold() {
    let dir = data("eql/elasticsearch");
    let suite: SampleQueries =
        toml::from_str(&std::fs::read_to_string(dir.join("samples.toml")).expect("the queries"))
            .expect("the queries parse");
    let events = dir.join("samples.ndjson");
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in &suite.queries {
        if SAMPLES_NEEDING_A_MAPPING.contains(&case.name.as_str()) {
            continue;
        }
        ran += 1;
        let out = run_cli(&[
            "eql",
            "match",
            "--event-category-field",
            "event_type",
            "--size",
            "100",
            &case.query,
            events.to_str().expect("a UTF-8 path"),
        ]);
        assert_exit!(out, 0);
        let (mut ids, mut keys) = (Vec::new(), Vec::new());
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let result: Value = serde_json::from_str(line).expect("a JSON line");
            for event in result["sequence"].as_array().expect("a sample's events") {
                ids.push(event["id"].as_i64().expect("an id"));
            }
            for key in result["join_keys"].as_array().expect("join keys") {
                keys.push(match key {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                });
            }
        }
        let ids_hold = match &case.expected_event_ids {
            ExpectedIds::One(wanted) => &ids == wanted,
            ExpectedIds::AnyOf(options) => options.contains(&ids),
        };
        if !ids_hold || keys != case.join_keys {
            failures.push(format!(
                "{}: found {ids:?} keyed {keys:?}, expected {:?} keyed {:?}",
                case.name,
                match &case.expected_event_ids {
                    ExpectedIds::One(wanted) => format!("{wanted:?}"),
                    ExpectedIds::AnyOf(options) => format!("any of {options:?}"),
                },
                case.join_keys
            ));
        }
    }
    println!(
        "Elasticsearch's sample tests: {} of {ran} hold ({} need an index mapping, not run)",
        ran - failures.len(),
        SAMPLES_NEEDING_A_MAPPING.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(suite.queries.len(), 21);
}
