//! Talking to Kibana: where it is ([`KibanaTarget`]), the credentials header, one HTTP
//! client with Elasticsearch's TLS settings, and [`KibanaTarget::call`]: a JSON request
//! retried while Kibana starts, its refusals turned into errors that say what to do.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::elasticsearch::{Auth, ConnectionConfig};

#[derive(Debug, thiserror::Error)]
pub enum KibanaError {
    #[error("Kibana URL {url}: {message}")]
    Url { url: String, message: String },
    #[error("cannot reach Kibana at {url}: {source} (is Kibana running, and is this its URL?)")]
    Unreachable {
        url: Url,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "Kibana at {url} rejected the credentials (HTTP 401): set ELASTICSEARCH_USERNAME and \
         ELASTICSEARCH_PASSWORD, or ELASTICSEARCH_API_KEY, to a user Kibana accepts"
    )]
    Unauthorized { url: Url },
    #[error(
        "the user may not {what} in Kibana (HTTP 403: {body}); it needs {needs} in space {space:?} \
         (docker/roles/rule_runner_setup.json grants them)"
    )]
    Forbidden {
        what: String,
        needs: &'static str,
        body: String,
        space: String,
    },
    #[error("Kibana answered HTTP {status} to {what} ({url}): {body}")]
    Status {
        what: String,
        url: String,
        status: u16,
        body: String,
    },
    #[error("Kibana imported only part of rule-runner's saved objects:\n{}", .0.join("\n"))]
    Rejected(Vec<String>),
    #[error("Kibana's answer to the import is not what its API documents: {0}")]
    UnexpectedResponse(String),
    #[error("the saved objects file is invalid at line {line}: {message}")]
    InvalidObjects { line: usize, message: String },
}

impl KibanaError {
    /// Whether the same request may pass later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            KibanaError::Unreachable { .. } => true,
            KibanaError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Where Kibana is and who we are to it.
#[derive(Debug, Clone)]
pub struct KibanaTarget {
    /// Kibana's base URL, including any `server.basePath`.
    pub url: Url,
    /// The Kibana space; `default` is addressed without a `/s/<space>` prefix.
    pub space: String,
    /// The same credentials as for Elasticsearch (Kibana authenticates against it).
    pub auth: Auth,
    /// Attempts in all when Kibana is still starting (503) or unreachable.
    pub attempts: u32,
    pub retry_delay: Duration,
}

impl KibanaTarget {
    pub fn new(url: &str) -> Result<Self, KibanaError> {
        let mut url = Url::parse(url).map_err(|e| KibanaError::Url {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(KibanaError::Url {
                url: url.to_string(),
                message: "use an http:// or https:// URL".into(),
            });
        }
        // Url::join replaces the last segment unless the base ends with '/'.
        if !url.path().ends_with('/') {
            let path = format!("{}/", url.path());
            url.set_path(&path);
        }
        Ok(KibanaTarget {
            url,
            space: "default".into(),
            auth: Auth::None,
            attempts: 5,
            retry_delay: Duration::from_secs(3),
        })
    }

    /// Send `call`, retrying while Kibana is starting (503) or unreachable. A status in
    /// `call.accept` is returned for the caller to read (a 404 of a lookup, a 409 of a
    /// create); other failures become errors naming the request and what to do.
    pub async fn call(
        &self,
        http: &reqwest::Client,
        call: &ApiCall,
    ) -> Result<ApiReply, KibanaError> {
        let mut url = self.join(&self.url, &call.path)?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&call.query);
        }
        let response = self
            .send_retrying(http, call.method.clone(), &url, &call.what, |request| {
                Ok(match &call.body {
                    Some(body) => request.json(body),
                    None => request,
                })
            })
            .await?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        if (200..300).contains(&status) || call.accept.contains(&status) {
            let body = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| {
                    KibanaError::UnexpectedResponse(format!(
                        "{}: the answer is not JSON ({e}): {}",
                        call.what,
                        short(&text)
                    ))
                })?
            };
            return Ok(ApiReply { status, body });
        }
        Err(self.refusal(&url, &call.what, call.needs, status, &text))
    }

    /// Send the request `build` completes (headers and credentials set here), again while
    /// Kibana answers 503 or cannot be reached, up to `attempts` in all.
    pub(super) async fn send_retrying(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &Url,
        what: &str,
        build: impl Fn(reqwest::RequestBuilder) -> Result<reqwest::RequestBuilder, KibanaError>,
    ) -> Result<reqwest::Response, KibanaError> {
        let mut headers = HeaderMap::new();
        headers.insert("kbn-xsrf", HeaderValue::from_static("rule-runner"));
        headers.insert(
            "elastic-api-version",
            HeaderValue::from_static("2023-10-31"),
        );
        if let Some(auth) = authorization(&self.auth)? {
            headers.insert(AUTHORIZATION, auth);
        }
        let mut attempt = 1;
        loop {
            let request = build(
                http.request(method.clone(), url.clone())
                    .headers(headers.clone()),
            )?;
            let sent = request.send().await;
            let retryable = match &sent {
                Ok(r) => r.status().as_u16() == 503,
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if retryable && attempt < self.attempts {
                tracing::info!(attempt, what, "Kibana is not ready yet; retrying");
                tokio::time::sleep(self.retry_delay).await;
                attempt += 1;
                continue;
            }
            return sent.map_err(|source| KibanaError::Unreachable {
                url: url.clone(),
                source,
            });
        }
    }

    /// The error for a non-2xx answer `status` with body `text` to `what`.
    pub(super) fn refusal(
        &self,
        url: &Url,
        what: &str,
        needs: &'static str,
        status: u16,
        text: &str,
    ) -> KibanaError {
        match status {
            401 => KibanaError::Unauthorized { url: url.clone() },
            403 => KibanaError::Forbidden {
                what: what.to_string(),
                needs,
                body: short(text),
                space: self.space.clone(),
            },
            _ => KibanaError::Status {
                what: what.to_string(),
                url: url.to_string(),
                status,
                body: short(text),
            },
        }
    }

    fn space_prefix(&self) -> String {
        if self.space == "default" {
            String::new()
        } else {
            format!("s/{}/", self.space)
        }
    }

    pub(super) fn join(&self, base: &Url, path: &str) -> Result<Url, KibanaError> {
        base.join(&format!("{}{path}", self.space_prefix()))
            .map_err(|e| KibanaError::Url {
                url: base.to_string(),
                message: e.to_string(),
            })
    }
}

