//! A rule's interval and window bounds as the engine uses them, on top of `rule::time`, with
//! errors that name the rule and the field.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::EngineError;
use super::ports::RuleWindow;
use crate::rule::Rule;
use crate::rule::time::RuleTiming;

pub use crate::rule::time::{format_duration, parse_interval};

/// What the engine needs of a rule's time settings, parsed once per run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    rule_id: String,
    timing: RuleTiming,
}

impl Timing {
    pub fn of(rule: &Rule) -> Result<Timing, EngineError> {
        let timing = rule
            .timing()
            .map_err(|(field, error)| EngineError::RuleTiming {
                rule_id: rule.rule_id.clone(),
                field: field.name(),
                message: error.to_string(),
            })?;
        Ok(Timing {
            rule_id: rule.rule_id.clone(),
            timing,
        })
    }

    pub fn interval(&self) -> Duration {
        self.timing.interval
    }

    /// The inclusive window `[from, to]` of a run started at `at`.
    pub fn window(&self, at: DateTime<Utc>) -> Result<RuleWindow, EngineError> {
        let (start, end) = self
            .timing
            .window(at)
            .map_err(|error| EngineError::RuleTiming {
                rule_id: self.rule_id.clone(),
                field: "from/to",
                message: error.to_string(),
            })?;
        if start > end {
            return Err(EngineError::RuleTiming {
                rule_id: self.rule_id.clone(),
                field: "from/to",
                message: format!(
                    "`from` resolves after `to` ({start} > {end}); the window would be empty"
                ),
            });
        }
        Ok(RuleWindow { start, end })
    }
}
/// Parse a cron expression: the `cron` crate's 6/7-field form (with seconds), or the classic
/// 5-field crontab form, which runs at second 0.
pub fn parse_cron(expression: &str, rule_id: Option<&str>) -> Result<cron::Schedule, EngineError> {
    let fields = expression.split_whitespace().count();
    let full = if fields == 5 {
        format!("0 {expression}")
    } else {
        expression.to_owned()
    };
    full.parse::<cron::Schedule>()
        .map_err(|error| EngineError::Cron {
            expression: expression.to_owned(),
            rule_id: rule_id.map(str::to_owned),
            message: error.to_string(),
        })
}
