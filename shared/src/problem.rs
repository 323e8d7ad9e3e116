//! The one RFC 9457 problem vocabulary of Caja's HTTP APIs (node and head office): the
//! [`Problem`] body and every stable problem type ([`ProblemType`]: name, title, status).
//!
//! A problem's `type` is `https://caja.dev/problems/<name>`; clients match on the name,
//! never on `title` or `detail`. `docs/ERRORS.md` lists every type with when it is used.
//! With the `http` feature this module also has the axum glue both servers use, so the
//! bodies of extractor rejections, unknown routes, wrong methods, oversized bodies and
//! timeouts come from the same code at both ends.
//!
//! Compatibility: names are a public contract; append new types, never rename one.

use serde::{Deserialize, Serialize};

use crate::auth::TokenError;
use crate::auth::sessions::RefreshError;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://caja.dev/problems/";

/// The media type of problem bodies (RFC 9457 section 3).
pub const PROBLEM_JSON: &str = "application/problem+json";

macro_rules! problem_types {
    ($($(#[$doc:meta])* $variant:ident = ($status:literal, $name:literal, $title:literal),)*) => {
        /// A stable kind of problem: its name (the last segment of the `type` URI), title
        /// and usual HTTP status.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ProblemType {
            $($(#[$doc])* $variant,)*
        }

        impl ProblemType {
            /// Every problem type, in declaration order.
            pub const ALL: &'static [ProblemType] = &[$(ProblemType::$variant,)*];

            /// The stable name, e.g. `not-found`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $name,)*
                }
            }

            /// The short human summary (`title`).
            pub const fn title(self) -> &'static str {
                match self {
                    $(ProblemType::$variant => $title,)*
                }
            }

            /// The HTTP status a problem of this type is sent with.
            pub const fn status(self) -> u16 {
                match self {
                    $(ProblemType::$variant => $status,)*
                }
            }
        }
    };
}

