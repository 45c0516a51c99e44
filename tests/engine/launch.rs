//! Builds and starts the OpenSearch node of `tests/engine/` (see its README). Shared by the
//! real-engine tests (`tests/it/real/engine.rs`) and the real-engine benchmark
//! (`benches/real_engine.rs`), which include this file with `#[path]`.
#![allow(dead_code)] // each includer uses part of it

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running node: its URL, and the child whose standard input keeps it alive.
pub struct Node {
    pub url: String,
    /// Held open for as long as the node is wanted: it exits when this pipe closes.
    pub child: Child,
}

/// Build the node if needed (into `build_dir`) and start it; the reason when that fails.
pub fn start(build_dir: &Path) -> Result<Node, String> {
    if !on_path("java") || !on_path("mvn") {
        return Err("java or mvn is not on PATH".into());
    }
    let (url, child) = build_and_start(build_dir)?;
    Ok(Node { url, child })
}

fn on_path(tool: &str) -> bool {
    Command::new(tool)
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn project_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/engine")
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

fn build_and_start(dir: &Path) -> Result<(String, Child), String> {
    build(dir)?;
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
