//! Money: exact amounts as integer minor units with an ISO 4217 currency.
//!
//! The rounding rule lives here and nowhere else: line totals and tax are rounded
//! **half away from zero to the currency's minor unit, per line** ([`round_to_minor`]).
//! Unit prices may carry more decimals than the currency (`Decimal`); amounts never touch
//! floating point.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

/// Errors from parsing or computing money.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MoneyError {
    /// The currency code is not three ASCII uppercase letters or is not one we know.
    #[error("unknown currency {0:?}: expected an ISO 4217 code such as GBP, EUR or USD")]
    UnknownCurrency(String),
    /// A decimal amount could not be parsed.
    #[error("not a decimal amount: {0:?}")]
    BadAmount(String),
    /// The amount has more decimals than the currency's minor unit allows.
    #[error("{amount} has more decimals than {currency} allows ({exponent})")]
    TooPrecise {
        /// The amount as given.
        amount: String,
        /// The currency.
        currency: Currency,
        /// Digits after the decimal point the currency allows.
        exponent: u32,
    },
    /// The result does not fit in 64-bit minor units.
    #[error("amount out of range")]
    Overflow,
}

/// An ISO 4217 currency: its alphabetic code and the exponent of its minor unit.
///
/// Serialized as the three-letter code (`"GBP"`). Source of the exponents: ISO 4217
/// (list one); only the currencies Caja has been asked to trade in are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency {
    code: [u8; 3],
    exponent: u8,
}

/// (code, minor-unit exponent) from ISO 4217.
const KNOWN: &[(&str, u8)] = &[
    ("GBP", 2),
    ("EUR", 2),
    ("USD", 2),
    ("CHF", 2),
    ("SEK", 2),
    ("NOK", 2),
    ("DKK", 2),
    ("PLN", 2),
    ("AUD", 2),
    ("CAD", 2),
    ("MMK", 2),
    ("JPY", 0),
    ("KWD", 3),
    ("BHD", 3),
];

impl Currency {
    /// Pound sterling (exponent 2).
    pub const GBP: Currency = Currency {
        code: *b"GBP",
        exponent: 2,
    };
    /// US dollar (exponent 2).
    pub const USD: Currency = Currency {
        code: *b"USD",
        exponent: 2,
    };
    /// Euro (exponent 2).
    pub const EUR: Currency = Currency {
        code: *b"EUR",
        exponent: 2,
    };

    /// The three-letter code, e.g. `"GBP"`.
    pub fn code(&self) -> &str {
        // The code bytes are always ASCII uppercase letters (checked in `from_str`).
        std::str::from_utf8(&self.code).unwrap_or("XXX")
    }

    /// Digits after the decimal point of the minor unit (2 for GBP, 0 for JPY).
    pub fn exponent(&self) -> u32 {
        u32::from(self.exponent)
    }
}

impl FromStr for Currency {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let up = s.trim().to_ascii_uppercase();
        KNOWN
            .iter()
            .find(|(c, _)| *c == up)
            .map(|(c, e)| {
                let b = c.as_bytes();
                Currency {
                    code: [b[0], b[1], b[2]],
                    exponent: *e,
                }
            })
            .ok_or_else(|| MoneyError::UnknownCurrency(s.to_string()))
    }
}

