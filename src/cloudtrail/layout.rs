//! CloudTrail's delivery layout, `AWSLogs/[<org-id>/]<account>/CloudTrail/<region>/YYYY/MM/DD/`,
//! and choosing delivery files by day (`--start`, `--end`) for directories and S3 prefixes.

use chrono::NaiveDate;

/// The segment CloudTrail puts between the account and the region.
const TRAIL_SEGMENT: &str = "CloudTrail";

/// Delivery days to read, both ends included; an open end is unbounded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayRange {
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

impl DayRange {
    /// Whether the range selects anything less than everything.
    pub fn is_bounded(&self) -> bool {
        self.start.is_some() || self.end.is_some()
    }

    pub fn contains(&self, day: NaiveDate) -> bool {
        self.start.is_none_or(|s| s <= day) && self.end.is_none_or(|e| day <= e)
    }

    /// Every day of a range bounded at both ends, oldest first.
    pub fn days(&self) -> Option<Vec<NaiveDate>> {
        let (start, end) = (self.start?, self.end?);
        Some(start.iter_days().take_while(|d| *d <= end).collect())
    }

    /// Whether a file found under a directory or prefix is read: with a range, only delivery
    /// files of a day in it; without one, every file.
    pub fn selects(&self, path: &str) -> bool {
        !self.is_bounded() || delivery_day(path).is_some_and(|day| self.contains(day))
    }
}

/// The delivery day of a path in CloudTrail's layout (`.../CloudTrail/<region>/YYYY/MM/DD/...`).
pub fn delivery_day(path: &str) -> Option<NaiveDate> {
    let segments: Vec<&str> = path.split(['/', '\\']).collect();
    segments.windows(5).find_map(|w| {
        if w[0] != TRAIL_SEGMENT || w[2].len() != 4 || w[3].len() != 2 || w[4].len() != 2 {
            return None;
        }
        let number = |s: &str| s.parse::<u32>().ok();
        NaiveDate::from_ymd_opt(number(w[2])? as i32, number(w[3])?, number(w[4])?)
    })
}

/// Whether `folder` (segments joined by `/`) is a region folder of the layout, the level
/// under which the day folders are: its parent segment is `CloudTrail`.
pub fn is_region_folder(folder: &str) -> bool {
    let mut rev = folder.trim_end_matches('/').rsplit('/');
    let region = rev.next().unwrap_or("");
    !region.is_empty() && rev.next() == Some(TRAIL_SEGMENT)
}

/// Whether `folder` is at or below a region folder (a day is then picked by filtering keys).
pub fn is_within_region(folder: &str) -> bool {
    let segments: Vec<&str> = folder.split('/').filter(|s| !s.is_empty()).collect();
    segments
        .iter()
        .position(|s| *s == TRAIL_SEGMENT)
        .is_some_and(|at| segments.len() > at + 1)
}

/// The day folder under a region folder: `<region>/YYYY/MM/DD`.
pub fn day_folder(region_folder: &str, day: NaiveDate) -> String {
    format!(
        "{}/{}",
        region_folder.trim_end_matches('/'),
        day.format("%Y/%m/%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        s.parse().expect("a date")
    }

    #[test]
    fn the_day_comes_from_the_folders_after_the_region() {
        let key = "AWSLogs/111122223333/CloudTrail/eu-west-1/2024/05/01/111122223333_CloudTrail_eu-west-1_20240501T0005Z_x.json.gz";
        assert_eq!(delivery_day(key), Some(day("2024-05-01")));
        // An organization trail has the organization id before the account.
        let org = "logs/AWSLogs/o-abc/111122223333/CloudTrail/us-east-1/2023/12/31/f.json.gz";
        assert_eq!(delivery_day(org), Some(day("2023-12-31")));
        assert_eq!(
            delivery_day("AWSLogs/1/CloudTrail/us-east-1/2024/13/01/f.json"),
            None
        );
        assert_eq!(
            delivery_day("AWSLogs/1/CloudTrail-Digest/us-east-1/2024/05/01/f.json.gz"),
            None
        );
        assert_eq!(delivery_day("trail/2024/05/01/f.json"), None);
        assert_eq!(
            delivery_day(r"C:\logs\CloudTrail\us-east-1\2024\05\02\f.json"),
            Some(day("2024-05-02"))
        );
    }

    #[test]
    fn a_range_includes_both_ends_and_selects_only_the_layout() {
        let range = DayRange {
            start: Some(day("2024-05-01")),
            end: Some(day("2024-05-03")),
        };
        assert!(range.selects("AWSLogs/1/CloudTrail/r/2024/05/01/f.json"));
        assert!(range.selects("AWSLogs/1/CloudTrail/r/2024/05/03/f.json"));
        assert!(!range.selects("AWSLogs/1/CloudTrail/r/2024/05/04/f.json"));
        assert!(!range.selects("AWSLogs/1/CloudTrail/r/2024/04/30/f.json"));
        assert!(
            !range.selects("notes/f.json"),
            "a range reads delivery files only"
        );
        assert!(DayRange::default().selects("notes/f.json"));
        assert_eq!(range.days().map(|d| d.len()), Some(3));
        let open = DayRange {
            start: Some(day("2024-05-01")),
            end: None,
        };
        assert_eq!(open.days(), None);
        assert!(open.selects("AWSLogs/1/CloudTrail/r/2030/01/01/f.json"));
    }

    #[test]
    fn region_folders_are_found_by_their_parent() {
        assert!(is_region_folder("AWSLogs/1/CloudTrail/us-east-1"));
        assert!(is_region_folder("AWSLogs/1/CloudTrail/us-east-1/"));
        assert!(!is_region_folder("AWSLogs/1/CloudTrail"));
        assert!(!is_region_folder("AWSLogs/1/CloudTrail-Digest/us-east-1"));
        assert!(is_within_region("AWSLogs/1/CloudTrail/us-east-1/2024"));
        assert!(!is_within_region("AWSLogs/1/CloudTrail"));
        assert!(!is_within_region("AWSLogs/1"));
        assert_eq!(
            day_folder("AWSLogs/1/CloudTrail/us-east-1/", day("2024-05-01")),
            "AWSLogs/1/CloudTrail/us-east-1/2024/05/01"
        );
    }
}
