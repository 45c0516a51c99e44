//! `rule-runner load`: raw CloudTrail → the ECS documents Elastic's AWS integration (or
//! Filebeat) would index → bulk-indexed into a data stream, so rules can be run over a demo
//! data set or an incident's logs replayed into a cluster.
//!
//! Reading and normalizing run on a blocking thread and hand batches to the async bulk
//! writer through a bounded channel, so the file side and the network side overlap. The
//! last batch is written with `refresh=wait_for`: when `load` returns, the documents are
//! searchable (which only needs write privileges, unlike `_refresh`).

pub mod template;

use std::time::{Duration, Instant};

use ::elasticsearch::http::Method;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::cloudtrail::{DocumentReader, Flavor, Input, InputFile, NormalizeOptions, Problem};
use crate::elasticsearch::client::{is_transient_status, path_segment};
use crate::elasticsearch::error::error_reason;
use crate::elasticsearch::{Call, EsClient, EsError};
pub use template::TemplateOutcome;

/// Default targets: where Elastic Agent's integration and Filebeat would put CloudTrail.
pub const DEFAULT_INTEGRATION_INDEX: &str = "logs-aws.cloudtrail-default";
pub const DEFAULT_FILEBEAT_INDEX: &str = "filebeat-cloudtrail";

/// At most this many rejection reasons are kept for the summary; all are counted.
const KEPT_REJECTIONS: usize = 10;

#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub index: String,
    pub flavor: Flavor,
    /// Move every event time so the newest event is at `now`, keeping their spacing.
    pub shift_to_now: bool,
    pub batch_size: usize,
    pub install_template: bool,
    /// The load time: `event.created` and `event.ingested` (what the ingest pipeline sets),
    /// and the anchor of `shift_to_now`.
    pub now: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub struct LoadSummary {
    pub indexed: u64,
    /// Documents already present (409 on create: only with ids, kept for completeness).
    pub duplicates: u64,
    pub rejected: u64,
    /// The first rejection reasons, with the document's `event.id` when it has one.
    pub rejections: Vec<String>,
    /// Inputs or records that could not be read or normalized.
    pub problems: Vec<Problem>,
    pub template: Option<TemplateOutcome>,
    /// How far event times were moved (`--shift-to-now`).
    pub shift: Option<TimeDelta>,
    pub elapsed: Duration,
}

impl LoadSummary {
    /// Whether anything was left out (the command then exits 2).
    pub fn incomplete(&self) -> bool {
        self.rejected > 0 || !self.problems.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{0}")]
    Usage(String),
    #[error(
        "{source} (stopped after indexing {indexed} documents; loading again indexes them a second time)"
    )]
    Elasticsearch {
        indexed: u64,
        #[source]
        source: EsError,
    },
}

