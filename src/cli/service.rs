//! The Elasticsearch service commands: `run`, `setup`, `status`, `backfill`.
//!
//! Thin: configuration, rules and the client are put together here; the run logic is
//! [`crate::engine`], the cluster side [`crate::elasticsearch`].

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde_json::json;

use crate::elasticsearch::templates::{self, IndexKind, SetupLine, Step};
use crate::elasticsearch::{
    ConnectionFlags, Destination, EsClient, EsStateStore, ServiceConfig, status,
};
use crate::engine::{
    Engine, ExecutionRecord, RunOutcome, RunStatus, Schedule, Scheduler, ShutdownTrigger,
    StateStore, SystemClock,
};
use crate::kibana::amendments::KibanaExceptions;
use crate::rule::time::DateMath;
use crate::rule::{Rule, load_paths, shipped_rules};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run every rule that is due once, then exit (for cron jobs).
    #[arg(long)]
    pub once: bool,
    #[command(flatten)]
    pub rules: RulesFlag,
    #[command(flatten)]
    pub connection: ConnectionFlags,
    #[command(flatten)]
    pub ops: crate::ops::service::OpsFlags,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub connection: ConnectionFlags,
    /// Kibana's address as users' browsers reach it, for printed links, when it differs
    /// from --kibana-url (e.g. `http://localhost:5601` next to `http://kibana:5601` inside
    /// Docker) [env: KIBANA_PUBLIC_URL].
    #[arg(long, value_name = "URL")]
    pub kibana_public_url: Option<String>,
    /// The rules to register in Kibana (Security destination).
    #[command(flatten)]
    pub rules: RulesFlag,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = StatusFormat::Text)]
    pub format: StatusFormat,
    #[command(flatten)]
    pub rules: RulesFlag,
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StatusFormat {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["rule", "all"])))]
pub struct BackfillArgs {
    /// The rule to backfill (its `rule_id`); repeat for several.
    #[arg(long, value_name = "ID")]
    pub rule: Vec<String>,
    /// Backfill every rule.
    #[arg(long)]
    pub all: bool,
    /// Start of the range: ISO 8601 (`2025-01-01T00:00:00Z`) or date math (`now-2d`).
    #[arg(long, value_name = "TIME")]
    pub start: String,
    /// End of the range, in the same forms (`now`).
    #[arg(long, value_name = "TIME")]
    pub end: String,
    #[command(flatten)]
    pub rules: RulesFlag,
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

#[derive(Debug, clap::Args)]
pub struct RulesFlag {
    /// Rule files (*.toml, *.ndjson) or directories; repeat for several. Default: the
    /// built-in rules.
    #[arg(long = "rules", value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut config = ServiceConfig::load(&args.connection)?;
    let rules = load_rules(&args.rules)?;
    runtime()?.block_on(async {
        let client = connect(&config).await?;
        check_destination(&client, &config).await?;
        let rules = runnable_on(&client, rules).await?;
        let ops = crate::ops::service::Operations::new(&args.ops);
        let (engine, exceptions) = engine(&client, &mut config, &ops, &rules).await?;
        let leases = ops.leases(&client, &config);
        let (mut scheduler, problems) =
            Scheduler::new(engine, rules, leases, Arc::new(SystemClock)).await;
        // Read before every run, so exceptions added in Kibana hold without a restart.
        if let Some(exceptions) = exceptions {
            scheduler = scheduler.with_amendments(exceptions);
        }
        for problem in &problems {
            tracing::warn!("not scheduled: {problem}");
        }
        if args.once {
            let shutdown = ShutdownTrigger::new().on_signals();
            let outcomes = scheduler.run_once(&shutdown).await;
            print!("{}", render_outcomes(&outcomes, &scheduler.next_runs()));
            let failed = outcomes.iter().filter(|o| !succeeded(o)).count();
            if failed > 0 {
                eprintln!("error: {failed} of {} rule runs failed", outcomes.len());
                return Ok(ExitCode::from(1));
            }
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!(
            "running {} rules; stop with Ctrl-C or SIGTERM",
            scheduler.next_runs().len()
        );
        let shutdown = ShutdownTrigger::new().on_signals();
        let endpoints = ops.serve(&config, shutdown.clone()).await?;
        scheduler.run_until(shutdown).await;
        if let Some(server) = endpoints {
            let _ = server.task.await;
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let mut config = ServiceConfig::load(&args.connection)?;
    if let Some(public) = &args.kibana_public_url {
        let Some(kibana) = config.kibana.as_mut() else {
            bail!(
                "--kibana-public-url needs the Kibana URL itself (--kibana-url, KIBANA_URL or [kibana] url)"
            );
        };
        kibana.public_url = Some(
            url::Url::parse(public)
                .with_context(|| format!("--kibana-public-url `{public}` is not a URL"))?,
        );
    }
    let registers = config.destination == Destination::Security && config.kibana.is_some();
    let rules = if registers {
        load_rules(&args.rules)?
    } else {
        Vec::new()
    };
    runtime()?.block_on(async {
        let client = connect(&config).await?;
        let kinds = IndexKind::used_with(config.destination);
        let lines =
            templates::setup_kinds(&client, &config.indices, kinds, &config.rollover).await?;
        print!("{}", render_setup(&lines));
        let complete = super::kibana::setup(&client, &config, &rules).await?;
        Ok(if complete {
            ExitCode::SUCCESS
        } else {
            eprintln!("error: Kibana refused some rules (listed above); the others are registered");
            ExitCode::from(1)
        })
    })
}

/// The rules the connected engine can run: without EQL (OpenSearch has no `_eql/search`),
/// EQL rules are left out and said so once, instead of failing at every run.
async fn runnable_on(client: &EsClient, rules: Vec<Arc<Rule>>) -> anyhow::Result<Vec<Arc<Rule>>> {
    let dialect = client.dialect().await?;
    if dialect.supports_eql() {
        return Ok(rules);
    }
    let (eql, others): (Vec<_>, Vec<_>) = rules.into_iter().partition(|r| r.rule_type == "eql");
    for rule in &eql {
        eprintln!(
            "warning: not run: rule `{}` ({}) is an EQL rule, and {} has no EQL (`_eql/search`); `rule-runner scan` runs it offline",
            rule.name,
            rule.rule_id,
            dialect.product()
        );
    }
    if others.is_empty() && !eql.is_empty() {
        bail!(
            "no rule left to run: {} has no EQL, and every rule given is an EQL rule",
            dialect.product()
        );
    }
    Ok(others)
}

/// `run`'s checks before its first rule, for the configured destination.
async fn check_destination(client: &EsClient, config: &ServiceConfig) -> anyhow::Result<()> {
    templates::check_destination(
        client,
        &config.indices,
        config.destination,
        &config.engine.space_id,
    )
    .await?;
    Ok(())
}

pub fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(&args.connection)?;
    let rules = load_rules(&args.rules)?;
    runtime()?.block_on(async {
        let client = connect(&config).await?;
        check_destination(&client, &config).await?;
        let store = EsStateStore::new(client.clone(), &config.indices.state, &config.indices.executions);
        let now = Utc::now();
        let recent = status::alerts_per_rule(&client, &config.alerts_target(), now - TimeDelta::hours(24)).await?;
        let last_records = store.last_executions().await?;
        let mut rows = Vec::new();
        for rule in &rules {
            let state = store.load(&rule.rule_id).await?;
            let last = last_records
                .iter()
                .find(|r| r.get("rule_id").and_then(|v| v.as_str()) == Some(rule.rule_id.as_str()));
            let next_run = Schedule::for_rule(rule, config.engine.cron.as_deref())
                .map(|s| s.first_run(state.as_ref().and_then(|s| s.last_run_start), now))
                .ok();
            rows.push(json!({
                "rule_id": rule.rule_id,
                "name": rule.name,
                "enabled": rule.enabled,
                "last_run": state.as_ref().and_then(|s| s.last_run_start).map(time_text),
                "outcome": state.as_ref().and_then(|s| s.last_outcome.clone()),
                "last_run_counts": last.map(|r| json!({
                    "hits": r.get("hits"), "created": r.get("created"),
                    "duplicates": r.get("duplicates"), "left_over": r.get("left_over"),
                    "dead_lettered": r.get("dead_lettered"), "failed_writes": r.get("failed_writes"),
                })),
                "watermark": state.as_ref().and_then(|s| s.watermark).map(time_text),
                "next_run": next_run.map(time_text),
                "open_gaps": state.as_ref().map(|s| s.open_gaps.iter()
                    .map(|g| json!({"start": time_text(g.start), "end": time_text(g.end)}))
                    .collect::<Vec<_>>()).unwrap_or_default(),
                "alerts_last_24h": recent.get(&rule.rule_id).copied().unwrap_or(0),
                "last_run_warnings": last.and_then(|r| r.get("warnings")).cloned().unwrap_or(json!([])),
                "last_run_errors": last.and_then(|r| r.get("errors")).cloned().unwrap_or(json!([])),
            }));
        }
        match args.format {
            StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
            StatusFormat::Text => print!("{}", render_status(&rows)),
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let mut config = ServiceConfig::load(&args.connection)?;
    let all_rules = load_rules(&args.rules)?;
    let now = Utc::now();
    let start = parse_time("--start", &args.start, now)?;
    let end = parse_time("--end", &args.end, now)?;
    if start >= end {
        bail!(
            "--start ({}) must be before --end ({})",
            time_text(start),
            time_text(end)
        );
    }
    let rules: Vec<Arc<Rule>> = if args.all {
        all_rules.into_iter().filter(|r| r.enabled).collect()
    } else {
        let by_id: HashMap<&str, &Arc<Rule>> =
            all_rules.iter().map(|r| (r.rule_id.as_str(), r)).collect();
        let mut chosen = Vec::new();
        for id in &args.rule {
            match by_id.get(id.as_str()) {
                Some(rule) => chosen.push(Arc::clone(rule)),
                None => bail!(
                    "no rule with id `{id}`; known rules: {}",
                    all_rules
                        .iter()
                        .map(|r| r.rule_id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }
        }
        chosen
    };
    runtime()?.block_on(async {
        let client = connect(&config).await?;
        check_destination(&client, &config).await?;
        let mut rules = runnable_on(&client, rules).await?;
        let (engine, exceptions) = engine(
            &client,
            &mut config,
            &crate::ops::service::Operations::disabled(),
            &rules,
        )
        .await?;
        if let Some(exceptions) = &exceptions {
            super::kibana::apply_exceptions(exceptions, &mut rules).await?;
        }
        let shutdown = ShutdownTrigger::new().on_signals();
        let mut outcomes = Vec::new();
        for rule in &rules {
            if shutdown.is_requested() {
                break;
            }
            let record = engine
                .backfill(rule, start, end, Utc::now(), &shutdown)
                .await
                .with_context(|| format!("backfill of rule `{}`", rule.rule_id))?;
            outcomes.push(RunOutcome::Ran(Box::new(record)));
        }
        print!("{}", render_outcomes(&outcomes, &[]));
        let failed = outcomes.iter().filter(|o| !succeeded(o)).count();
        Ok(if failed > 0 {
            eprintln!("error: {failed} of {} backfills failed", outcomes.len());
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        })
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Build the client and prove the address and credentials work; says where it connected.
async fn connect(config: &ServiceConfig) -> anyhow::Result<EsClient> {
    let client = EsClient::from_config(config)?;
    let info = client.info().await?;
    eprintln!(
        "connected to {} {} (cluster `{}`, version {})",
        info.product,
        client.urls_text(),
        info.cluster_name,
        info.version
    );
    Ok(client)
}

/// The engine over the cluster, its alerts naming the rules' Kibana registrations, and the
/// reader of the exceptions added to those rules in Kibana (Security destination).
async fn engine(
    client: &EsClient,
    config: &mut ServiceConfig,
    ops: &crate::ops::service::Operations,
    rules: &[Arc<Rule>],
) -> anyhow::Result<(Arc<Engine>, Option<Arc<KibanaExceptions>>)> {
    let identity = super::kibana::run_identity(client, config, rules).await?;
    let (source, sink, state) = crate::elasticsearch::ports_for(client, config);
    let (source, sink, state) = ops.meter(source, sink, state);
    let engine = Engine::new(source, sink, state, config.engine.clone())
        .with_rule_uuids(identity.rule_uuids);
    Ok((Arc::new(engine), identity.exceptions))
}

/// The rules from `--rules`, or the built-in ones. Problems are reported; the rules that
/// loaded still run, unless none did.
fn load_rules(flag: &RulesFlag) -> anyhow::Result<Vec<Arc<Rule>>> {
    let report = if flag.paths.is_empty() {
        shipped_rules()
    } else {
        load_paths(&flag.paths)
    };
    for problem in &report.problems {
        tracing::warn!("{problem}");
    }
    let rules: Vec<Arc<Rule>> = report.runnable().map(|r| r.rule.clone()).collect();
    if rules.is_empty() {
        bail!(
            "no runnable rule in {} (see the warnings above; `rule-runner rules validate` explains each)",
            if flag.paths.is_empty() {
                "the built-in rules".to_string()
            } else {
                flag.paths
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    Ok(rules)
}

fn parse_time(flag: &str, text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    DateMath::parse(text)
        .and_then(|math| math.resolve(now))
        .map_err(|e| anyhow::anyhow!("{flag} `{text}`: {e}"))
}

fn time_text(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn succeeded(outcome: &RunOutcome) -> bool {
    match outcome {
        RunOutcome::Ran(record) => record.status != RunStatus::Failed,
        RunOutcome::HeldElsewhere { .. } | RunOutcome::AlreadyRan { .. } => true,
        RunOutcome::LeaseFailed { .. }
        | RunOutcome::AmendmentsFailed { .. }
        | RunOutcome::Crashed { .. } => false,
    }
}

fn render_record(record: &ExecutionRecord) -> String {
    let t = &record.totals;
    let mut out = format!(
        "{} ({}): {} in {} ms: {} window{}, {} hits, {} created, {} duplicates",
        record.rule_name,
        record.rule_id,
        record.status,
        record.duration_ms,
        record.windows.len(),
        if record.windows.len() == 1 { "" } else { "s" },
        t.hits,
        t.created,
        t.duplicates,
    );
    for (count, what) in [
        (t.left_over, "left for the next run (cap)"),
        (t.dead_lettered, "dead-lettered"),
        (t.failed_writes, "failed writes (retried next run)"),
    ] {
        if count > 0 {
            out.push_str(&format!(", {count} {what}"));
        }
    }
    out.push('\n');
    for warning in &record.warnings {
        out.push_str(&format!("  warning: {warning}\n"));
    }
    for error in &record.errors {
        out.push_str(&format!("  error: {error}\n"));
    }
    out
}

fn render_outcomes(outcomes: &[RunOutcome], next_runs: &[(String, DateTime<Utc>)]) -> String {
    let mut out = String::new();
    for outcome in outcomes {
        match outcome {
            RunOutcome::Ran(record) => out.push_str(&render_record(record)),
            RunOutcome::HeldElsewhere { rule_id } => {
                out.push_str(&format!("{rule_id}: skipped, another instance runs it\n"))
            }
            RunOutcome::AlreadyRan { rule_id, at } => out.push_str(&format!(
                "{rule_id}: skipped, another instance ran it at {}\n",
                time_text(*at)
            )),
            RunOutcome::LeaseFailed { rule_id, error } => out.push_str(&format!(
                "{rule_id}: skipped, cannot take its lease: {error}\n"
            )),
            RunOutcome::AmendmentsFailed { rule_id, error } => out.push_str(&format!(
                "{rule_id}: skipped, cannot read its exceptions from Kibana: {error}\n"
            )),
            RunOutcome::Crashed { rule_id, message } => {
                out.push_str(&format!("{rule_id}: crashed: {message}\n"))
            }
        }
    }
    if outcomes.is_empty() {
        out.push_str("no rule was due\n");
    }
    for (rule_id, at) in next_runs {
        out.push_str(&format!("next run of {rule_id}: {}\n", time_text(*at)));
    }
    out
}

fn render_setup(lines: &[SetupLine]) -> String {
    let step = |s: &Step| match s {
        Step::Created => "created".to_string(),
        Step::Updated { from } => format!("updated from version {from}"),
        Step::Unchanged => "up to date".to_string(),
        Step::Migrated { alerts, into } => {
            format!("moved behind the alias ({alerts} alerts kept in {into})")
        }
    };
    let mut out = String::new();
    for line in lines {
        let lifecycle = line
            .lifecycle
            .as_ref()
            .map(|s| format!(", lifecycle policy {}", step(s)))
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<14} {:<28} template {:<22} index {}{lifecycle}\n",
            line.kind.label(),
            line.index,
            step(&line.template),
            step(&line.index_step)
        ));
    }
    out
}

fn render_status(rows: &[serde_json::Value]) -> String {
    let text = |v: &serde_json::Value| v.as_str().map(String::from);
    let mut out = String::new();
    for row in rows {
        out.push_str(&format!(
            "{} ({}){}\n",
            row["name"].as_str().unwrap_or("?"),
            row["rule_id"].as_str().unwrap_or("?"),
            if row["enabled"] == false {
                " [disabled]"
            } else {
                ""
            }
        ));
        let last_run = match (text(&row["last_run"]), text(&row["outcome"])) {
            (Some(at), Some(outcome)) => format!("{at}, {outcome}"),
            (Some(at), None) => at,
            _ => "never".to_string(),
        };
        let counts = &row["last_run_counts"];
        let counts = if counts.is_object() {
            format!(
                " ({} hits, {} created, {} duplicates)",
                counts["hits"], counts["created"], counts["duplicates"]
            )
        } else {
            String::new()
        };
        let gaps = row["open_gaps"].as_array().cloned().unwrap_or_default();
        let gaps = if gaps.is_empty() {
            "none".to_string()
        } else {
            gaps.iter()
                .map(|g| {
                    format!(
                        "{} to {}",
                        g["start"].as_str().unwrap_or("?"),
                        g["end"].as_str().unwrap_or("?")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        out.push_str(&format!("  last run    {last_run}{counts}\n"));
        out.push_str(&format!(
            "  watermark   {}\n",
            text(&row["watermark"]).unwrap_or_else(|| "none".into())
        ));
        out.push_str(&format!(
            "  next run    {}\n",
            text(&row["next_run"]).unwrap_or_else(|| "not scheduled".into())
        ));
        out.push_str(&format!("  open gaps   {gaps}\n"));
        out.push_str(&format!("  alerts 24h  {}\n", row["alerts_last_24h"]));
        // What went wrong last time, so `status` alone tells an operator where to look.
        for (key, label) in [
            ("last_run_errors", "error"),
            ("last_run_warnings", "warning"),
        ] {
            for message in row[key].as_array().into_iter().flatten() {
                out.push_str(&format!(
                    "  {label:<11} {}\n",
                    message.as_str().unwrap_or("?")
                ));
            }
        }
    }
    out
}
