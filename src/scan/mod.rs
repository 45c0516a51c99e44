//! Offline scan: the rules run over raw CloudTrail files with no Elasticsearch, giving the
//! alerts the service would write once the same logs were indexed by Elastic's AWS
//! integration.
//!
//! Files are read in parallel (one per worker, streamed record by record), each record is
//! normalized ([`crate::cloudtrail`]) and tested against every rule's compiled KQL
//! ([`rules::RuleSet`]). Matches become alert documents with the service's builder
//! ([`crate::alert`]), so ids are the same in both modes; alerts with the same id (one event
//! seen twice) are reported once, in a fixed order (event time, event id, rule name).
//!
//! - [`rules`]: which rules run and why others do not.
//! - [`report`]: the table and summary a person reads.

pub mod prefilter;
pub mod report;
pub mod rules;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde_json::Value;

use crate::alert::fields::{lookup, parse_timestamp};
use crate::alert::{AlertBuilder, AlertEvent, RunContext, sha256_hex};
use crate::cloudtrail::{DocumentReader, InputFile, NormalizeOptions, Problem};
use crate::engine::ports::AlertDoc;
pub use rules::{CompiledRule, LeftOut, RuleSet};

/// Problems kept per input; beyond this they are only counted (a binary file read as NDJSON
/// would otherwise produce one per line).
const PROBLEMS_PER_INPUT: usize = 50;

#[derive(Debug, Clone)]
pub struct ScanOptions {
    pub normalize: NormalizeOptions,
    /// Apply each rule's `max_signals` to the whole scan (like one service run).
    pub max_signals_per_rule: bool,
    /// Worker threads; `None` for one per core.
    pub threads: Option<usize>,
    /// Skip normalizing records no rule can match ([`prefilter`]); results are the same.
    pub prefilter: bool,
}

/// One rule's tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleCount {
    pub rule_id: String,
    pub name: String,
    pub severity: crate::rule::Severity,
    /// Alerts reported.
    pub alerts: usize,
    /// Matches left out by `--max-signals-per-rule`.
    pub capped: usize,
}

/// Everything a scan found.
#[derive(Debug, Clone)]
pub struct ScanReport {
    /// In output order: event time, then event id, then rule name.
    pub alerts: Vec<AlertDoc>,
    /// Every rule that ran, in rule-set order.
    pub per_rule: Vec<RuleCount>,
    pub files: usize,
    /// Inputs that stopped early (unreadable, corrupt gzip, truncated JSON, not JSON).
    pub files_failed: usize,
    /// Records normalized and evaluated.
    pub records: usize,
    /// Records that could not be read (bad JSON, not an object, not CloudTrail), each reported.
    pub records_skipped: usize,
    pub digest_records: usize,
    /// Matches dropped because an alert with the same id was already reported.
    pub duplicates: usize,
    /// Problems in input order (at most [`PROBLEMS_PER_INPUT`] per input).
    pub problems: Vec<Problem>,
    /// Problems counted but not kept.
    pub problems_not_listed: usize,
    /// Decompressed bytes read.
    pub bytes: u64,
    pub elapsed: Duration,
}

impl ScanReport {
    /// Whether anything was skipped: the scan's exit status 2.
    pub fn skipped_input(&self) -> bool {
        self.files_failed > 0 || self.records_skipped > 0
    }
}

/// A match before it becomes an alert document.
struct Hit {
    rule: usize,
    alert_id: String,
    time: DateTime<Utc>,
    event_id: String,
    doc_id: String,
    source: Value,
}

/// What one input produced.
struct FileResult {
    hits: Vec<Hit>,
    problems: Vec<Problem>,
    problems_not_listed: usize,
    stats: crate::cloudtrail::ReadStats,
}

fn event_time(doc: &Value, fallback: DateTime<Utc>) -> DateTime<Utc> {
    lookup(doc, "@timestamp")
        .and_then(parse_timestamp)
        .unwrap_or(fallback)
}

