//! Head office's decisions reach a store's node through the replicated store document (also
//! after the node restarted with a damaged copy of it) and bind tokens the node already
//! issued: a custom role works at the node; taking a role
//! away, "sign out everywhere" and disabling a user stop a live token at once (no waiting
//! for it to expire); the node's audit log records each change.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, ensure};
use caja_shared::auth::Permission;
use caja_shared::auth::secrets::Secret;
use caja_shared::docs::Product;
use caja_shared::money::Currency;
use caja_sync_server::{NewUser, UserPatch};
use caja_tests::harness::{
    Api, PASSWORD, TestDir, TestNode, spawn_hq_in, wait_catalog, wait_for_staff, wait_until,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn status_of(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut r = api.request(method, path);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let res = r.send().await?;
    let status = res.status().as_u16();
    Ok((status, res.json().await.unwrap_or(Value::Null)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_disabling_and_sign_out_from_head_office_bind_live_tokens() -> anyhow::Result<()> {
    let dir = TestDir::new("hq-changes")?;
    let server = spawn_hq_in(&dir.join("server")).await;
    let ticket = server.create_store("c", "Store C").await?;
    let node = TestNode::start(&dir.join("c"), "c", Currency::GBP, Some(ticket.clone())).await?;
    // The node restarts once (a reboot) before head office changes anything: its staff
    // document must load from disk and keep syncing.
    node.stop().await;
    // While it is down its copy of the staff document is damaged (a disk error): the node
    // must drop it and fetch it again from head office, not fail every session.
    {
        let conn = rusqlite::Connection::open(dir.join("c").join("node.sqlite"))?;
        let n = conn.execute(
            "UPDATE doc_chunks SET bytes = X'00010203' WHERE doc_id = 'store/c'",
            [],
        )?;
        ensure!(n > 0, "no stored staff document to damage");
    }
    let node = TestNode::start(&dir.join("c"), "c", Currency::GBP, Some(ticket)).await?;
    let hq = server.server();
    hq.put_products(
        &caja_sync_server::Actor::local(),
        vec![Product {
            sku: "BOX".into(),
            name: "Box".into(),
            unit_price: Decimal::new(100, 2),
            tax_rate: Decimal::ZERO,
            barcode: None,
            category: None,
            stock_tracked: true,
        }],
    )
    .await?;
    wait_catalog(hq, &node.api, 1, WAIT).await?;

    // A custom role defined at head office: stock clerks count stock, nothing else.
    hq.define_role(
        &caja_sync_server::Actor::local(),
        "stock-clerk",
        BTreeSet::from([Permission::StockRead, Permission::StockAdjust]),
    )
    .await?;
    let clerk = hq
        .create_user(
            &caja_sync_server::Actor::local(),
            NewUser {
                username: "sam".into(),
                display_name: "Sam".into(),
                password: Some(Secret::new(PASSWORD)),
                pin: None,
                roles: vec!["stock-clerk".into()],
                stores: vec!["c".parse()?],
            },
        )
        .await?;
    wait_for_staff(&node.node, "sam", WAIT).await?;
    let sam = node.api.fresh();
    let login = sam.login_password("sam", PASSWORD).await?;
    ensure!(
        login["user"]["permissions"] == json!(["stock.read", "stock.adjust"]),
        "{login}"
    );
    let receipt = json!({"sku": "BOX", "quantity": "10", "reason": "receipt"});
    let (s, body) = status_of(
        &sam,
        reqwest::Method::POST,
        "/v1/stock/movements",
        Some(receipt.clone()),
    )
    .await?;
    ensure!(s == 201, "{s} {body}");
    let sale =
        json!({"lines": [{"sku": "BOX", "quantity": "1"}], "tenders": [{"kind": "cash", "amount": "1.00"}]});
    let (s, body) = status_of(&sam, reqwest::Method::POST, "/v1/sales", Some(sale.clone())).await?;
    ensure!(
        s == 403 && body["type"] == "https://caja.dev/problems/forbidden",
        "{s} {body}"
    );

    // The role is taken away: the live token loses it as soon as the change arrives.
    hq.update_user(
        &caja_sync_server::Actor::local(),
        &clerk.id,
        UserPatch {
            roles: Some(vec!["cashier".into()]),
            ..UserPatch::default()
        },
    )
    .await?;
    wait_until("the role change to bind the live token", WAIT, || async {
        Ok(status_of(
            &sam,
            reqwest::Method::POST,
            "/v1/stock/movements",
            Some(receipt.clone()),
        )
        .await?
        .0 == 403)
    })
    .await?;
    // The token named stock-clerk only, so it does not gain the new cashier role either.
    ensure!(
        status_of(&sam, reqwest::Method::POST, "/v1/sales", Some(sale.clone()))
            .await?
            .0
            == 403
    );
    // A new login has the new role.
    sam.login_password("sam", PASSWORD).await?;
    let (s, body) = status_of(&sam, reqwest::Method::POST, "/v1/sales", Some(sale.clone())).await?;
    ensure!(s == 201, "{s} {body}");

    // Sign out everywhere: the live token is revoked at the node.
    hq.revoke_user_sessions(&caja_sync_server::Actor::local(), &clerk.id)
        .await?;
    wait_until("sign-out to reach the node", WAIT, || async {
        let (s, body) = status_of(&sam, reqwest::Method::GET, "/v1/auth/me", None).await?;
        Ok(s == 401 && body["type"] == "https://caja.dev/problems/token-revoked")
    })
    .await?;
    // Disabled: no login, and the token of a fresh login dies too.
    sam.login_password("sam", PASSWORD).await?;
    hq.update_user(
        &caja_sync_server::Actor::local(),
        &clerk.id,
        UserPatch {
            disabled: Some(true),
            ..UserPatch::default()
        },
    )
    .await?;
    wait_until("the disabled user to be refused", WAIT, || async {
        let (s, body) = status_of(&sam, reqwest::Method::GET, "/v1/auth/me", None).await?;
        Ok(s == 401 && body["type"] == "https://caja.dev/problems/user-disabled")
    })
    .await?;
    ensure!(
        sam.fresh().login_password("sam", PASSWORD).await.is_err(),
        "a disabled user logged in"
    );

    // The node's audit log records what head office changed.
    let audit: Vec<Value> = node.api.get("/v1/audit?limit=1000").await?;
    let kinds: Vec<&str> = audit
        .iter()
        .filter(|e| e["username"] == "sam" || e["detail"]["role"] == "stock-clerk")
        .map(|e| e["kind"].as_str().unwrap_or(""))
        .collect();
    for k in [
        "role.defined",
        "user.created",
        "user.roles_changed",
        "user.sessions_revoked",
        "user.disabled",
    ] {
        ensure!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let text = serde_json::to_string(&audit).context("audit")?;
    ensure!(!text.contains("$argon2id$"), "a hash is in the audit log");
    Ok(())
}
