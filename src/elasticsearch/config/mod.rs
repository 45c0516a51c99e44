//! Service configuration: where Elasticsearch is, how to authenticate, which indices to use and
//! how the service behaves.
//!
//! Four layers, each overriding the one before: built-in defaults, the config file
//! (`rule-runner.toml`), the environment (`ELASTICSEARCH_*`) and command-line flags.
//! Credentials: the highest layer that names any credential decides the kind of
//! authentication, so an API key from a flag replaces a username and password from the file;
//! a username given there may take its password from a lower layer. Secrets are held in [`Secret`], whose `Debug` never shows the value.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::engine::EngineConfig;

mod destination;
mod indices;
mod layers;
mod rollover;

pub use destination::{Destination, KibanaConfig, security_alerts_alias};
use destination::{FileAlerts, FileKibana, KibanaLayer, resolve_kibana};
pub use indices::{
    DEFAULT_ALERTS_INDEX, DEFAULT_DEAD_LETTER_INDEX, DEFAULT_EXECUTIONS_INDEX, DEFAULT_STATE_INDEX,
    IndexNames,
};
use layers::{ConnectionLayer, LayerOrigin, file_connection_layer, merge_connection};
pub use rollover::Rollover;
use url::Url;

/// The config file read when `--config` is not given, if it exists in the working directory.
pub const DEFAULT_CONFIG_FILE: &str = "rule-runner.toml";
pub const DEFAULT_URL: &str = "http://localhost:9200";

/// A password or API key. `Debug` prints `<redacted>`; there is no `Display`, so the value
/// cannot reach a log line by accident; [`Secret::expose`] is the one explicit way out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// How to authenticate to Elasticsearch.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Auth {
    None,
    /// An API key, either the base64 `encoded` form Elasticsearch returns or `id:api_key`.
    ApiKey(Secret),
    Basic {
        username: String,
        password: Secret,
    },
}

/// Where Elasticsearch is and how to talk to it.
#[derive(Clone, PartialEq, Debug)]
pub struct ConnectionConfig {
    /// One or more node URLs (without credentials: those are moved into [`Auth`]).
    pub urls: Vec<Url>,
    pub auth: Auth,
    /// PEM file with the CA certificate(s) that signed the cluster's HTTP certificate.
    pub ca_cert: Option<PathBuf>,
    /// Skip TLS certificate verification. Off unless asked for explicitly.
    pub insecure: bool,
    pub request_timeout: Duration,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            urls: vec![Url::parse(DEFAULT_URL).expect("the default URL is valid")],
            auth: Auth::None,
            ca_cert: None,
            insecure: false,
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Retries of requests that failed for a reason that may pass (429, 5xx, timeouts, refused
/// connections): exponential backoff with jitter, bounded in attempts and in delay.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 disables retries.
    pub max_attempts: u32,
    #[serde(deserialize_with = "duration_text")]
    pub initial_backoff: Duration,
    #[serde(deserialize_with = "duration_text")]
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The pause before retry number `retry` (0-based): `initial * 2^retry`, capped at
    /// `max_backoff`, then scaled by a random factor in `[0.5, 1.0]` so that several
    /// instances backing off from one overloaded cluster do not retry in lockstep.
    pub fn backoff(&self, retry: u32) -> Duration {
        use rand::Rng;
        let exp = self
            .initial_backoff
            .saturating_mul(2u32.saturating_pow(retry.min(20)));
        let capped = exp.min(self.max_backoff);
        capped.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
    }
}

/// Everything the service commands need, resolved from all layers.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct ServiceConfig {
    pub connection: ConnectionConfig,
    pub indices: IndexNames,
    /// The `[engine]` table: catch-up, timeouts, concurrency, dedup identity, space, cron.
    pub engine: EngineConfig,
    pub retry: RetryPolicy,
    /// Where alerts are written (`[alerts] destination`).
    pub destination: Destination,
    /// Kibana, when one is configured (`[kibana]`, `KIBANA_URL`, `--kibana-url`).
    pub kibana: Option<KibanaConfig>,
    /// When rule-runner's own alerts index rolls over (`[alerts.rollover]`).
    pub rollover: Rollover,
    /// The file the configuration was read from, if any.
    pub source_file: Option<PathBuf>,
}

