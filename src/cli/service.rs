//! The Elasticsearch service commands: `run`, `setup`, `status`, `backfill`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct RunArgs {}
#[derive(Debug, clap::Args)]
pub struct SetupArgs {}
#[derive(Debug, clap::Args)]
pub struct StatusArgs {}
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {}

pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner run` is not built yet")
}
pub fn setup(_args: SetupArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner setup` is not built yet")
}
pub fn status(_args: StatusArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner status` is not built yet")
}
pub fn backfill(_args: BackfillArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner backfill` is not built yet")
}
