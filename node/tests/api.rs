//! Integration tests of the node's REST API (`/v1`): a real node on `127.0.0.1:0` in a
//! temporary directory, driven over HTTP with `reqwest`.
//!
//! Every test asserts exact outcomes: status, RFC 9457 problem `type` and content type,
//! and amounts as the exact decimal strings clients see. Transactions carry an explicit
//! `occurred_at` so no test depends on today's date.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use caja_tests::harness::{AT, DAY, TestNode, spawn_node};
use reqwest::Method;
use serde_json::{Value, json};

/// A sale body on [`DAY`].
fn sale(lines: Value, tenders: Value) -> Value {
    json!({"lines": lines, "tenders": tenders, "occurred_at": AT})
}

/// A sale of one line paid in cash.
fn cash_sale(sku: &str, qty: &str, cash: &str) -> Value {
    sale(
        json!([{"sku": sku, "quantity": qty}]),
        json!([{"kind": "cash", "amount": cash}]),
    )
}

/// Posts a sale, asserting 201, and returns its view.
async fn checkout(node: &TestNode, body: &Value) -> Value {
    node.post("/v1/sales", body).await.ok(201).clone()
}

// ---------------------------------------------------------------------------------------
// 1. Catalog
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn put_product_validates_and_normalises_barcodes() {
    let node = spawn_node().await;
    let tea = node
        .product(
            "TEA-1",
            json!({"name": "  Earl Grey Tea 50 bags ", "unit_price": "2.50", "tax_rate": "0.20",
                   "barcode": "4006381333931", "category": "Drinks"}),
        )
        .await;
    assert_eq!(
        tea,
        json!({"sku": "TEA-1", "name": "Earl Grey Tea 50 bags", "unit_price": "2.50", "tax_rate": "0.2",
               "barcode": "4006381333931", "category": "Drinks", "stock_tracked": true})
    );
    // UPC-A (12 digits) is stored as the 13-digit GTIN with a leading 0.
    let cof = node
        .product(
            "COF-1",
            json!({"name": "Coffee", "unit_price": "4.75", "barcode": "036000291452"}),
        )
        .await;
    assert_eq!(cof["barcode"], "0036000291452");
    assert_eq!(cof["unit_price"], "4.75");
    assert_eq!(cof["tax_rate"], "0");
    assert_eq!(node.get("/v1/products/COF-1").await.ok(200), &cof);

    // Updating replaces the product.
    let tea2 = node
        .product(
            "TEA-1",
            json!({"name": "Earl Grey", "unit_price": "2.60", "stock_tracked": false}),
        )
        .await;
    assert_eq!(tea2["barcode"], Value::Null);
    assert_eq!(node.get("/v1/products/TEA-1").await.ok(200), &tea2);

    // Bad input is refused, naming the field.
    let cases = [
        (
            json!({"name": "x", "unit_price": "1", "barcode": "4006381333932"}),
            "barcode",
        ),
        (
            json!({"name": "x", "unit_price": "1", "barcode": "12345"}),
            "barcode",
        ),
        (json!({"name": "x", "unit_price": "-1"}), "unit_price"),
        (json!({"name": "x", "unit_price": "1.1234567"}), "unit_price"),
        (
            json!({"name": "x", "unit_price": "1", "tax_rate": "1.5"}),
            "tax_rate",
        ),
        (
            json!({"name": "x", "unit_price": "1", "tax_rate": "-0.1"}),
            "tax_rate",
        ),
        (json!({"name": "   ", "unit_price": "1"}), "name"),
    ];
    for (body, field) in cases {
        let detail = node
            .put("/v1/products/X-1", &body)
            .await
            .problem(422, "invalid-input");
        assert!(detail.starts_with(&format!("{field}: ")), "{body}: {detail}");
    }
    let long = "S".repeat(65);
    let detail = node
        .put(
            &format!("/v1/products/{long}"),
            &json!({"name": "x", "unit_price": "1"}),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("sku: "), "{detail}");
    node.put(
        "/v1/products/X-1",
        &json!({"name": "x", "unit_price": "1", "colour": "red"}),
    )
    .await
    .problem(400, "malformed-json");
    node.put("/v1/products/X-1", &json!({"name": "x"}))
        .await
        .problem(400, "malformed-json");
    node.raw(
        Method::PUT,
        "/v1/products/X-1",
        Some("text/plain"),
        b"{}".to_vec(),
    )
    .await
    .problem(415, "unsupported-media-type");
    node.get("/v1/products/X-1").await.problem(404, "not-found");
}

#[tokio::test]
async fn search_matches_word_prefixes() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let skus = |r: &Value| -> BTreeSet<String> {
        r.as_array()
            .unwrap()
            .iter()
            .map(|p| p["sku"].as_str().unwrap().to_string())
            .collect()
    };
    let set = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let q = |q: &str| format!("/v1/products?q={q}");
    assert_eq!(skus(node.get(&q("tea")).await.ok(200)), set(&["TEA-1"]));
    // Prefixes, case-insensitive, over name and category; every word must match.
    assert_eq!(skus(node.get(&q("ear%20gr")).await.ok(200)), set(&["TEA-1"]));
    assert_eq!(skus(node.get(&q("drin")).await.ok(200)), set(&["TEA-1", "COF-1"]));
    assert_eq!(skus(node.get(&q("drinks%20dark")).await.ok(200)), set(&["COF-1"]));
    assert_eq!(
        skus(node.get(&q("DRINKS%20roast%20ground")).await.ok(200)),
        set(&["COF-1"])
    );
    assert_eq!(skus(node.get(&q("drinks%20sugar")).await.ok(200)), set(&[]));
    // SKU words match too; FTS operators in input are plain text.
    assert_eq!(skus(node.get(&q("gum")).await.ok(200)), set(&["GUM-1"]));
    assert_eq!(skus(node.get(&q("bag%20OR%20tea")).await.ok(200)), set(&[]));
    assert_eq!(skus(node.get(&q("%22tea%22%20*")).await.ok(200)), set(&["TEA-1"]));
    // An empty query lists by SKU; limit applies.
    let all = node.get("/v1/products").await;
    let list: Vec<&str> = all
        .ok(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["sku"].as_str().unwrap())
        .collect();
    assert_eq!(list, ["BAG-1", "COF-1", "GUM-1", "SUG-1", "TEA-1"]);
    assert_eq!(
        node.get("/v1/products?limit=2")
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len(),
        2
    );
    node.get("/v1/products?limit=abc")
        .await
        .problem(400, "bad-request");
    for limit in [0, 201] {
        let detail = node
            .get(&format!("/v1/products?limit={limit}"))
            .await
            .problem(422, "invalid-input");
        assert!(detail.contains("1-200"), "{detail}");
    }
    // The search index follows updates.
    node.product("TEA-1", json!({"name": "Assam", "unit_price": "2.50"}))
        .await;
    assert_eq!(skus(node.get(&q("earl")).await.ok(200)), set(&[]));
    assert_eq!(skus(node.get(&q("assam")).await.ok(200)), set(&["TEA-1"]));
}

