//! `s3://bucket/prefix` addresses.

use std::fmt;

use super::store::S3Error;

/// A bucket and a folder in it (`prefix` without leading or trailing `/`; empty for the
/// whole bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Url {
    pub bucket: String,
    pub prefix: String,
}

impl S3Url {
    pub fn parse(text: &str) -> Result<S3Url, S3Error> {
        let bad = |why: &str| S3Error::BadUrl {
            url: text.to_string(),
            why: why.to_string(),
        };
        let rest = text
            .strip_prefix("s3://")
            .ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        // S3's own rule for bucket names: 3 to 63 lower-case letters, digits, dots and hyphens.
        let valid = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
        if !valid {
            return Err(bad(
                "the bucket name must be 3 to 63 lower-case letters, digits, dots or hyphens",
            ));
        }
        if prefix.split('/').any(|s| s == "." || s == "..") {
            return Err(bad("`.` and `..` are not folders in S3"));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        })
    }

    /// The address of a key of this bucket.
    pub fn object(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix_are_split_and_slashes_trimmed() {
        let url = S3Url::parse("s3://my-trail/AWSLogs/111122223333/").expect("valid");
        assert_eq!(url.bucket, "my-trail");
        assert_eq!(url.prefix, "AWSLogs/111122223333");
        assert_eq!(url.to_string(), "s3://my-trail/AWSLogs/111122223333");
        assert_eq!(S3Url::parse("s3://my-trail").expect("valid").prefix, "");
        assert_eq!(
            url.object("AWSLogs/1/f.json.gz"),
            "s3://my-trail/AWSLogs/1/f.json.gz"
        );
    }

    #[test]
    fn bad_addresses_say_what_is_wrong() {
        for (text, why) in [
            ("s3://", "bucket name"),
            ("s3://My_Bucket/x", "bucket name"),
            ("s3://ab/x", "bucket name"),
            ("s3://bucket/a/../b", "not folders"),
            ("https://bucket/x", "s3://"),
        ] {
            let err = S3Url::parse(text).expect_err(text).to_string();
            assert!(err.contains(text) && err.contains(why), "{text}: {err}");
        }
    }
}
