//! Serde helper for time inputs: an RFC 3339 date-time with an offset (`2026-11-30T10:00:00Z`,
//! `2026-11-30T11:00:00+01:00`), read as UTC. A refused value names what is expected (the
//! HTTP layer reports it as invalid input naming the field), where chrono's own error says
//! only "premature end of input" for a time without an offset.

use chrono::{DateTime, Utc};
use serde::de::Unexpected;
use serde::{Deserialize, Deserializer};

/// What a time input must look like.
const EXPECTED: &str = "an RFC 3339 date-time with an offset, such as 2026-11-30T10:00:00Z";

/// Deserializes an optional time (`null` or absent: `None`).
///
/// # Errors
/// A serde `invalid_value` error naming the bad value and [`EXPECTED`].
pub fn de_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| Some(t.with_timezone(&Utc)))
        .map_err(|_| serde::de::Error::invalid_value(Unexpected::Str(&s), &EXPECTED))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct T {
        #[serde(default, deserialize_with = "super::de_opt")]
        at: Option<chrono::DateTime<chrono::Utc>>,
    }

    fn parse(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn rfc3339_with_an_offset_only() {
        let t = parse(r#"{"at": "2026-11-30T11:00:00+01:00"}"#).unwrap();
        assert_eq!(t.at.unwrap().to_rfc3339(), "2026-11-30T10:00:00+00:00");
        assert!(parse("{}").unwrap().at.is_none());
        assert!(parse(r#"{"at": null}"#).unwrap().at.is_none());
        for bad in ["yesterday", "2026-11-30T10:00:00", "2026-11-30"] {
            let e = parse(&format!(r#"{{"at": "{bad}"}}"#)).unwrap_err();
            assert!(e.contains("RFC 3339") && e.contains(bad), "{e}");
        }
        assert!(parse(r#"{"at": 5}"#).is_err());
    }
}
