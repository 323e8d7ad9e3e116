//! No secret reaches a log at any level: this test binary captures every log line of the
//! process (node, HTTP server and client, TLS, at TRACE) while it runs every auth flow —
//! password and PIN logins, wrong PINs up to a lockout, refresh, refresh reuse, manager
//! overrides, logout, forged tokens, HTTPS — then searches the capture for each password,
//! PIN, access token, refresh token, override token, argon2 hash and the signing key.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use caja_tests::harness::{PASSWORD, pin_of, spawn_node_with};
use reqwest::Method;
use serde_json::{Value, json};

/// Everything logged, shared with the subscriber.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether `needle` occurs in `hay` as a whole word (not inside a longer run of letters
/// and digits), so a PIN does not "match" inside an unrelated long number.
fn contains_word(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_appears_in_logs_at_any_level() {
    let capture = Capture::default();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_writer(capture.clone())
        .with_ansi(false)
        .init();

    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        pin_of("admin").into(),
        pin_of("manager").into(),
        pin_of("cashier").into(),
    ];
    let wrong_pin = "13579246";
    secrets.push(wrong_pin.into());

    for tls in [false, true] {
        let node = spawn_node_with(|c| {
            c.lan_tls.enabled = tls;
            c.auth.pin_attempts = 3;
        })
        .await;
        node.seed_catalog().await;
        node.add_user("mgr", &["manager"]).await;
        node.add_user("ana", &["cashier"]).await;
        secrets.push(node.bearer.clone().unwrap());
        let key = std::fs::read(node.dir.path().join("jwt.key")).unwrap();
        secrets.push(hex::encode(&key));
        secrets.push(base64::engine::general_purpose::STANDARD.encode(&key));
        let hashes = node
            .node
            .db()
            .read(|c| -> Result<Vec<String>, anyhow::Error> {
                let mut s = c.prepare("SELECT pin_hash FROM staff")?;
                Ok(s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        secrets.extend(hashes);

        // Password and PIN logins, wrong PINs to a lockout, refresh and its reuse.
        let login = node
            .send(
                node.as_user(None)
                    .req(Method::POST, "/v1/auth/login")
                    .json(&json!({"username": "mgr", "password": PASSWORD})),
            )
            .await
            .ok(200)
            .clone();
        for t in ["access_token", "refresh_token"] {
            secrets.push(login[t].as_str().unwrap().into());
        }
        for _ in 0..3 {
            node.pin_login("T1", "ana", wrong_pin).await;
        }
        node.pin_login("T1", "ana", pin_of("cashier"))
            .await
            .problem(423, "login-locked");
        let ana = node
            .pin_login("T2", "ana", pin_of("cashier"))
            .await
            .ok(200)
            .clone();
        let ana_token = ana["access_token"].as_str().unwrap().to_string();
        secrets.push(ana_token.clone());
        secrets.push(ana["refresh_token"].as_str().unwrap().into());
        let refresh = |t: Value| {
            node.send(
                node.as_user(None)
                    .req(Method::POST, "/v1/auth/refresh")
                    .json(&json!({"refresh_token": t})),
            )
        };
        let rotated = refresh(login["refresh_token"].clone()).await.ok(200).clone();
        secrets.push(rotated["access_token"].as_str().unwrap().into());
        secrets.push(rotated["refresh_token"].as_str().unwrap().into());
        refresh(login["refresh_token"].clone())
            .await
            .problem(401, "refresh-reused");

        // A manager override of a refund without receipt.
        let c = node.as_user(Some(ana_token.clone()));
        let granted = c
            .post(
                "/v1/auth/override",
                &json!({"username": "mgr", "pin": pin_of("manager"), "permission": "refund.no_receipt"}),
            )
            .await
            .ok(200)
            .clone();
        let ot = granted["override_token"].as_str().unwrap().to_string();
        secrets.push(ot.clone());
        c.post(
            "/v1/auth/override",
            &json!({"username": "mgr", "pin": wrong_pin, "permission": "refund.no_receipt"}),
        )
        .await
        .problem(401, "login-failed");
        let body = json!({"lines": [{"sku": "TEA-1", "quantity": 1}]});
        c.send(
            c.req(Method::POST, "/v1/refunds")
                .header("caja-override", &ot)
                .json(&body),
        )
        .await
        .ok(201);
        c.send(
            c.req(Method::POST, "/v1/refunds")
                .header("caja-override", &ot)
                .json(&body),
        )
        .await
        .problem(403, "override-refused");
        c.get("/v1/audit").await.problem(403, "forbidden");
        // Forged and revoked tokens.
        node.as_user(Some(format!("{ana_token}x")))
            .get("/v1/products")
            .await
            .problem(401, "token-malformed");
        c.send(c.req(Method::POST, "/v1/auth/logout")).await;
        c.get("/v1/products").await.problem(401, "token-revoked");
    }

    let logs = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    // The capture works and is rich (requests, logins, the lockout, TLS).
    for expected in [
        "login lockout",
        "refresh token reused",
        "permission denied",
        "/v1/auth/pin",
    ] {
        assert!(
            logs.contains(expected),
            "the capture lacks {expected:?}; {} bytes",
            logs.len()
        );
    }
    assert!(logs.len() > 20_000, "only {} bytes captured", logs.len());
    for s in &secrets {
        assert!(
            !contains_word(&logs, s),
            "a secret ({} characters) appears in the logs",
            s.len()
        );
    }
    assert!(!logs.contains("$argon2id$"), "an argon2 hash appears in the logs");
    assert!(
        !logs.to_ascii_lowercase().contains("bearer ey"),
        "an Authorization header appears in the logs"
    );
}
