//! Catalog operations of head office on the server's replica: writing products,
//! reading them back and the catalog's heads.

use caja_shared::docs::{self, DocId, Product};
use caja_shared::docstore;

use crate::audit::{Actor, NewEntry};
use crate::error::ServerError;
use crate::server::SyncServer;
use crate::server::hub::Core;

/// The catalog's state as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogSummary {
    /// Heads of the catalog document, sorted lowercase hex.
    pub heads: Vec<String>,
    /// Number of products.
    pub products: usize,
}

impl SyncServer {
    /// Writes products into the chain catalog on behalf of `by` (recorded in the audit
    /// log as `catalog.changed`) in ONE automerge transaction, persists it, and pushes the
    /// change to every connected node. Products are validated first
    /// ([`validate_product`]); barcodes are normalised to 13 digits.
    ///
    /// # Errors
    /// [`ServerError::Invalid`] for a bad product (nothing is written);
    /// [`ServerError::Doc`] / [`ServerError::DocStore`] / [`ServerError::Sqlite`].
    pub async fn put_products(&self, by: &Actor, products: Vec<Product>) -> Result<(), ServerError> {
        let by = by.clone();
        let products = products
            .into_iter()
            .map(validate_product)
            .collect::<Result<Vec<_>, _>>()?;
        let changed = self
            .hub()
            .with_core(move |core| put_products(core, &by, &products))
            .await??;
        if changed {
            self.hub().changed(DocId::Catalog);
        }
        Ok(())
    }

    /// One product of the catalog, or `None`.
    ///
    /// # Errors
    /// [`ServerError::Doc`] / [`ServerError::DocStore`].
    pub async fn product(&self, sku: &str) -> Result<Option<Product>, ServerError> {
        let sku = sku.to_string();
        self.hub().with_core(move |core| product(core, &sku)).await?
    }

    /// A page of the catalog in SKU order: up to `limit` (1..=1000) products after the SKU
    /// `after` whose SKU, name or barcode contains `q` (case-insensitive), and whether more
    /// follow.
    ///
    /// # Errors
    /// [`ServerError::Doc`] / [`ServerError::DocStore`].
    pub(crate) async fn products(
        &self,
        q: Option<String>,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<Product>, bool), ServerError> {
        self.hub()
            .with_core(move |core| products(core, q.as_deref(), after.as_deref(), limit))
            .await?
    }

    /// Hex strings of the catalog document's heads (sorted), so callers can wait until a
    /// node has the same catalog.
    ///
    /// # Errors
    /// [`ServerError::DocStore`] if the catalog cannot be loaded.
    pub async fn catalog_heads(&self) -> Result<Vec<String>, ServerError> {
        self.hub().with_core(heads).await?
    }

    /// The catalog's heads and number of products.
    ///
    /// # Errors
    /// [`ServerError::Doc`] / [`ServerError::DocStore`].
    pub(crate) async fn catalog_summary(&self) -> Result<CatalogSummary, ServerError> {
        self.hub()
            .with_core(|core| {
                Ok(CatalogSummary {
                    heads: heads(core)?,
                    products: product_count(core)?,
                })
            })
            .await?
    }
}

/// Makes sure the catalog exists on disk (its shared genesis change), so it is announced
/// to nodes from the first connection.
///
/// # Errors
/// [`ServerError::DocStore`] / [`ServerError::Sqlite`].
pub(crate) fn ensure(core: &mut Core) -> Result<(), ServerError> {
    if docstore::all_heads(&core.conn)?
        .iter()
        .any(|(d, _)| *d == DocId::Catalog)
    {
        return Ok(());
    }
    let Core { conn, cache, .. } = core;
    let am = cache.get_or_create(conn, &DocId::Catalog)?;
    docstore::persist(conn, &DocId::Catalog, am, &[])?;
    Ok(())
}

/// At most this many SKUs are listed in one `catalog.changed` audit entry.
const AUDIT_SKUS: usize = 100;

