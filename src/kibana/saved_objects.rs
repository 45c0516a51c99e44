//! Kibana saved objects for rule-runner's alerts: a data view, a saved search and a dashboard
//! (`mappings/kibana/saved_objects.ndjson`), imported through Kibana's saved objects API.
//!
//! The import overwrites objects with the same ids, so running `setup` again updates them
//! instead of creating copies.

use serde_json::Value;
use url::Url;

use super::Kibana;
use super::client::{KibanaError, KibanaTarget, short};

/// The shipped saved objects, one JSON object per line.
pub const SAVED_OBJECTS: &str = include_str!("../../mappings/kibana/saved_objects.ndjson");
/// Id of the data view on the alerts index.
pub const DATA_VIEW_ID: &str = "rule-runner-alerts";
/// Id of the dashboard whose URL `setup` prints.
pub const DASHBOARD_ID: &str = "rule-runner-alerts-dashboard";

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

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub imported: usize,
    pub dashboard_url: Url,
}

impl KibanaTarget {
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
        let what = "import saved objects";
        let multipart = |request: reqwest::RequestBuilder| {
            let part = reqwest::multipart::Part::text(ndjson.clone())
                .file_name("rule-runner.ndjson")
                .mime_str("application/ndjson")
                .map_err(|e| KibanaError::UnexpectedResponse(e.to_string()))?;
            Ok(request.multipart(reqwest::multipart::Form::new().part("file", part)))
        };
        let response = self
            .send_retrying(client, reqwest::Method::POST, &url, what, multipart)
            .await?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            let needs = "Saved Objects Management, Dashboard, Discover and Data View Management";
            return Err(self.refusal(&url, what, needs, status, &body));
        }
        let imported = parse_import_response(&body)?;
        Ok(ImportSummary {
            imported,
            dashboard_url: self.dashboard_url(public_url)?,
        })
    }
}

/// Import the saved objects with the data view on `alerts_index`.
pub async fn import_saved_objects(
    kibana: &Kibana,
    alerts_index: &str,
) -> Result<ImportSummary, KibanaError> {
    let ndjson = saved_objects_for(alerts_index)?;
    kibana
        .target
        .import(&kibana.http, ndjson, kibana.public_url.as_ref())
        .await
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