#[tokio::test]
async fn barcode_lookup() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let tea = node.get("/v1/products/by-barcode/4006381333931").await;
    assert_eq!(tea.ok(200)["sku"], "TEA-1");
    // A UPC-A code is found by its 12 or 13 digits.
    assert_eq!(
        node.get("/v1/products/by-barcode/036000291452").await.ok(200)["sku"],
        "COF-1"
    );
    assert_eq!(
        node.get("/v1/products/by-barcode/0036000291452").await.ok(200)["sku"],
        "COF-1"
    );
    let detail = node
        .get("/v1/products/by-barcode/4006381333932")
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("check digit"), "{detail}");
    node.get("/v1/products/by-barcode/abc")
        .await
        .problem(422, "invalid-input");
    // A valid code nobody uses.
    node.get("/v1/products/by-barcode/5901234123457")
        .await
        .problem(404, "not-found");
}

#[tokio::test]
async fn csv_import_is_all_or_nothing() {
    let node = spawn_node().await;
    let import = |body: &[u8], ct: Option<&str>| {
        let body = body.to_vec();
        let ct = ct.map(str::to_string);
        let node = &node;
        async move {
            node.raw(Method::POST, "/v1/products:import", ct.as_deref(), body)
                .await
        }
    };
    let count = || async {
        node.get("/v1/products?limit=200")
            .await
            .ok(200)
            .as_array()
            .unwrap()
            .len()
    };

    let csv = "sku,name,unit_price,tax_rate,barcode,category,stock_tracked\n\
               A-1,Apple juice,1.20,0.2,4006381333931,Drinks,true\n\
               B-1, Bread ,0.95,,,Bakery,no\n\
               C-1,\"Cheese, mature\",3.5,0.05,036000291452,,\n";
    let r = import(csv.as_bytes(), Some("text/csv; charset=utf-8")).await;
    assert_eq!(r.ok(200), &json!({"written": 3}));
    let b = node.get("/v1/products/B-1").await;
    assert_eq!(
        b.ok(200),
        &json!({"sku": "B-1", "name": "Bread", "unit_price": "0.95", "tax_rate": "0", "barcode": null,
                "category": "Bakery", "stock_tracked": false})
    );
    assert_eq!(
        node.get("/v1/products/C-1").await.ok(200)["barcode"],
        "0036000291452"
    );
    assert_eq!(
        node.get("/v1/products/C-1").await.ok(200)["name"],
        "Cheese, mature"
    );
    assert_eq!(count().await, 3);
    // Catalog writes replicate chain-wide: the node's audit says who made them.
    node.put(
        "/v1/products/B-1",
        &json!({"name": "Bread", "unit_price": "1.05"}),
    )
    .await
    .ok(200);
    let audit = node.get("/v1/audit?kind=catalog.changed").await.ok(200).clone();
    let entries: Vec<(&str, &str, i64)> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["detail"]["how"].as_str().unwrap(),
                e["username"].as_str().unwrap(),
                e["detail"]["products"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(entries, [("import", "admin", 3), ("put", "admin", 1)], "{audit}");
    assert_eq!(audit[0]["detail"]["skus"], json!(["A-1", "B-1", "C-1"]));

    // A byte that is not UTF-8 on line 3: the detail names the line.
    let mut bad = b"sku,name,unit_price\nD-1,Dates,1\nE-1,Eggs ".to_vec();
    bad.push(0xff);
    bad.extend_from_slice(b",2\n");
    let detail = import(&bad, Some("text/csv")).await.problem(422, "invalid-input");
    assert!(detail.contains("line 3"), "{detail}");
    assert!(detail.contains("UTF-8"), "{detail}");

    // Missing unit_price column.
    let detail = import(b"sku,name,price\nD-1,Dates,1\n", Some("text/csv"))
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("unit_price"), "{detail}");

    // One bad row among good ones: nothing imported, the bad lines named.
    let csv = "sku,name,unit_price,barcode\nD-1,Dates,1.00,\nE-1,Eggs,abc,\nF-1,Figs,2,4006381333932\n";
    let detail = import(csv.as_bytes(), Some("text/csv"))
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("2 bad row(s)"), "{detail}");
    assert!(detail.contains("line 3") && detail.contains("line 4"), "{detail}");
    node.get("/v1/products/D-1").await.problem(404, "not-found");
    assert_eq!(count().await, 3);

    // A mistyped column is refused, not dropped (tax rates would silently become 0).
    let detail = import(b"sku,name,unit_price,vat\nD-1,Dates,1,0.2\n", Some("text/csv"))
        .await
        .problem(422, "invalid-input");
    assert!(
        detail.contains("unknown column \"vat\"") && detail.contains("tax_rate"),
        "{detail}"
    );
    // More fields than the header has; the same SKU twice.
    let detail = import(b"sku,name,unit_price\nD-1,Dates,1,extra\n", Some("text/csv"))
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("line 2: 4 fields, the header has 3"), "{detail}");
    let detail = import(
        b"sku,name,unit_price\nD-1,Dates,1\nD-1,Dates,2\n",
        Some("text/csv"),
    )
    .await
    .problem(422, "invalid-input");
    assert!(
        detail.contains("line 3: SKU D-1 is already on line 2"),
        "{detail}"
    );
    // One barcode, one product: another product's barcode, or one code twice in a file.
    let detail = import(
        b"sku,name,unit_price,barcode\nD-1,Dates,1,4006381333931\n",
        Some("text/csv"),
    )
    .await
    .problem(422, "invalid-input");
    assert!(detail.contains("already the barcode of A-1"), "{detail}");
    let detail = import(
        b"sku,name,unit_price,barcode\nD-1,Dates,1,5901234123457\nE-1,Eggs,2,5901234123457\n",
        Some("text/csv"),
    )
    .await
    .problem(422, "invalid-input");
    assert!(detail.contains("given to both D-1 and E-1"), "{detail}");
    let detail = node
        .put(
            "/v1/products/D-1",
            &json!({"name": "Dates", "unit_price": "1", "barcode": "4006381333931"}),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("already the barcode of A-1"), "{detail}");
    assert_eq!(count().await, 3);
    // Moving a code from one product to another in one file is fine.
    let moved = "sku,name,unit_price,barcode\nA-1,Apple juice,1.20,\nD-1,Dates,1,4006381333931\n";
    assert_eq!(
        import(moved.as_bytes(), Some("text/csv")).await.ok(200),
        &json!({"written": 2})
    );
    assert_eq!(
        node.get("/v1/products/by-barcode/4006381333931").await.ok(200)["sku"],
        "D-1"
    );
    assert_eq!(count().await, 4);

    // Header only.
    import(b"sku,name,unit_price\n", Some("text/csv"))
        .await
        .problem(422, "invalid-input");

    // Wrong or missing content type.
    let csv = b"sku,name,unit_price\nD-1,Dates,1\n";
    import(csv, Some("application/json"))
        .await
        .problem(415, "unsupported-media-type");
    import(csv, None).await.problem(415, "unsupported-media-type");
    assert_eq!(count().await, 4);

    // A UTF-8 byte order mark (spreadsheet exports) does not hide the first column.
    let mut bom = "\u{feff}".as_bytes().to_vec();
    bom.extend_from_slice(csv);
    assert_eq!(
        import(&bom, Some("text/csv")).await.ok(200),
        &json!({"written": 1})
    );
    assert_eq!(count().await, 4);
}

