//! The simulator's `/v1` handlers: PaymentIntents create/retrieve/confirm/capture/cancel
//! and refunds, with Stripe's idempotency rules and Stripe-style error bodies.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use caja_shared::money::Currency;
use serde_json::Value;

use super::{LedgerEntry, SimIntent, SimState, Simulator, StoredAnswer};
use crate::wire::{ErrorBody, ErrorEnvelope, PaymentIntentBody, RefundBody};

/// Stripe's largest amount (8 digits of minor units).
const MAX_AMOUNT: i64 = 99_999_999;

/// Currencies the simulated account accepts; others get `400 invalid currency`.
const CURRENCIES: [Currency; 3] = [Currency::GBP, Currency::EUR, Currency::USD];

/// An answer: HTTP status and JSON body.
struct Reply(u16, Value);

impl Reply {
    fn ok(body: impl serde::Serialize) -> Self {
        Reply(200, serde_json::to_value(body).unwrap_or(Value::Null))
    }
}

fn err(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: impl Into<String>,
    param: Option<&str>,
) -> Reply {
    let e = ErrorEnvelope {
        error: ErrorBody {
            kind: kind.into(),
            code: code.map(Into::into),
            decline_code: None,
            message: message.into(),
            param: param.map(Into::into),
            payment_intent: None,
        },
    };
    Reply(status, serde_json::to_value(e).unwrap_or(Value::Null))
}

fn invalid(code: &str, message: impl Into<String>, param: Option<&str>) -> Reply {
    err(400, "invalid_request_error", Some(code), message, param)
}

fn no_such_intent(id: &str) -> Reply {
    err(
        404,
        "invalid_request_error",
        Some("resource_missing"),
        format!("No such payment_intent: '{id}'"),
        Some("intent"),
    )
}

fn respond(r: Reply, replayed: bool) -> Response {
    let status = StatusCode::from_u16(r.0).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, Json(r.1)).into_response();
    if replayed {
        resp.headers_mut()
            .insert("Idempotent-Replayed", HeaderValue::from_static("true"));
    }
    resp
}

/// What a `/v1` POST asks for.
enum Op {
    Create,
    Confirm(String),
    Capture(String),
    Cancel(String),
    Refund,
}

/// Counts the request, answers 500 during an outage, checks the bearer key.
fn gate(sim: &Simulator, headers: &HeaderMap) -> Result<(), Reply> {
    let mut st = sim.lock();
    st.stats().requests += 1;
    if st.outage_until.is_some_and(|t| std::time::Instant::now() < t) {
        st.stats().outage_failures += 1;
        return Err(err(500, "api_error", None, "simulated outage", None));
    }
    let authorized = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|k| k.starts_with("sk_"));
    if authorized {
        Ok(())
    } else {
        Err(err(
            401,
            "invalid_request_error",
            None,
            "No valid API key provided",
            None,
        ))
    }
}

fn parse_form(body: &[u8]) -> Result<HashMap<String, String>, Reply> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
        .map_err(|e| invalid("parameter_invalid", format!("Invalid form body: {e}"), None))?;
    Ok(pairs.into_iter().collect())
}

fn check_params(form: &HashMap<String, String>, allowed: &[&str]) -> Result<(), Reply> {
    for k in form.keys() {
        if !allowed.contains(&k.as_str()) && !k.starts_with("metadata[") {
            return Err(invalid(
                "parameter_unknown",
                format!("Received unknown parameter: {k}"),
                Some(k),
            ));
        }
    }
    Ok(())
}

fn amount(form: &HashMap<String, String>, name: &str) -> Result<Option<i64>, Reply> {
    let Some(v) = form.get(name) else { return Ok(None) };
    let a: i64 = v.parse().map_err(|_| {
        invalid(
            "parameter_invalid_integer",
            format!("Invalid integer: {v}"),
            Some(name),
        )
    })?;
    if a < 1 {
        return Err(invalid(
            "amount_too_small",
            "Amount must be at least 1",
            Some(name),
        ));
    }
    if a > MAX_AMOUNT {
        return Err(invalid(
            "amount_too_large",
            "Amount must be no more than 99999999",
            Some(name),
        ));
    }
    Ok(Some(a))
}

