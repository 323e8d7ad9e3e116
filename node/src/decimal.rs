//! Serde helpers for decimal inputs: a JSON string (`"2.55"`, exact, in plain notation:
//! see [`caja_shared::money::parse_decimal`]) or a JSON integer (`3`). A JSON number with
//! a fraction or an exponent (`2.55`, `1e3`) is refused: serde_json reads it through a
//! binary float, so `2.5500000000000000001` would silently become `2.55`; the message
//! says to send a string.

use caja_shared::money::{self, DecimalError};
use rust_decimal::Decimal;
use serde::de::{Error, Unexpected};
use serde::{Deserialize, Deserializer};

/// Deserializes a required decimal: the text of [`money::de_decimal_text`] parsed by
/// [`money::parse_decimal`]. Errors are `invalid_value`, which the HTTP layer reports as
/// invalid input naming the field.
///
/// # Errors
/// A serde error naming the bad value.
pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    let text = money::de_decimal_text(d)?;
    // serde words these "invalid value: string "2_5", expected <this>".
    money::parse_decimal(&text).map_err(|e| match e {
        DecimalError::NotDecimal => D::Error::invalid_value(
            Unexpected::Str(&text),
            &"a decimal number like \"2.55\" (digits with at most one point, an optional sign; no exponent or separators)",
        ),
        DecimalError::TooLarge => D::Error::invalid_value(Unexpected::Str(&text), &"a number of at most 28 digits"),
    })
}

/// Deserializes an optional decimal (`null` or absent is `None`).
///
/// # Errors
/// A serde error naming the bad value.
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    #[derive(Deserialize)]
    struct Value(#[serde(deserialize_with = "de")] Decimal);
    Ok(Option::<Value>::deserialize(d)?.map(|v| v.0))
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
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Price {
        #[serde(deserialize_with = "de")]
        p: Decimal,
        #[serde(default, deserialize_with = "de_opt")]
        q: Option<Decimal>,
    }

    fn parse(json: &str) -> Result<(Decimal, Option<Decimal>), String> {
        serde_json::from_str::<Price>(json)
            .map(|x| (x.p, x.q))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn strings_and_integers_are_exact_and_everything_else_is_refused_clearly() {
        assert_eq!(parse(r#"{"p": "2.55"}"#).unwrap().0.to_string(), "2.55");
        assert_eq!(parse(r#"{"p": 3}"#).unwrap().0, Decimal::from(3));
        assert_eq!(
            parse(r#"{"p": 18446744073709551615}"#).unwrap().0,
            Decimal::from(u64::MAX)
        );
        assert_eq!(parse(r#"{"p": "1", "q": null}"#).unwrap().1, None);
        assert_eq!(
            parse(r#"{"p": "1", "q": "0.2"}"#).unwrap().1.unwrap().to_string(),
            "0.2"
        );
        for (bad, says) in [
            (r#"{"p": "1e3"}"#, "expected a decimal number like \"2.55\""),
            (r#"{"p": "2,55"}"#, "expected a decimal number like \"2.55\""),
            (r#"{"p": "2_5"}"#, "expected a decimal number like \"2.55\""),
            (r#"{"p": ""}"#, "expected a decimal number like \"2.55\""),
            (
                r#"{"p": "99999999999999999999999999999999"}"#,
                "at most 28 digits",
            ),
            (r#"{"p": 2.55}"#, "not exact"),
            (r#"{"p": 1e3}"#, "not exact"),
            (r#"{"p": 2.5500000000000000001}"#, "not exact"),
            (r#"{"p": 123456789012345678901234567890}"#, "not exact"),
            (r#"{"p": null}"#, "as a string"),
            (r#"{"p": true}"#, "as a string"),
            (r#"{"p": []}"#, "as a string"),
            (r#"{"p": "1", "q": 0.2}"#, "not exact"),
            (r#"{"p": "1", "q": {}}"#, "as a string"),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
