//! The demo's staff scenes: a cashier logging in with a PIN at a store that has lost its
//! link, a refund without receipt the cashier may not make alone, authorised by the
//! store manager's PIN (a manager override); and how to try it all with curl.

use anyhow::{Context, bail};
use caja_shared::docs::Product;
use caja_shared::facts::Line;
use caja_shared::money::{Currency, format_minor};
use reqwest::Method;
use serde_json::json;

use crate::chain::{Chain, ChainNode};
use crate::client::NodeClient;

/// At an offline store: the cashier logs in by PIN, sells one `product`, is refused a
/// refund without receipt, and the manager's PIN authorises it. Prints each step.
///
/// # Errors
/// When a step does not answer as it must.
pub async fn offline_override(n: &ChainNode, product: &Product, currency: Currency) -> anyhow::Result<()> {
    let till = NodeClient::new(&n.url, None)?;
    let cashier = &n.staff.cashier;
    till.login_pin("T2", &cashier.username, &cashier.pin)
        .await
        .context("cashier PIN login at the offline store")?;
    println!(
        "  {} logs in with a PIN at till T2 (the node checks it offline)",
        cashier.username
    );
    let line = Line::priced(
        &product.sku,
        "",
        2.into(),
        product.unit_price,
        false,
        product.tax_rate,
        false,
        currency,
        1,
    )?;
    let total = format_minor(line.total_minor, currency);
    let sale = till
        .json(
            Method::POST,
            "/v1/sales",
            Some(&json!({"lines": [{"sku": product.sku, "quantity": "2"}], "tenders": [{"kind": "card", "amount": total}]})),
        )
        .await
        .context("cashier sale")?;
    println!(
        "  sells 2 x {} for {total}: receipt {}",
        product.sku,
        sale["receipt_no"].as_str().unwrap_or("?")
    );
    let refund =
        json!({"lines": [{"sku": product.sku, "quantity": "1"}], "reason": "no receipt, returned unopened"});
    let res = till.send(Method::POST, "/v1/refunds", Some(&refund), &[]).await?;
    if res.status() != reqwest::StatusCode::FORBIDDEN {
        bail!(
            "a cashier's refund without receipt must be refused, got {}",
            res.status()
        );
    }
    println!("  a refund without receipt is refused: cashiers lack refund.no_receipt");
    let mgr = &n.staff.manager;
    let granted = till
        .json(
            Method::POST,
            "/v1/auth/override",
            Some(&json!({"username": mgr.username, "pin": mgr.pin.expose(), "permission": "refund.no_receipt"})),
        )
        .await
        .context("manager override")?;
    let token = granted["override_token"].as_str().unwrap_or_default().to_string();
    let res = till
        .send(
            Method::POST,
            "/v1/refunds",
            Some(&refund),
            &[("Caja-Override", &token)],
        )
        .await?;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap_or_default();
    if status != reqwest::StatusCode::CREATED {
        bail!("the authorised refund must be accepted, got {status}: {body}");
    }
    println!(
        "  {} types their PIN: refund {} by {} authorised by {}",
        mgr.username,
        body["receipt_no"].as_str().unwrap_or("?"),
        body["username"].as_str().unwrap_or("?"),
        body["authorized_by"]["username"].as_str().unwrap_or("?")
    );
    till.send(Method::POST, "/v1/auth/logout", None, &[]).await?;
    Ok(())
}

/// Prints how the nodes joined: enrolled with a one-time code from head office, their
/// staff created at head office and replicated to them, the manager logged in at each.
pub fn print_enrollment(chain: &Chain) {
    println!(
        "{} nodes enrolled with one-time codes (keys made on the node, client certificates from the chain CA; sync over mutual TLS)",
        chain.nodes.len()
    );
    if let Some(n) = chain.nodes.first() {
        println!(
            "  e.g. store {}: node {}; head office created {} (manager) and {} (cashier), their argon2id hashes replicated to the node, where the manager logged in",
            n.store,
            n.node.identity().node_id,
            n.staff.manager.username,
            n.staff.cashier.username
        );
    }
}

/// After the outage: what head office's audit log shows of the offline store's staff.
///
/// # Errors
/// When the audit cannot be read.
pub async fn print_head_office_view(
    chain: &Chain,
    store: &caja_shared::ids::StoreCode,
) -> anyhow::Result<()> {
    let audit = chain
        .server
        .audit(caja_sync_server::audit::AuditQuery {
            store: Some(store.to_string()),
            limit: Some(1000),
            ..Default::default()
        })
        .await?;
    let shown: Vec<_> = audit
        .iter()
        .rev()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "fact.override.used" | "fact.override.granted" | "fact.login.failed"
            ) || (e.kind == "fact.login.succeeded" && e.detail["event"]["method"] == "pin")
        })
        .collect();
    println!("head office's audit log of store {store} after it reconnected:");
    if shown.is_empty() {
        println!("  (no PIN logins, overrides or failed logins there)");
    }
    for e in shown.iter().take(8) {
        let extra = match e.kind.as_str() {
            "fact.override.used" => format!(
                ", authorised by {} ({})",
                e.detail["authorized_by"]["user_name"].as_str().unwrap_or("?"),
                e.detail["authorized_by"]["permission"].as_str().unwrap_or("?")
            ),
            "fact.login.failed" => {
                format!(", {}", e.detail["event"]["reason"].as_str().unwrap_or("?"))
            }
            _ => String::new(),
        };
        println!(
            "  {}  {:<32} by {} at till {}{extra}",
            e.at.format("%H:%M:%S"),
            e.kind,
            e.actor_name.as_deref().unwrap_or("?"),
            e.detail["terminal"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

/// Prints how to use the running chain with curl, logging in as one store's manager.
pub fn print_try_it(chain: &Chain) {
    let Some(n) = chain.nodes.first() else { return };
    let m = &n.staff.manager;
    println!(
        "\nThe chain keeps running. Demo credentials are in the data directory's staff.json; for example:"
    );
    println!(
        "  T=$(curl -s {}/v1/auth/login -H 'content-type: application/json' \\\n      -d '{{\"username\":\"{}\",\"password\":\"{}\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        n.url,
        m.username,
        m.password.as_ref().map(|p| p.expose()).unwrap_or("")
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $T\" {}/v1/reports/daily",
        n.url
    );
    println!("  curl -s -H \"Authorization: Bearer $T\" {}/v1/audit", n.url);
    for n in &chain.nodes {
        println!(
            "  {:<16} {}   (manager {}, cashier {})",
            n.store.as_str(),
            n.url,
            n.staff.manager.username,
            n.staff.cashier.username
        );
    }
    println!(
        "Head office's admin API {} (admin {} / {}):",
        chain.server_url,
        chain.hq_admin.username,
        chain.hq_admin.password.as_ref().map(|p| p.expose()).unwrap_or("")
    );
    println!(
        "  H=$(curl -s {}/v1/auth/login -H 'content-type: application/json' \\\n      -d '{{\"username\":\"{}\",\"password\":\"{}\"}}' | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        chain.server_url,
        chain.hq_admin.username,
        chain.hq_admin.password.as_ref().map(|p| p.expose()).unwrap_or("")
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $H\" {}/v1/reports/sales",
        chain.server_url
    );
    println!(
        "  curl -s -H \"Authorization: Bearer $H\" '{}/v1/audit?limit=5'",
        chain.server_url
    );
    println!("Ctrl-C stops it.");
}
