//! Security tests of the node's REST API, on a real node over real HTTP(S):
//!
//! - the permission matrix: every route of the route table × every built-in role and no
//!   token, each asserted allowed, 401 or 403 exactly;
//! - token attacks: `alg: none`, HS256 keyed with the public key, another key, expired,
//!   not yet valid, another store, another audience, tampered claims, a revoked token, a
//!   reused refresh token (whole session revoked), garbage;
//! - PIN brute force: locked after 5 tries on that terminal only, other users unaffected,
//!   the lock grows, every failure and the lock are facts (never the PIN);
//! - manager overrides: a cashier's refund without receipt and price override, refused,
//!   then authorised once by a manager's PIN;
//! - the audit log, rate limits, HTTPS with a pinned certificate.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use caja_node::http::access::{self, Access};
use caja_shared::auth::permissions::built_in;
use caja_shared::auth::tokens::{AccessClaims, SERVER_AUDIENCE, TokenKeys, now_secs};
use caja_tests::harness::{AT, Client, PASSWORD, Reply, TestNode, pin_of, spawn_node, spawn_node_with};
use reqwest::Method;
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The node's own signing key, read from its data directory (what an attacker who stole
/// the disk would have; here it lets the test forge tokens that differ in one claim only).
fn node_keys(node: &TestNode) -> TokenKeys {
    TokenKeys::from_pkcs8(&std::fs::read(node.dir.path().join("jwt.key")).unwrap()).unwrap()
}

