//! Card payments at the node (issue #8): tokenized card tenders stored offline under the
//! store's rules (floor limit, node and store caps, acceptance window, kinds never taken
//! offline), their derived state moved by `Payment` facts (a terminal state never goes
//! back), the offline figures of `/v1/sync/status`, and other-tender labels.

#![allow(clippy::unwrap_used)]

use caja_node::config::{PaymentProviderSettings, ProviderKey};
use caja_payments::BreakerState;
use caja_payments::sim::{SimConfig, SimServer};
use caja_shared::facts::{FACT_SCHEMA_VERSION, Fact, FactBody};
use caja_shared::hlc::HlcTimestamp;
use caja_shared::ids::{FactId, NodeId};
use caja_shared::payments::{PaymentEvent, PaymentOutcome, TenderId};
use caja_tests::harness::{Client, TestNode, pin_of, spawn_node, spawn_node_with};
use chrono::{Duration, Utc};
use reqwest::Method;
use serde_json::{Value, json};

/// A sale of `qty` TEA-1 (3.00 each with tax) paid by one tokenized card.
fn card_sale(qty: u32, kind: &str) -> Value {
    let amount = format!("{}.00", qty * 3);
    json!({"lines": [{"sku": "TEA-1", "quantity": qty}],
           "tenders": [{"kind": "card", "amount": amount, "card_token": "tok_approve", "card_kind": kind}]})
}

/// A node with the catalog, a cashier logged in on T1 and a manager.
async fn node_with_cashier() -> (TestNode, String) {
    let node = spawn_node().await;
    node.seed_catalog().await;
    node.add_user("ana", &["cashier"]).await;
    node.add_user("mgr", &["manager"]).await;
    let till = node.pin_login("T1", "ana", pin_of("cashier")).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    (node, till)
}

/// Appends a fact to the node's ledger as if it had arrived by sync (head office's events,
/// another node's stored payments).
async fn append(node: &TestNode, fact: Fact) {
    node.node
        .db()
        .write(move |ctx| -> anyhow::Result<()> {
            caja_node::store::facts::record(ctx, &fact)?;
            Ok(())
        })
        .await
        .unwrap();
}

/// A payment fact of `node_id` recorded at `at`.
fn payment_fact(store: &TestNode, node_id: NodeId, at: chrono::DateTime<Utc>, e: PaymentEvent) -> Fact {
    Fact {
        v: FACT_SCHEMA_VERSION,
        id: FactId::new(),
        store: store.node.identity().store.clone(),
        node: node_id,
        terminal: "HQ".into(),
        user: None,
        user_name: None,
        authorized_by: None,
        hlc: HlcTimestamp {
            wall_ms: at.timestamp_millis() as u64,
            counter: 0,
        },
        occurred_at: at,
        business_date: at.date_naive(),
        body: FactBody::Payment(e),
    }
}

fn event(tender: TenderId, sale: FactId, outcome: PaymentOutcome, amount: i64) -> PaymentEvent {
    PaymentEvent {
        tender,
        sale,
        receipt_no: None,
        outcome,
        amount_minor: amount,
        currency: "GBP".parse().unwrap(),
        provider_ref: Some("pi_hq_1".into()),
        idempotency_key: None,
        code: (outcome == PaymentOutcome::Declined).then(|| "card_declined".into()),
        message: None,
    }
}

async fn offline_cards(node: &TestNode) -> Value {
    node.get("/v1/sync/status").await.ok(200)["offline_cards"].clone()
}

#[tokio::test]
async fn a_tokenized_card_is_stored_offline_and_survives_a_restart() {
    let (node, till) = node_with_cashier().await;
    let c = node.as_user(Some(till));
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 10}],
        "tenders": [{"kind": "cash", "amount": "10.00"},
                    {"kind": "card", "amount": "15.00", "card_token": "tok_approve"},
                    {"kind": "card", "amount": "5.00"}]});
    let sale = c.post("/v1/sales", &body).await.ok(201).clone();
    // Cash and a card from a stand-alone terminal look as before; the tokenized card
    // has its id and a stored-offline payment.
    assert_eq!(sale["tenders"][0], json!({"kind": "cash", "amount": "10.00"}));
    assert_eq!(sale["tenders"][2], json!({"kind": "card", "amount": "5.00"}));
    let card = &sale["tenders"][1]["card"];
    assert_eq!(card["mode"], "stored_offline");
    assert_eq!(card["state"], "stored_offline");
    assert!(card["forward_by"].as_str().is_some(), "{card}");
    assert!(sale["tenders"][1]["id"].as_str().is_some(), "{sale}");
    let id = sale["id"].as_str().unwrap().to_string();
    let got = node.get(&format!("/v1/sales/{id}")).await.ok(200).clone();
    assert_eq!(got["tenders"], sale["tenders"]);
    let oc = offline_cards(&node).await;
    assert_eq!(oc["count"], 1, "{oc}");
    assert_eq!(oc["amount_minor"], 1500);
    assert_eq!(oc["node_cap_left_minor"], 200_000 - 1500);
    assert_eq!(oc["store_cap_left_minor"], 500_000 - 1500);
    let left = oc["window_secs_left"].as_i64().unwrap();
    assert!((86_000..=86_400).contains(&left), "{oc}");
    // The stored-offline event is a fact of its own in the ledger.
    let node = node.restart().await;
    let oc = offline_cards(&node).await;
    assert_eq!(oc["count"], 1, "{oc}");
    assert_eq!(oc["amount_minor"], 1500);
    let got = node.get(&format!("/v1/sales/{id}")).await.ok(200).clone();
    assert_eq!(got["tenders"][1]["card"]["state"], "stored_offline");
}

