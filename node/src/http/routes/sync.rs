//! `/v1/sync`: the state of the link to the sync server, and switching it on or off.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use caja_shared::docs::DocId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::Node;
use crate::http::body;
use crate::http::error::{ApiError, Problem};
use crate::store::{StoreError, payments};

/// `GET /v1/sync/status` response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    /// This node's id.
    pub node_id: String,
    /// Its store.
    pub store: String,
    /// Whether a sync server is configured.
    pub configured: bool,
    /// Whether the link is switched on.
    pub enabled: bool,
    /// Whether a session with the server is live.
    pub connected: bool,
    /// The server address.
    pub server: Option<String>,
    /// Facts recorded here that the server has not acknowledged yet.
    pub pending_facts: u64,
    /// Last time the server was heard from (RFC 3339, UTC).
    pub last_sync_at: Option<String>,
    /// Last connection error.
    pub last_error: Option<String>,
    /// Heads of the local catalog document (hex): equal to the server's when in sync.
    pub catalog_heads: Vec<String>,
    /// Products in the local catalog.
    pub catalog_products: u64,
    /// UDP bytes sent to the server since the node started.
    pub bytes_sent: u64,
    /// UDP bytes received from the server since the node started.
    pub bytes_received: u64,
    /// Card payments stored offline here and not yet settled, and what the store's rules
    /// still allow.
    #[serde(default)]
    pub offline_cards: OfflineCards,
}

/// Card payments stored offline at this node and not yet settled (stored, forwarded or
/// authorized), with the acceptance window's countdown and the caps left. Amounts are
/// minor units of the store's currency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OfflineCards {
    /// How many.
    pub count: u64,
    /// Their total, minor units.
    pub amount_minor: i64,
    /// When the acceptance window ends (RFC 3339, UTC): the first outstanding stored
    /// payment plus the store's `window_secs`; absent when nothing is stored.
    #[serde(default)]
    pub window_ends_at: Option<String>,
    /// Seconds left in the window (0 once closed); absent when nothing is stored.
    #[serde(default)]
    pub window_secs_left: Option<i64>,
    /// How much more this node may store offline, minor units.
    pub node_cap_left_minor: i64,
    /// How much more the store's nodes together may store (as far as this node knows),
    /// minor units.
    pub store_cap_left_minor: i64,
}

/// Reads the offline-card figures on a read connection.
fn offline_cards(c: &rusqlite::Connection, node: &Node) -> Result<OfflineCards, StoreError> {
    let doc = DocId::Store {
        store: node.identity().store.clone(),
    };
    let settings = crate::sales::card::settings_from(c, &doc);
    let me = node.identity().node_id.to_string();
    let (count, amount, first) = payments::outstanding(c, Some(&me))?;
    let (_, store_amount, _) = payments::outstanding(c, None)?;
    let window_ms = i64::try_from(settings.window_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let end = first.map(|f| f.saturating_add(window_ms));
    let now = chrono::Utc::now().timestamp_millis();
    Ok(OfflineCards {
        count: count.max(0) as u64,
        amount_minor: amount,
        window_ends_at: end
            .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        window_secs_left: end.map(|e| (e.saturating_sub(now) / 1000).max(0)),
        node_cap_left_minor: (settings.node_cap_minor - amount).max(0),
        store_cap_left_minor: (settings.store_cap_minor - store_amount).max(0),
    })
}

/// The sync link's state.
#[utoipa::path(get, path = "/v1/sync/status", responses((status = 200, body = SyncStatus)))]
pub async fn status(State(node): State<Node>) -> Result<Json<SyncStatus>, ApiError> {
    let n = node.clone();
    let (pending, heads, products, cards) = node
        .db()
        .read(
            move |c| -> Result<(i64, Vec<String>, i64, OfflineCards), StoreError> {
                let pending: i64 = c.query_row(
                    "SELECT COUNT(*) FROM facts WHERE local = 1 AND acked = 0",
                    [],
                    |r| r.get(0),
                )?;
                let products: i64 = c.query_row("SELECT COUNT(*) FROM products", [], |r| r.get(0))?;
                let mut heads: Vec<String> = caja_shared::docstore::all_heads(c)
                    .map_err(StoreError::from)?
                    .into_iter()
                    .filter(|(d, _)| *d == DocId::Catalog)
                    .flat_map(|(_, h)| h.into_iter().map(|h| h.to_string()))
                    .collect();
                heads.sort();
                Ok((pending, heads, products, offline_cards(c, &n)?))
            },
        )
        .await?;
    let link = node.link();
    let st = link.status();
    Ok(Json(SyncStatus {
        node_id: node.identity().node_id.to_string(),
        store: node.identity().store.to_string(),
        configured: link.configured(),
        enabled: link.enabled(),
        connected: st.connected,
        server: link.server(),
        pending_facts: pending as u64,
        last_sync_at: st.last_sync_at.map(|t| t.to_rfc3339()),
        last_error: st.last_error,
        catalog_heads: heads,
        catalog_products: products as u64,
        bytes_sent: st.bytes_sent,
        bytes_received: st.bytes_received,
        offline_cards: cards,
    }))
}

/// `PUT /v1/sync/link` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkRequest {
    /// `false` takes the store offline (sales go on; facts wait); `true` reconnects.
    pub enabled: bool,
}

/// Switches the sync link on or off.
#[utoipa::path(put, path = "/v1/sync/link", request_body = LinkRequest,
    responses((status = 200, body = SyncStatus), (status = 400, body = Problem)))]
pub async fn set_link(
    State(node): State<Node>,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<SyncStatus>, ApiError> {
    let req: LinkRequest = body::json(&headers, &bytes?)?;
    node.link().set_enabled(req.enabled);
    status(State(node)).await
}
