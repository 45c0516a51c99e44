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

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rule_runner::elasticsearch::{ConnectionFlags, EsClient, ServiceConfig};

/// A reachable engine: its URL and a client for it.
#[derive(Clone)]
pub struct Engine {
    pub url: String,
    pub client: EsClient,
}

/// What the node's start-up left behind: the URL, or why there is none.
enum Started {
    Url(String),
    Unavailable(String),
}

struct Node {
    started: Started,
    /// Held open for the life of the process: the node exits when this pipe closes.
    _child: Option<Child>,
}

static NODE: OnceLock<Mutex<Node>> = OnceLock::new();

/// The engine for `test`, or `None` after printing why (a failure under `CI=true`).
pub fn engine(test: &str) -> Option<Engine> {
    let url = match std::env::var("ELASTICSEARCH_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            let node = NODE.get_or_init(|| Mutex::new(start_node()));
            let node = node.lock().unwrap_or_else(|e| e.into_inner());
            match &node.started {
                Started::Url(url) => url.clone(),
                Started::Unavailable(why) => {
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

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn start_node() -> Node {
    if !on_path("java") || !on_path("mvn") {
        return Node {
            started: Started::Unavailable("java or mvn is not on PATH".into()),
            _child: None,
        };
    }
    match build_and_start() {
        Ok((url, child)) => Node {
            started: Started::Url(url),
            _child: Some(child),
        },
        Err(why) => Node {
            started: Started::Unavailable(why),
            _child: None,
        },
    }
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/engine")
}

/// Where the node is built: beside the test binary's scratch space, so `cargo clean`
/// removes it and a clone never commits it.
fn build_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("test-engine")
}

fn build(dir: &Path) -> Result<(), String> {
    let jar = dir.join("test-engine-1.jar");
    let sources = [
        project_dir().join("pom.xml"),
        project_dir().join("src/main/java/rulerunner/engine/TestNode.java"),
        project_dir().join("src/main/resources/log4j2.properties"),
    ];
    let built = std::fs::metadata(&jar).and_then(|m| m.modified()).ok();
    let newest = sources
        .iter()
        .filter_map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .max();
    if let (Some(built), Some(newest)) = (built, newest) {
        if built >= newest && dir.join("lib").is_dir() {
            return Ok(());
        }
    }
    let out = Command::new("mvn")
        .current_dir(project_dir())
        .args(["-q", "-B", "package"])
        .arg(format!("-Dengine.build.dir={}", dir.display()))
        .output()
        .map_err(|e| format!("cannot run mvn: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building tests/engine with Maven failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

fn build_and_start() -> Result<(String, Child), String> {
    let dir = build_dir();
    build(&dir)?;
    let home = dir.join(format!("node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&home);
    let classpath = format!(
        "{}:{}",
        dir.join("test-engine-1.jar").display(),
        dir.join("lib/*").display()
    );
    let log = std::fs::File::create(dir.join(format!("node-{}.log", std::process::id())))
        .map_err(|e| format!("cannot create the node's log: {e}"))?;
    let mut child = Command::new("java")
        .args(["-Xms1g", "-Xmx1g", "-XX:+UseSerialGC", "-cp"])
        .arg(&classpath)
        .arg("rulerunner.engine.TestNode")
        .arg(&home)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start java: {e}"))?;
    let stdout = child.stdout.take().ok_or("the node has no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("ENGINE_URL=") {
                let _ = tx.send(url.to_owned());
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(url) = rx.recv_timeout(Duration::from_millis(200)) {
            return Ok((url, child));
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "the OpenSearch node exited ({status}) before it answered; see {}",
                dir.join(format!("node-{}.log", std::process::id()))
                    .display()
            ));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err("the OpenSearch node did not start within 120 s".into());
        }
    }
}
