//! The objects under each `s3://` location, in key order, sorted into delivery files, digest
//! files and files outside the day range, as a local directory walk sorts files (into the
//! same [`Discovered`]).
//!
//! With a day range bounded at both ends and a prefix above the region folders, the region
//! folders (`.../CloudTrail/<region>/`) are found level by level and only the day folders of
//! the range are listed, so a month of a trail with years of history lists one month.

use std::path::PathBuf;
use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};

use super::fetch::{Fetcher, S3Object, Target};
use super::store::{Operation, S3Error, Settings, Stores, explain};
use super::url::S3Url;
use crate::cloudtrail::layout::{day_folder, is_region_folder, is_within_region};
use crate::cloudtrail::read::{is_digest_path, looks_like_json_name};
use crate::cloudtrail::{DayRange, Discovered, Input, InputFile, Problem, RemoteInput};

/// Levels searched for region folders: `AWSLogs/<org-id>/<account>/CloudTrail/<region>` under
/// a prefix of a few folders.
const MAX_DEPTH: usize = 8;
/// Beyond this many days, a region folder is listed whole and its keys filtered by day
/// (fewer requests than one per day).
const MAX_DAY_LISTINGS: usize = 400;

/// List every location, in order; the objects of all of them are downloaded by one fetcher.
pub fn discover(urls: &[S3Url], days: &DayRange) -> Result<Vec<Discovered>, S3Error> {
    if urls.is_empty() {
        return Ok(Vec::new());
    }
    let stores = Arc::new(Stores::new(Settings::from_env())?);
    let mut listings = Vec::new();
    let mut targets = Vec::new();
    // (listing, object size) of each target, to build the inputs once the fetcher exists.
    let mut owners = Vec::new();
    for url in urls {
        let mut listing = Discovered::default();
        let problem = |message: String| Problem {
            input: url.to_string(),
            record: None,
            offset: None,
            message,
        };
        let store = stores.bucket(&url.bucket)?;
        match stores.runtime.block_on(objects_under(&*store, url, days)) {
            Ok(objects) => {
                for meta in objects {
                    let key = meta.location.as_ref();
                    let name = key.rsplit('/').next().unwrap_or(key).to_ascii_lowercase();
                    if !looks_like_json_name(&name) {
                        continue;
                    }
                    if is_digest_path(std::path::Path::new(key)) {
                        listing.digest_files.push(PathBuf::from(url.object(key)));
                    } else if days.selects(key) {
                        owners.push((listings.len(), meta.size));
                        targets.push(Target {
                            store: Arc::clone(&store),
                            name: url.object(key),
                            location: meta.location,
                        });
                    } else {
                        listing.out_of_range += 1;
                    }
                }
            }
            Err(e) => listing.problems.push(problem(format!(
                "cannot list (endpoint {}): {}",
                stores.endpoint(),
                explain(&e, Operation::List)
            ))),
        }
        listings.push(listing);
    }
    let fetcher = Arc::new(Fetcher::new(stores, targets));
    for (index, (owner, size)) in owners.into_iter().enumerate() {
        let object = S3Object {
            fetcher: Arc::clone(&fetcher),
            index,
        };
        listings[owner].files.push(InputFile {
            input: Input::Remote(RemoteInput(Arc::new(object))),
            size: Some(size),
        });
    }
    Ok(listings)
}

/// The objects under `url`, in key order.
async fn objects_under(
    store: &dyn ObjectStore,
    url: &S3Url,
    days: &DayRange,
) -> object_store::Result<Vec<ObjectMeta>> {
    let prefix = (!url.prefix.is_empty()).then(|| Path::from(url.prefix.as_str()));
    if let Some(all) = days.days().filter(|_| !is_within_region(&url.prefix)) {
        let regions = region_folders(store, prefix.clone()).await?;
        if !regions.is_empty() {
            let mut objects = Vec::new();
            for region in &regions {
                if all.len() > MAX_DAY_LISTINGS {
                    objects.extend(list(store, Some(region.clone())).await?);
                    continue;
                }
                for day in &all {
                    let folder = Path::from(day_folder(region.as_ref(), *day));
                    objects.extend(list(store, Some(folder)).await?);
                }
            }
            objects.sort_by(|a, b| a.location.cmp(&b.location));
            return Ok(objects);
        }
    }
    let mut objects = list(store, prefix).await?;
    objects.sort_by(|a, b| a.location.cmp(&b.location));
    Ok(objects)
}

async fn list(
    store: &dyn ObjectStore,
    prefix: Option<Path>,
) -> object_store::Result<Vec<ObjectMeta>> {
    store.list(prefix.as_ref()).try_collect().await
}

/// The region folders at or under `prefix`, level by level; the digest and Insights folders
/// (`CloudTrail-Digest`, `CloudTrail-Insight`) are not entered.
async fn region_folders(
    store: &dyn ObjectStore,
    prefix: Option<Path>,
) -> object_store::Result<Vec<Path>> {
    let mut found = Vec::new();
    let mut level = vec![prefix];
    for _ in 0..MAX_DEPTH {
        let mut next = Vec::new();
        for folder in level {
            if let Some(folder) = &folder
                && is_region_folder(folder.as_ref())
            {
                found.push(folder.clone());
                continue;
            }
            let children = store.list_with_delimiter(folder.as_ref()).await?;
            for child in children.common_prefixes {
                let last = child.filename().unwrap_or("");
                if !last.starts_with("CloudTrail-") {
                    next.push(Some(child));
                }
            }
        }
        if next.is_empty() {
            break;
        }
        level = next;
    }
    found.sort();
    Ok(found)
}