impl ServiceConfig {
    /// Where alerts are written, as the sink takes it.
    pub fn alerts(&self) -> crate::elasticsearch::AlertsTarget {
        use crate::elasticsearch::AlertsTarget;
        match self.destination {
            Destination::RuleRunner => AlertsTarget::Own {
                index: self.indices.alerts.clone(),
                rollover: self.rollover.clone(),
            },
            Destination::Security => AlertsTarget::Security {
                space: self.engine.space_id.clone(),
            },
        }
    }

    /// The index or alias alerts are written to.
    pub fn alerts_target(&self) -> String {
        self.alerts().write_name()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// `origin` names where the bad value came from: a flag, a variable or `file: key`.
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// The connection flags every service command accepts (also flattened into `load`).
#[derive(Clone, Default, PartialEq, clap::Args)]
pub struct ConnectionFlags {
    /// Config file (default: ./rule-runner.toml when it exists).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Elasticsearch URL; repeat for several nodes [env: ELASTICSEARCH_URL, comma-separated].
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// API key (base64 `encoded` form or `id:key`) [env: ELASTICSEARCH_API_KEY].
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<String>,
    /// User for basic authentication [env: ELASTICSEARCH_USERNAME].
    #[arg(long, value_name = "USER")]
    pub username: Option<String>,
    /// Password for basic authentication; prefer ELASTICSEARCH_PASSWORD, which does not show
    /// in the process list.
    #[arg(long, value_name = "PASSWORD")]
    pub password: Option<String>,
    /// CA certificate (PEM) that signed the cluster's certificate [env: ELASTICSEARCH_CA_CERT].
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Do not verify the cluster's TLS certificate (test clusters only).
    #[arg(long)]
    pub insecure: bool,
    /// Timeout of one request to Elasticsearch, e.g. `30s`.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_flag)]
    pub request_timeout: Option<Duration>,
    /// Where alerts go: rule-runner's own index, or Kibana's Security app (default:
    /// `security` when a Kibana URL is configured) [env: RULE_RUNNER_ALERTS_DESTINATION].
    #[arg(long, value_enum, value_name = "DESTINATION")]
    pub alerts_destination: Option<Destination>,
    /// Kibana's URL, for `setup` (rule registration, the alerts index, saved objects) and
    /// `kibana.version` [env: KIBANA_URL].
    #[arg(long, value_name = "URL")]
    pub kibana_url: Option<String>,
    /// The Kibana space alerts and rules belong to (default `default`) [env: KIBANA_SPACE].
    #[arg(long, value_name = "SPACE")]
    pub kibana_space: Option<String>,
}

impl fmt::Debug for ConnectionFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionFlags")
            .field("config", &self.config)
            .field(
                "urls",
                &self.urls.iter().map(|u| redact_url(u)).collect::<Vec<_>>(),
            )
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("ca_cert", &self.ca_cert)
            .field("insecure", &self.insecure)
            .field("request_timeout", &self.request_timeout)
            .field("alerts_destination", &self.alerts_destination)
            .field("kibana_url", &self.kibana_url)
            .field("kibana_space", &self.kibana_space)
            .finish()
    }
}

fn parse_duration_flag(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); use e.g. 30s, 5m, 1h"))
}

/// A URL as it may be shown: any password in it replaced.
pub fn redact_url(text: &str) -> String {
    match Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        Ok(url) => url.to_string(),
        Err(_) => "<unparseable URL>".into(),
    }
}

