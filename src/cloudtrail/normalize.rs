//! One raw CloudTrail record to the ECS document Elastic's AWS integration indexes
//! (docs/cloudtrail-ecs.md §2, in processing order), or the Filebeat module's (§6).

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde_json::Value;

use super::doc::Doc;
use super::fields::FieldMask;
use super::javamap;
use super::node::{self, Node, Obj};
use super::processors::{categorize, console_login, grok_ip, tls, unique_resources};
use super::{Flavor, NormalizeOptions};

/// `ecs.version` the integration's pipeline (at the revision we follow) sets.
pub const ECS_VERSION: &str = "8.11.0";
/// Payload strings at least this long (UTF-16 units) get no `flattened` copy.
const FLATTENED_MAX: usize = 32766;

/// Keys every raw CloudTrail record has at least one of.
const RAW_KEYS: [&str; 4] = ["eventName", "eventSource", "eventTime", "eventVersion"];

/// What one record became.
#[derive(Debug, Clone, PartialEq)]
pub enum Normalized {
    /// An ECS document (normalized here, or passed through because it already was one).
    Event(Value),
    /// A CloudTrail digest record: integrity metadata, not an event. Skipped.
    Digest,
    /// An S3 delivery envelope (`{"Records": [...]}`) met where a record was expected; the
    /// reader splits it.
    Envelope,
}

/// Why one record could not be normalized.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RecordError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("not a CloudTrail record: expected an object, found {0}")]
    NotAnObject(&'static str),
    /// Elasticsearch's parser refuses duplicate keys, so the pipeline would fail too.
    #[error(
        "not a CloudTrail record or ECS document: none of eventName, eventSource, eventTime, \
         eventVersion, @timestamp"
    )]
    NotCloudTrail,
    #[error("duplicate key `{0}` (Elasticsearch's JSON parser rejects the record)")]
    DuplicateKey(String),
}

type Text<'a> = Option<std::borrow::Cow<'a, str>>;

/// The fields a scan's prefilter looks at, read without building the record.
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(rename = "eventSource", borrow, default)]
    source: Text<'a>,
    #[serde(rename = "eventName", borrow, default)]
    name: Text<'a>,
    #[serde(rename = "userIdentity", borrow, default)]
    identity: Option<PeekIdentity<'a>>,
    #[serde(rename = "userAgent", borrow, default)]
    user_agent: Text<'a>,
}

#[derive(serde::Deserialize)]
struct PeekIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    kind: Text<'a>,
    #[serde(rename = "accessKeyId", borrow, default)]
    access_key_id: Text<'a>,
}

/// Raw record fields the ECS document copies verbatim.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawFields<'a> {
    /// `eventSource` → `event.provider`.
    pub event_source: Option<&'a str>,
    /// `eventName` → `event.action`.
    pub event_name: Option<&'a str>,
    /// `userIdentity.type` → `aws.cloudtrail.user_identity.type`.
    pub identity_type: Option<&'a str>,
    /// `userIdentity.accessKeyId` → `aws.cloudtrail.user_identity.access_key_id`.
    pub access_key_id: Option<&'a str>,
    /// `userAgent` → `user_agent.original`.
    pub user_agent: Option<&'a str>,
}

/// Which fields of a raw record's document to build, from its verbatim-copied fields: `None`
/// builds nothing.
pub type FieldSelector = dyn Fn(&RawFields) -> Option<FieldMask> + Send + Sync;

/// Like [`normalize_record`], building only the fields `select` asks for; the mask used comes
/// back with the document ([`FieldMask::ALL`] for records taking the full path). A raw
/// CloudTrail record `select` rejects is only checked to be a record (`Ok(None)`), not
/// normalized. Anything unusual (not an object, neither field present, a field that is not a
/// string, invalid JSON) takes the full path, so every problem is still reported; only
/// duplicate keys go unnoticed in rejected records.
pub fn normalize_record_selected(
    raw: &[u8],
    opts: &NormalizeOptions,
    select: impl Fn(&RawFields) -> Option<FieldMask>,
) -> Result<Option<(Normalized, FieldMask)>, RecordError> {
    let mut mask = FieldMask::ALL;
    if let Ok(peek) = node::from_json::<Peek>(raw)
        && (peek.source.is_some() || peek.name.is_some())
    {
        match select(&RawFields {
            event_source: peek.source.as_deref(),
            event_name: peek.name.as_deref(),
            identity_type: peek.identity.as_ref().and_then(|i| i.kind.as_deref()),
            access_key_id: peek
                .identity
                .as_ref()
                .and_then(|i| i.access_key_id.as_deref()),
            user_agent: peek.user_agent.as_deref(),
        }) {
            None => return Ok(None),
            Some(selected) => mask = selected,
        }
    }
    normalize(raw, opts, mask).map(Some)
}

