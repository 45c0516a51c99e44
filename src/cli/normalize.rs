//! `rule-runner normalize`.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {}

pub fn run(_args: NormalizeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`rule-runner normalize` is not built yet")
}
