//! Leases for scale-out: the claim semantics over the in-memory backend (with a clock the
//! test moves), and the exact Elasticsearch requests of a claim against a mock server.

use std::sync::Arc;
use std::time::Duration;

use super::{on, on_times};
use chrono::{DateTime, TimeZone, Utc};
use rule_runner::elasticsearch::{ConnectionConfig, EsClient, RetryPolicy};
use rule_runner::engine::ports::{Leases, PortError};
use rule_runner::ops::lease::elasticsearch::EsLeaseBackend;
use rule_runner::ops::lease::memory::MemoryLeaseBackend;
use rule_runner::ops::lease::{LeaseManager, Now};
use serde_json::{Value, json};
use wiremock::matchers::{body_partial_json, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TTL: Duration = Duration::from_secs(60);

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, 12, 0, 0).unwrap()
}

/// Wall time that follows tokio's (paused) clock, so renewals and expiry move together.
fn tokio_now() -> Now {
    let origin = tokio::time::Instant::now();
    Arc::new(move || start() + chrono::TimeDelta::from_std(origin.elapsed()).unwrap())
}

fn instance(
    store: &Arc<MemoryLeaseBackend>,
    name: &str,
    now: &Now,
) -> LeaseManager<MemoryLeaseBackend> {
    LeaseManager::new(store.clone(), name, now.clone())
}

#[tokio::test(start_paused = true)]
async fn one_holder_at_a_time_and_release_hands_over_at_once() {
    let store = Arc::new(MemoryLeaseBackend::new());
    let now = tokio_now();
    let a = instance(&store, "a", &now);
    let b = instance(&store, "b", &now);
    assert!(a.acquire("r1", TTL).await.unwrap());
    assert!(!b.acquire("r1", TTL).await.unwrap(), "a holds r1");
    assert!(b.acquire("r2", TTL).await.unwrap(), "leases are per rule");
    assert!(a.acquire("r1", TTL).await.unwrap(), "the holder renews");
    assert_eq!(a.held(), ["r1"]);
    a.release("r1").await.unwrap();
    assert!(a.held().is_empty());
    assert!(
        b.acquire("r1", TTL).await.unwrap(),
        "released: no need to wait for expiry"
    );
    // Releasing a lease one does not hold changes nothing.
    a.release("r1").await.unwrap();
    assert!(!a.acquire("r1", TTL).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_running_instance_keeps_its_lease_by_renewing_it() {
    let store = Arc::new(MemoryLeaseBackend::new());
    let now = tokio_now();
    let a = instance(&store, "a", &now);
    let b = instance(&store, "b", &now);
    assert!(a.acquire("r1", TTL).await.unwrap());
    // A long run: five lease periods. The background renewal keeps the lease alive.
    for _ in 0..10 {
        tokio::time::sleep(TTL / 2).await;
        assert!(
            !b.acquire("r1", TTL).await.unwrap(),
            "renewed leases are not taken over"
        );
    }
    let lease = &store.snapshot()[0];
    assert_eq!(lease.owner.as_deref(), Some("a"));
    assert!(
        lease.expires_at > now() + chrono::TimeDelta::seconds(30),
        "{lease:?}"
    );
    assert_eq!(
        lease.acquired_at,
        start(),
        "renewal keeps the acquisition time"
    );
}

#[tokio::test(start_paused = true)]
async fn a_killed_instance_loses_its_rules_within_one_lease_period() {
    let store = Arc::new(MemoryLeaseBackend::new());
    let now = tokio_now();
    let a = instance(&store, "a", &now);
    let b = instance(&store, "b", &now);
    for rule in ["r1", "r2", "r3"] {
        assert!(a.acquire(rule, TTL).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(25)).await;
    let killed_at = now();
    drop(a); // no release, no more renewals: what a crash looks like from outside
    let mut taken = Vec::new();
    while taken.len() < 3 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        for rule in ["r1", "r2", "r3"] {
            if !taken.contains(&rule) && b.acquire(rule, TTL).await.unwrap() {
                taken.push(rule);
            }
        }
    }
    let waited = now() - killed_at;
    assert!(
        waited <= chrono::TimeDelta::from_std(TTL).unwrap(),
        "took over after {waited}"
    );
    assert!(
        waited >= chrono::TimeDelta::seconds(20),
        "not before the last renewal expired: {waited}"
    );
    assert!(
        store
            .snapshot()
            .iter()
            .all(|l| l.owner.as_deref() == Some("b"))
    );
}

#[tokio::test(start_paused = true)]
async fn racing_instances_never_both_win() {
    let store = Arc::new(MemoryLeaseBackend::new());
    let now = tokio_now();
    let managers: Vec<_> = (0..8)
        .map(|i| Arc::new(instance(&store, &format!("i{i}"), &now)))
        .collect();
    let mut tasks = Vec::new();
    for m in &managers {
        let m = m.clone();
        tasks.push(tokio::spawn(
            async move { m.acquire("r1", TTL).await.unwrap() },
        ));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

// --- the Elasticsearch requests ------------------------------------------------------------

const LEASE_PATH: &str = "/rule-runner-state/_doc/lease%3Ar1";

fn backend(server: &MockServer) -> Arc<EsLeaseBackend> {
    let connection = ConnectionConfig {
        urls: vec![server.uri().parse().unwrap()],
        ..ConnectionConfig::default()
    };
    let retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    Arc::new(EsLeaseBackend::new(
        EsClient::connect(&connection, retry).unwrap(),
        "rule-runner-state",
    ))
}

fn fixed_now() -> Now {
    Arc::new(start)
}

fn found(owner: Option<&str>, expires_at: &str) -> Value {
    json!({
        "_index": "rule-runner-state", "_id": "lease:r1", "_version": 6,
        "_seq_no": 41, "_primary_term": 3, "found": true,
        "_source": {"lease": {
            "rule_id": "r1", "owner": owner, "expires_at": expires_at,
            "acquired_at": "2025-01-01T11:00:00.000Z", "renewed_at": "2025-01-01T11:58:00.000Z"
        }}
    })
}

fn not_found() -> ResponseTemplate {
    ResponseTemplate::new(404).set_body_json(json!({
        "_index": "rule-runner-state", "_id": "lease:r1", "found": false
    }))
}

fn conflict() -> ResponseTemplate {
    ResponseTemplate::new(409).set_body_json(json!({
        "error": {"type": "version_conflict_engine_exception",
                  "reason": "[lease:r1]: version conflict, required seqNo [41], primary term [3]. current document has seqNo [42] and primary term [3]"},
        "status": 409
    }))
}

async fn requests(server: &MockServer) -> Vec<(String, String, Option<Value>)> {
    server
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            let body = serde_json::from_slice(&r.body).ok();
            (
                r.method.to_string(),
                format!("{}?{}", r.url.path(), r.url.query().unwrap_or("")),
                body,
            )
        })
        .collect()
}

#[tokio::test]
async fn first_claim_creates_the_lease_with_op_type_create() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LEASE_PATH))
        .respond_with(not_found())
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(LEASE_PATH))
        .and(query_param("op_type", "create"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "_index": "rule-runner-state", "_id": "lease:r1", "_version": 1, "result": "created",
            "_seq_no": 0, "_primary_term": 1
        })))
        .expect(1)
        .mount(&server)
        .await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    assert!(leases.acquire("r1", TTL).await.unwrap());
    let sent = requests(&server).await;
    assert_eq!(sent[0].0, "GET");
    assert_eq!(sent[1].1, format!("{LEASE_PATH}?op_type=create"));
    assert_eq!(
        sent[1].2.as_ref().unwrap(),
        &json!({"lease": {
            "rule_id": "r1", "owner": "host-1",
            "expires_at": "2025-01-01T12:01:00.000Z",
            "acquired_at": "2025-01-01T12:00:00.000Z",
            "renewed_at": "2025-01-01T12:00:00.000Z"
        }})
    );
}