/// Entry for every mutating call: gate, body, token behaviour, idempotency, processing,
/// and a held answer when a lost response was asked for.
async fn mutate(
    sim: Simulator,
    headers: HeaderMap,
    fingerprint: String,
    body: Result<Bytes, BytesRejection>,
    op: Op,
) -> Response {
    if let Err(r) = gate(&sim, &headers) {
        return respond(r, false);
    }
    let body = match body {
        Ok(b) => b,
        Err(e) => {
            let r = err(
                e.status().as_u16(),
                "invalid_request_error",
                Some("parameter_invalid"),
                e.body_text(),
                None,
            );
            return respond(r, false);
        }
    };
    let form = match parse_form(&body) {
        Ok(f) => f,
        Err(r) => return respond(r, false),
    };
    let key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.is_empty() && k.len() <= 255 => Some(k.to_string()),
        Some(_) => {
            let r = err(400, "idempotency_error", None, "Invalid Idempotency-Key", None);
            return respond(r, false);
        }
    };
    let fingerprint = format!("{fingerprint}\n{}", String::from_utf8_lossy(&body));

    // The card token acts on confirmation (or creation with confirm=true).
    let token = {
        let st = sim.lock();
        match &op {
            Op::Confirm(id) => form
                .get("payment_method")
                .cloned()
                .or_else(|| st.intents.get(id).and_then(|i| i.body.payment_method.clone())),
            Op::Create if form.get("confirm").is_some_and(|c| c == "true") => {
                form.get("payment_method").cloned()
            }
            _ => None,
        }
    };
    match token.as_deref() {
        Some("tok_timeout") => {
            sim.sleep(sim.config.hang).await;
            return respond(err(500, "api_error", None, "simulated timeout", None), false);
        }
        Some("tok_http500") => {
            return respond(err(500, "api_error", None, "simulated server error", None), false);
        }
        Some("tok_slow") => sim.sleep(sim.config.slow).await,
        _ => {}
    }

    let (reply, replayed, lose) = {
        let mut st = sim.lock();
        if let Some(k) = &key
            && let Some(stored) = st.idempotency.get(k)
        {
            if stored.fingerprint == fingerprint {
                (Reply(stored.status, stored.body.clone()), true, false)
            } else {
                let r = err(
                    400,
                    "idempotency_error",
                    Some("idempotency_key_in_use"),
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    None,
                );
                (r, false, false)
            }
        } else {
            let r = process(&mut st, &op, &form);
            if let Some(k) = key
                && r.0 < 500
            {
                let stored = StoredAnswer {
                    fingerprint,
                    status: r.0,
                    body: r.1.clone(),
                };
                st.idempotency.insert(k, stored);
            }
            let lose = st.lose_next > 0;
            st.lose_next = st.lose_next.saturating_sub(1);
            (r, false, lose)
        }
    };
    if lose {
        sim.sleep(sim.config.hang).await;
    }
    respond(reply, replayed)
}

fn process(st: &mut SimState, op: &Op, form: &HashMap<String, String>) -> Reply {
    let r = match op {
        Op::Create => create_intent(st, form),
        Op::Confirm(id) => check_params(form, &["payment_method"]).and_then(|()| confirm(st, id, form)),
        Op::Capture(id) => check_params(form, &["amount_to_capture"]).and_then(|()| capture(st, id, form)),
        Op::Cancel(id) => check_params(form, &["cancellation_reason"]).and_then(|()| cancel(st, id)),
        Op::Refund => refund_intent(st, form),
    };
    r.unwrap_or_else(|e| e)
}

