//! `rule-runner load`: normalize raw CloudTrail and bulk-index it into Elasticsearch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::input::{DayArgs, discover_inputs};
use crate::cloudtrail::Flavor;
use crate::elasticsearch::{ConnectionFlags, EsClient, ServiceConfig};
use crate::ops::load::{self, LoadOptions, LoadSummary, Progress, TemplateOutcome};

/// Normalize raw CloudTrail as Elastic's AWS integration (or Filebeat) does and bulk-index it,
/// e.g. to replay an incident's logs into a cluster or to feed the Docker demo.
///
/// Installs an index template for the target (CloudTrail field types as the integration or
/// Filebeat maps them) unless the cluster has one. Exit status 2 when some input, record or
/// document was skipped or rejected.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// CloudTrail files (S3 delivery `.json`/`.json.gz`, JSON arrays, NDJSON), directories, or
    /// `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub days: DayArgs,
    /// Target index or data stream [default: logs-aws.cloudtrail-default, or
    /// filebeat-cloudtrail with --flavor filebeat].
    #[arg(long, value_name = "NAME")]
    pub index: Option<String>,
    /// Whose documents and mappings to reproduce.
    #[arg(long, value_enum, default_value_t = Flavor::Integration)]
    pub flavor: Flavor,
    /// Move event times so the newest event is now (spacing kept): the rules' look-back
    /// windows then see the data.
    #[arg(long)]
    pub shift_to_now: bool,
    /// Documents per bulk request.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub batch_size: u64,
    /// Do not install an index template, even when none exists.
    #[arg(long)]
    pub no_template: bool,
    #[command(flatten)]
    pub connection: ConnectionFlags,
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn set_total(&self, documents: u64) {
        self.0.set_length(documents);
        self.0.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} documents ({per_sec}, {eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
    }
    fn advance(&self, documents: u64) {
        self.0.inc(documents);
    }
}

pub fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let config = ServiceConfig::load(&args.connection)?;
    let index = args.index.clone().unwrap_or_else(|| {
        match args.flavor {
            Flavor::Integration => load::DEFAULT_INTEGRATION_INDEX,
            Flavor::Filebeat => load::DEFAULT_FILEBEAT_INDEX,
        }
        .to_string()
    });
    let found = discover_inputs(&args.paths, &args.days)?;
    if found.files.is_empty() && found.problems.is_empty() {
        anyhow::bail!(
            "no CloudTrail files found under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let opts = LoadOptions {
        index,
        flavor: args.flavor,
        shift_to_now: args.shift_to_now,
        batch_size: args.batch_size as usize,
        install_template: !args.no_template,
        now: chrono::Utc::now(),
    };
    // Hidden when stderr is not a terminal (logs, CI, Docker without a TTY).
    let bar = Bar(ProgressBar::new_spinner().with_style(
        ProgressStyle::with_template("{spinner} {pos} documents ({per_sec})")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let client = EsClient::from_config(&config)?;
    let mut summary = runtime.block_on(load::load(&client, found.files, &opts, &bar))?;
    bar.0.finish_and_clear();
    summary.problems.splice(0..0, found.problems);
    for p in &summary.problems {
        eprintln!("skipped: {p}");
    }
    print!("{}", render(&opts, &summary));
    Ok(ExitCode::from(if summary.incomplete() { 2 } else { 0 }))
}

fn render(opts: &LoadOptions, s: &LoadSummary) -> String {
    let mut out = format!(
        "loaded {} documents into {} ({} flavor) in {:.1}s\n",
        s.indexed,
        opts.index,
        match opts.flavor {
            Flavor::Integration => "integration",
            Flavor::Filebeat => "filebeat",
        },
        s.elapsed.as_secs_f64()
    );
    match &s.template {
        Some(TemplateOutcome::Installed(name)) => {
            out += &format!("  index template: installed {name}\n")
        }
        Some(TemplateOutcome::Existing(name)) => {
            out += &format!("  index template: kept the existing {name}\n")
        }
        Some(TemplateOutcome::Skipped) | None => {
            out += "  index template: not checked (--no-template)\n"
        }
    }
    if let Some(shift) = s.shift {
        out += &format!(
            "  event times shifted by {} (newest event at {})\n",
            human(shift),
            opts.now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
    }
    if s.duplicates > 0 {
        out += &format!("  already present: {}\n", s.duplicates);
    }
    if s.rejected > 0 {
        out += &format!("  rejected by the cluster: {}\n", s.rejected);
        for r in &s.rejections {
            out += &format!("    {r}\n");
        }
    }
    if !s.problems.is_empty() {
        out += &format!(
            "  inputs or records skipped: {} (see stderr)\n",
            s.problems.len()
        );
    }
    out
}

/// `+412d 3h 10m` style; sub-minute precision is noise at this scale.
fn human(delta: chrono::TimeDelta) -> String {
    let sign = if delta < chrono::TimeDelta::zero() {
        "-"
    } else {
        "+"
    };
    let minutes = delta.num_minutes().abs();
    let (d, h, m) = (minutes / 1440, minutes / 60 % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{sign}{m}m"),
        (0, _) => format!("{sign}{h}h {m}m"),
        _ => format!("{sign}{d}d {h}h {m}m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_read_like_durations() {
        assert_eq!(human(chrono::TimeDelta::minutes(5)), "+5m");
        assert_eq!(human(chrono::TimeDelta::minutes(125)), "+2h 5m");
        assert_eq!(
            human(chrono::TimeDelta::minutes(-(2 * 1440 + 61))),
            "-2d 1h 1m"
        );
    }
}