/// Progress callbacks, so the CLI can draw a bar without this module knowing about it.
pub trait Progress: Send + Sync {
    fn set_total(&self, _documents: u64) {}
    fn advance(&self, _documents: u64) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

enum Message {
    Batch(Vec<Line>),
    Problem(Problem),
}

/// One document ready for the bulk body, with its `event.id` for messages.
struct Line {
    json: String,
    event_id: Option<String>,
}

pub async fn load(
    client: &EsClient,
    files: Vec<InputFile>,
    opts: &LoadOptions,
    progress: &dyn Progress,
) -> Result<LoadSummary, LoadError> {
    let started = Instant::now();
    let mut summary = LoadSummary::default();
    let es_error = |indexed, source| LoadError::Elasticsearch { indexed, source };
    if opts.install_template {
        summary.template = Some(
            template::ensure(client, opts.flavor, &opts.index)
                .await
                .map_err(|e| es_error(0, e))?,
        );
    } else {
        summary.template = Some(TemplateOutcome::Skipped);
    }
    let mut normalize = NormalizeOptions {
        flavor: opts.flavor,
        ingest_time: Some(timestamp(opts.now)),
        ..NormalizeOptions::default()
    };
    // `data_stream.namespace` follows the target, as Fleet's naming scheme has it.
    if let Some(namespace) = opts.index.strip_prefix("logs-aws.cloudtrail-") {
        normalize.namespace = namespace.to_string();
    }
    if opts.shift_to_now {
        if files.iter().any(|f| f.input == Input::Stdin) {
            return Err(LoadError::Usage(
                "--shift-to-now reads the input twice (once to find the newest event); \
                 give files or directories, not stdin"
                    .into(),
            ));
        }
        let (scan_files, scan_opts) = (files.clone(), normalize.clone());
        let (newest, count) =
            tokio::task::spawn_blocking(move || newest_event(&scan_files, &scan_opts))
                .await
                .map_err(|e| LoadError::Usage(format!("reading the inputs failed: {e}")))?;
        progress.set_total(count);
        summary.shift = newest.map(|t| opts.now - t);
    }

    let (tx, mut rx) = mpsc::channel::<Message>(4);
    let (batch_size, shift, now) = (opts.batch_size.max(1), summary.shift, opts.now);
    let reader = tokio::task::spawn_blocking(move || {
        read_batches(&files, &normalize, batch_size, shift, now, &tx)
    });

    // Hold one batch back so the last can carry refresh=wait_for.
    let mut held: Option<Vec<Line>> = None;
    while let Some(message) = rx.recv().await {
        match message {
            Message::Problem(p) => summary.problems.push(p),
            Message::Batch(batch) => {
                if let Some(previous) = held.replace(batch) {
                    write_batch(client, opts, previous, false, &mut summary, progress)
                        .await
                        .map_err(|e| es_error(summary.indexed, e))?;
                }
            }
        }
    }
    if let Some(last) = held {
        write_batch(client, opts, last, true, &mut summary, progress)
            .await
            .map_err(|e| es_error(summary.indexed, e))?;
    }
    reader
        .await
        .map_err(|e| LoadError::Usage(format!("reading the inputs failed: {e}")))?;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// The newest `@timestamp` over every input, and the number of documents.
fn newest_event(files: &[InputFile], opts: &NormalizeOptions) -> (Option<DateTime<Utc>>, u64) {
    let mut newest = None;
    let mut count = 0;
    for file in files {
        for doc in DocumentReader::open(file, opts, None).flatten() {
            count += 1;
            if let Some(t) = event_time(&doc.value) {
                newest = newest.max(Some(t));
            }
        }
    }
    (newest, count)
}

fn event_time(doc: &Value) -> Option<DateTime<Utc>> {
    doc["@timestamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Fields that carry the event's own time and move with `--shift-to-now`.
const EVENT_TIME_FIELDS: [&str; 2] = [
    "/@timestamp",
    "/aws/cloudtrail/user_identity/session_context/creation_date",
];

fn prepare(mut doc: Value, shift: Option<TimeDelta>, now: DateTime<Utc>) -> Value {
    if let Some(shift) = shift {
        for pointer in EVENT_TIME_FIELDS {
            if let Some(field) = doc.pointer_mut(pointer) {
                let moved = field
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| timestamp(t.with_timezone(&Utc) + shift));
                if let Some(moved) = moved {
                    *field = Value::String(moved);
                }
            }
        }
    }
    // The integration's final pipeline stamps every document with its ingest time; rules
    // with `timestamp_override: event.ingested` (both shipped rules) select on it.
    if let Some(event) = doc.get_mut("event").and_then(Value::as_object_mut) {
        event.insert("ingested".into(), Value::String(timestamp(now)));
    }
    doc
}

fn read_batches(
    files: &[InputFile],
    opts: &NormalizeOptions,
    batch_size: usize,
    shift: Option<TimeDelta>,
    now: DateTime<Utc>,
    tx: &mpsc::Sender<Message>,
) {
    let mut batch = Vec::with_capacity(batch_size);
    for file in files {
        for item in DocumentReader::open(file, opts, None) {
            let message = match item {
                Err(problem) => Message::Problem(problem),
                Ok(doc) => {
                    let doc = prepare(doc.value, shift, now);
                    let event_id = doc["event"]["id"].as_str().map(str::to_string);
                    batch.push(Line {
                        json: doc.to_string(),
                        event_id,
                    });
                    if batch.len() < batch_size {
                        continue;
                    }
                    Message::Batch(std::mem::replace(
                        &mut batch,
                        Vec::with_capacity(batch_size),
                    ))
                }
            };
            // The receiver only goes away when the load failed; stop reading then.
            if tx.blocking_send(message).is_err() {
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.blocking_send(Message::Batch(batch));
    }
}

/// Bulk-create `lines`, retrying the items refused for a passing reason (429, 5xx) with the
/// client's backoff; rejections (other 4xx) are counted and reported, not retried.
async fn write_batch(
    client: &EsClient,
    opts: &LoadOptions,
    mut lines: Vec<Line>,
    refresh: bool,
    summary: &mut LoadSummary,
    progress: &dyn Progress,
) -> Result<(), EsError> {
    let policy = client.retry_policy().clone();
    let path = format!("/{}/_bulk", path_segment(&opts.index));
    let mut attempt = 0;
    while !lines.is_empty() {
        let mut body = String::new();
        for line in &lines {
            body.push_str("{\"create\":{}}\n");
            body.push_str(&line.json);
            body.push('\n');
        }
        let mut call = Call::new(
            format!("bulk-index {} documents into `{}`", lines.len(), opts.index),
            Method::Post,
            path.clone(),
        )
        .param("filter_path", "errors,items.*.status,items.*.error")
        .ndjson(body);
        if refresh {
            call = call.param("refresh", "wait_for");
        }
        let reply = client.send_ok(&call).await?;
        let items = reply["items"].as_array().cloned().unwrap_or_default();
        if items.len() != lines.len() {
            return Err(EsError::Response {
                what: call.what,
                message: format!(
                    "{} items in the reply for {} documents",
                    items.len(),
                    lines.len()
                ),
            });
        }
        let mut retry = Vec::new();
        let mut last_transient = String::new();
        for (item, line) in items.iter().zip(lines) {
            let result = item
                .as_object()
                .and_then(|o| o.values().next())
                .cloned()
                .unwrap_or(Value::Null);
            let status = result["status"].as_u64().unwrap_or(0) as u16;
            match status {
                200 | 201 => summary.indexed += 1,
                409 => summary.duplicates += 1,
                s if is_transient_status(s) => {
                    last_transient = format!("{s}: {}", error_reason(&result));
                    retry.push(line);
                }
                s => {
                    summary.rejected += 1;
                    if summary.rejections.len() < KEPT_REJECTIONS {
                        let who = line
                            .event_id
                            .as_deref()
                            .map(|id| format!("event {id}"))
                            .unwrap_or_else(|| "a document".into());
                        summary
                            .rejections
                            .push(format!("{who}: {s} {}", error_reason(&result)));
                    }
                }
            }
        }
        progress.advance((items.len() - retry.len()) as u64);
        lines = retry;
        if lines.is_empty() {
            break;
        }
        attempt += 1;
        if attempt >= policy.max_attempts {
            return Err(EsError::Status {
                what: format!("bulk-index into `{}`", opts.index),
                status: 429,
                reason: format!(
                    "{} documents still refused after {attempt} attempts (last: {last_transient}); \
                     the cluster is overloaded, try again later or with a smaller --batch-size",
                    lines.len()
                ),
            });
        }
        tokio::time::sleep(policy.backoff(attempt - 1)).await;
    }
    Ok(())
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn shifting_moves_event_times_and_stamps_ingest_time() {
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let doc = json!({"@timestamp": "2024-10-10T15:07:03.000Z", "event": {"id": "e"},
            "aws": {"cloudtrail": {"user_identity": {"session_context": {"creation_date": "2024-10-10T14:00:00.000Z"}}}}});
        let newest = Utc.with_ymd_and_hms(2024, 10, 10, 15, 7, 3).unwrap();
        let out = prepare(doc, Some(now - newest), now);
        assert_eq!(out["@timestamp"], "2026-01-01T00:00:00.000Z");
        assert_eq!(
            out["aws"]["cloudtrail"]["user_identity"]["session_context"]["creation_date"],
            "2025-12-31T22:52:57.000Z"
        );
        assert_eq!(out["event"]["ingested"], "2026-01-01T00:00:00.000Z");
        let unshifted = prepare(
            json!({"@timestamp": "2024-10-10T15:07:03.000Z", "event": {}}),
            None,
            now,
        );
        assert_eq!(unshifted["@timestamp"], "2024-10-10T15:07:03.000Z");
    }
}
