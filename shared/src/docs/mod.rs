//! Documents: ids and the automerge schemas Caja replicates.
//!
//! - `catalog`: one per chain. Root key `products` (a map created by a fixed genesis change
//!   that every replica shares, so no two replicas create competing `products` maps) holding
//!   one map per SKU with scalar fields. Concurrent edits resolve per field; automerge keeps
//!   the losing values visible as conflicts.
//! - `ledger/<store>/<yyyy-mm-dd>`: a store's facts of one business day, a grow-only map at
//!   the root from fact id to the fact's JSON ([`Fact::encode`]). One scalar per fact keeps
//!   automerge's cost per write low (see TOOLCHAIN.md).
//! - `store/<store>`: the staff allowed in a store (users with their argon2id hashes, role
//!   grants, disabled flags, session cut-offs) and the chain's custom roles, written by head
//!   office only; see [`store`].
//!
//! [`ProductInput`] and [`ProductView`] are a product as both HTTP APIs take and return it.
//!
//! Compatibility rule: product fields are append-only; readers ignore fields they do not
//! know and default the ones that are missing.

use std::fmt;
use std::str::FromStr;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, PatchAction, ROOT, ReadDoc, ScalarValue, Value};
use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::facts::{Fact, FactError};
use crate::ids::StoreCode;

mod product_io;
pub mod store;

pub use product_io::{ProductInput, ProductView};

/// Errors reading or writing documents.
#[derive(Debug, thiserror::Error)]
pub enum DocError {
    /// The document id text is not `catalog`, `ledger/<store>/<yyyy-mm-dd>` or
    /// `store/<store>`.
    #[error(
        "bad document id {0:?}: expected \"catalog\", \"ledger/<store>/<yyyy-mm-dd>\" or \"store/<store>\""
    )]
    BadDocId(String),
    /// Automerge refused an operation or the bytes of a document.
    #[error("automerge: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    /// The document does not have the shape its schema requires.
    #[error("document does not follow its schema: {0}")]
    Schema(String),
    /// A stored fact could not be decoded.
    #[error("fact {key}: {source}")]
    Fact {
        /// The map key (fact id) of the fact.
        key: String,
        /// Why it failed.
        source: FactError,
    },
}

/// The id of a replicated document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DocId {
    /// The chain's catalog.
    Catalog,
    /// One store's facts of one business day.
    Ledger {
        /// The store.
        store: StoreCode,
        /// The business day.
        date: NaiveDate,
    },
    /// One store's staff and roles (written by head office).
    Store {
        /// The store.
        store: StoreCode,
    },
}

impl DocId {
    /// The store whose ledger or staff document this is (`None` for the catalog).
    pub fn store(&self) -> Option<&StoreCode> {
        match self {
            DocId::Catalog => None,
            DocId::Ledger { store, .. } | DocId::Store { store } => Some(store),
        }
    }

    /// Whether only head office writes this document (nodes may only read it).
    pub fn written_by_head_office(&self) -> bool {
        matches!(self, DocId::Store { .. })
    }
}

/// Parses a business day written `yyyy-mm-dd` with a four-digit year (chrono alone also
/// takes `26-12-04` as the year 26, which would read a typo as a day with no trading).
/// The form of ledger ids and of every `date`/`from`/`to` parameter.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shape = b.len() == 10 && b[4] == b'-' && b[7] == b'-';
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocId::Catalog => f.write_str("catalog"),
            DocId::Ledger { store, date } => write!(f, "ledger/{store}/{}", date.format("%Y-%m-%d")),
            DocId::Store { store } => write!(f, "store/{store}"),
        }
    }
}