#[tokio::test]
async fn csv_import_accepts_more_than_the_json_body_limit() {
    let node = spawn_node().await;
    // About 2 MiB: over the 1 MiB JSON limit, under the 8 MiB import limit.
    let mut csv = String::from("sku,name,unit_price,category\n");
    let n = 30_000;
    for i in 0..n {
        csv.push_str(&format!(
            "SKU-{i:06},Product number {i} with a fairly long name,{}.99,Category {}\n",
            i % 50,
            i % 7
        ));
    }
    assert!(csv.len() > 2 << 20, "{}", csv.len());
    let r = node
        .raw(
            Method::POST,
            "/v1/products:import",
            Some("text/csv"),
            csv.into_bytes(),
        )
        .await;
    assert_eq!(r.ok(200), &json!({"written": n}));
    assert_eq!(
        node.get("/v1/products/SKU-029999").await.ok(200)["unit_price"],
        "49.99"
    );
    // Over 8 MiB is refused.
    let big = vec![b'a'; 9 << 20];
    node.raw(Method::POST, "/v1/products:import", Some("text/csv"), big)
        .await
        .problem(413, "payload-too-large");
}

// ---------------------------------------------------------------------------------------
// 2. Sales
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sale_with_two_tenders_and_change() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 2}, {"sku": "COF-1", "quantity": "1"}]),
        json!([{"kind": "card", "amount": "5.00"}, {"kind": "cash", "amount": "10"}]),
    );
    let s = checkout(&node, &body).await;
    assert_eq!(s["kind"], "sale");
    assert_eq!(s["receipt_no"], "main-T1-1");
    assert_eq!(s["store"], "main");
    assert_eq!(s["terminal"], "T1");
    assert_eq!(s["currency"], "GBP");
    assert_eq!(s["business_date"], DAY);
    assert_eq!(s["occurred_at"], "2024-03-15T10:30:00+00:00");
    assert_eq!(
        (&s["net"], &s["tax"], &s["total"], &s["change"]),
        (&json!("9.75"), &json!("1.95"), &json!("11.70"), &json!("3.30"))
    );
    assert_eq!(
        s["lines"],
        json!([
            {"sku": "TEA-1", "description": "Earl Grey Tea 50 bags", "quantity": "2", "unit_price": "2.50",
             "price_overridden": false, "tax_rate": "0.2", "net": "5.00", "tax": "1.00", "total": "6.00"},
            {"sku": "COF-1", "description": "Ground Coffee Dark Roast", "quantity": "1", "unit_price": "4.75",
             "price_overridden": false, "tax_rate": "0.2", "net": "4.75", "tax": "0.95", "total": "5.70"}
        ])
    );
    assert_eq!(
        s["tenders"],
        json!([{"kind": "card", "amount": "5.00"}, {"kind": "cash", "amount": "10.00"}])
    );
    assert!(s.get("original_sale").is_none());
    let id = s["id"].as_str().unwrap();
    assert_eq!(id.parse::<uuid::Uuid>().unwrap().get_version_num(), 7);
    assert_eq!(node.get(&format!("/v1/sales/{id}")).await.ok(200), &s);

    // Receipt numbers increment per terminal.
    let s2 = checkout(&node, &cash_sale("BAG-1", "1", "0.10")).await;
    assert_eq!(s2["receipt_no"], "main-T1-2");
    assert_eq!(s2["change"], "0.00");
    let mut other = cash_sale("BAG-1", "1", "0.10");
    other["terminal"] = json!("T2");
    assert_eq!(checkout(&node, &other).await["receipt_no"], "main-T2-1");
    assert_eq!(
        checkout(&node, &cash_sale("BAG-1", "1", "0.10")).await["receipt_no"],
        "main-T1-3"
    );

    let report = node.report(DAY).await;
    assert_eq!(
        report,
        json!({"date": DAY, "currency": "GBP", "sales": 4, "refunds": 0, "gross": "12.00", "refunded": "0.00",
               "net": "12.00", "tax": "1.95", "tenders": {"card": "5.00", "cash": "7.00"}, "pending_sync": 4})
    );
}

#[tokio::test]
async fn tender_labels_name_report_lines() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 1}]),
        json!([{"kind": "other", "label": "Ewallet", "amount": "1.00"}, {"kind": "cash", "label": "Cash", "amount": "5.00"}]),
    );
    let s = checkout(&node, &body).await;
    assert_eq!(s["change"], "3.00");
    // Takings by tender add up to the total; the change comes out of the cash tender.
    let r = node.report(DAY).await;
    assert_eq!(r["gross"], "3.00");
    assert_eq!(r["tenders"], json!({"Cash": "2.00", "Ewallet": "1.00"}));
}

#[tokio::test]
async fn price_override_is_flagged() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 1, "unit_price": "2.00"},
               {"sku": "TEA-1", "quantity": 1, "unit_price": "2.5"},
               {"sku": "COF-1", "quantity": 1, "unit_price": "0"}]),
        json!([{"kind": "card", "amount": "5.40"}]),
    );
    let s = checkout(&node, &body).await;
    let flags: Vec<&Value> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["price_overridden"])
        .collect();
    assert_eq!(flags, [&json!(true), &json!(false), &json!(true)]);
    assert_eq!(s["lines"][0]["unit_price"], "2.00");
    assert_eq!(s["lines"][0]["total"], "2.40");
    assert_eq!(s["lines"][2]["total"], "0.00");
    assert_eq!(s["total"], "5.40");
    let detail = node
        .post(
            "/v1/sales",
            &sale(
                json!([{"sku": "TEA-1", "quantity": 1, "unit_price": "-1"}]),
                json!([{"kind": "cash", "amount": "5"}]),
            ),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("lines[0].unit_price: "), "{detail}");
}

#[tokio::test]
async fn amounts_round_half_away_from_zero_per_line() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    // 3 x 0.165 = 0.495 -> 0.50; 20 % of 0.50 = 0.10.
    // Gum: 0.10 at 5 % = 0.005 -> 0.01 on each line (0.02), not 0.01 on the sum.
    // 0.5 kg of sugar: 0.0825 -> 0.08; tax 0.016 -> 0.02.
    let body = sale(
        json!([{"sku": "SUG-1", "quantity": 3}, {"sku": "GUM-1", "quantity": 1}, {"sku": "GUM-1", "quantity": 1},
               {"sku": "SUG-1", "quantity": "0.5"}]),
        json!([{"kind": "cash", "amount": "1"}]),
    );
    let s = checkout(&node, &body).await;
    let amounts: Vec<(&str, &str, &str)> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["net"].as_str().unwrap(),
                l["tax"].as_str().unwrap(),
                l["total"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        [
            ("0.50", "0.10", "0.60"),
            ("0.10", "0.01", "0.11"),
            ("0.10", "0.01", "0.11"),
            ("0.08", "0.02", "0.10")
        ]
    );
    assert_eq!(
        (&s["net"], &s["tax"], &s["total"], &s["change"]),
        (&json!("0.78"), &json!("0.14"), &json!("0.92"), &json!("0.08"))
    );
    assert_eq!(s["lines"][0]["unit_price"], "0.165");
    assert_eq!(s["lines"][3]["quantity"], "0.5");
}

