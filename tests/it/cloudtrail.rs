//! Tests for the `cloudtrail` area: the normalizer against Elastic's own pipeline fixtures and
//! the `request_parameters` vectors, the readers over every input form, and `normalize`.

use std::collections::BTreeMap;
use std::io::Write;

use rule_runner::cloudtrail::{
    DocumentReader, Flavor, Input, InputFile, NormalizeOptions, Normalized, RecordError, discover,
    normalize_record,
};
use serde_json::{Value, json};

use crate::util::{data, run_cli};

fn event(raw: &[u8], opts: &NormalizeOptions) -> Value {
    match normalize_record(raw, opts) {
        Ok(Normalized::Event(doc)) => doc,
        other => panic!("expected an event, got {other:?}"),
    }
}

/// Dotted path → leaf value (arrays are leaves).
fn flatten(prefix: &str, value: &Value, out: &mut BTreeMap<String, Value>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&path, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// Fields we do not reproduce, for every fixture: the GeoIP and ASN lookups and the
/// user-agent parse need databases we do not ship; the `entity` sub-pipeline (newer
/// package revisions) adds read-only enrichment no rule here uses.
const NOT_REPRODUCED: &[&str] = &[
    "source.geo.",
    "source.as.",
    "user_agent.name",
    "user_agent.version",
    "user_agent.device.",
    "user_agent.os.",
    "actor.entity.",
    "target.entity.",
    "user.entity.",
    "related.entity",
    "entity.",
];

/// Compare our document with a fixture's expected one, field by field.
/// `revision_only` lists fields the fixture's (newer) pipeline revision adds.
fn assert_fixture(name: &str, revision_only: &[&str]) {
    let raw = std::fs::read(data(&format!(
        "cloudtrail/elastic-pipeline-fixtures/{name}"
    )))
    .unwrap();
    let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
    let expected_file = data(&format!(
        "cloudtrail/elastic-pipeline-fixtures/{name}-expected.json"
    ));
    let expected: Value = serde_json::from_slice(&std::fs::read(expected_file).unwrap()).unwrap();
    let opts = NormalizeOptions {
        preserve_original: true,
        // The fixtures' fixed read time.
        ingest_time: Some("2021-11-11T01:02:03.123456789Z".into()),
        ..NormalizeOptions::default()
    };
    let mut ours = BTreeMap::new();
    flatten("", &event(raw, &opts), &mut ours);
    let mut theirs = BTreeMap::new();
    flatten("", &expected["expected"][0], &mut theirs);
    // The test harness bypasses Elastic Agent, which adds these (and the mapping has them
    // as constants); we always add them.
    for constant in [
        "event.dataset",
        "event.module",
        "data_stream.type",
        "data_stream.dataset",
        "data_stream.namespace",
    ] {
        assert!(
            ours.remove(constant).is_some(),
            "{name}: {constant} missing"
        );
    }
    // `actor_target_mapping` is an input option of newer revisions.
    if let Some(Value::Array(tags)) = theirs.get_mut("tags") {
        tags.retain(|t| t != "actor_target_mapping");
    }
    let skip = |k: &str| {
        NOT_REPRODUCED
            .iter()
            .chain(revision_only)
            .any(|p| k == *p || (p.ends_with('.') && k.starts_with(p)))
    };
    theirs.retain(|k, _| !skip(k));
    ours.retain(|k, _| !skip(k));
    for (k, v) in &theirs {
        assert_eq!(ours.get(k), Some(v), "{name}: field {k}");
    }
    for k in ours.keys() {
        assert!(
            theirs.contains_key(k),
            "{name}: we add {k} = {}, the fixture has none",
            ours[k]
        );
    }
    assert!(theirs.contains_key("event.original"));
}

#[test]
fn add_permission_fixture_field_for_field() {
    // Newer revision than the pipeline we follow: `user.email` from an `@` in user.name, and
    // `related.user` also gets `user.id` (documented in the README).
    assert_fixture(
        "test-add-permission-json.log",
        &["user.email", "related.user"],
    );
}

#[test]
fn create_lambda_fixture_field_for_field() {
    assert_fixture("test-create-lambda-json.log", &[]);
}

#[test]
fn update_lambda_fixture_field_for_field() {
    // Newest revision: `cloud.provider` and `cloud.service.name`.
    assert_fixture(
        "test-update-lambda-json.log",
        &["cloud.provider", "cloud.service.name"],
    );
}

#[test]
fn request_parameters_vectors_pass() {
    let text = std::fs::read_to_string(data("cloudtrail/request_parameters_vectors.json")).unwrap();
    let vectors: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(vectors.len(), 73);
    for (i, v) in vectors.iter().enumerate() {
        let flavor = match v["mode"].as_str().unwrap() {
            "integration" => Flavor::Integration,
            "filebeat" => Flavor::Filebeat,
            other => panic!("mode {other}"),
        };
        let field = v["field"].as_str().unwrap();
        let key = match field {
            "aws.cloudtrail.request_parameters" => "requestParameters",
            "aws.cloudtrail.response_elements" => "responseElements",
            other => panic!("field {other}"),
        };
        // Embed the payload's exact text: key order and number spelling matter.
        let raw = format!(
            r#"{{"eventVersion":"1.08","eventName":"Test","{key}":{}}}"#,
            v["json"].as_str().unwrap()
        );
        let opts = NormalizeOptions {
            flavor,
            ..NormalizeOptions::default()
        };
        let doc = event(raw.as_bytes(), &opts);
        let got = doc.pointer(&format!("/{}", field.replace('.', "/")));
        assert_eq!(
            got,
            v.get("expected").filter(|e| !e.is_null()),
            "vector {i}: {}",
            v["json"]
        );
    }
}

#[test]
fn outcome_source_ip_and_user_name_rules() {
    let opts = NormalizeOptions::default();
    let doc = event(
        br#"{"eventVersion":"1.08","eventTime":"2024-01-02T03:04:05.5Z","eventName":"AddPermission20150331v2",
        "eventSource":"lambda.amazonaws.com","errorCode":"","sourceIPAddress":"lambda.amazonaws.com",
        "userIdentity":{"type":"AssumedRole","userName":"u","sessionContext":{"sessionIssuer":{"userName":"role-x"}}}}"#,
        &opts,
    );
    assert_eq!(doc["@timestamp"], "2024-01-02T03:04:05.500Z");
    // An empty errorCode is dropped before the outcome is decided.
    assert_eq!(doc["event"]["outcome"], "success");
    assert_eq!(doc["source"]["address"], "lambda.amazonaws.com");
    assert!(doc["source"].get("ip").is_none());
    assert_eq!(doc["user"]["name"], "role-x");
    assert_eq!(doc["event"]["type"], json!(["info"]));
    assert!(doc["event"].get("category").is_none());
    assert_eq!(doc["data_stream"]["dataset"], "aws.cloudtrail");

    let failed = event(
        br#"{"eventName":"CreateUser","errorMessage":"denied","sourceIPAddress":"2001:db8::1"}"#,
        &opts,
    );
    assert_eq!(failed["event"]["outcome"], "failure");
    assert_eq!(failed["source"]["ip"], "2001:db8::1");
    // Grok's IPv4 pattern takes leading zeros (anonymized data has them); names are no IPs.
    for (address, ip) in [
        ("035.249.253.232", true),
        ("256.1.1.1", false),
        ("fe80::1%eth0", true),
        ("AWS Internal", false),
    ] {
        let raw = format!(r#"{{"eventName":"X","sourceIPAddress":"{address}"}}"#);
        let doc = event(raw.as_bytes(), &opts);
        assert_eq!(doc["source"].get("ip").is_some(), ip, "{address}");
    }
    assert_eq!(failed["event"]["category"], json!(["iam"]));
    assert_eq!(failed["event"]["type"], json!(["user", "creation"]));

    let login = event(
        br#"{"eventName":"ConsoleLogin","responseElements":{"ConsoleLogin":"Failure"},
        "additionalEventData":{"MFAUsed":"No","MobileVersion":"No","LoginTo":"https://console"}}"#,
        &opts,
    );
    assert_eq!(login["event"]["outcome"], "failure");
    assert_eq!(
        login["aws"]["cloudtrail"]["console_login"]["additional_eventdata"],
        json!({"mobile_version": false, "login_to": "https://console", "mfa_used": false})
    );
}

