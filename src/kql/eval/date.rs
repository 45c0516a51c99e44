//! Dates as Elasticsearch reads them in queries and documents: `strict_date_optional_time`
//! (ISO 8601 with optional parts, UTC unless an offset is given), epoch milliseconds, and date
//! math (`now-1d/d`, `2024-01-01||+1M`). Bounds of `lte`/`gt` round up, filling missing parts
//! with their maximum, as Elasticsearch's round-up parser does.
//!
//! Hand-written because chrono's parsers accept only complete timestamps, not ISO 8601's
//! optional parts or Elasticsearch's date math.

use chrono::{Datelike, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// Milliseconds since the Unix epoch (UTC).
pub(crate) type Millis = i64;

/// Parse a date value; `round_up` fills missing fields with their maximum.
pub(crate) fn parse(text: &str, round_up: bool, now: Millis) -> Option<Millis> {
    let text = text.trim();
    let (anchor, math) = if let Some(rest) = text.strip_prefix("now") {
        (from_millis(now)?, rest)
    } else if let Some((date, math)) = text.split_once("||") {
        (
            from_millis(parse_plain(date, round_up && math.is_empty())?)?,
            math,
        )
    } else {
        return parse_plain(text, round_up);
    };
    apply_math(anchor, math, round_up).map(|t| t.and_utc().timestamp_millis())
}

fn from_millis(ms: Millis) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.naive_utc())
}

/// Epoch milliseconds or an ISO 8601 date/time with optional parts.
pub(crate) fn parse_plain(text: &str, round_up: bool) -> Option<Millis> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && text.len() > 4 {
        return text.parse().ok();
    }
    let b = text.as_bytes();
    let mut p = Cursor { b, at: 0 };
    let year = p.digits(4)? as i32;
    let (mut month, mut day) = (None, None);
    let (mut hour, mut minute, mut second, mut nanos) = (None, None, None, None);
    if p.eat(b'-') {
        month = Some(p.digits(2)?);
        if p.eat(b'-') {
            day = Some(p.digits(2)?);
            if p.eat(b'T') || p.eat(b' ') {
                hour = Some(p.digits(2)?);
                if p.eat(b':') {
                    minute = Some(p.digits(2)?);
                    if p.eat(b':') {
                        second = Some(p.digits(2)?);
                        if p.eat(b'.') || p.eat(b',') {
                            nanos = Some(p.fraction()?);
                        }
                    }
                }
            }
        }
    }
    let offset_secs = p.offset()?;
    if p.at != b.len() {
        return None;
    }
    let month_v = month.unwrap_or(if round_up { 12 } else { 1 });
    let first = NaiveDate::from_ymd_opt(year, month_v, 1)?;
    let day_v = match day {
        Some(d) => d,
        None if round_up => last_day_of_month(first)?,
        None => 1,
    };
    let date = NaiveDate::from_ymd_opt(year, month_v, day_v)?;
    let max = |v: Option<u32>, hi: u32| v.unwrap_or(if round_up { hi } else { 0 });
    let time = NaiveTime::from_hms_nano_opt(
        max(hour, 23),
        max(minute, 59),
        max(second, 59),
        nanos.unwrap_or(if round_up { 999_999_999 } else { 0 }),
    )?;
    let local = NaiveDateTime::new(date, time).and_utc().timestamp_millis();
    Some(local - offset_secs * 1000)
}

fn last_day_of_month(first: NaiveDate) -> Option<u32> {
    let next = first.checked_add_months(Months::new(1))?;
    Some(next.pred_opt()?.day())
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.at) == Some(&c) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.at..self.at + n)?;
        if !s.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.at += n;
        Some(s.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    }

    /// Fraction of a second, up to nanoseconds (extra digits are dropped).
    fn fraction(&mut self) -> Option<u32> {
        let start = self.at;
        while self.b.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = &self.b[start..self.at];
        if digits.is_empty() {
            return None;
        }
        let mut nanos = 0u32;
        for i in 0..9 {
            nanos = nanos * 10 + digits.get(i).map_or(0, |d| u32::from(d - b'0'));
        }
        Some(nanos)
    }

    /// `Z`, `±HH:mm`, `±HHmm`, `±HH` or nothing (UTC); seconds east of UTC.
    fn offset(&mut self) -> Option<i64> {
        if self.eat(b'Z') || self.eat(b'z') || self.at == self.b.len() {
            return Some(0);
        }
        let sign = if self.eat(b'+') {
            1
        } else if self.eat(b'-') {
            -1
        } else {
            return Some(0);
        };
        let hours = i64::from(self.digits(2)?);
        self.eat(b':');
        let minutes = if self.at < self.b.len() {
            i64::from(self.digits(2)?)
        } else {
            0
        };
        Some(sign * (hours * 3600 + minutes * 60))
    }
}

