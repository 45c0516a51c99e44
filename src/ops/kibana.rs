//! Kibana saved objects for rule-runner's alerts: a data view, a saved search and a dashboard
//! (`mappings/kibana/saved_objects.ndjson`), imported through Kibana's saved objects API.
//!
//! The import overwrites objects with the same ids, so running `setup` again updates them
//! instead of creating copies.

use std::time::Duration;

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::Value;
use url::Url;

use crate::elasticsearch::{Auth, ConnectionConfig};

/// The shipped saved objects, one JSON object per line.
pub const SAVED_OBJECTS: &str = include_str!("../../mappings/kibana/saved_objects.ndjson");
/// Id of the data view on the alerts index.
pub const DATA_VIEW_ID: &str = "rule-runner-alerts";
/// Id of the dashboard whose URL `setup` prints.
pub const DASHBOARD_ID: &str = "rule-runner-alerts-dashboard";

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
        "the user may not import saved objects into Kibana (HTTP 403: {body}); it needs the Kibana \
         privileges of docker/roles/rule_runner_setup.json (Saved Objects Management, Dashboard, \
         Discover, Data View Management) in space {space:?}"
    )]
    Forbidden { body: String, space: String },
    #[error("Kibana answered HTTP {status} to {url}: {body}")]
    Status { url: Url, status: u16, body: String },
    #[error("Kibana imported only part of rule-runner's saved objects:\n{}", .0.join("\n"))]
    Rejected(Vec<String>),
    #[error("Kibana's answer to the import is not what its API documents: {0}")]
    UnexpectedResponse(String),
    #[error("the saved objects file is invalid at line {line}: {message}")]
    InvalidObjects { line: usize, message: String },
}

/// The shipped saved objects with the data view pointed at `alerts_index` (the default is
/// `rule-runner-alerts`; a renamed alerts index needs the data view's title to follow).
pub fn saved_objects_for(alerts_index: &str) -> Result<String, KibanaError> {
    let mut out = String::with_capacity(SAVED_OBJECTS.len());
    for (n, line) in SAVED_OBJECTS.lines().enumerate() {
        let mut object: Value =
            serde_json::from_str(line).map_err(|e| KibanaError::InvalidObjects {
                line: n + 1,
                message: e.to_string(),
            })?;
        if object["type"] == "index-pattern" && object["id"] == DATA_VIEW_ID {
            object["attributes"]["title"] = Value::String(alerts_index.to_string());
        }
        out.push_str(&object.to_string());
        out.push('\n');
    }
    Ok(out)
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

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub dashboard_url: Url,
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

    fn space_prefix(&self) -> String {
        if self.space == "default" {
            String::new()
        } else {
            format!("s/{}/", self.space)
        }
    }

    fn join(&self, base: &Url, path: &str) -> Result<Url, KibanaError> {
        base.join(&format!("{}{path}", self.space_prefix()))
            .map_err(|e| KibanaError::Url {
                url: base.to_string(),
                message: e.to_string(),
            })
    }

    /// Where the dashboard is, for a person with a browser. `public_url` is Kibana's address
    /// as users see it, when it differs from the one `setup` talks to (e.g. inside Docker).
    pub fn dashboard_url(&self, public_url: Option<&Url>) -> Result<Url, KibanaError> {
        let base = public_url.unwrap_or(&self.url);
        let mut base = base.clone();
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        self.join(&base, &format!("app/dashboards#/view/{DASHBOARD_ID}"))
    }

    /// Import `ndjson` with `overwrite=true`, retrying while Kibana is starting.
    pub async fn import(
        &self,
        client: &reqwest::Client,
        ndjson: String,
        public_url: Option<&Url>,
    ) -> Result<ImportSummary, KibanaError> {
        let url = self.join(&self.url, "api/saved_objects/_import?overwrite=true")?;
        let mut headers = HeaderMap::new();
        headers.insert("kbn-xsrf", HeaderValue::from_static("rule-runner"));
        if let Some(auth) = authorization(&self.auth)? {
            headers.insert(AUTHORIZATION, auth);
        }
        let mut attempt = 1;
        let response = loop {
            let part = reqwest::multipart::Part::text(ndjson.clone())
                .file_name("rule-runner.ndjson")
                .mime_str("application/ndjson")
                .map_err(|e| KibanaError::UnexpectedResponse(e.to_string()))?;
            let form = reqwest::multipart::Form::new().part("file", part);
            let sent = client
                .post(url.clone())
                .headers(headers.clone())
                .multipart(form)
                .send()
                .await;
            let retryable = match &sent {
                Ok(r) => r.status().as_u16() == 503,
                Err(e) => e.is_connect() || e.is_timeout(),
            };
            if retryable && attempt < self.attempts {
                tracing::info!(attempt, "Kibana is not ready yet; retrying the import");
                tokio::time::sleep(self.retry_delay).await;
                attempt += 1;
                continue;
            }
            break sent.map_err(|source| KibanaError::Unreachable {
                url: url.clone(),
                source,
            })?;
        };
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        match status {
            200 => {}
            401 => return Err(KibanaError::Unauthorized { url }),
            403 => {
                return Err(KibanaError::Forbidden {
                    body: short(&body),
                    space: self.space.clone(),
                });
            }
            _ => {
                return Err(KibanaError::Status {
                    url,
                    status,
                    body: short(&body),
                });
            }
        }
        let imported = parse_import_response(&body)?;
        Ok(ImportSummary {
            imported,
            dashboard_url: self.dashboard_url(public_url)?,
        })
    }
}