#[tokio::test]
async fn bad_sales_are_refused_and_change_nothing() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let first = checkout(&node, &cash_sale("TEA-1", "2", "10.00")).await;
    let first_id = first["id"].as_str().unwrap().to_string();
    let report = node.report(DAY).await;
    let on_hand = node.on_hand("TEA-1").await;
    assert_eq!(on_hand, "-2");

    // Malformed JSON, missing content type, unknown field.
    node.raw(
        Method::POST,
        "/v1/sales",
        Some("application/json"),
        b"{\"lines\": [".to_vec(),
    )
    .await
    .problem(400, "malformed-json");
    node.raw(Method::POST, "/v1/sales", Some("application/json"), b"".to_vec())
        .await
        .problem(400, "malformed-json");
    let ok_body = serde_json::to_vec(&cash_sale("TEA-1", "1", "5")).unwrap();
    node.raw(Method::POST, "/v1/sales", None, ok_body.clone())
        .await
        .problem(415, "unsupported-media-type");
    node.raw(Method::POST, "/v1/sales", Some("text/plain"), ok_body)
        .await
        .problem(415, "unsupported-media-type");
    let mut unknown = cash_sale("TEA-1", "1", "5");
    unknown["discount"] = json!("1.00");
    node.post("/v1/sales", &unknown)
        .await
        .problem(400, "malformed-json");
    let mut unknown_line = cash_sale("TEA-1", "1", "5");
    unknown_line["lines"][0]["colour"] = json!("red");
    node.post("/v1/sales", &unknown_line)
        .await
        .problem(400, "malformed-json");
    node.post("/v1/sales", &json!({"lines": []}))
        .await
        .problem(400, "malformed-json");
    let mut bad_kind = cash_sale("TEA-1", "1", "5");
    bad_kind["tenders"][0]["kind"] = json!("cheque");
    node.post("/v1/sales", &bad_kind)
        .await
        .problem(400, "malformed-json");

    // Unknown SKU.
    let detail = node
        .post("/v1/sales", &cash_sale("NOPE", "1", "5"))
        .await
        .problem(422, "unknown-sku");
    assert!(detail.contains("\"NOPE\""), "{detail}");

    // Bad quantities name the field.
    for q in [
        json!(0),
        json!("0"),
        json!(-1),
        json!("-1"),
        json!("abc"),
        json!(1.2345),
        json!("1.2345"),
        json!("2000000"),
    ] {
        let body = sale(
            json!([{"sku": "TEA-1", "quantity": q}]),
            json!([{"kind": "cash", "amount": "5"}]),
        );
        let detail = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
        assert!(detail.starts_with("lines[0].quantity: "), "{q}: {detail}");
    }
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 1}, {"sku": "TEA-1", "quantity": "0"}]),
        json!([{"kind": "cash", "amount": "5"}]),
    );
    let detail = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(detail.starts_with("lines[1].quantity: "), "{detail}");

    // Empty lines, no tenders.
    let detail = node
        .post(
            "/v1/sales",
            &sale(json!([]), json!([{"kind": "cash", "amount": "5"}])),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("lines: "), "{detail}");
    let detail = node
        .post(
            "/v1/sales",
            &sale(json!([{"sku": "TEA-1", "quantity": 1}]), json!([])),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("tenders: "), "{detail}");

    // Tenders short of the total (3.00).
    let detail = node
        .post("/v1/sales", &cash_sale("TEA-1", "1", "2.99"))
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("tenders: "), "{detail}");
    // A card paying more than the total (no change on a card).
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 1}]),
        json!([{"kind": "card", "amount": "3.01"}]),
    );
    let detail = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(detail.starts_with("tenders: "), "{detail}");
    // A sale beyond the most one sale may be (1,000,000,000.00), or absurd cash for it:
    // refused, so no day's report sum can overflow.
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": "1000000"}, {"sku": "TEA-1", "quantity": "1000000"}]),
        json!([{"kind": "cash", "amount": "90000000000000000"}]),
    );
    let detail = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(detail.contains("beyond what one sale or refund may"), "{detail}");
    let detail = node
        .post("/v1/sales", &cash_sale("TEA-1", "1", "90000000000000000"))
        .await
        .problem(422, "invalid-input");
    assert!(
        detail.contains("beyond what one sale or refund may take"),
        "{detail}"
    );
    // 21 tenders; change beyond 100,000.00 (a mistyped amount).
    let many: Vec<Value> = (0..21)
        .map(|_| json!({"kind": "cash", "amount": "0.50"}))
        .collect();
    let body = sale(json!([{"sku": "TEA-1", "quantity": 1}]), json!(many));
    let detail = node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    assert!(detail.contains("at most 20 tenders"), "{detail}");
    let detail = node
        .post("/v1/sales", &cash_sale("TEA-1", "1", "1000000000.00"))
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("check the amount tendered"), "{detail}");
    // Change beyond the cash given.
    let body = sale(
        json!([{"sku": "TEA-1", "quantity": 1}]),
        json!([{"kind": "card", "amount": "3.00"}, {"kind": "cash", "amount": "0.50"}, {"kind": "other", "amount": "1.00"}]),
    );
    node.post("/v1/sales", &body).await.problem(422, "invalid-input");
    // Amounts with more decimals than the currency, negative, or not numbers.
    for amount in ["10.005", "-5", "abc", ""] {
        let detail = node
            .post("/v1/sales", &cash_sale("TEA-1", "1", amount))
            .await
            .problem(422, "invalid-input");
        assert!(detail.starts_with("tenders[0].amount: "), "{amount}: {detail}");
    }
    // A bad terminal.
    let mut bad_terminal = cash_sale("TEA-1", "1", "5");
    bad_terminal["terminal"] = json!("T 1");
    let detail = node
        .post("/v1/sales", &bad_terminal)
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("terminal: "), "{detail}");

    // A 10 MB body.
    let mut huge = br#"{"lines": [], "tenders": [], "pad": ""#.to_vec();
    huge.extend(std::iter::repeat_n(b'x', 10 << 20));
    huge.extend_from_slice(b"\"}");
    node.raw(Method::POST, "/v1/sales", Some("application/json"), huge)
        .await
        .problem(413, "payload-too-large");

    // Nothing changed: the sale is there, the report and stock are as before, and the
    // next receipt number follows the first.
    assert_eq!(node.get(&format!("/v1/sales/{first_id}")).await.ok(200), &first);
    assert_eq!(node.report(DAY).await, report);
    assert_eq!(node.on_hand("TEA-1").await, on_hand);
    assert_eq!(
        checkout(&node, &cash_sale("BAG-1", "1", "1")).await["receipt_no"],
        "main-T1-2"
    );
}

#[tokio::test]
async fn get_sale_by_id() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    node.get("/v1/sales/not-a-uuid").await.problem(400, "bad-request");
    node.get("/v1/sales/0190f4c4-8d2e-7000-8000-000000000000")
        .await
        .problem(404, "not-found");
    // A stock movement is a fact but not a sale.
    let m = node
        .post(
            "/v1/stock/movements",
            &json!({"sku": "TEA-1", "quantity": 1, "reason": "receipt"}),
        )
        .await;
    let id = m.ok(201)["id"].as_str().unwrap().to_string();
    node.get(&format!("/v1/sales/{id}"))
        .await
        .problem(404, "not-found");
}

