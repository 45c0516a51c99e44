//! The index templates under `mappings/` and the indices rule-runner owns: installing them
//! (`rule-runner setup`, idempotent) and checking them before a run.

use ::elasticsearch::http::Method;
use serde_json::Value;

use super::client::{Call, EsClient, path_segment};
use super::config::{Destination, IndexNames, Rollover};
use super::error::EsError;
use super::rollover::{self, AlertsLayout};

/// The version every template and mapping below carries (`version` and `_meta.version`).
/// Raise it with any change to a file under `mappings/`.
pub const TEMPLATE_VERSION: i64 = 1;

/// One of rule-runner's own indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexKind {
    Alerts,
    State,
    Executions,
    DeadLetter,
}

impl IndexKind {
    pub const ALL: [IndexKind; 4] = [
        IndexKind::Alerts,
        IndexKind::State,
        IndexKind::Executions,
        IndexKind::DeadLetter,
    ];

    /// The indices a destination uses: Kibana's Security app keeps alerts in its own index.
    pub fn used_with(destination: Destination) -> &'static [IndexKind] {
        match destination {
            Destination::RuleRunner => &IndexKind::ALL,
            Destination::Security => &[
                IndexKind::State,
                IndexKind::Executions,
                IndexKind::DeadLetter,
            ],
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            IndexKind::Alerts => "alerts",
            IndexKind::State => "state",
            IndexKind::Executions => "execution log",
            IndexKind::DeadLetter => "dead letter",
        }
    }

    fn template_text(self) -> &'static str {
        match self {
            IndexKind::Alerts => include_str!("../../mappings/alerts.json"),
            IndexKind::State => include_str!("../../mappings/state.json"),
            IndexKind::Executions => include_str!("../../mappings/executions.json"),
            IndexKind::DeadLetter => include_str!("../../mappings/dead-letter.json"),
        }
    }

    pub fn index_name(self, names: &IndexNames) -> &str {
        match self {
            IndexKind::Alerts => &names.alerts,
            IndexKind::State => &names.state,
            IndexKind::Executions => &names.executions,
            IndexKind::DeadLetter => &names.dead_letter,
        }
    }

    /// The template body for the configured index name: the shipped file with its
    /// `index_patterns` pointed at `index`, or for alerts at the indices behind that alias.
    pub fn template_for(self, index: &str) -> Value {
        // The files are part of the binary and covered by tests; a parse failure is a bug.
        let mut template: Value =
            serde_json::from_str(self.template_text()).expect("shipped mappings are valid JSON");
        let pattern = match self {
            IndexKind::Alerts => rollover::backing_pattern(index),
            _ => index.to_string(),
        };
        template["index_patterns"] = Value::from(vec![pattern]);
        template
    }
}

