//! [`StripeClient`]: a [`PaymentProvider`] speaking Stripe's HTTP API subset over reqwest.
//!
//! Form-encoded `POST`s as Stripe expects, an `Idempotency-Key` on every `POST` (derived by
//! [`crate::key`]), bearer secret key, a per-call timeout, and every answer mapped to a
//! typed outcome or [`PaymentError`]: 402 card errors become declines, `resource_missing`
//! an unknown intent, 5xx/429/timeouts/connection failures retryable errors, anything that
//! does not parse [`PaymentError::Malformed`].

use std::fmt;
use std::time::Duration;

use caja_shared::money::Currency;
use serde::de::DeserializeOwned;

use crate::provider::{
    AuthOutcome, AuthorizeRequest, BoxFuture, CancelRequest, CaptureRequest, Decline, DeclineCode, Intent,
    IntentId, IntentStatus, PaymentError, PaymentProvider, Refund, RefundRequest, check_amount, check_token,
};
use crate::wire::{ErrorEnvelope, PaymentIntentBody, RefundBody};

/// Answers larger than this are refused as malformed (bytes).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Where and how to reach a Stripe-compatible API.
#[derive(Clone)]
pub struct StripeConfig {
    /// Base URL without the `/v1` (`https://api.stripe.com`, or the simulator's
    /// `http://127.0.0.1:PORT`).
    pub base_url: String,
    /// The secret key (`sk_…`), sent as a bearer token; redacted in `Debug`.
    pub secret_key: String,
    /// Time allowed for one HTTP call, connection to last body byte. Default 10 s.
    pub timeout: Duration,
}

impl StripeConfig {
    /// A config with the default 10 s per-call timeout.
    pub fn new(base_url: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            secret_key: secret_key.into(),
            timeout: Duration::from_secs(10),
        }
    }
}

impl fmt::Debug for StripeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeConfig")
            .field("base_url", &self.base_url)
            .field("secret_key", &"<redacted>")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// A Stripe-compatible client. Cheap to clone (reqwest's client is an `Arc`).
#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret: String,
}

impl fmt::Debug for StripeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeClient")
            .field("base", &self.base)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// A failed call before it is known which operation asked: a card decline is an outcome
/// for `authorize` and a rejection for the others.
enum Fail {
    Declined(Decline),
    Error(PaymentError),
}

impl From<PaymentError> for Fail {
    fn from(e: PaymentError) -> Self {
        Fail::Error(e)
    }
}

impl From<Fail> for PaymentError {
    fn from(f: Fail) -> Self {
        match f {
            Fail::Error(e) => e,
            Fail::Declined(d) => PaymentError::Rejected {
                status: 402,
                code: d.code.code().to_string(),
                message: d.message,
            },
        }
    }
}

