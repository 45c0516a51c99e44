//! `rule-runner kql`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct KqlArgs {}

pub fn run(_args: KqlArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner kql` is not built yet")
}
