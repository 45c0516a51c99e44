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
/// `GET /`, index templates, index existence and creation, mappings, aliases, ILM policies,
/// settings, `_count`, `_clone`. It keeps state, so running `setup` twice shows what the second
/// run changes (nothing), and an older cluster's layout can be set up before it.
#[derive(Clone, Default)]
pub struct AdminCluster {
    state: std::sync::Arc<std::sync::Mutex<AdminState>>,
}

#[derive(Default)]
struct AdminState {
    templates: std::collections::BTreeMap<String, Value>,
    /// Index name to its mapping.
    indices: std::collections::BTreeMap<String, Value>,
    /// Index name to the settings put on it.
    settings: std::collections::BTreeMap<String, Value>,
    /// Index name to its number of documents.
    docs: std::collections::BTreeMap<String, u64>,
    /// Alias to its indices and whether each is the write index.
    aliases: std::collections::BTreeMap<String, Vec<(String, bool)>>,
    policies: std::collections::BTreeMap<String, Value>,
}

impl AdminState {
    /// The indices a name stands for: an index, or an alias's.
    fn resolve(&self, name: &str) -> Vec<String> {
        match self.aliases.get(name) {
            Some(members) => members.iter().map(|(i, _)| i.clone()).collect(),
            None if self.indices.contains_key(name) => vec![name.to_string()],
            None => vec![],
        }
    }

    fn template_mapping(&self, index: &str) -> Value {
        self.templates
            .values()
            .find(|t| {
                let pattern = t["index_patterns"][0].as_str().unwrap_or_default();
                match pattern.strip_suffix('*') {
                    Some(prefix) => index.starts_with(prefix),
                    None => pattern == index,
                }
            })
            .map(|t| t["template"]["mappings"].clone())
            .unwrap_or(json!({}))
    }
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
    pub fn set_docs(&self, index: &str, docs: u64) {
        self.state.lock().unwrap().docs.insert(index.into(), docs);
    }
    pub fn docs(&self, index: &str) -> Option<u64> {
        self.state.lock().unwrap().docs.get(index).copied()
    }
    pub fn settings(&self, index: &str) -> Option<Value> {
        self.state.lock().unwrap().settings.get(index).cloned()
    }
    /// The alias's indices with their write flags, in name order.
    pub fn alias(&self, alias: &str) -> Option<Vec<(String, bool)>> {
        self.state.lock().unwrap().aliases.get(alias).cloned()
    }
    pub fn set_alias(&self, alias: &str, members: &[(&str, bool)]) {
        self.state.lock().unwrap().aliases.insert(
            alias.into(),
            members.iter().map(|(i, w)| (i.to_string(), *w)).collect(),
        );
    }
    pub fn indices(&self) -> Vec<String> {
        self.state.lock().unwrap().indices.keys().cloned().collect()
    }
    pub fn policy(&self, name: &str) -> Option<Value> {
        self.state.lock().unwrap().policies.get(name).cloned()
    }
    pub fn set_policy(&self, name: &str, policy: Value) {
        self.state
            .lock()
            .unwrap()
            .policies
            .insert(name.into(), policy);
    }
}

fn not_found(ty: &str, reason: String) -> ResponseTemplate {
    es_error(404, ty, &reason)
}

