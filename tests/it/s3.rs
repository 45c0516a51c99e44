//! The S3 input against a real S3 API: moto's server (PyPI `moto[server]`), started once for
//! the test binary by `tests/s3/moto_server.py` and filled with the example trail.
//!
//! Without moto each test prints `skipped: no S3 server (...)` and passes; with `CI=true` it
//! fails instead: CI must exercise the S3 input every time.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

use serde_json::Value;

use crate::util::{repo, rule_runner};

struct Moto {
    endpoint: String,
    access_key_id: String,
    secret_access_key: String,
    /// Its standard input: the server stops when this process ends and the pipe closes.
    _child: Child,
}

/// The server of the `trail` bucket (any credentials), and the one of the `mixed` bucket
/// (the reader's keys only).
static OPEN: OnceLock<Mutex<Result<Moto, String>>> = OnceLock::new();
static AUTH: OnceLock<Mutex<Result<Moto, String>>> = OnceLock::new();

fn start(args: &[&str]) -> Result<Moto, String> {
    let mut child = Command::new("python3")
        .arg(repo("tests/s3/moto_server.py"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run python3: {e}"))?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .map_err(|e| format!("reading the server's address: {e}"))?;
    let info: Value = match serde_json::from_str(&line) {
        Ok(info) => info,
        Err(_) => {
            let _ = child.kill();
            let mut why = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut why);
            }
            let last = why
                .lines()
                .last()
                .unwrap_or("it printed nothing")
                .to_string();
            return Err(format!(
                "moto did not start (pip install \"moto[server]\"): {last}"
            ));
        }
    };
    let text = |k: &str| info[k].as_str().unwrap_or_default().to_string();
    Ok(Moto {
        endpoint: text("endpoint"),
        access_key_id: text("access_key_id"),
        secret_access_key: text("secret_access_key"),
        _child: child,
    })
}

/// `rule-runner` pointed at the server of the `trail` bucket, or `None` after saying why
/// there is no server (a failure under `CI=true`).
fn s3_cli(test: &str) -> Option<Command> {
    cli_for(&OPEN, &[], test)
}

/// `rule-runner` pointed at the server of the `mixed` bucket, with the reader's keys.
fn s3_cli_with_auth(test: &str) -> Option<Command> {
    cli_for(&AUTH, &["--auth"], test)
}

fn cli_for(
    server: &'static OnceLock<Mutex<Result<Moto, String>>>,
    args: &[&str],
    test: &str,
) -> Option<Command> {
    let moto = server.get_or_init(|| Mutex::new(start(args)));
    let moto = moto.lock().unwrap_or_else(|e| e.into_inner());
    match &*moto {
        Ok(moto) => {
            let mut cmd = rule_runner();
            for var in [
                "AWS_PROFILE",
                "AWS_ENDPOINT_URL_S3",
                "AWS_SESSION_TOKEN",
                "AWS_REGION",
            ] {
                cmd.env_remove(var);
            }
            cmd.env("AWS_ENDPOINT_URL", &moto.endpoint)
                .env("AWS_ACCESS_KEY_ID", &moto.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &moto.secret_access_key)
                .env("AWS_DEFAULT_REGION", "us-east-1");
            Some(cmd)
        }
        Err(why) => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(!ci, "CI=true but no S3 server for {test}: {why}");
            let _ = writeln!(std::io::stderr(), "skipped: no S3 server ({test}: {why})");
            None
        }
    }
}

