//! No secret reaches the logs: every flow that handles one (user creation with a password
//! and a PIN, login, refresh, logout, enrollment codes, enrollment with a private key,
//! refused logins up to the rate limit) runs over real HTTP and QUIC while a TRACE-level
//! subscriber captures every log line of this process, which is then searched.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caja_shared::auth::secrets::Secret;
use caja_shared::net::client;
use caja_sync_server::{NewUser, ServerOptions};
use caja_tests::harness::quic::*;
use caja_tests::harness::{HqOptions, spawn_hq_with};
use serde_json::{Value, json};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
    type Writer = Buffer;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Whether `needle` occurs in `hay` as a whole word (not inside a longer run of letters,
/// digits, '-' or '_').
fn contains_word(hay: &str, needle: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

async fn post(
    http: &reqwest::Client,
    url: String,
    token: Option<&str>,
    body: Value,
) -> (u16, Value, Option<String>) {
    let mut req = http.post(url).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let retry = res
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let v = res.json::<Value>().await.unwrap_or(Value::Null);
    (status, v, retry)
}

#[tokio::test]
async fn no_secret_reaches_the_logs_and_logins_are_rate_limited() {
    let buffer = Buffer::default();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(buffer.clone())
        .with_ansi(false)
        .try_init()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();

    let dir = tempfile::tempdir().unwrap();
    let options = ServerOptions {
        logins_per_minute: 6,
        ..ServerOptions::default()
    };
    let mut run = spawn_hq_with(HqOptions {
        server: options,
        ..HqOptions::in_dir(dir.path())
    })
    .await;
    let base = format!("http://{}", run.http);
    let http = reqwest::Client::new();
    let mut secrets: Vec<String> = Vec::new();

    let root_password = "root password 123";
    run.server
        .create_user(
            &caja_sync_server::Actor::local(),
            NewUser {
                username: "root".into(),
                display_name: "Root".into(),
                password: Some(Secret::new(root_password)),
                pin: None,
                roles: vec!["admin".into()],
                stores: vec![],
            },
        )
        .await
        .unwrap();
    secrets.push(root_password.into());
    let (s, login, _) = post(
        &http,
        format!("{base}/v1/auth/login"),
        None,
        json!({"username": "root", "password": root_password}),
    )
    .await;
    assert_eq!(s, 200, "{login}");
    let admin = login["access_token"].as_str().unwrap().to_string();
    secrets.push(admin.clone());
    secrets.push(login["refresh_token"].as_str().unwrap().to_string());

    // A store, a user with a password and a PIN, an enrollment code: all over HTTP.
    let (s, v, _) = post(
        &http,
        format!("{base}/v1/stores"),
        Some(&admin),
        json!({"code": "a", "name": "A"}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (ana_password, ana_pin) = ("ana's long password", "80417263");
    secrets.extend([ana_password.to_string(), ana_pin.to_string()]);
    let (s, v, _) = post(
        &http,
        format!("{base}/v1/users"),
        Some(&admin),
        json!({"username": "ana", "password": ana_password, "pin": ana_pin, "roles": ["manager"], "stores": ["a"]}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let (s, v, _) = post(
        &http,
        format!("{base}/v1/auth/login"),
        None,
        json!({"username": "ana", "password": ana_password}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (ana_access, ana_refresh) = (
        v["access_token"].as_str().unwrap().to_string(),
        v["refresh_token"].as_str().unwrap().to_string(),
    );
    let (s, v, _) = post(
        &http,
        format!("{base}/v1/auth/refresh"),
        None,
        json!({"refresh_token": ana_refresh}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let rotated = v["refresh_token"].as_str().unwrap().to_string();
    let rotated_access = v["access_token"].as_str().unwrap().to_string();
    // Reuse (a family revocation is logged) and logout.
    let (s, _, _) = post(
        &http,
        format!("{base}/v1/auth/refresh"),
        None,
        json!({"refresh_token": ana_refresh}),
    )
    .await;
    assert_eq!(s, 401);
    let (s, _, _) = post(&http, format!("{base}/v1/auth/logout"), Some(&admin), json!({})).await;
    assert_eq!(s, 204);
    secrets.extend([ana_access, ana_refresh, rotated, rotated_access]);

    let (s, login, _) = post(
        &http,
        format!("{base}/v1/auth/login"),
        None,
        json!({"username": "root", "password": root_password}),
    )
    .await;
    assert_eq!(s, 200, "{login}");
    let admin = login["access_token"].as_str().unwrap().to_string();
    secrets.push(admin.clone());
    let (s, v, _) = post(
        &http,
        format!("{base}/v1/stores/a/enrollment-codes"),
        Some(&admin),
        json!({}),
    )
    .await;
    assert_eq!(s, 201, "{v}");
    let code = v["code"].as_str().unwrap().to_string();
    secrets.push(code.clone());
    secrets.push(code.replace('-', ""));

    // Enrollment: the node's private key must not be logged either.
    let key = client::node_csr().unwrap();
    let pem_body: String = key
        .key_pem
        .expose()
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    secrets.push(pem_body[..40].to_string());
    let wrong = client::enroll(
        &run.quic.to_string(),
        &run.server.ca_fingerprint(),
        Secret::new("WRONG-CODE1"),
        key.csr_der.clone(),
        None,
    )
    .await;
    assert!(wrong.is_err());
    let e = client::enroll(
        &run.quic.to_string(),
        &run.server.ca_fingerprint(),
        Secret::new(code.clone()),
        key.csr_der,
        None,
    )
    .await
    .unwrap();
    let me = Enrolled {
        node: e.node,
        store: e.store,
        key_pem: key.key_pem,
        certificate: e.certificate,
        not_after: e.not_after,
    };
    let node = RawNode::start(&run, &me, MemHost::default()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.close().await;

    // Failed logins until the per-address limit: 429 with Retry-After.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for i in 0..8 {
        let (s, v, retry) = post(
            &http,
            format!("{base}/v1/auth/login"),
            None,
            json!({"username": "ana", "password": format!("guess number {i} {ana_pin}")}),
        )
        .await;
        statuses.push(s);
        if s == 429 {
            assert_eq!(v["type"], "https://caja.dev/problems/rate-limited");
            retry_after = retry;
        }
    }
    assert!(statuses.contains(&401) && statuses.contains(&429), "{statuses:?}");
    let first_429 = statuses.iter().position(|s| *s == 429).unwrap();
    assert!(statuses[first_429..].iter().all(|s| *s == 429), "{statuses:?}");
    assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
    // Other routes are not under the login limit.
    let res = http
        .get(format!("{base}/v1/nodes"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    run.stop().await;

    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("admin logged in"),
        "the subscriber captured the flows"
    );
    assert!(
        logs.contains("TRACE") || logs.contains("DEBUG"),
        "verbose levels were captured"
    );
    for s in &secrets {
        assert!(
            !contains_word(&logs, s),
            "a secret reached the logs: {}…",
            &s[..6.min(s.len())]
        );
    }
    assert!(!logs.contains(ana_pin), "the PIN reached the logs");
}
