//! The `store/<store>` document: who may work in a store and what their roles allow, so a
//! node can log its staff in for days without the sync server.
//!
//! Shape: two root maps made by a fixed genesis change every replica shares (as in the
//! catalog): `users`, from user id to the user's JSON ([`StaffUser`], one scalar per user),
//! and `roles`, from custom role name to the JSON list of its permission names. Head office
//! writes it (the sync server refuses changes to it from nodes); a standalone node that was
//! never enrolled writes its own. A user is in a store's document only if allowed in that
//! store, so a store never holds the credential hashes of staff who cannot work there.
//!
//! Compatibility rule: [`StaffUser`] fields are append-only; new fields are `Option` or
//! `#[serde(default)]`.

use std::collections::BTreeMap;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, PatchAction, ROOT, ReadDoc, ScalarValue, Value};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::DocError;
use crate::payments::PaymentSettings;

const USERS: &str = "users";
const ROLES: &str = "roles";

/// One member of staff as a store's document holds them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffUser {
    /// User id (UUIDv7), the same in every store and at head office.
    pub id: String,
    /// Login name: 1-64 characters of a-z, 0-9, '.', '_' and '-', unique in the chain.
    pub username: String,
    /// Name shown on screens and receipts.
    pub display_name: String,
    /// Role names (built-in `cashier`, `manager`, `admin`, or custom).
    pub roles: Vec<String>,
    /// argon2id PHC hash of the password, if the user has one.
    #[serde(default)]
    pub password_hash: Option<String>,
    /// argon2id PHC hash of the 4-8 digit PIN, if the user has one.
    #[serde(default)]
    pub pin_hash: Option<String>,
    /// A disabled user cannot log in and their tokens are refused.
    #[serde(default)]
    pub disabled: bool,
    /// Tokens issued before this time (seconds since the epoch, UTC) are refused: head
    /// office's "sign out everywhere".
    #[serde(default)]
    pub sessions_valid_after: i64,
    /// When head office last changed the user (UTC).
    pub updated_at: DateTime<Utc>,
}

impl std::fmt::Debug for StaffUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("roles", &self.roles)
            .field(
                "password",
                &self.password_hash.as_ref().map(|_| "<argon2id hash>"),
            )
            .field("pin", &self.pin_hash.as_ref().map(|_| "<argon2id hash>"))
            .field("disabled", &self.disabled)
            .field("sessions_valid_after", &self.sessions_valid_after)
            .finish()
    }
}

/// Checks a username: 1-64 characters of `a-z`, `0-9`, `.`, `_`, `-`, starting with a
/// letter or digit.
///
/// # Errors
/// A description of the rule.
pub fn check_username(name: &str) -> Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "username {name:?} must be 1-64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
        ))
    }
}

/// A fresh replica: the shared genesis change (fixed actor, fixed time) creating the
/// `users` and `roles` maps, then a random actor for this replica's own edits.
///
/// # Errors
/// Only if automerge fails on an empty document.
pub fn genesis() -> Result<Automerge, DocError> {
    let mut doc = Automerge::new().with_actor(ActorId::from([0u8; 16]));
    let mut tx = doc.transaction();
    tx.put_object(ROOT, USERS, ObjType::Map)?;
    tx.put_object(ROOT, ROLES, ObjType::Map)?;
    tx.commit_with(CommitOptions::default().with_time(0));
    doc.set_actor(ActorId::random());
    Ok(doc)
}

/// The actor of the shared genesis change (all zeros).
pub fn genesis_actor() -> ActorId {
    ActorId::from([0u8; 16])
}

