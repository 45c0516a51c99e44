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

mod aggregate;
mod alerts;
pub mod examples;
mod held;
pub mod prefilter;
pub mod report;
pub mod rules;
mod sequence;

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rayon::prelude::*;
use serde_json::Value;

use crate::alert::fields::{lookup, parse_timestamp};
use crate::alert::{AlertBuilder, AlertEvent, RunContext, event_identity, sha256_hex};
use crate::cloudtrail::{DocumentReader, InputFile, NormalizeOptions, Problem};
use crate::new_terms::Schedule;
use crate::rule::RuleKind;
use aggregate::{AggregateRule, Aggregates, Cadence, Observation, StoredEvent};

/// The schedule of a rule that has none (query and threshold rules, in `Merged`).
const NO_SCHEDULE: Schedule = Schedule {
    interval: 1,
    lookback: 0,
    history: 0,
};
pub use alerts::ScanAlerts;
pub use rules::{CompiledRule, LeftOut, RuleSet};

/// Default of [`ScanOptions::memory`]: what the events of found alerts may take in memory.
pub const DEFAULT_MEMORY: usize = 96 << 20;
/// Default of [`ScanOptions::sequence_memory`].
pub const DEFAULT_SEQUENCE_MEMORY: usize = 1 << 30;

/// Why a scan could not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot start the worker threads: {0}")]
    Threads(#[from] rayon::ThreadPoolBuildError),
    #[error(
        "cannot keep the events of the alerts found beyond --memory in a temporary file \
         (TMPDIR={dir}): {source}; give more --memory or a TMPDIR with space"
    )]
    Spill { dir: String, source: std::io::Error },
    #[error(
        "the events EQL sequence rules may join need more than --sequence-memory ({limit} \
         bytes): {rules} keep every event matching one of their stages for the whole input, \
         as a sequence may span all of it. Scan a shorter time (--start/--end), fewer \
         sequence rules (--rules), or give more --sequence-memory"
    )]
    SequenceMemory { limit: usize, rules: String },
}

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
    /// `new_terms` rules learn, without alerting, for one history window from their first
    /// matching event (the service would have had that history).
    pub warm_up: bool,
    /// Bytes the events of found alerts may take in memory until output; beyond, they wait
    /// in a temporary file ([`held`]).
    pub memory: usize,
    /// Bytes the events EQL sequence rules may join may take; beyond, the scan fails.
    pub sequence_memory: usize,
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
#[derive(Debug)]
pub struct ScanReport {
    /// In output order: event time, then event id, then rule name.
    pub alerts: ScanAlerts,
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
    /// Problems in input order (at most `PROBLEMS_PER_INPUT` per input).
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

/// A match before it becomes an alert document. The event is kept as compact JSON (a
/// fraction of a `Value`'s size) until the alert is built.
struct Hit {
    rule: usize,
    alert_id: String,
    time: DateTime<Utc>,
    event_id: String,
    doc_id: String,
    source: Vec<u8>,
    /// Input position (file, record): the earliest copy of a duplicated event wins.
    position: (usize, usize),
}

impl Hit {
    fn position_key(&self) -> (DateTime<Utc>, &str, (usize, usize)) {
        (self.time, &self.event_id, self.position)
    }
}

/// What one input produced.
struct FileResult {
    hits: Vec<Hit>,
    observations: Vec<Observation>,
    sequence_events: Vec<(String, sequence::SequenceEvent)>,
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

#[allow(clippy::too_many_arguments)]
fn scan_file(
    file_no: usize,
    file: &InputFile,
    rules: &RuleSet,
    dispatch: &Arc<prefilter::Dispatch>,
    builders: &[AlertBuilder],
    index: &str,
    opts: &ScanOptions,
    now: DateTime<Utc>,
    progress: Option<Arc<AtomicU64>>,
) -> FileResult {
    // The document `_id` the S3 input would give: a hash of the object, then the position.
    let prefix = &sha256_hex(&file.input.to_string())[..10];
    let mut reader = DocumentReader::open(file, &opts.normalize, progress);
    if opts.prefilter {
        reader = reader.with_selector(rules.selector(Arc::clone(dispatch)));
    }
    let mut result = FileResult {
        hits: Vec::new(),
        observations: Vec::new(),
        sequence_events: Vec::new(),
        problems: Vec::new(),
        problems_not_listed: 0,
        stats: Default::default(),
    };
    let mut buffer = crate::rule::PrepareBuffers::default();
    let mut candidates = Vec::new();
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
        let prepared = rules.slots.prepare_in(buffer, &doc.value);
        match prefilter::document_fields(&doc.value) {
            Some(copied) => dispatch.candidates(&copied, &mut candidates),
            None => dispatch.all(&mut candidates),
        }
        let mut whole: Option<Value> = None;
        for &i in &candidates {
            let i = i as usize;
            let compiled = &rules.rules[i];
            if !compiled.matcher.matches_prepared(&prepared) {
                continue;
            }
            let doc_id = format!("{prefix}-{:012}", doc.index);
            // The document holds the fields the rule reads, and always the event's time and
            // id; what an alert is built from must be whole.
            let time = event_time(&doc.value, now);
            if matches!(
                compiled.kind,
                RuleKind::NewTerms(_) | RuleKind::Threshold(_)
            ) {
                let identity =
                    || event_identity(builders[i].identity(), index, &doc_id, &doc.value);
                // Kept as the record when the document is not whole: most observations never
                // become alerts, and those that do are built whole at the end.
                let stored = || StoredEvent {
                    doc_id: doc_id.clone(),
                    time,
                    source: match &doc.partial {
                        Some(raw) => aggregate::Source::Record(raw.clone()),
                        None => aggregate::Source::Document(
                            serde_json::to_vec(&doc.value).unwrap_or_default(),
                        ),
                    },
                };
                result.observations.extend(aggregate::observe(
                    i,
                    &compiled.kind,
                    &doc.value,
                    time,
                    identity,
                    stored,
                ));
                continue;
            }
            let source_doc: &Value = match &doc.partial {
                None => &doc.value,
                Some(_) => whole.get_or_insert_with(|| doc.whole(&opts.normalize)),
            };
            if let RuleKind::Eql(eql) = &compiled.kind
                && eql.joins()
            {
                let identity = event_identity(builders[i].identity(), index, &doc_id, source_doc);
                result.sequence_events.push((
                    identity,
                    sequence::SequenceEvent {
                        rule: i,
                        time,
                        position: (file_no, doc.index),
                        doc_id,
                        source: serde_json::to_vec(source_doc).unwrap_or_default(),
                    },
                ));
                continue;
            }
            let event = AlertEvent {
                index,
                id: &doc_id,
                source: source_doc,
                timestamp: time,
            };
            let alert_id = builders[i].alert_id(&event);
            result.hits.push(Hit {
                rule: i,
                alert_id,
                time,
                event_id: event_id(source_doc),
                doc_id,
                source: serde_json::to_vec(source_doc).unwrap_or_default(),
                position: (file_no, doc.index),
            });
        }
        buffer = prepared.into_buffer();
    }
    result.stats = reader.stats();
    result
}

#[derive(Default)]
struct Totals {
    failed_files: usize,
    records: usize,
    skipped: usize,
    digests: usize,
    bytes: u64,
}

/// A hit kept by [`Merged`], its event held until output.
struct Kept {
    rule: usize,
    time: DateTime<Utc>,
    event_id: String,
    doc_id: String,
    source: held::Held,
    position: (usize, usize),
}

/// Per-file results folded together as files finish.
struct Merged {
    /// One hit per alert id: the earliest copy in input order.
    best: HashMap<String, Kept>,
    events: held::HeldEvents,
    /// The first failure to spill an event (the scan then fails).
    spill_error: Option<std::io::Error>,
    duplicates: usize,
    stats: Totals,
    /// (file number, problems kept, problems only counted)
    problems: Vec<(usize, Vec<Problem>, usize)>,
    aggregates: Aggregates,
    sequences: sequence::SequenceEvents,
    sequence_memory: usize,
    /// Per rule: the schedule of `new_terms` rules (unused for the others).
    term_windows: Vec<Schedule>,
}

impl Merged {
    fn add(&mut self, file_no: usize, result: FileResult) {
        let stats = result.stats;
        self.stats.failed_files += usize::from(stats.failed);
        self.stats.records += stats.documents + stats.prefiltered;
        self.stats.skipped += stats.skipped;
        self.stats.digests += stats.digests;
        self.stats.bytes += stats.bytes;
        if !result.problems.is_empty() || result.problems_not_listed > 0 {
            self.problems
                .push((file_no, result.problems, result.problems_not_listed));
        }
        for (identity, event) in result.sequence_events {
            if !self.sequences.add(identity, event) {
                self.duplicates += 1;
            }
        }
        // Further events would only grow what must fail anyway.
        if self.sequences.bytes() > self.sequence_memory {
            self.sequences.overflowed();
        }
        let windows = &self.term_windows;
        for observation in result.observations {
            self.aggregates.add(observation, |rule| {
                windows.get(rule).copied().unwrap_or(NO_SCHEDULE)
            });
        }
        for hit in result.hits {
            let earlier = match self.best.get(&hit.alert_id) {
                Some(kept) => {
                    self.duplicates += 1;
                    hit.position_key() < (kept.time, kept.event_id.as_str(), kept.position)
                }
                None => true,
            };
            if !earlier {
                continue;
            }
            let source = match self.events.hold(hit.source) {
                Ok(source) => source,
                Err(e) => {
                    self.spill_error.get_or_insert(e);
                    continue;
                }
            };
            let kept = Kept {
                rule: hit.rule,
                time: hit.time,
                event_id: hit.event_id,
                doc_id: hit.doc_id,
                source,
                position: hit.position,
            };
            if let Some(replaced) = self.best.insert(hit.alert_id, kept) {
                self.events.release(&replaced.source);
            }
        }
    }
}

/// Run `rules` over `files`.
pub fn scan(
    files: &[InputFile],
    rules: &RuleSet,
    opts: &ScanOptions,
    ctx: &RunContext,
    progress: Option<Arc<AtomicU64>>,
) -> Result<ScanReport, ScanError> {
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
    let dispatch = rules.dispatch();
    // Results are merged as each file finishes, so memory holds one copy per distinct alert
    // (not one per match) whatever the input size.
    let cadences: Vec<Option<Cadence>> = rules
        .rules
        .iter()
        .map(|r| {
            (r.kind != RuleKind::Query)
                .then(|| Cadence::of(&r.rule).ok())
                .flatten()
        })
        .collect();
    let term_windows = rules
        .rules
        .iter()
        .zip(&cadences)
        .map(|(r, cadence)| match (&r.kind, cadence) {
            (RuleKind::NewTerms(params), Some(cadence)) => Schedule {
                interval: cadence.interval,
                lookback: cadence.lookback,
                history: aggregate::history_of(params).unwrap_or_default(),
            },
            _ => NO_SCHEDULE,
        })
        .collect();
    let merged: Mutex<Merged> = Mutex::new(Merged {
        best: HashMap::new(),
        events: held::HeldEvents::new(opts.memory),
        spill_error: None,
        duplicates: 0,
        stats: Totals::default(),
        problems: Vec::new(),
        aggregates: Aggregates::default(),
        sequences: Default::default(),
        sequence_memory: opts.sequence_memory,
        term_windows,
    });
    pool.install(|| {
        files.par_iter().enumerate().for_each(|(file_no, f)| {
            let result = scan_file(
                file_no,
                f,
                rules,
                &dispatch,
                &builders,
                &index,
                opts,
                ctx.now,
                progress.clone(),
            );
            if let Ok(mut merged) = merged.lock() {
                merged.add(file_no, result);
            }
        })
    });
    let mut merged = merged
        .into_inner()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if merged.sequences.has_overflowed() {
        let names: Vec<String> = merged
            .sequences
            .rules()
            .into_iter()
            .map(|rule| format!("`{}`", rules.rules[rule].rule.name))
            .collect();
        return Err(ScanError::SequenceMemory {
            limit: opts.sequence_memory,
            rules: names.join(", "),
        });
    }
    if let Some(source) = merged.spill_error.take() {
        return Err(ScanError::Spill {
            dir: std::env::temp_dir().display().to_string(),
            source,
        });
    }

    let names: Vec<&str> = rules.rules.iter().map(|r| r.rule.name.as_str()).collect();
    let mut report = ScanReport {
        alerts: ScanAlerts::new(Vec::new(), &names, index.clone(), held::HeldEvents::new(0)),
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
        files_failed: merged.stats.failed_files,
        records: merged.stats.records,
        records_skipped: merged.stats.skipped,
        digest_records: merged.stats.digests,
        duplicates: merged.duplicates,
        problems: Vec::new(),
        problems_not_listed: 0,
        bytes: merged.stats.bytes,
        elapsed: Duration::ZERO,
    };
    let mut problems = merged.problems;
    problems.sort_by_key(|(file_no, _, _)| *file_no);
    for (_, listed, not_listed) in problems {
        report.problems.extend(listed);
        report.problems_not_listed += not_listed;
    }
    let aggregate_rules: Vec<AggregateRule<'_>> = rules
        .rules
        .iter()
        .zip(&cadences)
        .zip(&builders)
        .map(|((r, cadence), builder)| AggregateRule {
            rule: &r.rule,
            kind: &r.kind,
            cadence: cadence.unwrap_or(Cadence {
                interval: 1,
                lookback: 0,
            }),
            builder,
            index: &index,
            normalize: &opts.normalize,
        })
        .collect();
    let mut aggregated = Vec::new();
    for (rule, found) in merged.aggregates.alerts(&aggregate_rules, opts.warm_up) {
        report.per_rule[rule].alerts += found.alerts.len();
        report.per_rule[rule].capped += found.capped;
        aggregated.extend(found.alerts);
    }
    for (rule, alerts) in merged.sequences.alerts(&rules.rules, &builders, &index) {
        report.per_rule[rule].alerts += alerts.len();
        aggregated.extend(alerts);
    }
    let mut hits: Vec<(String, Kept)> = merged.best.into_iter().collect();
    // The cap keeps each rule's first alerts in output order.
    hits.sort_by(|(a_id, a), (b_id, b)| {
        (a.time, &a.event_id, &rules.rules[a.rule].rule.name, a_id).cmp(&(
            b.time,
            &b.event_id,
            &rules.rules[b.rule].rule.name,
            b_id,
        ))
    });
    let mut alerts = ScanAlerts::new(builders, &names, index, merged.events);
    let mut per_rule_kept: BTreeMap<usize, usize> = BTreeMap::new();
    for (alert_id, hit) in hits {
        let compiled = &rules.rules[hit.rule];
        let kept = per_rule_kept.entry(hit.rule).or_default();
        if opts.max_signals_per_rule && *kept >= compiled.rule.max_signals as usize {
            report.per_rule[hit.rule].capped += 1;
            continue;
        }
        *kept += 1;
        report.per_rule[hit.rule].alerts += 1;
        alerts.push_match(alerts::Match {
            rule: hit.rule,
            alert_id,
            time: hit.time,
            event_id: hit.event_id,
            doc_id: hit.doc_id,
            source: hit.source,
        });
    }
    for alert in aggregated {
        alerts.push_built(alert);
    }
    alerts.sort();
    report.alerts = alerts;
    report.elapsed = started.elapsed();
    Ok(report)
}