// ---------------------------------------------------------------------------------------
// 3. Idempotency-Key
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn idempotent_retry_returns_the_first_sale() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let body = cash_sale("TEA-1", "1", "5.00");
    let a = node.post_key("/v1/sales", "till-1/42", &body).await;
    let first = a.ok(201).clone();
    assert!(a.headers.get("idempotent-replayed").is_none());
    let b = node.post_key("/v1/sales", "till-1/42", &body).await;
    assert_eq!(b.ok(201), &first);
    assert_eq!(b.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(b.content_type(), "application/json");
    let r = node.report(DAY).await;
    assert_eq!((&r["sales"], &r["gross"]), (&json!(1), &json!("3.00")));

    // Same key, different body.
    let other = cash_sale("TEA-1", "2", "10.00");
    let detail = node
        .post_key("/v1/sales", "till-1/42", &other)
        .await
        .problem(422, "idempotency-key-reused");
    assert!(detail.contains("till-1/42"), "{detail}");
    // The key is not consumed by a refused request: a failed sale can be retried.
    let short = cash_sale("TEA-1", "1", "1.00");
    node.post_key("/v1/sales", "till-1/43", &short)
        .await
        .problem(422, "invalid-input");
    let ok = node.post_key("/v1/sales", "till-1/43", &body).await;
    assert_ne!(ok.ok(201)["id"], first["id"]);
    assert!(ok.headers.get("idempotent-replayed").is_none());
    // Bad keys.
    node.post_key("/v1/sales", &"k".repeat(256), &body)
        .await
        .problem(422, "invalid-input");
    node.post_key("/v1/sales", "", &body)
        .await
        .problem(422, "invalid-input");
    let r = node.report(DAY).await;
    assert_eq!((&r["sales"], &r["gross"]), (&json!(2), &json!("6.00")));
}

#[tokio::test]
async fn idempotency_keys_are_per_user_and_cover_stock_movements() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    node.add_user("ana", &["manager"]).await;
    let ana = node.as_user(Some(node.login("ana").await));
    let body = cash_sale("TEA-1", "1", "3");
    let mine = node
        .post_key("/v1/sales", "till1-0001", &body)
        .await
        .ok(201)
        .clone();
    // Another user with the same key and body makes their own sale, not a replay of mine.
    let r = ana
        .send(
            ana.req(Method::POST, "/v1/sales")
                .header("idempotency-key", "till1-0001")
                .json(&body),
        )
        .await;
    assert!(r.headers.get("idempotent-replayed").is_none());
    assert_ne!(r.ok(201)["id"], mine["id"]);
    // A retried stock movement is recorded once.
    let m = json!({"sku": "TEA-1", "quantity": "12", "reason": "receipt", "note": "delivery 1"});
    let first = node
        .post_key("/v1/stock/movements", "stock-1", &m)
        .await
        .ok(201)
        .clone();
    let again = node.post_key("/v1/stock/movements", "stock-1", &m).await;
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(again.ok(201)["id"], first["id"]);
    assert_eq!(node.on_hand("TEA-1").await, "10");
    let other = json!({"sku": "TEA-1", "quantity": "5", "reason": "receipt"});
    node.post_key("/v1/stock/movements", "stock-1", &other)
        .await
        .problem(422, "idempotency-key-reused");
}

#[tokio::test]
async fn concurrent_retries_with_one_key_make_one_sale() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let body = cash_sale("COF-1", "1", "6.00");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (client, url, body) = (node.client.clone(), node.url.clone(), body.clone());
        let bearer = node.bearer.clone().unwrap();
        tasks.spawn(async move {
            let res = client
                .post(format!("{url}/v1/sales"))
                .bearer_auth(bearer)
                .header("idempotency-key", "same-key")
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = res.headers().get("idempotent-replayed").is_some();
            (
                res.status().as_u16(),
                replayed,
                res.json::<Value>().await.unwrap(),
            )
        });
    }
    let results = tasks.join_all().await;
    assert!(results.iter().all(|(s, _, _)| *s == 201), "{results:?}");
    let ids: BTreeSet<&str> = results
        .iter()
        .map(|(_, _, v)| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "{results:?}");
    assert_eq!(results.iter().filter(|(_, replayed, _)| !replayed).count(), 1);
    let r = node.report(DAY).await;
    assert_eq!((&r["sales"], &r["gross"]), (&json!(1), &json!("5.70")));
    assert_eq!(node.on_hand("COF-1").await, "-1");
}

#[tokio::test]
async fn idempotent_refund() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let s = checkout(&node, &cash_sale("TEA-1", "2", "6.00")).await;
    let body =
        json!({"original_sale": s["id"], "lines": [{"sku": "TEA-1", "quantity": 2}], "occurred_at": AT});
    let a = node
        .post_key("/v1/refunds", "refund-1", &body)
        .await
        .ok(201)
        .clone();
    let b = node.post_key("/v1/refunds", "refund-1", &body).await;
    assert_eq!(b.ok(201), &a);
    assert_eq!(b.headers.get("idempotent-replayed").unwrap(), "true");
    // Without the key the same refund would exceed the sale.
    node.post("/v1/refunds", &body).await.problem(409, "conflict");
    let r = node.report(DAY).await;
    assert_eq!((&r["refunds"], &r["refunded"]), (&json!(1), &json!("-6.00")));
}

