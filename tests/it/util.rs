//! Helpers shared by every test module.
#![allow(dead_code)] // each test module uses a different subset of the helpers

use std::path::PathBuf;
use std::process::{Command, Output};

/// Path of a file under `tests/data/`.
pub fn data(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

/// Path of a file relative to the repository root.
pub fn repo(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The built `rule-runner` binary, run from the repository root with logging quiet.
pub fn rule_runner() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rule-runner"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env("RULE_RUNNER_LOG", "warn")
        .env_remove("ELASTICSEARCH_URL");
    cmd
}

/// Run `rule-runner` with `args`; returns the output.
pub fn run_cli(args: &[&str]) -> Output {
    rule_runner()
        .args(args)
        .output()
        .expect("the rule-runner binary runs")
}

/// Assert a command exited with `code`, printing its output when it did not.
#[macro_export]
macro_rules! assert_exit {
    ($output:expr, $code:expr) => {{
        let out = &$output;
        assert_eq!(
            out.status.code(),
            Some($code),
            "exit status\n--- stdout\n{}\n--- stderr\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }};
}

/// Run `rule-runner` with `args`, feeding `stdin`; returns the output.
pub fn run_cli_with_stdin(args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = rule_runner()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the rule-runner binary runs");
    if let Some(mut input) = child.stdin.take() {
        // The command may exit before reading everything (that is its business).
        let _ = input.write_all(stdin);
    }
    child
        .wait_with_output()
        .expect("the rule-runner binary runs")
}
