//! The S3 input: CloudTrail's delivery files read straight from a bucket, for `scan`,
//! `normalize` and `load` given `s3://bucket/prefix`.
//!
//! - [`url`]: `s3://` addresses.
//! - [`store`]: one client per bucket, from the environment as the AWS SDKs read it, and
//!   what S3's errors mean for the person running the command.
//! - [`list`]: the objects under a prefix, by day when a range is given.
//! - [`fetch`]: objects downloaded a few ahead of the workers, with retries.
//!
//! The objects become [`crate::cloudtrail::Input::Remote`] inputs, so everything after the
//! bytes (gzip, splitting, normalization, bad-record handling) is the local files' code.
//! The store is `object_store` (Apache Arrow's), not the AWS SDK: see `docs/s3.md`.

mod fetch;
mod list;
mod store;
mod url;

pub use list::discover;
pub use store::S3Error;
pub use url::S3Url;

/// Whether a command-line path names an S3 location.
pub fn is_s3_path(path: &std::path::Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("s3://"))
}