/// What `setup` did to one template, index or policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Created,
    Updated {
        from: i64,
    },
    Unchanged,
    /// A plain alerts index of an older rule-runner, moved behind the alias as `into`.
    Migrated {
        alerts: u64,
        into: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupLine {
    pub kind: IndexKind,
    pub index: String,
    pub template: Step,
    pub index_step: Step,
    /// The alerts index's ILM policy (Elasticsearch with `[alerts.rollover]` on).
    pub lifecycle: Option<Step>,
}

/// Install or upgrade the four templates and create the indices that do not exist yet.
/// Running it again changes nothing.
pub async fn setup(client: &EsClient, names: &IndexNames) -> Result<Vec<SetupLine>, EsError> {
    setup_kinds(client, names, &IndexKind::ALL, &Rollover::default()).await
}

/// [`setup`] of some of the indices: without rule-runner's alerts index when alerts go to
/// Kibana's ([`IndexKind::used_with`]); the alerts index rolling over as `rollover` says.
pub async fn setup_kinds(
    client: &EsClient,
    names: &IndexNames,
    kinds: &[IndexKind],
    rollover: &Rollover,
) -> Result<Vec<SetupLine>, EsError> {
    let mut lines = Vec::new();
    for &kind in kinds {
        let index = kind.index_name(names).to_string();
        let mut wanted = kind.template_for(&index);
        let ilm =
            kind == IndexKind::Alerts && rollover.enabled && client.dialect().await?.has_ilm();
        let lifecycle = if ilm {
            wanted["template"]["settings"]["index"]["lifecycle"] =
                rollover::lifecycle_settings(&index);
            Some(rollover::ensure_policy(client, &index, rollover).await?)
        } else {
            None
        };
        let template = install_template(client, &index, &wanted).await?;
        let index_step = match kind {
            IndexKind::Alerts => {
                setup_alerts_alias(client, &index, &wanted, &template, ilm).await?
            }
            _ => setup_index(client, &index, &wanted, &template).await?,
        };
        lines.push(SetupLine {
            kind,
            index,
            template,
            index_step,
            lifecycle,
        });
    }
    Ok(lines)
}

async fn install_template(client: &EsClient, index: &str, wanted: &Value) -> Result<Step, EsError> {
    Ok(match installed_template(client, index).await? {
        Some(installed) if installed.version > TEMPLATE_VERSION => {
            return Err(EsError::Response {
                what: format!("install index template `{index}`"),
                message: format!(
                    "the installed template has version {} but this rule-runner ships version \
                     {TEMPLATE_VERSION}; it was installed by a newer rule-runner: upgrade \
                     rule-runner rather than downgrade the cluster",
                    installed.version
                ),
            });
        }
        // Elasticsearch hands templates back normalized (settings as strings, defaults
        // added), so compare what identifies ours, not the whole body.
        Some(installed)
            if installed.version == TEMPLATE_VERSION
                && installed.body.get("index_patterns") == wanted.get("index_patterns")
                && installed.body.pointer(LIFECYCLE) == wanted.pointer(LIFECYCLE) =>
        {
            Step::Unchanged
        }
        Some(installed) => {
            put_template(client, index, wanted).await?;
            Step::Updated {
                from: installed.version,
            }
        }
        None => {
            put_template(client, index, wanted).await?;
            Step::Created
        }
    })
}

const LIFECYCLE: &str = "/template/settings/index/lifecycle";

/// Create `index`, or carry an updated template's mapping to it.
async fn setup_index(
    client: &EsClient,
    index: &str,
    wanted: &Value,
    template: &Step,
) -> Result<Step, EsError> {
    if !index_exists(client, index).await? {
        return create_index(client, index).await;
    }
    if *template == Step::Unchanged {
        return Ok(Step::Unchanged);
    }
    // Templates only shape new indices; carry additive changes to the live one.
    let from = index_mapping_version(client, index).await?.unwrap_or(0);
    if from == TEMPLATE_VERSION {
        return Ok(Step::Unchanged);
    }
    put_mapping(client, index, &wanted["template"]["mappings"]).await?;
    Ok(Step::Updated { from })
}

/// The alerts alias: created over its first index, moved in front of an older plain index,
/// or brought up to the template (mapping of every index behind it, policy of the write one).
async fn setup_alerts_alias(
    client: &EsClient,
    alias: &str,
    wanted: &Value,
    template: &Step,
    ilm: bool,
) -> Result<Step, EsError> {
    let write_index = match rollover::layout(client, alias).await? {
        AlertsLayout::Missing => return rollover::create_first(client, alias).await,
        AlertsLayout::PlainIndex => {
            let alerts = rollover::migrate(client, alias).await?;
            if ilm {
                rollover::attach_policy(client, &rollover::first_index(alias), alias).await?;
            }
            return Ok(Step::Migrated {
                alerts,
                into: rollover::migrated_index(alias),
            });
        }
        AlertsLayout::Alias { write_index } => write_index,
    };
    if *template == Step::Unchanged {
        return Ok(Step::Unchanged);
    }
    if ilm {
        rollover::attach_policy(client, &write_index, alias).await?;
    }
    let from = index_mapping_version(client, &write_index)
        .await?
        .unwrap_or(0);
    if from == TEMPLATE_VERSION {
        return Ok(Step::Unchanged);
    }
    put_mapping(client, alias, &wanted["template"]["mappings"]).await?;
    Ok(Step::Updated { from })
}

/// Before a run: every index present with a mapping at least this version. Reads only the
/// indices' own mappings (`view_index_metadata`), so the service's role needs no template
/// privileges. The error lists all problems and says to run `rule-runner setup`.
pub async fn check(client: &EsClient, names: &IndexNames) -> Result<(), EsError> {
    check_kinds(client, names, &IndexKind::ALL).await
}

/// [`check`] of some of the indices.
pub async fn check_kinds(
    client: &EsClient,
    names: &IndexNames,
    kinds: &[IndexKind],
) -> Result<(), EsError> {
    let mut problems = Vec::new();
    for &kind in kinds {
        let mut index = kind.index_name(names).to_string();
        if kind == IndexKind::Alerts {
            match rollover::layout(client, &index).await? {
                AlertsLayout::Alias { write_index } => index = write_index,
                AlertsLayout::PlainIndex => {
                    problems.push(format!(
                        "the alerts index `{index}` is a plain index from an older rule-runner, \
                         which wrote without rollover (`rule-runner setup` moves its alerts \
                         behind an alias of that name, copying nothing)"
                    ));
                    continue;
                }
                AlertsLayout::Missing => {
                    problems.push(format!("the alerts alias `{index}` does not exist"));
                    continue;
                }
            }
        } else if !index_exists(client, &index).await? {
            problems.push(format!(
                "the {} index `{index}` does not exist",
                kind.label()
            ));
            continue;
        }
        match index_mapping_version(client, &index).await? {
            Some(v) if v >= TEMPLATE_VERSION => {}
            found => problems.push(format!(
                "the {} index `{index}` has mapping version {}, this rule-runner needs {TEMPLATE_VERSION}",
                kind.label(),
                found.map_or_else(|| "none".to_string(), |v| v.to_string())
            )),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EsError::NotSetUp {
            problems: problems.join("; "),
        })
    }
}

struct InstalledTemplate {
    version: i64,
    body: Value,
}

async fn installed_template(
    client: &EsClient,
    name: &str,
) -> Result<Option<InstalledTemplate>, EsError> {
    let call = Call::new(
        format!("read index template `{name}`"),
        Method::Get,
        format!("/_index_template/{}", path_segment(name)),
    );
    let reply = client.send(&call).await?;
    if reply.status == 404 {
        return Ok(None);
    }
    let body = reply.into_ok(&call.what)?;
    let template = body
        .pointer("/index_templates/0/index_template")
        .cloned()
        .ok_or_else(|| EsError::Response {
            what: call.what.clone(),
            message: "no `index_templates[0].index_template` in the reply".into(),
        })?;
    Ok(Some(InstalledTemplate {
        version: template.get("version").and_then(Value::as_i64).unwrap_or(0),
        body: template,
    }))
}

async fn put_template(client: &EsClient, name: &str, body: &Value) -> Result<(), EsError> {
    let call = Call::new(
        format!("install index template `{name}`"),
        Method::Put,
        format!("/_index_template/{}", path_segment(name)),
    )
    .json(client.dialect().await?.index_template(body.clone()));
    client.send_ok(&call).await.map(drop)
}

/// Before a run with the Security destination: Kibana's alerts alias of `space` exists. Reads
/// only alias metadata (`view_index_metadata` on the alias).
pub async fn check_security_alias(client: &EsClient, space: &str) -> Result<(), EsError> {
    let alias = super::security_alerts_alias(space);
    let call = Call::new(
        format!("check Kibana's alerts alias `{alias}`"),
        Method::Get,
        format!("/_alias/{}", path_segment(&alias)),
    );
    let reply = client.send(&call).await?;
    match reply.status {
        404 => Err(EsError::NoSecurityAlias {
            alias,
            space: space.to_string(),
        }),
        _ => reply.into_ok(&call.what).map(|_| ()),
    }
}

/// Every check `run` makes before its first rule for `destination`.
pub async fn check_destination(
    client: &EsClient,
    names: &IndexNames,
    destination: Destination,
    space: &str,
) -> Result<(), EsError> {
    check_kinds(client, names, IndexKind::used_with(destination)).await?;
    if destination == Destination::Security {
        check_security_alias(client, space).await?;
    }
    Ok(())
}

async fn index_exists(client: &EsClient, index: &str) -> Result<bool, EsError> {
    let call = Call::new(
        format!("check index `{index}`"),
        Method::Head,
        format!("/{}", path_segment(index)),
    );
    let reply = client.send(&call).await?;
    match reply.status {
        200 => Ok(true),
        404 => Ok(false),
        _ => reply.into_ok(&call.what).map(|_| false),
    }
}

async fn create_index(client: &EsClient, index: &str) -> Result<Step, EsError> {
    let call = Call::new(
        format!("create index `{index}`"),
        Method::Put,
        format!("/{}", path_segment(index)),
    );
    let reply = client.send(&call).await?;
    if rollover::already_exists(reply.status, &reply.body) {
        // Another instance ran `setup` at the same moment.
        return Ok(Step::Unchanged);
    }
    reply.into_ok(&call.what)?;
    Ok(Step::Created)
}

async fn put_mapping(client: &EsClient, index: &str, mappings: &Value) -> Result<(), EsError> {
    let call = Call::new(
        format!("update the mapping of `{index}`"),
        Method::Put,
        format!("/{}/_mapping", path_segment(index)),
    )
    .json(client.dialect().await?.mappings(mappings.clone()));
    client.send_ok(&call).await.map(drop)
}

async fn index_mapping_version(client: &EsClient, index: &str) -> Result<Option<i64>, EsError> {
    let call = Call::new(
        format!("read the mapping of `{index}`"),
        Method::Get,
        format!("/{}/_mapping", path_segment(index)),
    );
    let body = client.send_ok(&call).await?;
    Ok(body
        .as_object()
        .and_then(|m| m.values().next())
        .and_then(|v| v.pointer("/mappings/_meta/version"))
        .and_then(Value::as_i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_templates_parse_and_carry_the_version() {
        for kind in IndexKind::ALL {
            let t = kind.template_for("some-index");
            let pattern = match kind {
                IndexKind::Alerts => "some-index-*",
                _ => "some-index",
            };
            assert_eq!(t["index_patterns"], serde_json::json!([pattern]));
            assert_eq!(t["version"], TEMPLATE_VERSION, "{kind:?}");
            assert_eq!(
                t["template"]["mappings"]["_meta"]["version"],
                TEMPLATE_VERSION
            );
        }
    }

    #[test]
    fn alert_rule_parameters_are_flattened() {
        let t = IndexKind::Alerts.template_for("a");
        let params = t
            .pointer("/template/mappings/properties/kibana/properties/alert/properties/rule/properties/parameters/type")
            .unwrap();
        assert_eq!(params, "flattened");
        let doc = IndexKind::DeadLetter.template_for("d");
        assert_eq!(
            doc.pointer("/template/mappings/properties/document/enabled"),
            Some(&Value::Bool(false))
        );
    }
}
