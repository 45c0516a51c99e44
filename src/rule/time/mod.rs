//! The time expressions rules are written in: the run `interval` (`10m`) and the window bounds
//! `from`/`to` in Elasticsearch date math (`now-60m`, `now-1d/d`), resolved against the start
//! of a run as Kibana does (`kibana-detection-engine.md` §3.1).
//!
//! Hand-written rather than taken from a crate on purpose: the general duration parsers
//! (`humantime`, `parse_duration`) accept forms Kibana rejects (`10min`, `1h 30m`, fractions),
//! and no maintained crate implements Kibana's `@kbn/datemath` subset of date math.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Datelike, Days, Months, NaiveTime, TimeDelta, Timelike, Utc};

mod window;

pub use window::{RuleTiming, TimeField, format_duration, humanize_look_back};

/// Why a time expression was rejected. The message says what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimeError {
    #[error(
        "invalid interval `{0}`: expected a positive whole number followed by s, m, h or d (e.g. `10m`)"
    )]
    Interval(String),
    #[error(
        "invalid date math `{text}`: {why} (expected e.g. `now`, `now-60m`, `now-1d/d` or an ISO 8601 date; units y M w d h m s ms)"
    )]
    DateMath { text: String, why: String },
    #[error("date math `{0}` leaves the representable date range")]
    OutOfRange(String),
}

/// Parse a Kibana schedule interval: a positive whole number and one of `s`, `m`, `h`, `d`.
pub fn parse_interval(text: &str) -> Result<Duration, TimeError> {
    let bad = || TimeError::Interval(text.to_owned());
    let trimmed = text.trim();
    let unit = trimmed.chars().last().ok_or_else(bad)?;
    let digits = &trimmed[..trimmed.len() - unit.len_utf8()];
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let count: u64 = digits.parse().map_err(|_| bad())?;
    let seconds_per_unit = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    match count.checked_mul(seconds_per_unit) {
        Some(0) | None => Err(bad()),
        Some(secs) => Ok(Duration::from_secs(secs)),
    }
}

/// A calendar or clock unit of date math.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Year,
    Month,
    Week,
    Day,
    Hour,
    Minute,
    Second,
    Millisecond,
}

impl Unit {
    fn parse(text: &str) -> Option<Unit> {
        Some(match text {
            "y" => Unit::Year,
            "M" => Unit::Month,
            "w" => Unit::Week,
            "d" => Unit::Day,
            "h" | "H" => Unit::Hour,
            "m" => Unit::Minute,
            "s" => Unit::Second,
            "ms" => Unit::Millisecond,
            _ => return None,
        })
    }

    /// The fixed length of one unit, or `None` for months and years.
    fn fixed(self) -> Option<TimeDelta> {
        match self {
            Unit::Year | Unit::Month => None,
            Unit::Week => Some(TimeDelta::weeks(1)),
            Unit::Day => Some(TimeDelta::days(1)),
            Unit::Hour => Some(TimeDelta::hours(1)),
            Unit::Minute => Some(TimeDelta::minutes(1)),
            Unit::Second => Some(TimeDelta::seconds(1)),
            Unit::Millisecond => Some(TimeDelta::milliseconds(1)),
        }
    }
}

/// One step applied to the anchor, left to right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `+N<unit>` or `-N<unit>` (negative `amount`).
    Add { amount: i64, unit: Unit },
    /// `/<unit>`: round down to the start of the unit (UTC; weeks start on Monday as in
    /// Elasticsearch).
    Round(Unit),
}

/// Where date math starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    Now,
    Fixed(DateTime<Utc>),
}

/// A parsed date-math expression such as `now-60m` or `now-1d/d`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateMath {
    text: String,
    anchor: Anchor,
    steps: Vec<Step>,
}

