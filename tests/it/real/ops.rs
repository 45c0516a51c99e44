//! Leases and `load` on the real engine.

use std::sync::Arc;
use std::time::Duration;

use ::elasticsearch::http::Method;
use rule_runner::cloudtrail::{Flavor, discover};
use rule_runner::elasticsearch::{Call, EsClient};
use rule_runner::engine::Leases;
use rule_runner::ops::lease::elasticsearch::EsLeaseBackend;
use rule_runner::ops::lease::{LeaseManager, system_now};
use rule_runner::ops::load::{self, LoadOptions, NoProgress, TemplateOutcome};

use crate::real::engine;
use crate::util::data;

fn client(test: &str) -> Option<EsClient> {
    engine(test).map(|e| e.client)
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

async fn delete(client: &EsClient, path: String) {
    let _ = client
        .send(&Call::new("clean up", Method::Delete, path))
        .await;
}

#[tokio::test]
async fn real_cluster_leases_exclude_each_other_and_release() {
    let Some(client) = client("real_cluster_leases_exclude_each_other_and_release") else {
        return;
    };
    let index = unique("rule-runner-it-leases");
    let backend = Arc::new(EsLeaseBackend::new(client.clone(), &index));
    let a = LeaseManager::new(backend.clone(), "it-a", system_now());
    let b = LeaseManager::new(backend.clone(), "it-b", system_now());
    let ttl = Duration::from_secs(60);
    let result = async {
        assert!(
            a.acquire("r1", ttl).await.unwrap(),
            "first claim creates the lease"
        );
        assert!(
            !b.acquire("r1", ttl).await.unwrap(),
            "a live lease keeps b out"
        );
        assert!(a.acquire("r1", ttl).await.unwrap(), "the holder renews");
        a.release("r1").await.unwrap();
        assert!(
            b.acquire("r1", ttl).await.unwrap(),
            "released: b takes it at once"
        );
        // Eight claims at once on a fresh rule: exactly one wins.
        let managers: Vec<_> = (0..8)
            .map(|i| {
                Arc::new(LeaseManager::new(
                    backend.clone(),
                    format!("it-{i}"),
                    system_now(),
                ))
            })
            .collect();
        let claims = managers.iter().map(|m| {
            let m = m.clone();
            tokio::spawn(async move { m.acquire("r2", ttl).await.unwrap() })
        });
        let mut winners = 0;
        for c in claims {
            winners += usize::from(c.await.unwrap());
        }
        assert_eq!(winners, 1);
    };
    result.await;
    delete(&client, format!("/{index}")).await;
}

#[tokio::test]
async fn real_cluster_load_installs_the_template_and_the_documents_are_searchable() {
    let Some(client) =
        client("real_cluster_load_installs_the_template_and_the_documents_are_searchable")
    else {
        return;
    };
    let namespace = uuid::Uuid::new_v4().simple().to_string();
    let index = format!("logs-aws.cloudtrail-rrit{namespace}");
    let opts = LoadOptions {
        index: index.clone(),
        flavor: Flavor::Integration,
        shift_to_now: true,
        batch_size: 2,
        install_template: true,
        now: chrono::Utc::now(),
    };
    let files = discover(&[data("ops/cloudtrail.json")]).files;
    let summary = load::load(&client, files, &opts, &NoProgress).await;
    let count = client
        .send_ok(
            &Call::new("count", Method::Get, format!("/{index}/_count")).json(serde_json::json!({
                "query": {"bool": {"filter": [
                    {"term": {"event.dataset": "aws.cloudtrail"}},
                    {"wildcard": {"aws.cloudtrail.request_parameters": "*principal=\\**"}}
                ]}}
            })),
        )
        .await;
    delete(&client, format!("/_data_stream/{index}")).await;
    delete(
        &client,
        format!("/_index_template/rule-runner-load-{index}"),
    )
    .await;
    let summary = summary.unwrap();
    assert_eq!(summary.indexed, 3);
    assert_eq!(
        summary.template,
        Some(TemplateOutcome::Installed(format!(
            "rule-runner-load-{index}"
        )))
    );
    assert_eq!(
        count.unwrap()["count"],
        1,
        "the AddPermission event, found the way the rule finds it"
    );
}
