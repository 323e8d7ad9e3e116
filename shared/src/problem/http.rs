//! The axum glue of the problem vocabulary, shared by the node and head office: problem
//! responses, the problems of extractor rejections, and one middleware turning the bare
//! error responses of layers and the router (404, 405, 408, 413, 5xx) into problems.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{PROBLEM_JSON, Problem, ProblemType, retry_after_secs};

/// The detail of a body over the size limit.
pub const TOO_LARGE: &str = "request body exceeds the size limit";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut res = (status, axum::Json(self)).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        res
    }
}

/// A problem response of type `ty` with its usual status.
pub fn response(ty: ProblemType, detail: impl Into<String>) -> Response {
    Problem::new(ty, detail).into_response()
}

/// The problem of a refused JSON body: 415 without `Content-Type: application/json`,
/// 413 over the size limit, otherwise 400 `malformed-json` with axum's explanation.
pub fn json_rejection(r: &JsonRejection) -> Problem {
    match r.status() {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => Problem::new(
            ProblemType::UnsupportedMediaType,
            "expected Content-Type: application/json",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => Problem::new(ProblemType::PayloadTooLarge, TOO_LARGE),
        _ => Problem::new(ProblemType::MalformedJson, r.body_text()),
    }
}

/// The problem of a body that could not be read: 413 over the size limit, else 400.
pub fn bytes_rejection(r: &BytesRejection) -> Problem {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(ProblemType::PayloadTooLarge, TOO_LARGE)
    } else {
        Problem::new(ProblemType::BadRequest, r.body_text())
    }
}

/// The problem of malformed path parameters (400 `bad-request`).
pub fn path_rejection(r: &PathRejection) -> Problem {
    Problem::new(ProblemType::BadRequest, r.body_text())
}

/// The problem of a malformed query string (400 `bad-request`).
pub fn query_rejection(r: &QueryRejection) -> Problem {
    Problem::new(ProblemType::BadRequest, r.body_text())
}

/// The problem of a request to no route (404 `not-found`).
pub fn no_route(method: &Method, path: &str) -> Problem {
    Problem::new(ProblemType::NotFound, format!("no route {method} {path}"))
}

/// The problem of a route that exists, not with this method (405; axum sets `Allow`).
pub fn method_not_allowed(method: &Method, path: &str) -> Problem {
    Problem::new(
        ProblemType::MethodNotAllowed,
        format!("method not allowed: {method} {path}"),
    )
}

/// The `WWW-Authenticate` value of a 401 of type `ty` from `realm` (RFC 6750 section 3):
/// no error code when no token was sent at all, else `invalid_token` with the problem
/// name as its description.
pub fn www_authenticate(realm: &str, ty: ProblemType) -> Option<HeaderValue> {
    let v = if ty == ProblemType::TokenMissing {
        format!("Bearer realm=\"{realm}\"")
    } else {
        format!(
            "Bearer realm=\"{realm}\", error=\"invalid_token\", error_description=\"{}\"",
            ty.name()
        )
    };
    HeaderValue::from_str(&v).ok()
}

/// A `Retry-After` value until `until_ms` ([`retry_after_secs`]).
pub fn retry_after_until(until_ms: i64) -> HeaderValue {
    HeaderValue::from(retry_after_secs(until_ms))
}

/// Whether `res` already has a problem body.
pub fn is_problem(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(PROBLEM_JSON.as_bytes()))
}

/// Whether `res` is a bare error response: no body type, or axum's plain-text rejection
/// text (a JSON body a handler chose, such as a readiness report, is not bare).
fn is_bare(res: &Response) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .is_none_or(|v| v.as_bytes().starts_with(b"text/plain"))
}

/// Turns a bare error response (from tower-http layers: body limit, timeout, caught
/// panic; from the router) into a problem, keeping its status and headers;
/// `timeout_detail` is the detail of a 408. 5xx details are opaque (and logged here once).
/// Other responses pass unchanged.
pub fn problemize(res: Response, timeout_detail: &str) -> Response {
    let status = res.status();
    if !(status.is_client_error() || status.is_server_error()) || is_problem(&res) || !is_bare(&res) {
        return res;
    }
    let detail = match status.as_u16() {
        413 => TOO_LARGE.to_string(),
        408 => timeout_detail.to_string(),
        s if s >= 500 => {
            tracing::error!(status = s, "request failed outside a handler");
            "internal error".to_string()
        }
        _ => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let (mut parts, _) = res.into_parts();
    let problem = Problem::with_status(ProblemType::of_status(status.as_u16()), status.as_u16(), detail);
    let mut new = problem.into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    for (k, v) in new.headers() {
        parts.headers.insert(k.clone(), v.clone());
    }
    let body = std::mem::take(new.body_mut());
    Response::from_parts(parts, body)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bare_errors_become_problems_and_keep_their_headers() {
        let mut bare = StatusCode::METHOD_NOT_ALLOWED.into_response();
        bare.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        let res = problemize(bare, "slow");
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(is_problem(&res));
        assert_eq!(res.headers()[header::ALLOW], "GET");
        let ok = problemize(StatusCode::OK.into_response(), "slow");
        assert!(!is_problem(&ok));
    }

    #[test]
    fn retry_after_rounds_up_and_is_at_least_one_second() {
        let now = chrono::Utc::now().timestamp_millis();
        assert_eq!(retry_after_until(now - 5_000), "1");
        let v: i64 = retry_after_until(now + 2_500).to_str().unwrap().parse().unwrap();
        assert!((2..=3).contains(&v), "{v}");
    }

    #[test]
    fn www_authenticate_names_the_problem_unless_no_token_was_sent() {
        let missing = www_authenticate("r", ProblemType::TokenMissing).unwrap();
        assert_eq!(missing, r#"Bearer realm="r""#);
        let expired = www_authenticate("r", ProblemType::TokenExpired).unwrap();
        assert!(expired.to_str().unwrap().contains(r#"error="invalid_token""#));
        assert!(expired.to_str().unwrap().contains("token-expired"));
    }
}
