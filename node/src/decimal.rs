//! Serde helpers for decimal inputs: a JSON string (`"2.55"`, preferred, exact) or a JSON
//! number (`2.55`, read through its shortest text form, so `2.55` stays `2.55`).

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Unexpected;
use serde::{Deserialize, Deserializer};

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Int(i64),
    Float(f64),
    Text(String),
}

fn convert<E: serde::de::Error>(raw: Raw) -> Result<Decimal, E> {
    // `invalid_value` (not `custom`): the HTTP layer reports these as invalid input naming
    // the field, like any other refused value.
    match raw {
        Raw::Int(i) => Ok(Decimal::from(i)),
        Raw::Float(f) => {
            if !f.is_finite() {
                return Err(E::invalid_value(Unexpected::Float(f), &"a finite number"));
            }
            Decimal::from_str(&f.to_string())
                .map_err(|_| E::invalid_value(Unexpected::Float(f), &"a decimal number we can hold"))
        }
        // Plain notation only: "1e3" in a price field is far likelier a typo than 1000.
        Raw::Text(s) => caja_shared::money::parse_decimal(&s)
            .ok_or_else(|| E::invalid_value(Unexpected::Str(&s), &"a decimal number like \"2.55\"")),
    }
}

/// Deserializes a required decimal.
///
/// # Errors
/// A serde error naming the bad value.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    convert(Raw::deserialize(d)?)
}

/// Deserializes an optional decimal (`null` or absent is `None`).
///
/// # Errors
/// A serde error naming the bad value.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(r) => convert(r).map(Some),
    }
}

/// Checks a quantity: non-zero unless `allow_zero`, positive unless `allow_negative`, at
/// most 3 decimals (quantities are summed exactly in thousandths), at most 1,000,000.
///
/// # Errors
/// The reason, for the caller to attach to the field name.
pub fn check_quantity(q: Decimal, allow_negative: bool) -> Result<(), String> {
    if q.is_zero() {
        return Err("must not be zero".into());
    }
    if q.is_sign_negative() && !allow_negative {
        return Err(format!("must be positive, got {q}"));
    }
    if q.normalize().scale() > 3 {
        return Err(format!("{q} has more than 3 decimals"));
    }
    if q.abs() > Decimal::from(1_000_000) {
        return Err(format!("{q} is more than 1,000,000"));
    }
    Ok(())
}

/// Checks a unit price: non-negative, at most 6 decimals, at most 10,000,000.
///
/// # Errors
/// The reason.
pub fn check_price(p: Decimal) -> Result<(), String> {
    if p.is_sign_negative() && !p.is_zero() {
        return Err(format!("must not be negative, got {p}"));
    }
    if p.normalize().scale() > 6 {
        return Err(format!("{p} has more than 6 decimals"));
    }
    if p > Decimal::from(10_000_000) {
        return Err(format!("{p} is more than 10,000,000"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Price {
        #[serde(deserialize_with = "de")]
        p: Decimal,
    }

    fn parse(json: &str) -> Result<Decimal, String> {
        serde_json::from_str::<Price>(json)
            .map(|x| x.p)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn text_and_numbers_are_exact_and_scientific_text_is_refused() {
        assert_eq!(parse(r#"{"p": "2.55"}"#).unwrap().to_string(), "2.55");
        assert_eq!(parse(r#"{"p": 2.55}"#).unwrap().to_string(), "2.55");
        assert_eq!(parse(r#"{"p": 3}"#).unwrap(), Decimal::from(3));
        for bad in [
            r#"{"p": "1e3"}"#,
            r#"{"p": "2,55"}"#,
            r#"{"p": "abc"}"#,
            r#"{"p": ""}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("a decimal number like"), "{bad}: {e}");
        }
    }
}