/// The claims of an access token (without checking it).
fn claims_of(token: &str) -> AccessClaims {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// A sample request for every route: path parameters filled in, a JSON body for writes.
fn sample(route: &access::Route) -> (String, Option<Value>) {
    let path = route
        .path
        .replace("{sku}", "TEA-1")
        .replace("{id}", "0190f4c8-5d2e-7000-8000-000000000000")
        .replace("{code}", "4006381333931");
    let body = matches!(route.method, Method::POST | Method::PUT).then(|| json!({}));
    (path, body)
}

async fn call(node: &TestNode, bearer: Option<String>, route: &access::Route) -> Reply {
    let (path, body) = sample(route);
    let c = node.as_user(bearer);
    let mut req = c.req(route.method.clone(), &path);
    if let Some(b) = body {
        req = req.json(&b);
    }
    c.send(req).await
}

#[tokio::test]
async fn permission_matrix_covers_every_route() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    node.add_user("mgr", &["manager"]).await;
    node.add_user("ana", &["cashier"]).await;
    let routes = access::routes();
    assert!(routes.len() >= 20, "{routes:?}");
    // Adding a route without a guard is impossible (the router is built from the table);
    // adding a PUBLIC route must be a conscious decision recorded here.
    let public: BTreeSet<(String, &str)> = routes
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| (r.method.to_string(), r.path))
        .collect();
    let expected_public: BTreeSet<(String, &str)> = [
        ("POST", "/v1/auth/login"),
        ("POST", "/v1/auth/pin"),
        ("POST", "/v1/auth/refresh"),
        ("GET", "/health/live"),
        ("GET", "/health/ready"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_string(), p))
    .collect();
    assert_eq!(public, expected_public);
    let mut checked = 0;
    for route in &routes {
        for role in [None, Some("ana"), Some("mgr"), Some("admin")] {
            // A fresh token each time: the logout route revokes the one it is called with.
            let bearer = match role {
                Some(u) => Some(node.login(u).await),
                None => None,
            };
            let r = call(&node, bearer, route).await;
            let status = r.status.as_u16();
            let what = format!("{} {} as {role:?}: {status} {}", route.method, route.path, r.text);
            let role_name = match role {
                Some("ana") => Some("cashier"),
                Some("mgr") => Some("manager"),
                Some(_) => Some("admin"),
                None => None,
            };
            match (route.access, role_name) {
                (Access::Public, _) => assert!(status != 401 && status != 403, "{what}"),
                (_, None) => {
                    assert!(!r.problem(401, "token-missing").is_empty(), "{what}");
                    assert!(r.headers.get("www-authenticate").is_some(), "{what}");
                }
                (Access::Authenticated, Some(_)) => assert!(status != 401 && status != 403, "{what}"),
                (Access::Permission(p), Some(rn)) => {
                    if built_in(rn).unwrap().contains(&p) {
                        assert!(status != 401 && status != 403, "{what}");
                    } else {
                        let detail = r.problem(403, "forbidden");
                        assert!(detail.contains(p.name()), "{what}");
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, routes.len() * 4);
}

#[tokio::test]
async fn token_attacks_are_refused_with_clear_problems() {
    let node = spawn_node().await;
    node.add_user("ana", &["cashier"]).await;
    let good = node.login("ana").await;
    let keys = node_keys(&node);
    let claims = claims_of(&good);
    let now = now_secs();
    let forge = |f: &dyn Fn(&mut AccessClaims)| {
        let mut c = claims.clone();
        f(&mut c);
        keys.issue(&c).unwrap()
    };
    let header = |alg: &str| b64(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#).as_bytes());
    let payload = b64(&serde_json::to_vec(&claims).unwrap());
    let hs256 = {
        use jsonwebtoken::{Algorithm, EncodingKey, Header};
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(keys.public_key()).unwrap(),
        )
        .unwrap()
    };
    let (other_keys, _) = TokenKeys::generate().unwrap();
    let mut admin_claims = claims.clone();
    admin_claims.roles = vec!["admin".into()];
    let parts: Vec<&str> = good.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&admin_claims).unwrap()),
        parts[2]
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{payload}.", header("none")),
            "token-algorithm",
        ),
        ("HS256 keyed with the public key", hs256, "token-algorithm"),
        (
            "another key",
            other_keys.issue(&claims).unwrap(),
            "token-signature",
        ),
        ("tampered claims", tampered, "token-signature"),
        ("expired", forge(&|c| c.exp = now - 60), "token-expired"),
        (
            "not yet valid",
            forge(&|c| c.nbf = now + 600),
            "token-not-yet-valid",
        ),
        (
            "issued in the future",
            forge(&|c| c.iat = now + 600),
            "token-not-yet-valid",
        ),
        (
            "another store",
            forge(&|c| c.store = "elsewhere".into()),
            "token-wrong-store",
        ),
        (
            "the sync server's audience",
            forge(&|c| c.aud = SERVER_AUDIENCE.into()),
            "token-audience",
        ),
        (
            "a user who is not staff here",
            forge(&|c| c.sub = "nobody".into()),
            "user-disabled",
        ),
        ("garbage", "abc.def".into(), "token-malformed"),
    ];
    for (what, token, slug) in cases {
        let r = node.as_user(Some(token)).get("/v1/products").await;
        let detail = r.problem(401, slug);
        assert!(!detail.is_empty(), "{what}");
        let www = r
            .headers
            .get("www-authenticate")
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            www.contains("invalid_token") && www.contains(slug),
            "{what}: {www}"
        );
    }
    // Not a bearer token at all.
    let r = node
        .send(
            node.as_user(None)
                .req(Method::GET, "/v1/products")
                .header("authorization", "Basic YTpi"),
        )
        .await;
    r.problem(401, "token-malformed");
    // The genuine token still works, so none of the above was refused by accident.
    node.as_user(Some(good.clone())).get("/v1/products").await.ok(200);
    // Roles are checked against the user's, not trusted from the token: a token claiming
    // a role the user does not have (signed with the real key) gains nothing.
    let raised = forge(&|c| c.roles = vec!["cashier".into(), "admin".into()]);
    node.as_user(Some(raised))
        .get("/v1/reports/daily")
        .await
        .problem(403, "forbidden");
}

