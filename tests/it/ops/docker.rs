//! What can be checked of `docker/` without a Docker engine: the Dockerfile's shape (stages,
//! user, health check, pinned bases), that the compose file only points at files that exist,
//! and that the shipped roles are least-privilege. `.ci/run` also runs `docker-compose config`.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use crate::util::repo;

/// One Dockerfile instruction, continuation lines joined.
struct Instruction {
    keyword: String,
    args: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if pending.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(head) = trimmed.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(trimmed);
        let (keyword, args) = pending.split_once(' ').unwrap_or((pending.as_str(), ""));
        out.push(Instruction {
            keyword: keyword.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
        pending.clear();
    }
    out
}

fn dockerfile() -> Vec<Instruction> {
    instructions(&std::fs::read_to_string(repo("docker/Dockerfile")).unwrap())
}

/// The instructions of the last stage (the image that ships).
fn final_stage(all: &[Instruction]) -> &[Instruction] {
    let last_from = all.iter().rposition(|i| i.keyword == "FROM").unwrap();
    &all[last_from..]
}

/// `FROM` image references with `${ARG}` replaced by the ARG's default.
fn base_images(all: &[Instruction]) -> Vec<String> {
    let mut args = HashMap::new();
    let mut images = Vec::new();
    for i in all {
        match i.keyword.as_str() {
            "ARG" => {
                if let Some((name, value)) = i.args.split_once('=') {
                    args.insert(format!("${{{name}}}"), value.to_string());
                }
            }
            "FROM" => {
                let image = i
                    .args
                    .split_whitespace()
                    .find(|w| !w.starts_with("--"))
                    .unwrap();
                images.push(args.get(image).cloned().unwrap_or(image.to_string()));
            }
            _ => {}
        }
    }
    images
}

#[test]
fn dockerfile_is_multi_stage_and_copies_the_binary_from_the_build_stage() {
    let all = dockerfile();
    let froms: Vec<_> = all.iter().filter(|i| i.keyword == "FROM").collect();
    assert!(
        froms.len() >= 2,
        "expected a build stage and a runtime stage"
    );
    assert!(
        froms[0].args.to_ascii_lowercase().contains(" as build"),
        "the first stage is named `build`: {}",
        froms[0].args
    );
    let copies_binary = final_stage(&all).iter().any(|i| {
        i.keyword == "COPY" && i.args.starts_with("--from=build") && i.args.contains("rule-runner")
    });
    assert!(
        copies_binary,
        "the runtime stage copies the binary from the build stage"
    );
    let builds = all
        .iter()
        .any(|i| i.keyword == "RUN" && i.args.contains("cargo build --release --locked"));
    assert!(builds, "the build stage builds a locked release binary");
}

#[test]
fn dockerfile_base_images_are_pinned_to_versions() {
    let images = base_images(&dockerfile());
    assert_eq!(images.len(), 2, "{images:?}");
    for image in images {
        let (_, tag) = image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{image} has no tag"));
        assert_ne!(tag, "latest", "{image}");
        assert!(
            tag.split(['-', '.'])
                .filter(|p| p.chars().all(|c| c.is_ascii_digit()))
                .count()
                >= 2,
            "{image}: the tag names a version (major.minor at least), not a moving name"
        );
    }
}

#[test]
fn dockerfile_runs_as_a_non_root_user_with_a_healthcheck_on_healthz() {
    let all = dockerfile();
    let stage = final_stage(&all);
    let user = stage
        .iter()
        .rev()
        .find(|i| i.keyword == "USER")
        .expect("the runtime stage sets USER");
    let name = user.args.split(':').next().unwrap();
    assert!(!["root", "0", ""].contains(&name), "USER {}", user.args);
    let health = stage
        .iter()
        .find(|i| i.keyword == "HEALTHCHECK")
        .expect("the runtime stage has a HEALTHCHECK");
    assert!(health.args.contains("/healthz"), "{}", health.args);
    // The health check's port is the one the image turns the HTTP endpoints on at.
    let env = stage
        .iter()
        .find(|i| i.keyword == "ENV" && i.args.contains("RULE_RUNNER_HTTP_ADDR="))
        .expect("the image enables the HTTP endpoints");
    let port = env.args.rsplit(':').next().unwrap();
    assert!(
        health.args.contains(&format!(":{port}/healthz")),
        "{}",
        health.args
    );
}

#[test]
fn dockerfile_copies_only_files_that_exist_and_ships_the_rules() {
    let all = dockerfile();
    let mut copied = Vec::new();
    for i in all
        .iter()
        .filter(|i| i.keyword == "COPY" && !i.args.starts_with("--from"))
    {
        let words: Vec<_> = i.args.split_whitespace().collect();
        for src in &words[..words.len() - 1] {
            if *src != "." {
                assert!(repo(src).exists(), "COPY source {src} does not exist");
            }
            copied.push(src.to_string());
        }
    }
    assert!(copied.iter().any(|s| s.starts_with("rules")), "{copied:?}");
}

/// Host paths the compose file points at (bind mounts, build context and Dockerfile),
/// resolved against `docker/`.
fn compose_host_paths() -> Vec<String> {
    let text = std::fs::read_to_string(repo("docker/docker-compose.yml")).unwrap();
    let mut paths = Vec::new();
    let mut context = None;
    for line in text.lines().map(str::trim) {
        if let Some(mount) = line.strip_prefix("- ") {
            if mount.starts_with("./") || mount.starts_with("../") {
                paths.push(mount.split(':').next().unwrap().to_string());
            }
        } else if let Some(c) = line.strip_prefix("context: ") {
            context = Some(c.to_string());
            paths.push(c.to_string());
        } else if let Some(d) = line.strip_prefix("dockerfile: ") {
            let context = context
                .clone()
                .expect("`context` comes before `dockerfile`");
            paths.push(format!("{context}/{d}"));
        }
    }
    paths
}

#[test]
fn compose_file_points_only_at_files_that_exist() {
    let paths = compose_host_paths();
    assert!(paths.len() >= 5, "{paths:?}");
    for p in &paths {
        assert!(
            repo("docker").join(p).exists(),
            "docker-compose.yml refers to missing {p}"
        );
    }
    assert!(
        paths.iter().any(|p| p == "../examples/cloudtrail"),
        "{paths:?}"
    );
}

#[test]
fn compose_pins_versions_and_waits_for_health() {
    let text = std::fs::read_to_string(repo("docker/docker-compose.yml")).unwrap();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("image:"))
    {
        let image = line.trim_start_matches("image:").trim();
        assert!(
            image.contains(":${") && image.contains(":-")
                || image.rsplit_once(':').is_some_and(|(_, t)| t.contains('.')),
            "{image}: pinned by a version tag (or a variable with a pinned default)"
        );
        assert!(!image.ends_with(":latest"), "{image}");
    }
    assert!(text.contains("condition: service_healthy"));
    assert!(text.contains("condition: service_completed_successfully"));
    assert!(text.contains("xpack.security.enabled: \"true\""));
    assert!(text.contains("--shift-to-now"));
    assert!(text.contains("--index logs-aws.cloudtrail-default"));
    assert!(text.contains("--flavor filebeat"));
}