fn event_id(doc: &Value) -> String {
    match lookup(doc, "event.id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn scan_file(
    file: &InputFile,
    rules: &RuleSet,
    builders: &[AlertBuilder],
    index: &str,
    opts: &ScanOptions,
    now: DateTime<Utc>,
    progress: Option<Arc<AtomicU64>>,
) -> FileResult {
    // The document `_id` the S3 input would give: a hash of the object, then the position.
    let prefix = &sha256_hex(&file.input.to_string())[..10];
    let mut reader = DocumentReader::open(file, &opts.normalize, progress);
    if opts.prefilter
        && let Some(prefilter) = rules.prefilter.clone()
    {
        reader = reader.with_prefilter(Arc::new(move |raw| prefilter.may_match(raw)));
    }
    let mut result = FileResult {
        hits: Vec::new(),
        problems: Vec::new(),
        problems_not_listed: 0,
        stats: Default::default(),
    };
    for item in reader.by_ref() {
        let doc = match item {
            Ok(doc) => doc,
            Err(problem) => {
                if result.problems.len() < PROBLEMS_PER_INPUT {
                    result.problems.push(problem);
                } else {
                    result.problems_not_listed += 1;
                }
                continue;
            }
        };
        for (i, compiled) in rules.rules.iter().enumerate() {
            if !compiled.matcher.matches(&doc.value) {
                continue;
            }
            let doc_id = format!("{prefix}-{:012}", doc.index);
            let time = event_time(&doc.value, now);
            let event = AlertEvent {
                index,
                id: &doc_id,
                source: &doc.value,
                timestamp: time,
            };
            let alert_id = builders[i].alert_id(&event);
            result.hits.push(Hit {
                rule: i,
                alert_id,
                time,
                event_id: event_id(&doc.value),
                doc_id,
                source: doc.value.clone(),
            });
        }
    }
    result.stats = reader.stats();
    result
}

/// Run `rules` over `files`.
pub fn scan(
    files: &[InputFile],
    rules: &RuleSet,
    opts: &ScanOptions,
    ctx: &RunContext,
    progress: Option<Arc<AtomicU64>>,
) -> Result<ScanReport, rayon::ThreadPoolBuildError> {
    let started = Instant::now();
    let index = rules::source_index(opts.normalize.flavor, &opts.normalize.namespace);
    let builders: Vec<AlertBuilder> = rules
        .rules
        .iter()
        .map(|r| AlertBuilder::new(&r.rule, ctx))
        .collect();
    let mut pool = rayon::ThreadPoolBuilder::new();
    if let Some(n) = opts.threads {
        pool = pool.num_threads(n.max(1));
    }
    let pool = pool.build()?;
    let results: Vec<FileResult> = pool.install(|| {
        files
            .par_iter()
            .map(|f| scan_file(f, rules, &builders, &index, opts, ctx.now, progress.clone()))
            .collect()
    });

    let mut report = ScanReport {
        alerts: Vec::new(),
        per_rule: rules
            .rules
            .iter()
            .map(|r| RuleCount {
                rule_id: r.rule.rule_id.clone(),
                name: r.rule.name.clone(),
                severity: r.rule.severity,
                alerts: 0,
                capped: 0,
            })
            .collect(),
        files: files.len(),
        files_failed: 0,
        records: 0,
        records_skipped: 0,
        digest_records: 0,
        duplicates: 0,
        problems: Vec::new(),
        problems_not_listed: 0,
        bytes: 0,
        elapsed: Duration::ZERO,
    };
    let mut hits = Vec::new();
    for result in results {
        report.files_failed += usize::from(result.stats.failed);
        report.records += result.stats.documents + result.stats.prefiltered;
        report.records_skipped += result.stats.skipped;
        report.digest_records += result.stats.digests;
        report.bytes += result.stats.bytes;
        report.problems.extend(result.problems);
        report.problems_not_listed += result.problems_not_listed;
        // Files are in input order and hits in record order: a stable sort below keeps the
        // first copy of a duplicated event.
        hits.extend(result.hits);
    }
    hits.sort_by(|a, b| {
        (
            a.time,
            &a.event_id,
            &rules.rules[a.rule].rule.name,
            &a.alert_id,
        )
            .cmp(&(
                b.time,
                &b.event_id,
                &rules.rules[b.rule].rule.name,
                &b.alert_id,
            ))
    });
    let mut seen = HashSet::new();
    let mut per_rule_kept: BTreeMap<usize, usize> = BTreeMap::new();
    for hit in hits {
        if !seen.insert(hit.alert_id.clone()) {
            report.duplicates += 1;
            continue;
        }
        let compiled = &rules.rules[hit.rule];
        let kept = per_rule_kept.entry(hit.rule).or_default();
        if opts.max_signals_per_rule && *kept >= compiled.rule.max_signals as usize {
            report.per_rule[hit.rule].capped += 1;
            continue;
        }
        *kept += 1;
        report.per_rule[hit.rule].alerts += 1;
        let event = AlertEvent {
            index: &index,
            id: &hit.doc_id,
            source: &hit.source,
            timestamp: hit.time,
        };
        report
            .alerts
            .push(builders[hit.rule].build_with_id(&event, hit.alert_id));
    }
    report.elapsed = started.elapsed();
    Ok(report)
}