fn run(mut cmd: Command, args: &[&str]) -> Output {
    cmd.args(args)
        .output()
        .expect("the rule-runner binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The alerts of an NDJSON scan, with what depends on where the events were read removed:
/// the document ids (a hash of the input's name) and the ancestors built from them.
fn alerts_without_origin(out: &Output) -> Vec<Value> {
    let mut alerts: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("an alert per line"))
        .collect();
    for alert in &mut alerts {
        if let Some(doc) = alert.as_object_mut() {
            doc.remove("kibana.alert.ancestors");
        }
    }
    alerts
}

const NOW: &str = "2025-01-01T00:00:00Z";

#[test]
fn a_scan_of_the_bucket_gives_the_local_scan_alerts() {
    let Some(cmd) = s3_cli("a_scan_of_the_bucket_gives_the_local_scan_alerts") else {
        return;
    };
    let remote = run(
        cmd,
        &["scan", "s3://trail/", "--now", NOW, "--format", "ndjson"],
    );
    assert_exit!(remote, 0);
    let local = run_local(&[
        "scan",
        "examples/cloudtrail",
        "--now",
        NOW,
        "--format",
        "ndjson",
    ]);
    assert_exit!(local, 0);
    let (remote_alerts, local_alerts) = (
        alerts_without_origin(&remote),
        alerts_without_origin(&local),
    );
    assert_eq!(remote_alerts.len(), 4, "{}", stderr(&remote));
    assert_eq!(remote_alerts, local_alerts);
    assert!(
        stderr(&remote).contains("1 digest file skipped"),
        "{}",
        stderr(&remote)
    );
}

fn run_local(args: &[&str]) -> Output {
    run(rule_runner(), args)
}

#[test]
fn normalize_reads_the_bucket_as_it_reads_the_folder() {
    let Some(cmd) = s3_cli("normalize_reads_the_bucket_as_it_reads_the_folder") else {
        return;
    };
    let remote = run(cmd, &["normalize", "s3://trail/AWSLogs"]);
    assert_exit!(remote, 0);
    let local = run_local(&["normalize", "examples/cloudtrail/AWSLogs"]);
    assert_exit!(local, 0);
    assert_eq!(String::from_utf8_lossy(&remote.stdout).lines().count(), 17);
    assert_eq!(remote.stdout, local.stdout);
}

#[test]
fn start_and_end_pick_the_day_folders_of_the_trail() {
    let Some(cmd) = s3_cli("start_and_end_pick_the_day_folders_of_the_trail") else {
        return;
    };
    let day = run(
        cmd,
        &[
            "normalize",
            "s3://trail",
            "--start",
            "2024-05-14",
            "--end",
            "2024-05-14",
        ],
    );
    assert_exit!(day, 0);
    assert_eq!(String::from_utf8_lossy(&day.stdout).lines().count(), 17);

    let Some(cmd) = s3_cli("start_and_end_pick_the_day_folders_of_the_trail") else {
        return;
    };
    let later = run(cmd, &["normalize", "s3://trail", "--start", "2024-05-15"]);
    assert_exit!(later, 0);
    assert!(later.stdout.is_empty());
    assert!(
        stderr(&later).contains("note: 3 files outside --start 2024-05-15 left out"),
        "{}",
        stderr(&later)
    );
}

#[test]
fn a_missing_bucket_is_named_and_the_rest_is_read() {
    let Some(cmd) = s3_cli("a_missing_bucket_is_named_and_the_rest_is_read") else {
        return;
    };
    let out = run(
        cmd,
        &[
            "scan",
            "s3://no-such-bucket/AWSLogs",
            "s3://trail",
            "--now",
            NOW,
            "--format",
            "ndjson",
        ],
    );
    assert_exit!(out, 2);
    let err = stderr(&out);
    assert!(
        err.contains("skipped: s3://no-such-bucket/AWSLogs: cannot list")
            && err.contains("the bucket does not exist"),
        "{err}"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);
}

#[test]
fn a_denied_object_and_a_corrupt_one_are_reported_and_skipped() {
    let Some(cmd) = s3_cli_with_auth("a_denied_object_and_a_corrupt_one_are_reported_and_skipped")
    else {
        return;
    };
    let out = run(
        cmd,
        &["scan", "s3://mixed", "--now", NOW, "--format", "ndjson"],
    );
    assert_exit!(out, 2);
    let err = stderr(&out);
    let day = "s3://mixed/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/14";
    assert!(
        err.contains(&format!(
            "skipped: {day}/denied.json.gz: cannot read: access denied"
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("skipped: {day}/corrupt.json.gz")),
        "{err}"
    );
    // The good copy of the 09:20 delivery file still gives its alert.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "{err}"
    );
}

#[test]
fn a_malformed_location_is_a_usage_error() {
    let out = run_local(&["scan", "s3://Not_A_Bucket/x"]);
    assert_exit!(out, 1);
    assert!(
        stderr(&out).contains("s3://Not_A_Bucket/x is not an S3 location"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn load_indexes_the_bucket_into_the_real_engine() {
    let test = "load_indexes_the_bucket_into_the_real_engine";
    let Some(engine) = crate::real::engine(test) else {
        return;
    };
    let Some(mut cmd) = s3_cli(test) else {
        return;
    };
    let index = format!("s3-load-{}", std::process::id());
    cmd.env("ELASTICSEARCH_URL", &engine.url);
    let out = run(cmd, &["load", "s3://trail/AWSLogs", "--index", &index]);
    assert_exit!(out, 0);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("loaded 17 documents into {index}")),
        "{said}"
    );
}

#[test]
fn start_and_end_apply_to_local_folders_too() {
    let out = run_local(&["normalize", "examples/cloudtrail", "--end", "2024-05-13"]);
    assert_exit!(out, 0);
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("note: 3 files outside --end 2024-05-13 left out"),
        "{}",
        stderr(&out)
    );
    // A file named on its own is read whatever its day.
    let file = "examples/cloudtrail/AWSLogs/111122223333/CloudTrail/us-east-1/2024/05/14/111122223333_CloudTrail_us-east-1_20240514T0935Z_Vb8Ns2Lq5XwR0dHk.json.gz";
    let named = run_local(&["normalize", file, "--end", "2024-05-13"]);
    assert_exit!(named, 0);
    assert!(!named.stdout.is_empty());
    let backwards = run_local(&[
        "scan",
        "examples/cloudtrail",
        "--start",
        "2024-05-15",
        "--end",
        "2024-05-14",
    ]);
    assert_exit!(backwards, 1);
    assert!(stderr(&backwards).contains("--start 2024-05-15 is after --end 2024-05-14"));
}