impl TryFrom<String> for Currency {
    type Error = MoneyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> String {
        c.code().to_string()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Rounds `value` (in major units, e.g. pounds) to the currency's minor unit, half away
/// from zero, and returns it as integer minor units (pence).
///
/// This is **the** rounding rule of Caja: `2.345 -> 235`, `-2.345 -> -235`.
///
/// # Errors
/// [`MoneyError::Overflow`] when the result does not fit in an `i64`.
pub fn round_to_minor(value: Decimal, currency: Currency) -> Result<i64, MoneyError> {
    let rounded = value.round_dp_with_strategy(currency.exponent(), RoundingStrategy::MidpointAwayFromZero);
    let scaled = rounded
        .checked_mul(Decimal::from(10i64.pow(currency.exponent())))
        .ok_or(MoneyError::Overflow)?;
    i64::try_from(scaled).map_err(|_| MoneyError::Overflow)
}

/// A line total: `quantity × unit_price`, rounded per [`round_to_minor`].
///
/// # Errors
/// [`MoneyError::Overflow`] when the product overflows.
pub fn line_total_minor(
    quantity: Decimal,
    unit_price: Decimal,
    currency: Currency,
) -> Result<i64, MoneyError> {
    let exact = quantity.checked_mul(unit_price).ok_or(MoneyError::Overflow)?;
    round_to_minor(exact, currency)
}

/// Exclusive tax on a net amount in minor units: `net × rate` rounded per
/// [`round_to_minor`]. `rate` is a fraction (`0.05` for 5 %).
///
/// # Errors
/// [`MoneyError::Overflow`] when the product overflows.
pub fn tax_minor(net_minor: i64, rate: Decimal, currency: Currency) -> Result<i64, MoneyError> {
    let net = minor_to_decimal(net_minor, currency);
    let exact = net.checked_mul(rate).ok_or(MoneyError::Overflow)?;
    round_to_minor(exact, currency)
}

/// Converts minor units to an exact decimal in major units (`1234` GBP -> `12.34`).
pub fn minor_to_decimal(minor: i64, currency: Currency) -> Decimal {
    Decimal::new(minor, currency.exponent())
}

/// Formats minor units as a decimal string with exactly the currency's decimals
/// (`-1230` GBP -> `"-12.30"`). This is the string form every report and API uses.
pub fn format_minor(minor: i64, currency: Currency) -> String {
    let d = minor_to_decimal(minor, currency);
    format!("{:.*}", currency.exponent() as usize, d)
}

/// Why a text is not a decimal ([`parse_decimal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecimalError {
    /// Not plain decimal notation.
    #[error("not a decimal number like 2.55 (digits with at most one point, an optional sign)")]
    NotDecimal,
    /// Plain notation, but more digits than a decimal holds (28-29).
    #[error("too large a number")]
    TooLarge,
}

/// Parses a decimal in plain notation, exactly: an optional sign, digits, at most one
/// point (`"2.55"`, `"-3"`, `".5"`, `" 0.20 "`; surrounding spaces ignored). Refused:
/// exponents (`"1e3"`), digit separators (`"1_000"`, `"2,55"`), anything else, since in
/// a price, rate or amount they are far likelier a typo than a number
/// (`rust_decimal`'s own `from_str` would take the first two).
///
/// # Errors
/// [`DecimalError::NotDecimal`], or [`DecimalError::TooLarge`] past `Decimal`'s range.
pub fn parse_decimal(text: &str) -> Result<Decimal, DecimalError> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    let plain = digits.bytes().any(|b| b.is_ascii_digit())
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && digits.bytes().filter(|b| *b == b'.').count() <= 1;
    if !plain {
        return Err(DecimalError::NotDecimal);
    }
    Decimal::from_str(t).map_err(|_| DecimalError::TooLarge)
}

/// Deserializes a decimal field as its text: a JSON string as is, or a JSON integer
/// (exact). A JSON number with a fraction or exponent (`2.55`, `1e3`) is refused:
/// serde_json reads it through a binary float, so `2.5500000000000000001` would silently
/// become `2.55`. Callers parse the text with [`parse_decimal`].
///
/// # Errors
/// A serde `invalid_type`/`invalid_value` error saying to send a string.
pub fn de_decimal_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal as a string, like \"2.55\"")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Err(E::invalid_value(
                serde::de::Unexpected::Float(v),
                &"a decimal as a string, like \"2.55\" (a JSON number with a fraction or exponent is not exact)",
            ))
        }
    }
    d.deserialize_any(Text)
}

/// [`de_decimal_text`] for an optional field (`null` or absent is `None`).
///
/// # Errors
/// As [`de_decimal_text`].
pub fn de_opt_decimal_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    struct Text(#[serde(deserialize_with = "de_decimal_text")] String);
    Ok(Option::<Text>::deserialize(d)?.map(|t| t.0))
}

