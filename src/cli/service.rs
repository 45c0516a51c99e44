//! The Elasticsearch service commands: `run`, `setup`, `status`, `backfill`.

use std::process::ExitCode;

use anyhow::Context;

use crate::elasticsearch::templates::{self, SetupLine, Step};
use crate::elasticsearch::{ConnectionFlags, EsClient, ServiceConfig};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    #[command(flatten)]
    pub connection: ConnectionFlags,
    #[command(flatten)]
    pub kibana: crate::ops::kibana::KibanaFlags,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner run` is not built yet")
}

pub fn setup(args: SetupArgs) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(&args.connection)?;
    runtime()?.block_on(async {
        let client = connect(&config).await?;
        let lines = templates::setup(&client, &config.indices).await?;
        print!("{}", render_setup(&lines));
        let kibana = crate::ops::kibana::setup(
            &args.kibana,
            &config.connection,
            &config.indices.alerts,
            &config.service.space_id,
        );
        if let Some(imported) = kibana.await? {
            println!(
                "kibana         {} saved objects imported (data view, saved search, dashboard)\ndashboard      {}",
                imported.imported, imported.dashboard_url
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn status(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner status` is not built yet")
}

pub fn backfill(_args: BackfillArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner backfill` is not built yet")
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
        "connected to Elasticsearch {} (cluster `{}`, version {})",
        client.urls_text(),
        info.cluster_name,
        info.version
    );
    Ok(client)
}

fn render_setup(lines: &[SetupLine]) -> String {
    let step = |s: &Step| match s {
        Step::Created => "created".to_string(),
        Step::Updated { from } => format!("updated from version {from}"),
        Step::Unchanged => "up to date".to_string(),
    };
    let mut out = String::new();
    for line in lines {
        out.push_str(&format!(
            "{:<14} {:<28} template {:<22} index {}\n",
            line.kind.label(),
            line.index,
            step(&line.template),
            step(&line.index_step)
        ));
    }
    out
}
