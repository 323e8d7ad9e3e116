//! QUIC integration tests: a real server on loopback, nodes enrolled with real CSRs and
//! certificates, speaking the wire protocol over mutual TLS with
//! `caja_shared::net::client` and `wire`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use caja_shared::docs::{DocId, Product};
use caja_shared::ids::NodeId;
use caja_shared::net::client::{self, EnrollError};
use caja_shared::net::wire;
use caja_shared::protocol::{ErrorCode, Frame, PROTOCOL_VERSION};
use caja_sync_server::{AuditQuery, SalesReport, ServerOptions};
use caja_tests::harness::hq::{staff, stored_store_doc};
use caja_tests::harness::quic::*;
use caja_tests::harness::{HqOptions, TestHq, eventually, spawn_hq_in, spawn_hq_with};
use chrono::NaiveDate;
use rust_decimal::Decimal;

const WAIT: Duration = Duration::from_secs(5);

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 3, d).unwrap()
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

async fn wait_for_facts(run: &TestHq, n: u64) {
    let server = run.server.clone();
    eventually("facts projected", WAIT, || {
        let server = server.clone();
        async move { server.fact_count().await.unwrap() == n }
    })
    .await;
}

async fn audit_kinds(run: &TestHq) -> Vec<(String, serde_json::Value)> {
    run.server
        .audit(AuditQuery::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.detail))
        .collect()
}

/// Sends one frame on a fresh connection and returns the Error frame and close code.
async fn refused(ep: &quinn::Endpoint, run: &TestHq, frame: &Frame) -> (ErrorCode, String, Option<u64>) {
    let (conn, mut send, mut recv) = connect(ep, run.quic).await;
    wire::write_frame(&mut send, frame).await.unwrap();
    let Frame::Error { code, message } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    (code, message, close_code(&conn).await)
}

