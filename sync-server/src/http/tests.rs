//! Admin API tests through the router with `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use caja_shared::money::Currency;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::router;
use crate::SyncServer;

struct App {
    server: SyncServer,
    _dir: tempfile::TempDir,
}

fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let server = SyncServer::open(dir.path(), Currency::GBP).unwrap();
    App { server, _dir: dir }
}

impl App {
    async fn call(&self, method: &str, uri: &str, body: Option<Body>) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let req = req.body(body.unwrap_or_else(Body::empty)).unwrap();
        router(self.server.clone()).oneshot(req).await.unwrap()
    }

    async fn json(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value, String) {
        let res = self
            .call(method, uri, Some(Body::from(serde_json::to_vec(&body).unwrap())))
            .await;
        read(res).await
    }
}

async fn read(res: Response) -> (StatusCode, Value, String) {
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = axum::body::to_bytes(res.into_body(), usize::MAX).await.unwrap();
    let v = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, v, ct)
}

fn assert_problem(status: StatusCode, body: &Value, ct: &str, expected: StatusCode, slug: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["type"], format!("https://caja.dev/problems/{slug}"));
    assert_eq!(body["status"], expected.as_u16());
    assert!(body["title"].is_string());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn creates_stores_refuses_duplicates_and_bad_codes() {
    let app = app();
    let (s, v, _) = app
        .json(
            "POST",
            "/v1/stores",
            json!({"code": "uk", "name": "United Kingdom"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["code"], "uk");
    assert_eq!(v["name"], "United Kingdom");
    assert_eq!(v["token"].as_str().unwrap().len(), 64);

    let (s, v, ct) = app
        .json("POST", "/v1/stores", json!({"code": "uk", "name": "Again"}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::CONFLICT, "conflict");

    let (s, v, ct) = app
        .json("POST", "/v1/stores", json!({"code": "Bad Code", "name": "x"}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    assert!(v["detail"].as_str().unwrap().contains("Bad Code"));

    let (s, v, _) = read(app.call("GET", "/v1/stores", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!([{"code": "uk", "name": "United Kingdom", "last_contact": null, "connected": false, "facts": 0}])
    );
}

#[tokio::test]
async fn product_put_validates_and_reads_back() {
    let app = app();
    let (s, v, _) = app
        .json(
            "PUT",
            "/v1/products/85123A",
            json!({"name": "T-light holder", "unit_price": "2.55", "tax_rate": "0.2", "barcode": "036000291452"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["unit_price"], "2.55");
    assert_eq!(v["barcode"], "0036000291452");
    let (s, v, _) = read(app.call("GET", "/v1/products/85123A", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "T-light holder");
    assert_eq!(v["tax_rate"], "0.2");
    assert_eq!(v["stock_tracked"], true);
    let (s, v, ct) = read(app.call("GET", "/v1/products/nope", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");

    // Bad JSON.
    let res = app
        .call("PUT", "/v1/products/X", Some(Body::from("{\"name\": ")))
        .await;
    let (s, v, ct) = read(res).await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");

    // Wrong check digit.
    let (s, v, ct) = app
        .json(
            "PUT",
            "/v1/products/X",
            json!({"name": "x", "unit_price": "1", "barcode": "4006381333932"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    assert!(v["detail"].as_str().unwrap().contains("check digit"));

    // Negative price.
    let (s, v, ct) = app
        .json(
            "PUT",
            "/v1/products/X",
            json!({"name": "x", "unit_price": "-1.00"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    assert!(v["detail"].as_str().unwrap().contains("negative"));

    // Not a number.
    let (s, v, ct) = app
        .json(
            "PUT",
            "/v1/products/X",
            json!({"name": "x", "unit_price": "cheap"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");

    // A SKU that is too long.
    let long = "S".repeat(65);
    let (s, v, ct) = app
        .json(
            "PUT",
            &format!("/v1/products/{long}"),
            json!({"name": "x", "unit_price": "1"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");

    // A 2 MiB body.
    let big = format!("{{\"name\": \"{}\", \"unit_price\": \"1\"}}", "x".repeat(2 << 20));
    let (s, v, ct) = read(app.call("PUT", "/v1/products/X", Some(Body::from(big))).await).await;
    assert_problem(s, &v, &ct, StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large");
    let res = app
        .call("PUT", "/v1/products/X", Some(Body::from(vec![b' '; 2 << 20])))
        .await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Nothing invalid was written.
    assert!(app.server.product("X").await.unwrap().is_none());
}

#[tokio::test]
async fn batch_writes_all_or_nothing_and_catalog_counts() {
    let app = app();
    let (_, before, _) = read(app.call("GET", "/v1/catalog", None).await).await;
    assert_eq!(before["products"], 0);
    let (s, v, _) = app
        .json(
            "POST",
            "/v1/products:batch",
            json!([{"sku": "A", "name": "a", "unit_price": "1.00"}, {"sku": "B", "name": "b", "unit_price": "2.5", "category": "C"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v, json!({"written": 2}));
    let (s, v, ct) = app
        .json(
            "POST",
            "/v1/products:batch",
            json!([{"sku": "C", "name": "c", "unit_price": "1"}, {"sku": "D", "name": "d", "unit_price": "-2"}]),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    assert!(v["detail"].as_str().unwrap().starts_with("item 1"));
    let (_, after, _) = read(app.call("GET", "/v1/catalog", None).await).await;
    assert_eq!(after["products"], 2);
    assert_ne!(after["heads"], before["heads"]);
    assert_eq!(after["heads"], json!(app.server.catalog_heads().await.unwrap()));
}

#[tokio::test]
async fn report_dates_are_checked() {
    let app = app();
    let (s, v, _) = read(app.call("GET", "/v1/reports/sales", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["currency"], "GBP");
    assert_eq!(v["totals"]["net"], "0.00");
    let (s, _, _) = read(
        app.call("GET", "/v1/reports/sales?from=2024-01-01&to=2024-01-31", None)
            .await,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    for bad in ["from=2024-13-01", "to=yesterday", "from=2024-02-01&to=2024-01-01"] {
        let (s, v, ct) = read(app.call("GET", &format!("/v1/reports/sales?{bad}"), None).await).await;
        assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    }
}

#[tokio::test]
async fn health_openapi_and_unknown_routes() {
    let app = app();
    assert_eq!(
        app.call("GET", "/health/live", None).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.call("GET", "/health/ready", None).await.status(),
        StatusCode::OK
    );
    let (s, v, ct) = read(app.call("GET", "/nope", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");
    let (s, v, ct) = read(app.call("DELETE", "/v1/stores", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed");
    let (s, v, _) = read(app.call("GET", "/openapi.json", None).await).await;
    assert_eq!(s, StatusCode::OK);
    let paths = v["paths"].as_object().unwrap();
    for p in [
        "/v1/stores",
        "/v1/products/{sku}",
        "/v1/products:batch",
        "/v1/catalog",
        "/v1/reports/sales",
        "/health/live",
        "/health/ready",
        "/openapi.json",
    ] {
        assert!(paths.contains_key(p), "openapi lacks {p}");
    }
}
