//! The one audit-kind vocabulary of Caja: every `kind` an audit entry can have, at a node
//! (`GET /v1/audit` of `caja-node`) and at head office (`GET /v1/audit` of `caja-sync`).
//!
//! Names are lower case and dotted, `<subject>.<what>` (`login.failed`, `user.created`),
//! so a filter can name one kind or every kind under a prefix (`login`). The same event has
//! the same name at both ends; at head office an event a store recorded (it arrives as a
//! ledger fact) is named with the prefix [`FACT_PREFIX`] (`fact.login.failed`), so head
//! office's own events and the stores' stay apart. `docs/ERRORS.md` lists them with who
//! writes each and its fields.
//!
//! Compatibility: names are stored in audit tables and used in filters; never rename one
//! without a migration of stored rows, append new kinds only.

use crate::facts::SecurityEvent;

/// The prefix head office puts before the kind of an event a store recorded.
pub const FACT_PREFIX: &str = "fact.";

macro_rules! kinds {
    ($($(#[$doc:meta])* $variant:ident = $name:literal,)*) => {
        /// What an audit entry records.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum AuditKind {
            $($(#[$doc])* $variant,)*
        }

        impl AuditKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [AuditKind] = &[$(AuditKind::$variant,)*];

            /// The stable dotted name stored and filtered on, e.g. `login.failed`.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditKind::$variant => $name,)*
                }
            }
        }
    };
}

kinds! {
    /// A login succeeded (node: password or PIN at a till; head office: an admin login).
    LoginSucceeded = "login.succeeded",
    /// A login was refused (wrong secret, unknown or disabled user, locked, no PIN).
    LoginFailed = "login.failed",
    /// Too many failed logins: the user is locked out until a time.
    LoginLocked = "login.locked",
    /// A user logged out (session and access token revoked).
    Logout = "logout",
    /// A session was revoked because a refresh token was used twice (node).
    SessionRevoked = "session.revoked",
    /// A refresh token was used twice at head office; its session is revoked.
    SessionRefreshReused = "session.refresh_reused",
    /// A manager lent one permission with their PIN (node).
    OverrideGranted = "override.granted",
    /// A fact was authorised by a manager override (node, when the fact is projected).
    OverrideUsed = "override.used",
    /// A user was created (head office) or appeared in the store's staff (node).
    UserCreated = "user.created",
    /// A user left the store's staff (node).
    UserRemoved = "user.removed",
    /// A user was disabled.
    UserDisabled = "user.disabled",
    /// A user was enabled again.
    UserEnabled = "user.enabled",
    /// A user's username changed (node).
    UserRenamed = "user.renamed",
    /// A user's roles changed.
    UserRolesChanged = "user.roles_changed",
    /// A user's password changed (node; head office logs `user.updated`).
    UserPasswordChanged = "user.password_changed",
    /// A user's PIN changed (node; head office logs `user.updated`).
    UserPinChanged = "user.pin_changed",
    /// Every session of a user was revoked.
    UserSessionsRevoked = "user.sessions_revoked",
    /// A user's details changed at head office (username, password, PIN, stores).
    UserUpdated = "user.updated",
    /// A custom role was defined or changed.
    RoleDefined = "role.defined",
    /// A custom role was deleted.
    RoleDeleted = "role.deleted",
    /// Products were written (node: `PUT /v1/products/{sku}` or a CSV import; head office:
    /// the admin API).
    CatalogChanged = "catalog.changed",
    /// A node changed the catalog (head office, when the change arrives).
    CatalogChangedByNode = "catalog.changed_by_node",
    /// A store was created (head office).
    StoreCreated = "store.created",
    /// An enrollment code was issued (head office).
    EnrollmentCodeIssued = "enrollment_code.issued",
    /// An enrollment was refused (head office).
    EnrollmentRefused = "enrollment.refused",
    /// A node enrolled (head office).
    NodeEnrolled = "node.enrolled",
    /// A node renewed its certificate (head office).
    NodeRenewed = "node.renewed",
    /// A node was revoked (head office).
    NodeRevoked = "node.revoked",
    /// A QUIC connection was refused (head office).
    ConnectionRefused = "connection.refused",
    /// A node asked for a document it may not see or change (head office).
    SyncForbidden = "sync.forbidden",
    /// A store's card-payment settings were changed (head office).
    StorePaymentSettingsChanged = "store.payment_settings_changed",
    /// A stored card tender was forwarded to the provider and its outcome recorded, or it
    /// expired unforwarded (head office).
    PaymentForwarded = "payment.forwarded",
    /// A reconciliation case was opened (head office: a decline, an expiry, …).
    ReconciliationOpened = "reconciliation.opened",
    /// A reconciliation case was assigned to a user (head office).
    ReconciliationAssigned = "reconciliation.assigned",
    /// A reconciliation case was resolved (head office).
    ReconciliationResolved = "reconciliation.resolved",
}