// The file's shape. Every field optional, so a layer only overrides what it names.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    elasticsearch: FileConnection,
    #[serde(default)]
    indices: IndexNames,
    #[serde(default)]
    engine: EngineConfig,
    #[serde(default)]
    retry: RetryPolicy,
    #[serde(default)]
    alerts: FileAlerts,
    #[serde(default)]
    kibana: FileKibana,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct FileConnection {
    /// A single URL or a list.
    #[serde(default, deserialize_with = "one_or_many")]
    urls: Option<Vec<String>>,
    api_key: Option<Secret>,
    username: Option<String>,
    password: Option<Secret>,
    ca_cert: Option<PathBuf>,
    #[serde(default)]
    insecure: bool,
    #[serde(default, deserialize_with = "optional_duration_text")]
    request_timeout: Option<Duration>,
}

fn duration_text<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!(
            "`{text}` is not a duration ({e}); use e.g. \"30s\", \"5m\", \"24h\""
        ))
    })
}

fn optional_duration_text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration_text(d).map(Some)
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    }))
}

impl ServiceConfig {
    /// Resolve the configuration from the flags, the process environment and the config file
    /// (`--config`, else `./rule-runner.toml` when present).
    pub fn load(flags: &ConnectionFlags) -> Result<Self, ConfigError> {
        Self::resolve(flags, &|name| {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        })
    }

    /// As [`ServiceConfig::load`], with the environment given as a lookup function (tests).
    pub fn resolve(
        flags: &ConnectionFlags,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        let file_path = match &flags.config {
            Some(path) => Some(path.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG_FILE)).filter(|p| p.is_file()),
        };
        let (file, file_layer) = match &file_path {
            Some(path) => {
                let file = read_file(path)?;
                let layer = file_connection_layer(path, &file.elasticsearch);
                (file, Some(layer))
            }
            None => (FileConfig::default(), None),
        };

        let env_layer = ConnectionLayer {
            origin: LayerOrigin::Env,
            urls: env("ELASTICSEARCH_URL").map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            }),
            api_key: env("ELASTICSEARCH_API_KEY").map(Secret),
            username: env("ELASTICSEARCH_USERNAME"),
            password: env("ELASTICSEARCH_PASSWORD").map(Secret),
            ca_cert: env("ELASTICSEARCH_CA_CERT").map(PathBuf::from),
            insecure: false,
            request_timeout: None,
        };
        let flag_layer = ConnectionLayer {
            origin: LayerOrigin::Flags,
            urls: Some(flags.urls.clone()).filter(|u| !u.is_empty()),
            api_key: flags.api_key.clone().map(Secret),
            username: flags.username.clone(),
            password: flags.password.clone().map(Secret),
            ca_cert: flags.ca_cert.clone(),
            insecure: flags.insecure,
            request_timeout: flags.request_timeout,
        };

        // Highest precedence first.
        let layers: Vec<&ConnectionLayer> =
            [Some(&flag_layer), Some(&env_layer), file_layer.as_ref()]
                .into_iter()
                .flatten()
                .collect();
        let connection = merge_connection(&layers)?;
        let resolved = resolve_kibana(
            &kibana_layers(flags, env, &file, file_path.as_deref())?,
            &connection.auth,
        )?;
        let mut engine = file.engine;
        if let Some(space) = resolved.space {
            if engine.space_id != crate::alert::DEFAULT_SPACE && engine.space_id != space {
                return Err(ConfigError::Invalid {
                    origin: "the Kibana space".into(),
                    message: format!(
                        "[engine] space_id `{}` and the Kibana space `{space}` differ; give the space once, as [kibana] space",
                        engine.space_id
                    ),
                });
            }
            engine.space_id = space;
        }
        let config = ServiceConfig {
            connection,
            indices: file.indices,
            engine,
            retry: file.retry,
            destination: resolved.destination,
            kibana: resolved.kibana,
            rollover: file.alerts.rollover.clone(),
            source_file: file_path,
        };
        config.validate()?;
        Ok(config)
    }

    fn file_origin(&self, key: &str) -> String {
        match &self.source_file {
            Some(path) => format!("config file {}: {key}", path.display()),
            None => format!("default {key}"),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.indices
            .check()
            .map_err(|(key, message)| ConfigError::Invalid {
                origin: self.file_origin(&format!("indices.{key}")),
                message,
            })?;
        let invalid = |key: &str, message: &str| ConfigError::Invalid {
            origin: self.file_origin(key),
            message: message.to_string(),
        };
        if self.retry.max_attempts == 0 {
            return Err(invalid("retry.max_attempts", "must be at least 1"));
        }
        self.engine.validate().map_err(|e| ConfigError::Invalid {
            origin: self.file_origin("[engine]"),
            message: e.to_string(),
        })?;
        Ok(())
    }
}