/// Normalize one record given as JSON text.
pub fn normalize_record(raw: &[u8], opts: &NormalizeOptions) -> Result<Normalized, RecordError> {
    normalize(raw, opts, FieldMask::ALL).map(|(normalized, _)| normalized)
}

/// The record's document and the fields it holds.
fn normalize(
    raw: &[u8],
    opts: &NormalizeOptions,
    mask: FieldMask,
) -> Result<(Normalized, FieldMask), RecordError> {
    let whole = |normalized| Ok((normalized, FieldMask::ALL));
    let mut root = node::parse(raw).map_err(|e| RecordError::Json(e.to_string()))?;
    let Node::Map(obj) = &root else {
        return Err(RecordError::NotAnObject(root.kind()));
    };
    if let Some(key) = first_duplicate(obj) {
        return Err(RecordError::DuplicateKey(key.to_string()));
    }
    if is_digest(obj) {
        return whole(Normalized::Digest);
    }
    if obj.get("Records").is_some() && obj.get("eventName").is_none() {
        return whole(Normalized::Envelope);
    }
    if is_ecs_document(obj) {
        return whole(Normalized::Event(root.to_json()));
    }
    if !RAW_KEYS.iter().any(|k| obj.get(k).is_some()) {
        return Err(RecordError::NotCloudTrail);
    }
    // The `json` processor parsed `event.original`; the drop script then ran over the whole
    // document, including `json`.
    if opts.flavor == Flavor::Integration {
        root.drop_empty();
    }
    let original = opts
        .preserve_original
        .then(|| String::from_utf8_lossy(raw).into_owned());
    let Node::Map(json) = &root else {
        return Err(RecordError::NotAnObject(root.kind()));
    };
    Ok((Normalized::Event(build(json, original, opts, mask)), mask))
}

fn first_duplicate<'a>(obj: &'a Obj) -> Option<&'a str> {
    if let Some(key) = obj.duplicate_key() {
        return Some(key);
    }
    obj.entries.iter().find_map(|e| match &e.value {
        Node::Map(inner) => first_duplicate(inner),
        Node::List(items) => items.iter().find_map(|item| match item {
            Node::Map(inner) => first_duplicate(inner),
            _ => None,
        }),
        _ => None,
    })
}

fn is_digest(obj: &Obj) -> bool {
    obj.get("eventName").is_none()
        && (obj.get("digestS3Object").is_some() || obj.get("digestStartTime").is_some())
}

/// An ECS document (e.g. exported from Elasticsearch or printed by `normalize`) rather than
/// a raw CloudTrail record.
fn is_ecs_document(obj: &Obj) -> bool {
    if RAW_KEYS.iter().any(|k| obj.get(k).is_some()) {
        return false;
    }
    ["@timestamp", "ecs", "event", "data_stream"]
        .iter()
        .any(|k| obj.get(k).is_some())
}

/// A value as a Mustache template (`'{{json.x}}'`) renders it: the text, not the JSON.
fn template(node: &Node) -> String {
    match node {
        Node::Str(s) => s.to_string(),
        other => javamap::render(other),
    }
}

/// The `date` processor with format ISO8601, written as Elasticsearch writes it.
fn iso8601(node: &Node) -> Option<String> {
    let text = node.as_str()?;
    let utc: DateTime<Utc> = match DateTime::parse_from_rfc3339(text) {
        Ok(t) => t.with_timezone(&Utc),
        Err(_) => [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%dT%H:%M:%S",
            "%Y-%m-%d %H:%M:%S%.f",
        ]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())?
        .and_utc(),
    };
    Some(utc.to_rfc3339_opts(SecondsFormat::Millis, true))
}