/// One request to Kibana's HTTP API, relative to the space (`api/detection_engine/rules`).
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// What the request does, for messages: "create rule `x`".
    pub what: String,
    pub method: reqwest::Method,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<Value>,
    /// Statuses besides 2xx the caller reads itself.
    pub accept: &'static [u16],
    /// The Kibana privilege the request needs, named in a 403.
    pub needs: &'static str,
}

impl ApiCall {
    pub fn new(what: impl Into<String>, method: reqwest::Method, path: impl Into<String>) -> Self {
        ApiCall {
            what: what.into(),
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            accept: &[],
            needs: "the Security feature's All privilege",
        }
    }

    pub fn param(mut self, key: &str, value: impl Into<String>) -> Self {
        self.query.push((key.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }

    pub fn accept(mut self, statuses: &'static [u16]) -> Self {
        self.accept = statuses;
        self
    }

    pub fn needs(mut self, privilege: &'static str) -> Self {
        self.needs = privilege;
        self
    }
}

/// A 2xx answer, or one of the call's accepted statuses, with its JSON body (`null` if empty).
#[derive(Debug, Clone)]
pub struct ApiReply {
    pub status: u16,
    pub body: Value,
}

/// The `Authorization` header for `auth`: Basic, or ApiKey with the base64 `id:key` form
/// Elasticsearch and Kibana both expect.
pub(super) fn authorization(auth: &Auth) -> Result<Option<HeaderValue>, KibanaError> {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let value = match auth {
        Auth::None => return Ok(None),
        Auth::Basic { username, password } => {
            format!(
                "Basic {}",
                b64(&format!("{username}:{}", password.expose()))
            )
        }
        Auth::ApiKey(key) => {
            let key = key.expose().trim();
            if key.contains(':') {
                format!("ApiKey {}", b64(key))
            } else {
                format!("ApiKey {key}")
            }
        }
    };
    let mut header = HeaderValue::from_str(&value).map_err(|_| KibanaError::Url {
        url: "credentials".into(),
        message: "the user name, password or API key contains characters HTTP headers cannot carry"
            .into(),
    })?;
    header.set_sensitive(true);
    Ok(Some(header))
}

/// An HTTP client for Kibana with the TLS settings used for Elasticsearch (same CA
/// certificate, same `--insecure`).
pub fn http_client(connection: &ConnectionConfig) -> Result<reqwest::Client, KibanaError> {
    let mut builder = reqwest::Client::builder().timeout(connection.request_timeout);
    if connection.insecure {
        builder = builder.danger_accept_invalid_certs(true);
    } else if let Some(path) = &connection.ca_cert {
        let pem = std::fs::read(path).map_err(|e| KibanaError::Url {
            url: path.display().to_string(),
            message: format!("cannot read the CA certificate: {e}"),
        })?;
        let cert = reqwest::Certificate::from_pem(&pem).map_err(|e| KibanaError::Url {
            url: path.display().to_string(),
            message: format!("not a PEM certificate: {e}"),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build().map_err(|e| KibanaError::Url {
        url: "client".into(),
        message: format!("cannot build the HTTP client: {e}"),
    })
}

/// Error bodies can be whole HTML pages; keep messages readable.
pub(super) fn short(body: &str) -> String {
    const MAX: usize = 500;
    let body = body.trim();
    if body.len() <= MAX {
        body.to_string()
    } else {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| body.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}…", &body[..cut])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_become_the_authorization_header() {
        use crate::elasticsearch::Secret;
        let basic = Auth::Basic {
            username: "elastic".into(),
            password: Secret::new("changeme"),
        };
        assert_eq!(
            authorization(&basic).unwrap().unwrap(),
            "Basic ZWxhc3RpYzpjaGFuZ2VtZQ=="
        );
        let pair = Auth::ApiKey(Secret::new("id:secret"));
        assert_eq!(
            authorization(&pair).unwrap().unwrap(),
            "ApiKey aWQ6c2VjcmV0"
        );
        let encoded = Auth::ApiKey(Secret::new("aWQ6c2VjcmV0"));
        assert_eq!(
            authorization(&encoded).unwrap().unwrap(),
            "ApiKey aWQ6c2VjcmV0"
        );
        assert!(authorization(&Auth::None).unwrap().is_none());
    }

    #[test]
    fn rejects_urls_that_are_not_http() {
        assert!(KibanaTarget::new("kibana:5601").is_err());
        assert!(KibanaTarget::new("not a url").is_err());
    }
}
