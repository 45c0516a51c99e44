//! Helpers for talking to a wiremock server as if it were Elasticsearch.
#![allow(dead_code)] // each test module uses a different subset

use std::time::Duration;

use rule_runner::elasticsearch::{ConnectionConfig, EsClient, RetryPolicy};
use serde_json::{Value, json};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// Retries with pauses of a millisecond or two, so retry tests stay fast.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(2),
    }
}

/// A client for the mock server, no credentials.
pub fn client_for(server: &MockServer) -> EsClient {
    client_for_uri(&server.uri())
}

/// `GET /` as an 8.17 node answers it.
pub fn root_info() -> Value {
    json!({
        "name": "es01",
        "cluster_name": "rule-runner-demo",
        "cluster_uuid": "3O5bN0xSRNmBbhQ_BBzC3w",
        "version": {
            "number": "8.17.0",
            "build_flavor": "default",
            "build_type": "docker",
            "build_hash": "2b6a7fed44faa321997703718f07ee0420804b41",
            "build_date": "2024-12-11T12:08:05.663969764Z",
            "build_snapshot": false,
            "lucene_version": "9.12.0",
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0"
        },
        "tagline": "You Know, for Search"
    })
}

/// An Elasticsearch error reply: `{"error": {"root_cause": [...], "type", "reason"}, "status"}`.
pub fn es_error(status: u16, ty: &str, reason: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "error": {
            "root_cause": [{"type": ty, "reason": reason}],
            "type": ty,
            "reason": reason
        },
        "status": status
    }))
}

/// The 401 a secured cluster answers to wrong or missing credentials.
pub fn unauthorized() -> ResponseTemplate {
    let header = json!({"WWW-Authenticate": [
        "Basic realm=\"security\", charset=\"UTF-8\"",
        "Bearer realm=\"security\"",
        "ApiKey"
    ]});
    ResponseTemplate::new(401)
        .insert_header(
            "WWW-Authenticate",
            "Basic realm=\"security\", charset=\"UTF-8\"",
        )
        .set_body_json(json!({
            "error": {
                "root_cause": [{"type": "security_exception",
                    "reason": "unable to authenticate user [rule_runner] for REST request [/]",
                    "header": header}],
                "type": "security_exception",
                "reason": "unable to authenticate user [rule_runner] for REST request [/]",
                "header": header
            },
            "status": 401
        }))
}

/// The JSON body of a received request.
pub fn body_json(request: &wiremock::Request) -> Value {
    serde_json::from_slice(&request.body).unwrap()
}

/// A small in-memory stand-in for the index-administration APIs `setup` and `run` use:
/// `GET /`, index templates, index existence and creation, mappings. It keeps state, so
/// running `setup` twice shows what the second run changes (nothing).
#[derive(Clone, Default)]
pub struct AdminCluster {
    state: std::sync::Arc<std::sync::Mutex<AdminState>>,
}

#[derive(Default)]
struct AdminState {
    templates: std::collections::BTreeMap<String, Value>,
    /// Index name to its mapping.
    indices: std::collections::BTreeMap<String, Value>,
}

impl AdminCluster {
    pub fn template(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().templates.get(name).cloned()
    }
    pub fn set_template(&self, name: &str, template: Value) {
        self.state
            .lock()
            .unwrap()
            .templates
            .insert(name.into(), template);
    }
    pub fn mapping(&self, index: &str) -> Option<Value> {
        self.state.lock().unwrap().indices.get(index).cloned()
    }
    pub fn set_index(&self, index: &str, mapping: Value) {
        self.state
            .lock()
            .unwrap()
            .indices
            .insert(index.into(), mapping);
    }
}

