//! One S3 client per bucket, configured from the environment as the AWS SDKs read it, and
//! S3's errors in the words of the person running the command.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, resolve_bucket_region};
use object_store::{BackoffConfig, ClientOptions, ObjectStore, RetryConfig};

/// What stops the S3 input before any object is read.
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("{url} is not an S3 location: {why} (expected s3://bucket/prefix)")]
    BadUrl { url: String, why: String },
    #[error(
        "cannot tell the region of bucket {bucket}: {why}; set AWS_REGION to the bucket's region"
    )]
    Region { bucket: String, why: String },
    #[error("cannot set up the S3 client for bucket {bucket}: {why}")]
    Client { bucket: String, why: String },
    #[error("cannot start the S3 client's threads: {0}")]
    Runtime(#[from] std::io::Error),
}

/// How S3 is reached, read once from the environment.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL` (an S3-compatible store, or a test one).
    pub endpoint: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`; otherwise asked of S3 for each bucket.
    pub region: Option<String>,
}

impl Settings {
    pub fn from_env() -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Settings {
            endpoint: var("AWS_ENDPOINT_URL_S3").or_else(|| var("AWS_ENDPOINT_URL")),
            region: var("AWS_REGION").or_else(|| var("AWS_DEFAULT_REGION")),
        }
    }
}

/// Retries of one request: object_store retries server errors, throttling and broken
/// connections with exponential backoff; these bounds keep a dead endpoint from stalling a
/// scan for minutes.
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(10))
        .with_timeout(Duration::from_secs(120))
}

/// A tokio runtime of its own: the commands that read S3 are otherwise synchronous (the scan
/// runs on rayon's threads). Shut down in the background when dropped, so dropping it inside
/// another runtime (as `load` may) cannot panic.
pub struct Background {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Background {
    fn start() -> std::io::Result<Background> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3")
            .enable_all()
            .build()?;
        Ok(Background {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    /// Run `future` to completion, from a thread outside any async context (a rayon worker,
    /// a `spawn_blocking` thread, the main thread).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.handle.block_on(future)
    }

    pub fn spawn<F>(&self, future: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.handle.spawn(future)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The clients of the buckets named on the command line, and the runtime they run on.
pub struct Stores {
    pub runtime: Background,
    settings: Settings,
    buckets: Mutex<HashMap<String, Arc<dyn ObjectStore>>>,
}

impl Stores {
    pub fn new(settings: Settings) -> Result<Stores, S3Error> {
        Ok(Stores {
            runtime: Background::start()?,
            settings,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Where requests go, for messages.
    pub fn endpoint(&self) -> &str {
        self.settings.endpoint.as_deref().unwrap_or("AWS")
    }

    /// The client of `bucket`, built on first use.
    pub fn bucket(&self, bucket: &str) -> Result<Arc<dyn ObjectStore>, S3Error> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(store) = buckets.get(bucket) {
            return Ok(Arc::clone(store));
        }
        let region = match (&self.settings.region, &self.settings.endpoint) {
            (Some(region), _) => region.clone(),
            // S3-compatible stores mostly ignore the region; AWS's default is the SDKs'.
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => self
                .runtime
                .block_on(resolve_bucket_region(bucket, &client_options()))
                .map_err(|e| S3Error::Region {
                    bucket: bucket.to_string(),
                    why: explain(&e, Operation::List),
                })?,
        };
        // `from_env` takes the credentials as the SDKs' chain does without shared files:
        // AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, web identity
        // (AWS_WEB_IDENTITY_TOKEN_FILE, AWS_ROLE_ARN), ECS/EKS container credentials, then the
        // instance metadata service.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(region)
            .with_retry(retry_config())
            .with_client_options(client_options());
        if let Some(endpoint) = &self.settings.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                // A plain-HTTP endpoint is one the user named (a local S3-compatible store).
                .with_allow_http(endpoint.starts_with("http://"));
        }
        let store: Arc<dyn ObjectStore> =
            Arc::new(builder.build().map_err(|e| S3Error::Client {
                bucket: bucket.to_string(),
                why: e.to_string(),
            })?);
        buckets.insert(bucket.to_string(), Arc::clone(&store));
        Ok(store)
    }
}

/// A hint about credentials read from files the client does not read, when that is the likely
/// cause of a failure.
pub fn credentials_hint() -> Option<&'static str> {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    (set("AWS_PROFILE") && !set("AWS_ACCESS_KEY_ID")).then_some(
        "AWS_PROFILE is set, but rule-runner does not read ~/.aws files: export the profile's \
         credentials first, e.g. eval \"$(aws configure export-credentials --profile NAME --format env)\"",
    )
}

/// What was being done when S3 answered with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    List,
    Get,
}

/// S3's error code and message out of the XML body object_store quotes, when there is one.
fn s3_said(text: &str) -> Option<String> {
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = text.find(&open)? + open.len();
        let to = text[from..].find(&format!("</{name}>"))? + from;
        Some(text[from..to].to_string())
    };
    let code = tag("Code")?;
    Some(match tag("Message") {
        Some(message) => format!("S3 said {code}: {message}"),
        None => format!("S3 said {code}"),
    })
}

/// What an S3 error means, in a sentence: the cause and what to do, then S3's own words.
pub fn explain(err: &object_store::Error, operation: Operation) -> String {
    use object_store::Error as E;
    let text = err.to_string();
    let said = s3_said(&text);
    let code = said.as_deref().unwrap_or(&text);
    let denied = match operation {
        Operation::List => "access denied: the credentials need s3:ListBucket on the bucket",
        Operation::Get => "access denied: the credentials need s3:GetObject on the object",
    };
    let cause = match err {
        _ if code.contains("NoSuchBucket") => "the bucket does not exist",
        E::NotFound { .. } => "not found",
        E::PermissionDenied { .. } => denied,
        E::Unauthenticated { .. } => "the credentials were rejected",
        _ if code.contains("AccessDenied") => denied,
        _ if code.contains("InvalidAccessKeyId")
            || code.contains("SignatureDoesNotMatch")
            || code.contains("ExpiredToken") =>
        {
            "the credentials were rejected"
        }
        _ if code.contains("InvalidObjectState") => {
            "the object is archived (Glacier): restore it before reading"
        }
        _ if said.is_none() && text.contains("error sending request") => {
            return "cannot reach S3 (no connection, after retries): check the network, or \
                    AWS_ENDPOINT_URL for an S3-compatible store"
                .to_string();
        }
        // Not an S3 answer (a timeout, say): object_store's words say it.
        _ if said.is_none() => return text,
        _ => return said.unwrap_or(text),
    };
    let mut message = match said {
        Some(said) => format!("{cause} ({said})"),
        None => format!("{cause} ({text})"),
    };
    if let Some(hint) = credentials_hint().filter(|_| cause.contains("credentials")) {
        message.push_str("; ");
        message.push_str(hint);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generic(body: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: format!("Server returned non-2xx status code: 404 Not Found: {body}").into(),
        }
    }

    #[test]
    fn s3_answers_are_read_out_of_their_xml() {
        let missing = generic(
            "<?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>",
        );
        assert_eq!(
            explain(&missing, Operation::List),
            "the bucket does not exist (S3 said NoSuchBucket: The specified bucket does not exist)"
        );
        let denied =
            generic("<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>");
        assert!(explain(&denied, Operation::Get).starts_with(
            "access denied: the credentials need s3:GetObject on the object (S3 said AccessDenied"
        ));
        assert!(explain(&denied, Operation::List).contains("s3:ListBucket"));
        let archived = generic("<Error><Code>InvalidObjectState</Code></Error>");
        assert!(explain(&archived, Operation::Get).contains("restore it"));
        let other = generic(
            "<Error><Code>SlowDown</Code><Message>Reduce your request rate</Message></Error>",
        );
        assert_eq!(
            explain(&other, Operation::Get),
            "S3 said SlowDown: Reduce your request rate"
        );
        let refused = object_store::Error::Generic {
            store: "S3",
            source: "error sending request: Connection refused".into(),
        };
        assert!(explain(&refused, Operation::List).starts_with("cannot reach S3"));
    }
}