#[tokio::test]
async fn offline_refusals_have_their_own_problem_types() {
    let (node, till) = node_with_cashier().await;
    let c = node.as_user(Some(till));
    for kind in ["gift_card", "keyed", "cashback"] {
        let d = c
            .post("/v1/sales", &card_sale(2, kind))
            .await
            .problem(422, "offline-card-not-allowed");
        assert!(d.contains("never taken offline"), "{d}");
    }
    // 40 × 3.00 = 120.00 is over the 100.00 floor limit.
    let d = c
        .post("/v1/sales", &card_sale(40, "credit"))
        .await
        .problem(422, "offline-floor-limit");
    assert!(d.contains("100.00"), "{d}");
    // Nothing was stored.
    assert_eq!(offline_cards(&node).await["count"], 0);
    // Another node of the store holds 4,990.00 stored offline: the store cap is reached.
    let other = NodeId::new();
    let e = event(
        TenderId::new(),
        FactId::new(),
        PaymentOutcome::StoredOffline,
        499_000,
    );
    append(&node, payment_fact(&node, other, Utc::now(), e)).await;
    let d = c
        .post("/v1/sales", &card_sale(10, "debit"))
        .await
        .problem(422, "offline-cap-reached");
    assert!(d.contains("store cap"), "{d}");
    assert_eq!(offline_cards(&node).await["store_cap_left_minor"], 1000);
}

#[tokio::test]
async fn the_node_cap_and_the_window() {
    let (node, _) = node_with_cashier().await;
    // The admin of the test node may take cards offline above the floor limit.
    let d = node
        .post("/v1/sales", &card_sale(667, "credit"))
        .await
        .problem(422, "offline-cap-reached");
    assert!(d.contains("node cap"), "{d}");
    // A payment this node stored 25 hours ago and never settled closes the 24 h window.
    let me = node.node.identity().node_id;
    let e = event(TenderId::new(), FactId::new(), PaymentOutcome::StoredOffline, 100);
    append(
        &node,
        payment_fact(&node, me, Utc::now() - Duration::hours(25), e),
    )
    .await;
    let oc = offline_cards(&node).await;
    assert_eq!(oc["window_secs_left"], 0, "{oc}");
    node.post("/v1/sales", &card_sale(1, "credit"))
        .await
        .problem(422, "offline-window-closed");
    // Cash still sells.
    node.post(
        "/v1/sales",
        &json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "tenders": [{"kind": "cash", "amount": "3.00"}]}),
    )
    .await
    .ok(201);
}

#[tokio::test]
async fn a_manager_override_lets_a_card_over_the_floor_limit_and_is_audited() {
    let (node, till) = node_with_cashier().await;
    let c: Client<'_> = node.as_user(Some(till));
    let granted = c
        .post(
            "/v1/auth/override",
            &json!({"username": "mgr", "pin": pin_of("manager"), "permission": "payment.offline_override"}),
        )
        .await
        .ok(200)
        .clone();
    let token = granted["override_token"].as_str().unwrap().to_string();
    let r = c
        .send(
            c.req(Method::POST, "/v1/sales")
                .header("caja-override", &token)
                .json(&card_sale(40, "credit")),
        )
        .await;
    let sale = r.ok(201).clone();
    assert_eq!(sale["authorized_by"]["username"], "mgr");
    assert_eq!(sale["authorized_by"]["permission"], "payment.offline_override");
    assert_eq!(sale["tenders"][0]["card"]["state"], "stored_offline");
    let audit = node.get("/v1/audit").await.ok(200).clone();
    let text = audit.to_string();
    assert!(text.contains("payment.offline_override"), "{text}");
}

#[tokio::test]
async fn head_office_events_move_the_state_and_never_back() {
    let (node, till) = node_with_cashier().await;
    let c = node.as_user(Some(till));
    let sale = c
        .post("/v1/sales", &card_sale(10, "credit"))
        .await
        .ok(201)
        .clone();
    let sale_id: FactId = sale["id"].as_str().unwrap().parse().unwrap();
    let tender: TenderId = serde_json::from_value(sale["tenders"][0]["id"].clone()).unwrap();
    let hq = NodeId::new();
    for outcome in [PaymentOutcome::Forwarded, PaymentOutcome::Captured] {
        let e = event(tender, sale_id, outcome, 3000);
        append(&node, payment_fact(&node, hq, Utc::now(), e)).await;
    }
    let path = format!("/v1/sales/{sale_id}");
    let card = node.get(&path).await.ok(200)["tenders"][0]["card"].clone();
    assert_eq!(card["state"], "captured", "{card}");
    assert_eq!(card["provider_ref"], "pi_hq_1");
    assert_eq!(offline_cards(&node).await["count"], 0);
    // A late decline (or a replayed stored-offline event) never moves a capture back.
    for outcome in [PaymentOutcome::Declined, PaymentOutcome::StoredOffline] {
        let e = event(tender, sale_id, outcome, 3000);
        append(&node, payment_fact(&node, hq, Utc::now(), e)).await;
    }
    assert_eq!(
        node.get(&path).await.ok(200)["tenders"][0]["card"]["state"],
        "captured"
    );
}

