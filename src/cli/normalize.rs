//! `rule-runner normalize`: raw CloudTrail to ECS documents, one JSON object per line.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::cli::input::{DayArgs, discover_inputs};
use crate::cloudtrail::{DocumentReader, Flavor, NormalizeOptions};

/// Print raw CloudTrail records as the ECS documents Elastic's AWS integration would index.
///
/// Reads S3 delivery files (`{"Records":[...]}`, `.json` or `.json.gz`), JSON arrays, NDJSON,
/// directories (recursively) and `-` for stdin. Problems go to stderr; exit status 2 when
/// any input or record was skipped.
#[derive(Debug, clap::Args)]
pub struct NormalizeArgs {
    /// Files, directories, or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    #[command(flatten)]
    pub days: DayArgs,
    /// Which pipeline's documents to produce.
    #[arg(long, value_enum, default_value_t = Flavor::Integration)]
    pub flavor: Flavor,
    /// Keep each raw record in `event.original` (tag `preserve_original_event`).
    #[arg(long)]
    pub preserve_original: bool,
    /// Set `event.created` to the current time, as the pipeline does at ingest.
    #[arg(long)]
    pub set_created: bool,
    /// `data_stream.namespace` to write.
    #[arg(long, default_value = "default")]
    pub namespace: String,
}

pub fn run(args: NormalizeArgs) -> anyhow::Result<ExitCode> {
    let opts = NormalizeOptions {
        flavor: args.flavor,
        preserve_original: args.preserve_original,
        ingest_time: args
            .set_created
            .then(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        namespace: args.namespace,
    };
    let found = discover_inputs(&args.paths, &args.days)?;
    let mut problems = found.problems.len();
    for p in &found.problems {
        eprintln!("skipped: {p}");
    }
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(256 * 1024, stdout.lock());
    for file in &found.files {
        for item in DocumentReader::open(file, &opts, None) {
            match item {
                Ok(doc) => {
                    let written = serde_json::to_writer(&mut out, &doc.value)
                        .map_err(io::Error::from)
                        .and_then(|()| out.write_all(b"\n"));
                    if let Err(e) = written {
                        return finish_on_write_error(e);
                    }
                }
                Err(p) => {
                    problems += 1;
                    eprintln!("skipped: {p}");
                }
            }
        }
    }
    if let Err(e) = out.flush() {
        return finish_on_write_error(e);
    }
    Ok(ExitCode::from(if problems > 0 { 2 } else { 0 }))
}

/// A closed pipe (`| head`) is a normal way to stop reading; anything else is an error.
fn finish_on_write_error(e: io::Error) -> anyhow::Result<ExitCode> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return Ok(ExitCode::SUCCESS);
    }
    Err(e).context("writing to stdout")
}