impl StripeClient {
    /// Builds the client. Installs ring as the process's rustls provider if none is
    /// installed yet (the workspace uses ring only).
    ///
    /// # Errors
    /// [`PaymentError::Connect`] if reqwest cannot build its client (TLS set-up).
    pub fn new(config: StripeConfig) -> Result<Self, PaymentError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .build()
            .map_err(|e| PaymentError::Connect(e.to_string()))?;
        Ok(Self {
            http,
            base: config.base_url.trim_end_matches('/').to_string(),
            secret: config.secret_key,
        })
    }

    /// `POST {base}{path}` with a form body and an `Idempotency-Key`.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        key: &str,
        form: &[(&str, String)],
    ) -> Result<T, Fail> {
        let body = serde_urlencoded::to_string(form)
            .map_err(|e| PaymentError::Malformed(format!("request encoding: {e}")))?;
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.secret)
            .header("Idempotency-Key", key)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    /// `GET {base}{path}`.
    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Fail> {
        let req = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.secret);
        self.send(req).await
    }

    async fn send<T: DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> Result<T, Fail> {
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let mut resp = resp;
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if bytes.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(PaymentError::Malformed("response too large".into()).into());
            }
            bytes.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            return serde_json::from_slice(&bytes)
                .map_err(|e| PaymentError::Malformed(format!("HTTP {status}: {e}")).into());
        }
        Err(error_from(status, &bytes))
    }

    fn intent_path(id: &IntentId, action: &str) -> Result<String, PaymentError> {
        // Ids go into the path: refuse anything that could change it.
        if id.0.is_empty()
            || id.0.len() > 255
            || !id.0.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(PaymentError::UnknownIntent(id.clone()));
        }
        Ok(format!("/v1/payment_intents/{}{action}", id.0))
    }

    async fn authorize_inner(&self, req: &AuthorizeRequest) -> Result<AuthOutcome, PaymentError> {
        check_amount(req.amount_minor)?;
        let token = check_token(&req.card_token)?;
        let (create_key, confirm_key) = req.idempotency_keys();
        let form = [
            ("amount", req.amount_minor.to_string()),
            ("currency", req.currency.code().to_ascii_lowercase()),
            ("capture_method", "manual".to_string()),
            ("payment_method", token.to_string()),
            ("metadata[caja_tender]", req.tender.to_string()),
        ];
        let created: PaymentIntentBody = self.post("/v1/payment_intents", &create_key, &form).await?;
        let created = to_intent(created)?;
        check_same(&created, req.amount_minor, req.currency)?;
        let path = Self::intent_path(&created.id, "/confirm")?;
        match self.post::<PaymentIntentBody>(&path, &confirm_key, &[]).await {
            Ok(body) => {
                let intent = to_intent(body)?;
                if intent.id != created.id {
                    return Err(PaymentError::Malformed(format!(
                        "confirm of {} answered about {}",
                        created.id, intent.id
                    )));
                }
                check_same(&intent, req.amount_minor, req.currency)?;
                match intent.status {
                    IntentStatus::RequiresCapture => Ok(AuthOutcome::Authorized(intent)),
                    ref s => Err(PaymentError::Malformed(format!(
                        "confirmed intent {} has status {s:?}, expected requires_capture",
                        intent.id
                    ))),
                }
            }
            Err(Fail::Declined(mut d)) => {
                d.intent.get_or_insert(created.id);
                Ok(AuthOutcome::Declined(d))
            }
            Err(Fail::Error(e)) => Err(e),
        }
    }

    async fn capture_inner(&self, req: &CaptureRequest) -> Result<Intent, PaymentError> {
        let mut form = Vec::new();
        if let Some(a) = req.amount_minor {
            form.push(("amount_to_capture", check_amount(a)?.to_string()));
        }
        let path = Self::intent_path(&req.intent, "/capture")?;
        let body: PaymentIntentBody = self
            .post(&path, &req.idempotency_key(), &form)
            .await
            .map_err(|f| about(f, &req.intent))?;
        same_id(to_intent(body)?, &req.intent)
    }

    async fn cancel_inner(&self, req: &CancelRequest) -> Result<Intent, PaymentError> {
        let path = Self::intent_path(&req.intent, "/cancel")?;
        let body: PaymentIntentBody = self
            .post(&path, &req.idempotency_key(), &[])
            .await
            .map_err(|f| about(f, &req.intent))?;
        same_id(to_intent(body)?, &req.intent)
    }

    async fn refund_inner(&self, req: &RefundRequest) -> Result<Refund, PaymentError> {
        Self::intent_path(&req.intent, "")?;
        let mut form = vec![("payment_intent", req.intent.0.clone())];
        if let Some(a) = req.amount_minor {
            form.push(("amount", check_amount(a)?.to_string()));
        }
        let body: RefundBody = self
            .post("/v1/refunds", &req.idempotency_key(), &form)
            .await
            .map_err(|f| about(f, &req.intent))?;
        let refund = to_refund(body)?;
        if refund.intent != req.intent {
            return Err(PaymentError::Malformed(format!(
                "refund of {} answered about {}",
                req.intent, refund.intent
            )));
        }
        Ok(refund)
    }

    async fn intent_inner(&self, id: &IntentId) -> Result<Intent, PaymentError> {
        let path = Self::intent_path(id, "")?;
        let body: PaymentIntentBody = self.get(&path).await.map_err(|f| about(f, id))?;
        same_id(to_intent(body)?, id)
    }
}