#[test]
fn filebeat_flavor_differences() {
    let raw = br#"{"eventName":"X","requestID":"r","requestParameters":{"a":"","b":null},"tlsDetails":{"tlsVersion":"TLSv1.2"}}"#;
    let fb = event(
        raw,
        &NormalizeOptions {
            flavor: Flavor::Filebeat,
            ..Default::default()
        },
    );
    assert_eq!(
        fb["aws"]["cloudtrail"]["request_parameters"],
        "{a=, b=null}"
    );
    assert_eq!(fb["event"]["type"], "info");
    assert!(fb.get("data_stream").is_none());
    assert!(fb.get("tls").is_none());
    assert!(fb["aws"]["cloudtrail"].get("request_id").is_none());
    assert_eq!(fb["event"]["dataset"], "aws.cloudtrail");
    let int = event(raw, &NormalizeOptions::default());
    assert!(int["aws"]["cloudtrail"].get("request_parameters").is_none());
    assert_eq!(int["tls"]["version"], "1.2");
    assert_eq!(int["tls"]["version_protocol"], "tls");
    assert_eq!(int["aws"]["cloudtrail"]["request_id"], "r");
}

#[test]
fn resources_are_renamed_and_deduplicated() {
    let doc = event(
        br#"{"eventName":"X","resources":[{"ARN":"arn:a","accountId":"1","type":"T"},{"ARN":"arn:a","accountId":"1","type":"T"},{"ARN":"arn:b","type":"T"}]}"#,
        &NormalizeOptions::default(),
    );
    let resources = doc["aws"]["cloudtrail"]["resources"].as_array().unwrap();
    assert_eq!(resources.len(), 2);
    assert!(resources.contains(&json!({"arn": "arn:a", "account_id": "1", "type": "T"})));
}

