//! EQL benchmarks: an event query (the upstream EQL form of the shipped Public Invocation
//! rule) over 100,000 CloudTrail-shaped documents, as JSON trees and prepared (their fields
//! resolved once into a block, as a scan does for all its rules), and a two-stage sequence
//! `by` one field with `maxspan=5m` over 100,000 events in time order, also with each event
//! prepared as it arrives.
//!
//! `cargo bench --bench eql -- --warm-up-time 1 --measurement-time 3`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rule_runner::eql::{self, Body, FieldSlots, MatchOptions, Matcher, SequenceMatcher};
use serde_json::{Value, json};

const PUBLIC_INVOCATION: &str = r#"any where event.dataset == "aws.cloudtrail"
  and event.provider == "lambda.amazonaws.com" and event.outcome == "success"
  and event.action : "AddPermission*"
  and stringContains(aws.cloudtrail.request_parameters, "lambda:InvokeFunction")
  and stringContains(aws.cloudtrail.request_parameters, "principal=*")"#;

const USER_THEN_KEY: &str = r#"sequence by user.name with maxspan=5m
  [any where event.action == "CreateUser"]
  [any where event.action == "CreateAccessKey"]"#;

const N: usize = 100_000;

/// Documents one second apart: mostly other calls, some Lambda permission grants and IAM
/// user and key creations by a few hundred users.
fn documents() -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(11);
    let actions = [
        ("lambda.amazonaws.com", "AddPermission20150331v2"),
        ("iam.amazonaws.com", "CreateUser"),
        ("iam.amazonaws.com", "CreateAccessKey"),
        ("s3.amazonaws.com", "GetObject"),
        ("sts.amazonaws.com", "AssumeRole"),
        ("ec2.amazonaws.com", "DescribeInstances"),
    ];
    (0..N)
        .map(|i| {
            let (provider, action) = actions[rng.gen_range(0..actions.len())];
            let principal = if rng.gen_bool(0.3) { "*" } else { "sns.amazonaws.com" };
            json!({
                "@timestamp": format!("2024-05-01T{:02}:{:02}:{:02}Z", (i / 3600) % 24, (i / 60) % 60, i % 60),
                "event": {"dataset": "aws.cloudtrail", "provider": provider, "action": action,
                          "outcome": if rng.gen_bool(0.9) { "success" } else { "failure" }},
                "user": {"name": format!("user-{}", rng.gen_range(0..300))},
                "aws": {"cloudtrail": {"request_parameters":
                    format!("{{principal={principal}, functionName=f{i}, action=lambda:InvokeFunction}}")}}
            })
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let docs = documents();
    let options = MatchOptions::default();
    let mut group = c.benchmark_group("eql");
    group.throughput(Throughput::Elements(N as u64));

    let Ok(Body::Event(query)) = eql::parse_statement(PUBLIC_INVOCATION).map(|s| s.body) else {
        panic!("the event query parses");
    };
    let matcher = Matcher::new(&query, &options).expect("compiles");
    let matched = docs.iter().filter(|d| matcher.matches(d)).count();
    eprintln!("event query: {matched} of {N} documents match");
    group.bench_function("event_query_100k", |b| {
        b.iter(|| docs.iter().filter(|d| matcher.matches(d)).count())
    });
    let mut slots = FieldSlots::new();
    let matcher = Matcher::with_slots(&query, &options, &mut slots).expect("compiles");
    let prepared: Vec<_> = docs.iter().map(|d| slots.prepare(d)).collect();
    assert_eq!(
        prepared
            .iter()
            .filter(|d| matcher.matches_prepared(d))
            .count(),
        matched
    );
    group.bench_function("event_query_100k_prepared", |b| {
        b.iter(|| {
            prepared
                .iter()
                .filter(|d| matcher.matches_prepared(d))
                .count()
        })
    });

    let Ok(Body::Sequence(sequence)) = eql::parse_statement(USER_THEN_KEY).map(|s| s.body) else {
        panic!("the sequence parses");
    };
    let run = || {
        let mut matcher = SequenceMatcher::new(&sequence, &options).expect("compiles");
        let mut found = 0;
        for (i, doc) in docs.iter().enumerate() {
            found += matcher.push(i, i as i128 * 1_000_000_000, doc).len();
        }
        found
    };
    let found = run();
    eprintln!("sequence: {found} sequences over {N} events");
    group.bench_function("sequence_by_maxspan_100k", |b| b.iter(run));
    let run_prepared = || {
        let mut slots = FieldSlots::new();
        let mut matcher =
            SequenceMatcher::with_slots(&sequence, &options, &mut slots).expect("compiles");
        let mut buffer = eql::PrepareBuffer::default();
        let mut found = 0;
        for (i, doc) in docs.iter().enumerate() {
            let block = slots.prepare_in(buffer, doc);
            found += matcher
                .push_prepared(i, i as i128 * 1_000_000_000, &block)
                .len();
            buffer = block.into_buffer();
        }
        found
    };
    assert_eq!(run_prepared(), found);
    group.bench_function("sequence_by_maxspan_100k_prepared", |b| {
        b.iter(run_prepared)
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
