//! Configuration: file, environment and flags, their precedence, errors and redaction.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use rule_runner::elasticsearch::{Auth, ConnectionFlags, Destination, Secret, ServiceConfig};

use crate::util::{repo, rule_runner};

fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| map.get(name).cloned()
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = dir.path().join("rule-runner.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The error a config file with `text` gives, and the file's path.
fn file_error(dir: &tempfile::TempDir, text: &str) -> (String, PathBuf) {
    let path = write_config(dir, text);
    let err = ServiceConfig::resolve(&flags_with_file(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    (err, path)
}

fn flags_with_file(path: &std::path::Path) -> ConnectionFlags {
    ConnectionFlags {
        config: Some(path.to_path_buf()),
        ..ConnectionFlags::default()
    }
}

const FILE: &str = r#"
[elasticsearch]
urls = ["https://file.example:9200"]
username = "file-user"
password = "file-password"
ca_cert = "certs/ca.pem"
request_timeout = "45s"

[indices]
alerts = "my-alerts"

[engine]
space_id = "security"
max_concurrent_runs = 2
run_timeout = "2m"
max_catch_up = "6h"
cron = "0 */10 * * * *"

[retry]
max_attempts = 2
initial_backoff = "10ms"
max_backoff = "1s"
"#;

#[test]
fn defaults_without_file_env_or_flags() {
    let config = ServiceConfig::resolve(&ConnectionFlags::default(), &env(&[])).unwrap();
    assert_eq!(config.connection.urls[0].as_str(), "http://localhost:9200/");
    assert_eq!(config.connection.auth, Auth::None);
    assert!(!config.connection.insecure);
    assert_eq!(config.connection.request_timeout, Duration::from_secs(30));
    assert_eq!(config.indices.alerts, "rule-runner-alerts");
    assert_eq!(config.indices.state, "rule-runner-state");
    assert_eq!(config.indices.executions, "rule-runner-executions");
    assert_eq!(config.indices.dead_letter, "rule-runner-dead-letter");
    assert_eq!(config.engine, rule_runner::engine::EngineConfig::default());
    assert_eq!(config.retry.max_attempts, 5);
}

#[test]
fn the_file_sets_everything_and_relative_paths_follow_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, FILE);
    let config = ServiceConfig::resolve(&flags_with_file(&path), &env(&[])).unwrap();
    assert_eq!(
        config.connection.urls[0].as_str(),
        "https://file.example:9200/"
    );
    assert_eq!(
        config.connection.auth,
        Auth::Basic {
            username: "file-user".into(),
            password: Secret::new("file-password")
        }
    );
    assert_eq!(
        config.connection.ca_cert,
        Some(dir.path().join("certs/ca.pem"))
    );
    assert_eq!(config.connection.request_timeout, Duration::from_secs(45));
    assert_eq!(config.indices.alerts, "my-alerts");
    assert_eq!(
        config.indices.state, "rule-runner-state",
        "unnamed keys keep defaults"
    );
    assert_eq!(config.engine.space_id, "security");
    assert_eq!(config.engine.max_concurrent_runs, 2);
    assert_eq!(config.engine.run_timeout, Duration::from_secs(120));
    assert_eq!(config.engine.max_catch_up, Duration::from_secs(6 * 3600));
    assert_eq!(config.engine.cron.as_deref(), Some("0 */10 * * * *"));
    assert_eq!(config.retry.max_attempts, 2);
    assert_eq!(config.retry.initial_backoff, Duration::from_millis(10));
    assert_eq!(config.source_file, Some(path));
}

#[test]
fn env_overrides_the_file_and_flags_override_env() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, FILE);
    let vars = env(&[
        ("ELASTICSEARCH_URL", "http://env-a:9200, http://env-b:9200"),
        ("ELASTICSEARCH_CA_CERT", "/env/ca.pem"),
    ]);
    let config = ServiceConfig::resolve(&flags_with_file(&path), &vars).unwrap();
    let urls: Vec<_> = config.connection.urls.iter().map(|u| u.as_str()).collect();
    assert_eq!(urls, ["http://env-a:9200/", "http://env-b:9200/"]);
    assert_eq!(
        config.connection.ca_cert,
        Some(PathBuf::from("/env/ca.pem"))
    );

    let flags = ConnectionFlags {
        urls: vec!["http://flag:9200".into()],
        ca_cert: Some(PathBuf::from("/flag/ca.pem")),
        insecure: true,
        request_timeout: Some(Duration::from_secs(3)),
        ..flags_with_file(&path)
    };
    let config = ServiceConfig::resolve(&flags, &vars).unwrap();
    assert_eq!(config.connection.urls.len(), 1);
    assert_eq!(config.connection.urls[0].as_str(), "http://flag:9200/");
    assert_eq!(
        config.connection.ca_cert,
        Some(PathBuf::from("/flag/ca.pem"))
    );
    assert!(config.connection.insecure);
    assert_eq!(config.connection.request_timeout, Duration::from_secs(3));
}

