//! The Kibana half of `setup`, and what `run` and `backfill` take from Kibana before their
//! first rule: the registered rules' ids and Kibana's version.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use uuid::Uuid;

use crate::elasticsearch::templates;
use crate::elasticsearch::{Destination, EsClient, ServiceConfig, security_alerts_alias};
use crate::kibana::amendments::KibanaExceptions;
use crate::kibana::registry::KibanaRuleIds;
use crate::kibana::rules::{self, Registration};
use crate::kibana::saved_objects::import_saved_objects;
use crate::kibana::{Kibana, KibanaError, alerts_index};
use crate::rule::Rule;

/// What `setup` does with Kibana for the configured destination; the lines it prints, and
/// whether every rule was registered.
pub async fn setup(
    client: &EsClient,
    config: &ServiceConfig,
    rules: &[Arc<Rule>],
) -> anyhow::Result<bool> {
    let space = &config.engine.space_id;
    let Some(kibana_config) = &config.kibana else {
        if config.destination == Destination::Security {
            templates::check_security_alias(client, space).await?;
            println!(
                "alerts         {} in place; no Kibana configured, so no rule is registered there (alerts do not link to a rule page)",
                security_alerts_alias(space)
            );
        }
        return Ok(true);
    };
    let kibana = Kibana::new(kibana_config, space, &config.connection)?;
    if config.destination == Destination::RuleRunner {
        let imported = import_saved_objects(&kibana, &config.indices.alerts).await?;
        println!(
            "kibana         {} saved objects imported (data view, saved search, dashboard)\ndashboard      {}",
            imported.imported, imported.dashboard_url
        );
        return Ok(true);
    }
    let version = alerts_index::version(&kibana).await?;
    println!(
        "kibana         {} version {version}, space `{space}`",
        kibana_config.url
    );
    alerts_index::initialise(&kibana).await?;
    templates::check_security_alias(client, space)
        .await
        .context("Kibana acknowledged initialising the alerts index, but its alias is not there")?;
    println!(
        "alerts         {} (initialised by Kibana; rule-runner writes, never creates it)",
        security_alerts_alias(space)
    );
    register_rules(client, config, &kibana, rules).await
}

/// Register each rule, remember its Kibana id, print what happened. A refusal of one rule
/// (HTTP 400) is reported and the others go on; anything else stops the registration.
async fn register_rules(
    client: &EsClient,
    config: &ServiceConfig,
    kibana: &Kibana,
    rules: &[Arc<Rule>],
) -> anyhow::Result<bool> {
    let registry = KibanaRuleIds::new(client.clone(), &config.indices.state, kibana.space());
    let (mut created, mut updated, mut unchanged) = (0, 0, 0);
    let mut notes = Vec::new();
    let mut refused = 0;
    for rule in rules {
        let registration = match rules::register(kibana, rule).await {
            Ok(registration) => registration,
            Err(KibanaError::Status {
                status: 400, body, ..
            }) => {
                refused += 1;
                notes.push(format!(
                    "  rule `{}`: Kibana refused it (HTTP 400): {body}",
                    rule.rule_id
                ));
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        match &registration {
            Registration::Created(_) => created += 1,
            Registration::Updated(_) => updated += 1,
            Registration::Unchanged(_) => unchanged += 1,
            Registration::Foreign { id, enabled } => notes.push(format!(
                "  rule `{}`: Kibana has a rule with this rule_id that rule-runner did not create (id {id}); left unchanged, and rule-runner's alerts do not link to it{}",
                rule.rule_id,
                if *enabled {
                    ". It is enabled, so Kibana runs it too: disable one of the two, or its alerts come twice"
                } else {
                    ""
                }
            )),
        }
        if let Some(id) = registration.kibana_id() {
            registry.save(&rule.rule_id, &id.to_string()).await?;
        }
    }
    let foreign = rules.len() - created - updated - unchanged - refused;
    println!(
        "rules          {} registered in Kibana, disabled ({created} created, {updated} updated, {unchanged} unchanged){}{}",
        created + updated + unchanged,
        if foreign > 0 {
            format!(", {foreign} left alone (not rule-runner's)")
        } else {
            String::new()
        },
        if refused > 0 {
            format!(", {refused} refused")
        } else {
            String::new()
        },
    );
    for note in &notes {
        println!("{note}");
    }
    Ok(refused == 0)
}

/// What a run takes from Kibana: the Kibana ids of the registered rules and, for the
/// Security destination with a Kibana configured, a reader of the exceptions analysts add to
/// them; Kibana's version too whenever a Kibana is configured. A rule without a registration
/// keeps its derived uuid, an unreachable Kibana the configured version; both are said on
/// stderr.
pub struct RunIdentity {
    pub rule_uuids: HashMap<String, Uuid>,
    pub exceptions: Option<Arc<KibanaExceptions>>,
}

pub async fn run_identity(
    client: &EsClient,
    config: &mut ServiceConfig,
    rules: &[Arc<Rule>],
) -> anyhow::Result<RunIdentity> {
    let kibana = match &config.kibana {
        Some(kibana_config) => Some(Kibana::new(
            kibana_config,
            &config.engine.space_id,
            &config.connection,
        )?),
        None => None,
    };
    if let Some(kibana) = &kibana {
        match alerts_index::version(kibana).await {
            Ok(version) => {
                if config.engine.kibana_version == crate::alert::DEFAULT_KIBANA_VERSION {
                    config.engine.kibana_version = version;
                }
            }
            Err(err) => eprintln!(
                "warning: cannot read Kibana's version, alerts say kibana.version {}: {err}",
                config.engine.kibana_version
            ),
        }
    }
    if config.destination != Destination::Security {
        return Ok(RunIdentity {
            rule_uuids: HashMap::new(),
            exceptions: None,
        });
    }
    let registry = KibanaRuleIds::new(
        client.clone(),
        &config.indices.state,
        &config.engine.space_id,
    );
    let ids: Vec<String> = rules.iter().map(|r| r.rule_id.clone()).collect();
    let found = registry.load(&ids).await?;
    let missing = ids.iter().filter(|id| !found.contains_key(*id)).count();
    if missing > 0 {
        eprintln!(
            "warning: {missing} of {} rules are not registered in Kibana, so their alerts do not link to a rule page; run `rule-runner setup` with the Kibana URL to register them",
            ids.len()
        );
    }
    let exceptions = kibana.map(|kibana| Arc::new(KibanaExceptions::new(kibana, found.clone())));
    Ok(RunIdentity {
        rule_uuids: found,
        exceptions,
    })
}

/// Apply each rule's exceptions once, for a command that runs each rule once (`backfill`),
/// as Kibana's detection engine does: one negated filter beside the query. An exception list
/// that cannot be read stops the command: going on without it would alert on what analysts
/// excluded.
pub async fn apply_exceptions(
    exceptions: &KibanaExceptions,
    rules: &mut [Arc<Rule>],
) -> anyhow::Result<()> {
    let now = chrono::Utc::now();
    let (mut rules_with, mut items) = (0, 0);
    for rule in rules.iter_mut() {
        let amended = exceptions
            .apply(rule, now)
            .await
            .with_context(|| format!("the exceptions of rule `{}`", rule.rule_id))?;
        for problem in &amended.unsupported {
            eprintln!("warning: rule `{}`: {problem}", rule.rule_id);
        }
        if let Some(with) = amended.rule {
            *rule = Arc::new(with);
            rules_with += 1;
            items += amended.items;
        }
    }
    if rules_with > 0 {
        eprintln!("exceptions from Kibana: {items} items applied to {rules_with} rules");
    }
    Ok(())
}