fn build(json: &Obj, original: Option<String>, opts: &NormalizeOptions, mask: FieldMask) -> Value {
    let integration = opts.flavor == Flavor::Integration;
    let get = |path: &[&str]| -> Option<&Node> {
        let (first, rest) = path.split_first()?;
        rest.iter().try_fold(json.get(first)?, |n, k| n.get(k))
    };
    let mut doc = Doc::new(mask);
    let copy = |doc: &mut Doc, from: &[&str], to: &str| {
        if doc.wants(to)
            && let Some(n) = get(from)
        {
            doc.set(to, n.to_json());
        }
    };

    if let Some(original) = original {
        doc.set("event.original", Value::String(original));
        doc.set("tags", serde_json::json!(["preserve_original_event"]));
    }
    if let Some(read_time) = &opts.ingest_time {
        // `@timestamp` arrives as the time the record was read; `event.created` keeps it.
        doc.set("@timestamp", Value::String(read_time.clone()));
        if integration {
            doc.set("event.created", Value::String(read_time.clone()));
        }
    }
    if integration {
        doc.set("ecs.version", Value::String(ECS_VERSION.into()));
    }
    if let Some(t) = get(&["eventTime"]).and_then(iso8601) {
        doc.set("@timestamp", Value::String(t));
    }

    copy(&mut doc, &["eventVersion"], "aws.cloudtrail.event_version");
    let uid = ["userIdentity"];
    copy(
        &mut doc,
        &[uid[0], "type"],
        "aws.cloudtrail.user_identity.type",
    );
    if integration && let Some(name) = get(&[uid[0], "userName"]) {
        doc.append("related.user", Value::String(template(name)), false);
    }
    copy(&mut doc, &[uid[0], "userName"], "user.name");
    copy(&mut doc, &[uid[0], "principalId"], "user.id");
    copy(
        &mut doc,
        &[uid[0], "arn"],
        "aws.cloudtrail.user_identity.arn",
    );
    copy(&mut doc, &[uid[0], "accountId"], "cloud.account.id");
    copy(
        &mut doc,
        &[uid[0], "accessKeyId"],
        "aws.cloudtrail.user_identity.access_key_id",
    );
    copy(
        &mut doc,
        &[uid[0], "sessionContext", "attributes", "mfaAuthenticated"],
        "aws.cloudtrail.user_identity.session_context.mfa_authenticated",
    );
    if let Some(t) =
        get(&[uid[0], "sessionContext", "attributes", "creationDate"]).and_then(iso8601)
    {
        doc.set(
            "aws.cloudtrail.user_identity.session_context.creation_date",
            Value::String(t),
        );
    }
    let issuer = [uid[0], "sessionContext", "sessionIssuer"];
    let issuer_field = |k: &'static str| [issuer[0], issuer[1], issuer[2], k];
    // Field names spelled out, not formatted: this runs for every record.
    copy(
        &mut doc,
        &issuer_field("type"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.type",
    );
    // Assumed roles: the role name replaces the user name.
    copy(&mut doc, &issuer_field("userName"), "user.name");
    copy(
        &mut doc,
        &issuer_field("principalId"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.principal_id",
    );
    copy(
        &mut doc,
        &issuer_field("arn"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.arn",
    );
    copy(
        &mut doc,
        &issuer_field("accountId"),
        "aws.cloudtrail.user_identity.session_context.session_issuer.account_id",
    );
    copy(
        &mut doc,
        &[uid[0], "invokedBy"],
        "aws.cloudtrail.user_identity.invoked_by",
    );

    copy(&mut doc, &["eventSource"], "event.provider");
    if let Some(name) = get(&["eventName"]).map(template).filter(|s| !s.is_empty()) {
        doc.set("event.action", Value::String(name));
    }
    copy(
        &mut doc,
        &["eventCategory"],
        "aws.cloudtrail.event_category",
    );
    match get(&["awsRegion"]) {
        Some(Node::Str(r)) if r.is_empty() => {}
        Some(region) => doc.set("cloud.region", region.to_json()),
        None => {}
    }
    if let Some(address) = get(&["sourceIPAddress"]) {
        doc.set("source.address", address.to_json());
        // grok `^%{IP:source.ip}$`: only a whole IPv4 or IPv6 literal.
        if let Some(text) = address.as_str()
            && grok_ip(text)
        {
            doc.set("source.ip", Value::String(text.to_string()));
        }
    }
    // The user_agent processor's parse (name, version, os, device) needs its regex database;
    // `original` is what every document has.
    copy(&mut doc, &["userAgent"], "user_agent.original");
    copy(&mut doc, &["errorCode"], "aws.cloudtrail.error_code");
    copy(&mut doc, &["errorMessage"], "aws.cloudtrail.error_message");

    for (source, text_field, flat_field) in [
        (
            "requestParameters",
            "aws.cloudtrail.request_parameters",
            "aws.cloudtrail.flattened.request_parameters",
        ),
        (
            "responseElements",
            "aws.cloudtrail.response_elements",
            "aws.cloudtrail.flattened.response_elements",
        ),
        (
            "additionalEventData",
            "aws.cloudtrail.additional_eventdata",
            "aws.cloudtrail.flattened.additional_eventdata",
        ),
        (
            "serviceEventDetails",
            "aws.cloudtrail.service_event_details",
            "aws.cloudtrail.flattened.service_event_details",
        ),
    ] {
        if !doc.wants(text_field) && !doc.wants(flat_field) {
            continue;
        }
        let Some(payload) = get(&[source]).filter(|n| **n != Node::Null) else {
            continue;
        };
        let text = javamap::render(payload);
        let short = text.encode_utf16().count() < FLATTENED_MAX;
        doc.set(text_field, Value::String(text));
        if (short || !integration) && doc.wants(flat_field) {
            doc.set(flat_field, payload.to_json());
        }
    }

    let request_id = if integration {
        "requestID"
    } else {
        "requestId"
    };
    copy(&mut doc, &[request_id], "aws.cloudtrail.request_id");
    copy(&mut doc, &["eventID"], "event.id");
    copy(&mut doc, &["eventType"], "aws.cloudtrail.event_type");
    copy(&mut doc, &["apiVersion"], "aws.cloudtrail.api_version");
    copy(
        &mut doc,
        &["managementEvent"],
        "aws.cloudtrail.management_event",
    );
    copy(&mut doc, &["readOnly"], "aws.cloudtrail.read_only");
    if integration
        && doc.wants("aws.cloudtrail.resources")
        && let Some(Node::List(resources)) = get(&["resources"])
    {
        doc.set("aws.cloudtrail.resources", unique_resources(resources));
    }
    copy(
        &mut doc,
        &["recipientAccountId"],
        "aws.cloudtrail.recipient_account_id",
    );
    copy(
        &mut doc,
        &["sharedEventId"],
        "aws.cloudtrail.shared_event_id",
    );
    copy(
        &mut doc,
        &["vpcEndpointId"],
        "aws.cloudtrail.vpc_endpoint_id",
    );

    let request = |k: &str| get(&["requestParameters", k]);
    for key in ["userName", "newUserName"] {
        if let Some(name) = request(key) {
            let value = if integration {
                Value::String(template(name))
            } else {
                name.to_json()
            };
            doc.append("related.user", value, !integration);
        }
    }
    if get(&["eventName"]).and_then(Node::as_str) == Some("ConsoleLogin") {
        console_login(&mut doc, get(&["additionalEventData"]));
    }
    // From the record, not the document: the document may leave these fields out.
    let failed = get(&["errorCode"]).is_some() || get(&["errorMessage"]).is_some();
    let action = get(&["eventName"]).map(template).filter(|s| !s.is_empty());
    categorize(
        &mut doc,
        integration,
        failed,
        action,
        get(&["responseElements", "ConsoleLogin"]),
    );

    if integration
        && doc.wants("aws.cloudtrail.flattened.insight_details")
        && let Some(details) = get(&["insightDetails"])
    {
        doc.set(
            "aws.cloudtrail.flattened.insight_details",
            details.to_json(),
        );
    }
    let response = |k: &[&str]| get(&[&["responseElements"], k].concat()).map(template);
    for (value, field) in [
        (response(&["group", "groupId"]), "group.id"),
        (response(&["user", "userId"]), "user.target.id"),
        (request("newUserName").map(template), "user.changes.name"),
        (request("groupName").map(template), "group.name"),
        (request("userName").map(template), "user.target.name"),
    ] {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            doc.set(field, Value::String(v));
        }
    }
    if integration {
        tls(&mut doc, get(&["tlsDetails"]));
    }

    // Constant fields the index mapping supplies (constant_keyword) and Elastic Agent writes.
    doc.set("event.dataset", Value::String("aws.cloudtrail".into()));
    doc.set("event.module", Value::String("aws".into()));
    if integration {
        doc.set("data_stream.type", Value::String("logs".into()));
        doc.set(
            "data_stream.dataset",
            Value::String("aws.cloudtrail".into()),
        );
        doc.set(
            "data_stream.namespace",
            Value::String(opts.namespace.clone()),
        );
    }
    doc.into_value()
}