#[test]
fn credentials_come_from_one_layer_as_a_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, FILE);
    // An API key in the environment replaces the file's username and password entirely.
    let vars = env(&[("ELASTICSEARCH_API_KEY", "key-id:key-secret")]);
    let config = ServiceConfig::resolve(&flags_with_file(&path), &vars).unwrap();
    assert_eq!(
        config.connection.auth,
        Auth::ApiKey(Secret::new("key-id:key-secret"))
    );

    // Flags beat both.
    let flags = ConnectionFlags {
        username: Some("flag-user".into()),
        password: Some("flag-password".into()),
        ..flags_with_file(&path)
    };
    let config = ServiceConfig::resolve(&flags, &vars).unwrap();
    assert_eq!(
        config.connection.auth,
        Auth::Basic {
            username: "flag-user".into(),
            password: Secret::new("flag-password")
        }
    );

    // A username flag takes its password from the environment.
    let flags = ConnectionFlags {
        username: Some("flag-user".into()),
        ..ConnectionFlags::default()
    };
    let vars = env(&[("ELASTICSEARCH_PASSWORD", "env-password")]);
    let config = ServiceConfig::resolve(&flags, &vars).unwrap();
    assert_eq!(
        config.connection.auth,
        Auth::Basic {
            username: "flag-user".into(),
            password: Secret::new("env-password")
        }
    );

    // Credentials written into the URL count when no layer names any.
    let vars = env(&[("ELASTICSEARCH_URL", "https://elastic:pw@es.example:9200")]);
    let config = ServiceConfig::resolve(&ConnectionFlags::default(), &vars).unwrap();
    assert_eq!(
        config.connection.urls[0].as_str(),
        "https://es.example:9200/"
    );
    assert_eq!(
        config.connection.auth,
        Auth::Basic {
            username: "elastic".into(),
            password: Secret::new("pw")
        }
    );
}

