//! QUIC integration tests: a real server on loopback and minimal nodes speaking the wire
//! protocol with `caja_sync_server::client` and `wire`.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use caja_shared::docs::{DocId, Product};
use caja_shared::ids::NodeId;
use caja_shared::protocol::{ErrorCode, Frame, PROTOCOL_VERSION};
use caja_sync_server::{SalesReport, wire};
use chrono::NaiveDate;
use common::*;
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(5);

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
}

fn hello(store: &str, token: &str) -> Frame {
    Frame::Hello {
        node: NodeId::new(),
        store: store.parse().unwrap(),
        token: token.into(),
        docs: vec![],
    }
}

/// A node of store `a` with 2 sales on day 1 and 1 on day 2.
fn node_a_docs() -> MemHost {
    let mut host = MemHost::default();
    for (d, n) in [(1, 2), (2, 1)] {
        let (doc, am) = ledger_with(&sales("a", day(d), n));
        host.docs.insert(doc, am);
    }
    host
}

fn assert_three_sales(report: &SalesReport) {
    let json = serde_json::to_value(report).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "currency": "GBP",
            "stores": {"a": {
                "2024-03-01": {"sales": 2, "refunds": 0, "gross": "30.60", "refunded": "0.00", "net": "30.60",
                               "tenders": {"cash": "30.60"}},
                "2024-03-02": {"sales": 1, "refunds": 0, "gross": "15.30", "refunded": "0.00", "net": "15.30",
                               "tenders": {"cash": "15.30"}},
                "tenders": {"cash": "45.90"}
            }},
            "totals": {"sales": 3, "refunds": 0, "gross": "45.90", "refunded": "0.00", "net": "45.90",
                       "tenders": {"cash": "45.90"}}
        })
    );
}

async fn wait_for_facts(run: &Running, n: u64) {
    let server = run.server.clone();
    eventually("facts projected", WAIT, || {
        let server = server.clone();
        async move { server.fact_count().await.unwrap() == n }
    })
    .await;
}

#[tokio::test]
async fn wrong_token_is_refused_with_unauthorized() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    let ep = endpoint(&run.server.ca_fingerprint());
    for (store, token) in [("a", "wrong"), ("nosuch", "wrong")] {
        let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
        wire::write_frame(&mut send, &hello(store, token)).await.unwrap();
        let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::Unauthorized);
        assert_eq!(close_code(&conn).await, Some(ErrorCode::Unauthorized as u64));
    }
    run.stop().await;
}

#[tokio::test]
async fn ledgers_reach_the_report_and_catalog_changes_reach_the_node() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let token = run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    let node = Node::start(&run, "a", &token, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    assert_three_sales(&run.server.sales_report(None, None).await.unwrap());
    let only_day2 = run.server.sales_report(Some(day(2)), None).await.unwrap();
    assert_eq!(only_day2.totals.sales, 1);

    // The server's catalog (genesis) reached the node on connect.
    let heads = run.server.catalog_heads().await.unwrap();
    eventually("node has the catalog", WAIT, || async {
        node.catalog_heads() == heads
    })
    .await;

    // A price change at head office is pushed to the connected node.
    let product = Product {
        sku: "85123A".into(),
        name: "WHITE HANGING HEART T-LIGHT HOLDER".into(),
        unit_price: Decimal::new(295, 2),
        tax_rate: Decimal::ZERO,
        barcode: None,
        category: None,
        stock_tracked: true,
    };
    run.server.put_products(vec![product.clone()]).await.unwrap();
    let heads = run.server.catalog_heads().await.unwrap();
    eventually("node has the new catalog", WAIT, || async {
        node.catalog_heads() == heads
    })
    .await;
    assert_eq!(node.product("85123A"), Some(product));

    let stores = run.server.stores().await.unwrap();
    assert!(stores[0].connected);
    assert!(stores[0].row.last_contact.is_some());
    assert_eq!(stores[0].row.facts, 3);
    assert!(!node.task.is_finished());
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn other_stores_ledger_is_forbidden_and_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let token = run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    run.server.create_store("b".parse().unwrap(), "B").await.unwrap();
    let ep = endpoint(&run.server.ca_fingerprint());
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    wire::write_frame(&mut send, &hello("a", &token)).await.unwrap();
    let b_ledger = DocId::Ledger {
        store: "b".parse().unwrap(),
        date: day(1),
    };
    let (_, am) = ledger_with(&sales("b", day(1), 1));
    let mut state = automerge::sync::State::new();
    let message = automerge::sync::SyncDoc::generate_sync_message(&am, &mut state).unwrap();
    let sync = Frame::Sync {
        doc: b_ledger,
        message: message.encode(),
    };
    wire::write_frame(&mut send, &sync).await.unwrap();
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Forbidden);
    assert_eq!(close_code(&conn).await, Some(ErrorCode::Forbidden as u64));
    assert_eq!(run.server.fact_count().await.unwrap(), 0);

    // Another node of store a is still served.
    let node = Node::start(&run, "a", &token, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    node.close().await;
    run.stop().await;
}

/// Writes a raw frame body with a length prefix.
async fn write_raw(send: &mut quinn::SendStream, body: &[u8]) {
    send.write_all(&(body.len() as u32).to_be_bytes()).await.unwrap();
    send.write_all(body).await.unwrap();
}

