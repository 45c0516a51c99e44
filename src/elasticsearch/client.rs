//! The connection to Elasticsearch: building the official client from [`ConnectionConfig`],
//! sending requests with bounded retries, and turning failures into messages that say what to
//! do.

use std::fmt;
use std::sync::Arc;

use ::elasticsearch::Elasticsearch;
use ::elasticsearch::auth::Credentials;
use ::elasticsearch::cert::{Certificate, CertificateValidation};
use ::elasticsearch::http::headers::{CONTENT_TYPE, HeaderMap, HeaderValue};
use ::elasticsearch::http::transport::{
    MultiNodeConnectionPool, SingleNodeConnectionPool, TransportBuilder,
};
use ::elasticsearch::http::{Method, Url};
use serde_json::Value;

use super::config::{Auth, ConnectionConfig, RetryPolicy, ServiceConfig};
use super::dialect::Dialect;
use super::error::EsError;
pub use super::error::is_transient_status;

/// A request body.
#[derive(Debug, Clone)]
pub enum Body {
    None,
    Json(Value),
    /// Newline-delimited JSON (`_bulk`), already terminated by a newline.
    NdJson(String),
}

/// One request: what it is for (for messages), the method, the path and the query string.
#[derive(Debug, Clone)]
pub struct Call {
    pub what: String,
    pub method: Method,
    pub path: String,
    pub query: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Call {
    pub fn new(what: impl Into<String>, method: Method, path: impl Into<String>) -> Self {
        Call {
            what: what.into(),
            method,
            path: path.into(),
            query: Vec::new(),
            body: Body::None,
        }
    }
    pub fn param(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }
    pub fn json(mut self, body: Value) -> Self {
        self.body = Body::Json(body);
        self
    }
    pub fn ndjson(mut self, body: String) -> Self {
        self.body = Body::NdJson(body);
        self
    }
}

/// What came back: the HTTP status and the parsed body (`Null` when empty or not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
}

impl Reply {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body of a 2xx reply; any other status becomes an error naming `what` failed.
    pub fn into_ok(self, what: &str) -> Result<Value, EsError> {
        if self.is_success() {
            Ok(self.body)
        } else {
            Err(EsError::from_reply(what, self.status, &self.body))
        }
    }
}

/// The official client plus what rule-runner adds: retries and readable errors.
#[derive(Clone)]
pub struct EsClient {
    inner: Elasticsearch,
    urls: Vec<Url>,
    retry: RetryPolicy,
    /// Which engine answers, read from `GET /` once and shared by every clone.
    dialect: Arc<tokio::sync::OnceCell<Dialect>>,
}

