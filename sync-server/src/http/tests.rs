//! Admin API tests through the router with `tower::ServiceExt::oneshot`.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use axum::response::Response;
use caja_shared::auth::secrets::Secret;
use caja_shared::auth::tokens::{
    AccessClaims, HQ_STORE, NODE_AUDIENCE, SERVER_AUDIENCE, TokenKeys, now_secs,
};
use caja_shared::auth::{Permission, TokenError};
use caja_shared::money::Currency;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::access::{Access, table};
use super::router;
use crate::{NewUser, ServerOptions, SyncServer, UserPatch};

const PASSWORD: &str = "correct horse battery";

struct App {
    server: SyncServer,
    router: Router,
    token: String,
    dir: tempfile::TempDir,
}

fn options() -> ServerOptions {
    ServerOptions {
        logins_per_minute: 10_000,
        requests_per_second: 10_000,
        ..ServerOptions::default()
    }
}

async fn app() -> App {
    let dir = tempfile::tempdir().unwrap();
    let server = SyncServer::open_with(dir.path(), Currency::GBP, options()).unwrap();
    let router = router(server.clone());
    let mut app = App {
        server,
        router,
        token: String::new(),
        dir,
    };
    app.user("root", &["admin"]).await;
    app.token = app.login("root").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    app
}