impl PaymentProvider for StripeClient {
    fn authorize<'a>(
        &'a self,
        req: &'a AuthorizeRequest,
    ) -> BoxFuture<'a, Result<AuthOutcome, PaymentError>> {
        Box::pin(self.authorize_inner(req))
    }

    fn capture<'a>(&'a self, req: &'a CaptureRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.capture_inner(req))
    }

    fn cancel<'a>(&'a self, req: &'a CancelRequest) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.cancel_inner(req))
    }

    fn refund<'a>(&'a self, req: &'a RefundRequest) -> BoxFuture<'a, Result<Refund, PaymentError>> {
        Box::pin(self.refund_inner(req))
    }

    fn intent<'a>(&'a self, id: &'a IntentId) -> BoxFuture<'a, Result<Intent, PaymentError>> {
        Box::pin(self.intent_inner(id))
    }
}

fn transport(e: reqwest::Error) -> Fail {
    if e.is_timeout() {
        PaymentError::Timeout.into()
    } else {
        PaymentError::Connect(e.to_string()).into()
    }
}

/// Maps a non-2xx answer to a decline or a typed error.
fn error_from(status: u16, bytes: &[u8]) -> Fail {
    let parsed: Option<ErrorEnvelope> = serde_json::from_slice(bytes).ok();
    if status >= 500 || status == 429 {
        let message = parsed.map(|p| p.error.message).unwrap_or_default();
        return PaymentError::Server { status, message }.into();
    }
    let Some(ErrorEnvelope { error }) = parsed else {
        return PaymentError::Malformed(format!("HTTP {status} without a Stripe error body")).into();
    };
    if error.kind == "card_error" {
        let code = error
            .decline_code
            .as_deref()
            .or(error.code.as_deref())
            .unwrap_or("card_declined");
        return Fail::Declined(Decline {
            code: DeclineCode::from_code(code),
            message: error.message,
            intent: error.payment_intent.map(|p| IntentId(p.id)),
        });
    }
    if error.code.as_deref() == Some("resource_missing") && error.param.as_deref() != Some("payment_method") {
        // The caller names the intent it asked about (`about`).
        return PaymentError::UnknownIntent(IntentId(String::new())).into();
    }
    PaymentError::Rejected {
        status,
        code: error.code.unwrap_or(error.kind),
        message: error.message,
    }
    .into()
}

/// Names the asked intent in an [`PaymentError::UnknownIntent`].
fn about(f: Fail, id: &IntentId) -> Fail {
    match f {
        Fail::Error(PaymentError::UnknownIntent(_)) => PaymentError::UnknownIntent(id.clone()).into(),
        other => other,
    }
}

fn currency(code: &str) -> Result<Currency, PaymentError> {
    code.parse()
        .map_err(|_| PaymentError::Malformed(format!("unknown currency {code:?}")))
}

fn to_intent(b: PaymentIntentBody) -> Result<Intent, PaymentError> {
    if b.id.is_empty() {
        return Err(PaymentError::Malformed("payment intent without an id".into()));
    }
    let status: IntentStatus = serde_json::from_value(serde_json::Value::String(b.status))
        .map_err(|e| PaymentError::Malformed(format!("status: {e}")))?;
    Ok(Intent {
        currency: currency(&b.currency)?,
        id: IntentId(b.id),
        amount_minor: b.amount,
        amount_received_minor: b.amount_received,
        status,
    })
}

fn to_refund(b: RefundBody) -> Result<Refund, PaymentError> {
    Ok(Refund {
        currency: currency(&b.currency)?,
        id: b.id,
        intent: IntentId(b.payment_intent),
        amount_minor: b.amount,
        status: b.status,
    })
}