#[test]
fn bad_records_are_errors_not_panics() {
    let opts = NormalizeOptions::default();
    assert!(matches!(
        normalize_record(b"[1]", &opts),
        Err(RecordError::NotAnObject(_))
    ));
    assert!(matches!(
        normalize_record(b"{\"eventName\":", &opts),
        Err(RecordError::Json(_))
    ));
    assert!(matches!(
        normalize_record(br#"{"eventName":"a","eventName":"b"}"#, &opts),
        Err(RecordError::DuplicateKey(_))
    ));
    assert!(matches!(
        normalize_record(b"{\"x\":1}", &opts),
        Err(RecordError::NotCloudTrail)
    ));
    assert!(matches!(
        normalize_record(b"{\"eventName\":\"\xff\"}", &opts),
        Err(RecordError::Json(_))
    ));
    assert_eq!(
        normalize_record(br#"{"digestStartTime":"x","digestS3Object":"y"}"#, &opts),
        Ok(Normalized::Digest)
    );
    // An ECS document passes through untouched.
    let ecs = br#"{"@timestamp":"2024-01-01T00:00:00.000Z","event":{"action":"A"}}"#;
    assert_eq!(
        event(ecs, &opts),
        serde_json::from_slice::<Value>(ecs).unwrap()
    );
}

fn read_all(path: &std::path::Path) -> (Vec<Value>, Vec<String>) {
    let file = InputFile {
        input: Input::File(path.to_path_buf()),
        size: None,
    };
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for item in DocumentReader::open(&file, &NormalizeOptions::default(), None) {
        match item {
            Ok(d) => docs.push(d.value),
            Err(p) => problems.push(p.to_string()),
        }
    }
    (docs, problems)
}

#[test]
fn every_input_form_reads_the_same_records() {
    let dir = tempfile::tempdir().unwrap();
    let stratus = data("cloudtrail/stratus-red-team/aws.persistence.lambda-backdoor-function.json");
    let records: Vec<Value> = serde_json::from_slice(&std::fs::read(&stratus).unwrap()).unwrap();
    let ndjson: String = records.iter().map(|r| format!("{r}\n")).collect();
    let envelope = json!({"Records": records}).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(envelope.as_bytes()).unwrap();
    let normalized: String = records
        .iter()
        .map(
            |r| match normalize_record(r.to_string().as_bytes(), &NormalizeOptions::default()) {
                Ok(Normalized::Event(d)) => format!("{d}\n"),
                other => panic!("{other:?}"),
            },
        )
        .collect();
    // A gzip file with a misleading name: compression is detected by magic bytes.
    for (name, bytes) in [
        ("a.ndjson", ndjson.into_bytes()),
        ("b.json", envelope.into_bytes()),
        ("c.json", gz.finish().unwrap()),
        ("d.jsonl", normalized.into_bytes()),
    ] {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let (array_docs, problems) = read_all(&stratus);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(array_docs.len(), records.len());
    for name in ["a.ndjson", "b.json", "c.json", "d.jsonl"] {
        let (docs, problems) = read_all(&dir.path().join(name));
        assert!(problems.is_empty(), "{name}: {problems:?}");
        assert_eq!(docs, array_docs, "{name}");
    }
}

#[test]
fn discovery_recurses_sorts_and_skips_digests_and_non_json() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("AWSLogs/1/CloudTrail/us-east-1/2024/01/01");
    let digest = dir
        .path()
        .join("AWSLogs/1/CloudTrail-Digest/us-east-1/2024/01/01");
    std::fs::create_dir_all(&nested).unwrap();
    std::fs::create_dir_all(&digest).unwrap();
    std::fs::write(nested.join("b.json.gz"), b"").unwrap();
    std::fs::write(nested.join("a.json"), b"").unwrap();
    std::fs::write(nested.join("README.txt"), b"").unwrap();
    std::fs::write(digest.join("d.json.gz"), b"").unwrap();
    let found = discover(&[dir.path().to_path_buf(), dir.path().join("missing")]);
    let names: Vec<String> = found.files.iter().map(|f| f.input.to_string()).collect();
    assert_eq!(names.len(), 2);
    assert!(names[0].ends_with("a.json") && names[1].ends_with("b.json.gz"));
    assert_eq!(found.digest_files.len(), 1);
    assert_eq!(found.problems.len(), 1);
    assert!(found.problems[0].to_string().contains("missing"));
}

#[test]
fn a_truncated_file_keeps_the_records_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.json");
    std::fs::write(
        &path,
        br#"{"Records":[{"eventName":"A"},{"eventName":"B"},{"eventNa"#,
    )
    .unwrap();
    let (docs, problems) = read_all(&path);
    assert_eq!(docs.len(), 2);
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].contains("record 2") && problems[0].contains("truncated"),
        "{}",
        problems[0]
    );
}