#[tokio::test]
async fn an_enrolled_node_syncs_ledgers_and_gets_catalog_changes() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let nodes = run.server.nodes().await.unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!((nodes[0].node, nodes[0].store.as_str()), (me.node, "a"));
    assert_eq!(nodes[0].cert_not_after.timestamp(), me.not_after);
    let in_90_days = chrono::Utc::now().timestamp() + 90 * 86_400;
    assert!(
        (me.not_after - in_90_days).abs() < 60,
        "default validity is 90 days"
    );

    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    assert_three_sales(&run.server.sales_report(None, None).await.unwrap());
    let heads = run.server.catalog_heads().await.unwrap();
    eventually("node has the catalog", WAIT, || async {
        node.catalog_heads() == heads
    })
    .await;
    // The store's staff document reached the node too.
    let store_doc = DocId::Store {
        store: "a".parse().unwrap(),
    };
    eventually("node has its store document", WAIT, || async {
        !node.doc_heads(&store_doc).is_empty()
    })
    .await;

    let product = Product {
        sku: "85123A".into(),
        name: "WHITE HANGING HEART T-LIGHT HOLDER".into(),
        unit_price: Decimal::new(295, 2),
        tax_rate: Decimal::ZERO,
        barcode: None,
        category: None,
        stock_tracked: true,
    };
    run.server
        .put_products(&caja_sync_server::Actor::local(), vec![product.clone()])
        .await
        .unwrap();
    let heads = run.server.catalog_heads().await.unwrap();
    eventually("node has the new catalog", WAIT, || async {
        node.catalog_heads() == heads
    })
    .await;
    assert_eq!(node.product("85123A"), Some(product));
    assert!(run.server.nodes().await.unwrap()[0].connected);
    let stores = run.server.stores().await.unwrap();
    assert!(stores[0].connected && stores[0].row.last_contact.is_some());
    let kinds = audit_kinds(&run).await;
    assert!(kinds.iter().any(|(k, _)| k == "node.enrolled"), "{kinds:?}");
    assert!(kinds.iter().any(|(k, _)| k == "enrollment_code.issued"));
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn enrollment_refuses_expired_reused_and_unknown_codes_and_a_wrong_pin() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let a: caja_shared::ids::StoreCode = "a".parse().unwrap();
    run.server
        .create_store(&caja_sync_server::Actor::local(), a.clone(), "A")
        .await
        .unwrap();
    let server = run.quic.to_string();
    let fp = run.server.ca_fingerprint();
    let try_code = |code: caja_shared::auth::secrets::Secret, fp: String| {
        let server = server.clone();
        async move {
            let csr = client::node_csr().unwrap().csr_der;
            client::enroll(&server, &fp, code, csr, None).await
        }
    };
    let short = run
        .server
        .enrollment_code(&caja_sync_server::Actor::local(), &a, Duration::from_secs(1))
        .await
        .unwrap();
    let good = run
        .server
        .enrollment_code(&caja_sync_server::Actor::local(), &a, Duration::from_secs(3600))
        .await
        .unwrap();
    let secrets: Vec<String> = [&short, &good]
        .iter()
        .map(|c| c.code.expose().to_string())
        .collect();

    // Wrong pin: the handshake fails before the code is sent, with a clear reason.
    let err = try_code(good.code.clone(), "00".repeat(32)).await.unwrap_err();
    match &err {
        EnrollError::WrongCa { .. } => assert!(
            err.to_string().contains("did not match") && err.to_string().contains("Nothing was sent"),
            "{err}"
        ),
        other => panic!("{other:?}"),
    }

    tokio::time::sleep(Duration::from_millis(2100)).await;
    for (code, expected) in [
        (short.code.clone(), "enrollment code expired"),
        (
            caja_shared::auth::secrets::Secret::new("AAAAA-BBBBB-CCCCC-DDDDD"),
            "unknown enrollment code",
        ),
    ] {
        match try_code(code, fp.clone()).await.unwrap_err() {
            EnrollError::Refused(m) => assert_eq!(m, expected),
            other => panic!("{other:?}"),
        }
    }
    // Lower case and spaces are the same code (typed at a till).
    let typed = good.code.expose().to_lowercase().replace('-', " ");
    let first = try_code(caja_shared::auth::secrets::Secret::new(typed), fp.clone())
        .await
        .unwrap();
    assert_eq!(first.store, a);
    match try_code(good.code.clone(), fp.clone()).await.unwrap_err() {
        EnrollError::Refused(m) => assert_eq!(m, "enrollment code already used"),
        other => panic!("{other:?}"),
    }
    assert_eq!(run.server.nodes().await.unwrap().len(), 1);

    let kinds = audit_kinds(&run).await;
    let refusals: Vec<&str> = kinds
        .iter()
        .filter(|(k, _)| k == "enrollment.refused")
        .map(|(_, d)| d["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        refusals,
        [
            "enrollment code already used",
            "unknown enrollment code",
            "enrollment code expired"
        ]
    );
    let all = serde_json::to_string(&kinds).unwrap();
    for s in &secrets {
        assert!(
            !all.contains(s.as_str()),
            "an enrollment code reached the audit log"
        );
    }
    run.stop().await;
}

#[tokio::test]
async fn enrollment_is_rate_limited_per_address() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        enrollments_per_minute: 2,
        ..ServerOptions::default()
    };
    let mut run = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(dir.path())
    })
    .await;
    let mut answers = Vec::new();
    for _ in 0..3 {
        let csr = client::node_csr().unwrap().csr_der;
        let err = client::enroll(
            &run.quic.to_string(),
            &run.server.ca_fingerprint(),
            "nope".into(),
            csr,
            None,
        )
        .await
        .unwrap_err();
        answers.push(err.to_string());
    }
    assert!(answers[0].contains("unknown enrollment code"), "{answers:?}");
    assert!(answers[1].contains("unknown enrollment code"), "{answers:?}");
    assert!(answers[2].contains("too many enrollment attempts"), "{answers:?}");
    run.stop().await;
}

