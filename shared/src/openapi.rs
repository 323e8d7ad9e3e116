//! OpenAPI glue both HTTP APIs share (feature `http`): the bearer-token security scheme
//! that the node's and head office's OpenAPI documents declare, under one name.

use utoipa::Modify;
use utoipa::openapi::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};

/// The name of the security scheme in `components.securitySchemes` (what an operation's
/// `security` refers to).
pub const BEARER: &str = "bearer";

/// Declares the [`BEARER`] scheme in `doc`: HTTP bearer authentication with a JWT access
/// token (`Authorization: Bearer <token>`).
pub fn add_bearer_scheme(doc: &mut OpenApi) {
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
}

/// The requirement "a bearer token" ([`BEARER`], no scopes), for an operation's
/// `security`.
pub fn bearer_requirement() -> SecurityRequirement {
    SecurityRequirement::new(BEARER, Vec::<String>::new())
}

/// A utoipa modifier that runs [`add_bearer_scheme`]: `#[openapi(modifiers(&BearerAuth))]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut OpenApi) {
        add_bearer_scheme(doc);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn declares_a_jwt_bearer_scheme() {
        let mut doc = OpenApi::default();
        BearerAuth.modify(&mut doc);
        let v = serde_json::to_value(&doc).unwrap();
        assert_eq!(
            v["components"]["securitySchemes"][BEARER],
            serde_json::json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
        );
    }
}
