//! KQL benchmarks: parse + translate the 801 prebuilt-rule queries; evaluate the two seed rules
//! over 100,000 generated CloudTrail documents.
//!
//! `cargo bench --bench kql -- --warm-up-time 1 --measurement-time 3`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rule_runner::kql::{
    self, DslOptions, FieldSlots, FieldTypes, MatchOptions, Matcher, PrepareBuffer, Prepared,
};
use serde_json::{Value, json};

const LAYER_ADDED: &str = "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success\n  and event.action: (PublishLayerVersion* or UpdateFunctionConfiguration)\n";
const PUBLIC_INVOCATION: &str = "event.dataset: aws.cloudtrail and event.provider: lambda.amazonaws.com and event.outcome: success\n  and event.action: AddPermission*\n  and aws.cloudtrail.request_parameters: (*lambda\\:InvokeFunction* and *principal=\\**)\n";

fn corpus() -> Vec<String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/kql/detection_rules_kql_queries.json"
    );
    let rules: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(path).expect("corpus file"))
            .expect("corpus JSON");
    rules
        .iter()
        .filter_map(|r| r["query"].as_str().map(str::to_string))
        .collect()
}

/// CloudTrail-shaped ECS documents: mostly other services and actions, some Lambda calls with
/// public and non-public permissions, as a scan over a real trail would see.
fn documents(n: usize) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(7);
    let providers = [
        "lambda.amazonaws.com",
        "s3.amazonaws.com",
        "iam.amazonaws.com",
        "ec2.amazonaws.com",
        "sts.amazonaws.com",
    ];
    let actions = [
        "AddPermission20150331v2",
        "PublishLayerVersion20181031",
        "UpdateFunctionConfiguration20150331v2",
        "UpdateFunctionConfiguration",
        "GetObject",
        "AssumeRole",
        "DescribeInstances",
        "ListBuckets",
        "CreateFunction20150331",
    ];
    let principals = [
        "*",
        "sns.amazonaws.com",
        "events.amazonaws.com",
        "123456789012",
    ];
    (0..n)
        .map(|i| {
            let provider = providers[rng.gen_range(0..providers.len())];
            let action = actions[rng.gen_range(0..actions.len())];
            let principal = principals[rng.gen_range(0..principals.len())];
            let dataset = if rng.gen_bool(0.95) {
                "aws.cloudtrail"
            } else {
                "aws.s3access"
            };
            let params = format!(
                "{{principal={principal}, functionName=fn-{i}, statementId=s{i}, action=lambda:InvokeFunction}}"
            );
            // The shape and key order `rule-runner normalize` gives a CloudTrail record
            // (checked against tests/data/cloudtrail/stratus-red-team).
            json!({
                "ecs": {"version": "8.11.0"},
                "@timestamp": "2024-05-01T10:00:00.000Z",
                "aws": {"cloudtrail": {
                    "event_version": "1.08",
                    "user_identity": {"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice",
                                      "access_key_id": "AKIAIOSFODNN7EXAMPLE"},
                    "event_category": "Management",
                    "request_parameters": params,
                    "flattened": {"request_parameters": {
                        "action": "lambda:InvokeFunction", "functionName": format!("fn-{i}"),
                        "principal": principal, "statementId": format!("s{i}")}},
                    "response_elements": format!("{{statement={{\"Sid\":\"s{i}\",\"Effect\":\"Allow\"}}}}"),
                    "request_id": format!("{i:08x}-60be-4ad8-a6f7-f3c44d47df3a"),
                    "event_type": "AwsApiCall",
                    "management_event": true,
                    "read_only": false,
                    "recipient_account_id": "123456789012"
                }},
                "related": {"user": ["alice"]},
                "user": {"name": "alice", "id": "AIDAC4Q0BJF2SN7BSHFO"},
                "cloud": {"account": {"id": "123456789012"}, "region": "us-east-1"},
                "event": {
                    "provider": provider, "action": action,
                    "id": format!("{i:08x}-0000-4000-8000-000000000000"),
                    "kind": "event", "type": ["info"],
                    "outcome": if rng.gen_bool(0.9) { "success" } else { "failure" },
                    "dataset": dataset, "module": "aws",
                },
                "source": {"address": "198.51.100.7", "ip": "198.51.100.7"},
                "user_agent": {"original": "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64"},
                "tls": {"version_protocol": "tls", "version": "1.3", "cipher": "TLS_AES_128_GCM_SHA256",
                        "client": {"server_name": "lambda.us-east-1.amazonaws.com"}},
                "data_stream": {"type": "logs", "dataset": dataset, "namespace": "default"}
            })
        })
        .collect()
}