#[tokio::test]
async fn enrollment_issues_a_lan_certificate_for_valid_names_only() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let a: caja_shared::ids::StoreCode = "a".parse().unwrap();
    run.server
        .create_store(&caja_sync_server::Actor::local(), a.clone(), "A")
        .await
        .unwrap();
    let names = vec!["till.shop.local".to_string(), "192.168.1.20".to_string()];
    let enroll_with = |names: Vec<String>| {
        let run = &run;
        let a = a.clone();
        async move {
            let code = run
                .server
                .enrollment_code(&caja_sync_server::Actor::local(), &a, Duration::from_secs(60))
                .await
                .unwrap();
            let lan = client::lan_csr(&["x.local".to_string()]).unwrap();
            client::enroll(
                &run.quic.to_string(),
                &run.server.ca_fingerprint(),
                code.code,
                client::node_csr().unwrap().csr_der,
                Some(caja_shared::protocol::LanRequest {
                    csr: lan.csr_der,
                    names,
                }),
            )
            .await
        }
    };
    let e = enroll_with(names).await.unwrap();
    let lan = e.lan_certificate.unwrap();
    let (_, parsed) = x509_parser::parse_x509_certificate(&lan).unwrap();
    let sans = format!("{:?}", parsed.subject_alternative_name().unwrap().unwrap().value);
    assert!(parsed.extended_key_usage().unwrap().unwrap().value.server_auth);
    assert!(
        sans.contains("till.shop.local") && sans.contains("[192, 168, 1, 20]"),
        "{sans}"
    );
    assert!(
        !sans.contains("x.local"),
        "names come from the request, not the CSR"
    );
    match enroll_with(vec!["*.evil".into()]).await.unwrap_err() {
        EnrollError::Refused(m) => assert!(m.contains("wildcards"), "{m}"),
        other => panic!("{other:?}"),
    }
    // A bad CSR does not burn a code: nothing but the first node enrolled.
    assert_eq!(run.server.nodes().await.unwrap().len(), 1);
    run.stop().await;
}

#[tokio::test]
async fn connections_without_a_matching_certificate_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let _b = enroll(&run, "b").await;
    let fp = run.server.ca_fingerprint();

    // No client certificate: only Enroll is allowed.
    let anon = endpoint(&fp, None);
    let (code, message, close) = refused(&anon, &run, &me.hello()).await;
    assert_eq!(
        (code, close),
        (ErrorCode::Unauthorized, Some(ErrorCode::Unauthorized as u64))
    );
    assert!(message.contains("no client certificate"), "{message}");

    // A Hello claiming another node, or another store, than the certificate's.
    let ep = me.endpoint(&run);
    for frame in [
        Frame::Hello {
            node: NodeId::new(),
            store: me.store.clone(),
            docs: vec![],
        },
        Frame::Hello {
            node: me.node,
            store: "b".parse().unwrap(),
            docs: vec![],
        },
    ] {
        let (code, message, close) = refused(&ep, &run, &frame).await;
        assert_eq!(
            (code, close),
            (ErrorCode::Unauthorized, Some(ErrorCode::Unauthorized as u64))
        );
        assert!(
            message.contains("this certificate was issued to node"),
            "{message}"
        );
    }

    // A client certificate from another CA fails the TLS handshake.
    let other_dir = tempfile::tempdir().unwrap();
    let mut other = spawn_hq_in(other_dir.path()).await;
    let stranger = enroll(&other, "a").await;
    let ep = endpoint(&fp, Some(&stranger.identity()));
    let outcome = match ep.connect(run.quic, client::SERVER_NAME).unwrap().await {
        Err(e) => e,
        // The client may finish its half of the handshake before the server refuses it.
        Ok(conn) => match conn.open_bi().await {
            Ok((mut send, mut recv)) => {
                let _ = wire::write_frame(&mut send, &stranger.hello()).await;
                assert!(
                    !matches!(wire::read_frame(&mut recv).await, Ok(Some(_))),
                    "the server must not answer"
                );
                conn.closed().await
            }
            Err(e) => e,
        },
    };
    assert!(
        matches!(
            outcome,
            quinn::ConnectionError::TransportError(_) | quinn::ConnectionError::ConnectionClosed(_)
        ),
        "{outcome:?}"
    );
    other.stop().await;

    let kinds = audit_kinds(&run).await;
    let refused_count = kinds.iter().filter(|(k, _)| k == "connection.refused").count();
    assert_eq!(refused_count, 3, "{kinds:?}");
    // The right node is still served.
    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn other_stores_ledger_is_forbidden_logged_and_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    run.server
        .create_store(&caja_sync_server::Actor::local(), "b".parse().unwrap(), "B")
        .await
        .unwrap();
    let ep = me.endpoint(&run);
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    wire::write_frame(&mut send, &me.hello()).await.unwrap();
    let b_ledger = DocId::Ledger {
        store: "b".parse().unwrap(),
        date: day(1),
    };
    let (_, am) = ledger_with(&sales("b", day(1), 1));
    let mut state = automerge::sync::State::new();
    let message = automerge::sync::SyncDoc::generate_sync_message(&am, &mut state).unwrap();
    let sync = Frame::Sync {
        doc: b_ledger.clone(),
        message: message.encode(),
    };
    wire::write_frame(&mut send, &sync).await.unwrap();
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Forbidden);
    assert_eq!(close_code(&conn).await, Some(ErrorCode::Forbidden as u64));
    assert_eq!(run.server.fact_count().await.unwrap(), 0);
    let kinds = audit_kinds(&run).await;
    let entry = kinds
        .iter()
        .find(|(k, _)| k == "sync.forbidden")
        .expect("audited");
    assert_eq!(entry.1["doc"], b_ledger.to_string());
    run.stop().await;
}

