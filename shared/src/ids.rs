//! Ids: UUIDv7 newtypes for things Caja creates, and validated codes for stores.
//!
//! UUIDv7 (RFC 9562, section 5.7) ids sort by creation time and need no coordination, so a
//! node creates them offline without collisions.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// A UUIDv7 (RFC 9562); serialized as its hyphenated string.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh UUIDv7 from the system clock and randomness.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The id of a fact (a sale, a refund, a stock movement); also the id clients use
    /// for a sale (`GET /v1/sales/{id}`).
    FactId
);
uuid_id!(
    /// The id of a store node installation.
    NodeId
);
uuid_id!(
    /// The id of one tender (payment) of a sale or refund: stable for its whole life, so
    /// the payment provider's idempotency key derived from it never changes on a retry.
    TenderId
);

/// Why a store code was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("store code {0:?} must be 1-40 characters of a-z, 0-9 and '-', not starting with '-'")]
pub struct StoreCodeError(pub String);

/// A store's short code, e.g. `united-kingdom` or `a`: lowercase ASCII letters, digits and
/// `-`, 1-40 characters. It appears in document ids (`ledger/<store>/<date>`) and receipt
/// numbers, so it is restricted to characters safe in both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StoreCode(String);

impl StoreCode {
    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Derives a store code from a free-text name (`"United Kingdom"` ->
    /// `united-kingdom`): lowercase, every run of other characters becomes one `-`.
    ///
    /// # Errors
    /// [`StoreCodeError`] when nothing usable is left (an empty or all-symbol name).
    pub fn slug(name: &str) -> Result<Self, StoreCodeError> {
        let mut out = String::new();
        for c in name.trim().chars() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            } else if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
        }
        while out.ends_with('-') {
            out.pop();
        }
        out.truncate(40);
        out.parse().map_err(|_| StoreCodeError(name.to_string()))
    }
}

impl FromStr for StoreCode {
    type Err = StoreCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 40
            && !s.starts_with('-')
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(StoreCodeError(s.to_string()))
        }
    }
}

impl TryFrom<String> for StoreCode {
    type Error = StoreCodeError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<StoreCode> for String {
    fn from(c: StoreCode) -> String {
        c.0
    }
}

impl fmt::Display for StoreCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_codes() {
        assert_eq!(
            StoreCode::slug("United Kingdom").unwrap().as_str(),
            "united-kingdom"
        );
        assert_eq!(StoreCode::slug(" EIRE ").unwrap().as_str(), "eire");
        assert_eq!(StoreCode::slug("A").unwrap().as_str(), "a");
        assert!(StoreCode::slug("***").is_err());
        assert!("Bad Code".parse::<StoreCode>().is_err());
        assert!("-x".parse::<StoreCode>().is_err());
        assert!("ok-1".parse::<StoreCode>().is_ok());
    }

    #[test]
    fn fact_ids_are_v7_and_ordered() {
        let a = FactId::new();
        let b = FactId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a <= b);
        assert_eq!(a.to_string().parse::<FactId>().unwrap(), a);
    }
}