impl App {
    async fn user(&self, name: &str, roles: &[&str]) -> String {
        self.server
            .create_user(
                &crate::Actor::local(),
                NewUser {
                    username: name.into(),
                    display_name: name.into(),
                    password: Some(Secret::new(PASSWORD)),
                    pin: None,
                    roles: roles.iter().map(|r| r.to_string()).collect(),
                    stores: vec![],
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn login(&self, name: &str) -> Value {
        let (s, v, _) = self
            .send(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"username": name, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn raw(&self, method: &str, uri: &str, token: Option<&str>, body: Option<Body>) -> Response {
        let mut req = Request::builder().method(method).uri(uri);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let mut req = req.body(body.unwrap_or_else(Body::empty)).unwrap();
        req.extensions_mut()
            .insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
        self.router.clone().oneshot(req).await.unwrap()
    }

    async fn send(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, String) {
        let body = body.map(|b| Body::from(serde_json::to_vec(&b).unwrap()));
        read(self.raw(method, uri, token, body).await).await
    }

    /// `POST /v1/auth/refresh` with `token`.
    async fn refresh(&self, token: &str) -> (StatusCode, Value, String) {
        self.send(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": token})),
        )
        .await
    }

    /// As the admin.
    async fn call(&self, method: &str, uri: &str, body: Option<Body>) -> Response {
        self.raw(method, uri, Some(&self.token), body).await
    }

    async fn json(&self, method: &str, uri: &str, body: Value) -> (StatusCode, Value, String) {
        self.send(method, uri, Some(&self.token), Some(body)).await
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
    assert_eq!(
        body["type"],
        format!("https://caja.dev/problems/{slug}"),
        "{body}"
    );
    assert_eq!(body["status"], expected.as_u16());
    assert!(body["title"].is_string());
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
}

#[tokio::test]
async fn creates_stores_refuses_duplicates_and_bad_codes() {
    let app = app().await;
    let (s, v, _) = app
        .json(
            "POST",
            "/v1/stores",
            json!({"code": "uk", "name": "United Kingdom"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["code"], "uk");
    assert_eq!(v, json!({"code": "uk", "name": "United Kingdom"}));
    // A mistyped field is refused, not ignored (found by a fresh-user trial).
    let (s, v, ct) = app
        .json(
            "POST",
            "/v1/stores",
            json!({"code": "pt", "name": "PT", "nmae": "x"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "malformed-json");
    let (s, v, ct) = app
        .json(
            "POST",
            "/v1/auth/login",
            json!({"username": "x", "password": "y", "bogus": 1}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "malformed-json");
    let (s, v, _) = app
        .json("POST", "/v1/stores/uk/enrollment-codes", json!({"ttl_hours": 2}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["code"].as_str().unwrap().len(), 23);
    let (s, v, ct) = app
        .json("POST", "/v1/stores/nope/enrollment-codes", json!({}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");
    let (s, v, ct) = app
        .json("POST", "/v1/stores/uk/enrollment-codes", json!({"ttl_hours": 0}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(v["field"], "ttl_hours");
    // No body at all (`curl -X POST`): the defaults; a body that is not JSON: refused.
    let (s, v, _) = app
        .send("POST", "/v1/stores/uk/enrollment-codes", Some(&app.token), None)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v, ct) = read(
        app.router
            .clone()
            .oneshot(
                Request::builder()
                    .method("POST")
                    .uri("/v1/stores/uk/enrollment-codes")
                    .header(header::AUTHORIZATION, format!("Bearer {}", app.token))
                    .extension(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))))
                    .body(Body::from("ttl_hours=2"))
                    .unwrap(),
            )
            .await
            .unwrap(),
    )
    .await;
    assert_problem(
        s,
        &v,
        &ct,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
    );

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
async fn products_list_in_sku_order_a_page_at_a_time_and_search() {
    let app = app().await;
    for (sku, name, barcode) in [
        ("B-2", "Blue mug", None),
        ("A-1", "Red mug", Some("036000291452")),
        ("C-3", "Tea towel", None),
    ] {
        let (s, v, _) = app
            .json(
                "PUT",
                &format!("/v1/products/{sku}"),
                json!({"name": name, "unit_price": "1.00", "barcode": barcode}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let skus = |v: &Value| -> Vec<String> {
        v["products"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_string())
            .collect()
    };
    let (s, v, _) = read(app.call("GET", "/v1/products?limit=2", None).await).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (skus(&v), v["next"].as_str()),
        (vec!["A-1".to_string(), "B-2".into()], Some("B-2"))
    );
    let (_, v, _) = read(app.call("GET", "/v1/products?limit=2&after=B-2", None).await).await;
    assert_eq!((skus(&v), v["next"].is_null()), (vec!["C-3".to_string()], true));
    let (_, v, _) = read(app.call("GET", "/v1/products?q=MUG", None).await).await;
    assert_eq!(skus(&v), ["A-1", "B-2"]);
    assert_eq!(v["products"][0]["unit_price"], "1.00");
    let (_, v, _) = read(app.call("GET", "/v1/products?q=0036000", None).await).await;
    assert_eq!(skus(&v), ["A-1"], "by barcode");
    let (_, v, _) = read(app.call("GET", "/v1/products?q=nothing", None).await).await;
    assert_eq!((skus(&v).len(), v["next"].is_null()), (0, true));
    let (s, v, ct) = read(app.call("GET", "/v1/products?limit=many", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    let (s, v, ct) = read(app.call("GET", "/v1/audit?store=zz", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");
    for limit in ["0", "1001"] {
        let (s, v, ct) = read(
            app.call("GET", &format!("/v1/products?limit={limit}"), None)
                .await,
        )
        .await;
        assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
        let (s, v, ct) = read(app.call("GET", &format!("/v1/audit?limit={limit}"), None).await).await;
        assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
        assert_eq!(v["field"], "limit");
    }
}

#[tokio::test]
async fn product_put_validates_and_reads_back() {
    let app = app().await;
    let (s, v, _) = app
        .json(
            "PUT",
            "/v1/products/85123A",
            json!({"name": "T-light holder", "unit_price": "2.55", "tax_rate": "0.20", "barcode": "036000291452"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["unit_price"], "2.55");
    assert_eq!(v["barcode"], "0036000291452");
    let (s, v, _) = read(app.call("GET", "/v1/products/85123A", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "T-light holder");
    // Head office's own catalog writes are audited with who made them.
    let (_, audit, _) = read(app.call("GET", "/v1/audit?kind=catalog.changed", None).await).await;
    assert_eq!(audit[0]["actor_name"], "root", "{audit}");
    assert_eq!(audit[0]["detail"], json!({"products": 1, "skus": ["85123A"]}));
    assert_eq!(v["tax_rate"], "0.2");
    assert_eq!(v["stock_tracked"], true);
    let (s, v, ct) = read(app.call("GET", "/v1/products/nope", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");

    // Bad JSON.
    let res = app
        .call("PUT", "/v1/products/X", Some(Body::from("{\"name\": ")))
        .await;
    let (s, v, ct) = read(res).await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "malformed-json");

    // Refused bodies: (what, method, path, body, status, slug, field, in the detail).
    let unprocessable = (StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    let bad = (StatusCode::BAD_REQUEST, "malformed-json");
    let put = ("PUT", "/v1/products/X");
    for (what, (method, path), body, (status, slug), field, says) in [
        (
            "wrong check digit",
            put,
            json!({"name": "x", "unit_price": "1", "barcode": "4006381333932"}),
            unprocessable,
            Some("barcode"),
            "check digit",
        ),
        (
            "negative price",
            put,
            json!({"name": "x", "unit_price": "-1.00"}),
            unprocessable,
            Some("unit_price"),
            "negative",
        ),
        (
            "an exponent (far likelier a typo than 1000)",
            put,
            json!({"name": "x", "unit_price": "1e3"}),
            unprocessable,
            Some("unit_price"),
            "\"1e3\"",
        ),
        (
            "digit separators",
            put,
            json!({"name": "x", "unit_price": "2_5"}),
            unprocessable,
            Some("unit_price"),
            "2_5",
        ),
        (
            "not a number",
            put,
            json!({"name": "x", "unit_price": "cheap"}),
            unprocessable,
            Some("unit_price"),
            "cheap",
        ),
        (
            "a JSON number with a fraction (not exact)",
            put,
            json!({"name": "x", "unit_price": 2.55}),
            bad,
            None,
            "not exact",
        ),
        (
            "a mistyped field (would clear the tax rate)",
            put,
            json!({"name": "x", "unit_price": "1", "tax_rat": "0.2"}),
            bad,
            None,
            "tax_rat",
        ),
        (
            "a mistyped field in a batch",
            ("POST", "/v1/products:batch"),
            json!([{"sku": "X", "name": "x", "unit_price": "1", "bar_code": "1"}]),
            bad,
            None,
            "bar_code",
        ),
    ] {
        let (s, v, ct) = app.json(method, path, body).await;
        assert_problem(s, &v, &ct, status, slug);
        assert_eq!(v["field"].as_str(), field, "{what}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(says), "{what}: {v}");
    }
    // A JSON integer is a price.
    let (s, v, _) = app
        .json(
            "PUT",
            "/v1/products/INT",
            json!({"name": "x", "unit_price": 3, "tax_rate": 0}),
        )
        .await;
    assert_eq!((s, v["unit_price"].as_str()), (StatusCode::OK, Some("3")), "{v}");

    // A SKU that is too long.
    let long = "S".repeat(65);
    let (s, v, ct) = app
        .json(
            "PUT",
            &format!("/v1/products/{long}"),
            json!({"name": "x", "unit_price": "1"}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");

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
    let app = app().await;
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
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert!(
        v["detail"].as_str().unwrap().contains("item 1, product \"D\""),
        "{v}"
    );
    let (_, after, _) = read(app.call("GET", "/v1/catalog", None).await).await;
    assert_eq!(after["products"], 2);
    assert_ne!(after["heads"], before["heads"]);
    assert_eq!(after["heads"], json!(app.server.catalog_heads().await.unwrap()));
}

#[tokio::test]
async fn report_dates_are_checked() {
    let app = app().await;
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
    // A two-digit year is a typo, not the year 26 (found by a fresh-user trial).
    for bad in [
        "from=2024-13-01",
        "to=yesterday",
        "from=2024-02-01&to=2024-01-01",
        "from=26-12-04",
    ] {
        let (s, v, ct) = read(app.call("GET", &format!("/v1/reports/sales?{bad}"), None).await).await;
        assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "bad-request");
    }
}

#[tokio::test]
async fn health_openapi_and_unknown_routes() {
    let app = app().await;
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
    // Every route of the table is documented with its method, protected ones with the
    // bearer scheme; nothing else is documented.
    let paths = v["paths"].as_object().unwrap();
    let mut documented = 0;
    for spec in table() {
        let op = &paths[spec.path][spec.method.as_str().to_lowercase()];
        assert!(op.is_object(), "openapi lacks {} {}", spec.method, spec.path);
        documented += 1;
        // A path parameter is in the path template; everything else is a query parameter.
        for p in op["parameters"].as_array().into_iter().flatten() {
            let name = p["name"].as_str().unwrap();
            let in_path = spec.path.contains(&format!("{{{name}}}"));
            let want = if in_path { "path" } else { "query" };
            assert_eq!(p["in"], want, "{} {} parameter {name}", spec.method, spec.path);
            assert!(!p.to_string().contains("crate::"), "rustdoc markup in {p}");
        }
        let secured = op["security"].is_array();
        assert_eq!(
            secured,
            spec.access != Access::Public,
            "{} {}",
            spec.method,
            spec.path
        );
    }
    let ops: usize = paths.values().map(|p| p.as_object().unwrap().len()).sum();
    assert_eq!(ops, documented);
}

/// The access every route must have: reviewed by hand. A route added to the table
/// without a line here fails `the_route_table_is_the_reviewed_one`.
const EXPECTED: &[(&str, &str, &str)] = &[
    ("GET", "/health/live", "public"),
    ("GET", "/health/ready", "public"),
    ("GET", "/openapi.json", "public"),
    ("POST", "/v1/auth/login", "public"),
    ("POST", "/v1/auth/refresh", "public"),
    ("POST", "/v1/auth/logout", "authenticated"),
    ("GET", "/v1/auth/me", "authenticated"),
    ("POST", "/v1/stores", "store.manage"),
    ("GET", "/v1/stores", "report.read"),
    ("POST", "/v1/stores/{code}/enrollment-codes", "store.manage"),
    ("GET", "/v1/stores/{code}/payment-settings", "store.manage"),
    ("PUT", "/v1/stores/{code}/payment-settings", "store.manage"),
    ("PUT", "/v1/products/{sku}", "catalog.write"),
    ("GET", "/v1/products", "catalog.read"),
    ("GET", "/v1/products/{sku}", "catalog.read"),
    ("POST", "/v1/products:batch", "catalog.write"),
    ("GET", "/v1/catalog", "catalog.read"),
    ("GET", "/v1/reports/sales", "report.read"),
    ("GET", "/v1/reports/offline-payments", "report.read"),
    ("GET", "/v1/reconciliation", "reconciliation.manage"),
    ("GET", "/v1/reconciliation/{id}", "reconciliation.manage"),
    ("POST", "/v1/reconciliation/{id}/assign", "reconciliation.manage"),
    ("POST", "/v1/reconciliation/{id}/resolve", "reconciliation.manage"),
    ("GET", "/v1/facts/{id}", "report.read"),
    ("POST", "/v1/users", "user.manage"),
    ("GET", "/v1/users", "user.manage"),
    ("GET", "/v1/users/{id}", "user.manage"),
    ("PATCH", "/v1/users/{id}", "user.manage"),
    ("POST", "/v1/users/{id}/revoke-sessions", "user.manage"),
    ("GET", "/v1/roles", "user.manage"),
    ("PUT", "/v1/roles/{name}", "user.manage"),
    ("DELETE", "/v1/roles/{name}", "user.manage"),
    ("GET", "/v1/nodes", "node.manage"),
    ("POST", "/v1/nodes/{id}/revoke", "node.manage"),
    ("GET", "/v1/audit", "audit.read"),
];

fn access_name(a: Access) -> String {
    match a {
        Access::Public => "public".into(),
        Access::Authenticated => "authenticated".into(),
        Access::Permission(p) => p.name().into(),
    }
}

#[test]
fn the_route_table_is_the_reviewed_one() {
    let got: Vec<(String, String, String)> = table()
        .into_iter()
        .map(|s| (s.method.to_string(), s.path.to_string(), access_name(s.access)))
        .collect();
    let want: Vec<(String, String, String)> = EXPECTED
        .iter()
        .map(|(m, p, a)| (m.to_string(), p.to_string(), a.to_string()))
        .collect();
    assert_eq!(got, want);
}

/// A concrete URI for a route path.
fn concrete(path: &str) -> String {
    path.replace("{sku}", "NO-SUCH-SKU")
        .replace("{code}", "nosuchstore")
        .replace("{id}", "01900000-0000-7000-8000-000000000000")
        .replace("{name}", "ghost-role")
}

#[tokio::test]
async fn permission_matrix_from_the_route_table() {
    let app = app().await;
    app.server
        .define_role(&crate::Actor::local(), "auditor", [Permission::ReportRead].into())
        .await
        .unwrap();
    let mut principals: Vec<(&str, Option<BTreeSet<Permission>>)> = vec![("anonymous", None)];
    for (name, roles) in [
        ("cashier", vec!["cashier"]),
        ("manager", vec!["manager"]),
        ("admin", vec!["admin"]),
        ("auditor", vec!["auditor"]),
    ] {
        app.user(&format!("m-{name}"), &roles).await;
        let mut t = caja_shared::auth::RoleTable::new();
        t.define("auditor", [Permission::ReportRead].into()).unwrap();
        principals.push((name, Some(t.permissions(&roles))));
    }
    let mut tokens = std::collections::HashMap::new();
    let mut checked = 0;
    // Logout last: it revokes the token it is called with.
    let mut specs = table();
    specs.sort_by_key(|s| s.path == "/v1/auth/logout");
    for spec in specs {
        for (name, perms) in &principals {
            let token = match perms {
                None => None,
                Some(_) => {
                    if !tokens.contains_key(name) {
                        let v = app.login(&format!("m-{name}")).await;
                        tokens.insert(*name, v["access_token"].as_str().unwrap().to_string());
                    }
                    Some(tokens[name].clone())
                }
            };
            let body = matches!(spec.method.as_str(), "POST" | "PUT" | "PATCH").then(|| json!({}));
            let (s, v, _) = app
                .send(spec.method.as_str(), &concrete(spec.path), token.as_deref(), body)
                .await;
            let expected = match (spec.access, perms) {
                (Access::Public, _) => None,
                (_, None) => Some((StatusCode::UNAUTHORIZED, "token-missing")),
                (Access::Authenticated, Some(_)) => None,
                (Access::Permission(p), Some(have)) if have.contains(&p) => None,
                (Access::Permission(_), Some(_)) => Some((StatusCode::FORBIDDEN, "forbidden")),
            };
            let what = format!("{} {} as {name}: {s} {v}", spec.method, spec.path);
            match expected {
                Some((status, slug)) => {
                    assert_eq!(s, status, "{what}");
                    assert_eq!(v["type"], format!("https://caja.dev/problems/{slug}"), "{what}");
                    if let Access::Permission(p) = spec.access
                        && status == StatusCode::FORBIDDEN
                    {
                        assert!(v["detail"].as_str().unwrap().contains(p.name()), "{what}");
                    }
                }
                None => assert!(
                    s != StatusCode::UNAUTHORIZED && s != StatusCode::FORBIDDEN && !s.is_server_error(),
                    "{what}"
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, EXPECTED.len() * 5);
}

fn b64(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

#[tokio::test]
async fn token_attacks_are_refused_with_their_problem_type() {
    let app = app().await;
    let keys = TokenKeys::from_pkcs8(&std::fs::read(app.dir.path().join("jwt.key")).unwrap()).unwrap();
    let me = app.send("GET", "/v1/auth/me", Some(&app.token), None).await;
    assert_eq!(me.0, StatusCode::OK, "{}", me.1);
    let root_id = me.1["user"]["id"].as_str().unwrap().to_string();
    let now = now_secs();
    let claims = |f: &dyn Fn(&mut AccessClaims)| {
        let mut c = AccessClaims {
            iss: "caja-sync".into(),
            aud: SERVER_AUDIENCE.into(),
            sub: root_id.clone(),
            name: "root".into(),
            store: HQ_STORE.into(),
            roles: vec!["admin".into()],
            jti: uuid::Uuid::now_v7().to_string(),
            fam: uuid::Uuid::now_v7().to_string(),
            term: None,
            iat: now,
            nbf: now,
            exp: now + 600,
        };
        f(&mut c);
        c
    };
    let good = keys.issue(&claims(&|_| {})).unwrap();
    assert_eq!(
        app.send("GET", "/v1/auth/me", Some(&good), None).await.0,
        StatusCode::OK
    );
    let payload = b64(&serde_json::to_vec(&claims(&|_| {})).unwrap());
    let none = format!("{}.{payload}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let hs256 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(&|_| {}),
        &jsonwebtoken::EncodingKey::from_secret(keys.public_key()).unwrap(),
    )
    .unwrap();
    let (other, _) = TokenKeys::generate().unwrap();
    let parts: Vec<&str> = good.split('.').collect();
    let mut raised = claims(&|_| {});
    raised.roles = vec!["admin".into(), "root".into()];
    raised.exp = now + 86_400;
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(&serde_json::to_vec(&raised).unwrap()),
        parts[2]
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", none, "token-algorithm"),
        ("HS256 keyed with the public key", hs256, "token-algorithm"),
        (
            "another key",
            other.issue(&claims(&|_| {})).unwrap(),
            "token-signature",
        ),
        ("tampered claims", tampered, "token-signature"),
        (
            "expired",
            keys.issue(&claims(&|c| c.exp = now - 60)).unwrap(),
            "token-expired",
        ),
        (
            "not yet valid",
            keys.issue(&claims(&|c| c.nbf = now + 600)).unwrap(),
            "token-not-yet-valid",
        ),
        (
            "issued in the future",
            keys.issue(&claims(&|c| c.iat = now + 600)).unwrap(),
            "token-not-yet-valid",
        ),
        (
            "a store's token",
            keys.issue(&claims(&|c| c.store = "uk".into())).unwrap(),
            "token-wrong-store",
        ),
        (
            "a node's token",
            keys.issue(&claims(&|c| c.aud = NODE_AUDIENCE.into())).unwrap(),
            "token-audience",
        ),
        (
            "unknown user",
            keys.issue(&claims(&|c| c.sub = "ghost".into())).unwrap(),
            "user-disabled",
        ),
        ("garbage", "abc.def".into(), "token-malformed"),
    ];
    for (what, token, slug) in cases {
        let res = app.raw("GET", "/v1/auth/me", Some(&token), None).await;
        let www = res
            .headers()
            .get(header::WWW_AUTHENTICATE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        let (s, v, ct) = read(res).await;
        assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, slug);
        assert!(www.contains(r#"error="invalid_token""#), "{what}: {www}");
    }
    let res = app.raw("GET", "/v1/auth/me", None, None).await;
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="caja-sync""#
    );
    let (s, v, ct) = read(res).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-missing");
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(""), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-malformed");

    // Logout revokes the access token (its jti) and the session.
    let login = app.login("root").await;
    let (access, refresh) = (
        login["access_token"].as_str().unwrap().to_string(),
        login["refresh_token"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        app.send("POST", "/v1/auth/logout", Some(&access), None).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(&access), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-revoked");
    let (s, v, ct) = app.refresh(&refresh).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "refresh-revoked");

    // A refresh token used twice revokes its whole family.
    let login = app.login("root").await;
    let first = login["refresh_token"].as_str().unwrap().to_string();
    let (s, rotated, _) = app.refresh(&first).await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["token_type"], "Bearer");
    let second = rotated["refresh_token"].as_str().unwrap().to_string();
    let second_access = rotated["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.send("GET", "/v1/auth/me", Some(&second_access), None).await.0,
        StatusCode::OK
    );
    let (s, v, ct) = app.refresh(&first).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "refresh-reused");
    let (s, v, ct) = app.refresh(&second).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "refresh-revoked");
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(&second_access), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-revoked");
    let (s, v, ct) = app
        .send(
            "POST",
            "/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": "0".repeat(64)})),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "refresh-unknown");

    let audit: Vec<String> = app
        .server
        .audit(Default::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["login.succeeded", "logout", "session.refresh_reused"] {
        assert!(audit.iter().any(|a| a == k), "{k}: {audit:?}");
    }
    assert_eq!(TokenError::Missing.slug(), "token-missing");
}

#[tokio::test]
async fn wrong_passwords_lock_the_username_known_or_not_and_others_are_unaffected() {
    let app = app().await;
    app.user("mo", &["manager"]).await;
    let login = |name: &'static str, password: &'static str| {
        let app = &app;
        async move {
            let res = app
                .raw(
                    "POST",
                    "/v1/auth/login",
                    None,
                    Some(Body::from(
                        json!({"username": name, "password": password}).to_string(),
                    )),
                )
                .await;
            let retry = res.headers().get(header::RETRY_AFTER).cloned();
            let (s, v, ct) = read(res).await;
            (s, v, ct, retry)
        }
    };
    // A success clears the count: 4 wrong, 1 right, 4 wrong is no lock (5 in a row lock).
    for _ in 0..2 {
        for _ in 0..4 {
            let (s, v, ct, _) = login("mo", "wrong password!").await;
            assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "login-failed");
        }
        assert_eq!(login("mo", PASSWORD).await.0, StatusCode::OK);
    }
    for _ in 0..4 {
        login("mo", "wrong password!").await;
    }
    let (s, v, ct, retry) = login("mo", "wrong password!").await;
    assert_problem(s, &v, &ct, StatusCode::LOCKED, "login-locked");
    assert_eq!(retry.unwrap().to_str().unwrap(), "30", "the first lock is 30 s");
    // Locked: even the right password is refused, without being checked.
    let (s, v, ct, retry) = login("mo", PASSWORD).await;
    assert_problem(s, &v, &ct, StatusCode::LOCKED, "login-locked");
    assert!(retry.is_some());
    // Another user is unaffected.
    assert_eq!(login("root", PASSWORD).await.0, StatusCode::OK);
    // An unknown username locks the same way, so a lock says nothing about who exists.
    for _ in 0..4 {
        let (s, ..) = login("nobody", "wrong password!").await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    let (s, v, ct, _) = login("nobody", "wrong password!").await;
    assert_problem(s, &v, &ct, StatusCode::LOCKED, "login-locked");
    let (s, v, _) = read(app.call("GET", "/v1/audit?kind=login.locked", None).await).await;
    assert_eq!(s, StatusCode::OK);
    let locked: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(locked, ["nobody", "mo"]);
    assert!(
        !v.to_string().contains("wrong password!"),
        "no password in the audit"
    );
}

#[tokio::test]
async fn logins_roles_and_disabled_users_take_effect_at_once() {
    let app = app().await;
    let id = app.user("mo", &["manager"]).await;
    // Wrong password and unknown user get the same answer.
    let wrong = app
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "mo", "password": "wrong password!"})),
        )
        .await;
    let unknown = app
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "wrong password!"})),
        )
        .await;
    assert_problem(
        wrong.0,
        &wrong.1,
        &wrong.2,
        StatusCode::UNAUTHORIZED,
        "login-failed",
    );
    assert_eq!(wrong.1, unknown.1);
    let login = app.login("mo").await;
    assert_eq!(login["user"]["roles"], json!(["manager"]));
    assert_eq!(login["expires_in"], 900);
    let token = login["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        app.send("GET", "/v1/reports/sales", Some(&token), None).await.0,
        StatusCode::OK
    );
    // A role taken away works at once, without a new login.
    app.server
        .update_user(
            &crate::Actor::local(),
            &id,
            UserPatch {
                roles: Some(vec!["cashier".into()]),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let (s, v, ct) = app.send("GET", "/v1/reports/sales", Some(&token), None).await;
    assert_problem(s, &v, &ct, StatusCode::FORBIDDEN, "forbidden");
    assert!(v["detail"].as_str().unwrap().contains("report.read"));
    // A role given needs a new login (the token carries the roles it was issued with).
    app.server
        .update_user(
            &crate::Actor::local(),
            &id,
            UserPatch {
                roles: Some(vec!["manager".into()]),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        app.send("GET", "/v1/reports/sales", Some(&token), None).await.0,
        StatusCode::OK
    );
    // Disabled: tokens refused, login refused.
    app.server
        .update_user(
            &crate::Actor::local(),
            &id,
            UserPatch {
                disabled: Some(true),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(&token), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "user-disabled");
    let (s, v, ct) = app
        .send(
            "POST",
            "/v1/auth/login",
            None,
            Some(json!({"username": "mo", "password": PASSWORD})),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "user-disabled");
    // Signed out everywhere: older tokens refused.
    app.server
        .update_user(
            &crate::Actor::local(),
            &id,
            UserPatch {
                disabled: Some(false),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let fresh = app.login("mo").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, _, _) = app
        .send(
            "POST",
            &format!("/v1/users/{id}/revoke-sessions"),
            Some(&app.token),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(&fresh), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-revoked");

    // A changed password signs the user out everywhere too (sessions and refresh tokens).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let login = app.login("mo").await;
    let (token, refresh) = (
        login["access_token"].as_str().unwrap().to_string(),
        login["refresh_token"].as_str().unwrap().to_string(),
    );
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v, _) = app
        .json(
            "PATCH",
            &format!("/v1/users/{id}"),
            json!({"password": "a new long password"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v, ct) = app.send("GET", "/v1/auth/me", Some(&token), None).await;
    assert_problem(s, &v, &ct, StatusCode::UNAUTHORIZED, "token-revoked");
    let (s, v, _) = app.refresh(&refresh).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    let (_, audit, _) = read(app.call("GET", "/v1/audit?kind=user.updated", None).await).await;
    assert_eq!(audit[0]["detail"]["changed"], json!(["password"]), "{audit}");
    assert_eq!(audit[0]["detail"]["removed"], json!([]));
}

#[tokio::test]
async fn users_and_roles_over_http_validate_every_field() {
    let app = app().await;
    app.json("POST", "/v1/stores", json!({"code": "a", "name": "A"}))
        .await;
    let good = json!({"username": "ana", "password": PASSWORD, "pin": "4821", "roles": ["cashier"], "stores": ["a"]});
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, field) in [
        (with("username", json!("Ana Lopez")), "username"),
        (with("password", json!("short")), "password"),
        (with("pin", json!("12")), "pin"),
        (with("roles", json!(["emperor"])), "roles"),
        (with("roles", json!([])), "roles"),
        (with("stores", json!(["Not A Code"])), "stores"),
        (with("stores", json!(["zz"])), "stores"),
        (with("display_name", json!("")), "display_name"),
    ] {
        let (s, v, ct) = app.json("POST", "/v1/users", body).await;
        assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
        assert_eq!(v["field"], field, "{v}");
        assert!(!v.to_string().contains(PASSWORD));
    }
    let (s, v, ct) = app
        .json("POST", "/v1/users", with("role", json!(["cashier"])))
        .await;
    assert_problem(s, &v, &ct, StatusCode::BAD_REQUEST, "malformed-json");
    let (s, v, _) = app.json("POST", "/v1/users", good.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["has_pin"], true);
    assert!(v.get("password_hash").is_none() && v.get("pin_hash").is_none());
    let id = v["id"].as_str().unwrap().to_string();
    let (s, v, ct) = app.json("POST", "/v1/users", good).await;
    assert_problem(s, &v, &ct, StatusCode::CONFLICT, "conflict");
    let (s, v, _) = app
        .json(
            "PATCH",
            &format!("/v1/users/{id}"),
            json!({"display_name": "Ana L."}),
        )
        .await;
    assert_eq!((s, v["display_name"].as_str()), (StatusCode::OK, Some("Ana L.")));
    assert_eq!(
        (v["has_password"].as_bool(), v["has_pin"].as_bool()),
        (Some(true), Some(true))
    );
    // `null` removes a secret, leaving it out keeps it; a user keeps at least one.
    let user = format!("/v1/users/{id}");
    let (s, v, _) = app.json("PATCH", &user, json!({"password": null})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["has_password"].as_bool(), v["has_pin"].as_bool()),
        (Some(false), Some(true))
    );
    let (_, audit, _) = read(app.call("GET", "/v1/audit?kind=user.updated", None).await).await;
    assert_eq!(audit[0]["detail"]["removed"], json!(["password"]), "{audit}");
    let (s, v, ct) = app.json("PATCH", &user, json!({"pin": null})).await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(v["field"], "pin");
    assert!(v["detail"].as_str().unwrap().contains("neither"), "{v}");
    let (s, v, _) = read(app.call("GET", &user, None).await).await;
    assert_eq!(
        (s, v["has_pin"].as_bool()),
        (StatusCode::OK, Some(true)),
        "nothing changed"
    );
    let (s, v, _) = app
        .json("PATCH", &user, json!({"password": PASSWORD, "pin": null}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["has_password"].as_bool(), v["has_pin"].as_bool()),
        (Some(true), Some(false))
    );
    // A user with no store logs in only at head office, with a password: it stays.
    let (s, v, _) = app
        .json(
            "POST",
            "/v1/users",
            json!({"username": "hq2", "password": PASSWORD, "pin": "4821", "roles": ["admin"]}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let hq2 = format!("/v1/users/{}", v["id"].as_str().unwrap());
    let (s, v, ct) = app.json("PATCH", &hq2, json!({"password": null})).await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert!(v["detail"].as_str().unwrap().contains("no store"), "{v}");
    let (s, v, ct) = app
        .json(
            "POST",
            "/v1/users",
            json!({"username": "hq3", "pin": "4821", "roles": ["admin"]}),
        )
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(v["field"], "password");
    let (s, v, ct) = app.json("PATCH", "/v1/users/nope", json!({})).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");
    let (s, v, _) = read(app.call("GET", "/v1/users", None).await).await;
    assert_eq!((s, v.as_array().unwrap().len()), (StatusCode::OK, 3));

    let (s, v, ct) = app
        .json("PUT", "/v1/roles/clerk", json!({"permissions": ["time.travel"]}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(v["field"], "permissions");
    let (s, v, ct) = app
        .json("PUT", "/v1/roles/admin", json!({"permissions": []}))
        .await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    assert_eq!(v["field"], "name");
    let (s, v, _) = app
        .json("PUT", "/v1/roles/clerk", json!({"permissions": ["stock.read"]}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.json("PATCH", &format!("/v1/users/{id}"), json!({"roles": ["clerk"]}))
        .await;
    let (s, v, ct) = read(app.call("DELETE", "/v1/roles/clerk", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::CONFLICT, "conflict");
    app.json("PATCH", &format!("/v1/users/{id}"), json!({"roles": ["cashier"]}))
        .await;
    assert_eq!(
        app.call("DELETE", "/v1/roles/clerk", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let (_, v, _) = read(app.call("GET", "/v1/roles", None).await).await;
    assert_eq!(v.as_array().unwrap().len(), 3);
    let (s, v, _) = read(app.call("GET", "/v1/audit?limit=500&from=2000-01-01", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert!(v.as_array().unwrap().iter().any(|e| e["kind"] == "role.deleted"));
    let (s, v, ct) = read(app.call("GET", "/v1/audit?from=yesterday", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
    let (s, v, _) = read(app.call("GET", "/v1/audit?kind=role&limit=500", None).await).await;
    assert_eq!(s, StatusCode::OK);
    let kinds: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"role.deleted") && kinds.contains(&"role.defined"),
        "{kinds:?}"
    );
    assert!(kinds.iter().all(|k| k.starts_with("role.")), "{kinds:?}");
    let (s, v, _) = read(app.call("GET", "/v1/audit?kind=role.deleted", None).await).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    for typo in ["rol", "role.delete", "roles"] {
        let (s, v, ct) = read(app.call("GET", &format!("/v1/audit?kind={typo}"), None).await).await;
        assert_problem(s, &v, &ct, StatusCode::UNPROCESSABLE_ENTITY, "invalid-input");
        assert_eq!(v["field"], "kind");
        assert!(v["detail"].as_str().unwrap().contains("role.deleted"), "{v}");
    }
    let (s, _, _) = read(app.call("GET", "/v1/nodes", None).await).await;
    assert_eq!(s, StatusCode::OK);
    let (s, v, ct) = read(app.call("GET", "/v1/facts/nope", None).await).await;
    assert_problem(s, &v, &ct, StatusCode::NOT_FOUND, "not-found");
}

/// A store manager's account exists at head office too (their credentials replicate from
/// here); through the admin API it reads only its own stores' data. Admins and users tied
/// to no store read everything.
#[tokio::test]
async fn users_tied_to_stores_read_only_their_stores() {
    use caja_shared::facts::{FactBody, SecurityEvent, tests_support};
    use caja_shared::ids::FactId;
    let app = app().await;
    let mut sale_ids = Vec::new();
    for s in ["a", "b"] {
        app.server
            .create_store(&crate::Actor::local(), s.parse().unwrap(), s)
            .await
            .unwrap();
        let mut sale = tests_support::sample();
        sale.id = FactId::new();
        sale.store = s.parse().unwrap();
        let mut logout = sale.clone();
        logout.id = FactId::new();
        logout.body = FactBody::Security(SecurityEvent::Logout { session: "s".into() });
        sale_ids.push(sale.id.to_string());
        app.server
            .hub()
            .with_core(move |core| {
                for f in [&sale, &logout] {
                    crate::reports::projection::project_fact(&core.conn, &f.store, f).unwrap();
                    crate::audit::record_fact(&core.conn, f).unwrap();
                }
            })
            .await
            .unwrap();
    }
    app.server
        .create_user(
            &crate::Actor::local(),
            NewUser {
                username: "ma".into(),
                display_name: "Manager of a".into(),
                password: Some(Secret::new(PASSWORD)),
                pin: None,
                roles: vec!["manager".into()],
                stores: vec!["a".parse().unwrap()],
            },
        )
        .await
        .unwrap();
    let t = app.login("ma").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let app = &app;
    let get = |uri: String, token: String| async move { app.send("GET", &uri, Some(&token), None).await };
    let (s, report, _) = get("/v1/reports/sales".into(), t.clone()).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(
        report["stores"].as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["a"]
    );
    assert_eq!(report["totals"]["sales"], 1);
    let (_, stores, _) = get("/v1/stores".into(), t.clone()).await;
    assert_eq!(stores.as_array().unwrap().len(), 1, "{stores}");
    assert_eq!(
        get(format!("/v1/facts/{}", sale_ids[0]), t.clone()).await.0,
        StatusCode::OK
    );
    assert_eq!(
        get(format!("/v1/facts/{}", sale_ids[1]), t.clone()).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, audit, _) = get("/v1/audit".into(), t.clone()).await;
    let seen: BTreeSet<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["store"].as_str())
        .collect();
    assert_eq!(seen, BTreeSet::from(["a"]), "{audit}");
    assert!(
        audit.as_array().unwrap().iter().all(|e| e["store"].is_string()),
        "head-office entries leaked: {audit}"
    );
    // The admin sees both stores.
    let (_, all, _) = get("/v1/reports/sales".into(), app.token.clone()).await;
    assert_eq!(all["totals"]["sales"], 2);
}

/// A store's admin (an admin tied to store a, as the README's `boss`) administers store a
/// at head office and nothing else: no head-office accounts, no other store, nothing
/// chain-wide.
#[tokio::test]
async fn a_store_admin_acts_only_on_their_store() {
    let app = app().await;
    for s in ["a", "b"] {
        app.server
            .create_store(&crate::Actor::local(), s.parse().unwrap(), s)
            .await
            .unwrap();
    }
    let new_user = |name: &str, roles: &[&str], stores: &[&str]| NewUser {
        username: name.into(),
        display_name: name.into(),
        password: Some(Secret::new(PASSWORD)),
        pin: None,
        roles: roles.iter().map(|r| r.to_string()).collect(),
        stores: stores.iter().map(|s| s.parse().unwrap()).collect(),
    };
    app.server
        .create_user(&crate::Actor::local(), new_user("boss", &["admin"], &["a"]))
        .await
        .unwrap();
    let carol = app
        .server
        .create_user(&crate::Actor::local(), new_user("carol", &["admin"], &[]))
        .await
        .unwrap()
        .id;
    let bee = app
        .server
        .create_user(&crate::Actor::local(), new_user("bee", &["cashier"], &["b"]))
        .await
        .unwrap()
        .id;
    let boss = app.login("boss").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let call = |method: &'static str, uri: String, body: Option<Value>| {
        let (app, boss) = (&app, boss.clone());
        async move { app.send(method, &uri, Some(&boss), body).await }
    };
    // Refused: head office's accounts, another store's, and chain-wide changes.
    for (method, uri, body, status) in [
        (
            "POST",
            "/v1/users".to_string(),
            Some(json!({"username": "x1", "password": PASSWORD, "roles": ["admin"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/v1/users".to_string(),
            Some(json!({"username": "x2", "password": PASSWORD, "roles": ["cashier"], "stores": ["b"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "PATCH",
            format!("/v1/users/{carol}"),
            Some(json!({"password": "taken over by boss"})),
            StatusCode::NOT_FOUND,
        ),
        (
            "POST",
            format!("/v1/users/{carol}/revoke-sessions"),
            None,
            StatusCode::NOT_FOUND,
        ),
        ("GET", format!("/v1/users/{bee}"), None, StatusCode::NOT_FOUND),
        (
            "POST",
            "/v1/stores".to_string(),
            Some(json!({"code": "c", "name": "C"})),
            StatusCode::FORBIDDEN,
        ),
        (
            "POST",
            "/v1/stores/b/enrollment-codes".to_string(),
            None,
            StatusCode::FORBIDDEN,
        ),
        (
            "PUT",
            "/v1/roles/clerk".to_string(),
            Some(json!({"permissions": ["sale.read"]})),
            StatusCode::FORBIDDEN,
        ),
        (
            "DELETE",
            "/v1/roles/clerk".to_string(),
            None,
            StatusCode::FORBIDDEN,
        ),
    ] {
        let (s, v, _) = call(method, uri.clone(), body).await;
        assert_eq!(s, status, "{method} {uri}: {v}");
    }
    // Allowed: their own store's staff and enrollment.
    let (s, v, _) = call(
        "POST",
        "/v1/users".into(),
        Some(json!({"username": "ca", "pin": "4821", "roles": ["cashier"], "stores": ["a"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ca = v["id"].as_str().unwrap().to_string();
    let (s, v, _) = call(
        "PATCH",
        format!("/v1/users/{ca}"),
        Some(json!({"stores": ["a", "b"]})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "moving staff to another store: {v}");
    let (s, v, _) = call("POST", "/v1/stores/a/enrollment-codes".into(), None).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (_, users, _) = call("GET", "/v1/users".into(), None).await;
    let names: BTreeSet<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["boss", "ca"]), "{users}");
    // carol is untouched and still logs in with her own password.
    app.login("carol").await;
}

/// `user.manage` is not a way to become admin: a user manager can neither grant, define
/// nor take over (by resetting a password) more than they hold themselves.
#[tokio::test]
async fn user_managers_cannot_raise_themselves_or_take_over_admins() {
    let app = app().await;
    let (s, _, _) = app
        .json("PUT", "/v1/roles/hr", json!({"permissions": ["user.manage"]}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let hr = app.user("hr1", &["hr"]).await;
    let root = app
        .server
        .users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.username == "root")
        .unwrap()
        .id;
    let t = app.login("hr1").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let send = |m: &'static str, uri: String, body: Value| {
        let t = t.clone();
        let app = &app;
        async move { app.send(m, &uri, Some(&t), Some(body)).await }
    };
    for (m, uri, body) in [
        ("PATCH", format!("/v1/users/{hr}"), json!({"roles": ["admin"]})),
        (
            "POST",
            "/v1/users".to_string(),
            json!({"username": "mole", "password": PASSWORD, "roles": ["admin"]}),
        ),
        (
            "PUT",
            "/v1/roles/super".to_string(),
            json!({"permissions": ["user.manage", "node.manage"]}),
        ),
        (
            "PATCH",
            format!("/v1/users/{root}"),
            json!({"password": "taken over at last"}),
        ),
        ("POST", format!("/v1/users/{root}/revoke-sessions"), json!({})),
    ] {
        let (s, body, ct) = send(m, uri.clone(), body).await;
        assert_problem(s, &body, &ct, StatusCode::FORBIDDEN, "forbidden");
        assert!(
            body["detail"].as_str().unwrap().contains("does not have"),
            "{m} {uri}: {body}"
        );
    }
    // Within their own rights they can work: a cashier, and another user manager.
    let (s, body, _) = send(
        "POST",
        "/v1/users".into(),
        json!({"username": "cash1", "pin": "1234", "roles": ["cashier"]}),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "cashier rights are not the user manager's: {body}"
    );
    let (s, body, _) = send(
        "POST",
        "/v1/users".into(),
        json!({"username": "hr2", "password": PASSWORD, "roles": ["hr"]}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_directory_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = app().await;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(app.dir.path()), 0o700);
    for f in [crate::db::DB_FILE, "caja-sync.db-wal", "ca.key.pem", "jwt.key"] {
        assert_eq!(mode(&app.dir.path().join(f)), 0o600, "{f}");
    }
}
