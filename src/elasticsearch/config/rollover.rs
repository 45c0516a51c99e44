//! `[alerts.rollover]`: when rule-runner's own alerts index rolls over to a new one behind
//! its write alias, so no single index grows forever.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The conditions, any of which rolls the alerts index over. Elasticsearch applies them
/// through an ILM policy; on OpenSearch (whose lifecycle management is a plugin) rule-runner
/// asks for a conditional rollover itself, at most every `check_interval`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rollover {
    /// `false` when a lifecycle policy of your own manages the alias.
    pub enabled: bool,
    /// Age of the write index, in Elasticsearch time units (`30d`, `12h`).
    #[serde(deserialize_with = "time_unit")]
    pub max_age: String,
    /// Size of the write index's primary shard, in byte units (`50gb`).
    #[serde(deserialize_with = "byte_unit")]
    pub max_size: String,
    /// Documents in the write index.
    pub max_docs: Option<u64>,
    /// OpenSearch only: how often the service asks for a conditional rollover.
    #[serde(deserialize_with = "humantime_duration")]
    pub check_interval: Duration,
}

impl Default for Rollover {
    fn default() -> Self {
        // Elasticsearch's own defaults for a hot phase's rollover.
        Rollover {
            enabled: true,
            max_age: "30d".into(),
            max_size: "50gb".into(),
            max_docs: None,
            check_interval: Duration::from_secs(300),
        }
    }
}

fn with_unit<'de, D: Deserializer<'de>>(
    d: D,
    units: &[&str],
    example: &str,
) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &text[digits.len()..];
    let valid = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits.parse::<u64>().is_ok_and(|n| n > 0)
        && units.contains(&unit);
    if valid {
        Ok(text)
    } else {
        Err(serde::de::Error::custom(format!(
            "`{text}` is not a positive whole number followed by one of {}; e.g. \"{example}\"",
            units.join(", ")
        )))
    }
}

fn time_unit<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with_unit(d, &["d", "h", "m", "s"], "30d")
}

fn byte_unit<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    with_unit(d, &["b", "kb", "mb", "gb", "tb", "pb"], "50gb")
}

fn humantime_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("`{text}` is not a duration ({e}); use e.g. \"5m\""))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Table {
        rollover: Rollover,
    }

    fn parse(text: &str) -> Result<Rollover, String> {
        toml::from_str::<Table>(text)
            .map(|t| t.rollover)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_elasticsearch_hot_phase_defaults() {
        let r = parse("[rollover]\n").unwrap();
        assert_eq!(r, Rollover::default());
        assert_eq!((r.max_age.as_str(), r.max_size.as_str()), ("30d", "50gb"));
    }

    #[test]
    fn units_are_checked_and_named() {
        let r = parse("[rollover]\nmax_age = \"7d\"\nmax_size = \"10gb\"\nmax_docs = 1000\ncheck_interval = \"30s\"\n")
            .unwrap();
        assert_eq!(r.max_docs, Some(1000));
        assert_eq!(r.check_interval, Duration::from_secs(30));
        for (line, wanted) in [
            ("max_age = \"7 days\"", "max_age"),
            ("max_age = \"0d\"", "max_age"),
            ("max_size = \"10GB\"", "max_size"),
            ("max_size = \"gb\"", "max_size"),
            ("check_interval = \"often\"", "check_interval"),
            ("max_sizes = \"1gb\"", "unknown field"),
        ] {
            let err = parse(&format!("[rollover]\n{line}\n")).unwrap_err();
            assert!(err.contains(wanted), "{line}: {err}");
        }
    }
}
