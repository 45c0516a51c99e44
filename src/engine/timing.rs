//! A rule's interval and window bounds, parsed for the engine.
//!
//! Interim: only `now`, `now-N<s|m|h|d>` and intervals `N<s|m|h|d>`, until the rules
//! module's full date math (`rule::time`) lands; then this file delegates to it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::EngineError;
use crate::rule::Rule;

/// What the engine needs of a rule's time settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    pub interval: Duration,
    from_offset: TimeDelta,
    to_offset: TimeDelta,
}

impl Timing {
    pub fn of(rule: &Rule) -> Result<Timing, EngineError> {
        let invalid = |field: &'static str, text: &str| EngineError::RuleTiming {
            rule_id: rule.rule_id.clone(),
            field,
            message: format!("`{text}` is not supported (expected e.g. `now-60m` or `10m`)"),
        };
        let interval =
            parse_interval(&rule.interval).ok_or_else(|| invalid("interval", &rule.interval))?;
        let from_offset = parse_now_minus(&rule.from).ok_or_else(|| invalid("from", &rule.from))?;
        let to_offset = parse_now_minus(&rule.to).ok_or_else(|| invalid("to", &rule.to))?;
        Ok(Timing {
            interval,
            from_offset,
            to_offset,
        })
    }

    /// The inclusive window `[from, to]` of a run started at `at`.
    pub fn window(&self, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (at - self.from_offset, at - self.to_offset)
    }
}

/// `N` followed by `s`, `m`, `h` or `d`, N > 0.
pub fn parse_interval(text: &str) -> Option<Duration> {
    let text = text.trim();
    let unit = text.chars().last()?;
    let count: u64 = text[..text.len() - unit.len_utf8()].parse().ok()?;
    let unit_secs = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return None,
    };
    match count.checked_mul(unit_secs)? {
        0 => None,
        secs => Some(Duration::from_secs(secs)),
    }
}

fn parse_now_minus(text: &str) -> Option<TimeDelta> {
    let rest = text.trim().strip_prefix("now")?;
    if rest.is_empty() {
        return Some(TimeDelta::zero());
    }
    TimeDelta::from_std(parse_interval(rest.strip_prefix('-')?)?).ok()
}

/// Render a duration the way intervals are written (`24h`, `90s`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}
