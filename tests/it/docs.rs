//! Every `console` example in the README and in `docs/` is run, and its output compared.
//!
//! A block holds commands (`$ rule-runner ...`, run from the repository root) each followed
//! by the output it must print (stdout, then stderr). `$ echo $?` checks the exit status of
//! the command before it. In expected output, a line `...` stands for any number of lines
//! and `[..]` for any text within a line; a `# ...` after a command is a comment.
//!
//! Hand-written rather than `trycmd`: trycmd runs a Markdown file's examples from that file's
//! folder and wants a sandbox layout, while these examples are written to be typed from the
//! repository root, as a user reads them.

use std::path::{Path, PathBuf};

use crate::util::{repo, rule_runner};

struct Example {
    file: PathBuf,
    line: usize,
    command: String,
    expected: Vec<String>,
    status: Option<i32>,
}

/// The examples of one Markdown text.
fn examples(file: &Path, text: &str) -> Vec<Example> {
    let mut found: Vec<Example> = Vec::new();
    let mut in_console = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_console = !in_console && line.trim() == "```console";
            continue;
        }
        if !in_console {
            continue;
        }
        if let Some(command) = line.strip_prefix("$ ") {
            if command.trim() == "echo $?" {
                continue;
            }
            found.push(Example {
                file: file.to_path_buf(),
                line: n + 1,
                command: command.to_string(),
                expected: Vec::new(),
                status: None,
            });
        } else if let Some(last) = found.last_mut() {
            // The line after `$ echo $?` is the status of the command before it.
            let previous = text.lines().nth(n.wrapping_sub(1)).unwrap_or("");
            if previous.trim() == "$ echo $?" {
                last.status = line.trim().parse().ok();
            } else {
                last.expected.push(line.to_string());
            }
        }
    }
    for example in &mut found {
        while example.expected.last().is_some_and(|l| l.trim().is_empty()) {
            example.expected.pop();
        }
    }
    found
}

/// Whether `line` matches `pattern`, where `[..]` stands for any text.
fn line_matches(pattern: &str, line: &str) -> bool {
    let (pattern, line) = (pattern.trim_end(), line.trim_end());
    let mut pieces = pattern.split("[..]");
    let first = pieces.next().unwrap_or("");
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    for (i, piece) in pieces.iter().enumerate() {
        if i + 1 == pieces.len() {
            return rest.ends_with(piece);
        }
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `lines` match `expected`, where a line `...` stands for any lines.
fn lines_match(expected: &[String], lines: &[&str]) -> bool {
    match expected.split_first() {
        None => lines.iter().all(|l| l.trim().is_empty()),
        Some((first, rest)) if first.trim() == "..." => {
            (0..=lines.len()).any(|skip| lines_match(rest, &lines[skip..]))
        }
        Some((first, rest)) => lines
            .split_first()
            .is_some_and(|(line, others)| line_matches(first, line) && lines_match(rest, others)),
    }
}

fn run(example: &Example) -> Result<(), String> {
    let words = shlex::split(&example.command)
        .ok_or_else(|| format!("cannot split the command `{}`", example.command))?;
    let words: Vec<String> = words
        .into_iter()
        .take_while(|w| !w.starts_with('#'))
        .collect();
    let (program, args) = words
        .split_first()
        .ok_or_else(|| "an empty command".to_string())?;
    if program != "rule-runner" {
        return Err(format!(
            "only `rule-runner` commands can be checked, not `{program}`"
        ));
    }
    let out = rule_runner()
        .args(args)
        .output()
        .map_err(|e| format!("cannot run rule-runner: {e}"))?;
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();
    if !lines_match(&example.expected, &lines) {
        return Err(format!(
            "the output differs\n--- expected\n{}\n--- printed\n{printed}",
            example.expected.join("\n")
        ));
    }
    if let Some(status) = example.status {
        if out.status.code() != Some(status) {
            return Err(format!(
                "exit status {:?}, the example says {status}",
                out.status.code()
            ));
        }
    }
    Ok(())
}

fn manual() -> Vec<PathBuf> {
    let mut files = vec![repo("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

#[test]
fn every_console_example_prints_what_the_manual_says() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in manual() {
        let text = std::fs::read_to_string(&file).expect("a manual page");
        for example in examples(&file, &text) {
            checked += 1;
            if let Err(why) = run(&example) {
                let at = example.file.strip_prefix(repo("")).unwrap_or(&example.file);
                failures.push(format!(
                    "{}:{}: `{}`: {why}",
                    at.display(),
                    example.line,
                    example.command
                ));
            }
        }
    }
    assert!(checked >= 5, "only {checked} examples found");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_matcher_takes_ellipses_and_wildcards() {
    let expected: Vec<String> = ["a", "...", "d [..] f"].map(String::from).to_vec();
    assert!(lines_match(&expected, &["a", "b", "c", "d e f"]));
    assert!(lines_match(&expected, &["a", "d x f"]));
    assert!(!lines_match(&expected, &["a", "d e g"]));
    assert!(!lines_match(&expected, &["b", "d e f"]));
    assert!(line_matches(
        "elapsed   [..]",
        "elapsed   0.00 s (3,445 records/s)"
    ));
    assert!(!line_matches("x", "x y"));
    let parsed = examples(
        Path::new("t.md"),
        "```console\n$ rule-runner a # note\nout\n$ echo $?\n2\n```\n```sh\n$ rule-runner b\n```\n",
    );
    assert_eq!(parsed.len(), 1);
    assert_eq!(parsed[0].expected, ["out"]);
    assert_eq!(parsed[0].status, Some(2));
}

#[test]
fn every_relative_link_of_the_manual_leads_somewhere() {
    let mut broken = Vec::new();
    for file in manual() {
        let text = std::fs::read_to_string(&file).expect("a manual page");
        let dir = file.parent().expect("a folder");
        let mut rest = text.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = &after[..end];
            rest = &after[end..];
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap_or(target);
            if !dir.join(path).exists() {
                broken.push(format!("{}: {target}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}
