//! A store's card-payment settings ([`PaymentSettings`]: offline floor limit, caps,
//! acceptance window, forwarding deadline): head office sets them in the store's
//! `store/<store>` document ([`caja_shared::docs::store::put_payment_settings`]), audited,
//! and they replicate to the store's nodes like staff changes.

use caja_shared::docs::{DocId, store};
use caja_shared::ids::StoreCode;
use caja_shared::payments::PaymentSettings;
use serde_json::json;

use crate::audit::{self, Actor, NewEntry};
use crate::db::StoreDb;
use crate::error::ServerError;
use crate::server::SyncServer;
use crate::server::hub::Core;
use crate::stores::storedoc;

/// The field of `s` that is wrong and why, naming the field as the JSON body does.
///
/// # Errors
/// [`ServerError::InvalidField`] for the first bad field.
pub fn check_settings(s: &PaymentSettings) -> Result<(), ServerError> {
    let bad = |field: &'static str, reason: &str| ServerError::InvalidField {
        field,
        reason: reason.to_string(),
    };
    for (field, v) in [
        ("floor_limit_minor", s.floor_limit_minor),
        ("node_cap_minor", s.node_cap_minor),
        ("store_cap_minor", s.store_cap_minor),
    ] {
        if !(0..=caja_shared::facts::MAX_AMOUNT_MINOR).contains(&v) {
            return Err(bad(field, "must be 0 to MAX_AMOUNT_MINOR minor units"));
        }
    }
    if s.node_cap_minor > s.store_cap_minor {
        return Err(bad("node_cap_minor", "must not exceed store_cap_minor"));
    }
    // At most ten years, so deadlines never overflow a timestamp.
    const MAX_SECS: u64 = 10 * 365 * 24 * 3600;
    for (field, v) in [
        ("window_secs", s.window_secs),
        ("forward_deadline_secs", s.forward_deadline_secs),
    ] {
        if v == 0 || v > MAX_SECS {
            return Err(bad(field, "must be 1 second to 10 years"));
        }
    }
    if s.never_offline.len() > 50
        || s.never_offline
            .iter()
            .any(|k| k.is_empty() || k.len() > 40 || k.chars().any(char::is_control))
    {
        return Err(bad(
            "never_offline",
            "at most 50 kinds of 1-40 characters without control characters",
        ));
    }
    s.validate().map_err(|reason| bad("payment_settings", &reason))
}

/// The store's settings as its document holds them (defaults when never set).
fn read(core: &mut Core, code: &StoreCode) -> Result<PaymentSettings, ServerError> {
    if !core.conn.store_exists(code)? {
        return Err(ServerError::UnknownStore(code.clone()));
    }
    let doc = DocId::Store { store: code.clone() };
    let am = core.cache.get_or_create(&core.conn, &doc)?;
    Ok(store::payment_settings(am))
}

impl SyncServer {
    /// The card-payment settings of a store (the defaults until head office sets them).
    ///
    /// # Errors
    /// [`ServerError::UnknownStore`]; [`ServerError::Sqlite`] or a document error.
    pub async fn payment_settings(&self, code: &StoreCode) -> Result<PaymentSettings, ServerError> {
        let code = code.clone();
        self.hub().with_core(move |core| read(core, &code)).await?
    }

    /// Sets a store's card-payment settings on behalf of `by` (audited as
    /// `store.payment_settings_changed` with the previous and new settings) and pushes
    /// the store document to its connected nodes. Unchanged settings write nothing.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] naming the bad field; [`ServerError::UnknownStore`];
    /// [`ServerError::Sqlite`] or a document error.
    pub async fn set_payment_settings(
        &self,
        by: &Actor,
        code: &StoreCode,
        settings: PaymentSettings,
    ) -> Result<PaymentSettings, ServerError> {
        check_settings(&settings)?;
        let by = by.clone();
        let code2 = code.clone();
        let changed = self
            .hub()
            .with_core(move |core| {
                let previous = read(core, &code2)?;
                if previous == settings {
                    return Ok(false);
                }
                let Core {
                    conn, cache, actor, ..
                } = core;
                let result = (|| {
                    let tx = conn.transaction()?;
                    storedoc::edit(&tx, cache, actor, &code2, |am| {
                        store::put_payment_settings(am, &settings)
                    })?;
                    audit::record(
                        &tx,
                        &NewEntry::new(
                            "store.payment_settings_changed",
                            json!({"previous": previous, "settings": settings}),
                        )
                        .store(&code2)
                        .by(&by),
                    )?;
                    tx.commit()?;
                    Ok::<_, ServerError>(true)
                })();
                if result.is_err() {
                    storedoc::forget(cache, [&code2]);
                }
                result
            })
            .await??;
        if changed {
            self.broadcast_stores(std::slice::from_ref(code));
        }
        self.payment_settings(code).await
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_name_their_field() {
        check_settings(&PaymentSettings::default()).unwrap();
        let cases = [
            (
                PaymentSettings {
                    floor_limit_minor: -1,
                    ..PaymentSettings::default()
                },
                "floor_limit_minor",
            ),
            (
                PaymentSettings {
                    node_cap_minor: 600_000,
                    ..PaymentSettings::default()
                },
                "node_cap_minor",
            ),
            (
                PaymentSettings {
                    forward_deadline_secs: 0,
                    ..PaymentSettings::default()
                },
                "forward_deadline_secs",
            ),
            (
                PaymentSettings {
                    never_offline: vec![String::new()],
                    ..PaymentSettings::default()
                },
                "never_offline",
            ),
        ];
        for (s, want) in cases {
            match check_settings(&s) {
                Err(ServerError::InvalidField { field, .. }) => assert_eq!(field, want),
                other => panic!("{want}: {other:?}"),
            }
        }
    }
}