impl FromStr for DocId {
    type Err = DocError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "catalog" {
            return Ok(DocId::Catalog);
        }
        let bad = || DocError::BadDocId(s.to_string());
        let mut parts = s.split('/');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("ledger"), Some(store), Some(date), None) => Ok(DocId::Ledger {
                store: store.parse().map_err(|_| bad())?,
                date: parse_day(date).ok_or_else(bad)?,
            }),
            (Some("store"), Some(store), None, None) => Ok(DocId::Store {
                store: store.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for DocId {
    type Error = DocError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DocId> for String {
    fn from(d: DocId) -> String {
        d.to_string()
    }
}

/// A product in the catalog. Prices are tax exclusive, in major units of the chain currency,
/// and may carry more decimals than the currency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Product {
    /// Stock keeping unit: 1-64 characters, no control characters.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price (major units, tax exclusive), e.g. `2.55`.
    #[serde(with = "rust_decimal::serde::str")]
    pub unit_price: Decimal,
    /// Exclusive tax rate as a fraction (`0.05` = 5 %); default 0.
    #[serde(default, with = "rust_decimal::serde::str")]
    pub tax_rate: Decimal,
    /// Normalised 13-digit GTIN (EAN-13, or UPC-A with a leading 0), if any.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Category name, if any.
    #[serde(default)]
    pub category: Option<String>,
    /// Whether the item has stock on hand (false for postage, fees, discounts).
    #[serde(default = "yes")]
    pub stock_tracked: bool,
}

fn yes() -> bool {
    true
}

/// Why a product was refused ([`Product::validated`]).
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct ProductError {
    /// The field, e.g. `unit_price`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

/// Longest SKU, in characters.
pub const MAX_SKU_CHARS: usize = 64;
/// Longest product name or category, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Checks a SKU: 1-64 characters, no control characters, no surrounding spaces.
///
/// # Errors
/// [`ProductError`] on field `sku`.
pub fn check_sku(sku: &str) -> Result<(), ProductError> {
    let n = sku.chars().count();
    if n == 0 || n > MAX_SKU_CHARS || sku.chars().any(char::is_control) || sku.trim() != sku {
        return Err(ProductError {
            field: "sku",
            reason: format!(
                "{sku:?} must be 1-{MAX_SKU_CHARS} characters without control characters or surrounding spaces"
            ),
        });
    }
    Ok(())
}

impl Product {
    /// The one set of catalog rules, used by the node and the sync server alike: SKU per
    /// [`check_sku`]; name trimmed, 1-200 characters, no control characters; unit price
    /// non-negative with at most 6 decimals and at most 10,000,000; tax rate a fraction
    /// between 0 and 1; barcode a valid EAN-13 / UPC-A (GS1 check digit) normalised to 13
    /// digits, blank meaning none; category trimmed, at most 200 characters, blank meaning
    /// none.
    ///
    /// # Errors
    /// [`ProductError`] naming the first field that is wrong.
    pub fn validated(mut self) -> Result<Product, ProductError> {
        let err = |field: &'static str, reason: String| Err(ProductError { field, reason });
        check_sku(&self.sku)?;
        self.name = self.name.trim().to_string();
        let n = self.name.chars().count();
        if n == 0 || n > MAX_NAME_CHARS || self.name.chars().any(char::is_control) {
            return err(
                "name",
                format!("must be 1-{MAX_NAME_CHARS} characters without control characters"),
            );
        }
        let p = self.unit_price;
        if p.is_sign_negative() && !p.is_zero() {
            return err("unit_price", format!("must not be negative, got {p}"));
        }
        if p.normalize().scale() > 6 {
            return err("unit_price", format!("{p} has more than 6 decimals"));
        }
        if p > Decimal::from(10_000_000) {
            return err("unit_price", format!("{p} is more than 10,000,000"));
        }
        let t = self.tax_rate;
        if (t.is_sign_negative() && !t.is_zero()) || t > Decimal::ONE {
            return err("tax_rate", format!("{t} must be a fraction between 0 and 1"));
        }
        self.barcode = match self.barcode.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(b) => match crate::barcode::normalize_gtin(b) {
                Ok(code) => Some(code),
                Err(e) => return err("barcode", e.to_string()),
            },
        };
        self.category = self
            .category
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty());
        if let Some(c) = &self.category
            && (c.chars().count() > MAX_NAME_CHARS || c.chars().any(char::is_control))
        {
            return err(
                "category",
                format!("must be at most {MAX_NAME_CHARS} characters without control characters"),
            );
        }
        Ok(self)
    }
}

const PRODUCTS: &str = "products";

/// A fresh catalog replica: the shared genesis change (fixed actor, fixed time), then a
/// random actor for this replica's own edits. Every replica built this way can merge with
/// every other.
///
/// # Errors
/// Only if automerge fails on an empty document, which would be a bug in automerge.
pub fn catalog_genesis() -> Result<Automerge, DocError> {
    let mut doc = Automerge::new().with_actor(ActorId::from([0u8; 16]));
    let mut tx = doc.transaction();
    tx.put_object(ROOT, PRODUCTS, ObjType::Map)?;
    tx.commit_with(CommitOptions::default().with_time(0));
    doc.set_actor(ActorId::random());
    Ok(doc)
}

/// A fresh, empty ledger replica with a random actor.
pub fn ledger_empty() -> Automerge {
    Automerge::new()
}

/// A fresh replica of any document.
///
/// # Errors
/// See [`catalog_genesis`].
pub fn empty_doc(id: &DocId) -> Result<Automerge, DocError> {
    match id {
        DocId::Catalog => catalog_genesis(),
        DocId::Ledger { .. } => Ok(ledger_empty()),
        DocId::Store { .. } => store::genesis(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn products_obj(doc: &impl ReadDoc) -> Result<automerge::ObjId, DocError> {
    match doc.get(ROOT, PRODUCTS)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(DocError::Schema("catalog has no products map".into())),
    }
}

/// Writes (creates or updates) products in one automerge transaction. Only fields whose
/// value changed are written, so an unchanged product costs nothing.
///
/// # Errors
/// [`DocError::Schema`] when the document is not a catalog; [`DocError::Automerge`].
pub fn put_products(doc: &mut Automerge, products: &[Product]) -> Result<(), DocError> {
    let root = products_obj(doc)?;
    let mut tx = doc.transaction();
    for p in products {
        let obj = match tx.get(&root, p.sku.as_str())? {
            Some((Value::Object(ObjType::Map), id)) => id,
            _ => tx.put_object(&root, p.sku.as_str(), ObjType::Map)?,
        };
        let fields: [(&str, Option<ScalarValue>); 6] = [
            ("name", Some(ScalarValue::Str(p.name.as_str().into()))),
            (
                "unit_price",
                Some(ScalarValue::Str(p.unit_price.to_string().into())),
            ),
            ("tax_rate", Some(ScalarValue::Str(p.tax_rate.to_string().into()))),
            (
                "barcode",
                p.barcode.as_deref().map(|b| ScalarValue::Str(b.into())),
            ),
            (
                "category",
                p.category.as_deref().map(|c| ScalarValue::Str(c.into())),
            ),
            ("stock_tracked", Some(ScalarValue::Boolean(p.stock_tracked))),
        ];
        for (key, value) in fields {
            let current = match tx.get(&obj, key)? {
                Some((Value::Scalar(s), _)) => Some(s.into_owned()),
                _ => None,
            };
            match value {
                Some(v) if current.as_ref() != Some(&v) => tx.put(&obj, key, v)?,
                None if current.is_some() => tx.delete(&obj, key)?,
                _ => {}
            }
        }
    }
    tx.commit_with(CommitOptions::default().with_time(now_secs()));
    Ok(())
}

fn str_field(doc: &impl ReadDoc, obj: &automerge::ObjId, key: &str) -> Result<Option<String>, DocError> {
    Ok(match doc.get(obj, key)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(t) => Some(t.to_string()),
            _ => None,
        },
        _ => None,
    })
}

/// Reads one product, or `None` if the SKU is not in the catalog.
///
/// # Errors
/// [`DocError::Schema`] when the stored fields are not valid (e.g. a price that is not a
/// decimal).
pub fn product(doc: &impl ReadDoc, sku: &str) -> Result<Option<Product>, DocError> {
    let root = products_obj(doc)?;
    let obj = match doc.get(&root, sku)? {
        Some((Value::Object(ObjType::Map), id)) => id,
        _ => return Ok(None),
    };
    let decimal = |key: &str| -> Result<Decimal, DocError> {
        match str_field(doc, &obj, key)? {
            None => Ok(Decimal::ZERO),
            Some(t) => {
                Decimal::from_str(&t).map_err(|_| DocError::Schema(format!("product {sku}: {key} {t:?}")))
            }
        }
    };
    let stock_tracked = match doc.get(&obj, "stock_tracked")? {
        Some((Value::Scalar(s), _)) => !matches!(s.as_ref(), ScalarValue::Boolean(false)),
        _ => true,
    };
    Ok(Some(Product {
        sku: sku.to_string(),
        name: str_field(doc, &obj, "name")?.unwrap_or_default(),
        unit_price: decimal("unit_price")?,
        tax_rate: decimal("tax_rate")?,
        barcode: str_field(doc, &obj, "barcode")?,
        category: str_field(doc, &obj, "category")?,
        stock_tracked,
    }))
}

/// All SKUs in the catalog, sorted.
///
/// # Errors
/// [`DocError::Schema`] when the document is not a catalog.
pub fn skus(doc: &impl ReadDoc) -> Result<Vec<String>, DocError> {
    let root = products_obj(doc)?;
    Ok(doc.keys(&root).collect())
}

/// The SKUs whose products changed between two sets of heads (from automerge's diff), each
/// once, in the order of the diff.
pub fn changed_skus(doc: &Automerge, before: &[ChangeHash], after: &[ChangeHash]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    // A product gives several patches (one per field): dedupe with a set, not a scan of
    // `out`, which made a first catalog of a few thousand products quadratic.
    let mut seen = std::collections::HashSet::new();
    for patch in doc.diff(before, after) {
        // A product's own map sits at path [(root, "products"), (products, sku)]; a new
        // product shows as a PutMap on the products map itself.
        let sku = match (patch.path.len(), &patch.action) {
            (1, PatchAction::PutMap { key, .. }) => Some(key.clone()),
            (n, _) if n >= 2 => match &patch.path[1].1 {
                automerge::Prop::Map(k) => Some(k.clone()),
                automerge::Prop::Seq(_) => None,
            },
            _ => None,
        };
        if let Some(s) = sku
            && seen.insert(s.clone())
        {
            out.push(s);
        }
    }
    out
}

/// Appends facts to a ledger document in one automerge transaction. A fact already present
/// (same id) is left alone, so a retried write is harmless.
///
/// # Errors
/// [`DocError::Automerge`].
pub fn append_facts(doc: &mut Automerge, facts: &[Fact]) -> Result<(), DocError> {
    let mut tx = doc.transaction();
    for f in facts {
        let key = f.id.to_string();
        if tx.get(ROOT, key.as_str())?.is_none() {
            tx.put(ROOT, key.as_str(), f.encode())?;
        }
    }
    tx.commit_with(CommitOptions::default().with_time(now_secs()));
    Ok(())
}

fn decode_entry(key: &str, value: Value<'_>) -> Result<Fact, DocError> {
    match value {
        Value::Scalar(s) => match s.as_ref() {
            ScalarValue::Str(t) => Fact::decode(t).map_err(|source| DocError::Fact {
                key: key.to_string(),
                source,
            }),
            _ => Err(DocError::Schema(format!("ledger entry {key} is not a string"))),
        },
        Value::Object(_) => Err(DocError::Schema(format!("ledger entry {key} is an object"))),
    }
}

/// Every fact in a ledger document, in key (fact id, so creation) order. An entry that
/// cannot be decoded is returned as its error and does not hide the others.
pub fn ledger_facts(doc: &impl ReadDoc) -> Vec<Result<Fact, DocError>> {
    doc.keys(ROOT)
        .map(|k| match doc.get(ROOT, k.as_str()) {
            Ok(Some((v, _))) => decode_entry(&k, v),
            Ok(None) => Err(DocError::Schema(format!("ledger entry {k} vanished"))),
            Err(e) => Err(e.into()),
        })
        .collect()
}

/// Number of facts in a ledger document.
pub fn ledger_len(doc: &impl ReadDoc) -> usize {
    doc.length(ROOT)
}

/// The facts added between two sets of heads of a ledger document.
pub fn new_facts(
    doc: &Automerge,
    before: &[ChangeHash],
    after: &[ChangeHash],
) -> Vec<Result<Fact, DocError>> {
    doc.diff(before, after)
        .into_iter()
        .filter(|p| p.path.is_empty())
        .filter_map(|p| match p.action {
            PatchAction::PutMap { key, value, .. } => Some(decode_entry(&key, value.0)),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::{self, SyncDoc};

    fn p(sku: &str, price: &str) -> Product {
        Product {
            sku: sku.into(),
            name: format!("item {sku}"),
            unit_price: Decimal::from_str(price).unwrap(),
            tax_rate: Decimal::ZERO,
            barcode: None,
            category: None,
            stock_tracked: true,
        }
    }

    fn sync_pair(a: &mut Automerge, b: &mut Automerge) {
        let (mut sa, mut sb) = (sync::State::new(), sync::State::new());
        for _ in 0..20 {
            let m1 = a.generate_sync_message(&mut sa);
            let m2 = b.generate_sync_message(&mut sb);
            if m1.is_none() && m2.is_none() {
                return;
            }
            if let Some(m) = m1 {
                b.receive_sync_message(&mut sb, m).unwrap();
            }
            if let Some(m) = m2 {
                a.receive_sync_message(&mut sa, m).unwrap();
            }
        }
    }

    #[test]
    fn product_rules() {
        let ok = p("A-1", "2.55").validated().unwrap();
        assert_eq!(ok.name, "item A-1");
        let mut b = p("A", "1");
        b.barcode = Some("036000291452".into());
        assert_eq!(b.validated().unwrap().barcode.as_deref(), Some("0036000291452"));
        for (sku, price, field) in [
            ("", "1", "sku"),
            (" A", "1", "sku"),
            ("A\u{7}", "1", "sku"),
            ("A", "-1", "unit_price"),
            ("A", "1.0000001", "unit_price"),
        ] {
            assert_eq!(
                p(sku, price).validated().unwrap_err().field,
                field,
                "{sku:?} {price}"
            );
        }
        let mut t = p("A", "1");
        t.tax_rate = Decimal::from(2);
        assert_eq!(t.validated().unwrap_err().field, "tax_rate");
        let mut n = p("A", "1");
        n.name = "   ".into();
        assert_eq!(n.validated().unwrap_err().field, "name");
        let mut bc = p("A", "1");
        bc.barcode = Some("4006381333932".into());
        assert_eq!(bc.validated().unwrap_err().field, "barcode");
    }

    #[test]
    fn doc_ids_round_trip_and_refuse_garbage() {
        let id: DocId = "ledger/united-kingdom/2010-12-01".parse().unwrap();
        assert_eq!(id.to_string(), "ledger/united-kingdom/2010-12-01");
        assert_eq!("catalog".parse::<DocId>().unwrap(), DocId::Catalog);
        let st: DocId = "store/uk".parse().unwrap();
        assert_eq!(st.to_string(), "store/uk");
        assert!(st.written_by_head_office() && !id.written_by_head_office());
        for bad in [
            "",
            "ledger",
            "ledger/UK/2010-12-01",
            "ledger/uk/2010-13-01",
            "ledger/uk/2010-12-01/x",
            "cat",
            "store",
            "store/UK",
            "store/uk/x",
        ] {
            assert!(bad.parse::<DocId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn genesis_is_shared_so_two_replicas_merge_products() {
        let mut hq = catalog_genesis().unwrap();
        let mut node = catalog_genesis().unwrap();
        assert_eq!(hq.get_heads(), node.get_heads());
        put_products(&mut hq, &[p("A", "1.50")]).unwrap();
        put_products(&mut node, &[p("B", "2.00")]).unwrap();
        sync_pair(&mut hq, &mut node);
        assert_eq!(skus(&hq).unwrap(), vec!["A", "B"]);
        assert_eq!(skus(&node).unwrap(), vec!["A", "B"]);
        assert_eq!(
            product(&node, "A").unwrap().unwrap().unit_price,
            Decimal::from_str("1.50").unwrap()
        );
    }

    #[test]
    fn changed_skus_sees_new_and_updated_products() {
        let mut doc = catalog_genesis().unwrap();
        put_products(&mut doc, &[p("A", "1"), p("B", "2")]).unwrap();
        let before = doc.get_heads();
        put_products(&mut doc, &[p("A", "1"), p("B", "3"), p("C", "4")]).unwrap();
        let mut changed = changed_skus(&doc, &before, &doc.get_heads());
        changed.sort();
        assert_eq!(changed, vec!["B", "C"]);
    }

    #[test]
    fn ledger_append_is_idempotent_and_diffable() {
        let f = crate::facts::tests_support::sample();
        let mut doc = ledger_empty();
        append_facts(&mut doc, std::slice::from_ref(&f)).unwrap();
        let before = doc.get_heads();
        append_facts(&mut doc, std::slice::from_ref(&f)).unwrap();
        assert_eq!(
            doc.get_heads(),
            before,
            "re-appending the same fact changes nothing"
        );
        assert_eq!(ledger_len(&doc), 1);
        let all = new_facts(&doc, &[], &doc.get_heads());
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].as_ref().unwrap(), &f);
    }
}
