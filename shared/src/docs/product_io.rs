//! A catalog product as both HTTP APIs take and return it: [`ProductInput`] (the body of
//! `PUT /v1/products/{sku}` at the node and at head office, one row of the node's CSV
//! import, one item of head office's batch) and [`ProductView`] (every product in a
//! response). One definition, so the node and head office accept and answer the same
//! shape; the rules themselves are [`Product::validated`].
//!
//! Decimals are text on the wire: a JSON string (`"2.55"`) or a JSON integer (`3`), never a
//! JSON number with a fraction, which serde_json would read through a binary float
//! ([`money::de_decimal_text`]). They are parsed ([`money::parse_decimal`]) when the input is
//! validated, so a bad one is refused naming its field.
//!
//! Compatibility: fields are append-only; a new input field is optional.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Product, ProductError};
use crate::money;

/// A product as written by clients: the body of `PUT /v1/products/{sku}` (the SKU is in
/// the path). An unknown field is refused (a typo such as `tax_rat` would otherwise clear
/// the tax rate chain-wide).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    /// Display name, 1-200 characters (trimmed).
    pub name: String,
    /// Unit price, tax exclusive, in major units: a non-negative decimal with at most 6
    /// decimals, as a string (a JSON integer is taken too).
    #[serde(deserialize_with = "money::de_decimal_text")]
    #[cfg_attr(feature = "http", schema(value_type = String, example = "2.55"))]
    pub unit_price: String,
    /// Exclusive tax rate as a fraction between 0 and 1 (`"0.05"`), as a string (a JSON
    /// integer is taken too); default 0.
    #[serde(default, deserialize_with = "money::de_opt_decimal_text")]
    #[cfg_attr(feature = "http", schema(value_type = Option<String>, example = "0.05"))]
    pub tax_rate: Option<String>,
    /// EAN-13 or UPC-A barcode with a valid check digit; blank means none.
    #[serde(default)]
    pub barcode: Option<String>,
    /// Category; blank means none.
    #[serde(default)]
    pub category: Option<String>,
    /// Whether the item has stock on hand; default true.
    #[serde(default)]
    pub stock_tracked: Option<bool>,
}

impl ProductInput {
    /// Parses the decimals and validates the product `sku` by the chain's rules
    /// ([`Product::validated`]), filling the defaults (tax rate 0, stock tracked).
    ///
    /// # Errors
    /// [`ProductError`] naming the first field that is wrong: `unit_price` or `tax_rate`
    /// for text that is not a decimal in plain notation (the reason quotes it), or any
    /// refusal of [`Product::validated`].
    pub fn validated(self, sku: &str) -> Result<Product, ProductError> {
        let decimal = |field: &'static str, text: &str| {
            money::parse_decimal(text).map_err(|e| ProductError {
                field,
                reason: format!("{text:?}: {e}"),
            })
        };
        Product {
            sku: sku.to_string(),
            unit_price: decimal("unit_price", &self.unit_price)?,
            tax_rate: match &self.tax_rate {
                Some(t) => decimal("tax_rate", t)?,
                None => Decimal::ZERO,
            },
            name: self.name,
            barcode: self.barcode,
            category: self.category,
            stock_tracked: self.stock_tracked.unwrap_or(true),
        }
        .validated()
    }
}

/// A product as the APIs return it; decimals are strings (the unit price as stored, the
/// tax rate normalised: `"0.2"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct ProductView {
    /// Stock keeping unit.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Unit price, tax exclusive, major units.
    pub unit_price: String,
    /// Exclusive tax rate as a fraction.
    pub tax_rate: String,
    /// Normalised 13-digit GTIN, if any.
    pub barcode: Option<String>,
    /// Category, if any.
    pub category: Option<String>,
    /// Whether the item has stock on hand.
    pub stock_tracked: bool,
}

impl From<Product> for ProductView {
    fn from(p: Product) -> Self {
        ProductView {
            sku: p.sku,
            name: p.name,
            unit_price: p.unit_price.to_string(),
            tax_rate: p.tax_rate.normalize().to_string(),
            barcode: p.barcode,
            category: p.category,
            stock_tracked: p.stock_tracked,
        }
    }
}

impl From<&Product> for ProductView {
    fn from(p: &Product) -> Self {
        ProductView::from(p.clone())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn input(json: serde_json::Value) -> Result<ProductInput, String> {
        serde_json::from_value(json).map_err(|e| e.to_string())
    }

    #[test]
    fn validates_into_a_product_with_defaults() {
        let p = input(serde_json::json!({"name": " Tea ", "unit_price": "2.50", "barcode": " "}))
            .unwrap()
            .validated("TEA-1")
            .unwrap();
        assert_eq!(p.name, "Tea");
        assert_eq!(p.unit_price.to_string(), "2.50");
        assert_eq!(p.tax_rate, Decimal::ZERO);
        assert_eq!(p.barcode, None);
        assert!(p.stock_tracked);
        let v = ProductView::from(&p);
        assert_eq!((v.unit_price.as_str(), v.tax_rate.as_str()), ("2.50", "0"));
        let p = input(serde_json::json!({"name": "x", "unit_price": 3, "tax_rate": "0.20"}))
            .unwrap()
            .validated("X")
            .unwrap();
        assert_eq!(ProductView::from(p).tax_rate, "0.2");
    }

    #[test]
    fn bad_input_names_the_field() {
        for (json, field, says) in [
            (
                serde_json::json!({"name": "x", "unit_price": "1e3"}),
                "unit_price",
                "\"1e3\"",
            ),
            (
                serde_json::json!({"name": "x", "unit_price": "cheap"}),
                "unit_price",
                "cheap",
            ),
            (
                serde_json::json!({"name": "x", "unit_price": "1", "tax_rate": "2,5"}),
                "tax_rate",
                "2,5",
            ),
            (
                serde_json::json!({"name": "x", "unit_price": "-1"}),
                "unit_price",
                "negative",
            ),
            (
                serde_json::json!({"name": " ", "unit_price": "1"}),
                "name",
                "1-200",
            ),
        ] {
            let e = input(json.clone()).unwrap().validated("X").unwrap_err();
            assert_eq!(e.field, field, "{json}");
            assert!(e.reason.contains(says), "{json}: {e}");
        }
        assert!(
            input(serde_json::json!({"name": "x", "unit_price": 2.55}))
                .unwrap_err()
                .contains("not exact")
        );
        assert!(
            input(serde_json::json!({"name": "x", "unit_price": "1", "tax_rat": "0"}))
                .unwrap_err()
                .contains("tax_rat")
        );
    }
}