/// The `Authorization` header for `auth`: Basic, or ApiKey with the base64 `id:key` form
/// Elasticsearch and Kibana both expect.
fn authorization(auth: &Auth) -> Result<Option<HeaderValue>, KibanaError> {
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

/// `rule-runner setup`'s Kibana flags.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct KibanaFlags {
    /// Also import the data view, saved search and dashboard into this Kibana (same
    /// credentials and CA certificate as for Elasticsearch).
    #[arg(long, value_name = "URL", env = "KIBANA_URL")]
    pub kibana_url: Option<String>,
    /// Kibana's address as users' browsers reach it, for the printed dashboard link, when
    /// it differs from --kibana-url (e.g. `http://localhost:5601` next to `http://kibana:5601`
    /// inside Docker).
    #[arg(
        long,
        value_name = "URL",
        env = "KIBANA_PUBLIC_URL",
        requires = "kibana_url"
    )]
    pub kibana_public_url: Option<String>,
}

/// Import the saved objects for the configured alerts index and Kibana space; `None` when
/// no `--kibana-url` was given.
pub async fn setup(
    flags: &KibanaFlags,
    connection: &ConnectionConfig,
    alerts_index: &str,
    space: &str,
) -> Result<Option<ImportSummary>, KibanaError> {
    let Some(url) = &flags.kibana_url else {
        return Ok(None);
    };
    let mut target = KibanaTarget::new(url)?;
    target.auth = connection.auth.clone();
    target.space = space.to_string();
    let public = flags
        .kibana_public_url
        .as_deref()
        .map(|u| {
            Url::parse(u).map_err(|e| KibanaError::Url {
                url: u.to_string(),
                message: e.to_string(),
            })
        })
        .transpose()?;
    let client = http_client(connection)?;
    let ndjson = saved_objects_for(alerts_index)?;
    target
        .import(&client, ndjson, public.as_ref())
        .await
        .map(Some)
}

/// The number of objects imported, or every per-object error Kibana reported.
fn parse_import_response(body: &str) -> Result<usize, KibanaError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| KibanaError::UnexpectedResponse(format!("{e}: {}", short(body))))?;
    let errors = value["errors"].as_array().cloned().unwrap_or_default();
    if value["success"] == Value::Bool(true) && errors.is_empty() {
        return value["successCount"]
            .as_u64()
            .map(|n| n as usize)
            .ok_or_else(|| KibanaError::UnexpectedResponse(short(body)));
    }
    if errors.is_empty() {
        return Err(KibanaError::UnexpectedResponse(short(body)));
    }
    Err(KibanaError::Rejected(
        errors
            .iter()
            .map(|e| {
                let kind = e["error"]["type"].as_str().unwrap_or("unknown");
                let detail = match kind {
                    "missing_references" => {
                        format!("references missing objects {}", e["error"]["references"])
                    }
                    _ => e["error"]["message"]
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e["error"].to_string()),
                };
                format!(
                    "  {} {:?} ({}): {kind}: {detail}",
                    e["type"].as_str().unwrap_or("?"),
                    e["id"].as_str().unwrap_or("?"),
                    e["meta"]["title"]
                        .as_str()
                        .or(e["title"].as_str())
                        .unwrap_or("untitled"),
                )
            })
            .collect(),
    ))
}

/// Error bodies can be whole HTML pages; keep messages readable.
fn short(body: &str) -> String {
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
    fn data_view_follows_the_alerts_index() {
        let ndjson = saved_objects_for("my-alerts").unwrap();
        let view: Value = serde_json::from_str(ndjson.lines().next().unwrap()).unwrap();
        assert_eq!(view["attributes"]["title"], "my-alerts");
        assert_eq!(ndjson.lines().count(), SAVED_OBJECTS.lines().count());
    }

    #[test]
    fn dashboard_url_includes_base_path_and_space() {
        let mut target = KibanaTarget::new("https://kb.example:5601/kibana").unwrap();
        assert_eq!(
            target.dashboard_url(None).unwrap().as_str(),
            "https://kb.example:5601/kibana/app/dashboards#/view/rule-runner-alerts-dashboard"
        );
        target.space = "soc".into();
        let public = Url::parse("http://localhost:5601").unwrap();
        assert_eq!(
            target.dashboard_url(Some(&public)).unwrap().as_str(),
            "http://localhost:5601/s/soc/app/dashboards#/view/rule-runner-alerts-dashboard"
        );
    }

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

    #[test]
    fn import_errors_name_each_object() {
        let body = r#"{"success":false,"successCount":1,"errors":[
            {"id":"x","type":"dashboard","meta":{"title":"rule-runner alerts"},
             "error":{"type":"missing_references","references":[{"type":"search","id":"gone"}]}}]}"#;
        let err = parse_import_response(body).unwrap_err().to_string();
        assert!(
            err.contains("dashboard \"x\" (rule-runner alerts): missing_references"),
            "{err}"
        );
        assert!(err.contains("gone"), "{err}");
        assert_eq!(
            parse_import_response(r#"{"success":true,"successCount":7}"#).unwrap(),
            7
        );
        assert!(parse_import_response("<html>").is_err());
    }
}