fn role(name: &str) -> Value {
    let path = repo("docker/roles").join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Index privileges a role grants on one index name, by exact pattern.
fn privileges_on(role: &Value, pattern: &str) -> Vec<String> {
    role["indices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| {
            entry["names"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n == pattern)
        })
        .flat_map(|entry| entry["privileges"].as_array().unwrap().iter())
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[test]
fn service_role_is_least_privilege() {
    let role = role("rule_runner");
    for source in ["filebeat-*", "logs-aws.cloudtrail-*"] {
        assert_eq!(
            privileges_on(&role, source),
            ["read", "view_index_metadata"]
        );
    }
    let alerts = privileges_on(&role, "rule-runner-alerts*");
    assert!(alerts.contains(&"create_doc".to_string()), "{alerts:?}");
    for broad in ["write", "index", "all", "manage", "delete"] {
        assert!(!alerts.contains(&broad.to_string()), "alerts: {broad}");
    }
    for own in [
        "rule-runner-state*",
        "rule-runner-executions*",
        "rule-runner-dead-letter*",
    ] {
        assert!(
            privileges_on(&role, own).contains(&"write".to_string()),
            "{own}"
        );
    }
    let cluster = strings(&role["cluster"]);
    assert!(
        !cluster.iter().any(|c| c.starts_with("manage")),
        "{cluster:?}"
    );
    assert!(role["applications"].as_array().unwrap().is_empty());
}

#[test]
fn security_service_role_only_creates_in_the_spaces_alerts_alias() {
    let service = role("rule_runner_security");
    let alerts = privileges_on(&service, ".alerts-security.alerts-default*");
    assert_eq!(alerts, ["create_doc", "read", "view_index_metadata"]);
    assert!(
        privileges_on(&service, "rule-runner-alerts*").is_empty(),
        "the Security destination does not touch rule-runner's own alerts index"
    );
    for source in ["filebeat-*", "logs-aws.cloudtrail-*"] {
        assert_eq!(
            privileges_on(&service, source),
            ["read", "view_index_metadata"]
        );
    }
    let kibana = &service["applications"][0];
    assert_eq!(strings(&kibana["privileges"]), ["feature_siem.read"]);
    let cluster = strings(&service["cluster"]);
    assert!(
        !cluster.iter().any(|c| c.starts_with("manage")),
        "{cluster:?}"
    );
    let setup = role("rule_runner_setup");
    assert!(strings(&setup["applications"][0]["privileges"]).contains(&"feature_siem.all"));
    assert!(
        privileges_on(&setup, "rule-runner-state*").contains(&"write".to_string()),
        "setup keeps the Kibana rule ids in the state index"
    );
    let compose = std::fs::read_to_string(repo("docker/docker-compose.yml")).unwrap();
    assert!(
        compose.contains(
            "RULE_RUNNER_ALERTS_DESTINATION: ${RULE_RUNNER_ALERTS_DESTINATION:-security}"
        )
    );
    assert!(compose.contains("${RULE_RUNNER_SERVICE_USER:-rule_runner_security}"));
}

#[test]
fn only_setup_and_loader_roles_manage_templates() {
    let setup = role("rule_runner_setup");
    assert!(strings(&setup["cluster"]).contains(&"manage_index_templates"));
    assert!(
        strings(&setup["cluster"]).contains(&"manage_ilm"),
        "the alerts index's lifecycle policy"
    );
    assert!(privileges_on(&setup, "rule-runner-*").contains(&"create_index".to_string()));
    let kibana = &setup["applications"][0];
    assert_eq!(kibana["application"], "kibana-.kibana");
    assert!(strings(&kibana["privileges"]).contains(&"feature_savedObjectsManagement.all"));
    let loader = role("rule_runner_loader");
    assert!(strings(&loader["cluster"]).contains(&"manage_index_templates"));
    assert!(!privileges_on(&loader, "logs-aws.cloudtrail-*").contains(&"read".to_string()));
}

#[test]
fn setup_script_creates_a_user_for_every_role() {
    let script = std::fs::read_to_string(repo("docker/scripts/setup.sh")).unwrap();
    let secrets = std::fs::read_to_string(repo("docker/scripts/secrets.sh")).unwrap();
    for entry in std::fs::read_dir(repo("docker/roles")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        assert!(
            script.contains(&name),
            "setup.sh creates no user for role {name}"
        );
        assert!(
            secrets.contains(&format!("keep {name} ")),
            "no password for {name}"
        );
        assert!(Path::new(&path).extension().is_some_and(|e| e == "json"));
    }
}

/// The demo's promise: the loader's sample data (`examples/cloudtrail/`, normalized as the
/// integration does) makes both shipped rules alert, and fits in their 60-minute look-back
/// once shifted to now.
#[test]
fn the_demo_data_alerts_both_shipped_rules_within_one_look_back() {
    use rule_runner::cloudtrail::{DocumentReader, NormalizeOptions, discover};
    use rule_runner::kql::MatchOptions;
    use rule_runner::rule::{RuleMatcher, shipped_rules};

    let found = discover(&[repo("examples/cloudtrail")]);
    assert!(found.problems.is_empty(), "{:?}", found.problems);
    let opts = NormalizeOptions::default();
    let docs: Vec<Value> = found
        .files
        .iter()
        .flat_map(|f| DocumentReader::open(f, &opts, None))
        .map(|d| d.unwrap().value)
        .collect();
    let times: Vec<chrono::DateTime<chrono::Utc>> = docs
        .iter()
        .map(|d| d["@timestamp"].as_str().unwrap().parse().unwrap())
        .collect();
    let span = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    assert!(
        span < chrono::TimeDelta::minutes(60),
        "the sample spans {span}"
    );

    let mut alerts = Vec::new();
    for loaded in shipped_rules().runnable() {
        let matcher = RuleMatcher::new(
            &loaded.rule,
            loaded.query.as_deref(),
            None,
            &MatchOptions::default(),
        )
        .unwrap();
        let hits = docs.iter().filter(|d| matcher.matches(d)).count();
        alerts.push((loaded.rule.name.clone(), hits));
    }
    alerts.sort();
    // The README's "Run with Docker" section quotes these numbers.
    assert_eq!(
        alerts,
        [
            (
                "AWS Lambda Function Policy Updated to Allow Public Invocation".to_string(),
                1
            ),
            ("AWS Lambda Layer Added to Existing Function".to_string(), 3),
        ]
    );
}