fn create_intent(st: &mut SimState, form: &HashMap<String, String>) -> Result<Reply, Reply> {
    check_params(
        form,
        &[
            "amount",
            "currency",
            "payment_method",
            "capture_method",
            "confirm",
            "description",
        ],
    )?;
    let amount = amount(form, "amount")?.ok_or_else(|| {
        invalid(
            "parameter_missing",
            "Missing required param: amount.",
            Some("amount"),
        )
    })?;
    let code = form.get("currency").ok_or_else(|| {
        invalid(
            "parameter_missing",
            "Missing required param: currency.",
            Some("currency"),
        )
    })?;
    let currency: Currency = code
        .parse()
        .ok()
        .filter(|c| CURRENCIES.contains(c))
        .ok_or_else(|| {
            invalid(
                "parameter_invalid_string",
                format!("Invalid currency: {code}"),
                Some("currency"),
            )
        })?;
    let capture_method = form.get("capture_method").map_or("automatic", String::as_str);
    if capture_method != "automatic" && capture_method != "manual" {
        return Err(invalid(
            "parameter_invalid_string",
            "Invalid capture_method",
            Some("capture_method"),
        ));
    }
    let pm = form.get("payment_method").cloned();
    let id = st.id("pi");
    let body = PaymentIntentBody {
        id: id.clone(),
        object: "payment_intent".into(),
        amount,
        amount_received: 0,
        currency: currency.code().to_ascii_lowercase(),
        status: if pm.is_some() {
            "requires_confirmation"
        } else {
            "requires_payment_method"
        }
        .into(),
        capture_method: Some(capture_method.into()),
        payment_method: pm,
    };
    st.intents.insert(
        id.clone(),
        SimIntent {
            body: body.clone(),
            refunded: 0,
        },
    );
    if form.get("confirm").is_some_and(|c| c == "true") {
        return confirm(st, &id, &HashMap::new());
    }
    Ok(Reply::ok(body))
}

fn unexpected_state(i: &PaymentIntentBody, doing: &str) -> Reply {
    invalid(
        "payment_intent_unexpected_state",
        format!(
            "You cannot {doing} this PaymentIntent because it has a status of {}.",
            i.status
        ),
        None,
    )
}

fn confirm(st: &mut SimState, id: &str, form: &HashMap<String, String>) -> Result<Reply, Reply> {
    let capture_id = st.id("ch");
    let intent = st.intents.get_mut(id).ok_or_else(|| no_such_intent(id))?;
    let b = &mut intent.body;
    if let Some(pm) = form.get("payment_method") {
        if !pm.starts_with("tok_") {
            return Err(invalid(
                "resource_missing",
                format!("No such token: '{pm}'"),
                Some("payment_method"),
            ));
        }
        if b.status == "requires_payment_method" || b.status == "requires_confirmation" {
            b.payment_method = Some(pm.clone());
            b.status = "requires_confirmation".into();
        }
    }
    if b.status != "requires_confirmation" {
        return Err(unexpected_state(b, "confirm"));
    }
    let token = b.payment_method.clone().unwrap_or_default();
    let decline = match token.as_str() {
        "tok_decline" => Some("generic_decline"),
        "tok_insufficient_funds" => Some("insufficient_funds"),
        _ => None,
    };
    if let Some(decline_code) = decline {
        b.status = "requires_payment_method".into();
        b.payment_method = None;
        let e = ErrorEnvelope {
            error: ErrorBody {
                kind: "card_error".into(),
                code: Some("card_declined".into()),
                decline_code: Some(decline_code.into()),
                message: "Your card was declined.".into(),
                param: None,
                payment_intent: Some(b.clone()),
            },
        };
        return Err(Reply(402, serde_json::to_value(e).unwrap_or(Value::Null)));
    }
    if b.capture_method.as_deref() == Some("manual") {
        b.status = "requires_capture".into();
        return Ok(Reply::ok(b.clone()));
    }
    b.status = "succeeded".into();
    b.amount_received = b.amount;
    let out = b.clone();
    st.captures.push(LedgerEntry {
        id: capture_id,
        intent: out.id.clone(),
        amount: out.amount,
        currency: out.currency.clone(),
    });
    Ok(Reply::ok(out))
}

fn capture(st: &mut SimState, id: &str, form: &HashMap<String, String>) -> Result<Reply, Reply> {
    let capture_id = st.id("ch");
    let intent = st.intents.get_mut(id).ok_or_else(|| no_such_intent(id))?;
    let b = &mut intent.body;
    // Never captures twice: only `requires_capture` may be captured.
    if b.status != "requires_capture" {
        return Err(unexpected_state(b, "capture"));
    }
    let amount = amount(form, "amount_to_capture")?.unwrap_or(b.amount);
    if amount > b.amount {
        return Err(invalid(
            "amount_too_large",
            "amount_to_capture exceeds the authorized amount",
            Some("amount_to_capture"),
        ));
    }
    b.status = "succeeded".into();
    b.amount_received = amount;
    let out = b.clone();
    st.captures.push(LedgerEntry {
        id: capture_id,
        intent: out.id.clone(),
        amount,
        currency: out.currency.clone(),
    });
    Ok(Reply::ok(out))
}

