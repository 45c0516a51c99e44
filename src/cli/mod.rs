//! The command line. Each subcommand lives in its own file with its arguments and its handler;
//! handlers return the process exit code so scripts can rely on documented statuses.

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub mod eql;
pub mod input;
pub mod kibana;
pub mod kql;
pub mod load;
pub mod normalize;
pub mod rules;
pub mod scan;
pub mod service;

/// Run Elastic Security detection rules against Elasticsearch or over raw CloudTrail logs.
#[derive(Debug, Parser)]
#[command(name = "rule-runner", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GlobalArgs {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `debug` or `rule_runner=trace`.
    #[arg(long, global = true, env = "RULE_RUNNER_LOG")]
    pub log: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse, translate and evaluate KQL queries.
    Kql(kql::KqlArgs),
    /// Check EQL event queries and run them over NDJSON events.
    Eql(eql::EqlArgs),
    /// List, validate, test and export detection rules.
    Rules(rules::RulesArgs),
    /// Run the rules over raw CloudTrail log files, with no Elasticsearch.
    Scan(scan::ScanArgs),
    /// Print raw CloudTrail records as ECS documents (NDJSON).
    Normalize(normalize::NormalizeArgs),
    /// Run the rules on their schedules against Elasticsearch.
    Run(service::RunArgs),
    /// Install index templates and indices (and, optionally, Kibana saved objects).
    Setup(service::SetupArgs),
    /// Show per-rule state: last run, outcome, watermark, next run, gaps, recent alerts.
    Status(service::StatusArgs),
    /// Run rules over a past time range (safe to repeat: alerts are deduplicated).
    Backfill(service::BackfillArgs),
    /// Normalize raw CloudTrail and bulk-index it into Elasticsearch.
    Load(load::LoadArgs),
}

/// Set up logging on stderr; stdout is reserved for command output.
pub fn init_tracing(global: &GlobalArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = global
        .log
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        // object_store logs each retry at info: a retry that ends in an error is reported.
        .unwrap_or_else(|| EnvFilter::new("info,object_store=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Run one command and turn its result into the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Kql(args) => kql::run(args),
        Command::Eql(args) => eql::run(args),
        Command::Rules(args) => rules::run(args),
        Command::Scan(args) => scan::run(args),
        Command::Normalize(args) => normalize::run(args),
        Command::Run(args) => service::run(args),
        Command::Setup(args) => service::setup(args),
        Command::Status(args) => service::status(args),
        Command::Backfill(args) => service::backfill(args),
        Command::Load(args) => load::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}