/// Writes products in one automerge transaction and persists the change, with a
/// `catalog.changed` audit entry (who, how many, the first 100 SKUs that changed) in the
/// same SQLite transaction when anything changed. Returns whether the catalog changed.
///
/// # Errors
/// [`ServerError::Doc`] / [`ServerError::DocStore`] / [`ServerError::Sqlite`]; the
/// in-memory catalog is then dropped so it reloads from disk.
pub(crate) fn put_products(core: &mut Core, by: &Actor, products: &[Product]) -> Result<bool, ServerError> {
    let result: Result<bool, ServerError> = (|| {
        let Core { conn, cache, .. } = &mut *core;
        let am = cache.get_or_create(conn, &DocId::Catalog)?;
        let before = am.get_heads();
        docs::put_products(am, products)?;
        let after = am.get_heads();
        if after == before {
            return Ok(false);
        }
        let tx = conn.transaction()?;
        docstore::persist(&tx, &DocId::Catalog, am, &before)?;
        let skus = docs::changed_skus(am, &before, &after);
        let shown: Vec<&String> = skus.iter().take(AUDIT_SKUS).collect();
        crate::audit::record(
            &tx,
            &NewEntry::new(
                "catalog.changed",
                serde_json::json!({"products": skus.len(), "skus": shown}),
            )
            .by(by),
        )?;
        tx.commit()?;
        Ok(true)
    })();
    if result.is_err() {
        core.cache.forget(&DocId::Catalog);
    }
    result
}

/// The catalog's heads as sorted lowercase hex strings.
///
/// # Errors
/// [`ServerError::DocStore`] if the catalog cannot be loaded.
pub(crate) fn heads(core: &mut Core) -> Result<Vec<String>, ServerError> {
    let Core { conn, cache, .. } = core;
    let am = cache.get_or_create(conn, &DocId::Catalog)?;
    let mut out: Vec<String> = am.get_heads().iter().map(|h| hex::encode(h.0)).collect();
    out.sort();
    Ok(out)
}

/// One product, or `None`.
///
/// # Errors
/// [`ServerError::Doc`] when the stored product is invalid; [`ServerError::DocStore`].
pub(crate) fn product(core: &mut Core, sku: &str) -> Result<Option<Product>, ServerError> {
    let Core { conn, cache, .. } = core;
    let am = cache.get_or_create(conn, &DocId::Catalog)?;
    Ok(docs::product(am, sku)?)
}

/// Most products one page of `SyncServer::products` holds.
pub const MAX_PAGE: usize = 1000;

/// Up to `limit` products (1..=[`MAX_PAGE`]) in SKU order, starting after the SKU `after`,
/// whose SKU, name or barcode contains `q` (case-insensitive; `None`: all); and whether
/// more follow.
///
/// # Errors
/// [`ServerError::Doc`] / [`ServerError::DocStore`].
pub(crate) fn products(
    core: &mut Core,
    q: Option<&str>,
    after: Option<&str>,
    limit: usize,
) -> Result<(Vec<Product>, bool), ServerError> {
    let Core { conn, cache, .. } = core;
    let am = cache.get_or_create(conn, &DocId::Catalog)?;
    let needle = q.map(str::to_lowercase);
    let limit = limit.clamp(1, MAX_PAGE);
    let mut page = Vec::new();
    // `skus` is sorted (automerge map keys are), so `after` is a stable cursor.
    for sku in docs::skus(am)?
        .into_iter()
        .filter(|s| after.is_none_or(|a| s.as_str() > a))
    {
        let Some(p) = docs::product(am, &sku)? else {
            continue;
        };
        let hit = needle.as_deref().is_none_or(|n| {
            p.sku.to_lowercase().contains(n)
                || p.name.to_lowercase().contains(n)
                || p.barcode.as_deref().is_some_and(|b| b.contains(n))
        });
        if hit {
            if page.len() == limit {
                return Ok((page, true));
            }
            page.push(p);
        }
    }
    Ok((page, false))
}

/// Number of products.
///
/// # Errors
/// [`ServerError::Doc`] / [`ServerError::DocStore`].
pub(crate) fn product_count(core: &mut Core) -> Result<usize, ServerError> {
    let Core { conn, cache, .. } = core;
    let am = cache.get_or_create(conn, &DocId::Catalog)?;
    Ok(docs::skus(am)?.len())
}

/// Checks and normalises a product before it enters the catalog, by the chain's one set
/// of rules ([`Product::validated`]).
///
/// # Errors
/// [`ServerError::Invalid`] saying which field is wrong and why.
pub fn validate_product(p: Product) -> Result<Product, ServerError> {
    let sku = p.sku.clone();
    p.validated()
        .map_err(|e| ServerError::Invalid(format!("product {sku:?}: {e}")))
}
