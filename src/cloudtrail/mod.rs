//! Raw CloudTrail records to the ECS documents Elastic's AWS integration indexes, so an
//! offline scan sees what Elasticsearch would hold (docs/cloudtrail-ecs.md).
//!
//! - [`read`] holds the inputs (files, directories, stdin; gzip by magic bytes; digest files skipped)
//!   and [`DocumentReader`], which streams one input's documents with its problems.
//! - [`split`] is the streaming record splitter (envelope, JSON array, NDJSON).
//! - [`normalize`] is the ingest pipeline, one record at a time; `processors` holds its steps
//!   that derive fields from others (categorisation, TLS, console login, resources).
//! - [`layout`] is CloudTrail's delivery layout in a bucket, for choosing files by day.
//! - [`javamap`] renders Java `HashMap.toString()`, the text of `aws.cloudtrail.request_parameters`.
//!
//! ```
//! use rule_runner::cloudtrail::{normalize_record, Normalized, NormalizeOptions};
//! let raw = br#"{"eventVersion":"1.08","eventTime":"2024-10-10T15:07:03Z",
//!   "eventSource":"lambda.amazonaws.com","eventName":"AddPermission20150331v2",
//!   "requestParameters":{"action":"lambda:InvokeFunction","functionName":"f","principal":"*","statementId":"s"}}"#;
//! let Normalized::Event(doc) = normalize_record(raw, &NormalizeOptions::default()).unwrap() else { panic!() };
//! assert_eq!(doc["aws"]["cloudtrail"]["request_parameters"],
//!            "{principal=*, functionName=f, statementId=s, action=lambda:InvokeFunction}");
//! assert_eq!(doc["event"]["outcome"], "success");
//! ```

mod categories;
mod doc;
pub mod fields;
pub mod javamap;
pub mod layout;
pub mod node;
pub mod normalize;
mod processors;
pub mod read;
pub mod split;

pub use fields::FieldMask;
pub use layout::DayRange;
pub use normalize::{
    ECS_VERSION, FieldSelector, Normalized, RawFields, RecordError, normalize_record,
    normalize_record_selected,
};
pub use read::{
    Discovered, Document, DocumentReader, Input, InputFile, Problem, ReadStats, RemoteInput,
    RemoteObject, discover, discover_in,
};

/// Which pipeline's documents to reproduce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Flavor {
    /// Elastic Agent's AWS integration (`logs-aws.cloudtrail-*`).
    #[default]
    Integration,
    /// The older Filebeat `aws` module (`filebeat-*`): no empty-value drop, no
    /// `data_stream.*`, `event.type` a string, no `tls.*` or `resources`.
    Filebeat,
}

/// How records are normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeOptions {
    pub flavor: Flavor,
    /// Keep the raw record in `event.original` and tag `preserve_original_event` (the
    /// integration's "preserve original event" option).
    pub preserve_original: bool,
    /// The time the record was read: `event.created`, and `@timestamp` when `eventTime`
    /// is missing or unparseable. `None` leaves both out (keeps output reproducible).
    pub ingest_time: Option<String>,
    /// `data_stream.namespace` (integration flavor).
    pub namespace: String,
}

impl Default for NormalizeOptions {
    fn default() -> Self {
        NormalizeOptions {
            flavor: Flavor::Integration,
            preserve_original: false,
            ingest_time: None,
            namespace: "default".into(),
        }
    }
}