impl DateMath {
    pub fn parse(text: &str) -> Result<DateMath, TimeError> {
        let fail = |why: &str| TimeError::DateMath {
            text: text.to_owned(),
            why: why.to_owned(),
        };
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(fail("it is empty"));
        }
        let (anchor, math) = if let Some(rest) = trimmed.strip_prefix("now") {
            (Anchor::Now, rest)
        } else if let Some((date, rest)) = trimmed.split_once("||") {
            (
                Anchor::Fixed(
                    parse_absolute(date)
                        .ok_or_else(|| fail("the date before `||` is not ISO 8601"))?,
                ),
                rest,
            )
        } else {
            let date = parse_absolute(trimmed)
                .ok_or_else(|| fail("it does not start with `now` and is not an ISO 8601 date"))?;
            return Ok(DateMath {
                text: trimmed.to_owned(),
                anchor: Anchor::Fixed(date),
                steps: Vec::new(),
            });
        };
        let steps = parse_steps(math).map_err(|why| fail(&why))?;
        Ok(DateMath {
            text: trimmed.to_owned(),
            anchor,
            steps,
        })
    }

    pub fn anchor(&self) -> Anchor {
        self.anchor
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The time this expression names for a run that started at `now`.
    pub fn resolve(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
        let mut time = match self.anchor {
            Anchor::Now => now,
            Anchor::Fixed(t) => t,
        };
        for step in &self.steps {
            let next = match *step {
                Step::Add { amount, unit } => add(time, amount, unit),
                Step::Round(unit) => round_down(time, unit),
            };
            time = next.ok_or_else(|| TimeError::OutOfRange(self.text.clone()))?;
        }
        Ok(time)
    }

    /// For `now-<N><unit>` with a fixed-length unit, how far back it reaches: what Kibana's
    /// rule editor splits into interval plus additional look-back.
    pub fn look_back(&self) -> Option<Duration> {
        match (self.anchor, self.steps.as_slice()) {
            (Anchor::Now, []) => Some(Duration::ZERO),
            (Anchor::Now, [Step::Add { amount, unit }]) if *amount <= 0 => {
                let delta = unit.fixed()?.checked_mul(i32::try_from(-amount).ok()?)?;
                delta.to_std().ok()
            }
            _ => None,
        }
    }
}

impl fmt::Display for DateMath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for DateMath {
    type Err = TimeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateMath::parse(s)
    }
}

fn parse_steps(mut math: &str) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    while let Some(op) = math.chars().next() {
        if !matches!(op, '+' | '-' | '/') {
            return Err(format!("unexpected `{op}`; expected `+`, `-` or `/`"));
        }
        math = &math[op.len_utf8()..];
        let digits_len = math.bytes().take_while(u8::is_ascii_digit).count();
        let (digits, rest) = math.split_at(digits_len);
        let unit_len = if rest.starts_with("ms") {
            2
        } else {
            rest.chars().next().map_or(0, char::len_utf8)
        };
        let (unit_text, rest) = rest.split_at(unit_len);
        let unit = Unit::parse(unit_text).ok_or_else(|| {
            if unit_text.is_empty() {
                format!("`{op}{digits}` has no unit")
            } else {
                format!("unknown unit `{unit_text}`")
            }
        })?;
        match op {
            '+' | '-' => {
                let amount: i64 = if digits.is_empty() {
                    1
                } else {
                    digits
                        .parse()
                        .map_err(|_| format!("`{digits}` is too large"))?
                };
                let amount = if op == '-' { -amount } else { amount };
                steps.push(Step::Add { amount, unit });
            }
            _ if digits.is_empty() => steps.push(Step::Round(unit)),
            _ => return Err(format!("rounding takes a unit only, not `/{digits}`")),
        }
        math = rest;
    }
    Ok(steps)
}

fn parse_absolute(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(t.and_utc());
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .map(|d| d.and_time(NaiveTime::MIN).and_utc())
}

fn add(time: DateTime<Utc>, amount: i64, unit: Unit) -> Option<DateTime<Utc>> {
    let months = match unit {
        Unit::Year => amount.checked_mul(12)?,
        Unit::Month => amount,
        _ => {
            let delta = unit.fixed()?.checked_mul(i32::try_from(amount).ok()?)?;
            return time.checked_add_signed(delta);
        }
    };
    let magnitude = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        time.checked_add_months(magnitude)
    } else {
        time.checked_sub_months(magnitude)
    }
}

