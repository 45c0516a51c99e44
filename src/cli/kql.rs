//! `rule-runner kql`: translate, evaluate and check KQL queries from the command line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use crate::kql::{self, DslOptions, FieldTypes, MatchOptions, Matcher, ParseOptions, Query};

#[derive(Debug, Args)]
pub struct KqlArgs {
    #[command(subcommand)]
    pub command: KqlCommand,
}

#[derive(Debug, Subcommand)]
pub enum KqlCommand {
    /// Print the Elasticsearch Query DSL of a query as one line of JSON (what Kibana's detection
    /// engine sends: leading wildcards allowed, dates in time zone "Zulu").
    Dsl(DslArgs),
    /// Print the NDJSON documents (from files or stdin) that match a query, unchanged.
    /// Exit status 2 if some input could not be read (reported on stderr, the rest is processed).
    Match(MatchArgs),
    /// Parse queries and report OK or where each one goes wrong; exit status 1 on any error.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct FieldArgs {
    /// Field metadata: JSON `{"field": "type" | ["type", ...] | {"es_types": [...],
    /// "nested_path": "..."}}`, the shape `_field_caps` reduces to. Without it (and without
    /// --ecs) fields are used as written with unknown types, as Kibana does without a data view.
    #[arg(long, value_name = "FILE")]
    pub fields: Option<PathBuf>,
    /// Use the embedded ECS + AWS CloudTrail field types as metadata.
    #[arg(long, conflicts_with = "fields")]
    pub ecs: bool,
}

#[derive(Debug, Args)]
pub struct DslArgs {
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Print Kibana's full `buildEsQuery` body (`{"bool":{"must":[],"filter":[..],...}}`)
    /// instead of the KQL part alone.
    #[arg(long)]
    pub full: bool,
    /// Add `case_insensitive: true` to term and wildcard queries (Kibana's caseInsensitive).
    #[arg(long)]
    pub case_insensitive: bool,
    /// The KQL query.
    pub query: String,
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Compare keywords case-insensitively (Kibana's caseInsensitive).
    #[arg(long)]
    pub case_insensitive: bool,
    /// The KQL query.
    pub query: String,
    /// NDJSON files, one document per line; `-` or none reads stdin.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub fields: FieldArgs,
    /// The KQL queries.
    #[arg(required = true)]
    pub queries: Vec<String>,
}

pub fn run(args: KqlArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        KqlCommand::Dsl(args) => dsl(args),
        KqlCommand::Match(args) => match_documents(args),
        KqlCommand::Check(args) => check(args),
    }
}

/// The field metadata the flags ask for (`None`: no metadata).
fn load_fields(args: &FieldArgs) -> anyhow::Result<Option<FieldTypes>> {
    if args.ecs {
        return Ok(Some(FieldTypes::ecs_cloudtrail().clone()));
    }
    let Some(path) = &args.fields else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read field metadata {}", path.display()))?;
    let types = FieldTypes::from_json_str(&text)
        .with_context(|| format!("bad field metadata in {}", path.display()))?;
    Ok(Some(types))
}

fn parse_query(query: &str) -> anyhow::Result<Query> {
    kql::parse_with(query, &ParseOptions::default())
        .map_err(|e| anyhow::anyhow!("invalid KQL query: {}", e.render(query)))
}

fn dsl(args: DslArgs) -> anyhow::Result<ExitCode> {
    let fields = load_fields(&args.fields)?;
    let query = parse_query(&args.query)?;
    let options = DslOptions {
        case_insensitive: args.case_insensitive,
        ..DslOptions::detection_engine()
    };
    let dsl = if args.full {
        kql::build_es_query(&query, &[], &[], fields.as_ref(), &options)?.to_string()
    } else {
        kql::to_dsl_string(&query, fields.as_ref(), &options)?
    };
    println!("{dsl}");
    Ok(ExitCode::SUCCESS)
}

fn match_documents(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let fields = load_fields(&args.fields)?;
    let query = parse_query(&args.query)?;
    let options = MatchOptions {
        case_insensitive: args.case_insensitive,
        ..MatchOptions::default()
    };
    let matcher = Matcher::new(&query, fields.as_ref(), &options);
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut skipped = false;
    let stdin_only = [PathBuf::from("-")];
    let files = if args.files.is_empty() {
        &stdin_only[..]
    } else {
        &args.files[..]
    };
    for path in files {
        let result = if path == Path::new("-") {
            filter_lines(
                io::stdin().lock(),
                "<stdin>",
                &matcher,
                &mut out,
                &mut skipped,
            )
        } else {
            match File::open(path) {
                Ok(file) => filter_lines(
                    BufReader::new(file),
                    &path.display().to_string(),
                    &matcher,
                    &mut out,
                    &mut skipped,
                ),
                Err(e) => {
                    eprintln!("{}: cannot open: {e}", path.display());
                    skipped = true;
                    Ok(())
                }
            }
        };
        if let Err(e) = result {
            if e.kind() == io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(e).context("cannot write the matching documents");
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the matching documents");
        }
        _ => {}
    }
    Ok(if skipped {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Copy the lines of `input` that hold a matching JSON object to `out`. Unreadable lines are
/// reported as `name:line: ...` on stderr and skipped. Errors are write errors only.
fn filter_lines(
    mut input: impl BufRead,
    name: &str,
    matcher: &Matcher,
    out: &mut impl Write,
    skipped: &mut bool,
) -> io::Result<()> {
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) => {
                eprintln!("{name}:{}: cannot read: {e}", number + 1);
                *skipped = true;
                return Ok(());
            }
        }
        number += 1;
        let content = trim_line_end(&line);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<serde_json::Value>(content) {
            Ok(doc) if doc.is_object() => {
                if matcher.matches(&doc) {
                    out.write_all(content)?;
                    out.write_all(b"\n")?;
                }
            }
            Ok(_) => {
                eprintln!("{name}:{number}: not a JSON object (a document must be an object)");
                *skipped = true;
            }
            Err(e) => {
                eprintln!("{name}:{number}: not valid JSON: {e}");
                *skipped = true;
            }
        }
    }
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let fields = load_fields(&args.fields)?;
    let options = DslOptions::detection_engine();
    let mut failed = false;
    for query in &args.queries {
        let shown = query.split_whitespace().collect::<Vec<_>>().join(" ");
        match kql::parse(query) {
            Ok(ast) => match kql::to_dsl(&ast, fields.as_ref(), &options) {
                Ok(_) => println!("OK: {shown}"),
                Err(e) => {
                    failed = true;
                    println!("error: {shown}\n  {e}");
                }
            },
            Err(e) => {
                failed = true;
                println!("error: {}", e.render(query));
            }
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