problem_types! {
    /// A malformed path or query parameter, or another malformed request (400).
    BadRequest = (400, "bad-request", "Bad request"),
    /// The body is not JSON of the expected shape (400).
    MalformedJson = (400, "malformed-json", "Malformed JSON body"),
    /// No usable credentials (401; the generic one, when no more precise type applies).
    Unauthorized = (401, "unauthorized", "Unauthorized"),
    /// No bearer token was sent (401).
    TokenMissing = (401, "token-missing", "Unauthorized"),
    /// The bearer token is not a JWT (401).
    TokenMalformed = (401, "token-malformed", "Unauthorized"),
    /// The token's algorithm is not EdDSA (401).
    TokenAlgorithm = (401, "token-algorithm", "Unauthorized"),
    /// The token's signature does not verify (401).
    TokenSignature = (401, "token-signature", "Unauthorized"),
    /// The token expired (401).
    TokenExpired = (401, "token-expired", "Unauthorized"),
    /// The token is not valid yet (401).
    TokenNotYetValid = (401, "token-not-yet-valid", "Unauthorized"),
    /// The token was issued for another service (401).
    TokenAudience = (401, "token-audience", "Unauthorized"),
    /// The token is for another store (401).
    TokenWrongStore = (401, "token-wrong-store", "Unauthorized"),
    /// The token's session was revoked (401).
    TokenRevoked = (401, "token-revoked", "Unauthorized"),
    /// The token's user is disabled (401).
    UserDisabled = (401, "user-disabled", "Unauthorized"),
    /// Wrong username or secret (401; never says which).
    LoginFailed = (401, "login-failed", "Login failed"),
    /// Unknown refresh token (401).
    RefreshUnknown = (401, "refresh-unknown", "Unknown refresh token"),
    /// The refresh token expired (401).
    RefreshExpired = (401, "refresh-expired", "Refresh token expired"),
    /// The refresh token's session was revoked (401).
    RefreshRevoked = (401, "refresh-revoked", "Session revoked"),
    /// A refresh token was used twice: its session is revoked (401).
    RefreshReused = (401, "refresh-reused", "Refresh token reused"),
    /// The user lacks the permission (403).
    Forbidden = (403, "forbidden", "Forbidden"),
    /// A manager override cannot be used (403).
    OverrideRefused = (403, "override-refused", "Manager override refused"),
    /// No such resource or route (404).
    NotFound = (404, "not-found", "Not found"),
    /// The route exists, not with this method; `Allow` lists those it has (405).
    MethodNotAllowed = (405, "method-not-allowed", "Method not allowed"),
    /// The request took too long (408).
    Timeout = (408, "timeout", "Request timeout"),
    /// The request conflicts with what is stored (409).
    Conflict = (409, "conflict", "Conflict"),
    /// The body is larger than the limit (413).
    PayloadTooLarge = (413, "payload-too-large", "Payload too large"),
    /// The body's media type is not one the route takes (415).
    UnsupportedMediaType = (415, "unsupported-media-type", "Unsupported media type"),
    /// A field is invalid (422; head office names it in `field`).
    InvalidInput = (422, "invalid-input", "Invalid input"),
    /// A SKU is not in the catalog (422, node).
    UnknownSku = (422, "unknown-sku", "Unknown SKU"),
    /// Amounts do not add up (422, node).
    InvalidAmount = (422, "invalid-amount", "Amounts do not add up"),
    /// The `Idempotency-Key` was used for a different request (422, node).
    IdempotencyKeyReused = (422, "idempotency-key-reused", "Idempotency-Key reused"),
    /// The card provider declined the card: no sale was recorded (422, node).
    CardDeclined = (422, "card-declined", "Card declined: ask for another payment"),
    /// This card kind (gift card, keyed card, cashback) is never taken offline (422, node).
    OfflineCardNotAllowed = (422, "offline-card-not-allowed", "This card cannot be taken while offline"),
    /// The sale's offline card amount is over the store's floor limit (422, node).
    OfflineFloorLimit = (422, "offline-floor-limit", "Card amount over the offline limit: a manager must approve"),
    /// The node's or the store's total of stored offline cards would pass its cap (422, node).
    OfflineCapReached = (422, "offline-cap-reached", "Offline card limit reached: take another payment"),
    /// The offline acceptance window (from the first stored card) has closed (422, node).
    OfflineWindowClosed = (422, "offline-window-closed", "Offline card period is over: take another payment"),
    /// Too many failed logins: locked until `Retry-After` (423).
    LoginLocked = (423, "login-locked", "Locked after too many failed logins"),
    /// Too many requests from this client (429, `Retry-After`).
    RateLimited = (429, "rate-limited", "Too many requests"),
    /// A fault on the server; the detail is opaque and the cause logged (500).
    Internal = (500, "internal", "Internal server error"),
    /// A dependency (the database) is not answering (503).
    Unavailable = (503, "unavailable", "Service unavailable"),
}

impl ProblemType {
    /// The full `type` URI, e.g. `https://caja.dev/problems/not-found`.
    pub fn uri(self) -> String {
        format!("{PROBLEM_BASE}{}", self.name())
    }