fn round_down(time: DateTime<Utc>, unit: Unit) -> Option<DateTime<Utc>> {
    let midnight = time.date_naive().and_time(NaiveTime::MIN).and_utc();
    Some(match unit {
        Unit::Year => midnight.with_day(1)?.with_month(1)?,
        Unit::Month => midnight.with_day(1)?,
        Unit::Week => midnight
            .checked_sub_days(Days::new(u64::from(time.weekday().num_days_from_monday())))?,
        Unit::Day => midnight,
        Unit::Hour => time.with_nanosecond(0)?.with_second(0)?.with_minute(0)?,
        Unit::Minute => time.with_nanosecond(0)?.with_second(0)?,
        Unit::Second => time.with_nanosecond(0)?,
        Unit::Millisecond => time.with_nanosecond(time.nanosecond() / 1_000_000 * 1_000_000)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A UTC time, for tests here and in `window`.
    pub(super) fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    #[test]
    fn intervals_in_every_unit() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_interval("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_interval("1d"), Ok(Duration::from_secs(86_400)));
    }

    #[test]
    fn intervals_kibana_rejects() {
        for bad in [
            "",
            "m",
            "10",
            "0m",
            "10min",
            "1.5h",
            "-5m",
            "10 m",
            "1w",
            "5M",
            "99999999999999999999d",
        ] {
            assert!(parse_interval(bad).is_err(), "{bad:?} accepted");
        }
        let message = parse_interval("10x").unwrap_err().to_string();
        assert!(
            message.contains("`10x`") && message.contains("10m"),
            "{message}"
        );
    }

    #[test]
    fn date_math_relative_to_the_run_start() {
        let now = at(2024, 5, 15, 12, 34, 56);
        // 2024-05-15 is a Wednesday; weeks start on Monday.
        let cases = [
            ("now", now),
            ("now-60m", at(2024, 5, 15, 11, 34, 56)),
            ("now-6m", at(2024, 5, 15, 12, 28, 56)),
            ("now+1h", at(2024, 5, 15, 13, 34, 56)),
            ("now-360s", at(2024, 5, 15, 12, 28, 56)),
            ("now-1d/d", at(2024, 5, 14, 0, 0, 0)),
            ("now/d", at(2024, 5, 15, 0, 0, 0)),
            ("now/h", at(2024, 5, 15, 12, 0, 0)),
            ("now/M", at(2024, 5, 1, 0, 0, 0)),
            ("now/y", at(2024, 1, 1, 0, 0, 0)),
            ("now/w", at(2024, 5, 13, 0, 0, 0)),
            ("now-1M", at(2024, 4, 15, 12, 34, 56)),
            ("now-1y+2d/d", at(2023, 5, 17, 0, 0, 0)),
            ("2024-01-01T00:00:00Z||+1d", at(2024, 1, 2, 0, 0, 0)),
            ("2024-01-01", at(2024, 1, 1, 0, 0, 0)),
        ];
        for (text, expected) in cases {
            let resolved = DateMath::parse(text).unwrap().resolve(now).unwrap();
            assert_eq!(resolved, expected, "{text}");
        }
    }

    #[test]
    fn month_arithmetic_clamps_to_the_month_end() {
        let now = at(2024, 3, 31, 8, 0, 0);
        let back = DateMath::parse("now-1M").unwrap().resolve(now).unwrap();
        assert_eq!(back, at(2024, 2, 29, 8, 0, 0));
    }

    #[test]
    fn bad_date_math_says_why() {
        for (bad, why) in [
            ("", "empty"),
            ("now-", "no unit"),
            ("now-60", "no unit"),
            ("now-60x", "unknown unit `x`"),
            ("now*2m", "unexpected `*`"),
            ("now/2d", "rounding takes a unit only"),
            ("yesterday", "does not start with `now`"),
            ("now-99999999999999999999d", "too large"),
        ] {
            let message = DateMath::parse(bad).unwrap_err().to_string();
            assert!(message.contains(why), "{bad:?}: {message}");
        }
        let far = DateMath::parse("now-999999999y").unwrap();
        assert!(matches!(
            far.resolve(Utc::now()),
            Err(TimeError::OutOfRange(_))
        ));
    }
}
