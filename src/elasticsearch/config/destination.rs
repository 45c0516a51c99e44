//! Where alerts go (`[alerts] destination`) and where Kibana is (`[kibana]`), resolved from
//! the same four layers as the connection: defaults, file, environment, flags.

use serde::Deserialize;
use url::Url;

use super::{Auth, ConfigError, Secret};

/// The alias Kibana's Security app reads alerts from in `space`.
pub fn security_alerts_alias(space: &str) -> String {
    format!(".alerts-security.alerts-{space}")
}

/// Where `run` and `backfill` write alerts.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Destination {
    /// rule-runner's own alerts index (`[indices] alerts`), shown by its data view and
    /// dashboard.
    #[default]
    RuleRunner,
    /// Kibana's alerts alias of the space, `.alerts-security.alerts-<space>`: Security > Alerts.
    Security,
}

/// Where Kibana is and how rule-runner authenticates to it.
#[derive(Clone, PartialEq, Debug)]
pub struct KibanaConfig {
    /// Kibana's base URL, including any `server.basePath`.
    pub url: Url,
    /// Kibana's address as users' browsers reach it, for printed links, when it differs.
    pub public_url: Option<Url>,
    /// Kibana's own credentials when given (`[kibana]`, `KIBANA_*`), else Elasticsearch's.
    pub auth: Auth,
}

/// The `[alerts]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAlerts {
    pub(super) destination: Option<Destination>,
    #[serde(default)]
    pub(super) rollover: super::Rollover,
}

/// The `[kibana]` table.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct FileKibana {
    pub(super) url: Option<String>,
    pub(super) public_url: Option<String>,
    pub(super) space: Option<String>,
    pub(super) username: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) api_key: Option<Secret>,
}

/// One layer's Kibana settings: a value and the name of where it came from.
pub(super) struct KibanaLayer {
    pub(super) url: Option<(String, String)>,
    pub(super) public_url: Option<(String, String)>,
    pub(super) space: Option<(String, String)>,
    pub(super) destination: Option<(Destination, String)>,
    pub(super) username: Option<String>,
    pub(super) password: Option<Secret>,
    pub(super) api_key: Option<Secret>,
    pub(super) origin: String,
}

/// What the layers say about Kibana and the destination.
pub(super) struct ResolvedKibana {
    pub(super) kibana: Option<KibanaConfig>,
    pub(super) space: Option<String>,
    pub(super) destination: Destination,
}

/// Merge `layers` (highest precedence first). `es_auth` is the Elasticsearch authentication,
/// Kibana's when it names none of its own. Without an explicit destination, alerts go to
/// the Security app when a Kibana is configured, else to rule-runner's own index.
pub(super) fn resolve_kibana(
    layers: &[KibanaLayer],
    es_auth: &Auth,
) -> Result<ResolvedKibana, ConfigError> {
    let url = first(layers, |l| l.url.clone())
        .map(|(text, origin)| parse_kibana_url(&text, &origin))
        .transpose()?;
    let public_url = first(layers, |l| l.public_url.clone())
        .map(|(text, origin)| parse_kibana_url(&text, &origin))
        .transpose()?;
    let space = first(layers, |l| l.space.clone())
        .map(|(space, origin)| validate_space(&space, &origin).map(|()| space))
        .transpose()?;
    let auth = kibana_auth(layers)?.unwrap_or_else(|| es_auth.clone());
    let destination = match first(layers, |l| l.destination.clone()) {
        Some((destination, _)) => destination,
        None if url.is_some() => Destination::Security,
        None => Destination::RuleRunner,
    };
    if public_url.is_some() && url.is_none() {
        return Err(ConfigError::Invalid {
            origin: "kibana public_url".into(),
            message: "a public Kibana URL needs the Kibana URL itself ([kibana] url, KIBANA_URL or --kibana-url)".into(),
        });
    }
    Ok(ResolvedKibana {
        kibana: url.map(|url| KibanaConfig {
            url,
            public_url,
            auth,
        }),
        space,
        destination,
    })
}

fn first<T>(layers: &[KibanaLayer], pick: impl Fn(&KibanaLayer) -> Option<T>) -> Option<T> {
    layers.iter().find_map(pick)
}