// ---------------------------------------------------------------------------------------
// 4. Refunds
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn refunds_with_and_without_receipt() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let s = checkout(
        &node,
        &sale(
            json!([{"sku": "TEA-1", "quantity": 3}, {"sku": "COF-1", "quantity": 1}]),
            json!([{"kind": "cash", "amount": "20.00"}]),
        ),
    )
    .await;
    assert_eq!((&s["total"], &s["change"]), (&json!("14.70"), &json!("5.30")));
    let sale_id = s["id"].as_str().unwrap();

    // Partial refund with receipt at the original price.
    let r1 = node
        .post(
            "/v1/refunds",
            &json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": "1"}], "reason": "damaged",
                    "occurred_at": AT}),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(r1["kind"], "refund");
    assert_eq!(r1["receipt_no"], "main-T1-2");
    assert_eq!(r1["original_sale"], sale_id);
    assert_eq!(
        (&r1["net"], &r1["tax"], &r1["total"], &r1["change"]),
        (&json!("-2.50"), &json!("-0.50"), &json!("-3.00"), &json!("0.00"))
    );
    assert_eq!(
        r1["lines"],
        json!([{"sku": "TEA-1", "description": "Earl Grey Tea 50 bags", "quantity": "1", "unit_price": "2.50",
                "price_overridden": false, "tax_rate": "0.2", "net": "-2.50", "tax": "-0.50", "total": "-3.00"}])
    );
    assert_eq!(r1["tenders"], json!([{"kind": "cash", "amount": "-3.00"}]));
    assert_eq!(
        node.get(&format!("/v1/sales/{}", r1["id"].as_str().unwrap()))
            .await
            .ok(200),
        &r1
    );

    // A price change in the catalog does not change a refund with receipt.
    node.product(
        "TEA-1",
        json!({"name": "Earl Grey Tea 50 bags", "unit_price": "9.99", "tax_rate": "0.2"}),
    )
    .await;

    // Over-refund: 1 already refunded of 3 sold.
    let over =
        json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": 3}], "occurred_at": AT});
    let detail = node.post("/v1/refunds", &over).await.problem(409, "conflict");
    assert!(detail.contains("lines[0]"), "{detail}");
    // A reason longer than 500 bytes.
    let long = json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": 1}],
                      "occurred_at": AT, "reason": "x".repeat(501)});
    let detail = node
        .post("/v1/refunds", &long)
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("reason: "), "{detail}");
    // A SKU that is not on the sale.
    let not_on =
        json!({"original_sale": sale_id, "lines": [{"sku": "BAG-1", "quantity": 1}], "occurred_at": AT});
    node.post("/v1/refunds", &not_on).await.problem(409, "conflict");
    // A different price with receipt.
    let priced =
        json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "1"}]});
    let detail = node
        .post("/v1/refunds", &priced)
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("lines[0].unit_price: "), "{detail}");
    // Unknown original sale; an id that is not a sale.
    let unknown = json!({"original_sale": "0190f4c4-8d2e-7000-8000-000000000000", "lines": [{"sku": "TEA-1", "quantity": 1}]});
    node.post("/v1/refunds", &unknown).await.problem(404, "not-found");
    let not_sale = json!({"original_sale": r1["id"], "lines": [{"sku": "TEA-1", "quantity": 1}]});
    node.post("/v1/refunds", &not_sale)
        .await
        .problem(404, "not-found");
    // Bad quantity, unknown SKU without receipt, no lines.
    let zero = json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": 0}]});
    node.post("/v1/refunds", &zero)
        .await
        .problem(422, "invalid-input");
    node.post("/v1/refunds", &json!({"lines": [{"sku": "NOPE", "quantity": 1}]}))
        .await
        .problem(422, "unknown-sku");
    node.post("/v1/refunds", &json!({"lines": []}))
        .await
        .problem(422, "invalid-input");

    // The remaining two can still be refunded exactly.
    let r2 = node
        .post(
            "/v1/refunds",
            &json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": 2}], "occurred_at": AT}),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(r2["total"], "-6.00");
    node.post(
        "/v1/refunds",
        &json!({"original_sale": sale_id, "lines": [{"sku": "TEA-1", "quantity": "0.001"}]}),
    )
    .await
    .problem(409, "conflict");

    // Without receipt: at the catalog price (now 9.99) ...
    let r3 = node
        .post(
            "/v1/refunds",
            &json!({"lines": [{"sku": "COF-1", "quantity": 1}], "occurred_at": AT}),
        )
        .await
        .ok(201)
        .clone();
    assert!(r3.get("original_sale").is_none());
    assert_eq!(
        (&r3["net"], &r3["tax"], &r3["total"]),
        (&json!("-4.75"), &json!("-0.95"), &json!("-5.70"))
    );
    assert_eq!(r3["lines"][0]["price_overridden"], false);
    // ... and at an override price, to a card.
    let r4 = node
        .post(
            "/v1/refunds",
            &json!({"lines": [{"sku": "TEA-1", "quantity": 1, "unit_price": "1.00"}], "tender": {"kind": "card"},
                    "occurred_at": AT}),
        )
        .await
        .ok(201)
        .clone();
    assert_eq!(
        (&r4["net"], &r4["tax"], &r4["total"]),
        (&json!("-1.00"), &json!("-0.20"), &json!("-1.20"))
    );
    assert_eq!(r4["lines"][0]["price_overridden"], true);
    assert_eq!(r4["tenders"], json!([{"kind": "card", "amount": "-1.20"}]));

    let report = node.report(DAY).await;
    assert_eq!(
        report,
        json!({"date": DAY, "currency": "GBP", "sales": 1, "refunds": 4, "gross": "14.70", "refunded": "-15.90",
               "net": "-1.20", "tax": "-0.20", "tenders": {"card": "-1.20", "cash": "0.00"}, "pending_sync": 5})
    );
}

// ---------------------------------------------------------------------------------------
// 5. Stock
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn stock_follows_receipts_sales_and_refunds() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let level = node.get("/v1/stock/TEA-1").await;
    assert_eq!(
        level.ok(200),
        &json!({"sku": "TEA-1", "on_hand": "0", "movements": 0, "stock_tracked": true})
    );

    let m = node
        .post(
            "/v1/stock/movements",
            &json!({"sku": "TEA-1", "quantity": "24", "reason": "receipt", "note": "DN-1"}),
        )
        .await;
    let m = m.ok(201);
    assert_eq!(
        m["stock"],
        json!({"sku": "TEA-1", "on_hand": "24", "movements": 1, "stock_tracked": true})
    );
    assert!(m["id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());

    let s = checkout(&node, &cash_sale("TEA-1", "5", "20")).await;
    assert_eq!(node.on_hand("TEA-1").await, "19");
    node.post(
        "/v1/refunds",
        &json!({"original_sale": s["id"], "lines": [{"sku": "TEA-1", "quantity": 2}], "occurred_at": AT}),
    )
    .await
    .ok(201);
    assert_eq!(node.on_hand("TEA-1").await, "21");
    // A refund that does not restock leaves stock alone.
    node.post(
        "/v1/refunds",
        &json!({"original_sale": s["id"], "lines": [{"sku": "TEA-1", "quantity": 1}], "restock": false, "occurred_at": AT}),
    )
    .await
    .ok(201);
    let level = node.get("/v1/stock/TEA-1").await;
    assert_eq!(
        level.ok(200),
        &json!({"sku": "TEA-1", "on_hand": "21", "movements": 3, "stock_tracked": true})
    );

    // A product without stock never moves.
    checkout(&node, &cash_sale("BAG-1", "3", "1")).await;
    let bag = node.get("/v1/stock/BAG-1").await;
    assert_eq!(
        bag.ok(200),
        &json!({"sku": "BAG-1", "on_hand": "0", "movements": 0, "stock_tracked": false})
    );

    // Fractional quantities add up exactly.
    checkout(&node, &cash_sale("SUG-1", "0.125", "1")).await;
    checkout(&node, &cash_sale("SUG-1", "0.375", "1")).await;
    assert_eq!(node.on_hand("SUG-1").await, "-0.5");

    // Bad movements.
    let zero = json!({"sku": "TEA-1", "quantity": 0, "reason": "adjustment"});
    let detail = node
        .post("/v1/stock/movements", &zero)
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("quantity: "), "{detail}");
    let precise = json!({"sku": "TEA-1", "quantity": "1.0001", "reason": "adjustment"});
    node.post("/v1/stock/movements", &precise)
        .await
        .problem(422, "invalid-input");
    let unknown = json!({"sku": "NOPE", "quantity": 1, "reason": "receipt"});
    node.post("/v1/stock/movements", &unknown)
        .await
        .problem(422, "unknown-sku");
    node.get("/v1/stock/NOPE").await.problem(422, "unknown-sku");
    let bad_reason = json!({"sku": "TEA-1", "quantity": 1, "reason": "theft"});
    node.post("/v1/stock/movements", &bad_reason)
        .await
        .problem(400, "malformed-json");
    let long_note = json!({"sku": "TEA-1", "quantity": 1, "reason": "receipt", "note": "n".repeat(501)});
    node.post("/v1/stock/movements", &long_note)
        .await
        .problem(422, "invalid-input");
    assert_eq!(node.on_hand("TEA-1").await, "21");

    // A write-off takes stock away.
    let w = node
        .post(
            "/v1/stock/movements",
            &json!({"sku": "TEA-1", "quantity": "-3", "reason": "write_off", "note": "damaged"}),
        )
        .await;
    assert_eq!(w.ok(201)["stock"]["on_hand"], "18");
    // Stock movements are not takings.
    let r = node.report(DAY).await;
    assert_eq!((&r["sales"], &r["refunds"]), (&json!(4), &json!(2)));
}

