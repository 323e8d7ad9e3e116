//! The client, the resilience wrapper and the simulator together on a real loopback port:
//! outcomes by token, exactly-once capture after a lost answer, the breaker under outages
//! and timeouts, and bad input of every kind answered with typed errors.

use std::io::BufRead;
use std::sync::Arc;
use std::time::Duration;

use caja_payments::sim::{SimConfig, SimServer};
use caja_payments::{
    AuthOutcome, AuthorizeRequest, BreakerState, CancelRequest, CaptureRequest, DeclineCode, Intent,
    IntentId, IntentStatus, PaymentError, PaymentProvider, RefundRequest, ResilienceConfig,
    ResilientProvider, StripeClient, StripeConfig, TenderId,
};
use caja_shared::facts::MAX_AMOUNT_MINOR;
use caja_shared::money::Currency;

async fn sim() -> SimServer {
    let config = SimConfig {
        hang: Duration::from_secs(5),
        slow: Duration::from_millis(200),
        ..SimConfig::default()
    };
    SimServer::start(config).await.expect("simulator starts")
}

fn client(base: &str, timeout_ms: u64) -> StripeClient {
    let mut c = StripeConfig::new(base, "sk_test_caja");
    c.timeout = Duration::from_millis(timeout_ms);
    StripeClient::new(c).expect("client builds")
}

/// A plain HTTP client for the simulator's raw API (ring as the rustls provider).
fn raw_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn auth(amount_minor: i64, token: &str) -> AuthorizeRequest {
    AuthorizeRequest {
        tender: TenderId::new(),
        amount_minor,
        currency: Currency::GBP,
        card_token: token.into(),
    }
}

fn quick(breaker_failures: u32, retries: usize, cooldown_ms: u64) -> ResilienceConfig {
    ResilienceConfig {
        max_retries: retries,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(40),
        breaker_failures,
        breaker_cooldown: Duration::from_millis(cooldown_ms),
        breaker_max_cooldown: Duration::from_millis(cooldown_ms),
    }
}

async fn authorized(p: &dyn PaymentProvider, req: &AuthorizeRequest) -> Intent {
    match p.authorize(req).await.expect("authorize answers") {
        AuthOutcome::Authorized(i) => i,
        AuthOutcome::Declined(d) => panic!("declined: {d:?}"),
    }
}

