//! `rule-runner eql`: check EQL event queries and run them over NDJSON events.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value as Json;

use crate::eql::{self, Body, JoinMatcher, MatchOptions, Matcher, apply_pipes};

#[derive(Debug, Args)]
pub struct EqlArgs {
    #[command(subcommand)]
    pub command: EqlCommand,
}

#[derive(Debug, Subcommand)]
pub enum EqlCommand {
    /// Parse queries and report OK or where each one goes wrong; exit status 1 on any error.
    Check(CheckArgs),
    /// Print the NDJSON events of a file (or stdin) that match an event query, unchanged, in
    /// timestamp order as Elasticsearch returns them; for a sequence or a sample, one line
    /// `{"sequence": [events], "join_keys": [values]}` per match (a sample takes the earliest
    /// events in input order and needs no timestamp). Exit status 2 if some lines
    /// could not be read (reported on stderr with their line number, the rest is processed).
    Match(MatchArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The EQL queries.
    #[arg(required = true)]
    pub queries: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MatchArgs {
    /// The field holding each event's time: an RFC 3339 string, a date or time without an
    /// offset (read as UTC), or epoch milliseconds.
    #[arg(long, value_name = "FIELD", default_value = "@timestamp")]
    pub timestamp_field: String,
    /// The field `<category> where` compares with the category.
    #[arg(long, value_name = "FIELD", default_value = "event.category")]
    pub event_category_field: String,
    /// Orders events of the same instant by this field, ascending (numbers by value, text
    /// by bytes; events without it after the others), as Elasticsearch's `tiebreaker_field`.
    /// Without it they keep their order in the input.
    #[arg(long, value_name = "FIELD")]
    pub tiebreaker_field: Option<String>,
    /// Print only these fields of each event (repeat or separate with commas; `*` matches
    /// any characters of a dotted path), as Elasticsearch's `fields` selects them.
    #[arg(long = "fields", value_name = "FIELD", value_delimiter = ',')]
    pub fields: Vec<String>,
    /// At most this many events, the earliest first (Elasticsearch's default is 10).
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub size: usize,
    /// How many samples one join key tuple may give, as Elasticsearch's
    /// `max_samples_per_key` (samples only).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_samples_per_key: u32,
    /// The EQL query: an event query, a sequence or a sample, optionally with `| head N` /
    /// `| tail N`.
    pub query: String,
    /// NDJSON events, one object per line; `-` reads stdin.
    pub file: PathBuf,
}

pub fn run(args: EqlArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        EqlCommand::Check(args) => check(args),
        EqlCommand::Match(args) => match_events(args),
    }
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for query in &args.queries {
        let shown = query.split_whitespace().collect::<Vec<_>>().join(" ");
        match eql::parse_statement(query) {
            Ok(_) => println!("OK: {shown}"),
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

/// An event read: when it happened, its line as read and its document.
struct Event {
    nanos: i128,
    line: Vec<u8>,
    doc: Json,
}

/// The tiebreaker's value as a sort key: numbers before text, missing (or other) last.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum Tiebreak {
    Number(f64),
    Text(String),
    Missing,
}

fn tiebreak(doc: &Json, field: Option<&str>) -> Tiebreak {
    match field.and_then(|f| lookup(doc, f)) {
        Some(Json::Number(n)) => n.as_f64().map_or(Tiebreak::Missing, Tiebreak::Number),
        Some(Json::String(s)) => Tiebreak::Text(s.clone()),
        _ => Tiebreak::Missing,
    }
}

/// `doc` with only the leaves whose dotted path matches one of `patterns`, nested as they
/// were (dotted keys stay dotted).
fn project(doc: &Json, patterns: &[String], prefix: &str) -> Option<Json> {
    let Json::Object(map) = doc else {
        let keep = patterns.iter().any(|p| eql::wildcard_match(p, prefix));
        return keep.then(|| doc.clone());
    };
    let kept: serde_json::Map<String, Json> = map
        .iter()
        .filter_map(|(key, value)| {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            project(value, patterns, &path).map(|v| (key.clone(), v))
        })
        .collect();
    (!kept.is_empty() || prefix.is_empty()).then_some(Json::Object(kept))
}

fn match_events(args: MatchArgs) -> anyhow::Result<ExitCode> {
    let statement = eql::parse_statement(&args.query)
        .map_err(|e| anyhow::anyhow!("invalid EQL query: {}", e.render(&args.query)))?;
    let options = MatchOptions {
        event_category_field: args.event_category_field.clone(),
    };
    let event_matcher = match &statement.body {
        Body::Event(query) => Some(Matcher::new(query, &options).context("invalid EQL query")?),
        Body::Sequence(_) | Body::Sample(_) => None,
    };
    let per_key = args.max_samples_per_key as usize;
    let join_matcher = JoinMatcher::new(&statement.body, &options, per_key)
        .transpose()
        .context("invalid EQL query")?;
    // A sample needs no time: its events are taken in input order, as Elasticsearch takes
    // them in index order.
    let timed = !matches!(statement.body, Body::Sample(_));
    let mut skipped = false;
    let mut events = Vec::new();
    // An event query keeps only its matches; a sequence or sample needs every event.
    let mut keep = |event: Event| {
        if event_matcher.as_ref().is_none_or(|m| m.matches(&event.doc)) {
            events.push(event);
        }
    };
    if args.file == Path::new("-") {
        collect(
            io::stdin().lock(),
            "<stdin>",
            &args,
            timed,
            &mut keep,
            &mut skipped,
        );
    } else {
        match File::open(&args.file) {
            Ok(file) => collect(
                BufReader::new(file),
                &args.file.display().to_string(),
                &args,
                timed,
                &mut keep,
                &mut skipped,
            ),
            Err(e) => {
                eprintln!("{}: cannot open: {e}", args.file.display());
                skipped = true;
            }
        }
    }
    // Stable: events of the same instant (and tiebreaker) keep their order in the input.
    let tiebreaker = args.tiebreaker_field.as_deref();
    if timed {
        events.sort_by(|a, b| {
            a.nanos.cmp(&b.nanos).then_with(|| {
                tiebreak(&a.doc, tiebreaker)
                    .partial_cmp(&tiebreak(&b.doc, tiebreaker))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
        });
    }
    // The selection applies to what is printed, after every condition saw the whole event.
    let shown = |doc: &Json| match args.fields.is_empty() {
        true => doc.clone(),
        false => project(doc, &args.fields, "").unwrap_or_default(),
    };
    let results: Vec<Vec<u8>> = match join_matcher {
        None if args.fields.is_empty() => events.into_iter().map(|event| event.line).collect(),
        None => events
            .iter()
            .map(|event| shown(&event.doc).to_string().into_bytes())
            .collect(),
        Some(mut matcher) => {
            let mut hits = Vec::new();
            for (id, event) in events.iter().enumerate() {
                hits.extend(matcher.push(id, event.nanos, &event.doc));
            }
            hits.extend(matcher.finish());
            hits.into_iter()
                .map(|hit| {
                    // A missing event stands as `{"missing": true}` in its place, as
                    // Elasticsearch answers it.
                    let mut members = hit.events.iter();
                    let sequence: Vec<Json> = (0..hit.events.len() + hit.missing.len())
                        .filter_map(|position| match hit.missing.contains(&position) {
                            true => Some(serde_json::json!({"missing": true})),
                            false => members.next().map(|&i| shown(&events[i].doc)),
                        })
                        .collect();
                    serde_json::json!({"sequence": sequence, "join_keys": hit.join_keys})
                        .to_string()
                        .into_bytes()
                })
                .collect()
        }
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let written = apply_pipes(results, &statement.pipes)
        .iter()
        .take(args.size)
        .try_for_each(|line| {
            out.write_all(line)?;
            out.write_all(b"\n")
        });
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            return Err(e).context("cannot write the matching events");
        }
        _ => {}
    }
    Ok(if skipped {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// Hand each event of `input` to `keep`. Lines that are not JSON objects, or (when `timed`)
/// have no usable timestamp, are reported as `name:line: ...` on stderr and skipped.
fn collect(
    mut input: impl BufRead,
    name: &str,
    args: &MatchArgs,
    timed: bool,
    keep: &mut dyn FnMut(Event),
    skipped: &mut bool,
) {
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                eprintln!("{name}:{}: cannot read: {e}", number + 1);
                *skipped = true;
                return;
            }
        }
        number += 1;
        let content = trim_line_end(&line);
        if content.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let doc = match serde_json::from_slice::<Json>(content) {
            Ok(doc) if doc.is_object() => doc,
            Ok(_) => {
                eprintln!("{name}:{number}: not a JSON object (an event must be an object)");
                *skipped = true;
                continue;
            }
            Err(e) => {
                eprintln!("{name}:{number}: not valid JSON: {e}");
                *skipped = true;
                continue;
            }
        };
        let nanos = timestamp(&doc, &args.timestamp_field);
        let Some(nanos) = nanos.or((!timed).then_some(0)) else {
            eprintln!(
                "{name}:{number}: no usable {} (an RFC 3339 time or epoch milliseconds)",
                args.timestamp_field
            );
            *skipped = true;
            continue;
        };
        keep(Event {
            nanos,
            line: content.to_vec(),
            doc,
        });
    }
}

/// The event's time in nanoseconds since the epoch, read from `field` (a dotted path or a
/// dotted key).
fn timestamp(doc: &Json, field: &str) -> Option<i128> {
    match lookup(doc, field)? {
        Json::Number(n) => match n.as_i64() {
            Some(ms) => Some(i128::from(ms) * 1_000_000),
            None => epoch_millis(n.as_f64()?),
        },
        Json::String(s) => date_time(s.trim()),
        _ => None,
    }
}

/// An RFC 3339 time, a time or date without an offset (UTC, as Elasticsearch's default
/// `strict_date_optional_time` reads it), or epoch milliseconds as text.
fn date_time(s: &str) -> Option<i128> {
    let nanos = |t: chrono::DateTime<chrono::Utc>| {
        i128::from(t.timestamp()) * 1_000_000_000 + i128::from(t.timestamp_subsec_nanos())
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(nanos(t.to_utc()));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(nanos(t.and_utc()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(nanos(d.and_hms_opt(0, 0, 0)?.and_utc()));
    }
    if let Ok(ms) = s.parse::<i64>() {
        return Some(i128::from(ms) * 1_000_000);
    }
    epoch_millis(s.parse::<f64>().ok()?)
}

/// Fractional or huge epoch milliseconds.
fn epoch_millis(ms: f64) -> Option<i128> {
    let nanos = ms * 1e6;
    // Far beyond any real event (about 30 million years); the cast below saturates anyway.
    (nanos.is_finite() && nanos.abs() < 1e30).then_some(nanos as i128)
}

/// The single value at `path`: nested objects or dotted keys, as Elasticsearch reads `_source`.
fn lookup<'v>(doc: &'v Json, path: &str) -> Option<&'v Json> {
    let map = doc.as_object()?;
    if let Some(v) = map.get(path) {
        return Some(v);
    }
    let mut from = 0;
    while let Some(dot) = path[from..].find('.') {
        let end = from + dot;
        if let Some(found) = map
            .get(&path[..end])
            .and_then(|child| lookup(child, &path[end + 1..]))
        {
            return Some(found);
        }
        from = end + 1;
    }
    None
}

fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}