fn cancel(st: &mut SimState, id: &str) -> Result<Reply, Reply> {
    let intent = st.intents.get_mut(id).ok_or_else(|| no_such_intent(id))?;
    let b = &mut intent.body;
    let cancellable = [
        "requires_payment_method",
        "requires_confirmation",
        "requires_capture",
    ];
    if !cancellable.contains(&b.status.as_str()) {
        return Err(unexpected_state(b, "cancel"));
    }
    b.status = "canceled".into();
    Ok(Reply::ok(b.clone()))
}

fn refund_intent(st: &mut SimState, form: &HashMap<String, String>) -> Result<Reply, Reply> {
    check_params(form, &["payment_intent", "amount", "reason"])?;
    let id = form
        .get("payment_intent")
        .ok_or_else(|| {
            invalid(
                "parameter_missing",
                "Missing required param: payment_intent.",
                Some("payment_intent"),
            )
        })?
        .clone();
    let asked = amount(form, "amount")?;
    let refund_id = st.id("re");
    let intent = st.intents.get_mut(&id).ok_or_else(|| no_such_intent(&id))?;
    if intent.body.status != "succeeded" {
        return Err(unexpected_state(&intent.body, "refund"));
    }
    let left = intent.body.amount_received - intent.refunded;
    if left <= 0 {
        return Err(invalid(
            "charge_already_refunded",
            "This charge has already been refunded.",
            None,
        ));
    }
    let amount = asked.unwrap_or(left);
    if amount > left {
        return Err(invalid(
            "amount_too_large",
            format!("Refund amount ({amount}) is greater than unrefunded amount ({left})"),
            Some("amount"),
        ));
    }
    intent.refunded += amount;
    let body = RefundBody {
        id: refund_id.clone(),
        object: "refund".into(),
        amount,
        currency: intent.body.currency.clone(),
        payment_intent: id.clone(),
        status: "succeeded".into(),
    };
    st.refunds.push(LedgerEntry {
        id: refund_id,
        intent: id,
        amount,
        currency: body.currency.clone(),
    });
    Ok(Reply::ok(body))
}

/// `POST /v1/payment_intents`.
pub(super) async fn create(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    mutate(sim, headers, "POST /v1/payment_intents".into(), body, Op::Create).await
}

/// `POST /v1/payment_intents/{id}/{confirm|capture|cancel}`.
pub(super) async fn action(
    State(sim): State<Simulator>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let Ok(Path((id, action))) = path else {
        return not_found().await;
    };
    let fingerprint = format!("POST /v1/payment_intents/{id}/{action}");
    let op = match action.as_str() {
        "confirm" => Op::Confirm(id),
        "capture" => Op::Capture(id),
        "cancel" => Op::Cancel(id),
        _ => return not_found().await,
    };
    mutate(sim, headers, fingerprint, body, op).await
}

/// `POST /v1/refunds`.
pub(super) async fn refund(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    mutate(sim, headers, "POST /v1/refunds".into(), body, Op::Refund).await
}

/// `GET /v1/payment_intents/{id}`.
pub(super) async fn retrieve(
    State(sim): State<Simulator>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Path(id)) = path else {
        return not_found().await;
    };
    if let Err(r) = gate(&sim, &headers) {
        return respond(r, false);
    }
    let st = sim.lock();
    let r = match st.intents.get(&id) {
        Some(i) => Reply::ok(&i.body),
        None => no_such_intent(&id),
    };
    respond(r, false)
}

/// A known path with another method: Stripe-style 405.
pub(super) async fn method_not_allowed() -> Response {
    respond(
        err(
            405,
            "invalid_request_error",
            None,
            "Method not allowed for this URL.",
            None,
        ),
        false,
    )
}

/// Any other path: Stripe's unrecognized-URL error.
pub(super) async fn not_found() -> Response {
    respond(
        err(
            404,
            "invalid_request_error",
            None,
            "Unrecognized request URL.",
            None,
        ),
        false,
    )
}
