//! Permissions and roles: the one table in code that says what each built-in role may do,
//! and how custom roles (defined by head office, replicated in the store documents) add to
//! it.
//!
//! A permission is a stable dotted name (`sale.create`); roles are sets of permissions.
//! Every REST route of the node and of the sync server's admin API names the permission it
//! needs in its route table; the permission matrix tests check every route against every
//! role.
//!
//! Compatibility rule: permission names are append-only and never change meaning. A reader
//! that meets a permission it does not know (a custom role written by a newer head office)
//! ignores it, which can only take rights away.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Something a user may be allowed to do. Serialized as its dotted name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Permission {
    /// Ring up and check out a sale.
    #[serde(rename = "sale.create")]
    SaleCreate,
    /// Look up sales and receipts.
    #[serde(rename = "sale.read")]
    SaleRead,
    /// Void a completed sale.
    #[serde(rename = "sale.void")]
    SaleVoid,
    /// Refund against a receipt (the original sale).
    #[serde(rename = "refund.create")]
    RefundCreate,
    /// Refund without a receipt (a manager's right: the classic refund fraud).
    #[serde(rename = "refund.no_receipt")]
    RefundNoReceipt,
    /// Sell at a price other than the catalog's.
    #[serde(rename = "price.override")]
    PriceOverride,
    /// Search and read the catalog.
    #[serde(rename = "catalog.read")]
    CatalogRead,
    /// Create or change products (they replicate to the whole chain).
    #[serde(rename = "catalog.write")]
    CatalogWrite,
    /// Read stock on hand.
    #[serde(rename = "stock.read")]
    StockRead,
    /// Record stock movements: receipts, adjustments, counts, write-offs, transfers.
    #[serde(rename = "stock.adjust")]
    StockAdjust,
    /// Close a till and print its Z-report.
    #[serde(rename = "till.close")]
    TillClose,
    /// Read takings reports.
    #[serde(rename = "report.read")]
    ReportRead,
    /// Read the state of the link to the sync server.
    #[serde(rename = "sync.read")]
    SyncRead,
    /// Switch the link to the sync server on or off.
    #[serde(rename = "sync.manage")]
    SyncManage,
    /// Read the security audit log.
    #[serde(rename = "audit.read")]
    AuditRead,
    /// Create, change and disable users and roles.
    #[serde(rename = "user.manage")]
    UserManage,
    /// Register stores and issue enrollment codes (head office).
    #[serde(rename = "store.manage")]
    StoreManage,
    /// List and revoke enrolled nodes (head office).
    #[serde(rename = "node.manage")]
    NodeManage,
    /// Record a sale or refund at another time than now (more than 5 minutes off): an
    /// import, a replay, a till's queue after an outage. Without it a cashier could
    /// rewrite the takings of a closed day.
    #[serde(rename = "sale.backdate")]
    SaleBackdate,
    /// Take a card offline above the store's floor limit (a manager's override of the
    /// store-and-forward rules; the risk of a later decline is the store's).
    #[serde(rename = "payment.offline_override")]
    PaymentOfflineOverride,
    /// Work the reconciliation queue at head office: declined and expired offline
    /// payments and, later, oversells and duplicate receipts (assign, resolve).
    #[serde(rename = "reconciliation.manage")]
    ReconciliationManage,
}