#[tokio::test]
async fn approve_capture_refund() {
    let s = sim().await;
    let p: Arc<dyn PaymentProvider> = Arc::new(client(&s.base_url(), 2000));
    let req = auth(1250, "tok_approve");
    let i = authorized(p.as_ref(), &req).await;
    assert_eq!(
        (i.status.clone(), i.amount_minor, i.currency),
        (IntentStatus::RequiresCapture, 1250, Currency::GBP)
    );

    let cap = CaptureRequest {
        tender: req.tender,
        intent: i.id.clone(),
        amount_minor: None,
    };
    let c = p.capture(&cap).await.unwrap();
    assert_eq!(
        (c.status, c.amount_received_minor),
        (IntentStatus::Succeeded, 1250)
    );
    assert_eq!(p.intent(&i.id).await.unwrap().amount_received_minor, 1250);

    let r0 = RefundRequest {
        tender: req.tender,
        seq: 0,
        intent: i.id.clone(),
        amount_minor: Some(300),
    };
    assert_eq!(p.refund(&r0).await.unwrap().amount_minor, 300);
    // The same refund again is the stored answer, not a second refund.
    assert_eq!(p.refund(&r0).await.unwrap().amount_minor, 300);
    let r1 = RefundRequest {
        seq: 1,
        amount_minor: None,
        ..r0.clone()
    };
    let rest = p.refund(&r1).await.unwrap();
    assert_eq!((rest.amount_minor, rest.currency), (950, Currency::GBP));
    let r2 = RefundRequest { seq: 2, ..r1.clone() };
    assert!(
        matches!(p.refund(&r2).await, Err(PaymentError::Rejected { ref code, .. }) if code == "charge_already_refunded")
    );

    // The ledger as tests see it over HTTP.
    let http = raw_http();
    let caps: Vec<serde_json::Value> = http
        .get(format!("{}/_sim/captures", s.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(caps.len(), 1);
    assert_eq!(caps[0]["amount"], 1250);
    assert_eq!(caps[0]["currency"], "gbp");
    let refunds = s.simulator().refunds();
    assert_eq!(
        refunds.iter().map(|r| r.amount).collect::<Vec<_>>(),
        vec![300, 950]
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn declines_have_readable_reasons() {
    let s = sim().await;
    let p = client(&s.base_url(), 2000);
    for (token, code) in [
        ("tok_decline", DeclineCode::CardDeclined),
        ("tok_insufficient_funds", DeclineCode::InsufficientFunds),
    ] {
        match p.authorize(&auth(500, token)).await.unwrap() {
            AuthOutcome::Declined(d) => {
                assert_eq!(d.code, code);
                assert!(d.intent.is_some());
                assert!(!d.code.cashier_text().is_empty());
            }
            AuthOutcome::Authorized(i) => panic!("{token} authorized {i:?}"),
        }
    }
    // A declined intent can be voided.
    let req = auth(500, "tok_decline");
    let AuthOutcome::Declined(d) = p.authorize(&req).await.unwrap() else {
        panic!()
    };
    let id = d.intent.unwrap();
    // Another card under the declined tender's id is refused: another card is a new tender.
    let again = AuthorizeRequest {
        card_token: "tok_approve".into(),
        ..req.clone()
    };
    let e = p.authorize(&again).await.unwrap_err();
    assert!(
        matches!(e, PaymentError::Rejected { status: 400, ref code, .. } if code == "idempotency_key_in_use"),
        "{e:?}"
    );
    let c = p
        .cancel(&CancelRequest {
            tender: req.tender,
            intent: id,
        })
        .await
        .unwrap();
    assert_eq!(c.status, IntentStatus::Canceled);
    assert!(s.simulator().captures().is_empty());
}

#[tokio::test]
async fn slow_timeout_and_500_tokens() {
    let s = sim().await;
    let p = client(&s.base_url(), 1000);
    authorized(&p, &auth(100, "tok_slow")).await;
    assert!(matches!(
        p.authorize(&auth(100, "tok_timeout")).await,
        Err(PaymentError::Timeout)
    ));
    let e = p.authorize(&auth(100, "tok_http500")).await.unwrap_err();
    assert!(matches!(e, PaymentError::Server { status: 500, .. }), "{e:?}");
    assert!(e.is_retryable());
}

#[tokio::test]
async fn lost_capture_answer_is_retried_with_the_same_key_and_captures_once() {
    let s = sim().await;
    let p = ResilientProvider::new(client(&s.base_url(), 500), quick(10, 3, 1000));
    let req = auth(4200, "tok_approve");
    let i = authorized(&p, &req).await;
    s.simulator().lose_next(1);
    let cap = CaptureRequest {
        tender: req.tender,
        intent: i.id.clone(),
        amount_minor: None,
    };
    let c = p.capture(&cap).await.unwrap();
    assert_eq!(c.status, IntentStatus::Succeeded);
    // And again later (a node restarted mid-way): the stored answer, no second capture.
    assert_eq!(p.capture(&cap).await.unwrap(), c);
    let caps = s.simulator().captures();
    assert_eq!(caps.len(), 1, "{caps:?}");
    assert_eq!((caps[0].amount, caps[0].intent.as_str()), (4200, i.id.0.as_str()));

    // A capture under another key is refused: an intent is never captured twice.
    let other = CaptureRequest {
        tender: TenderId::new(),
        ..cap
    };
    let e = p.capture(&other).await.unwrap_err();
    assert!(
        matches!(e, PaymentError::Rejected { ref code, .. } if code == "payment_intent_unexpected_state"),
        "{e:?}"
    );
    assert_eq!(s.simulator().captures().len(), 1);

    // A lost authorization answer: the retry gets the same intent, not a second one.
    s.simulator().lose_next(1);
    let req2 = auth(77, "tok_approve");
    let a = authorized(&p, &req2).await;
    assert_eq!(authorized(&p, &req2).await.id, a.id);
}

#[tokio::test]
async fn breaker_opens_under_500s_then_closes() {
    let s = sim().await;
    let p = ResilientProvider::new(client(&s.base_url(), 1000), quick(3, 5, 300));
    let http = raw_http();
    let r = http
        .post(format!("{}/_sim/outage?millis=600", s.base_url()))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let e = p.authorize(&auth(100, "tok_approve")).await.unwrap_err();
    assert!(matches!(e, PaymentError::BreakerOpen), "{e:?}");
    assert!(e.is_unavailable());
    assert_eq!(p.breaker().state, BreakerState::Open);
    let seen = s.simulator().stats().requests;
    assert_eq!(s.simulator().stats().outage_failures, 3);
    // Open: refused without calling the provider.
    assert!(matches!(
        p.intent(&IntentId("pi_x".into())).await,
        Err(PaymentError::BreakerOpen)
    ));
    assert_eq!(s.simulator().stats().requests, seen);

    tokio::time::sleep(Duration::from_millis(700)).await;
    authorized(&p, &auth(100, "tok_approve")).await;
    let b = p.breaker();
    assert_eq!((b.state, b.opened_total), (BreakerState::Closed, 1));
    assert!(b.rejected_total >= 1);
}

#[tokio::test]
async fn breaker_opens_under_timeouts() {
    let s = sim().await;
    let p = ResilientProvider::new(client(&s.base_url(), 200), quick(2, 3, 60_000));
    let e = p.authorize(&auth(100, "tok_timeout")).await.unwrap_err();
    assert!(matches!(e, PaymentError::BreakerOpen), "{e:?}");
    assert_eq!(p.breaker().state, BreakerState::Open);
}

#[tokio::test]
async fn bad_input_gets_typed_errors() {
    let s = sim().await;
    let p = client(&s.base_url(), 2000);
    let before = s.simulator().stats().requests;
    for bad in [0, -5, MAX_AMOUNT_MINOR + 1, i64::MIN] {
        let e = p.authorize(&auth(bad, "tok_approve")).await.unwrap_err();
        assert!(matches!(e, PaymentError::AmountOutOfBounds { amount_minor } if amount_minor == bad));
        let cap = CaptureRequest {
            tender: TenderId::new(),
            intent: IntentId("pi_1".into()),
            amount_minor: Some(bad),
        };
        assert!(matches!(
            p.capture(&cap).await,
            Err(PaymentError::AmountOutOfBounds { .. })
        ));
        let r = RefundRequest {
            tender: TenderId::new(),
            seq: 0,
            intent: IntentId("pi_1".into()),
            amount_minor: Some(bad),
        };
        assert!(matches!(
            p.refund(&r).await,
            Err(PaymentError::AmountOutOfBounds { .. })
        ));
    }
    assert!(matches!(
        p.authorize(&auth(100, "4242424242424242")).await,
        Err(PaymentError::BadToken)
    ));
    assert_eq!(s.simulator().stats().requests, before, "refused before any call");

    // Within Caja's bound but above the provider's: the provider's typed refusal.
    let e = p.authorize(&auth(100_000_000, "tok_approve")).await.unwrap_err();
    assert!(
        matches!(e, PaymentError::Rejected { status: 400, ref code, .. } if code == "amount_too_large"),
        "{e:?}"
    );
    // A currency the account does not take.
    let jpy = AuthorizeRequest {
        currency: "JPY".parse::<Currency>().unwrap(),
        ..auth(100, "tok_approve")
    };
    assert!(matches!(
        p.authorize(&jpy).await,
        Err(PaymentError::Rejected { status: 400, .. })
    ));

    // Unknown intents.
    let ghost = IntentId("pi_ghost".into());
    assert!(matches!(p.intent(&ghost).await, Err(PaymentError::UnknownIntent(ref i)) if *i == ghost));
    let cap = CaptureRequest {
        tender: TenderId::new(),
        intent: ghost.clone(),
        amount_minor: None,
    };
    assert!(matches!(
        p.capture(&cap).await,
        Err(PaymentError::UnknownIntent(_))
    ));
    let weird = IntentId("../refunds".into());
    assert!(matches!(
        p.intent(&weird).await,
        Err(PaymentError::UnknownIntent(_))
    ));

    // Capturing more than authorized.
    let req = auth(100, "tok_approve");
    let i = authorized(&p, &req).await;
    let over = CaptureRequest {
        tender: req.tender,
        intent: i.id,
        amount_minor: Some(101),
    };
    assert!(
        matches!(p.capture(&over).await, Err(PaymentError::Rejected { ref code, .. }) if code == "amount_too_large")
    );
}

/// Raw requests the client would never send: the simulator answers Stripe-style errors.
#[tokio::test]
async fn simulator_refuses_garbage_without_panicking() {
    let s = sim().await;
    let http = raw_http();
    let url = format!("{}/v1/payment_intents", s.base_url());
    let post = |body: Vec<u8>, key: &str| {
        http.post(&url)
            .bearer_auth("sk_test")
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"amount=abc&currency=gbp".to_vec(),
            400,
            "parameter_invalid_integer",
        ),
        (
            b"amount=100&currency=xyz".to_vec(),
            400,
            "parameter_invalid_string",
        ),
        (b"amount=100".to_vec(), 400, "parameter_missing"),
        (
            b"amount=100&currency=gbp&card_number=4242".to_vec(),
            400,
            "parameter_unknown",
        ),
        (b"amount=0&currency=gbp".to_vec(), 400, "amount_too_small"),
        (vec![0xff, 0xfe, b'=', 0x00], 400, ""),
        (vec![b'a'; 100_000], 413, ""),
    ];
    for (i, (body, status, code)) in cases.into_iter().enumerate() {
        let r = post(body, &format!("k{i}")).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "case {i}");
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(v["error"]["type"].is_string(), "case {i}: {v}");
        if !code.is_empty() {
            assert_eq!(v["error"]["code"], code, "case {i}");
        }
    }
    // Same key, same body: the stored answer; same key, other body: idempotency error.
    let a = post(b"amount=100&currency=gbp".to_vec(), "same").await.unwrap();
    let b = post(b"amount=100&currency=gbp".to_vec(), "same").await.unwrap();
    assert_eq!(b.headers().get("Idempotent-Replayed").unwrap(), "true");
    let (a, b): (serde_json::Value, serde_json::Value) = (a.json().await.unwrap(), b.json().await.unwrap());
    assert_eq!(a, b);
    let c = post(b"amount=101&currency=gbp".to_vec(), "same").await.unwrap();
    assert_eq!(c.status().as_u16(), 400);
    let c: serde_json::Value = c.json().await.unwrap();
    assert_eq!(c["error"]["type"], "idempotency_error");
    // No key, unknown routes, no API key.
    let r = http
        .post(format!("{}/v1/payment_intents/pi_x/explode", s.base_url()))
        .bearer_auth("sk_t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let r = http
        .get(format!("{}/v1/payment_intents/pi_x", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = http
        .get(format!("{}/v1/refunds", s.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    let r = http
        .get(format!("{}/v1/payment_intents/%FF%FE", s.base_url()))
        .bearer_auth("sk_t")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    // Still serving.
    let p = client(&s.base_url(), 2000);
    authorized(&p, &auth(100, "tok_approve")).await;
}

/// A provider answering nonsense: typed `Malformed` errors, no panic.
#[tokio::test]
async fn malformed_provider_answers_are_typed_errors() {
    use axum::routing::any;
    let cases: [(u16, &'static str); 5] = [
        (200, "not json"),
        (200, r#"{"id":"pi_1"}"#),
        (
            200,
            r#"{"id":"pi_1","amount":100,"currency":"zzz","status":"requires_capture"}"#,
        ),
        (402, "<html>declined</html>"),
        (400, r#"{"error":"nope"}"#),
    ];
    for (status, body) in cases {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(any(move || async move {
            (axum::http::StatusCode::from_u16(status).unwrap(), body)
        }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let p = client(&format!("http://{addr}"), 2000);
        let e = p.authorize(&auth(100, "tok_approve")).await.unwrap_err();
        assert!(matches!(e, PaymentError::Malformed(_)), "{status} {body}: {e:?}");
        assert!(!e.is_retryable());
        let e = p.intent(&IntentId("pi_1".into())).await.unwrap_err();
        assert!(matches!(e, PaymentError::Malformed(_)), "{status} {body}: {e:?}");
        server.abort();
    }
    // Nobody listening: a retryable connection error.
    let dead = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let e = client(&format!("http://{addr}"), 2000)
        .intent(&IntentId("pi_1".into()))
        .await
        .unwrap_err();
    assert!(matches!(e, PaymentError::Connect(_)), "{e:?}");
}

/// The binary prints its address and serves the same API.
#[tokio::test]
async fn simulator_binary_serves_on_its_printed_address() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_caja-payments-sim"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).map(|_| line)
    })
    .await
    .unwrap()
    .unwrap();
    let p = client(&format!("http://{}", line.trim()), 2000);
    let req = auth(999, "tok_approve");
    let i = authorized(&p, &req).await;
    let c = p
        .capture(&CaptureRequest {
            tender: req.tender,
            intent: i.id,
            amount_minor: None,
        })
        .await;
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(c.unwrap().amount_received_minor, 999);
}
