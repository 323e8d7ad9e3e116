//! Card store-and-forward at head office (issue #8): stored-offline card tenders pushed in
//! a node's ledger are forwarded to the provider simulator exactly once, across restarts;
//! declines and expiries reach the reconciliation queue; the new admin routes refuse bad
//! input.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use caja_payments::sim::{SimConfig, SimServer};
use caja_shared::auth::secrets::Secret;
use caja_shared::docs::{self, DocId};
use caja_shared::facts::{Fact, FactBody, Tender, TenderKind};
use caja_shared::ids::TenderId;
use caja_shared::payments::{CardMode, CardPayment, PaymentOutcome};
use caja_sync_server::db::CaseStatus;
use caja_sync_server::{Actor, AuditQuery, NewUser, ProviderOptions, ServerOptions};
use caja_tests::harness::api::send;
use caja_tests::harness::quic::*;
use caja_tests::harness::{Api, HqOptions, PASSWORD, TestHq, eventually, spawn_hq_with};
use chrono::{Duration as Days, Utc};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

/// Sales of `store` today, each paid `card[i]` minor units by a stored-offline card
/// with `token` (the rest in cash), forward deadline `forward_by_secs` from now.
fn card_sales(store: &str, amounts: &[i64], token: &str, forward_by_secs: i64) -> Vec<Fact> {
    let today = Utc::now().date_naive();
    let mut facts = sales(store, today, amounts.len());
    for (f, amount) in facts.iter_mut().zip(amounts) {
        let FactBody::Sale(s) = &mut f.body else {
            panic!("sample is a sale")
        };
        s.tenders = vec![
            Tender {
                kind: TenderKind::Cash,
                label: None,
                amount_minor: s.total_minor - amount,
                id: None,
                card: None,
                reference: None,
            },
            Tender {
                kind: TenderKind::Card,
                label: None,
                amount_minor: *amount,
                id: Some(TenderId::new()),
                reference: None,
                card: Some(CardPayment {
                    token: token.into(),
                    mode: CardMode::StoredOffline {
                        forward_by: Utc::now() + Days::seconds(forward_by_secs),
                    },
                }),
            },
        ];
        s.change_minor = 0;
    }
    facts
}

fn host_with(facts: &[Fact]) -> MemHost {
    let mut host = MemHost::default();
    let (doc, am) = ledger_with(facts);
    host.docs.insert(doc, am);
    host
}

fn options(provider: Option<&SimServer>) -> ServerOptions {
    let mut o = ServerOptions {
        forward_poll: Duration::from_millis(200),
        forward_retry: Duration::from_secs(1),
        ..ServerOptions::default()
    };
    if let Some(sim) = provider {
        let mut p = ProviderOptions::new(sim.base_url(), "sk_test_caja");
        p.timeout = Duration::from_secs(2);
        p.resilience.min_delay = Duration::from_millis(10);
        p.resilience.max_delay = Duration::from_millis(50);
        p.resilience.max_retries = 1;
        p.resilience.breaker_failures = 3;
        p.resilience.breaker_cooldown = Duration::from_millis(500);
        p.resilience.breaker_max_cooldown = Duration::from_secs(1);
        o.payment_provider = Some(p);
    }
    o
}

async fn report(hq: &TestHq) -> Value {
    serde_json::to_value(hq.server.offline_payments_report(None, None, None).await.unwrap()).unwrap()
}

async fn wait_state(hq: &TestHq, state: &str, n: i64) {
    let server = hq.server.clone();
    let state = state.to_string();
    eventually(&format!("{n} {state}"), WAIT, || {
        let (server, state) = (server.clone(), state.clone());
        async move {
            let r = serde_json::to_value(server.offline_payments_report(None, None, None).await.unwrap())
                .unwrap();
            r["stores"][0][&state]["count"].as_i64() == Some(n)
        }
    })
    .await;
}