impl Permission {
    /// Every permission, in declaration order.
    pub const ALL: &'static [Permission] = &[
        Permission::SaleCreate,
        Permission::SaleRead,
        Permission::SaleVoid,
        Permission::RefundCreate,
        Permission::RefundNoReceipt,
        Permission::PriceOverride,
        Permission::CatalogRead,
        Permission::CatalogWrite,
        Permission::StockRead,
        Permission::StockAdjust,
        Permission::TillClose,
        Permission::ReportRead,
        Permission::SyncRead,
        Permission::SyncManage,
        Permission::AuditRead,
        Permission::UserManage,
        Permission::StoreManage,
        Permission::NodeManage,
        Permission::SaleBackdate,
        Permission::PaymentOfflineOverride,
        Permission::ReconciliationManage,
    ];

    /// The dotted name, e.g. `"refund.no_receipt"`.
    pub fn name(self) -> &'static str {
        match self {
            Permission::SaleCreate => "sale.create",
            Permission::SaleRead => "sale.read",
            Permission::SaleVoid => "sale.void",
            Permission::RefundCreate => "refund.create",
            Permission::RefundNoReceipt => "refund.no_receipt",
            Permission::PriceOverride => "price.override",
            Permission::CatalogRead => "catalog.read",
            Permission::CatalogWrite => "catalog.write",
            Permission::StockRead => "stock.read",
            Permission::StockAdjust => "stock.adjust",
            Permission::TillClose => "till.close",
            Permission::ReportRead => "report.read",
            Permission::SyncRead => "sync.read",
            Permission::SyncManage => "sync.manage",
            Permission::AuditRead => "audit.read",
            Permission::UserManage => "user.manage",
            Permission::StoreManage => "store.manage",
            Permission::NodeManage => "node.manage",
            Permission::SaleBackdate => "sale.backdate",
            Permission::PaymentOfflineOverride => "payment.offline_override",
            Permission::ReconciliationManage => "reconciliation.manage",
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an API route requires of its caller. The node's and the sync server's route tables
/// declare one per route; one guard per API enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health probes, the OpenAPI document, logins).
    Public,
    /// Any logged-in, enabled user (logout, who am I).
    Authenticated,
    /// A logged-in user whose current roles grant this permission.
    Permission(Permission),
}

/// Why a permission or role name was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RoleError {
    /// Not a permission this build knows.
    #[error("unknown permission {0:?} (known: sale.create, refund.no_receipt, …; see docs/SECURITY.md)")]
    UnknownPermission(String),
    /// A role name that is not 1-40 characters of a-z, 0-9, '-' and '_'.
    #[error("role name {0:?} must be 1-40 characters of a-z, 0-9, '-' and '_'")]
    BadName(String),
    /// A custom role may not redefine `cashier`, `manager` or `admin`.
    #[error("{0:?} is a built-in role and cannot be redefined")]
    BuiltIn(String),
    /// A user was given a role nobody defined.
    #[error("unknown role {0:?}: built-in roles are cashier, manager, admin; define custom roles first")]
    UnknownRole(String),
}

impl FromStr for Permission {
    type Err = RoleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Permission::ALL
            .iter()
            .copied()
            .find(|p| p.name() == s)
            .ok_or_else(|| RoleError::UnknownPermission(s.to_string()))
    }
}

/// The built-in role names.
pub const BUILT_IN_ROLES: &[&str] = &["cashier", "manager", "admin"];

/// What a cashier may do: sell, refund against a receipt, look things up.
const CASHIER: &[Permission] = &[
    Permission::SaleCreate,
    Permission::SaleRead,
    Permission::RefundCreate,
    Permission::CatalogRead,
    Permission::StockRead,
];

/// What a store manager may do on top of a cashier.
const MANAGER_EXTRA: &[Permission] = &[
    Permission::SaleVoid,
    Permission::RefundNoReceipt,
    Permission::PriceOverride,
    Permission::StockAdjust,
    Permission::TillClose,
    Permission::ReportRead,
    Permission::SyncRead,
    Permission::AuditRead,
    Permission::SaleBackdate,
    Permission::PaymentOfflineOverride,
];

/// The permissions of a built-in role, or `None` for any other name. `admin` has every
/// permission.
pub fn built_in(role: &str) -> Option<BTreeSet<Permission>> {
    match role {
        "cashier" => Some(CASHIER.iter().copied().collect()),
        "manager" => Some(CASHIER.iter().chain(MANAGER_EXTRA).copied().collect()),
        "admin" => Some(Permission::ALL.iter().copied().collect()),
        _ => None,
    }
}

/// Checks a custom role name: 1-40 characters of `a-z`, `0-9`, `-`, `_`, not a built-in
/// role.
///
/// # Errors
/// [`RoleError::BadName`] or [`RoleError::BuiltIn`].
pub fn check_role_name(name: &str) -> Result<(), RoleError> {
    if BUILT_IN_ROLES.contains(&name) {
        return Err(RoleError::BuiltIn(name.to_string()));
    }
    let ok = (1..=40).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RoleError::BadName(name.to_string()))
    }
}

