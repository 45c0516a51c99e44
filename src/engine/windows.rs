//! Which time ranges a run searches.
//!
//! A scheduled run searches its current window `[from(T), to(T)]`. When the rule's watermark
//! lies before `from(T)` (an outage, an overrun, a cap that held the watermark back), the run
//! first searches the time in between in interval-sized catch-up windows, oldest first, each
//! with its own `max_signals` budget. Kibana caps catch-up at four windows; rule-runner caps it
//! by time (`max_catch_up`) and reports anything older as an open gap instead of dropping it.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

use super::ports::RuleWindow;
use super::record::WindowKind;

/// One window of a run, and why it is searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedWindow {
    pub window: RuleWindow,
    pub kind: WindowKind,
}

/// The windows of one scheduled run, oldest first, and the unsearched gap beyond catch-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowPlan {
    pub windows: Vec<PlannedWindow>,
    pub gap: Option<RuleWindow>,
}

/// `std` → `chrono` duration, saturating: a catch-up limit of "forever" is still a limit.
pub fn delta(duration: Duration) -> TimeDelta {
    TimeDelta::from_std(duration).unwrap_or(TimeDelta::MAX)
}

/// Plan a scheduled run whose own window is `current`.
pub fn plan_scheduled(
    current: RuleWindow,
    interval: Duration,
    watermark: Option<DateTime<Utc>>,
    max_catch_up: Duration,
) -> WindowPlan {
    let mut plan = WindowPlan {
        windows: Vec::new(),
        gap: None,
    };
    if let Some(watermark) = watermark.filter(|w| *w < current.start) {
        let limit = current
            .start
            .checked_sub_signed(delta(max_catch_up))
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let catch_up_from = watermark.max(limit);
        if watermark < catch_up_from {
            plan.gap = Some(RuleWindow {
                start: watermark,
                end: catch_up_from,
            });
        }
        plan.windows.extend(
            split_backward(catch_up_from, current.start, interval)
                .into_iter()
                .map(|window| PlannedWindow {
                    window,
                    kind: WindowKind::CatchUp,
                }),
        );
    }
    plan.windows.push(PlannedWindow {
        window: current,
        kind: WindowKind::Current,
    });
    plan
}

/// `[start, end]` in interval-sized windows aligned on `end` (the oldest may be shorter),
/// oldest first: catch-up windows. Empty when `start >= end`.
pub fn split_backward(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: Duration,
) -> Vec<RuleWindow> {
    let mut windows = split(end, start, -delta(interval));
    windows.reverse();
    windows
}

/// `[start, end]` in interval-sized windows aligned on `start` (the last may be shorter),
/// oldest first: the windows of a backfill.
pub fn split_forward(
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    interval: Duration,
) -> Vec<RuleWindow> {
    split(start, end, delta(interval))
}

/// Windows of `step` from `from` towards `to` (either direction), the last one clipped.
fn split(from: DateTime<Utc>, to: DateTime<Utc>, step: TimeDelta) -> Vec<RuleWindow> {
    let forward = step > TimeDelta::zero();
    let mut windows = Vec::new();
    let mut edge = from;
    while (forward && edge < to) || (!forward && edge > to) {
        let next = edge
            .checked_add_signed(step)
            .map_or(to, |n| if forward { n.min(to) } else { n.max(to) });
        windows.push(RuleWindow {
            start: edge.min(next),
            end: edge.max(next),
        });
        edge = next;
    }
    windows
}

/// A duration as people read it, e.g. `2 days 3 hours` (for gap messages).
pub fn humanize(span: TimeDelta) -> String {
    let total = span.num_seconds().max(0);
    let parts = [
        (total / 86_400, "day"),
        (total % 86_400 / 3600, "hour"),
        (total % 3600 / 60, "minute"),
        (total % 60, "second"),
    ];
    let words: Vec<String> = parts
        .iter()
        .filter(|(count, _)| *count > 0)
        .take(2)
        .map(|(count, unit)| format!("{count} {unit}{}", if *count == 1 { "" } else { "s" }))
        .collect();
    if words.is_empty() {
        "0 seconds".to_owned()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, h, m, 0).unwrap()
    }
    fn w(a: DateTime<Utc>, b: DateTime<Utc>) -> RuleWindow {
        RuleWindow { start: a, end: b }
    }
    const TEN_MIN: Duration = Duration::from_secs(600);
    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn first_run_and_overlapping_runs_search_only_their_window() {
        let current = w(t(11, 0), t(12, 0));
        for watermark in [None, Some(t(11, 50)), Some(t(11, 0)), Some(t(12, 0))] {
            let plan = plan_scheduled(current, TEN_MIN, watermark, DAY);
            assert_eq!(plan.windows.len(), 1, "{watermark:?}");
            assert_eq!(plan.windows[0].window, current);
            assert_eq!(plan.gap, None);
        }
    }

    #[test]
    fn a_late_watermark_adds_catch_up_windows_oldest_first() {
        let plan = plan_scheduled(w(t(11, 0), t(12, 0)), TEN_MIN, Some(t(10, 35)), DAY);
        let windows: Vec<_> = plan.windows.iter().map(|p| (p.window, p.kind)).collect();
        assert_eq!(
            windows,
            vec![
                (w(t(10, 35), t(10, 40)), WindowKind::CatchUp),
                (w(t(10, 40), t(10, 50)), WindowKind::CatchUp),
                (w(t(10, 50), t(11, 0)), WindowKind::CatchUp),
                (w(t(11, 0), t(12, 0)), WindowKind::Current),
            ]
        );
        assert_eq!(plan.gap, None);
    }

    #[test]
    fn catch_up_is_bounded_and_the_rest_is_a_gap() {
        let plan = plan_scheduled(
            w(t(11, 0), t(12, 0)),
            TEN_MIN,
            Some(t(5, 0)),
            Duration::from_secs(3600),
        );
        assert_eq!(plan.gap, Some(w(t(5, 0), t(10, 0))));
        assert_eq!(plan.windows.len(), 7);
        assert_eq!(plan.windows[0].window, w(t(10, 0), t(10, 10)));
    }

    #[test]
    fn split_forward_covers_the_range_exactly() {
        let windows = split_forward(t(1, 0), t(1, 25), TEN_MIN);
        assert_eq!(
            windows,
            vec![
                w(t(1, 0), t(1, 10)),
                w(t(1, 10), t(1, 20)),
                w(t(1, 20), t(1, 25))
            ]
        );
        assert!(split_forward(t(1, 0), t(1, 0), TEN_MIN).is_empty());
    }

    #[test]
    fn humanize_reads_well() {
        assert_eq!(humanize(TimeDelta::seconds(90_061)), "1 day 1 hour");
        assert_eq!(humanize(TimeDelta::minutes(10)), "10 minutes");
        assert_eq!(humanize(TimeDelta::zero()), "0 seconds");
    }
}