/// The Kibana settings of the flag, environment and file layers, highest first.
fn kibana_layers(
    flags: &ConnectionFlags,
    env: &dyn Fn(&str) -> Option<String>,
    file: &FileConfig,
    file_path: Option<&Path>,
) -> Result<Vec<KibanaLayer>, ConfigError> {
    let named = |value: Option<String>, origin: &str| value.map(|v| (v, origin.to_string()));
    let file_origin = |key: &str| match file_path {
        Some(path) => format!("config file {}: {key}", path.display()),
        None => key.to_string(),
    };
    let env_destination = env("RULE_RUNNER_ALERTS_DESTINATION")
        .map(|text| {
            <Destination as clap::ValueEnum>::from_str(text.trim(), true).map_err(|_| {
                ConfigError::Invalid {
                    origin: "RULE_RUNNER_ALERTS_DESTINATION".into(),
                    message: format!(
                        "`{text}` is not a destination; use `rule-runner` or `security`"
                    ),
                }
            })
        })
        .transpose()?;
    Ok(vec![
        KibanaLayer {
            url: named(flags.kibana_url.clone(), "--kibana-url"),
            public_url: None,
            space: named(flags.kibana_space.clone(), "--kibana-space"),
            destination: flags
                .alerts_destination
                .map(|d| (d, "--alerts-destination".to_string())),
            username: None,
            password: None,
            api_key: None,
            origin: "flags".into(),
        },
        KibanaLayer {
            url: named(env("KIBANA_URL"), "KIBANA_URL"),
            public_url: named(env("KIBANA_PUBLIC_URL"), "KIBANA_PUBLIC_URL"),
            space: named(env("KIBANA_SPACE"), "KIBANA_SPACE"),
            destination: env_destination.map(|d| (d, "RULE_RUNNER_ALERTS_DESTINATION".to_string())),
            username: env("KIBANA_USERNAME"),
            password: env("KIBANA_PASSWORD").map(Secret),
            api_key: env("KIBANA_API_KEY").map(Secret),
            origin: "KIBANA_USERNAME, KIBANA_PASSWORD, KIBANA_API_KEY".into(),
        },
        KibanaLayer {
            url: named(file.kibana.url.clone(), &file_origin("kibana.url")),
            public_url: named(
                file.kibana.public_url.clone(),
                &file_origin("kibana.public_url"),
            ),
            space: named(file.kibana.space.clone(), &file_origin("kibana.space")),
            destination: file
                .alerts
                .destination
                .map(|d| (d, file_origin("alerts.destination"))),
            username: file.kibana.username.clone(),
            password: file.kibana.password.clone(),
            api_key: file.kibana.api_key.clone(),
            origin: file_origin("[kibana]"),
        },
    ])
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let policy = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        for retry in 0..30 {
            let d = policy.backoff(retry);
            let full =
                (Duration::from_millis(100) * 2u32.pow(retry.min(10))).min(Duration::from_secs(1));
            assert!(
                d <= full && d >= full / 2,
                "retry {retry}: {d:?} vs {full:?}"
            );
        }
    }
}