#[tokio::test]
async fn tender_labels_and_references_are_bounded() {
    let (node, _) = node_with_cashier().await;
    let long = "x".repeat(100_000);
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}],
        "tenders": [{"kind": "other", "label": long, "amount": "3.00"}]});
    let d = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(d.starts_with("tenders[0].label"), "{d}");
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}],
        "tenders": [{"kind": "other", "label": "Voucher", "reference": "r".repeat(65), "amount": "3.00"}]});
    let d = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(d.starts_with("tenders[0].reference"), "{d}");
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}],
        "tenders": [{"kind": "card", "card_token": "4242424242424242", "amount": "3.00"}]});
    let d = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(d.starts_with("tenders[0].card_token"), "{d}");
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}],
        "tenders": [{"kind": "other", "label": "Voucher", "reference": "V-123", "amount": "3.00"}]});
    let sale = node.post("/v1/sales", &body).await.ok(201).clone();
    assert_eq!(
        sale["tenders"][0],
        json!({"kind": "other", "label": "Voucher", "amount": "3.00", "reference": "V-123"})
    );
}

/// A node whose card provider is a simulator on loopback.
async fn node_with_provider() -> (TestNode, SimServer) {
    let sim = SimServer::start(SimConfig::default()).await.unwrap();
    let url = sim.base_url();
    let node = spawn_node_with(move |c| {
        c.payments = PaymentProviderSettings {
            url: Some(url),
            key: Some(ProviderKey("sk_test_caja".into())),
        };
    })
    .await;
    node.seed_catalog().await;
    (node, sim)
}

#[tokio::test]
async fn an_approved_card_is_captured_once_before_the_sale() {
    let (node, sim) = node_with_provider().await;
    let r = node
        .send(
            node.req(Method::POST, "/v1/sales")
                .header("idempotency-key", "sale-1")
                .json(&card_sale(10, "credit")),
        )
        .await;
    let sale = r.ok(201).clone();
    let card = &sale["tenders"][0]["card"];
    assert_eq!(card["mode"], "online", "{sale}");
    assert_eq!(card["state"], "captured");
    let intent = card["provider_ref"].as_str().unwrap().to_string();
    // A retry with the same key answers the stored sale and charges nothing more.
    let again = node
        .send(
            node.req(Method::POST, "/v1/sales")
                .header("idempotency-key", "sale-1")
                .json(&card_sale(10, "credit")),
        )
        .await;
    assert_eq!(again.ok(201)["id"], sale["id"]);
    let captures = sim.simulator().captures();
    assert_eq!(captures.len(), 1, "{captures:?}");
    assert_eq!(captures[0].intent, intent);
    assert_eq!(captures[0].amount, 3000);
    let id = sale["id"].as_str().unwrap();
    let got = node.get(&format!("/v1/sales/{id}")).await.ok(200).clone();
    assert_eq!(got["tenders"][0]["card"]["state"], "captured");
    assert_eq!(offline_cards(&node).await["count"], 0);
}

#[tokio::test]
async fn a_declined_card_records_no_sale() {
    let (node, sim) = node_with_provider().await;
    let before = node.get("/v1/sync/status").await.ok(200)["pending_facts"].clone();
    let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}],
        "tenders": [{"kind": "card", "amount": "3.00", "card_token": "tok_decline"}]});
    let d = node.post("/v1/sales", &body).await.problem(422, "card-declined");
    assert!(!d.is_empty());
    assert_eq!(node.get("/v1/sync/status").await.ok(200)["pending_facts"], before);
    assert!(sim.simulator().captures().is_empty());
}

#[tokio::test]
async fn a_failing_provider_opens_the_breaker_and_cards_are_stored_offline() {
    let (node, sim) = node_with_provider().await;
    sim.simulator().set_outage(std::time::Duration::from_secs(600));
    for _ in 0..2 {
        let sale = node
            .post("/v1/sales", &card_sale(10, "credit"))
            .await
            .ok(201)
            .clone();
        assert_eq!(sale["tenders"][0]["card"]["mode"], "stored_offline", "{sale}");
    }
    let breaker = node.node.payment_provider().unwrap().breaker();
    assert_eq!(breaker.state, BreakerState::Open, "{breaker:?}");
    // While open, a card falls back at once, still under the offline rules.
    node.post("/v1/sales", &card_sale(2, "gift_card"))
        .await
        .problem(422, "offline-card-not-allowed");
    assert_eq!(offline_cards(&node).await["count"], 2);
    assert!(sim.simulator().captures().is_empty());
}