#[tokio::test]
async fn logout_and_refresh_token_reuse_revoke_sessions() {
    let node = spawn_node().await;
    node.add_user("ana", &["cashier"]).await;
    async fn login(n: &TestNode) -> Reply {
        n.send(
            n.as_user(None)
                .req(Method::POST, "/v1/auth/login")
                .json(&json!({"username": "ana", "password": PASSWORD})),
        )
        .await
    }
    let first = login(&node).await.ok(200).clone();
    assert_eq!(first["token_type"], "Bearer");
    assert_eq!(first["expires_in"], 900);
    assert_eq!(first["user"]["roles"], json!(["cashier"]));
    assert!(
        first["user"]["permissions"]
            .as_array()
            .unwrap()
            .contains(&json!("sale.create"))
    );
    let refresh = |t: &Value| {
        let t = t.as_str().unwrap().to_string();
        node.send(
            node.as_user(None)
                .req(Method::POST, "/v1/auth/refresh")
                .json(&json!({"refresh_token": t})),
        )
    };
    // Rotation: each refresh token works once and gives the next.
    let second = refresh(&first["refresh_token"]).await.ok(200).clone();
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let access2 = second["access_token"].as_str().unwrap().to_string();
    node.as_user(Some(access2.clone()))
        .get("/v1/auth/me")
        .await
        .ok(200);
    // A stolen copy of the first refresh token is replayed: the whole session dies.
    refresh(&first["refresh_token"])
        .await
        .problem(401, "refresh-reused");
    refresh(&second["refresh_token"])
        .await
        .problem(401, "refresh-revoked");
    node.as_user(Some(access2))
        .get("/v1/auth/me")
        .await
        .problem(401, "token-revoked");
    // Logout revokes the token and its session.
    let third = login(&node).await.ok(200).clone();
    let access3 = third["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        node.as_user(Some(access3.clone()))
            .send(
                node.as_user(Some(access3.clone()))
                    .req(Method::POST, "/v1/auth/logout")
            )
            .await
            .status,
        204
    );
    node.as_user(Some(access3))
        .get("/v1/auth/me")
        .await
        .problem(401, "token-revoked");
    refresh(&third["refresh_token"])
        .await
        .problem(401, "refresh-revoked");
    refresh(&json!("0".repeat(64)))
        .await
        .problem(401, "refresh-unknown");
    // The audit log has it all.
    let audit = node.get("/v1/audit").await.ok(200).clone();
    let kinds: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["login.succeeded", "session.revoked", "logout"] {
        assert!(kinds.contains(&k), "{k} not in {kinds:?}");
    }
    // Bad login bodies are refused without guessing.
    node.send(
        node.as_user(None)
            .req(Method::POST, "/v1/auth/login")
            .json(&json!({"username": "ana"})),
    )
    .await
    .problem(400, "malformed-json");
    let r = node
        .send(
            node.as_user(None)
                .req(Method::POST, "/v1/auth/login")
                .json(&json!({"username": "ana", "password": "wrong password!"})),
        )
        .await;
    let d1 = r.problem(401, "login-failed");
    let r = node
        .send(
            node.as_user(None)
                .req(Method::POST, "/v1/auth/login")
                .json(&json!({"username": "nobody", "password": "wrong password!"})),
        )
        .await;
    // Same answer for an unknown user: usernames cannot be probed.
    assert_eq!(r.problem(401, "login-failed"), d1);
}