#[test]
fn normalize_command_prints_ndjson() {
    let out = run_cli(&[
        "normalize",
        data("cloudtrail/stratus-red-team/s3-format/aws.persistence.lambda-backdoor-function.json.gz")
            .to_str()
            .unwrap(),
    ]);
    assert_exit!(out, 0);
    let docs: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!docs.is_empty());
    assert!(docs.iter().any(|d| d["event"]["action"] == "AddPermission20150331v2"
        && d["aws"]["cloudtrail"]["request_parameters"]
            == "{principal=*, functionName=stratus-red-team-backdoor-f-func, statementId=backdoor, action=lambda:InvokeFunction}"));
}

#[test]
fn normalize_command_reports_bad_input_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, b"{\"Records\":[{\"eventName\":\"A\"}, 7]}").unwrap();
    let out = run_cli(&["normalize", bad.to_str().unwrap()]);
    assert_exit!(out, 2);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("bad.json: record 1") && stderr.contains("found a number"),
        "{stderr}"
    );
}

#[test]
fn normalize_reads_stdin() {
    let out = crate::util::run_cli_with_stdin(
        &["normalize", "--flavor", "filebeat", "-"],
        br#"[{"eventName":"RunInstances","eventTime":"2024-01-01T00:00:00Z"}]"#,
    );
    assert_exit!(out, 0);
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["event"]["action"], "RunInstances");
    assert_eq!(doc["event"]["type"], "info");
    assert_eq!(doc["@timestamp"], "2024-01-01T00:00:00.000Z");
}