fn same_id(intent: Intent, asked: &IntentId) -> Result<Intent, PaymentError> {
    if &intent.id == asked {
        Ok(intent)
    } else {
        Err(PaymentError::Malformed(format!(
            "asked about {asked}, answered about {}",
            intent.id
        )))
    }
}

fn check_same(intent: &Intent, amount_minor: i64, currency: Currency) -> Result<(), PaymentError> {
    if intent.amount_minor != amount_minor || intent.currency != currency {
        return Err(PaymentError::Malformed(format!(
            "intent {} is for {} {}, asked {amount_minor} {currency}",
            intent.id, intent.amount_minor, intent.currency
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail_to_err(f: Fail) -> PaymentError {
        f.into()
    }

    #[test]
    fn maps_stripe_errors() {
        let decline = br#"{"error":{"type":"card_error","code":"card_declined","decline_code":"insufficient_funds","message":"no"}}"#;
        match error_from(402, decline) {
            Fail::Declined(d) => assert_eq!(d.code, DeclineCode::InsufficientFunds),
            Fail::Error(e) => panic!("{e}"),
        }
        let missing = br#"{"error":{"type":"invalid_request_error","code":"resource_missing","param":"intent","message":"No such payment_intent"}}"#;
        assert!(matches!(
            fail_to_err(error_from(404, missing)),
            PaymentError::UnknownIntent(_)
        ));
        let e = fail_to_err(error_from(
            400,
            br#"{"error":{"type":"idempotency_error","message":"x"}}"#,
        ));
        assert!(
            matches!(e, PaymentError::Rejected { status: 400, ref code, .. } if code == "idempotency_error")
        );
        assert!(fail_to_err(error_from(503, b"<html>")).is_retryable());
        assert!(fail_to_err(error_from(429, b"")).is_retryable());
        assert!(matches!(
            fail_to_err(error_from(400, b"{not json")),
            PaymentError::Malformed(_)
        ));
        assert!(matches!(
            fail_to_err(error_from(400, br#"{"error":1}"#)),
            PaymentError::Malformed(_)
        ));
    }

    #[test]
    fn intents_parse_strictly() {
        let ok = PaymentIntentBody {
            id: "pi_1".into(),
            object: "payment_intent".into(),
            amount: 100,
            amount_received: 0,
            currency: "gbp".into(),
            status: "requires_capture".into(),
            capture_method: None,
            payment_method: None,
        };
        let i = to_intent(ok.clone()).unwrap();
        assert_eq!(i.status, IntentStatus::RequiresCapture);
        assert_eq!(i.currency, Currency::GBP);
        let odd = to_intent(PaymentIntentBody {
            status: "blue".into(),
            ..ok.clone()
        })
        .unwrap();
        assert_eq!(odd.status, IntentStatus::Other("blue".into()));
        assert!(
            to_intent(PaymentIntentBody {
                currency: "xyz".into(),
                ..ok.clone()
            })
            .is_err()
        );
        assert!(
            to_intent(PaymentIntentBody {
                id: String::new(),
                ..ok.clone()
            })
            .is_err()
        );
        assert!(check_same(&i, 100, Currency::USD).is_err());
        assert!(check_same(&i, 101, Currency::GBP).is_err());
    }

    #[test]
    fn secret_is_redacted() {
        let c = StripeConfig::new("http://x", "sk_test_secret");
        assert!(!format!("{c:?}").contains("sk_test_secret"));
        let client = StripeClient::new(c).unwrap();
        assert!(!format!("{client:?}").contains("sk_test_secret"));
    }

    #[test]
    fn intent_ids_cannot_change_the_path() {
        for bad in ["", "pi_1/../../x", "pi 1", "pi_1?x=1"] {
            assert!(StripeClient::intent_path(&IntentId(bad.into()), "").is_err());
        }
    }
}