#[tokio::test]
async fn pin_brute_force_locks_one_user_on_one_terminal() {
    let node = spawn_node_with(|c| {
        c.auth.lockout = Duration::from_secs(1);
        c.auth.lockout_max = Duration::from_secs(4);
    })
    .await;
    let ana = node.add_user("ana", &["cashier"]).await;
    node.add_user("bo", &["cashier"]).await;
    let right = pin_of("cashier");
    for i in 1..=4 {
        let r = node.pin_login("T1", "ana", "00000000").await;
        let detail = r.problem(401, "login-failed");
        assert!(!detail.contains("00000000"), "try {i}: {detail}");
    }
    // The 5th wrong PIN locks ana on T1.
    let r = node.pin_login("T1", "ana", "00000000").await;
    let detail = r.problem(423, "login-locked");
    assert!(detail.contains("ana") && detail.contains("T1"), "{detail}");
    let retry: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    // Even the right PIN is refused while locked; other users and terminals are not.
    node.pin_login("T1", "ana", right)
        .await
        .problem(423, "login-locked");
    node.pin_login("T1", "bo", right).await.ok(200);
    node.pin_login("T2", "ana", right).await.ok(200);
    // Malformed PINs are refused before any guess is counted.
    node.pin_login("T1", "bo", "12")
        .await
        .problem(422, "invalid-input");
    node.pin_login("T1", "bo", "12ab")
        .await
        .problem(422, "invalid-input");
    node.pin_login("bad terminal!", "bo", right)
        .await
        .problem(422, "invalid-input");
    // After the lock, the next five wrong PINs lock again, twice as long (a lock in a
    // row); only then does the right PIN get ana in.
    tokio::time::sleep(Duration::from_millis(retry * 1000 + 300)).await;
    for i in 1..=4 {
        node.pin_login("T1", "ana", "00000000")
            .await
            .problem(401, "login-failed");
        let _ = i;
    }
    let r = node.pin_login("T1", "ana", "00000000").await;
    r.problem(423, "login-locked");
    let retry2: u64 = r
        .headers
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry2 >= 2, "{retry2}");
    tokio::time::sleep(Duration::from_millis(retry2 * 1000 + 300)).await;
    node.pin_login("T1", "ana", right).await.ok(200);
    // Every failure and both locks are facts in the audit log, never with the PIN.
    let audit = node.get("/v1/audit?limit=1000").await.ok(200).clone();
    let entries: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["user_id"] == json!(ana))
        .collect();
    let locks: Vec<&&Value> = entries.iter().filter(|e| e["kind"] == "login.locked").collect();
    assert_eq!(locks.len(), 2, "{entries:?}");
    let span = |e: &Value| {
        let at = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        let until = chrono::DateTime::parse_from_rfc3339(e["detail"]["until"].as_str().unwrap()).unwrap();
        (until - at).num_milliseconds()
    };
    assert!(
        span(locks[1]) > span(locks[0]),
        "the second lock must be longer: {locks:?}"
    );
    let failed = entries
        .iter()
        .filter(|e| e["kind"] == "login.failed" && e["terminal"] == "T1")
        .count();
    assert_eq!(failed, 4 + 1 + 1 + 5, "{entries:?}");
    let text = serde_json::to_string(&audit).unwrap();
    assert!(
        !text.contains("00000000") && !text.contains(right),
        "a PIN is in the audit log"
    );
    let facts = node
        .node
        .db()
        .read(|c| -> Result<String, anyhow::Error> {
            let mut s = c.prepare("SELECT body FROM facts WHERE kind = 'security'")?;
            let rows: Vec<String> = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok(rows.join("\n"))
        })
        .await
        .unwrap();
    assert!(facts.contains("\"event\":\"locked\""), "{facts}");
    assert!(!facts.contains("00000000") && !facts.contains(right));
}

#[tokio::test]
async fn unknown_usernames_lock_like_real_ones() {
    let node = spawn_node().await;
    node.add_user("cara", &["cashier"]).await;
    let mut answers = Vec::new();
    for name in ["cara", "ghost"] {
        let mut seq = Vec::new();
        for _ in 0..6 {
            let r = node.pin_login("T1", name, "00000000").await;
            let detail = r.json["detail"]
                .as_str()
                .unwrap_or_default()
                .replace(name, "NAME");
            seq.push((
                r.status.as_u16(),
                detail.split(" until ").next().unwrap_or("").to_string(),
            ));
        }
        answers.push(seq);
    }
    // Same statuses, same wording: nothing tells a real username from a made-up one.
    assert_eq!(answers[0], answers[1]);
    assert_eq!(
        answers[0].iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [401, 401, 401, 401, 423, 423]
    );
}

#[tokio::test]
async fn wrong_passwords_lock_like_wrong_pins() {
    let node = spawn_node().await;
    node.add_user("ana", &["manager"]).await;
    node.add_user("bo", &["manager"]).await;
    let login = |name: &'static str, password: &'static str| {
        node.send(
            node.client
                .post(format!("{}/v1/auth/login", node.url))
                .json(&json!({"username": name, "password": password, "terminal": "BACK1"})),
        )
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(login("ana", "a wrong guess").await.status.as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 401, 423]);
    // Locked: even the right password is refused until the lock ends...
    let detail = login("ana", PASSWORD).await.problem(423, "login-locked");
    assert!(detail.contains("terminal BACK1"), "{detail}");
    // ...on that terminal only; other users are unaffected.
    login("bo", PASSWORD).await.ok(200);
    node.pin_login("T1", "ana", pin_of("manager")).await.ok(200);
    let audit = node.get("/v1/audit?kind=login.locked").await.ok(200).clone();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    // A mistyped kind is an error, not an empty (reassuring) list.
    let detail = node
        .get("/v1/audit?kind=lock")
        .await
        .problem(422, "invalid-input");
    assert!(
        detail.contains("\"lock\" is not a kind") && detail.contains("login.failed"),
        "{detail}"
    );
}