#[tokio::test]
async fn a_node_cannot_change_its_store_document() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let doc = DocId::Store {
        store: "a".parse().unwrap(),
    };
    let before = stored_store_doc(dir.path(), "a").unwrap().get_heads();
    // The node's replica of its store document, with a user it made up itself.
    let mut host = MemHost::default();
    let mut replica = caja_shared::docs::store::genesis().unwrap();
    let forged = caja_shared::docs::store::StaffUser {
        id: "u-forged".into(),
        username: "mallory".into(),
        display_name: "Mallory".into(),
        roles: vec!["admin".into()],
        password_hash: None,
        pin_hash: None,
        disabled: false,
        sessions_valid_after: 0,
        updated_at: chrono::Utc::now(),
    };
    caja_shared::docs::store::put_users(&mut replica, &[forged], &[]).unwrap();
    host.docs.insert(doc.clone(), replica);
    let node = RawNode::start(&run, &me, host).await;
    // The node's session ends with an error: the Error frame, or a stopped stream if the
    // server's close overtakes the node's next write.
    let outcome = tokio::time::timeout(WAIT, node.task).await.unwrap().unwrap();
    assert!(outcome.is_err());
    assert_eq!(close_code(&node.conn).await, Some(ErrorCode::Forbidden as u64));
    assert_eq!(stored_store_doc(dir.path(), "a").unwrap().get_heads(), before);
    assert!(staff(dir.path(), "a").is_empty(), "nothing stored");
    let kinds = audit_kinds(&run).await;
    let entry = kinds
        .iter()
        .find(|(k, _)| k == "sync.forbidden")
        .expect("audited");
    assert_eq!(entry.1["doc"], doc.to_string());
    assert!(entry.1["reason"].as_str().unwrap().contains("head office"));
    run.stop().await;
}

#[tokio::test]
async fn revocation_disconnects_at_once_and_refuses_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    let started = Instant::now();
    run.server
        .revoke_node(&caja_sync_server::Actor::local(), me.node)
        .await
        .unwrap();
    assert_eq!(close_code(&node.conn).await, Some(ErrorCode::Unauthorized as u64));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    match node.conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c)) => assert_eq!(&c.reason[..], b"node revoked"),
        other => panic!("{other:?}"),
    }
    // Reconnecting with the same certificate is refused.
    let (code, message, close) = refused(&me.endpoint(&run), &run, &me.hello()).await;
    assert_eq!(
        (code, message.as_str(), close),
        (ErrorCode::Unauthorized, "node revoked", Some(2))
    );
    assert!(run.server.nodes().await.unwrap()[0].revoked_at.is_some());
    let kinds = audit_kinds(&run).await;
    assert!(kinds.iter().any(|(k, _)| k == "node.revoked"));
    assert!(
        kinds
            .iter()
            .any(|(k, d)| k == "connection.refused" && d["reason"] == "node revoked")
    );
    run.stop().await;
}

