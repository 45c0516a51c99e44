//! Tests against a real search engine: the OpenSearch node of `tests/engine/` (started once
//! for the whole run), or the cluster `ELASTICSEARCH_URL` names. See [`engine`] for how one
//! is found, and when a test is skipped instead.
//!
//! Every test uses index names of its own and removes them afterwards, so the tests run in
//! parallel against one engine, and against a user's cluster without touching their data.

mod engine;

mod aggregating;
mod basics;
mod cli;
mod dataset;
mod differential;
mod ops;
mod proxy;
mod rollover;
mod security;
mod service;

pub use engine::engine;

use ::elasticsearch::http::Method;
use rule_runner::elasticsearch::{Call, EsClient, IndexNames};

/// Index names no other test or user has: `rule-runner-it-<random>-<kind>`.
pub fn unique_names() -> (String, IndexNames) {
    let prefix = format!("rule-runner-it-{}", uuid::Uuid::new_v4().simple());
    let names = IndexNames {
        alerts: format!("{prefix}-alerts"),
        state: format!("{prefix}-state"),
        executions: format!("{prefix}-executions"),
        dead_letter: format!("{prefix}-dead-letter"),
    };
    (prefix, names)
}

/// An engine over the real engine's ports, writing to `names`.
pub fn service_over(client: &EsClient, names: &IndexNames) -> rule_runner::engine::Engine {
    let (source, sink, state) = rule_runner::elasticsearch::ports(client, names);
    rule_runner::engine::Engine::new(
        source,
        sink,
        state,
        rule_runner::engine::EngineConfig::default(),
    )
}

/// The alerts written to `names.alerts` (refreshed first), each hit's `_source` limited to
/// `source` (`false` for none), as the search response.
pub async fn written_alerts(
    client: &EsClient,
    names: &IndexNames,
    source: serde_json::Value,
) -> serde_json::Value {
    client
        .send_ok(&Call::new(
            "refresh",
            Method::Post,
            format!("/{}/_refresh", names.alerts),
        ))
        .await
        .expect("refresh");
    client
        .send_ok(
            &Call::new("alerts", Method::Post, format!("/{}/_search", names.alerts))
                .json(serde_json::json!({"size": 10000, "_source": source})),
        )
        .await
        .expect("the alerts")
}

/// Remove what a test created (indices and templates named after `prefix`).
pub async fn clean_up(client: &EsClient, prefix: &str, names: &IndexNames) {
    let _ = client
        .send(&Call::new(
            "clean up",
            Method::Delete,
            format!("/{prefix}-*"),
        ))
        .await;
    for (_, name) in names.all() {
        let _ = client
            .send(&Call::new(
                "clean up",
                Method::Delete,
                format!("/_index_template/{name}"),
            ))
            .await;
    }
}

/// A `rule-runner.toml` in `dir` naming `names` as the service's indices.
pub fn write_config(dir: &std::path::Path, names: &IndexNames) -> std::path::PathBuf {
    let path = dir.join("rule-runner.toml");
    std::fs::write(
        &path,
        format!(
            "[indices]\nalerts = \"{}\"\nstate = \"{}\"\nexecutions = \"{}\"\ndead_letter = \"{}\"\n",
            names.alerts, names.state, names.executions, names.dead_letter
        ),
    )
    .expect("config written");
    path
}