#[tokio::test]
async fn hopping_terminals_locks_the_user_on_every_terminal() {
    let node = spawn_node().await;
    node.add_user("ana", &["cashier"]).await;
    node.add_user("bo", &["cashier"]).await;
    // Four wrong PINs on each of four made-up terminals: never five on one, but the 15th
    // across terminals locks ana everywhere.
    let mut statuses = Vec::new();
    for t in ["T1", "T2", "T3", "T4"] {
        for _ in 0..4 {
            statuses.push(node.pin_login(t, "ana", "00000000").await.status.as_u16());
        }
    }
    assert_eq!(statuses[..14], [401; 14]);
    assert_eq!(statuses[14], 423, "{statuses:?}");
    let detail = node
        .pin_login("T9", "ana", pin_of("cashier"))
        .await
        .problem(423, "login-locked");
    assert!(detail.contains("every terminal"), "{detail}");
    node.pin_login("T9", "bo", pin_of("cashier")).await.ok(200);
    let audit = node.get("/v1/audit?kind=login.locked").await.ok(200).clone();
    assert_eq!(audit.as_array().unwrap().len(), 1, "{audit}");
    assert_eq!(audit[0]["detail"]["all_terminals"], true);
}

/// A refund without receipt, dated now (a cashier may not date it otherwise).
fn no_receipt_refund() -> Value {
    json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "reason": "no receipt"})
}

