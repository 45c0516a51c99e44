use std::process::ExitCode;

use clap::Parser;
use rule_runner::cli::{self, Cli};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // Usage errors exit 1 (not clap's 2): status 2 means "some input skipped" in `scan`.
            return if err.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    cli::init_tracing(&cli.global);
    cli::run(cli)
}
