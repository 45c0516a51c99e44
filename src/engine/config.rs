//! Engine settings (the `[engine]` table of `rule-runner.toml`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::EngineError;
use super::timing::parse_cron;
use crate::alert::{DEFAULT_KIBANA_VERSION, DEFAULT_SPACE, IdentityStrategy};

/// How the engine runs rules. Durations are written like rule intervals: `24h`, `5m`, `90s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// How far back a run catches up after an outage; older unsearched time is reported as an
    /// open gap (for `backfill`), never silently skipped.
    #[serde(with = "duration_text")]
    pub max_catch_up: Duration,
    /// A run stops searching after this long; what it found is still written.
    #[serde(with = "duration_text")]
    pub run_timeout: Duration,
    /// Rules running at the same time, across all rules (Kibana's task capacity is 10).
    pub max_concurrent_runs: usize,
    /// Upper bound of any rule's `max_signals` (Kibana's `xpack.alerting.rules.run.alerts.max`).
    pub alerts_max: u32,
    /// What makes two hits the same event for dedup.
    pub identity: IdentityStrategy,
    /// Kibana space written into `kibana.space_ids`.
    pub space_id: String,
    /// Written into `kibana.version`; set it to your Kibana's version.
    pub kibana_version: String,
    /// Align every rule without its own `cron` to this cron expression instead of its interval.
    pub cron: Option<String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_catch_up: Duration::from_secs(24 * 3600),
            run_timeout: Duration::from_secs(5 * 60),
            max_concurrent_runs: 10,
            alerts_max: 1000,
            identity: IdentityStrategy::default(),
            space_id: DEFAULT_SPACE.to_owned(),
            kibana_version: DEFAULT_KIBANA_VERSION.to_owned(),
            cron: None,
        }
    }
}

impl EngineConfig {
    /// Check what serde cannot: ranges and the cron syntax.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |field, message: &str| {
            Err(EngineError::Config {
                field,
                message: message.to_owned(),
            })
        };
        if self.max_concurrent_runs == 0 {
            return bad("max_concurrent_runs", "must be at least 1");
        }
        if self.run_timeout.is_zero() {
            return bad("run_timeout", "must be longer than 0s");
        }
        if self.alerts_max == 0 {
            return bad("alerts_max", "must be at least 1");
        }
        if self.space_id.is_empty() {
            return bad(
                "space_id",
                "must not be empty (Kibana's default space is `default`)",
            );
        }
        if let Some(expression) = &self.cron {
            parse_cron(expression, None)?;
        }
        Ok(())
    }
}

/// Durations as text (`24h`), the way rule intervals are written.
mod duration_text {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    use super::super::timing::{format_duration, parse_interval};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format_duration(*value))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.trim() == "0s" || text.trim() == "0" {
            return Ok(Duration::ZERO);
        }
        parse_interval(&text).map_err(|_| {
            D::Error::custom(format!(
                "invalid duration `{text}`: expected a whole number followed by s, m, h or d (e.g. `24h`)"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documented_values() {
        let config = EngineConfig::default();
        assert_eq!(config.max_catch_up, Duration::from_secs(86_400));
        assert_eq!(config.run_timeout, Duration::from_secs(300));
        assert_eq!(config.max_concurrent_runs, 10);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn reads_durations_as_text_and_rejects_unknown_keys() {
        let config: EngineConfig = toml::from_str(
            "max_catch_up = \"6h\"\nrun_timeout = \"90s\"\nidentity = \"index_and_id\"",
        )
        .unwrap();
        assert_eq!(config.max_catch_up, Duration::from_secs(6 * 3600));
        assert_eq!(config.run_timeout, Duration::from_secs(90));
        assert_eq!(config.identity, IdentityStrategy::IndexAndId);
        let err = toml::from_str::<EngineConfig>("max_catchup = \"6h\"").unwrap_err();
        assert!(err.to_string().contains("max_catchup"), "{err}");
        let err = toml::from_str::<EngineConfig>("run_timeout = \"5 minutes\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let config = EngineConfig {
            max_concurrent_runs: 0,
            ..EngineConfig::default()
        };
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("max_concurrent_runs")
        );
        let config = EngineConfig {
            cron: Some("every ten minutes".into()),
            ..EngineConfig::default()
        };
        assert!(config.validate().unwrap_err().to_string().contains("cron"));
    }
}