#[tokio::test]
async fn manager_override_authorises_one_action() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let mgr = node.add_user("mgr", &["manager"]).await;
    let ana = node.add_user("ana", &["cashier"]).await;
    node.add_user("cy", &["cashier"]).await;
    let till = node.pin_login("T3", "ana", pin_of("cashier")).await.ok(200)["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let c = node.as_user(Some(till.clone()));
    // A cashier may refund with a receipt, not without.
    let detail = c
        .post("/v1/refunds", &no_receipt_refund())
        .await
        .problem(403, "forbidden");
    assert!(
        detail.contains("refund.no_receipt") && detail.contains("Caja-Override"),
        "{detail}"
    );
    async fn ask_with(c: &Client<'_>, who: &str, pin: &str, perm: &str) -> Reply {
        c.post(
            "/v1/auth/override",
            &json!({"username": who, "pin": pin, "permission": perm}),
        )
        .await
    }
    let ask = |who: &'static str, pin: &'static str, perm: &'static str| ask_with(&c, who, pin, perm);
    // Refused overrides: a wrong PIN, a user without the permission, an unknown permission.
    ask("mgr", "99999999", "refund.no_receipt")
        .await
        .problem(401, "login-failed");
    ask("cy", pin_of("cashier"), "refund.no_receipt")
        .await
        .problem(403, "override-refused");
    ask("mgr", pin_of("manager"), "time.travel")
        .await
        .problem(422, "invalid-input");
    let granted = ask("mgr", pin_of("manager"), "refund.no_receipt")
        .await
        .ok(200)
        .clone();
    assert_eq!(granted["authorized_by"]["username"], "mgr");
    let token = granted["override_token"].as_str().unwrap().to_string();
    let with = |t: &str, body: &Value, path: &str| {
        c.send(c.req(Method::POST, path).header("caja-override", t).json(body))
    };
    // An override lends one permission: not another.
    with(
        &token,
        &json!({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "1.00"}],
        "tenders": [{"kind": "cash", "amount": "5"}]}),
        "/v1/sales",
    )
    .await
    .problem(403, "override-refused");
    let refund = with(&token, &no_receipt_refund(), "/v1/refunds")
        .await
        .ok(201)
        .clone();
    assert_eq!(refund["username"], "ana");
    assert_eq!(refund["user_id"], json!(ana));
    assert_eq!(refund["terminal"], "T3");
    assert_eq!(
        refund["authorized_by"],
        json!({"user_id": mgr, "username": "mgr", "permission": "refund.no_receipt"})
    );
    // Once only.
    with(&token, &no_receipt_refund(), "/v1/refunds")
        .await
        .problem(403, "override-refused");
    // Not at another till: a cashier logged in with a password (no till of their own) gets
    // an override at the node's default terminal and cannot spend it on another one.
    node.add_user("bo", &["cashier"]).await;
    let bo = node.as_user(Some(node.login("bo").await));
    let t = bo
        .post(
            "/v1/auth/override",
            &json!({"username": "mgr", "pin": pin_of("manager"), "permission": "refund.no_receipt"}),
        )
        .await
        .ok(200)["override_token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut elsewhere = no_receipt_refund();
    elsewhere["terminal"] = json!("T9");
    let r = bo
        .send(
            bo.req(Method::POST, "/v1/refunds")
                .header("caja-override", &t)
                .json(&elsewhere),
        )
        .await;
    assert!(
        r.problem(403, "override-refused").contains("terminal"),
        "{}",
        r.text
    );
    bo.send(
        bo.req(Method::POST, "/v1/refunds")
            .header("caja-override", &t)
            .json(&no_receipt_refund()),
    )
    .await
    .ok(201);
    // Not by another cashier.
    let cy = node.login("cy").await;
    let other = node.as_user(Some(cy));
    let token2 = ask("mgr", pin_of("manager"), "refund.no_receipt").await.ok(200)["override_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = other
        .send(
            other
                .req(Method::POST, "/v1/refunds")
                .header("caja-override", &token2)
                .json(&no_receipt_refund()),
        )
        .await;
    assert!(r.problem(403, "override-refused").contains("another user"));
    // A price override the same way.
    let sale = json!({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "1.99"}],
        "tenders": [{"kind": "cash", "amount": "5"}]});
    c.post("/v1/sales", &sale).await.problem(403, "forbidden");
    let t3 = ask("mgr", pin_of("manager"), "price.override").await.ok(200)["override_token"]
        .as_str()
        .unwrap()
        .to_string();
    let s = with(&t3, &sale, "/v1/sales").await.ok(201).clone();
    assert_eq!(s["lines"][0]["price_overridden"], true);
    assert_eq!(s["authorized_by"]["permission"], "price.override");
    // The audit log shows who authorised what.
    let audit = node.get("/v1/audit?limit=1000").await.ok(200).clone();
    let used: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "override.used")
        .collect();
    assert_eq!(used.len(), 3, "{audit}");
    assert_eq!(used[0]["username"], "ana");
    assert_eq!(used[0]["detail"]["authorized_by_name"], "mgr");
    let granted: Vec<&Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "override.granted")
        .collect();
    assert_eq!(granted.len(), 4);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "login.failed"
                && e["detail"]["reason"].as_str().unwrap().starts_with("override:"))
    );
    // Cashiers cannot read the audit log; managers can.
    c.get("/v1/audit").await.problem(403, "forbidden");
    let m = node.login("mgr").await;
    node.as_user(Some(m))
        .get("/v1/audit?kind=override.used")
        .await
        .ok(200);
    node.get("/v1/audit?limit=0").await.problem(422, "invalid-input");
    node.get("/v1/audit?since=yesterday")
        .await
        .problem(400, "bad-request");
}