fn map(doc: &impl ReadDoc, key: &str) -> Result<automerge::ObjId, DocError> {
    match doc.get(ROOT, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => Err(DocError::Schema(format!("store document has no {key} map"))),
    }
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Writes users (created or replaced whole) and removes the ids in `remove`, in one
/// automerge transaction. A user whose JSON is unchanged costs nothing.
///
/// # Errors
/// [`DocError::Schema`] when the document is not a store document; [`DocError::Automerge`].
pub fn put_users(doc: &mut Automerge, users: &[StaffUser], remove: &[String]) -> Result<(), DocError> {
    let root = map(doc, USERS)?;
    let mut tx = doc.transaction();
    for u in users {
        let json = serde_json::to_string(u).map_err(|e| DocError::Schema(e.to_string()))?;
        let current = match tx.get(&root, u.id.as_str())? {
            Some((Value::Scalar(s), _)) => match s.as_ref() {
                ScalarValue::Str(t) => Some(t.to_string()),
                _ => None,
            },
            _ => None,
        };
        if current.as_deref() != Some(json.as_str()) {
            tx.put(&root, u.id.as_str(), json)?;
        }
    }
    for id in remove {
        if tx.get(&root, id.as_str())?.is_some() {
            tx.delete(&root, id.as_str())?;
        }
    }
    tx.commit_with(CommitOptions::default().with_time(now_secs()));
    Ok(())
}

/// Every user in the document, by id; an entry that does not decode is returned as its
/// error and hides nothing else.
pub fn users(doc: &impl ReadDoc) -> Result<Vec<Result<StaffUser, DocError>>, DocError> {
    let root = map(doc, USERS)?;
    Ok(doc
        .keys(&root)
        .map(|k| match doc.get(&root, k.as_str()) {
            Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
                ScalarValue::Str(t) => serde_json::from_str::<StaffUser>(t)
                    .map_err(|e| DocError::Schema(format!("user {k}: {e}"))),
                _ => Err(DocError::Schema(format!("user {k} is not a string"))),
            },
            Ok(_) => Err(DocError::Schema(format!("user {k} is not a scalar"))),
            Err(e) => Err(e.into()),
        })
        .collect())
}

/// Writes custom roles (name -> permission names) and removes the names in `remove`, in
/// one transaction.
///
/// # Errors
/// [`DocError::Schema`] / [`DocError::Automerge`].
pub fn put_roles(
    doc: &mut Automerge,
    roles: &BTreeMap<String, Vec<String>>,
    remove: &[String],
) -> Result<(), DocError> {
    let root = map(doc, ROLES)?;
    let mut tx = doc.transaction();
    for (name, perms) in roles {
        let json = serde_json::to_string(perms).map_err(|e| DocError::Schema(e.to_string()))?;
        let same = matches!(tx.get(&root, name.as_str())?, Some((Value::Scalar(s), _))
            if matches!(s.as_ref(), ScalarValue::Str(t) if t.as_str() == json));
        if !same {
            tx.put(&root, name.as_str(), json)?;
        }
    }
    for name in remove {
        if tx.get(&root, name.as_str())?.is_some() {
            tx.delete(&root, name.as_str())?;
        }
    }
    tx.commit_with(CommitOptions::default().with_time(now_secs()));
    Ok(())
}

/// Custom roles: name -> permission names (unknown names are kept here; resolving them is
/// [`crate::auth::permissions::parse_permissions_lenient`]'s job). Entries that do not
/// decode are skipped.
///
/// # Errors
/// [`DocError::Schema`] when the document is not a store document.
pub fn roles(doc: &impl ReadDoc) -> Result<BTreeMap<String, Vec<String>>, DocError> {
    let root = map(doc, ROLES)?;
    let mut out = BTreeMap::new();
    for k in doc.keys(&root) {
        if let Ok(Some((Value::Scalar(s), _))) = doc.get(&root, k.as_str())
            && let ScalarValue::Str(t) = s.as_ref()
            && let Ok(perms) = serde_json::from_str::<Vec<String>>(t)
        {
            out.insert(k, perms);
        }
    }
    Ok(out)
}

/// Root key of the store's payment settings (one JSON scalar, [`PaymentSettings`]).
const PAYMENT_SETTINGS: &str = "payment_settings";