// ---------------------------------------------------------------------------------------
// 6. Reports
// ---------------------------------------------------------------------------------------

/// A whole tender amount may be a JSON integer, as the README says (a fresh-user trial
/// found it refused); a fractional JSON number is refused (it goes through a binary float).
#[tokio::test]
async fn tender_amounts_take_strings_or_whole_json_numbers() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let whole = sale(
        json!([{"sku": "BAG-1", "quantity": 1}]),
        json!([{"kind": "cash", "amount": 1}]),
    );
    let w = checkout(&node, &whole).await;
    assert_eq!(w["change"], "0.90");
    let fractional = sale(
        json!([{"sku": "BAG-1", "quantity": 1}]),
        json!([{"kind": "cash", "amount": 1.5}]),
    );
    // The node answers decimal mistakes as invalid input naming the field, as for products.
    let detail = node
        .post("/v1/sales", &fractional)
        .await
        .problem(422, "invalid-input");
    assert!(detail.contains("tenders[0].amount"), "{detail}");
}

#[tokio::test]
async fn daily_report_by_business_day() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    // `26-12-04` is a typo, not a day of the year 26 (found by a fresh-user trial).
    for bad in ["bad", "2024-13-01", "2024-02-30", "15/03/2024", "26-12-04"] {
        let detail = node
            .get(&format!("/v1/reports/daily?date={bad}"))
            .await
            .problem(400, "bad-request");
        assert!(detail.contains(bad), "{detail}");
    }
    checkout(&node, &cash_sale("TEA-1", "1", "3")).await;
    let mut next_day = cash_sale("COF-1", "1", "10");
    next_day["occurred_at"] = json!("2024-03-16T23:59:59Z");
    let s = checkout(&node, &next_day).await;
    assert_eq!(s["business_date"], "2024-03-16");
    // A time with an offset is placed on its UTC day.
    let mut offset = cash_sale("BAG-1", "1", "0.10");
    offset["occurred_at"] = json!("2024-03-17T00:30:00+02:00");
    assert_eq!(checkout(&node, &offset).await["business_date"], "2024-03-16");

    let d1 = node.report(DAY).await;
    assert_eq!(
        (&d1["sales"], &d1["gross"], &d1["tenders"]),
        (&json!(1), &json!("3.00"), &json!({"cash": "3.00"}))
    );
    let d2 = node.report("2024-03-16").await;
    assert_eq!(
        d2,
        json!({"date": "2024-03-16", "currency": "GBP", "sales": 2, "refunds": 0, "gross": "5.80", "refunded": "0.00",
               "net": "5.80", "tax": "0.95", "tenders": {"cash": "5.80"}, "pending_sync": 2})
    );
    let empty = node.report("2024-03-14").await;
    assert_eq!(
        empty,
        json!({"date": "2024-03-14", "currency": "GBP", "sales": 0, "refunds": 0, "gross": "0.00", "refunded": "0.00",
               "net": "0.00", "tax": "0.00", "tenders": {}, "pending_sync": 0})
    );
    // Without a date: today (UTC); either way a 200 with the report's shape.
    assert!(node.get("/v1/reports/daily").await.ok(200)["date"].is_string());
}

// ---------------------------------------------------------------------------------------
// 7. OpenAPI
// ---------------------------------------------------------------------------------------

/// Every `.route("path", method(..).method(..))` of the router source, path -> methods.
/// Path -> methods of every route, from the node's route table (the router is built from
/// it, so this is every route the node serves).
fn router_routes() -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in caja_node::http::access::routes() {
        out.entry(r.path.to_string())
            .or_default()
            .insert(r.method.as_str().to_ascii_lowercase());
    }
    out
}

#[tokio::test]
async fn openapi_lists_every_route() {
    let node = spawn_node().await;
    let doc = node.get("/openapi.json").await;
    let doc = doc.ok(200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeMap<String, BTreeSet<String>> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, ops)| (p.clone(), ops.as_object().unwrap().keys().cloned().collect()))
        .collect();
    let mut routes = router_routes();
    assert!(routes.len() >= 15, "{routes:?}");
    // The document does not describe itself.
    routes.remove("/openapi.json");
    assert_eq!(documented, routes);
    // A path parameter is in the path template; everything else is a query parameter.
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let want = if path.contains(&format!("{{{name}}}")) {
                    "path"
                } else {
                    p["in"].as_str().filter(|i| *i == "header").unwrap_or("query")
                };
                assert_eq!(p["in"], want, "{method} {path} parameter {name}");
                assert!(!p.to_string().contains("crate::"), "rustdoc markup in {p}");
            }
        }
    }
    // Referenced schemas exist.
    let text = serde_json::to_string(doc).unwrap();
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for r in text.split("\"#/components/schemas/").skip(1) {
        let name = &r[..r.find('"').unwrap()];
        assert!(schemas.contains_key(name), "missing schema {name}");
    }
}

// ---------------------------------------------------------------------------------------
// 8. Sync status, health
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn sync_status_on_a_standalone_node() {
    let node = spawn_node().await;
    let st = node.get("/v1/sync/status").await.ok(200).clone();
    assert_eq!(st["configured"], false);
    assert_eq!(st["enabled"], true);
    assert_eq!(st["connected"], false);
    assert_eq!(st["server"], Value::Null);
    // The admin's login is a security fact waiting for head office like any other.
    assert_eq!(st["pending_facts"], 1);
    assert_eq!(st["catalog_products"], 0);
    assert_eq!(st["store"], "main");
    assert!(st["node_id"].as_str().unwrap().parse::<uuid::Uuid>().is_ok());
    assert_eq!(st["catalog_heads"].as_array().unwrap().len(), 1);

    node.seed_catalog().await;
    checkout(&node, &cash_sale("TEA-1", "1", "3")).await;
    node.post(
        "/v1/stock/movements",
        &json!({"sku": "TEA-1", "quantity": 5, "reason": "receipt"}),
    )
    .await
    .ok(201);
    node.post(
        "/v1/refunds",
        &json!({"lines": [{"sku": "TEA-1", "quantity": 1}], "occurred_at": AT}),
    )
    .await
    .ok(201);
    // Refused requests record nothing.
    node.post("/v1/sales", &cash_sale("TEA-1", "1", "1"))
        .await
        .problem(422, "invalid-input");
    let st2 = node.get("/v1/sync/status").await.ok(200).clone();
    assert_eq!(st2["pending_facts"], 4);
    assert_eq!(st2["catalog_products"], 5);
    assert_eq!(st2["node_id"], st["node_id"]);
    assert_ne!(st2["catalog_heads"], st["catalog_heads"]);

    let off = node
        .put("/v1/sync/link", &json!({"enabled": false}))
        .await
        .ok(200)
        .clone();
    assert_eq!(
        (&off["enabled"], &off["configured"], &off["pending_facts"]),
        (&json!(false), &json!(false), &json!(4))
    );
    assert_eq!(node.get("/v1/sync/status").await.ok(200)["enabled"], false);
    // Selling goes on with the link off.
    checkout(&node, &cash_sale("TEA-1", "1", "3")).await;
    let on = node
        .put("/v1/sync/link", &json!({"enabled": true}))
        .await
        .ok(200)
        .clone();
    assert_eq!((&on["enabled"], &on["pending_facts"]), (&json!(true), &json!(5)));
    node.put("/v1/sync/link", &json!({"enabled": "yes"}))
        .await
        .problem(400, "malformed-json");
    node.put("/v1/sync/link", &json!({"enabled": true, "x": 1}))
        .await
        .problem(400, "malformed-json");

    let ready = node.get("/health/ready").await;
    assert_eq!(
        ready.ok(200),
        &json!({"status": "ready", "database": "ok", "sync": "standalone"})
    );
    let live = node.get("/health/live").await;
    assert_eq!((live.status.as_u16(), live.text.as_str()), (200, "ok"));
}