#[test]
fn incomplete_or_conflicting_credentials_name_their_source() {
    let err = ServiceConfig::resolve(
        &ConnectionFlags::default(),
        &env(&[("ELASTICSEARCH_USERNAME", "elastic")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("ELASTICSEARCH_USERNAME: "), "{err}");
    assert!(err.contains("needs a password"), "{err}");

    let flags = ConnectionFlags {
        api_key: Some("k".into()),
        password: Some("p".into()),
        ..ConnectionFlags::default()
    };
    let err = ServiceConfig::resolve(&flags, &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("--api-key: "), "{err}");
    assert!(err.contains("not both"), "{err}");
}

#[test]
fn file_errors_name_the_file_and_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let (err, path) = file_error(&dir, "[elasticsearch]\nurl = \"http://x:9200\"\n");
    assert!(err.contains(&path.display().to_string()), "{err}");
    assert!(err.contains("unknown field `url`"), "{err}");
    assert!(err.contains("line 2"), "{err}");

    let (err, _) = file_error(&dir, "[engine]\nrun_timeout = \"five minutes\"\n");
    assert!(
        err.contains("run_timeout") && err.contains("invalid duration"),
        "{err}"
    );
    let (err, _) = file_error(&dir, "[engine]\ncron = \"every ten minutes\"\n");
    assert!(err.contains("[engine]") && err.contains("cron"), "{err}");
    let (err, _) = file_error(&dir, "[retry]\ninitial_backoff = \"soon\"\n");
    assert!(
        err.contains("initial_backoff") && err.contains("not a duration"),
        "{err}"
    );
    let (err, _) = file_error(&dir, "[indices]\nalerts = \"Alerts*\"\n");
    assert!(err.contains("indices.alerts"), "{err}");

    let missing = dir.path().join("nope.toml");
    let err = ServiceConfig::resolve(&flags_with_file(&missing), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot read config file") && err.contains("nope.toml"),
        "{err}"
    );

    let err = ServiceConfig::resolve(
        &ConnectionFlags::default(),
        &env(&[("ELASTICSEARCH_URL", "ftp://x")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("ELASTICSEARCH_URL: "), "{err}");
}

#[test]
fn the_example_config_is_valid_and_states_the_defaults() {
    let path = repo("rule-runner.example.toml");
    let config = ServiceConfig::resolve(&flags_with_file(&path), &env(&[])).unwrap();
    let defaults = ServiceConfig::resolve(&ConnectionFlags::default(), &env(&[])).unwrap();
    assert_eq!(config.connection, defaults.connection);
    assert_eq!(config.indices, defaults.indices);
    assert_eq!(config.engine, defaults.engine);
    assert_eq!(config.retry, defaults.retry);
    assert_eq!(config.destination, defaults.destination);
    assert_eq!(config.kibana, defaults.kibana);
    assert_eq!(config.rollover, defaults.rollover);
}

#[test]
fn rollover_settings_reach_the_sink_and_an_index_in_their_way_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[alerts.rollover]\nmax_age = \"7d\"\nmax_docs = 500000\n",
    );
    let config = ServiceConfig::resolve(&flags_with_file(&path), &env(&[])).unwrap();
    let rule_runner::elasticsearch::AlertsTarget::Own { index, rollover } = config.alerts() else {
        panic!("rule-runner's own index by default");
    };
    assert_eq!(index, "rule-runner-alerts");
    assert_eq!(
        (rollover.max_age.as_str(), rollover.max_size.as_str()),
        ("7d", "50gb")
    );
    assert_eq!(rollover.max_docs, Some(500_000));

    let path = write_config(&dir, "[alerts.rollover]\nmax_size = \"lots\"\n");
    let err = ServiceConfig::resolve(&flags_with_file(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_size = \"lots\""), "{err}");
    assert!(err.contains("e.g. \"50gb\""), "{err}");

    let path = write_config(
        &dir,
        "[indices]\nalerts = \"soc\"\ndead_letter = \"soc-dead\"\n",
    );
    let err = ServiceConfig::resolve(&flags_with_file(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("indices.dead_letter"), "{err}");
    assert!(
        err.contains("`soc-dead` would be taken for one of the alerts indices behind `soc`"),
        "{err}"
    );
}

#[test]
fn the_security_destination_writes_to_the_spaces_alias() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "[alerts]\ndestination = \"security\"\n\n[kibana]\nurl = \"http://kb:5601\"\nspace = \"soc\"\n",
    );
    let config = ServiceConfig::resolve(&flags_with_file(&path), &env(&[])).unwrap();
    assert_eq!(config.destination, Destination::Security);
    assert_eq!(config.alerts_target(), ".alerts-security.alerts-soc");
    assert_eq!(config.engine.space_id, "soc");
    assert_eq!(config.kibana.unwrap().url.as_str(), "http://kb:5601/");

    // The flag beats the environment, which beats the file.
    let flags = ConnectionFlags {
        alerts_destination: Some(Destination::RuleRunner),
        ..flags_with_file(&path)
    };
    let config = ServiceConfig::resolve(
        &flags,
        &env(&[("RULE_RUNNER_ALERTS_DESTINATION", "security")]),
    )
    .unwrap();
    assert_eq!(config.destination, Destination::RuleRunner);
    let err = ServiceConfig::resolve(
        &flags_with_file(&path),
        &env(&[("RULE_RUNNER_ALERTS_DESTINATION", "kibana")]),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("RULE_RUNNER_ALERTS_DESTINATION:"), "{err}");

    // One space, said once.
    let path = write_config(
        &dir,
        "[engine]\nspace_id = \"blue\"\n\n[kibana]\nspace = \"soc\"\n",
    );
    let err = ServiceConfig::resolve(&flags_with_file(&path), &env(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("give the space once"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, FILE);
    let config = ServiceConfig::resolve(&flags_with_file(&path), &env(&[])).unwrap();
    let debug = format!("{config:?} {config:#?}");
    assert!(!debug.contains("file-password"), "{debug}");
    assert!(
        debug.contains("file-user"),
        "non-secrets stay visible: {debug}"
    );

    let flags = ConnectionFlags {
        urls: vec!["https://u:url-secret@es:9200".into()],
        api_key: Some("api-secret".into()),
        password: Some("flag-secret".into()),
        ..ConnectionFlags::default()
    };
    let debug = format!("{flags:?}");
    for secret in ["url-secret", "api-secret", "flag-secret"] {
        assert!(!debug.contains(secret), "{debug}");
    }
    let config = ServiceConfig::resolve(
        &ConnectionFlags::default(),
        &env(&[("ELASTICSEARCH_API_KEY", "env-api-secret")]),
    )
    .unwrap();
    assert!(!format!("{config:?}").contains("env-api-secret"));
}

#[test]
fn secrets_never_reach_the_logs_or_errors_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "[retry]\nmax_attempts = 1\n");
    let out = rule_runner()
        .args(["setup", "--config"])
        .arg(&path)
        .args(["--url", "http://127.0.0.1:9", "--username", "elastic"])
        .args(["--log", "trace"])
        .env("ELASTICSEARCH_PASSWORD", "pw-in-env-123")
        .output()
        .unwrap();
    assert_exit!(out, 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot reach Elasticsearch at http://127.0.0.1:9"),
        "{stderr}"
    );
    assert!(!stderr.contains("pw-in-env-123"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("pw-in-env-123"));
}