/// The roles in force: the built-in ones plus custom roles (name -> permissions). Resolves a
/// user's role names into the permissions they grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleTable {
    custom: BTreeMap<String, BTreeSet<Permission>>,
}

impl RoleTable {
    /// Only the built-in roles.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces a custom role.
    ///
    /// # Errors
    /// [`RoleError`] for a bad or built-in name.
    pub fn define(&mut self, name: &str, permissions: BTreeSet<Permission>) -> Result<(), RoleError> {
        check_role_name(name)?;
        self.custom.insert(name.to_string(), permissions);
        Ok(())
    }

    /// Whether a role name is known (built-in or custom).
    pub fn knows(&self, role: &str) -> bool {
        BUILT_IN_ROLES.contains(&role) || self.custom.contains_key(role)
    }

    /// The permissions granted by `roles`; unknown role names grant nothing.
    pub fn permissions<S: AsRef<str>>(&self, roles: &[S]) -> BTreeSet<Permission> {
        let mut out = BTreeSet::new();
        for r in roles {
            let r = r.as_ref();
            match built_in(r) {
                Some(p) => out.extend(p),
                None => {
                    if let Some(p) = self.custom.get(r) {
                        out.extend(p.iter().copied());
                    }
                }
            }
        }
        out
    }

    /// Custom roles, by name.
    pub fn custom(&self) -> &BTreeMap<String, BTreeSet<Permission>> {
        &self.custom
    }
}

/// Parses permission names, ignoring (and returning) the ones this build does not know:
/// see the compatibility rule in the module docs.
pub fn parse_permissions_lenient<S: AsRef<str>>(names: &[S]) -> (BTreeSet<Permission>, Vec<String>) {
    let mut known = BTreeSet::new();
    let mut unknown = Vec::new();
    for n in names {
        match n.as_ref().parse::<Permission>() {
            Ok(p) => {
                known.insert(p);
            }
            Err(_) => unknown.push(n.as_ref().to_string()),
        }
    }
    (known, unknown)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_serde_and_from_str() {
        for p in Permission::ALL {
            assert_eq!(p.name().parse::<Permission>().unwrap(), *p);
            assert_eq!(serde_json::to_string(p).unwrap(), format!("\"{}\"", p.name()));
        }
        assert!("sale.delete".parse::<Permission>().is_err());
    }

    #[test]
    fn built_in_roles_nest_and_admin_has_everything() {
        let cashier = built_in("cashier").unwrap();
        let manager = built_in("manager").unwrap();
        let admin = built_in("admin").unwrap();
        assert!(cashier.is_subset(&manager));
        assert!(manager.is_subset(&admin));
        assert_eq!(admin.len(), Permission::ALL.len());
        assert!(!cashier.contains(&Permission::RefundNoReceipt));
        assert!(!cashier.contains(&Permission::PriceOverride));
        assert!(manager.contains(&Permission::RefundNoReceipt));
        assert!(!manager.contains(&Permission::UserManage));
        assert!(built_in("root").is_none());
    }

    #[test]
    fn custom_roles_add_and_unknown_roles_grant_nothing() {
        let mut t = RoleTable::new();
        t.define(
            "stock-clerk",
            [Permission::StockRead, Permission::StockAdjust].into(),
        )
        .unwrap();
        assert!(matches!(
            t.define("admin", BTreeSet::new()),
            Err(RoleError::BuiltIn(_))
        ));
        assert!(matches!(
            t.define("Bad Name", BTreeSet::new()),
            Err(RoleError::BadName(_))
        ));
        let p = t.permissions(&["cashier", "stock-clerk", "ghost"]);
        assert!(p.contains(&Permission::StockAdjust));
        assert!(p.contains(&Permission::SaleCreate));
        assert!(!p.contains(&Permission::ReportRead));
        assert!(t.permissions(&["ghost"]).is_empty());
        let (known, unknown) = parse_permissions_lenient(&["sale.read", "time.travel"]);
        assert_eq!(known, [Permission::SaleRead].into());
        assert_eq!(unknown, vec!["time.travel".to_string()]);
    }
}