/// Writes the store's card-payment rules (floor limit, caps, windows), in one automerge
/// transaction; head office is the only writer. Unchanged settings cost nothing.
///
/// # Errors
/// [`DocError::Schema`] when the settings do not validate ([`PaymentSettings::validate`]);
/// [`DocError::Automerge`].
pub fn put_payment_settings(doc: &mut Automerge, settings: &PaymentSettings) -> Result<(), DocError> {
    settings.validate().map_err(DocError::Schema)?;
    let json = serde_json::to_string(settings).map_err(|e| DocError::Schema(e.to_string()))?;
    let current = match doc.get(ROOT, PAYMENT_SETTINGS)? {
        Some((Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(t) => Some(t.to_string()),
            _ => None,
        },
        _ => None,
    };
    if current.as_deref() == Some(json.as_str()) {
        return Ok(());
    }
    let mut tx = doc.transaction();
    tx.put(ROOT, PAYMENT_SETTINGS, json)?;
    tx.commit_with(CommitOptions::default().with_time(now_secs()));
    Ok(())
}

/// The store's card-payment rules; the defaults ([`PaymentSettings::default`]) when head
/// office never set them or the stored value does not decode (a newer head office's
/// settings are read leniently: unknown fields make it fall back to the defaults).
pub fn payment_settings(doc: &impl ReadDoc) -> PaymentSettings {
    match doc.get(ROOT, PAYMENT_SETTINGS) {
        Ok(Some((Value::Scalar(s), _))) => match s.as_ref() {
            ScalarValue::Str(t) => serde_json::from_str(t).unwrap_or_default(),
            _ => PaymentSettings::default(),
        },
        _ => PaymentSettings::default(),
    }
}

/// Whether anything changed between two sets of heads (cheap: compares heads and looks at
/// the diff only when they differ).
pub fn changed(doc: &Automerge, before: &[ChangeHash], after: &[ChangeHash]) -> bool {
    before != after
        && doc
            .diff(before, after)
            .iter()
            .any(|p| !matches!(p.action, PatchAction::Mark { .. }))
}

/// The actors of the changes between `before` and the document's current heads; the sync
/// server uses it to refuse store-document changes that head office did not write.
pub fn actors_since(doc: &Automerge, before: &[ChangeHash]) -> Vec<ActorId> {
    let mut out: Vec<ActorId> = doc
        .get_changes(before)
        .iter()
        .map(|c| c.actor_id().clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payment_settings_default_then_round_trip_and_refuse_nonsense() {
        let mut doc = genesis().unwrap();
        assert_eq!(payment_settings(&doc), PaymentSettings::default());
        let tight = PaymentSettings {
            floor_limit_minor: 5_000,
            ..PaymentSettings::default()
        };
        put_payment_settings(&mut doc, &tight).unwrap();
        let heads = doc.get_heads();
        put_payment_settings(&mut doc, &tight).unwrap();
        assert_eq!(doc.get_heads(), heads, "unchanged settings write nothing");
        assert_eq!(payment_settings(&doc), tight);
        let bad = PaymentSettings {
            window_secs: 0,
            ..tight.clone()
        };
        assert!(put_payment_settings(&mut doc, &bad).is_err());
        assert_eq!(payment_settings(&doc), tight);
    }

    fn user(id: &str, name: &str) -> StaffUser {
        StaffUser {
            id: id.into(),
            username: name.into(),
            display_name: name.to_uppercase(),
            roles: vec!["cashier".into()],
            password_hash: None,
            pin_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
            disabled: false,
            sessions_valid_after: 0,
            updated_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        }
    }

    #[test]
    fn users_and_roles_round_trip_and_replicas_merge() {
        let mut hq = genesis().unwrap();
        let mut node = genesis().unwrap();
        assert_eq!(hq.get_heads(), node.get_heads());
        let before = hq.get_heads();
        put_users(&mut hq, &[user("u1", "ana"), user("u2", "bo")], &[]).unwrap();
        put_roles(
            &mut hq,
            &BTreeMap::from([("clerk".to_string(), vec!["stock.read".to_string()])]),
            &[],
        )
        .unwrap();
        assert!(changed(&hq, &before, &hq.get_heads()));
        let same = hq.get_heads();
        put_users(&mut hq, &[user("u1", "ana")], &[]).unwrap();
        assert!(
            !changed(&hq, &same, &hq.get_heads()),
            "an unchanged user writes nothing visible"
        );
        node.merge(&mut hq).unwrap();
        let got: Vec<StaffUser> = users(&node).unwrap().into_iter().map(Result::unwrap).collect();
        assert_eq!(got, vec![user("u1", "ana"), user("u2", "bo")]);
        assert_eq!(roles(&node).unwrap()["clerk"], vec!["stock.read".to_string()]);
        put_users(&mut hq, &[], &["u2".into()]).unwrap();
        assert_eq!(users(&hq).unwrap().len(), 1);
        let actors = actors_since(&hq, &before);
        assert_eq!(actors, vec![hq.get_actor().clone()]);
        assert!(!format!("{:?}", user("u1", "ana")).contains("argon2id$"));
    }

    #[test]
    fn usernames() {
        for ok in ["ana", "ana.lopez", "t1-cashier", "9lives"] {
            assert!(check_username(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Ana", "-ana", "ana lopez", &"a".repeat(65), "ana@x"] {
            assert!(check_username(bad).is_err(), "{bad}");
        }
    }
}
