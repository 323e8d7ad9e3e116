//! The forwarder: a background task of a serving head office that drains the forward
//! queue (`card_forwards`) to the card provider, exactly once per tender.
//!
//! For each due row: the row is marked `forwarding` (attempts + 1) and, on its first
//! attempt, a `Forwarded` fact is written, all committed BEFORE the provider is called;
//! then authorize + capture are sent with idempotency keys derived only from the tender
//! id (`caja_payments::idempotency_key`), so a retry, or a restart that finds the row
//! `forwarding`, sends the same keys and the provider never captures twice. The outcome
//! is recorded on the row and as a `Captured` or `Declined` fact in the store's ledger; a
//! decline opens a reconciliation case. Provider unavailable (breaker open, timeouts,
//! 5xx): the row goes back to `pending` with a backoff, and the drain pauses. Rows still
//! `pending` after their `forward_by` become `Expired` (fact + case), with or without a
//! provider. The task wakes when a node's changes arrive (new stored sales), on every
//! document change head office makes, on its next due time, and at least every
//! `forward_poll`; it stops on the shutdown token.

use std::sync::Arc;
use std::time::Duration;

use caja_payments::{
    AuthOutcome, AuthorizeRequest, CaptureRequest, Operation, PaymentError, PaymentProvider, idempotency_key,
};
use caja_shared::docs::DocId;
use caja_shared::hlc::Hlc;
use caja_shared::ids::{FactId, StoreCode, TenderId};
use caja_shared::money::Currency;
use caja_shared::payments::{PaymentEvent, PaymentOutcome};
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::db::{CardForward, ForwardState, PaymentDb};
use crate::error::ServerError;
use crate::payments::ledger;
use crate::reconcile;
use crate::server::hub::{Core, Hub};

/// Rows taken per round.
const BATCH: u32 = 32;

/// How the forwarder runs.
#[derive(Clone)]
pub(crate) struct Forwarder {
    /// The shared state.
    pub(crate) hub: Hub,
    /// The provider, when one is configured (without one, rows only expire).
    pub(crate) provider: Option<Arc<dyn PaymentProvider>>,
    /// Longest sleep between rounds (expiry checks).
    pub(crate) poll: Duration,
    /// First retry delay after the provider was unavailable; doubles per attempt, capped
    /// at 64 times.
    pub(crate) retry: Duration,
}

/// What a provider call ended with.
enum Outcome {
    Captured {
        intent: String,
    },
    Declined {
        code: String,
        message: String,
        intent: Option<String>,
    },
    Unavailable(String),
}