/// Kibana's own credentials: the highest layer that names one decides, as for
/// Elasticsearch; `None` when no layer names any.
fn kibana_auth(layers: &[KibanaLayer]) -> Result<Option<Auth>, ConfigError> {
    let Some(top) = layers
        .iter()
        .position(|l| l.api_key.is_some() || l.username.is_some() || l.password.is_some())
    else {
        return Ok(None);
    };
    let layer = &layers[top];
    let invalid = |message: &str| ConfigError::Invalid {
        origin: layer.origin.clone(),
        message: message.to_string(),
    };
    if let Some(key) = &layer.api_key {
        if layer.username.is_some() || layer.password.is_some() {
            return Err(invalid(
                "give Kibana either an API key or a username and password, not both",
            ));
        }
        if key.expose().trim().is_empty() {
            return Err(invalid("the Kibana API key is empty"));
        }
        return Ok(Some(Auth::ApiKey(key.clone())));
    }
    let username = layers[top..].iter().find_map(|l| l.username.clone());
    let password = layers[top..].iter().find_map(|l| l.password.clone());
    match (username, password) {
        (Some(username), Some(password)) => Ok(Some(Auth::Basic { username, password })),
        (Some(_), None) => Err(invalid(
            "a Kibana username needs a password (KIBANA_PASSWORD or [kibana] password)",
        )),
        _ => Err(invalid(
            "a Kibana password needs a username (KIBANA_USERNAME or [kibana] username)",
        )),
    }
}

fn parse_kibana_url(text: &str, origin: &str) -> Result<Url, ConfigError> {
    let invalid = |message: String| ConfigError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let url = Url::parse(text.trim()).map_err(|e| {
        invalid(format!(
            "`{text}` is not a URL ({e}); write e.g. http://localhost:5601"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid(format!(
            "`{text}`: use an http:// or https:// URL with a host, e.g. http://localhost:5601"
        )));
    }
    if !url.username().is_empty() {
        return Err(invalid(
            "put Kibana credentials in KIBANA_USERNAME and KIBANA_PASSWORD (or KIBANA_API_KEY), not in the URL".into(),
        ));
    }
    Ok(url)
}

/// Kibana space ids: lowercase letters, digits, `_` and `-` (Kibana's own rule), which also
/// keeps the alias name `.alerts-security.alerts-<space>` a valid index name.
fn validate_space(space: &str, origin: &str) -> Result<(), ConfigError> {
    let valid = !space.is_empty()
        && space
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if valid {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            origin: origin.to_string(),
            message: format!(
                "`{space}` is not a Kibana space id (lowercase letters, digits, `_` and `-`; the default space is `default`)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(origin: &str) -> KibanaLayer {
        KibanaLayer {
            url: None,
            public_url: None,
            space: None,
            destination: None,
            username: None,
            password: None,
            api_key: None,
            origin: origin.into(),
        }
    }

    #[test]
    fn a_configured_kibana_makes_security_the_default_destination() {
        let none = resolve_kibana(&[layer("env")], &Auth::None).unwrap();
        assert_eq!(none.destination, Destination::RuleRunner);
        assert!(none.kibana.is_none());
        let mut with_url = layer("env");
        with_url.url = Some(("http://kb:5601".into(), "KIBANA_URL".into()));
        let some = resolve_kibana(&[with_url], &Auth::None).unwrap();
        assert_eq!(some.destination, Destination::Security);
        let mut explicit = layer("flags");
        explicit.destination = Some((Destination::RuleRunner, "--alerts-destination".into()));
        let mut with_url = layer("env");
        with_url.url = Some(("http://kb:5601".into(), "KIBANA_URL".into()));
        let chosen = resolve_kibana(&[explicit, with_url], &Auth::None).unwrap();
        assert_eq!(chosen.destination, Destination::RuleRunner);
    }

    #[test]
    fn kibana_takes_elasticsearch_credentials_unless_given_its_own() {
        let es = Auth::ApiKey(Secret::new("es-key"));
        let mut with_url = layer("env");
        with_url.url = Some(("http://kb:5601".into(), "KIBANA_URL".into()));
        let resolved = resolve_kibana(&[with_url], &es).unwrap();
        assert_eq!(resolved.kibana.unwrap().auth, es);

        let mut own = layer("environment (KIBANA_*)");
        own.url = Some(("http://kb:5601".into(), "KIBANA_URL".into()));
        own.username = Some("analyst".into());
        let mut file = layer("config file: [kibana]");
        file.password = Some(Secret::new("pw"));
        let resolved = resolve_kibana(&[own, file], &es).unwrap();
        assert_eq!(
            resolved.kibana.unwrap().auth,
            Auth::Basic {
                username: "analyst".into(),
                password: Secret::new("pw")
            }
        );
    }

    #[test]
    fn bad_urls_and_spaces_name_their_origin() {
        let mut bad = layer("env");
        bad.url = Some(("kibana:5601".into(), "KIBANA_URL".into()));
        let err = resolve_kibana(&[bad], &Auth::None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.starts_with("KIBANA_URL:"), "{err}");
        let mut bad = layer("env");
        bad.space = Some(("Blue Team".into(), "KIBANA_SPACE".into()));
        let err = resolve_kibana(&[bad], &Auth::None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("not a Kibana space id"), "{err}");
        let mut creds = layer("env");
        creds.url = Some(("http://u:p@kb:5601".into(), "KIBANA_URL".into()));
        let err = resolve_kibana(&[creds], &Auth::None)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("KIBANA_USERNAME"), "{err}");
        assert_eq!(security_alerts_alias("soc"), ".alerts-security.alerts-soc");
    }
}
