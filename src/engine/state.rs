//! What a run carries over to the next: the watermark and the open gaps.
//!
//! The watermark is the end of the last window whose matching events were all turned into
//! alerts (or deliberately dead-lettered). A window that could not be finished holds it at the
//! earliest event that still needs work, so the next run searches from there.

use chrono::{DateTime, Utc};

use super::ports::RuleWindow;
use super::record::WindowReport;

/// The watermark after a run whose windows (oldest first) ended as `reports`.
pub fn next_watermark(
    before: Option<DateTime<Utc>>,
    reports: &[WindowReport],
) -> Option<DateTime<Utc>> {
    let mut watermark = before;
    for report in reports {
        if !report.complete {
            return Some(report.resume_from.unwrap_or(report.start));
        }
        watermark = watermark.max(Some(report.end));
    }
    watermark
}

/// Add `gap` to `gaps`, merging ranges that touch or overlap; the result stays sorted.
pub fn add_gap(gaps: &mut Vec<RuleWindow>, gap: RuleWindow) {
    gaps.push(gap);
    gaps.sort();
    let mut merged: Vec<RuleWindow> = Vec::with_capacity(gaps.len());
    for next in gaps.drain(..) {
        match merged.last_mut() {
            Some(last) if next.start <= last.end => last.end = last.end.max(next.end),
            _ => merged.push(next),
        }
    }
    *gaps = merged;
}

/// `gaps` minus the time `covered` searched completely (a backfill closing open gaps).
pub fn subtract_covered(gaps: &[RuleWindow], covered: &[RuleWindow]) -> Vec<RuleWindow> {
    let mut remaining = gaps.to_vec();
    for cut in covered {
        remaining = remaining
            .into_iter()
            .flat_map(|gap| {
                let before = RuleWindow {
                    start: gap.start,
                    end: gap.end.min(cut.start),
                };
                let after = RuleWindow {
                    start: gap.start.max(cut.end),
                    end: gap.end,
                };
                [before, after]
                    .into_iter()
                    .filter(|piece| piece.start < piece.end)
            })
            .collect();
    }
    remaining
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{WindowCounts, WindowKind};
    use chrono::TimeZone;

    fn t(m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 1, 10, m, 0).unwrap()
    }
    fn w(a: u32, b: u32) -> RuleWindow {
        RuleWindow {
            start: t(a),
            end: t(b),
        }
    }
    fn report(a: u32, b: u32, resume: Option<u32>) -> WindowReport {
        WindowReport {
            start: t(a),
            end: t(b),
            kind: WindowKind::Current,
            counts: WindowCounts::default(),
            complete: resume.is_none(),
            resume_from: resume.map(t),
        }
    }

    #[test]
    fn watermark_moves_to_the_last_complete_window_and_stops_at_the_first_incomplete() {
        assert_eq!(next_watermark(None, &[report(0, 10, None)]), Some(t(10)));
        assert_eq!(
            next_watermark(
                Some(t(5)),
                &[
                    report(5, 10, None),
                    report(10, 20, Some(14)),
                    report(20, 30, None)
                ]
            ),
            Some(t(14))
        );
        assert_eq!(
            next_watermark(Some(t(40)), &[report(0, 30, None)]),
            Some(t(40))
        );
        assert_eq!(next_watermark(Some(t(3)), &[]), Some(t(3)));
    }

    #[test]
    fn gaps_merge_and_backfills_close_them() {
        let mut gaps = vec![w(0, 10)];
        add_gap(&mut gaps, w(20, 30));
        add_gap(&mut gaps, w(10, 15));
        assert_eq!(gaps, vec![w(0, 15), w(20, 30)]);
        assert_eq!(
            subtract_covered(&gaps, &[w(0, 5), w(5, 10)]),
            vec![w(10, 15), w(20, 30)]
        );
        assert_eq!(
            subtract_covered(&gaps, &[w(22, 25)]),
            vec![w(0, 15), w(20, 22), w(25, 30)]
        );
        assert!(subtract_covered(&gaps, &[w(0, 59)]).is_empty());
    }
}