impl Forwarder {
    /// Runs until `shutdown` is cancelled.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut changes = self.hub.subscribe();
        let wake = self.hub.forwarder_wake();
        let mut hlc = Hlc::new();
        loop {
            let wait = match self.round(&mut hlc, &shutdown).await {
                Ok(next) => next,
                Err(e) => {
                    tracing::error!(error = %e, "card forwarding round failed; retrying later");
                    self.retry
                }
            };
            let sleep = tokio::time::sleep(wait.min(self.poll));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = sleep => {}
                () = wake.notified() => {}
                r = changes.recv() => match r {
                    Ok(_) | Err(RecvError::Lagged(_)) => {}
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }

    /// Expires overdue rows, forwards the due ones; returns how long until the next due
    /// row.
    async fn round(&self, hlc: &mut Hlc, shutdown: &CancellationToken) -> Result<Duration, ServerError> {
        let mut h = hlc.clone();
        let (touched, h) = self
            .hub
            .with_core(move |core| {
                let r = expire_overdue(core, &mut h);
                (r, h)
            })
            .await?;
        *hlc = h;
        self.announce(touched?);
        if let Some(provider) = &self.provider {
            let due = self.hub.with_core(|core| due_rows(&core.conn)).await??;
            for row in due {
                if shutdown.is_cancelled() {
                    break;
                }
                if !self.forward_one(provider.as_ref(), hlc, row, shutdown).await? {
                    break; // provider unavailable: pause the drain
                }
            }
        }
        let next = self.hub.with_core(|core| core.conn.next_forward_due()).await??;
        let now = Utc::now().timestamp();
        Ok(match next {
            Some(t) if self.provider.is_some() => Duration::from_secs(u64::try_from(t - now).unwrap_or(0)),
            _ => self.poll,
        })
    }

    /// Forwards one row; `Ok(false)` when the provider is unavailable or the server is
    /// stopping.
    async fn forward_one(
        &self,
        provider: &dyn PaymentProvider,
        hlc: &mut Hlc,
        row: CardForward,
        shutdown: &CancellationToken,
    ) -> Result<bool, ServerError> {
        let mut h = hlc.clone();
        let tender = row.tender.clone();
        let (started, h) = self
            .hub
            .with_core(move |core| {
                let r = start(core, &mut h, &tender);
                (r, h)
            })
            .await?;
        *hlc = h;
        let Some((row, touched)) = started? else {
            return Ok(true);
        };
        self.announce(touched);
        // On shutdown the call is abandoned and the row stays `forwarding`: the next start
        // sends the same keys again.
        let outcome = tokio::select! {
            o = call(provider, &row) => o,
            () = shutdown.cancelled() => return Ok(false),
        };
        let available = !matches!(outcome, Outcome::Unavailable(_));
        let retry = self.retry;
        let mut h = hlc.clone();
        let (touched, h) = self
            .hub
            .with_core(move |core| {
                let r = finish(core, &mut h, row, outcome, retry);
                (r, h)
            })
            .await?;
        *hlc = h;
        self.announce(touched?);
        Ok(available)
    }

    fn announce(&self, docs: Vec<DocId>) {
        for d in docs {
            self.hub.changed(d);
        }
    }
}

/// Pending or forwarding rows whose time has come.
fn due_rows(conn: &rusqlite::Connection) -> Result<Vec<CardForward>, ServerError> {
    let now = Utc::now().timestamp();
    let mut rows = conn.card_forwards_in(ForwardState::Forwarding, BATCH)?;
    rows.extend(conn.card_forwards_in(ForwardState::Pending, BATCH)?);
    rows.retain(|r| r.next_attempt_at <= now);
    Ok(rows)
}

/// The payment event of `row` with `outcome`.
fn event(
    row: &CardForward,
    outcome: PaymentOutcome,
    op: Option<Operation>,
) -> Result<PaymentEvent, ServerError> {
    let tender: TenderId = row
        .tender
        .parse()
        .map_err(|_| ServerError::Invalid(format!("card_forwards.tender {:?} is not an id", row.tender)))?;
    let sale: FactId = row
        .sale
        .parse()
        .map_err(|_| ServerError::Invalid(format!("card_forwards.sale {:?} is not an id", row.sale)))?;
    let currency: Currency = row
        .currency
        .parse()
        .map_err(|_| ServerError::Invalid(format!("card_forwards.currency {:?}", row.currency)))?;
    Ok(PaymentEvent {
        tender,
        sale,
        receipt_no: Some(row.receipt_no.clone()),
        outcome,
        amount_minor: row.amount_minor,
        currency,
        provider_ref: row.provider_ref.clone(),
        idempotency_key: op.map(|op| idempotency_key(tender, op)),
        code: row.code.clone(),
        message: row.message.clone(),
    })
}

fn store_of(row: &CardForward) -> Result<StoreCode, ServerError> {
    row.store
        .parse()
        .map_err(|_| ServerError::Invalid(format!("card_forwards.store {:?}", row.store)))
}

/// Runs `f` in one transaction with the documents it touches forgotten on failure.
fn in_tx<R>(
    core: &mut Core,
    f: impl FnOnce(
        &rusqlite::Connection,
        &mut caja_shared::docstore::DocCache,
        &automerge::ActorId,
        &mut Vec<DocId>,
    ) -> Result<R, ServerError>,
) -> Result<(R, Vec<DocId>), ServerError> {
    let Core {
        conn, cache, actor, ..
    } = core;
    let mut touched = Vec::new();
    let result = (|| {
        let tx = conn.transaction()?;
        let r = f(&tx, cache, actor, &mut touched)?;
        tx.commit()?;
        Ok(r)
    })();
    match result {
        Ok(r) => Ok((r, touched)),
        Err(e) => {
            for d in &touched {
                cache.forget(d);
            }
            Err(e)
        }
    }
}

/// Marks the row `forwarding` (and writes `Forwarded` on its first attempt), durably,
/// before any provider call. `None` when the row is gone or final.
fn start(
    core: &mut Core,
    hlc: &mut Hlc,
    tender: &str,
) -> Result<Option<(CardForward, Vec<DocId>)>, ServerError> {
    let (row, touched) = in_tx(core, |tx, cache, actor, touched| {
        let Some(mut row) = tx.card_forward(tender)? else {
            return Ok(None);
        };
        if row.state.is_final() {
            return Ok(None);
        }
        let first = row.attempts == 0;
        row.state = ForwardState::Forwarding;
        row.attempts += 1;
        row.updated_at = Utc::now().timestamp();
        tx.update_card_forward(&row)?;
        if first {
            let store = store_of(&row)?;
            let e = event(&row, PaymentOutcome::Forwarded, Some(Operation::Create))?;
            touched.push(ledger::write_event(tx, cache, actor, hlc, &store, e)?);
        }
        Ok(Some(row))
    })?;
    Ok(row.map(|r| (r, touched)))
}

/// Authorize then capture, with keys from the tender id.
async fn call(provider: &dyn PaymentProvider, row: &CardForward) -> Outcome {
    let (Ok(tender), Ok(currency)) = (row.tender.parse::<TenderId>(), row.currency.parse::<Currency>())
    else {
        return Outcome::Declined {
            code: "bad_row".into(),
            message: "the queued tender's id or currency does not parse".into(),
            intent: None,
        };
    };
    let req = AuthorizeRequest {
        tender,
        amount_minor: row.amount_minor,
        currency,
        card_token: row.token.clone(),
    };
    let intent = match provider.authorize(&req).await {
        Ok(AuthOutcome::Authorized(i)) => i,
        Ok(AuthOutcome::Declined(d)) => {
            return Outcome::Declined {
                code: d.code.code().to_string(),
                message: d.code.cashier_text().to_string(),
                intent: d.intent.map(|i| i.0),
            };
        }
        Err(e) => return failed(e),
    };
    let cap = CaptureRequest {
        tender,
        intent: intent.id.clone(),
        amount_minor: None,
    };
    match provider.capture(&cap).await {
        Ok(i) => Outcome::Captured { intent: i.id.0 },
        Err(e) => failed(e),
    }
}

/// A provider error as an outcome: unavailable ones are retried later; a refused token or
/// amount, or a request the provider refuses, is a decline; an answer we could not read
/// or an unknown intent is retried later too (the same keys cannot charge twice).
fn failed(e: PaymentError) -> Outcome {
    match e {
        PaymentError::BadToken | PaymentError::AmountOutOfBounds { .. } => Outcome::Declined {
            code: "invalid_request".into(),
            message: e.to_string(),
            intent: None,
        },
        PaymentError::Rejected { ref code, .. } => Outcome::Declined {
            code: code.clone(),
            message: e.to_string(),
            intent: None,
        },
        other => Outcome::Unavailable(other.to_string()),
    }
}

/// Records the outcome on the row, as a fact, and (decline) as a case.
fn finish(
    core: &mut Core,
    hlc: &mut Hlc,
    mut row: CardForward,
    outcome: Outcome,
    retry: Duration,
) -> Result<Vec<DocId>, ServerError> {
    let now = Utc::now().timestamp();
    let ((), touched) = in_tx(core, |tx, cache, actor, touched| {
        let store = store_of(&row)?;
        row.updated_at = now;
        match outcome {
            Outcome::Captured { intent } => {
                row.state = ForwardState::Captured;
                row.provider_ref = Some(intent);
                row.code = None;
                row.message = None;
                tx.update_card_forward(&row)?;
                let e = event(&row, PaymentOutcome::Captured, Some(Operation::Capture))?;
                touched.push(ledger::write_event(tx, cache, actor, hlc, &store, e)?);
                audit_outcome(tx, &row)?;
            }
            Outcome::Declined {
                code,
                message,
                intent,
            } => {
                row.state = ForwardState::Declined;
                row.provider_ref = intent;
                row.code = Some(code);
                row.message = Some(message);
                tx.update_card_forward(&row)?;
                let e = event(&row, PaymentOutcome::Declined, Some(Operation::Confirm))?;
                touched.push(ledger::write_event(tx, cache, actor, hlc, &store, e)?);
                open_case(tx, &row, reconcile::KIND_PAYMENT_DECLINED)?;
                audit_outcome(tx, &row)?;
            }
            Outcome::Unavailable(why) => {
                row.state = ForwardState::Pending;
                row.message = Some(why);
                let factor = 1u32 << row.attempts.clamp(1, 7).saturating_sub(1);
                let delay = retry.saturating_mul(factor).as_secs().max(1);
                row.next_attempt_at = now + i64::try_from(delay).unwrap_or(i64::MAX / 2);
                tx.update_card_forward(&row)?;
            }
        }
        Ok(())
    })?;
    Ok(touched)
}

/// Opens the reconciliation case of a declined or expired row.
fn open_case(tx: &rusqlite::Connection, row: &CardForward, kind: &str) -> Result<(), ServerError> {
    let mut case = reconcile::new_case(kind, &row.store);
    case.sale = Some(row.sale.clone());
    case.tender = Some(row.tender.clone());
    case.amount_minor = Some(row.amount_minor);
    case.currency = Some(row.currency.clone());
    case.reason = row.message.clone().or_else(|| row.code.clone());
    reconcile::open(tx, &case)?;
    Ok(())
}

fn audit_outcome(tx: &rusqlite::Connection, row: &CardForward) -> Result<(), ServerError> {
    crate::audit::record(
        tx,
        &crate::audit::NewEntry::new(
            "payment.forwarded",
            serde_json::json!({"tender": row.tender, "sale": row.sale, "state": row.state.as_str(),
                "amount_minor": row.amount_minor, "currency": row.currency, "attempts": row.attempts,
                "provider_ref": row.provider_ref, "code": row.code}),
        )
        .store(&row.store)
        .by(&crate::audit::Actor {
            id: None,
            name: "head office".into(),
        }),
    )
}

/// Pending rows past their deadline become `Expired`, with a fact and a case each.
fn expire_overdue(core: &mut Core, hlc: &mut Hlc) -> Result<Vec<DocId>, ServerError> {
    let now = Utc::now().timestamp();
    let ((), touched) = in_tx(core, |tx, cache, actor, touched| {
        let overdue: Vec<CardForward> = tx
            .card_forwards_in(ForwardState::Pending, 1000)?
            .into_iter()
            .filter(|r| r.forward_by < now)
            .collect();
        for mut row in overdue {
            let store = store_of(&row)?;
            row.state = ForwardState::Expired;
            row.code = Some("forward_deadline_passed".into());
            row.message = Some("not forwarded to the provider before its deadline".into());
            row.updated_at = now;
            tx.update_card_forward(&row)?;
            let e = event(&row, PaymentOutcome::Expired, None)?;
            let doc = ledger::write_event(tx, cache, actor, hlc, &store, e)?;
            if !touched.contains(&doc) {
                touched.push(doc);
            }
            open_case(tx, &row, reconcile::KIND_PAYMENT_EXPIRED)?;
            audit_outcome(tx, &row)?;
        }
        Ok(())
    })?;
    Ok(touched)
}