impl AuditKind {
    /// The kind of a security fact's event.
    pub const fn of_event(e: &SecurityEvent) -> AuditKind {
        match e {
            SecurityEvent::LoginSucceeded { .. } => AuditKind::LoginSucceeded,
            SecurityEvent::LoginFailed { .. } => AuditKind::LoginFailed,
            SecurityEvent::Locked { .. } => AuditKind::LoginLocked,
            SecurityEvent::Logout { .. } => AuditKind::Logout,
            SecurityEvent::SessionRevoked { .. } => AuditKind::SessionRevoked,
            SecurityEvent::OverrideGranted { .. } => AuditKind::OverrideGranted,
        }
    }

    /// The kinds a store records as ledger facts (security events and facts authorised by
    /// an override): the ones head office logs as `fact.<kind>`.
    pub const FROM_FACTS: &'static [AuditKind] = &[
        AuditKind::LoginSucceeded,
        AuditKind::LoginFailed,
        AuditKind::LoginLocked,
        AuditKind::Logout,
        AuditKind::SessionRevoked,
        AuditKind::OverrideGranted,
        AuditKind::OverrideUsed,
    ];

    /// The kind named `name`, if any.
    pub fn parse(name: &str) -> Option<AuditKind> {
        AuditKind::ALL.iter().copied().find(|k| k.as_str() == name)
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether `filter` is one of `kinds` or a prefix of one ending at a dot (`login` for
/// `login.failed`): what a `?kind=` filter may be, so a typo is an error rather than an
/// empty list.
pub fn is_filter_of<'a>(kinds: impl IntoIterator<Item = &'a str>, filter: &str) -> bool {
    kinds
        .into_iter()
        .any(|k| k == filter || (k.starts_with(filter) && k.as_bytes().get(filter.len()) == Some(&b'.')))
}

/// The SQL condition matching a `?kind=` filter bound as parameter `?n` against column
/// `kind`: the kind itself or every kind under it as a dotted prefix (NULL matches all).
pub fn sql_filter(n: u8) -> String {
    format!("(?{n} IS NULL OR kind = ?{n} OR substr(kind, 1, length(?{n}) + 1) = ?{n} || '.')")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_dotted_and_parse_back() {
        let mut seen = std::collections::BTreeSet::new();
        for k in AuditKind::ALL {
            let n = k.as_str();
            assert!(seen.insert(n), "{n} twice");
            assert!(
                n.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{n}"
            );
            assert_eq!(AuditKind::parse(n), Some(*k));
        }
    }

    #[test]
    fn every_security_event_has_a_kind_from_facts() {
        for e in crate::facts::tests_support::security_events() {
            assert!(AuditKind::FROM_FACTS.contains(&AuditKind::of_event(&e)), "{e:?}");
        }
    }

    #[test]
    fn filters_are_kinds_or_their_dotted_prefixes() {
        let all = || AuditKind::ALL.iter().map(|k| k.as_str());
        for ok in ["login", "login.failed", "user", "logout"] {
            assert!(is_filter_of(all(), ok), "{ok}");
        }
        for bad in ["", "log", "login.", "login.fail", "LOGIN", "login_failed", "%"] {
            assert!(!is_filter_of(all(), bad), "{bad}");
        }
    }
}