#[tokio::test]
async fn data_survives_a_restart() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let s = checkout(&node, &cash_sale("TEA-1", "2", "10")).await;
    let report = node.report(DAY).await;
    let node_id = node.get("/v1/sync/status").await.ok(200)["node_id"].clone();
    // Stop the server and open the same directory again.
    let node = node.restart().await;
    // The admin's token still works: the signing key is kept in the data directory.
    assert_eq!(
        node.get(&format!("/v1/sales/{}", s["id"].as_str().unwrap()))
            .await
            .ok(200),
        &s
    );
    assert_eq!(node.report(DAY).await, report);
    assert_eq!(node.get("/v1/sync/status").await.ok(200)["node_id"], node_id);
    assert_eq!(node.on_hand("TEA-1").await, "-2");
    // Receipt numbers continue.
    assert_eq!(
        checkout(&node, &cash_sale("TEA-1", "1", "3")).await["receipt_no"],
        "main-T1-2"
    );
    assert_eq!(node.get("/v1/products?q=earl").await.ok(200)[0]["sku"], "TEA-1");
    // A second user after the restart: the staff document reloads from disk and grows.
    node.add_user("second", &["cashier"]).await;
    assert!(!node.login("second").await.is_empty());
}

// ---------------------------------------------------------------------------------------
// 9. Routing
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_and_methods_are_problems() {
    let node = spawn_node().await;
    let detail = node.get("/v1/nope").await.problem(404, "not-found");
    assert!(detail.contains("GET /v1/nope"), "{detail}");
    node.get("/").await.problem(404, "not-found");
    node.post("/v2/sales", &json!({})).await.problem(404, "not-found");
    let r = node.raw(Method::DELETE, "/v1/sales", None, vec![]).await;
    r.problem(405, "method-not-allowed");
    assert!(
        r.headers
            .get("allow")
            .is_some_and(|a| a.to_str().unwrap().contains("POST")),
        "{:?}",
        r.headers
    );
    node.raw(Method::DELETE, "/v1/products/TEA-1", None, vec![])
        .await
        .problem(405, "method-not-allowed");
}

// ---------------------------------------------------------------------------------------
// Limits and races
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn line_count_limit() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let max = caja_node::sales::MAX_LINES;
    let lines = |n: usize| Value::Array(vec![json!({"sku": "BAG-1", "quantity": 1}); n]);
    let detail = node
        .post(
            "/v1/sales",
            &sale(lines(max + 1), json!([{"kind": "cash", "amount": "1000"}])),
        )
        .await
        .problem(422, "invalid-input");
    assert!(detail.starts_with("lines: "), "{detail}");
    let s = checkout(
        &node,
        &sale(lines(max), json!([{"kind": "cash", "amount": "1000"}])),
    )
    .await;
    assert_eq!(s["lines"].as_array().unwrap().len(), max);
    assert_eq!(s["total"], format!("{}.{:02}", max / 10, max % 10 * 10));
}

#[tokio::test]
async fn concurrent_refunds_never_exceed_the_sale() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    let s = checkout(&node, &cash_sale("TEA-1", "3", "9")).await;
    let body =
        json!({"original_sale": s["id"], "lines": [{"sku": "TEA-1", "quantity": 2}], "occurred_at": AT});
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let (client, url, body) = (node.client.clone(), node.url.clone(), body.clone());
        let bearer = node.bearer.clone().unwrap();
        tasks.spawn(async move {
            let r = client
                .post(format!("{url}/v1/refunds"))
                .bearer_auth(bearer)
                .json(&body)
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        });
    }
    let mut statuses = tasks.join_all().await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409]);
    let r = node.report(DAY).await;
    assert_eq!((&r["refunds"], &r["refunded"]), (&json!(1), &json!("-6.00")));
    assert_eq!(node.on_hand("TEA-1").await, "-1");
}

#[tokio::test]
async fn search_folds_accents() {
    let node = spawn_node().await;
    node.product("CAF-1", json!({"name": "Café crème", "unit_price": "3"}))
        .await;
    for q in ["caf%C3%A9", "cafe", "CREME", "caf%C3%A9%20cr%C3%A8"] {
        let r = node.get(&format!("/v1/products?q={q}")).await;
        assert_eq!(r.ok(200).as_array().unwrap().len(), 1, "{q}");
    }
}

/// Movements whose sign contradicts their reason, facts dated before 2000-01-01 or in the
/// future (more than 5 minutes ahead), and times that are not RFC 3339 with an offset are
/// refused, say why, and change nothing.
#[tokio::test]
async fn movement_signs_and_fact_dates_are_checked() {
    let node = spawn_node().await;
    node.seed_catalog().await;
    for (qty, reason) in [
        ("-5", "receipt"),
        ("-1", "transfer_in"),
        ("3", "write_off"),
        ("2", "transfer_out"),
    ] {
        let r = node
            .post(
                "/v1/stock/movements",
                &json!({"sku": "TEA-1", "quantity": qty, "reason": reason}),
            )
            .await;
        assert!(
            r.problem(422, "invalid-input").contains("quantity"),
            "{qty} {reason}"
        );
    }
    for (qty, reason) in [("-2", "adjustment"), ("4", "count"), ("-1", "write_off")] {
        node.post(
            "/v1/stock/movements",
            &json!({"sku": "TEA-1", "quantity": qty, "reason": reason}),
        )
        .await
        .ok(201);
    }
    assert_eq!(node.on_hand("TEA-1").await, "1");
    let in_an_hour = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    for at in [
        "1999-12-31T23:59:59Z",
        "2999-01-01T00:00:00Z",
        in_an_hour.as_str(),
        "yesterday",
        "2026-11-30T10:00:00",
    ] {
        let mut sale = cash_sale("TEA-1", "1", "20");
        sale["occurred_at"] = json!(at);
        let r = node.post("/v1/sales", &sale).await;
        assert!(r.problem(422, "invalid-input").contains("occurred_at"), "{at}");
        let r = node
            .post(
                "/v1/stock/movements",
                &json!({"sku": "TEA-1", "quantity": "1", "reason": "receipt", "occurred_at": at}),
            )
            .await;
        assert!(r.problem(422, "invalid-input").contains("occurred_at"), "{at}");
    }
    // The detail says what was wrong.
    let mut sale = cash_sale("TEA-1", "1", "20");
    sale["occurred_at"] = json!("2026-11-30T10:00:00");
    let r = node.post("/v1/sales", &sale).await;
    let detail = r.problem(422, "invalid-input");
    assert!(
        detail.contains("RFC 3339") && detail.contains("offset"),
        "{detail}"
    );
    sale["occurred_at"] = json!(in_an_hour);
    let detail = node.post("/v1/sales", &sale).await.problem(422, "invalid-input");
    assert!(detail.contains("in the future"), "{detail}");
    assert_eq!(node.on_hand("TEA-1").await, "1");
}