impl wiremock::Respond for AdminCluster {
    fn respond(&self, request: &wiremock::Request) -> ResponseTemplate {
        let mut state = self.state.lock().unwrap();
        let path = request.url.path().trim_start_matches('/').to_string();
        let parts: Vec<&str> = path.split('/').collect();
        let method = request.method.as_str();
        match (method, parts.as_slice()) {
            ("GET", [""]) => ResponseTemplate::new(200).set_body_json(root_info()),
            ("GET", ["_index_template", name]) => match state.templates.get(*name) {
                Some(t) => {
                    // Elasticsearch normalizes what it stores: settings come back as strings.
                    let mut stored = t.clone();
                    if let Some(shards) =
                        stored.pointer_mut("/template/settings/index/number_of_shards")
                    {
                        *shards = Value::String(shards.to_string());
                    }
                    stored["composed_of"] = json!([]);
                    ResponseTemplate::new(200).set_body_json(json!({
                        "index_templates": [{"name": name, "index_template": stored}]
                    }))
                }
                None => es_error(
                    404,
                    "resource_not_found_exception",
                    &format!("index template matching [{name}] not found"),
                ),
            },
            ("PUT", ["_index_template", name]) => {
                state.templates.insert(name.to_string(), body_json(request));
                ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true}))
            }
            ("HEAD", [index]) => ResponseTemplate::new(if state.indices.contains_key(*index) {
                200
            } else {
                404
            }),
            ("PUT", [index]) => {
                if state.indices.contains_key(*index) {
                    return es_error(
                        400,
                        "resource_already_exists_exception",
                        &format!("index [{index}/abc] already exists"),
                    );
                }
                let mapping = state
                    .templates
                    .values()
                    .find(|t| t["index_patterns"][0] == *index)
                    .map(|t| t["template"]["mappings"].clone())
                    .unwrap_or(json!({}));
                state.indices.insert(index.to_string(), mapping);
                ResponseTemplate::new(200).set_body_json(json!({
                    "acknowledged": true, "shards_acknowledged": true, "index": index
                }))
            }
            ("GET", [index, "_mapping"]) => match state.indices.get(*index) {
                Some(m) => {
                    ResponseTemplate::new(200).set_body_json(json!({ *index: {"mappings": m} }))
                }
                None => es_error(
                    404,
                    "index_not_found_exception",
                    &format!("no such index [{index}]"),
                ),
            },
            ("PUT", [index, "_mapping"]) => {
                let body = body_json(request);
                state.indices.insert(index.to_string(), body);
                ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true}))
            }
            _ => ResponseTemplate::new(500).set_body_string(format!("unexpected {method} /{path}")),
        }
    }
}

/// A client for any base URI, with quick retries.
pub fn client_for_uri(uri: &str) -> EsClient {
    let connection = ConnectionConfig {
        urls: vec![uri.parse().unwrap()],
        request_timeout: Duration::from_secs(5),
        ..ConnectionConfig::default()
    };
    EsClient::connect(&connection, quick_retry()).unwrap()
}

/// A loopback address nothing listens on: "Elasticsearch is down".
pub fn unused_port_uri() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

/// Mount what a cluster answers once `rule-runner setup` has run: its root, rule-runner's
/// indices with their managed mappings, and no rule state yet.
pub async fn mount_set_up_cluster(server: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/"))
        .respond_with(ResponseTemplate::new(200).set_body_json(root_info()))
        .mount(server)
        .await;
    Mock::given(method("HEAD"))
        .and(path_regex(r"^/rule-runner-[a-z-]+$"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rule-runner-[a-z-]+/_mapping$"))
        .respond_with(|req: &wiremock::Request| {
            let index = req.url.path().split('/').nth(1).unwrap().to_string();
            ResponseTemplate::new(200).set_body_json(
                json!({ index: {"mappings": {"_meta": {"managed_by": "rule-runner", "version": 1}}}}),
            )
        })
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rule-runner-state/_doc/.+$"))
        .respond_with(
            ResponseTemplate::new(404)
                .set_body_json(json!({"_index": "rule-runner-state", "_id": "x", "found": false})),
        )
        .mount(server)
        .await;
}