    /// The type named `name`, if any.
    pub fn parse(name: &str) -> Option<ProblemType> {
        ProblemType::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// The generic type of an error status without a more precise one (e.g. a bare status
    /// from a middleware): 400 `bad-request`, 404 `not-found`, 5xx `internal`, ….
    pub fn of_status(status: u16) -> ProblemType {
        match status {
            401 => ProblemType::Unauthorized,
            403 => ProblemType::Forbidden,
            404 => ProblemType::NotFound,
            405 => ProblemType::MethodNotAllowed,
            408 => ProblemType::Timeout,
            409 => ProblemType::Conflict,
            413 => ProblemType::PayloadTooLarge,
            415 => ProblemType::UnsupportedMediaType,
            422 => ProblemType::InvalidInput,
            423 => ProblemType::LoginLocked,
            429 => ProblemType::RateLimited,
            503 => ProblemType::Unavailable,
            s if s >= 500 => ProblemType::Internal,
            _ => ProblemType::BadRequest,
        }
    }

    /// The type of a refused access token.
    pub const fn of_token(e: &TokenError) -> ProblemType {
        match e {
            TokenError::Missing => ProblemType::TokenMissing,
            TokenError::Malformed(_) => ProblemType::TokenMalformed,
            TokenError::Algorithm(_) => ProblemType::TokenAlgorithm,
            TokenError::Signature => ProblemType::TokenSignature,
            TokenError::Expired => ProblemType::TokenExpired,
            TokenError::NotYetValid => ProblemType::TokenNotYetValid,
            TokenError::Audience(_) => ProblemType::TokenAudience,
            TokenError::WrongStore { .. } => ProblemType::TokenWrongStore,
            TokenError::Revoked(_) => ProblemType::TokenRevoked,
            TokenError::UserDisabled(_) => ProblemType::UserDisabled,
        }
    }

    /// The type of a refused refresh token (`internal` for a storage failure).
    pub const fn of_refresh(e: &RefreshError) -> ProblemType {
        match e {
            RefreshError::Unknown => ProblemType::RefreshUnknown,
            RefreshError::Expired => ProblemType::RefreshExpired,
            RefreshError::Revoked(_) => ProblemType::RefreshRevoked,
            RefreshError::Reused { .. } => ProblemType::RefreshReused,
            RefreshError::Sqlite(_) => ProblemType::Internal,
        }
    }
}

impl std::fmt::Display for ProblemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whole seconds from now until `until_ms` (milliseconds since the epoch, UTC), rounded
/// up, at least 1: the `Retry-After` of a lock (RFC 9110 section 10.2.3).
pub fn retry_after_secs(until_ms: i64) -> i64 {
    let ms = (until_ms - chrono::Utc::now().timestamp_millis()).max(1);
    (ms + 999) / 1000
}

/// An RFC 9457 problem details body. Append-only: new members are optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "http", derive(utoipa::ToSchema))]
pub struct Problem {
    /// Stable URI naming the kind of problem, e.g. `https://caja.dev/problems/not-found`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short human-readable summary of the kind.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What exactly was wrong with this request.
    pub detail: String,
    /// The request field that is wrong, for validation problems (`invalid-input`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem of type `ty` with its usual status.
    pub fn new(ty: ProblemType, detail: impl Into<String>) -> Problem {
        Problem::with_status(ty, ty.status(), detail)
    }

    /// A problem of type `ty` sent with `status` (a bare status mapped by
    /// [`ProblemType::of_status`] keeps its own code).
    pub fn with_status(ty: ProblemType, status: u16, detail: impl Into<String>) -> Problem {
        Problem {
            kind: ty.uri(),
            title: ty.title().to_string(),
            status,
            detail: detail.into(),
            field: None,
        }
    }

    /// The type this body names, if it is one of [`ProblemType`].
    pub fn problem_type(&self) -> Option<ProblemType> {
        ProblemType::parse(self.kind.strip_prefix(PROBLEM_BASE)?)
    }

    /// With the field that is wrong.
    pub fn field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }
}

#[cfg(feature = "http")]
pub mod http;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for t in ProblemType::ALL {
            assert!(seen.insert(t.name()), "{t} twice");
            assert_eq!(ProblemType::parse(t.name()), Some(*t));
            assert!((400..600).contains(&t.status()), "{t}");
        }
    }

    #[test]
    fn token_slugs_are_problem_names() {
        for e in [
            TokenError::Missing,
            TokenError::Signature,
            TokenError::Expired,
            TokenError::NotYetValid,
            TokenError::Revoked("s".into()),
            TokenError::UserDisabled("u".into()),
        ] {
            assert_eq!(ProblemType::of_token(&e).name(), e.slug());
        }
    }

    #[test]
    fn bodies_serialize_with_type_and_skip_an_absent_field() {
        let p = Problem::new(ProblemType::NotFound, "no such store");
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v["type"], "https://caja.dev/problems/not-found");
        assert_eq!(v["status"], 404);
        assert!(v.get("field").is_none());
        assert_eq!(p.problem_type(), Some(ProblemType::NotFound));
        let p = Problem::new(ProblemType::InvalidInput, "too long").field("name");
        assert_eq!(serde_json::to_value(&p).unwrap()["field"], "name");
    }
}