#[tokio::test]
async fn garbage_frames_get_error_frames_and_no_panic() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let token = run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    let ep = endpoint(&run.server.ca_fingerprint());

    // Protocol version 99 instead of Hello.
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    let mut body = caja_shared::protocol::encode_frame(&hello("a", &token)).unwrap()[4..].to_vec();
    body[..2].copy_from_slice(&99u16.to_be_bytes());
    write_raw(&mut send, &body).await;
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::UnsupportedVersion);
    assert_eq!(
        close_code(&conn).await,
        Some(ErrorCode::UnsupportedVersion as u64)
    );

    // A well-versioned body that is not a frame, after a good Hello.
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    wire::write_frame(&mut send, &hello("a", &token)).await.unwrap();
    let mut body = PROTOCOL_VERSION.to_be_bytes().to_vec();
    body.extend_from_slice(&[0xff; 14]);
    write_raw(&mut send, &body).await;
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Malformed);
    assert_eq!(close_code(&conn).await, Some(ErrorCode::Malformed as u64));

    // Random bytes with a valid length prefix.
    for seed in 0..4u8 {
        let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
        let body: Vec<u8> = (0..64u8)
            .map(|i| i.wrapping_mul(37).wrapping_add(seed.wrapping_mul(91)) ^ 0x5a)
            .collect();
        write_raw(&mut send, &body).await;
        let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
            unreachable!()
        };
        assert!(
            matches!(code, ErrorCode::Malformed | ErrorCode::UnsupportedVersion),
            "{code:?}"
        );
        assert!(close_code(&conn).await.is_some());
    }

    // A length prefix beyond the limit.
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    send.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Malformed);
    assert!(close_code(&conn).await.is_some());

    // The server still serves a good node.
    let node = Node::start(&run, "a", &token, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn wrong_ca_fingerprint_fails_the_handshake() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let ep = endpoint(&"00".repeat(32));
    let err = ep
        .connect(run.quic, caja_sync_server::client::SERVER_NAME)
        .unwrap()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pinned CA"), "{err}");
    // The right pin still works against the same server.
    let ep = endpoint(&run.server.ca_fingerprint().to_uppercase());
    let (conn, _, _) = connect(&ep, run.quic).await;
    conn.close(0u32.into(), b"");
    run.stop().await;
}

#[tokio::test]
async fn restart_keeps_report_and_ca() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let token = run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    let fingerprint = run.server.ca_fingerprint();
    let node = Node::start(&run, "a", &token, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    let before = run.server.sales_report(None, None).await.unwrap();
    let heads = run.server.catalog_heads().await.unwrap();
    run.stop().await;
    let _ = node.task.await;

    let run = Running::start(dir.path()).await;
    assert_eq!(run.server.ca_fingerprint(), fingerprint);
    assert_eq!(run.server.sales_report(None, None).await.unwrap(), before);
    assert_three_sales(&before);
    assert_eq!(run.server.fact_count().await.unwrap(), 3);
    assert_eq!(run.server.catalog_heads().await.unwrap(), heads);
    // The same token still works after the restart.
    let node = Node::start(&run, "a", &token, node_a_docs()).await;
    wait_for_facts(&run, 6).await;
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn a_catalog_edit_from_one_node_reaches_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let run = Running::start(dir.path()).await;
    let token_a = run.server.create_store("a".parse().unwrap(), "A").await.unwrap();
    let token_b = run.server.create_store("b".parse().unwrap(), "B").await.unwrap();
    let node_b = Node::start(&run, "b", &token_b, MemHost::default()).await;
    let genesis = run.server.catalog_heads().await.unwrap();
    eventually("node b has the catalog", WAIT, || async {
        node_b.catalog_heads() == genesis
    })
    .await;

    // Node a edits its own replica of the catalog before connecting.
    let mut catalog = caja_shared::docs::catalog_genesis().unwrap();
    let product = Product {
        sku: "LOCAL".into(),
        name: "local item".into(),
        unit_price: Decimal::new(100, 2),
        tax_rate: Decimal::ZERO,
        barcode: None,
        category: None,
        stock_tracked: false,
    };
    caja_shared::docs::put_products(&mut catalog, std::slice::from_ref(&product)).unwrap();
    let mut host = MemHost::default();
    host.docs.insert(DocId::Catalog, catalog);
    let node_a = Node::start(&run, "a", &token_a, host).await;

    let server = run.server.clone();
    eventually("server has the node's product", WAIT, || {
        let server = server.clone();
        async move { server.product("LOCAL").await.unwrap().is_some() }
    })
    .await;
    eventually("node b got the product", WAIT, || async {
        node_b.product("LOCAL").is_some()
    })
    .await;
    assert_eq!(node_b.product("LOCAL"), Some(product));
    node_a.close().await;
    node_b.close().await;
    run.stop().await;

    // Each session saved its sync states when it ended.
    let conn = rusqlite::Connection::open(dir.path().join(caja_sync_server::db::DB_FILE)).unwrap();
    let peers: i64 = conn
        .query_row("SELECT COUNT(DISTINCT peer) FROM sync_states", [], |r| r.get(0))
        .unwrap();
    assert_eq!(peers, 2);
}