// Hand-written so credentials held by the transport can never reach a log line.
impl fmt::Debug for EsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EsClient")
            .field("urls", &self.urls_text())
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl EsClient {
    /// Build a client for the resolved service configuration.
    pub fn from_config(config: &ServiceConfig) -> Result<Self, EsError> {
        Self::connect(&config.connection, config.retry.clone())
    }

    /// Build a client (no request is sent yet).
    pub fn connect(connection: &ConnectionConfig, retry: RetryPolicy) -> Result<Self, EsError> {
        let urls = connection.urls.clone();
        let mut builder = match urls.as_slice() {
            [] => return Err(EsError::Build("no Elasticsearch URL configured".into())),
            [one] => TransportBuilder::new(SingleNodeConnectionPool::new(one.clone())),
            many => {
                TransportBuilder::new(MultiNodeConnectionPool::round_robin(many.to_vec(), None))
            }
        };
        builder = builder
            .timeout(connection.request_timeout)
            .disable_proxy()
            .enable_meta_header(false);
        builder = match &connection.auth {
            Auth::None => builder,
            Auth::ApiKey(key) => builder.auth(api_key_credentials(key.expose())),
            Auth::Basic { username, password } => builder.auth(Credentials::Basic(
                username.clone(),
                password.expose().to_string(),
            )),
        };
        if connection.insecure {
            tracing::warn!("TLS certificate verification is disabled (--insecure)");
            builder = builder.cert_validation(CertificateValidation::None);
        } else if let Some(path) = &connection.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                EsError::Build(format!(
                    "cannot read CA certificate {}: {e}",
                    path.display()
                ))
            })?;
            let chain = Certificate::from_pem(&pem).map_err(|e| {
                EsError::Build(format!(
                    "CA certificate {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder = builder.cert_validation(CertificateValidation::Full(chain));
        }
        let transport = builder.build().map_err(|e| {
            let mut message = format!("cannot build the HTTP client: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            if let (Some(path), false) = (&connection.ca_cert, connection.insecure) {
                message.push_str(&format!(
                    " (is the CA certificate {} a valid PEM certificate?)",
                    path.display()
                ));
            }
            EsError::Build(message)
        })?;
        Ok(EsClient {
            inner: Elasticsearch::new(transport),
            urls,
            retry,
            dialect: Arc::default(),
        })
    }

    /// The official client, for calls this wrapper does not cover.
    pub fn raw(&self) -> &Elasticsearch {
        &self.inner
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// The configured node URLs, comma-separated, for messages.
    pub fn urls_text(&self) -> String {
        self.urls
            .iter()
            .map(|u| u.as_str().trim_end_matches('/'))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Send `call`, retrying failures that may pass (refused connections, timeouts, 429,
    /// 5xx) with the configured backoff. Any other reply is returned as it is, whatever its
    /// status, for the caller to interpret.
    pub async fn send(&self, call: &Call) -> Result<Reply, EsError> {
        let mut retry = 0;
        loop {
            let outcome = self.send_once(call).await;
            let transient = match &outcome {
                Ok(reply) => is_transient_status(reply.status),
                Err(err) => err.is_transient(),
            };
            if !transient || retry + 1 >= self.retry.max_attempts {
                return match outcome {
                    Ok(reply) if transient => {
                        Err(EsError::from_reply(&call.what, reply.status, &reply.body))
                    }
                    other => other,
                };
            }
            let pause = self.retry.backoff(retry);
            let why = match &outcome {
                Ok(reply) => format!("status {}", reply.status),
                Err(err) => err.to_string(),
            };
            tracing::warn!(
                "{}: {why}; retrying in {} ms (attempt {} of {})",
                call.what,
                pause.as_millis(),
                retry + 2,
                self.retry.max_attempts
            );
            tokio::time::sleep(pause).await;
            retry += 1;
        }
    }

    /// Send `call` and return the body of a 2xx reply; anything else is an error.
    pub async fn send_ok(&self, call: &Call) -> Result<Value, EsError> {
        self.send(call).await?.into_ok(&call.what)
    }

    /// One attempt, no retry.
    pub async fn send_once(&self, call: &Call) -> Result<Reply, EsError> {
        let mut headers = HeaderMap::new();
        let body: Option<Vec<u8>> = match &call.body {
            Body::None => None,
            Body::Json(value) => {
                Some(serde_json::to_vec(value).map_err(|e| EsError::Response {
                    what: call.what.clone(),
                    message: format!("cannot serialize the request: {e}"),
                })?)
            }
            Body::NdJson(text) => {
                headers.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-ndjson"),
                );
                Some(text.as_bytes().to_vec())
            }
        };
        let query = (!call.query.is_empty()).then_some(&call.query);
        let response = self
            .inner
            .send(call.method, &call.path, headers, query, body, None)
            .await
            .map_err(|e| EsError::from_transport(&call.what, &self.urls_text(), &e))?;
        let status = response.status_code().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| EsError::from_transport(&call.what, &self.urls_text(), &e))?;
        // HEAD replies and some errors have no JSON body; keep the text for the message.
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(Reply { status, body })
    }

    /// `GET /`: the cluster's name and version, proving the URL and credentials work. It
    /// also settles the client's [`Dialect`].
    pub async fn info(&self) -> Result<ClusterInfo, EsError> {
        let body = self
            .send_ok(&Call::new("connect to Elasticsearch", Method::Get, "/"))
            .await?;
        let text = |ptr: &str| {
            body.pointer(ptr)
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        let dialect = Dialect::from_root(&body);
        dialect
            .check_supported()
            .map_err(|message| EsError::Response {
                what: "connect to Elasticsearch".into(),
                message,
            })?;
        let _ = self.dialect.set(dialect.clone());
        Ok(ClusterInfo {
            cluster_name: text("/cluster_name"),
            version: text("/version/number"),
            product: dialect.product(),
        })
    }

    /// The engine behind this client, asked once (`GET /`) and then remembered. A node that
    /// will not say (a key without the `monitor` privilege gets a 403 there) is taken for
    /// Elasticsearch, the primary target; a node that cannot be reached or refuses the
    /// credentials is an error, and the next call asks again.
    pub async fn dialect(&self) -> Result<Dialect, EsError> {
        self.dialect
            .get_or_try_init(|| async {
                let call = Call::new("ask the cluster which engine it runs", Method::Get, "/");
                let reply = self.send(&call).await?;
                if reply.is_success() {
                    Ok(Dialect::from_root(&reply.body))
                } else if reply.status == 401 {
                    // Wrong credentials fail every call: say so now, once.
                    Err(EsError::from_reply(&call.what, reply.status, &reply.body))
                } else {
                    Ok(Dialect::ELASTICSEARCH)
                }
            })
            .await
            .cloned()
    }

    /// A client that takes `dialect` as known, sending no `GET /` for it.
    pub fn with_dialect(self, dialect: Dialect) -> Self {
        let _ = self.dialect.set(dialect);
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterInfo {
    pub cluster_name: String,
    pub version: String,
    /// `Elasticsearch` or `OpenSearch`.
    pub product: &'static str,
}

/// An `id:key` pair, or the base64 `encoded` form Elasticsearch hands out.
fn api_key_credentials(key: &str) -> Credentials {
    let key = key.trim();
    match key.split_once(':') {
        Some((id, secret)) => Credentials::ApiKey(id.to_string(), secret.to_string()),
        None => Credentials::EncodedApiKey(key.to_string()),
    }
}

/// Percent-encode an index name or document id for use as a path segment.
pub fn path_segment(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Turn index patterns into the comma-separated path segment of a multi-index request.
pub fn index_list(patterns: &[String]) -> String {
    patterns
        .iter()
        .map(|p| path_segment(p).replace("%2A", "*"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_credentials() {
        let connection = ConnectionConfig {
            auth: Auth::Basic {
                username: "elastic".into(),
                password: super::super::config::Secret::new("hunter2"),
            },
            ..ConnectionConfig::default()
        };
        let client = EsClient::connect(&connection, RetryPolicy::default()).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("localhost:9200"), "{debug}");
    }

    #[test]
    fn ca_certificate_problems_name_the_file() {
        let missing = ConnectionConfig {
            ca_cert: Some("/nonexistent/ca.pem".into()),
            ..ConnectionConfig::default()
        };
        let err = EsClient::connect(&missing, RetryPolicy::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot read CA certificate /nonexistent/ca.pem"),
            "{err}"
        );

        let dir = std::env::temp_dir().join(format!("rr-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bogus = dir.join("ca.pem");
        std::fs::write(
            &bogus,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let bad = ConnectionConfig {
            ca_cert: Some(bogus.clone()),
            ..ConnectionConfig::default()
        };
        let result = EsClient::connect(&bad, RetryPolicy::default());
        let _ = std::fs::remove_dir_all(&dir);
        let err = result.unwrap_err().to_string();
        assert!(err.contains("ca.pem"), "{err}");
    }

    #[test]
    fn index_lists_keep_wildcards_and_escape_the_rest() {
        let list = index_list(&["filebeat-*".into(), "logs-aws.cloudtrail-*".into()]);
        assert_eq!(list, "filebeat-*,logs-aws.cloudtrail-*");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn api_keys_in_both_forms() {
        assert!(
            matches!(api_key_credentials("id:secret"), Credentials::ApiKey(i, s) if i == "id" && s == "secret")
        );
        assert!(matches!(
            api_key_credentials("aWQ6c2VjcmV0"),
            Credentials::EncodedApiKey(_)
        ));
    }
}
