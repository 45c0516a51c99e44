//! `rule-runner scan`: the rules over raw CloudTrail files, no Elasticsearch.

use std::fs::File;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::alert::RunContext;
use crate::cli::input::{DayArgs, discover_inputs};
use crate::cloudtrail::{Flavor, NormalizeOptions};
use crate::rule::{LoadReport, ProblemKind, load_paths, shipped_rules};
use crate::scan::report::{self, Context};
use crate::scan::{RuleSet, ScanOptions, ScanReport, scan};

/// Exit status: alerts were found and `--fail-on-alert` was given.
pub const EXIT_ALERTS: u8 = 3;
/// Exit status: some input (a file, a record) was skipped; the rest was scanned.
pub const EXIT_SKIPPED_INPUT: u8 = 2;

/// Inputs above this size (on disk) get a progress bar when stderr is a terminal.
const PROGRESS_MIN_BYTES: u64 = 32 * 1024 * 1024;

/// Run the detection rules over raw CloudTrail logs, with no Elasticsearch.
///
/// Reads S3 delivery files (`{"Records":[...]}`, `.json` or `.json.gz`), JSON arrays of
/// records, NDJSON (raw records or already-normalized ECS documents), directories
/// (recursively; digest files skipped) and `-` for stdin. Each record is normalized exactly
/// as Elastic's AWS integration would index it, then every rule's KQL query is evaluated.
///
/// Exit status: 0 scanned everything; 1 usage or configuration error (nothing scanned);
/// 2 some input was skipped (reported on stderr) but the rest was scanned; 3 alerts were
/// found and --fail-on-alert was given (takes precedence over 2).
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// CloudTrail files or directories, or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub days: DayArgs,
    /// Rule files or directories (detection-rules TOML, Kibana NDJSON); repeat for more.
    /// Default: the shipped rules, built into the binary.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,
    /// Output format. Default: `table` on a terminal, `ndjson` otherwise.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Write the output to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Reproduce the documents of the AWS integration (`logs-aws.cloudtrail-*`) or of the
    /// older Filebeat module (`filebeat-*`).
    #[arg(long, value_enum, default_value_t = Flavor::Integration)]
    pub flavor: Flavor,
    /// Exit with status 3 when any alert is found (for CI and scripts).
    #[arg(long)]
    pub fail_on_alert: bool,
    /// Report at most each rule's `max_signals` alerts, as one service run would
    /// (default: every match).
    #[arg(long)]
    pub max_signals_per_rule: bool,
    /// Let `new_terms` rules alert from their first matching event, instead of learning
    /// terms for one history window first (the service would have had that history).
    #[arg(long)]
    pub no_warm_up: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub threads: Option<u16>,
    /// No colours (also when the NO_COLOR environment variable is set).
    #[arg(long)]
    pub no_color: bool,
    /// Also list the rules that were not run and why.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// The alert creation time (RFC 3339). Fixing it makes the output byte-for-byte
    /// reproducible. Default: now.
    #[arg(long, value_name = "TIME")]
    pub now: Option<DateTime<Utc>>,
    /// `data_stream.namespace` of the documents (integration flavor).
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Memory for the events of the alerts found, held until they are written (e.g. `256MiB`,
    /// `1GB`); beyond it they wait in a temporary file in TMPDIR. The output is the same.
    #[arg(long, value_name = "SIZE", default_value = "96MiB")]
    pub memory: bytesize::ByteSize,
    /// Memory for the events EQL sequence rules may join, held for the whole input (a
    /// sequence may span all of it); a scan that needs more stops and says which rules.
    #[arg(long, value_name = "SIZE", default_value = "1GiB")]
    pub sequence_memory: bytesize::ByteSize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns and a summary, for people.
    Table,
    /// One alert document per line (the summary goes to stderr).
    Ndjson,
    /// One JSON object: `{"alerts": [...], "summary": {...}}`.
    Json,
}

