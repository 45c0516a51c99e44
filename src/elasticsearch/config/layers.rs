//! Merging the connection settings of the flag, environment and file layers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

use super::{Auth, ConfigError, ConnectionConfig, FileConnection, Secret, redact_url};

/// One layer's connection settings, with where they came from for error messages.
#[derive(Default)]
pub(super) struct ConnectionLayer {
    pub(super) origin: LayerOrigin,
    pub(super) urls: Option<Vec<String>>,
    pub(super) api_key: Option<Secret>,
    pub(super) username: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) ca_cert: Option<PathBuf>,
    pub(super) insecure: bool,
    pub(super) request_timeout: Option<Duration>,
}

#[derive(Default, Clone)]
pub(super) enum LayerOrigin {
    #[default]
    Flags,
    Env,
    File(PathBuf),
}

impl LayerOrigin {
    fn name(&self, flag: &str, var: &str, key: &str) -> String {
        match self {
            LayerOrigin::Flags => format!("--{flag}"),
            LayerOrigin::Env => var.to_string(),
            LayerOrigin::File(path) => {
                format!("config file {}: elasticsearch.{key}", path.display())
            }
        }
    }
}

pub(super) fn file_connection_layer(path: &Path, file: &FileConnection) -> ConnectionLayer {
    // A relative CA path in the file is relative to the file, not to the working directory.
    let base = path.parent().unwrap_or(Path::new(""));
    ConnectionLayer {
        origin: LayerOrigin::File(path.to_path_buf()),
        urls: file.urls.clone(),
        api_key: file.api_key.clone(),
        username: file.username.clone(),
        password: file.password.clone(),
        ca_cert: file.ca_cert.as_ref().map(|p| base.join(p)),
        insecure: file.insecure,
        request_timeout: file.request_timeout,
    }
}

pub(super) fn merge_connection(
    layers: &[&ConnectionLayer],
) -> Result<ConnectionConfig, ConfigError> {
    let mut config = ConnectionConfig::default();
    let mut url_auth = None;
    if let Some(layer) = layers.iter().find(|l| l.urls.is_some()) {
        let texts = layer.urls.as_deref().unwrap_or_default();
        if texts.is_empty() {
            return Err(ConfigError::Invalid {
                origin: layer.origin.name("url", "ELASTICSEARCH_URL", "urls"),
                message: "no URL given".into(),
            });
        }
        config.urls.clear();
        for text in texts {
            let (url, auth) = parse_url(text).map_err(|message| ConfigError::Invalid {
                origin: layer.origin.name("url", "ELASTICSEARCH_URL", "urls"),
                message,
            })?;
            config.urls.push(url);
            url_auth = url_auth.or(auth);
        }
    }
    if let Some(top) = layers
        .iter()
        .position(|l| l.api_key.is_some() || l.username.is_some() || l.password.is_some())
    {
        config.auth = layer_auth(&layers[top..])?;
    } else if let Some(auth) = url_auth {
        config.auth = auth;
    }
    config.ca_cert = layers.iter().find_map(|l| l.ca_cert.clone());
    config.insecure = layers.iter().any(|l| l.insecure);
    if let Some(timeout) = layers.iter().find_map(|l| l.request_timeout) {
        config.request_timeout = timeout;
    }
    Ok(config)
}

/// Authentication from `layers[0]`, the highest layer naming a credential. An API key
/// there wins outright; a username or password there may take its other half from a lower
/// layer (`--username elastic` with `ELASTICSEARCH_PASSWORD` set is common).
fn layer_auth(layers: &[&ConnectionLayer]) -> Result<Auth, ConfigError> {
    let top = layers[0];
    let origin = &top.origin;
    if let Some(key) = &top.api_key {
        if top.username.is_some() || top.password.is_some() {
            return Err(ConfigError::Invalid {
                origin: origin.name("api-key", "ELASTICSEARCH_API_KEY", "api_key"),
                message: "give either an API key or a username and password, not both".into(),
            });
        }
        if key.expose().trim().is_empty() {
            return Err(ConfigError::Invalid {
                origin: origin.name("api-key", "ELASTICSEARCH_API_KEY", "api_key"),
                message: "the API key is empty".into(),
            });
        }
        return Ok(Auth::ApiKey(key.clone()));
    }
    let username = layers.iter().find_map(|l| l.username.clone());
    let password = layers.iter().find_map(|l| l.password.clone());
    match (username, password) {
        (Some(username), Some(password)) => Ok(Auth::Basic { username, password }),
        (Some(_), None) => Err(ConfigError::Invalid {
            origin: origin.name("username", "ELASTICSEARCH_USERNAME", "username"),
            message: "a username needs a password (ELASTICSEARCH_PASSWORD)".into(),
        }),
        _ => Err(ConfigError::Invalid {
            origin: origin.name("password", "ELASTICSEARCH_PASSWORD", "password"),
            message: "a password needs a username (ELASTICSEARCH_USERNAME)".into(),
        }),
    }
}

/// Parse a node URL; credentials written into it become basic auth and leave the URL, so the
/// URL can be logged.
fn parse_url(text: &str) -> Result<(Url, Option<Auth>), String> {
    if !text.contains("://") {
        // Without a scheme the URL parser cannot find a password to redact: show only what
        // follows any `user:password@`.
        let shown = text.trim().rsplit('@').next().unwrap_or_default();
        return Err(format!(
            "`{shown}` has no scheme; write e.g. http://{shown} or https://{shown}"
        ));
    }
    let mut url = Url::parse(text.trim())
        .map_err(|e| format!("`{}` is not a URL ({e})", redact_url(text)))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "`{}`: the scheme must be http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none() {
        return Err("the URL has no host".into());
    }
    let auth = if url.username().is_empty() {
        None
    } else {
        let username = url.username().to_string();
        let password = Secret(url.password().unwrap_or_default().to_string());
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Some(Auth::Basic { username, password })
    };
    Ok((url, auth))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_need_a_scheme() {
        let err = parse_url("localhost:9200").unwrap_err();
        assert!(err.contains("http://localhost:9200"), "{err}");
        assert!(parse_url("ftp://x").unwrap_err().contains("http or https"));
        assert!(
            !parse_url("elastic:s3cret@es:9200")
                .unwrap_err()
                .contains("s3cret")
        );
    }

    #[test]
    fn url_credentials_move_to_basic_auth() {
        let (url, auth) = parse_url("https://elastic:s3cret@es.example:9200").unwrap();
        assert_eq!(url.as_str(), "https://es.example:9200/");
        assert_eq!(
            auth,
            Some(Auth::Basic {
                username: "elastic".into(),
                password: Secret::new("s3cret")
            })
        );
        assert!(!redact_url("https://elastic:s3cret@es.example:9200").contains("s3cret"));
    }
}