#[tokio::test]
async fn cashiers_cannot_backdate_sales_or_refunds() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    node.add_user("mgr", &["manager"]).await;
    node.add_user("ana", &["cashier"]).await;
    let ana = node.as_user(Some(node.login("ana").await));
    let old = json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "tenders": [{"kind": "cash", "amount": "5"}],
        "occurred_at": AT});
    let detail = ana.post("/v1/sales", &old).await.problem(403, "forbidden");
    assert!(detail.contains("sale.backdate"), "{detail}");
    // Within five minutes of now is a till's clock being a little off, not backdating.
    let now = chrono::Utc::now() - chrono::Duration::minutes(2);
    let recent = json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "tenders": [{"kind": "cash", "amount": "5"}],
        "occurred_at": now.to_rfc3339()});
    ana.post("/v1/sales", &recent).await.ok(201);
    // A refund with receipt dated back is refused the same way.
    let s = ana
        .post("/v1/sales", &json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "tenders": [{"kind": "cash", "amount": "5"}]}))
        .await
        .ok(201)
        .clone();
    ana.post(
        "/v1/refunds",
        &json!({"original_sale": s["id"], "lines": [{"sku": "TEA-1", "quantity": 1}], "occurred_at": AT}),
    )
    .await
    .problem(403, "forbidden");
    // A manager's PIN lends it for one sale; a manager may backdate themselves.
    let ask = json!({"username": "mgr", "pin": pin_of("manager"), "permission": "sale.backdate"});
    let grant = || ana.post("/v1/auth/override", &ask);
    let t = grant().await.ok(200)["override_token"]
        .as_str()
        .unwrap()
        .to_string();
    let r = ana
        .send(
            ana.req(Method::POST, "/v1/sales")
                .header("caja-override", &t)
                .json(&old),
        )
        .await;
    assert_eq!(r.ok(201)["business_date"], "2024-03-15");
    let m = node.as_user(Some(node.login("mgr").await));
    m.post("/v1/sales", &old).await.ok(201);
    // Backdated AND at another price: two rights, which one override cannot lend.
    let t = grant().await.ok(200)["override_token"]
        .as_str()
        .unwrap()
        .to_string();
    let both = json!({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "1.00"}],
        "tenders": [{"kind": "cash", "amount": "5"}], "occurred_at": AT});
    let r = ana
        .send(
            ana.req(Method::POST, "/v1/sales")
                .header("caja-override", &t)
                .json(&both),
        )
        .await;
    assert!(r.problem(403, "forbidden").contains("several rights"));
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let node = spawn_node_with(|c| {
        c.limits.logins_per_minute = 3;
        c.limits.requests_per_second = 5;
    })
    .await;
    // spawn_node logged the admin in once: two more logins fit, the next does not.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let r = node.pin_login("T1", "admin", "00000000").await;
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            r.problem(429, "rate-limited");
            assert!(r.headers.get("retry-after").is_some());
        }
    }
    assert_eq!(statuses, [401, 401, 429]);
    // The global per-client limit: a burst of 10 at 5 per second.
    let mut limited = 0;
    for _ in 0..30 {
        let r = node.get("/health/live").await;
        if r.status == 429 {
            r.problem(429, "rate-limited");
            limited += 1;
        }
    }
    assert!(limited > 0, "no request was limited");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let node = spawn_node().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(node.dir.path()), 0o700);
    for f in ["node.sqlite", "node.sqlite-wal", "jwt.key"] {
        assert_eq!(mode(&node.dir.path().join(f)), 0o600, "{f}");
    }
}

#[tokio::test]
async fn https_on_the_lan_with_a_pinned_certificate() {
    let node = spawn_node_with(|c| {
        c.lan_tls.enabled = true;
        c.lan_tls.names = vec!["till-1.local".into()];
    })
    .await;
    assert!(node.url.starts_with("https://"));
    // The harness client pins the node's self-signed certificate: everything works.
    node.get("/v1/auth/me").await.ok(200);
    // Another pin is refused at the handshake; so is a client trusting the usual roots.
    let wrong = reqwest::Client::builder()
        .use_preconfigured_tls(caja_node::http::tls::client_config(&"ab".repeat(32)).unwrap())
        .build()
        .unwrap();
    assert!(
        wrong
            .get(format!("{}/health/live", node.url))
            .send()
            .await
            .is_err()
    );
    let plain = reqwest::Client::new();
    assert!(
        plain
            .get(format!("{}/health/live", node.url))
            .send()
            .await
            .is_err()
    );
    assert!(
        plain
            .get(node.url.replace("https://", "http://") + "/health/live")
            .send()
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true),
        "plain HTTP must not be served on the TLS port"
    );
}

/// A client that stops sending its body mid-way (a slow or hostile till) is cut off after
/// the request timeout with a problem+json `timeout` that says a write may have landed.
#[tokio::test]
async fn a_stalled_request_times_out_with_a_problem() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let node = spawn_node_with(|c| c.limits.request_timeout = Duration::from_secs(1)).await;
    let addr = node.url.trim_start_matches("http://").to_string();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let token = node.bearer.clone().unwrap();
    let head = format!(
        "POST /v1/sales HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"lines\":"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the node answers within its timeout")
        .unwrap();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(
        text.contains("problems/timeout") && text.contains("Idempotency-Key"),
        "{text}"
    );
}
