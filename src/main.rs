use std::process::ExitCode;

use clap::Parser;
use rule_runner::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = Cli::parse();
    cli::init_tracing(&cli.global);
    cli::run(cli)
}