#[tokio::test]
async fn the_cli_revokes_a_node_of_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let node = RawNode::start(&run, &me, MemHost::default()).await;
    let server = run.server.clone();
    eventually("connected", WAIT, || {
        let server = server.clone();
        async move { server.nodes().await.unwrap()[0].connected }
    })
    .await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_caja-sync"))
        .args(["node", "revoke", &me.node.to_string(), "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let started = Instant::now();
    assert_eq!(close_code(&node.conn).await, Some(ErrorCode::Unauthorized as u64));
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let (code, _, _) = refused(&me.endpoint(&run), &run, &me.hello()).await;
    assert_eq!(code, ErrorCode::Unauthorized);
    run.stop().await;
}

#[tokio::test]
async fn renewal_on_a_live_session_keeps_both_certificates_valid() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let (conn, mut send, mut recv) = connect(&me.endpoint(&run), run.quic).await;
    wire::write_frame(&mut send, &me.hello()).await.unwrap();
    let fresh = client::node_csr().unwrap();
    wire::write_frame(
        &mut send,
        &Frame::Renew {
            csr: fresh.csr_der.clone(),
        },
    )
    .await
    .unwrap();
    let renewed = loop {
        match tokio::time::timeout(WAIT, wire::read_frame(&mut recv))
            .await
            .unwrap()
            .unwrap()
        {
            Some(Frame::Renewed {
                certificate,
                not_after,
            }) => break (certificate, not_after),
            Some(Frame::Error { message, .. }) => panic!("{message}"),
            Some(_) => continue,
            None => panic!("stream ended"),
        }
    };
    assert_ne!(renewed.0, me.certificate);
    assert!(renewed.1 >= me.not_after);
    // A second Renew within the minute is refused and closes.
    wire::write_frame(&mut send, &Frame::Renew { csr: fresh.csr_der })
        .await
        .unwrap();
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::RateLimited);
    assert_eq!(close_code(&conn).await, Some(ErrorCode::RateLimited as u64));

    // The new certificate connects, and so does the old one until it expires.
    let new = Enrolled {
        node: me.node,
        store: me.store.clone(),
        key_pem: fresh.key_pem,
        certificate: renewed.0,
        not_after: renewed.1,
    };
    for who in [&new, &me] {
        let node = RawNode::start(&run, who, node_a_docs()).await;
        eventually("synced", WAIT, || {
            let server = run.server.clone();
            async move { server.fact_count().await.unwrap() == 3 }
        })
        .await;
        assert!(!node.task.is_finished());
        node.close().await;
    }
    let kinds = audit_kinds(&run).await;
    assert!(kinds.iter().any(|(k, _)| k == "node.renewed"));
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
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let ep = me.endpoint(&run);

    // Protocol version 99 instead of Hello.
    let (conn, mut send, mut recv) = connect(&ep, run.quic).await;
    let mut body = caja_shared::protocol::encode_frame(&me.hello()).unwrap()[4..].to_vec();
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
    wire::write_frame(&mut send, &me.hello()).await.unwrap();
    let mut body = PROTOCOL_VERSION.to_be_bytes().to_vec();
    body.extend_from_slice(&[0xff; 14]);
    write_raw(&mut send, &body).await;
    let Frame::Error { code, .. } = read_until_error(&mut recv).await else {
        unreachable!()
    };
    assert_eq!(code, ErrorCode::Malformed);
    assert_eq!(close_code(&conn).await, Some(ErrorCode::Malformed as u64));

    // Random bytes with a valid length prefix, with and without a certificate.
    let anon = endpoint(&run.server.ca_fingerprint(), None);
    for seed in 0..4u8 {
        let ep = if seed % 2 == 0 { &ep } else { &anon };
        let (conn, mut send, mut recv) = connect(ep, run.quic).await;
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

    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn restart_keeps_report_ca_and_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let me = enroll(&run, "a").await;
    let fingerprint = run.server.ca_fingerprint();
    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 3).await;
    let before = run.server.sales_report(None, None).await.unwrap();
    let heads = run.server.catalog_heads().await.unwrap();
    run.stop().await;
    let _ = node.task.await;

    let mut run = spawn_hq_in(dir.path()).await;
    assert_eq!(run.server.ca_fingerprint(), fingerprint);
    assert_eq!(run.server.sales_report(None, None).await.unwrap(), before);
    assert_three_sales(&before);
    assert_eq!(run.server.catalog_heads().await.unwrap(), heads);
    // The same certificate still works after the restart.
    let node = RawNode::start(&run, &me, node_a_docs()).await;
    wait_for_facts(&run, 6).await;
    node.close().await;
    run.stop().await;
}