#[tokio::test]
async fn losing_the_create_race_is_a_refusal_not_an_error() {
    let server = MockServer::start().await;
    on(&server, "GET", not_found()).await;
    on(&server, "PUT", conflict()).await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    assert!(!leases.acquire("r1", TTL).await.unwrap());
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_if_seq_no_and_if_primary_term() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(LEASE_PATH))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(found(Some("host-2"), "2025-01-01T11:59:00.000Z")),
        )
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path(LEASE_PATH))
        .and(query_param("if_seq_no", "41"))
        .and(query_param("if_primary_term", "3"))
        .and(body_partial_json(
            json!({"lease": {"owner": "host-1", "acquired_at": "2025-01-01T12:00:00.000Z"}}),
        ))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"result": "updated", "_seq_no": 42, "_primary_term": 3})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    assert!(leases.acquire("r1", TTL).await.unwrap());
}

#[tokio::test]
async fn a_conflicting_update_means_another_instance_won() {
    let server = MockServer::start().await;
    on(
        &server,
        "GET",
        ResponseTemplate::new(200).set_body_json(found(None, "2025-01-01T11:59:00.000Z")),
    )
    .await;
    on_times(&server, "PUT", conflict(), 1).await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    assert!(!leases.acquire("r1", TTL).await.unwrap());
}

#[tokio::test]
async fn a_live_lease_of_another_instance_is_left_alone() {
    let server = MockServer::start().await;
    on(
        &server,
        "GET",
        ResponseTemplate::new(200).set_body_json(found(Some("host-2"), "2025-01-01T12:00:30.000Z")),
    )
    .await;
    on_times(&server, "PUT", ResponseTemplate::new(500), 0).await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    assert!(!leases.acquire("r1", TTL).await.unwrap());
}

#[tokio::test]
async fn release_clears_the_owner_conditionally() {
    let server = MockServer::start().await;
    on(
        &server,
        "GET",
        ResponseTemplate::new(200).set_body_json(found(Some("host-1"), "2025-01-01T12:00:30.000Z")),
    )
    .await;
    Mock::given(method("PUT"))
        .and(query_param("if_seq_no", "41"))
        .and(body_partial_json(
            json!({"lease": {"owner": null, "expires_at": "2025-01-01T12:00:00.000Z"}}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"result": "updated"})))
        .expect(1)
        .mount(&server)
        .await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    leases.release("r1").await.unwrap();
}

#[tokio::test]
async fn errors_are_reported_with_what_to_do() {
    let server = MockServer::start().await;
    on(&server, "GET", ResponseTemplate::new(403).set_body_json(json!({
            "error": {"type": "security_exception", "reason": "action [indices:data/read/get] is unauthorized for user [rule_runner]"},
            "status": 403
        }))).await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    let err = leases.acquire("r1", TTL).await.unwrap_err();
    assert!(matches!(err, PortError::Permanent(_)));
    let text = err.to_string();
    assert!(
        text.contains("read the lease of rule r1") && text.contains("unauthorized"),
        "{text}"
    );

    let server = MockServer::start().await;
    on(
        &server,
        "GET",
        ResponseTemplate::new(200).set_body_json(
            json!({"_seq_no": 1, "_primary_term": 1, "_source": {"something": "else"}}),
        ),
    )
    .await;
    let leases = LeaseManager::new(backend(&server), "host-1", fixed_now());
    let err = leases.acquire("r1", TTL).await.unwrap_err().to_string();
    assert!(err.contains("delete it"), "{err}");
}
