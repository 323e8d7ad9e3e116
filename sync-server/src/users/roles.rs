//! Custom roles: [`SyncServer`]'s operations on them. The built-in roles live in
//! [`caja_shared::auth`]; the rows and their replication to the stores in
//! [`crate::users::directory`].

use std::collections::{BTreeMap, BTreeSet};

use caja_shared::auth::Permission;

use crate::audit::Actor;
use crate::error::ServerError;
use crate::server::SyncServer;
use crate::users::directory;

impl SyncServer {
    /// Defines or replaces a custom role in every store's document, on behalf of `by`.
    ///
    /// # Errors
    /// [`ServerError::InvalidField`] (`name`) for a built-in or bad name.
    pub async fn define_role(
        &self,
        by: &Actor,
        name: &str,
        permissions: BTreeSet<Permission>,
    ) -> Result<(), ServerError> {
        let touched = directory::define_role(self.hub(), by.clone(), name.to_string(), permissions).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// Deletes a custom role that no user holds, from the server and every store, on
    /// behalf of `by`.
    ///
    /// # Errors
    /// [`ServerError::NotFound`]; [`ServerError::Conflict`] while a user holds it.
    pub(crate) async fn delete_role(&self, by: &Actor, name: &str) -> Result<(), ServerError> {
        let touched = directory::delete_role(self.hub(), by.clone(), name.to_string()).await?;
        self.broadcast_stores(&touched);
        Ok(())
    }

    /// The custom roles: name -> permission names.
    ///
    /// # Errors
    /// [`ServerError::Sqlite`].
    pub(crate) async fn custom_roles(&self) -> Result<BTreeMap<String, Vec<String>>, ServerError> {
        self.hub()
            .with_core(|core| directory::custom_roles(&core.conn))
            .await?
    }

    /// The permissions `roles` grant (built-in and current custom roles).
    ///
    /// # Errors
    /// [`ServerError::Task`] when the core cannot be reached.
    pub(crate) async fn role_permissions(
        &self,
        roles: Vec<String>,
    ) -> Result<BTreeSet<Permission>, ServerError> {
        self.hub()
            .with_core(move |core| core.roles.permissions(&roles))
            .await
    }
}
