//! The exceptions of the registered rules as the engine's [`RuleAmendments`]: read from Kibana
//! afresh before each run, as Kibana's own detection engine reads them, so an exception an
//! analyst adds while the service runs holds from the rule's next run on.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{Kibana, KibanaError, exceptions, rules};
use crate::engine::{PortError, RuleAmendments};
use crate::rule::Rule;

/// A rule with its Kibana exceptions applied.
#[derive(Debug, Clone)]
pub struct Amended {
    /// The rule with the exceptions as one more (negated) filter; `None` without any.
    pub rule: Option<Rule>,
    /// Exception items applied.
    pub items: usize,
    /// Items or lists that could not be applied, each with why.
    pub unsupported: Vec<String>,
}

/// Reads each registered rule's exceptions from Kibana.
pub struct KibanaExceptions {
    kibana: Kibana,
    /// rule_id to the Kibana rule's id: rules without one have no exceptions in Kibana.
    registered: HashMap<String, Uuid>,
    /// What was said already, so a run every few minutes does not repeat it.
    said: Mutex<Said>,
}

#[derive(Default)]
struct Said {
    items: HashMap<String, usize>,
    unsupported: HashSet<String>,
}

impl KibanaExceptions {
    pub fn new(kibana: Kibana, registered: HashMap<String, Uuid>) -> Self {
        KibanaExceptions {
            kibana,
            registered,
            said: Mutex::default(),
        }
    }

    pub fn is_registered(&self, rule_id: &str) -> bool {
        self.registered.contains_key(rule_id)
    }

    /// `rule` with the exceptions its Kibana rule has at `now` (expired items left out).
    pub async fn apply(&self, rule: &Rule, now: DateTime<Utc>) -> Result<Amended, KibanaError> {
        let none = || Amended {
            rule: None,
            items: 0,
            unsupported: Vec::new(),
        };
        if !self.is_registered(&rule.rule_id) {
            return Ok(none());
        }
        let Some(kibana_rule) = rules::read(&self.kibana, &rule.rule_id).await? else {
            return Ok(none());
        };
        let found = exceptions::read(&self.kibana, &kibana_rule, now).await?;
        let rule = found.filter.map(|filter| {
            let mut with = rule.clone();
            with.filters.push(filter);
            with.extra
                .insert("exceptions_list".into(), Value::Array(found.lists));
            with
        });
        Ok(Amended {
            rule,
            items: found.applied,
            unsupported: found.unsupported,
        })
    }

    /// Log what changed since the rule's last run: the number of items, new problems.
    fn report(&self, rule_id: &str, amended: &Amended) {
        let Ok(mut said) = self.said.lock() else {
            return;
        };
        let before = said.items.insert(rule_id.to_string(), amended.items);
        if before.is_some_and(|n| n != amended.items) || (before.is_none() && amended.items > 0) {
            tracing::info!(
                rule = %rule_id,
                items = amended.items,
                "exceptions from Kibana apply from this run on"
            );
        }
        for problem in &amended.unsupported {
            if said.unsupported.insert(format!("{rule_id}\u{0}{problem}")) {
                tracing::warn!(rule = %rule_id, "exception not applied: {problem}");
            }
        }
    }
}

#[async_trait]
impl RuleAmendments for KibanaExceptions {
    async fn amend(&self, rule: &Arc<Rule>) -> Result<Arc<Rule>, PortError> {
        if !self.is_registered(&rule.rule_id) {
            return Ok(Arc::clone(rule));
        }
        let amended = self.apply(rule, Utc::now()).await.map_err(|error| {
            let text = format!("the exceptions of rule `{}`: {error}", rule.rule_id);
            if error.is_transient() {
                PortError::Transient(text)
            } else {
                PortError::Permanent(text)
            }
        })?;
        self.report(&rule.rule_id, &amended);
        Ok(amended.rule.map_or_else(|| Arc::clone(rule), Arc::new))
    }
}
