//! `[indices]`: the names of the indices rule-runner owns, and what makes a name usable.

use serde::Deserialize;

pub const DEFAULT_ALERTS_INDEX: &str = "rule-runner-alerts";
pub const DEFAULT_STATE_INDEX: &str = "rule-runner-state";
pub const DEFAULT_EXECUTIONS_INDEX: &str = "rule-runner-executions";
pub const DEFAULT_DEAD_LETTER_INDEX: &str = "rule-runner-dead-letter";

/// The indices rule-runner owns.
#[derive(Clone, PartialEq, Eq, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexNames {
    pub alerts: String,
    pub state: String,
    pub executions: String,
    pub dead_letter: String,
}

impl Default for IndexNames {
    fn default() -> Self {
        IndexNames {
            alerts: DEFAULT_ALERTS_INDEX.into(),
            state: DEFAULT_STATE_INDEX.into(),
            executions: DEFAULT_EXECUTIONS_INDEX.into(),
            dead_letter: DEFAULT_DEAD_LETTER_INDEX.into(),
        }
    }
}

impl IndexNames {
    pub fn all(&self) -> [(&'static str, &str); 4] {
        [
            ("alerts", &self.alerts),
            ("state", &self.state),
            ("executions", &self.executions),
            ("dead_letter", &self.dead_letter),
        ]
    }

    /// Every name valid for an index, and none in the way of the alerts indices; the key
    /// and what is wrong otherwise.
    pub(super) fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, name) in self.all() {
            validate_index_name(name).map_err(|message| (key, message))?;
        }
        // The alerts template covers `<alerts>-*`, the indices behind the alias.
        let backing = format!("{}-", self.alerts);
        for (key, name) in self.all().into_iter().skip(1) {
            if name.starts_with(&backing) {
                return Err((
                    key,
                    format!(
                        "`{name}` would be taken for one of the alerts indices behind `{}` \
                         (`{backing}*`); choose a name that does not start with `{backing}`",
                        self.alerts
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn validate_index_name(name: &str) -> Result<(), String> {
    const FORBIDDEN: &[char] = &['\\', '/', '*', '?', '"', '<', '>', '|', ' ', ',', '#', ':'];
    if name.is_empty() {
        return Err("an index name must not be empty".into());
    }
    if name != name.to_lowercase() {
        return Err(format!("index name `{name}` must be lowercase"));
    }
    if name.starts_with(['-', '_', '+']) || name == "." || name == ".." {
        return Err(format!("index name `{name}` must not start with -, _ or +"));
    }
    if let Some(c) = name.chars().find(|c| FORBIDDEN.contains(c)) {
        return Err(format!("index name `{name}` must not contain `{c}`"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_names_are_checked() {
        assert!(validate_index_name("rule-runner-alerts").is_ok());
        assert!(validate_index_name("Alerts").is_err());
        assert!(validate_index_name("a*").is_err());
        assert!(validate_index_name("_x").is_err());
    }
}
