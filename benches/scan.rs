//! Scan throughput: normalize + evaluate over generated CloudTrail S3 files, on one core,
//! against plain decompression (`zcat > /dev/null`) and `zcat | jq -c '.Records[]'`.
//!
//! ```sh
//! cargo bench --bench scan -- --warm-up-time 1 --measurement-time 3
//! # a bigger set (the README's figures):
//! cargo run --release --example gen_cloudtrail -- --out target/bench-data/1m --records 1000000
//! RULE_RUNNER_BENCH_DATA=target/bench-data/1m cargo bench --bench scan
//! # include the jq baseline (slow):
//! RULE_RUNNER_BENCH_JQ=1 cargo bench --bench scan
//! ```
//!
//! Throughput is reported in uncompressed bytes; the record count is printed once.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rule_runner::alert::RunContext;
use rule_runner::cloudtrail::{DocumentReader, InputFile, NormalizeOptions, discover};
use rule_runner::rule::{load_paths, shipped_rules};
use rule_runner::scan::{RuleSet, ScanOptions, scan};

#[path = "../examples/gen_cloudtrail.rs"]
#[allow(dead_code)]
mod gen_cloudtrail;

const DEFAULT_RECORDS: u64 = 50_000;

/// The data set: `RULE_RUNNER_BENCH_DATA`, or a generated one cached under `target/`.
fn data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("RULE_RUNNER_BENCH_DATA") {
        return PathBuf::from(dir);
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data/scan-50k");
    if !dir.exists() {
        let opts = gen_cloudtrail::Options {
            out: dir.clone(),
            records: DEFAULT_RECORDS,
            attacks: 100,
            per_file: 5_000,
            seed: 1,
        };
        gen_cloudtrail::generate(&opts).expect("generating the benchmark data");
    }
    dir
}

fn files(dir: &Path) -> Vec<InputFile> {
    discover(&[dir.to_path_buf()]).files
}

fn uncompressed_bytes(files: &[InputFile]) -> u64 {
    files
        .iter()
        .map(|f| {
            let rule_runner::cloudtrail::Input::File(path) = &f.input else {
                return 0;
            };
            let file = std::fs::File::open(path).expect("bench file");
            let mut gz = flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file));
            let mut sink = Vec::new();
            gz.read_to_end(&mut sink).expect("bench file decompresses") as u64
        })
        .sum()
}

fn shell(script: &str, dir: &Path) {
    let status = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("DIR", dir)
        .status()
        .expect("sh runs");
    assert!(status.success(), "{script}");
}

fn bench(c: &mut Criterion) {
    let dir = data_dir();
    let files = files(&dir);
    let bytes = uncompressed_bytes(&files);
    let opts = ScanOptions {
        normalize: NormalizeOptions::default(),
        max_signals_per_rule: false,
        threads: Some(1),
        prefilter: true,
        warm_up: true,
        memory: rule_runner::scan::DEFAULT_MEMORY,
        sequence_memory: rule_runner::scan::DEFAULT_SEQUENCE_MEMORY,
    };
    let ctx = RunContext::scheduled(chrono::Utc::now());
    let shipped = RuleSet::compile(&shipped_rules(), opts.normalize.flavor, "default");
    let aws_dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules/detection-rules/aws");
    let aws_report = load_paths(&[aws_dir]);
    let all_aws = RuleSet::compile(&aws_report, opts.normalize.flavor, "default");
    // The query rules alone: what the aggregating types (new_terms, threshold) add is the
    // difference between this and `all_aws_rules`.
    let mut query_report = aws_report.clone();
    query_report
        .rules
        .retain(|loaded| loaded.rule.rule_type == "query");
    let aws_query = RuleSet::compile(&query_report, opts.normalize.flavor, "default");
    let probe = scan(&files, &shipped, &opts, &ctx, None).expect("scan runs");
    eprintln!(
        "scan bench: {} files, {} records, {:.1} MB uncompressed; shipped rules: {} alerts; \
         all AWS rules: {} runnable over CloudTrail ({} query rules)",
        files.len(),
        probe.records,
        bytes as f64 / 1e6,
        probe.alerts.len(),
        all_aws.rules.len(),
        aws_query.rules.len()
    );

    let mut group = c.benchmark_group("scan");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("zcat", |b| {
        b.iter(|| {
            shell(
                "find \"$DIR\" -name '*.json.gz' -exec zcat {} + > /dev/null",
                &dir,
            )
        })
    });
    if std::env::var_os("RULE_RUNNER_BENCH_JQ").is_some() {
        group.bench_function("zcat_jq_records", |b| {
            b.iter(|| {
                shell(
                    "find \"$DIR\" -name '*.json.gz' -exec zcat {} + | jq -c '.Records[]' > /dev/null",
                    &dir,
                )
            })
        });
    }
    group.bench_function("normalize_only", |b| {
        b.iter(|| {
            files
                .iter()
                .map(|f| DocumentReader::open(f, &opts.normalize, None).count())
                .sum::<usize>()
        })
    });
    group.bench_function("shipped_rules", |b| {
        b.iter(|| scan(&files, &shipped, &opts, &ctx, None).map(|r| r.alerts.len()))
    });
    group.bench_function("aws_query_rules", |b| {
        b.iter(|| scan(&files, &aws_query, &opts, &ctx, None).map(|r| r.alerts.len()))
    });
    group.bench_function("all_aws_rules", |b| {
        b.iter(|| scan(&files, &all_aws, &opts, &ctx, None).map(|r| r.alerts.len()))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