/// Parses a decimal amount in major units into minor units, refusing extra precision
/// (`"12.30"` GBP -> `1230`; `"12.305"` is an error, not a silent rounding).
///
/// # Errors
/// [`MoneyError::BadAmount`] for text that is not a decimal, [`MoneyError::TooPrecise`]
/// for more decimals than the currency has, [`MoneyError::Overflow`] when out of range.
pub fn parse_minor(s: &str, currency: Currency) -> Result<i64, MoneyError> {
    let d = parse_decimal(s).map_err(|e| match e {
        DecimalError::NotDecimal => MoneyError::BadAmount(s.to_string()),
        DecimalError::TooLarge => MoneyError::Overflow,
    })?;
    if d.normalize().scale() > currency.exponent() {
        return Err(MoneyError::TooPrecise {
            amount: s.to_string(),
            currency,
            exponent: currency.exponent(),
        });
    }
    round_to_minor(d, currency)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn decimals_are_plain_notation_only() {
        assert_eq!(parse_decimal(" 0.20 "), Ok(d("0.20")));
        assert_eq!(parse_decimal("-3"), Ok(d("-3")));
        assert_eq!(parse_decimal("+.5"), Ok(d("0.5")));
        assert_eq!(
            parse_decimal("99999999999999999999999999999999"),
            Err(DecimalError::TooLarge)
        );
        for bad in [
            "1e3",
            "2.5E-1",
            "",
            "2,55",
            "abc",
            "1.2.3",
            "2_5",
            "1_000.9_9",
            "2.5_",
            "-",
            ".",
            "+-1",
            "20%",
            "0x10",
            "1 000",
        ] {
            assert_eq!(parse_decimal(bad), Err(DecimalError::NotDecimal), "{bad}");
        }
        assert!(matches!(
            parse_minor("1e3", Currency::GBP),
            Err(MoneyError::BadAmount(_))
        ));
    }

    #[test]
    fn rounds_half_away_from_zero() {
        assert_eq!(round_to_minor(d("2.345"), Currency::GBP).unwrap(), 235);
        assert_eq!(round_to_minor(d("-2.345"), Currency::GBP).unwrap(), -235);
        assert_eq!(round_to_minor(d("2.3449"), Currency::GBP).unwrap(), 234);
        assert_eq!(round_to_minor(d("0.005"), Currency::GBP).unwrap(), 1);
        assert_eq!(line_total_minor(d("3"), d("0.165"), Currency::GBP).unwrap(), 50); // 0.495
        assert_eq!(
            line_total_minor(d("-12"), d("0.425"), Currency::GBP).unwrap(),
            -510
        );
    }

    #[test]
    fn tax_is_rounded_per_line() {
        // Supermarket file, first row: 74.69 x 7 = 522.83, 5 % = 26.1415 -> 26.14.
        let net = line_total_minor(d("7"), d("74.69"), Currency::USD).unwrap();
        assert_eq!(net, 52283);
        assert_eq!(tax_minor(net, d("0.05"), Currency::USD).unwrap(), 2614);
    }

    #[test]
    fn formats_and_parses() {
        assert_eq!(format_minor(-1230, Currency::GBP), "-12.30");
        assert_eq!(format_minor(5, Currency::GBP), "0.05");
        assert_eq!(format_minor(0, Currency::GBP), "0.00");
        assert_eq!(parse_minor("12.3", Currency::GBP).unwrap(), 1230);
        assert!(matches!(
            parse_minor("12.305", Currency::GBP),
            Err(MoneyError::TooPrecise { .. })
        ));
        assert!(matches!(
            parse_minor("abc", Currency::GBP),
            Err(MoneyError::BadAmount(_))
        ));
        assert!("XYZ".parse::<Currency>().is_err());
        assert_eq!("jpy".parse::<Currency>().unwrap().exponent(), 0);
    }

    proptest! {
        #[test]
        fn rounding_matches_integer_reference(q in -10_000i64..10_000, price_milli in -1_000_000i64..1_000_000) {
            // Reference in plain integers: q * price_milli is in tenths of a penny.
            let tenths = q * price_milli;
            let reference = if tenths >= 0 { (tenths + 5) / 10 } else { (tenths - 5) / 10 };
            let got = line_total_minor(Decimal::from(q), Decimal::new(price_milli, 3), Currency::GBP).unwrap();
            prop_assert_eq!(got, reference);
        }

        #[test]
        fn format_parse_round_trip(minor in -1_000_000_000_000i64..1_000_000_000_000) {
            prop_assert_eq!(parse_minor(&format_minor(minor, Currency::GBP), Currency::GBP).unwrap(), minor);
        }
    }
}