/// Apply `+1d`, `-2h`, `/d` steps in order.
fn apply_math(mut t: NaiveDateTime, math: &str, round_up: bool) -> Option<NaiveDateTime> {
    let b = math.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let op = b[i];
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let amount: i64 = if i > start {
            math[start..i].parse().ok()?
        } else {
            1
        };
        let unit = *b.get(i)?;
        i += 1;
        t = match op {
            b'+' => add(t, amount, unit)?,
            b'-' => add(t, -amount, unit)?,
            b'/' => round(t, unit, round_up)?,
            _ => return None,
        };
    }
    Some(t)
}

fn add(t: NaiveDateTime, n: i64, unit: u8) -> Option<NaiveDateTime> {
    let months = |m: i64| {
        let m32 = u32::try_from(m.unsigned_abs()).ok()?;
        if m >= 0 {
            t.checked_add_months(Months::new(m32))
        } else {
            t.checked_sub_months(Months::new(m32))
        }
    };
    match unit {
        b'y' => months(n.checked_mul(12)?),
        b'M' => months(n),
        b'w' => t.checked_add_signed(Duration::try_weeks(n)?),
        b'd' => t.checked_add_signed(Duration::try_days(n)?),
        b'h' | b'H' => t.checked_add_signed(Duration::try_hours(n)?),
        b'm' => t.checked_add_signed(Duration::try_minutes(n)?),
        b's' => t.checked_add_signed(Duration::try_seconds(n)?),
        _ => None,
    }
}

fn round(t: NaiveDateTime, unit: u8, up: bool) -> Option<NaiveDateTime> {
    let date = t.date();
    let start = match unit {
        b'y' => NaiveDate::from_ymd_opt(date.year(), 1, 1)?.and_hms_opt(0, 0, 0)?,
        b'M' => NaiveDate::from_ymd_opt(date.year(), date.month(), 1)?.and_hms_opt(0, 0, 0)?,
        b'w' => {
            let back = i64::from(date.weekday().num_days_from_monday());
            (date - Duration::try_days(back)?).and_hms_opt(0, 0, 0)?
        }
        b'd' => date.and_hms_opt(0, 0, 0)?,
        b'h' | b'H' => date.and_hms_opt(t.hour(), 0, 0)?,
        b'm' => date.and_hms_opt(t.hour(), t.minute(), 0)?,
        b's' => date.and_hms_opt(t.hour(), t.minute(), t.second())?,
        _ => return None,
    };
    if !up {
        return Some(start);
    }
    let next = add(start, 1, unit)?;
    next.checked_sub_signed(Duration::try_milliseconds(1)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Millis {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn full_and_partial_iso_dates() {
        assert_eq!(
            parse("2024-01-02T03:04:05Z", false, 0),
            Some(ms("2024-01-02T03:04:05Z"))
        );
        assert_eq!(
            parse("2024-01-02T03:04:05.123456Z", false, 0),
            Some(ms("2024-01-02T03:04:05.123Z"))
        );
        assert_eq!(
            parse("2024-01-02T03:04:05+02:00", false, 0),
            Some(ms("2024-01-02T01:04:05Z"))
        );
        assert_eq!(
            parse("2024-01-02", false, 0),
            Some(ms("2024-01-02T00:00:00Z"))
        );
        assert_eq!(
            parse("2024-01-02", true, 0),
            Some(ms("2024-01-02T23:59:59.999Z"))
        );
        assert_eq!(
            parse("2024-02", true, 0),
            Some(ms("2024-02-29T23:59:59.999Z"))
        );
        assert_eq!(parse("2024", false, 0), Some(ms("2024-01-01T00:00:00Z")));
        assert_eq!(parse("1776338120239", false, 0), Some(1_776_338_120_239));
        for bad in [
            "",
            "yesterday",
            "2024-13-01",
            "2024-01-02T",
            "2024-01-02Tx",
            "20x4",
        ] {
            assert_eq!(parse(bad, false, 0), None, "{bad}");
        }
    }

    #[test]
    fn date_math_against_now_and_anchors() {
        let now = ms("2024-03-15T10:30:00Z");
        assert_eq!(parse("now", false, now), Some(now));
        assert_eq!(
            parse("now-1d", false, now),
            Some(ms("2024-03-14T10:30:00Z"))
        );
        assert_eq!(
            parse("now-1d/d", false, now),
            Some(ms("2024-03-14T00:00:00Z"))
        );
        assert_eq!(
            parse("now/d", true, now),
            Some(ms("2024-03-15T23:59:59.999Z"))
        );
        assert_eq!(
            parse("now+1M/M", false, now),
            Some(ms("2024-04-01T00:00:00Z"))
        );
        assert_eq!(
            parse("2024-01-31||+1M", false, now),
            Some(ms("2024-02-29T00:00:00Z"))
        );
        assert_eq!(parse("now-x", false, now), None);
    }
}