fn acknowledged() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"acknowledged": true}))
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
                None => not_found(
                    "resource_not_found_exception",
                    format!("index template matching [{name}] not found"),
                ),
            },
            ("PUT", ["_index_template", name]) => {
                state.templates.insert(name.to_string(), body_json(request));
                acknowledged()
            }
            ("GET", ["_ilm", "policy", name]) => match state.policies.get(*name) {
                Some(p) => ResponseTemplate::new(200).set_body_json(json!({
                    *name: {"version": 1, "policy": p["policy"]}
                })),
                None => not_found(
                    "resource_not_found_exception",
                    format!("Lifecycle policy not found: {name}"),
                ),
            },
            ("PUT", ["_ilm", "policy", name]) => {
                state.policies.insert(name.to_string(), body_json(request));
                acknowledged()
            }
            ("GET", ["_alias", alias]) => match state.aliases.get(*alias) {
                Some(members) => {
                    let mut body = serde_json::Map::new();
                    for (index, write) in members {
                        let mut entry = json!({});
                        if members.len() > 1 || !write {
                            entry["is_write_index"] = json!(write);
                        }
                        body.insert(index.clone(), json!({"aliases": {*alias: entry}}));
                    }
                    ResponseTemplate::new(200).set_body_json(Value::Object(body))
                }
                None => ResponseTemplate::new(404).set_body_json(
                    json!({"error": format!("alias [{alias}] missing"), "status": 404}),
                ),
            },
            ("POST", ["_aliases"]) => {
                let body = body_json(request);
                for action in body["actions"].as_array().cloned().unwrap_or_default() {
                    if let Some(add) = action.get("add") {
                        let alias = add["alias"].as_str().unwrap().to_string();
                        let index = add["index"].as_str().unwrap().to_string();
                        let write = add["is_write_index"].as_bool().unwrap_or(false);
                        state.aliases.entry(alias).or_default().push((index, write));
                    }
                    if let Some(remove) = action.get("remove_index") {
                        let index = remove["index"].as_str().unwrap();
                        state.indices.remove(index);
                        state.docs.remove(index);
                    }
                }
                acknowledged()
            }
            ("HEAD", [name]) => ResponseTemplate::new(if state.resolve(name).is_empty() {
                404
            } else {
                200
            }),
            ("PUT", [index]) => {
                if state.indices.contains_key(*index) || state.aliases.contains_key(*index) {
                    return es_error(
                        400,
                        "resource_already_exists_exception",
                        &format!("index [{index}/abc] already exists"),
                    );
                }
                let mapping = state.template_mapping(index);
                state.indices.insert(index.to_string(), mapping);
                let body: Value = serde_json::from_slice(&request.body).unwrap_or(json!({}));
                if let Some(aliases) = body.get("aliases").and_then(Value::as_object) {
                    for (alias, options) in aliases {
                        let write = options["is_write_index"].as_bool().unwrap_or(false);
                        state
                            .aliases
                            .entry(alias.clone())
                            .or_default()
                            .push((index.to_string(), write));
                    }
                }
                ResponseTemplate::new(200).set_body_json(json!({
                    "acknowledged": true, "shards_acknowledged": true, "index": index
                }))
            }
            ("GET", [name, "_mapping"]) => {
                let indices = state.resolve(name);
                if indices.is_empty() {
                    return not_found(
                        "index_not_found_exception",
                        format!("no such index [{name}]"),
                    );
                }
                let mut body = serde_json::Map::new();
                for index in indices {
                    body.insert(index.clone(), json!({"mappings": state.indices[&index]}));
                }
                ResponseTemplate::new(200).set_body_json(Value::Object(body))
            }
            ("PUT", [name, "_mapping"]) => {
                let body = body_json(request);
                for index in state.resolve(name) {
                    state.indices.insert(index, body.clone());
                }
                acknowledged()
            }
            ("PUT", [name, "_settings"]) => {
                let body = body_json(request);
                for index in state.resolve(name) {
                    state.settings.insert(index, body.clone());
                }
                acknowledged()
            }
            ("POST", [_, "_refresh"]) => ResponseTemplate::new(200)
                .set_body_json(json!({"_shards": {"total": 1, "successful": 1, "failed": 0}})),
            ("GET", [name, "_count"]) => {
                let count: u64 = state
                    .resolve(name)
                    .iter()
                    .map(|i| state.docs.get(i).copied().unwrap_or(0))
                    .sum();
                ResponseTemplate::new(200).set_body_json(json!({"count": count}))
            }
            ("POST", [source, "_clone", target]) => {
                let blocked = state
                    .settings
                    .get(*source)
                    .and_then(|s| s.pointer("/index/blocks/write"))
                    == Some(&json!(true));
                if !blocked {
                    return es_error(
                        400,
                        "illegal_state_exception",
                        &format!("index {source} must be read-only to resize index"),
                    );
                }
                let mapping = state.indices[*source].clone();
                let docs = state.docs.get(*source).copied().unwrap_or(0);
                state.indices.insert(target.to_string(), mapping);
                state.docs.insert(target.to_string(), docs);
                ResponseTemplate::new(200).set_body_json(
                    json!({"acknowledged": true, "shards_acknowledged": true, "index": target}),
                )
            }
            _ => ResponseTemplate::new(500).set_body_string(format!("unexpected {method} /{path}")),
        }
    }
}

/// A mock server answering everything from a fresh [`AdminCluster`].
pub async fn admin_server() -> (MockServer, AdminCluster) {
    let server = MockServer::start().await;
    let cluster = AdminCluster::default();
    Mock::given(wiremock::matchers::any())
        .respond_with(cluster.clone())
        .mount(&server)
        .await;
    (server, cluster)
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
    Mock::given(method("GET"))
        .and(path("/_alias/rule-runner-alerts"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"rule-runner-alerts-000001": {"aliases": {"rule-runner-alerts": {}}}}),
        ))
        .mount(server)
        .await;
    Mock::given(method("HEAD"))
        .and(path_regex(r"^/rule-runner-[a-z-]+$"))
        .respond_with(ResponseTemplate::new(200))
        .mount(server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/rule-runner-[a-z0-9-]+/_mapping$"))
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
