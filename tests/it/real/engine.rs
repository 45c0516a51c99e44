//! The real search engine the tests run against.
//!
//! - `ELASTICSEARCH_URL` set: that cluster (Elasticsearch 8 or OpenSearch), with the service's
//!   credential variables.
//! - Otherwise, with `java` and `mvn` on the machine: the OpenSearch node of `tests/engine/`,
//!   built once into the target directory (Maven's own cache keeps the artifacts) and started
//!   once for the whole test binary. Its standard input is a pipe held by this process, so the
//!   node stops when the test run ends, however it ends.
//! - Otherwise each real-engine test prints `skipped: no search engine (...)` and passes;
//!   with `CI=true` it fails instead: CI must exercise the real engine every time.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};

use rule_runner::elasticsearch::{ConnectionFlags, EsClient, ServiceConfig};

/// A reachable engine: its URL and a client for it.
#[derive(Clone)]
pub struct Engine {
    pub url: String,
    pub client: EsClient,
}

#[path = "../../engine/launch.rs"]
mod launch;

/// The node of this test binary, started on first use and kept for the life of the process
/// (its pipe closes when the process ends, and the node with it); or why there is none.
static NODE: OnceLock<Mutex<Result<launch::Node, String>>> = OnceLock::new();

/// The engine for `test`, or `None` after printing why (a failure under `CI=true`).
pub fn engine(test: &str) -> Option<Engine> {
    let url = match std::env::var("ELASTICSEARCH_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let node = NODE.get_or_init(|| {
                // Beside the test binary's scratch space: `cargo clean` removes it and a
                // clone never commits it.
                let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-engine");
                Mutex::new(launch::start(&dir))
            });
            let node = node.lock().unwrap_or_else(|e| e.into_inner());
            match &*node {
                Ok(node) => node.url.clone(),
                Err(why) => {
                    let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
                    assert!(
                        !ci,
                        "CI=true but no search engine for {test}: {why}. CI must run the \
                         real-engine tests: install Java 17 and Maven, or set ELASTICSEARCH_URL"
                    );
                    // Straight to the process's stderr: the harness captures `eprintln!`,
                    // and a skip must be visible in a plain `cargo test`.
                    let _ = writeln!(
                        std::io::stderr(),
                        "skipped: no search engine (set ELASTICSEARCH_URL, or install Java 17 \
                         and Maven) ({test}: {why})"
                    );
                    return None;
                }
            }
        }
    };
    let flags = ConnectionFlags {
        urls: vec![url.clone()],
        ..ConnectionFlags::default()
    };
    let config = ServiceConfig::load(&flags).expect("the engine's connection settings are valid");
    let client = EsClient::from_config(&config).expect("a client for the test engine");
    Some(Engine { url, client })
}