#[tokio::test]
async fn a_catalog_edit_from_one_node_reaches_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let mut run = spawn_hq_in(dir.path()).await;
    let a = enroll(&run, "a").await;
    let b = enroll(&run, "b").await;
    let node_b = RawNode::start(&run, &b, MemHost::default()).await;
    let genesis = run.server.catalog_heads().await.unwrap();
    eventually("node b has the catalog", WAIT, || async {
        node_b.catalog_heads() == genesis
    })
    .await;

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
    let node_a = RawNode::start(&run, &a, host).await;
    eventually("node b got the product", WAIT, || async {
        node_b.product("LOCAL").is_some()
    })
    .await;
    assert_eq!(node_b.product("LOCAL"), Some(product));
    // Head office's audit says which node changed which products (only node a did).
    let changed: Vec<_> = run
        .server
        .audit(AuditQuery {
            kind: Some("catalog".into()),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert_eq!(changed[0].kind, "catalog.changed_by_node");
    assert_eq!(changed[0].node.as_deref(), Some(a.node.to_string().as_str()));
    assert_eq!(changed[0].store.as_deref(), Some("a"));
    assert_eq!(
        changed[0].detail,
        serde_json::json!({"products": 1, "skus": ["LOCAL"]})
    );
    node_a.close().await;
    node_b.close().await;
    run.stop().await;
}

/// Opens a QUIC connection without a client certificate from a fresh UDP socket (so no
/// address-validation token carries over), or the error.
async fn raw_connect(run: &TestHq) -> Result<(quinn::Endpoint, quinn::Connection), quinn::ConnectionError> {
    let config = client::client_config(&run.server.ca_fingerprint(), None).unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(run.quic, client::SERVER_NAME).unwrap().await?;
    Ok((endpoint, conn))
}

#[tokio::test]
async fn live_connections_per_address_are_bounded_and_freed() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        connections_per_ip: 2,
        ..ServerOptions::default()
    };
    let mut run = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(dir.path())
    })
    .await;
    let (_e1, first) = raw_connect(&run).await.unwrap();
    let (_e2, _second) = raw_connect(&run).await.unwrap();
    let err = raw_connect(&run).await.unwrap_err();
    assert!(
        matches!(err, quinn::ConnectionError::ConnectionClosed(_)),
        "{err:?}"
    );
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    // The server still serves, and a closed connection frees its place.
    first.close(0u32.into(), b"done");
    let run_ref = &run;
    eventually("a place is free again", WAIT, || async move {
        raw_connect(run_ref).await.is_ok()
    })
    .await;
    run.stop().await;
}

#[tokio::test]
async fn handshakes_per_address_are_bounded_and_forged_floods_only_get_retries() {
    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        handshakes_per_minute: 3,
        ..ServerOptions::default()
    };
    let mut run = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(dir.path())
    })
    .await;
    let mut outcomes = Vec::new();
    for _ in 0..9 {
        outcomes.push(match raw_connect(&run).await {
            Ok((endpoint, conn)) => {
                conn.close(0u32.into(), b"done");
                endpoint.wait_idle().await;
                true
            }
            Err(_) => false,
        });
    }
    // 3 unvalidated handshakes, then Retries: the clients answer them, so their validated
    // attempts have their own 3; then refusals.
    assert_eq!(
        outcomes,
        [true, true, true, true, true, true, false, false, false]
    );
    run.stop().await;
}