/// Payment facts the node has received in `doc`.
fn payment_outcomes(node: &RawNode, doc: &DocId) -> Vec<PaymentOutcome> {
    let host = node.host.lock().unwrap();
    host.docs
        .get(doc)
        .map(|am| {
            docs::ledger_facts(am)
                .into_iter()
                .filter_map(Result::ok)
                .filter_map(|f| match f.body {
                    FactBody::Payment(p) => Some(p.outcome),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn stored_tenders_are_captured_exactly_once_across_restarts() {
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    let mut hq = spawn_hq_with(HqOptions {
        server: options(Some(&sim)),
        ..HqOptions::default()
    })
    .await;
    let me = enroll(&hq, "a").await;
    // Half of them answer slowly, so the restarts land during the drain.
    let mut facts = card_sales("a", &[101, 102, 103, 104], "tok_slow", 86_400);
    facts.extend(card_sales("a", &[105, 106, 107, 108], "tok_approve", 86_400));
    let node = RawNode::start(&hq, &me, host_with(&facts)).await;
    let server = hq.server.clone();
    eventually("8 tenders queued", WAIT, || {
        let server = server.clone();
        async move {
            let r = serde_json::to_value(server.offline_payments_report(None, None, None).await.unwrap())
                .unwrap();
            r["stores"][0]["stored"]["count"].as_i64() == Some(8)
        }
    })
    .await;
    drop(server); // it holds the data directory
    node.close().await;
    hq.restart().await;
    // A new card sale arrives during the drain (yesterday's ledger, another document).
    let mut late = card_sales("a", &[109], "tok_approve", 86_400);
    late[0].business_date = Utc::now().date_naive().pred_opt().unwrap();
    let node = RawNode::start(&hq, &me, host_with(&late)).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    hq.restart().await;
    node.close().await;
    wait_state(&hq, "captured", 9).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let captures = sim.simulator().captures();
    assert_eq!(captures.len(), 9, "{captures:?}");
    let mut amounts: Vec<i64> = captures.iter().map(|c| c.amount).collect();
    amounts.sort_unstable();
    assert_eq!(amounts, (101..=109).collect::<Vec<i64>>());
    let mut intents: Vec<&str> = captures.iter().map(|c| c.intent.as_str()).collect();
    intents.dedup();
    assert_eq!(intents.len(), 9);
    let r = report(&hq).await;
    assert_eq!(
        r["stores"][0]["captured"],
        json!({"count": 9, "amount_minor": 945})
    );
    assert_eq!(r["stores"][0]["stored"]["amount_minor"], json!(945));
}

#[tokio::test]
async fn a_decline_goes_to_the_queue_and_back_to_the_store() {
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    let hq = spawn_hq_with(HqOptions {
        server: options(Some(&sim)),
        ..HqOptions::default()
    })
    .await;
    let me = enroll(&hq, "a").await;
    let facts = card_sales("a", &[250], "tok_decline", 86_400);
    let ledger = DocId::Ledger {
        store: "a".parse().unwrap(),
        date: Utc::now().date_naive(),
    };
    let node = RawNode::start(&hq, &me, host_with(&facts)).await;
    wait_state(&hq, "declined", 1).await;
    // The outcome facts replicate back to the connected node.
    eventually("the Declined fact reaches the store", WAIT, || {
        let got = payment_outcomes(&node, &ledger);
        async move { got.contains(&PaymentOutcome::Declined) && got.contains(&PaymentOutcome::Forwarded) }
    })
    .await;
    assert!(sim.simulator().captures().is_empty());
    // A chain-wide admin works the queue through the API.
    hq.server
        .create_user(
            &Actor::local(),
            NewUser {
                username: "boss".into(),
                display_name: "Boss".into(),
                password: Some(Secret::new(PASSWORD)),
                pin: None,
                roles: vec!["admin".into()],
                stores: vec![],
            },
        )
        .await
        .unwrap();
    let api = Api::new(&hq.http_url()).unwrap();
    api.login_password("boss", PASSWORD).await.unwrap();
    let list = send(api.request(Method::GET, "/v1/reconciliation?status=open")).await;
    let list = list.ok(200).as_array().unwrap().clone();
    assert_eq!(list.len(), 1, "{list:?}");
    let case = &list[0];
    assert_eq!(case["kind"], "payment_declined");
    assert_eq!(case["sale"], json!(facts[0].id.to_string()));
    assert_eq!(case["amount_minor"], 250);
    let id = case["id"].as_str().unwrap().to_string();
    // The sale stays.
    assert!(hq.server.fact(&facts[0].id.to_string()).await.unwrap().is_some());

    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{id}/assign"))
            .json(&json!({"to": "boss"})),
    )
    .await;
    assert_eq!(r.ok(200)["status"], "assigned");
    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{id}/resolve"))
            .json(&json!({"resolution": "collected", "reason": "customer paid cash next day"})),
    )
    .await;
    assert_eq!(r.ok(200)["status"], "resolved");
    assert_eq!(r.ok(200)["resolved_by"], "boss");
    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{id}/resolve"))
            .json(&json!({"resolution": "collected", "reason": "again"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 409, "{}", r.text);
    let audit = hq
        .server
        .audit(AuditQuery {
            kind: Some("reconciliation".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    let kinds: Vec<&str> = audit.iter().map(|e| e.kind.as_str()).collect();
    for k in [
        "reconciliation.opened",
        "reconciliation.assigned",
        "reconciliation.resolved",
    ] {
        assert!(kinds.contains(&k), "{kinds:?}");
    }
    let c = hq.server.reconciliation_case(&id, None).await.unwrap();
    assert_eq!(c.status, CaseStatus::Resolved);

    // Bad input on every new route.
    let unknown = "0190b2a0-0000-7000-8000-000000000000";
    let r = send(api.request(Method::GET, &format!("/v1/reconciliation/{unknown}"))).await;
    assert_eq!(r.status.as_u16(), 404);
    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{unknown}/assign"))
            .json(&json!({"to": "boss"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 404);
    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{id}/resolve"))
            .json(&json!({"resolution": "lost", "reason": "x"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    let r = send(
        api.request(Method::POST, &format!("/v1/reconciliation/{unknown}/resolve"))
            .json(&json!({"resolution": "other", "reason": "x".repeat(501)})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    let r = send(api.request(Method::GET, "/v1/reconciliation?status=weird")).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    let r = send(api.request(Method::GET, "/v1/reconciliation?limit=0")).await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    let r = send(api.request(Method::GET, "/v1/reports/offline-payments?from=nope")).await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    let r = send(api.request(Method::GET, "/v1/reports/offline-payments")).await;
    assert_eq!(r.ok(200)["stores"][0]["declined"]["count"], 1);
    let r = send(
        api.request(Method::PUT, "/v1/stores/a/payment-settings")
            .json(&json!({"floor_limit_minor": -5})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 422, "{}", r.text);
    assert!(r.text.contains("floor_limit_minor"), "{}", r.text);
    let r = send(
        api.request(Method::PUT, "/v1/stores/a/payment-settings")
            .json(&json!({"bogus": 1})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 400, "{}", r.text);
    assert!(r.text.contains("bogus"), "{}", r.text);
    let r = send(api.request(Method::GET, "/v1/stores/nope/payment-settings")).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    let r = send(
        api.request(Method::PUT, "/v1/stores/a/payment-settings")
            .json(&json!({"floor_limit_minor": 5000, "forward_deadline_secs": 3600})),
    )
    .await;
    assert_eq!(r.ok(200)["floor_limit_minor"], 5000);
    let r = send(api.request(Method::GET, "/v1/stores/a/payment-settings")).await;
    assert_eq!(r.ok(200)["forward_deadline_secs"], 3600);

    // A store-scoped admin of another store sees none of store a's cases.
    hq.create_store("b", "Bee").await.unwrap();
    let b = Api::new(&hq.http_url()).unwrap();
    b.login_password("admin-b", PASSWORD).await.unwrap();
    let r = send(b.request(Method::GET, &format!("/v1/reconciliation/{id}"))).await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    let r = send(b.request(Method::GET, "/v1/reconciliation")).await;
    assert_eq!(r.ok(200).as_array().unwrap().len(), 0);
    let r = send(
        b.request(Method::POST, &format!("/v1/reconciliation/{id}/assign"))
            .json(&json!({"to": "admin-b"})),
    )
    .await;
    assert_eq!(r.status.as_u16(), 404, "{}", r.text);
    let r = send(b.request(Method::GET, "/v1/stores/a/payment-settings")).await;
    assert_eq!(r.status.as_u16(), 403, "{}", r.text);
    node.close().await;
}

#[tokio::test]
async fn provider_outage_opens_the_breaker_then_forwarding_resumes() {
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    sim.simulator().set_outage(Duration::from_secs(3));
    let hq = spawn_hq_with(HqOptions {
        server: options(Some(&sim)),
        ..HqOptions::default()
    })
    .await;
    let me = enroll(&hq, "a").await;
    let facts = card_sales("a", &[300, 301, 302], "tok_approve", 86_400);
    let node = RawNode::start(&hq, &me, host_with(&facts)).await;
    let server = hq.server.clone();
    eventually("3 tenders queued", WAIT, || {
        let server = server.clone();
        async move {
            let r = serde_json::to_value(server.offline_payments_report(None, None, None).await.unwrap())
                .unwrap();
            r["stores"][0]["stored"]["count"].as_i64() == Some(3)
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = report(&hq).await;
    assert_eq!(r["stores"][0]["captured"]["count"], 0, "{r}");
    assert!(sim.simulator().stats().outage_failures > 0);
    wait_state(&hq, "captured", 3).await;
    assert_eq!(sim.simulator().captures().len(), 3);
    node.close().await;
}

#[tokio::test]
async fn without_a_provider_stored_tenders_expire_into_the_queue() {
    let hq = spawn_hq_with(HqOptions {
        server: options(None),
        ..HqOptions::default()
    })
    .await;
    let me = enroll(&hq, "a").await;
    let facts = card_sales("a", &[400], "tok_approve", 1);
    let node = RawNode::start(&hq, &me, host_with(&facts)).await;
    wait_state(&hq, "expired", 1).await;
    let cases = hq
        .server
        .reconciliation_cases(caja_sync_server::db::CaseFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(cases[0].kind, "payment_expired");
    assert_eq!(cases[0].sale.as_deref(), Some(facts[0].id.to_string().as_str()));
    node.close().await;
}
