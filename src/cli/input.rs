//! The inputs of `scan`, `normalize` and `load`: local paths, `-` and `s3://` locations, and
//! the day range that picks delivery files from CloudTrail's layout.

use std::path::PathBuf;

use anyhow::bail;
use chrono::NaiveDate;

use crate::cloudtrail::{DayRange, Discovered, discover_in};
use crate::s3::{self, S3Url};

/// Choosing delivery files by day.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct DayArgs {
    /// Read only delivery files of this day or later (YYYY-MM-DD, UTC), as CloudTrail's layout
    /// dates them (`.../CloudTrail/<region>/YYYY/MM/DD/`), under directories and S3 prefixes.
    /// Files named on their own are always read.
    #[arg(long, value_name = "DATE")]
    pub start: Option<NaiveDate>,
    /// Read only delivery files of this day or earlier (YYYY-MM-DD, UTC, included).
    #[arg(long, value_name = "DATE")]
    pub end: Option<NaiveDate>,
}

impl DayArgs {
    fn range(&self) -> anyhow::Result<DayRange> {
        if let (Some(start), Some(end)) = (self.start, self.end)
            && start > end
        {
            bail!("--start {start} is after --end {end}");
        }
        Ok(DayRange {
            start: self.start,
            end: self.end,
        })
    }
}

/// Expand the command line's paths, in their order: files and directories as
/// [`discover_in`] does, S3 locations listed through [`s3::discover`]. A location that cannot
/// be listed is a problem of the result (reported, the rest read); a malformed one, or an S3
/// client that cannot be set up, stops the command.
pub fn discover_inputs(paths: &[PathBuf], days: &DayArgs) -> anyhow::Result<Discovered> {
    let range = days.range()?;
    let mut urls = Vec::new();
    for path in paths.iter().filter(|p| s3::is_s3_path(p)) {
        urls.push(S3Url::parse(&path.to_string_lossy())?);
    }
    let mut listings = s3::discover(&urls, &range)?.into_iter();
    let mut found = Discovered::default();
    for path in paths {
        if s3::is_s3_path(path) {
            if let Some(listing) = listings.next() {
                found.append(listing);
            }
            continue;
        }
        found.append(discover_in(std::slice::from_ref(path), &range));
    }
    if found.out_of_range > 0 {
        eprintln!(
            "note: {} files outside {} left out",
            found.out_of_range,
            describe(&range)
        );
    }
    Ok(found)
}

fn describe(range: &DayRange) -> String {
    match (range.start, range.end) {
        (Some(s), Some(e)) => format!("--start {s} --end {e}"),
        (Some(s), None) => format!("--start {s}"),
        (None, Some(e)) => format!("--end {e}"),
        (None, None) => "the day range".to_string(),
    }
}