fn parse_and_translate(c: &mut Criterion) {
    let queries = corpus();
    let options = DslOptions::detection_engine();
    let ecs = FieldTypes::ecs_cloudtrail();
    let mut group = c.benchmark_group("kql_corpus_801");
    group.throughput(Throughput::Elements(queries.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| queries.iter().filter(|q| kql::parse(q).is_ok()).count())
    });
    type Translate = fn(&kql::Query, Option<&FieldTypes>, &DslOptions) -> bool;
    let to_value: Translate = |q, f, o| kql::to_dsl(q, f, o).is_ok();
    let to_text: Translate = |q, f, o| kql::to_dsl_string(q, f, o).is_ok();
    let variants = [
        ("parse_translate_no_metadata", None, to_value),
        ("parse_translate_ecs", Some(ecs), to_value),
        ("parse_translate_text_no_metadata", None, to_text),
        ("parse_translate_text_ecs", Some(ecs), to_text),
    ];
    for (name, fields, translate) in variants {
        group.bench_function(name, |b| {
            b.iter(|| {
                queries
                    .iter()
                    .filter_map(|q| kql::parse(q).ok())
                    .filter(|ast| translate(ast, fields, &options))
                    .count()
            })
        });
    }
    group.finish();
}

fn evaluate_seed_rules(c: &mut Criterion) {
    // 100,000 documents (the figure) do not fit in cache: that case measures mostly
    // memory latency. 1,000 documents stay cache-resident and measure the evaluator itself.
    evaluate_over(c, "kql_eval_100k_docs", &documents(100_000));
    evaluate_over(c, "kql_eval_1k_docs_cache_resident", &documents(1_000));
}

fn evaluate_over(c: &mut Criterion, group_name: &str, docs: &Vec<Value>) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(docs.len() as u64));
    for (name, query) in [
        ("layer_added", LAYER_ADDED),
        ("public_invocation", PUBLIC_INVOCATION),
    ] {
        let ast = kql::parse(query).expect("seed query parses");
        for (metadata, fields) in [
            ("no_metadata", None),
            ("ecs", Some(FieldTypes::ecs_cloudtrail())),
        ] {
            let matcher = Matcher::new(&ast, fields, &MatchOptions::default());
            group.bench_with_input(BenchmarkId::new(name, metadata), docs, |b, docs| {
                b.iter(|| docs.iter().filter(|d| matcher.matches(d)).count())
            });
        }
    }
    // What `scan` does: each document, once built, goes through every rule in turn. The
    // throughput counts (document, rule) evaluations, as above.
    let ecs = Some(FieldTypes::ecs_cloudtrail());
    let seeds = [LAYER_ADDED, PUBLIC_INVOCATION].map(|q| kql::parse(q).expect("seed query parses"));
    let options = MatchOptions::default();
    let matchers: Vec<Matcher> = seeds
        .iter()
        .map(|q| Matcher::new(q, ecs, &options))
        .collect();
    group.throughput(Throughput::Elements((docs.len() * matchers.len()) as u64));
    group.bench_with_input(
        BenchmarkId::new("both_rules_per_document", "ecs"),
        docs,
        |b, docs| {
            b.iter(|| {
                docs.iter()
                    .map(|d| matchers.iter().filter(|m| m.matches(d)).count())
                    .sum::<usize>()
            })
        },
    );

    // The same, over prepared documents: the fields both rules read, resolved once per document
    // into one compact block (`kql::Prepared`). Preparing is measured on its own below.
    let mut slots = FieldSlots::new();
    let slotted: Vec<Matcher> = seeds
        .iter()
        .map(|q| Matcher::with_slots(q, ecs, &options, &mut slots))
        .collect();
    let prepared: Vec<Prepared> = docs.iter().map(|d| slots.prepare(d)).collect();
    group.throughput(Throughput::Elements(docs.len() as u64));
    for (name, matcher) in ["layer_added", "public_invocation"].iter().zip(&slotted) {
        group.bench_with_input(
            BenchmarkId::new(*name, "ecs_prepared"),
            &prepared,
            |b, docs| b.iter(|| docs.iter().filter(|d| matcher.matches_prepared(d)).count()),
        );
    }
    group.throughput(Throughput::Elements((docs.len() * slotted.len()) as u64));
    group.bench_with_input(
        BenchmarkId::new("both_rules_per_document", "ecs_prepared"),
        &prepared,
        |b, docs| {
            b.iter(|| {
                docs.iter()
                    .map(|d| slotted.iter().filter(|m| m.matches_prepared(d)).count())
                    .sum::<usize>()
            })
        },
    );
    // Preparing: one block per document, its buffers reused (as a scan worker does).
    group.throughput(Throughput::Elements(docs.len() as u64));
    group.bench_with_input(BenchmarkId::new("prepare", "5_fields"), docs, |b, docs| {
        b.iter(|| {
            let mut buffer = PrepareBuffer::default();
            let mut objects = 0;
            for doc in docs {
                let block = slots.prepare_in(buffer, doc);
                objects += usize::from(block.json().is_object());
                buffer = block.into_buffer();
            }
            objects
        })
    });
    drop(prepared);
    group.finish();
}

criterion_group!(benches, parse_and_translate, evaluate_seed_rules);
criterion_main!(benches);