fn color_allowed(no_color: bool) -> bool {
    !no_color && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

fn load_rules(args: &ScanArgs) -> anyhow::Result<LoadReport> {
    if args.rules.is_empty() {
        return Ok(shipped_rules());
    }
    for path in &args.rules {
        if !path.exists() {
            bail!(
                "rules path {} does not exist (omit --rules to use the shipped rules)",
                path.display()
            );
        }
    }
    Ok(load_paths(&args.rules))
}

/// A progress bar over bytes read, only for large inputs on a terminal.
fn progress_bar(total: u64) -> Option<(ProgressBar, Arc<AtomicU64>)> {
    if total < PROGRESS_MIN_BYTES || !io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    Some((bar, Arc::new(AtomicU64::new(0))))
}

pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let loaded = load_rules(&args)?;
    for problem in &loaded.problems {
        if problem.kind == ProblemKind::Error
            || args.verbose && problem.kind == ProblemKind::Warning
        {
            eprintln!("rules: {problem}");
        }
    }
    let rules = RuleSet::compile(&loaded, args.flavor, &args.namespace);
    if args.verbose {
        for left in &rules.left_out {
            eprintln!(
                "rule not run: {} ({}): {}",
                left.rule, left.origin, left.reason
            );
        }
    }
    if rules.rules.is_empty() {
        bail!(
            "no rule can run over CloudTrail data ({} loaded, {} not runnable; --verbose says why)",
            loaded.rules.len(),
            rules.left_out.len()
        );
    }

    let format = args.format.unwrap_or(match &args.output {
        None if io::stdout().is_terminal() => Format::Table,
        _ => Format::Ndjson,
    });
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(io::BufWriter::new(
            File::create(path).with_context(|| format!("cannot write {}", path.display()))?,
        )),
        None => Box::new(io::BufWriter::new(io::stdout().lock())),
    };
    let out_color =
        color_allowed(args.no_color) && args.output.is_none() && io::stdout().is_terminal();
    let err_color = color_allowed(args.no_color) && io::stderr().is_terminal();

    let found = discover_inputs(&args.paths, &args.days)?;
    for problem in &found.problems {
        eprintln!("skipped: {problem}");
    }
    if found.files.is_empty() && found.problems.is_empty() {
        eprintln!(
            "warning: no CloudTrail files (.json, .json.gz, .jsonl, .ndjson) under {}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let now = args.now.unwrap_or_else(Utc::now);
    let mut ctx = RunContext::scheduled(now);
    if args.now.is_some() {
        let seed = format!("rule-runner scan {}", now.to_rfc3339());
        ctx.execution_uuid = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, seed.as_bytes());
    }
    let opts = ScanOptions {
        normalize: NormalizeOptions {
            flavor: args.flavor,
            preserve_original: false,
            // The integration stamps `event.created` with the read time.
            ingest_time: Some(now.to_rfc3339_opts(SecondsFormat::Millis, true)),
            namespace: args.namespace.clone(),
        },
        max_signals_per_rule: args.max_signals_per_rule,
        threads: args.threads.map(usize::from),
        prefilter: true,
        warm_up: !args.no_warm_up,
        memory: usize::try_from(args.memory.as_u64()).unwrap_or(usize::MAX),
        sequence_memory: usize::try_from(args.sequence_memory.as_u64()).unwrap_or(usize::MAX),
    };

    let total: u64 = found.files.iter().filter_map(|f| f.size).sum();
    let progress = progress_bar(total);
    let done = Arc::new(AtomicBool::new(false));
    let ticker = progress.as_ref().map(|(bar, counter)| {
        let (bar, counter, done) = (bar.clone(), Arc::clone(counter), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                bar.set_position(counter.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(100));
            }
            bar.finish_and_clear();
        })
    });
    let result = scan(
        &found.files,
        &rules,
        &opts,
        &ctx,
        progress.as_ref().map(|(_, c)| Arc::clone(c)),
    );
    done.store(true, Ordering::Relaxed);
    if let Some(t) = ticker {
        let _ = t.join();
    }
    let report = result?;
    let spilled = report.alerts.spilled_bytes();
    if spilled > 0 {
        eprintln!(
            "note: the events of the alerts beyond --memory {} waited in a temporary file ({})",
            args.memory.display().iec(),
            bytesize::ByteSize::b(spilled).display().iec()
        );
    }

    for problem in &report.problems {
        eprintln!("skipped: {problem}");
    }
    if report.problems_not_listed > 0 {
        eprintln!(
            "skipped: … and {} more problems",
            report.problems_not_listed
        );
    }
    let summary_ctx = Context {
        rules_left_out: rules.left_out.len(),
        digest_files: found.digest_files.len(),
        unreadable_paths: found.problems.len(),
    };
    match write_output(&mut out, format, &report, summary_ctx, out_color, err_color) {
        // A closed pipe (`| head`) is a normal way to stop reading.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
        other => other.context("writing the scan output")?,
    }

    let code = if args.fail_on_alert && !report.alerts.is_empty() {
        EXIT_ALERTS
    } else if report.skipped_input() || !found.problems.is_empty() {
        EXIT_SKIPPED_INPUT
    } else {
        0
    };
    Ok(ExitCode::from(code))
}

fn write_output(
    out: &mut dyn Write,
    format: Format,
    report: &ScanReport,
    ctx: Context,
    out_color: bool,
    err_color: bool,
) -> io::Result<()> {
    match format {
        Format::Table => {
            let table = report::table(report, out_color)?;
            if table.is_empty() {
                writeln!(out, "No alerts.")?;
            } else {
                out.write_all(table.as_bytes())?;
            }
            writeln!(out)?;
            out.write_all(report::summary(report, ctx, out_color).as_bytes())?;
        }
        Format::Ndjson => {
            for alert in report.alerts.iter() {
                serde_json::to_writer(&mut *out, &alert?.document)?;
                out.write_all(b"\n")?;
            }
            eprint!("{}", report::summary(report, ctx, err_color));
        }
        Format::Json => {
            // `{"alerts": [...], "summary": {...}}` pretty-printed as one document would be,
            // written one alert at a time.
            let nested = |value: &serde_json::Value, indent: &str| -> io::Result<String> {
                let text = serde_json::to_string_pretty(value)?;
                Ok(text.replace('\n', &format!("\n{indent}")))
            };
            out.write_all(b"{\n  \"alerts\": [")?;
            for (i, alert) in report.alerts.iter().enumerate() {
                out.write_all(if i == 0 { b"\n    " } else { b",\n    " })?;
                out.write_all(nested(&alert?.document, "    ")?.as_bytes())?;
            }
            if !report.alerts.is_empty() {
                out.write_all(b"\n  ")?;
            }
            out.write_all(b"],\n  \"summary\": ")?;
            out.write_all(nested(&report::summary_json(report, ctx), "  ")?.as_bytes())?;
            out.write_all(b"\n}\n")?;
        }
    }
    out.flush()
}
