//! A rule's schedule and window: interval, `from` and `to` parsed together, the window of a
//! run, Kibana's additional look-back, and the checks that catch windows that cannot work.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{DateMath, TimeError, parse_interval};
use crate::rule::model::Rule;

/// A rule's schedule and window, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTiming {
    pub interval: Duration,
    pub from: DateMath,
    pub to: DateMath,
}

/// Which rule field a time error belongs to, so load errors can name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    Interval,
    From,
    To,
}

impl TimeField {
    pub fn name(self) -> &'static str {
        match self {
            TimeField::Interval => "interval",
            TimeField::From => "from",
            TimeField::To => "to",
        }
    }
}

impl RuleTiming {
    /// The window `[from, to]` of a run that started at `started_at`.
    pub fn window(
        &self,
        started_at: DateTime<Utc>,
    ) -> Result<(DateTime<Utc>, DateTime<Utc>), TimeError> {
        Ok((self.from.resolve(started_at)?, self.to.resolve(started_at)?))
    }

    /// Kibana's "additional look-back time": how far `from` reaches beyond one interval
    /// (`now-60m` every `10m` → 50 minutes). `None` when `from` is not a plain `now-N<unit>`
    /// or `to` is not `now`, where Kibana's editor shows no split either.
    pub fn additional_look_back(&self) -> Option<Duration> {
        if self.to.look_back() != Some(Duration::ZERO) {
            return None;
        }
        Some(self.from.look_back()?.saturating_sub(self.interval))
    }
}

impl RuleTiming {
    /// Why the window is empty when resolved at `now` (`from` after `to`), if it is.
    pub fn inverted_at(&self, now: DateTime<Utc>) -> Option<String> {
        let (from, to) = self.window(now).ok()?;
        (from > to).then(|| {
            format!(
                "`from` (`{}`) comes after `to` (`{}`): every window would be empty",
                self.from, self.to
            )
        })
    }

    /// Why consecutive runs would leave time unsearched: a window shorter than the interval.
    pub fn gap_warning(&self) -> Option<String> {
        let reach = self.from.look_back()?;
        let to_offset = self.to.look_back()?;
        let window = reach.checked_sub(to_offset)?;
        (window < self.interval).then(|| {
            format!(
                "the window `{}`..`{}` ({}) is shorter than the interval ({}): events between \
                 runs are never searched; widen `from` to at least `now-{}`",
                self.from,
                self.to,
                format_duration(window),
                format_duration(self.interval),
                format_duration(self.interval + to_offset),
            )
        })
    }
}

impl Rule {
    /// Parse `interval`, `from` and `to`; the error names the field at fault.
    pub fn timing(&self) -> Result<RuleTiming, (TimeField, TimeError)> {
        Ok(RuleTiming {
            interval: parse_interval(&self.interval).map_err(|e| (TimeField::Interval, e))?,
            from: DateMath::parse(&self.from).map_err(|e| (TimeField::From, e))?,
            to: DateMath::parse(&self.to).map_err(|e| (TimeField::To, e))?,
        })
    }
}

/// Render a duration the way rules write it (`50m`, `1h`, `90s`).
pub fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
        if secs != 0 && secs % size == 0 {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A look-back as Kibana's rule editor shows it: whole units, rounded down, in the largest
/// unit the duration does not fill 60 (or 24) of (`90s` shows as `1m`, `50m` as `50m`).
pub fn humanize_look_back(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m", secs / 60),
        3600..86_400 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::at;
    use super::*;

    #[test]
    fn seed_rule_window_and_look_back() {
        let rule = Rule {
            from: "now-60m".into(),
            interval: "10m".into(),
            ..Rule::default()
        };
        let timing = rule.timing().unwrap();
        let start = at(2024, 5, 15, 12, 0, 0);
        assert_eq!(
            timing.window(start).unwrap(),
            (at(2024, 5, 15, 11, 0, 0), start)
        );
        assert_eq!(
            timing.additional_look_back(),
            Some(Duration::from_secs(50 * 60))
        );
        assert_eq!(
            format_duration(timing.additional_look_back().unwrap()),
            "50m"
        );

        let defaults = Rule::default().timing().unwrap();
        assert_eq!(defaults.interval, Duration::from_secs(300));
        assert_eq!(
            defaults.additional_look_back(),
            Some(Duration::from_secs(60))
        );

        let rounded = Rule {
            from: "now-1d/d".into(),
            ..Rule::default()
        };
        assert_eq!(rounded.timing().unwrap().additional_look_back(), None);
    }

    #[test]
    fn inverted_windows_and_gaps() {
        let now = at(2024, 5, 15, 12, 0, 0);
        let timing = |from: &str, interval: &str| {
            Rule {
                from: from.into(),
                interval: interval.into(),
                ..Rule::default()
            }
            .timing()
            .unwrap()
        };
        assert_eq!(timing("now-60m", "10m").inverted_at(now), None);
        assert_eq!(timing("now-60m", "10m").gap_warning(), None);
        assert_eq!(timing("now-10m", "10m").gap_warning(), None);
        let inverted = timing("now+1h", "10m").inverted_at(now).unwrap();
        assert!(
            inverted.contains("`from` (`now+1h`) comes after `to` (`now`)"),
            "{inverted}"
        );
        let gap = timing("now-6m", "1h").gap_warning().unwrap();
        assert!(
            gap.contains("(6m) is shorter than the interval (1h)"),
            "{gap}"
        );
        assert!(gap.contains("at least `now-1h`"), "{gap}");
        // Rounded bounds have no fixed length: no claim either way.
        assert_eq!(timing("now-1d/d", "1h").gap_warning(), None);
    }

    #[test]
    fn timing_errors_name_the_field() {
        let bad_interval = Rule {
            interval: "soon".into(),
            ..Rule::default()
        };
        assert_eq!(bad_interval.timing().unwrap_err().0, TimeField::Interval);
        let bad_to = Rule {
            to: "later".into(),
            ..Rule::default()
        };
        assert_eq!(bad_to.timing().unwrap_err().0.name(), "to");
    }

    #[test]
    fn look_back_as_kibana_shows_it() {
        assert_eq!(humanize_look_back(Duration::from_secs(3000)), "50m");
        assert_eq!(humanize_look_back(Duration::from_secs(90)), "1m");
        assert_eq!(humanize_look_back(Duration::from_secs(59)), "59s");
        assert_eq!(humanize_look_back(Duration::from_secs(5400)), "1h");
        assert_eq!(humanize_look_back(Duration::from_secs(200_000)), "2d");
    }

    #[test]
    fn durations_render_in_the_largest_whole_unit() {
        assert_eq!(format_duration(Duration::from_secs(3000)), "50m");
        assert_eq!(format_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
